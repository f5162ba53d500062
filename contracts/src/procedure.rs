//! Administrative procedures: the portal submits an application, the person pays through ERIP
//! when the procedure has a fee, the deciding authority registers and decides it, and the
//! person may withdraw it until the decision.
//!
//! ```text
//! portal -> procedure.submit.v1 -> hub -> procedure.accepted.v1 (number, order number, amount)
//! ERIP   -> (payment notification) -> hub -> procedure.payment_received.v1
//! hub    -> authority.application.v1 -> authority (its own queue, its own broker user)
//! authority -> authority.registered.v1 / authority.info_requested.v1 / authority.decided.v1
//! hub    -> procedure.registered.v1 / procedure.info_requested.v1 / procedure.decided.v1
//! portal -> procedure.withdraw.v1 -> hub -> authority.withdrawal.v1 -> authority
//! authority -> authority.withdrawal_answered.v1 -> hub -> procedure.withdrawn.v1 (or decided)
//! ```
//!
//! Every request of the person (submit, withdraw, attach a receipt, and the complaints' submit and
//! withdraw) carries the `session_token` a login answered (`contracts::cabinet`); the hub takes
//! the applicant and the assurance level from that session, never from the body.
//!
//! An application is named by the portal's `application_id` (a UUID it makes); that is the
//! saga's business key. Messages from an authority carry the saga id as `correlation_id`, as
//! the application they answer did, and the broker-validated `user_id` of the authority's own
//! broker user: the hub takes a decision only from the authority that owns the procedure.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cabinet::SessionToken;
use crate::{FieldError, Message, MessageType};

/// How strongly the person was identified at login (DOMAIN.md: e-mail `basic`, unique
/// identifier `substantial`, EDS `high`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AssuranceLevel {
    /// E-mail registration.
    Basic,
    /// The unique identifier.
    Substantial,
    /// An EDS certificate.
    High,
}

/// The applicant as the hub knows them from the session: the identifier and the assurance
/// level of the login that opened it. Never taken from a portal's message (the portal sends
/// the session token); the hub's session gate puts it in the internal messages it forwards.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Applicant {
    /// The account's identifier.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The assurance level of the current login.
    pub assurance_level: AssuranceLevel,
}

impl std::fmt::Debug for Applicant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applicant")
            .field("assurance_level", &self.assurance_level)
            .finish_non_exhaustive()
    }
}

/// `procedure.submit.v1`: an electronic application. The applicant and the assurance level are
/// the session's (an `applicant` field, as earlier versions of this body had, is ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubmitApplication {
    /// The portal's id of the application (its business key).
    pub application_id: Uuid,
    /// The procedure's code in the catalogue (`1.1.5`).
    pub procedure_code: String,
    /// The session of the person who applies (from their login).
    pub session_token: SessionToken,
    /// The form, field name -> value.
    pub form: serde_json::Map<String, serde_json::Value>,
    /// References to attachments kept by the portal.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// How the person wants the decision: in the cabinet only (the default, as before this
    /// field), or also on paper at the authority.
    #[serde(default)]
    pub delivery: Delivery,
}

/// How the person wants the decision delivered (seed 000: the decision, its copy or extract,
/// can also be collected at the authority).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// In the personal cabinet only.
    #[default]
    Cabinet,
    /// In the cabinet, and the person also collects it at the authority.
    CabinetAndCollect,
}

impl Message for SubmitApplication {
    const TYPE: MessageType = MessageType::new("procedure.submit", 1);
}

/// `procedure.withdraw.v1`: the person withdraws the application (only its applicant may).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WithdrawApplication {
    /// The application.
    pub application_id: Uuid,
    /// The session of the person who withdraws.
    pub session_token: SessionToken,
}

impl Message for WithdrawApplication {
    const TYPE: MessageType = MessageType::new("procedure.withdraw", 1);
}

/// `procedure.attach_receipt.v1`: the person attaches the electronic receipt of the payment
/// (only the application's applicant may). An ERIP receipt names ERIP's operation number and is
/// checked against ERIP's own record; a receipt of a payment outside ERIP (a bank transfer with
/// the order number) carries `outside_erip` and goes to the authority, which confirms or
/// refuses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AttachReceipt {
    /// The application.
    pub application_id: Uuid,
    /// The session of the person who attaches it.
    pub session_token: SessionToken,
    /// The ERIP operation number on the receipt (empty for a payment outside ERIP).
    #[serde(default)]
    pub operation_id: String,
    /// The amount on the receipt, kopecks.
    pub amount_kopecks: u64,
    /// A payment made outside ERIP: the bank's receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_erip: Option<BankPayment>,
}

/// A payment made outside ERIP, as the bank's receipt shows it (seed 001: the person pays by
/// the order number "in any convenient way" and attaches the receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BankPayment {
    /// The 30-digit order number the payment names.
    #[schemars(pattern(r"^[0-9]{30}$"))]
    pub order_number: String,
    /// The bank that took the payment.
    pub bank: String,
    /// The day of the payment.
    pub paid_on: NaiveDate,
    /// The payment document's number (unique at its bank).
    pub document_number: String,
}

impl Message for AttachReceipt {
    const TYPE: MessageType = MessageType::new("procedure.attach_receipt", 1);
}

/// `procedure.receipt_checked.v1`: the attached receipt against ERIP's own record of the
/// payment (checked when both are there, whichever came first), or the authority's answer on a
/// receipt of a payment outside ERIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReceiptChecked {
    /// The application.
    pub application_id: Uuid,
    /// The receipt matches ERIP's record (or the authority confirmed it).
    pub matches: bool,
    /// What differs, when it does not.
    pub problem: Option<String>,
    /// Who checked it: ERIP's record, or the authority.
    #[serde(default)]
    pub checked_by: ReceiptCheckedBy,
}

