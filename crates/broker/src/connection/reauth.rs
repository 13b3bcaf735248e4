//! MQTT 5 re-authentication with a fresh JWT (AUTH reason 0x19), and the token expiry that
//! makes it necessary.
//!
//! A client that connected with Authentication Method `JWT` (exact spelling, as the
//! specification compares methods as strings) may send AUTH 0x19 with the same method and a
//! new token as Authentication Data before its token expires. One round trip: a good token
//! for the same user and vhost replaces the connection's permissions and expiry and is
//! answered with AUTH 0x00; anything else ends the connection. This module only decides and
//! answers; the token checks belong to `ferrymq_auth`.

use std::time::{Instant, SystemTime};

use ferrymq_codec::{Auth, AuthProperties, Packet, ReasonCode};

use super::{Closed, Connection};
use crate::metrics::Metrics;
use crate::permission_cache::PermissionCache;

/// The one enhanced-authentication method FerryMQ offers.
pub(super) const JWT_METHOD: &str = "JWT";

/// The monotonic instant of a wall-clock expiry (now, when it is already past); `None` when
/// it is too far ahead to represent, which is "never" for a connection.
pub(super) fn deadline_of(expires_at: SystemTime) -> Option<Instant> {
    let left = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Instant::now().checked_add(left)
}

impl Connection {
    /// AUTH from an established client: re-authentication, or a protocol error.
    pub(super) fn on_auth(&mut self, auth: Auth) -> Result<(), Closed> {
        let Some(e) = self.established.as_ref() else {
            return Err(Closed);
        };
        if !e.jwt_method {
            return Err(self.violation(
                ReasonCode::ProtocolError,
                "AUTH without an authentication method [MQTT-4.12.0-1]",
            ));
        }
        if auth.reason_code != ReasonCode::ReAuthenticate {
            return Err(self.violation(
                ReasonCode::ProtocolError,
                "AUTH other than Re-authenticate with no exchange in progress",
            ));
        }
        if auth.properties.authentication_method.as_deref() != Some(JWT_METHOD) {
            return Err(self.violation(
                ReasonCode::BadAuthenticationMethod,
                "re-authentication with another method [MQTT-4.12.1-1]",
            ));
        }
        let token = auth.properties.authentication_data.unwrap_or_default();
        let verdict = self
            .broker
            .auth
            .reauthenticate_token(&e.identity, &token, SystemTime::now());
        let identity = match verdict {
            Ok(identity) => identity,
            Err(failure) => {
                Metrics::inc(&self.broker.metrics.auth_failures);
                tracing::info!(peer = %self.peer, client_id = %self.client_id(), %failure, "closing connection: re-authentication refused");
                return Err(self.disconnect(ReasonCode::NotAuthorized));
            }
        };
        let permissions = PermissionCache::new(
            &identity.permissions,
            &identity.username,
            &e.session.client_id,
            &identity.vhost,
        );
        let session = e.session.clone();
        // The new token may grant less: subscriptions it does not allow stop delivering.
        self.revoke_disallowed_subscriptions(&session, &permissions);
        if let Some(e) = self.established.as_mut() {
            e.token_deadline = identity.expires_at.and_then(deadline_of);
            e.identity
                .replace_identity(self.broker.identities.share(identity));
            e.permissions = permissions;
        }
        tracing::info!(peer = %self.peer, client_id = %session.client_id, "client re-authenticated");
        self.send(&Packet::Auth(Box::new(Auth {
            reason_code: ReasonCode::Success,
            properties: AuthProperties {
                authentication_method: Some(JWT_METHOD.to_owned()),
                ..AuthProperties::default()
            },
        })));
        Ok(())
    }
}
