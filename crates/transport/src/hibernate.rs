//! Idle MQTT/TCP connections hibernate: after `hibernate_after` without traffic a
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
//! Only plain TCP sleeps: a TLS stream keeps decrypted bytes and session state of its own,
//! and a WebSocket stream its frame state and ping timer, that the socket's readiness
//! cannot stand for.

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

/// The sleeping connections of one listener. Cloning shares them.
#[derive(Clone)]
pub struct Hibernation {
    shared: Arc<Shared>,
}

struct Shared {
    /// How long a connection must be quiet before it sleeps (it sleeps at the first check
    /// after that, so after at most twice this).
    after: Duration,
    /// Registers and deregisters sleepers' sockets in the epoll set that the watcher polls.
    registry: mio::Registry,
    sleepers: Mutex<Sleepers>,
    /// Sleepers whose session woke them, for the watcher. Separate from `sleepers`
    /// because sessions wake under their own lock, which `hibernate` takes while holding
    /// `sleepers`.
    woken: Mutex<Vec<Ticket>>,
    news: tokio::sync::Notify,
}

struct Sleepers {
    slots: Slab<Sleeper>,
    /// Each sleeper's deadline (keep-alive, token expiry), to the second.
    deadlines: Wheel<Ticket>,
    next_generation: u32,
    /// The broker is shutting down: every sleeper was woken and no new one is taken.
    closed: bool,
}

