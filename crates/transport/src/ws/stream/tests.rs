//! The byte-stream adapter over an in-memory pipe, the client side speaking raw frames.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

const MASK: [u8; 4] = [1, 2, 3, 4];

fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut out = vec![first, 0x80 | payload.len() as u8];
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

fn pair(ping: Option<Duration>) -> (WsStream<DuplexStream>, DuplexStream) {
    let (server, client) = tokio::io::duplex(64 * 1024);
    let ws = WsStream::new(server, 1024, ping, CancellationToken::new());
    (ws, client)
}

async fn read_exact(client: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    client.read_exact(&mut buf).await.unwrap();
    buf
}

#[tokio::test]
async fn frames_in_bytes_out_and_pings_answered() {
    let (mut ws, mut client) = pair(None);
    let mut input = client_frame(0x82, b"ab");
    input.extend(client_frame(0x89, b"hi"));
    input.extend(client_frame(0x82, b"cd"));
    client.write_all(&input).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        let mut buf = [0u8; 16];
        let n = ws.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"abcd");
    assert_eq!(
        read_exact(&mut client, 4).await,
        [0x8A, 2, b'h', b'i'],
        "pong"
    );

    ws.write_all(b"\x20\x02\x00\x00").await.unwrap();
    ws.flush().await.unwrap();
    assert_eq!(read_exact(&mut client, 6).await, [0x82, 4, 0x20, 2, 0, 0]);
}

#[tokio::test]
async fn text_frame_closes_with_1003() {
    let (mut ws, mut client) = pair(None);
    client.write_all(&client_frame(0x81, b"{}")).await.unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(ws.read(&mut buf).await.unwrap(), 0, "EOF for the driver");
    ws.shutdown().await.unwrap();
    assert_eq!(read_exact(&mut client, 4).await, [0x88, 2, 0x03, 0xEB]);
    assert!(ws.write_all(b"x").await.is_err(), "no data after close");
}

#[tokio::test]
async fn client_close_is_echoed() {
    let (mut ws, mut client) = pair(None);
    client
        .write_all(&client_frame(0x88, &[0x03, 0xE8]))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(ws.read(&mut buf).await.unwrap(), 0);
    ws.shutdown().await.unwrap();
    assert_eq!(read_exact(&mut client, 4).await, [0x88, 2, 0x03, 0xE8]);
}

#[tokio::test]
async fn server_close_waits_for_the_clients_close_frame() {
    let (mut ws, mut client) = pair(None);
    let server = tokio::spawn(async move { ws.shutdown().await });
    assert_eq!(
        read_exact(&mut client, 4).await,
        [0x88, 2, 0x03, 0xE8],
        "1000"
    );
    client
        .write_all(&client_frame(0x88, &[0x03, 0xE8]))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_millis(500), server)
        .await
        .expect("shutdown ends on the client's close frame, not the linger timeout")
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_connections_get_pings() {
    let (mut ws, mut client) = pair(Some(Duration::from_secs(30)));
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        ws.read(&mut buf).await
    });
    // Paused time jumps ahead while everything waits.
    assert_eq!(read_exact(&mut client, 2).await, [0x89, 0]);
    let start = Instant::now();
    assert_eq!(read_exact(&mut client, 2).await, [0x89, 0]);
    assert!(Instant::now() - start >= Duration::from_secs(30));
    reader.abort();
}
