//! Replays the cargo-fuzz seed corpus through the same entry point the fuzz target uses,
//! so the corpus runs on stable in CI without libFuzzer; and checks the seeds are what
//! their names say: `conn-*` is a valid connection (CONNECT first), `pkt-*` valid packets
//! after a CONNECT of some version, `bad-*` rejected by at least one decoder state
//! (fresh, or after a CONNECT of some version).

use std::fs;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use ferrymq_codec::ProtocolVersion::{V3_1, V3_1_1, V5};
use ferrymq_codec::{DecodeError, Decoder, ProtocolVersion};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .expect("the seed corpus directory exists")
        .map(|entry| {
            let path = entry.expect("readable directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).expect("readable corpus file"))
        })
        .collect();
    files.sort();
    files
}

/// Decodes the whole of `data`; `Ok(count)` if it is a sequence of complete valid packets.
fn decode_all(mut decoder: Decoder, data: &[u8]) -> Result<usize, DecodeError> {
    let mut buf = BytesMut::from(data);
    let mut count = 0;
    while decoder.decode(&mut buf)?.is_some() {
        count += 1;
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    Ok(count)
}

fn connected(protocol: ProtocolVersion) -> Decoder {
    let mut decoder = Decoder::new(1 << 20);
    decoder.set_protocol(protocol);
    decoder
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let files = corpus();
    assert!(files.len() >= 40, "only {} corpus files", files.len());
    for (_, data) in &files {
        ferrymq_codec::fuzzing::fuzz_decode(data);
    }
}

#[test]
fn corpus_seeds_are_what_their_names_say() {
    for (name, data) in corpus() {
        if name.starts_with("conn-") {
            let count = decode_all(Decoder::new(1 << 20), &data);
            assert!(matches!(count, Ok(n) if n >= 1), "{name}: {count:?}");
        } else if name.starts_with("pkt-") {
            let ok = [V3_1, V3_1_1, V5]
                .iter()
                .any(|p| decode_all(connected(*p), &data).is_ok());
            assert!(ok, "{name} decodes in no version");
        } else if name.starts_with("bad-") {
            let fresh = [Decoder::new(1 << 20)];
            let mut states = fresh.into_iter().chain([V3_1, V3_1_1, V5].map(connected));
            let rejected = states.any(|mut decoder| {
                let mut buf = BytesMut::from(&data[..]);
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(_)) => continue,
                        Ok(None) => return false,
                        Err(_) => return true,
                    }
                }
            });
            assert!(rejected, "{name} is accepted by every decoder state");
        } else {
            panic!("corpus file {name} has no conn-/pkt-/bad- prefix");
        }
    }
}
