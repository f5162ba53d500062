//! The SMPP wire as the client sees it: PDUs framed by their `command_length` and decoded by
//! `rusmpp` one frame at a time (a body that does not decode is answered with `generic_nack`,
//! not a dropped connection), texts encoded into `submit_sm` parts (GSM 7-bit when every
//! character has a septet, UCS-2 otherwise; UDH segments or `message_payload`), command statuses
//! classified, and delivery receipts read.

use chrono::{DateTime, NaiveDateTime, Utc};
use contracts::person::Msisdn;
use rusmpp::decode::DecodeWithLength;
use rusmpp::extra::concatenation::SubmitSmMultipartExt;
use rusmpp::extra::encoding::EncodedSubmitSmExt;
use rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked;
use rusmpp::extra::encoding::ucs2::Ucs2;
use rusmpp::pdus::{DeliverSm, SubmitSm};
use rusmpp::tlvs::{MessageSubmissionRequestTlvValue, TlvValue};
use rusmpp::tokio_codec::{CommandCodec, EncodeError};
use rusmpp::types::{AnyOctetString, COctetString};
use rusmpp::values::{
    DataCoding, EsmClass, MessagePayload, MessageState, Npi, RegisteredDelivery, Ton,
};
use rusmpp::{Command, CommandStatus};
use tokio_util::bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::failure::{Failure, FailureKind};

/// The largest PDU taken from an SMS centre.
const MAX_PDU: usize = 65_536;

/// The SMPP header: length, id, status, sequence number.
const HEADER: usize = 16;

/// The most septets of a GSM 7-bit message sent whole.
const GSM_SINGLE: usize = 160;

/// The `max_short_message_size` of GSM 7-bit segments. rusmpp takes the UDH's octets off it, but
/// an unpacked segment is counted in septets once packed: the 7-octet UDH (16-bit reference)
/// takes 8 of the 160, leaving 152 (with an 8-bit reference, 6 octets take 7, leaving 153).
const GSM_SEGMENTED: usize = 159;

/// The most octets of a UCS-2 short message (70 characters; 67 per segment).
const UCS2_MAX: usize = 140;

/// What came in on a connection.
#[derive(Debug)]
pub(super) enum Inbound {
    /// A PDU that decoded.
    Command(Box<Command>),
    /// A PDU whose frame was right but whose body did not decode.
    Malformed { sequence_number: u32 },
}

/// A stream that cannot be framed any more: the connection is given up.
#[derive(Debug, thiserror::Error)]
pub(super) enum FrameError {
    #[error("a command_length of {0} (expected 16 to {MAX_PDU})")]
    Length(u32),
    #[error("reading the connection: {0}")]
    Io(#[from] std::io::Error),
}

/// The client's codec: frames by `command_length`, decodes each frame on its own.
#[derive(Debug, Default)]
pub(super) struct ClientCodec {
    encoder: CommandCodec,
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

impl Decoder for ClientCodec {
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
        let sequence_number = be_u32(&frame, 12);
        frame.advance(4);
        Ok(Some(match Command::decode(&mut frame, len - 4) {
            Ok((command, _)) => Inbound::Command(Box::new(command)),
            Err(_) => Inbound::Malformed { sequence_number },
        }))
    }
}

impl Encoder<Command> for ClientCodec {
    type Error = std::io::Error;

