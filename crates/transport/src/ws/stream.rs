//! [`WsStream`]: a WebSocket connection seen as a plain byte stream, so the MQTT driver
//! runs over it exactly as over TCP. Binary payloads of all frames, in order, form the
//! input stream (an MQTT packet may span frames, a frame may hold several packets); each
//! `write` call becomes one binary frame (a partial write continues the frame with the rest
//! of the same buffer, as `write_all` and the driver do). Pings are answered, idle
//! connections get a ping every `ping_interval`, and the closing handshake is done on both
//! ends.
//!
//! Memory: nothing is buffered here. Payload is unmasked in place in the reader's buffer;
//! outgoing payload is written straight from the writer's buffer behind a ≤10-byte header
//! (one vectored write); control frames are buffered only while they wait to be sent. The
//! ping timer is the connection task's ([`ConnectionIo::timer`]), not one of our own, and
//! readiness comes from the inner stream, so an idle connection has no read buffer either.
//!
//! With permessage-deflate negotiated, a compressed message is inflated into the reader's
//! buffer as it asks, and each `write` of at least [`MIN_COMPRESS`] bytes becomes one
//! compressed message queued whole; the state for either exists only while a message is in
//! progress (see `deflate.rs`).

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::driver::ConnectionIo;

pub(crate) use dormant::WsDormant;

use super::deflate::{Inflate, MIN_COMPRESS, compress_message};
use super::frame::{
    FrameDecoder, OP_PING, OP_PONG, Step, close_code, encode_binary_header, encode_close,
    encode_control,
};

/// Raw bytes waiting behind a compressed message are handed to the decoder at most this
/// many at a time: a decode pass stops at the end of each compressed message and the rest
/// goes back, so small steps keep a burst of small messages from being copied over and over.
const RAW_STEP: usize = 512;

/// Queued control frames beyond this size are not added to (a client flooding pings while
/// not reading our pongs): RFC 6455 §5.5.3 allows answering only the latest ping.
const MAX_QUEUED_CONTROL: usize = 512;

/// How long a closing server waits for the client's close frame before closing TCP.
/// Closing TCP first with the client's frame still unread would make the kernel send RST,
/// which can destroy our own close frame in the client's receive buffer.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// A server-side WebSocket connection over `S` (TCP, TLS or an HTTP upgrade).
pub struct WsStream<S> {
    inner: S,
    decoder: FrameDecoder,
    /// Encoded control frames waiting to go out. Boxed: pings, pongs and the close frame
    /// are rare, and an idle connection should not carry their bookkeeping inline. A
    /// compressed data frame waits here too, whole.
    control: Option<Box<ControlOut>>,
    /// Compressed input in progress (permessage-deflate); `None` between messages.
    inflate: Option<Box<Inflate>>,
    /// Payload bytes of the data frame being written that are still owed.
    out_remaining: usize,
    out_header: [u8; 10],
    out_header_len: u8,
    out_header_written: u8,
    /// No more data for the reader: the peer closed, failed, or TCP ended.
    read_done: bool,
    /// Reading stopped because the peer broke the protocol (no linger then).
    failed: bool,
    close_queued: bool,
    close_received: bool,
    /// Milliseconds without sending after which a ping is due; 0: never.
    ping_interval_ms: u32,
    /// When something was last sent; a ping is due `ping_interval_ms` after it.
    last_write: Instant,
    linger: Option<Pin<Box<Sleep>>>,
    /// The broker's shutdown token: a close while it is cancelled says 1001 "going away".
    shutdown: CancellationToken,
}

impl<S> WsStream<S> {
    /// Wraps an upgraded connection. `max_frame`: largest data frame (and inflated message)
    /// accepted (1009 above); `ping_interval`: send a ping after this long without sending
    /// anything; `deflate`: permessage-deflate was negotiated.
    pub fn new(
        inner: S,
        max_frame: u64,
        ping_interval: Option<Duration>,
        shutdown: CancellationToken,
        deflate: bool,
    ) -> WsStream<S> {
        let dormant = WsDormant {
            decoder: FrameDecoder::new(max_frame, deflate).settings(),
            // Intervals are seconds in the configuration; u32 milliseconds reach 49 days.
            ping_interval_ms: ping_interval.map_or(0, |i| {
                u32::try_from(i.as_millis()).unwrap_or(u32::MAX).max(1)
            }),
            last_write: Instant::now(),
            shutdown,
            unsent: None,
        };
        WsStream::resume(inner, dormant)
    }

