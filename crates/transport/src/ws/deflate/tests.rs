//! Negotiation offers and answers, and one message through the compressor and inflater.

use hyper::header::HeaderValue;

use super::*;

fn offers(values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

#[test]
fn negotiation_table() {
    let window = Some(ANSWER_WINDOW_15);
    let cases: &[(&[&str], Option<&str>)] = &[
        (&[], None),
        (&["permessage-deflate"], Some(ANSWER)),
        // Chromium's and Firefox's offer.
        (
            &["permessage-deflate; client_max_window_bits"],
            Some(ANSWER),
        ),
        (
            &["permessage-deflate; client_max_window_bits=10"],
            Some(ANSWER),
        ),
        (
            &["permessage-deflate; client_max_window_bits=\"12\""],
            Some(ANSWER),
        ),
        (
            &["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
            Some(ANSWER),
        ),
        (
            &["Permessage-Deflate; Server_No_Context_Takeover"],
            Some(ANSWER),
        ),
        (&["permessage-deflate; server_max_window_bits=15"], window),
        // A window we cannot promise (miniz_oxide always uses 32 KiB): declined.
        (&["permessage-deflate; server_max_window_bits=10"], None),
        // ... unless a later offer is acceptable.
        (
            &["permessage-deflate; server_max_window_bits=10, permessage-deflate"],
            Some(ANSWER),
        ),
        (
            &[
                "permessage-deflate; server_max_window_bits=10",
                "permessage-deflate; client_max_window_bits",
            ],
            Some(ANSWER),
        ),
        // Invalid offers are declined, never failed.
        (&["permessage-deflate; server_max_window_bits"], None),
        (&["permessage-deflate; client_max_window_bits=16"], None),
        (&["permessage-deflate; client_max_window_bits=7"], None),
        (&["permessage-deflate; client_max_window_bits=x"], None),
        (&["permessage-deflate; server_no_context_takeover=1"], None),
        (
            &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
            None,
        ),
        (&["permessage-deflate; mystery"], None),
        // Other extensions are ignored, whatever their place.
        (&["x-webkit-deflate-frame"], None),
        (
            &["x-webkit-deflate-frame, permessage-deflate; client_max_window_bits"],
            Some(ANSWER),
        ),
        (&["foo; bar=1", "permessage-deflate"], Some(ANSWER)),
        (&["deflate-frame"], None),
    ];
    for (values, expected) in cases {
        assert_eq!(
            negotiate(&offers(values), true),
            *expected,
            "offer {values:?}"
        );
    }
}

#[test]
fn disabled_answers_nothing() {
    let headers = offers(&["permessage-deflate; client_max_window_bits"]);
    assert_eq!(negotiate(&headers, false), None);
}

#[test]
fn the_answer_only_holds_what_the_rfc_lets_a_server_add() {
    // Never client_max_window_bits (only allowed when offered, and not needed), and the
    // window limit only when the client set one.
    for answer in [ANSWER, ANSWER_WINDOW_15] {
        assert!(!answer.contains("client_max_window_bits"));
    }
}

/// Inflates a whole message through `out`-sized steps.
fn inflate_all(inflate: &mut Inflate, step: usize, max: u64) -> Result<Vec<u8>, u16> {
    let mut got = Vec::new();
    let mut out = vec![0; step];
    loop {
        match inflate.inflate(&mut out, max)? {
            0 => return Ok(got),
            n => got.extend_from_slice(&out[..n]),
        }
    }
}

fn compressible(len: usize) -> Vec<u8> {
    let mut data = Vec::new();
    let mut i = 0;
    while data.len() < len {
        data.extend_from_slice(format!("{{\"id\":{i},\"temp\":{}}},", i % 31).as_bytes());
        i += 1;
    }
    data.truncate(len);
    data
}

#[test]
fn a_compressed_message_inflates_back_in_small_steps() {
    let data = compressible(100_000);
    let (frame, start) = compress_message(&data).expect("JSON compresses");
    let frame = &frame[start..];
    assert_eq!(frame[0], 0xC2, "FIN, RSV1, binary");
    assert_eq!(frame[1], 126, "a 16-bit length follows");
    let payload = &frame[4..];
    assert_eq!(
        usize::from(u16::from_be_bytes([frame[2], frame[3]])),
        payload.len()
    );
    assert!(payload.len() < data.len() / 4, "{} bytes", payload.len());
    assert!(!payload.ends_with(&TAIL), "the tail is removed");

    let mut inflate = Inflate::default();
    // Two messages through one inflater: each starts afresh.
    for _ in 0..2 {
        let (first, second) = payload.split_at(payload.len() / 3);
        inflate.push(first, false);
        let mut got = inflate_all(&mut inflate, 100, 1 << 20).unwrap();
        inflate.push(second, true);
        got.extend(inflate_all(&mut inflate, 77, 1 << 20).unwrap());
        assert_eq!(got, data);
        assert!(inflate.is_idle());
    }
}

#[test]
fn incompressible_or_short_messages_are_not_compressed() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    assert!(compress_message(&noise).is_none());
    assert!(compress_message(&[]).is_none());
}

#[test]
fn a_bomb_stops_at_the_limit() {
    let data = vec![0u8; 1 << 20];
    let (frame, start) = compress_message(&data).unwrap();
    let mut inflate = Inflate::default();
    inflate.push(&frame[start + 4..], true);
    assert_eq!(
        inflate_all(&mut inflate, 4096, 64 * 1024),
        Err(close_code::TOO_BIG)
    );
    // Exactly at the limit is fine.
    let mut inflate = Inflate::default();
    inflate.push(&frame[start + 4..], true);
    assert_eq!(
        inflate_all(&mut inflate, 4096, 1 << 20).unwrap().len(),
        1 << 20
    );
}

#[test]
fn garbage_fails_with_1007() {
    let mut inflate = Inflate::default();
    inflate.push(&[0xFF; 64], true);
    assert_eq!(
        inflate_all(&mut inflate, 4096, 1 << 20),
        Err(close_code::INVALID_PAYLOAD)
    );
}
