//! JSON Web Tokens for browser apps: a token in the MQTT password field (or a cookie) is
//! verified here and turned into a user, an optional vhost and permissions.
//!
//! - Algorithms HS256, RS256, ES256, each allowed only when configured; keys are an HMAC
//!   secret, PEM public keys (read from files once, in [`JwtValidator::new`]) or a JWKS
//!   document whose `kid`s select the key.
//! - `exp`, `nbf` (with leeway), `iss` and `aud` are checked here against the caller's
//!   clock, so that the decision is a pure function of (token, now); `jsonwebtoken` only
//!   verifies the signature. A token carrying `aud` is refused when no audience is
//!   configured (RFC 7519 §4.1.3: a recipient that is not named must reject it).
//! - Scopes grant permissions: `ferrymq.publish:<vhost>/<filter>`,
//!   `ferrymq.subscribe:<vhost>/<filter>`, `ferrymq.read_sys:<vhost>`, the vhost
//!   percent-encoded (`%2F` for `/`, as in RabbitMQ's OAuth 2 scopes). Scopes for another
//!   vhost than the connection's are ignored. Tokens only grant: there are no deny scopes.
//!
//! Every failure is a distinct [`JwtError`], for logs and metrics; the client only learns
//! "bad credentials".

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::permissions::{Permissions, TopicRules};

/// Longest accepted token, in bytes: far above any real JWT, small enough that a hostile
/// client cannot make us parse megabytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A signature algorithm FerryMQ accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret.
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
}

impl JwtAlgorithm {
    fn of(alg: Algorithm) -> Option<JwtAlgorithm> {
        match alg {
            Algorithm::HS256 => Some(JwtAlgorithm::HS256),
            Algorithm::RS256 => Some(JwtAlgorithm::RS256),
            Algorithm::ES256 => Some(JwtAlgorithm::ES256),
            _ => None,
        }
    }

    fn family(self) -> AlgorithmFamily {
        match self {
            JwtAlgorithm::HS256 => AlgorithmFamily::Hmac,
            JwtAlgorithm::RS256 => AlgorithmFamily::Rsa,
            JwtAlgorithm::ES256 => AlgorithmFamily::Ec,
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::ES256 => Algorithm::ES256,
        }
    }
}

/// Where verification keys come from.
#[derive(Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// An HMAC secret (HS256).
    Secret {
        /// The secret's bytes.
        secret: Vec<u8>,
        /// The `kid` tokens signed with it carry, if any.
        kid: Option<String>,
    },
    /// A PEM public key (RSA or P-256; `PUBLIC KEY` or `RSA PUBLIC KEY`) read from a file.
    PemFile {
        /// The file.
        path: PathBuf,
        /// The `kid` tokens signed with it carry, if any.
        kid: Option<String>,
    },
    /// A PEM public key given inline.
    Pem {
        /// The PEM text.
        pem: String,
        /// The `kid` tokens signed with it carry, if any.
        kid: Option<String>,
    },
    /// A JWKS document (`{"keys": [...]}`) read from a file; each key's `kid` selects it.
    JwksFile {
        /// The file.
        path: PathBuf,
    },
    /// A JWKS document given inline.
    Jwks {
        /// The JSON text.
        json: String,
    },
}

impl std::fmt::Debug for JwtKey {
    // Hand-written: a secret must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKey::Secret { kid, .. } => write!(f, "Secret {{ kid: {kid:?}, .. }}"),
            JwtKey::PemFile { path, kid } => {
                write!(f, "PemFile {{ path: {path:?}, kid: {kid:?} }}")
            }
            JwtKey::Pem { kid, .. } => write!(f, "Pem {{ kid: {kid:?}, .. }}"),
            JwtKey::JwksFile { path } => write!(f, "JwksFile {{ path: {path:?} }}"),
            JwtKey::Jwks { .. } => f.write_str("Jwks { .. }"),
        }
    }
}

/// How tokens are verified and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// Accepted algorithms; a token with any other `alg` is refused.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Verification keys.
    pub keys: Vec<JwtKey>,
    /// Required `aud` (the token's `aud`, a string or an array, must contain it).
    pub audience: Option<String>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// The claim holding the username (default `sub`).
    pub username_claim: String,
    /// The claim holding the vhost (default `vhost`); optional in tokens.
    pub vhost_claim: String,
    /// The claim holding the scopes (default `scope`): a space-separated string or an array.
    pub scope_claim: String,
    /// The prefix of our scopes (default `ferrymq.`); other scopes are ignored.
    pub scope_prefix: String,
    /// Refuse tokens without `exp` (default true: a browser token should not live forever).
    pub require_exp: bool,
}

