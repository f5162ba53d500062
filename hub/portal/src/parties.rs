//! The trust boundary: who is on the bus, what each may send, and where the hub's messages for
//! each go.
//!
//! **Parties.** Every broker user the hub takes messages from is a declared party with a role:
//! the hub itself (its own user, and the bridges that speak for HTTP back-offices), the portal
//! (`HUB_PORTAL_USER`, `portal` unless set), each issuance desk (`HUB_DESKS`; desk `<id>`
//! connects as `desk-<id>`), and each authority of the catalogue that works on the bus
//! (`authority-<id>`). They are declared at start ([`Parties::declare`]) and checked like the
//! catalogue; any other user is refused (deny by default).
//!
//! **The access matrix** ([`MATRIX`], [`may_send`]): for every message type the hub consumes, the
//! role that may send it. A desk sends only its own desk's commands (the desk its body names);
//! an authority answers only for its own applications (the procedure and complaint sagas check
//! the owner); every type not in the matrix is the hub's own. [`Policy`] enforces it through the
//! runtime's sender seam before any handler sees the message; a refusal is a dead letter whose
//! reason names the user, its role and the type. The README's table is [`matrix_markdown`].
//!
//! **Each party hears only its own messages.** Every party has one queue, declared and bound by
//! the hub (`hub topology`): `<ns>.portal`, `<ns>.desk.<id>`, `<ns>.authority.<id>`, and reads
//! only it. The hub sends a party's messages straight to that queue through the default exchange
//! ([`address`]): a desk's events to the desk named in the application, the portal's events and
//! answers to the portal, an authority's traffic to that authority. Nothing for a party goes to
//! the bus by type, so no binding can make one party hear another's.
//!
//! **Answers.** A party may ask for answers (`reply_to`) only in its own queue or RabbitMQ's
//! direct reply-to (`amq.rabbitmq.reply-to`); any other queue is refused, so nobody can make the
//! hub write into a queue that is not theirs.

use std::collections::BTreeMap;
use std::fmt;

use contracts::{Failure, Message, MessageType, QueueSpec};
use hub_runtime::broker::{Claim, SenderPolicy, require_sender};
use hub_runtime::engine::{Command, Step};

use crate::agency::{DESK_USER_PREFIX, check_desk_ids, desk_queue, desk_user};
use crate::procedures::catalogue::Catalogue;
use crate::procedures::saga::authority_queue;

/// The short name of the portal's own queue (`<ns>.portal`): its events and its answers.
pub const PORTAL_QUEUE: &str = "portal";

/// The portal's broker user unless `HUB_PORTAL_USER` names another.
pub const DEFAULT_PORTAL_USER: &str = "portal";

/// RabbitMQ's direct reply-to pseudo-queue; the broker gives the requester a name starting so.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// A party's role on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The hub itself: its own broker user, the bridges of the HTTP authorities included.
    Hub,
    /// The e-services portal: the cabinet, registration, applications, complaints.
    Portal,
    /// An issuance desk, by id.
    Desk(String),
    /// An authority that works on the bus, by catalogue id.
    Authority(String),
}

impl Role {
    /// The short name of the party's own queue; the hub has none (it reads its work queues).
    pub fn queue(&self) -> Option<String> {
        match self {
            Role::Hub => None,
            Role::Portal => Some(PORTAL_QUEUE.to_owned()),
            Role::Desk(id) => Some(desk_queue(id)),
            Role::Authority(id) => Some(authority_queue(id)),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Hub => f.write_str("the hub"),
            Role::Portal => f.write_str("the portal"),
            Role::Desk(id) => write!(f, "desk {id}"),
            Role::Authority(id) => write!(f, "authority {id}"),
        }
    }
}

/// Who may send a message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The portal only.
    Portal,
    /// A desk, for the desk its body names only.
    Desk,
    /// The authority that owns the application or complaint (a bus authority's user, or the
    /// hub's bridge for an HTTP authority); the sagas check the owner.
    OwningAuthority,
    /// The hub only: commands to its workers and their results, the registry's, timers,
    /// operators' commands. Every type not in [`MATRIX`] is the hub's.
    Hub,
}

