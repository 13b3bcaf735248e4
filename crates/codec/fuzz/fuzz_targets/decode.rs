//! Feeds arbitrary bytes to the decoder, before and after a CONNECT of each version, in
//! several chunkings; every packet it accepts must re-encode and decode unchanged.
//! The logic lives in `ferrymq_codec::fuzzing` so the stable corpus replay test runs it too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferrymq_codec::fuzzing::fuzz_decode(data);
});