/// Who checked a receipt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptCheckedBy {
    /// Against ERIP's record of the payment.
    #[default]
    Erip,
    /// The authority, for a payment outside ERIP.
    Authority,
}

impl Message for ReceiptChecked {
    const TYPE: MessageType = MessageType::new("procedure.receipt_checked", 1);
}

/// `procedure.accepted.v1`: the application is accepted for processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationAccepted {
    /// The application.
    pub application_id: Uuid,
    /// The hub's application number, shown to the person.
    pub number: String,
    /// The 30-digit ERIP order number to pay by, for a paid procedure.
    #[schemars(pattern(r"^[0-9]{30}$"))]
    pub order_number: Option<String>,
    /// The fee in kopecks (BYN), 0 for a free procedure.
    pub amount_kopecks: u64,
    /// Pay before then, or the application ends.
    pub pay_before: Option<DateTime<Utc>>,
}

impl Message for ApplicationAccepted {
    const TYPE: MessageType = MessageType::new("procedure.accepted", 1);
}

/// `procedure.payment_received.v1`: a payment toward the fee (ERIP's, or a receipt the
/// authority confirmed). The application moves on only when `missing_kopecks` is 0; until then
/// the invoice stays open and the person is told what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentReceived {
    /// The application.
    pub application_id: Uuid,
    /// ERIP's operation number (`bank:<document number>` for a confirmed bank receipt).
    pub operation_id: String,
    /// Amount of this payment, kopecks.
    pub amount_kopecks: u64,
    /// Paid toward the fee so far, this payment included, kopecks (at most the fee).
    #[serde(default)]
    pub paid_kopecks: u64,
    /// Still to pay, kopecks: 0 when the fee is paid in full.
    #[serde(default)]
    pub missing_kopecks: u64,
}

impl Message for PaymentReceived {
    const TYPE: MessageType = MessageType::new("procedure.payment_received", 1);
}

/// Why money paid for an application is due back to the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DueBackReason {
    /// More than the fee: the difference.
    Overpaid,
    /// A payment after the fee was paid in full (paid twice).
    AlreadyPaid,
    /// The invoice expired before the fee was paid in full: what was paid, or a payment that
    /// arrived after.
    Expired,
    /// The application was withdrawn: the fee paid, or a payment that arrived after.
    Withdrawn,
    /// An operator ended the application: the fee paid, or a payment that arrived after.
    Cancelled,
}

/// `procedure.payment_due_back.v1`: money the hub received for an application is recorded as
/// due back to the person (an overpayment, a second payment, a payment after the application
/// ended, the fee of a withdrawn application).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentDueBack {
    /// The application.
    pub application_id: Uuid,
    /// The payments concerned (ERIP operation numbers, `bank:<document number>`).
    pub operation_ids: Vec<String>,
    /// Due back by this record, kopecks.
    pub amount_kopecks: u64,
    /// Why.
    pub reason: DueBackReason,
    /// Everything still due back for the application, kopecks.
    pub due_back_kopecks: u64,
}

impl Message for PaymentDueBack {
    const TYPE: MessageType = MessageType::new("procedure.payment_due_back", 1);
}

/// How a payment went back to the payer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnKind {
    /// ERIP refunded it.
    Refund,
    /// The bank reversed it (ERIP's reversal notice).
    Reversal,
}

/// `procedure.payment_returned.v1`: ERIP refunded or reversed a payment. It settles what was due
/// back first; whatever it takes from the fee makes the fee unpaid again by that much
/// (`missing_kopecks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentReturned {
    /// The application.
    pub application_id: Uuid,
    /// ERIP's operation number of the payment.
    pub operation_id: String,
    /// Returned, kopecks.
    pub amount_kopecks: u64,
    /// Refund or reversal.
    pub kind: ReturnKind,
    /// Of the fee, still (or again) to pay, kopecks.
    pub missing_kopecks: u64,
    /// Still due back to the person after this, kopecks.
    pub due_back_kopecks: u64,
}

impl Message for PaymentReturned {
    const TYPE: MessageType = MessageType::new("procedure.payment_returned", 1);
}

/// `procedure.registered.v1`: the authority registered the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationRegistered {
    /// The application.
    pub application_id: Uuid,
    /// The authority's registration number.
    pub registration_number: String,
    /// The statutory term ends on this day (working days on the Belarus calendar).
    pub decision_due: NaiveDate,
}

impl Message for ApplicationRegistered {
    const TYPE: MessageType = MessageType::new("procedure.registered", 1);
}

/// `procedure.info_requested.v1`: the authority asks for more information; the person answers
/// with `procedure.provide_info.v1` by `answer_by`. The term is suspended meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InfoRequested {
    /// The application.
    pub application_id: Uuid,
    /// What the authority asks.
    pub request: String,
    /// The last day (Minsk) the person may answer; past it the authority may refuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_by: Option<NaiveDate>,
}

impl Message for InfoRequested {
    const TYPE: MessageType = MessageType::new("procedure.info_requested", 1);
}

/// `procedure.provide_info.v1`: the person answers the authority's request for more
/// information (only the applicant may, only while a request waits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProvideInfo {
    /// The application.
    pub application_id: Uuid,
    /// The session of the person who answers.
    pub session_token: SessionToken,
    /// The answer's form fields, name -> value.
    #[serde(default)]
    pub form: serde_json::Map<String, serde_json::Value>,
    /// References to attachments kept by the portal.
    #[serde(default)]
    pub attachments: Vec<String>,
}

