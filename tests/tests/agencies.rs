//! Agencies cannot act for each other. Each queue authority connects as its own broker user
//! (`hub_portal::agency`), which may write the bus and read its own queue, nothing else. The broker
//! refuses a forged `user_id` and any other write or read. The hub refuses what an authority's
//! real user says about another authority's application: it is dead-lettered with the reason,
//! and the saga does not move. A desk connects as `desk-<desk_id>`: what it publishes in another
//! desk's name is dead-lettered with the reason naming both before any saga sees it.

use contracts::cabinet::SessionToken;
use contracts::issuance::{ApplyForIdentifier, ConfirmPhone, PhoneCodeSent};
use contracts::procedure::{ApplicationAccepted, AuthorityDecided, SubmitApplication, Verdict};
use contracts::{Message, Metadata, headers};
use e2e::portal::{DESK, Portal, WAIT, phone};
use e2e::wait_until;
use hub_portal::procedures::catalogue::Catalogue;
use hub_portal::procedures::saga::{ProcedureSaga, authority_queue};
use hub_portal::sagas::issuance::IssuanceSaga;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;
use uuid::Uuid;

/// Decided by FSZN (a queue authority).
const FSZN_PROCEDURE: &str = "2.19";
/// Another queue authority, the one that tries.
const OTHER: &str = "minsk-civil-registry";

fn broker_user(authority: &str) -> String {
    Catalogue::embedded()
        .expect("the embedded catalogue")
        .authority(authority)
        .and_then(|a| a.broker_user())
        .expect("a queue authority")
        .to_owned()
}

/// A connection as `authority`'s broker user (made on the local RabbitMQ if missing).
async fn connect_as(portal: &Portal, authority: &str) -> Connection {
    let (_, url) = portal.authority_login(authority);
    Connection::connect(url.as_str(), ConnectionProperties::default())
        .await
        .expect("the authority connects")
}

fn application(session: &SessionToken) -> SubmitApplication {
    SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: FSZN_PROCEDURE.into(),
        session_token: session.clone(),
        form: json!({"period_from": "2026-01-01", "period_to": "2026-06-30", "purpose": "bank"})
            .as_object()
            .cloned()
            .expect("object"),
        attachments: vec!["att-1".into()],
        delivery: Default::default(),
    }
}

fn decision(application_id: Uuid) -> AuthorityDecided {
    AuthorityDecided {
        application_id,
        verdict: Verdict::Granted,
        document: "not ours to decide".into(),
        decided_at: chrono::Utc::now(),
    }
}

