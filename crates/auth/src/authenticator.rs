//! The authentication decision for one CONNECT.
//!
//! Rules, in order:
//! 1. No username (or an empty one) is an anonymous client: let in as `anonymous` when
//!    `allow_anonymous`, refused otherwise. A password without a username is ignored.
//! 2. A username must name a configured user, come with the right password, and, for a
//!    loopback-only user, come from a loopback address. The client cannot tell which of these
//!    failed: all three are [`AuthFailure::BadCredentials`], and an unknown user costs the
//!    same argon2 run as a wrong password.
//! 3. With no configured user, the built-in `guest`/`guest` exists, loopback only.
//! 4. When JWT is configured ([`Authenticator::with_jwt`]), a password shaped like a JWT
//!    (three base64url segments separated by dots) is verified as a token instead: the
//!    token names the user, may name the vhost, and its scopes are the permissions. The
//!    CONNECT user name must then be empty or the token's user name.
//! 5. With an HTTP authentication hook, the broker asks it about user name and password
//!    logins ([`Authenticator::hook_subject`] says which and about whom) and maps an allow
//!    to an identity with [`Authenticator::identity_from_hook`].

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::config::{AuthConfig, AuthConfigError};
use crate::definitions::{Definitions, Tag};
use crate::hook::HookGrant;
use crate::jwt::{JwtValidator, TokenIdentity};
use crate::password::{self, DUMMY_HASH, DigestKey, GUEST_HASH, VerifiedCache};
use crate::password_hash::PasswordHash;
use crate::permissions::Permissions;

/// The vhost a client lands in when nothing selects another.
pub const DEFAULT_VHOST: &str = "/";

/// Who a connection is, once authenticated, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name (`anonymous` for anonymous clients), without any `vhost:` prefix.
    pub username: Arc<str>,
    /// True for a client let in without credentials.
    pub anonymous: bool,
    /// The virtual host the connection belongs to.
    pub vhost: Arc<str>,
    /// Topic rights in that vhost, before placeholders are bound to the client id.
    pub permissions: Permissions,
    /// When the credentials stop being valid: a token's `exp` plus the configured leeway,
    /// or the hook's `expires_at`. The connection must be closed then (unless a token
    /// connection re-authenticates). `None`: never.
    pub expires_at: Option<SystemTime>,
    /// Who vouched for the client, and so where its rights come from.
    pub source: IdentitySource,
}

/// Who authenticated a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// The internal database, the config file's users or the built-in guest (also
    /// anonymous clients): rights follow the database.
    Internal,
    /// A JWT: its rights come from the token, and a fresh token may replace them
    /// (re-authentication).
    Token,
    /// The HTTP authentication hook: its rights come from the hook's answer.
    Hook,
}

/// Whom the HTTP authentication hook would be asked about (see
/// [`Authenticator::hook_subject`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookSubject<'a> {
    /// The user name without its `vhost:` prefix.
    pub username: &'a str,
    /// The vhost that selection picked (prefix, listener, `/`).
    pub vhost: &'a str,
    /// The internal database (config users, database users, the built-in guest) knows
    /// this user name.
    pub known_internally: bool,
}

/// Why a CONNECT was refused. Deliberately coarse: telling a client *which* check failed
/// would help it guess user names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No username was sent and anonymous access is off.
    #[error("anonymous access is not allowed")]
    AnonymousNotAllowed,
    /// Unknown user, wrong or missing password, or a loopback-only user connecting from
    /// elsewhere.
    #[error("bad user name or password")]
    BadCredentials,
    /// Good credentials, but no access to the requested vhost (or it does not exist).
    #[error("no access to the virtual host")]
    VhostNotAllowed,
    /// The authentication service that had to decide (the HTTP hook) could not: the client
    /// may try again later.
    #[error("the authentication service is unavailable")]
    Unavailable,
}

/// Everything about one CONNECT that authentication looks at.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// CONNECT's user name; `None` or empty = anonymous. May carry a `vhost:` prefix.
    pub username: Option<&'a str>,
    /// CONNECT's password bytes.
    pub password: Option<&'a [u8]>,
    /// The client's address (after trusted proxies).
    pub peer: IpAddr,
    /// The listener's default vhost, when it maps to one other than `/`.
    pub listener_vhost: Option<&'a str>,
    /// The user name a verified TLS client certificate maps to: no password is checked.
    pub certificate_user: Option<&'a str>,
    /// The wall-clock time tokens are checked against (`exp`, `nbf`).
    pub now: SystemTime,
}

