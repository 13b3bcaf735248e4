//! Back-pressure for QoS 1/2 messages: the subscriber's side. When a message for a connected
//! subscriber does not fit its queue, the delivery is parked here, in the subscriber's
//! session, instead of being dropped; the publishing connection stops reading its socket and
//! holds back its PUBACK/PUBREC (see `connection/backpressure.rs`) until the delivery has
//! been let into the queue or given up.
//!
//! QoS 0 deliveries wait the same way while the broker is behind with the subscriber, but
//! while its *client* is behind (its connection's write is blocked) only for the first
//! [`QOS0_HOLD`] of that, and not at all while its in-flight window is full: then the
//! overflow policy drops the oldest QoS 0 message instead (see [`SessionInner::qos0_may_wait`]).
//!
//! Parked deliveries wait in arrival order. When the subscriber's connection has sent enough
//! for its queue to fall to the low-water mark (half its limits), they are moved into the
//! queue, oldest first, as far as they fit, and their publishers are woken. While any
//! delivery waits, new QoS 1/2 deliveries to that subscriber wait behind it even if there is
//! room, so a publisher that parked is not overtaken indefinitely by ones that did not.
//! Moving the delivery itself (rather than waking the publisher to try again) means it is in
//! exactly one place at any time: the queue, the waiting list, or given up; never twice.
//!
//! Bounds: a publishing connection parks at most one message at a time, so a session's list
//! holds one entry per blocked publisher (two when a message reached the session both through
//! a subscription and a shared group). The list exists only while the session is congested.
//! A subscriber that sends nothing from its queue for `publish_backpressure_timeout` is
//! *stalled*: its waiting publishers give up (their deliveries are queued or dropped by the
//! overflow policy, and counted), and it holds no new publisher back until it sends again.
//! A subscriber that goes offline or whose session ends releases its publishers at once.
//!
//! # Lock order
//!
//! The waiting list lives under the session's own lock (`SessionHandle::inner`); there is no
//! new lock. In the order of `registry.rs` (`Vhost::sessions` -> `SessionHandle::inner` ->
//! `Vhost::router` -> `Vhost::retained`):
//!
//! * at most one `SessionHandle::inner` is held at a time. A publisher never holds its own
//!   session's lock while it parks in, polls or withdraws from another session's list (and
//!   when it is its own subscriber, it takes that one lock once);
//! * routing collects targets under the router lock and releases it before locking any
//!   session;
//! * wakers are woken after the lock is released: a woken task may run at once on another
//!   thread and lock the same session.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ferrymq_codec::QoS;
use ferrymq_session::{Delivery, Enqueue, QueueLimits};

use crate::metrics::Metrics;
use crate::registry::{Held, SessionHandle, SessionInner};

/// How long QoS 0 publishers wait for a subscriber whose *client* is behind (its connection's
/// write is blocked): from the first moment it was found so, until its socket takes data
/// again. Without any hold, a subscriber that falls behind for an instant (a client on the
/// broker's own machine, starved of CPU by the publishers the broker now reads at full
/// speed) stays behind: QoS 0 fan-in over TCP ran at either ~2.1M or ~1.3M msg/s from run
/// to run. Holding them indefinitely would let one slow browser slow every device that
/// publishes to it; for this long, a stuck client costs each of its publishers at most one
/// pause of 5 ms per time its socket fills.
pub(crate) const QOS0_HOLD: Duration = Duration::from_millis(5);

/// A publishing connection that may wait for room, with the clock and time limit to apply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Publisher {
    pub(crate) connection: u64,
    pub(crate) now: Instant,
    pub(crate) timeout: Duration,
}

/// The publishers waiting for room in one session's queue. Boxed in the session and present
/// only while it is congested, so an idle session pays 8 bytes for it.
#[derive(Debug)]
pub(crate) struct Congestion {
    /// Oldest first.
    waiters: VecDeque<Waiter>,
    /// How many of them are still [`Slot::Waiting`] (the others were settled and wait for
    /// their publisher to read the outcome).
    waiting: usize,
    /// When the session's connection last sent something from the queue (or when the
    /// congestion began): it is stalled once this is `timeout` old.
    progress_at: Instant,
    /// Since when the session's client has been behind (its connection's write blocked),
    /// as far as this congestion saw; `None` while its socket takes data. QoS 0 deliveries
    /// wait for it only during the first [`QOS0_HOLD`] of that.
    client_behind_since: Option<Instant>,
}

#[derive(Debug)]
struct Waiter {
    connection: u64,
    slot: Slot,
    /// The publisher's task, woken when the slot is settled.
    waker: Option<Waker>,
}

