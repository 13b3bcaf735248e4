//! Byte tables for the frame decoder: what each client frame turns into.

use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame with `first` as its first byte (FIN/RSV/opcode), of any length.
/// (Also used by the stream's tests.)
pub(crate) fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// Feeds `input` in chunks of `chunk` bytes; returns the kept data and the steps seen.
fn run(input: &[u8], chunk: usize) -> (Vec<u8>, Vec<Step>) {
    run_with(input, chunk, false)
}

/// [`run`], with `deflate` negotiated or not.
fn run_with(input: &[u8], chunk: usize, deflate: bool) -> (Vec<u8>, Vec<Step>) {
    let mut decoder = FrameDecoder::new(1 << 20, deflate);
    let mut data = Vec::new();
    let mut steps = Vec::new();
    for piece in input.chunks(chunk) {
        let mut buf = piece.to_vec();
        let (mut read, mut write) = (0, 0);
        while read < buf.len() {
            match decoder.decode(&mut buf, &mut read, &mut write) {
                Step::NeedMore => {}
                step => {
                    let stop = matches!(step, Step::Fail(_) | Step::Close(_));
                    steps.push(step);
                    if stop {
                        data.extend_from_slice(&buf[..write]);
                        return (data, steps);
                    }
                }
            }
        }
        data.extend_from_slice(&buf[..write]);
    }
    (data, steps)
}

#[test]
fn binary_payloads_become_one_stream_whatever_the_read_sizes() {
    let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    let mut input = frame(0x82, b"hello ");
    input.extend(frame(0x02, b"frag")); // first fragment (FIN clear)
    input.extend(frame(0x89, b"ping!")); // a control frame between fragments is allowed
    input.extend(frame(0x80, b"mented ")); // last fragment
    input.extend(frame(0x82, &big[..300])); // 16-bit length
    input.extend(frame(0x82, &big)); // 64-bit length
    input.extend(frame(0x82, b"")); // empty binary frame
    let mut expected = b"hello fragmented ".to_vec();
    expected.extend_from_slice(&big[..300]);
    expected.extend_from_slice(&big);
    for chunk in [1, 2, 3, 7, 13, 4096, input.len()] {
        let (data, steps) = run(&input, chunk);
        assert_eq!(data, expected, "chunk {chunk}");
        assert_eq!(steps, vec![Step::Ping(b"ping!".to_vec())], "chunk {chunk}");
    }
}

#[test]
fn control_frames() {
    let (_, steps) = run(&frame(0x8A, b"x"), 1);
    assert_eq!(steps, vec![Step::Pong]);
    let (_, steps) = run(&frame(0x89, b""), 5);
    assert_eq!(steps, vec![Step::Ping(Vec::new())]);
    let (_, steps) = run(&frame(0x88, b""), 3);
    assert_eq!(steps, vec![Step::Close(None)]);
    let (_, steps) = run(&frame(0x88, &[0x03, 0xE8, b'b', b'y', b'e']), 2);
    assert_eq!(steps, vec![Step::Close(Some(1000))]);
}

/// paho-mqtt (Python) sends pongs and its close frame without a mask: control frames are
/// taken unmasked, with data around them still unmasked correctly; data frames are not.
#[test]
fn unmasked_control_frames_are_tolerated() {
    let mut input = frame(0x82, b"ab");
    input.extend([0x8A, 0x03, b'x', b'y', b'z']); // unmasked pong
    input.extend([0x89, 0x00]); // unmasked empty ping
    input.extend(frame(0x82, b"cd"));
    input.extend([0x88, 0x02, 0x03, 0xE8]); // unmasked close 1000
    for chunk in [1, 3, input.len()] {
        let (data, steps) = run(&input, chunk);
        assert_eq!(data, b"abcd");
        assert_eq!(
            steps,
            vec![Step::Pong, Step::Ping(Vec::new()), Step::Close(Some(1000))]
        );
    }
}

#[test]
fn protocol_violations_fail_with_the_right_close_code() {
    use close_code::*;
    let mut unmasked = frame(0x82, b"abc");
    unmasked[1] &= 0x7F;
    let mut huge_length = vec![0x82, 0x80 | 127];
    huge_length.extend_from_slice(&u64::MAX.to_be_bytes());
    huge_length.extend_from_slice(&MASK);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("text frame", frame(0x81, b"{}"), UNSUPPORTED_DATA),
        ("unmasked frame", unmasked, PROTOCOL_ERROR),
        ("RSV1 set", frame(0xC2, b"x"), PROTOCOL_ERROR),
        ("reserved opcode 3", frame(0x83, b"x"), PROTOCOL_ERROR),
        (
            "reserved control opcode 0xB",
            frame(0x8B, b""),
            PROTOCOL_ERROR,
        ),
        (
            "continuation without a message",
            frame(0x80, b"x"),
            PROTOCOL_ERROR,
        ),
        ("fragmented ping", frame(0x09, b""), PROTOCOL_ERROR),
        (
            "ping over 125 bytes",
            frame(0x89, &[0; 126]),
            PROTOCOL_ERROR,
        ),
        ("close with 1 byte", frame(0x88, &[3]), PROTOCOL_ERROR),
        (
            "close code 1005",
            frame(0x88, &1005u16.to_be_bytes()),
            PROTOCOL_ERROR,
        ),
        (
            "close code 999",
            frame(0x88, &999u16.to_be_bytes()),
            PROTOCOL_ERROR,
        ),
        (
            "close reason not UTF-8",
            frame(0x88, &[0x03, 0xE8, 0xFF]),
            INVALID_PAYLOAD,
        ),
        ("length with the top bit set", huge_length, PROTOCOL_ERROR),
        (
            "frame over the limit",
            frame(0x82, &vec![0; (1 << 20) + 1]),
            TOO_BIG,
        ),
    ];
    for (name, input, code) in cases {
        let (_, steps) = run(&input, 1);
        assert_eq!(steps.last(), Some(&Step::Fail(code)), "{name}");
    }
    // A new message while a fragmented one is open.
    let mut input = frame(0x02, b"a");
    input.extend(frame(0x82, b"b"));
    let (data, steps) = run(&input, 64);
    assert_eq!(data, b"a");
    assert_eq!(steps, vec![Step::Fail(PROTOCOL_ERROR)]);
}

