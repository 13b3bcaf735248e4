//! The subscriber's side of back-pressure without sockets or tasks: sessions attached to
//! made-up connection ids, deliveries offered as routing offers them, the subscriber's
//! connection played by calls to `poll_transmit` and `admit_parked`, publishers' tasks by
//! counting wakers, and the clock by explicit instants.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrymq_auth::{AuthConfig, Authenticator};
use ferrymq_codec::{ProtocolVersion, QoS};
use ferrymq_session::{ConnectionState, Delivery, Message};

use super::{Publisher, QOS0_HOLD, Settled};
use crate::registry::{Delivered, SessionHandle};
use crate::{Broker, BrokerConfig, Metrics};

const TIMEOUT: Duration = Duration::from_secs(5);
const SUBSCRIBER: u64 = 1;

/// A broker whose queues hold `max_messages`, and a session attached to connection
/// [`SUBSCRIBER`].
fn subscriber(max_messages: usize) -> (Arc<Broker>, Arc<SessionHandle>) {
    let mut config = BrokerConfig::default();
    config.limits.max_queued_messages = max_messages;
    let broker = Broker::new(config, Authenticator::new(AuthConfig::default()).unwrap());
    let vhost = broker.default_vhost().clone();
    let attached = broker.attach(&vhost, &Arc::from("sub"), SUBSCRIBER, true, Instant::now());
    (broker, attached.session)
}

fn delivery(payload: &'static str, qos: QoS) -> Delivery {
    Delivery {
        message: Arc::new(Message {
            topic: Arc::from("t"),
            payload: Bytes::from_static(payload.as_bytes()),
            qos,
            retain: false,
            forwarded: None,
            expires_at: None,
            publisher: None,
            expires_on_arrival: false,
        }),
        qos,
        retain: false,
        subscription_ids: Vec::new(),
        shared_group: None,
    }
}

fn publisher(connection: u64, now: Instant) -> Publisher {
    Publisher {
        connection,
        now,
        timeout: TIMEOUT,
    }
}

/// Routes a QoS 1 message from publisher `from` to `session`.
fn offer(
    broker: &Broker,
    session: &SessionHandle,
    payload: &'static str,
    from: Publisher,
) -> Delivered {
    offer_at(broker, session, payload, QoS::AtLeastOnce, from)
}

fn offer_at(
    broker: &Broker,
    session: &SessionHandle,
    payload: &'static str,
    qos: QoS,
    from: Publisher,
) -> Delivered {
    session.deliver(
        delivery(payload, qos),
        broker.queue_limits(),
        &broker.metrics,
        Some(from),
    )
}