    fn encode(&mut self, command: Command, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        self.encoder.encode(command, dst).map_err(|e| match e {
            EncodeError::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
    }
}

/// How a text too long for one short message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LongText {
    /// In concatenated segments, each with its UDH (what every SMS centre takes).
    #[default]
    Segments,
    /// Whole, in the `message_payload` TLV (one `submit_sm`, one receipt).
    Payload,
}

/// The `submit_sm`s of one text, in order: alphanumeric sender (TON 5), international number,
/// a delivery receipt requested, GSM 7-bit (`data_coding` 0) when every character has a septet
/// and UCS-2 (8) otherwise.
///
/// Errors: a sender that is no SMPP address, or a text UCS-2 cannot carry (characters beyond the
/// Basic Multilingual Plane, such as emoji) or too long for 255 segments, as invalid input.
pub(super) fn submit_parts(
    sender: &str,
    to: &Msisdn,
    text: &str,
    long_text: LongText,
    reference: u16,
) -> Result<Vec<SubmitSm>, Failure> {
    let source = COctetString::from_string(sender.to_owned()).map_err(|_| {
        Failure::invalid_input("the SMS sender is not an SMPP address (1 to 20 ASCII characters)")
    })?;
    let destination = COctetString::from_string(to.as_str().trim_start_matches('+').to_owned())
        .map_err(|_| Failure::invalid_input("the phone number is not an SMPP address"))?;
    let base = SubmitSm::builder()
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr_npi(Npi::Unknown)
        .source_addr(source)
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(destination)
        // Set from the octet: rusmpp's default `EsmClass` sets an ANSI-41 bit (0x08).
        .esm_class(EsmClass::from(0u8))
        .registered_delivery(RegisteredDelivery::from(1u8))
        .build();
    let gsm = Gsm7BitUnpacked::new().encode_to_vec(text).ok();
    let too_long = |e: &dyn std::fmt::Display| {
        Failure::invalid_input(format!("the SMS text cannot be sent: {e}"))
    };
    match (long_text, gsm) {
        (LongText::Payload, gsm) => {
            let (bytes, coding) = match gsm {
                Some(bytes) => (bytes, DataCoding::McSpecific),
                None => (ucs2(text)?, DataCoding::Ucs2),
            };
            let mut sm = base.with_data_coding(coding);
            sm.push_tlv(MessageSubmissionRequestTlvValue::MessagePayload(
                MessagePayload::new(AnyOctetString::from_vec(bytes)),
            ));
            Ok(vec![sm])
        }
        (LongText::Segments, Some(bytes)) if bytes.len() <= GSM_SINGLE => base
            .encode(text)
            .build()
            .map(|sm| vec![sm])
            .map_err(|e| too_long(&e)),
        (LongText::Segments, Some(_)) => base
            .multipart(text)
            .max_short_message_size(GSM_SEGMENTED)
            .reference_u16(reference)
            .build()
            .map_err(|e| too_long(&e)),
        (LongText::Segments, None) => {
            ucs2(text)?;
            base.multipart(text)
                .ucs2()
                .max_short_message_size(UCS2_MAX)
                .reference_u16(reference)
                .build()
                .map_err(|e| too_long(&e))
        }
    }
}

/// The text in UCS-2, or why it cannot be.
fn ucs2(text: &str) -> Result<Vec<u8>, Failure> {
    Ucs2::new().encode_to_vec(text).map_err(|_| {
        Failure::invalid_input(
            "the SMS text has characters UCS-2 cannot carry (beyond the Basic Multilingual Plane)",
        )
    })
}

/// What the client does about an SMS centre's `command_status` for a `submit_sm`.
pub(super) fn classify(status: CommandStatus) -> FailureKind {
    match status {
        CommandStatus::EsmeRthrottled
        | CommandStatus::EsmeRmsgqful
        | CommandStatus::EsmeRsyserr
        | CommandStatus::EsmeRxTAppn
        | CommandStatus::EsmeRsubmitfail
        | CommandStatus::EsmeRunknownerr
        | CommandStatus::EsmeRinvbndsts => FailureKind::Transient,
        _ => FailureKind::Permanent,
    }
}

/// A `command_status` as the specification names it (`ESME_RTHROTTLED`), or its hex code.
pub(super) fn status_name(status: CommandStatus) -> String {
    let name = match status {
        CommandStatus::EsmeRok => "ESME_ROK",
        CommandStatus::EsmeRthrottled => "ESME_RTHROTTLED",
        CommandStatus::EsmeRmsgqful => "ESME_RMSGQFUL",
        CommandStatus::EsmeRsyserr => "ESME_RSYSERR",
        CommandStatus::EsmeRinvdstadr => "ESME_RINVDSTADR",
        CommandStatus::EsmeRinvsrcadr => "ESME_RINVSRCADR",
        CommandStatus::EsmeRxPAppn => "ESME_RX_P_APPN",
        CommandStatus::EsmeRxTAppn => "ESME_RX_T_APPN",
        CommandStatus::EsmeRbindfail => "ESME_RBINDFAIL",
        CommandStatus::EsmeRinvpaswd => "ESME_RINVPASWD",
        CommandStatus::EsmeRinvsysid => "ESME_RINVSYSID",
        CommandStatus::EsmeRinvbndsts => "ESME_RINVBNDSTS",
        CommandStatus::EsmeRinvdcs => "ESME_RINVDCS",
        CommandStatus::EsmeRinvmsglen => "ESME_RINVMSGLEN",
        CommandStatus::EsmeRsubmitfail => "ESME_RSUBMITFAIL",
        other => return format!("command_status {:#010x}", u32::from(other)),
    };
    name.to_owned()
}

/// What a delivery receipt says about one `submit_sm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Receipt {
    /// The SMS centre's message id (as its `submit_sm_resp` gave it).
    pub(super) message_id: String,
    /// True for `DELIVRD`; false for a final failure.
    pub(super) delivered: bool,
    /// The `done date`, else when the receipt came.
    pub(super) at: DateTime<Utc>,
}

/// Reads a `deliver_sm` as a delivery receipt: `None` when it is none (an ordinary message, or
/// an intermediate notification), or says nothing final. The `receipted_message_id` and
/// `message_state` TLVs win over the text (`id:... stat:...`).
pub(super) fn receipt(sm: &DeliverSm) -> Option<Receipt> {
    if u8::from(sm.esm_class) & 0x3C != 0x04 {
        return None;
    }
    let text = std::str::from_utf8(sm.short_message()).unwrap_or_default();
    let field = |name: &str| {
        text.split(' ')
            .find_map(|word| word.strip_prefix(name).and_then(|w| w.strip_prefix(':')))
    };
    let mut message_id = field("id").map(str::to_owned);
    let mut state = field("stat").map(str::to_owned);
    for tlv in sm.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(id)) => message_id = Some(id.as_str().to_owned()),
            Some(TlvValue::MessageState(s)) => state = Some(state_name(*s).to_owned()),
            _ => {}
        }
    }
    let delivered = match state?.as_str() {
        "DELIVRD" => true,
        "UNDELIV" | "EXPIRED" | "DELETED" | "REJECTD" | "UNKNOWN" => false,
        _ => return None,
    };
    let at = text
        .split("done date:")
        .nth(1)
        .and_then(|rest| rest.get(..10))
        .and_then(|date| NaiveDateTime::parse_from_str(date, "%y%m%d%H%M").ok())
        .map_or_else(Utc::now, |naive| naive.and_utc());
    Some(Receipt {
        message_id: message_id.filter(|id| !id.is_empty())?,
        delivered,
        at,
    })
}

