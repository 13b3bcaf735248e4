//! The generator's payload header: 8 bytes of send time (nanoseconds since the Unix epoch,
//! the clock every generator process on the machine shares), 4 bytes of publisher id and 8
//! bytes of sequence number, big-endian, then zero padding to the payload size. Subscribers
//! use the time for latency and (publisher, sequence) for loss and duplicate accounting.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of header at the start of every payload.
pub(crate) const HEADER_LEN: usize = 20;

/// What a payload header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Send time, nanoseconds since the Unix epoch.
    pub(crate) sent_ns: u64,
    /// Global publisher index (from 1).
    pub(crate) publisher: u32,
    /// Per-publisher sequence number, from 0.
    pub(crate) seq: u64,
}

impl Stamp {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`. `out` must be at least
    /// that long (payload sizes are validated against it).
    pub(crate) fn write(&self, out: &mut [u8]) {
        if let Some(header) = out.get_mut(..HEADER_LEN) {
            header[..8].copy_from_slice(&self.sent_ns.to_be_bytes());
            header[8..12].copy_from_slice(&self.publisher.to_be_bytes());
            header[12..20].copy_from_slice(&self.seq.to_be_bytes());
        }
    }

    /// Reads a header; `None` for a payload too short to carry one.
    pub(crate) fn read(payload: &[u8]) -> Option<Stamp> {
        let header = payload.get(..HEADER_LEN)?;
        Some(Stamp {
            sent_ns: u64::from_be_bytes(header[..8].try_into().ok()?),
            publisher: u32::from_be_bytes(header[8..12].try_into().ok()?),
            seq: u64::from_be_bytes(header[12..20].try_into().ok()?),
        })
    }
}

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let stamp = Stamp {
            sent_ns: 1_764_489_600_123_456_789,
            publisher: 19_000,
            seq: u64::MAX - 1,
        };
        let mut payload = vec![0u8; 64];
        stamp.write(&mut payload);
        assert_eq!(Stamp::read(&payload), Some(stamp));
        assert!(payload[HEADER_LEN..].iter().all(|&b| b == 0));
        assert_eq!(&payload[8..12], &19_000u32.to_be_bytes());
    }

    #[test]
    fn short_payloads_carry_no_stamp() {
        assert_eq!(Stamp::read(&[0u8; HEADER_LEN - 1]), None);
        let mut short = [0u8; 4];
        Stamp {
            sent_ns: 1,
            publisher: 1,
            seq: 1,
        }
        .write(&mut short);
        assert_eq!(short, [0u8; 4]);
    }

    #[test]
    fn clock_is_after_2020() {
        assert!(now_ns() > 1_577_836_800_000_000_000);
    }
}
