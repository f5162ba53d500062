//! Account lifecycle requests from issuance desks (block, unblock, change of phone).
//!
//! ```text
//! desk -> identifier.block.v2 -> hub            (the worker, the person and the document, checked
//!                                                as at issuance; an optional reason)
//! hub  -> identifier.blocked.v1 -> desk
//!
//! desk -> identifier.unblock.v2 -> hub          (the worker, the person and the document: the
//!                                                same identity and MVD checks as at issuance)
//! hub  -> identifier.unblocked.v1 -> desk       (all earlier history kept; a new temporary
//!                                                password went by SMS to the registry's phone)
//!
//! desk -> identifier.change_phone.v2 -> hub     (the worker, the person and the document, checked
//!                                                as at issuance; the new phone)
//! hub  -> identifier.phone_code_sent.v1 -> desk (the person reads the SMS code out to the worker)
//! desk -> identifier.confirm_phone.v1 -> hub    (the code)
//! hub  -> identifier.phone_code_wrong.v1        (try again), or
//! hub  -> identifier.phone_changed.v1 -> desk
//!
//! any failed rule: hub -> identifier.request_rejected.v1 (a reason code, with the fields)
//! ```
//!
//! The person may also unblock in the cabinet (`cabinet.unblock.v1`, see [`crate::cabinet`]).
//! The v1 requests (`identifier.block.v1`, `identifier.unblock.v1`, `identifier.change_phone.v1`:
//! no worker, no proof of identity) are answered `request_rejected` with `retired_version`. Every message names its request by `desk_id` + `application_number`, the
//! saga's business key.
//!
//! The hub's own registry commands for these requests (`registry.*_account.v1`,
//! `registry.change_phone.v1`) are at the end: the account saga sends them to the identifier
//! registry, whose answers come back by `reply_to`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::issuance::{Applicant, IdentityDocument};
use crate::{FieldError, Message, MessageType};

/// `identifier.block.v1`: retired (no proof of who asks); answered [`RequestRejected`] with
/// [`RequestRejectReason::RetiredVersion`]. Use [`BlockIdentifierV2`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlockIdentifier {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// The identifier (the identification number).
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// Why, as the person stated it, if at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl std::fmt::Debug for BlockIdentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockIdentifier")
            .field("desk_id", &self.desk_id)
            .field("application_number", &self.application_number)
            .finish_non_exhaustive()
    }
}

impl Message for BlockIdentifier {
    const TYPE: MessageType = MessageType::new("identifier.block", 1);
}

/// `identifier.block.v2`: block the identifier on the person's written application, taken by
/// `worker_id` with the identity document presented (checked as at issuance, MVD
/// reconciliation). The identifier is the person's identification number.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlockIdentifierV2 {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// The worker who took the application and checked the person against the document.
    pub worker_id: String,
    /// The person as stated in the application.
    pub person: Applicant,
    /// The identity document presented.
    pub document: IdentityDocument,
    /// Written consent to reconcile the data with the MVD. Missing means no.
    #[serde(default)]
    pub consent_to_mvd_check: bool,
    /// Why, as the person stated it, if at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl std::fmt::Debug for BlockIdentifierV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockIdentifierV2")
            .field("desk_id", &self.desk_id)
            .field("application_number", &self.application_number)
            .field("person", &self.person)
            .field("document", &self.document)
            .finish_non_exhaustive()
    }
}

impl Message for BlockIdentifierV2 {
    const TYPE: MessageType = MessageType::new("identifier.block", 2);
}

/// `identifier.unblock.v1`: retired (it issued no password and named no worker); answered
/// [`RequestRejected`] with [`RequestRejectReason::RetiredVersion`]. Use [`UnblockIdentifierV2`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnblockIdentifier {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// The person as stated in the application.
    pub person: Applicant,
    /// The identity document presented.
    pub document: IdentityDocument,
    /// Written consent to reconcile the data with the MVD, as for issuance. Missing means no.
    #[serde(default)]
    pub consent_to_mvd_check: bool,
}

