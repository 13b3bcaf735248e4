//! Failed-login throttling per source address, with a caller-supplied clock.
//!
//! An address that fails `max_failures` times within `window` (counted from its first
//! failure in the window) is blocked for `block_for`; while blocked, [`LoginThrottle::check`]
//! says so without the broker spending an argon2 run. A success forgets the address's
//! failures (a user who mistyped twice is not penalised later).
//!
//! IPv6 addresses are grouped by /64 (one subscriber or host usually owns a whole /64, so
//! per-address counting would give an attacker 2^64 tries); IPv4-mapped IPv6 addresses count
//! as their IPv4 address. Memory is bounded: at most `capacity` addresses are tracked, and
//! when a new one arrives the oldest-tracked entry is forgotten (an attacker with more
//! addresses than the capacity can therefore age out its own entries; the capacity is the
//! trade-off between memory and that).
//!
//! Pure: no clock, no lock. The broker wraps one in a `Mutex` and passes `Instant::now()`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The answer to a blocked address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// How long until the address may try again.
    pub retry_after: Duration,
}

/// Counts failed logins per source address and blocks addresses that fail too often.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    block_for: Duration,
    capacity: usize,
    entries: HashMap<SourceKey, Entry>,
    /// Keys in the order they started being tracked, with the generation they had then;
    /// an item whose generation no longer matches its entry is stale and skipped.
    order: VecDeque<(SourceKey, u64)>,
    next_generation: u64,
}

/// The unit of counting: an IPv4 address or an IPv6 /64 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SourceKey {
    V4(u32),
    V6Prefix(u64),
}

