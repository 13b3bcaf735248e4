//! One generator connection: a lightweight tokio task that connects (CONNECT / CONNACK, then
//! SUBSCRIBE / SUBACK for a subscriber), waits for the publish phase, then runs one event
//! loop over the socket: read and account whatever arrives (PUBLISH, acks), write batched
//! output (publishes, acks, PINGREQ), sleep until the next scheduled publish. Reads and
//! writes are polled together, so a broker blocked on writing to us can never deadlock with
//! us blocked on writing to it.
//!
//! Counting goes to [`Shared`] once per batch; latencies in batches.
//!
//! The socket is not split into read and write halves (`tokio::io::split` costs an `Arc`
//! and a lock per call): one poll function tries the read, then the write, on the one
//! stream.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ferrymq_codec::{
    Connect, ConnectProperties, Decoder, Packet, ProtocolVersion, QoS, ReasonCode, Subscribe,
    SubscribeProperties, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use crate::net::{Dialer, Io, io_kind};
use crate::payload::{Stamp, now_ns};
use crate::stats::{SeqEvent, SeqTracker, Shared};
use crate::wire::{self, Peeked, PublishTemplate};

/// Output is produced up to this many buffered bytes, then written in one call.
const WRITE_BATCH: usize = 64 * 1024;
/// Read buffer of a client that expects traffic, and of an idle connection.
const READ_CHUNK: usize = 64 * 1024;
const IDLE_READ_CHUNK: usize = 256;

/// Where the run is; client tasks watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Clients connect and subscribe.
    Connecting,
    /// Publish (or hold) from `start` until `deadline`.
    Running { start: Instant, deadline: Instant },
    /// Stop now (the parent went away).
    Aborted,
}

/// What a client does.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    Publisher { topic: String },
    Subscriber { filter: String },
    Idle,
}

/// One client of the run.
#[derive(Debug, Clone)]
pub(crate) struct ClientSpec {
    /// Global index within its role, from 1 (publisher id for publishers).
    pub index: u64,
    /// Global position among all clients of the run: picks the source address.
    pub ordinal: u64,
    pub client_id: String,
    pub role: Role,
}

/// The settings every client of a process shares.
pub(crate) struct Ctx {
    pub dialer: Dialer,
    pub shared: Arc<Shared>,
    pub phase: watch::Receiver<Phase>,
    pub protocol: ProtocolVersion,
    pub qos: QoS,
    pub size: usize,
    pub rate: f64,
    pub inflight: u16,
    pub keepalive: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    pub drain_quiet: Duration,
    pub drain_timeout: Duration,
}

/// Runs one client to the end of the run. `permit` is the connect slot, released once the
/// CONNACK has arrived.
pub(crate) async fn run_client(ctx: Arc<Ctx>, spec: ClientSpec, permit: OwnedSemaphorePermit) {
    let shared = Arc::clone(&ctx.shared);
    let started = Instant::now();
    // Boxed: dialing (TLS and WebSocket handshakes included) is the largest state of the
    // client; inline, it would size every client's task for the whole run, and a
    // connect-rate run would spend its time faulting in fresh memory for the task cells
    // (15 % of the generator's CPU in a profile) and copying the futures into them.
    let opened = tokio::time::timeout(
        ctx.connect_timeout,
        Box::pin(open(&ctx, &spec, permit, started)),
    )
    .await;
    let client = match opened {
        Ok(Ok(client)) => client,
        Ok(Err(kind)) => {
            shared.error(kind);
            Shared::add(&shared.connect_failed, 1);
            Shared::add(&shared.settled, 1);
            return;
        }
        Err(_) => {
            shared.error("connect: timed out");
            Shared::add(&shared.connect_failed, 1);
            Shared::add(&shared.settled, 1);
            return;
        }
    };
    Shared::add(&shared.connected, 1);
    Shared::add(&shared.settled, 1);
    client.run(&ctx).await;
}

struct Client {
    io: Box<dyn Io>,
    /// Plain TCP: closing the socket ends it; no `shutdown` call first (TLS and WebSocket
    /// have a closing handshake of their own).
    plain_tcp: bool,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: Decoder,
    v5: bool,
    read_chunk: usize,
    publisher: Option<Publisher>,
    subscriber: Option<Subscriber>,
}

