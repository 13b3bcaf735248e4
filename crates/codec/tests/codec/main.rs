//! Integration tests of the codec, one binary: byte tables both ways, malformed input,
//! encoder rules, property-based round trips and the fuzz corpus replay.

mod common;
mod corpus;
mod encode_rules;
mod malformed;
mod roundtrip;
mod valid;
