//! Portal sessions, and the gate that turns a person's request into the hub's own message.
//!
//! A successful login (password `cabinet.login.v1`, e-mail `cabinet.login_email.v1`, EDS
//! `cabinet.login_eds.v1`, and an EDS registration, which proves the same key) opens a session:
//! a token of 256 random bits (base64url, 43 characters) answered in `cabinet.reply.v1`, of
//! which the hub keeps only the SHA-256 in `portal_sessions`, with the identifier, the assurance
//! level of the login and when it ends (`HUB_SESSION_TTL` after the login, 8 hours by default; a
//! fixed lifetime, not an idle one, so a use writes nothing). It ends earlier by
//! `cabinet.logout.v1`, by a password change or recovery (every session of the identifier), or
//! by a block of the identifier (every session, in the block's transaction).
//!
//! The portal sends the token with every application, withdrawal, receipt and complaint. Those
//! go to the gate ([`SessionGate`], queue [`GATE_QUEUE`]), not to the sagas: a saga's transition
//! has no database to look a session up in. The gate looks it up and forwards the hub's own
//! message, carrying the session's identifier and level, straight to the saga's queue through
//! the default exchange (never the bus; the sagas refuse these types from the bus):
//!
//! | the portal sends          | the gate forwards                  |
//! |---------------------------|------------------------------------|
//! | `procedure.submit.v1`     | `procedure.start.v1`               |
//! | `procedure.withdraw.v1`   | `procedure.withdraw_as.v1`         |
//! | `procedure.attach_receipt.v1` | `procedure.attach_receipt_as.v1` |
//! | `complaint.submit.v1`     | `complaint.start.v1`               |
//! | `complaint.withdraw.v1`   | `complaint.withdraw_as.v1`         |
//!
//! The gate answers one request itself: `procedure.list.v1`, the procedures the session's
//! assurance level allows, from the catalogue (`procedure.listed.v1`, to the request's
//! `reply_to` or the portal's queue; `session_invalid` without a valid session).
//!
//! A request whose session is unknown, expired or ended is answered like any refusal of its
//! flow (`procedure.rejected.v1` / `complaint.rejected.v1`, reason `session_invalid`): it is
//! ordinary input, nothing is dead-lettered. Withdrawals and receipts carry the session's
//! identifier, and the saga refuses one that is not the applicant's (`not_the_applicant`).

use std::time::Duration;

use adapters::Failure;
use base64::Engine;
use chrono::Utc;
use contracts::cabinet::SessionToken;
use contracts::procedure::{
    Applicant, ApplicationRejected, AssuranceLevel, AttachReceipt, BankPayment, ComplaintKind,
    ComplaintRejectReason, ComplaintRejected, Delivery, ProcedureRejectReason, ProvideInfo,
    SubmitApplication, SubmitComplaint, WithdrawApplication, WithdrawComplaint,
};
use contracts::{FieldError, Message, MessageType, decode};
use futures_util::future::BoxFuture;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use contracts::offer::{ListOutcome, ListProcedures, OrderableProcedure, ProceduresListed};
use hub_runtime::broker::Incoming;
use hub_runtime::engine::{Command, Service, db_failure};

use crate::procedures::catalogue::Catalogue;

/// The gate's queue (short name).
pub const GATE_QUEUE: &str = "session.gate";

/// The default lifetime of a session (`HUB_SESSION_TTL`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(8 * 3600);

/// The gate's queue and the portal's requests it takes.
pub fn gate_queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        GATE_QUEUE,
        [
            SubmitApplication::TYPE.to_string(),
            WithdrawApplication::TYPE.to_string(),
            AttachReceipt::TYPE.to_string(),
            ProvideInfo::TYPE.to_string(),
            SubmitComplaint::TYPE.to_string(),
            WithdrawComplaint::TYPE.to_string(),
            ListProcedures::TYPE.to_string(),
        ],
    )
}

/// How a session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The identifier and its password.
    Password,
    /// The e-mail address and its password.
    Email,
    /// An EDS signature.
    Eds,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Email => "email",
            Method::Eds => "eds",
        }
    }
}