    /// The stream of a connection that slept, over `inner` (its socket).
    fn resume(inner: S, dormant: WsDormant) -> WsStream<S> {
        WsStream {
            inner,
            decoder: FrameDecoder::with_settings(dormant.decoder),
            // Bytes of a frame the socket did not take whole while the connection slept go
            // out first, as any queued control frame does.
            control: dormant.unsent,
            inflate: None,
            out_remaining: 0,
            out_header: [0; 10],
            out_header_len: 0,
            out_header_written: 0,
            read_done: false,
            failed: false,
            close_queued: false,
            close_received: false,
            ping_interval_ms: dormant.ping_interval_ms,
            last_write: dormant.last_write,
            linger: None,
            shutdown: dormant.shutdown,
        }
    }

    /// What stands for this stream, besides `inner`, while its connection sleeps. Only for
    /// a stream that is not [`ConnectionIo::busy`].
    fn put_to_sleep(self) -> (S, WsDormant) {
        let dormant = WsDormant {
            decoder: self.decoder.settings(),
            ping_interval_ms: self.ping_interval_ms,
            last_write: self.last_write,
            shutdown: self.shutdown,
            unsent: None,
        };
        (self.inner, dormant)
    }

    /// The control-frame queue, created on first use.
    fn control_out(&mut self) -> &mut Vec<u8> {
        &mut self.control.get_or_insert_default().bytes
    }

    fn queue_close(&mut self, code: u16) {
        if !self.close_queued {
            self.close_queued = true;
            encode_close(code, self.control_out());
        }
    }

    fn mid_data_frame(&self) -> bool {
        self.out_remaining > 0 || self.out_header_written < self.out_header_len
    }

