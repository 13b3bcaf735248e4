//! The per-connection task: read bytes, hand them to the protocol handler, write what it
//! produced; wake on deliveries, deadlines and shutdown. Generic over any byte stream, so TCP,
//! TLS and WebSocket all share it and enforce the same limits.
//!
//! Memory is the point of its shape: tens of thousands of idle connections are the normal
//! case, and each one costs this task's future plus what it keeps allocated. So an idle
//! connection holds no read or write buffer (it waits for readiness, then reads into a
//! small stack buffer and allocates only when bytes arrived), one timer serves every
//! deadline (CONNECT, keep-alive, WebSocket ping, write stall, close), and the waits are
//! polled by hand instead of through `select!`, whose branch futures would all live in the
//! task at once.
//!
//! Writes wait together with shutdown and takeover: a client that stops reading cannot
//! hold its task hostage. A write the socket accepts nothing of for the write-stall limit
//! closes the connection.
//!
//! A connection parked by back-pressure (its PUBLISH waits for room in a subscriber's queue,
//! see `ferrymq_broker`'s `connection/backpressure.rs`) stops reading once it has buffered a
//! little, so that the client feels TCP flow control, while everything else goes on: its own
//! deliveries, its wakes, deadlines, shutdown and takeover. When it unparks, what it buffered
//! is handed to it again.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ferrymq_broker::{Closed, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

/// Bytes requested from the socket per read while data flows: a burst of small PUBLISHes is
/// read in a few calls.
const READ_CHUNK: usize = 4096;

/// Bytes read into a stack buffer when a connection that held no buffer becomes readable.
/// Only what arrived is then copied to the heap, so an idle connection keeps no buffer
/// while it waits; a read that fills this switches to `READ_CHUNK` heap reads.
const IDLE_READ: usize = 256;

/// Buffers larger than this are released once empty even while data flows, so one large
/// message does not pin memory for the rest of the connection's life.
const RETAIN_BUFFER: usize = 16 * 1024;

/// Upper bound of the write-stall limit. A connection whose socket accepts none of our
/// bytes for its limit is closed: the client's keep-alive x grace (a client that cannot
/// take a PINGRESP for that long is as dead as one that sends nothing), at most this, and
/// this when keep-alive is off. 60 s leaves room for slow mobile links; EMQX's comparable
/// `send_timeout` is 15 s.
pub const WRITE_STALL_MAX: Duration = Duration::from_secs(60);

/// Once a connection ends (either side closed it, it was taken over, or the broker shuts
/// down), its last bytes and the closing handshake (TLS close_notify, the WebSocket close
/// frame and its linger) get at most this long, well inside the shutdown grace (5 s).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the connection task needs from a byte stream beyond reading and writing, so that an
/// idle connection holds no buffer and one timer. The defaults suit any stream.
pub trait ConnectionIo: AsyncRead + AsyncWrite + Unpin {
    /// Ready when a read would not wait (bytes, end of stream or an error), without a
    /// buffer. The default is always ready: the task then tries a read into a small stack
    /// buffer, which registers for readiness when nothing is there. Streams that can ask
    /// their socket directly (TCP) save that read call.
    fn poll_read_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// When the stream next needs [`ConnectionIo::on_timer`] (a WebSocket ping): its timer is
    /// folded into the task's one instead of being a timer of its own.
    fn timer(&self) -> Option<Instant> {
        None
    }

    /// Called once `now` is at or past [`ConnectionIo::timer`] (possibly later, never
    /// earlier). What it queues is written by the task's next flush.
    fn on_timer(&mut self, _now: Instant) {}

    /// Whether the stream is in the middle of something its socket's readiness does not
    /// stand for: bytes read from the socket and not returned yet, a frame half read or
    /// half written, control frames waiting to go out. A busy stream's connection does not
    /// sleep (see [`crate::hibernate`]); streams that never sleep (TLS) need not say.
    fn busy(&self) -> bool {
        false
    }

    /// The closing handshake, once everything was written and flushed; the stream is
    /// dropped (closed) right after. The default is `poll_shutdown`.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_shutdown(cx)
    }
}

