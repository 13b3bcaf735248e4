//! Writing the MQTT data types [MQTT-1.5] through one [`Sink`] interface with two
//! implementations: [`LenSink`] only counts bytes, [`BufSink`] appends them to a `BytesMut`.
//!
//! The encoder describes each packet once, generically over `Sink`; running that description
//! through `LenSink` gives the exact encoded length without allocating, running it through
//! `BufSink` writes exactly that many bytes. One description means `encoded_len` cannot drift
//! from `encode`.

use bytes::{BufMut, BytesMut};

use crate::EncodeError;
use crate::properties::Properties;
use crate::wire::{MAX_VAR_INT, var_int_len};

/// Destination of an encoding pass.
pub(crate) trait Sink {
    /// Appends raw bytes with no length prefix.
    fn raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError>;
    /// Appends a Variable Byte Integer [MQTT-1.5.5].
    fn var_int(&mut self, value: usize, field: &'static str) -> Result<(), EncodeError>;

    fn u8(&mut self, value: u8) -> Result<(), EncodeError> {
        self.raw(&[value])
    }

    fn u16(&mut self, value: u16) -> Result<(), EncodeError> {
        self.raw(&value.to_be_bytes())
    }

    fn u32(&mut self, value: u32) -> Result<(), EncodeError> {
        self.raw(&value.to_be_bytes())
    }

    /// Binary Data: two-byte length, then the bytes [MQTT-1.5.6].
    fn binary(&mut self, bytes: &[u8], field: &'static str) -> Result<(), EncodeError> {
        let len = u16::try_from(bytes.len()).map_err(|_| EncodeError::BinaryTooLong {
            field,
            len: bytes.len(),
        })?;
        self.u16(len)?;
        self.raw(bytes)
    }

    /// UTF-8 Encoded String: two-byte length, then the bytes [MQTT-1.5.4].
    fn string(&mut self, text: &str, field: &'static str) -> Result<(), EncodeError> {
        let len = u16::try_from(text.len()).map_err(|_| EncodeError::StringTooLong {
            field,
            len: text.len(),
        })?;
        self.u16(len)?;
        self.raw(text.as_bytes())
    }

    /// A property block: Property Length, then the properties [MQTT-2.2.2].
    fn properties<P: Properties>(&mut self, properties: &P) -> Result<(), EncodeError>
    where
        Self: Sized,
    {
        let len = LenSink::measure(|sink| properties.encode(sink))?;
        self.var_int(len, "property length")?;
        properties.encode(self)
    }
}

/// Counts the bytes an encoding pass would write. Sums saturate; the caller's final
/// comparison with the 268,435,455-byte limit catches anything absurd.
#[derive(Debug, Default)]
pub(crate) struct LenSink {
    len: usize,
}

impl LenSink {
    /// Runs `describe` against a fresh counter and returns the byte count.
    pub(crate) fn measure(
        describe: impl FnOnce(&mut LenSink) -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError> {
        let mut sink = LenSink::default();
        describe(&mut sink)?;
        Ok(sink.len)
    }

    fn add(&mut self, n: usize) {
        self.len = self.len.saturating_add(n);
    }
}

impl Sink for LenSink {
    fn raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.add(bytes.len());
        Ok(())
    }

    fn var_int(&mut self, value: usize, field: &'static str) -> Result<(), EncodeError> {
        let n = var_int_len(value).ok_or(EncodeError::VarIntTooLarge { field, value })?;
        self.add(n);
        Ok(())
    }

    fn properties<P: Properties>(&mut self, properties: &P) -> Result<(), EncodeError> {
        // Count the block once rather than measuring it and then walking it again.
        let len = LenSink::measure(|sink| properties.encode(sink))?;
        self.var_int(len, "property length")?;
        self.add(len);
        Ok(())
    }
}

/// Appends to a `BytesMut` whose capacity the caller has already reserved.
#[derive(Debug)]
pub(crate) struct BufSink<'a> {
    pub(crate) buf: &'a mut BytesMut,
}

impl Sink for BufSink<'_> {
    fn raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.buf.put_slice(bytes);
        Ok(())
    }

    fn var_int(&mut self, value: usize, field: &'static str) -> Result<(), EncodeError> {
        put_var_int(self.buf, value, field)
    }

    fn u8(&mut self, value: u8) -> Result<(), EncodeError> {
        self.buf.put_u8(value);
        Ok(())
    }

    fn u16(&mut self, value: u16) -> Result<(), EncodeError> {
        self.buf.put_u16(value);
        Ok(())
    }

    fn u32(&mut self, value: u32) -> Result<(), EncodeError> {
        self.buf.put_u32(value);
        Ok(())
    }
}

/// Writes a Variable Byte Integer; errors above 268,435,455.
pub(crate) fn put_var_int(
    buf: &mut BytesMut,
    value: usize,
    field: &'static str,
) -> Result<(), EncodeError> {
    if value > MAX_VAR_INT {
        return Err(EncodeError::VarIntTooLarge { field, value });
    }
    let mut rest = value;
    loop {
        // `rest % 128` is below 128, so the cast is lossless.
        let mut byte = (rest % 128) as u8;
        rest /= 128;
        if rest > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if rest == 0 {
            return Ok(());
        }
    }
}
