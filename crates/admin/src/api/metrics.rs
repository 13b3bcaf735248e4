//! `GET /metrics`: the broker's counters in the Prometheus text exposition format (0.0.4),
//! written by hand from [`Metrics::descriptions`]: a few dozen lines do not justify a metrics
//! library. Names are `ferrymq_<counter>`, counters with Prometheus' `_total` suffix, plus
//! per-vhost gauges labelled `vhost`. No login unless `management.metrics_auth` is on.

use std::fmt::Write as _;

use axum::extract::{Request, State as Extract};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ferrymq_broker::{Broker, MetricKind, Metrics};

use super::caller::{Caller, authenticate};
use super::error::ApiError;
use crate::State;

/// The content type of the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub(crate) async fn metrics(
    Extract(state): Extract<State>,
    request: Request,
) -> Result<Response, ApiError> {
    if state.config.metrics_auth {
        let (parts, _) = request.into_parts();
        let login = authenticate(&parts, &state).await?;
        let caller = Caller::from_login(login, &state)?;
        caller.require_reads_everything()?;
    }
    let uptime = state.started.elapsed().as_secs_f64();
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        exposition(&state.broker, uptime),
    )
        .into_response())
}

/// The whole exposition text.
pub(crate) fn exposition(broker: &Broker, uptime_secs: f64) -> String {
    let mut out = String::with_capacity(4096);
    let values = broker.metrics().snapshot();
    for (description, (_, value)) in Metrics::descriptions().iter().zip(values) {
        let (kind, suffix) = match description.kind {
            MetricKind::Counter => ("counter", "_total"),
            MetricKind::Gauge => ("gauge", ""),
        };
        let name = format!("ferrymq_{}{suffix}", description.name);
        header(&mut out, &name, description.help.trim(), kind);
        let _ = writeln!(out, "{name} {value}");
    }
    header(
        &mut out,
        "ferrymq_uptime_seconds",
        "Seconds since the broker started.",
        "gauge",
    );
    let _ = writeln!(out, "ferrymq_uptime_seconds {uptime_secs:.3}");
    header(
        &mut out,
        "ferrymq_build_info",
        "The FerryMQ version, as a label; the value is always 1.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "ferrymq_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let mut vhosts = broker.vhosts();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    header(
        &mut out,
        "ferrymq_vhost_connections",
        "Clients connected, per vhost.",
        "gauge",
    );
    for vhost in &vhosts {
        let _ = writeln!(
            out,
            "ferrymq_vhost_connections{{vhost=\"{}\"}} {}",
            label(&vhost.name),
            vhost.connected_count()
        );
    }
    header(
        &mut out,
        "ferrymq_vhost_sessions",
        "Sessions (connected or persistent), per vhost.",
        "gauge",
    );
    for vhost in &vhosts {
        let _ = writeln!(
            out,
            "ferrymq_vhost_sessions{{vhost=\"{}\"}} {}",
            label(&vhost.name),
            vhost.session_count()
        );
    }
    out
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped as the text format says: backslash, double quote, line feed.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrymq_auth::{AuthConfig, Authenticator};
    use ferrymq_broker::BrokerConfig;

    #[test]
    fn every_counter_has_help_type_and_a_value() {
        let broker = Broker::new(
            BrokerConfig::default(),
            Authenticator::new(AuthConfig::default()).unwrap(),
        );
        Metrics::add(&broker.metrics().messages_received, 3);
        broker.ensure_vhost("a\"b");
        let text = exposition(&broker, 1.5);
        assert!(text.contains("# TYPE ferrymq_messages_received_total counter\nferrymq_messages_received_total 3\n"), "{text}");
        assert!(
            text.contains("# TYPE ferrymq_connections_open gauge\nferrymq_connections_open 0\n")
        );
        assert!(text.contains(
            "# HELP ferrymq_messages_received_total PUBLISH packets received from clients.\n"
        ));
        assert!(text.contains("ferrymq_vhost_sessions{vhost=\"a\\\"b\"} 0\n"));
        assert!(text.contains("ferrymq_uptime_seconds 1.500\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("ferrymq_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        let described = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(described, Metrics::descriptions().len() + 4);
    }
}