impl ConnectionIo for tokio::net::TcpStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }

    /// Nothing: the socket is closed next, and closing sends the same FIN a `shutdown`
    /// would (or, with unread input, the same RST), so a `shutdown` first is one system
    /// call per connection for nothing. Writes are not buffered here, so there is nothing
    /// to flush either.
    fn poll_close(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

// TLS keeps decrypted bytes of its own: the socket's readiness says nothing about them, so
// the default (try a read) is the only correct answer.
impl<S: AsyncRead + AsyncWrite + Unpin> ConnectionIo for tokio_rustls::server::TlsStream<S> {}

// hyper's upgraded connections (WSS over HTTP/1.1, WebSocket streams of HTTP/2) are boxed
// streams that say nothing about readiness.
impl ConnectionIo for hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {}

/// Serves one client connection over `stream` until it closes. Never panics on peer input:
/// every error ends this connection only. Spawn the returned future as its own task.
pub fn run_connection<S: ConnectionIo>(stream: S, conn: Connection) -> impl Future<Output = ()> {
    let mut task = Task::new(stream, conn);
    // `task` lives in this block's state once; an `async fn` taking it by value would keep
    // a second copy of its arguments alongside it for the connection's whole life.
    async move {
        task.run(None).await;
    }
}

/// How long a connection must be quiet before it may sleep, in milliseconds: four bytes
/// in the task's state where a `Duration` would take sixteen (and a 128-byte task cell more
/// for some streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdleLimit(std::num::NonZeroU32);

impl IdleLimit {
    /// `after`, at least a millisecond and at most 49 days.
    pub(crate) fn new(after: Duration) -> IdleLimit {
        let ms = u32::try_from(after.as_millis()).unwrap_or(u32::MAX);
        IdleLimit(std::num::NonZeroU32::new(ms).unwrap_or(std::num::NonZeroU32::MIN))
    }

    fn get(self) -> Duration {
        Duration::from_millis(u64::from(self.0.get()))
    }
}

/// How a connection's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The connection is closed.
    Closed,
    /// The connection was quiet for the hibernation time and may sleep without a task
    /// (see [`crate::hibernate`]): it is established, has nothing to write and its stream
    /// is not busy.
    Quiet,
}

/// The connection's state while it lives.
pub(crate) struct Task<S> {
    stream: S,
    conn: Connection,
    /// Bytes read and not yet decoded; unallocated while idle.
    input: BytesMut,
}

/// What the single timer is set for (its instant is the `Sleep`'s deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Not polled (it may still be registered and wake the task once; that is harmless).
    Off,
    /// The earliest of the CONNECT / keep-alive deadline and the stream's timer.
    Deadline,
    /// With hibernation: check whether the connection was quiet since the last check
    /// (earlier than any deadline; a deadline that comes first displaces it until it fired).
    Idle,
    /// A blocked write must make progress by then.
    Stall,
    /// The ending connection's last write and close must be done by then.
    Close,
}

/// The waits of one connection, pinned in its task, and the flags that steer them. (The
/// flags live here rather than in `Task` because they fit in this struct's padding.)
struct Waits<'p> {
    cancelled: Pin<&'p mut WaitForCancellationFutureOwned>,
    timer: Pin<&'p mut Sleep>,
    timer_for: Timer,
    /// The connection is ending: only its last write and the close handshake remain.
    closing: bool,
    /// The last read filled its buffer: more is probably waiting, read in `READ_CHUNK`s.
    burst: bool,
    /// The session signalled news while a write was blocked (or the connection was let go
    /// by its deadline while parked): handle it at the next turn.
    woken: bool,
    /// The connection was parked when its input was last handled: once it is not, hand it
    /// the input it buffered meanwhile.
    parked: bool,
    /// The peer closed its side while the connection was parked: close once what was read
    /// before is handled.
    eof: bool,
    /// With hibernation: the connection read or was woken since the last idle check.
    active: bool,
    /// With hibernation: an earlier deadline took the timer from the idle check, which is
    /// taken once that deadline fired.
    idle_displaced: bool,
}

impl Waits<'_> {
    fn set_timer(&mut self, at: Instant, purpose: Timer) {
        self.timer.as_mut().reset(at);
        self.timer_for = purpose;
    }

    /// Switches to closing: from now on only the last write and the close handshake run,
    /// bounded by [`CLOSE_TIMEOUT`].
    fn start_closing(&mut self) {
        if !self.closing {
            self.closing = true;
            self.set_timer(Instant::now() + CLOSE_TIMEOUT, Timer::Close);
        }
    }
}

/// What woke the idle connection (several at once is possible).
#[derive(Default)]
struct Events {
    read: Option<io::Result<usize>>,
    wake: bool,
    deadline: bool,
    /// The idle check is due (with hibernation).
    idle: bool,
    shutdown: bool,
}

/// How the connection loop ended.
enum Ending {
    /// The connection ends and the stream can still take a close handshake.
    Graceful,
    /// The connection ends; the stream failed or timed out.
    Abrupt,
    /// The connection goes to sleep (hibernation).
    Quiet,
}

