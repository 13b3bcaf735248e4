//! [`TestBroker`]: a FerryMQ broker running inside the test's own tokio runtime, listening on
//! an ephemeral loopback port through the real TCP transport (`ferrymq_transport`), so tests
//! exercise exactly the code path of the `ferrymq` binary minus the CLI.
//!
//! This module owns broker start-up and shutdown for tests; it knows no MQTT.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrymq_auth::{AuthConfig, Authenticator, JwtConfig, JwtValidator};
use ferrymq_broker::{
    AuthHook, AuthHookConfig, Broker, BrokerConfig, Connection, Limits, Metrics, MqttSettings,
};
use ferrymq_transport::driver::run_connection;
use ferrymq_transport::{MqttListenerOptions, bind_tcp, serve_mqtt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Settings of a [`TestBroker`] before it starts. Defaults: the broker's own defaults, no
/// configured users (so the built-in `guest`/`guest`, loopback only, exists) and anonymous
/// access refused.
#[derive(Debug, Clone, Default)]
pub struct TestBrokerBuilder {
    config: BrokerConfig,
    auth: AuthConfig,
    jwt: Option<JwtConfig>,
    auth_hook: Option<AuthHookConfig>,
    listener: MqttListenerOptions,
    keep_alive_grace: Option<f32>,
}

impl TestBrokerBuilder {
    /// Replaces the whole broker configuration.
    pub fn config(mut self, config: BrokerConfig) -> Self {
        self.config = config;
        self
    }

    /// Adjusts the limits, e.g. `.limits(|l| l.max_packet_size = 1024)`.
    pub fn limits(mut self, f: impl FnOnce(&mut Limits)) -> Self {
        f(&mut self.config.limits);
        self
    }

    /// Adjusts the protocol settings, e.g. `.mqtt(|m| m.connect_timeout = secs(1))`.
    pub fn mqtt(mut self, f: impl FnOnce(&mut MqttSettings)) -> Self {
        f(&mut self.config.mqtt);
        self
    }

    /// Replaces the authentication configuration.
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }

    /// Turns JWT authentication on (`Authenticator::with_jwt`).
    pub fn jwt(mut self, jwt: JwtConfig) -> Self {
        self.jwt = Some(jwt);
        self
    }

    /// Turns the HTTP authentication hook on (`Broker::with_auth_hook`).
    pub fn auth_hook(mut self, hook: AuthHookConfig) -> Self {
        self.auth_hook = Some(hook);
        self
    }

    /// Serves the listener with these options (PROXY protocol, the listener's default
    /// vhost) as the binary's MQTT/TCP listeners do. Ignored with
    /// [`TestBrokerBuilder::connection_keep_alive_grace`].
    pub fn listener(mut self, options: MqttListenerOptions) -> Self {
        self.listener = options;
        self
    }

    /// Lets connections quiet for `after` sleep without a task (`mqtt.hibernate_after_secs`
    /// of the binary, whose default is 5 s). Off unless set here or by the environment
    /// variable `FERRYMQ_TEST_HIBERNATE_MS`, which turns it on for every test broker: run
    /// the suite with `FERRYMQ_TEST_HIBERNATE_MS=1` to see every behaviour hold while
    /// connections fall asleep at every pause.
    pub fn hibernate_after(mut self, after: Duration) -> Self {
        self.listener.hibernate_after = Some(after);
        self
    }

    /// Lets clients without a username in (as user `anonymous`).
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.auth.allow_anonymous = allow;
        self
    }

    /// Serves every connection with this per-connection keep-alive grace factor
    /// (`Connection::with_keep_alive_grace`), as the WebSocket listener does, through a
    /// plain-TCP accept loop of this crate instead of `serve_tcp`.
    pub fn connection_keep_alive_grace(mut self, grace: f32) -> Self {
        self.keep_alive_grace = Some(grace);
        self
    }

    /// Starts the broker on `127.0.0.1:0` on the current tokio runtime.
    pub async fn try_start(self) -> io::Result<TestBroker> {
        let mut auth = Authenticator::new(self.auth)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        if let Some(jwt) = self.jwt {
            let validator = JwtValidator::new(jwt)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
            auth = auth.with_jwt(validator);
        }
        let broker = match self.auth_hook {
            Some(hook) => {
                let hook = AuthHook::new(hook)
                    .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
                Broker::with_auth_hook(self.config, auth, hook)
            }
            None => Broker::new(self.config, auth),
        };
        let mut options = self.listener;
        if options.hibernate_after.is_none()
            && let Ok(ms) = std::env::var("FERRYMQ_TEST_HIBERNATE_MS")
        {
            let ms = ms.parse().map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("FERRYMQ_TEST_HIBERNATE_MS: {error}"),
                )
            })?;
            options.hibernate_after = Some(Duration::from_millis(ms));
        }
        let listener = bind_tcp(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let accept = match self.keep_alive_grace {
            None => tokio::spawn(serve_mqtt(listener, Arc::clone(&broker), options)),
            Some(grace) => tokio::spawn(serve_with_grace(listener, Arc::clone(&broker), grace)),
        };
        Ok(TestBroker {
            broker,
            addr,
            accept: Some(accept),
        })
    }

    /// Starts the broker; panics if it cannot (an invalid auth configuration, no free port).
    pub async fn start(self) -> TestBroker {
        match self.try_start().await {
            Ok(broker) => broker,
            Err(error) => panic!("cannot start the test broker: {error}"),
        }
    }
}