impl std::fmt::Debug for UnblockIdentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnblockIdentifier")
            .field("desk_id", &self.desk_id)
            .field("application_number", &self.application_number)
            .field("person", &self.person)
            .field("document", &self.document)
            .finish()
    }
}

impl Message for UnblockIdentifier {
    const TYPE: MessageType = MessageType::new("identifier.unblock", 1);
}

/// `identifier.unblock.v2`: unblock the identifier of the person presenting the document, on a
/// written application taken by `worker_id`; the identifier is the person's identification
/// number. After the checks of issuance (MVD reconciliation) the account is unblocked with a new
/// temporary password, sent by SMS to the phone the registry holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnblockIdentifierV2 {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// The worker who took the application and checked the person against the document.
    pub worker_id: String,
    /// The person as stated in the application.
    pub person: Applicant,
    /// The identity document presented.
    pub document: IdentityDocument,
    /// Written consent to reconcile the data with the MVD, as for issuance. Missing means no.
    #[serde(default)]
    pub consent_to_mvd_check: bool,
}

impl std::fmt::Debug for UnblockIdentifierV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnblockIdentifierV2")
            .field("desk_id", &self.desk_id)
            .field("application_number", &self.application_number)
            .field("person", &self.person)
            .field("document", &self.document)
            .finish_non_exhaustive()
    }
}

impl Message for UnblockIdentifierV2 {
    const TYPE: MessageType = MessageType::new("identifier.unblock", 2);
}

/// `identifier.change_phone.v1`: retired (no proof of who asks); answered [`RequestRejected`]
/// with [`RequestRejectReason::RetiredVersion`]. Use [`ChangePhoneV2`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangePhone {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// The identifier (the identification number).
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The new mobile number, as typed (`+375 29 123-45-67`).
    #[schemars(pattern(crate::person::phone_pattern()))]
    pub new_phone: String,
}

impl std::fmt::Debug for ChangePhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePhone")
            .field("desk_id", &self.desk_id)
            .field("application_number", &self.application_number)
            .finish_non_exhaustive()
    }
}

impl Message for ChangePhone {
    const TYPE: MessageType = MessageType::new("identifier.change_phone", 1);
}

/// `identifier.change_phone.v2`: bind the identifier to a new mobile number, on the person's
/// written application taken by `worker_id` with the identity document presented (checked as at
/// issuance, MVD reconciliation), then confirmed by a code on the new phone. The identifier is
/// the person's identification number.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangePhoneV2 {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// The worker who took the application and checked the person against the document.
    pub worker_id: String,
    /// The person as stated in the application.
    pub person: Applicant,
    /// The identity document presented.
    pub document: IdentityDocument,
    /// Written consent to reconcile the data with the MVD. Missing means no.
    #[serde(default)]
    pub consent_to_mvd_check: bool,
    /// The new mobile number, as typed (`+375 29 123-45-67`).
    #[schemars(pattern(crate::person::phone_pattern()))]
    pub new_phone: String,
}

impl std::fmt::Debug for ChangePhoneV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePhoneV2")
            .field("desk_id", &self.desk_id)
            .field("application_number", &self.application_number)
            .field("person", &self.person)
            .field("document", &self.document)
            .finish_non_exhaustive()
    }
}

impl Message for ChangePhoneV2 {
    const TYPE: MessageType = MessageType::new("identifier.change_phone", 2);
}

/// `identifier.confirm_phone.v1`: the code the person read out from the SMS on the new phone.
/// Sensitive: see [`crate::SENSITIVE_TYPES`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfirmNewPhone {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// The code as the person read it.
    pub code: String,
}

impl std::fmt::Debug for ConfirmNewPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmNewPhone")
            .field("desk_id", &self.desk_id)
            .field("application_number", &self.application_number)
            .finish_non_exhaustive()
    }
}

