//! Idle MQTT connections over plain TCP and plain WebSocket hibernate: after `hibernate_after` without traffic a
//! connection gives up its task and its place in tokio's reactor, and waits as one small
//! record in an epoll set of its own until the client sends something, its session has
//! news (a delivery, a takeover, a kick), its deadline passes (keep-alive, token expiry) or
//! the broker shuts down. Then it gets a new task and carries on as if it had never slept.
//!
//! Why: most connections of an IoT broker are idle most of the time, and an idle
//! connection's task (its future plus tokio's header, in a 128-byte-aligned cell) and its
//! reactor registration (tokio's 256-byte `ScheduledIo`) are most of what it costs. A
//! sleeping connection keeps only its `Connection` (boxed), a slot here, a timer entry
//! and the waker its session holds. RabbitMQ hibernates idle connection processes for the
//! same reason.
//!
//! What a stream keeps besides its socket sleeps with it (`Dormant`): nothing for plain
//! TCP; for a WebSocket its frame size limit and its ping timer, whose pings are sent from
//! here, as their pongs and the client's keep-alive are taken, without waking anyone
//! (`ws/stream/dormant.rs`). TLS does not sleep: its stream keeps decrypted bytes and session
//! state that the socket's readiness cannot stand for.

use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use bytes::Buf;
use ferrymq_broker::{Connection, Metrics};
use mio::unix::SourceFd;
use mio::{Events, Interest, Token};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wheel::{Keep, Wheel};

use crate::driver::{ConnectionIo, IdleLimit, Outcome, Task};
use crate::proxy::Rewind;

mod wheel;

/// Readiness events taken from the epoll set per system call.
const EVENTS_PER_POLL: usize = 256;

/// The sleeping connections of one listener, whose streams sleep as `D`. Cloning shares
/// them.
pub(crate) struct Hibernation<D: Dormant> {
    shared: Arc<Shared<D>>,
}

