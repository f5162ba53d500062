//! The operators' delivery reports (`POST /callbacks/sms/<operator>`) end to end: the hub takes
//! a report only when signed by the operator of its path and about the number the SMS went to,
//! and answers a report about an unknown message id exactly as one about a known id with
//! nothing left to do. The simulators sign their reports, so the application's own SMS still
//! get theirs.

use adapters::sms::{SIGNATURE_HEADER, sign_delivery_report};
use contracts::issuance::PhoneCodeSent;
use e2e::portal::{Portal, WAIT, phone};
use e2e::wait_until;

/// The application's SMS: (operator, operator's message id), once the worker recorded it.
async fn sent_sms(portal: &Portal) -> (String, String) {
    wait_until(WAIT, "the code SMS recorded", || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT operator, provider_message_id FROM sms_messages",
        )
        .fetch_optional(&portal.env.pool)
        .await
        .expect("sms_messages")
    })
    .await
}

/// How many delivery reports the application's saga has taken.
async fn reports_taken(portal: &Portal) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM saga_history WHERE message_type = 'sms.delivery_reported.v1'",
    )
    .fetch_one(&portal.env.pool)
    .await
    .expect("history")
}

/// A report's body: `message_id` to `to`, `status`.
fn report(message_id: &str, to: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "message_id": message_id,
        "to": to,
        "status": status,
        "at": chrono::Utc::now().to_rfc3339(),
    }))
    .expect("JSON")
}

/// Posts `body` as operator `operator`'s report with `signature`: (status, answer text).
async fn post(
    portal: &Portal,
    operator: &str,
    body: &[u8],
    signature: Option<&str>,
) -> (u16, String) {
    let url = portal
        .integrations
        .callback_url
        .join(&format!("callbacks/sms/{operator}"))
        .expect("URL");
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let response = request.send().await.expect("the hub answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text"))
}