impl Message for ConfirmNewPhone {
    const TYPE: MessageType = MessageType::new("identifier.confirm_phone", 1);
}

/// `identifier.blocked.v1`: the identifier is blocked; logging in with it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IdentifierBlocked {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// When.
    pub blocked_at: DateTime<Utc>,
}

impl Message for IdentifierBlocked {
    const TYPE: MessageType = MessageType::new("identifier.blocked", 1);
}

/// `identifier.unblocked.v1`: the identifier works again, with all its earlier history, and a
/// new temporary password went to the person's phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IdentifierUnblocked {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// When.
    pub unblocked_at: DateTime<Utc>,
    /// Where the new temporary password went (masked): the phone the registry holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_masked: Option<String>,
    /// The new temporary password must be replaced before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_password_expires_at: Option<DateTime<Utc>>,
}

impl Message for IdentifierUnblocked {
    const TYPE: MessageType = MessageType::new("identifier.unblocked", 1);
}

/// `identifier.phone_code_sent.v1`: a confirmation code went to the new phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NewPhoneCodeSent {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// The new phone, masked (`+375 29 ***-**-67`).
    pub phone_masked: String,
    /// The code is valid until then.
    pub expires_at: DateTime<Utc>,
    /// Codes accepted (wrong ones included) before the request is rejected.
    pub attempts_left: u32,
}

impl Message for NewPhoneCodeSent {
    const TYPE: MessageType = MessageType::new("identifier.phone_code_sent", 1);
}

/// `identifier.phone_code_wrong.v1`: the code did not match; the desk may try again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NewPhoneCodeWrong {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// Attempts left.
    pub attempts_left: u32,
}

impl Message for NewPhoneCodeWrong {
    const TYPE: MessageType = MessageType::new("identifier.phone_code_wrong", 1);
}

/// `identifier.phone_changed.v1`: the identifier now uses the new phone; the old one is free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PhoneChanged {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// The new phone, masked.
    pub phone_masked: String,
    /// When.
    pub changed_at: DateTime<Utc>,
}

impl Message for PhoneChanged {
    const TYPE: MessageType = MessageType::new("identifier.phone_changed", 1);
}

/// Why a request was rejected: one code per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestRejectReason {
    /// The request is malformed or breaks a rule; `fields` says which.
    InvalidInput,
    /// No consent to the MVD check an unblock needs.
    ConsentMissing,
    /// No identifier is assigned under this number.
    UnknownIdentifier,
    /// The identifier is blocked (already, or so it cannot change its phone).
    AlreadyBlocked,
    /// The identifier is not blocked: nothing to unblock.
    NotBlocked,
    /// The MVD registry does not confirm the stated data; `fields` says which.
    MvdMismatch,
    /// The identity document is invalid, expired or reported lost.
    DocumentInvalid,
    /// The new phone is not a Belarusian mobile number in service.
    PhoneNotMobile,
    /// The new phone is used with another identifier.
    PhoneBound,
    /// The new phone was not confirmed in time, or too many wrong codes were given.
    PhoneNotConfirmed,
    /// A retired version of the request (`identifier.block.v1`, `identifier.unblock.v1`,
    /// `identifier.change_phone.v1`): `detail` names the one to send.
    RetiredVersion,
}

