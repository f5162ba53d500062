//! The trust boundary on the real broker: every consumed message type published by every kind
//! of party, accepted or dead-lettered as the access matrix says; and each party hearing only
//! its own messages while others are busy at once.

use contracts::issuance::{IdentifierIssued, PhoneCodeSent};
use contracts::{Message, Metadata};
use e2e::harness::TEST_DESKS;
use e2e::portal::{Portal, WAIT, code_in, phone};
use e2e::{Observer, wait_until};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// The types a desk sends (the desk its body names), written out here and not read from the
/// hub's matrix, so the test checks the hub against the rules rather than against itself.
const DESK_TYPES: [&str; 12] = [
    "issuance.apply.v1",
    "issuance.confirm_phone.v1",
    "issuance.resend_password.v1",
    "issuance.resend_password.v2",
    "issuance.notice_signed.v1",
    "identifier.block.v1",
    "identifier.block.v2",
    "identifier.unblock.v1",
    "identifier.unblock.v2",
    "identifier.change_phone.v1",
    "identifier.change_phone.v2",
    "identifier.confirm_phone.v1",
];

/// The types the portal sends.
const PORTAL_TYPES: [&str; 21] = [
    "cabinet.login.v1",
    "cabinet.logout.v1",
    "cabinet.change_password.v1",
    "cabinet.recover_password.v1",
    "cabinet.complete_recovery.v1",
    "cabinet.block.v1",
    "cabinet.unblock.v1",
    "cabinet.complete_unblock.v1",
    "cabinet.login_email.v1",
    "cabinet.eds_challenge.v1",
    "cabinet.login_eds.v1",
    "registration.email.v1",
    "registration.activate.v1",
    "registration.eds.v1",
    "procedure.submit.v1",
    "procedure.withdraw.v1",
    "procedure.attach_receipt.v1",
    "procedure.provide_info.v1",
    "complaint.submit.v1",
    "complaint.withdraw.v1",
    "procedure.list.v1",
];

/// The authorities' answers (the hub's requests to them, `authority.application.v1` and the
/// like, are the hub's own: its bridges consume them for the HTTP authorities).
const AUTHORITY_ANSWERS: [&str; 9] = [
    "authority.registered.v1",
    "authority.info_requested.v1",
    "authority.decided.v1",
    "authority.decided.v2",
    "authority.withdrawal_answered.v1",
    "authority.receipt_answered.v1",
    "authority.complaint_decided.v1",
    "authority.complaint_decided.v2",
    "authority.complaint_withdrawal_answered.v1",
];

/// Who publishes, in the matrix test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Hub,
    Portal,
    OwnDesk,
    OtherDesk,
    Authority,
    Undeclared,
}

const ROLES: [Role; 6] = [
    Role::Hub,
    Role::Portal,
    Role::OwnDesk,
    Role::OtherDesk,
    Role::Authority,
    Role::Undeclared,
];