impl Message for ProvideInfo {
    const TYPE: MessageType = MessageType::new("procedure.provide_info", 1);
}

/// `procedure.info_provided.v1`: the answer went to the authority; the term runs again, moved
/// by the working days it waited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InfoProvided {
    /// The application.
    pub application_id: Uuid,
    /// Working days the term was suspended (after the request's day, up to the answer's).
    pub suspended_working_days: u32,
    /// The term's last day, moved.
    pub decision_due: NaiveDate,
}

impl Message for InfoProvided {
    const TYPE: MessageType = MessageType::new("procedure.info_provided", 1);
}

/// The authority's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Granted.
    Granted,
    /// Refused.
    Refused,
}

/// `procedure.decided.v1`: the decision, into the cabinet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationDecided {
    /// The application.
    pub application_id: Uuid,
    /// Granted or refused.
    pub verdict: Verdict,
    /// The decision document (or the notice of it), as the authority sent it.
    pub document: String,
    /// When the authority decided.
    pub decided_at: DateTime<Utc>,
    /// The signed decision, verified by the hub (`authority.decided.v2`); absent only for a
    /// decision taken unsigned in development (`HUB_UNSIGNED_DECISIONS=accept`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedDecision>,
}

impl Message for ApplicationDecided {
    const TYPE: MessageType = MessageType::new("procedure.decided", 1);
}

/// `procedure.withdrawn.v1`: the application is withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationWithdrawn {
    /// The application.
    pub application_id: Uuid,
    /// The fee paid that is due back to the person, kopecks (0 when nothing was paid).
    pub refund_due_kopecks: u64,
    /// Set when the hub ended the application rather than the person: `cancelled_by_operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<WithdrawalReason>,
    /// The operator's words, with `reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Message for ApplicationWithdrawn {
    const TYPE: MessageType = MessageType::new("procedure.withdrawn", 1);
}

/// Why the hub, not the person, withdrew an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalReason {
    /// An operator ended it (`hub saga cancel`); `detail` has the operator's words.
    CancelledByOperator,
}

/// Why an application ended without a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcedureRejectReason {
    /// No such procedure in the catalogue.
    UnknownProcedure,
    /// The form breaks the procedure's rules; `fields` says which.
    InvalidInput,
    /// The login's assurance level is below the procedure's.
    AssuranceTooLow,
    /// The invoice was not paid in time.
    PaymentExpired,
    /// The withdrawal came after the decision.
    AlreadyDecided,
    /// The request's session is unknown, expired or ended (logged out, password changed,
    /// identifier blocked): log in again. Nothing about the application changed.
    SessionInvalid,
    /// A withdrawal, a receipt or an answer from someone other than the applicant: refused,
    /// nothing changed.
    NotTheApplicant,
    /// An answer to an information request when none waits: refused, nothing changed.
    NoInfoRequested,
    /// An answer after the period the authority named: refused (the authority may refuse the
    /// application), nothing changed.
    InfoPeriodPassed,
}

/// `procedure.rejected.v1`: the application (or a request about it) is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationRejected {
    /// The application.
    pub application_id: Uuid,
    /// The rule.
    pub reason: ProcedureRejectReason,
    /// The fields concerned.
    pub fields: Vec<FieldError>,
}

impl Message for ApplicationRejected {
    const TYPE: MessageType = MessageType::new("procedure.rejected", 1);
}

/// `procedure.overdue.v1`: the statutory term passed without a decision (to the portal, for
/// the person and operators; the person is also told by SMS and may complain of the inaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationOverdue {
    /// The application.
    pub application_id: Uuid,
    /// The procedure.
    pub procedure_code: String,
    /// The authority.
    pub authority: String,
    /// The last day of the term.
    pub decision_due: NaiveDate,
}

impl Message for ApplicationOverdue {
    const TYPE: MessageType = MessageType::new("procedure.overdue", 1);
}

/// `authority.application.v1`: a new application, to the authority's own queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityApplication {
    /// The application.
    pub application_id: Uuid,
    /// The hub's application number.
    pub number: String,
    /// The procedure.
    pub procedure_code: String,
    /// The applicant's identifier.
    pub applicant: String,
    /// The form.
    pub form: serde_json::Map<String, serde_json::Value>,
    /// Attachments.
    pub attachments: Vec<String>,
    /// The fee paid, kopecks.
    pub paid_kopecks: u64,
    /// The last day of the statutory term.
    pub decision_due: NaiveDate,
    /// How the person wants the decision: `cabinet_and_collect` means also on paper here.
    #[serde(default)]
    pub delivery: Delivery,
}

impl Message for AuthorityApplication {
    const TYPE: MessageType = MessageType::new("authority.application", 1);
}

/// `authority.withdrawal.v1`: the person withdraws; the authority answers whether it can still
/// stop (it has not decided) or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityWithdrawal {
    /// The application.
    pub application_id: Uuid,
}

impl Message for AuthorityWithdrawal {
    const TYPE: MessageType = MessageType::new("authority.withdrawal", 1);
}

/// `authority.payment_receipt.v1`: the receipt of a payment outside ERIP, to the authority,
/// which confirms it (the money reached its account) or refuses it; the application waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityPaymentReceipt {
    /// The application.
    pub application_id: Uuid,
    /// The hub's application number.
    pub number: String,
    /// The procedure.
    pub procedure_code: String,
    /// The fee, kopecks.
    pub fee_kopecks: u64,
    /// The amount on the receipt, kopecks.
    pub amount_kopecks: u64,
    /// The payment as the receipt shows it.
    pub payment: BankPayment,
}