impl RequestRejectReason {
    /// Every reason, for reports.
    pub const ALL: [RequestRejectReason; 11] = [
        RequestRejectReason::InvalidInput,
        RequestRejectReason::ConsentMissing,
        RequestRejectReason::UnknownIdentifier,
        RequestRejectReason::AlreadyBlocked,
        RequestRejectReason::NotBlocked,
        RequestRejectReason::MvdMismatch,
        RequestRejectReason::DocumentInvalid,
        RequestRejectReason::PhoneNotMobile,
        RequestRejectReason::PhoneBound,
        RequestRejectReason::PhoneNotConfirmed,
        RequestRejectReason::RetiredVersion,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestRejectReason::InvalidInput => "invalid_input",
            RequestRejectReason::ConsentMissing => "consent_missing",
            RequestRejectReason::UnknownIdentifier => "unknown_identifier",
            RequestRejectReason::AlreadyBlocked => "already_blocked",
            RequestRejectReason::NotBlocked => "not_blocked",
            RequestRejectReason::MvdMismatch => "mvd_mismatch",
            RequestRejectReason::DocumentInvalid => "document_invalid",
            RequestRejectReason::PhoneNotMobile => "phone_not_mobile",
            RequestRejectReason::PhoneBound => "phone_bound",
            RequestRejectReason::PhoneNotConfirmed => "phone_not_confirmed",
            RequestRejectReason::RetiredVersion => "retired_version",
        }
    }
}

impl std::fmt::Display for RequestRejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `identifier.request_rejected.v1`: the request ends with nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestRejected {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// The rule that failed.
    pub reason: RequestRejectReason,
    /// More detail where the rule has it (`expired`, `lost`, `person_unknown`,
    /// `too_many_attempts`, `timed_out`, `code_not_delivered`, `subscriber_blocked`).
    pub detail: Option<crate::issuance::RejectDetail>,
    /// The fields concerned, with what is wrong.
    pub fields: Vec<FieldError>,
}

impl Message for RequestRejected {
    const TYPE: MessageType = MessageType::new("identifier.request_rejected", 1);
}

/// Fired by the account saga's own timer when the new phone's code expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NewPhoneCodeExpired {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
}

impl Message for NewPhoneCodeExpired {
    const TYPE: MessageType = MessageType::new("identifier.phone_code_expired", 1);
}

// ---------------------------------------------------------------------------------------------
// The identifier registry's commands for the account saga.

/// `registry.lookup_account.v1`: is the identifier assigned with an account, is it blocked, and
/// (when `phone` is given) who uses that phone?
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LookupAccount {
    /// The identifier, normalised.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// A phone, `+375XXXXXXXXX`, whose use to report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::person::phone_pattern()))]
    pub phone: Option<String>,
}

masked_debug!(LookupAccount, "LookupAccount");

impl Message for LookupAccount {
    const TYPE: MessageType = MessageType::new("registry.lookup_account", 1);
}

/// The state of an identifier's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    /// No identifier is assigned under this number (or only reserved by an application).
    Unknown,
    /// Assigned, with an account that is not blocked.
    Active,
    /// Assigned, and the account is blocked.
    Blocked,
}

/// Who uses a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhoneUse {
    /// Nobody.
    Free,
    /// This identifier.
    ThisIdentifier,
    /// Another identifier (assigned or reserved by an application in progress).
    AnotherIdentifier,
}

/// `registry.account_looked_up.v1`: the answer to [`LookupAccount`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountLookedUp {
    /// The account's state.
    pub state: AccountState,
    /// The use of the phone asked about, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneUse>,
}

impl Message for AccountLookedUp {
    const TYPE: MessageType = MessageType::new("registry.account_looked_up", 1);
}

/// `registry.block_account.v1`: block the account (an `account_events` row `blocked_by_desk`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlockAccount {
    /// The identifier, normalised.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The business key of the desk's application.
    pub application: String,
    /// The reason the person stated, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The worker who took the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
}

impl std::fmt::Debug for BlockAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockAccount")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl Message for BlockAccount {
    const TYPE: MessageType = MessageType::new("registry.block_account", 1);
}

/// What a block came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockOutcome {
    /// Blocked now.
    Blocked,
    /// No such identifier.
    UnknownIdentifier,
    /// It was blocked before (by the person or a desk).
    AlreadyBlocked,
}