fn state_name(state: MessageState) -> &'static str {
    match state {
        MessageState::Delivered => "DELIVRD",
        MessageState::Undeliverable => "UNDELIV",
        MessageState::Expired => "EXPIRED",
        MessageState::Deleted => "DELETED",
        MessageState::Rejected => "REJECTD",
        MessageState::Unknown => "UNKNOWN",
        _ => "ENROUTE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::Pdu;
    use rusmpp::types::OctetString;

    fn phone() -> Msisdn {
        Msisdn::parse("+375291234567").expect("a number")
    }

    fn encoded(sm: &SubmitSm) -> Vec<u8> {
        let mut dst = BytesMut::new();
        ClientCodec::default()
            .encode(
                Command::new(CommandStatus::EsmeRok, 1, sm.clone()),
                &mut dst,
            )
            .expect("encodes");
        dst.to_vec()
    }

    #[test]
    fn a_short_latin_text_is_one_gsm_part_with_a_receipt_requested() {
        let parts = submit_parts("E-SERVICES", &phone(), "Code 123456", LongText::Segments, 1)
            .expect("parts");
        assert_eq!(parts.len(), 1);
        let sm = &parts[0];
        assert_eq!(u8::from(sm.data_coding), 0);
        assert_eq!(
            u8::from(sm.esm_class),
            0,
            "no UDHI and no stray ANSI-41 bit"
        );
        assert_eq!(u8::from(sm.registered_delivery), 1);
        assert_eq!(sm.source_addr_ton, Ton::Alphanumeric);
        assert_eq!(sm.destination_addr.as_str(), "375291234567");
        assert_eq!(&sm.short_message()[..], b"Code 123456");
        // Header, then service_type "\0", TON 5, NPI 0, "E-SERVICES\0".
        let bytes = encoded(sm);
        assert_eq!(&bytes[16..20], &[0, 5, 0, b'E']);
    }

    #[test]
    fn a_cyrillic_password_text_is_two_ucs2_segments_of_one_reference() {
        let text =
            "Ваш временный пароль для входа на портал: Kx7-pQ2m. Смените его при первом входе.";
        assert!(text.chars().count() > 70);
        let parts =
            submit_parts("E-SERVICES", &phone(), text, LongText::Segments, 0x0102).expect("parts");
        assert_eq!(parts.len(), 2);
        let mut joined = Vec::new();
        for (i, sm) in parts.iter().enumerate() {
            assert_eq!(u8::from(sm.data_coding), 8);
            assert_eq!(u8::from(sm.esm_class), 0x40, "UDHI only");
            let bytes = &sm.short_message()[..];
            assert!(bytes.len() <= UCS2_MAX);
            // 16-bit reference concatenation: 06 08 04 ref ref total number.
            assert_eq!(&bytes[..7], &[6, 8, 4, 1, 2, 2, i as u8 + 1]);
            joined.extend_from_slice(&bytes[7..]);
        }
        assert_eq!(joined, Ucs2::new().encode_to_vec(text).expect("UCS-2"));
    }

    #[test]
    fn gsm_segments_hold_152_septets_and_payload_carries_the_whole_text() {
        let text = "a".repeat(161);
        let parts =
            submit_parts("E-SERVICES", &phone(), &text, LongText::Segments, 7).expect("parts");
        assert_eq!(parts.len(), 2);
        // 7 octets of UDH and 152 septets: 160 septets, 140 octets packed.
        assert_eq!(parts[0].short_message().len() - 7, 152);
        let whole = "b".repeat(160);
        let parts =
            submit_parts("E-SERVICES", &phone(), &whole, LongText::Segments, 7).expect("parts");
        assert_eq!(parts.len(), 1, "160 septets go whole");
        let parts =
            submit_parts("E-SERVICES", &phone(), &text, LongText::Payload, 7).expect("parts");
        assert_eq!(parts.len(), 1);
        assert!(parts[0].short_message().is_empty());
        let payload = parts[0].tlvs().iter().find_map(|t| match t.value() {
            Some(TlvValue::MessagePayload(p)) => Some(p.value.len()),
            _ => None,
        });
        assert_eq!(payload, Some(161));
    }

    #[test]
    fn texts_ucs2_cannot_carry_and_bad_senders_are_invalid_input() {
        let f = submit_parts("E-SERVICES", &phone(), "Привет 😀", LongText::Segments, 1)
            .expect_err("emoji");
        assert_eq!(f.kind, FailureKind::InvalidInput);
        let f = submit_parts("Е-УСЛУГИ", &phone(), "hi", LongText::Segments, 1)
            .expect_err("a Cyrillic sender");
        assert_eq!(f.kind, FailureKind::InvalidInput);
    }

    #[test]
    fn throttling_and_system_errors_are_transient_addresses_permanent() {
        for status in [
            CommandStatus::EsmeRthrottled,
            CommandStatus::EsmeRmsgqful,
            CommandStatus::EsmeRsyserr,
        ] {
            assert_eq!(classify(status), FailureKind::Transient, "{status:?}");
        }
        for status in [
            CommandStatus::EsmeRinvdstadr,
            CommandStatus::EsmeRinvsrcadr,
            CommandStatus::EsmeRxPAppn,
            CommandStatus::EsmeRinvdcs,
        ] {
            assert_eq!(classify(status), FailureKind::Permanent, "{status:?}");
        }
        assert_eq!(
            status_name(CommandStatus::EsmeRthrottled),
            "ESME_RTHROTTLED"
        );
        assert_eq!(
            status_name(CommandStatus::Other(0x400)),
            "command_status 0x00000400"
        );
    }

    fn receipt_sm(esm: u8, text: &str) -> DeliverSm {
        DeliverSm::builder()
            .esm_class(EsmClass::from(esm))
            .short_message(OctetString::from_vec(text.as_bytes().to_vec()).expect("short"))
            .build()
    }

    #[test]
    fn receipts_are_read_from_their_text_and_tlvs() {
        let r = receipt(&receipt_sm(
            4,
            "id:a1-77 sub:001 dlvrd:001 submit date:2612071005 done date:2612071006 stat:DELIVRD err:000 text:",
        ))
        .expect("a receipt");
        assert_eq!(r.message_id, "a1-77");
        assert!(r.delivered);
        assert_eq!(r.at.to_rfc3339(), "2026-12-07T10:06:00+00:00");
        let failed = receipt(&receipt_sm(4, "id:x stat:UNDELIV err:001")).expect("a receipt");
        assert!(!failed.delivered);
        assert!(
            receipt(&receipt_sm(0, "id:x stat:DELIVRD")).is_none(),
            "not a receipt"
        );
        assert!(
            receipt(&receipt_sm(4, "id:x stat:ENROUTE")).is_none(),
            "not final"
        );
        assert!(receipt(&receipt_sm(4, "garbage")).is_none());
        let mut with_tlvs = receipt_sm(4, "stat:UNDELIV");
        with_tlvs.push_tlv(
            rusmpp::tlvs::MessageDeliveryRequestTlvValue::ReceiptedMessageId(
                COctetString::from_string("mts-1".to_owned()).expect("an id"),
            ),
        );
        with_tlvs.push_tlv(rusmpp::tlvs::MessageDeliveryRequestTlvValue::MessageState(
            MessageState::Delivered,
        ));
        let r = receipt(&with_tlvs).expect("a receipt");
        assert_eq!((r.message_id.as_str(), r.delivered), ("mts-1", true));
    }

    #[test]
    fn frames_that_do_not_decode_are_reported_not_fatal() {
        let mut pdu = BytesMut::new();
        pdu.extend_from_slice(&18u32.to_be_bytes());
        pdu.extend_from_slice(&0x8000_0004u32.to_be_bytes());
        pdu.extend_from_slice(&0u32.to_be_bytes());
        pdu.extend_from_slice(&9u32.to_be_bytes());
        pdu.extend_from_slice(b"xy");
        let mut codec = ClientCodec::default();
        assert!(matches!(
            codec.decode(&mut pdu),
            Ok(Some(Inbound::Malformed { sequence_number: 9 }))
        ));
        let mut ok = BytesMut::new();
        ClientCodec::default()
            .encode(
                Command::new(CommandStatus::EsmeRok, 3, Pdu::EnquireLink),
                &mut ok,
            )
            .expect("encodes");
        assert!(matches!(
            codec.decode(&mut ok),
            Ok(Some(Inbound::Command(_)))
        ));
        let mut short = BytesMut::from(&[0, 0, 0, 4][..]);
        assert!(matches!(
            codec.decode(&mut short),
            Err(FrameError::Length(4))
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_to_commands_or_errors_never_a_panic(
            mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 16..400),
            id in proptest::sample::select(vec![0x8000_0004u32, 0x0000_0005, 0x8000_0009, 0x8000_0000, 0x0000_0015, 0x0000_0006]),
        ) {
            // A right frame (length and a known command id) with any body: rusmpp's decoder
            // sees it all.
            let length = u32::try_from(bytes.len()).unwrap_or_default();
            bytes[..4].copy_from_slice(&length.to_be_bytes());
            bytes[4..8].copy_from_slice(&id.to_be_bytes());
            let mut codec = ClientCodec::default();
            let mut src = BytesMut::from(&bytes[..]);
            while let Ok(Some(inbound)) = codec.decode(&mut src) {
                if let Inbound::Command(command) = inbound
                    && let Some(Pdu::DeliverSm(sm)) = command.pdu()
                {
                    let _ = receipt(sm);
                }
            }
        }

        #[test]
        fn any_receipt_text_is_read_or_refused_never_a_panic(text in ".{0,200}") {
            let bytes = text.into_bytes();
            if let Ok(short) = OctetString::from_vec(bytes) {
                let sm = DeliverSm::builder().esm_class(EsmClass::from(4u8)).short_message(short).build();
                let _ = receipt(&sm);
            }
        }

        #[test]
        fn any_text_is_split_or_refused_never_a_panic(text in "\\PC{0,400}") {
            let _ = submit_parts("E-SERVICES", &phone(), &text, LongText::Segments, 1);
            let _ = submit_parts("E-SERVICES", &phone(), &text, LongText::Payload, 1);
        }
    }
}
