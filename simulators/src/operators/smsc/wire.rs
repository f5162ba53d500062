//! The SMPP wire as the SMS centre reads it: PDUs framed by their `command_length`, decoded by
//! `rusmpp` one frame at a time (so a body that does not decode is answered with `generic_nack`
//! and the connection goes on), the texts of `submit_sm` decoded from their `data_coding`, the
//! concatenation UDH, and the standard delivery-receipt text.
//!
//! The decoding of texts is written here, not taken from the hub's adapter or from `rusmpp`
//! (which only encodes): the simulator is an independent check of the adapter's encoding.

use rusmpp::Command;
use rusmpp::decode::DecodeWithLength;
use rusmpp::tokio_codec::{CommandCodec, EncodeError};
use tokio_util::bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The largest PDU taken (a `submit_sm` with a full `message_payload` stays well below).
pub(super) const MAX_PDU: usize = 8192;

/// The SMPP header: length, id, status, sequence number.
const HEADER: usize = 16;

/// What came in on a connection.
#[derive(Debug)]
pub(super) enum Inbound {
    /// A PDU that decoded.
    Command(Box<Command>),
    /// A PDU whose frame was right but whose body did not decode: answered with `generic_nack`.
    Malformed {
        command_id: u32,
        sequence_number: u32,
    },
}

/// A stream that cannot be framed any more: the connection is closed.
#[derive(Debug, thiserror::Error)]
pub(super) enum FrameError {
    #[error("a command_length of {0} (expected 16 to {MAX_PDU})")]
    Length(u32),
    #[error("reading the connection: {0}")]
    Io(#[from] std::io::Error),
}

/// The SMSC's codec: frames by `command_length`, decodes each frame on its own.
#[derive(Debug, Default)]
pub(super) struct SmscCodec {
    encoder: CommandCodec,
}

/// The big-endian u32 at `at` (0 when the bytes are short, which a checked frame never is).
fn be_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

impl Decoder for SmscCodec {
    type Item = Inbound;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let length = be_u32(src, 0);
        let len = length as usize;
        if !(HEADER..=MAX_PDU).contains(&len) {
            return Err(FrameError::Length(length));
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(len);
        let command_id = be_u32(&frame, 4);
        let sequence_number = be_u32(&frame, 12);
        frame.advance(4);
        Ok(Some(match Command::decode(&mut frame, len - 4) {
            Ok((command, _)) => Inbound::Command(Box::new(command)),
            Err(_) => Inbound::Malformed {
                command_id,
                sequence_number,
            },
        }))
    }
}

impl Encoder<Command> for SmscCodec {
    type Error = std::io::Error;