impl Message for AuthorityPaymentReceipt {
    const TYPE: MessageType = MessageType::new("authority.payment_receipt", 1);
}

/// `authority.receipt_answered.v1`: from the authority, on a receipt it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityReceiptAnswered {
    /// The application.
    pub application_id: Uuid,
    /// The receipt's document number.
    pub document_number: String,
    /// True: the money arrived. False: refused (`reason` says why).
    pub confirmed: bool,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Message for AuthorityReceiptAnswered {
    const TYPE: MessageType = MessageType::new("authority.receipt_answered", 1);
}

/// `authority.registered.v1`: from the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityRegistered {
    /// The application.
    pub application_id: Uuid,
    /// The authority's registration number.
    pub registration_number: String,
}

impl Message for AuthorityRegistered {
    const TYPE: MessageType = MessageType::new("authority.registered", 1);
}

/// `authority.info_requested.v1`: from the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityInfoRequested {
    /// The application.
    pub application_id: Uuid,
    /// What it asks.
    pub request: String,
    /// The period the person has to answer, working days after the request's day (the hub's
    /// default, 10, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_within_working_days: Option<u32>,
}

impl Message for AuthorityInfoRequested {
    const TYPE: MessageType = MessageType::new("authority.info_requested", 1);
}

/// `authority.info_provided.v1`: the person's answer to the authority's request, to its own
/// queue, with the term's last day moved by the working days it waited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityInfoProvided {
    /// The application.
    pub application_id: Uuid,
    /// The answer's form fields.
    pub form: serde_json::Map<String, serde_json::Value>,
    /// References to attachments kept by the portal.
    pub attachments: Vec<String>,
    /// Working days the term was suspended.
    pub suspended_working_days: u32,
    /// The term's last day, moved.
    pub decision_due: NaiveDate,
}

impl Message for AuthorityInfoProvided {
    const TYPE: MessageType = MessageType::new("authority.info_provided", 1);
}

/// `authority.decided.v1`: from the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityDecided {
    /// The application.
    pub application_id: Uuid,
    /// Granted or refused.
    pub verdict: Verdict,
    /// The decision document or notice.
    pub document: String,
    /// When.
    pub decided_at: DateTime<Utc>,
}

impl Message for AuthorityDecided {
    const TYPE: MessageType = MessageType::new("authority.decided", 1);
}

/// The decision document an authority signs: what the person receives, and what the hub
/// verifies before it does. The signed bytes are [`DecisionDocument::signed_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DecisionDocument {
    /// The application decided.
    pub application_id: Uuid,
    /// The deciding authority's id in the hub's catalogue (`mns`, `minsk_gik`).
    pub authority_id: String,
    /// The decision's number in the authority's register.
    pub number: String,
    /// The day of the decision.
    pub date: NaiveDate,
    /// Granted or refused.
    pub verdict: Verdict,
    /// The decision's text (or the notice of it).
    pub text: String,
}

/// The first line of the signed bytes of a decision: names the layout, so that bytes signed
/// for anything else never read as a decision.
pub const DECISION_SIGNED_CONTEXT: &str = "by.portal.decision.v1";

impl DecisionDocument {
    /// The canonical bytes the authority signs (bign with belt-hash, STB 34.101.45): UTF-8
    /// lines joined by `\n`, in this order, with no trailing newline after the text:
    ///
    /// ```text
    /// by.portal.decision.v1
    /// <application_id, lowercase hyphenated UUID>
    /// <authority_id>
    /// <number>
    /// <date, YYYY-MM-DD>
    /// <verdict: granted | refused>
    /// <text, as is, may span lines>
    /// ```
    ///
    /// Every field but the text is a single line ([`DecisionDocument::problem`] refuses a line
    /// break in them), so the layout is unambiguous: the text is the rest.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let verdict = match self.verdict {
            Verdict::Granted => "granted",
            Verdict::Refused => "refused",
        };
        format!(
            "{DECISION_SIGNED_CONTEXT}\n{}\n{}\n{}\n{}\n{verdict}\n{}",
            self.application_id.hyphenated(),
            self.authority_id,
            self.number,
            self.date.format("%Y-%m-%d"),
            self.text
        )
        .into_bytes()
    }

    /// What breaks the canonical layout, if anything: a line break (or an empty value) in a
    /// single-line field.
    pub fn problem(&self) -> Option<&'static str> {
        let single_line = |v: &str| !v.is_empty() && !v.contains(['\n', '\r']);
        if !single_line(&self.authority_id) {
            Some("authority_id must be one non-empty line")
        } else if !single_line(&self.number) {
            Some("number must be one non-empty line")
        } else {
            None
        }
    }
}

/// The authority's signature of a [`DecisionDocument`], with the certificate to check it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DecisionSignature {
    /// The bign signature (48 bytes) of [`DecisionDocument::signed_bytes`], base64 (standard,
    /// padded).
    pub signature: String,
    /// The signer's certificate, DER in base64.
    pub certificate: String,
    /// The intermediate CA certificates, DER in base64 (any order; may be empty when the
    /// hub's trusted roots issued the signer's certificate).
    #[serde(default)]
    pub chain: Vec<String>,
}