/// `registry.account_blocked.v1`: the answer to [`BlockAccount`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountBlocked {
    /// The outcome.
    pub outcome: BlockOutcome,
}

impl Message for AccountBlocked {
    const TYPE: MessageType = MessageType::new("registry.account_blocked", 1);
}

/// `registry.unblock_account.v1`: unblock the account, keeping its history and resetting its
/// failed-login throttles (an `account_events` row `unblocked_by_desk`), and set a new temporary
/// password when one is given (every unblock the account saga asks for now gives one).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnblockAccount {
    /// The identifier, normalised.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The business key of the desk's application.
    pub application: String,
    /// The worker who took the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// Argon2 PHC string of the new temporary password (never the password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_password_hash: Option<String>,
    /// The new temporary password is refused after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_password_expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for UnblockAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnblockAccount")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl Message for UnblockAccount {
    const TYPE: MessageType = MessageType::new("registry.unblock_account", 1);
}

/// What an unblock came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnblockOutcome {
    /// Unblocked now.
    Unblocked,
    /// No such identifier.
    UnknownIdentifier,
    /// It is not blocked.
    NotBlocked,
}

/// `registry.account_unblocked.v1`: the answer to [`UnblockAccount`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountUnblocked {
    /// The outcome.
    pub outcome: UnblockOutcome,
    /// When unblocked with a new temporary password: the phone (`+375XXXXXXXXX`) the registry
    /// holds, where it must go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::person::phone_pattern()))]
    pub phone: Option<String>,
}

impl std::fmt::Debug for AccountUnblocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountUnblocked")
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl Message for AccountUnblocked {
    const TYPE: MessageType = MessageType::new("registry.account_unblocked", 1);
}

/// `registry.change_phone.v1`: bind the identifier to `phone` instead of its current one (an
/// `account_events` row `phone_changed`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeAccountPhone {
    /// The identifier, normalised.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The new phone, `+375XXXXXXXXX`.
    #[schemars(pattern(crate::person::phone_pattern()))]
    pub phone: String,
    /// The business key of the desk's application.
    pub application: String,
    /// The worker who took the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
}

impl std::fmt::Debug for ChangeAccountPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeAccountPhone")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl Message for ChangeAccountPhone {
    const TYPE: MessageType = MessageType::new("registry.change_phone", 1);
}

/// What a change of phone came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangePhoneOutcome {
    /// The identifier uses the new phone now.
    Changed,
    /// No such identifier.
    UnknownIdentifier,
    /// The identifier is blocked.
    Blocked,
    /// The phone is used with another identifier.
    PhoneBound,
}

/// `registry.phone_changed.v1`: the answer to [`ChangeAccountPhone`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountPhoneChanged {
    /// The outcome.
    pub outcome: ChangePhoneOutcome,
}

impl Message for AccountPhoneChanged {
    const TYPE: MessageType = MessageType::new("registry.phone_changed", 1);
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::issuance::DocumentKind;
    use crate::person::PersonStatus;

    const ID: &str = "3270287A012PB2";
    const PHONE: &str = "+375291234567";

    fn types() -> Vec<MessageType> {
        vec![
            BlockIdentifier::TYPE,
            BlockIdentifierV2::TYPE,
            ChangePhoneV2::TYPE,
            UnblockIdentifier::TYPE,
            UnblockIdentifierV2::TYPE,
            ChangePhone::TYPE,
            ConfirmNewPhone::TYPE,
            IdentifierBlocked::TYPE,
            IdentifierUnblocked::TYPE,
            NewPhoneCodeSent::TYPE,
            NewPhoneCodeWrong::TYPE,
            PhoneChanged::TYPE,
            RequestRejected::TYPE,
            NewPhoneCodeExpired::TYPE,
            LookupAccount::TYPE,
            AccountLookedUp::TYPE,
            BlockAccount::TYPE,
            AccountBlocked::TYPE,
            UnblockAccount::TYPE,
            AccountUnblocked::TYPE,
            ChangeAccountPhone::TYPE,
            AccountPhoneChanged::TYPE,
        ]
    }