/// Why a re-authentication with a fresh token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReauthFailure {
    /// JWT is not configured, or the connection was not authenticated by a token.
    #[error("re-authentication with a token is not available")]
    NotAvailable,
    /// The token does not verify (signature, time, audience, issuer, claims).
    #[error("invalid token")]
    InvalidToken,
    /// The token names another user or another vhost than the connection's.
    #[error("the token names another user or vhost")]
    IdentityChanged,
}

/// A user whose password can be checked.
struct User {
    name: Arc<str>,
    hash: PasswordHash,
    loopback_only: bool,
    verified: VerifiedCache,
    /// Most concurrent connections (internal database users only).
    max_connections: Option<u32>,
    /// Management tags: from the database; none for config-file users; `administrator` for
    /// the built-in guest.
    tags: Vec<Tag>,
}

/// Users, vhosts and permissions of the internal database, indexed for lookups.
#[derive(Default)]
struct Directory {
    users: HashMap<Box<str>, User>,
    vhosts: HashSet<Box<str>>,
    /// `max_connections` of the vhosts that set one.
    vhost_limits: HashMap<Box<str>, u32>,
    permissions: HashMap<(Box<str>, Box<str>), Permissions>,
}

impl Directory {
    fn from_definitions(definitions: &Definitions) -> Directory {
        Directory {
            users: definitions
                .users
                .iter()
                .map(|u| {
                    let user = User {
                        name: Arc::from(u.name.as_str()),
                        hash: u.password_hash.clone(),
                        loopback_only: false,
                        verified: VerifiedCache::default(),
                        max_connections: u.max_connections,
                        tags: u.tags.clone(),
                    };
                    (Box::from(u.name.as_str()), user)
                })
                .collect(),
            vhosts: definitions
                .vhosts
                .iter()
                .map(|v| Box::from(v.name.as_str()))
                .collect(),
            vhost_limits: definitions
                .vhosts
                .iter()
                .filter_map(|v| Some((Box::from(v.name.as_str()), v.max_connections?)))
                .collect(),
            permissions: definitions
                .permissions
                .iter()
                .map(|p| {
                    (
                        (Box::from(p.user.as_str()), Box::from(p.vhost.as_str())),
                        p.permissions.clone(),
                    )
                })
                .collect(),
        }
    }
}

/// Decides whether a CONNECT's credentials are good and what the client may do.
/// `Send + Sync`: share one behind an `Arc` between all connections.
///
/// Users come from two places: the config file (`[[auth.users]]`, full rights in the vhost
/// `/`) and the internal database ([`Definitions`], per-vhost permissions), which can be
/// replaced at run time with [`Authenticator::replace_definitions`]. When neither has a user,
/// the built-in `guest`/`guest` exists, loopback only, with full rights in `/`.
pub struct Authenticator {
    allow_anonymous: bool,
    vhost_in_username: bool,
    config_users: HashMap<Box<str>, User>,
    directory: RwLock<Arc<Directory>>,
    guest: User,
    /// Bumped by every definitions change, so connections know to re-check their rights.
    generation: AtomicU64,
    /// Users of the internal database who logged in with a legacy hash (RabbitMQ import, weak
    /// argon2 parameters), with their new argon2id hash, waiting to be written back.
    rehashed: Mutex<Vec<(String, PasswordHash)>>,
    digest_key: DigestKey,
    anonymous: Arc<str>,
    default_vhost: Arc<str>,
    jwt: Option<JwtValidator>,
}