/// `authority.decided.v2`: the authority's signed decision. The hub verifies the signature, the
/// certificate's path to its trusted roots, its revocation status and that it is the deciding
/// authority's before the decision reaches the person; otherwise it answers
/// `authority.decision_refused.v1` and the application keeps waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityDecidedSigned {
    /// The application (the same as the document's).
    pub application_id: Uuid,
    /// The decision.
    pub document: DecisionDocument,
    /// The signature; absent for an unsigned decision, which is refused (`unsigned`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<DecisionSignature>,
    /// When the authority decided.
    pub decided_at: DateTime<Utc>,
}

impl Message for AuthorityDecidedSigned {
    const TYPE: MessageType = MessageType::new("authority.decided", 2);
}

/// Why the hub refused an authority's decision (`authority.decision_refused.v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionRefusalReason {
    /// No signature (or `authority.decided.v1`, which has none).
    Unsigned,
    /// The document breaks the canonical layout, or names another application.
    MalformedDocument,
    /// The signature, the certificate or the chain cannot be read.
    MalformedSignature,
    /// The signature does not verify under the certificate's key.
    BadSignature,
    /// No path from the certificate to the hub's trusted roots (or a CA's signature in it
    /// does not verify).
    UntrustedChain,
    /// A certificate of the path expired, or is not valid yet.
    CertificateExpired,
    /// A certificate of the path is revoked.
    Revoked,
    /// The certificate's key may not sign (no digitalSignature), or an algorithm other than
    /// bign-with-hbelt.
    WrongKeyUsage,
    /// The certificate is not the deciding authority's (its subject's organizationName is not
    /// the authority's id), or the document names another authority.
    WrongAuthority,
}

impl DecisionRefusalReason {
    /// The code as it travels (`bad_signature`).
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionRefusalReason::Unsigned => "unsigned",
            DecisionRefusalReason::MalformedDocument => "malformed_document",
            DecisionRefusalReason::MalformedSignature => "malformed_signature",
            DecisionRefusalReason::BadSignature => "bad_signature",
            DecisionRefusalReason::UntrustedChain => "untrusted_chain",
            DecisionRefusalReason::CertificateExpired => "certificate_expired",
            DecisionRefusalReason::Revoked => "revoked",
            DecisionRefusalReason::WrongKeyUsage => "wrong_key_usage",
            DecisionRefusalReason::WrongAuthority => "wrong_authority",
        }
    }
}

/// `authority.decision_refused.v1`: to the authority; its decision did not reach the person,
/// the application still waits for a properly signed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityDecisionRefused {
    /// The application.
    pub application_id: Uuid,
    /// The refused decision's number (empty for a `authority.decided.v1`, which has none).
    pub number: String,
    /// Why.
    pub reason: DecisionRefusalReason,
    /// What failed, in words (no personal data).
    pub detail: String,
}

impl Message for AuthorityDecisionRefused {
    const TYPE: MessageType = MessageType::new("authority.decision_refused", 1);
}

/// Who signed a decision, as the hub verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DecisionSigner {
    /// The official's name: the certificate's surname, given name and patronymic.
    pub name: String,
    /// The organisation (the certificate subject's organizationName, the authority's id).
    pub organization: String,
    /// The certificate's serial number, lowercase hex.
    pub certificate_serial: String,
    /// The issuing CA (RFC 4514).
    pub issuer: String,
}

/// A verified signed decision, as the cabinet shows and keeps it: the document, the signature
/// and certificate (so anyone can check it again) and the signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignedDecision {
    /// The document signed.
    pub document: DecisionDocument,
    /// The signature, the certificate and its chain, as the authority sent them.
    pub signature: DecisionSignature,
    /// Who signed, verified.
    pub signer: DecisionSigner,
}

/// `authority.withdrawal_answered.v1`: from the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityWithdrawalAnswered {
    /// The application.
    pub application_id: Uuid,
    /// True: processing stopped. False: already decided (the decision follows or came).
    pub accepted: bool,
}

impl Message for AuthorityWithdrawalAnswered {
    const TYPE: MessageType = MessageType::new("authority.withdrawal_answered", 1);
}

/// `erip.create_invoice.v1`: to the ERIP worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreateInvoice {
    /// The 30-digit order (account) number.
    #[schemars(pattern(r"^[0-9]{30}$"))]
    pub order_number: String,
    /// Kopecks.
    pub amount_kopecks: u64,
    /// Shown to the payer.
    pub description: String,
    /// The invoice expires then.
    pub expires_at: DateTime<Utc>,
}

impl Message for CreateInvoice {
    const TYPE: MessageType = MessageType::new("erip.create_invoice", 1);
}

/// `erip.invoice_created.v1`: the ERIP worker's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceCreated {
    /// ERIP's invoice id.
    pub invoice_id: String,
}

impl Message for InvoiceCreated {
    const TYPE: MessageType = MessageType::new("erip.invoice_created", 1);
}

/// `erip.cancel_invoice.v1`: to the ERIP worker (a withdrawal before payment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CancelInvoice {
    /// The order number of the invoice.
    #[schemars(pattern(r"^[0-9]{30}$"))]
    pub order_number: String,
}

impl Message for CancelInvoice {
    const TYPE: MessageType = MessageType::new("erip.cancel_invoice", 1);
}

/// What ERIP says happened to an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceEvent {
    /// A payment: one operation, which may be part of the amount due, all of it, or more (a
    /// second payment, or one after the invoice closed).
    Paid,
    /// Expired unpaid.
    Expired,
    /// Cancelled.
    Cancelled,
    /// Refunded (one payment, named by its operation number).
    Refunded,
    /// A payment reversed by the bank (ERIP's reversal notice), named by its operation number.
    Reversed,
}

