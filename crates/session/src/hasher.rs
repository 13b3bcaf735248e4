//! A `BuildHasher` with no bytes of its own, for maps every session carries.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// `RandomState` with its keys drawn once per process instead of once per map: the same
/// SipHash, and keys an attacker cannot predict, but the 16 bytes of keys are not repeated
/// in every session (a map with `RandomState` is 48 bytes, with this 32).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessRandomState;

impl BuildHasher for ProcessRandomState {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        KEYS.get_or_init(RandomState::new).build_hasher()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_agree_within_the_process_and_take_no_room() {
        assert_eq!(std::mem::size_of::<ProcessRandomState>(), 0);
        assert_eq!(
            ProcessRandomState.hash_one("a/b"),
            ProcessRandomState.hash_one("a/b")
        );
    }
}
