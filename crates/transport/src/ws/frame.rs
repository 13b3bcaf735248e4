//! RFC 6455 framing, server side and sans-IO: a decoder that strips frame headers and
//! unmasks payloads *in place* in the caller's read buffer, and header encoders for what the
//! server sends (unmasked, [RFC 6455 §5.1]).
//!
//! Why not tungstenite's codec: it keeps an input buffer of `read_buffer_size` per connection
//! even when idle, reserves the full length a frame header *announces* before a byte of
//! payload arrives (so an unauthenticated socket could make it allocate `max_frame_size`),
//! and its buffers keep their peak capacity for the connection's life. Here binary payload
//! goes straight into the MQTT driver's buffer, where the packet decoder applies its limits
//! (CONNECT size before authentication, packet size after) before anything grows; the only
//! per-connection state is this struct, and a control frame's payload (at most 125 bytes)
//! is held only while that frame is being read.

/// Close status codes [RFC 6455 §7.4.1] that the server sends.
pub(crate) mod close_code {
    /// Normal closure.
    pub(crate) const NORMAL: u16 = 1000;
    /// The server is going away (shutting down).
    pub(crate) const GOING_AWAY: u16 = 1001;
    /// The peer broke the framing rules (unmasked frame, bad opcode, bad continuation…).
    pub(crate) const PROTOCOL_ERROR: u16 = 1002;
    /// A data type we do not accept: MQTT over WebSocket is binary only [MQTT-6.0.0-1].
    pub(crate) const UNSUPPORTED_DATA: u16 = 1003;
    /// A close reason that is not UTF-8.
    pub(crate) const INVALID_PAYLOAD: u16 = 1007;
    /// A frame larger than the configured limit.
    pub(crate) const TOO_BIG: u16 = 1009;
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// The largest control frame payload [RFC 6455 §5.5].
pub(crate) const MAX_CONTROL_PAYLOAD: usize = 125;

/// [`FrameDecoder`]'s `limit`: the flag bit and the largest limit below it.
const DEFLATE_BIT: u32 = 1 << 31;
const MAX_LIMIT: u32 = DEFLATE_BIT - 1;

/// What [`FrameDecoder::decode`] stopped for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The input is used up; binary payload (if any) was kept.
    NeedMore,
    /// A complete ping; answer with a pong carrying the payload.
    Ping(Vec<u8>),
    /// A complete pong.
    Pong,
    /// The peer started the closing handshake, with its status code if it gave one.
    Close(Option<u16>),
    /// The peer broke the protocol: close with this code and stop reading.
    Fail(u16),
    /// The last `len` bytes written are compressed payload (permessage-deflate) of one frame,
    /// `fin` when that frame ended its message. Returned at the end of the frame's payload
    /// or of the input, so that compressed bytes never mix with plain ones.
    Compressed { len: usize, fin: bool },
}

/// Decoder state between reads: a partial frame header, or the position in a payload.
/// Every idle WebSocket connection holds one, so it is kept compact.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    /// The header being read; once complete, its first 4 bytes hold the frame's mask.
    header: [u8; 14],
    header_len: u8,
    in_payload: bool,
    remaining: u64,
    opcode: u8,
    mask_offset: u8,
    /// A fragmented binary message is open: continuation frames are expected.
    in_message: bool,
    /// The current (or last) data message is compressed (permessage-deflate).
    compressed: bool,
    /// The payload of the control frame being read, at its announced length (filled up to
    /// that minus `remaining`); `None` otherwise, and for an empty one. (A boxed slice: 16
    /// bytes where a `Vec` takes 24, in every WebSocket connection's task.)
    control: Option<Box<[u8]>>,
    /// The frame size limit in the low 31 bits (MQTT packets are at most 256 MiB), and in
    /// the top bit whether permessage-deflate was negotiated: a bool of its own would grow
    /// every WebSocket connection's task past its 1,024-byte cell (see driver/tests.rs).
    limit: u32,
}

/// What a [`FrameDecoder`] is set up with, in four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecoderSettings(u32);

impl FrameDecoder {
    /// `max_frame`: the largest data frame payload (and inflated message) accepted; larger
    /// ones fail with 1009. `deflate`: permessage-deflate was negotiated.
    pub(crate) fn new(max_frame: u64, deflate: bool) -> FrameDecoder {
        let max_frame = u32::try_from(max_frame).unwrap_or(u32::MAX).min(MAX_LIMIT);
        FrameDecoder {
            header: [0; 14],
            header_len: 0,
            in_payload: false,
            remaining: 0,
            opcode: 0,
            mask_offset: 0,
            in_message: false,
            compressed: false,
            control: None,
            limit: max_frame | if deflate { DEFLATE_BIT } else { 0 },
        }
    }