impl Default for JwtConfig {
    fn default() -> JwtConfig {
        JwtConfig {
            algorithms: Vec::new(),
            keys: Vec::new(),
            audience: None,
            issuer: None,
            leeway_secs: 30,
            username_claim: "sub".to_owned(),
            vhost_claim: "vhost".to_owned(),
            scope_claim: "scope".to_owned(),
            scope_prefix: "ferrymq.".to_owned(),
            require_exp: true,
        }
    }
}

/// A configuration [`JwtValidator::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    /// `algorithms` is empty.
    #[error("no JWT algorithm is configured")]
    NoAlgorithms,
    /// An algorithm has no key of its kind (HS256 needs a secret, RS256 an RSA key, ES256 a
    /// P-256 key).
    #[error("{0:?} is configured but no key of its kind is")]
    NoKeyFor(JwtAlgorithm),
    /// A key file could not be read.
    #[error("cannot read key file {path:?}: {reason}")]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A key could not be parsed.
    #[error("invalid key {what}: {reason}")]
    InvalidKey {
        /// Which key (file name, JWKS entry).
        what: String,
        /// Why.
        reason: String,
    },
    /// A claim name is empty.
    #[error("the {0} claim name is empty")]
    EmptyClaimName(&'static str),
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a JWT (shape, base64, JSON), or longer than [`MAX_TOKEN_LEN`].
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header's `alg` is not configured.
    #[error("algorithm {0} is not accepted")]
    AlgorithmNotAllowed(String),
    /// The header's `kid` names no configured key.
    #[error("no key with kid {0:?}")]
    UnknownKid(String),
    /// No configured key can verify this algorithm (with this `kid`).
    #[error("no key for this algorithm")]
    NoKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` (plus leeway) is past.
    #[error("token expired")]
    Expired,
    /// `nbf` (minus leeway) is in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// `exp` is required and missing.
    #[error("token has no exp claim")]
    MissingExpiry,
    /// `aud` does not name the configured audience (or names one when none is configured).
    #[error("wrong audience")]
    WrongAudience,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// The username claim is missing or empty.
    #[error("no username claim")]
    MissingUsername,
    /// A claim we read has the wrong JSON type.
    #[error("claim {0:?} has the wrong type")]
    InvalidClaim(String),
}

/// Who a valid token says the client is, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    /// The username claim.
    pub username: String,
    /// The vhost claim, when the token has one.
    pub vhost: Option<String>,
    /// The permissions the scopes grant in `vhost`, or in `/` when the token names no vhost.
    /// When the broker picks another vhost (see the selection precedence), use
    /// [`TokenIdentity::permissions_for`].
    pub permissions: Permissions,
    /// `exp`, when present (and representable).
    pub expires_at: Option<SystemTime>,
    /// The token's FerryMQ scopes, prefix removed (`publish:%2F/devices/#`).
    pub scopes: Vec<String>,
}

impl TokenIdentity {
    /// The permissions the scopes grant in `vhost`; scopes for other vhosts are ignored.
    pub fn permissions_for(&self, vhost: &str) -> Permissions {
        let mut permissions = Permissions::default();
        for scope in &self.scopes {
            let Some((action, target)) = scope.split_once(':') else {
                continue;
            };
            let (encoded_vhost, filter) = match target.split_once('/') {
                Some((v, f)) => (v, Some(f)),
                None => (target, None),
            };
            if percent_decode(encoded_vhost).as_deref() != Some(vhost) {
                continue;
            }
            let rules: &mut TopicRules = match (action, filter) {
                ("read_sys", None) => {
                    permissions.read_sys = true;
                    continue;
                }
                ("publish", Some(f)) if !f.is_empty() => &mut permissions.publish,
                ("subscribe", Some(f)) if !f.is_empty() => &mut permissions.subscribe,
                _ => continue,
            };
            let filter = filter.unwrap_or_default().to_owned();
            if !rules.allow.contains(&filter) {
                rules.allow.push(filter);
            }
        }
        permissions
    }
}

/// `%XX` decoding; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One usable verification key.
struct LoadedKey {
    kid: Option<String>,
    family: AlgorithmFamily,
    key: DecodingKey,
}