impl std::fmt::Debug for Authenticator {
    // Hand-written so that neither hashes nor the digest key end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("allow_anonymous", &self.allow_anonymous)
            .field("config_users", &self.config_users.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds the authenticator from the config file's users, validating every one (see
    /// [`AuthConfig::validate`]); the first problem is returned. The internal database starts
    /// empty: see [`Authenticator::replace_definitions`].
    pub fn new(config: AuthConfig) -> Result<Authenticator, AuthConfigError> {
        if let Some(problem) = config.validate().into_iter().next() {
            return Err(problem);
        }
        let config_users = config
            .users
            .into_iter()
            .map(|user| {
                let record = User {
                    name: Arc::from(user.name.as_str()),
                    hash: PasswordHash::Argon2id(user.password_hash),
                    loopback_only: user.loopback_only,
                    verified: VerifiedCache::default(),
                    max_connections: None,
                    tags: Vec::new(),
                };
                (Box::from(user.name.as_str()), record)
            })
            .collect();
        Ok(Authenticator {
            allow_anonymous: config.allow_anonymous,
            vhost_in_username: config.vhost_in_username,
            config_users,
            directory: RwLock::new(Arc::new(Directory::default())),
            guest: User {
                name: Arc::from("guest"),
                hash: PasswordHash::Argon2id(GUEST_HASH.to_owned()),
                loopback_only: true,
                verified: VerifiedCache::default(),
                max_connections: None,
                tags: vec![Tag::Administrator],
            },
            generation: AtomicU64::new(0),
            rehashed: Mutex::new(Vec::new()),
            digest_key: DigestKey::random().map_err(AuthConfigError::RandomSource)?,
            anonymous: Arc::from("anonymous"),
            default_vhost: Arc::from(DEFAULT_VHOST),
            jwt: None,
        })
    }

    /// Turns JWT authentication on: passwords shaped like a JWT are verified by `validator`.
    pub fn with_jwt(mut self, validator: JwtValidator) -> Authenticator {
        self.jwt = Some(validator);
        self
    }

    /// True when JWT authentication is on.
    pub fn jwt_enabled(&self) -> bool {
        self.jwt.is_some()
    }

    /// Replaces the internal database's users, vhosts and permissions. Connections notice
    /// through [`Authenticator::generation`] and re-check their rights.
    pub fn replace_definitions(&self, definitions: &Definitions) {
        let directory = Arc::new(Directory::from_definitions(definitions));
        *self.directory.write().unwrap_or_else(|p| p.into_inner()) = directory;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Changes whenever the definitions change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn directory(&self) -> Arc<Directory> {
        self.directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Authenticates one CONNECT in the vhost `/` (see [`Authenticator::authenticate_request`]).
    pub fn authenticate(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
        peer: IpAddr,
    ) -> Result<Identity, AuthFailure> {
        self.authenticate_request(&AuthRequest {
            username,
            password,
            peer,
            listener_vhost: None,
            certificate_user: None,
            now: SystemTime::now(),
        })
    }

    /// Authenticates a client by its TLS client certificate's user name, in the vhost `/`.
    pub fn authenticate_certificate(
        &self,
        username: &str,
        peer: IpAddr,
    ) -> Result<Identity, AuthFailure> {
        self.authenticate_request(&AuthRequest {
            username: None,
            password: None,
            peer,
            listener_vhost: None,
            certificate_user: Some(username),
            now: SystemTime::now(),
        })
    }

    /// Authenticates one CONNECT.
    ///
    /// The vhost is, in order: the `vhost:` prefix of the user name (split at the last colon,
    /// unless `vhost_in_username` is off), the listener's default vhost, `/`. With no user
    /// name the client is anonymous (let in as `anonymous` with full rights in that vhost when
    /// `allow_anonymous`). A user name must name a user (config file or internal database)
    /// whose password matches — or the certificate user, whose certificate already proved it —
    /// and that user needs permissions in the vhost.
    ///
    /// CPU-heavy on a cache miss (one argon2 run, tens of milliseconds): call it from a
    /// blocking thread unless [`Authenticator::is_cheap`] says otherwise.
    pub fn authenticate_request(&self, request: &AuthRequest<'_>) -> Result<Identity, AuthFailure> {
        if request.certificate_user.is_none()
            && self.jwt.is_some()
            && let Some(password) = request.password
            && looks_like_jwt(password)
        {
            return self.authenticate_token(request, password);
        }
        let listener_vhost = request.listener_vhost.unwrap_or(DEFAULT_VHOST);
        let (vhost, name) = match request.certificate_user {
            Some(user) => (listener_vhost, Some(user)),
            None => self.split_vhost(request.username, listener_vhost),
        };
        let Some(name) = name else {
            if !self.allow_anonymous {
                return Err(AuthFailure::AnonymousNotAllowed);
            }
            let directory = self.directory();
            if vhost != DEFAULT_VHOST && !directory.vhosts.contains(vhost) {
                return Err(AuthFailure::VhostNotAllowed);
            }
            return Ok(Identity {
                username: Arc::clone(&self.anonymous),
                anonymous: true,
                vhost: self.vhost_name(vhost),
                permissions: full_with_sys(),
                expires_at: None,
                source: IdentitySource::Internal,
            });
        };
        let directory = self.directory();
        let user = match self.find_user(&directory, name) {
            Some(user) => user,
            None => {
                // Spend the time a real verification would, so that response time does not
                // reveal which user names exist.
                if let (None, Some(password)) = (request.certificate_user, request.password) {
                    let _ = password::verify(password, DUMMY_HASH);
                }
                return Err(AuthFailure::BadCredentials);
            }
        };
        if request.certificate_user.is_none() {
            let Some(password) = request.password else {
                return Err(AuthFailure::BadCredentials);
            };
            if !self.verify(user, password) {
                return Err(AuthFailure::BadCredentials);
            }
        }
        // Checked after the password so that a remote client learns nothing about whether a
        // loopback-only user exists or whether its guess was right.
        if user.loopback_only && !is_loopback(request.peer) {
            return Err(AuthFailure::BadCredentials);
        }
        let permissions = self
            .permissions_in(&directory, &user.name, vhost)
            .ok_or(AuthFailure::VhostNotAllowed)?;
        Ok(Identity {
            username: Arc::clone(&user.name),
            anonymous: false,
            vhost: self.vhost_name(vhost),
            permissions,
            expires_at: None,
            source: IdentitySource::Internal,
        })
    }

    /// Authenticates a CONNECT by a JWT (from the password field or from v5 Authentication
    /// Data), whatever its shape; refused with [`AuthFailure::BadCredentials`] when JWT is off.
    ///
    /// The vhost is the token's vhost claim, else the `vhost:` prefix of the user name, else
    /// the listener's vhost, else `/`; it must exist ([`AuthFailure::VhostNotAllowed`]). The
    /// user name, without its `vhost:` prefix, must be empty or the token's user name. The
    /// permissions are the token's scopes for that vhost.
    pub fn authenticate_token(
        &self,
        request: &AuthRequest<'_>,
        token: &[u8],
    ) -> Result<Identity, AuthFailure> {
        let token = self
            .verify_token(token, request.now)
            .ok_or(AuthFailure::BadCredentials)?;
        let listener_vhost = request.listener_vhost.unwrap_or(DEFAULT_VHOST);
        let (username_vhost, name) = self.split_vhost(request.username, listener_vhost);
        if name.is_some_and(|name| name != token.username) {
            return Err(AuthFailure::BadCredentials);
        }
        let vhost = token.vhost.as_deref().unwrap_or(username_vhost);
        if vhost != DEFAULT_VHOST && !self.directory().vhosts.contains(vhost) {
            return Err(AuthFailure::VhostNotAllowed);
        }
        Ok(Identity {
            username: Arc::from(token.username.as_str()),
            anonymous: false,
            vhost: self.vhost_name(vhost),
            permissions: token.permissions_for(vhost),
            expires_at: self.token_deadline(&token),
            source: IdentitySource::Token,
        })
    }

    /// Re-authentication (MQTT 5 AUTH): a fresh token for a connection a token
    /// authenticated. It must name the same user and, when it names a vhost, the same vhost;
    /// the result carries the new permissions and expiry.
    pub fn reauthenticate_token(
        &self,
        identity: &Identity,
        token: &[u8],
        now: SystemTime,
    ) -> Result<Identity, ReauthFailure> {
        if self.jwt.is_none() || identity.source != IdentitySource::Token {
            return Err(ReauthFailure::NotAvailable);
        }
        let token = self
            .verify_token(token, now)
            .ok_or(ReauthFailure::InvalidToken)?;
        if token.username != *identity.username
            || token
                .vhost
                .as_deref()
                .is_some_and(|v| v != &*identity.vhost)
        {
            return Err(ReauthFailure::IdentityChanged);
        }
        Ok(Identity {
            permissions: token.permissions_for(&identity.vhost),
            expires_at: self.token_deadline(&token),
            ..identity.clone()
        })
    }

    fn verify_token(&self, token: &[u8], now: SystemTime) -> Option<TokenIdentity> {
        let validator = self.jwt.as_ref()?;
        let token = std::str::from_utf8(token).ok()?;
        validator.validate(token, now).ok()
    }

    /// A token is accepted until `exp` plus the leeway, so the connection lives that long.
    fn token_deadline(&self, token: &TokenIdentity) -> Option<SystemTime> {
        let leeway = self
            .jwt
            .as_ref()
            .map_or(0, |validator| validator.config().leeway_secs);
        token
            .expires_at
            .and_then(|exp| exp.checked_add(Duration::from_secs(leeway)))
    }

    /// The connection limits that apply to `identity`: (the user's across all vhosts, the
    /// vhost's), from the internal database; `None` = no limit. The broker counts.
    pub fn connection_limits(&self, identity: &Identity) -> (Option<u32>, Option<u32>) {
        let directory = self.directory();
        let user = match identity.anonymous {
            true => None,
            false => directory
                .users
                .get(&*identity.username)
                .and_then(|u| u.max_connections),
        };
        (user, directory.vhost_limits.get(&*identity.vhost).copied())
    }

    /// The rights `username` has in `vhost` now, for a connection re-checking after
    /// [`Authenticator::generation`] changed; `None` when the user or its access is gone.
    pub fn current_permissions(&self, identity: &Identity) -> Option<Permissions> {
        if identity.anonymous {
            return Some(full_with_sys());
        }
        let directory = self.directory();
        if identity.source != IdentitySource::Internal {
            // A token's or the hook's rights stand until they expire; only the vhost can
            // disappear.
            let vhost_exists =
                &*identity.vhost == DEFAULT_VHOST || directory.vhosts.contains(&*identity.vhost);
            return vhost_exists.then(|| identity.permissions.clone());
        }
        let user = self.find_user(&directory, &identity.username)?;
        self.permissions_in(&directory, &user.name, &identity.vhost)
    }

    /// True when [`Authenticator::authenticate_request`] would not run argon2 for these
    /// credentials (anonymous, a missing password, a password that already verified, or a
    /// RabbitMQ hash, which is fast), so the broker can skip the trip to a blocking thread.
    pub fn is_cheap(&self, username: Option<&str>, password: Option<&[u8]>) -> bool {
        // Verifying a token costs microseconds, not an argon2 run.
        if self.jwt.is_some() && password.is_some_and(looks_like_jwt) {
            return true;
        }
        let (_, name) = self.split_vhost(username, DEFAULT_VHOST);
        let Some(name) = name else {
            return true;
        };
        self.password_check_is_cheap(name, password)
    }

    /// True when verifying `password` for the user called `name` (no `vhost:` prefix, no
    /// token) would not run argon2: see [`Authenticator::is_cheap`].
    pub fn password_check_is_cheap(&self, name: &str, password: Option<&[u8]>) -> bool {
        let directory = self.directory();
        match (self.find_user(&directory, name), password) {
            (Some(_), None) => true,
            (Some(user), Some(password)) => {
                if user.verified.contains(&self.digest_key.digest(password)) {
                    return true;
                }
                // A legacy hash is fast to check, but a success computes its argon2id
                // replacement.
                !matches!(user.hash, PasswordHash::Argon2id(_)) && !user.hash.needs_rehash()
            }
            // Unknown users cost a dummy argon2 run, see `authenticate_request`.
            (None, _) => password.is_none(),
        }
    }

    /// Whom the HTTP authentication hook would be asked about for this CONNECT: the user
    /// name without its `vhost:` prefix, the vhost selection picked, and whether the
    /// internal database knows the user. `None` when the hook has no say: anonymous
    /// clients, TLS certificate logins, and passwords that are tokens (when JWT is on).
    /// Tokens sent as v5 Authentication Data never come here: the broker checks them first.
    pub fn hook_subject<'a>(&self, request: &AuthRequest<'a>) -> Option<HookSubject<'a>> {
        if request.certificate_user.is_some()
            || (self.jwt.is_some() && request.password.is_some_and(looks_like_jwt))
        {
            return None;
        }
        let listener_vhost = request.listener_vhost.unwrap_or(DEFAULT_VHOST);
        let (vhost, username) = self.split_vhost(request.username, listener_vhost);
        let username = username?;
        let known_internally = self.find_user(&self.directory(), username).is_some();
        Some(HookSubject {
            username,
            vhost,
            known_internally,
        })
    }

    /// The identity of a client the hook let in: the hook's vhost (else the one selection
    /// picked), which must be `/` or exist in the database, like a token's; the hook's
    /// rights and expiry.
    pub fn identity_from_hook(
        &self,
        subject: &HookSubject<'_>,
        grant: &HookGrant,
    ) -> Result<Identity, AuthFailure> {
        let vhost = grant.vhost.as_deref().unwrap_or(subject.vhost);
        if vhost != DEFAULT_VHOST && !self.directory().vhosts.contains(vhost) {
            return Err(AuthFailure::VhostNotAllowed);
        }
        Ok(Identity {
            username: Arc::from(subject.username),
            anonymous: false,
            vhost: self.vhost_name(vhost),
            permissions: grant.permissions.clone(),
            expires_at: grant.expires_at,
            source: IdentitySource::Hook,
        })
    }

    /// `vhost:user` → (vhost, user), split at the last colon (vhost names may contain
    /// colons, user names may not). An empty user name means anonymous.
    fn split_vhost<'a>(
        &self,
        username: Option<&'a str>,
        default: &'a str,
    ) -> (&'a str, Option<&'a str>) {
        let Some(name) = username.filter(|n| !n.is_empty()) else {
            return (default, None);
        };
        if self.vhost_in_username
            && let Some((vhost, user)) = name.rsplit_once(':')
        {
            return (vhost, Some(user).filter(|u| !u.is_empty()));
        }
        (default, Some(name))
    }