#[test]
fn the_size_check_needs_only_the_header() {
    // A header announcing a huge frame fails before any payload arrives.
    let mut decoder = FrameDecoder::new(100, false);
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&MASK);
    let (mut read, mut write) = (0, 0);
    assert_eq!(
        decoder.decode(&mut header, &mut read, &mut write),
        Step::Fail(close_code::TOO_BIG)
    );
}

#[test]
fn server_frames_are_unmasked_with_minimal_lengths() {
    let mut out = [0u8; 10];
    assert_eq!(encode_binary_header(5, &mut out), 2);
    assert_eq!(out[..2], [0x82, 5]);
    assert_eq!(encode_binary_header(126, &mut out), 4);
    assert_eq!(out[..4], [0x82, 126, 0, 126]);
    assert_eq!(encode_binary_header(65_536, &mut out), 10);
    assert_eq!(out[..10], [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    let mut close = Vec::new();
    encode_close(close_code::TOO_BIG, &mut close);
    assert_eq!(close, [0x88, 2, 0x03, 0xF1]);
    let mut pong = Vec::new();
    encode_control(OP_PONG, &[1; 200], &mut pong);
    assert_eq!(
        pong.len(),
        2 + MAX_CONTROL_PAYLOAD,
        "control payloads are capped"
    );
}

#[test]
fn rsv1_needs_permessage_deflate_and_a_first_data_frame() {
    let fails = |input: &[u8], deflate: bool| {
        let (_, steps) = run_with(input, 1, deflate);
        steps.last() == Some(&Step::Fail(close_code::PROTOCOL_ERROR))
    };
    // Not negotiated: RSV1 is a protocol error on any frame.
    assert!(fails(&frame(0xC2, b"x"), false));
    // Negotiated: never on continuation or control frames, and RSV2/RSV3 never.
    let mut continuation = frame(0x42, b"a");
    continuation.extend(frame(0xC0, b"b"));
    assert!(fails(&continuation, true));
    assert!(fails(&frame(0xC9, b""), true), "ping with RSV1");
    assert!(fails(&frame(0xC8, b""), true), "close with RSV1");
    assert!(fails(&frame(0xA2, b"x"), true), "RSV2");
    assert!(fails(&frame(0x92, b"x"), true), "RSV3");
    // Text stays 1003 whatever its RSV1.
    let (_, steps) = run_with(&frame(0xC1, b"x"), 1, true);
    assert_eq!(steps, vec![Step::Fail(close_code::UNSUPPORTED_DATA)]);
}

#[test]
fn compressed_payload_is_reported_apart_from_plain_payload() {
    let mut input = frame(0x82, b"plain"); // an uncompressed message (allowed per message)
    input.extend(frame(0x42, b"abc")); // a compressed message: first fragment,
    input.extend(frame(0x89, b"")); // a ping between its fragments,
    input.extend(frame(0x00, b"de")); // a continuation (RSV1 clear, as required),
    input.extend(frame(0x80, b"")); // and an empty last fragment
    input.extend(frame(0xC2, b"f")); // a single-frame compressed message
    input.extend(frame(0x82, b"again"));
    let mut decoder = FrameDecoder::new(1 << 20, true);
    let (mut read, mut write) = (0, 0);
    let mut plain = Vec::new();
    let mut steps = Vec::new();
    while read < input.len() {
        let before = write;
        let step = decoder.decode(&mut input, &mut read, &mut write);
        if let Step::Compressed { len, fin } = step {
            // Plain payload of earlier messages may precede them in the same step.
            plain.extend_from_slice(&input[before..write - len]);
            steps.push((input[write - len..write].to_vec(), fin));
            write = before;
        } else {
            plain.extend_from_slice(&input[before..write]);
            write = before;
        }
    }
    assert_eq!(plain, b"plainagain");
    let expected: Vec<(Vec<u8>, bool)> = vec![
        (b"abc".to_vec(), false),
        (b"de".to_vec(), false),
        (Vec::new(), true),
        (b"f".to_vec(), true),
    ];
    assert_eq!(steps, expected);
}
