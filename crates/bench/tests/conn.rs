//! `ferrymq bench conn` against an in-process FerryMQ broker (testkit), over TCP and over
//! WebSocket: every connection is opened, held and closed without an error.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use ferrymq_bench::Summary;
use ferrymq_testkit::TestBroker;
use ferrymq_transport::{WsConfig, bind_tcp, serve_ws};

use common::run_bench;

async fn conn(port: u16, transport: &str) -> Summary {
    let port = port.to_string();
    let argv = [
        "bench",
        "conn",
        "-c",
        "50",
        "-d",
        "0",
        "--connect-concurrency",
        "10",
        "--transport",
        transport,
        "--port",
        &port,
        "-u",
        "guest",
        "-P",
        "guest",
        "--quiet",
    ];
    run_bench(&argv).await
}

fn assert_all_connected(summary: &Summary) {
    assert!(summary.errors.is_empty(), "errors: {:?}", summary.errors);
    assert_eq!(summary.connected, 50);
    assert_eq!(summary.connect_failed, 0);
    assert!(summary.connect_rate > 0.0);
    assert!(!summary.failed(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_over_tcp_connects_every_client() {
    let broker = TestBroker::start().await;
    let summary = conn(broker.addr().port(), "tcp").await;
    assert_all_connected(&summary);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_over_websocket_connects_every_client() {
    let broker = TestBroker::start().await;
    let listener = bind_tcp(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let port = listener.local_addr().unwrap().port();
    let ws = tokio::spawn(serve_ws(
        listener,
        Arc::clone(broker.broker()),
        WsConfig::default(),
        None,
    ));
    let summary = conn(port, "ws").await;
    assert_all_connected(&summary);
    broker.shutdown().await;
    ws.await.unwrap();
}