/// How a write ended.
enum Written {
    /// Everything was written and flushed.
    Done,
    /// The stall or close limit passed first.
    TimedOut,
    Failed(io::Error),
}

impl<S: ConnectionIo> Task<S> {
    pub(crate) fn new(stream: S, conn: Connection) -> Task<S> {
        Task {
            stream,
            conn,
            input: BytesMut::new(),
        }
    }

    /// The stream and the connection of a task that ended [`Outcome::Quiet`].
    pub(crate) fn into_parts(self) -> (S, Connection) {
        (self.stream, self.conn)
    }

    /// Serves the connection until it closes or, when `hibernate_after` is set, until it
    /// was quiet that long (at most twice that) and may sleep without its task.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps `self` twice in its state (argument and local)"
    )]
    pub(crate) fn run(
        &mut self,
        hibernate_after: Option<IdleLimit>,
    ) -> impl Future<Output = Outcome> + '_ {
        async move {
            let shutdown = self.conn.broker().shutdown_token().clone();
            let mut waits = Waits {
                cancelled: pin!(shutdown.cancelled_owned()),
                timer: pin!(tokio::time::sleep_until(Instant::now())),
                timer_for: Timer::Off,
                closing: false,
                burst: false,
                woken: false,
                parked: false,
                eof: false,
                active: false,
                idle_displaced: false,
            };
            let ending = loop {
                match poll_fn(|cx| self.poll_write(cx, &mut waits)).await {
                    Written::Done if waits.closing => break Ending::Graceful,
                    Written::Done => {}
                    Written::TimedOut => {
                        self.log_timeout(waits.closing);
                        break Ending::Abrupt;
                    }
                    Written::Failed(error) => {
                        tracing::debug!(peer = %self.conn.peer(), %error, "write failed");
                        break Ending::Abrupt;
                    }
                }
                self.release_oversized_buffers();
                self.arm_deadline(&mut waits, hibernate_after);
                // A block, so that only what is needed past the await below is kept across it.
                let (mut result, input, wake, deadline, idle) = {
                    let events = poll_fn(|cx| self.poll_events(cx, &mut waits)).await;
                    let input = matches!(events.read, Some(Ok(1..)));
                    (
                        self.handle(&events, &mut waits),
                        input,
                        events.wake,
                        events.deadline,
                        events.idle,
                    )
                };
                waits.active |= input || wake;
                if result.is_ok() && wake {
                    result = self.conn.on_wake();
                }
                // Let go by the wake (or by the deadline, last turn): decode what it buffered.
                let resumed = waits.parked && !self.conn.is_parked() && !self.input.is_empty();
                if result.is_ok() && (input || resumed) {
                    // Boxed: handling input is the largest state of this task (~750 bytes);
                    // inline it would be paid by every idle connection, boxed only while
                    // bytes are handled.
                    result = Box::pin(self.conn.on_input(&mut self.input)).await;
                }
                waits.parked = self.conn.is_parked();
                if result.is_ok() && waits.eof && !waits.parked {
                    tracing::debug!(peer = %self.conn.peer(), "peer closed the connection");
                    result = Err(Closed);
                }
                if result.is_ok() && deadline {
                    let now = Instant::now();
                    self.stream.on_timer(now);
                    result = self.conn.on_deadline(now.into_std());
                    // A parked connection whose subscribers stalled was let go: its input
                    // is handled at the next turn.
                    waits.woken |= waits.parked && !self.conn.is_parked();
                    // An idle check this deadline displaced is taken at once (after what the
                    // deadline queued, a WebSocket ping, is written): re-armed a full period
                    // later, it would be displaced again by a stream timer that is shorter
                    // than the period, and the connection would never sleep.
                    if std::mem::take(&mut waits.idle_displaced) {
                        waits.set_timer(now, Timer::Idle);
                    }
                }
                if let (Ok(()), true, Some(after)) = (result, idle, hibernate_after) {
                    if !std::mem::take(&mut waits.active) && self.may_sleep(&waits) {
                        break Ending::Quiet;
                    }
                    waits.set_timer(Instant::now() + after.get(), Timer::Idle);
                }
                if result.is_err() {
                    waits.start_closing();
                }
            };
            if let Ending::Quiet = ending {
                return Outcome::Quiet;
            }
            self.conn.on_closed();
            if let Ending::Graceful = ending {
                let close = poll_fn(|cx| {
                    if let Poll::Ready(result) = self.stream.poll_close(cx) {
                        return Poll::Ready(result);
                    }
                    ready!(waits.timer.as_mut().poll(cx));
                    Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
                });
                if let Err(error) = close.await {
                    tracing::debug!(peer = %self.conn.peer(), %error, "close handshake incomplete");
                }
            }
            Outcome::Closed
        }
    }

    /// Whether nothing but the socket, the session, the deadline and the stream's timer
    /// (which sleeps with the stream, see [`crate::hibernate::Dormant`]) can need this
    /// connection next: then it may sleep without its task.
    fn may_sleep(&self, waits: &Waits<'_>) -> bool {
        !(waits.closing || waits.burst || waits.woken || waits.parked || waits.eof)
            && self.input.is_empty()
            && !self.stream.busy()
            && self.conn.can_hibernate()
    }

    /// The events that end the connection before any input is handled: shutdown, end of
    /// stream, a read error. `Err` ends it (its last words are in the output). The end of
    /// the stream of a parked connection waits until what it buffered is handled.
    fn handle(&mut self, events: &Events, waits: &mut Waits<'_>) -> Result<(), Closed> {
        if events.shutdown {
            self.conn.on_shutdown();
            return Err(Closed);
        }
        match &events.read {
            Some(Ok(0)) if self.conn.is_parked() => {
                waits.eof = true;
                Ok(())
            }
            Some(Ok(0)) => {
                tracing::debug!(peer = %self.conn.peer(), "peer closed the connection");
                Err(Closed)
            }
            Some(Err(error)) => {
                tracing::debug!(peer = %self.conn.peer(), %error, "read failed");
                Err(Closed)
            }
            _ => Ok(()),
        }
    }

    fn log_timeout(&self, closing: bool) {
        let peer = self.conn.peer();
        match closing {
            true => tracing::debug!(%peer, "closing: the last write did not finish in time"),
            false => {
                let limit = self.stall_limit();
                tracing::info!(%peer, ?limit, "closing connection: the client accepted no data for the write-stall limit");
            }
        }
    }

    /// Points the timer at the earliest deadline. Deadlines only move later while a
    /// connection is quiet (each packet pushes the keep-alive deadline out), so the timer
    /// is moved only when it would fire late; firing early costs one check and a re-arm.
    ///
    /// With hibernation the timer also serves the idle check, which is armed with a clock
    /// read only when it is not already pending: once after CONNECT, after a deadline fired,
    /// after a blocked write used the timer. While traffic flows it is left alone and
    /// re-armed when it fires.
    fn arm_deadline(&mut self, waits: &mut Waits<'_>, hibernate_after: Option<IdleLimit>) {
        if let Some(after) = hibernate_after
            && waits.timer_for != Timer::Idle
            && !waits.idle_displaced
            && self.conn.can_hibernate()
        {
            waits.set_timer(Instant::now() + after.get(), Timer::Idle);
        }
        let keep_alive = self.conn.deadline().map(Instant::from_std);
        let next = match (keep_alive, self.stream.timer()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (next, waits.timer_for) {
            (None, Timer::Idle) => {}
            (None, _) => waits.timer_for = Timer::Off,
            (Some(at), Timer::Deadline | Timer::Idle) if waits.timer.deadline() <= at => {}
            (Some(at), purpose) => {
                waits.idle_displaced |= purpose == Timer::Idle;
                waits.set_timer(at, Timer::Deadline);
            }
        }
    }

    /// The idle wait: shutdown, session news, the timer and input, all at once. (Input
    /// only as far as the connection wants it: a parked one reads a bounded amount ahead.)
    fn poll_events(&mut self, cx: &mut Context<'_>, waits: &mut Waits<'_>) -> Poll<Events> {
        let mut events = Events::default();
        if waits.cancelled.as_mut().poll(cx).is_ready() {
            events.shutdown = true;
            return Poll::Ready(events);
        }
        // Every source is polled on every wake-up, so a flood on one (deliveries) cannot
        // starve another (the client's acknowledgements).
        events.wake = std::mem::take(&mut waits.woken) | self.conn.poll_wake(cx).is_ready();
        if matches!(waits.timer_for, Timer::Deadline | Timer::Idle)
            && waits.timer.as_mut().poll(cx).is_ready()
        {
            events.deadline = waits.timer_for == Timer::Deadline;
            events.idle = waits.timer_for == Timer::Idle;
            waits.timer_for = Timer::Off;
        }
        if !waits.eof
            && self.conn.wants_input(self.input.len())
            && let Poll::Ready(read) = self.poll_input(cx, &mut waits.burst)
        {
            events.read = Some(read);
        }
        if events.wake || events.deadline || events.idle || events.read.is_some() {
            return Poll::Ready(events);
        }
        // Nothing to do: the connection goes to sleep, and keeps no empty buffer while it
        // does. (While work keeps coming, the buffers are kept from one turn to the next.)
        self.release_empty_buffers();
        Poll::Pending
    }

    /// Reads what is there. With no bytes pending and no burst under way, nothing is
    /// allocated until data arrived.
    fn poll_input(&mut self, cx: &mut Context<'_>, burst: &mut bool) -> Poll<io::Result<usize>> {
        if self.input.is_empty() && !*burst {
            ready!(self.stream.poll_read_ready(cx))?;
            let mut probe = [0u8; IDLE_READ];
            let mut buf = ReadBuf::new(&mut probe);
            ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf))?;
            let data = buf.filled();
            *burst = data.len() == IDLE_READ;
            if !data.is_empty() {
                let capacity = if *burst { READ_CHUNK } else { data.len() };
                self.input.reserve(capacity);
                self.input.extend_from_slice(data);
            }
            return Poll::Ready(Ok(data.len()));
        }
        let chunk = if *burst { READ_CHUNK } else { IDLE_READ };
        if self.input.capacity() - self.input.len() < chunk / 4 {
            self.input.reserve(chunk);
        }
        let spare = self.input.capacity() - self.input.len();
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.input);
        let Poll::Ready(n) = read? else {
            if self.input.is_empty() {
                // The burst is over and nothing is pending: wait without a buffer.
                *burst = false;
                self.input = BytesMut::new();
            }
            return Poll::Pending;
        };
        *burst = n >= spare;
        Poll::Ready(Ok(n))
    }

    /// Writes and flushes the output (and whatever the stream queued: pongs, pings, a
    /// close frame), while still answering shutdown and takeover. Reading waits: a client
    /// that does not take our bytes gets no more of its own handled.
    fn poll_write(&mut self, cx: &mut Context<'_>, waits: &mut Waits<'_>) -> Poll<Written> {
        loop {
            let before = self.conn.output().len();
            let result = self.poll_write_out(cx);
            let progress = self.conn.output().len() < before;
            match result {
                Poll::Ready(Ok(())) => return Poll::Ready(Written::Done),
                Poll::Ready(Err(error)) => return Poll::Ready(Written::Failed(error)),
                Poll::Pending => {}
            }
            if !waits.closing {
                if progress || waits.timer_for != Timer::Stall {
                    waits.set_timer(Instant::now() + self.stall_limit(), Timer::Stall);
                }
                if waits.cancelled.as_mut().poll(cx).is_ready() {
                    // DISCONNECT 0x8B goes after what is already queued.
                    self.conn.on_shutdown();
                    waits.start_closing();
                    continue;
                }
                // Until pending, so that the session holds our waker again. Deliveries are
                // left queued (the socket takes nothing now); a takeover ends the connection.
                let mut taken_over = false;
                while self.conn.poll_news_while_writing(cx).is_ready() {
                    waits.woken = true;
                    if self.conn.check_attached().is_err() {
                        taken_over = true;
                        break;
                    }
                }
                if taken_over {
                    waits.start_closing();
                    continue;
                }
            }
            ready!(waits.timer.as_mut().poll(cx));
            return Poll::Ready(Written::TimedOut);
        }
    }

    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let output = self.conn.output();
            if output.is_empty() {
                break;
            }
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, output))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.conn.output().advance(n);
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn stall_limit(&self) -> Duration {
        self.conn
            .keep_alive_span()
            .map_or(WRITE_STALL_MAX, |span| span.min(WRITE_STALL_MAX))
    }

    /// Drops empty buffers above `RETAIN_BUFFER`, even while data flows.
    fn release_oversized_buffers(&mut self) {
        if self.input.is_empty() && self.input.capacity() > RETAIN_BUFFER {
            self.input = BytesMut::new();
        }
        let output = self.conn.output();
        if output.is_empty() && output.capacity() > RETAIN_BUFFER {
            *output = BytesMut::new();
        }
    }

    /// Drops empty buffers of any size: the connection is about to sleep. (Whatever their
    /// capacity: an empty `BytesMut` split off a larger buffer still keeps all of it alive.)
    fn release_empty_buffers(&mut self) {
        if self.input.is_empty() {
            self.input = BytesMut::new();
        }
        let output = self.conn.output();
        if output.is_empty() {
            *output = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests;
