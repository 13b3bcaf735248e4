//! The generator's hot paths on the wire, built on `ferrymq-codec`: a PUBLISH template
//! encoded once per publisher by the codec and patched per message (packet id, payload
//! header), a zero-allocation PUBLISH reader, and the fixed 2- and 4-byte packets (acks,
//! PINGREQ, DISCONNECT) whose short forms are valid in both 3.1.1 and 5.0.
//!
//! Everything else (CONNECT, CONNACK, SUBSCRIBE, SUBACK, v5 acks with reason codes) goes
//! through the codec's `encode` and `Decoder`.

use bytes::{BufMut, Bytes, BytesMut};
use ferrymq_codec::{Packet, PacketId, ProtocolVersion, Publish, QoS, peek_fixed_header};

use crate::payload::Stamp;

/// A PUBLISH encoded once; [`PublishTemplate::put`] appends a copy with a fresh packet id and
/// payload header.
#[derive(Debug, Clone)]
pub(crate) struct PublishTemplate {
    bytes: Vec<u8>,
    payload_at: usize,
    packet_id_at: Option<usize>,
}

impl PublishTemplate {
    /// Encodes a PUBLISH of `size` zero bytes to `topic` with the codec.
    pub(crate) fn new(
        topic: &str,
        qos: QoS,
        size: usize,
        protocol: ProtocolVersion,
    ) -> Result<PublishTemplate, String> {
        let publish = Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.to_owned(),
            packet_id: (qos != QoS::AtMostOnce).then_some(1),
            properties: None,
            payload: Bytes::from(vec![0u8; size]),
        };
        let mut buf = BytesMut::new();
        ferrymq_codec::encode(&Packet::Publish(publish), protocol, &mut buf)
            .map_err(|e| e.to_string())?;
        let payload_at = buf.len() - size;
        // The packet id sits just before the payload, or before the v5 property length
        // (one byte, 0: no properties).
        let packet_id_at =
            (qos != QoS::AtMostOnce).then(|| payload_at - 2 - usize::from(protocol.is_v5()));
        Ok(PublishTemplate {
            bytes: buf.to_vec(),
            payload_at,
            packet_id_at,
        })
    }

    /// Whether the PUBLISH carries a packet id (QoS 1 or 2).
    pub(crate) fn has_packet_id(&self) -> bool {
        self.packet_id_at.is_some()
    }

    /// Size of one encoded PUBLISH.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one PUBLISH carrying `stamp` (and `packet_id` for QoS 1/2) to `out`.
    pub(crate) fn put(&self, out: &mut BytesMut, packet_id: PacketId, stamp: &Stamp) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let packet = &mut out[start..];
        if let Some(at) = self.packet_id_at {
            packet[at..at + 2].copy_from_slice(&packet_id.to_be_bytes());
        }
        stamp.write(&mut packet[self.payload_at..]);
    }
}

/// A PUBLISH read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PublishView<'a> {
    pub(crate) qos: u8,
    pub(crate) packet_id: Option<PacketId>,
    pub(crate) payload: &'a [u8],
}

/// What [`peek`] found at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Peeked<'a> {
    /// Not a whole packet yet.
    Incomplete,
    /// A whole PUBLISH of `len` bytes.
    Publish(PublishView<'a>, usize),
    /// A whole packet of another type, `len` bytes: decode it with the codec.
    Other,
}

/// Looks at the packet at the front of `buf` without allocating. Malformed PUBLISH packets
/// are reported as `Other` so that the codec's decoder produces the real error.
pub(crate) fn peek(buf: &[u8], v5: bool) -> Result<Peeked<'_>, String> {
    let Some(header) = peek_fixed_header(buf).map_err(|e| e.to_string())? else {
        return Ok(Peeked::Incomplete);
    };
    let len = header.packet_len();
    let Some(packet) = buf.get(..len) else {
        return Ok(Peeked::Incomplete);
    };
    if header.packet_type != 3 {
        return Ok(Peeked::Other);
    }
    Ok(
        parse_publish(&packet[header.header_len..], header.flags, v5)
            .map_or(Peeked::Other, |view| Peeked::Publish(view, len)),
    )
}

