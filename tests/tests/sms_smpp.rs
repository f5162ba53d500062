//! The operators over SMPP 3.4 end to end: the hub's own plan with every operator on SMPP
//! (`HUB_SMS_<OPERATOR>_PROTOCOL=smpp`), the simulated SMS centres, the real RabbitMQ and
//! PostgreSQL. The HTTP variants are in `issuance.rs` and `sms_reports.rs`.

use std::sync::Arc;
use std::time::Duration;

use contracts::issuance::{IdentifierIssued, PhoneCodeSent};
use contracts::person::Operator;
use e2e::portal::{Portal, WAIT, code_in, password_in};
use e2e::wait_until;
use hub_portal::config::IntegrationConfig;
use simulators::{SimConfig, SimKind};

use adapters::smpp::SmppConfig;
use adapters::sms::{SmsClient, SmsConfig};
use contracts::sms::{SendSms, SmsPurpose};
use contracts::{Message, Metadata};
use hub_portal::config::LimitsConfig;
use hub_portal::external::sms::smpp::{Receipts, SmppOperators};
use hub_portal::external::sms::worker::{self as sms_worker, PhoneLimits, SmsOutcome, SmsWorker};
use hub_runtime::broker::{Handler, Incoming};
use hub_runtime::engine::{Service, ServiceRunner};
use hub_runtime::secrets::Sealer;

/// Every operator on SMPP, at the simulated SMS centres the lab pointed the settings at.
fn all_on_smpp(integrations: &mut IntegrationConfig) {
    for prefix in ["HUB_SMS_A1", "HUB_SMS_MTS", "HUB_SMS_LIFE"] {
        assert!(
            integrations
                .authority_settings
                .contains_key(&format!("{prefix}_SMPP_URL")),
            "the lab gives {prefix}_SMPP_URL"
        );
        integrations
            .authority_settings
            .insert(format!("{prefix}_PROTOCOL"), "smpp".to_owned());
    }
}

/// The SMS the SMS centre of `kind` recorded as handed to a phone twice.
async fn duplicates(portal: &Portal, kind: SimKind) -> Vec<serde_json::Value> {
    duplicates_at(portal.sims.operator_url(kind).expect("operator")).await
}

/// The duplicates of the operator simulator at `operator`.
async fn duplicates_at(operator: &url::Url) -> Vec<serde_json::Value> {
    let url = operator.join("sim/smpp/duplicates").expect("url");
    let body: serde_json::Value = reqwest::get(url)
        .await
        .expect("duplicates")
        .json()
        .await
        .expect("JSON");
    body["duplicates"].as_array().cloned().unwrap_or_default()
}

