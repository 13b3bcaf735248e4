//! Wiring: builds the broker from resolved settings and the internal database
//! (`<data_dir>/definitions.json`, watched for changes), starts the MQTT listeners and the
//! management HTTP API, and runs until SIGTERM or Ctrl-C, then shuts down gracefully (stop
//! accepting, tell v5 clients 0x8B, flush, exit).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrymq_auth::{Authenticator, JwtValidator};
use ferrymq_broker::{AuthHook, Broker, Metrics};
use ferrymq_transport::tls::TlsReloader;
use ferrymq_transport::{MqttListenerOptions, bind_tcp, serve_mqtt, serve_ws};

use ferrymq_admin::ManagementConfig;
use ferrymq_admin::definitions::{self, Database, Watcher};

use crate::config::Settings;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let mut auth = Authenticator::new(settings.auth.clone()).context("invalid [auth] settings")?;
    if let Some(jwt) = &settings.jwt {
        let validator = JwtValidator::new(jwt.clone()).context("invalid [auth.jwt] settings")?;
        tracing::info!(algorithms = ?jwt.algorithms, keys = jwt.keys.len(), "JWT authentication on");
        auth = auth.with_jwt(validator);
    }
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            settings.data_dir.display()
        )
    })?;
    let database = Arc::new(Database::in_data_dir(&settings.data_dir));
    let (initial, stamp) = database
        .load_valid()
        .context("cannot load the access-control definitions")?;
    warn_about_undefined_vhosts(&settings, &initial);
    let broker = match &settings.auth_hook {
        Some(config) => {
            let hook = AuthHook::new(config.clone()).context("invalid [auth.http] settings")?;
            tracing::info!(url = config.display_url(), order = ?config.order, on_error = ?config.on_error, "HTTP authentication hook on");
            Broker::with_auth_hook(settings.broker, auth, hook)
        }
        None => Broker::new(settings.broker, auth),
    };
    broker.auth().replace_definitions(&initial);
    tracing::info!(
        file = %database.path().display(),
        users = initial.users.len(),
        vhosts = initial.vhosts.len(),
        permissions = initial.permissions.len(),
        "definitions loaded"
    );
    let watcher = Watcher::new(broker.clone(), database, initial, stamp);
    let live = Arc::clone(watcher.live());
    let watcher = watcher.spawn(definitions::POLL_INTERVAL, broker.shutdown_token().clone());

    let mut listeners = Vec::new();
    for addr in &settings.mqtt_listen {
        let listener =
            bind_tcp(*addr).with_context(|| format!("cannot listen for MQTT/TCP on {addr}"))?;
        let local = listener.local_addr().unwrap_or(*addr);
        tracing::info!(address = %local, proxy_protocol = settings.mqtt_proxy.proxy_protocol, "MQTT/TCP listener started");
        let options = MqttListenerOptions {
            proxy: settings.mqtt_proxy.clone(),
            tls: None,
            vhost: settings.mqtt_vhost.clone(),
            hibernate_after: settings.mqtt_hibernate_after,
        };
        listeners.push(tokio::spawn(serve_mqtt(listener, broker.clone(), options)));
    }
    for ws in &settings.websocket {
        let listener = bind_tcp(ws.address)
            .with_context(|| format!("cannot listen for MQTT/WebSocket on {}", ws.address))?;
        let local = listener.local_addr().unwrap_or(ws.address);
        tracing::info!(address = %local, paths = ?ws.config.paths, "MQTT/WebSocket listener started");
        listeners.push(tokio::spawn(serve_ws(
            listener,
            broker.clone(),
            ws.config.clone(),
            None,
        )));
    }
    let tls = match settings.tls.clone() {
        Some(tls) => Some(TlsReloader::load(tls).context("cannot load the TLS certificate")?),
        None => None,
    };
    if let Some(tls) = &tls {
        for addr in &settings.tls_listen {
            let listener =
                bind_tcp(*addr).with_context(|| format!("cannot listen for MQTT/TLS on {addr}"))?;
            let local = listener.local_addr().unwrap_or(*addr);
            tracing::info!(address = %local, "MQTT/TLS listener started");
            let options = MqttListenerOptions {
                proxy: settings.tls_proxy.clone(),
                tls: Some(tls.clone()),
                vhost: settings.tls_vhost.clone(),
                hibernate_after: None,
            };
            listeners.push(tokio::spawn(serve_mqtt(listener, broker.clone(), options)));
        }
        for ws in &settings.websocket_tls {
            let listener = bind_tcp(ws.address)
                .with_context(|| format!("cannot listen for MQTT/WSS on {}", ws.address))?;
            let local = listener.local_addr().unwrap_or(ws.address);
            tracing::info!(address = %local, paths = ?ws.config.paths, "MQTT/WSS listener started");
            listeners.push(tokio::spawn(serve_ws(
                listener,
                broker.clone(),
                ws.config.clone(),
                Some(tls.clone()),
            )));
        }
        tokio::spawn(tls.clone().watch(broker.shutdown_token().clone()));
        spawn_sighup_reload(tls.clone(), broker.shutdown_token().clone());
    }
    let mut management = Vec::new();
    if settings.management.enabled {
        let config = ManagementConfig {
            metrics_auth: settings.management.metrics_auth,
        };
        let router = ferrymq_admin::router(live, config);
        for addr in &settings.management.listen {
            let listener = bind_tcp(*addr)
                .with_context(|| format!("cannot listen for the management HTTP API on {addr}"))?;
            let local = listener.local_addr().unwrap_or(*addr);
            tracing::info!(address = %local, metrics_auth = settings.management.metrics_auth, "management HTTP API listener started (/api, /metrics)");
            let serve =
                ferrymq_admin::serve(listener, router.clone(), broker.shutdown_token().clone());
            management.push(tokio::spawn(async move {
                if let Err(error) = serve.await {
                    tracing::error!(address = %local, %error, "management HTTP API listener failed");
                }
            }));
        }
    }
    broker.spawn_sys_publisher();
    tracing::info!(data_dir = %settings.data_dir.display(), "FerryMQ is ready");

    wait_for_signal().await;
    tracing::info!("shutdown requested: closing listeners and connections");
    broker.begin_shutdown();
    for listener in listeners {
        let _ = listener.await;
    }
    let _ = watcher.await;
    let deadline = Instant::now() + settings.shutdown_grace;
    // Requests in progress may finish within the grace; a client that keeps one open longer
    // does not hold the shutdown up.
    for listener in management {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, listener).await;
    }
    while Metrics::get(&broker.metrics().connections_open) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = Metrics::get(&broker.metrics().connections_open);
    if left > 0 {
        tracing::warn!(
            connections = left,
            "shutdown grace elapsed with connections still open"
        );
    }
    tracing::info!("FerryMQ stopped");
    Ok(())
}