/// The text of an assurance level, as the contracts and the table write it.
pub fn level_str(level: AssuranceLevel) -> &'static str {
    match level {
        AssuranceLevel::Basic => "basic",
        AssuranceLevel::Substantial => "substantial",
        AssuranceLevel::High => "high",
    }
}

fn parse_level(level: &str) -> Option<AssuranceLevel> {
    match level {
        "basic" => Some(AssuranceLevel::Basic),
        "substantial" => Some(AssuranceLevel::Substantial),
        "high" => Some(AssuranceLevel::High),
        _ => None,
    }
}

/// The session identifier of an e-mail account (which has no identification number).
pub fn email_account_identifier(user: Uuid) -> String {
    format!("user:{user}")
}

/// A fresh token: 32 bytes of the thread's CSPRNG (seeded from the operating system),
/// base64url without padding.
pub fn new_token() -> SessionToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SessionToken(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What the table keeps of a token: its SHA-256, hex. A plain hash is enough for 256 random
/// bits; nobody can guess a token from it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Opens a session for `identifier` at `level`, lasting `ttl`; returns its token (which is
/// stored nowhere). Expired sessions of anyone, a few at a time, are deleted on the way.
pub async fn open(
    conn: &mut PgConnection,
    identifier: &str,
    level: AssuranceLevel,
    method: Method,
    ttl: Duration,
) -> Result<SessionToken, sqlx::Error> {
    let token = new_token();
    sqlx::query(
        "INSERT INTO portal_sessions (token_hash, identifier, assurance_level, method, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(token.as_str()))
    .bind(identifier)
    .bind(level_str(level))
    .bind(method.as_str())
    .bind(Utc::now() + ttl)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM portal_sessions WHERE token_hash IN (
             SELECT token_hash FROM portal_sessions WHERE expires_at < now() LIMIT 100)",
    )
    .execute(&mut *conn)
    .await?;
    Ok(token)
}

/// Ends one session (a logout); returns the level it had, `None` when it was not open.
pub async fn end(
    conn: &mut PgConnection,
    token: &SessionToken,
) -> Result<Option<AssuranceLevel>, sqlx::Error> {
    let level: Option<String> = sqlx::query_scalar(
        "DELETE FROM portal_sessions WHERE token_hash = $1 AND expires_at > now()
         RETURNING assurance_level",
    )
    .bind(token_hash(token.as_str().trim()))
    .fetch_optional(&mut *conn)
    .await?;
    // An expired row goes too, answered as not open.
    sqlx::query("DELETE FROM portal_sessions WHERE token_hash = $1")
        .bind(token_hash(token.as_str().trim()))
        .execute(&mut *conn)
        .await?;
    Ok(level.as_deref().and_then(parse_level))
}

/// Ends every session of `identifier` (a password change or recovery, a block); returns how
/// many were open.
pub async fn end_all(conn: &mut PgConnection, identifier: &str) -> Result<u64, sqlx::Error> {
    let ended = sqlx::query("DELETE FROM portal_sessions WHERE identifier = $1")
        .bind(identifier)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if ended > 0 {
        tracing::info!(ended, "sessions ended");
    }
    Ok(ended)
}

/// The applicant of an open session, `None` when the token is unknown, expired or ended.
pub async fn find(
    conn: &mut PgConnection,
    token: &SessionToken,
) -> Result<Option<Applicant>, sqlx::Error> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT identifier, assurance_level FROM portal_sessions
         WHERE token_hash = $1 AND expires_at > now()",
    )
    .bind(token_hash(token.as_str().trim()))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.and_then(|(identifier, level)| {
        parse_level(&level).map(|assurance_level| Applicant {
            identifier,
            assurance_level,
        })
    }))
}

/// `procedure.start.v1` (the hub's own, from the gate): an application, with the applicant and
/// level of the session it came with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartApplication {
    /// The portal's id of the application.
    pub application_id: Uuid,
    /// The procedure's code in the catalogue.
    pub procedure_code: String,
    /// Who applies, from the session.
    pub applicant: Applicant,
    /// The form.
    pub form: serde_json::Map<String, serde_json::Value>,
    /// References to attachments kept by the portal.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// How the person wants the decision.
    #[serde(default)]
    pub delivery: Delivery,
}

