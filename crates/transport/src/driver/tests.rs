//! What every idle connection pays for its task. tokio allocates a task as one cell aligned
//! to 128 bytes: the future plus 104 bytes of its own (header, scheduler, id, stage, trailer),
//! so a future of at most 128 x k - 104 bytes fits a cell of 128 x k, and a few bytes more
//! cost 128 per connection. If a test here fails after a field was added to `Connection`,
//! `WsStream` or the task, box something rarely used instead, or accept the next size and
//! update the numbers here and in docs/memory.md. (At 6ef899a `Connection` is 640 bytes, 488
//! of them the established state with the client's identity and rights; before that state
//! was added the futures were 520 and 648 bytes, in 640- and 768-byte cells. Back-pressure
//! added 8, the pointer to a parked PUBLISH's state: 960 and 1,088 bytes.)

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
async fn an_mqtt_tcp_task_fits_a_1152_byte_cell() {
    let (stream, conn, _client) = connection().await;
    let task = run_connection(stream, conn);
    let size = std::mem::size_of_val(&task);
    assert!(
        size <= 1048,
        "the MQTT/TCP connection future is {size} bytes"
    );
}

#[tokio::test]
async fn a_websocket_task_fits_a_1280_byte_cell() {
    let (stream, conn, _client) = connection().await;
    let ping = Some(Duration::from_secs(30));
    let ws = WsStream::new(stream, 1 << 20, ping, CancellationToken::new());
    let task = run_connection(ws, conn);
    let size = std::mem::size_of_val(&task);
    assert!(
        size <= 1176,
        "the WebSocket connection future is {size} bytes"
    );
}
