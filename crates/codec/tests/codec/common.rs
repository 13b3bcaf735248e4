//! Helpers shared by the integration tests: packet builders with defaults, and
//! decode/encode wrappers that check the invariants every caller relies on.

use bytes::{Bytes, BytesMut};
use ferrymq_codec::*;

pub(crate) fn connect(protocol: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

pub(crate) fn publish(
    topic: &str,
    qos: QoS,
    packet_id: Option<u16>,
    payload: &'static [u8],
) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.to_owned(),
        packet_id,
        properties: None,
        payload: Bytes::from_static(payload),
    }
}

pub(crate) fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..SubscriptionOptions::default()
    }
}

pub(crate) fn user(name: &str, value: &str) -> UserProperty {
    (name.to_owned(), value.to_owned())
}

/// A decoder in the state it has after CONNECT of `protocol`, or fresh for `None`.
pub(crate) fn decoder(protocol: Option<ProtocolVersion>) -> Decoder {
    let mut decoder = Decoder::new(1 << 20);
    if let Some(protocol) = protocol {
        decoder.set_protocol(protocol);
    }
    decoder
}

/// Decodes exactly one packet from `bytes`, checking that it consumes all of them.
pub(crate) fn decode_one(
    protocol: Option<ProtocolVersion>,
    bytes: &[u8],
) -> Result<Option<Packet>, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let result = decoder(protocol).decode(&mut buf);
    if let Ok(Some(_)) = &result {
        assert!(buf.is_empty(), "packet left {} bytes behind", buf.len());
    }
    result
}

/// Encodes `packet`, checking `encoded_len` agrees with the bytes written.
pub(crate) fn encode_one(
    packet: &Packet,
    protocol: ProtocolVersion,
) -> Result<Vec<u8>, EncodeError> {
    let mut buf = BytesMut::new();
    encode(packet, protocol, &mut buf)?;
    assert_eq!(
        encoded_len(packet, protocol)?,
        buf.len(),
        "encoded_len of {packet:?}"
    );
    Ok(buf.to_vec())
}

/// Renders bytes as spaced hex, for readable assertion failures.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