impl Message for StartApplication {
    const TYPE: MessageType = MessageType::new("procedure.start", 1);
}

/// `procedure.withdraw_as.v1` (the hub's own): a withdrawal by the session's identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawApplicationAs {
    /// The application.
    pub application_id: Uuid,
    /// Who withdraws, from the session.
    pub applicant: String,
}

impl Message for WithdrawApplicationAs {
    const TYPE: MessageType = MessageType::new("procedure.withdraw_as", 1);
}

/// `procedure.attach_receipt_as.v1` (the hub's own): a receipt attached by the session's
/// identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachReceiptAs {
    /// The application.
    pub application_id: Uuid,
    /// Who attaches it, from the session.
    pub applicant: String,
    /// The ERIP operation number on the receipt.
    pub operation_id: String,
    /// The amount on the receipt, kopecks.
    pub amount_kopecks: u64,
    /// A payment made outside ERIP: the bank's receipt, for the authority to confirm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_erip: Option<BankPayment>,
}

impl Message for AttachReceiptAs {
    const TYPE: MessageType = MessageType::new("procedure.attach_receipt_as", 1);
}

/// `procedure.provide_info_as.v1` (the hub's own): an answer to the authority's information
/// request, by the session's identifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvideInfoAs {
    /// The application.
    pub application_id: Uuid,
    /// Who answers, from the session.
    pub applicant: String,
    /// The answer's form fields.
    #[serde(default)]
    pub form: serde_json::Map<String, serde_json::Value>,
    /// References to attachments kept by the portal.
    #[serde(default)]
    pub attachments: Vec<String>,
}

impl Message for ProvideInfoAs {
    const TYPE: MessageType = MessageType::new("procedure.provide_info_as", 1);
}

/// `complaint.start.v1` (the hub's own): a complaint by the session's identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartComplaint {
    /// The portal's id of the complaint.
    pub complaint_id: Uuid,
    /// The application appealed.
    pub application_id: Uuid,
    /// Who complains, from the session.
    pub applicant: String,
    /// The complaint.
    pub text: String,
    /// Against the decision or against inaction.
    #[serde(default)]
    pub kind: ComplaintKind,
}

impl Message for StartComplaint {
    const TYPE: MessageType = MessageType::new("complaint.start", 1);
}

/// `complaint.withdraw_as.v1` (the hub's own): a complaint withdrawn by the session's
/// identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawComplaintAs {
    /// The complaint.
    pub complaint_id: Uuid,
    /// Who withdraws it, from the session.
    pub applicant: String,
}

impl Message for WithdrawComplaintAs {
    const TYPE: MessageType = MessageType::new("complaint.withdraw_as", 1);
}

/// The hub's own message types the gate forwards: only the gate sends them, straight to a
/// saga's queue; nobody outside the hub may (the sagas refuse them from the bus).
pub const INTERNAL_TYPES: [MessageType; 6] = [
    StartApplication::TYPE,
    WithdrawApplicationAs::TYPE,
    AttachReceiptAs::TYPE,
    ProvideInfoAs::TYPE,
    StartComplaint::TYPE,
    WithdrawComplaintAs::TYPE,
];

/// Refuses one of [`INTERNAL_TYPES`] that came through the bus exchange `bus`: on the bus, it
/// was not the gate's.
pub fn check_internal(message: &Incoming, bus: &str) -> Result<(), Failure> {
    if message.exchange == bus {
        return Err(Failure::invalid_input(format!(
            "{} is the hub's own message (sent by its session gate to the saga's queue); \
             it is not taken from the bus",
            message.metadata.message_type
        )));
    }
    Ok(())
}