impl Sender {
    /// How the README's table says it.
    pub fn describe(self) -> &'static str {
        match self {
            Sender::Portal => "the portal",
            Sender::Desk => "the desk named in the body",
            Sender::OwningAuthority => {
                "the owning authority (a bus authority's user; for an HTTP authority, the hub's bridge)"
            }
            Sender::Hub => "the hub only",
        }
    }
}

/// Who receives a message type the hub sends to a party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recipient {
    /// The desk the body names (`desk_id`, or the application's in a notice).
    Desk,
    /// The portal.
    Portal,
}

/// The message types parties send, with who may send each. Every other type is the hub's.
pub const MATRIX: &[(MessageType, Sender)] = {
    use contracts::account as a;
    use contracts::cabinet as c;
    use contracts::issuance as i;
    use contracts::procedure as p;
    use contracts::registration as r;
    &[
        (i::ApplyForIdentifier::TYPE, Sender::Desk),
        (i::ConfirmPhone::TYPE, Sender::Desk),
        (i::ResendTemporaryPassword::TYPE, Sender::Desk),
        (i::ResendTemporaryPasswordV2::TYPE, Sender::Desk),
        (i::NoticeSigned::TYPE, Sender::Desk),
        (a::BlockIdentifier::TYPE, Sender::Desk),
        (a::BlockIdentifierV2::TYPE, Sender::Desk),
        (a::UnblockIdentifier::TYPE, Sender::Desk),
        (a::UnblockIdentifierV2::TYPE, Sender::Desk),
        (a::ChangePhone::TYPE, Sender::Desk),
        (a::ChangePhoneV2::TYPE, Sender::Desk),
        (a::ConfirmNewPhone::TYPE, Sender::Desk),
        (c::LogIn::TYPE, Sender::Portal),
        (c::ChangePassword::TYPE, Sender::Portal),
        (c::RecoverPassword::TYPE, Sender::Portal),
        (c::CompleteRecovery::TYPE, Sender::Portal),
        (c::BlockSelf::TYPE, Sender::Portal),
        (c::LogOut::TYPE, Sender::Portal),
        (c::UnblockSelf::TYPE, Sender::Portal),
        (c::CompleteUnblock::TYPE, Sender::Portal),
        (r::RegisterByEmail::TYPE, Sender::Portal),
        (r::ActivateEmail::TYPE, Sender::Portal),
        (r::LogInByEmail::TYPE, Sender::Portal),
        (r::RequestEdsChallenge::TYPE, Sender::Portal),
        (r::LogInByEds::TYPE, Sender::Portal),
        (r::RegisterByEds::TYPE, Sender::Portal),
        (p::SubmitApplication::TYPE, Sender::Portal),
        (p::WithdrawApplication::TYPE, Sender::Portal),
        (p::AttachReceipt::TYPE, Sender::Portal),
        (p::ProvideInfo::TYPE, Sender::Portal),
        (p::SubmitComplaint::TYPE, Sender::Portal),
        (p::WithdrawComplaint::TYPE, Sender::Portal),
        (contracts::offer::ListProcedures::TYPE, Sender::Portal),
        (p::AuthorityRegistered::TYPE, Sender::OwningAuthority),
        (p::AuthorityInfoRequested::TYPE, Sender::OwningAuthority),
        (p::AuthorityDecided::TYPE, Sender::OwningAuthority),
        (p::AuthorityDecidedSigned::TYPE, Sender::OwningAuthority),
        (
            p::AuthorityWithdrawalAnswered::TYPE,
            Sender::OwningAuthority,
        ),
        (p::AuthorityReceiptAnswered::TYPE, Sender::OwningAuthority),
        (p::AuthorityComplaintDecided::TYPE, Sender::OwningAuthority),
        (
            p::AuthorityComplaintDecidedSigned::TYPE,
            Sender::OwningAuthority,
        ),
        (
            p::AuthorityComplaintWithdrawalAnswered::TYPE,
            Sender::OwningAuthority,
        ),
    ]
};

