//! Wiring: builds the broker from resolved settings, starts the listeners, and runs until
//! SIGTERM or Ctrl-C, then shuts down gracefully (stop accepting, tell v5 clients 0x8B,
//! flush, exit).

use std::time::{Duration, Instant};

use anyhow::Context;
use ferrymq_auth::Authenticator;
use ferrymq_broker::{Broker, Metrics};
use ferrymq_transport::{bind_tcp, serve_tcp};

use crate::config::Settings;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let auth = Authenticator::new(settings.auth).context("invalid [auth] settings")?;
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            settings.data_dir.display()
        )
    })?;
    let broker = Broker::new(settings.broker, auth);

    let mut listeners = Vec::new();
    for addr in &settings.mqtt_listen {
        let listener =
            bind_tcp(*addr).with_context(|| format!("cannot listen for MQTT/TCP on {addr}"))?;
        let local = listener.local_addr().unwrap_or(*addr);
        tracing::info!(address = %local, "MQTT/TCP listener started");
        listeners.push(tokio::spawn(serve_tcp(listener, broker.clone())));
    }
    broker.spawn_sys_publisher();
    tracing::info!(data_dir = %settings.data_dir.display(), "FerryMQ is ready");

    wait_for_signal().await;
    tracing::info!("shutdown requested: closing listeners and connections");
    broker.begin_shutdown();
    for listener in listeners {
        let _ = listener.await;
    }
    let deadline = Instant::now() + settings.shutdown_grace;
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
