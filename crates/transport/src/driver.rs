//! The per-connection task: read bytes, hand them to the protocol handler, write what it
//! produced; wake on deliveries, deadlines and shutdown. Generic over any byte stream, so TCP,
//! TLS and WebSocket all share it and enforce the same limits.

use std::time::Instant;

use bytes::BytesMut;
use ferrymq_broker::{Closed, Connection, SessionHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes requested from the socket per read. Small enough that an idle connection's buffer is
/// cheap, large enough that a burst of small PUBLISHes is read in a few calls.
const READ_CHUNK: usize = 4096;

/// Buffers larger than this are released once empty, so one large message does not pin
/// memory for the rest of the connection's life.
const RETAIN_BUFFER: usize = 16 * 1024;

enum Event {
    Read(std::io::Result<usize>),
    Wake,
    Deadline,
    Shutdown,
}

/// Serves one client connection over `stream` until it closes. Never panics on peer input:
/// every error ends this connection only.
pub async fn run_connection<S>(mut stream: S, mut conn: Connection)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shutdown = conn.broker().shutdown_token().clone();
    let peer = conn.peer();
    // Reads and writes take turns (the select below only reads; writes follow it), so the
    // stream is not split: no extra Arc and lock per connection.
    let mut input = BytesMut::new();
    loop {
        let deadline = conn.deadline();
        let session = conn.session();
        if input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK);
        }
        let event = tokio::select! {
            read = stream.read_buf(&mut input) => Event::Read(read),
            () = wait_for_session(session.as_deref()) => Event::Wake,
            () = sleep_until(deadline) => Event::Deadline,
            () = shutdown.cancelled() => Event::Shutdown,
        };
        let result: Result<(), Closed> = match event {
            Event::Read(Ok(0)) => {
                tracing::debug!(%peer, "peer closed the connection");
                Err(Closed)
            }
            Event::Read(Ok(_)) => conn.on_input(&mut input).await,
            Event::Read(Err(error)) => {
                tracing::debug!(%peer, %error, "read failed");
                Err(Closed)
            }
            Event::Wake => conn.on_wake(),
            Event::Deadline => conn.on_deadline(Instant::now()),
            Event::Shutdown => {
                conn.on_shutdown();
                Err(Closed)
            }
        };
        if let Err(error) = flush(&mut stream, conn.output()).await {
            tracing::debug!(%peer, %error, "write failed");
            break;
        }
        if result.is_err() {
            break;
        }
        if input.is_empty() && input.capacity() > RETAIN_BUFFER {
            input = BytesMut::new();
        }
    }
    conn.on_closed();
    let _ = stream.shutdown().await;
}

async fn flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    output: &mut BytesMut,
) -> std::io::Result<()> {
    if output.is_empty() {
        return Ok(());
    }
    writer.write_all(output).await?;
    writer.flush().await?;
    output.clear();
    if output.capacity() > RETAIN_BUFFER {
        *output = BytesMut::new();
    }
    Ok(())
}

async fn wait_for_session(session: Option<&SessionHandle>) {
    match session {
        Some(session) => session.notified().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