/// Verifies tokens. Build once (it reads key files), share behind an `Arc`.
pub struct JwtValidator {
    config: JwtConfig,
    keys: Vec<LoadedKey>,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("algorithms", &self.config.algorithms)
            .field("keys", &self.keys.len())
            .field("audience", &self.config.audience)
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// Loads the keys (reading PEM and JWKS files now, never later) and checks that every
    /// configured algorithm has a key of its kind.
    pub fn new(config: JwtConfig) -> Result<JwtValidator, JwtConfigError> {
        if config.algorithms.is_empty() {
            return Err(JwtConfigError::NoAlgorithms);
        }
        for (name, value) in [
            ("username", &config.username_claim),
            ("vhost", &config.vhost_claim),
            ("scope", &config.scope_claim),
        ] {
            if value.is_empty() {
                return Err(JwtConfigError::EmptyClaimName(name));
            }
        }
        let mut keys = Vec::new();
        for key in &config.keys {
            load_key(key, &mut keys)?;
        }
        for algorithm in &config.algorithms {
            if !keys.iter().any(|k| k.family == algorithm.family()) {
                return Err(JwtConfigError::NoKeyFor(*algorithm));
            }
        }
        Ok(JwtValidator { config, keys })
    }

    /// The configuration this validator was built from.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// Verifies `token` at time `now` and reads its identity.
    pub fn validate(&self, token: &str, now: SystemTime) -> Result<TokenIdentity, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed(format!(
                "longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        let algorithm = JwtAlgorithm::of(header.alg)
            .filter(|a| self.config.algorithms.contains(a))
            .ok_or_else(|| JwtError::AlgorithmNotAllowed(format!("{:?}", header.alg)))?;
        let claims = self.verify_signature(token, algorithm, header.kid.as_deref())?;
        self.check_claims(&claims, now)
    }

    /// Tries the candidate keys; returns the claims of the first that verifies.
    fn verify_signature(
        &self,
        token: &str,
        algorithm: JwtAlgorithm,
        kid: Option<&str>,
    ) -> Result<Map<String, Value>, JwtError> {
        if let Some(kid) = kid
            && !self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
        {
            return Err(JwtError::UnknownKid(kid.to_owned()));
        }
        let mut validation = Validation::new(algorithm.algorithm());
        // Time and audience are checked by `check_claims` against the caller's clock.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let candidates = self.keys.iter().filter(|k| {
            k.family == algorithm.family() && (kid.is_none() || k.kid.as_deref() == kid)
        });
        let mut tried = false;
        for candidate in candidates {
            tried = true;
            match jsonwebtoken::decode::<Map<String, Value>>(token, &candidate.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {}
                    jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                        return Err(JwtError::AlgorithmNotAllowed(format!("{algorithm:?}")));
                    }
                    _ => return Err(JwtError::Malformed(e.to_string())),
                },
            }
        }
        Err(if tried {
            JwtError::BadSignature
        } else {
            JwtError::NoKey
        })
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<TokenIdentity, JwtError> {
        let leeway = Duration::from_secs(self.config.leeway_secs);
        let expires_at = match claims.get("exp") {
            None if self.config.require_exp => return Err(JwtError::MissingExpiry),
            None => None,
            Some(value) => {
                let exp = numeric_date(value).ok_or_else(|| invalid("exp"))?;
                // An unrepresentably late exp never passes.
                if exp
                    .and_then(|t| t.checked_add(leeway))
                    .is_some_and(|t| now > t)
                {
                    return Err(JwtError::Expired);
                }
                exp
            }
        };
        if let Some(value) = claims.get("nbf") {
            let nbf = numeric_date(value).ok_or_else(|| invalid("nbf"))?;
            let now_with_leeway = now.checked_add(leeway).unwrap_or(now);
            if nbf.is_none_or(|t| now_with_leeway < t) {
                return Err(JwtError::NotYetValid);
            }
        }
        if let Some(issuer) = &self.config.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
        {
            return Err(JwtError::WrongIssuer);
        }
        let audience_ok = match (claims.get("aud"), &self.config.audience) {
            (None, None) => true,
            (Some(_), None) | (None, Some(_)) => false,
            (Some(Value::String(aud)), Some(expected)) => aud == expected,
            (Some(Value::Array(auds)), Some(expected)) => {
                auds.iter().any(|a| a.as_str() == Some(expected.as_str()))
            }
            (Some(_), Some(_)) => false,
        };
        if !audience_ok {
            return Err(JwtError::WrongAudience);
        }
        let username = match claims.get(&self.config.username_claim) {
            None => return Err(JwtError::MissingUsername),
            Some(Value::String(name)) if name.is_empty() => return Err(JwtError::MissingUsername),
            Some(Value::String(name)) => name.clone(),
            Some(_) => return Err(invalid(&self.config.username_claim)),
        };
        let vhost = match claims.get(&self.config.vhost_claim) {
            None | Some(Value::Null) => None,
            Some(Value::String(vhost)) => Some(vhost.clone()),
            Some(_) => return Err(invalid(&self.config.vhost_claim)),
        };
        let raw_scopes: Vec<&str> = match claims.get(&self.config.scope_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(text)) => text.split_whitespace().collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .ok_or_else(|| invalid(&self.config.scope_claim))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid(&self.config.scope_claim)),
        };
        let scopes = raw_scopes
            .into_iter()
            .filter_map(|s| s.strip_prefix(self.config.scope_prefix.as_str()))
            .map(str::to_owned)
            .collect();
        let mut identity = TokenIdentity {
            username,
            vhost,
            permissions: Permissions::default(),
            expires_at,
            scopes,
        };
        identity.permissions = identity.permissions_for(identity.vhost.as_deref().unwrap_or("/"));
        Ok(identity)
    }
}