/// The message types the hub sends to a party, with the party.
pub(crate) const RECIPIENTS: &[(MessageType, Recipient)] = {
    use contracts::account as a;
    use contracts::cabinet as c;
    use contracts::issuance as i;
    use contracts::procedure as p;
    &[
        (i::PhoneCodeSent::TYPE, Recipient::Desk),
        (i::PhoneCodeWrong::TYPE, Recipient::Desk),
        (i::PhoneCodeExpired::TYPE, Recipient::Desk),
        (i::IdentifierIssued::TYPE, Recipient::Desk),
        (i::PasswordResent::TYPE, Recipient::Desk),
        (i::ResendRefused::TYPE, Recipient::Desk),
        (i::NoticeRecorded::TYPE, Recipient::Desk),
        (i::NoticeRefused::TYPE, Recipient::Desk),
        (i::PasswordNotDelivered::TYPE, Recipient::Desk),
        (i::ApplicationRejected::TYPE, Recipient::Desk),
        (a::IdentifierBlocked::TYPE, Recipient::Desk),
        (a::IdentifierUnblocked::TYPE, Recipient::Desk),
        (a::NewPhoneCodeSent::TYPE, Recipient::Desk),
        (a::NewPhoneCodeWrong::TYPE, Recipient::Desk),
        (a::NewPhoneCodeExpired::TYPE, Recipient::Desk),
        (a::PhoneChanged::TYPE, Recipient::Desk),
        (a::RequestRejected::TYPE, Recipient::Desk),
        (c::CabinetReply::TYPE, Recipient::Portal),
        (contracts::offer::ProceduresListed::TYPE, Recipient::Portal),
        (p::ApplicationAccepted::TYPE, Recipient::Portal),
        (p::PaymentReceived::TYPE, Recipient::Portal),
        (p::PaymentDueBack::TYPE, Recipient::Portal),
        (p::PaymentReturned::TYPE, Recipient::Portal),
        (p::ReceiptChecked::TYPE, Recipient::Portal),
        (p::ApplicationRegistered::TYPE, Recipient::Portal),
        (p::InfoRequested::TYPE, Recipient::Portal),
        (p::InfoProvided::TYPE, Recipient::Portal),
        (p::ApplicationDecided::TYPE, Recipient::Portal),
        (p::ApplicationWithdrawn::TYPE, Recipient::Portal),
        (p::ApplicationRejected::TYPE, Recipient::Portal),
        (p::ApplicationOverdue::TYPE, Recipient::Portal),
        (p::ComplaintAccepted::TYPE, Recipient::Portal),
        (p::ComplaintDecided::TYPE, Recipient::Portal),
        (p::ComplaintWithdrawn::TYPE, Recipient::Portal),
        (p::ComplaintRejected::TYPE, Recipient::Portal),
    ]
};

/// Who may send `message_type` (the wire form, `name.vN`): the hub only for every type not in
/// [`MATRIX`].
pub fn may_send(message_type: &str) -> Sender {
    MATRIX
        .iter()
        .find(|(t, _)| t.matches(message_type))
        .map_or(Sender::Hub, |(_, s)| *s)
}

/// The broker user that legitimately sends a message of `message_type` with `body`, by the
/// matrix: the portal (`portal_user`), the desk the body names (`desk-<id>`), or `None` for the
/// hub's own user (the hub's types, and the authorities' answers, which come from the owner).
/// The lab's and the tests' players publish as it.
pub fn legitimate_sender(message_type: &str, body: &[u8], portal_user: &str) -> Option<String> {
    match may_send(message_type) {
        Sender::Portal => Some(portal_user.to_owned()),
        Sender::Desk => desk_named(body).map(|d| desk_user(&d)),
        Sender::OwningAuthority | Sender::Hub => None,
    }
}