    /// Config-file users first, then the internal database; the built-in guest only when
    /// neither has any user.
    fn find_user<'d>(&'d self, directory: &'d Directory, name: &str) -> Option<&'d User> {
        if let Some(user) = self.config_users.get(name) {
            return Some(user);
        }
        if let Some(user) = directory.users.get(name) {
            return Some(user);
        }
        (name == "guest" && self.config_users.is_empty() && directory.users.is_empty())
            .then_some(&self.guest)
    }

    /// Config-file users and the built-in guest have full rights in `/` only; database
    /// users have what their permission record says.
    fn permissions_in(
        &self,
        directory: &Directory,
        user: &str,
        vhost: &str,
    ) -> Option<Permissions> {
        if self.config_users.contains_key(user) || (user == "guest" && directory.users.is_empty()) {
            // Config-file users and the built-in guest: everything in `/`, `$SYS` included.
            return (vhost == DEFAULT_VHOST).then(full_with_sys);
        }
        if vhost != DEFAULT_VHOST && !directory.vhosts.contains(vhost) {
            return None;
        }
        directory
            .permissions
            .get(&(Box::from(user), Box::from(vhost)))
            .cloned()
    }

    fn vhost_name(&self, vhost: &str) -> Arc<str> {
        match vhost {
            DEFAULT_VHOST => Arc::clone(&self.default_vhost),
            other => Arc::from(other),
        }
    }