/// A listener whose default vhost the database does not define lets no client in without a
/// `vhost:` user name prefix (only `/` exists undefined): say so at start, not at the first
/// refused client. A vhost created later works at once.
fn warn_about_undefined_vhosts(settings: &Settings, definitions: &ferrymq_auth::Definitions) {
    let tls = settings.tls.is_some();
    let mut vhosts: Vec<(&str, &Arc<str>)> = Vec::new();
    vhosts.extend(settings.mqtt_vhost.iter().map(|v| ("mqtt.vhost", v)));
    let ws = settings.websocket.iter();
    let wss = settings.websocket_tls.iter().filter(|_| tls);
    vhosts.extend(
        ws.chain(wss)
            .filter_map(|l| l.config.vhost.as_ref())
            .map(|v| ("websocket", v)),
    );
    vhosts.extend(
        settings
            .tls_vhost
            .iter()
            .filter(|_| tls)
            .map(|v| ("tls.vhost", v)),
    );
    vhosts.dedup_by(|a, b| a.1 == b.1);
    for (listener, vhost) in vhosts {
        if definitions.vhost(vhost).is_none() {
            tracing::warn!(
                listener,
                vhost = %vhost,
                "a listener's default vhost is not defined (yet): create it with `ferrymq vhosts add`"
            );
        }
    }
}

/// SIGHUP reloads the TLS certificate (the usual signal after a certificate renewal).
fn spawn_sighup_reload(
    tls: std::sync::Arc<TlsReloader>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGHUP; TLS reload on change only");
                return;
            }
        };
        loop {
            tokio::select! {
                received = hangup.recv() => if received.is_none() { return },
                () = shutdown.cancelled() => return,
            }
            tls.reload_and_log("SIGHUP");
        }
    });
    #[cfg(not(unix))]
    let _ = (tls, shutdown);
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