/// The README's table of the access matrix (between its markers), from [`MATRIX`].
pub fn matrix_markdown() -> String {
    let mut out = String::from("| message type | may be sent by |\n|---|---|\n");
    for (t, s) in MATRIX {
        out.push_str(&format!("| `{t}` | {} |\n", s.describe()));
    }
    out.push_str(&format!(
        "| every other type | {} (adapter commands and results, the registry's, timers, \
         operators') |\n",
        Sender::Hub.describe()
    ));
    out
}

/// The declared parties, checked at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parties {
    portal_user: String,
    /// Broker user -> role (desks and bus authorities).
    agencies: BTreeMap<String, Role>,
}

impl Parties {
    /// The portal as `portal_user`, desks `desks` (as `desk-<id>`), and every authority of
    /// `catalogue` that works on the bus (as its `broker_user`).
    ///
    /// Errors: a desk id that cannot be a broker user or a queue name, an empty portal user, or
    /// two parties with one broker user; each names the party and what to change.
    pub fn declare(
        portal_user: &str,
        desks: &[String],
        catalogue: &Catalogue,
    ) -> Result<Self, String> {
        let portal_user = portal_user.trim();
        if portal_user.is_empty() || portal_user.starts_with(DESK_USER_PREFIX) {
            return Err(format!(
                "the portal's broker user (HUB_PORTAL_USER) {portal_user:?}: give a name that \
                 is not empty and does not start with {DESK_USER_PREFIX:?} (desks' users do)"
            ));
        }
        let desks = check_desk_ids(desks).map_err(|e| format!("HUB_DESKS: {e}"))?;
        let mut agencies = BTreeMap::new();
        let mut add = |user: String, role: Role| -> Result<(), String> {
            if user == portal_user {
                return Err(format!(
                    "{role} connects as {user:?}, the portal's broker user (HUB_PORTAL_USER): \
                     every party needs a broker user of its own"
                ));
            }
            match agencies.insert(user.clone(), role.clone()) {
                Some(other) => Err(format!(
                    "{role} and {other} both connect as {user:?}: every party needs a broker \
                     user of its own"
                )),
                None => Ok(()),
            }
        };
        for id in desks {
            add(desk_user(&id), Role::Desk(id))?;
        }
        for a in catalogue.authorities() {
            if let Some(user) = a.broker_user() {
                add(user.to_owned(), Role::Authority(a.id.clone()))?;
            }
        }
        Ok(Self {
            portal_user: portal_user.to_owned(),
            agencies,
        })
    }

    /// The portal's broker user.
    pub fn portal_user(&self) -> &str {
        &self.portal_user
    }

    /// The declared desks' ids.
    pub fn desks(&self) -> impl Iterator<Item = &str> {
        self.agencies.values().filter_map(|r| match r {
            Role::Desk(id) => Some(id.as_str()),
            _ => None,
        })
    }

    /// The role of broker user `user`, `None` for an undeclared one. `hub_user` is the hub's.
    pub fn role_of(&self, user: &str, hub_user: &str) -> Option<Role> {
        if user == hub_user {
            Some(Role::Hub)
        } else if user == self.portal_user {
            Some(Role::Portal)
        } else {
            self.agencies.get(user).cloned()
        }
    }

    /// The queues of the portal and the desks, which the hub declares and others consume (the
    /// bus authorities' queues come with their bridges). Bound to nothing: the hub sends to
    /// them by name.
    pub fn queues(&self) -> Vec<QueueSpec> {
        std::iter::once(PORTAL_QUEUE.to_owned())
            .chain(self.desks().map(desk_queue))
            .map(|q| QueueSpec::new(q, Vec::<String>::new()))
            .collect()
    }
}

/// The portal's [`SenderPolicy`]: the declared parties and the access matrix.
#[derive(Debug, Clone)]
pub struct Policy {
    parties: Parties,
}