    /// The decoder's settings (size limit, permessage-deflate), to start another with
    /// them: a decoder between frames is that and nothing else.
    pub(crate) fn settings(&self) -> DecoderSettings {
        DecoderSettings(self.limit)
    }

    /// A decoder with `settings`, between frames.
    pub(crate) fn with_settings(settings: DecoderSettings) -> FrameDecoder {
        let DecoderSettings(limit) = settings;
        FrameDecoder::new(u64::from(limit & MAX_LIMIT), limit & DEFLATE_BIT != 0)
    }

    /// Between frames and messages: nothing of a frame is held.
    pub(crate) fn between_frames(&self) -> bool {
        self.header_len == 0 && !self.in_payload && !self.in_message
    }

    /// Whether permessage-deflate was negotiated.
    pub(crate) fn deflate(&self) -> bool {
        self.limit & DEFLATE_BIT != 0
    }

    /// The frame size limit, also the limit of an inflated message.
    pub(crate) fn max_frame(&self) -> u64 {
        u64::from(self.limit & MAX_LIMIT)
    }

    /// Consumes raw bytes `buf[*read..]`, moving unmasked binary payload down to
    /// `buf[*write..]` (`*write <= *read` always, so this is an in-place compaction) and
    /// advancing both. Returns at the end of the input or at the first complete control
    /// frame or error; call again while `*read < buf.len()`.
    pub(crate) fn decode(&mut self, buf: &mut [u8], read: &mut usize, write: &mut usize) -> Step {
        while *read < buf.len() {
            if !self.in_payload {
                let byte = buf[*read];
                *read += 1;
                if let Some(step) = self.header_byte(byte) {
                    return step;
                }
                continue;
            }
            let available = (buf.len() - *read) as u64;
            // Fits in usize: bounded by `available`, a slice length.
            let n = self.remaining.min(available) as usize;
            let mask = self.rotated_mask();
            let compressed = self.opcode < OP_CLOSE && self.compressed;
            if self.opcode < OP_CLOSE {
                buf.copy_within(*read..*read + n, *write);
                unmask(&mut buf[*write..*write + n], mask);
                *write += n;
            } else {
                if let Some(control) = &mut self.control {
                    // Fits: a control frame's length is at most 125.
                    let start = control.len() - self.remaining as usize;
                    let filled = &mut control[start..start + n];
                    filled.copy_from_slice(&buf[*read..*read + n]);
                    unmask(filled, mask);
                }
            }
            // Fits: `n & 3` is below 4.
            self.mask_offset = (self.mask_offset + (n & 3) as u8) & 3;
            *read += n;
            self.remaining -= n as u64;
            if self.remaining == 0 {
                self.in_payload = false;
                if compressed {
                    let fin = !self.in_message;
                    return Step::Compressed { len: n, fin };
                }
                if let Some(step) = self.frame_done() {
                    return step;
                }
            } else if compressed {
                return Step::Compressed { len: n, fin: false };
            }
        }
        Step::NeedMore
    }

    /// The mask as it applies from the next payload byte on.
    fn rotated_mask(&self) -> [u8; 4] {
        let mut mask = [
            self.header[0],
            self.header[1],
            self.header[2],
            self.header[3],
        ];
        mask.rotate_left(usize::from(self.mask_offset));
        mask
    }

    /// Adds one header byte; validates as soon as the bytes allow it.
    fn header_byte(&mut self, byte: u8) -> Option<Step> {
        let at = usize::from(self.header_len);
        self.header[at] = byte;
        self.header_len += 1;
        if at == 1
            && let Err(code) = self.check_first_two()
        {
            return Some(Step::Fail(code));
        }
        if at < 1 {
            return None;
        }
        let extended = match self.header[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask_len = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        let total = 2 + extended + mask_len;
        if usize::from(self.header_len) < total {
            return None;
        }
        let length: u64 = match extended {
            0 => u64::from(self.header[1] & 0x7F),
            2 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            _ => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(bytes)
            }
        };
        if length >> 63 != 0 {
            // The most significant bit must be 0 [RFC 6455 §5.2].
            return Some(Step::Fail(close_code::PROTOCOL_ERROR));
        }
        if self.opcode < OP_CLOSE && length > self.max_frame() {
            return Some(Step::Fail(close_code::TOO_BIG));
        }
        // The mask moves to the front: the header's other bytes are not needed any more.
        // (An unmasked control frame unmasks with zeros.)
        self.header.copy_within(2 + extended..total, 0);
        self.header[mask_len..4].fill(0);
        self.mask_offset = 0;
        self.header_len = 0;
        self.remaining = length;
        if self.opcode >= OP_CLOSE {
            self.control = (length > 0).then(|| vec![0; length as usize].into_boxed_slice());
        }
        if length > 0 {
            self.in_payload = true;
            return None;
        }
        self.frame_done()
    }

