//! The session registry: which sessions exist, which connection each one is attached to,
//! takeover when a client id connects twice, and what happens when a connection goes away
//! (wills, Will Delay Interval, Session Expiry Interval).
//!
//! Lock order (never take an earlier lock while holding a later one):
//! `Vhost::sessions` -> `SessionHandle::inner` -> `Vhost::router` -> `Vhost::retained`.
//! In practice the last three are never nested: routing collects targets under the router
//! lock, releases it, then locks each session. Two `SessionHandle::inner` locks are never
//! held at once (so a publisher that is its own subscriber takes its lock once), and wakers
//! are woken after the lock that yielded them is released; `backpressure.rs` follows the
//! same rules for the publishers waiting in a session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use ferrymq_codec::{QoS, ReasonCode};
use ferrymq_session::{
    ConnectionState, Delivery, Enqueue, Message, Outgoing, QueueLimits, SessionState, Transmitted,
};

use crate::Broker;
use crate::backpressure::{Congestion, Offered, Publisher};
use crate::clients::Attachment;
use crate::metrics::Metrics;
use crate::vhost::Vhost;

/// A session and the means to wake the connection serving it.
#[derive(Debug)]
pub struct SessionHandle {
    pub client_id: Arc<str>,
    /// The vhost the session lives in; its routes and registry entry are there.
    pub vhost: Arc<Vhost>,
    inner: Mutex<SessionInner>,
    /// Mirrors `inner.attached().is_some()` for lock-free checks by the shared-subscription picker.
    online: AtomicBool,
}

#[derive(Debug)]
pub(crate) struct SessionInner {
    pub(crate) state: SessionState,
    /// The connection serving this session, or when the last one ended.
    link: Link,
    /// Set when the attached connection must go: the reason it is told (v5 DISCONNECT).
    /// With the connection detached it was taken over; with it still attached it was
    /// closed on request ([`crate::Broker::close_connection`]).
    pub(crate) kick: Option<ReasonCode>,
    /// The session was removed from the registry; deliveries are refused.
    pub(crate) ended: bool,
    /// Bumped on every attach so that timers armed for an older disconnect do nothing.
    pub(crate) generation: u32,
    /// The attached connection's task, woken on deliveries or when it is kicked. A waker
    /// under the lock we take anyway, rather than a `Notify`: the connection task then
    /// needs no 64-byte `Notified` future of its own while idle (see `poll_news`).
    waker: Option<Waker>,
    /// News for the attached connection arrived since it last looked.
    pub(crate) news: bool,
    /// What holds the attached connection up besides the broker: whether its write is
    /// blocked (then deliveries only set `news` instead of waking it: it could not send
    /// them, and waking it for each one only burns the CPU its publishers need; takeovers,
    /// kicks and other news always wake) and whether its last turn left deliveries queued
    /// that only its client can let out, by acknowledging what is in flight.
    pub(crate) held: Held,
    /// Publishers waiting for room in the queue (back-pressure), while there are any.
    pub(crate) congestion: Option<Box<Congestion>>,
}

/// Two flags in one byte: as two `bool`s they made `SessionHandle` 8 bytes larger, which
/// in bulk moves its allocation from mimalloc's 320-byte blocks to its 384-byte ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Held(u8);

impl Held {
    const WRITE_BLOCKED: u8 = 1;
    const WINDOW_FULL: u8 = 2;

    /// The connection's write is blocked: deliveries do not wake it.
    pub(crate) fn write_blocked(self) -> bool {
        self.0 & Self::WRITE_BLOCKED != 0
    }

    /// The in-flight window is full: only the client's acknowledgements let more out.
    pub(crate) fn window_full(self) -> bool {
        self.0 & Self::WINDOW_FULL != 0
    }

    pub(crate) fn set_write_blocked(&mut self, blocked: bool) {
        self.set(Self::WRITE_BLOCKED, blocked);
    }

    pub(crate) fn set_window_full(&mut self, full: bool) {
        self.set(Self::WINDOW_FULL, full);
    }