impl Policy {
    /// The policy over `parties`.
    pub fn new(parties: Parties) -> Self {
        Self { parties }
    }
}

impl SenderPolicy for Policy {
    fn authorise(&self, claim: &Claim<'_>) -> Result<(), Failure> {
        authorise(&self.parties, claim)
    }
}

/// What [`Policy`] decides, as a function.
///
/// Errors: a permanent failure naming the user, its role and the type (the message is
/// dead-lettered with it).
pub fn authorise(parties: &Parties, claim: &Claim<'_>) -> Result<(), Failure> {
    let t = claim.message_type;
    let user = require_sender(claim.sender, t)?;
    let role = parties.role_of(user, claim.hub_user).ok_or_else(|| {
        Failure::permanent(format!(
            "broker user {user:?} is no declared party (the hub {:?}, the portal {:?}, the \
             desks of HUB_DESKS as desk-<id>, the catalogue's bus authorities): its {t} is \
             refused",
            claim.hub_user,
            parties.portal_user()
        ))
    })?;
    let allowed = may_send(t);
    let permitted = match (&role, allowed) {
        (Role::Hub, Sender::Hub | Sender::OwningAuthority) => true,
        (Role::Portal, Sender::Portal) => true,
        (Role::Desk(desk), Sender::Desk) => {
            own_desk(user, desk, claim.body)?;
            true
        }
        (Role::Authority(_), Sender::OwningAuthority) => true,
        _ => false,
    };
    if !permitted {
        return Err(Failure::permanent(format!(
            "broker user {user:?} ({role}) may not send {t}: {} sends it",
            allowed.describe()
        )));
    }
    check_reply_to(user, &role, claim)
}

/// A party's `reply_to` names its own queue or the direct reply-to, or is absent.
fn check_reply_to(user: &str, role: &Role, claim: &Claim<'_>) -> Result<(), Failure> {
    let (Some(reply_to), Some(own)) = (claim.reply_to, role.queue()) else {
        return Ok(());
    };
    let own = format!("{}.{own}", claim.namespace);
    if reply_to == own || reply_to.starts_with(DIRECT_REPLY_TO) {
        return Ok(());
    }
    Err(Failure::permanent(format!(
        "broker user {user:?} ({role}) asked for the answer to its {} in queue {reply_to:?}: a \
         party's answers go only to its own queue {own:?} or to {DIRECT_REPLY_TO}",
        claim.message_type
    )))
}

/// A desk's message names that desk (`desk_id`, or `application.desk_id`).
fn own_desk(user: &str, desk: &str, body: &[u8]) -> Result<(), Failure> {
    match desk_named(body) {
        Some(named) if named == desk => Ok(()),
        Some(named) => Err(Failure::permanent(format!(
            "sent by broker user {user:?} (desk {desk:?}), but the message is desk {named:?}'s \
             (user {:?}): a desk sends only its own desk's commands",
            desk_user(&named)
        ))),
        None => Err(Failure::permanent(format!(
            "sent by broker user {user:?} (desk {desk:?}), but the message names no desk: a \
             desk sends only its own desk's commands"
        ))),
    }
}

/// The desk a body names: `desk_id`, `application.desk_id`, or `notice.application.desk_id`.
pub fn desk_named(body: &[u8]) -> Option<String> {
    let v = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    [
        v.get("desk_id"),
        v.get("application").and_then(|a| a.get("desk_id")),
        v.pointer("/notice/application/desk_id"),
    ]
    .into_iter()
    .flatten()
    .find_map(|d| d.as_str().map(str::to_owned))
}