fn invalid(claim: &str) -> JwtError {
    JwtError::InvalidClaim(claim.to_owned())
}

/// A JWT NumericDate: seconds since the epoch, integer or not. `None` inside = too late to
/// represent (treated as "never"); outer `None` = not a non-negative finite number.
fn numeric_date(value: &Value) -> Option<Option<SystemTime>> {
    let seconds = value.as_f64().filter(|s| s.is_finite() && *s >= 0.0)?;
    Some(
        Duration::try_from_secs_f64(seconds)
            .ok()
            .and_then(|d| UNIX_EPOCH.checked_add(d)),
    )
}

fn load_key(key: &JwtKey, out: &mut Vec<LoadedKey>) -> Result<(), JwtConfigError> {
    match key {
        JwtKey::Secret { secret, kid } => {
            let key = DecodingKey::from_secret(secret).map_err(|e| JwtConfigError::InvalidKey {
                what: "HMAC secret".to_owned(),
                reason: e.to_string(),
            })?;
            if secret.is_empty() {
                return Err(JwtConfigError::InvalidKey {
                    what: "HMAC secret".to_owned(),
                    reason: "empty".to_owned(),
                });
            }
            out.push(LoadedKey {
                kid: kid.clone(),
                family: AlgorithmFamily::Hmac,
                key,
            });
        }
        JwtKey::PemFile { path, kid } => {
            let pem = read(path)?;
            out.push(pem_key(pem.as_bytes(), kid, &path.display().to_string())?);
        }
        JwtKey::Pem { pem, kid } => out.push(pem_key(pem.as_bytes(), kid, "inline PEM")?),
        JwtKey::JwksFile { path } => jwks(&read(path)?, &path.display().to_string(), out)?,
        JwtKey::Jwks { json } => jwks(json, "inline JWKS", out)?,
    }
    Ok(())
}

fn read(path: &PathBuf) -> Result<String, JwtConfigError> {
    std::fs::read_to_string(path).map_err(|e| JwtConfigError::ReadKey {
        path: path.clone(),
        reason: e.to_string(),
    })
}

/// An RSA or EC public key in PEM.
fn pem_key(pem: &[u8], kid: &Option<String>, what: &str) -> Result<LoadedKey, JwtConfigError> {
    let (family, key) = match DecodingKey::from_rsa_pem(pem) {
        Ok(key) => (AlgorithmFamily::Rsa, key),
        Err(_) => match DecodingKey::from_ec_pem(pem) {
            Ok(key) => (AlgorithmFamily::Ec, key),
            Err(e) => {
                return Err(JwtConfigError::InvalidKey {
                    what: what.to_owned(),
                    reason: format!("not an RSA or EC public key in PEM: {e}"),
                });
            }
        },
    };
    Ok(LoadedKey {
        kid: kid.clone(),
        family,
        key,
    })
}

/// Every signing key of a JWKS document; encryption keys are skipped.
fn jwks(json: &str, what: &str, out: &mut Vec<LoadedKey>) -> Result<(), JwtConfigError> {
    let set: JwkSet = serde_json::from_str(json).map_err(|e| JwtConfigError::InvalidKey {
        what: what.to_owned(),
        reason: e.to_string(),
    })?;
    for (index, jwk) in set.keys.iter().enumerate() {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            continue;
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| JwtConfigError::InvalidKey {
            what: format!("{what} key #{index}"),
            reason: e.to_string(),
        })?;
        out.push(LoadedKey {
            kid: jwk.common.key_id.clone(),
            family: key.family(),
            key,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