struct Publisher {
    template: PublishTemplate,
    id: u32,
    seq: u64,
    next_packet_id: u16,
    inflight: u32,
    window: u32,
    period: Option<Duration>,
    next_due: Option<Instant>,
    /// Fraction of the period by which this publisher's schedule is offset, so that
    /// throttled publishers do not all fire at the same instant.
    phase_offset: f64,
}

struct Subscriber {
    seq: SeqTracker,
    latencies: Vec<u64>,
    last_rx: Option<Instant>,
}

/// Dial, CONNECT / CONNACK, and for a subscriber SUBSCRIBE / SUBACK. Errors are kinds.
async fn open(
    ctx: &Ctx,
    spec: &ClientSpec,
    permit: OwnedSemaphorePermit,
    started: Instant,
) -> Result<Client, String> {
    let busy = !matches!(spec.role, Role::Idle);
    let io = ctx
        .dialer
        .dial(spec.ordinal, busy)
        .await
        .map_err(|e| e.kind)?;
    let read_chunk = match spec.role {
        Role::Idle => IDLE_READ_CHUNK,
        _ => READ_CHUNK,
    };
    let mut client = Client {
        io,
        plain_tcp: ctx.dialer.is_plain_tcp(),
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        decoder: Decoder::new(u32::MAX),
        v5: ctx.protocol.is_v5(),
        read_chunk,
        publisher: None,
        subscriber: None,
    };
    let connect = Connect {
        protocol: ctx.protocol,
        clean_start: true,
        keep_alive: ctx.keepalive,
        client_id: spec.client_id.clone(),
        will: None,
        username: ctx.username.clone(),
        password: ctx.password.clone().map(Into::into),
        properties: ConnectProperties::default(),
    };
    client
        .send_packet(&Packet::Connect(Box::new(connect)), ctx.protocol)
        .await?;
    client.decoder.set_protocol(ctx.protocol);
    let connack = match client.next_packet().await? {
        Packet::ConnAck(connack) => connack,
        other => return Err(format!("connect: {} instead of CONNACK", other.name())),
    };
    if connack.reason_code.is_error() {
        return Err(format!("connack: {}", reason(connack.reason_code)));
    }
    ctx.shared
        .record_connect_latency(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    drop(permit);

    match &spec.role {
        Role::Publisher { topic } => {
            let window = u32::from(ctx.inflight).min(u32::from(
                connack.properties.receive_maximum.unwrap_or(u16::MAX),
            ));
            client.publisher = Some(Publisher {
                template: PublishTemplate::new(topic, ctx.qos, ctx.size, ctx.protocol)
                    .map_err(|e| format!("encode: {e}"))?,
                id: u32::try_from(spec.index).unwrap_or(u32::MAX),
                seq: 0,
                next_packet_id: 1,
                inflight: 0,
                window,
                period: (ctx.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / ctx.rate)),
                next_due: None,
                // Golden-ratio spacing spreads any number of publishers evenly.
                phase_offset: (spec.index as f64 * 0.618_033_988_749_895).fract(),
            });
        }
        Role::Subscriber { filter } => {
            let subscribe = Subscribe {
                packet_id: 1,
                filters: vec![(
                    filter.clone(),
                    SubscriptionOptions {
                        qos: ctx.qos,
                        ..SubscriptionOptions::default()
                    },
                )],
                properties: SubscribeProperties::default(),
            };
            client
                .send_packet(&Packet::Subscribe(subscribe), ctx.protocol)
                .await?;
            match client.next_packet().await? {
                Packet::SubAck(suback) => {
                    if let Some(code) = suback.reason_codes.iter().find(|c| c.is_error()) {
                        return Err(format!("suback: {}", reason(*code)));
                    }
                }
                other => return Err(format!("subscribe: {} instead of SUBACK", other.name())),
            }
            client.subscriber = Some(Subscriber {
                seq: SeqTracker::default(),
                latencies: Vec::with_capacity(256),
                last_rx: None,
            });
        }
        Role::Idle => {}
    }
    // Give back the handshake's buffers: an idle connection should cost little.
    if client.rbuf.is_empty() {
        client.rbuf = BytesMut::new();
    }
    client.wbuf = BytesMut::new();
    Ok(client)
}

fn reason(code: ReasonCode) -> String {
    format!("0x{:02X} {:?}", code.as_u8(), code)
}