/// `command`, sent to the own queue of the party it is for when its type is one the hub sends
/// to a party (a desk's event to the desk named in it, the portal's to the portal); other
/// commands unchanged. An answer to a request still goes to the request's `reply_to`, which
/// [`Policy`] has checked is the requester's own.
///
/// Errors: a desk's event that names no desk (a defect: every desk event carries the desk).
pub fn address(command: Command) -> Result<Command, Failure> {
    let t = command.message_type;
    let Some((_, recipient)) = RECIPIENTS.iter().find(|(r, _)| *r == t) else {
        return Ok(command);
    };
    let queue = match recipient {
        Recipient::Portal => PORTAL_QUEUE.to_owned(),
        Recipient::Desk => desk_queue(&desk_named(&command.body).ok_or_else(|| {
            Failure::permanent(format!("{t} names no desk: it cannot be sent to one"))
        })?),
    };
    Ok(command.to_party(queue))
}

/// Every command of `step` [`address`]ed, timers' messages included (they go back to the saga,
/// so they stay as they are).
///
/// Errors: as [`address`].
pub fn address_step<S>(mut step: Step<S>) -> Result<Step<S>, Failure> {
    step.commands = step
        .commands
        .into_iter()
        .map(address)
        .collect::<Result<_, _>>()?;
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parties() -> Parties {
        Parties::declare(
            "portal",
            &["minsk-1".into(), "brest-2".into()],
            &Catalogue::embedded().expect("catalogue"),
        )
        .expect("declared")
    }

    fn claim<'a>(
        sender: Option<&'a str>,
        message_type: &'a str,
        reply_to: Option<&'a str>,
        body: &'a [u8],
    ) -> Claim<'a> {
        Claim {
            sender,
            hub_user: "hub",
            namespace: "ns",
            message_type,
            reply_to,
            body,
        }
    }

    #[test]
    fn an_undeclared_user_is_refused_by_name() {
        let p = parties();
        let f = authorise(
            &p,
            &claim(Some("desk-gomel-9"), "issuance.apply.v1", None, b"{}"),
        )
        .expect_err("undeclared");
        assert!(
            f.reason.contains("\"desk-gomel-9\" is no declared party"),
            "{}",
            f.reason
        );
        let f = authorise(&p, &claim(None, "cabinet.login.v1", None, b"{}")).expect_err("none");
        assert!(f.reason.contains("without user_id"), "{}", f.reason);
    }

    #[test]
    fn each_role_sends_only_its_types() {
        let p = parties();
        let desk = br#"{"desk_id": "minsk-1", "application_number": "7"}"#;
        let ok =
            |user: &str, t: &str, body: &[u8]| authorise(&p, &claim(Some(user), t, None, body));
        assert!(ok("portal", "cabinet.login.v1", b"{}").is_ok());
        assert!(ok("portal", "procedure.submit.v1", b"{}").is_ok());
        assert!(ok("desk-minsk-1", "issuance.confirm_phone.v1", desk).is_ok());
        assert!(ok("authority-fszn", "authority.decided.v1", b"{}").is_ok());
        assert!(
            ok("hub", "authority.decided.v1", b"{}").is_ok(),
            "an HTTP bridge"
        );
        assert!(ok("hub", "sms.send.v1", b"{}").is_ok());
        for (user, t, body) in [
            ("authority-fszn", "procedure.submit.v1", &b"{}"[..]),
            ("authority-fszn", "cabinet.login.v1", b"{}"),
            ("authority-fszn", "identifier.block.v1", desk),
            ("desk-minsk-1", "cabinet.login.v1", b"{}"),
            ("desk-minsk-1", "sms.send.v1", b"{}"),
            ("portal", "issuance.apply.v1", desk),
            ("portal", "authority.decided.v1", b"{}"),
            ("portal", "registry.block_account.v1", b"{}"),
            ("hub", "cabinet.login.v1", b"{}"),
            ("hub", "issuance.apply.v1", desk),
            ("desk-brest-2", "issuance.confirm_phone.v1", desk),
        ] {
            let f = ok(user, t, body).expect_err(&format!("{user} sending {t}"));
            assert_eq!(f.kind, contracts::FailureKind::Permanent);
            assert!(
                f.reason.contains(user) && (f.reason.contains(t) || f.reason.contains("desk")),
                "{}",
                f.reason
            );
        }
        let f = ok("authority-fszn", "procedure.submit.v1", b"{}").expect_err("refused");
        assert_eq!(
            f.reason,
            "broker user \"authority-fszn\" (authority fszn) may not send procedure.submit.v1: \
             the portal sends it"
        );
    }

    #[test]
    fn answers_go_only_to_the_senders_own_queue() {
        let p = parties();
        let ask = |user: &str, t: &str, reply_to: &str| {
            authorise(&p, &claim(Some(user), t, Some(reply_to), b"{}"))
        };
        assert!(ask("portal", "cabinet.login.v1", "ns.portal").is_ok());
        assert!(ask("portal", "cabinet.login.v1", "amq.rabbitmq.reply-to.g2dkAA").is_ok());
        for queue in [
            "ns.desk.minsk-1",
            "ns.issuance",
            "other.portal",
            "ns.portal2",
        ] {
            let f = ask("portal", "cabinet.login.v1", queue).expect_err(queue);
            assert!(
                f.reason.contains(queue) && f.reason.contains("\"ns.portal\""),
                "{}",
                f.reason
            );
        }
        // The hub's sagas ask for answers in their own work queues.
        assert!(ask("hub", "sms.send.v1", "ns.issuance").is_ok());
    }

    #[test]
    fn parties_are_checked_at_start() {
        let c = Catalogue::embedded().expect("catalogue");
        for (portal, desks) in [
            ("", vec![]),
            ("desk-x", vec![]),
            ("authority-fszn", vec![]),
            ("portal", vec!["a.b".to_owned()]),
        ] {
            assert!(
                Parties::declare(portal, &desks, &c).is_err(),
                "{portal:?} {desks:?}"
            );
        }
        let p = parties();
        assert_eq!(p.desks().collect::<Vec<_>>(), ["brest-2", "minsk-1"]);
        let queues: Vec<String> = p.queues().into_iter().map(|q| q.name).collect();
        assert_eq!(queues, ["portal", "desk.brest-2", "desk.minsk-1"]);
    }

    #[test]
    fn the_hubs_events_go_to_their_party_only() {
        let blocked = Command::new(&contracts::account::IdentifierBlocked {
            desk_id: "brest-2".into(),
            application_number: "9".into(),
            blocked_at: chrono::Utc::now(),
        })
        .expect("event");
        assert_eq!(
            address(blocked).expect("addressed").to.as_deref(),
            Some("desk.brest-2")
        );
        let reply = Command::new(&contracts::cabinet::CabinetReply {
            outcome: contracts::cabinet::CabinetOutcome::WrongCredentials,
        })
        .expect("reply");
        assert_eq!(
            address(reply).expect("addressed").to.as_deref(),
            Some("portal")
        );
        let sms = Command::new(&contracts::sms::CheckSubscriber {
            phone: "+375441231234".into(),
        })
        .expect("command");
        assert_eq!(address(sms).expect("unchanged").to, None);
        // Every type the hub sends to a party is one no party may send to it.
        for (t, _) in RECIPIENTS {
            assert_eq!(may_send(&t.to_string()), Sender::Hub, "{t}");
        }
    }

    /// The README's table between its markers is [`matrix_markdown`]; `UPDATE_README=1`
    /// rewrites it.
    #[test]
    fn the_readme_shows_the_access_matrix_of_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md");
        let (begin, end) = (
            "<!-- access-matrix:begin -->\n",
            "<!-- access-matrix:end -->",
        );
        let start = readme.find(begin).expect("the begin marker") + begin.len();
        let stop = readme.find(end).expect("the end marker");
        let generated = matrix_markdown();
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{generated}{}", &readme[..start], &readme[stop..]);
            std::fs::write(&path, updated).expect("README.md written");
            return;
        }
        assert_eq!(
            readme[start..stop],
            generated,
            "README.md's access matrix differs from the code: run \
             `UPDATE_README=1 cargo test -p hub-portal readme`"
        );
    }
}