#[derive(Debug)]
enum Slot {
    Waiting(Delivery),
    /// Moved into the queue: the publisher may acknowledge.
    Queued,
    /// Not kept, and not for lack of room: the session ended, or went offline and does not
    /// keep this kind of message.
    Skipped,
    /// Not kept for lack of room (the overflow policy): counted, and the reason a v5
    /// publisher may hear 0x97 Quota Exceeded.
    Refused,
}

impl Congestion {
    fn new(now: Instant) -> Congestion {
        Congestion {
            waiters: VecDeque::new(),
            waiting: 0,
            progress_at: now,
            client_behind_since: None,
        }
    }

    fn stalled(&self, now: Instant, timeout: Duration) -> bool {
        now.saturating_duration_since(self.progress_at) >= timeout
    }

    /// The hold for QoS 0 deliveries is over: the client has been behind for [`QOS0_HOLD`].
    fn qos0_hold_over(&self, now: Instant) -> bool {
        self.client_behind_since
            .is_some_and(|since| now.saturating_duration_since(since) >= QOS0_HOLD)
    }
}

/// What [`SessionInner::offer_or_park`] did.
#[derive(Debug)]
pub(crate) enum Offered {
    /// Queued, or refused because the subscriber is stalled (the overflow policy).
    Done(Enqueue),
    /// Waiting for room; the publisher must not acknowledge yet.
    Parked,
}

/// Where a publisher's parked deliveries to one session stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Still waiting; look again at `recheck_at`: when the session counts as stalled
    /// (`timeout` after it last sent from its queue) unless it sends again, or, with a QoS 0
    /// delivery waiting, [`QOS0_HOLD`] from now (its client may fall behind meanwhile, and
    /// nothing else would tell the publisher).
    Waiting { recheck_at: Instant },
    /// Every one is settled; `refused` of them were refused for lack of room.
    Done { refused: usize },
}

/// Applies the overflow policy (or, offline, the offline policy) to a delivery that waits
/// no longer, and counts what it drops.
fn settle(
    inner: &mut SessionInner,
    delivery: Delivery,
    limits: QueueLimits,
    metrics: &Metrics,
) -> Slot {
    let offline = inner.attached().is_none();
    let offline_skips = delivery.qos == QoS::AtMostOnce || delivery.message.expires_on_arrival;
    if inner.ended || (offline && offline_skips) {
        return Slot::Skipped;
    }
    match inner.state.enqueue(delivery, limits) {
        Enqueue::Queued => Slot::Queued,
        Enqueue::QueuedAfterDropping(n) => {
            Metrics::add(&metrics.messages_dropped_queue_full, n as u64);
            Slot::Queued
        }
        Enqueue::Refused => {
            Metrics::inc(&metrics.messages_dropped_queue_full);
            Slot::Refused
        }
    }
}

/// The rule of [`SessionInner::qos0_may_wait`], also for `settle_parked`, which has taken
/// the congestion record out of the session while it settles.
fn qos0_may_wait(held: Held, congestion: Option<&Congestion>, now: Instant) -> bool {
    if held.window_full() {
        return false;
    }
    !held.write_blocked() || congestion.is_none_or(|c| !c.qos0_hold_over(now))
}

impl SessionInner {
    /// Whether a QoS 0 delivery for this connected session may wait for room: while the
    /// broker is behind with it, yes; while its client is behind (its write is blocked), for
    /// the first [`QOS0_HOLD`] of that; while its in-flight window is full (only its client's
    /// acknowledgements let anything out), no.
    pub(crate) fn qos0_may_wait(&self, now: Instant) -> bool {
        qos0_may_wait(self.held, self.congestion.as_deref(), now)
    }

    /// The session's connection found its write blocked at `now` (its client is behind):
    /// the QoS 0 hold starts, or, once it is over, waiting QoS 0 deliveries are settled.
    pub(crate) fn client_behind(
        &mut self,
        now: Instant,
        limits: QueueLimits,
        metrics: &Metrics,
    ) -> Vec<Waker> {
        self.held.set_write_blocked(true);
        let Some(congestion) = self.congestion.as_mut() else {
            return Vec::new();
        };
        congestion.client_behind_since.get_or_insert(now);
        match congestion.qos0_hold_over(now) {
            true => self.release_parked_qos0(limits, metrics),
            false => Vec::new(),
        }
    }

    /// The session's connection writes freely again: its client caught up.
    pub(crate) fn client_caught_up(&mut self) {
        self.held.set_write_blocked(false);
        if let Some(congestion) = self.congestion.as_mut() {
            congestion.client_behind_since = None;
        }
    }

