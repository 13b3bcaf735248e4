//! CONNECT: the checks before authentication, authentication (`authenticate.rs`), the
//! user's and vhost's connection limits, attaching to the session, CONNACK. Runs once per
//! connection, boxed by the caller so that its state does not size every connection's task.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ferrymq_auth::AuthFailure;
use ferrymq_codec::{
    ConnAck, ConnAckProperties, Connect, Packet, ProtocolVersion, QoS, ReasonCode,
};
use ferrymq_session::ConnectionState;
use ferrymq_topic::validate_topic_name;

use super::reauth::{JWT_METHOD, deadline_of};
use super::{Closed, Connection, Established};
use crate::clients::Attachment;
use crate::login::LoginError;
use crate::metrics::Metrics;
use crate::permission_cache::PermissionCache;

impl Connection {
    pub(super) async fn on_connect(&mut self, connect: Connect) -> Result<(), Closed> {
        let protocol = connect.protocol;
        self.protocol = Some(protocol);
        let broker = Arc::clone(&self.broker);
        let limits = &broker.config.limits;
        let mqtt = &broker.config.mqtt;
        let v5 = protocol.is_v5();

        // The only method offered is `JWT` (the token in Authentication Data, one round
        // trip), and only when JWT is configured.
        let jwt_method =
            v5 && connect.properties.authentication_method.as_deref() == Some(JWT_METHOD);
        if v5
            && connect.properties.authentication_method.is_some()
            && !(jwt_method && broker.auth.jwt_enabled())
        {
            tracing::info!(peer = %self.peer, "refusing CONNECT: unsupported authentication method");
            return Err(self.refuse(ReasonCode::BadAuthenticationMethod));
        }
        let assigned = connect.client_id.is_empty();
        if assigned && protocol == ProtocolVersion::V3_1 {
            // MQTT 3.1 requires 1 to 23 characters; assigned ids came with 3.1.1.
            return Err(self.refuse(ReasonCode::ClientIdentifierNotValid));
        }
        if assigned && !v5 && !connect.clean_start {
            // A server-assigned id cannot resume anything [MQTT-3.1.3-8].
            return Err(self.refuse(ReasonCode::ClientIdentifierNotValid));
        }
        if connect.client_id.len() > limits.max_client_id_length {
            tracing::info!(peer = %self.peer, "refusing CONNECT: client id longer than max_client_id_length");
            return Err(self.refuse(ReasonCode::ClientIdentifierNotValid));
        }
        if let Some(will) = &connect.will {
            if validate_topic_name(&will.topic, &broker.topic_limits).is_err() {
                Metrics::inc(&broker.metrics.topics_invalid);
                return Err(self.refuse(ReasonCode::TopicNameInvalid));
            }
            if let Some(response) = &will.properties.response_topic
                && validate_topic_name(response, &broker.topic_limits).is_err()
            {
                // [MQTT-3.1.3-?]: the Response Topic must be a valid topic name.
                return Err(self.refuse(ReasonCode::ProtocolError));
            }
            if will.qos > mqtt.maximum_qos {
                return Err(self.refuse(ReasonCode::QoSNotSupported));
            }
            if will.retain && !mqtt.retain_available {
                return Err(self.refuse(ReasonCode::RetainNotSupported));
            }
        }

        let auth_generation = broker.auth.generation();
        if let Err(LoginError::Throttled { retry_after }) =
            broker.check_login_throttle(self.peer.ip())
        {
            tracing::warn!(peer = %self.peer, retry_after_secs = retry_after.as_secs(), "refusing CONNECT: too many failed logins from this address");
            // v5 can say why; v3's closest code is "server unavailable".
            return Err(self.refuse(ReasonCode::ConnectionRateExceeded));
        }
        let verdict = self.authenticate(&connect).await;
        broker.record_login(self.peer.ip(), verdict.as_ref().err().copied());
        let identity = match verdict {
            Ok(identity) => broker.identities.share(identity),
            Err(AuthFailure::Unavailable) => {
                // Nobody's fault but the hook's: not a failed login, not throttled. v5 0x88 and
                // v3 3 both say "try again later".
                tracing::info!(peer = %self.peer, username = connect.username.as_deref().unwrap_or(""), "refusing CONNECT: the authentication hook is unavailable");
                return Err(self.refuse(ReasonCode::ServerUnavailable));
            }
            Err(failure) => {
                tracing::info!(peer = %self.peer, username = connect.username.as_deref().unwrap_or(""), %failure, "refusing CONNECT");
                let reason = match failure {
                    AuthFailure::BadCredentials => ReasonCode::BadUserNameOrPassword,
                    AuthFailure::AnonymousNotAllowed | AuthFailure::VhostNotAllowed => {
                        ReasonCode::NotAuthorized
                    }
                    AuthFailure::Unavailable => ReasonCode::ServerUnavailable,
                };
                return Err(self.refuse(reason));
            }
        };
        let (user_limit, vhost_limit) = broker.auth.connection_limits(&identity);
        let limit_slot = match broker
            .connection_counts
            .acquire(&identity, user_limit, vhost_limit)
        {
            Ok(slot) => slot,
            Err(which) => {
                Metrics::inc(&broker.metrics.connections_refused_user_or_vhost_limit);
                tracing::info!(peer = %self.peer, user = %identity.username, vhost = %identity.vhost, limit = ?which, "refusing CONNECT: max_connections reached");
                return Err(self.refuse(ReasonCode::QuotaExceeded));
            }
        };

        let client_id: Arc<str> = match assigned {
            true => Arc::from(format!("ferrymq-{:016x}", self.id ^ random_salt())),
            false => Arc::from(connect.client_id.as_str()),
        };
        let mut permissions = PermissionCache::new(
            &identity.permissions,
            &identity.username,
            &client_id,
            &identity.vhost,
        );
        if let Some(will) = &connect.will
            && !permissions.may_publish(&will.topic)
        {
            tracing::info!(peer = %self.peer, username = %identity.username, topic = %will.topic, "refusing CONNECT: will topic not allowed");
            return Err(self.refuse(ReasonCode::NotAuthorized));
        }
        let requested_expiry = match protocol {
            ProtocolVersion::V5 => connect.properties.session_expiry_interval.unwrap_or(0),
            _ if connect.clean_start => 0,
            _ => mqtt.max_session_expiry,
        };
        let expiry = requested_expiry.min(mqtt.max_session_expiry);

        let now = Instant::now();
        let vhost = broker.ensure_vhost(&identity.vhost);
        let attached = broker.attach(&vhost, &client_id, self.id, connect.clean_start, now);
        let mut state = ConnectionState::new(protocol, now);
        state.set_keep_alive(connect.keep_alive);
        let mut server_keep_alive = None;
        if v5
            && let Some(server) = mqtt.server_keep_alive
            && (connect.keep_alive == 0 || connect.keep_alive > server)
        {
            state.set_keep_alive(server);
            server_keep_alive = Some(server);
        }
        if v5 {
            let props = &connect.properties;
            state.client_receive_maximum = props.receive_maximum.unwrap_or(u16::MAX);
            state.client_maximum_packet_size = props.maximum_packet_size.unwrap_or(u32::MAX);
            state.client_topic_alias_maximum = props.topic_alias_maximum.unwrap_or(0);
            state.server_topic_alias_maximum = limits.topic_alias_maximum;
            state.request_problem_information = props.request_problem_information.unwrap_or(true);
        }
        {
            let mut inner = attached.session.lock();
            inner.set_client(
                self.id,
                Attachment::new(
                    Arc::clone(&identity),
                    self.peer(),
                    state.keep_alive(),
                    protocol,
                    self.transport,
                ),
            );
            inner.state.expiry_interval = expiry;
            // The will's payload points into the read buffer the CONNECT came in: copy it,
            // so a stored will does not keep that whole buffer alive for the session's life.
            inner.state.will = connect.will.map(|mut will| {
                will.payload = Bytes::copy_from_slice(&will.payload);
                Box::new(will)
            });
        }
        self.decoder.set_max_packet_size(limits.max_packet_size);

        let properties = match v5 {
            false => ConnAckProperties::default(),
            true => ConnAckProperties {
                session_expiry_interval: (expiry != requested_expiry).then_some(expiry),
                receive_maximum: Some(limits.max_inflight),
                maximum_qos: (mqtt.maximum_qos < QoS::ExactlyOnce).then_some(mqtt.maximum_qos),
                retain_available: (!mqtt.retain_available).then_some(false),
                maximum_packet_size: Some(limits.max_packet_size),
                assigned_client_identifier: assigned.then(|| client_id.to_string()),
                topic_alias_maximum: (limits.topic_alias_maximum > 0)
                    .then_some(limits.topic_alias_maximum),
                shared_subscription_available: (!mqtt.shared_subscriptions_available)
                    .then_some(false),
                server_keep_alive,
                authentication_method: jwt_method.then(|| JWT_METHOD.to_owned()),
                ..ConnAckProperties::default()
            },
        };
        self.send(&Packet::ConnAck(Box::new(ConnAck {
            session_present: attached.session_present,
            reason_code: ReasonCode::Success,
            properties,
        })));
        tracing::info!(
            peer = %self.peer,
            client_id = %client_id,
            protocol = protocol.level(),
            clean_start = connect.clean_start,
            session_present = attached.session_present,
            keep_alive = connect.keep_alive,
            "client connected"
        );
        let token_deadline = identity.expires_at.and_then(deadline_of);
        if attached.session_present {
            // The session's subscriptions were granted under rights that may have changed.
            self.revoke_disallowed_subscriptions(&attached.session, &permissions);
        }
        self.established = Some(Established {
            session: attached.session,
            state,
            identity: limit_slot,
            permissions,
            auth_generation,
            connect_expiry: expiry,
            token_deadline,
            jwt_method,
        });
        // The CONNECT deadline and the credentials: no longer needed.
        self.aside = None;
        if let Some(e) = &mut self.established {
            let mut resent = Vec::new();
            {
                let mut inner = e.session.lock();
                let dropped = inner.state.resend_inflight(&mut e.state, now, &mut resent);
                Metrics::add(
                    &self.broker.metrics.messages_dropped_too_large,
                    dropped.too_large as u64,
                );
            }
            for packet in &resent {
                self.send(packet);
            }
        }
        Ok(())
    }
}

/// Per-process salt for assigned client ids, so ids differ between broker runs.
fn random_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write(b"ferrymq");
        hasher.finish()
    })
}