/// `erip.invoice_event.v1`: an ERIP notification, verified and turned into a message for the
/// saga that owns the order number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceNotified {
    /// The order number.
    #[schemars(pattern(r"^[0-9]{30}$"))]
    pub order_number: String,
    /// What happened.
    pub event: InvoiceEvent,
    /// Amount, kopecks.
    pub amount_kopecks: u64,
    /// ERIP's operation number of a payment.
    pub operation_id: Option<String>,
}

impl Message for InvoiceNotified {
    const TYPE: MessageType = MessageType::new("erip.invoice_event", 1);
}

/// A 30-digit order number: 29 digits and a Luhn check digit, so a mistyped number is caught
/// before it reaches ERIP.
pub fn order_number_check_digit(first29: &str) -> Option<u8> {
    if first29.len() != 29 || !first29.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first29
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    u8::try_from((10 - sum % 10) % 10).ok()
}

/// Whether `s` is a well-formed order number (30 digits, check digit right).
pub fn is_order_number(s: &str) -> bool {
    s.len() == 30
        && s.bytes().all(|b| b.is_ascii_digit())
        && order_number_check_digit(&s[..29]).map(|d| b'0' + d) == s.as_bytes().last().copied()
}

// Administrative complaints (DOMAIN.md: an applicant "may appeal a decision"). A complaint is
// named by the portal's `complaint_id`; it goes to the authority that decided the application,
// which answers on the bus as its own broker user, as it does for applications:
//
// portal -> complaint.submit.v1 -> hub -> complaint.accepted.v1 | complaint.rejected.v1
// hub    -> authority.complaint.v1 -> authority -> authority.complaint_decided.v1
// hub    -> complaint.decided.v1
// portal -> complaint.withdraw.v1 -> hub -> authority.complaint_withdrawal.v1 -> authority
// authority -> authority.complaint_withdrawal_answered.v1 -> hub -> complaint.withdrawn.v1

/// `complaint.submit.v1`: the applicant appeals the decision on an application. Who complains
/// is the session's identifier (an `applicant_identifier` field, as earlier versions of this
/// body had, is ignored); it must be the application's applicant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubmitComplaint {
    /// The portal's id of the complaint (its business key).
    pub complaint_id: Uuid,
    /// The application whose decision is appealed.
    pub application_id: Uuid,
    /// The session of the person who complains.
    pub session_token: SessionToken,
    /// The complaint.
    pub text: String,
    /// Against the decision (the default, as before this field) or against inaction (the term
    /// passed without a decision).
    #[serde(default)]
    pub kind: ComplaintKind,
}

/// What a complaint is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintKind {
    /// The decision on the application: heard by the authority that decided.
    #[default]
    Decision,
    /// The authority's inaction, its term passed without a decision: heard by its superior body.
    Inaction,
}

impl Message for SubmitComplaint {
    const TYPE: MessageType = MessageType::new("complaint.submit", 1);
}

/// `complaint.withdraw.v1`: the applicant withdraws the complaint (only the complainant may).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WithdrawComplaint {
    /// The complaint.
    pub complaint_id: Uuid,
    /// The session of the person who withdraws it.
    pub session_token: SessionToken,
}

impl Message for WithdrawComplaint {
    const TYPE: MessageType = MessageType::new("complaint.withdraw", 1);
}

/// `complaint.accepted.v1`: the complaint went to the authority that hears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComplaintAccepted {
    /// The complaint.
    pub complaint_id: Uuid,
    /// The application appealed.
    pub application_id: Uuid,
    /// The authority that hears it (the one that decided).
    pub authority: String,
}

impl Message for ComplaintAccepted {
    const TYPE: MessageType = MessageType::new("complaint.accepted", 1);
}

/// The authority's verdict on a complaint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintVerdict {
    /// The complaint is founded; the decision is revised.
    Upheld,
    /// The decision stands.
    Dismissed,
}

/// `complaint.decided.v1`: the decision on the complaint, into the cabinet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComplaintDecided {
    /// The complaint.
    pub complaint_id: Uuid,
    /// Upheld or dismissed.
    pub verdict: ComplaintVerdict,
    /// The decision document, as the authority sent it.
    pub document: String,
    /// When the authority decided.
    pub decided_at: DateTime<Utc>,
    /// The signed decision on the complaint, verified by the hub
    /// (`authority.complaint_decided.v2`); absent only for a decision taken unsigned in
    /// development (`HUB_UNSIGNED_DECISIONS=accept`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedComplaintDecision>,
}

impl Message for ComplaintDecided {
    const TYPE: MessageType = MessageType::new("complaint.decided", 1);
}

/// `complaint.withdrawn.v1`: the complaint is withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComplaintWithdrawn {
    /// The complaint.
    pub complaint_id: Uuid,
}

impl Message for ComplaintWithdrawn {
    const TYPE: MessageType = MessageType::new("complaint.withdrawn", 1);
}

/// Why a complaint (or a request about it) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintRejectReason {
    /// The application is not decided: there is nothing to appeal yet.
    NoDecisionToAppeal,
    /// No such application.
    UnknownApplication,
    /// The complainant is not the application's applicant.
    NotTheApplicant,
    /// The withdrawal came after the decision on the complaint.
    AlreadyDecided,
    /// A complaint of inaction while the application's term has not passed (or it was
    /// decided, withdrawn or ended): there is no inaction to complain of.
    NotOverdue,
    /// The request's session is unknown, expired or ended: log in again. Nothing changed.
    SessionInvalid,
}

