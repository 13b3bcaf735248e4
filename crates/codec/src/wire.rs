//! Wire-level constants shared by the decoder and the encoder: packet type numbers
//! [MQTT-2.1.2] and the Variable Byte Integer [MQTT-1.5.5].
//!
//! Nothing here allocates or knows about packets beyond their type number.

use crate::DecodeError;

pub(crate) const CONNECT: u8 = 1;
pub(crate) const CONNACK: u8 = 2;
pub(crate) const PUBLISH: u8 = 3;
pub(crate) const PUBACK: u8 = 4;
pub(crate) const PUBREC: u8 = 5;
pub(crate) const PUBREL: u8 = 6;
pub(crate) const PUBCOMP: u8 = 7;
pub(crate) const SUBSCRIBE: u8 = 8;
pub(crate) const SUBACK: u8 = 9;
pub(crate) const UNSUBSCRIBE: u8 = 10;
pub(crate) const UNSUBACK: u8 = 11;
pub(crate) const PINGREQ: u8 = 12;
pub(crate) const PINGRESP: u8 = 13;
pub(crate) const DISCONNECT: u8 = 14;
pub(crate) const AUTH: u8 = 15;

/// The largest value a Variable Byte Integer can carry (4 bytes) [MQTT-1.5.5].
pub(crate) const MAX_VAR_INT: usize = 268_435_455;

/// The packet's name as the spec spells it, for error messages.
pub(crate) fn packet_name(packet_type: u8) -> &'static str {
    match packet_type {
        CONNECT => "CONNECT",
        CONNACK => "CONNACK",
        PUBLISH => "PUBLISH",
        PUBACK => "PUBACK",
        PUBREC => "PUBREC",
        PUBREL => "PUBREL",
        PUBCOMP => "PUBCOMP",
        SUBSCRIBE => "SUBSCRIBE",
        SUBACK => "SUBACK",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBACK => "UNSUBACK",
        PINGREQ => "PINGREQ",
        PINGRESP => "PINGRESP",
        DISCONNECT => "DISCONNECT",
        AUTH => "AUTH",
        _ => "reserved packet type",
    }
}

/// Parses a Variable Byte Integer at the front of `buf`.
///
/// `Ok(None)` when `buf` ends before the integer does. Errors when a fifth byte would be
/// needed or when the encoding is longer than necessary (a trailing 0x00 continuation
/// byte): both are malformed [MQTT-1.5.5-1]. Returns the value and the bytes it used.
pub(crate) fn parse_var_int(
    buf: &[u8],
    field: &'static str,
) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (index, byte) in buf.iter().copied().take(4).enumerate() {
        // index <= 3, so the shift is at most 21 and 0x7F << 21 fits in a u32.
        value |= u32::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            if index > 0 && byte == 0 {
                return Err(DecodeError::MalformedVariableByteInteger { field });
            }
            return Ok(Some((value, index + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::MalformedVariableByteInteger { field })
    } else {
        Ok(None)
    }
}

/// Number of bytes the Variable Byte Integer encoding of `value` takes, or `None` when
/// `value` is above [`MAX_VAR_INT`].
pub(crate) fn var_int_len(value: usize) -> Option<usize> {
    match value {
        0..=127 => Some(1),
        128..=16_383 => Some(2),
        16_384..=2_097_151 => Some(3),
        2_097_152..=MAX_VAR_INT => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_int_boundaries() {
        let cases: &[(&[u8], u32)] = &[
            (&[0x00], 0),
            (&[0x7F], 127),
            (&[0x80, 0x01], 128),
            (&[0xFF, 0x7F], 16_383),
            (&[0x80, 0x80, 0x01], 16_384),
            (&[0xFF, 0xFF, 0x7F], 2_097_151),
            (&[0x80, 0x80, 0x80, 0x01], 2_097_152),
            (&[0xFF, 0xFF, 0xFF, 0x7F], 268_435_455),
        ];
        for (bytes, value) in cases {
            assert_eq!(parse_var_int(bytes, "x"), Ok(Some((*value, bytes.len()))));
            assert_eq!(var_int_len(*value as usize), Some(bytes.len()));
        }
        assert_eq!(var_int_len(MAX_VAR_INT + 1), None);
    }

    #[test]
    fn var_int_incomplete_and_malformed() {
        assert_eq!(parse_var_int(&[], "x"), Ok(None));
        assert_eq!(parse_var_int(&[0x80, 0x80, 0x80], "x"), Ok(None));
        let malformed = Err(DecodeError::MalformedVariableByteInteger { field: "x" });
        assert_eq!(parse_var_int(&[0xFF, 0xFF, 0xFF, 0xFF], "x"), malformed);
        assert_eq!(
            parse_var_int(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01], "x"),
            malformed
        );
        assert_eq!(parse_var_int(&[0x80, 0x00], "x"), malformed);
        assert_eq!(parse_var_int(&[0xFF, 0x80, 0x00], "x"), malformed);
    }
}
