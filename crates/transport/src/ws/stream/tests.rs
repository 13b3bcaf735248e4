//! The byte-stream adapter over an in-memory pipe, the client side speaking raw frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

const MASK: [u8; 4] = [1, 2, 3, 4];

impl ConnectionIo for DuplexStream {}

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
    let due = ws.timer().expect("a ping is scheduled");
    assert_eq!(due - Instant::now(), Duration::from_secs(30));

    // The connection task's timer may fire early (another deadline): nothing is due yet.
    tokio::time::advance(Duration::from_secs(29)).await;
    ws.on_timer(Instant::now());
    ws.flush().await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    ws.on_timer(Instant::now());
    ws.flush().await.unwrap();
    assert_eq!(read_exact(&mut client, 2).await, [0x89, 0], "one ping");
    assert_eq!(ws.timer(), Some(due + Duration::from_secs(30)));

    // Sending data counts as activity: the next ping moves out.
    tokio::time::advance(Duration::from_secs(10)).await;
    ws.write_all(b"\xC0\x00").await.unwrap();
    ws.flush().await.unwrap();
    assert_eq!(read_exact(&mut client, 4).await, [0x82, 2, 0xC0, 0]);
    assert_eq!(ws.timer(), Some(Instant::now() + Duration::from_secs(30)));
}

#[tokio::test]
async fn readiness_comes_from_the_inner_stream() {
    let (server, _client) = tokio::io::duplex(1024);
    let ready = Arc::new(AtomicBool::new(false));
    let inner = Gate(server, ready.clone());
    let mut ws = WsStream::new(inner, 1024, None, CancellationToken::new());
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(ws.poll_read_ready(&mut cx).is_pending());
    ready.store(true, Ordering::Relaxed);
    assert!(ws.poll_read_ready(&mut cx).is_ready());
}

/// A stream whose readiness the test sets.
struct Gate(DuplexStream, Arc<AtomicBool>);

impl ConnectionIo for Gate {
    fn poll_read_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.1.load(Ordering::Relaxed) {
            true => Poll::Ready(Ok(())),
            false => Poll::Pending,
        }
    }
}

impl AsyncRead for Gate {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Gate {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
