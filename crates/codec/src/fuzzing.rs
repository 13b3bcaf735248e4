//! The fuzzing entry point, shared by the cargo-fuzz target (`fuzz/fuzz_targets/decode.rs`)
//! and the corpus replay test that runs on stable in CI. Not part of the public API.
//!
//! The oracle is twofold: the decoder must never panic, whatever the bytes and however
//! they are split; and every packet it accepts must survive encode → decode unchanged, with
//! `encoded_len` equal to the bytes written. A panic here is a codec bug.

use bytes::BytesMut;

use crate::{Connect, ConnectProperties, Decoder, Packet, ProtocolVersion, encode, encoded_len};

const MAX_PACKET_SIZE: u32 = 1 << 20;

/// Feeds `data` as a byte stream to decoders in several states (fresh, so CONNECT must
/// come first; after a CONNECT of each version; with a small size limit) and in several
/// chunkings, re-encoding every decoded packet.
pub fn fuzz_decode(data: &[u8]) {
    run(Decoder::new(MAX_PACKET_SIZE), data, usize::MAX);
    run(Decoder::new(MAX_PACKET_SIZE), data, 1);
    for protocol in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        for chunk in [usize::MAX, 1, 7] {
            run(connected(protocol), data, chunk);
        }
    }
    let mut small = connected(ProtocolVersion::V5);
    small.set_max_packet_size(32);
    run(small, data, 3);
}

/// A decoder that has just decoded a CONNECT of `protocol`.
fn connected(protocol: ProtocolVersion) -> Decoder {
    let connect = Packet::Connect(Box::new(Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: "fuzz".to_owned(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }));
    let mut buf = BytesMut::new();
    encode(&connect, protocol, &mut buf).expect("a plain CONNECT encodes");
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    let decoded = decoder.decode(&mut buf).expect("a plain CONNECT decodes");
    assert_eq!(decoded.as_ref(), Some(&connect));
    assert_eq!(decoder.protocol(), Some(protocol));
    decoder
}

/// Appends `data` to the buffer `chunk` bytes at a time, decoding after each append until
/// the decoder wants more bytes or reports an error (after which a connection is closed).
fn run(mut decoder: Decoder, data: &[u8], chunk: usize) {
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => {
                    assert!(buf.len() < before, "a decoded packet consumes bytes");
                    round_trip(&packet, decoder.protocol());
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumes nothing");
                    break;
                }
                Err(error) => {
                    // Both must work for every error: the broker logs one, sends the other.
                    let _ = error.reason_code();
                    let _ = error.to_string();
                    return;
                }
            }
        }
    }
}

fn round_trip(packet: &Packet, protocol: Option<ProtocolVersion>) {
    let protocol = protocol.expect("a decoded packet fixes the protocol");
    let len = encoded_len(packet, protocol).expect("a decoded packet can be re-encoded");
    let mut buf = BytesMut::new();
    encode(packet, protocol, &mut buf).expect("a decoded packet can be re-encoded");
    assert_eq!(buf.len(), len, "encoded_len matches encode for {packet:?}");
    let mut decoder = Decoder::new(u32::MAX);
    if !matches!(packet, Packet::Connect(_)) {
        decoder.set_protocol(protocol);
    }
    let again = decoder
        .decode(&mut buf)
        .expect("a re-encoded packet decodes");
    assert_eq!(again.as_ref(), Some(packet), "decode(encode(p)) == p");
    assert!(buf.is_empty(), "the re-encoded packet is consumed exactly");
}
