//! The deadlines of sleeping connections, to the second, in a hashed timer wheel: one
//! bucket per second of a `SLOTS`-second ring, each a list of the entries due in that
//! second of some turn of the ring. Inserting is a push; the watcher empties one bucket per
//! second. An entry costs its 8 bytes (tokio-util's `DelayQueue` costs about 100 per entry
//! with its slab), and nothing is removed when a sleeper wakes early or its deadline moves:
//! when its bucket comes round, the owner says whether it is stale (dropped), due, or due
//! later (filed again under its new second).
//!
//! A second is fine-grained enough for what sleeps here: keep-alive deadlines carry a grace
//! of half the keep-alive or more, and token expiry is enforced to the second.

use std::time::Duration;

use tokio::time::Instant;

/// Buckets in the ring: 17 minutes. A later deadline waits in its bucket for more turns.
const SLOTS: usize = 1024;

pub(super) struct Wheel<T> {
    buckets: Vec<Vec<T>>,
    /// Second 0 of the wheel.
    origin: Instant,
    /// The next second whose bucket has not been emptied.
    next: u64,
}

impl<T: Copy> Wheel<T> {
    pub(super) fn new(now: Instant) -> Wheel<T> {
        Wheel {
            buckets: std::iter::repeat_with(Vec::new).take(SLOTS).collect(),
            origin: now,
            next: 0,
        }
    }

    /// The wheel's second for `at`: the first whole second at or after it (so a deadline
    /// never fires early), and never one already emptied.
    pub(super) fn second_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        let second = since.as_secs() + u64::from(since.subsec_nanos() > 0);
        second.max(self.next)
    }

    /// Files `entry` under `second` (from [`Wheel::second_of`]).
    pub(super) fn insert(&mut self, second: u64, entry: T) {
        self.buckets[(second % SLOTS as u64) as usize].push(entry);
    }

    /// When the next bucket is due.
    pub(super) fn next_tick(&self) -> Instant {
        self.origin + Duration::from_secs(self.next)
    }

    /// Empties the buckets of every second up to `now`, at most one turn of the ring, and
    /// hands each entry to `due` with the instant its bucket's second ends (deadlines up to
    /// it are due); `due` says whether to drop the entry (it fired or is stale) or file it
    /// again for a later deadline.
    pub(super) fn advance(&mut self, now: Instant, mut due: impl FnMut(T, Instant) -> Keep) {
        let now = now.saturating_duration_since(self.origin).as_secs();
        let last = now.min(self.next + SLOTS as u64 - 1);
        let mut later = Vec::new();
        while self.next <= last {
            let second = self.next;
            let ends = self.origin + Duration::from_secs(second);
            let index = (second % SLOTS as u64) as usize;
            let bucket = std::mem::take(&mut self.buckets[index]);
            for entry in bucket {
                if let Keep::Until(at) = due(entry, ends) {
                    later.push((at, entry));
                }
            }
            self.next += 1;
            for (at, entry) in later.drain(..) {
                let second = self.second_of(at);
                self.insert(second, entry);
            }
        }
    }

    /// Drops every entry.
    pub(super) fn clear(&mut self) {
        self.buckets
            .iter_mut()
            .for_each(|bucket| *bucket = Vec::new());
    }
}

/// Whether [`Wheel::advance`] keeps an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// Not due yet: file it again for this deadline.
    Until(Instant),
    /// Fired, or stale.
    No,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Advances to `now`; `deadline_of` gives an entry's deadline in seconds from `origin`.
    fn fired(
        wheel: &mut Wheel<u32>,
        origin: Instant,
        now: Instant,
        deadline_of: impl Fn(u32) -> u64,
    ) -> Vec<u32> {
        let mut fired = Vec::new();
        wheel.advance(now, |entry, ends| {
            let deadline = origin + Duration::from_secs(deadline_of(entry));
            if deadline <= ends {
                fired.push(entry);
                Keep::No
            } else {
                Keep::Until(deadline)
            }
        });
        fired
    }

    #[test]
    fn entries_fire_in_the_first_whole_second_at_or_after_their_deadline() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let at = origin + Duration::from_millis(1500);
        assert_eq!(wheel.second_of(at), 2);
        wheel.insert(2, 7);
        assert!(
            fired(
                &mut wheel,
                origin,
                origin + Duration::from_millis(1999),
                |_| 2
            )
            .is_empty()
        );
        assert_eq!(
            fired(&mut wheel, origin, origin + Duration::from_secs(2), |_| 2),
            [7]
        );
        assert_eq!(wheel.next_tick(), origin + Duration::from_secs(3));
        // An emptied second is never filed under again: a late deadline fires next.
        assert_eq!(wheel.second_of(origin), 3);
    }

    #[test]
    fn an_entry_whose_deadline_moved_later_is_filed_again_and_fires_then() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        wheel.insert(3, 9);
        // By second 3 the deadline moved to second 7 (a ping answered while asleep).
        let at = |s: u64| origin + Duration::from_secs(s);
        assert!(fired(&mut wheel, origin, at(5), |_| 7).is_empty());
        assert!(fired(&mut wheel, origin, at(6), |_| 7).is_empty());
        assert_eq!(fired(&mut wheel, origin, at(7), |_| 7), [9]);
        assert!(
            fired(&mut wheel, origin, at(2000), |_| 7).is_empty(),
            "fired once"
        );
    }

    #[test]
    fn a_deadline_beyond_one_turn_waits_its_turns() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let far = SLOTS as u64 + 5;
        wheel.insert(far, 1);
        wheel.insert(5, 2);
        let deadline = |entry| if entry == 1 { far } else { 5 };
        assert_eq!(
            fired(
                &mut wheel,
                origin,
                origin + Duration::from_secs(10),
                deadline
            ),
            [2]
        );
        let one_turn = origin + Duration::from_secs(SLOTS as u64);
        assert!(fired(&mut wheel, origin, one_turn, deadline).is_empty());
        let after = origin + Duration::from_secs(far);
        assert_eq!(fired(&mut wheel, origin, after, deadline), [1]);
    }
}
