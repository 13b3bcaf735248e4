//! [`Caller`]: who sent a request (HTTP Basic, checked like an MQTT login) and what their
//! tags let them do.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ferrymq_auth::{AuthFailure, ManagementLogin, Tag};
use ferrymq_broker::LoginError;

use super::error::ApiError;
use crate::State;

/// What a user's tags allow on the API, from most to least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    /// `management` or `policymaker`: read the vhosts the user has permissions in.
    Management,
    /// `monitoring`: read everything.
    Monitoring,
    /// `administrator`: everything.
    Administrator,
}

impl Role {
    /// The strongest role the tags grant; `None` without a management tag.
    fn of(tags: &[Tag]) -> Option<Role> {
        tags.iter()
            .filter_map(|tag| match tag {
                Tag::Administrator => Some(Role::Administrator),
                Tag::Monitoring => Some(Role::Monitoring),
                Tag::Management | Tag::Policymaker => Some(Role::Management),
                Tag::Custom(_) => None,
            })
            .max()
    }
}

/// An authenticated user with a management tag. As an extractor it answers 401 (missing or
/// wrong credentials), 429 (throttled address) or 403 (no management tag) by itself.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) login: ManagementLogin,
    pub(crate) role: Role,
    state: State,
}

impl FromRequestParts<State> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Caller, ApiError> {
        let login = authenticate(parts, state).await?;
        Caller::from_login(login, state)
    }
}

impl Caller {
    /// The caller a successful login makes: 403 without a management tag.
    pub(crate) fn from_login(login: ManagementLogin, state: &State) -> Result<Caller, ApiError> {
        let Some(role) = Role::of(&login.tags) else {
            return Err(ApiError::forbidden(format!(
                "user {:?} has no management tag (administrator, monitoring or management)",
                &*login.username
            )));
        };
        Ok(Caller {
            login,
            role,
            state: Arc::clone(state),
        })
    }

    /// 403 unless the user is an administrator.
    pub(crate) fn require_administrator(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Administrator => Ok(()),
            _ => Err(ApiError::forbidden(
                "this needs the administrator tag (monitoring and management users may only read)",
            )),
        }
    }

    /// True for administrators and monitoring users, who may read everything.
    pub(crate) fn reads_everything(&self) -> bool {
        self.role >= Role::Monitoring
    }

    /// 403 unless the user may read everything.
    pub(crate) fn require_reads_everything(&self) -> Result<(), ApiError> {
        if self.reads_everything() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this needs the administrator or monitoring tag",
            ))
        }
    }

    /// Whether the user may see `vhost`: everything for administrators and monitoring
    /// users, the vhosts they have permissions in for management users.
    pub(crate) fn may_read_vhost(&self, vhost: &str) -> bool {
        self.reads_everything()
            || self
                .state
                .broker
                .auth()
                .may_access_vhost(&self.login.username, vhost)
    }

    /// 403 unless [`Caller::may_read_vhost`].
    pub(crate) fn require_vhost(&self, vhost: &str) -> Result<(), ApiError> {
        if self.may_read_vhost(vhost) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "user {:?} has no access to vhost {vhost:?}",
                &*self.login.username
            )))
        }
    }
}

/// Checks the request's HTTP Basic credentials through [`ferrymq_broker::Broker::login`]:
/// the address's failed logins are throttled, argon2 runs on the blocking pool unless the
/// password verified before (the authenticator's keyed digest cache: no password is kept).
pub(crate) async fn authenticate(
    parts: &Parts,
    state: &State,
) -> Result<ManagementLogin, ApiError> {
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    let Some((username, password)) = basic_credentials(parts) else {
        return Err(ApiError::unauthorized(
            "log in with HTTP Basic authentication",
        ));
    };
    let cheap = state
        .broker
        .auth()
        .password_check_is_cheap(&username, Some(password.as_bytes()));
    let user = username.clone();
    let decide = move |auth: &ferrymq_auth::Authenticator| {
        auth.authenticate_management(&user, password.as_bytes(), ip)
    };
    match state.broker.login(ip, cheap, decide).await {
        Ok(login) => Ok(login),
        Err(LoginError::Throttled { retry_after }) => {
            tracing::warn!(peer = %ip, "management API: refusing login: too many failed logins from this address");
            Err(ApiError::throttled(retry_after))
        }
        Err(LoginError::Refused(failure)) => {
            tracing::info!(peer = %ip, username = %username, %failure, "management API: login refused");
            let reason = match failure {
                AuthFailure::BadCredentials => "bad user name or password",
                _ => "login refused",
            };
            Err(ApiError::unauthorized(reason))
        }
    }
}

/// `Authorization: Basic base64(user:password)`; `None` when absent or malformed.
fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    // The user name cannot contain ':'; the password may (RFC 7617).
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(authorization: &str) -> Parts {
        let request = axum::http::Request::builder()
            .header(header::AUTHORIZATION, authorization)
            .body(())
            .unwrap();
        request.into_parts().0
    }

    #[test]
    fn basic_credentials_are_parsed_and_malformed_ones_ignored() {
        let encoded = BASE64.encode("alice:pa:ss");
        assert_eq!(
            basic_credentials(&parts(&format!("Basic {encoded}"))),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(
            basic_credentials(&parts(&format!("basic  {encoded}"))),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials(&parts("Bearer abc")), None);
        assert_eq!(basic_credentials(&parts("Basic !!!")), None);
        assert_eq!(
            basic_credentials(&parts(&format!("Basic {}", BASE64.encode("nocolon")))),
            None
        );
    }

    #[test]
    fn the_strongest_tag_wins_and_custom_tags_grant_nothing() {
        assert_eq!(Role::of(&[]), None);
        assert_eq!(Role::of(&[Tag::Custom("ops".into())]), None);
        assert_eq!(Role::of(&[Tag::Policymaker]), Some(Role::Management));
        assert_eq!(
            Role::of(&[Tag::Management, Tag::Administrator]),
            Some(Role::Administrator)
        );
        assert_eq!(
            Role::of(&[Tag::Monitoring, Tag::Management]),
            Some(Role::Monitoring)
        );
    }
}
