//! permessage-deflate (RFC 7692), off by default: the negotiation (which offer is accepted and
//! what is answered) and the per-message compressor and inflater. No I/O here; [`WsStream`]
//! calls it.
//!
//! Memory is why it looks the way it does. Both directions run without context takeover, so
//! every message is compressed and inflated on its own: the deflate state (miniz_oxide: 312
//! KiB to compress, 42 KiB to inflate) exists only while a message is being processed, and an
//! idle connection pays nothing for the extension but a flag.
//!
//! [`WsStream`]: super::WsStream

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use hyper::header::{self, HeaderMap};

use super::frame::{close_code, encode_compressed_header};

/// What the server answers to an accepted offer. `server_no_context_takeover` is always
/// allowed [RFC 7692 §7.1.1.1]; `client_no_context_takeover` may be answered even when the
/// client did not offer it [§7.1.1.2]. Together they let each message stand alone.
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The answer to an offer that limits the server's window to 15 bits: the limit must be
/// echoed, with the same or a smaller value [RFC 7692 §7.1.2.1].
const ANSWER_WINDOW_15: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15";

/// The bytes a sync flush ends with, removed from each compressed message and appended again
/// before inflating it [RFC 7692 §7.2.1, §7.2.2].
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Messages shorter than this go out uncompressed (allowed per message, RSV1 clear): setting
/// up the compressor costs more than the few bytes it would save (about 15 µs for 300 bytes).
pub(crate) const MIN_COMPRESS: usize = 512;

/// Compression level 1: miniz_oxide's fast path compresses 256 KiB of JSON in 0.5 ms to 11%,
/// level 6 takes 6 ms for 10%.
const LEVEL: u32 = 1;

/// The `Sec-WebSocket-Extensions` answer when permessage-deflate is `enabled` and the client
/// offered a configuration we can serve: its first acceptable offer, in the client's order.
/// Offers we cannot serve are declined (the connection goes on uncompressed, never fails);
/// other extensions are ignored, so nothing the client did not offer is ever answered.
pub(crate) fn negotiate(headers: &HeaderMap, enabled: bool) -> Option<&'static str> {
    if !enabled {
        return None;
    }
    headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(accept_offer)
}

/// One extension offer (`name; param[=value]; …`): our answer if it is an acceptable
/// permessage-deflate offer [RFC 7692 §7.1]. Declined: unknown or repeated parameters,
/// invalid values, and a `server_max_window_bits` below 15 (miniz_oxide always uses a 32 KiB
/// window, so a smaller one cannot be promised).
fn accept_offer(offer: &str) -> Option<&'static str> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut seen = [false; 4];
    let mut server_window = None;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (param, None),
        };
        let index = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ]
        .iter()
        .position(|known| known.eq_ignore_ascii_case(name))?;
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
        let bits = value.map(|v| v.parse::<u8>().ok().filter(|b| (8..=15).contains(b)));
        match (index, bits) {
            // The two takeover flags take no value.
            (0 | 1, None) => {}
            (2, Some(Some(bits))) => server_window = Some(bits),
            // Any window of the client's inflates fine; without a value it only says the
            // client understands a limit we do not set.
            (3, None | Some(Some(_))) => {}
            _ => return None,
        }
    }
    match server_window {
        None => Some(ANSWER),
        Some(15) => Some(ANSWER_WINDOW_15),
        Some(_) => None,
    }
}

/// One outgoing message as a whole compressed binary frame (header and payload, RSV1 set),
/// starting at the returned offset of the vector; `None` when compression would not make it
/// smaller. The compressor lives only for this call.
pub(crate) fn compress_message(data: &[u8]) -> Option<(Vec<u8>, usize)> {
    const HEADER: usize = 10;
    let mut compress = Compress::new(Compression::new(LEVEL), false);
    let mut out = Vec::with_capacity(HEADER + data.len() / 4 + 64);
    out.resize(HEADER, 0);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity());
        }
        let consumed = usize::try_from(compress.total_in()).ok()?;
        compress
            .compress_vec(data.get(consumed..)?, &mut out, FlushCompress::Sync)
            .ok()?;
        let done = usize::try_from(compress.total_in()).ok()? == data.len();
        // A sync flush is complete once it stopped with room to spare.
        if done && out.len() < out.capacity() {
            break;
        }
    }
    drop(compress);
    let payload = out.len().checked_sub(HEADER + TAIL.len())?;
    if !out.ends_with(&TAIL) || payload >= data.len() {
        return None;
    }
    out.truncate(HEADER + payload);
    let mut header = [0u8; HEADER];
    let n = encode_compressed_header(payload as u64, &mut header);
    let start = HEADER - n;
    out[start..HEADER].copy_from_slice(&header[..n]);
    Some((out, start))
}

