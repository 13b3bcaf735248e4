//! `Level`: one topic level as a [`super::TopicTree`] key, inline when short.
//!
//! Retained topics are mostly short levels (`devices`, `d04242`, `sensor-3`, `state`). A
//! `Box<str>` key puts each in an allocation of its own, so every lookup that confirms a
//! match, and every `+` walk, pays one more dependent cache miss per level, and every new
//! node one more `malloc`. Up to 22 bytes are stored inline instead, in 24 bytes (a
//! `Box<str>` is 16, plus its 32-byte heap chunk); longer levels go to the heap as before.
//!
//! Keys are compared and hashed as bytes (`Borrow<[u8]>`), so that a lookup needs no UTF-8
//! check: they are only ever built from a `&str`.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// The longest level stored inline.
const INLINE: usize = 22;

#[derive(Clone)]
pub(super) enum Level {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Level {
    pub(super) fn new(level: &str) -> Level {
        match u8::try_from(level.len()) {
            Ok(len) if level.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..level.len()].copy_from_slice(level.as_bytes());
                Level::Inline { len, bytes }
            }
            _ => Level::Heap(level.into()),
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            Level::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Level::Heap(level) => level.as_bytes(),
        }
    }

    /// The level as text. Always valid UTF-8 (built from a `&str`, whole); the empty string
    /// otherwise, which cannot happen.
    pub(super) fn as_str(&self) -> &str {
        match self {
            Level::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Level::Heap(level) => level,
        }
    }
}

impl Borrow<[u8]> for Level {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

// Equal and hashed as its bytes, as `Borrow<[u8]>` requires.
impl PartialEq for Level {
    fn eq(&self, other: &Level) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Level {}

impl Hash for Level {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_levels_are_inline_and_long_ones_on_the_heap() {
        assert_eq!(std::mem::size_of::<Level>(), 24);
        for text in [
            "",
            "a",
            "sensor-3",
            "$SYS",
            "ünïcödé",
            "exactly-22-bytes-long!",
        ] {
            let level = Level::new(text);
            assert!(matches!(level, Level::Inline { .. }), "{text:?}");
            assert_eq!(level.as_str(), text);
            assert_eq!(level.as_bytes(), text.as_bytes());
        }
        let long = "twenty-three-bytes-long";
        assert!(matches!(Level::new(long), Level::Heap(_)));
        assert_eq!(Level::new(long).as_str(), long);
        assert_eq!(Level::new("a"), Level::new("a"));
        assert_ne!(Level::new("a"), Level::new("a\0"));
    }
}
