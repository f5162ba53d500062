//! Issuance of the unique identifier: what an issuance desk ("one window" service, the National
//! Centre of Electronic Services) sends to the hub, and what it gets back.
//!
//! ```text
//! desk -> issuance.apply.v1 -> hub            (application, person, document, phone, consent)
//! hub  -> issuance.phone_code_sent.v1 -> desk (the person reads the SMS code out to the worker)
//! desk -> issuance.confirm_phone.v1 -> hub    (the code)
//! hub  -> issuance.identifier_issued.v1       (the notice of issuance), or
//! hub  -> issuance.rejected.v1                (a reason code per rule, with the fields)
//! desk -> issuance.resend_password.v2         (the temporary password SMS did not arrive: the
//!                                              person presents the identity document again)
//! hub  -> issuance.password_resent.v1         (a new temporary password went to the phone the
//!                                              registry holds now), or
//! hub  -> issuance.resend_refused.v1          (a reason code: `use_recovery` once a static
//!                                              password is set, the identity checks' own codes)
//! desk -> issuance.notice_signed.v1           (the person signed for the notice of issuance)
//! hub  -> issuance.notice_recorded.v1         (recorded in the application), or
//! hub  -> issuance.notice_refused.v1          (not issued, another notice number, malformed)
//! ```
//!
//! `issuance.resend_password.v1` (no identity document) is answered `resend_refused` with
//! `retired_version`: a new temporary password goes out only after the checks of issuance.
//!
//! Every message names its application by `desk_id` + `application_number`: that pair is the
//! saga's business key. Identification numbers and phone numbers travel as the desk typed them;
//! the hub validates them and answers with a rejection, never a dead letter, when they are wrong.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::person::PersonStatus;
use crate::{Message, MessageType};

/// The application as the desk registered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Application {
    /// The desk's own application number.
    pub number: String,
    /// Date of the application.
    pub date: NaiveDate,
    /// The issuance service (desk) id.
    pub desk_id: String,
    /// The worker who took the application.
    pub worker_id: String,
}

impl Application {
    /// The business key of the application's saga.
    pub fn business_key(&self) -> String {
        application_key(&self.desk_id, &self.number)
    }
}

/// The business key of an application: desk id and application number.
pub fn application_key(desk_id: &str, number: &str) -> String {
    format!("{desk_id}/{number}")
}

/// The person as stated in the application.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Applicant {
    /// The identification number from the identity document (14 characters).
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identification_number: String,
    /// Surname.
    pub surname: String,
    /// Given name.
    pub given_name: String,
    /// Patronymic, if the person has one.
    pub patronymic: Option<String>,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Citizen, foreign citizen or stateless person.
    pub status: PersonStatus,
}

impl std::fmt::Debug for Applicant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applicant")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Kind of identity document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// Passport of a citizen.
    Passport,
    /// Identity card.
    IdCard,
    /// Residence permit of a foreign citizen or stateless person.
    ResidencePermit,
}

/// The identity document presented at the desk.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IdentityDocument {
    /// Kind.
    pub kind: DocumentKind,
    /// Series and number, e.g. `MP1234567`.
    pub number: String,
    /// Date of issue.
    pub issued_on: NaiveDate,
    /// Date of expiry.
    pub expires_on: NaiveDate,
}

impl std::fmt::Debug for IdentityDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityDocument")
            .field("kind", &self.kind)
            .field("expires_on", &self.expires_on)
            .finish_non_exhaustive()
    }
}

/// `issuance.apply.v1`: apply for a unique identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApplyForIdentifier {
    /// The application.
    pub application: Application,
    /// The applicant.
    pub person: Applicant,
    /// The identity document presented.
    pub document: IdentityDocument,
    /// The mobile number the person uses, as typed (`+375 29 123-45-67`).
    #[schemars(pattern(crate::person::phone_pattern()))]
    pub phone: String,
    /// Written consent to reconcile the data with the MVD's information resources.
    pub consent_to_mvd_check: bool,
}

impl Message for ApplyForIdentifier {
    const TYPE: MessageType = MessageType::new("issuance.apply", 1);
}

/// `issuance.confirm_phone.v1`: the code the person read out from the SMS.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfirmPhone {
    /// The desk.
    pub desk_id: String,
    /// The application number.
    pub application_number: String,
    /// The code as the person read it.
    pub code: String,
}