    fn encode(&mut self, command: Command, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        self.encoder.encode(command, dst).map_err(|e| match e {
            EncodeError::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
    }
}

/// The GSM 03.38 default alphabet, by septet value (0x1B is the escape to the extension table).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table: the septet after an escape, and its character.
const GSM_EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// GSM 7-bit, one septet per octet (SMPP's `data_coding` 0, unpacked). `None` for an octet over
/// 0x7F or an escape to nothing known.
fn decode_gsm7(bytes: &[u8]) -> Option<String> {
    let basic: Vec<char> = GSM_BASIC.chars().collect();
    let mut text = String::with_capacity(bytes.len());
    let mut octets = bytes.iter();
    while let Some(&octet) = octets.next() {
        if octet == 0x1B {
            let next = *octets.next()?;
            let (_, ch) = GSM_EXTENSION.iter().find(|(code, _)| *code == next)?;
            text.push(*ch);
        } else {
            text.push(*basic.get(usize::from(octet))?);
        }
    }
    Some(text)
}

/// UCS-2 as UTF-16 big-endian (surrogate pairs taken, as handsets do). `None` for an odd length
/// or an unpaired surrogate.
fn decode_ucs2(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()
}

/// The text of a message in `data_coding` (0 GSM 7-bit, 1 ASCII, 3 Latin-1, 8 UCS-2); `None` for
/// another coding or bytes that are not text in it.
pub(super) fn decode_text(data_coding: u8, bytes: &[u8]) -> Option<String> {
    match data_coding {
        0 => decode_gsm7(bytes),
        1 => bytes
            .is_ascii()
            .then(|| bytes.iter().map(|b| char::from(*b)).collect()),
        3 => Some(bytes.iter().map(|b| char::from(*b)).collect()),
        8 => decode_ucs2(bytes),
        _ => None,
    }
}

/// Where a segment of a concatenated message belongs (UDH information element 0x00 or 0x08).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Segment {
    pub(super) reference: u16,
    pub(super) total: u8,
    pub(super) number: u8,
}

/// Splits a short message that starts with a user data header into the concatenation it names
/// (if any) and the text bytes after the header. `None` for a header that runs past the message
/// or a concatenation element that is out of range.
pub(super) fn split_udh(bytes: &[u8]) -> Option<(Option<Segment>, &[u8])> {
    let header_length = usize::from(*bytes.first()?);
    let header = bytes.get(1..1 + header_length)?;
    let rest = bytes.get(1 + header_length..)?;
    let mut segment = None;
    let mut elements = header;
    while !elements.is_empty() {
        let id = *elements.first()?;
        let length = usize::from(*elements.get(1)?);
        let data = elements.get(2..2 + length)?;
        segment = match (id, data) {
            (0x00, [reference, total, number]) => Some(Segment {
                reference: u16::from(*reference),
                total: *total,
                number: *number,
            }),
            (0x08, [high, low, total, number]) => Some(Segment {
                reference: u16::from_be_bytes([*high, *low]),
                total: *total,
                number: *number,
            }),
            (0x00 | 0x08, _) => return None,
            _ => segment,
        };
        elements = elements.get(2 + length..)?;
    }
    if let Some(s) = segment
        && (s.total == 0 || s.number == 0 || s.number > s.total)
    {
        return None;
    }
    Some((segment, rest))
}

/// The final state a receipt reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Delivered,
    Undeliverable,
}

/// The standard receipt text (SMPP 3.4, appendix B): `id:... sub:001 dlvrd:001 submit
/// date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:`. The message's own text is
/// left out: it is a code or a password.
pub(super) fn receipt_text(
    message_id: &str,
    outcome: Outcome,
    submitted: chrono::DateTime<chrono::Utc>,
    done: chrono::DateTime<chrono::Utc>,
) -> String {
    let (delivered, stat, err) = match outcome {
        Outcome::Delivered => ("001", "DELIVRD", "000"),
        Outcome::Undeliverable => ("000", "UNDELIV", "001"),
    };
    format!(
        "id:{message_id} sub:001 dlvrd:{delivered} submit date:{} done date:{} stat:{stat} \
         err:{err} text:",
        submitted.format("%y%m%d%H%M"),
        done.format("%y%m%d%H%M"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked;
    use rusmpp::extra::encoding::ucs2::Ucs2;

    #[test]
    fn the_alphabet_has_128_septets() {
        assert_eq!(GSM_BASIC.chars().count(), 128);
    }

    #[test]
    fn texts_encoded_by_rusmpp_decode_back() {
        let latin = "Kod: 123456 {ok} [x] ~ ^ | \\ € @ £ ÄÖÑÜ äöñüà";
        let bytes = Gsm7BitUnpacked::new()
            .encode_to_vec(latin)
            .expect("GSM 7-bit text");
        assert_eq!(decode_text(0, &bytes).as_deref(), Some(latin));
        let cyrillic = "Ваш временный пароль: Ёж-42 😀";
        // rusmpp's UCS-2 refuses characters beyond the BMP; the BMP part round-trips.
        let bmp = "Ваш временный пароль: Ёж-42";
        let bytes = Ucs2::new().encode_to_vec(bmp).expect("UCS-2 text");
        assert_eq!(decode_text(8, &bytes).as_deref(), Some(bmp));
        assert!(Ucs2::new().encode_to_vec(cyrillic).is_err());
    }

    #[test]
    fn bad_texts_are_none() {
        assert_eq!(decode_text(0, &[0x80]), None);
        assert_eq!(decode_text(0, &[0x1B]), None);
        assert_eq!(decode_text(8, &[0x04]), None);
        assert_eq!(decode_text(8, &[0xD8, 0x00]), None);
        assert_eq!(decode_text(4, b"abc"), None);
    }

    #[test]
    fn udh_concatenation_is_read_and_bad_headers_refused() {
        let (segment, rest) = split_udh(&[5, 0, 3, 42, 2, 1, b'h', b'i']).expect("a header");
        assert_eq!(
            segment,
            Some(Segment {
                reference: 42,
                total: 2,
                number: 1
            })
        );
        assert_eq!(rest, b"hi");
        let (segment, _) = split_udh(&[6, 8, 4, 1, 2, 3, 3]).expect("a 16-bit header");
        assert_eq!(segment.map(|s| (s.reference, s.number)), Some((258, 3)));
        assert!(split_udh(&[9, 0, 3]).is_none());
        assert!(split_udh(&[5, 0, 3, 42, 2, 3]).is_none());
        assert!(split_udh(&[4, 0, 2, 42, 2]).is_none());
    }

    #[test]
    fn a_malformed_body_is_reported_with_its_sequence_number() {
        // submit_sm (0x04) whose body is three bytes of nothing valid.
        let mut pdu = BytesMut::new();
        pdu.extend_from_slice(&19u32.to_be_bytes());
        pdu.extend_from_slice(&4u32.to_be_bytes());
        pdu.extend_from_slice(&0u32.to_be_bytes());
        pdu.extend_from_slice(&77u32.to_be_bytes());
        pdu.extend_from_slice(&[0xFF, 0xFF, 0xFF]);
        let mut codec = SmscCodec::default();
        match codec.decode(&mut pdu) {
            Ok(Some(Inbound::Malformed {
                command_id: 4,
                sequence_number: 77,
            })) => {}
            other => panic!("expected a malformed submit_sm, got {other:?}"),
        }
        assert!(pdu.is_empty(), "the frame was consumed");
        let mut huge = BytesMut::from(&[0xFF, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut huge),
            Err(FrameError::Length(_))
        ));
    }

    #[test]
    fn receipts_read_as_the_standard_says() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:05:00Z")
            .expect("a time")
            .to_utc();
        assert_eq!(
            receipt_text("a1-x", Outcome::Delivered, at, at),
            "id:a1-x sub:001 dlvrd:001 submit date:2612071005 done date:2612071005 \
             stat:DELIVRD err:000 text:"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_from_an_esme_never_panic(
            mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 16..400),
            id in proptest::sample::select(vec![0x0000_0004u32, 0x0000_0009, 0x0000_0002, 0x0000_0015, 0x8000_0005, 0x0000_0006]),
            coding in 0u8..10,
        ) {
            let _ = split_udh(&bytes);
            let _ = decode_text(coding, &bytes);
            // A right frame (length and a known command id) with any body.
            let length = u32::try_from(bytes.len()).unwrap_or_default();
            bytes[..4].copy_from_slice(&length.to_be_bytes());
            bytes[4..8].copy_from_slice(&id.to_be_bytes());
            let mut codec = SmscCodec::default();
            let mut src = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = codec.decode(&mut src) {}
        }
    }
}
