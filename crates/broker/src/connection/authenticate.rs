//! Who a CONNECT is: a token, the HTTP authentication hook, or the internal database, and
//! off the async workers when argon2 has to run.
//!
//! Order: a token in v5 Authentication Data, or a WebSocket cookie's token for a CONNECT
//! without password, is checked alone. Otherwise, when a hook is
//! configured and `ferrymq_auth` says it has a say (a user name and password login, not a
//! certificate or token login), the hook decides — with `order = internal_first` only for
//! users the internal database does not know. When the hook cannot answer, `on_error` either
//! refuses (`AuthFailure::Unavailable`) or lets the internal database decide. This module
//! decides nothing itself: the answers' meaning belongs to `ferrymq_auth`, the HTTP exchange
//! to `crate::auth_hook`.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use ferrymq_auth::hook::{HookRequest, HookVerdict};
use ferrymq_auth::{AuthFailure, AuthRequest, Authenticator, DEFAULT_VHOST, Identity};
use ferrymq_codec::Connect;

use super::Connection;
use super::reauth::JWT_METHOD;
use crate::auth_hook::{AuthHook, HookOnError, HookOrder};

impl Connection {
    /// Authenticates `connect` (see the module docs).
    pub(super) async fn authenticate(
        &mut self,
        connect: &Connect,
    ) -> Result<Identity, AuthFailure> {
        // Used once: nothing of the handshake is kept for the connection's life.
        let handshake = self
            .handshake_mut()
            .map(|h| std::mem::take(&mut h.credentials))
            .unwrap_or_default();
        let certificate_user = handshake.certificate_user;
        let listener_vhost = handshake.listener_vhost;
        // With the `JWT` method the token is the Authentication Data (on_connect checked
        // that JWT is on); a certificate still wins.
        let jwt_method = certificate_user.is_none()
            && connect.properties.authentication_method.as_deref() == Some(JWT_METHOD);
        // A cookie's token stands in for a missing password: credentials the client sends
        // on purpose beat the ones its browser adds.
        let cookie_token = handshake.cookie_token.filter(|_| {
            certificate_user.is_none()
                && !jwt_method
                && connect.password.is_none()
                && self.broker.auth.jwt_enabled()
        });
        if !jwt_method
            && cookie_token.is_none()
            && let Some(hook) = self.broker.auth_hook()
            // Boxed: only logins that reach the hook pay for the HTTP exchange's state.
            && let Some(decided) =
                Box::pin(self.ask_hook(hook, connect, &certificate_user, &listener_vhost)).await
        {
            return decided;
        }
        let token: Option<Bytes> = if jwt_method {
            Some(
                connect
                    .properties
                    .authentication_data
                    .clone()
                    .unwrap_or_default(),
            )
        } else {
            cookie_token.map(|cookie| {
                tracing::debug!(peer = %self.peer, "authenticating with the token cookie");
                Bytes::from(cookie)
            })
        };
        self.authenticate_internally(connect, token, certificate_user, listener_vhost)
            .await
    }

    /// The hook's decision, or `None` when the internal database decides: the hook has no
    /// say, the user is internal (`internal_first`), or the hook failed with
    /// `on_error = internal`.
    async fn ask_hook(
        &self,
        hook: &AuthHook,
        connect: &Connect,
        certificate_user: &Option<String>,
        listener_vhost: &Option<Arc<str>>,
    ) -> Option<Result<Identity, AuthFailure>> {
        let auth = &self.broker.auth;
        let listener_vhost = listener_vhost.as_deref();
        let request = AuthRequest {
            username: connect.username.as_deref(),
            password: connect.password.as_deref(),
            peer: self.peer.ip(),
            listener_vhost,
            certificate_user: certificate_user.as_deref(),
            now: SystemTime::now(),
        };
        let subject = auth.hook_subject(&request)?;
        if subject.known_internally && hook.config().order == HookOrder::InternalFirst {
            return None;
        }
        let question = HookRequest {
            username: subject.username,
            password: request.password,
            client_id: &connect.client_id,
            vhost: subject.vhost,
            listener_vhost: listener_vhost.filter(|vhost| *vhost != DEFAULT_VHOST),
            peer: self.peer(),
            protocol_version: connect.protocol.level(),
            transport: Some(self.transport.as_str()),
        };
        match hook.ask(&question, &self.broker.metrics).await {
            Ok(verdict) => Some(match &*verdict {
                HookVerdict::Allow(grant) => auth.identity_from_hook(&subject, grant),
                HookVerdict::Deny => Err(AuthFailure::BadCredentials),
            }),
            Err(failure) => {
                let on_error = hook.config().on_error;
                tracing::warn!(peer = %self.peer, user = subject.username, error = %failure, ?on_error, "authentication hook failed");
                match on_error {
                    HookOnError::Deny => Some(Err(AuthFailure::Unavailable)),
                    HookOnError::Internal => None,
                }
            }
        }
    }

    /// The internal database's (or the token's) decision.
    async fn authenticate_internally(
        &self,
        connect: &Connect,
        token: Option<Bytes>,
        certificate_user: Option<String>,
        listener_vhost: Option<Arc<str>>,
    ) -> Result<Identity, AuthFailure> {
        let username = connect.username.clone().filter(|u| !u.is_empty());
        let password: Option<Bytes> = connect.password.clone();
        let cheap = certificate_user.is_some()
            || token.is_some()
            || self
                .broker
                .auth
                .is_cheap(connect.username.as_deref(), connect.password.as_deref());
        let ip = self.peer.ip();
        let decide = move |auth: &Authenticator| {
            let request = AuthRequest {
                username: username.as_deref(),
                password: password.as_deref(),
                peer: ip,
                listener_vhost: listener_vhost.as_deref(),
                certificate_user: certificate_user.as_deref(),
                now: SystemTime::now(),
            };
            match &token {
                Some(token) => auth.authenticate_token(&request, token),
                None => auth.authenticate_request(&request),
            }
        };
        self.broker.decide_login(cheap, decide).await
    }
}