/// A portal request the gate takes.
#[derive(Debug)]
pub enum GateRequest {
    /// An application.
    Submit(SubmitApplication),
    /// Its withdrawal.
    Withdraw(WithdrawApplication),
    /// A payment receipt.
    Receipt(AttachReceipt),
    /// An answer to the authority's information request.
    Info(ProvideInfo),
    /// A complaint.
    Complain(SubmitComplaint),
    /// Its withdrawal.
    WithdrawComplaint(WithdrawComplaint),
    /// The procedures the person may order.
    List(ListProcedures),
}

impl GateRequest {
    fn token(&self) -> &SessionToken {
        match self {
            GateRequest::Submit(m) => &m.session_token,
            GateRequest::Withdraw(m) => &m.session_token,
            GateRequest::Receipt(m) => &m.session_token,
            GateRequest::Info(m) => &m.session_token,
            GateRequest::Complain(m) => &m.session_token,
            GateRequest::WithdrawComplaint(m) => &m.session_token,
            GateRequest::List(m) => &m.session_token,
        }
    }

    /// The refusal of a request without a valid session, in its flow's own event.
    fn refusal(&self) -> Result<Command, Failure> {
        const WHY: &str = "the session is unknown, expired or ended: log in again";
        let application = |application_id| ApplicationRejected {
            application_id,
            reason: ProcedureRejectReason::SessionInvalid,
            fields: vec![FieldError {
                field: "session_token".into(),
                problem: WHY.into(),
            }],
        };
        let complaint = |complaint_id| ComplaintRejected {
            complaint_id,
            reason: ComplaintRejectReason::SessionInvalid,
            detail: WHY.into(),
        };
        match self {
            GateRequest::Submit(m) => Command::new(&application(m.application_id)),
            GateRequest::Withdraw(m) => Command::new(&application(m.application_id)),
            GateRequest::Receipt(m) => Command::new(&application(m.application_id)),
            GateRequest::Info(m) => Command::new(&application(m.application_id)),
            GateRequest::Complain(m) => Command::new(&complaint(m.complaint_id)),
            GateRequest::WithdrawComplaint(m) => Command::new(&complaint(m.complaint_id)),
            GateRequest::List(m) => Command::new(&ProceduresListed {
                request_id: m.request_id,
                outcome: ListOutcome::SessionInvalid,
            }),
        }
    }
}

/// The session gate: looks up the session of each portal request and forwards the hub's own
/// message to the saga, or refuses the request.
#[derive(Debug, Clone)]
pub struct SessionGate {
    procedure_queue: String,
    complaint_queue: String,
    catalogue: std::sync::Arc<Catalogue>,
}

impl SessionGate {
    /// The gate forwarding to the procedure saga's and the complaint saga's queues (full names),
    /// and listing `catalogue`'s procedures.
    pub fn new(
        procedure_queue: String,
        complaint_queue: String,
        catalogue: std::sync::Arc<Catalogue>,
    ) -> Self {
        Self {
            procedure_queue,
            complaint_queue,
            catalogue,
        }
    }

    /// The procedures a person logged in at `level` may order, in the catalogue's order.
    pub fn orderable(&self, level: AssuranceLevel) -> Vec<OrderableProcedure> {
        self.catalogue
            .procedures()
            .filter(|p| p.assurance <= level)
            .map(|p| OrderableProcedure {
                code: p.code.clone(),
                name_ru: p.name_ru.clone(),
                name_en: p.name_en.clone(),
                authority_id: p.authority.clone(),
                authority_name: self
                    .catalogue
                    .authority(&p.authority)
                    .map(|a| a.name.clone())
                    .unwrap_or_default(),
                assurance: p.assurance,
                fee_kopecks: p.fee_kopecks,
                term_working_days: p.term_working_days,
                fields: p.fields.clone(),
            })
            .collect()
    }