fn parse_publish(body: &[u8], flags: u8, v5: bool) -> Option<PublishView<'_>> {
    let qos = (flags >> 1) & 0x03;
    if qos > 2 {
        return None;
    }
    let topic_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let mut at = 2usize.checked_add(topic_len)?;
    let packet_id = if qos > 0 {
        let id = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
        at += 2;
        Some(id)
    } else {
        None
    };
    if v5 {
        let (props_len, used) = var_int(body.get(at..)?)?;
        at = at.checked_add(used)?.checked_add(props_len)?;
    }
    Some(PublishView {
        qos,
        packet_id,
        payload: body.get(at..)?,
    })
}

fn var_int(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().take(4).enumerate() {
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The acks, in their short forms (reason Success, no properties; valid in 3.1.1 and 5.0).
pub(crate) fn put_ack(out: &mut BytesMut, first_byte: u8, packet_id: PacketId) {
    out.put_u8(first_byte);
    out.put_u8(2);
    out.put_u16(packet_id);
}

pub(crate) const PUBACK: u8 = 0x40;
pub(crate) const PUBREC: u8 = 0x50;
pub(crate) const PUBREL: u8 = 0x62;
pub(crate) const PUBCOMP: u8 = 0x70;
pub(crate) const PINGREQ: [u8; 2] = [0xC0, 0x00];
pub(crate) const DISCONNECT: [u8; 2] = [0xE0, 0x00];

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ferrymq_codec::{Decoder, ForwardedProperties, PublishProperties};

    use super::*;

    fn decode(bytes: &[u8], protocol: ProtocolVersion) -> Publish {
        let mut decoder = Decoder::new(1 << 20);
        decoder.set_protocol(protocol);
        let mut buf = BytesMut::from(bytes);
        match decoder.decode(&mut buf) {
            Ok(Some(Packet::Publish(p))) => p,
            other => panic!("not a publish: {other:?}"),
        }
    }

    #[test]
    fn template_patches_decode_with_the_codec() {
        for protocol in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let template = PublishTemplate::new("bench/17", qos, 64, protocol).unwrap();
                let stamp = Stamp {
                    sent_ns: 42,
                    publisher: 17,
                    seq: 9,
                };
                let mut out = BytesMut::new();
                template.put(&mut out, 0xBEEF, &stamp);
                assert_eq!(out.len(), template.len());
                let publish = decode(&out, protocol);
                assert_eq!(publish.topic, "bench/17");
                assert_eq!(publish.qos, qos);
                assert_eq!(
                    publish.packet_id,
                    (qos != QoS::AtMostOnce).then_some(0xBEEF)
                );
                assert_eq!(publish.payload.len(), 64);
                assert_eq!(Stamp::read(&publish.payload), Some(stamp));

                match peek(&out, protocol.is_v5()).unwrap() {
                    Peeked::Publish(view, len) => {
                        assert_eq!(len, out.len());
                        assert_eq!(view.qos, qos.as_u8());
                        assert_eq!(view.packet_id, publish.packet_id);
                        assert_eq!(view.payload, &publish.payload[..]);
                    }
                    other => panic!("{other:?}"),
                }
                assert_eq!(
                    peek(&out[..out.len() - 1], protocol.is_v5()).unwrap(),
                    Peeked::Incomplete
                );
            }
        }
    }

    #[test]
    fn v5_publish_with_properties_is_read_in_place() {
        let publish = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t".into(),
            packet_id: Some(5),
            properties: Some(Box::new(PublishProperties {
                subscription_identifiers: vec![300],
                forwarded: Some(Arc::new(ForwardedProperties {
                    content_type: Some("x".into()),
                    ..ForwardedProperties::default()
                })),
                ..PublishProperties::default()
            })),
            payload: Bytes::from_static(b"hello"),
        };
        let mut out = BytesMut::new();
        ferrymq_codec::encode(&Packet::Publish(publish), ProtocolVersion::V5, &mut out).unwrap();
        match peek(&out, true).unwrap() {
            Peeked::Publish(view, _) => {
                assert_eq!(view.payload, b"hello");
                assert_eq!(view.packet_id, Some(5));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn acks_decode_with_the_codec() {
        let mut out = BytesMut::new();
        put_ack(&mut out, PUBREL, 7);
        let mut decoder = Decoder::new(1024);
        decoder.set_protocol(ProtocolVersion::V5);
        match decoder.decode(&mut out) {
            Ok(Some(Packet::PubRel(rel))) => assert_eq!(rel.packet_id, 7),
            other => panic!("{other:?}"),
        }
        assert_eq!(peek(&PINGREQ, false).unwrap(), Peeked::Other);
    }
}