/// Counts how often the publisher's task was woken.
#[derive(Default)]
struct Task(AtomicUsize);

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Task {
    fn wakes(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

fn poll_parked(session: &SessionHandle, connection: u64, task: &Arc<Task>) -> Poll<()> {
    let waker = Waker::from(task.clone());
    session.poll_parked(connection, &mut Context::from_waker(&waker))
}

/// The tasks of publishers `connections`, each checked to be waiting in `session` (and so
/// registered to be woken).
fn waiting<const N: usize>(session: &SessionHandle, connections: [u64; N]) -> [Arc<Task>; N] {
    connections.map(|connection| {
        let task = Arc::new(Task::default());
        assert!(poll_parked(session, connection, &task).is_pending());
        task
    })
}

/// The subscriber's connection sends what its window (`window` in flight) allows and, as
/// `transmit` does, lets waiting deliveries in; returns the payloads sent.
fn transmit(
    broker: &Broker,
    session: &SessionHandle,
    conn: &mut ConnectionState,
    window: u16,
    now: Instant,
) -> Vec<Bytes> {
    let mut packets = Vec::new();
    let limits = broker.queue_limits();
    let (_, wake) = session.lock().transmit(
        conn,
        now,
        window,
        usize::MAX,
        &mut packets,
        limits,
        &broker.metrics,
    );
    wake.into_iter().for_each(Waker::wake);
    packets
        .into_iter()
        .filter_map(|p| match p.into_packet(conn, now) {
            Some(ferrymq_codec::Packet::Publish(publish)) => Some(publish.payload),
            _ => None,
        })
        .collect()
}

/// Acknowledges every delivery in flight.
fn ack_all(session: &SessionHandle) {
    let mut inner = session.lock();
    for id in 1..=u16::MAX {
        if inner.state.inflight_len() == 0 {
            break;
        }
        inner.state.on_puback(id);
    }
}

fn settle(broker: &Broker, session: &SessionHandle, from: Publisher, force: bool) -> Settled {
    session.settle_parked(from, broker.queue_limits(), &broker.metrics, force)
}

fn metric(broker: &Broker, counter: impl Fn(&Metrics) -> &crate::metrics::Counter) -> u64 {
    Metrics::get(counter(&broker.metrics))
}

#[test]
fn a_full_queue_parks_and_lets_in_at_the_low_water_mark_oldest_first() {
    let now = Instant::now();
    let (broker, session) = subscriber(4);
    for payload in ["0", "1", "2", "3"] {
        assert_eq!(
            offer(&broker, &session, payload, publisher(10, now)),
            Delivered::Accepted
        );
    }
    assert_eq!(
        offer(&broker, &session, "a", publisher(11, now)),
        Delivered::Parked
    );
    assert_eq!(
        offer(&broker, &session, "b", publisher(12, now)),
        Delivered::Parked
    );
    let [a, b] = waiting(&session, [11, 12]);

    // One sent: 3 of 4 queued is above the low-water mark (2), nobody comes in yet.
    let mut conn = ConnectionState::new(ProtocolVersion::V5, now);
    assert_eq!(transmit(&broker, &session, &mut conn, 1, now), ["0"]);
    assert_eq!((a.wakes(), b.wakes()), (0, 0));
    // Two more sent: 1 queued, both come in, in the order they parked.
    ack_all(&session);
    assert_eq!(transmit(&broker, &session, &mut conn, 2, now), ["1", "2"]);
    assert_eq!((a.wakes(), b.wakes()), (1, 1));
    assert!(poll_parked(&session, 11, &a).is_ready());
    assert_eq!(
        settle(&broker, &session, publisher(11, now), false),
        Settled::Done { refused: 0 }
    );
    assert_eq!(
        settle(&broker, &session, publisher(12, now), false),
        Settled::Done { refused: 0 }
    );
    assert!(
        session.lock().congestion.is_none(),
        "nothing left of the congestion"
    );

    ack_all(&session);
    assert_eq!(
        transmit(&broker, &session, &mut conn, 10, now),
        ["3", "a", "b"]
    );
    assert_eq!(metric(&broker, |m| &m.messages_dropped_queue_full), 0);
}

#[test]
fn a_publisher_that_finds_others_waiting_waits_behind_them_even_with_room() {
    let now = Instant::now();
    let (broker, session) = subscriber(4);
    for payload in ["0", "1", "2", "3"] {
        offer(&broker, &session, payload, publisher(10, now));
    }
    assert_eq!(
        offer(&broker, &session, "first", publisher(11, now)),
        Delivered::Parked
    );
    // Room for one more, but "first" waits: "second" may not overtake it.
    let mut conn = ConnectionState::new(ProtocolVersion::V5, now);
    transmit(&broker, &session, &mut conn, 1, now);
    assert_eq!(
        offer(&broker, &session, "second", publisher(12, now)),
        Delivered::Parked
    );
    ack_all(&session);
    transmit(&broker, &session, &mut conn, 10, now);
    ack_all(&session);
    let sent = transmit(&broker, &session, &mut conn, 10, now);
    assert_eq!(sent, ["first", "second"]);
}

#[test]
fn qos0_for_a_subscriber_held_up_by_its_client_offline_sessions_and_wills_never_park() {
    let now = Instant::now();
    let (broker, session) = subscriber(1);
    // One in flight, one queued behind the full window: only the client can let it out.
    let mut conn = ConnectionState::new(ProtocolVersion::V5, now);
    offer(&broker, &session, "sent", publisher(10, now));
    assert_eq!(transmit(&broker, &session, &mut conn, 1, now), ["sent"]);
    offer(&broker, &session, "full", publisher(10, now));
    assert!(transmit(&broker, &session, &mut conn, 1, now).is_empty());
    let limits = broker.queue_limits();
    let qos0 = offer_at(&broker, &session, "q0", QoS::AtMostOnce, publisher(11, now));
    assert_eq!(qos0, Delivered::Refused);
    let will = session.deliver(
        delivery("will", QoS::AtLeastOnce),
        limits,
        &broker.metrics,
        None,
    );
    assert_eq!(will, Delivered::Refused);
    assert_eq!(metric(&broker, |m| &m.messages_dropped_queue_full), 2);

    // Offline (a session that never expires): refused at once, nothing waits.
    session.lock().state.expiry_interval = u32::MAX;
    broker.detach(&session, SUBSCRIBER, crate::CloseKind::Abnormal, now);
    assert_eq!(
        offer(&broker, &session, "late", publisher(12, now)),
        Delivered::Refused
    );
    assert!(session.lock().congestion.is_none());
}

#[test]
fn a_stalled_subscriber_releases_its_publishers_and_blocks_no_new_one_until_it_sends() {
    let start = Instant::now();
    let (broker, session) = subscriber(2);
    offer(&broker, &session, "0", publisher(10, start));
    offer(&broker, &session, "1", publisher(10, start));
    assert_eq!(
        offer(&broker, &session, "x", publisher(11, start)),
        Delivered::Parked
    );

    // Before the timeout: still waiting, and told when the subscriber would count as stalled.
    let early = start + TIMEOUT / 2;
    assert_eq!(
        settle(&broker, &session, publisher(11, early), false),
        Settled::Waiting {
            recheck_at: start + TIMEOUT
        }
    );
    // After it: given up by the overflow policy (refused, counted).
    let late = start + TIMEOUT;
    assert_eq!(
        settle(&broker, &session, publisher(11, late), false),
        Settled::Done { refused: 1 }
    );
    assert_eq!(metric(&broker, |m| &m.messages_dropped_queue_full), 1);
    assert_eq!(metric(&broker, |m| &m.publish_backpressure_timeouts), 1);
    // A new publisher is not held back by the stalled subscriber.
    assert_eq!(
        offer(&broker, &session, "y", publisher(12, late)),
        Delivered::Refused
    );

    // The subscriber sends again: publishers wait for it again.
    let mut conn = ConnectionState::new(ProtocolVersion::V5, late);
    let resumed = late + Duration::from_secs(1);
    assert_eq!(transmit(&broker, &session, &mut conn, 1, resumed), ["0"]);
    offer(&broker, &session, "2", publisher(10, resumed));
    assert_eq!(
        offer(&broker, &session, "z", publisher(13, resumed)),
        Delivered::Parked
    );
}

#[test]
fn a_subscriber_that_goes_offline_settles_its_publishers_by_the_offline_policy() {
    let now = Instant::now();
    let (broker, session) = subscriber(4);
    for payload in ["0", "1", "2", "3"] {
        offer(&broker, &session, payload, publisher(10, now));
    }
    assert_eq!(
        offer(&broker, &session, "a", publisher(11, now)),
        Delivered::Parked
    );
    assert_eq!(
        offer(&broker, &session, "b", publisher(12, now)),
        Delivered::Parked
    );
    let [a, b] = waiting(&session, [11, 12]);
    // One sent: there is room for one, but above the low-water mark nobody came in yet.
    let mut conn = ConnectionState::new(ProtocolVersion::V5, now);
    transmit(&broker, &session, &mut conn, 1, now);

    session.lock().state.expiry_interval = u32::MAX;
    broker.detach(&session, SUBSCRIBER, crate::CloseKind::Abnormal, now);
    assert_eq!(
        (a.wakes(), b.wakes()),
        (1, 1),
        "both publishers are let go at once"
    );
    // Kept for the offline session while it fits, then refused.
    assert_eq!(
        settle(&broker, &session, publisher(11, now), false),
        Settled::Done { refused: 0 }
    );
    assert_eq!(
        settle(&broker, &session, publisher(12, now), false),
        Settled::Done { refused: 1 }
    );
    assert_eq!(metric(&broker, |m| &m.messages_dropped_queue_full), 1);
    assert_eq!(metric(&broker, |m| &m.publish_backpressure_timeouts), 0);
    assert!(session.lock().congestion.is_none());
    assert_eq!(session.lock().state.queued_len(), 4);
}

#[test]
fn a_departing_publisher_withdraws_its_delivery_and_the_others_keep_their_turn() {
    let now = Instant::now();
    let (broker, session) = subscriber(2);
    offer(&broker, &session, "0", publisher(10, now));
    offer(&broker, &session, "1", publisher(10, now));
    assert_eq!(
        offer(&broker, &session, "gone", publisher(11, now)),
        Delivered::Parked
    );
    assert_eq!(
        offer(&broker, &session, "stays", publisher(12, now)),
        Delivered::Parked
    );
    assert_eq!(
        settle(&broker, &session, publisher(11, now), true),
        Settled::Done { refused: 1 }
    );

    let mut conn = ConnectionState::new(ProtocolVersion::V5, now);
    transmit(&broker, &session, &mut conn, 2, now);
    ack_all(&session);
    assert_eq!(transmit(&broker, &session, &mut conn, 2, now), ["stays"]);
}

#[test]
fn a_session_that_ends_skips_what_waited_without_counting_it_refused() {
    let now = Instant::now();
    let (broker, session) = subscriber(1);
    offer(&broker, &session, "0", publisher(10, now));
    assert_eq!(
        offer(&broker, &session, "a", publisher(11, now)),
        Delivered::Parked
    );
    // The client connects again with a clean start: this session ends.
    let vhost = broker.default_vhost().clone();
    broker.attach(&vhost, &Arc::from("sub"), 2, true, now);
    assert!(poll_parked(&session, 11, &Arc::new(Task::default())).is_ready());
    assert_eq!(
        settle(&broker, &session, publisher(11, now), false),
        Settled::Done { refused: 0 }
    );
    assert_eq!(metric(&broker, |m| &m.messages_dropped_queue_full), 0);
}

#[test]
fn qos0_waits_for_a_subscriber_the_broker_is_behind_with() {
    let now = Instant::now();
    let (broker, session) = subscriber(2);
    let q0 = QoS::AtMostOnce;
    for payload in ["0", "1"] {
        let delivered = offer_at(&broker, &session, payload, q0, publisher(10, now));
        assert_eq!(delivered, Delivered::Accepted);
    }
    // Full, and the subscriber's connection simply has not had its turn: wait, drop nothing.
    assert_eq!(
        offer_at(&broker, &session, "a", q0, publisher(11, now)),
        Delivered::Parked
    );
    let [a] = waiting(&session, [11]);
    let mut conn = ConnectionState::new(ProtocolVersion::V5, now);
    assert_eq!(transmit(&broker, &session, &mut conn, 1, now), ["0", "1"]);
    assert_eq!(a.wakes(), 1);
    assert_eq!(
        settle(&broker, &session, publisher(11, now), false),
        Settled::Done { refused: 0 }
    );
    assert_eq!(transmit(&broker, &session, &mut conn, 1, now), ["a"]);
    assert_eq!(metric(&broker, |m| &m.messages_dropped_queue_full), 0);
}

/// The subscriber's connection finds its write blocked at `at`.
fn block_write(broker: &Broker, session: &SessionHandle, at: Instant) {
    let writer = Arc::new(Task::default());
    let waker = Waker::from(writer);
    // (Ready or not: deliveries may be news it has not looked at yet.)
    let _ = session.poll_news_while_writing(
        SUBSCRIBER,
        &mut Context::from_waker(&waker),
        at,
        broker.queue_limits(),
        &broker.metrics,
    );
}

#[test]
fn a_blocked_write_holds_qos0_publishers_for_the_hold_then_lets_them_go() {
    let now = Instant::now();
    let (broker, session) = subscriber(2);
    let q0 = QoS::AtMostOnce;
    offer_at(&broker, &session, "0", q0, publisher(10, now));
    offer_at(&broker, &session, "1", q0, publisher(10, now));
    assert_eq!(
        offer_at(&broker, &session, "a", q0, publisher(11, now)),
        Delivered::Parked
    );
    assert_eq!(
        offer(&broker, &session, "b", publisher(12, now)),
        Delivered::Parked
    );
    let [a, b] = waiting(&session, [11, 12]);

    // The subscriber's socket stops taking data: its client is now the limit. For the
    // hold, QoS 0 publishers still wait (a client that is only briefly behind catches up).
    block_write(&broker, &session, now);
    assert_eq!((a.wakes(), b.wakes()), (0, 0));
    let early = now + QOS0_HOLD / 2;
    assert_eq!(
        settle(&broker, &session, publisher(11, early), false),
        Settled::Waiting {
            recheck_at: early + QOS0_HOLD
        }
    );
    assert_eq!(
        offer_at(&broker, &session, "c", q0, publisher(13, early)),
        Delivered::Parked
    );
    let [c] = waiting(&session, [13]);

    // Behind for the whole hold: the next blocked poll lets QoS 0 publishers go, by the
    // overflow policy (the oldest QoS 0 makes room), and QoS 1 ones keep waiting.
    let late = now + QOS0_HOLD;
    block_write(&broker, &session, late);
    assert_eq!((a.wakes(), b.wakes(), c.wakes()), (1, 0, 1));
    assert_eq!(
        settle(&broker, &session, publisher(11, late), false),
        Settled::Done { refused: 0 }
    );
    assert_eq!(metric(&broker, |m| &m.messages_dropped_queue_full), 2);
    // A new QoS 0 message does not wait either: the oldest QoS 0 gives way again.
    assert_eq!(
        offer_at(&broker, &session, "d", q0, publisher(14, late)),
        Delivered::Accepted
    );
    assert_eq!(metric(&broker, |m| &m.messages_dropped_queue_full), 3);
    assert!(matches!(
        settle(&broker, &session, publisher(12, late), false),
        Settled::Waiting { .. }
    ));
}

#[test]
fn a_parked_qos0_publisher_gives_up_by_itself_once_the_hold_is_over() {
    // The subscriber's task sleeps while its write is blocked, so the publisher's own
    // re-check (at `recheck_at`) must end the wait.
    let now = Instant::now();
    let (broker, session) = subscriber(1);
    let q0 = QoS::AtMostOnce;
    offer_at(&broker, &session, "0", q0, publisher(10, now));
    block_write(&broker, &session, now);
    assert_eq!(
        offer_at(&broker, &session, "a", q0, publisher(11, now)),
        Delivered::Parked
    );
    assert_eq!(
        settle(&broker, &session, publisher(11, now), false),
        Settled::Waiting {
            recheck_at: now + QOS0_HOLD
        }
    );
    let late = now + QOS0_HOLD;
    assert_eq!(
        settle(&broker, &session, publisher(11, late), false),
        Settled::Done { refused: 0 }
    );
    assert_eq!(metric(&broker, |m| &m.messages_dropped_queue_full), 1);
    // The client is still behind: the next QoS 0 message does not wait (the hold is not
    // started again for each message).
    assert_eq!(
        offer_at(&broker, &session, "b", q0, publisher(12, late)),
        Delivered::Accepted
    );
    assert_eq!(metric(&broker, |m| &m.messages_dropped_queue_full), 2);
}

#[test]
fn the_hold_starts_again_once_the_client_caught_up() {
    let now = Instant::now();
    let (broker, session) = subscriber(1);
    let q0 = QoS::AtMostOnce;
    offer_at(&broker, &session, "0", q0, publisher(10, now));
    assert_eq!(
        offer_at(&broker, &session, "a", q0, publisher(11, now)),
        Delivered::Parked
    );
    block_write(&broker, &session, now);
    // Behind for longer than the hold: a new QoS 0 message does not wait.
    let late = now + QOS0_HOLD * 2;
    assert_eq!(
        offer_at(&broker, &session, "b", q0, publisher(12, late)),
        Delivered::Accepted
    );
    // The socket takes data again, then blocks again: a new hold.
    let writer = Arc::new(Task::default());
    let _ = session.poll_news(SUBSCRIBER, &mut Context::from_waker(&Waker::from(writer)));
    block_write(&broker, &session, late);
    assert_eq!(
        offer_at(&broker, &session, "c", q0, publisher(13, late)),
        Delivered::Parked
    );
}

#[test]
fn a_full_window_lets_waiting_qos0_publishers_go() {
    let now = Instant::now();
    let (broker, session) = subscriber(2);
    let mut conn = ConnectionState::new(ProtocolVersion::V5, now);
    offer(&broker, &session, "0", publisher(10, now));
    assert_eq!(transmit(&broker, &session, &mut conn, 1, now), ["0"]);
    offer(&broker, &session, "1", publisher(10, now));
    offer(&broker, &session, "2", publisher(10, now));
    // The last turn left nothing queued, so the window did not hold anything up yet.
    assert_eq!(
        offer_at(&broker, &session, "a", QoS::AtMostOnce, publisher(11, now)),
        Delivered::Parked
    );
    let [a] = waiting(&session, [11]);
    // This turn finds the window full: the client is the limit, "a" stops waiting. The
    // queue holds only QoS 1 messages, so there is no room to make: it is dropped.
    assert!(transmit(&broker, &session, &mut conn, 1, now).is_empty());
    assert_eq!(a.wakes(), 1);
    assert_eq!(
        settle(&broker, &session, publisher(11, now), false),
        Settled::Done { refused: 1 }
    );
    assert_eq!(metric(&broker, |m| &m.messages_dropped_queue_full), 1);
}