    fn forward(&self, request: GateRequest, applicant: Applicant) -> Result<Command, Failure> {
        let (procedure, complaint) = (&self.procedure_queue, &self.complaint_queue);
        Ok(match request {
            GateRequest::Submit(m) => Command::new(&StartApplication {
                application_id: m.application_id,
                procedure_code: m.procedure_code,
                applicant,
                form: m.form,
                attachments: m.attachments,
                delivery: m.delivery,
            })?
            .reply_to(procedure),
            GateRequest::Withdraw(m) => Command::new(&WithdrawApplicationAs {
                application_id: m.application_id,
                applicant: applicant.identifier,
            })?
            .reply_to(procedure),
            GateRequest::Receipt(m) => Command::new(&AttachReceiptAs {
                application_id: m.application_id,
                applicant: applicant.identifier,
                operation_id: m.operation_id,
                amount_kopecks: m.amount_kopecks,
                outside_erip: m.outside_erip,
            })?
            .reply_to(procedure),
            GateRequest::Info(m) => Command::new(&ProvideInfoAs {
                application_id: m.application_id,
                applicant: applicant.identifier,
                form: m.form,
                attachments: m.attachments,
            })?
            .reply_to(procedure),
            GateRequest::Complain(m) => Command::new(&StartComplaint {
                complaint_id: m.complaint_id,
                application_id: m.application_id,
                applicant: applicant.identifier,
                text: m.text,
                kind: m.kind,
            })?
            .reply_to(complaint),
            GateRequest::WithdrawComplaint(m) => Command::new(&WithdrawComplaintAs {
                complaint_id: m.complaint_id,
                applicant: applicant.identifier,
            })?
            .reply_to(complaint),
            // Answered here: to the request's reply queue (the engine's reply) or the portal's.
            GateRequest::List(m) => Command::new(&ProceduresListed {
                request_id: m.request_id,
                outcome: ListOutcome::Listed {
                    level: applicant.assurance_level,
                    procedures: self.orderable(applicant.assurance_level),
                },
            })?,
        })
    }
}

impl Service for SessionGate {
    type Prepared = GateRequest;

    fn name(&self) -> &'static str {
        "session_gate"
    }

    fn prepare<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<GateRequest, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            let b = &message.body;
            Ok(if SubmitApplication::TYPE.matches(t) {
                GateRequest::Submit(decode(t, b)?)
            } else if WithdrawApplication::TYPE.matches(t) {
                GateRequest::Withdraw(decode(t, b)?)
            } else if AttachReceipt::TYPE.matches(t) {
                GateRequest::Receipt(decode(t, b)?)
            } else if ProvideInfo::TYPE.matches(t) {
                GateRequest::Info(decode(t, b)?)
            } else if SubmitComplaint::TYPE.matches(t) {
                GateRequest::Complain(decode(t, b)?)
            } else if WithdrawComplaint::TYPE.matches(t) {
                GateRequest::WithdrawComplaint(decode(t, b)?)
            } else if ListProcedures::TYPE.matches(t) {
                GateRequest::List(decode(t, b)?)
            } else {
                return Err(Failure::invalid_input(format!(
                    "the session gate does not take {t}"
                )));
            })
        })
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        message: &'a Incoming,
        request: GateRequest,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move {
            let applicant = find(conn, request.token())
                .await
                .map_err(|e| db_failure(&e))?;
            let Some(applicant) = applicant else {
                tracing::info!(
                    message_type = %message.metadata.message_type,
                    "request refused: its session is unknown, expired or ended"
                );
                // To the request's reply queue when it named one, else on the bus as the
                // flow's other events.
                return Ok(vec![request.refusal()?]);
            };
            Ok(vec![self.forward(request, applicant)?])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_url_safe_and_kept_only_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(
            a.as_str().len(),
            43,
            "256 bits in base64url without padding"
        );
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        let h = token_hash(a.as_str());
        assert_eq!(h.len(), 64);
        assert!(!h.contains(a.as_str()));
        assert_eq!(format!("{a:?}"), "SessionToken(..)");
    }

    #[test]
    fn levels_read_back_from_their_text() {
        for level in [
            AssuranceLevel::Basic,
            AssuranceLevel::Substantial,
            AssuranceLevel::High,
        ] {
            assert_eq!(parse_level(level_str(level)), Some(level));
            assert_eq!(
                serde_json::to_value(level).expect("json"),
                serde_json::Value::from(level_str(level))
            );
        }
    }
}