impl std::fmt::Debug for ConfirmPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmPhone")
            .field("desk_id", &self.desk_id)
            .field("application_number", &self.application_number)
            .finish_non_exhaustive()
    }
}

impl Message for ConfirmPhone {
    const TYPE: MessageType = MessageType::new("issuance.confirm_phone", 1);
}

/// `issuance.resend_password.v1`: retired. It asked for a new temporary password with no proof
/// of who asks; the hub answers it [`ResendRefused`] with [`ResendRefusal::RetiredVersion`] and
/// sends nothing. Use [`ResendTemporaryPasswordV2`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResendTemporaryPassword {
    /// The desk.
    pub desk_id: String,
    /// The application number.
    pub application_number: String,
}

impl Message for ResendTemporaryPassword {
    const TYPE: MessageType = MessageType::new("issuance.resend_password", 1);
}

/// `issuance.resend_password.v2`: the SMS with the temporary password did not reach the person
/// (or the password expired); the person presents the identity document again at the desk of
/// the issuance application, and a new temporary password goes to the phone the registry holds
/// now. Refused once the person has formed a static password (`use_recovery`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResendTemporaryPasswordV2 {
    /// The desk.
    pub desk_id: String,
    /// The issuance application's number.
    pub application_number: String,
    /// The worker who checked the person against the document.
    pub worker_id: String,
    /// The person as stated now; the identification number must be the application's.
    pub person: Applicant,
    /// The identity document presented now.
    pub document: IdentityDocument,
    /// Written consent to reconcile the data with the MVD, as for issuance. Missing means no.
    #[serde(default)]
    pub consent_to_mvd_check: bool,
}

impl std::fmt::Debug for ResendTemporaryPasswordV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResendTemporaryPasswordV2")
            .field("desk_id", &self.desk_id)
            .field("application_number", &self.application_number)
            .field("person", &self.person)
            .field("document", &self.document)
            .finish_non_exhaustive()
    }
}

impl Message for ResendTemporaryPasswordV2 {
    const TYPE: MessageType = MessageType::new("issuance.resend_password", 2);
}

/// Why a resend of the temporary password was refused: one code per rule. The application
/// itself stays issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResendRefusal {
    /// The request is malformed or breaks a rule; `fields` says which.
    InvalidInput,
    /// No consent to the MVD check.
    ConsentMissing,
    /// The identity document is invalid, expired or reported lost.
    DocumentInvalid,
    /// The MVD registry does not confirm the stated data; `fields` says which.
    MvdMismatch,
    /// The person has formed a static password: a lost one is re-formed by recovery in the
    /// cabinet (`cabinet.recover_password.v1`), never by a new temporary password.
    UseRecovery,
    /// The identifier is blocked: unblocking (which issues a password) comes first.
    IdentifierBlocked,
    /// The application has no identifier issued (yet, or it was rejected).
    NotIssued,
    /// `issuance.resend_password.v1`, which carries no identity document: send v2.
    RetiredVersion,
}

impl ResendRefusal {
    /// Every reason, for reports.
    pub const ALL: [ResendRefusal; 8] = [
        ResendRefusal::InvalidInput,
        ResendRefusal::ConsentMissing,
        ResendRefusal::DocumentInvalid,
        ResendRefusal::MvdMismatch,
        ResendRefusal::UseRecovery,
        ResendRefusal::IdentifierBlocked,
        ResendRefusal::NotIssued,
        ResendRefusal::RetiredVersion,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResendRefusal::InvalidInput => "invalid_input",
            ResendRefusal::ConsentMissing => "consent_missing",
            ResendRefusal::DocumentInvalid => "document_invalid",
            ResendRefusal::MvdMismatch => "mvd_mismatch",
            ResendRefusal::UseRecovery => "use_recovery",
            ResendRefusal::IdentifierBlocked => "identifier_blocked",
            ResendRefusal::NotIssued => "not_issued",
            ResendRefusal::RetiredVersion => "retired_version",
        }
    }
}