/// How many delivery reports the issuance saga `number` applied.
async fn reports_applied(portal: &Portal, number: &str) -> i64 {
    let saga = hub_portal::sagas::issuance::IssuanceSaga::key(e2e::portal::DESK, number).id;
    sqlx::query_scalar(
        "SELECT count(*) FROM saga_history WHERE saga_id = $1 AND message_type = 'sms.delivery_reported.v1'",
    )
    .bind(saga)
    .fetch_one(&portal.env.pool)
    .await
    .expect("history")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identifier_is_issued_with_every_operator_on_smpp_and_the_receipts_reach_the_saga() {
    let mut portal = Portal::start_with(all_on_smpp).await;
    let persons = portal.good_persons().await;
    let cases = [
        ("S-A1", "+375440011234", Operator::A1, SimKind::A1),
        ("S-MTS", "+375330021234", Operator::Mts, SimKind::Mts),
        ("S-LIFE", "+375250031234", Operator::Life, SimKind::Life),
    ];
    for ((number, phone, operator, _), person) in cases.iter().zip(&persons) {
        portal.apply(&person.application(number, phone)).await;
        let sent: PhoneCodeSent = portal.event(number).await;
        assert_eq!(sent.attempts_left, 3);
        let code = code_in(&portal.nth_text(phone, 1).await);
        portal.confirm(number, &code).await;
        let issued: IdentifierIssued = portal.event(number).await;
        assert_eq!(issued.notice.identifier, person.identification_number);

        // The password SMS is Cyrillic and longer than one UCS-2 short message (70
        // characters): it went in segments and the phone shows it whole.
        let text = portal.nth_text(phone, 2).await;
        assert!(
            text.chars().any(|c| matches!(c, 'А'..='я')),
            "a Cyrillic text: {text:?}"
        );
        assert!(text.chars().count() > 70, "more than one segment's worth");
        let password = password_in(&text);
        let (hash,): (String,) =
            sqlx::query_as("SELECT password_hash FROM accounts WHERE identifier = $1")
                .bind(&person.identification_number)
                .fetch_one(&portal.env.pool)
                .await
                .expect("account");
        assert!(
            hub_runtime::secrets::verify_secret(&password, &hash),
            "the reassembled text carries the whole password"
        );

        // Sent through the SMS centre (its ids, not the HTTP gateway's), once per command.
        let sends: Vec<(String, String)> =
            sqlx::query_as("SELECT operator, provider_message_id FROM smpp_sends ORDER BY sent_at")
                .fetch_all(&portal.env.pool)
                .await
                .expect("smpp_sends");
        assert!(
            sends
                .iter()
                .filter(|(o, _)| *o == operator.to_string())
                .count()
                >= 2,
            "the code and the password went over SMPP to {operator}: {sends:?}"
        );

        // The SMS centre's receipts (code and password delivered) reach the saga.
        wait_until(WAIT, "both receipts applied by the saga", || async {
            (reports_applied(&portal, number).await >= 2).then_some(())
        })
        .await;
        let saga = hub_portal::sagas::issuance::IssuanceSaga::key(e2e::portal::DESK, number).id;
        let delivered: Option<bool> = sqlx::query_scalar(
            "SELECT (state->'stage'->>'password_delivered')::boolean FROM sagas WHERE id = $1",
        )
        .bind(saga)
        .fetch_one(&portal.env.pool)
        .await
        .expect("saga");
        assert_eq!(
            delivered,
            Some(true),
            "the password's receipt says delivered"
        );
    }
    for (_, phone, _, kind) in &cases {
        assert_eq!(
            portal.phone_texts(phone).await.len(),
            2,
            "code and password"
        );
        assert!(duplicates(&portal, *kind).await.is_empty(), "{kind:?}");
    }
    // Nothing was sent over HTTP: no callback URL was ever recorded for a request.
    let http_sends: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sms_messages WHERE provider_message_id NOT IN (SELECT provider_message_id FROM smpp_sends)",
    )
    .fetch_one(&portal.env.pool)
    .await
    .expect("sms_messages");
    assert_eq!(http_sends, 0, "every SMS went through an SMS centre");
    portal.stop().await;
}

/// A1's simulator alone, and what an SMS worker of a hub process with A1 on SMPP needs: each
/// [`OneOperator::process`] is another process, with its own SMPP client.
struct OneOperator {
    env: e2e::TestEnv,
    token: tokio_util::sync::CancellationToken,
    sims: simulators::RunningSims,
    a1: url::Url,
    client: SmsClient,
    sealer: Arc<Sealer>,
    limits: PhoneLimits,
    receipts: Receipts,
    smsc: SmppConfig,
    topology: Arc<contracts::Topology>,
}