/// Starts an application and waits for its code SMS: (operator, message id, phone).
async fn with_a_sent_sms(portal: &Portal, number: &str, n: u32) -> (String, String, String) {
    let person = portal.good_persons().await.remove(0);
    let to = phone(n);
    portal.apply(&person.application(number, &to)).await;
    let _: PhoneCodeSent = portal.event(number).await;
    let (operator, id) = sent_sms(portal).await;
    (operator, id, to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_taken_only_signed_by_its_operator() {
    let mut portal = Portal::start().await;
    let (operator, id, to) = with_a_sent_sms(&portal, "S-1", 51).await;
    assert_eq!(operator, "a1", "test phones are A1's");
    // The simulator's own report, signed with the secret the hub shares, is taken.
    wait_until(WAIT, "the simulator's signed report taken", || async {
        (reports_taken(&portal).await >= 1).then_some(())
    })
    .await;
    let taken = reports_taken(&portal).await;

    let secret = portal.integrations.sms_a1_secret.clone().into_bytes();
    let failed = report(&id, &to, "failed");
    let bad_signature = (401, "bad signature".to_owned());
    // Unsigned.
    assert_eq!(post(&portal, "a1", &failed, None).await, bad_signature);
    // Signed with a key that is not A1's: another operator's, or a guess.
    let mts = portal.integrations.sms_mts_secret.clone().into_bytes();
    for key in [&mts[..], b"guessed"] {
        let signature = sign_delivery_report(key, &failed);
        assert_eq!(
            post(&portal, "a1", &failed, Some(&signature)).await,
            bad_signature
        );
    }
    // A1's signature over other bytes.
    let signature = sign_delivery_report(&secret, &report(&id, &to, "delivered"));
    assert_eq!(
        post(&portal, "a1", &failed, Some(&signature)).await,
        bad_signature
    );
    // None of them was handed on: every forged report said "failed" (the SMS was delivered),
    // and the outbox (which keeps what it sent) holds no such message. Each answer came after
    // its transaction, so anything written would be there already.
    let forged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE convert_from(body, 'UTF8') LIKE '%\"delivered\":false%'",
    )
    .fetch_one(&portal.env.pool)
    .await
    .expect("outbox");
    assert_eq!(forged, 0, "no forged report reached the saga");
    assert_eq!(reports_taken(&portal).await, taken);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_report_about_another_number_than_the_sms_recipient_is_refused() {
    let mut portal = Portal::start().await;
    let (_, id, to) = with_a_sent_sms(&portal, "S-3", 54).await;
    let secret = portal.integrations.sms_a1_secret.clone().into_bytes();
    // Well signed, but about another number than the one the SMS went to.
    let elsewhere = report(&id, &phone(55), "failed");
    let signature = sign_delivery_report(&secret, &elsewhere);
    let (status, text) = post(&portal, "a1", &elsewhere, Some(&signature)).await;
    assert_eq!(status, 409, "{text}");
    assert!(!text.contains(&phone(55)) && !text.contains(&to), "{text}");
    // Nothing was handed on (the answer came after its transaction).
    let forged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE convert_from(body, 'UTF8') LIKE '%\"delivered\":false%'",
    )
    .fetch_one(&portal.env.pool)
    .await
    .expect("outbox");
    assert_eq!(forged, 0, "the report reached no saga");
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_message_id_is_answered_as_a_known_one() {
    let mut portal = Portal::start().await;
    let (_, id, to) = with_a_sent_sms(&portal, "S-2", 53).await;
    let secret = portal.integrations.sms_a1_secret.clone().into_bytes();
    let signed = |body: Vec<u8>| {
        let signature = sign_delivery_report(&secret, &body);
        (body, signature)
    };
    // A known id whose report changes nothing more (the saga's inbox drops a second copy).
    let (known, known_sig) = signed(report(&id, &to, "delivered"));
    let known_answer = post(&portal, "a1", &known, Some(&known_sig)).await;
    assert_eq!(known_answer, (200, "recorded".to_owned()));
    // An id no SMS has.
    let (unknown, unknown_sig) = signed(report("a1-no-such-message", &to, "delivered"));
    assert_eq!(
        post(&portal, "a1", &unknown, Some(&unknown_sig)).await,
        known_answer,
        "the answer does not tell a known id from an unknown one"
    );
    // A known id, reported by another operator (with that operator's key): not its message,
    // answered alike, and nothing reaches the saga from it.
    let mts = portal.integrations.sms_mts_secret.clone().into_bytes();
    let signature = sign_delivery_report(&mts, &known);
    assert_eq!(
        post(&portal, "mts", &known, Some(&signature)).await,
        known_answer
    );
    // Both were kept as possibly early reports of their operators, not handed to any saga.
    let kept: Vec<(String, String)> = sqlx::query_as(
        "SELECT operator, provider_message_id FROM sms_early_reports ORDER BY operator",
    )
    .fetch_all(&portal.env.pool)
    .await
    .expect("early reports");
    assert_eq!(
        kept,
        vec![
            ("a1".to_owned(), "a1-no-such-message".to_owned()),
            ("mts".to_owned(), id.clone()),
        ]
    );
    portal.stop().await;
}

/// An SMS command that reached the operator from one hub process is handled again by another
/// (the first was killed after the operator took the SMS and before its own commit, or its call
/// timed out and the retry went to the other). Each process has a callback URL of its own, which
/// the SMS carries for its delivery report, and the operator compares the whole request under
/// the `Idempotency-Key`: the second process must send the request the first sent, and so gets
/// the operator's first answer (the SMS recorded as sent, once) rather than
/// `409 idempotency_conflict`, which the worker would take as a refusal of the SMS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_command_handled_again_by_another_hub_process_gets_the_first_answer() {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use adapters::sms::{SmsClient, SmsConfig};
    use contracts::person::Operator;
    use contracts::sms::{SendSms, SmsPurpose};
    use contracts::{Message, Metadata};
    use hub_portal::config::LimitsConfig;
    use hub_portal::external::sms::worker::{
        self as sms_worker, PhoneLimits, SmsOutcome, SmsWorker,
    };
    use hub_runtime::broker::{Handler, Incoming};
    use hub_runtime::engine::{Service, ServiceRunner};
    use hub_runtime::secrets::Sealer;
    use simulators::{SimConfig, SimKind};

    let env = e2e::TestEnv::new().await;
    let token = tokio_util::sync::CancellationToken::new();
    let sims = simulators::start(
        SimConfig {
            only: Some(vec![SimKind::A1]),
            ..SimConfig::ephemeral()
        },
        token.clone(),
    )
    .await
    .expect("the A1 simulator starts");
    let a1 = sims.a1.clone().expect("A1's URL");
    let client = SmsClient::new(SmsConfig {
        operators: HashMap::from([(Operator::A1, a1.clone())]),
        sender: "E-SERVICES".into(),
        timeout: Duration::from_secs(2),
    })
    .expect("a client");
    let sealer = Arc::new(
        Sealer::from_config(Some("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
            .expect("a key"),
    );
    let limits = PhoneLimits::new(&LimitsConfig::default(), None);
    // Two hub processes, each with its own callback listener (nothing listens there: the
    // reports are not what is tested).
    let process = |port: u16| {
        let callback = url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("URL");
        SmsWorker::new(
            client.clone(),
            sealer.clone(),
            env.pool.clone(),
            Some(callback),
            limits.clone(),
        )
    };
    let (first, second) = (process(1), process(2));

    let to = phone(409);
    let send = SendSms {
        to: to.clone(),
        operator: Some(Operator::A1),
        purpose: SmsPurpose::Notice,
        text: sealer
            .seal(&mut rand::rng(), "Your application is registered")
            .expect("sealed"),
    };
    let topology = env.topology(vec![sms_worker::queue_spec()]);
    let mut metadata = Metadata::new(SendSms::TYPE.to_string(), "hub")
        .with_correlation_id(uuid::Uuid::new_v4().to_string());
    metadata.reply_to = Some("a-saga-queue".into());
    let incoming = Incoming {
        metadata,
        body: contracts::encode(&send).expect("JSON"),
        queue: topology.work_queue(sms_worker::QUEUE),
        exchange: topology.bus_exchange(),
        routing_key: SendSms::TYPE.to_string(),
        previous_failures: 0,
    };

    // The first process has the operator take the SMS, and dies before its transaction.
    let provider_message_id = match first.prepare(&incoming).await {
        Ok(SmsOutcome::Sent(sent, _)) => sent.provider_message_id,
        other => panic!("the first process sends the SMS: {other:?}"),
    };
    // The broker hands the command to the other process, which handles it whole.
    let runner = ServiceRunner::new(second, env.pool.clone(), Arc::new(topology), "hub");
    runner.handle(&incoming).await.expect("handled");

    // Recorded as sent, under the operator's first answer (after a conflict it would be
    // answered "not sent", refused, although the phone gets it).
    let recorded: Vec<String> = sqlx::query_scalar("SELECT provider_message_id FROM sms_messages")
        .fetch_all(&env.pool)
        .await
        .expect("sms_messages");
    assert_eq!(recorded, [provider_message_id]);
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM request_callbacks")
        .fetch_one(&env.pool)
        .await
        .expect("request_callbacks");
    assert_eq!(kept, 0);

    token.cancel();
    sims.stopped().await;
}