impl std::fmt::Display for ResendRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `issuance.resend_refused.v1`: no new temporary password; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResendRefused {
    /// The desk.
    pub desk_id: String,
    /// The issuance application's number.
    pub application_number: String,
    /// The rule that failed.
    pub reason: ResendRefusal,
    /// More detail where the rule has it (`expired`, `lost`, `person_unknown`).
    pub detail: Option<RejectDetail>,
    /// The fields concerned, with what is wrong.
    pub fields: Vec<crate::FieldError>,
}

impl Message for ResendRefused {
    const TYPE: MessageType = MessageType::new("issuance.resend_refused", 1);
}

/// `issuance.notice_signed.v1`: the person signed for the notice of issuance (seeds 000, 002:
/// "the mark of receipt of the notice is certified by the citizen's signature"); the desk
/// confirms it, and the application records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NoticeSigned {
    /// The desk.
    pub desk_id: String,
    /// The issuance application's number.
    pub application_number: String,
    /// The notice's number, as printed (`UI-<year>-<desk>-<application>`).
    pub notice_number: String,
    /// The day the person signed.
    pub signed_on: NaiveDate,
    /// The worker before whom the person signed.
    pub worker_id: String,
}

impl Message for NoticeSigned {
    const TYPE: MessageType = MessageType::new("issuance.notice_signed", 1);
}

/// `issuance.notice_recorded.v1`: the signature for the notice is recorded in the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NoticeRecorded {
    /// The desk.
    pub desk_id: String,
    /// The issuance application's number.
    pub application_number: String,
    /// The notice's number.
    pub notice_number: String,
    /// The day the person signed.
    pub signed_on: NaiveDate,
}

impl Message for NoticeRecorded {
    const TYPE: MessageType = MessageType::new("issuance.notice_recorded", 1);
}

/// Why a signed notice was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeRefusal {
    /// The confirmation is malformed; `fields` says which.
    InvalidInput,
    /// The application has no identifier issued (yet, or it was rejected): there is no notice.
    NotIssued,
    /// The notice number is not this application's notice.
    NoticeMismatch,
    /// Another signature is recorded already (another day or worker); the first one stays.
    AlreadyRecorded,
}

/// `issuance.notice_refused.v1`: the signature was not recorded; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NoticeRefused {
    /// The desk.
    pub desk_id: String,
    /// The issuance application's number.
    pub application_number: String,
    /// The rule that failed.
    pub reason: NoticeRefusal,
    /// The fields concerned, with what is wrong.
    pub fields: Vec<crate::FieldError>,
}

impl Message for NoticeRefused {
    const TYPE: MessageType = MessageType::new("issuance.notice_refused", 1);
}

/// `issuance.phone_code_sent.v1`: a confirmation code went to the person's phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PhoneCodeSent {
    /// The desk.
    pub desk_id: String,
    /// The application number.
    pub application_number: String,
    /// The phone, masked (`+375 29 ***-**-67`).
    pub phone_masked: String,
    /// The code is valid until then.
    pub expires_at: DateTime<Utc>,
    /// Wrong codes accepted before the application is rejected.
    pub attempts_left: u32,
}

impl Message for PhoneCodeSent {
    const TYPE: MessageType = MessageType::new("issuance.phone_code_sent", 1);
}

/// `issuance.phone_code_wrong.v1`: the code did not match; the desk may try again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PhoneCodeWrong {
    /// The desk.
    pub desk_id: String,
    /// The application number.
    pub application_number: String,
    /// Attempts left.
    pub attempts_left: u32,
}

impl Message for PhoneCodeWrong {
    const TYPE: MessageType = MessageType::new("issuance.phone_code_wrong", 1);
}

/// The notice of issuance (izveshchenie): everything the printed notice shows.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NoticeOfIssuance {
    /// Notice number, unique: `UI-<year>-<desk>-<application>`.
    pub notice_number: String,
    /// The identifier (equal to the identification number).
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// Date of issue.
    pub issued_on: NaiveDate,
    /// Surname.
    pub surname: String,
    /// Given name.
    pub given_name: String,
    /// Patronymic.
    pub patronymic: Option<String>,
    /// The application it answers.
    pub application: Application,
    /// Where the temporary password was sent (masked).
    pub phone_masked: String,
    /// The temporary password must be replaced before then.
    pub temporary_password_expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for NoticeOfIssuance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoticeOfIssuance")
            .field("notice_number", &self.notice_number)
            .field("issued_on", &self.issued_on)
            .finish_non_exhaustive()
    }
}