impl<D: Dormant> Clone for Hibernation<D> {
    fn clone(&self) -> Self {
        Hibernation {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<D> {
    /// How long a connection must be quiet before it sleeps (it sleeps at the first check
    /// after that, so after at most twice this).
    after: Duration,
    /// Registers and deregisters sleepers' sockets in the epoll set that the watcher polls.
    registry: mio::Registry,
    sleepers: Mutex<Sleepers<D>>,
    /// Sleepers whose session woke them, for the watcher. Separate from `sleepers`
    /// because sessions wake under their own lock, which `hibernate` takes while holding
    /// `sleepers`.
    woken: Mutex<Vec<Ticket>>,
    news: tokio::sync::Notify,
}

struct Sleepers<D> {
    slots: Slab<Sleeper<D>>,
    /// Each sleeper's deadline (keep-alive, token expiry), to the second.
    deadlines: Wheel<Ticket>,
    next_generation: u32,
    /// The broker is shutting down: every sleeper was woken and no new one is taken.
    closed: bool,
}

/// 16 bytes: its deadline is not kept here but asked of the connection and the stream when
/// the wheel comes to it (a sleeping connection's deadlines only move later).
struct Sleeper<D> {
    socket: std::net::TcpStream,
    generation: u32,
    asleep: Box<Asleep<D>>,
}

/// A sleeping connection and what its stream keeps besides the socket, in one allocation
/// (for plain TCP `D` takes no space).
struct Asleep<D> {
    conn: Connection,
    stream: D,
}

impl<D: Dormant> Asleep<D> {
    /// The earliest of the connection's deadline and the stream's timer.
    fn next_deadline(&self) -> Option<Instant> {
        let deadline = self.conn.deadline().map(Instant::from_std);
        match (deadline, self.stream.timer()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A sleeper's slot and the generation it was put there with: a wake that arrives after
/// the slot was reused for another connection is recognised and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticket {
    slot: u32,
    generation: u32,
}

impl Ticket {
    fn token(self) -> Token {
        Token(((self.generation as usize) << 32) | self.slot as usize)
    }

    fn from_token(token: Token) -> Ticket {
        Ticket {
            slot: token.0 as u32,
            generation: (token.0 >> 32) as u32,
        }
    }
}

/// The waker a sleeper leaves with its session.
struct Alarm<D> {
    shared: Weak<Shared<D>>,
    ticket: Ticket,
}

impl<D: Dormant> Wake for Alarm<D> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.shared.upgrade() {
            lock(&shared.woken).push(self.ticket);
            shared.news.notify_one();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<D: Dormant> Hibernation<D> {
    /// Starts the watcher task of one listener: connections quiet for `after` sleep until
    /// their socket, session or deadline needs them, or until `shutdown`.
    fn start(after: Duration, shutdown: CancellationToken) -> io::Result<Hibernation<D>> {
        let poll = mio::Poll::new()?;
        let shared = Arc::new(Shared {
            after,
            registry: poll.registry().try_clone()?,
            sleepers: Mutex::new(Sleepers {
                slots: Slab::new(),
                deadlines: Wheel::new(Instant::now()),
                next_generation: 0,
                closed: false,
            }),
            woken: Mutex::new(Vec::new()),
            news: tokio::sync::Notify::new(),
        });
        // Deprecated in favour of an `unsafe` constructor (the workspace forbids `unsafe`)
        // whose contract is that the descriptor stays open and the same while registered:
        // `mio::Poll` owns its epoll descriptor and never replaces it.
        #[allow(
            deprecated,
            reason = "the only constructor without `unsafe`; see above"
        )]
        let poll = AsyncFd::with_interest(EpollSet(poll), tokio::io::Interest::READABLE)?;
        tokio::spawn(watch(poll, Arc::clone(&shared), shutdown));
        Ok(Hibernation { shared })
    }

    /// A listener's hibernation when it has a hibernation time (`after`); `None` without
    /// one, or, logged, when no epoll set could be made.
    pub(crate) fn for_listener(
        after: Option<Duration>,
        shutdown: &CancellationToken,
    ) -> Option<Hibernation<D>> {
        match Hibernation::start(after?, shutdown.clone()) {
            Ok(hibernation) => Some(hibernation),
            Err(error) => {
                tracing::warn!(%error, "idle connections will not hibernate: no epoll set");
                None
            }
        }
    }

    /// How long a connection must be quiet before it sleeps.
    pub(crate) fn after(&self) -> Duration {
        self.shared.after
    }

    /// Serves a connection over `stream` (a task of its own, as
    /// [`crate::driver::run_connection`]), letting it sleep here whenever it is quiet.
    pub(crate) fn run<S: Sleepable<Dormant = D>>(&self, stream: S, conn: Connection) {
        tokio::spawn(serve(stream, conn, self.clone()));
    }

    /// Puts a quiet connection to sleep, or, if something already needs it, serves it on.
    fn hibernate(&self, stream: TcpStream, dormant: D, conn: Connection) {
        let mut conn = conn;
        let socket = match stream.into_std() {
            Ok(socket) => socket,
            Err(error) => {
                tracing::debug!(peer = %conn.peer(), %error, "could not hibernate: closing");
                conn.on_closed();
                return;
            }
        };
        let mut sleepers = lock(&self.shared.sleepers);
        if sleepers.closed {
            drop(sleepers);
            return self.wake_up(socket, dormant, conn);
        }
        let sleepers = &mut *sleepers;
        let entry = sleepers.slots.vacant_entry();
        let ticket = Ticket {
            slot: entry.key() as u32,
            generation: sleepers.next_generation,
        };
        sleepers.next_generation = sleepers.next_generation.wrapping_add(1);
        // From here on the session wakes the alarm; a wake before the slot is filled
        // waits in `woken` for the watcher, which takes `sleepers` only after this.
        let alarm = Waker::from(Arc::new(Alarm {
            shared: Arc::downgrade(&self.shared),
            ticket,
        }));
        if conn.poll_wake(&mut Context::from_waker(&alarm)).is_ready() {
            return self.wake_up(socket, dormant, conn);
        }
        // Edge-triggered, and reported at once if bytes arrived since the task last read.
        let registered = self.shared.registry.register(
            &mut SourceFd(&socket.as_raw_fd()),
            ticket.token(),
            Interest::READABLE,
        );
        if let Err(error) = registered {
            tracing::debug!(peer = %conn.peer(), %error, "could not hibernate");
            return self.wake_up(socket, dormant, conn);
        }
        Metrics::inc(&conn.broker().metrics().connections_hibernated);
        tracing::trace!(peer = %conn.peer(), "connection hibernates");
        let asleep = Box::new(Asleep {
            conn,
            stream: dormant,
        });
        if let Some(at) = asleep.next_deadline() {
            let second = sleepers.deadlines.second_of(at);
            sleepers.deadlines.insert(second, ticket);
        }
        entry.insert(Sleeper {
            socket,
            generation: ticket.generation,
            asleep,
        });
    }

    /// Takes a sleeper out (unless `ticket` is stale) and serves it on. Its deadline's
    /// entry in the wheel stays and is found stale when its second comes.
    fn resume(&self, ticket: Ticket) {
        let sleeper = {
            let mut sleepers = lock(&self.shared.sleepers);
            let slot = ticket.slot as usize;
            match sleepers.slots.get(slot) {
                Some(sleeper) if sleeper.generation == ticket.generation => {
                    sleepers.slots.remove(slot)
                }
                _ => return,
            }
        };
        self.wake_sleeper(sleeper);
    }

    /// A sleeper's socket became readable. A lone PINGREQ, which is what an idle client
    /// sends most (its keep-alive), is answered in place; anything else wakes it.
    fn on_readable(&self, ticket: Ticket) {
        let sleeper = {
            let mut sleepers = lock(&self.shared.sleepers);
            let slot = ticket.slot as usize;
            match sleepers.slots.get_mut(slot) {
                Some(sleeper) if sleeper.generation == ticket.generation => {
                    let Asleep { conn, stream } = &mut *sleeper.asleep;
                    match stream.on_readable(&sleeper.socket, conn) {
                        Answer::Answered => {
                            Metrics::inc(&conn.broker().metrics().hibernated_pings_answered);
                            return;
                        }
                        Answer::Nothing => return,
                        Answer::Wake => sleepers.slots.remove(slot),
                    }
                }
                _ => return,
            }
        };
        self.wake_sleeper(sleeper);
    }

    /// Wakes the sleepers whose deadline passed by `now`; a stream timer that came (a
    /// WebSocket ping) is served in place if it can be.
    fn expire(&self, now: Instant) {
        let mut due = Vec::new();
        {
            let mut sleepers = lock(&self.shared.sleepers);
            let Sleepers {
                slots, deadlines, ..
            } = &mut *sleepers;
            deadlines.advance(now, |ticket, second_ends| {
                let slot = ticket.slot as usize;
                match slots.get_mut(slot) {
                    Some(sleeper) if sleeper.generation == ticket.generation => {
                        let asleep = &mut *sleeper.asleep;
                        let conn_due = asleep
                            .conn
                            .deadline()
                            .is_some_and(|at| Instant::from_std(at) <= second_ends);
                        let stream_due = asleep.stream.timer().is_some_and(|at| at <= second_ends);
                        if !conn_due
                            && (!stream_due || asleep.stream.on_timer(&sleeper.socket, now))
                        {
                            return match asleep.next_deadline() {
                                Some(at) => Keep::Until(at),
                                None => Keep::No,
                            };
                        }
                        due.push(slots.remove(slot));
                        Keep::No
                    }
                    // Woken meanwhile (the slot may hold another sleeper by now).
                    _ => Keep::No,
                }
            });
        }
        for sleeper in due {
            self.wake_sleeper(sleeper);
        }
    }

    fn wake_sleeper(&self, sleeper: Sleeper<D>) {
        let Sleeper { socket, asleep, .. } = sleeper;
        let Asleep { conn, stream } = *asleep;
        let metrics = conn.broker().metrics();
        Metrics::dec(&metrics.connections_hibernated);
        Metrics::inc(&metrics.hibernated_wakes);
        let _ = self
            .shared
            .registry
            .deregister(&mut SourceFd(&socket.as_raw_fd()));
        tracing::trace!(peer = %conn.peer(), "connection wakes");
        self.wake_up(socket, stream, conn);
    }

    /// Gives a connection a task again. Its first turn looks at everything a sleeping
    /// connection does not: input, session news, its deadline, shutdown.
    fn wake_up(&self, socket: std::net::TcpStream, dormant: D, mut conn: Connection) {
        match TcpStream::from_std(socket) {
            Ok(socket) => self.run(dormant.wake(socket), conn),
            Err(error) => {
                tracing::warn!(peer = %conn.peer(), %error, "could not wake a hibernated connection: closing it");
                conn.on_closed();
            }
        }
    }

    /// Shutdown: wakes every sleeper (each then says goodbye as a connection with a task
    /// would) and takes no new ones.
    fn wake_all(&self) {
        let sleepers: Vec<Sleeper<D>> = {
            let mut sleepers = lock(&self.shared.sleepers);
            sleepers.closed = true;
            sleepers.deadlines.clear();
            sleepers.slots.drain().collect()
        };
        for sleeper in sleepers {
            self.wake_sleeper(sleeper);
        }
    }
}

/// What a sleeper's readable socket asked for.
pub(crate) enum Answer {
    /// A keep-alive (a PINGREQ), answered; the connection sleeps on (its keep-alive
    /// restarted, so its entry in the wheel is filed again when its old second comes).
    Answered,
    /// Nothing that needs the connection: nothing to read after all, or only what the
    /// stream takes by itself (a WebSocket pong).
    Nothing,
    /// Anything else: the connection must wake and read it itself.
    Wake,
}

/// What a quiet stream keeps besides its socket while its connection sleeps, and what it
/// does asleep.
pub(crate) trait Dormant: Send + Sized + 'static {
    /// The stream the connection gets back when it wakes.
    type Stream: Sleepable<Dormant = Self>;

    /// The stream again, over the same socket.
    fn wake(self, socket: TcpStream) -> Self::Stream;

    /// When the stream needs [`Dormant::on_timer`]; `None`: never.
    fn timer(&self) -> Option<Instant> {
        None
    }

    /// The stream's timer came (`now` is at or past it): `true` when served in place,
    /// `false` when the connection must wake for it.
    fn on_timer(&mut self, _socket: &std::net::TcpStream, _now: Instant) -> bool {
        false
    }

    /// The socket became readable: answers a lone keep-alive in place (through
    /// [`Connection::answer_asleep`]), or says the connection must wake.
    fn on_readable(&mut self, socket: &std::net::TcpStream, conn: &mut Connection) -> Answer;
}

/// A stream whose connection can sleep: once the task found it quiet
/// ([`ConnectionIo::busy`] false) its socket and its [`Dormant`] part stand for it.
pub(crate) trait Sleepable: ConnectionIo + Send + 'static {
    type Dormant: Dormant;

    fn into_dormant(self) -> (TcpStream, Self::Dormant);
}

/// Plain TCP keeps nothing but its socket.
pub(crate) struct Plain;

impl Dormant for Plain {
    type Stream = TcpStream;

    fn wake(self, socket: TcpStream) -> TcpStream {
        socket
    }

    /// Answers a lone PINGREQ waiting on the socket. It is only peeked at until the
    /// connection took it, and consumed before the reply is written: a reply the socket
    /// does not take whole is left in the connection's output, which its task writes first
    /// when it wakes, so the client never gets two.
    fn on_readable(&mut self, socket: &std::net::TcpStream, conn: &mut Connection) -> Answer {
        // One byte more than a PINGREQ: a PINGREQ with anything after it wakes the connection.
        let mut peeked = [0u8; 3];
        let n = match socket.peek(&mut peeked) {
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Answer::Nothing,
            Err(_) => return Answer::Wake,
        };
        let now = std::time::Instant::now();
        if n != 2 || !conn.answer_asleep(&peeked[..n], now) {
            return Answer::Wake;
        }
        let mut ping = [0u8; 2];
        if !matches!((&*socket).read(&mut ping), Ok(2)) {
            return Answer::Wake;
        }
        let output = conn.output();
        match (&*socket).write(output) {
            Ok(written) => output.advance(written),
            Err(_) => return Answer::Wake,
        }
        if !output.is_empty() {
            return Answer::Wake;
        }
        // A sleeper keeps no buffer.
        *output = bytes::BytesMut::new();
        Answer::Answered
    }
}

impl Sleepable for TcpStream {
    type Dormant = Plain;

    fn into_dormant(self) -> (TcpStream, Plain) {
        (self, Plain)
    }
}

/// After a PROXY header: once the bytes read past the header are consumed, the socket.
impl Sleepable for Rewind<TcpStream> {
    type Dormant = Plain;

    fn into_dormant(self) -> (TcpStream, Plain) {
        let (prefix, socket) = self.into_parts();
        debug_assert!(prefix.is_empty(), "a quiet connection has nothing buffered");
        (socket, Plain)
    }
}

/// A connection's life with hibernation: its task, and when that ends quiet, sleep.
pub(crate) fn serve<S: Sleepable>(
    stream: S,
    conn: Connection,
    hibernation: Hibernation<S::Dormant>,
) -> impl Future<Output = ()> {
    let mut task = Task::new(stream, conn);
    // Built outside the block, as in `run_connection`: an `async fn` would keep its
    // arguments next to `task` for the connection's whole life. (The idle limit is made
    // inside: kept beside `task` it would grow a WebSocket's task past its 768-byte cell.)
    async move {
        let idle = IdleLimit::new(hibernation.after());
        if task.run(Some(idle)).await == Outcome::Quiet {
            let (stream, conn) = task.into_parts();
            let (socket, dormant) = stream.into_dormant();
            hibernation.hibernate(socket, dormant, conn);
        }
    }
}

/// The epoll instance of the sleepers' sockets, itself watched by tokio's reactor.
struct EpollSet(mio::Poll);

impl AsRawFd for EpollSet {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// The watcher: wakes sleepers whose socket became readable, whose session woke them or
/// whose deadline passed, until shutdown wakes them all.
async fn watch<D: Dormant>(
    mut poll: AsyncFd<EpollSet>,
    shared: Arc<Shared<D>>,
    shutdown: CancellationToken,
) {
    let hibernation = Hibernation {
        shared: Arc::clone(&shared),
    };
    drop(shared);
    let mut events = Events::with_capacity(EVENTS_PER_POLL);
    let mut woken = Vec::new();
    loop {
        let tick = lock(&hibernation.shared.sleepers).deadlines.next_tick();
        let readable = tokio::select! {
            () = shutdown.cancelled() => break,
            () = hibernation.shared.news.notified() => None,
            () = tokio::time::sleep_until(tick) => {
                hibernation.expire(Instant::now());
                continue;
            }
            guard = poll.readable_mut() => Some(guard),
        };
        if let Some(guard) = readable {
            let Ok(mut guard) = guard else {
                tracing::error!(
                    "the hibernation epoll set failed: every hibernated connection is woken, and no more hibernate on this listener"
                );
                break;
            };
            loop {
                let polled = guard
                    .get_inner_mut()
                    .0
                    .poll(&mut events, Some(Duration::ZERO));
                match polled {
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => {
                        tracing::warn!(%error, "polling the hibernation epoll set failed");
                        guard.clear_ready();
                        break;
                    }
                    Ok(()) if events.is_empty() => {
                        // Drained: tokio reports the set readable again on its next event.
                        guard.clear_ready();
                        break;
                    }
                    Ok(()) => {}
                }
                for event in events.iter() {
                    hibernation.on_readable(Ticket::from_token(event.token()));
                }
            }
        }
        std::mem::swap(&mut woken, &mut *lock(&hibernation.shared.woken));
        for ticket in woken.drain(..) {
            hibernation.resume(ticket);
        }
    }
    hibernation.wake_all();
}