impl Client {
    async fn send_packet(
        &mut self,
        packet: &Packet,
        protocol: ProtocolVersion,
    ) -> Result<(), String> {
        self.wbuf.clear();
        ferrymq_codec::encode(packet, protocol, &mut self.wbuf)
            .map_err(|e| format!("encode: {e}"))?;
        self.io
            .write_all(&self.wbuf)
            .await
            .map_err(|e| format!("write: {}", io_kind(&e)))?;
        self.io
            .flush()
            .await
            .map_err(|e| format!("write: {}", io_kind(&e)))?;
        self.wbuf.clear();
        Ok(())
    }

    /// Reads until one whole packet is decoded (handshake only).
    async fn next_packet(&mut self) -> Result<Packet, String> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(packet)) => return Ok(packet),
                Ok(None) => {}
                Err(e) => return Err(format!("decode: {e}")),
            }
            self.rbuf.reserve(1024);
            match self.io.read_buf(&mut self.rbuf).await {
                Ok(0) => return Err("connect: closed by the broker".to_owned()),
                Ok(_) => {}
                Err(e) => return Err(format!("read: {}", io_kind(&e))),
            }
        }
    }

    /// The event loop, from connected to disconnected.
    async fn run(mut self, ctx: &Ctx) {
        let shared = &ctx.shared;
        let mut phase_rx = ctx.phase.clone();
        let mut phase = *phase_rx.borrow_and_update();
        let mut watching = true;
        let mut need_flush = false;
        let mut drain_until: Option<Instant> = None;
        let mut last_write = Instant::now();
        let ping_every = Duration::from_secs(u64::from(ctx.keepalive)).mul_f64(0.75);
        let far = Duration::from_secs(86_400);
        let sleep = tokio::time::sleep(far);
        tokio::pin!(sleep);
        let mut sleep_at = Instant::now() + far;

        loop {
            let now = Instant::now();
            let window = match phase {
                Phase::Running { start, deadline } => Some((start, deadline)),
                Phase::Aborted => break,
                Phase::Connecting => None,
            };
            if let Some((start, deadline)) = window {
                if now >= deadline && drain_until.is_none() {
                    drain_until = Some(deadline + ctx.drain_timeout);
                }
                if now < deadline {
                    self.produce(shared, now, start);
                }
            }
            if ctx.keepalive > 0 && self.wbuf.is_empty() && now >= last_write + ping_every {
                self.wbuf.extend_from_slice(&wire::PINGREQ);
            }
            if let (Some(until), Some((_, deadline))) = (drain_until, window) {
                let settled = match (&self.publisher, &self.subscriber) {
                    (Some(p), _) => p.inflight == 0,
                    (None, Some(s)) => {
                        now >= s.last_rx.map_or(deadline, |t| t.max(deadline)) + ctx.drain_quiet
                    }
                    (None, None) => true,
                };
                if (settled && self.wbuf.is_empty() && !need_flush) || now >= until {
                    break;
                }
            }

            // When to wake up if nothing arrives.
            let mut wake = now + far;
            if ctx.keepalive > 0 {
                wake = wake.min(last_write + ping_every);
            }
            if let Some((_, deadline)) = window {
                if now < deadline {
                    wake = wake.min(deadline);
                    if let Some(p) = &self.publisher
                        && let Some(due) = p.next_due
                        && p.window_open()
                    {
                        wake = wake.min(due);
                    }
                }
                if let Some(until) = drain_until {
                    wake = wake.min(until);
                    if let Some(s) = &self.subscriber {
                        wake = wake
                            .min(s.last_rx.map_or(deadline, |t| t.max(deadline)) + ctx.drain_quiet);
                    }
                }
            }
            if wake != sleep_at {
                sleep.as_mut().reset(wake);
                sleep_at = wake;
            }
            if self.rbuf.capacity() - self.rbuf.len() < self.read_chunk / 4 {
                self.rbuf.reserve(self.read_chunk);
            }

            let writing = !self.wbuf.is_empty() || need_flush;
            let (io, rbuf, wbuf) = (&mut self.io, &mut self.rbuf, &self.wbuf);
            tokio::select! {
                biased;
                event = poll_fn(|cx| poll_io(io, rbuf, wbuf, writing, cx)) => match event {
                    IoEvent::Read(Ok(0)) => {
                        shared.error("closed by the broker");
                        break;
                    }
                    IoEvent::Read(Ok(_)) => {
                        if let Err(kind) = self.on_read(shared, window.map(|(_, d)| d)) {
                            shared.error(kind);
                            break;
                        }
                    }
                    IoEvent::Read(Err(e)) => {
                        shared.error(format!("read: {}", io_kind(&e)));
                        break;
                    }
                    IoEvent::Written(Ok(0)) => need_flush = false,
                    IoEvent::Written(Ok(n)) => {
                        self.wbuf.advance(n);
                        need_flush = true;
                        last_write = Instant::now();
                    }
                    IoEvent::Written(Err(e)) => {
                        shared.error(format!("write: {}", io_kind(&e)));
                        break;
                    }
                },
                changed = phase_rx.changed(), if watching => match changed {
                    Ok(()) => phase = *phase_rx.borrow_and_update(),
                    Err(_) => watching = false,
                },
                () = &mut sleep => {}
            }
        }

        if let Some(p) = &self.publisher
            && p.inflight > 0
        {
            for _ in 0..p.inflight {
                shared.error("unacknowledged at the end");
            }
        }
        if let Some(s) = &mut self.subscriber {
            shared.record_latencies(&mut s.latencies);
        }
        self.wbuf.extend_from_slice(&wire::DISCONNECT);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            self.io.write_all(&self.wbuf).await?;
            self.io.flush().await?;
            if self.plain_tcp {
                // Dropping the socket closes it: the same FIN, one system call fewer.
                return Ok(());
            }
            self.io.shutdown().await
        })
        .await;
    }

    /// Appends the publishes that are due (and allowed by the inflight window).
    fn produce(&mut self, shared: &Shared, now: Instant, start: Instant) {
        let Some(p) = &mut self.publisher else {
            return;
        };
        if p.next_due.is_none() {
            p.next_due = p
                .period
                .map(|period| start + period.mul_f64(p.phase_offset));
        }
        let qos1 = p.template_qos_needs_id();
        let mut sent = 0u64;
        let mut stamp_time = 0;
        while self.wbuf.len() < WRITE_BATCH && p.window_open() {
            if let (Some(period), Some(due)) = (p.period, p.next_due) {
                if due > now {
                    break;
                }
                p.next_due = Some(due + period);
            }
            if stamp_time == 0 {
                stamp_time = now_ns();
            }
            let packet_id = if qos1 {
                let id = p.next_packet_id;
                p.next_packet_id = p.next_packet_id.checked_add(1).unwrap_or(1);
                p.inflight += 1;
                id
            } else {
                0
            };
            let stamp = Stamp {
                sent_ns: stamp_time,
                publisher: p.id,
                seq: p.seq,
            };
            p.template.put(&mut self.wbuf, packet_id, &stamp);
            p.seq += 1;
            sent += 1;
        }
        if sent > 0 {
            Shared::add(&shared.sent, sent);
            if let Some(slot) = usize::try_from(p.id)
                .ok()
                .and_then(|id| id.checked_sub(1))
                .and_then(|i| shared.per_publisher.get(i))
            {
                Shared::add(slot, sent);
            }
        }
    }

    /// Handles every whole packet in the read buffer.
    fn on_read(&mut self, shared: &Shared, deadline: Option<Instant>) -> Result<(), String> {
        let now = Instant::now();
        let in_window = deadline.is_some_and(|d| now < d);
        let mut now_wall = 0u64;
        let mut received = 0u64;
        let mut duplicates = 0u64;
        let mut gaps = 0u64;
        let mut acked = 0u64;
        let result = loop {
            match wire::peek(&self.rbuf, self.v5) {
                Err(e) => break Err(format!("decode: {e}")),
                Ok(Peeked::Incomplete) => break Ok(()),
                Ok(Peeked::Publish(view, len)) => {
                    received += 1;
                    match view.qos {
                        1 => {
                            wire::put_ack(&mut self.wbuf, wire::PUBACK, view.packet_id.unwrap_or(0))
                        }
                        2 => {
                            wire::put_ack(&mut self.wbuf, wire::PUBREC, view.packet_id.unwrap_or(0))
                        }
                        _ => {}
                    }
                    if let (Some(s), Some(stamp)) =
                        (&mut self.subscriber, Stamp::read(view.payload))
                    {
                        if now_wall == 0 {
                            now_wall = now_ns();
                        }
                        // A stamp from more than an hour ago (or the future) is not ours.
                        if stamp.sent_ns <= now_wall.saturating_add(1_000_000_000)
                            && now_wall.saturating_sub(stamp.sent_ns) < 3_600_000_000_000
                        {
                            s.latencies.push(now_wall.saturating_sub(stamp.sent_ns));
                            match s.seq.observe(stamp.publisher, stamp.seq) {
                                SeqEvent::InOrder => {}
                                SeqEvent::Gap(n) => gaps += n,
                                SeqEvent::Duplicate => duplicates += 1,
                            }
                        }
                    }
                    self.rbuf.advance(len);
                }
                Ok(Peeked::Other) => match self.decoder.decode(&mut self.rbuf) {
                    Err(e) => break Err(format!("decode: {e}")),
                    Ok(None) => break Ok(()),
                    Ok(Some(packet)) => {
                        if let Err(kind) = self.on_packet(packet, shared, &mut acked) {
                            break Err(kind);
                        }
                    }
                },
            }
        };
        if let Some(s) = &mut self.subscriber {
            if received > 0 {
                s.last_rx = Some(now);
            }
            shared.record_latencies(&mut s.latencies);
        }
        Shared::add(&shared.received, received);
        if in_window {
            Shared::add(&shared.received_in_window, received);
        }
        Shared::add(&shared.duplicates, duplicates);
        Shared::add(&shared.gaps, gaps);
        Shared::add(&shared.acked, acked);
        result
    }

    fn on_packet(
        &mut self,
        packet: Packet,
        shared: &Shared,
        acked: &mut u64,
    ) -> Result<(), String> {
        match packet {
            Packet::PubAck(ack) => {
                if ack.reason_code.is_error() {
                    shared.error(format!("puback: {}", reason(ack.reason_code)));
                } else {
                    *acked += 1;
                }
                self.release();
            }
            Packet::PubRec(rec) => {
                if rec.reason_code.is_error() {
                    shared.error(format!("pubrec: {}", reason(rec.reason_code)));
                    self.release();
                } else {
                    wire::put_ack(&mut self.wbuf, wire::PUBREL, rec.packet_id);
                }
            }
            Packet::PubComp(comp) => {
                if comp.reason_code.is_error() {
                    shared.error(format!("pubcomp: {}", reason(comp.reason_code)));
                } else {
                    *acked += 1;
                }
                self.release();
            }
            Packet::PubRel(rel) => wire::put_ack(&mut self.wbuf, wire::PUBCOMP, rel.packet_id),
            Packet::Disconnect(d) => {
                return Err(format!(
                    "disconnected by the broker: {}",
                    reason(d.reason_code)
                ));
            }
            Packet::PingResp | Packet::SubAck(_) | Packet::UnsubAck(_) => {}
            other => return Err(format!("unexpected {} from the broker", other.name())),
        }
        Ok(())
    }

    fn release(&mut self) {
        if let Some(p) = &mut self.publisher {
            p.inflight = p.inflight.saturating_sub(1);
        }
    }
}

