//! The byte-stream adapter over an in-memory pipe, the client side speaking raw frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::ws::frame::tests::frame as client_frame;

impl ConnectionIo for DuplexStream {}

fn pair(ping: Option<Duration>) -> (WsStream<DuplexStream>, DuplexStream) {
    let (server, client) = tokio::io::duplex(64 * 1024);
    let ws = WsStream::new(server, 1024, ping, CancellationToken::new(), false);
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
    let mut ws = WsStream::new(inner, 1024, None, CancellationToken::new(), false);
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

/// What a client's permessage-deflate sends for `data`: raw deflate, sync flush, tail removed.
fn client_compress(data: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    compress
        .compress_vec(data, &mut out, FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xFF, 0xFF]));
    out.truncate(out.len() - 4);
    out
}

fn client_inflate(payload: &[u8]) -> Vec<u8> {
    use flate2::{Decompress, FlushDecompress};
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    let mut decompress = Decompress::new(false);
    let mut out = Vec::with_capacity(1 << 20);
    decompress
        .decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

fn json(len: usize, seed: usize) -> Vec<u8> {
    let mut data = Vec::new();
    let mut i = seed;
    while data.len() < len {
        data.extend_from_slice(format!("{{\"device\":\"d-{i}\",\"temp\":{}}},", i % 37).as_bytes());
        i += 1;
    }
    data.truncate(len);
    data
}

fn deflate_pair(max_frame: u64, pipe: usize) -> (WsStream<DuplexStream>, DuplexStream) {
    let (server, client) = tokio::io::duplex(pipe);
    let ws = WsStream::new(server, max_frame, None, CancellationToken::new(), true);
    (ws, client)
}

/// Reads until `n` bytes came, through a small buffer.
async fn read_stream(ws: &mut WsStream<DuplexStream>, n: usize, step: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; step];
    while got.len() < n {
        let read = ws.read(&mut buf).await.unwrap();
        assert!(read > 0, "EOF after {} of {n} bytes", got.len());
        got.extend_from_slice(&buf[..read]);
    }
    got
}

#[tokio::test]
async fn compressed_messages_across_reads_and_frames_come_out_in_order() {
    let first = json(40_000, 0);
    let second = json(3_000, 7);
    let compressed = client_compress(&first);
    let (a, rest) = compressed.split_at(compressed.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut input = client_frame(0x42, a); // RSV1 on the first fragment only
    input.extend(client_frame(0x89, b"hi"));
    input.extend(client_frame(0x00, b));
    input.extend(client_frame(0x80, c));
    input.extend(client_frame(0x82, b"plain between"));
    input.extend(client_frame(0xC2, &client_compress(&second)));
    input.extend(client_frame(0xC2, &client_compress(b"tiny")));
    input.extend(client_frame(0x82, b"end"));
    let mut expected = first.clone();
    expected.extend_from_slice(b"plain between");
    expected.extend_from_slice(&second);
    expected.extend_from_slice(b"tiny");
    expected.extend_from_slice(b"end");
    // A narrow pipe splits frames across reads at every possible place; small and large
    // read buffers.
    for (pipe, step) in [(7, 64), (61, 256), (4096, 4096), (1 << 16, 100)] {
        let (mut ws, mut client) = deflate_pair(1 << 20, pipe);
        let writer = {
            let input = input.clone();
            tokio::spawn(async move {
                client.write_all(&input).await.unwrap();
                client
            })
        };
        let got = read_stream(&mut ws, expected.len(), step).await;
        assert!(got == expected, "pipe {pipe}, step {step}");
        let mut client = writer.await.unwrap();
        ws.flush().await.unwrap();
        assert_eq!(read_exact(&mut client, 4).await, [0x8A, 2, b'h', b'i']);
        assert!(ws.inflate.is_none(), "no state left between messages");
    }
}

#[tokio::test]
async fn a_decompression_bomb_closes_with_1009() {
    let bomb = client_compress(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 2048);
    let (mut ws, mut client) = deflate_pair(64 * 1024, 1 << 16);
    client.write_all(&client_frame(0xC2, &bomb)).await.unwrap();
    let mut total = 0;
    let mut buf = vec![0u8; 4096];
    loop {
        match ws.read(&mut buf).await.unwrap() {
            0 => break,
            n => total += n,
        }
    }
    assert!(total <= 64 * 1024 + 1, "{total} bytes handed out");
    ws.shutdown().await.unwrap();
    assert_eq!(read_exact(&mut client, 4).await, [0x88, 2, 0x03, 0xF1]);
}

#[tokio::test]
async fn rsv1_without_negotiation_closes_with_1002() {
    let (mut ws, mut client) = pair(None);
    let frame = client_frame(0xC2, &client_compress(b"hello"));
    client.write_all(&frame).await.unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(ws.read(&mut buf).await.unwrap(), 0);
    ws.shutdown().await.unwrap();
    assert_eq!(read_exact(&mut client, 4).await, [0x88, 2, 0x03, 0xEA]);
}

#[tokio::test]
async fn large_writes_go_out_compressed_small_ones_plain() {
    let (mut ws, mut client) = deflate_pair(1 << 20, 1 << 20);
    let data = json(256 * 1024, 3);
    ws.write_all(&data).await.unwrap();
    ws.write_all(b"\x30\x03\x00\x01x").await.unwrap();
    ws.flush().await.unwrap();
    let header = read_exact(&mut client, 2).await;
    assert_eq!(header[0], 0xC2, "FIN, RSV1, binary");
    let len = match header[1] {
        126 => usize::from(u16::from_be_bytes(
            read_exact(&mut client, 2).await.try_into().unwrap(),
        )),
        127 => u64::from_be_bytes(read_exact(&mut client, 8).await.try_into().unwrap()) as usize,
        n => usize::from(n),
    };
    assert!(len < data.len() / 4, "{len} bytes for {}", data.len());
    let payload = read_exact(&mut client, len).await;
    assert!(client_inflate(&payload) == data);
    assert_eq!(
        read_exact(&mut client, 7).await,
        [0x82, 5, 0x30, 3, 0, 1, b'x'],
        "short messages are not worth compressing"
    );
    assert!(ws.control.is_none(), "nothing kept once sent");
}