/// The inbound side while compressed input is in progress: created by the first compressed
/// frame, dropped when its message is inflated and no raw input waits, so idle connections
/// hold none of it.
#[derive(Default)]
pub(crate) struct Inflate {
    /// Created for the first message and reset for each next one while this lives.
    decompress: Option<Decompress>,
    /// Compressed bytes of the current message not inflated yet (at most one read's worth:
    /// nothing more is read while they last), from `consumed` on.
    input: Vec<u8>,
    consumed: usize,
    /// A message is being inflated.
    active: bool,
    /// Its final frame arrived (and [`TAIL`] was appended to `input`).
    fin: bool,
    /// Bytes it inflated to so far, against the frame size limit.
    inflated: u64,
    /// Raw frame bytes read after a compressed message ended: they are decoded once the
    /// message is inflated, because its bytes come first in the stream.
    pub(crate) raw: BytesMut,
}

impl Inflate {
    /// Adds compressed payload of the current message; `fin`: it was the message's last.
    pub(crate) fn push(&mut self, compressed: &[u8], fin: bool) {
        if !self.active {
            self.active = true;
            self.inflated = 0;
            match &mut self.decompress {
                Some(decompress) => decompress.reset(false),
                None => self.decompress = Some(Decompress::new(false)),
            }
        }
        self.input.extend_from_slice(compressed);
        if fin {
            self.fin = true;
            self.input.extend_from_slice(&TAIL);
        }
    }

    /// Nothing in progress and no raw input waiting: this can be dropped.
    pub(crate) fn is_idle(&self) -> bool {
        !self.active && self.raw.is_empty()
    }

    /// Inflates into `out` what the input allows; `Ok(0)` when the message is done (or
    /// needs more input). `Err(code)`: close with it (1009 past `max`, 1007 for data that
    /// does not inflate).
    pub(crate) fn inflate(&mut self, out: &mut [u8], max: u64) -> Result<usize, u16> {
        let Some(decompress) = self.decompress.as_mut().filter(|_| self.active) else {
            return Ok(0);
        };
        // One byte past the limit is enough to know it was passed.
        let room = max.saturating_sub(self.inflated).saturating_add(1);
        let out_len = usize::try_from(room).map_or(out.len(), |r| r.min(out.len()));
        let out = &mut out[..out_len];
        let mut produced = 0;
        let mut ended = false;
        // Called even without input left: the inflater may hold output that did not fit.
        while produced < out.len() {
            let (in_before, out_before) = (decompress.total_in(), decompress.total_out());
            let status = decompress
                .decompress(
                    &self.input[self.consumed..],
                    &mut out[produced..],
                    FlushDecompress::None,
                )
                .map_err(|_| close_code::INVALID_PAYLOAD)?;
            // Both fit: bounded by the slices' lengths.
            let used = (decompress.total_in() - in_before) as usize;
            let made = (decompress.total_out() - out_before) as usize;
            self.consumed += used;
            produced += made;
            if status == Status::StreamEnd {
                // A final deflate block: what follows (the appended tail) is not data.
                ended = true;
                break;
            }
            if used == 0 && made == 0 {
                break;
            }
        }
        self.inflated += produced as u64;
        if self.inflated > max {
            return Err(close_code::TOO_BIG);
        }
        if ended || self.consumed == self.input.len() {
            self.input.clear();
            self.consumed = 0;
        }
        if produced == 0 && out_len > 0 {
            if self.fin || ended {
                // The message is complete; the next one starts afresh (no context takeover).
                self.active = false;
                self.fin = false;
                self.input = Vec::new();
            } else if !self.input.is_empty() {
                return Err(close_code::INVALID_PAYLOAD);
            }
        }
        Ok(produced)
    }

    /// Takes `n` raw bytes off the front of the waiting input once they were decoded.
    pub(crate) fn raw_consumed(&mut self, n: usize) {
        self.raw.advance(n);
    }
}

#[cfg(test)]
mod tests;