impl SourceKey {
    fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(v4) => SourceKey::V4(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(v4.to_bits()),
                // The high 64 bits: the network prefix.
                None => SourceKey::V6Prefix((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
    generation: u64,
}

impl LoginThrottle {
    /// Default bound on tracked addresses: about 100 bytes each, so ~10 MB at most.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// Blocks an address for `block_for` after `max_failures` failures within `window`;
    /// tracks at most [`LoginThrottle::DEFAULT_CAPACITY`] addresses. `max_failures` 0 disables throttling.
    pub fn new(max_failures: u32, window: Duration, block_for: Duration) -> LoginThrottle {
        LoginThrottle::with_capacity(max_failures, window, block_for, Self::DEFAULT_CAPACITY)
    }

    /// Like [`LoginThrottle::new`] with an explicit bound on tracked addresses (at least 1).
    pub fn with_capacity(
        max_failures: u32,
        window: Duration,
        block_for: Duration,
        capacity: usize,
    ) -> LoginThrottle {
        LoginThrottle {
            max_failures,
            window,
            block_for,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
        }
    }

    /// May `ip` try to log in at `now`?
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Blocked> {
        match self
            .entries
            .get(&SourceKey::of(ip))
            .and_then(|entry| entry.blocked_until)
        {
            Some(until) if until > now => Err(Blocked {
                retry_after: until - now,
            }),
            _ => Ok(()),
        }
    }

    /// Records a failed login from `ip` at `now`. Returns true when this failure started a
    /// block (for a log line and a metric).
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let key = SourceKey::of(ip);
        if !self.entries.contains_key(&key) {
            self.make_room();
            let generation = self.next_generation;
            self.next_generation += 1;
            self.entries.insert(
                key,
                Entry {
                    failures: 0,
                    window_start: now,
                    blocked_until: None,
                    generation,
                },
            );
            self.order.push_back((key, generation));
        }
        let Some(entry) = self.entries.get_mut(&key) else {
            return false;
        };
        match entry.blocked_until {
            // Already blocked: the broker should not have asked; do not extend.
            Some(until) if until > now => return false,
            // A block that ran out starts a fresh count.
            Some(_) => {
                entry.blocked_until = None;
                entry.failures = 0;
                entry.window_start = now;
            }
            None if now.saturating_duration_since(entry.window_start) > self.window => {
                entry.failures = 0;
                entry.window_start = now;
            }
            None => {}
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures >= self.max_failures {
            entry.blocked_until = Some(now + self.block_for);
            return true;
        }
        false
    }

    /// Records a successful login from `ip`: its failures are forgotten. An active block is
    /// kept (a blocked address should not have been let in to succeed).
    pub fn record_success(&mut self, ip: IpAddr, now: Instant) {
        let key = SourceKey::of(ip);
        let blocked = self
            .entries
            .get(&key)
            .and_then(|entry| entry.blocked_until)
            .is_some_and(|until| until > now);
        if !blocked {
            // Its queue item becomes stale and is skipped when reached.
            self.entries.remove(&key);
        }
    }

    /// How many addresses (IPv6: /64 prefixes) are tracked now.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    /// How many are blocked at `now`.
    pub fn blocked(&self, now: Instant) -> usize {
        self.entries
            .values()
            .filter(|entry| entry.blocked_until.is_some_and(|until| until > now))
            .count()
    }

    /// Frees a slot for a new entry: drops the oldest-tracked entries while at capacity.
    fn make_room(&mut self) {
        while self.entries.len() >= self.capacity {
            let Some((key, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.generation == generation)
            {
                self.entries.remove(&key);
            }
        }
        // Stale items (forgotten by a success) accumulate in `order`; compact when they
        // outnumber live entries, so the queue stays within twice the capacity.
        if self.order.len() > 2 * self.capacity {
            let entries = &self.entries;
            self.order.retain(|(key, generation)| {
                entries
                    .get(key)
                    .is_some_and(|e| e.generation == *generation)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn blocks_after_max_failures_within_the_window() {
        let t0 = Instant::now();
        let mut throttle = LoginThrottle::new(3, 60 * SEC, 300 * SEC);
        let ip = v4(1);
        assert_eq!(throttle.check(ip, t0), Ok(()));
        assert!(!throttle.record_failure(ip, t0));
        assert!(!throttle.record_failure(ip, t0 + 10 * SEC));
        assert_eq!(throttle.check(ip, t0 + 10 * SEC), Ok(()));
        assert!(throttle.record_failure(ip, t0 + 20 * SEC));
        assert_eq!(
            throttle.check(ip, t0 + 20 * SEC),
            Err(Blocked {
                retry_after: 300 * SEC
            })
        );
        assert_eq!(
            throttle.check(ip, t0 + 120 * SEC),
            Err(Blocked {
                retry_after: 200 * SEC
            })
        );
        assert_eq!(throttle.blocked(t0 + 120 * SEC), 1);
        // Failures while blocked do not extend the block.
        assert!(!throttle.record_failure(ip, t0 + 120 * SEC));
        assert_eq!(throttle.check(ip, t0 + 320 * SEC), Ok(()));
        // Other addresses are unaffected.
        assert_eq!(throttle.check(v4(2), t0 + 20 * SEC), Ok(()));
        // After the block, counting starts afresh.
        assert!(!throttle.record_failure(ip, t0 + 330 * SEC));
        assert_eq!(throttle.check(ip, t0 + 330 * SEC), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let t0 = Instant::now();
        let mut throttle = LoginThrottle::new(2, 60 * SEC, 300 * SEC);
        let ip = v4(1);
        throttle.record_failure(ip, t0);
        assert!(!throttle.record_failure(ip, t0 + 61 * SEC));
        assert_eq!(throttle.check(ip, t0 + 61 * SEC), Ok(()));
        assert!(throttle.record_failure(ip, t0 + 62 * SEC));
        assert!(throttle.check(ip, t0 + 62 * SEC).is_err());
    }

    #[test]
    fn success_forgets_failures_but_not_a_block() {
        let t0 = Instant::now();
        let mut throttle = LoginThrottle::new(2, 60 * SEC, 300 * SEC);
        let ip = v4(1);
        throttle.record_failure(ip, t0);
        throttle.record_success(ip, t0 + SEC);
        assert_eq!(throttle.tracked(), 0);
        assert!(!throttle.record_failure(ip, t0 + 2 * SEC));
        assert!(throttle.record_failure(ip, t0 + 3 * SEC));
        throttle.record_success(ip, t0 + 4 * SEC);
        assert!(throttle.check(ip, t0 + 4 * SEC).is_err());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let mut throttle = LoginThrottle::new(2, 60 * SEC, 300 * SEC);
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        throttle.record_failure(IpAddr::V6(a), t0);
        assert!(throttle.record_failure(IpAddr::V6(b), t0));
        assert!(throttle.check(IpAddr::V6(a), t0).is_err());
        assert_eq!(throttle.check(IpAddr::V6(other), t0), Ok(()));

        let ip = Ipv4Addr::new(198, 51, 100, 7);
        throttle.record_failure(IpAddr::V4(ip), t0);
        assert!(throttle.record_failure(IpAddr::V6(ip.to_ipv6_mapped()), t0));
        assert!(throttle.check(IpAddr::V4(ip), t0).is_err());
        assert_eq!(throttle.tracked(), 2);
    }

    #[test]
    fn memory_is_bounded_oldest_first() {
        let t0 = Instant::now();
        let mut throttle = LoginThrottle::with_capacity(1, 60 * SEC, 300 * SEC, 3);
        for i in 1..=3 {
            throttle.record_failure(v4(i), t0);
        }
        assert_eq!(throttle.tracked(), 3);
        throttle.record_failure(v4(4), t0 + SEC);
        assert_eq!(throttle.tracked(), 3);
        // The oldest (1) was forgotten; 2..4 are still blocked.
        assert_eq!(throttle.check(v4(1), t0 + SEC), Ok(()));
        for i in 2..=4 {
            assert!(throttle.check(v4(i), t0 + SEC).is_err(), "{i}");
        }
        // Successes leave stale queue items; the queue stays bounded.
        let mut counting = LoginThrottle::with_capacity(5, 60 * SEC, 300 * SEC, 3);
        for round in 0..100u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, round));
            counting.record_failure(ip, t0);
            counting.record_success(ip, t0);
            assert!(
                counting.order.len() <= 2 * 3 + 1,
                "{}",
                counting.order.len()
            );
        }
        assert_eq!(counting.tracked(), 0);
    }

    #[test]
    fn zero_disables() {
        let t0 = Instant::now();
        let mut throttle = LoginThrottle::new(0, 60 * SEC, 300 * SEC);
        for _ in 0..10 {
            assert!(!throttle.record_failure(v4(1), t0));
        }
        assert_eq!(throttle.check(v4(1), t0), Ok(()));
        assert_eq!(throttle.tracked(), 0);
    }
}