/// A minimal accept loop (connection slot, then the transport's connection driver) whose
/// connections carry a keep-alive grace override.
async fn serve_with_grace(listener: TcpListener, broker: Arc<Broker>, grace: f32) {
    let shutdown = broker.shutdown_token().clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        let Some(permit) = broker.try_open_connection() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection::new(Arc::clone(&broker), peer, permit).with_keep_alive_grace(grace);
        tokio::spawn(run_connection(stream, conn));
    }
}

/// A running in-process broker. Dropping it starts the broker's graceful shutdown and stops
/// accepting; [`TestBroker::shutdown`] also waits for the connections to close.
#[derive(Debug)]
pub struct TestBroker {
    broker: Arc<Broker>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl TestBroker {
    /// A builder for a broker with non-default settings.
    pub fn builder() -> TestBrokerBuilder {
        TestBrokerBuilder::default()
    }

    /// A broker with the default settings (see [`TestBrokerBuilder`]); panics if it cannot
    /// start.
    pub async fn start() -> TestBroker {
        TestBrokerBuilder::default().start().await
    }

    /// The address the broker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker itself: metrics, configuration, `begin_shutdown`.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The broker's counters.
    pub fn metrics(&self) -> &Metrics {
        self.broker.metrics()
    }

    /// One counter by its metric name (see [`Metrics::snapshot`]); panics on an unknown name
    /// so that a typo cannot make an assertion vacuous.
    pub fn metric(&self, name: &str) -> u64 {
        self.metrics()
            .snapshot()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value)
            .unwrap_or_else(|| panic!("no broker metric named {name:?}"))
    }

    /// Waits (up to `timeout`) until `condition` holds on the metrics; returns whether it did.
    /// For effects that happen after the last packet a client can observe, such as a
    /// connection slot being released.
    pub async fn wait_for(&self, timeout: Duration, condition: impl Fn(&Metrics) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(self.metrics()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Graceful shutdown as the binary does it: stop accepting, tell v5 clients DISCONNECT
    /// 0x8B, then wait (at most 5 s) for every connection to close.
    pub async fn shutdown(mut self) {
        self.broker.begin_shutdown();
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
        let open = |m: &Metrics| Metrics::get(&m.connections_open) == 0;
        self.wait_for(Duration::from_secs(5), open).await;
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.broker.begin_shutdown();
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }
}