    /// Applies what the decoder found; `true` when reading must stop.
    fn on_step(&mut self, step: Step) -> bool {
        match step {
            Step::NeedMore | Step::Pong | Step::Compressed { .. } => false,
            Step::Ping(payload) => {
                let queued = self.control.as_ref().map_or(0, |c| c.bytes.len());
                if !self.close_queued && queued < MAX_QUEUED_CONTROL {
                    encode_control(OP_PONG, &payload, self.control_out());
                }
                false
            }
            Step::Close(code) => {
                self.close_received = true;
                // Echo the status code, as RFC 6455 §5.5.1 suggests.
                self.queue_close(code.unwrap_or(close_code::NORMAL));
                true
            }
            Step::Fail(code) => {
                tracing::debug!(code, "closing WebSocket: client broke the framing rules");
                self.failed = true;
                self.queue_close(code);
                true
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// The WebSocket half of closing: our close frame out, then the linger for the
    /// client's (unless a data frame is cut off, which no close frame can follow).
    fn poll_close_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.mid_data_frame() {
            let code = if self.shutdown.is_cancelled() {
                close_code::GOING_AWAY
            } else {
                close_code::NORMAL
            };
            self.queue_close(code);
            ready!(self.poll_control(cx))?;
            ready!(self.poll_linger(cx));
        }
        Poll::Ready(Ok(()))
    }

    /// Writes queued control frames, but never inside a data frame being written.
    fn poll_control(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.mid_data_frame() {
            return Poll::Ready(Ok(()));
        }
        let Some(control) = &mut self.control else {
            return Poll::Ready(Ok(()));
        };
        while control.written < control.bytes.len() {
            let pending = &control.bytes[control.written..];
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            control.written += n;
        }
        self.control = None;
        self.last_write = Instant::now();
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// After our close frame: read and discard until the client's close frame, TCP EOF or
    /// [`CLOSE_LINGER`]. After a protocol error the rest of the input cannot be parsed, so
    /// it is discarded until EOF or the deadline.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.read_done && !self.failed {
            return Poll::Ready(());
        }
        let linger = self
            .linger
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_LINGER)));
        if linger.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let mut scratch = [0u8; 512];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {}
            }
            let filled = buf.filled_mut();
            if filled.is_empty() {
                return Poll::Ready(());
            }
            if self.failed {
                continue;
            }
            let (mut read, mut write) = (0, 0);
            while read < filled.len() {
                match self.decoder.decode(filled, &mut read, &mut write) {
                    Step::Close(_) | Step::Fail(_) => return Poll::Ready(()),
                    _ => write = 0,
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.read_done {
                // EOF for the driver; the queued close frame goes out on shutdown.
                let _ = this.poll_control(cx)?;
                return Poll::Ready(Ok(()));
            }
            // A pending write here only means the pong waits for the next call.
            let _ = this.poll_control(cx)?;
            let start = buf.filled().len();
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // A compressed message's bytes come before anything read after it.
            if let Some(inflate) = &mut this.inflate {
                match inflate.inflate(buf.initialize_unfilled(), this.decoder.max_frame()) {
                    Ok(0) => {}
                    Ok(n) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(code) => {
                        this.on_step(Step::Fail(code));
                        this.read_done = true;
                        this.inflate = None;
                        continue;
                    }
                }
                if inflate.is_idle() {
                    this.inflate = None;
                }
            }
            let waiting = this.inflate.as_ref().map_or(0, |i| i.raw.len());
            if waiting > 0 {
                let raw = this
                    .inflate
                    .as_ref()
                    .map(|i| &i.raw[..])
                    .unwrap_or_default();
                buf.put_slice(&raw[..waiting.min(buf.remaining()).min(RAW_STEP)]);
            } else {
                ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            }
            let end = buf.filled().len();
            if end == start {
                this.read_done = true;
                return Poll::Ready(Ok(()));
            }
            let (mut read, mut write) = (start, start);
            let filled = &mut buf.filled_mut()[..end];
            while read < end {
                let step = this.decoder.decode(filled, &mut read, &mut write);
                if let Step::Compressed { len, fin } = step {
                    write -= len;
                    let inflate = this.inflate.get_or_insert_default();
                    inflate.push(&filled[write..write + len], fin);
                    if fin {
                        // What follows waits until this message is inflated.
                        break;
                    }
                } else if this.on_step(step) {
                    this.read_done = true;
                    break;
                }
            }
            if let Some(inflate) = &mut this.inflate
                && !this.read_done
            {
                if waiting > 0 {
                    inflate.raw_consumed(read - start);
                } else {
                    inflate.raw.extend_from_slice(&filled[read..end]);
                }
                if inflate.is_idle() {
                    this.inflate = None;
                }
            }
            buf.set_filled(write);
            if write > start {
                return Poll::Ready(Ok(()));
            }
            // Only headers, control frames or compressed bytes arrived: returning now would
            // read as EOF.
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !this.mid_data_frame() {
            if this.close_queued {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            ready!(this.poll_control(cx))?;
            if this.decoder.deflate()
                && data.len() >= MIN_COMPRESS
                && let Some((bytes, written)) = compress_message(data)
            {
                // Queued whole (the control queue is empty: it was just written): the
                // message is taken, and `poll_flush` sends it.
                this.control = Some(Box::new(ControlOut { bytes, written }));
                let _ = this.poll_control(cx)?;
                return Poll::Ready(Ok(data.len()));
            }
            // The frame covers exactly this buffer; `write_all` hands back the rest of it
            // after a partial write, which continues the same frame.
            this.out_header_len =
                encode_binary_header(data.len() as u64, &mut this.out_header) as u8;
            this.out_header_written = 0;
            this.out_remaining = data.len();
        }
        let take = data.len().min(this.out_remaining);
        loop {
            let header = &this.out_header
                [usize::from(this.out_header_written)..usize::from(this.out_header_len)];
            let n = if header.is_empty() {
                ready!(Pin::new(&mut this.inner).poll_write(cx, &data[..take]))?
            } else {
                let bufs = [IoSlice::new(header), IoSlice::new(&data[..take])];
                ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let from_header = n.min(header.len());
            this.out_header_written += from_header as u8;
            let payload = n - from_header;
            if payload > 0 {
                this.out_remaining -= payload;
                this.last_write = Instant::now();
                return Poll::Ready(Ok(payload));
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_control(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_close_handshake(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: ConnectionIo> ConnectionIo for WsStream<S> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Inflated bytes or raw input behind them may be waiting without the socket knowing.
        if self.read_done || self.inflate.is_some() {
            return Poll::Ready(Ok(()));
        }
        // Queued pongs go out while the connection waits, not only when the client sends.
        let _ = self.poll_control(cx)?;
        self.inner.poll_read_ready(cx)
    }

    /// A ping is due when nothing was sent for `ping_interval`, so that proxies with idle
    /// timers (nginx: 60 s) keep connections of clients that only subscribe.
    fn timer(&self) -> Option<Instant> {
        if self.ping_interval_ms == 0 || self.close_queued {
            return None;
        }
        Some(self.last_write + Duration::from_millis(u64::from(self.ping_interval_ms)))
    }

    fn on_timer(&mut self, now: Instant) {
        let Some(due) = self.timer() else {
            return;
        };
        // The task's timer fires early when another deadline moved: only act when due.
        if now < due {
            return;
        }
        if self.control.is_none() {
            encode_control(OP_PING, &[], self.control_out());
        }
        self.last_write = now;
    }

    /// Anything half done (a frame half read or written, control frames queued, input
    /// being inflated, the closing handshake begun) keeps the connection awake.
    fn busy(&self) -> bool {
        self.inner.busy()
            || self.read_done
            || self.close_queued
            || self.control.is_some()
            || self.inflate.is_some()
            || self.linger.is_some()
            || self.mid_data_frame()
            || !self.decoder.between_frames()
    }

    /// As `poll_shutdown`, but the inner stream closes its own way (plain TCP: by being
    /// dropped, without a `shutdown` call).
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_close_handshake(cx))?;
        self.inner.poll_close(cx)
    }
}

/// Control frames waiting to go out, and how much of them is written.
#[derive(Debug, Default)]
struct ControlOut {
    bytes: Vec<u8>,
    written: usize,
}

mod dormant;
#[cfg(test)]
mod tests;