    /// Queues a `delivery` for this connected session if it fits and no earlier delivery is
    /// waiting; otherwise parks it for `publisher`. A stalled session parks
    /// nothing: the overflow policy applies at once.
    pub(crate) fn offer_or_park(
        &mut self,
        delivery: Delivery,
        limits: QueueLimits,
        publisher: Publisher,
    ) -> Offered {
        let (stalled, others_wait) = match &self.congestion {
            Some(c) => (c.stalled(publisher.now, publisher.timeout), c.waiting > 0),
            None => (false, false),
        };
        if stalled {
            return Offered::Done(self.state.enqueue(delivery, limits));
        }
        let delivery = match others_wait {
            true => delivery,
            false => match self.state.offer_to_wait(delivery, limits) {
                Ok(0) => return Offered::Done(Enqueue::Queued),
                Ok(n) => return Offered::Done(Enqueue::QueuedAfterDropping(n)),
                Err(delivery) => delivery,
            },
        };
        let congestion = self
            .congestion
            .get_or_insert_with(|| Box::new(Congestion::new(publisher.now)));
        if self.held.write_blocked() {
            congestion.client_behind_since.get_or_insert(publisher.now);
        }
        congestion.waiters.push_back(Waiter {
            connection: publisher.connection,
            slot: Slot::Waiting(delivery),
            waker: None,
        });
        congestion.waiting += 1;
        Offered::Parked
    }

    /// The session's connection just moved messages from the queue towards its client
    /// (`progressed`), and found its in-flight window full or not (`window_full`): records
    /// both and, at the low-water mark, lets waiting deliveries in, oldest first, as far as
    /// they fit. With the window full the subscriber waits for its client, so waiting QoS 0
    /// deliveries are settled at once (see [`SessionInner::waits_for_client`]). Returns the
    /// publishers to wake.
    pub(crate) fn admit_parked(
        &mut self,
        progressed: bool,
        window_full: bool,
        limits: QueueLimits,
        now: Instant,
        metrics: &Metrics,
    ) -> Vec<Waker> {
        self.held.set_window_full(window_full);
        let mut wake = match window_full {
            true => self.release_parked_qos0(limits, metrics),
            false => Vec::new(),
        };
        let Some(congestion) = self.congestion.as_mut() else {
            return wake;
        };
        if progressed {
            congestion.progress_at = now;
        }
        let mut admitted = false;
        let admit = congestion.waiting > 0 && self.state.below_low_water(limits);
        for waiter in congestion.waiters.iter_mut().filter(|_| admit) {
            if !matches!(waiter.slot, Slot::Waiting(_)) {
                continue;
            }
            let Slot::Waiting(delivery) = std::mem::replace(&mut waiter.slot, Slot::Queued) else {
                continue;
            };
            match self.state.offer_to_wait(delivery, limits) {
                Ok(dropped) => {
                    Metrics::add(&metrics.messages_dropped_queue_full, dropped as u64);
                    congestion.waiting -= 1;
                    admitted = true;
                    wake.extend(waiter.waker.take());
                }
                Err(delivery) => {
                    // Full again: the rest keep their turn for the next low-water mark.
                    waiter.slot = Slot::Waiting(delivery);
                    break;
                }
            }
        }
        // Nothing left to settle, and the session is sending: no longer congested. (Without
        // progress an empty list may be the mark of a stalled session: it stays.)
        if congestion.waiters.is_empty() && progressed {
            self.congestion = None;
        }
        if admitted {
            // More is queued than this turn sent: the connection looks again after writing.
            self.news = true;
        }
        wake
    }

    /// The subscriber is held up by its client: waiting QoS 0 deliveries are settled now by
    /// the overflow policy (queued if there is room, else the oldest QoS 0 is dropped) and
    /// their publishers woken. QoS 1/2 ones keep waiting.
    pub(crate) fn release_parked_qos0(
        &mut self,
        limits: QueueLimits,
        metrics: &Metrics,
    ) -> Vec<Waker> {
        let mut wake = Vec::new();
        let Some(mut congestion) = self.congestion.take() else {
            return wake;
        };
        for waiter in congestion.waiters.iter_mut() {
            if !matches!(&waiter.slot, Slot::Waiting(d) if d.qos == QoS::AtMostOnce) {
                continue;
            }
            if let Slot::Waiting(delivery) = std::mem::replace(&mut waiter.slot, Slot::Skipped) {
                congestion.waiting -= 1;
                waiter.slot = settle(self, delivery, limits, metrics);
                wake.extend(waiter.waker.take());
            }
        }
        self.congestion = Some(congestion);
        wake
    }

    /// The session went offline or ended: every waiting delivery is settled now (queued for
    /// later if the offline policy keeps it and it fits) and its publisher woken.
    pub(crate) fn release_parked(&mut self, limits: QueueLimits, metrics: &Metrics) -> Vec<Waker> {
        let mut wake = Vec::new();
        let Some(mut congestion) = self.congestion.take() else {
            return wake;
        };
        for waiter in congestion.waiters.iter_mut() {
            if !matches!(waiter.slot, Slot::Waiting(_)) {
                continue;
            }
            if let Slot::Waiting(delivery) = std::mem::replace(&mut waiter.slot, Slot::Skipped) {
                congestion.waiting -= 1;
                waiter.slot = settle(self, delivery, limits, metrics);
                wake.extend(waiter.waker.take());
            }
        }
        // Settled entries stay until their publishers have read them.
        if !congestion.waiters.is_empty() {
            self.congestion = Some(congestion);
        }
        wake
    }
}