/// `complaint.rejected.v1`: the complaint (or its withdrawal) is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComplaintRejected {
    /// The complaint.
    pub complaint_id: Uuid,
    /// The rule.
    pub reason: ComplaintRejectReason,
    /// For the person.
    pub detail: String,
}

impl Message for ComplaintRejected {
    const TYPE: MessageType = MessageType::new("complaint.rejected", 1);
}

/// `authority.complaint.v1`: a complaint, to the deciding authority's own queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityComplaint {
    /// The complaint.
    pub complaint_id: Uuid,
    /// The application appealed.
    pub application_id: Uuid,
    /// The hub's number of the application.
    pub application_number: String,
    /// The complaint.
    pub text: String,
    /// Against the decision, or against the inaction of `subordinate` (this authority is its
    /// superior body).
    #[serde(default)]
    pub kind: ComplaintKind,
    /// For a complaint of inaction: the authority that let the term pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subordinate: Option<String>,
}

impl Message for AuthorityComplaint {
    const TYPE: MessageType = MessageType::new("authority.complaint", 1);
}

/// `authority.complaint_withdrawal.v1`: the person withdraws the complaint; the authority
/// answers whether it can still stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityComplaintWithdrawal {
    /// The complaint.
    pub complaint_id: Uuid,
}

impl Message for AuthorityComplaintWithdrawal {
    const TYPE: MessageType = MessageType::new("authority.complaint_withdrawal", 1);
}

/// `authority.complaint_decided.v1`: from the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityComplaintDecided {
    /// The complaint.
    pub complaint_id: Uuid,
    /// Upheld or dismissed.
    pub verdict: ComplaintVerdict,
    /// The decision document.
    pub document: String,
    /// When.
    pub decided_at: DateTime<Utc>,
}

impl Message for AuthorityComplaintDecided {
    const TYPE: MessageType = MessageType::new("authority.complaint_decided", 1);
}

/// The decision document on a complaint, which the deciding body signs: what the person
/// receives, and what the hub verifies before they do. The deciding body is the authority that
/// heard the complaint: the one that decided the application, or for a complaint of inaction
/// its superior body. The signed bytes are [`ComplaintDecisionDocument::signed_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComplaintDecisionDocument {
    /// The complaint decided.
    pub complaint_id: Uuid,
    /// The deciding body's id in the hub's catalogue.
    pub authority_id: String,
    /// The decision's number in the body's register.
    pub number: String,
    /// The day of the decision.
    pub date: NaiveDate,
    /// The verdict.
    pub verdict: ComplaintVerdict,
    /// The decision's text.
    pub text: String,
}

/// The first line of the signed bytes of a decision on a complaint: bytes signed for an
/// application's decision (first line [`DECISION_SIGNED_CONTEXT`]) never read as one, nor the
/// other way round.
pub const COMPLAINT_DECISION_SIGNED_CONTEXT: &str = "by.portal.complaint_decision.v1";

impl ComplaintDecisionDocument {
    /// The canonical bytes the deciding body signs (bign with belt-hash): UTF-8 lines joined by
    /// `\n`, in this order, with no trailing newline after the text:
    ///
    /// ```text
    /// by.portal.complaint_decision.v1
    /// <complaint_id, lowercase hyphenated UUID>
    /// <authority_id>
    /// <number>
    /// <date, YYYY-MM-DD>
    /// <verdict, its wire name: upheld | dismissed | ...>
    /// <text, as is, may span lines>
    /// ```
    ///
    /// Every field but the text is a single line ([`ComplaintDecisionDocument::problem`]), so
    /// the layout is unambiguous; the first line tells it from an application's decision.
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "{COMPLAINT_DECISION_SIGNED_CONTEXT}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.complaint_id.hyphenated(),
            self.authority_id,
            self.number,
            self.date.format("%Y-%m-%d"),
            complaint_verdict_name(self.verdict),
            self.text
        )
        .into_bytes()
    }

    /// What breaks the canonical layout, if anything: a line break (or an empty value) in a
    /// single-line field.
    pub fn problem(&self) -> Option<&'static str> {
        let single_line = |v: &str| !v.is_empty() && !v.contains(['\n', '\r']);
        if !single_line(&self.authority_id) {
            Some("authority_id must be one non-empty line")
        } else if !single_line(&self.number) {
            Some("number must be one non-empty line")
        } else {
            None
        }
    }
}

/// A complaint verdict's wire name (`upheld`, `dismissed`), as JSON carries it.
pub fn complaint_verdict_name(verdict: ComplaintVerdict) -> String {
    match serde_json::to_value(verdict) {
        Ok(serde_json::Value::String(name)) => name,
        // A unit variant always serialises to its name.
        _ => String::new(),
    }
}

/// `authority.complaint_decided.v2`: the deciding body's signed decision on a complaint. The hub
/// verifies it as it does `authority.decided.v2` (the signature, the certificate's path to its
/// trusted roots, its revocation, and that it is the deciding body's: organizationName = the
/// body's id) before it reaches the person; otherwise it answers
/// `authority.complaint_decision_refused.v1` and the complaint keeps waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityComplaintDecidedSigned {
    /// The complaint (the same as the document's).
    pub complaint_id: Uuid,
    /// The decision.
    pub document: ComplaintDecisionDocument,
    /// The signature; absent for an unsigned decision, which is refused (`unsigned`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<DecisionSignature>,
    /// When the body decided.
    pub decided_at: DateTime<Utc>,
}

impl Message for AuthorityComplaintDecidedSigned {
    const TYPE: MessageType = MessageType::new("authority.complaint_decided", 2);
}

