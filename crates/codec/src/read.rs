//! Bounds-checked reading of the MQTT data types [MQTT-1.5] from the body of one frozen
//! packet. Every read reports a truncated field as [`DecodeError::UnexpectedEnd`] instead of
//! panicking; binary data is split off the packet's `Bytes` without copying.

use bytes::{Buf, Bytes};

use crate::DecodeError;
use crate::wire::parse_var_int;

/// A cursor over the remaining bytes of one packet (or of one property block).
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.buf
            .try_get_u8()
            .map_err(|_| DecodeError::UnexpectedEnd { field })
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.buf
            .try_get_u16()
            .map_err(|_| DecodeError::UnexpectedEnd { field })
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.buf
            .try_get_u32()
            .map_err(|_| DecodeError::UnexpectedEnd { field })
    }

    /// A Variable Byte Integer [MQTT-1.5.5].
    pub(crate) fn var_int(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        match parse_var_int(&self.buf, field)? {
            Some((value, used)) => {
                // `parse_var_int` only reports bytes it has seen, so `used <= len`.
                self.buf.advance(used);
                Ok(value)
            }
            None => Err(DecodeError::UnexpectedEnd { field }),
        }
    }

    /// The next `len` bytes, zero-copy.
    pub(crate) fn take(&mut self, len: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        if len > self.buf.len() {
            return Err(DecodeError::UnexpectedEnd { field });
        }
        Ok(self.buf.split_to(len))
    }

    /// A sub-reader over the next `len` bytes (a property block).
    pub(crate) fn sub(&mut self, len: u32, field: &'static str) -> Result<Reader, DecodeError> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(len, field).map(Reader::new)
    }

    /// Binary Data: a two-byte length then that many bytes [MQTT-1.5.6], zero-copy.
    pub(crate) fn binary(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u16(field)?;
        self.take(usize::from(len), field)
    }

    /// A UTF-8 Encoded String [MQTT-1.5.4]: well-formed, without U+0000.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let raw = self.binary(field)?;
        let text = std::str::from_utf8(&raw).map_err(|_| DecodeError::InvalidUtf8 { field })?;
        if raw.contains(&0) {
            return Err(DecodeError::NullCharacter { field });
        }
        Ok(text.to_owned())
    }

    /// Everything left (the PUBLISH payload), zero-copy.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Checks that the packet has been consumed exactly [MQTT-2.1.4].
    pub(crate) fn finish(self, packet_type: u8) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                packet_type,
                len: self.buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_checked() {
        let mut r = Reader::new(Bytes::from_static(b"\x00\x02a\x00"));
        assert_eq!(
            r.string("s"),
            Err(DecodeError::NullCharacter { field: "s" })
        );
        let mut r = Reader::new(Bytes::from_static(b"\x00\x02\xC3\x28"));
        assert_eq!(r.string("s"), Err(DecodeError::InvalidUtf8 { field: "s" }));
        // An encoded surrogate (U+D800) is not well-formed UTF-8 [MQTT-1.5.4-1].
        let mut r = Reader::new(Bytes::from_static(b"\x00\x03\xED\xA0\x80"));
        assert_eq!(r.string("s"), Err(DecodeError::InvalidUtf8 { field: "s" }));
        let mut r = Reader::new(Bytes::from_static(b"\x00\x05ab"));
        assert_eq!(
            r.string("s"),
            Err(DecodeError::UnexpectedEnd { field: "s" })
        );
        let mut r = Reader::new(Bytes::from_static(b"\x00\x03h\xC3\xA9"));
        assert_eq!(r.string("s"), Ok("h\u{00E9}".to_owned()));
    }

    #[test]
    fn short_reads_fail() {
        let mut r = Reader::new(Bytes::from_static(b"\x01"));
        assert_eq!(r.u16("id"), Err(DecodeError::UnexpectedEnd { field: "id" }));
        assert_eq!(r.u32("n"), Err(DecodeError::UnexpectedEnd { field: "n" }));
        assert_eq!(r.u8("b"), Ok(1));
        assert_eq!(r.u8("b"), Err(DecodeError::UnexpectedEnd { field: "b" }));
        assert!(r.finish(1).is_ok());
    }
}
