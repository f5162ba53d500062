//! The operators' SMS centres over real TCP, driven with `rusmpp`'s own codec (not the hub's
//! adapter): binds, a two-segment UCS-2 message reassembled on the phone with its receipts,
//! refusals, a malformed PDU, the faults switched over HTTP, and duplicates recorded.

mod common;

use std::time::Duration;

use common::{Sims, eventually};
use futures_util::{SinkExt, StreamExt};
use rusmpp::extra::concatenation::SubmitSmMultipartExt;
use rusmpp::pdus::{BindTransceiver, DeliverSmResp, SubmitSm};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::COctetString;
use rusmpp::values::{EsmClass, InterfaceVersion, Npi, RegisteredDelivery, Ton};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use serde_json::{Value, json};
use simulators::{SimConfig, SimKind};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const A1_PHONE: &str = "+375291234567";

async fn a1() -> Sims {
    Sims::start(SimConfig {
        only: Some(vec![SimKind::A1]),
        ..SimConfig::ephemeral()
    })
    .await
}

async fn connect(sims: &Sims) -> Framed<TcpStream, CommandCodec> {
    let addr = sims
        .running
        .smpp_addr(SimKind::A1)
        .expect("A1's SMS centre runs");
    Framed::new(
        TcpStream::connect(addr).await.expect("connects"),
        CommandCodec::new(),
    )
}

/// The next PDU, within a deadline.
async fn next(framed: &mut Framed<TcpStream, CommandCodec>) -> Command {
    tokio::time::timeout(Duration::from_secs(5), framed.next())
        .await
        .expect("a PDU in time")
        .expect("the connection is open")
        .expect("the PDU decodes")
}

async fn bind(framed: &mut Framed<TcpStream, CommandCodec>, password: &str) -> CommandStatus {
    let bind = BindTransceiver::builder()
        .system_id(COctetString::from_string("hub".to_owned()).expect("an id"))
        .password(COctetString::from_string(password.to_owned()).expect("a password"))
        .interface_version(InterfaceVersion::Smpp3_4)
        .build();
    framed
        .send(Command::new(CommandStatus::EsmeRok, 1, bind))
        .await
        .expect("sent");
    let answer = next(framed).await;
    assert_eq!(answer.id(), CommandId::BindTransceiverResp);
    assert_eq!(answer.sequence_number(), 1);
    answer.status()
}

fn base(to: &str) -> SubmitSm {
    SubmitSm::builder()
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr(COctetString::from_string("E-SERVICES".to_owned()).expect("a sender"))
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(
            COctetString::from_string(to.trim_start_matches('+').to_owned()).expect("a number"),
        )
        .esm_class(EsmClass::from(0u8))
        .registered_delivery(RegisteredDelivery::from(1u8))
        .build()
}

async fn smpp_faults(sims: &Sims, patch: Value) -> (reqwest::StatusCode, Value) {
    let request = sims
        .client
        .put(sims.url(SimKind::A1, "sim/smpp/faults"))
        .json(&patch);
    common::json_of(request.send().await.expect("answered")).await
}

