//! The per-connection task: read bytes, hand them to the protocol handler, write what it
//! produced; wake on deliveries, deadlines and shutdown. Generic over any byte stream, so TCP,
//! TLS and WebSocket all share it and enforce the same limits.

use std::time::Instant;

use bytes::BytesMut;
use ferrymq_broker::{Closed, Connection, SessionHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes requested from the socket per read while data flows: a burst of small PUBLISHes is
/// read in a few calls.
const READ_CHUNK: usize = 4096;

/// Bytes reserved for the next read once a read did not fill its buffer. The reserved buffer
/// is what an idle connection keeps while it waits (tens of thousands of idle WebSocket
/// clients are the normal case), so it is small; a read that fills it switches back to
/// `READ_CHUNK`.
const IDLE_READ: usize = 256;

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
    let mut burst = false;
    loop {
        let deadline = conn.deadline();
        let session = conn.session();
        let chunk = if burst { READ_CHUNK } else { IDLE_READ };
        if input.capacity() - input.len() < chunk / 4 {
            input.reserve(chunk);
        }
        let spare = input.capacity() - input.len();
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
            Event::Read(Ok(n)) => {
                burst = n >= spare;
                // Boxed: handling input is the largest state of this task (~750 bytes);
                // inline it would be paid by every idle connection, boxed only while
                // bytes are being handled.
                Box::pin(conn.on_input(&mut input)).await
            }
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
        let idle_oversized = !burst && input.capacity() > IDLE_READ;
        if input.is_empty() && (input.capacity() > RETAIN_BUFFER || idle_oversized) {
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