    /// Cache first, then the hash; an argon2 success is remembered.
    fn verify(&self, user: &User, password: &[u8]) -> bool {
        let digest = self.digest_key.digest(password);
        if user.verified.contains(&digest) {
            return true;
        }
        let ok = user.hash.verify(password);
        if ok {
            user.verified.insert(digest);
            let from_database =
                !self.config_users.contains_key(&*user.name) && !std::ptr::eq(user, &self.guest);
            if from_database
                && user.hash.needs_rehash()
                && let Ok(text) = std::str::from_utf8(password)
            {
                let upgraded = PasswordHash::argon2id(text);
                self.rehashed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((user.name.to_string(), upgraded));
            }
        }
        ok
    }

    /// Takes the argon2id hashes computed for users who logged in with a legacy hash, for
    /// the caller to store in place of the old ones (RabbitMQ imports upgrade on first login).
    pub fn take_rehashed(&self) -> Vec<(String, PasswordHash)> {
        std::mem::take(&mut *self.rehashed.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What anonymous clients, config-file users and the built-in guest get: everything,
/// including reading `$SYS`.
fn full_with_sys() -> Permissions {
    Permissions {
        read_sys: true,
        ..Permissions::full()
    }
}

/// Three non-empty base64url segments separated by dots: a JWS in compact form. Passwords
/// of this shape are tokens when JWT is on (a real password of this shape is unlikely, and
/// its user can change it).
pub fn looks_like_jwt(password: &[u8]) -> bool {
    let mut segments = 0;
    for segment in password.split(|&b| b == b'.') {
        let base64url = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
        if segment.is_empty() || !segment.iter().all(base64url) {
            return false;
        }
        segments += 1;
    }
    segments == 3
}

/// 127.0.0.0/8, `::1`, and IPv4-mapped `::ffff:127.x.y.z` (what a dual-stack socket reports
/// for an IPv4 loopback client).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

mod management;

pub use management::ManagementLogin;

#[cfg(test)]
mod tests;