    fn set(&mut self, bit: u8, on: bool) {
        match on {
            true => self.0 |= bit,
            false => self.0 &= !bit,
        }
    }
}

/// Whether a connection serves the session. One field rather than the connection's id, its
/// record and the disconnection time side by side, as only one side is ever in use: 48
/// bytes instead of 80 in every session.
#[derive(Debug)]
enum Link {
    /// Connection `id` serves the session; `client` describes it once its CONNECT is done.
    Attached { id: u64, client: Option<Attachment> },
    /// No connection serves the session since `since` (`None`: none ever did, or it was
    /// just taken over and the new one is about to attach).
    Detached { since: Option<Instant> },
}

impl SessionInner {
    /// Id of the connection currently serving this session.
    pub(crate) fn attached(&self) -> Option<u64> {
        match self.link {
            Link::Attached { id, .. } => Some(id),
            Link::Detached { .. } => None,
        }
    }

    /// Who the attached connection is, for the management API; `None` while detached.
    pub(crate) fn client(&self) -> Option<&Attachment> {
        match &self.link {
            Link::Attached { client, .. } => client.as_ref(),
            Link::Detached { .. } => None,
        }
    }

    /// Records who connection `id` is, if it still serves the session.
    pub(crate) fn set_client(&mut self, id: u64, record: Attachment) {
        if let Link::Attached {
            id: attached,
            client,
        } = &mut self.link
            && *attached == id
        {
            *client = Some(record);
        }
    }

    /// When the last connection ended; `None` while one is attached.
    fn disconnected_at(&self) -> Option<Instant> {
        match self.link {
            Link::Attached { .. } => None,
            Link::Detached { since } => since,
        }
    }

    fn will_due_at(&self) -> Option<Instant> {
        self.state.will_due_at(self.disconnected_at())
    }

    fn expires_at(&self) -> Option<Instant> {
        self.state.expires_at(self.disconnected_at())
    }

    /// Tells the attached connection there is news; the caller wakes the returned task
    /// after releasing the lock.
    pub(crate) fn signal(&mut self) -> Option<Waker> {
        self.news = true;
        self.waker.take()
    }

    /// One turn of the attached connection: moves queued deliveries into `out` as far as
    /// its window and `budget` allow (QoS 0 ones left to build after the lock is released,
    /// see [`SessionState::take_for_transmit`]), then lets publishers waiting for room in. Returns what
    /// was dropped on the way and the publishers to wake once the lock is released.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn transmit(
        &mut self,
        conn: &mut ConnectionState,
        now: Instant,
        max_inflight: u16,
        budget: usize,
        out: &mut Vec<Outgoing>,
        limits: QueueLimits,
        metrics: &Metrics,
    ) -> (Transmitted, Vec<Waker>) {
        let queued = self.state.queued_len();
        let transmitted = self
            .state
            .take_for_transmit(conn, now, max_inflight, budget, out);
        let progressed = self.state.queued_len() < queued;
        let wake = self.admit_parked(progressed, transmitted.window_full, limits, now, metrics);
        (transmitted, wake)
    }
}

/// What routing did with one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    Accepted,
    /// Not kept: QoS 0 to an offline session, or the session ended meanwhile.
    Skipped,
    Refused,
    /// Waiting for room in the queue of the connected session: the publisher must hold back
    /// its acknowledgement (see `backpressure.rs`).
    Parked,
}

impl SessionHandle {
    fn new(client_id: Arc<str>, vhost: Arc<Vhost>) -> SessionHandle {
        SessionHandle {
            vhost,
            inner: Mutex::new(SessionInner {
                state: SessionState::new(),
                link: Link::Detached { since: None },
                kick: None,
                ended: false,
                generation: 0,
                waker: None,
                news: false,
                held: Held::default(),
                congestion: None,
            }),
            client_id,
            online: AtomicBool::new(false),
        }
    }

    /// Locks the session. A poisoned lock means a panic elsewhere already broke an invariant
    /// of this one session; we keep serving it rather than spreading the panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SessionInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ready when the session has news for connection `connection_id`: deliveries, or the
    /// connection is no longer the attached one (taken over). News that arrives while the
    /// connection is busy is kept, so none is lost between polls.
    pub(crate) fn poll_news(&self, connection_id: u64, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.lock();
        inner.client_caught_up();
        Self::register_for_news(&mut inner, connection_id, cx)
    }