/// `issuance.identifier_issued.v1`: the identifier is assigned and the temporary password sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IdentifierIssued {
    /// The notice to print and have signed.
    pub notice: NoticeOfIssuance,
}

impl Message for IdentifierIssued {
    const TYPE: MessageType = MessageType::new("issuance.identifier_issued", 1);
}

/// `issuance.password_resent.v1`: a new temporary password went out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PasswordResent {
    /// The desk.
    pub desk_id: String,
    /// The application number.
    pub application_number: String,
    /// The new temporary password's expiry.
    pub temporary_password_expires_at: DateTime<Utc>,
    /// Where it went (masked): the phone the registry holds now, which a change of phone may
    /// have made another than the notice's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_masked: Option<String>,
}

impl Message for PasswordResent {
    const TYPE: MessageType = MessageType::new("issuance.password_resent", 1);
}

/// `issuance.password_not_delivered.v1`: the operator reported the temporary password SMS as
/// not delivered; the desk may ask for a resend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PasswordNotDelivered {
    /// The desk.
    pub desk_id: String,
    /// The application number.
    pub application_number: String,
}

impl Message for PasswordNotDelivered {
    const TYPE: MessageType = MessageType::new("issuance.password_not_delivered", 1);
}

/// Why an application was rejected: one code per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The application data is malformed or breaks a rule; `fields` says which.
    InvalidInput,
    /// No consent to the MVD check.
    ConsentMissing,
    /// The identity document is invalid, expired or reported lost.
    DocumentInvalid,
    /// An identifier was assigned to this person before.
    AlreadyAssigned,
    /// The phone number is used with another identifier.
    PhoneBound,
    /// The phone is not a Belarusian mobile number in service.
    PhoneNotMobile,
    /// The MVD registry does not confirm the stated data; `fields` says which.
    MvdMismatch,
    /// The phone was not confirmed in time, or too many wrong codes were given.
    PhoneNotConfirmed,
    /// An operator ended the application (`hub saga cancel`); `detail` says why.
    CancelledByOperator,
}

impl RejectReason {
    /// Every reason, for reports.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::InvalidInput,
        RejectReason::ConsentMissing,
        RejectReason::DocumentInvalid,
        RejectReason::AlreadyAssigned,
        RejectReason::PhoneBound,
        RejectReason::PhoneNotMobile,
        RejectReason::MvdMismatch,
        RejectReason::PhoneNotConfirmed,
        RejectReason::CancelledByOperator,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidInput => "invalid_input",
            RejectReason::ConsentMissing => "consent_missing",
            RejectReason::DocumentInvalid => "document_invalid",
            RejectReason::AlreadyAssigned => "already_assigned",
            RejectReason::PhoneBound => "phone_bound",
            RejectReason::PhoneNotMobile => "phone_not_mobile",
            RejectReason::MvdMismatch => "mvd_mismatch",
            RejectReason::PhoneNotConfirmed => "phone_not_confirmed",
            RejectReason::CancelledByOperator => "cancelled_by_operator",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `issuance.rejected.v1`: the application ends without an identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationRejected {
    /// The desk.
    pub desk_id: String,
    /// The application number.
    pub application_number: String,
    /// The rule that failed.
    pub reason: RejectReason,
    /// More detail where the rule has it (`expired`, `lost`, `too_many_attempts`, `timed_out`).
    pub detail: Option<RejectDetail>,
    /// The fields concerned, with what is wrong.
    pub fields: Vec<crate::FieldError>,
}

/// More detail on a rejection (of an application, or of a desk's account request): a code
/// where the hub's own rule has one, else the words of whoever decided (the MVD registry's
/// status of a document, an operator's reason for cancelling). On the wire a plain string, as
/// it always was: a code is its snake_case name, and a string that spells a code reads as it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RejectDetail {
    /// The identity document has expired (`expired`).
    Expired,
    /// The MVD registry does not know the person (`person_unknown`).
    PersonUnknown,
    /// The operator says the subscriber is blocked (`subscriber_blocked`).
    SubscriberBlocked,
    /// No operator serves the number (`no_subscriber`).
    NoSubscriber,
    /// The phone code expired before the right one came (`timed_out`).
    TimedOut,
    /// Too many wrong codes, for the application or for the phone (`too_many_attempts`).
    TooManyAttempts,
    /// The code SMS could not be delivered (`code_not_delivered`).
    CodeNotDelivered,
    /// The identifier is blocked (`identifier_blocked`).
    IdentifierBlocked,
    /// Words from outside the hub's rules: a document status of the MVD registry's (`lost`),
    /// an operator's reason for cancelling.
    Other(String),
}