/// Publishes `body` to `exchange` with `properties` on a fresh confirming channel of `conn`;
/// the broker's refusal, if any, as text.
async fn publish(
    conn: &Connection,
    exchange: &str,
    routing_key: &str,
    properties: BasicProperties,
    body: &[u8],
) -> Result<(), String> {
    let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .map_err(|e| e.to_string())?;
    confirm.await.map(|_| ()).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_refuses_a_forged_user_id_and_any_write_or_read_outside_an_agencys_rights() {
    let mut portal = Portal::start().await;
    let topology = portal.env.topology(vec![]);
    let conn = connect_as(&portal, OTHER).await;
    let body = contracts::encode(&decision(Uuid::new_v4())).expect("encodes");
    let metadata = |user: &str| {
        let mut m = Metadata::new(AuthorityDecided::TYPE.to_string(), "intruder");
        m.user_id = Some(user.to_owned());
        hub_runtime::broker::encode_properties(&m)
    };
    let routing_key = AuthorityDecided::TYPE.to_string();

    // Its own user id on the bus: allowed (the hub then judges what it says).
    publish(
        &conn,
        &topology.bus_exchange(),
        &routing_key,
        metadata(&broker_user(OTHER)),
        &body,
    )
    .await
    .expect("an agency may write the bus as itself");

    // Another agency's user id: the broker closes the channel.
    let forged = publish(
        &conn,
        &topology.bus_exchange(),
        &routing_key,
        metadata(&broker_user("fszn")),
        &body,
    )
    .await
    .expect_err("a forged user_id is refused");
    assert!(forged.contains("PRECONDITION_FAILED"), "{forged}");

    // Any exchange but the bus: not its to write.
    for exchange in [String::new(), format!("{}.retry.1", topology.namespace())] {
        let refused = publish(
            &conn,
            &exchange,
            &topology.work_queue(&authority_queue("fszn")),
            metadata(&broker_user(OTHER)),
            &body,
        )
        .await
        .expect_err("writing outside the bus is refused");
        assert!(
            refused.contains("ACCESS_REFUSED"),
            "{exchange:?}: {refused}"
        );
    }

    // Another agency's queue: not its to read; its own queue is.
    let read = |queue: String| {
        let conn = &conn;
        async move {
            let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
            channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    let refused = read(topology.work_queue(&authority_queue("fszn")))
        .await
        .expect_err("another agency's queue is refused");
    assert!(refused.contains("ACCESS_REFUSED"), "{refused}");
    read(topology.work_queue(&authority_queue(OTHER)))
        .await
        .expect("an agency may read its own queue");
    let _ = conn.close(200, "done".into()).await;
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_deciding_another_agencys_application_is_dead_lettered_and_the_saga_waits() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    let app = application(&session);
    portal.env.send(&app).await;
    let _: ApplicationAccepted = portal.event(&app.application_id.to_string()).await;

    // The civil registry's real broker user, with its own user id: the broker lets it through,
    // the hub does not, since the application is FSZN's.
    let conn = connect_as(&portal, OTHER).await;
    let mut metadata = Metadata::new(AuthorityDecided::TYPE.to_string(), OTHER);
    metadata.user_id = Some(broker_user(OTHER));
    publish(
        &conn,
        &portal.env.topology(vec![]).bus_exchange(),
        &AuthorityDecided::TYPE.to_string(),
        hub_runtime::broker::encode_properties(&metadata),
        &contracts::encode(&decision(app.application_id)).expect("encodes"),
    )
    .await
    .expect("the broker takes it");
    let _ = conn.close(200, "done".into()).await;

    let letters = portal
        .env
        .dead_letters(hub_portal::procedures::saga::QUEUE, 1, WAIT)
        .await;
    assert_eq!(letters[0].message_id, Some(metadata.message_id));
    let reason = &letters[0].error;
    assert!(
        reason.contains(&broker_user(OTHER)) && reason.contains(&broker_user("fszn")),
        "the reason names who sent it and who may: {reason} ({})",
        letters[0].error_kind
    );
    assert_eq!(
        letters[0].header_str(headers::ERROR_TEXT).as_ref(),
        Some(reason)
    );
    // The hub's copy carries the hub's user id (the broker allows no other), and the sender's in
    // a header operators see.
    assert_eq!(
        letters[0].header_str(headers::ORIGINAL_USER_ID),
        Some(broker_user(OTHER))
    );
    let state: Option<String> = sqlx::query_scalar("SELECT state_name FROM sagas WHERE id = $1")
        .bind(ProcedureSaga::key(app.application_id).id)
        .fetch_optional(&portal.env.pool)
        .await
        .expect("the saga");
    assert_eq!(
        state.as_deref(),
        Some("at_authority"),
        "the saga did not move"
    );
    portal.stop().await;
}

/// A desk's broker user on the local RabbitMQ, made for one test and removed after it.
struct DeskLogin {
    desk: String,
    user: String,
    url: url::Url,
}

impl DeskLogin {
    /// A fresh desk id, to declare (`HUB_DESKS`) before the hub starts.
    fn fresh(tag: &str) -> String {
        format!("e2e-{tag}-{}", &Uuid::new_v4().simple().to_string()[..8])
    }

    fn new(portal: &Portal, desk: String) -> Self {
        let user = hub_portal::agency::ensure_desk_user_with_rabbitmqctl(
            &desk,
            hub_portal::agency::DEV_PASSWORD,
            "/",
        )
        .expect("the desk's broker user");
        let mut url = url::Url::parse(&portal.env.config.amqp_url).expect("AMQP URL");
        url.set_username(&user).expect("user");
        url.set_password(Some(hub_portal::agency::DEV_PASSWORD))
            .expect("password");
        Self { desk, user, url }
    }
}

impl Drop for DeskLogin {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_user", &self.user])
            .output();
    }
}

/// Whether the saga took message `message_id` (a step in its history, or an inbox row).
async fn taken(portal: &Portal, message_id: Uuid) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM saga_history WHERE message_id = $1)
             OR EXISTS (SELECT 1 FROM inbox WHERE message_id = $1)",
    )
    .bind(message_id)
    .fetch_one(&portal.env.pool)
    .await
    .expect("history")
}