    /// [`SessionHandle::poll_news`] for a connection whose write is blocked at `now`: new
    /// deliveries until the next poll are noted but do not wake the task (it could not send
    /// them), and QoS 0 publishers waiting for room are let go once its client has been
    /// behind for the hold (see [`SessionInner::client_behind`]).
    pub(crate) fn poll_news_while_writing(
        &self,
        connection_id: u64,
        cx: &mut Context<'_>,
        now: Instant,
        limits: QueueLimits,
        metrics: &Metrics,
    ) -> Poll<()> {
        let mut inner = self.lock();
        let released = inner.client_behind(now, limits, metrics);
        let news = Self::register_for_news(&mut inner, connection_id, cx);
        drop(inner);
        released.into_iter().for_each(Waker::wake);
        news
    }

    fn register_for_news(
        inner: &mut SessionInner,
        connection_id: u64,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if inner.attached() != Some(connection_id) || std::mem::take(&mut inner.news) {
            return Poll::Ready(());
        }
        match &mut inner.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Asks the attached connection to close, telling v5 clients `reason`; `false` when no
    /// connection is attached. (The connection sees `kick` while still attached, which
    /// tells this apart from a takeover.)
    pub(crate) fn kick(&self, reason: ReasonCode) -> bool {
        let mut inner = self.lock();
        if inner.attached().is_none() {
            return false;
        }
        inner.kick = Some(reason);
        let waker = inner.signal();
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Wakes the attached connection: it has news (its rights changed, say) and will look.
    pub(crate) fn notify(&self) {
        let waker = self.lock().signal();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub(crate) fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Queues a delivery and wakes the connection. QoS 0 messages, and messages that expire
    /// on arrival, are not kept for a disconnected client (as Mosquitto's default for QoS 0).
    /// With a `publisher` that may wait, a delivery that does not fit the queue of this
    /// connected session is parked instead of dropped or refused: any QoS 1/2 one, and a
    /// QoS 0 one unless the subscriber has been held up by its client for a while (at most
    /// once allows the loss, and a slow client must not slow its publishers down; see
    /// [`SessionInner::qos0_may_wait`]).
    pub(crate) fn deliver(
        &self,
        delivery: Delivery,
        limits: QueueLimits,
        metrics: &Metrics,
        publisher: Option<Publisher>,
    ) -> Delivered {
        let mut inner = self.lock();
        let offline_skips = delivery.qos == QoS::AtMostOnce || delivery.message.expires_on_arrival;
        if inner.ended || (inner.attached().is_none() && offline_skips) {
            return Delivered::Skipped;
        }
        let may_wait = inner.attached().is_some()
            && (delivery.qos != QoS::AtMostOnce
                || publisher.is_some_and(|p| inner.qos0_may_wait(p.now)))
            // One that could never fit would only wait for the timeout.
            && delivery.message.weight() <= limits.max_bytes;
        let outcome = match publisher {
            Some(publisher) if may_wait => match inner.offer_or_park(delivery, limits, publisher) {
                Offered::Done(outcome) => outcome,
                Offered::Parked => return Delivered::Parked,
            },
            _ => inner.state.enqueue(delivery, limits),
        };
        let waker = match outcome {
            Enqueue::Refused => None,
            _ if inner.attached().is_none() => None,
            _ if !inner.held.write_blocked() => inner.signal(),
            _ => {
                inner.news = true;
                None
            }
        };
        drop(inner);
        match outcome {
            Enqueue::Queued => {}
            Enqueue::QueuedAfterDropping(n) => {
                Metrics::add(&metrics.messages_dropped_queue_full, n as u64)
            }
            Enqueue::Refused => {
                Metrics::inc(&metrics.messages_dropped_queue_full);
                return Delivered::Refused;
            }
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        Delivered::Accepted
    }
}

/// Result of attaching a new connection to a session.
pub(crate) struct Attached {
    pub(crate) session: Arc<SessionHandle>,
    pub(crate) session_present: bool,
}

/// How a connection ended, as far as wills and sessions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// The client sent DISCONNECT (v5 reason 0x00): the will is discarded [MQTT-3.14.4-3].
    Normal,
    /// v5 DISCONNECT 0x04 "Disconnect with Will Message": publish the will.
    NormalWithWill,
    /// Anything else: socket error, keep-alive expiry, protocol error, server shutdown.
    Abnormal,
    /// Another connection took the session over.
    TakenOver,
}

impl Broker {
    /// Finds or creates the session for `client_id` and attaches connection `connection_id`
    /// to it, kicking any connection already attached (takeover [MQTT-3.1.4-3]).
    pub(crate) fn attach(
        self: &Arc<Self>,
        vhost: &Arc<Vhost>,
        client_id: &Arc<str>,
        connection_id: u64,
        clean_start: bool,
        now: Instant,
    ) -> Attached {
        let mut sessions = vhost.lock_sessions();
        let existing = sessions.get(client_id).cloned();
        let mut previous_will = None;
        let mut old_to_end = None;
        let mut kicked = None;
        let mut released = Vec::new();
        let mut session_present = false;
        let session = match existing {
            Some(handle) => {
                let mut inner = handle.lock();
                if inner.attached().is_some() {
                    inner.kick = Some(ReasonCode::SessionTakenOver);
                    inner.link = Link::Detached { since: None };
                    handle.online.store(false, Ordering::Relaxed);
                    kicked = inner.signal();
                    Metrics::inc(&self.metrics.session_takeovers);
                    // The old connection closes now; its will goes out unless it is delayed and
                    // the session continues [MQTT-3.1.3-9].
                    let delayed = inner
                        .state
                        .will
                        .as_ref()
                        .is_some_and(|w| w.properties.will_delay_interval.unwrap_or(0) > 0);
                    if !delayed || clean_start || inner.state.expiry_interval == 0 {
                        previous_will = inner.state.will.take();
                    }
                } else if !clean_start {
                    // Reconnected before the will delay elapsed: the will is not sent.
                    inner.state.will = None;
                }
                if clean_start {
                    previous_will = previous_will.or_else(|| inner.state.will.take());
                    inner.ended = true;
                    released = inner.release_parked(self.queue_limits(), &self.metrics);
                    drop(inner);
                    old_to_end = Some(handle);
                    let fresh = Arc::new(SessionHandle::new(client_id.clone(), vhost.clone()));
                    sessions.insert(client_id.clone(), fresh.clone());
                    fresh
                } else {
                    session_present = true;
                    drop(inner);
                    handle
                }
            }
            None => {
                let fresh = Arc::new(SessionHandle::new(client_id.clone(), vhost.clone()));
                sessions.insert(client_id.clone(), fresh.clone());
                Metrics::inc(&self.metrics.sessions);
                fresh
            }
        };
        {
            let mut inner = session.lock();
            inner.link = Link::Attached {
                id: connection_id,
                client: None,
            };
            inner.kick = None;
            // News for the previous connection is not for this one: it transmits what
            // is queued once CONNECT is done.
            inner.news = false;
            // Nor is what held the previous connection up.
            inner.held = Held::default();
            inner.generation = inner.generation.wrapping_add(1);
            session.online.store(true, Ordering::Relaxed);
        }
        drop(sessions);
        if let Some(waker) = kicked {
            waker.wake();
        }
        released.into_iter().for_each(Waker::wake);
        if let Some(old) = old_to_end {
            self.forget_subscriptions(&old);
            self.redistribute_shared(&old);
        }
        if let Some(will) = previous_will {
            self.publish_will(vhost, *will, client_id.clone(), now);
        }
        Attached {
            session,
            session_present,
        }
    }

    /// Detaches connection `connection_id` from its session after the connection closed.
    /// Does nothing when another connection took the session over meanwhile.
    pub(crate) fn detach(
        self: &Arc<Self>,
        session: &Arc<SessionHandle>,
        connection_id: u64,
        kind: CloseKind,
        now: Instant,
    ) {
        let mut inner = session.lock();
        if inner.attached() != Some(connection_id) {
            return;
        }
        inner.link = Link::Detached { since: Some(now) };
        // A waker keeps its (finished) task's memory alive: drop it with the connection.
        inner.waker = None;
        inner.news = false;
        session.online.store(false, Ordering::Relaxed);
        inner.state.discard_queued_qos0();
        if kind == CloseKind::Normal {
            inner.state.will = None;
        }
        let generation = inner.generation;
        let ends_now = inner.state.expiry_interval == 0;
        // Offline sessions hold no publisher back. (One that ends now releases them as it
        // ends: what waited is then skipped, not refused.)
        let released = match ends_now {
            true => Vec::new(),
            false => inner.release_parked(self.queue_limits(), &self.metrics),
        };
        let has_timer = inner.will_due_at().is_some() || inner.expires_at().is_some();
        drop(inner);
        released.into_iter().for_each(Waker::wake);
        self.redistribute_shared(session);
        if ends_now {
            self.end_session(session, now);
        } else if has_timer {
            self.arm_offline_timer(session.clone(), generation);
        }
    }

    /// One task per disconnected session with a pending will or expiry: sleeps until the
    /// earliest deadline (tokio's timer wheel, no scanning), then acts if nothing changed.
    fn arm_offline_timer(self: &Arc<Self>, session: Arc<SessionHandle>, generation: u32) {
        let broker = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let deadline = {
                    let inner = session.lock();
                    if inner.generation != generation || inner.attached().is_some() || inner.ended {
                        return;
                    }
                    match (inner.will_due_at(), inner.expires_at()) {
                        (Some(a), Some(b)) => a.min(b),
                        (Some(a), None) | (None, Some(a)) => a,
                        (None, None) => return,
                    }
                };
                tokio::time::sleep_until(deadline.into()).await;
                let now = Instant::now();
                let (will, expired) = {
                    let mut inner = session.lock();
                    if inner.generation != generation || inner.attached().is_some() || inner.ended {
                        return;
                    }
                    let will = match inner.will_due_at() {
                        Some(due) if due <= now => inner.state.will.take(),
                        _ => None,
                    };
                    let expired = inner.expires_at().is_some_and(|at| at <= now);
                    (will, expired)
                };
                if let Some(will) = will {
                    broker.publish_will(&session.vhost, *will, session.client_id.clone(), now);
                }
                if expired {
                    Metrics::inc(&broker.metrics.sessions_expired);
                    broker.end_session(&session, now);
                    return;
                }
            }
        });
    }