impl JsonSchema for RejectDetail {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RejectDetail".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let codes: Vec<String> = RejectDetail::CODES.iter().map(|c| c.to_string()).collect();
        schemars::json_schema!({
            "type": "string",
            "description": format!(
                "More detail on a rejection: one of the hub's codes ({}), or the words of \
                 whoever decided (an MVD document status such as `lost`, an operator's reason).",
                codes.join(", ")
            ),
            "examples": codes
        })
    }
}

impl RejectDetail {
    /// Every code (not [`RejectDetail::Other`]).
    pub const CODES: [RejectDetail; 8] = [
        RejectDetail::Expired,
        RejectDetail::PersonUnknown,
        RejectDetail::SubscriberBlocked,
        RejectDetail::NoSubscriber,
        RejectDetail::TimedOut,
        RejectDetail::TooManyAttempts,
        RejectDetail::CodeNotDelivered,
        RejectDetail::IdentifierBlocked,
    ];

    /// The wire form.
    pub fn as_str(&self) -> &str {
        match self {
            RejectDetail::Expired => "expired",
            RejectDetail::PersonUnknown => "person_unknown",
            RejectDetail::SubscriberBlocked => "subscriber_blocked",
            RejectDetail::NoSubscriber => "no_subscriber",
            RejectDetail::TimedOut => "timed_out",
            RejectDetail::TooManyAttempts => "too_many_attempts",
            RejectDetail::CodeNotDelivered => "code_not_delivered",
            RejectDetail::IdentifierBlocked => "identifier_blocked",
            RejectDetail::Other(words) => words,
        }
    }
}

impl From<String> for RejectDetail {
    fn from(s: String) -> Self {
        Self::CODES
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(RejectDetail::Other(s))
    }
}

impl From<&str> for RejectDetail {
    fn from(s: &str) -> Self {
        Self::from(s.to_owned())
    }
}

impl From<RejectDetail> for String {
    fn from(d: RejectDetail) -> Self {
        match d {
            RejectDetail::Other(words) => words,
            code => code.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for RejectDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Message for ApplicationRejected {
    const TYPE: MessageType = MessageType::new("issuance.rejected", 1);
}

/// Fired by the saga's own timer when the phone code expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PhoneCodeExpired {
    /// The desk.
    pub desk_id: String,
    /// The application number.
    pub application_number: String,
}

impl Message for PhoneCodeExpired {
    const TYPE: MessageType = MessageType::new("issuance.phone_code_expired", 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reject_detail_is_the_same_string_on_the_wire_as_before() {
        for code in RejectDetail::CODES {
            let wire = serde_json::to_value(&code).expect("json");
            assert_eq!(wire, code.as_str());
            let back: RejectDetail = serde_json::from_value(wire).expect("decodes");
            assert_eq!(back, code);
        }
        let lost: RejectDetail = serde_json::from_str(r#""lost""#).expect("decodes");
        assert_eq!(lost, RejectDetail::Other("lost".into()));
        assert_eq!(serde_json::to_string(&lost).expect("json"), r#""lost""#);
        // The words of an MVD status that spell a code read as the code.
        assert_eq!(RejectDetail::from("timed_out"), RejectDetail::TimedOut);
        let rejected = ApplicationRejected {
            desk_id: "d".into(),
            application_number: "A-1".into(),
            reason: RejectReason::PhoneNotConfirmed,
            detail: Some(RejectDetail::TooManyAttempts),
            fields: vec![],
        };
        assert_eq!(
            serde_json::to_value(&rejected).expect("json"),
            serde_json::json!({
                "desk_id": "d", "application_number": "A-1", "reason": "phone_not_confirmed",
                "detail": "too_many_attempts", "fields": [],
            })
        );
    }
}