async fn saga_exists(portal: &Portal, id: Uuid) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sagas WHERE id = $1)")
        .bind(id)
        .fetch_one(&portal.env.pool)
        .await
        .expect("sagas")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_publishing_in_another_desks_name_unnamed_or_as_the_hub_is_dead_lettered_and_no_saga_is_touched()
 {
    let desk_a = DeskLogin::fresh("a");
    let mut portal = Portal::start_with(|c| c.desks.push(desk_a.clone())).await;
    let persons = portal.good_persons().await;
    let a = DeskLogin::new(&portal, desk_a);
    let b = format!("e2e-b-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let conn = Connection::connect(a.url.as_str(), ConnectionProperties::default())
        .await
        .expect("desk A connects");
    let bus = portal.env.topology(vec![]).bus_exchange();
    let as_desk_a = |message_type: String| {
        let mut m = Metadata::new(message_type, a.desk.as_str());
        m.user_id = Some(a.user.clone());
        m
    };

    // Desk A's user applies in desk B's name: the broker takes it (the user id is A's own),
    // the hub refuses it before the saga, naming both desks.
    let mut forged: ApplyForIdentifier = persons[0].application("R-1", &phone(801));
    forged.application.desk_id = b.clone();
    let forged_meta = as_desk_a(ApplyForIdentifier::TYPE.to_string());
    publish(
        &conn,
        &bus,
        &ApplyForIdentifier::TYPE.to_string(),
        hub_runtime::broker::encode_properties(&forged_meta),
        &contracts::encode(&forged).expect("encodes"),
    )
    .await
    .expect("the broker takes it");
    let letters = portal
        .env
        .dead_letters(hub_portal::sagas::issuance::QUEUE, 1, WAIT)
        .await;
    assert_eq!(letters[0].message_id, Some(forged_meta.message_id));
    let reason = &letters[0].error;
    assert!(
        reason.contains(&format!("{:?}", a.user))
            && reason.contains(&format!("{:?}", hub_portal::agency::desk_user(&b))),
        "the reason names the sender's desk and the desk it wrote for: {reason}"
    );
    assert_eq!(
        letters[0].header_str(headers::ERROR_TEXT).as_ref(),
        Some(reason),
        "operators see it on the dead letter"
    );
    assert_eq!(
        letters[0].header_str(headers::ORIGINAL_USER_ID),
        Some(a.user.clone())
    );
    assert!(!taken(&portal, forged_meta.message_id).await);
    for desk in [&b, &a.desk] {
        assert!(
            !saga_exists(&portal, IssuanceSaga::key(desk, "R-1").id).await,
            "no saga for {desk}'s R-1"
        );
    }

    // An application of another desk (the tests' own, trusted as the hub's): desk A confirming
    // its phone code is refused too, and that saga does not take it.
    let theirs = persons[1].application("R-2", &phone(802));
    portal.apply(&theirs).await;
    let _: PhoneCodeSent = portal.event("R-2").await;
    let confirm = ConfirmPhone {
        desk_id: DESK.into(),
        application_number: "R-2".into(),
        code: "000000".into(),
    };
    let confirm_meta = as_desk_a(ConfirmPhone::TYPE.to_string());
    publish(
        &conn,
        &bus,
        &ConfirmPhone::TYPE.to_string(),
        hub_runtime::broker::encode_properties(&confirm_meta),
        &contracts::encode(&confirm).expect("encodes"),
    )
    .await
    .expect("the broker takes it");
    let letters = portal
        .env
        .dead_letters(hub_portal::sagas::issuance::QUEUE, 2, WAIT)
        .await;
    assert_eq!(letters[1].message_id, Some(confirm_meta.message_id));
    assert!(
        letters[1].error.contains(&format!("{DESK:?}")),
        "{}",
        letters[1].error
    );
    assert!(!taken(&portal, confirm_meta.message_id).await);

    // Desk A leaves user_id out and writes as desk B: the broker cannot check a sender that is
    // not named, so the hub refuses a message without one.
    let mut unnamed: ApplyForIdentifier = persons[3].application("R-4", &phone(804));
    unnamed.application.desk_id = b.clone();
    let unnamed_meta = Metadata::new(ApplyForIdentifier::TYPE.to_string(), a.desk.as_str());
    publish(
        &conn,
        &bus,
        &ApplyForIdentifier::TYPE.to_string(),
        hub_runtime::broker::encode_properties(&unnamed_meta),
        &contracts::encode(&unnamed).expect("encodes"),
    )
    .await
    .expect("the broker takes it");
    let letters = portal
        .env
        .dead_letters(hub_portal::sagas::issuance::QUEUE, 3, WAIT)
        .await;
    assert_eq!(letters[2].message_id, Some(unnamed_meta.message_id));
    assert!(
        letters[2].error.contains("without user_id"),
        "{}",
        letters[2].error
    );
    assert!(!saga_exists(&portal, IssuanceSaga::key(&b, "R-4").id).await);

    // Desk A sends the hub's own SMS command: only the hub sends it.
    let sms_meta = as_desk_a("sms.send.v1".to_owned());
    publish(
        &conn,
        &bus,
        "sms.send.v1",
        hub_runtime::broker::encode_properties(&sms_meta),
        br#"{"to": "+375291234567", "text": "pay here"}"#,
    )
    .await
    .expect("the broker takes it");
    let letters = portal
        .env
        .dead_letters(hub_portal::external::sms::worker::QUEUE, 1, WAIT)
        .await;
    assert_eq!(letters[0].message_id, Some(sms_meta.message_id));
    assert!(
        letters[0]
            .error
            .contains("may not send sms.send.v1: the hub only sends it")
            && letters[0].error.contains(&format!("{:?}", a.user)),
        "{}",
        letters[0].error
    );

    // Desk A's own application: accepted, its saga made and on its way.
    let mut own: ApplyForIdentifier = persons[2].application("R-3", &phone(803));
    own.application.desk_id = a.desk.clone();
    let own_meta = as_desk_a(ApplyForIdentifier::TYPE.to_string());
    publish(
        &conn,
        &bus,
        &ApplyForIdentifier::TYPE.to_string(),
        hub_runtime::broker::encode_properties(&own_meta),
        &contracts::encode(&own).expect("encodes"),
    )
    .await
    .expect("the broker takes it");
    wait_until(WAIT, "desk A's application taken by its saga", || async {
        taken(&portal, own_meta.message_id).await.then_some(())
    })
    .await;
    assert!(saga_exists(&portal, IssuanceSaga::key(&a.desk, "R-3").id).await);
    assert_eq!(
        portal
            .env
            .dead_letter_count(hub_portal::sagas::issuance::QUEUE)
            .await,
        3,
        "only the three in another desk's name"
    );
    let _ = conn.close(200, "done".into()).await;
    portal.stop().await;
}

/// An operator's replay of dead letter `id` by id, through the hub's own publisher (as the
/// console and `hub dlq replay` do): the report's replayed ids.
async fn replay(portal: &Portal, id: i64) -> Vec<i64> {
    let report = hub_ops::dlq::replay(
        &portal.env.pool,
        &portal.env.publisher,
        portal.env.broker.user(),
        &hub_ops::dlq::Selection::Ids(vec![id]),
        &hub_ops::dlq::ReplayOptions {
            rate: 10.0,
            operator: "tester".into(),
            reason: Some("replay keeps the sender".into()),
            include_replayed: false,
        },
        &mut |_, _| {},
    )
    .await
    .expect("the replay");
    report.replayed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_forgery_is_refused_again_as_its_senders() {
    let desk_a = DeskLogin::fresh("a");
    let mut portal = Portal::start_with(|c| c.desks.push(desk_a.clone())).await;
    let persons = portal.good_persons().await;
    let a = DeskLogin::new(&portal, desk_a);
    let b = format!("e2e-b-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let conn = Connection::connect(a.url.as_str(), ConnectionProperties::default())
        .await
        .expect("desk A connects");

    // Desk A's user applies in desk B's name: dead-lettered by the hub, as the consumer makes
    // such letters (the hub's user id, desk A's in the header).
    let mut forged: ApplyForIdentifier = persons[0].application("R-1", &phone(811));
    forged.application.desk_id = b.clone();
    let mut metadata = Metadata::new(ApplyForIdentifier::TYPE.to_string(), a.desk.as_str());
    metadata.user_id = Some(a.user.clone());
    publish(
        &conn,
        &portal.env.topology(vec![]).bus_exchange(),
        &ApplyForIdentifier::TYPE.to_string(),
        hub_runtime::broker::encode_properties(&metadata),
        &contracts::encode(&forged).expect("encodes"),
    )
    .await
    .expect("the broker takes it");
    let _ = conn.close(200, "done".into()).await;
    let queue = hub_portal::sagas::issuance::QUEUE;
    let first = portal.env.dead_letters(queue, 1, WAIT).await.remove(0);
    assert_eq!(first.message_id, Some(metadata.message_id));
    assert_eq!(
        first.header_str(headers::ORIGINAL_USER_ID),
        Some(a.user.clone())
    );
    let desks_named = |reason: &str| {
        reason.contains(&format!("{:?}", a.user))
            && reason.contains(&format!("{:?}", hub_portal::agency::desk_user(&b)))
    };
    assert!(desks_named(&first.error), "{}", first.error);

    // The operator replays it: it is still desk A's, so it is refused again for the same
    // reason; had the replay made it the hub's, desk B's saga would start.
    assert_eq!(replay(&portal, first.id).await, vec![first.id]);
    let again = portal.env.dead_letters(queue, 2, WAIT).await.remove(1);
    assert_eq!(again.message_id, Some(metadata.message_id));
    assert_eq!(again.error_kind, first.error_kind);
    assert!(desks_named(&again.error), "{}", again.error);
    assert_eq!(
        again.header_str(headers::ORIGINAL_USER_ID),
        Some(a.user.clone()),
        "the letter of the replay still names desk A"
    );
    assert!(!taken(&portal, metadata.message_id).await);
    assert!(!saga_exists(&portal, IssuanceSaga::key(&b, "R-1").id).await);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agencys_replayed_decision_is_taken_as_the_agencys_once_its_cause_is_gone() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    let app = application(&session);

    // FSZN's real user decides an application the hub does not know yet: dead-lettered ("no
    // such application"), the letter made by the consumer with FSZN's user in the header.
    let conn = connect_as(&portal, "fszn").await;
    let mut metadata = Metadata::new(AuthorityDecided::TYPE.to_string(), "fszn");
    metadata.user_id = Some(broker_user("fszn"));
    publish(
        &conn,
        &portal.env.topology(vec![]).bus_exchange(),
        &AuthorityDecided::TYPE.to_string(),
        hub_runtime::broker::encode_properties(&metadata),
        &contracts::encode(&decision(app.application_id)).expect("encodes"),
    )
    .await
    .expect("the broker takes it");
    let _ = conn.close(200, "done".into()).await;
    let queue = hub_portal::procedures::saga::QUEUE;
    let letter = portal.env.dead_letters(queue, 1, WAIT).await.remove(0);
    assert_eq!(letter.message_id, Some(metadata.message_id));
    assert_eq!(
        letter.header_str(headers::ORIGINAL_USER_ID),
        Some(broker_user("fszn"))
    );

    // The cause goes: the application is submitted and waits at FSZN.
    portal.env.send(&app).await;
    let _: ApplicationAccepted = portal.event(&app.application_id.to_string()).await;

    // The operator replays the decision: it is FSZN's, so the saga takes it. Judged as the
    // hub's, it would be refused (only FSZN's user decides for FSZN) and dead-lettered again.
    assert_eq!(replay(&portal, letter.id).await, vec![letter.id]);
    wait_until(
        WAIT,
        "FSZN's replayed decision taken by the saga",
        || async { taken(&portal, metadata.message_id).await.then_some(()) },
    )
    .await;
    let state: Option<String> = sqlx::query_scalar("SELECT state_name FROM sagas WHERE id = $1")
        .bind(ProcedureSaga::key(app.application_id).id)
        .fetch_optional(&portal.env.pool)
        .await
        .expect("the saga");
    assert_eq!(state.as_deref(), Some("decided"));
    assert_eq!(portal.env.dead_letter_count(queue).await, 1, "not again");
    portal.stop().await;
}