async fn inbox(sims: &Sims, phone: &str) -> Vec<Value> {
    let (_, body) = sims
        .get(
            SimKind::A1,
            &format!("sim/inbox/{}", phone.replace('+', "%2B")),
        )
        .await;
    body["messages"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn ucs2_segments_reassemble_on_the_phone_and_each_gets_its_receipt() {
    let sims = a1().await;
    let mut smpp = connect(&sims).await;
    assert_eq!(bind(&mut smpp, "a1-dev").await, CommandStatus::EsmeRok);
    let text = "Ваш временный пароль для входа на портал: Kx7-pQ2m. Смените его при первом входе в кабинет.";
    let parts = base(A1_PHONE)
        .multipart(text)
        .ucs2()
        .max_short_message_size(140)
        .reference_u8(9)
        .build()
        .expect("parts");
    assert_eq!(parts.len(), 2);
    let mut ids = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        let sequence = 10 + i as u32;
        smpp.send(Command::new(CommandStatus::EsmeRok, sequence, part))
            .await
            .expect("sent");
        let answer = next(&mut smpp).await;
        assert_eq!(
            (answer.id(), answer.status(), answer.sequence_number()),
            (CommandId::SubmitSmResp, CommandStatus::EsmeRok, sequence)
        );
        let Some(Pdu::SubmitSmResp(resp)) = answer.pdu() else {
            panic!("a submit_sm_resp")
        };
        ids.push(resp.message_id().as_str().to_owned());
    }
    let mut receipted = Vec::new();
    while receipted.len() < 2 {
        let receipt = next(&mut smpp).await;
        let Some(Pdu::DeliverSm(sm)) = receipt.pdu() else {
            continue;
        };
        assert_eq!(u8::from(sm.esm_class), 0x04, "a delivery receipt");
        let text = String::from_utf8(sm.short_message().to_vec()).expect("ASCII");
        assert!(text.contains("stat:DELIVRD"), "{text}");
        receipted.push(
            text.split(' ')
                .next()
                .unwrap_or_default()
                .trim_start_matches("id:")
                .to_owned(),
        );
        smpp.send(Command::new(
            CommandStatus::EsmeRok,
            receipt.sequence_number(),
            Pdu::DeliverSmResp(DeliverSmResp::builder().build()),
        ))
        .await
        .expect("answered");
    }
    receipted.sort();
    ids.sort();
    assert_eq!(receipted, ids);
    let messages = inbox(&sims, A1_PHONE).await;
    assert_eq!(messages.len(), 1, "one message on the phone: {messages:?}");
    assert_eq!(messages[0]["text"], text);
    assert_eq!(messages[0]["sender"], "E-SERVICES");
    sims.stop().await;
}

#[tokio::test]
async fn a_wrong_password_and_a_refused_bind_are_answered_so() {
    let sims = a1().await;
    let mut smpp = connect(&sims).await;
    assert_eq!(bind(&mut smpp, "wrong").await, CommandStatus::EsmeRinvpaswd);
    let (status, faults) = smpp_faults(&sims, json!({"refuse_binds": 1})).await;
    assert!(status.is_success());
    assert_eq!(faults["refuse_binds"], 1);
    let mut again = connect(&sims).await;
    assert_eq!(
        bind(&mut again, "a1-dev").await,
        CommandStatus::EsmeRbindfail
    );
    let mut third = connect(&sims).await;
    assert_eq!(
        bind(&mut third, "a1-dev").await,
        CommandStatus::EsmeRok,
        "one bind refused only"
    );
    sims.stop().await;
}

#[tokio::test]
async fn refusals_faults_and_a_malformed_pdu_keep_the_connection() {
    let sims = a1().await;
    let mut smpp = connect(&sims).await;
    assert_eq!(bind(&mut smpp, "a1-dev").await, CommandStatus::EsmeRok);
    // A submit_sm whose body is garbage: generic_nack, and the session goes on.
    let garbage: [u8; 19] = [
        0, 0, 0, 19, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 42, 0xFF, 0xFF, 0xFF,
    ];
    smpp.get_mut().write_all(&garbage).await.expect("written");
    let nack = next(&mut smpp).await;
    assert_eq!(
        (nack.id(), nack.sequence_number()),
        (CommandId::GenericNack, 42)
    );
    // A number nobody serves, a blocked one.
    for (phone, status) in [
        ("+375290000000", CommandStatus::EsmeRinvdstadr),
        ("+375291119999", CommandStatus::EsmeRxPAppn),
    ] {
        let sm = base(phone).with_short_message(
            rusmpp::types::OctetString::from_vec(b"hi".to_vec()).expect("short"),
        );
        smpp.send(Command::new(CommandStatus::EsmeRok, 50, sm))
            .await
            .expect("sent");
        assert_eq!(next(&mut smpp).await.status(), status, "{phone}");
    }
    let (status, _) = smpp_faults(&sims, json!({"throttle_rate": 1.0})).await;
    assert!(status.is_success());
    let (status, _) = smpp_faults(&sims, json!({"throttle_rate": 2.0})).await;
    assert_eq!(status.as_u16(), 400, "a rate over 1 is refused");
    let sm = base(A1_PHONE)
        .with_short_message(rusmpp::types::OctetString::from_vec(b"hi".to_vec()).expect("short"));
    smpp.send(Command::new(CommandStatus::EsmeRok, 60, sm))
        .await
        .expect("sent");
    assert_eq!(
        next(&mut smpp).await.status(),
        CommandStatus::EsmeRthrottled
    );
    assert!(
        inbox(&sims, A1_PHONE).await.is_empty(),
        "a throttled message is not taken"
    );
    smpp.send(Command::new(CommandStatus::EsmeRok, 61, Pdu::EnquireLink))
        .await
        .expect("sent");
    assert_eq!(next(&mut smpp).await.id(), CommandId::EnquireLinkResp);
    smpp.send(Command::new(CommandStatus::EsmeRok, 62, Pdu::Unbind))
        .await
        .expect("sent");
    assert_eq!(next(&mut smpp).await.id(), CommandId::UnbindResp);
    sims.stop().await;
}

#[tokio::test]
async fn the_same_text_twice_is_recorded_as_a_duplicate() {
    let sims = a1().await;
    let mut smpp = connect(&sims).await;
    assert_eq!(bind(&mut smpp, "a1-dev").await, CommandStatus::EsmeRok);
    for sequence in [70, 71] {
        let sm = base(A1_PHONE).with_short_message(
            rusmpp::types::OctetString::from_vec(b"Code 4242".to_vec()).expect("short"),
        );
        smpp.send(Command::new(CommandStatus::EsmeRok, sequence, sm))
            .await
            .expect("sent");
    }
    let duplicates = eventually("the duplicate", || async {
        let (_, body) = sims.get(SimKind::A1, "sim/smpp/duplicates").await;
        let list = body["duplicates"].as_array().cloned().unwrap_or_default();
        (!list.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(duplicates.len(), 1);
    assert_eq!(duplicates[0]["msisdn"], A1_PHONE);
    assert_eq!(duplicates[0]["text"], "Code 4242");
    sims.stop().await;
}