    #[test]
    fn type_names_are_well_formed_and_distinct() {
        let names: Vec<String> = types().iter().map(MessageType::to_string).collect();
        for n in &names {
            assert!(MessageType::is_well_formed(n), "{n}");
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        for other in [
            crate::issuance::ConfirmPhone::TYPE,
            crate::registry::Reserved::TYPE,
            crate::registry::AccountCreated::TYPE,
        ] {
            assert!(!names.contains(&other.to_string()));
        }
    }

    #[test]
    fn the_code_message_is_sensitive() {
        assert!(crate::is_sensitive("identifier.confirm_phone.v1"));
        assert!(!crate::is_sensitive("identifier.change_phone.v1"));
    }

    #[test]
    fn debug_never_shows_identifiers_names_phones_or_codes() {
        let person = Applicant {
            identification_number: ID.into(),
            surname: "Иванова".into(),
            given_name: "Анна".into(),
            patronymic: None,
            birth_date: NaiveDate::from_ymd_opt(1987, 2, 27).expect("date"),
            status: PersonStatus::Citizen,
        };
        let document = IdentityDocument {
            kind: DocumentKind::Passport,
            number: "MP1234567".into(),
            issued_on: NaiveDate::from_ymd_opt(2020, 3, 1).expect("date"),
            expires_on: NaiveDate::from_ymd_opt(2030, 3, 1).expect("date"),
        };
        let printed = [
            format!(
                "{:?}",
                BlockIdentifier {
                    desk_id: "d".into(),
                    application_number: "1".into(),
                    identifier: ID.into(),
                    reason: Some("lost phone".into()),
                }
            ),
            format!(
                "{:?}",
                UnblockIdentifier {
                    desk_id: "d".into(),
                    application_number: "1".into(),
                    person,
                    document,
                    consent_to_mvd_check: true,
                }
            ),
            format!(
                "{:?}",
                ChangePhone {
                    desk_id: "d".into(),
                    application_number: "1".into(),
                    identifier: ID.into(),
                    new_phone: PHONE.into(),
                }
            ),
            format!(
                "{:?}",
                ConfirmNewPhone {
                    desk_id: "d".into(),
                    application_number: "1".into(),
                    code: "493817".into(),
                }
            ),
            format!(
                "{:?}",
                LookupAccount {
                    identifier: ID.into(),
                    phone: Some(PHONE.into()),
                }
            ),
            format!(
                "{:?}",
                BlockAccount {
                    identifier: ID.into(),
                    application: "d/1".into(),
                    reason: None,
                    worker_id: None,
                }
            ),
            format!(
                "{:?}",
                UnblockAccount {
                    identifier: ID.into(),
                    application: "d/1".into(),
                    worker_id: Some("w-1".into()),
                    temporary_password_hash: Some("$argon2id$hash".into()),
                    temporary_password_expires_at: None,
                }
            ),
            format!(
                "{:?}",
                ChangeAccountPhone {
                    identifier: ID.into(),
                    phone: PHONE.into(),
                    application: "d/1".into(),
                    worker_id: None,
                }
            ),
        ];
        for p in printed {
            for secret in [
                ID,
                PHONE,
                "Иванова",
                "Анна",
                "MP1234567",
                "493817",
                "lost phone",
            ] {
                assert!(!p.contains(secret), "{p} shows {secret}");
            }
        }
    }

    #[test]
    fn reasons_travel_in_snake_case() {
        for r in RequestRejectReason::ALL {
            let json = serde_json::to_string(&r).expect("json");
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        let block: BlockIdentifier =
            serde_json::from_str(r#"{"desk_id":"d","application_number":"1","identifier":"x"}"#)
                .expect("the reason is optional");
        assert_eq!(block.reason, None);
    }
}