    /// Removes a session: from the registry (if still the registered one), from the
    /// subscription index; its pending will goes out [MQTT-3.1.3-9].
    pub(crate) fn end_session(self: &Arc<Self>, session: &Arc<SessionHandle>, now: Instant) {
        {
            let mut sessions = session.vhost.lock_sessions();
            if sessions
                .get(&session.client_id)
                .is_some_and(|s| Arc::ptr_eq(s, session))
            {
                sessions.remove(&session.client_id);
                Metrics::dec(&self.metrics.sessions);
            }
        }
        let (will, released) = {
            let mut inner = session.lock();
            inner.ended = true;
            let released = inner.release_parked(self.queue_limits(), &self.metrics);
            (inner.state.will.take(), released)
        };
        released.into_iter().for_each(Waker::wake);
        self.forget_subscriptions(session);
        if let Some(will) = will {
            self.publish_will(&session.vhost, *will, session.client_id.clone(), now);
        }
    }

    fn publish_will(
        self: &Arc<Self>,
        vhost: &Vhost,
        will: ferrymq_codec::LastWill,
        client_id: Arc<str>,
        now: Instant,
    ) {
        tracing::debug!(vhost = %vhost.name, client_id = %client_id, topic = %will.topic, "publishing will");
        Metrics::inc(&self.metrics.wills_published);
        let message = Message::from_will(will, now, Some(client_id));
        self.publish(vhost, message);
    }
}
