//! Per-phone limits end to end, against the hub's own plan, every simulator, the real RabbitMQ
//! and PostgreSQL: recovery codes per phone across identifiers, wrong codes per phone across
//! applications and recoveries, and the SMS flood cap per number with its metric.

use std::collections::HashMap;

use contracts::account::{ChangePhoneV2, ConfirmNewPhone};
use contracts::cabinet::{CabinetOutcome, CompleteRecovery, RecoverPassword};
use contracts::issuance::{ApplicationRejected, IdentifierIssued, PhoneCodeSent, RejectReason};
use contracts::sms::{NotSentReason, SendSms, SmsNotSent, SmsPurpose, SmsSent};
use contracts::{Message, Metadata};
use e2e::portal::{DESK, Person, Portal, WAIT, code_in, password_in, phone};
use e2e::wait_until;
use hub_runtime::secrets::Sealer;

/// Issues an identifier to `person` on `phone`, whose inbox has `texts_before` SMS, as a desk
/// does.
async fn issue(portal: &Portal, person: &Person, number: &str, phone: &str, texts_before: usize) {
    portal.apply(&person.application(number, phone)).await;
    let _: PhoneCodeSent = portal.event(number).await;
    let code = code_in(&portal.nth_text(phone, texts_before + 1).await);
    portal.confirm(number, &code).await;
    let _: IdentifierIssued = portal.event(number).await;
    password_in(&portal.nth_text(phone, texts_before + 2).await);
}

/// A six-digit code that is not `code`.
fn not(code: &str) -> String {
    let n: u32 = code.parse().expect("a six-digit code");
    format!("{:06}", (n + 1) % 1_000_000)
}

fn recover(identifier: &str, phone: &str) -> RecoverPassword {
    RecoverPassword {
        identifier: identifier.into(),
        phone: phone.into(),
    }
}

fn complete(identifier: &str, code: &str) -> CompleteRecovery {
    CompleteRecovery {
        identifier: identifier.into(),
        code: code.into(),
        new_password: "Recovered2026".into(),
    }
}

/// Per-phone events of `kind` recorded so far (this test's database only).
async fn phone_events(portal: &Portal, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM phone_events WHERE kind = $1")
        .bind(kind)
        .fetch_one(&portal.env.pool)
        .await
        .expect("phone events")
}

/// Waits until the database has recorded `n` per-phone events of `kind`.
async fn wait_for_phone_events(portal: &Portal, kind: &str, n: i64) {
    wait_until(WAIT, &format!("{n} {kind} events"), || async {
        (phone_events(portal, kind).await == n).then_some(())
    })
    .await;
}

/// Waits until no identifier holds `phone` (a rejected application's reservation released, or
/// a phone changed away).
async fn wait_until_free(portal: &Portal, phone: &str) {
    wait_until(WAIT, "the phone released", || async {
        let held: i64 = sqlx::query_scalar("SELECT count(*) FROM identifiers WHERE phone = $1")
            .bind(phone)
            .fetch_one(&portal.env.pool)
            .await
            .expect("identifiers");
        (held == 0).then_some(())
    })
    .await;
}