/// 16 bytes: its deadline is not kept here but asked of the connection when the wheel
/// comes to it (a sleeping connection's deadline does not move).
struct Sleeper {
    socket: std::net::TcpStream,
    generation: u32,
    conn: Box<Connection>,
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
struct Alarm {
    shared: Weak<Shared>,
    ticket: Ticket,
}

impl Wake for Alarm {
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

impl Hibernation {
    /// Starts the watcher task of one listener: connections quiet for `after` sleep until
    /// their socket, session or deadline needs them, or until `shutdown`.
    pub fn start(after: Duration, shutdown: CancellationToken) -> io::Result<Hibernation> {
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

    /// How long a connection must be quiet before it sleeps.
    pub fn after(&self) -> Duration {
        self.shared.after
    }

    /// Serves a connection over `stream` (a task of its own, as
    /// [`crate::driver::run_connection`]), letting it sleep here whenever it is quiet.
    pub(crate) fn run<S: Sleepable>(&self, stream: S, conn: Connection) {
        tokio::spawn(serve(stream, conn, self.clone()));
    }

    /// Puts a quiet connection to sleep, or, if something already needs it, serves it on.
    fn hibernate(&self, stream: TcpStream, conn: Connection) {
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
            return self.wake_up(socket, conn);
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
            return self.wake_up(socket, conn);
        }
        // Edge-triggered, and reported at once if bytes arrived since the task last read.
        let registered = self.shared.registry.register(
            &mut SourceFd(&socket.as_raw_fd()),
            ticket.token(),
            Interest::READABLE,
        );
        if let Err(error) = registered {
            tracing::debug!(peer = %conn.peer(), %error, "could not hibernate");
            return self.wake_up(socket, conn);
        }
        if let Some(at) = conn.deadline() {
            let second = sleepers.deadlines.second_of(at.into());
            sleepers.deadlines.insert(second, ticket);
        }
        Metrics::inc(&conn.broker().metrics().connections_hibernated);
        tracing::trace!(peer = %conn.peer(), "connection hibernates");
        entry.insert(Sleeper {
            socket,
            generation: ticket.generation,
            conn: Box::new(conn),
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
                    match answer_ping(sleeper) {
                        Answer::Answered => {
                            Metrics::inc(
                                &sleeper.conn.broker().metrics().hibernated_pings_answered,
                            );
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

    /// Wakes the sleepers whose deadline passed by `now`.
    fn expire(&self, now: Instant) {
        let mut due = Vec::new();
        {
            let mut sleepers = lock(&self.shared.sleepers);
            let Sleepers {
                slots, deadlines, ..
            } = &mut *sleepers;
            deadlines.advance(now, |ticket, second_ends| {
                let slot = ticket.slot as usize;
                match slots.get(slot) {
                    Some(sleeper) if sleeper.generation == ticket.generation => {
                        let deadline = sleeper.conn.deadline().map(Instant::from_std);
                        if let Some(at) = deadline
                            && at > second_ends
                        {
                            return Keep::Until(at);
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

    fn wake_sleeper(&self, sleeper: Sleeper) {
        let Sleeper { socket, conn, .. } = sleeper;
        let metrics = conn.broker().metrics();
        Metrics::dec(&metrics.connections_hibernated);
        Metrics::inc(&metrics.hibernated_wakes);
        let _ = self
            .shared
            .registry
            .deregister(&mut SourceFd(&socket.as_raw_fd()));
        tracing::trace!(peer = %conn.peer(), "connection wakes");
        self.wake_up(socket, *conn);
    }

    /// Gives a connection a task again. Its first turn looks at everything a sleeping
    /// connection does not: input, session news, its deadline, shutdown.
    fn wake_up(&self, socket: std::net::TcpStream, mut conn: Connection) {
        match TcpStream::from_std(socket) {
            Ok(stream) => self.run(stream, conn),
            Err(error) => {
                tracing::warn!(peer = %conn.peer(), %error, "could not wake a hibernated connection: closing it");
                conn.on_closed();
            }
        }
    }

    /// Shutdown: wakes every sleeper (each then says goodbye as a connection with a task
    /// would) and takes no new ones.
    fn wake_all(&self) {
        let sleepers: Vec<Sleeper> = {
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
enum Answer {
    /// A PINGREQ, answered; the connection sleeps on (its keep-alive restarted, so its
    /// entry in the wheel is filed again when its old second comes).
    Answered,
    /// Nothing to read after all.
    Nothing,
    /// Anything else: the connection must wake and read it itself.
    Wake,
}

/// Answers a lone PINGREQ waiting on a sleeper's socket. It is only peeked at until the
/// connection took it, and consumed before the reply is written: a reply the socket does
/// not take whole is left in the connection's output, which its task writes first when it
/// wakes, so the client never gets two.
fn answer_ping(sleeper: &mut Sleeper) -> Answer {
    // One byte more than a PINGREQ: a PINGREQ with anything after it wakes the connection.
    let mut peeked = [0u8; 3];
    let n = match sleeper.socket.peek(&mut peeked) {
        Ok(n) => n,
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Answer::Nothing,
        Err(_) => return Answer::Wake,
    };
    let now = std::time::Instant::now();
    if n != 2 || !sleeper.conn.answer_asleep(&peeked[..n], now) {
        return Answer::Wake;
    }
    let mut ping = [0u8; 2];
    if !matches!((&sleeper.socket).read(&mut ping), Ok(2)) {
        return Answer::Wake;
    }
    let output = sleeper.conn.output();
    match (&sleeper.socket).write(output) {
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

/// A stream whose connection can sleep: its socket alone stands for it once the task
/// found it quiet ([`ConnectionIo::buffered`] false).
pub(crate) trait Sleepable: ConnectionIo + Send + 'static {
    fn into_socket(self) -> TcpStream;
}

impl Sleepable for TcpStream {
    fn into_socket(self) -> TcpStream {
        self
    }
}

/// After a PROXY header: once the bytes read past the header are consumed, the socket.
impl Sleepable for Rewind<TcpStream> {
    fn into_socket(self) -> TcpStream {
        let (prefix, socket) = self.into_parts();
        debug_assert!(prefix.is_empty(), "a quiet connection has nothing buffered");
        socket
    }
}

/// A connection's life with hibernation: its task, and when that ends quiet, sleep.
pub(crate) fn serve<S: Sleepable>(
    stream: S,
    conn: Connection,
    hibernation: Hibernation,
) -> impl Future<Output = ()> {
    let mut task = Task::new(stream, conn);
    let idle = IdleLimit::new(hibernation.after());
    // Built outside the block, as in `run_connection`: an `async fn` would keep its
    // arguments next to `task` for the connection's whole life.
    async move {
        if task.run(Some(idle)).await == Outcome::Quiet {
            let (stream, conn) = task.into_parts();
            hibernation.hibernate(stream.into_socket(), conn);
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
async fn watch(mut poll: AsyncFd<EpollSet>, shared: Arc<Shared>, shutdown: CancellationToken) {
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