/// Whether the rules let `role` send `message_type` (the body names desk `TEST_DESKS[0]`).
fn allowed(role: Role, message_type: &str) -> bool {
    if DESK_TYPES.contains(&message_type) {
        role == Role::OwnDesk
    } else if PORTAL_TYPES.contains(&message_type) {
        role == Role::Portal
    } else if AUTHORITY_ANSWERS.contains(&message_type) {
        // A bus authority's user, or the hub's bridge for an HTTP authority; whether it owns the
        // application the saga checks (tests/tests/agencies.rs).
        matches!(role, Role::Authority | Role::Hub)
    } else {
        role == Role::Hub
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consumed_type_from_every_party_is_accepted_or_refused_as_the_matrix_says() {
    let mut portal = Portal::start().await;
    let env = &portal.env;
    let plan = hub::plan(&portal.integrations, &Default::default()).expect("plan");
    // Every type the hub consumes from the bus: its queues' bindings.
    let mut types: Vec<(String, String)> = plan
        .queues()
        .into_iter()
        .flat_map(|q| {
            let name = q.name.clone();
            q.bindings.into_iter().map(move |b| (b, name.clone()))
        })
        .collect();
    types.sort();
    types.dedup_by(|a, b| a.0 == b.0);
    assert!(
        types.len() >= 40,
        "the plan consumes {} types from the bus",
        types.len()
    );
    for t in DESK_TYPES.iter().chain(&PORTAL_TYPES) {
        assert!(types.iter().any(|(b, _)| b == t), "the hub consumes {t}");
    }
    let authority_user = "authority-fszn";
    let undeclared = "desk-e2e-undeclared";
    let user = |role: Role| match role {
        Role::Hub => None,
        Role::Portal => Some("portal".to_owned()),
        Role::OwnDesk => Some(hub_portal::agency::desk_user(TEST_DESKS[0])),
        Role::OtherDesk => Some(hub_portal::agency::desk_user(TEST_DESKS[1])),
        Role::Authority => Some(authority_user.to_owned()),
        Role::Undeclared => Some(undeclared.to_owned()),
    };
    // A body that names the desk of the application and nothing else: a message the matrix
    // lets through reaches its handler, which refuses it as invalid input (a kind of its own).
    let body = serde_json::to_vec(&serde_json::json!({
        "desk_id": TEST_DESKS[0],
        "application_number": "TB-1",
    }))
    .expect("body");
    let mut sent: HashMap<Uuid, (String, Role, String)> = HashMap::new();
    for (t, queue) in &types {
        for role in ROLES {
            let metadata = Metadata::new(t.clone(), "trust-boundary-test");
            sent.insert(metadata.message_id, (t.clone(), role, queue.clone()));
            // The one body for every type matches few of their schemas: deliberately.
            env.send_deliberately_invalid_as(user(role).as_deref(), t, body.clone(), metadata)
                .await;
        }
    }
    // Every one of them ends refused for its sender (a dead letter saying so), or taken by its
    // handler: handled (an inbox row) or refused by it as invalid input (a dead letter).
    let judged = wait_until(WAIT, "every message judged", || async {
        let mut rows: Vec<(Uuid, String, String)> =
            sqlx::query_as("SELECT message_id, error_kind, error FROM dead_letters")
                .fetch_all(&env.pool)
                .await
                .expect("dead letters");
        let handled: Vec<Uuid> = sqlx::query_scalar("SELECT message_id FROM inbox")
            .fetch_all(&env.pool)
            .await
            .expect("inbox");
        rows.extend(
            handled
                .into_iter()
                .map(|id| (id, "handled".to_owned(), String::new())),
        );
        let judged: HashMap<Uuid, (String, String)> = rows
            .into_iter()
            .map(|(id, kind, error)| (id, (kind, error)))
            .collect();
        sent.keys()
            .all(|id| judged.contains_key(id))
            .then_some(judged)
    })
    .await;
    let mut wrong = Vec::new();
    for (id, (t, role, queue)) in &sent {
        let (kind, error) = &judged[id];
        let refused_for_sender = error.contains("may not send")
            || error.contains("is no declared party")
            || error.contains("a desk sends only its own");
        let expected = allowed(*role, t);
        if expected == refused_for_sender {
            wrong.push(format!(
                "{t} (queue {queue}) from {role:?}: expected {}, got {kind}: {error}",
                if expected { "accepted" } else { "refused" }
            ));
        }
        if refused_for_sender {
            let named = user(*role)
                .unwrap_or_else(|| hub_runtime::broker::broker_user(&env.config.amqp_url));
            assert!(
                error.contains(&format!("{named:?}")),
                "the refusal names the user {named}: {error}"
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} judged against the matrix:\n{}",
        wrong.len(),
        sent.len(),
        wrong.join("\n")
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_asking_for_answers_in_a_queue_not_its_own_is_refused() {
    let mut portal = Portal::start().await;
    let env = &portal.env;
    let topology = env.topology(vec![]);
    let login = serde_json::to_vec(&serde_json::json!({
        "identifier": "3270287A012PB2", "password": "Whatever-1"
    }))
    .expect("body");
    let mut ids = Vec::new();
    for queue in [
        topology.work_queue(&hub_portal::agency::desk_queue(TEST_DESKS[0])),
        topology.work_queue("cabinet"),
    ] {
        let mut metadata = Metadata::new("cabinet.login.v1", "test");
        metadata.reply_to = Some(queue.clone());
        ids.push((metadata.message_id, queue));
        env.send_raw_as(Some("portal"), "cabinet.login.v1", login.clone(), metadata)
            .await;
    }
    let letters = env.dead_letters("cabinet", 2, WAIT).await;
    for (id, queue) in ids {
        let letter = letters
            .iter()
            .find(|l| l.message_id == Some(id))
            .expect("the request is dead-lettered");
        assert!(
            letter.error.contains("\"portal\"")
                && letter.error.contains(&format!("{queue:?}"))
                && letter.error.contains("own queue"),
            "{}",
            letter.error
        );
    }
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_desks_busy_at_once_each_hear_only_their_own_events() {
    let mut portal = Portal::start().await;
    let persons = portal.good_persons().await;
    let topology = portal.env.topology(vec![]);
    let [a, b] = TEST_DESKS;
    // Both desks apply for several people at once.
    let mut applications = Vec::new();
    for (i, person) in persons.iter().take(6).enumerate() {
        let desk = if i % 2 == 0 { a } else { b };
        let number = format!("TD-{i}");
        let mut application = person.application(&number, &phone(400 + i as u32));
        application.application.desk_id = desk.into();
        applications.push((desk, number, phone(400 + i as u32)));
        portal.env.send(&application).await;
    }
    // Each desk reads its own queue, as its own broker user would.
    let queue_of = |desk: &str| topology.work_queue(&hub_portal::agency::desk_queue(desk));
    let (heard_a, heard_b) = (
        Observer::attach(&portal.env, queue_of(a)).await,
        Observer::attach(&portal.env, queue_of(b)).await,
    );
    let heard: std::sync::Mutex<HashMap<&str, Vec<e2e::harness::Observed>>> =
        std::sync::Mutex::default();
    let take = || async {
        for (desk, o) in [(a, &heard_a), (b, &heard_b)] {
            while let Some(m) = o.get().await {
                heard.lock().expect("lock").entry(desk).or_default().push(m);
            }
        }
    };
    // Every application gets its code; each desk confirms its own.
    for (desk, number, phone) in &applications {
        let code = code_in(&portal.nth_text(phone, 1).await);
        portal
            .env
            .send(&contracts::issuance::ConfirmPhone {
                desk_id: (*desk).into(),
                application_number: number.clone(),
                code,
            })
            .await;
    }
    let issued_type = IdentifierIssued::TYPE.to_string();
    wait_until(WAIT, "both desks' identifiers issued", || async {
        take().await;
        let heard = heard.lock().expect("lock");
        let issued = |desk: &str| {
            heard.get(desk).map_or(0, |ms| {
                ms.iter()
                    .filter(|m| m.metadata.message_type == issued_type)
                    .count()
            })
        };
        (issued(a) == 3 && issued(b) == 3).then_some(())
    })
    .await;
    let heard = heard.into_inner().expect("lock");
    for (desk, messages) in &heard {
        let mine: HashSet<&str> = applications
            .iter()
            .filter(|(d, _, _)| d == desk)
            .map(|(_, n, _)| n.as_str())
            .collect();
        for m in messages {
            let number = m.body["application_number"]
                .as_str()
                .or_else(|| m.body["notice"]["application"]["number"].as_str())
                .expect("an issuance event names its application");
            assert!(
                mine.contains(number),
                "desk {desk} heard {} of application {number}, which is not its own",
                m.metadata.message_type
            );
        }
        assert!(
            messages
                .iter()
                .any(|m| m.metadata.message_type == PhoneCodeSent::TYPE.to_string()),
            "desk {desk} heard its codes sent"
        );
    }
    // Nothing of theirs went to the bus by type: the unrouted queue holds none of it.
    let unrouted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dead_letters WHERE message_type LIKE 'issuance.%'",
    )
    .fetch_one(&portal.env.pool)
    .await
    .expect("dead letters");
    assert_eq!(unrouted, 0, "no issuance event unrouted or dead-lettered");
    portal.stop().await;
}

/// The parties' broker users on a node of the lab's own (the chaos run's), made twice: the
/// second time they exist and only their passwords and permissions are set again. The portal
/// then logs in with its password, and a stranger's password is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn party_users_are_made_on_a_private_node_and_made_again_without_error() {
    let node = hub_lab::chaos::servers::PrivateRabbit::start()
        .await
        .expect("a private RabbitMQ node");
    node.add_party_users().expect("the parties' users");
    node.add_party_users().expect("made again: they exist");
    let portal = hub_lab::parties::url_as(&node.url(), hub_portal::parties::DEFAULT_PORTAL_USER)
        .expect("the portal's URL");
    let conn = lapin::Connection::connect(portal.as_str(), lapin::ConnectionProperties::default())
        .await
        .expect("the portal logs in with its password");
    conn.close(200, "done".into()).await.expect("closed");
    let mut stranger = portal.clone();
    stranger
        .set_password(Some("not-the-password"))
        .expect("a password");
    assert!(
        lapin::Connection::connect(stranger.as_str(), lapin::ConnectionProperties::default())
            .await
            .is_err(),
        "a wrong password is refused"
    );
}