impl OneOperator {
    async fn start() -> OneOperator {
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
        let addr = sims.smpp_addr(SimKind::A1).expect("A1's SMS centre");
        let client = SmsClient::new(SmsConfig {
            operators: std::collections::HashMap::from([(Operator::A1, a1.clone())]),
            sender: "E-SERVICES".into(),
            timeout: Duration::from_secs(2),
        })
        .expect("a client");
        let sealer = Arc::new(
            Sealer::from_config(Some("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
                .expect("a key"),
        );
        let limits = PhoneLimits::new(&LimitsConfig::default(), None);
        let receipts = Receipts {
            pool: env.pool.clone(),
            app_id: "hub".into(),
            limits: limits.clone(),
        };
        // A1 on SMPP, at the simulated SMS centre, with the simulator's account.
        let smsc = SmppConfig::new(
            Operator::A1,
            addr.ip().to_string(),
            addr.port(),
            simulators::DEFAULT_SMPP_SYSTEM_ID,
            simulators::DEFAULT_A1_SMPP_PASSWORD,
        );
        let topology = Arc::new(env.topology(vec![sms_worker::queue_spec()]));
        OneOperator {
            env,
            token,
            sims,
            a1,
            client,
            sealer,
            limits,
            receipts,
            smsc,
            topology,
        }
    }

    /// Another hub process's SMS worker, with its own client of A1's SMS centre.
    fn process(&self) -> (SmsWorker, Arc<SmppOperators>) {
        let smpp = Arc::new(SmppOperators::new(vec![self.smsc.clone()]));
        assert!(smpp.uses(Operator::A1) && !smpp.uses(Operator::Mts));
        let worker = SmsWorker::new(
            self.client.clone(),
            self.sealer.clone(),
            self.env.pool.clone(),
            None,
            self.limits.clone(),
        )
        .with_smpp(smpp.clone(), &self.receipts);
        (worker, smpp)
    }

    /// A new `sms.send.v1` command to `to` with `text`, as a saga sends it.
    fn command(&self, to: &str, text: &str) -> Incoming {
        let send = SendSms {
            to: to.to_owned(),
            operator: Some(Operator::A1),
            purpose: SmsPurpose::Notice,
            text: self.sealer.seal(&mut rand::rng(), text).expect("sealed"),
        };
        let mut metadata = Metadata::new(SendSms::TYPE.to_string(), "hub")
            .with_correlation_id(uuid::Uuid::new_v4().to_string());
        metadata.reply_to = Some("a-saga-queue".into());
        Incoming {
            metadata,
            body: contracts::encode(&send).expect("JSON"),
            queue: self.topology.work_queue(sms_worker::QUEUE),
            exchange: self.topology.bus_exchange(),
            routing_key: SendSms::TYPE.to_string(),
            previous_failures: 0,
        }
    }

    /// A `ServiceRunner` of `worker`, as the hub runs it.
    fn runner(&self, worker: SmsWorker) -> ServiceRunner<SmsWorker> {
        ServiceRunner::new(worker, self.env.pool.clone(), self.topology.clone(), "hub")
    }

    /// Waits until the phone `digits` shows `n` texts; gives them.
    async fn inbox(&self, digits: &str, n: usize) -> Vec<String> {
        let inbox = self.a1.join(&format!("sim/inbox/{digits}")).expect("url");
        wait_until(WAIT, "the SMS on the phone", || async {
            let body: serde_json::Value = reqwest::get(inbox.clone())
                .await
                .expect("inbox")
                .json()
                .await
                .expect("JSON");
            let texts: Vec<String> = body["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|m| m["text"].as_str().map(str::to_owned))
                .collect();
            (texts.len() >= n).then_some(texts)
        })
        .await
    }

    /// Sets the SMS centre's faults.
    async fn faults(&self, patch: serde_json::Value) {
        reqwest::Client::new()
            .put(self.a1.join("sim/smpp/faults").expect("url"))
            .json(&patch)
            .send()
            .await
            .expect("faults")
            .error_for_status()
            .expect("faults set");
    }

    /// The SMS the SMS centre recorded as handed to a phone twice.
    async fn duplicates(&self) -> Vec<serde_json::Value> {
        duplicates_at(&self.a1).await
    }

    /// `smpp_sends` of `command`: the SMS centre's id, the resends in doubt, the phone's key.
    async fn send_row(
        &self,
        command: uuid::Uuid,
    ) -> Option<(Option<String>, i32, Option<Vec<u8>>)> {
        sqlx::query_as(
            "SELECT provider_message_id, resent_in_doubt, phone_key FROM smpp_sends WHERE message_id = $1",
        )
        .bind(command)
        .fetch_optional(&self.env.pool)
        .await
        .expect("smpp_sends")
    }

    async fn stop(self, processes: &[&Arc<SmppOperators>]) {
        for smpp in processes {
            smpp.drain(Duration::from_secs(2)).await;
        }
        self.token.cancel();
        self.sims.stopped().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_command_redelivered_to_another_process_is_not_sent_twice_over_smpp() {
    let op = OneOperator::start().await;
    let ((first, first_smpp), (second, second_smpp)) = (op.process(), op.process());
    let incoming = op.command("+375440091234", "Ваше заявление зарегистрировано");

    // The first process has the SMS centre take the SMS, and dies before its transaction.
    let provider_message_id = match first.prepare(&incoming).await {
        Ok(SmsOutcome::Sent(sent, _)) => sent.provider_message_id,
        other => panic!("the first process sends the SMS: {other:?}"),
    };
    // The broker hands the command to the other process, which handles it whole.
    op.runner(second).handle(&incoming).await.expect("handled");

    // Recorded as sent under the SMS centre's first answer, and sent once.
    let recorded: Vec<String> = sqlx::query_scalar("SELECT provider_message_id FROM sms_messages")
        .fetch_all(&op.env.pool)
        .await
        .expect("sms_messages");
    assert_eq!(recorded, std::slice::from_ref(&provider_message_id));
    let row = op.send_row(incoming.metadata.message_id).await;
    assert_eq!(
        row.map(|(id, resent, _)| (id, resent)),
        Some((Some(provider_message_id), 0)),
        "one send, none in doubt"
    );
    let texts = op.inbox("375440091234", 1).await;
    assert_eq!(texts, ["Ваше заявление зарегистрировано"]);
    // Its receipt came over the first process's bind and was kept for the send's record.
    wait_until(WAIT, "the receipt recorded", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM sms_early_reports) + (SELECT count(*) FROM outbox WHERE routing_key = 'a-saga-queue' AND convert_from(body, 'UTF8') LIKE '%delivered%')",
        )
        .fetch_one(&op.env.pool)
        .await
        .expect("reports");
        (n >= 1).then_some(())
    })
    .await;
    assert_eq!(op.duplicates().await, Vec::<serde_json::Value>::new());

    // Each process started its client with its worker; a drain unbinds it.
    for smpp in [&first_smpp, &second_smpp] {
        let client = smpp.client(Operator::A1).expect("started with the worker");
        assert!(client.bound(WAIT).await, "bound");
        smpp.drain(Duration::from_secs(2)).await;
        assert!(!client.is_bound(), "unbound by the drain");
        assert!(smpp.client(Operator::Mts).is_none(), "MTS is on HTTP");
    }
    op.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_in_doubt_is_sent_again_and_counted_against_the_phone() {
    let op = OneOperator::start().await;
    let (worker, smpp) = op.process();
    let phone = contracts::person::Msisdn::parse("+375440092345").expect("a number");
    let key = op.limits.key(&phone).as_bytes().to_vec();
    let client = smpp.client(Operator::A1).expect("started with the worker");
    assert!(client.bound(WAIT).await, "bound");

    // The SMS centre takes the first submit and drops the connection before its answer: the
    // client cannot know, sends it again on the next bind, and the phone shows it twice.
    op.faults(serde_json::json!({"drop_connection_after": 1, "drop_accepted": true}))
        .await;
    let dropped = op.command(phone.as_str(), "Код: 314159");
    match worker.prepare(&dropped).await {
        Ok(SmsOutcome::Sent(..)) => {}
        other => panic!("sent after the reconnect: {other:?}"),
    }
    assert_eq!(
        op.inbox("375440092345", 2).await,
        ["Код: 314159", "Код: 314159"]
    );
    assert_eq!(
        op.duplicates().await.len(),
        1,
        "the SMS centre saw the copy"
    );
    let (id, resent, phone_key) = op
        .send_row(dropped.metadata.message_id)
        .await
        .expect("a row");
    assert!(id.is_some(), "the resend's id is recorded");
    assert_eq!(resent, 1, "the copy is counted as a resend in doubt");
    assert_eq!(
        phone_key,
        Some(key.clone()),
        "under the phone's pseudonym, not its number"
    );

    // A process died while its send was under way: the row it committed first has no id. The
    // redelivered command is sent again, and that resend is counted too.
    let orphan = op.command(phone.as_str(), "Код: 271828");
    sqlx::query("INSERT INTO smpp_sends (message_id, operator, phone_key) VALUES ($1, 'a1', $2)")
        .bind(orphan.metadata.message_id)
        .bind(&key)
        .execute(&op.env.pool)
        .await
        .expect("the dead process's row");
    let (second, second_smpp) = op.process();
    op.runner(second).handle(&orphan).await.expect("handled");
    let (id, resent, _) = op
        .send_row(orphan.metadata.message_id)
        .await
        .expect("a row");
    assert!(id.is_some() && resent == 1, "{id:?} {resent}");

    // A send the SMS centre refuses outright is not in doubt: its row is taken out again, so
    // its retry sends as a first send.
    op.faults(serde_json::json!({"throttle_rate": 1.0})).await;
    let refused = op.command(phone.as_str(), "Код: 161803");
    match worker.prepare(&refused).await {
        Err(f) => assert!(f.is_transient(), "{f:?}"),
        other => panic!("throttled throughout: {other:?}"),
    }
    assert_eq!(op.send_row(refused.metadata.message_id).await, None);
    op.stop(&[&smpp, &second_smpp]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_password_is_recovered_by_a_code_sent_over_smpp() {
    use contracts::cabinet::{CabinetOutcome, CompleteRecovery, LogIn, RecoverPassword};
    use e2e::portal::plain;

    let mut portal = Portal::start_with(all_on_smpp).await;
    let person = portal.good_persons().await.remove(0);
    let (number, phone) = ("R-MTS", "+375330041234");
    portal.apply(&person.application(number, phone)).await;
    let _: PhoneCodeSent = portal.event(number).await;
    let code = code_in(&portal.nth_text(phone, 1).await);
    portal.confirm(number, &code).await;
    let _: IdentifierIssued = portal.event(number).await;
    let id = person.identification_number.clone();
    // The temporary password's SMS is sent after the issuance event: waited for here, so that
    // the recovery code is the third text, not one that overtook it.
    password_in(&portal.nth_text(phone, 2).await);

    let recover = RecoverPassword {
        identifier: id.clone(),
        phone: phone.to_owned(),
    };
    assert_eq!(
        plain(portal.cabinet(&recover).await),
        CabinetOutcome::CodeSentIfKnown
    );
    let code = code_in(&portal.nth_text(phone, 3).await);
    let complete = CompleteRecovery {
        identifier: id.clone(),
        code,
        new_password: "Recovered2026".into(),
    };
    let ok = CabinetOutcome::Ok {
        assurance_level: "substantial".into(),
        session_token: None,
    };
    assert_eq!(plain(portal.cabinet(&complete).await), ok);
    let login = LogIn {
        identifier: id,
        password: "Recovered2026".into(),
    };
    assert_eq!(plain(portal.cabinet(&login).await), ok);

    // The code, the password and the recovery code all went through MTS's SMS centre.
    let sends: i64 = sqlx::query_scalar("SELECT count(*) FROM smpp_sends WHERE operator = 'mts'")
        .fetch_one(&portal.env.pool)
        .await
        .expect("smpp_sends");
    assert_eq!(sends, 3);
    assert!(duplicates(&portal, SimKind::Mts).await.is_empty());
    portal.stop().await;
}