/// The value of the sample `sample` (name and labels) on the hub's `/metrics` (its internal
/// listener, `HUB_OPS_ADDR`), 0 if absent.
async fn metric(portal: &Portal, sample: &str) -> f64 {
    let url = format!("http://{}/metrics", portal.integrations.ops_addr);
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("HTTP client");
    // The listener may still be starting.
    let text = wait_until(WAIT, "GET /metrics", || async {
        http.get(&url).send().await.ok()?.text().await.ok()
    })
    .await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_codes_are_limited_per_phone_across_identifiers() {
    let mut portal = Portal::start_with(|c| {
        c.limits.recovery_codes_per_phone = 2;
        // No per-identifier interval: only the per-phone limit can hold a request back here.
        c.limits.recovery_interval = std::time::Duration::ZERO;
    })
    .await;
    let limited = r#"hub_cabinet_phone_limited_total{request="recover_password",limit="recovery_codes_per_phone"}"#;
    let before = metric(&portal, limited).await;
    let persons = portal.good_persons().await;
    let (alice, bob) = (&persons[0], &persons[1]);
    let (shared, alices_new) = (phone(21), phone(22));

    // Alice's phone gets one recovery code (its first code and password came at issuance).
    issue(&portal, alice, "R-1", &shared, 0).await;
    let a = &alice.identification_number;
    assert_eq!(
        portal.cabinet(&recover(a, &shared)).await,
        CabinetOutcome::CodeSentIfKnown
    );
    code_in(&portal.nth_text(&shared, 3).await);

    // Alice moves to another number at a desk; the number goes to Bob.
    let presented = alice.application("P-1", &alices_new);
    portal
        .env
        .send(&ChangePhoneV2 {
            desk_id: DESK.into(),
            application_number: "P-1".into(),
            worker_id: "worker-1".into(),
            person: presented.person,
            document: presented.document,
            consent_to_mvd_check: true,
            new_phone: alices_new.clone(),
        })
        .await;
    let code = code_in(&portal.nth_text(&alices_new, 1).await);
    portal
        .env
        .send(&ConfirmNewPhone {
            desk_id: DESK.into(),
            application_number: "P-1".into(),
            code,
        })
        .await;
    wait_until_free(&portal, &shared).await;
    issue(&portal, bob, "R-2", &shared, 3).await;

    // Bob's first recovery code is the number's second this hour: sent.
    let b = &bob.identification_number;
    assert_eq!(
        portal.cabinet(&recover(b, &shared)).await,
        CabinetOutcome::CodeSentIfKnown
    );
    code_in(&portal.nth_text(&shared, 6).await);
    // His second would be the number's third: not sent, though Bob asked only once before and
    // no interval holds him. The answer is the one everybody gets, known or not.
    assert_eq!(
        portal.cabinet(&recover(b, &shared)).await,
        CabinetOutcome::CodeSentIfKnown
    );
    assert_eq!(
        portal.cabinet(&recover("7999999A999PB9", &shared)).await,
        CabinetOutcome::CodeSentIfKnown
    );
    let sent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM account_events WHERE identifier = $1 AND event = 'recovery_code_sent'",
    )
    .bind(b)
    .fetch_one(&portal.env.pool)
    .await
    .expect("account events");
    assert_eq!(sent, 1, "one recovery code for Bob");
    // The cabinet answers after its transaction, which made no SMS: nothing more will come.
    assert_eq!(portal.phone_texts(&shared).await.len(), 6);
    assert_eq!(phone_events(&portal, "recovery_code").await, 2);
    assert_eq!(metric(&portal, limited).await, before + 1.0);

    // Alice's new number has its own count.
    assert_eq!(
        portal.cabinet(&recover(a, &alices_new)).await,
        CabinetOutcome::CodeSentIfKnown
    );
    code_in(&portal.nth_text(&alices_new, 2).await);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_phone_codes_are_limited_per_phone_across_applications() {
    let mut portal = Portal::start_with(|c| c.limits.wrong_codes_per_phone = 4).await;
    let capped = r#"hub_sms_capped_total{purpose="phone_code",limit="wrong_codes_per_phone"}"#;
    let before = metric(&portal, capped).await;
    let persons = portal.good_persons().await;
    let shared = phone(31);

    // Two applications on one phone, each with its three wrong codes: 6 wrong codes on the
    // phone. The second still got its code: 3 were below the phone's limit of 4.
    for (n, person) in persons[..2].iter().enumerate() {
        let number = format!("W-{n}");
        portal.apply(&person.application(&number, &shared)).await;
        let _: PhoneCodeSent = portal.event(&number).await;
        let code = code_in(&portal.nth_text(&shared, n + 1).await);
        for _ in 0..3 {
            portal.confirm(&number, &not(&code)).await;
        }
        let r: ApplicationRejected = portal.event(&number).await;
        assert_eq!(
            (r.reason, r.detail.as_ref().map(|d| d.as_str())),
            (RejectReason::PhoneNotConfirmed, Some("too_many_attempts"))
        );
        wait_for_phone_events(&portal, "wrong_code", 3 * (n as i64 + 1)).await;
        wait_until_free(&portal, &shared).await;
    }

    // A third application on the phone gets no code, hence no guesses, and ends at once.
    portal.apply(&persons[2].application("W-2", &shared)).await;
    let r: ApplicationRejected = portal.event("W-2").await;
    assert_eq!(
        (r.reason, r.detail.as_ref().map(|d| d.as_str())),
        (RejectReason::PhoneNotConfirmed, Some("too_many_attempts"))
    );
    assert_eq!(
        portal.phone_texts(&shared).await.len(),
        2,
        "no third code went to the phone"
    );
    assert_eq!(metric(&portal, capped).await, before + 1.0);

    // Another phone is not affected.
    issue(&portal, &persons[3], "W-3", &phone(32), 0).await;
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_recovery_codes_count_against_the_phone_across_recoveries() {
    let mut portal = Portal::start_with(|c| {
        c.limits.wrong_codes_per_phone = 4;
        c.limits.recovery_interval = std::time::Duration::ZERO;
    })
    .await;
    let persons = portal.good_persons().await;
    let p = phone(41);
    issue(&portal, &persons[0], "C-1", &p, 0).await;
    let id = &persons[0].identification_number;

    // A first code and its three wrong tries (the code is void after them).
    assert_eq!(
        portal.cabinet(&recover(id, &p)).await,
        CabinetOutcome::CodeSentIfKnown
    );
    let first = code_in(&portal.nth_text(&p, 3).await);
    for _ in 0..3 {
        assert_eq!(
            portal.cabinet(&complete(id, &not(&first))).await,
            CabinetOutcome::WrongCode
        );
    }
    // A second code (3 wrong codes are below the phone's 4) and one more wrong try: the phone's
    // limit is reached, so even the right code is not checked now, though the identifier's own
    // lock-out (after 5 failures) is not.
    assert_eq!(
        portal.cabinet(&recover(id, &p)).await,
        CabinetOutcome::CodeSentIfKnown
    );
    let second = code_in(&portal.nth_text(&p, 4).await);
    assert_eq!(
        portal.cabinet(&complete(id, &not(&second))).await,
        CabinetOutcome::WrongCode
    );
    assert_eq!(phone_events(&portal, "wrong_code").await, 4);
    let answer = portal.cabinet(&complete(id, &second)).await;
    assert!(
        matches!(answer, CabinetOutcome::LockedOut { until } if until > chrono::Utc::now() + chrono::Duration::hours(23)),
        "{answer:?}"
    );
    // And no further code goes to the phone.
    assert_eq!(
        portal.cabinet(&recover(id, &p)).await,
        CabinetOutcome::CodeSentIfKnown
    );
    assert_eq!(portal.phone_texts(&p).await.len(), 4);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sms_flood_cap_stops_the_sms_over_the_limit_to_one_number_only() {
    const CAP: usize = 3;
    let mut portal = Portal::start_with(|c| c.limits.sms_per_phone = CAP as u32).await;
    let capped = r#"hub_sms_capped_total{purpose="notice",limit="sms_per_phone"}"#;
    let before = metric(&portal, capped).await;
    let replies = portal.env.observe("sms-replies", &[]).await;
    let sealer =
        Sealer::from_config(portal.integrations.seal_key.as_deref()).expect("the hub's key");
    let (flooded, other) = (phone(51), phone(52));

    // CAP + 1 SMS to one number and one to another, as a saga asks for them (reply wanted).
    let mut asked = HashMap::new();
    for (i, to) in std::iter::repeat_n(&flooded, CAP + 1)
        .chain([&other])
        .enumerate()
    {
        let send = SendSms {
            to: to.clone(),
            operator: None,
            purpose: SmsPurpose::Notice,
            text: sealer
                .seal(&mut rand::rng(), &format!("Notice {i}"))
                .expect("sealed"),
        };
        let mut metadata = Metadata::new(SendSms::TYPE.to_string(), "test");
        let correlation = uuid::Uuid::new_v4().to_string();
        metadata.correlation_id = Some(correlation.clone());
        metadata.reply_to = Some(replies.queue.clone());
        portal.env.send_with(&send, metadata).await;
        asked.insert(correlation, to.clone());
    }

    // Every request is answered: the flooded number's first CAP are sent, the one over is not
    // (with the reason), the other number's is sent. (Delivery reports come to the same queue.)
    let answers = std::sync::Mutex::new(Vec::new());
    wait_until(WAIT, "an answer to each SMS", || async {
        while let Some(m) = replies.get().await {
            let t = m.metadata.message_type.as_str();
            if t == SmsSent::TYPE.to_string() || t == SmsNotSent::TYPE.to_string() {
                answers.lock().expect("lock").push(m);
            }
        }
        (answers.lock().expect("lock").len() >= CAP + 2).then_some(())
    })
    .await;
    let mut sent: HashMap<String, usize> = HashMap::new();
    let mut not_sent = Vec::new();
    for answer in answers.into_inner().expect("lock") {
        let correlation = answer.metadata.correlation_id.as_deref();
        let to = asked[correlation.expect("correlated")].clone();
        if answer.metadata.message_type == SmsSent::TYPE.to_string() {
            *sent.entry(to).or_default() += 1;
        } else {
            let n: SmsNotSent = serde_json::from_value(answer.body).expect("body");
            not_sent.push((to, n));
        }
    }
    assert_eq!(sent.get(&flooded), Some(&CAP));
    assert_eq!(sent.get(&other), Some(&1));
    assert_eq!(not_sent.len(), 1);
    assert_eq!(
        not_sent[0],
        (
            flooded.clone(),
            SmsNotSent::new(SmsPurpose::Notice, NotSentReason::SmsPerPhoneReached)
        )
    );
    // The phones got what was sent (the operator delivers after it accepts), no more.
    portal.nth_text(&flooded, CAP).await;
    portal.nth_text(&other, 1).await;
    assert_eq!(portal.phone_texts(&flooded).await.len(), CAP);
    assert_eq!(portal.phone_texts(&other).await.len(), 1);
    assert_eq!(metric(&portal, capped).await, before + 1.0);

    // The counts hold the numbers only as keyed hashes.
    let rows: Vec<(Vec<u8>, String)> =
        sqlx::query_as("SELECT phone_key, phone_events::text FROM phone_events")
            .fetch_all(&portal.env.pool)
            .await
            .expect("phone events");
    assert_eq!(rows.len(), CAP + 1, "the SMS sent, each counted once");
    for (key, row) in &rows {
        assert_eq!(key.len(), 32);
        let digits = |p: &str| p.trim_start_matches('+').to_owned();
        assert!(!row.contains(&digits(&flooded)) && !row.contains(&digits(&other)));
    }
    portal.stop().await;
}
