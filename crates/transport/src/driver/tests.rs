//! What every idle connection pays for its task. tokio allocates a task as one cell aligned
//! to 128 bytes: the future plus 104 bytes of its own (header, scheduler, id, stage, trailer),
//! so a future of at most 128 x k - 104 bytes fits a cell of 128 x k, and a few bytes more
//! cost 128 per connection. If a test here fails after a field was added to `Connection`,
//! `WsStream` or the task, box something rarely used instead, or accept the next size and
//! update the numbers here and in docs/memory.md. (At 6ef899a `Connection` was 640 bytes, 488
//! of them the established state with the client's identity and rights, and the futures
//! 952 and 1,080 bytes; a permission cache that binds nothing for unrestricted users and
//! boxes the rest brought them to 792 and 920, each exactly filling its cell; back-pressure's
//! pointer to a parked PUBLISH (8) came with the listener vhost moving into the box of what
//! only CONNECT needs (−16): 784 and 912; permessage-deflate's pointer to its inflate state,
//! made per message, (8) filled the WebSocket one's cell: 920. Before the established state was
//! added they were 520 and 648 bytes, in 640- and 768-byte cells. Sharing the identity
//! between the connections of a user, a 16-byte limit slot and the keep-alive in seconds took
//! `Connection` from 464 to 256 bytes: 576 and 712, in 768- and 896-byte cells. No second
//! `Arc<Broker>`, the CONNECT deadline in the box of what only CONNECT needs, a 24-byte peer
//! address and one pointer for that box and back-pressure's took it to 216: 536 and 672,
//! the TCP one exactly filling a 640-byte cell. The identity held by the limit slot instead
//! of beside it: 208, 528 and 664, the WebSocket one exactly filling a 768-byte cell.)

use std::time::Duration;

use ferrymq_auth::{AuthConfig, Authenticator};
use ferrymq_broker::{Broker, BrokerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::ws::WsStream;

async fn connection() -> (TcpStream, Connection, TcpStream) {
    let broker = Broker::new(
        BrokerConfig::default(),
        Authenticator::new(AuthConfig::default()).unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (stream, peer) = listener.accept().await.unwrap();
    let permit = broker.try_open_connection().unwrap();
    (stream, Connection::new(broker, peer, permit), client)
}

#[tokio::test]
async fn an_mqtt_tcp_task_fits_a_640_byte_cell() {
    let (stream, conn, _client) = connection().await;
    let task = run_connection(stream, conn);
    let size = std::mem::size_of_val(&task);
    assert!(
        size <= 536,
        "the MQTT/TCP connection future is {size} bytes"
    );
}

/// With hibernation the task is `hibernate::serve`: the same loop, plus the handle of the
/// listener's sleepers and the idle limit.
#[tokio::test]
async fn a_hibernating_mqtt_tcp_task_fits_a_640_byte_cell() {
    let (stream, conn, _client) = connection().await;
    let shutdown = conn.broker().shutdown_token().clone();
    let after = Some(Duration::from_secs(5));
    let hibernation = crate::hibernate::Hibernation::for_listener(after, &shutdown).unwrap();
    let task = crate::hibernate::serve(stream, conn, hibernation);
    let size = std::mem::size_of_val(&task);
    assert!(
        size <= 536,
        "the hibernating MQTT/TCP connection future is {size} bytes"
    );
}

#[tokio::test]
async fn a_websocket_task_fits_a_768_byte_cell() {
    let (stream, conn, _client) = connection().await;
    let ping = Some(Duration::from_secs(30));
    let ws = WsStream::new(stream, 1 << 20, ping, CancellationToken::new(), true);
    let task = run_connection(ws, conn);
    let size = std::mem::size_of_val(&task);
    assert!(
        size <= 664,
        "the WebSocket connection future is {size} bytes"
    );
}

#[tokio::test]
async fn a_hibernating_websocket_task_fits_a_768_byte_cell() {
    let (stream, conn, _client) = connection().await;
    let shutdown = conn.broker().shutdown_token().clone();
    let ping = Some(Duration::from_secs(30));
    let ws = WsStream::new(stream, 1 << 20, ping, shutdown.clone(), true);
    let after = Some(Duration::from_secs(5));
    let hibernation = crate::hibernate::Hibernation::for_listener(after, &shutdown).unwrap();
    let task = crate::hibernate::serve(ws, conn, hibernation);
    let size = std::mem::size_of_val(&task);
    assert!(
        size <= 664,
        "the hibernating WebSocket connection future is {size} bytes"
    );
}