/// `authority.complaint_decision_refused.v1`: to the body that decided the complaint; its
/// decision did not reach the person, the complaint still waits for a properly signed one. The
/// reasons are those of `authority.decision_refused.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityComplaintDecisionRefused {
    /// The complaint.
    pub complaint_id: Uuid,
    /// The refused decision's number (empty for a `authority.complaint_decided.v1`).
    pub number: String,
    /// Why.
    pub reason: DecisionRefusalReason,
    /// What failed, in words (no personal data).
    pub detail: String,
}

impl Message for AuthorityComplaintDecisionRefused {
    const TYPE: MessageType = MessageType::new("authority.complaint_decision_refused", 1);
}

/// A verified signed decision on a complaint, as the cabinet shows and keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignedComplaintDecision {
    /// The document signed.
    pub document: ComplaintDecisionDocument,
    /// The signature, the certificate and its chain, as the body sent them.
    pub signature: DecisionSignature,
    /// Who signed, verified.
    pub signer: DecisionSigner,
}

/// `authority.complaint_withdrawal_answered.v1`: from the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorityComplaintWithdrawalAnswered {
    /// The complaint.
    pub complaint_id: Uuid,
    /// True: it stopped. False: it had decided (the decision follows or came).
    pub accepted: bool,
}

impl Message for AuthorityComplaintWithdrawalAnswered {
    const TYPE: MessageType = MessageType::new("authority.complaint_withdrawal_answered", 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_carry_a_luhn_check_digit() {
        let body = "12345678901234567890123456789";
        let d = order_number_check_digit(body).expect("digits");
        let n = format!("{body}{d}");
        assert!(is_order_number(&n));
        let mut wrong = n.clone().into_bytes();
        wrong[29] = b'0' + (d + 1) % 10;
        assert!(!is_order_number(&String::from_utf8(wrong).expect("ascii")));
        // A single changed digit is always caught.
        let mut typo = n.into_bytes();
        typo[3] = if typo[3] == b'9' { b'0' } else { typo[3] + 1 };
        assert!(!is_order_number(&String::from_utf8(typo).expect("ascii")));
        assert!(!is_order_number("123"));
    }

    #[test]
    fn a_withdrawal_by_an_operator_says_so_as_before() {
        let w = ApplicationWithdrawn {
            application_id: Uuid::nil(),
            refund_due_kopecks: 0,
            reason: Some(WithdrawalReason::CancelledByOperator),
            detail: Some("stuck".into()),
        };
        let json = serde_json::to_value(&w).expect("json");
        assert_eq!(json["reason"], "cancelled_by_operator");
        let by_person = ApplicationWithdrawn {
            reason: None,
            detail: None,
            ..w
        };
        let json = serde_json::to_value(&by_person).expect("json");
        assert!(json.get("reason").is_none() && json.get("detail").is_none());
    }
}

#[cfg(test)]
mod signed_decision_tests {
    use super::*;

    fn document() -> DecisionDocument {
        DecisionDocument {
            application_id: Uuid::from_u128(0x8f0c6f4e_8a0e_4d5c_9d55_3f1f0b8a2b6e),
            authority_id: "mns".to_owned(),
            number: "R-17".to_owned(),
            date: NaiveDate::from_ymd_opt(2026, 12, 7).expect("a day"),
            verdict: Verdict::Granted,
            text: "Удовлетворить.\nВторая строка.".to_owned(),
        }
    }

    #[test]
    fn the_signed_bytes_are_the_documented_lines() {
        assert_eq!(
            String::from_utf8(document().signed_bytes()).expect("utf-8"),
            "by.portal.decision.v1\n8f0c6f4e-8a0e-4d5c-9d55-3f1f0b8a2b6e\nmns\nR-17\n2026-12-07\n\
             granted\nУдовлетворить.\nВторая строка."
        );
        assert_eq!(document().problem(), None);
    }

    #[test]
    fn a_complaint_decision_signs_its_own_documented_lines() {
        let d = ComplaintDecisionDocument {
            complaint_id: Uuid::from_u128(0x8f0c6f4e_8a0e_4d5c_9d55_3f1f0b8a2b6e),
            authority_id: "mintrud".to_owned(),
            number: "C-3".to_owned(),
            date: NaiveDate::from_ymd_opt(2026, 12, 7).expect("a day"),
            verdict: ComplaintVerdict::Upheld,
            text: "Жалобу удовлетворить.".to_owned(),
        };
        assert_eq!(
            String::from_utf8(d.signed_bytes()).expect("utf-8"),
            "by.portal.complaint_decision.v1\n8f0c6f4e-8a0e-4d5c-9d55-3f1f0b8a2b6e\nmintrud\nC-3\n\
             2026-12-07\nupheld\nЖалобу удовлетворить."
        );
        assert_eq!(d.problem(), None);
        assert_ne!(
            d.signed_bytes()[..COMPLAINT_DECISION_SIGNED_CONTEXT.len()],
            document().signed_bytes()[..COMPLAINT_DECISION_SIGNED_CONTEXT.len()]
        );
        let broken = ComplaintDecisionDocument {
            number: "C-3\nupheld".to_owned(),
            ..d
        };
        assert!(broken.problem().is_some());
    }

    #[test]
    fn a_line_break_in_a_single_line_field_breaks_the_layout() {
        let mut d = document();
        d.number = "R-17\nrefused".to_owned();
        assert!(d.problem().is_some());
        let mut d = document();
        d.authority_id = String::new();
        assert!(d.problem().is_some());
    }
}
