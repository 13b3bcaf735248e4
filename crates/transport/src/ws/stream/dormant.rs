//! A WebSocket stream while its connection hibernates ([`crate::hibernate`]): what stands
//! for it besides the socket, and what it does without a task.
//!
//! An idle browser tab is the common case: mqtt.js sends a PINGREQ (in a binary frame)
//! every keep-alive, and the broker sends a WebSocket ping after `ping_interval` without
//! sending, which the browser answers with a pong. All three are done here, from the
//! watcher, so an idle tab never wakes. Anything else (data, a ping or close frame of the
//! client's, a frame cut off, compressed payload, bad framing) wakes the connection, whose
//! stream then reads it as usual.

use std::io::{self, Read, Write};

use ferrymq_broker::Connection;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ControlOut, WsStream};
use crate::hibernate::{Answer, Dormant, Plain, Sleepable};
use crate::ws::frame::{
    DecoderSettings, FrameDecoder, OP_PING, Step, encode_binary_header, encode_control,
};

/// Input peeked at once while asleep. A keep-alive is 8 bytes (a 2-byte binary frame with
/// its header and mask), a pong 6: more than this is not a keep-alive.
const PEEK: usize = 64;

/// 40 bytes: with the sleeping `Connection` in one 256-byte allocator block.
pub(crate) struct WsDormant {
    /// A sleeping stream is between frames, so its decoder is its settings.
    pub(super) decoder: DecoderSettings,
    pub(super) ping_interval_ms: u32,
    pub(super) last_write: Instant,
    pub(super) shutdown: CancellationToken,
    /// A frame written here that the socket did not take whole; the woken stream sends the
    /// rest before anything else.
    pub(super) unsent: Option<Box<ControlOut>>,
}

impl WsDormant {
    /// Writes one whole frame, or keeps what the socket did not take in `unsent` and says
    /// so (`false`: the connection must wake to finish it).
    fn send(&mut self, socket: &std::net::TcpStream, frame: &[u8], now: Instant) -> bool {
        self.last_write = now;
        let written = match (&*socket).write(frame) {
            Ok(n) if n == frame.len() => return true,
            Ok(n) => n,
            // The woken stream meets the error again, or writes once the socket takes it.
            Err(_) => 0,
        };
        self.unsent = Some(Box::new(ControlOut {
            bytes: frame.to_vec(),
            written,
        }));
        false
    }
}

impl Dormant for WsDormant {
    type Stream = WsStream<TcpStream>;

    fn wake(self, socket: TcpStream) -> WsStream<TcpStream> {
        WsStream::resume(socket, self)
    }

    fn timer(&self) -> Option<Instant> {
        (self.ping_interval_ms != 0).then(|| {
            self.last_write + std::time::Duration::from_millis(u64::from(self.ping_interval_ms))
        })
    }

    /// Sends the ping that is due, as [`WsStream`]'s own timer would.
    fn on_timer(&mut self, socket: &std::net::TcpStream, now: Instant) -> bool {
        if self.timer().is_none_or(|due| now < due) {
            return true;
        }
        let mut ping = Vec::with_capacity(2);
        encode_control(OP_PING, &[], &mut ping);
        self.send(socket, &ping, now)
    }

    /// Takes pongs and answers a lone PINGREQ in a binary frame. The input is only peeked
    /// at until it is known to be nothing else, then consumed, then answered: a reply the
    /// socket does not take whole is finished by the woken stream, so the client never
    /// gets two.
    fn on_readable(&mut self, socket: &std::net::TcpStream, conn: &mut Connection) -> Answer {
        let mut input = [0u8; PEEK];
        let n = match socket.peek(&mut input) {
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Answer::Nothing,
            Err(_) => return Answer::Wake,
        };
        // End of stream, or more than a keep-alive.
        if n == 0 || n == PEEK {
            return Answer::Wake;
        }
        let mut decoder = FrameDecoder::with_settings(self.decoder);
        let (mut read, mut write) = (0, 0);
        while read < n {
            match decoder.decode(&mut input[..n], &mut read, &mut write) {
                Step::NeedMore | Step::Pong => {}
                // The client's ping or close, bad framing, compressed data.
                _ => return Answer::Wake,
            }
        }
        if !decoder.between_frames() {
            return Answer::Wake;
        }
        let now = std::time::Instant::now();
        let mqtt = &input[..write];
        if !mqtt.is_empty() && !conn.answer_asleep(mqtt, now) {
            return Answer::Wake;
        }
        let mut taken = [0u8; PEEK];
        if !matches!((&*socket).read(&mut taken[..n]), Ok(m) if m == n) {
            return Answer::Wake;
        }
        if mqtt.is_empty() {
            return Answer::Nothing;
        }
        // The PINGRESP, in a binary frame of its own.
        let output = conn.output();
        let mut header = [0u8; 10];
        let header_len = encode_binary_header(output.len() as u64, &mut header);
        let mut frame = Vec::with_capacity(header_len + output.len());
        frame.extend_from_slice(&header[..header_len]);
        frame.extend_from_slice(output);
        // A sleeper keeps no buffer.
        *output = bytes::BytesMut::new();
        match self.send(socket, &frame, Instant::now()) {
            true => Answer::Answered,
            false => Answer::Wake,
        }
    }
}

/// A WebSocket over a socket that can sleep (plain TCP, or what followed a PROXY header
/// once consumed).
impl<S: Sleepable<Dormant = Plain>> Sleepable for WsStream<S> {
    type Dormant = WsDormant;

    fn into_dormant(self) -> (TcpStream, WsDormant) {
        let (inner, dormant) = self.put_to_sleep();
        (inner.into_dormant().0, dormant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sleeping WebSocket connection is one box of `Connection` and `WsDormant`: kept at
    /// 248 bytes or less it takes mimalloc's 256-byte blocks (a request takes the smallest
    /// class more than 7 bytes larger; see docs/memory.md).
    #[test]
    fn a_sleeping_websocket_fits_a_256_byte_block() {
        let size = std::mem::size_of::<Connection>() + std::mem::size_of::<WsDormant>();
        assert!(size <= 256 - 8, "Connection + WsDormant = {size} bytes");
    }
}