/// What the event loop's socket wait produced.
enum IoEvent {
    /// Bytes were read into the buffer (0: end of stream).
    Read(std::io::Result<usize>),
    /// Some of the output was written (how much), or, with none left, it was flushed (0).
    Written(std::io::Result<usize>),
}

/// Reads into `rbuf` or, when `writing`, writes some of `wbuf` (flushes when it is empty),
/// whichever is ready first, reading first. Cancel safe: a read or write either completes
/// within this call or has not happened; the socket keeps the wakers.
fn poll_io(
    io: &mut Box<dyn Io>,
    rbuf: &mut BytesMut,
    wbuf: &[u8],
    writing: bool,
    cx: &mut Context<'_>,
) -> Poll<IoEvent> {
    if let Poll::Ready(read) = pin!(io.read_buf(rbuf)).poll(cx) {
        return Poll::Ready(IoEvent::Read(read));
    }
    if !writing {
        return Poll::Pending;
    }
    let written = if wbuf.is_empty() {
        match pin!(io.flush()).poll(cx) {
            Poll::Ready(flushed) => flushed.map(|()| 0),
            Poll::Pending => return Poll::Pending,
        }
    } else {
        match pin!(io.write(wbuf)).poll(cx) {
            Poll::Ready(written) => written,
            Poll::Pending => return Poll::Pending,
        }
    };
    Poll::Ready(IoEvent::Written(written))
}

impl Publisher {
    fn window_open(&self) -> bool {
        !self.template_qos_needs_id() || self.inflight < self.window
    }

    fn template_qos_needs_id(&self) -> bool {
        self.template.has_packet_id()
    }
}