    /// Checks FIN / RSV / opcode / MASK / the 7-bit length once two bytes are in.
    fn check_first_two(&mut self) -> Result<(), u16> {
        let [b0, b1, ..] = self.header;
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        // RSV2 and RSV3 belong to no extension we speak; RSV1 is permessage-deflate's, only
        // once negotiated, and only on a message's first frame [RFC 6455 §5.2, RFC 7692 §6.1]
        // (a compressed text message still gets the 1003 of any text message).
        let rsv1 = b0 & 0x40 != 0;
        if b0 & 0x30 != 0 || (rsv1 && (!self.deflate() || !matches!(opcode, OP_BINARY | OP_TEXT))) {
            return Err(close_code::PROTOCOL_ERROR);
        }
        if b1 & 0x80 == 0 && !matches!(opcode, OP_CLOSE | OP_PING | OP_PONG) {
            // Client frames must be masked [RFC 6455 §5.1], and data frames here must. Control
            // frames are let through unmasked: paho-mqtt (Python, 2.1) sends its pongs and its
            // close frame unmasked (as paho's C client did until 1.3.2), and closing for that
            // would drop every idle paho WebSocket client at the first ping. A control frame
            // is at most 125 bytes and never reaches the MQTT layer.
            return Err(close_code::PROTOCOL_ERROR);
        }
        match opcode {
            OP_TEXT => return Err(close_code::UNSUPPORTED_DATA),
            OP_BINARY if self.in_message => return Err(close_code::PROTOCOL_ERROR),
            OP_CONTINUATION if !self.in_message => return Err(close_code::PROTOCOL_ERROR),
            OP_BINARY | OP_CONTINUATION => {
                self.in_message = !fin;
                if opcode == OP_BINARY {
                    self.compressed = rsv1;
                }
            }
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin || usize::from(b1 & 0x7F) > MAX_CONTROL_PAYLOAD {
                    return Err(close_code::PROTOCOL_ERROR);
                }
            }
            _ => return Err(close_code::PROTOCOL_ERROR),
        }
        self.opcode = opcode;
        Ok(())
    }

    fn frame_done(&mut self) -> Option<Step> {
        let payload = self.control.take().map(Vec::from).unwrap_or_default();
        match self.opcode {
            OP_PING => Some(Step::Ping(payload)),
            OP_PONG => Some(Step::Pong),
            OP_CLOSE => Some(match parse_close(&payload) {
                Ok(code) => Step::Close(code),
                Err(code) => Step::Fail(code),
            }),
            // An empty frame of a compressed message still counts: it may end the message.
            _ if self.compressed => Some(Step::Compressed {
                len: 0,
                fin: !self.in_message,
            }),
            _ => None,
        }
    }
}

/// A close frame's status code, checked [RFC 6455 §5.5.1, §7.4]: no payload, or a valid
/// code followed by a UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<Option<u16>, u16> {
    match payload {
        [] => Ok(None),
        [_] => Err(close_code::PROTOCOL_ERROR),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(close_code::PROTOCOL_ERROR);
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(close_code::INVALID_PAYLOAD);
            }
            Ok(Some(code))
        }
    }
}

/// XORs `data` with the repeated 4-byte `mask` [RFC 6455 §5.3], 8 bytes at a time rather
/// than byte by byte with a running offset: every byte a browser sends passes through here.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // Whole chunks are multiples of 4 bytes: the tail starts at mask byte 0 again.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// Writes the header of an unmasked, final frame carrying `len` payload bytes into `out`;
/// returns its length (2, 4 or 10 bytes).
pub(crate) fn encode_header(opcode: u8, len: u64, out: &mut [u8; 10]) -> usize {
    out[0] = 0x80 | opcode;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&len.to_be_bytes());
        10
    }
}

/// Header encoding for a binary data frame.
pub(crate) fn encode_binary_header(len: u64, out: &mut [u8; 10]) -> usize {
    encode_header(OP_BINARY, len, out)
}

/// Header encoding for a compressed binary message in one frame (RSV1 set, RFC 7692 §6).
pub(crate) fn encode_compressed_header(len: u64, out: &mut [u8; 10]) -> usize {
    let n = encode_header(OP_BINARY, len, out);
    out[0] |= 0x40;
    n
}

/// A whole control frame (ping, pong or close), appended to `out`.
pub(crate) fn encode_control(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let mut header = [0u8; 10];
    let n = encode_header(opcode, payload.len() as u64, &mut header);
    out.extend_from_slice(&header[..n]);
    out.extend_from_slice(payload);
}

/// A close frame with `code` and no reason, appended to `out`.
pub(crate) fn encode_close(code: u16, out: &mut Vec<u8>) {
    encode_control(OP_CLOSE, &code.to_be_bytes(), out);
}

#[cfg(test)]
pub(crate) mod tests;