impl SessionHandle {
    /// Ready once no delivery of publisher `connection` waits in this session any more
    /// (or the session can no longer take it); until then the task's waker is kept with
    /// each of them.
    pub(crate) fn poll_parked(&self, connection: u64, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.lock();
        if inner.attached().is_none() || inner.ended {
            return Poll::Ready(());
        }
        let Some(congestion) = inner.congestion.as_mut() else {
            return Poll::Ready(());
        };
        let mut waiting = false;
        for waiter in congestion.waiters.iter_mut() {
            if waiter.connection == connection && matches!(waiter.slot, Slot::Waiting(_)) {
                waiting = true;
                match &waiter.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => waiter.waker = Some(cx.waker().clone()),
                }
            }
        }
        match waiting {
            true => Poll::Pending,
            false => Poll::Ready(()),
        }
    }

    /// Collects the outcome of `publisher`'s parked deliveries to this session and forgets
    /// them once all are settled. Deliveries still waiting are settled now by the overflow
    /// policy when the session is stalled, or when `force` (the publisher is going away);
    /// by the offline policy when the session went offline or ended.
    pub(crate) fn settle_parked(
        &self,
        publisher: Publisher,
        limits: QueueLimits,
        metrics: &Metrics,
        force: bool,
    ) -> Settled {
        let mut inner = self.lock();
        let Some(mut congestion) = inner.congestion.take() else {
            return Settled::Done { refused: 0 };
        };
        let gone = inner.attached().is_none() || inner.ended;
        let stalled = congestion.stalled(publisher.now, publisher.timeout);
        let give_up = gone || stalled || force;
        // QoS 0 deliveries wait no longer for a client that has been behind for the hold.
        let give_up_qos0 = give_up || !qos0_may_wait(inner.held, Some(&congestion), publisher.now);
        let mut waiting = false;
        let mut waiting_qos0 = false;
        let mut refused = 0;
        let mut timed_out = 0u64;
        let mut kept = false;
        let mut congestion_waiting = congestion.waiting;
        congestion.waiters.retain_mut(|waiter| {
            if waiter.connection != publisher.connection {
                return true;
            }
            let slot = match std::mem::replace(&mut waiter.slot, Slot::Skipped) {
                Slot::Waiting(delivery) if delivery.qos == QoS::AtMostOnce && !give_up_qos0 => {
                    waiter.slot = Slot::Waiting(delivery);
                    waiting = true;
                    waiting_qos0 = true;
                    return true;
                }
                Slot::Waiting(delivery) if delivery.qos != QoS::AtMostOnce && !give_up => {
                    waiter.slot = Slot::Waiting(delivery);
                    waiting = true;
                    return true;
                }
                Slot::Waiting(delivery) => {
                    congestion_waiting -= 1;
                    timed_out += u64::from(stalled && !gone && !force);
                    let slot = settle(&mut inner, delivery, limits, metrics);
                    kept |= matches!(slot, Slot::Queued);
                    slot
                }
                settled => settled,
            };
            refused += usize::from(matches!(slot, Slot::Refused));
            false
        });
        congestion.waiting = congestion_waiting;
        Metrics::add(&metrics.publish_backpressure_timeouts, timed_out);
        let progress_at = congestion.progress_at;
        // Kept while others wait; while the connected session is stalled, so that new
        // publishers do not wait for it (see `offer_or_park`) until it sends again; and
        // while its client is behind, so that the QoS 0 hold is not started afresh for every
        // message (a stuck client would cost each QoS 0 publisher 5 ms per message).
        let client_behind = inner.held.write_blocked() && congestion.client_behind_since.is_some();
        if !congestion.waiters.is_empty() || (stalled && !gone) || (client_behind && !gone) {
            inner.congestion = Some(congestion);
        }
        let signal = match kept && !gone {
            true => inner.signal(),
            false => None,
        };
        drop(inner);
        if let Some(waker) = signal {
            waker.wake();
        }
        let stalls_at = progress_at + publisher.timeout;
        match (waiting, waiting_qos0) {
            (true, false) => Settled::Waiting {
                recheck_at: stalls_at,
            },
            (true, true) => Settled::Waiting {
                recheck_at: stalls_at.min(publisher.now + QOS0_HOLD),
            },
            (false, _) => Settled::Done { refused },
        }
    }
}

#[cfg(test)]
mod tests;
