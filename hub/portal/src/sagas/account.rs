//! Account lifecycle by desk application: block, unblock, change of phone. One saga per desk
//! application (business key `desk_id/application_number`), in the order DOMAIN.md gives (an
//! unblock at a desk after the same identity and MVD checks as issuance, with a new temporary
//! password by SMS to the phone the registry holds; all earlier history kept; the person may
//! also unblock in the cabinet, see `crate::cabinet`):
//!
//! ```text
//! block v2      --validate--> reconciling --MVD--> blocking --registry--> blocked
//! unblock v2    --validate--> looking_up --registry: blocked--> reconciling --MVD--> unblocking
//!                 (new temporary password) --registry--> unblocked (password SMS to its phone)
//! block v1, unblock v1, change_phone v1 --> rejected (retired_version); a v2 under the same
//!                 number starts afresh
//! change_phone v2 --validate--> reconciling --MVD--> looking_up
//!                 --registry: active, phone free--> checking_subscriber
//!                 --operator--> confirming_phone --code--> changing_phone --registry--> phone_changed
//! any failed rule --> rejected (reason code, with the fields)
//! ```
//!
//! The transition is pure: the registry, MVD and SMS are reached by commands through the outbox.
//! The code for the new phone is not made here: the saga names it in [`Saga::fresh_secret`] and
//! the engine makes it, argon2 hash included, before it opens the step's transaction (see
//! `hub_runtime::engine`); it leaves the saga only sealed (to the SMS worker) or hashed (in the
//! saga's own state). The code the person reads out is checked in the transition, under the
//! saga row's lock, so that every attempt is counted exactly once.

use std::sync::Arc;
use std::time::Duration;

use adapters::Failure;
use chrono::{DateTime, NaiveDate, Utc};
use contracts::account::{
    AccountBlocked, AccountLookedUp, AccountPhoneChanged, AccountState, AccountUnblocked,
    BlockAccount, BlockIdentifier, BlockIdentifierV2, BlockOutcome, ChangeAccountPhone,
    ChangePhone, ChangePhoneOutcome, ChangePhoneV2, ConfirmNewPhone, IdentifierBlocked,
    IdentifierUnblocked, LookupAccount, NewPhoneCodeExpired, NewPhoneCodeSent, NewPhoneCodeWrong,
    PhoneChanged, PhoneUse, RequestRejectReason as Reason, RequestRejected, UnblockAccount,
    UnblockIdentifier, UnblockIdentifierV2, UnblockOutcome,
};
use contracts::issuance::{Applicant, IdentityDocument, RejectDetail, application_key};
use contracts::mvd::{Reconcile, ReconcileResult, Reconciled};
use contracts::person::{Msisdn, Operator, PhoneError};
use contracts::sealed::Sealed;
use contracts::sms::{
    CheckSubscriber, DeliveryReported, SendSms, SmsNotSent, SmsPurpose, SmsSent, SubscriberChecked,
    SubscriberStatus, WrongCode,
};
use contracts::{FieldError, Message, ValidationErrors, decode};
use serde::{Deserialize, Serialize};

use crate::sagas::identity::mvd_field;

use hub_runtime::broker::Incoming;
use hub_runtime::engine::{Command, Saga, SagaKey, Step, StepContext, TimerRequest};
use hub_runtime::secrets::{Sealer, SecretKind, verify_secret};

/// The saga type.
pub const SAGA_TYPE: &str = "account";
/// Its queue (short name).
pub const QUEUE: &str = "saga.account";
const CODE_TIMER: &str = "phone_code";
/// The code sent to the new phone: six digits.
const PHONE_CODE: SecretKind = SecretKind::Digits(6);

/// Rules the texts leave to the project, and the SMS text.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// How long a code sent to the new phone is valid.
    pub code_ttl: Duration,
    /// Codes accepted (wrong ones included) before the request is rejected.
    pub code_attempts: u32,
    /// The SMS with the code for the new phone; `{code}` is replaced.
    pub phone_code_text: String,
    /// How long the temporary password of an unblock is valid (as at issuance).
    pub temporary_password_ttl: Duration,
    /// The SMS with the temporary password of an unblock; `{identifier}` and `{password}` are
    /// replaced.
    pub temporary_password_text: String,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(10 * 60),
            code_attempts: 3,
            phone_code_text: "Код подтверждения нового номера для идентификатора: {code}. \
                              Никому его не сообщайте, кроме работника службы."
                .into(),
            temporary_password_ttl: Duration::from_secs(72 * 3600),
            temporary_password_text: "Идентификатор {identifier} разблокирован. Временный \
                                      пароль: {password}. Смените его при первом входе на портал."
                .into(),
        }
    }
}

/// The account lifecycle saga.
#[derive(Debug, Clone)]
pub struct AccountSaga {
    sealer: Arc<Sealer>,
    settings: AccountSettings,
}

impl AccountSaga {
    /// The saga with the hub's sealing key and settings.
    pub fn new(sealer: Arc<Sealer>, settings: AccountSettings) -> Self {
        Self { sealer, settings }
    }

    /// The instance key of a desk's request.
    pub fn key(desk_id: &str, application_number: &str) -> SagaKey {
        SagaKey::for_business_key(SAGA_TYPE, &application_key(desk_id, application_number))
    }
}

/// The saga's queue and what it takes from the bus (answers to its own commands come by
/// `reply_to`, the code timer through the requeue exchange).
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        QUEUE,
        [
            BlockIdentifier::TYPE.to_string(),
            BlockIdentifierV2::TYPE.to_string(),
            ChangePhoneV2::TYPE.to_string(),
            UnblockIdentifier::TYPE.to_string(),
            UnblockIdentifierV2::TYPE.to_string(),
            ChangePhone::TYPE.to_string(),
            ConfirmNewPhone::TYPE.to_string(),
        ],
    )
}

/// The state of one desk request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRequest {
    /// The desk.
    pub desk_id: String,
    /// The desk's application number.
    pub application_number: String,
    /// The identifier, normalised (as typed when it did not parse).
    pub identifier: String,
    /// The request as the desk sent it.
    pub request: Request,
    /// Where it is.
    pub stage: Stage,
}

impl AccountRequest {
    fn business_key(&self) -> String {
        application_key(&self.desk_id, &self.application_number)
    }

    /// The new phone, normalised, of a change of phone.
    fn new_phone(&self) -> Option<String> {
        match &self.request {
            Request::ChangePhone(c) => Msisdn::parse(&c.new_phone).ok().map(String::from),
            Request::ChangePhoneV2(c) => Msisdn::parse(&c.new_phone).ok().map(String::from),
            _ => None,
        }
    }
}

/// What the desk asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// Block the identifier: the retired version (rejected on arrival; one in flight when the
    /// hub was upgraded ends as before).
    Block(BlockIdentifier),
    /// Block the identifier, after the identity checks.
    BlockV2(BlockIdentifierV2),
    /// Bind it to a new phone, after the identity checks.
    ChangePhoneV2(ChangePhoneV2),
    /// Unblock it: the retired version (rejected on arrival; a request in flight when the hub
    /// was upgraded ends as a v2 does, with a new temporary password).
    Unblock(UnblockIdentifier),
    /// Unblock it, with a new temporary password.
    UnblockV2(UnblockIdentifierV2),
    /// Bind it to a new phone.
    ChangePhone(ChangePhone),
}

/// Where a request is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Waiting for the registry to block the account.
    Blocking,
    /// Waiting for the registry to say whether the account exists (and is blocked, and who uses
    /// the new phone).
    LookingUp,
    /// Waiting for the MVD registry.
    Reconciling,
    /// Waiting for the registry to unblock the account (and set the new temporary password).
    Unblocking {
        /// The SMS with the new temporary password, sealed (absent in a state stored before
        /// unblocking issued one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<Sealed>,
        /// The new temporary password's expiry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
    /// Waiting for the operators' subscriber check of the new phone.
    CheckingSubscriber,
    /// Waiting for the desk to send the code the person received on the new phone.
    ConfirmingPhone {
        /// Argon2 hash of the code.
        code_hash: String,
        /// Attempts left.
        attempts_left: u32,
        /// The code's expiry.
        expires_at: DateTime<Utc>,
        /// The operator that serves the new phone.
        operator: Operator,
    },
    /// Waiting for the registry to bind the new phone.
    ChangingPhone,
    /// The identifier is blocked.
    Blocked,
    /// The identifier is unblocked.
    Unblocked,
    /// The identifier uses the new phone.
    PhoneChanged,
    /// The request was rejected.
    Rejected {
        /// The rule.
        reason: Reason,
        /// Detail.
        detail: Option<RejectDetail>,
    },
}

/// What the saga reads from a message.
#[derive(Debug)]
pub enum Input {
    /// A desk's application to block, retired version.
    Block(BlockIdentifier),
    /// A desk's application to block.
    BlockV2(BlockIdentifierV2),
    /// A desk's application to change the phone.
    ChangePhoneV2(ChangePhoneV2),
    /// A desk's application to unblock, retired version.
    Unblock(UnblockIdentifier),
    /// A desk's application to unblock.
    UnblockV2(UnblockIdentifierV2),
    /// A desk's application to change the phone, retired version.
    ChangePhone(ChangePhone),
    /// The code the person read out.
    Confirm(ConfirmNewPhone),
    /// The registry's lookup.
    LookedUp(AccountLookedUp),
    /// The registry's answer to a block.
    Blocked(AccountBlocked),
    /// The registry's answer to an unblock.
    Unblocked(AccountUnblocked),
    /// The registry's answer to a change of phone.
    PhoneChanged(AccountPhoneChanged),
    /// The MVD registry's verdict.
    Reconciled(Reconciled),
    /// The operators' answer.
    Subscriber(SubscriberChecked),
    /// The code's timer.
    CodeExpired,
    /// The operator accepted the code SMS.
    SmsSent(SmsSent),
    /// The operator refused the code SMS.
    SmsNotSent(SmsNotSent),
    /// A delivery report.
    Delivery(DeliveryReported),
}

impl Saga for AccountSaga {
    type State = AccountRequest;
    type Input = Input;

    fn saga_type(&self) -> &'static str {
        SAGA_TYPE
    }

    fn read(&self, message: &Incoming) -> Result<(SagaKey, Input), Failure> {
        let t = message.metadata.message_type.as_str();
        let by_correlation = || SagaKey::from_correlation_id(&message.metadata);
        let body = &message.body;
        Ok(if BlockIdentifier::TYPE.matches(t) {
            let m: BlockIdentifier = decode(t, body)?;
            (
                Self::key(&m.desk_id, &m.application_number),
                Input::Block(m),
            )
        } else if UnblockIdentifier::TYPE.matches(t) {
            let m: UnblockIdentifier = decode(t, body)?;
            (
                Self::key(&m.desk_id, &m.application_number),
                Input::Unblock(m),
            )
        } else if BlockIdentifierV2::TYPE.matches(t) {
            let m: BlockIdentifierV2 = decode(t, body)?;
            (
                Self::key(&m.desk_id, &m.application_number),
                Input::BlockV2(m),
            )
        } else if ChangePhoneV2::TYPE.matches(t) {
            let m: ChangePhoneV2 = decode(t, body)?;
            (
                Self::key(&m.desk_id, &m.application_number),
                Input::ChangePhoneV2(m),
            )
        } else if UnblockIdentifierV2::TYPE.matches(t) {
            let m: UnblockIdentifierV2 = decode(t, body)?;
            (
                Self::key(&m.desk_id, &m.application_number),
                Input::UnblockV2(m),
            )
        } else if ChangePhone::TYPE.matches(t) {
            let m: ChangePhone = decode(t, body)?;
            (
                Self::key(&m.desk_id, &m.application_number),
                Input::ChangePhone(m),
            )
        } else if ConfirmNewPhone::TYPE.matches(t) {
            let m: ConfirmNewPhone = decode(t, body)?;
            (
                Self::key(&m.desk_id, &m.application_number),
                Input::Confirm(m),
            )
        } else if AccountLookedUp::TYPE.matches(t) {
            (by_correlation()?, Input::LookedUp(decode(t, body)?))
        } else if AccountBlocked::TYPE.matches(t) {
            (by_correlation()?, Input::Blocked(decode(t, body)?))
        } else if AccountUnblocked::TYPE.matches(t) {
            (by_correlation()?, Input::Unblocked(decode(t, body)?))
        } else if AccountPhoneChanged::TYPE.matches(t) {
            (by_correlation()?, Input::PhoneChanged(decode(t, body)?))
        } else if Reconciled::TYPE.matches(t) {
            (by_correlation()?, Input::Reconciled(decode(t, body)?))
        } else if SubscriberChecked::TYPE.matches(t) {
            (by_correlation()?, Input::Subscriber(decode(t, body)?))
        } else if NewPhoneCodeExpired::TYPE.matches(t) {
            let _: NewPhoneCodeExpired = decode(t, body)?;
            (by_correlation()?, Input::CodeExpired)
        } else if SmsSent::TYPE.matches(t) {
            (by_correlation()?, Input::SmsSent(decode(t, body)?))
        } else if SmsNotSent::TYPE.matches(t) {
            (by_correlation()?, Input::SmsNotSent(decode(t, body)?))
        } else if DeliveryReported::TYPE.matches(t) {
            (by_correlation()?, Input::Delivery(decode(t, body)?))
        } else {
            return Err(Failure::invalid_input(format!(
                "the account saga does not take {t}"
            )));
        })
    }

    /// Needs a new phone code when the operator confirmed the new phone is in service, and a
    /// new temporary password when the MVD confirms an unblock's person: the engine makes them
    /// (and their argon2 hashes) before it opens the step's transaction.
    fn fresh_secret(&self, state: Option<&AccountRequest>, input: &Input) -> Option<SecretKind> {
        let s = state?;
        match (&s.stage, input) {
            (Stage::Reconciling, Input::Reconciled(r))
                if r.result == ReconcileResult::Match && s.request.is_unblock() =>
            {
                Some(SecretKind::Password)
            }
            (Stage::CheckingSubscriber, Input::Subscriber(c))
                if c.status == SubscriberStatus::Active && c.operator.is_some() =>
            {
                Some(PHONE_CODE)
            }
            _ => None,
        }
    }

    /// A code, judged by the message alone (see [`Saga::likely_secret`]): the operator's answer
    /// that the new phone is in service.
    fn likely_secret(&self, input: &Input) -> Option<SecretKind> {
        match input {
            Input::Subscriber(c)
                if c.status == SubscriberStatus::Active && c.operator.is_some() =>
            {
                Some(PHONE_CODE)
            }
            _ => None,
        }
    }

    fn transition(
        &self,
        state: Option<&AccountRequest>,
        input: &Input,
        ctx: &StepContext<'_>,
    ) -> Result<Step<AccountRequest>, Failure> {
        let Some(s) = state else {
            return match input {
                Input::Block(b) => retired(
                    &b.desk_id,
                    &b.application_number,
                    &b.identifier,
                    Request::Block(b.clone()),
                    BlockIdentifierV2::TYPE,
                ),
                Input::Unblock(u) => retired(
                    &u.desk_id,
                    &u.application_number,
                    &u.person.identification_number,
                    Request::Unblock(u.clone()),
                    UnblockIdentifierV2::TYPE,
                ),
                Input::ChangePhone(c) => retired(
                    &c.desk_id,
                    &c.application_number,
                    &c.identifier,
                    Request::ChangePhone(c.clone()),
                    ChangePhoneV2::TYPE,
                ),
                Input::BlockV2(_) | Input::UnblockV2(_) | Input::ChangePhoneV2(_) => {
                    start(input, ctx.now.date_naive())
                }
                Input::Confirm(_) => Err(Failure::permanent("no such application")),
                _ => Err(Failure::permanent(
                    "an answer for an application that does not exist",
                )),
            };
        };
        match (&s.stage, input) {
            // The desk sends v2 under the number its retired v1 was refused under: a fresh start.
            (
                Stage::Rejected {
                    reason: Reason::RetiredVersion,
                    ..
                },
                Input::BlockV2(_) | Input::UnblockV2(_) | Input::ChangePhoneV2(_),
            ) => start(input, ctx.now.date_naive()),
            (
                _,
                Input::Block(_)
                | Input::BlockV2(_)
                | Input::Unblock(_)
                | Input::UnblockV2(_)
                | Input::ChangePhone(_)
                | Input::ChangePhoneV2(_),
            ) => {
                if request_of(input).as_ref() == Some(&s.request) {
                    Ok(Step::to(s.clone())) // the desk sent it again: no change
                } else {
                    Err(Failure::permanent(
                        "this application number is taken by another request of the desk",
                    ))
                }
            }
            (Stage::Blocking, Input::Blocked(b)) => blocked(s, b, ctx),
            (Stage::LookingUp, Input::LookedUp(l)) => self.looked_up(s, l),
            (Stage::Reconciling, Input::Reconciled(r)) => self.reconciled(s, r, ctx),
            (Stage::Unblocking { text, expires_at }, Input::Unblocked(u)) => {
                let password = text.as_ref().zip(*expires_at);
                unblocked(s, u, password, ctx)
            }
            (Stage::CheckingSubscriber, Input::Subscriber(c)) => self.subscriber(s, c, ctx),
            (
                Stage::ConfirmingPhone {
                    code_hash,
                    attempts_left,
                    expires_at,
                    operator,
                },
                Input::Confirm(c),
            ) => {
                let code = CodeCheck {
                    code_hash,
                    attempts_left: *attempts_left,
                    expires_at: *expires_at,
                    operator: *operator,
                };
                confirm(s, &code, c, ctx)
            }
            (Stage::ConfirmingPhone { .. }, Input::CodeExpired) => {
                not_confirmed(s, RejectDetail::TimedOut)
            }
            // The operator refused the code for good: no code will come.
            (Stage::ConfirmingPhone { .. }, Input::SmsNotSent(n))
                if n.purpose == SmsPurpose::PhoneCode =>
            {
                not_confirmed(s, RejectDetail::CodeNotDelivered)
            }
            (Stage::ChangingPhone, Input::PhoneChanged(c)) => phone_changed(s, c, ctx),
            // Late or repeated answers (the code SMS accepted or reported, a second copy of a
            // reply, the code timer after the code was confirmed, a code after the end) change
            // nothing.
            _ => Ok(Step::to(s.clone())),
        }
    }

    fn state_name(&self, state: &AccountRequest) -> String {
        match &state.stage {
            Stage::Blocking => "blocking",
            Stage::LookingUp => "looking_up",
            Stage::Reconciling => "reconciling",
            Stage::Unblocking { .. } => "unblocking",
            Stage::CheckingSubscriber => "checking_subscriber",
            Stage::ConfirmingPhone { .. } => "confirming_phone",
            Stage::ChangingPhone => "changing_phone",
            Stage::Blocked => "blocked",
            Stage::Unblocked => "unblocked",
            Stage::PhoneChanged => "phone_changed",
            Stage::Rejected { .. } => "rejected",
        }
        .into()
    }

    fn is_terminal(&self, state: &AccountRequest) -> bool {
        matches!(
            state.stage,
            Stage::Blocked | Stage::Unblocked | Stage::PhoneChanged | Stage::Rejected { .. }
        )
    }
}

impl AccountSaga {
    /// The registry's lookup, for an unblock or a change of phone.
    fn looked_up(
        &self,
        s: &AccountRequest,
        l: &AccountLookedUp,
    ) -> Result<Step<AccountRequest>, Failure> {
        match (&s.request, l.state) {
            (_, AccountState::Unknown) => unknown(s),
            (Request::Unblock(_), AccountState::Active) => {
                reject(s, Reason::NotBlocked, None, vec![])
            }
            (Request::Unblock(_) | Request::UnblockV2(_), AccountState::Blocked) => {
                let (person, document, _) = s
                    .request
                    .identity()
                    .ok_or_else(|| Failure::permanent("an unblock without its person"))?;
                let mut person = person.clone();
                person.identification_number.clone_from(&s.identifier);
                Ok(
                    with_stage(s, Stage::Reconciling).send(Command::new(&Reconcile {
                        person,
                        document: document.clone(),
                    })?),
                )
            }
            (Request::UnblockV2(_), AccountState::Active) => {
                reject(s, Reason::NotBlocked, None, vec![])
            }
            (Request::ChangePhone(_) | Request::ChangePhoneV2(_), AccountState::Blocked) => reject(
                s,
                Reason::AlreadyBlocked,
                Some(RejectDetail::IdentifierBlocked),
                vec![],
            ),
            (Request::ChangePhone(_) | Request::ChangePhoneV2(_), AccountState::Active) => {
                match l.phone {
                    Some(PhoneUse::AnotherIdentifier) => phone_bound(s),
                    Some(PhoneUse::ThisIdentifier) => reject(
                        s,
                        Reason::InvalidInput,
                        None,
                        vec![FieldError {
                            field: "new_phone".into(),
                            problem: "is the identifier's phone already".into(),
                        }],
                    ),
                    Some(PhoneUse::Free) | None => {
                        let phone = s
                            .new_phone()
                            .ok_or_else(|| Failure::permanent("validated new phone missing"))?;
                        Ok(with_stage(s, Stage::CheckingSubscriber)
                            .send(Command::new(&CheckSubscriber { phone })?))
                    }
                }
            }
            // A block does not look up: a stray answer changes nothing.
            (Request::Block(_) | Request::BlockV2(_), _) => Ok(Step::to(s.clone())),
        }
    }

    /// The operators' answer about the new phone: send the code, or reject.
    fn subscriber(
        &self,
        s: &AccountRequest,
        c: &SubscriberChecked,
        ctx: &StepContext<'_>,
    ) -> Result<Step<AccountRequest>, Failure> {
        let (SubscriberStatus::Active, Some(operator)) = (c.status, c.operator) else {
            let detail = match c.status {
                SubscriberStatus::Blocked => RejectDetail::SubscriberBlocked,
                _ => RejectDetail::NoSubscriber,
            };
            return reject(s, Reason::PhoneNotMobile, Some(detail), vec![]);
        };
        let phone = s
            .new_phone()
            .ok_or_else(|| Failure::permanent("validated new phone missing"))?;
        // Made and hashed before the transaction (see `fresh_secret`).
        let code = ctx.fresh_secret(PHONE_CODE)?;
        let mut rng = ctx.rng();
        let text = self
            .settings
            .phone_code_text
            .replace("{code}", code.clear());
        let sealed = self.sealer.seal(&mut rng, &text)?;
        let expires_at = ctx.now + self.settings.code_ttl;
        Ok(with_stage(
            s,
            Stage::ConfirmingPhone {
                code_hash: code.hash().to_owned(),
                attempts_left: self.settings.code_attempts,
                expires_at,
                operator,
            },
        )
        .send(Command::new(&SendSms {
            to: phone.clone(),
            operator: Some(operator),
            purpose: SmsPurpose::PhoneCode,
            text: sealed,
        })?)
        .send(Command::new(&NewPhoneCodeSent {
            desk_id: s.desk_id.clone(),
            application_number: s.application_number.clone(),
            phone_masked: masked_phone(&phone),
            expires_at,
            attempts_left: self.settings.code_attempts,
        })?)
        .set_timer(TimerRequest {
            name: CODE_TIMER.into(),
            after: self.settings.code_ttl,
            message: Command::new(&NewPhoneCodeExpired {
                desk_id: s.desk_id.clone(),
                application_number: s.application_number.clone(),
            })?,
        }))
    }
}

/// The request a desk message makes, to tell a re-send from another request under the same
/// application number.
fn request_of(input: &Input) -> Option<Request> {
    match input {
        Input::Block(b) => Some(Request::Block(b.clone())),
        Input::BlockV2(b) => Some(Request::BlockV2(b.clone())),
        Input::ChangePhoneV2(c) => Some(Request::ChangePhoneV2(c.clone())),
        Input::Unblock(u) => Some(Request::Unblock(u.clone())),
        Input::UnblockV2(u) => Some(Request::UnblockV2(u.clone())),
        Input::ChangePhone(c) => Some(Request::ChangePhone(c.clone())),
        _ => None,
    }
}

fn initial(
    desk_id: &str,
    application_number: &str,
    identifier: String,
    request: Request,
    stage: Stage,
) -> AccountRequest {
    AccountRequest {
        desk_id: desk_id.to_owned(),
        application_number: application_number.to_owned(),
        identifier,
        request,
        stage,
    }
}

/// A v1 request (no worker, no proof of identity) is refused, naming the version to send.
fn retired(
    desk_id: &str,
    application_number: &str,
    identifier: &str,
    request: Request,
    instead: contracts::MessageType,
) -> Result<Step<AccountRequest>, Failure> {
    let state = initial(
        desk_id,
        application_number,
        identifier.to_owned(),
        request,
        Stage::LookingUp,
    );
    reject(
        &state,
        Reason::RetiredVersion,
        Some(RejectDetail::Other(format!(
            "send {instead} with the worker, the person and the identity document presented \
             (checked as at issuance)"
        ))),
        vec![],
    )
}

/// A v2 request: its form (the desk, the worker, the person and the document as at issuance,
/// the request's own fields), the consent and the document's expiry; then an unblock looks the
/// account up, a block and a change of phone go to the MVD registry first.
fn start(input: &Input, today: NaiveDate) -> Result<Step<AccountRequest>, Failure> {
    let (request, desk_id, number, worker_id, person, document, consent) = match input {
        Input::BlockV2(b) => (
            Request::BlockV2(b.clone()),
            &b.desk_id,
            &b.application_number,
            &b.worker_id,
            &b.person,
            &b.document,
            b.consent_to_mvd_check,
        ),
        Input::UnblockV2(u) => (
            Request::UnblockV2(u.clone()),
            &u.desk_id,
            &u.application_number,
            &u.worker_id,
            &u.person,
            &u.document,
            u.consent_to_mvd_check,
        ),
        Input::ChangePhoneV2(c) => (
            Request::ChangePhoneV2(c.clone()),
            &c.desk_id,
            &c.application_number,
            &c.worker_id,
            &c.person,
            &c.document,
            c.consent_to_mvd_check,
        ),
        _ => return Err(Failure::permanent("not a desk's request")),
    };
    let mut e = ValidationErrors::new();
    check_application(&mut e, desk_id, number);
    e.check(
        !worker_id.trim().is_empty(),
        "worker_id",
        "must not be empty",
    );
    let id = crate::sagas::identity::check_person_and_document(&mut e, person, document, today);
    let mut phone = None;
    match &request {
        Request::BlockV2(b) => {
            if let Some(reason) = &b.reason {
                e.check(
                    reason.chars().count() <= 1000,
                    "reason",
                    "must be at most 1000 characters",
                );
            }
        }
        Request::ChangePhoneV2(c) => {
            let parsed = Msisdn::parse(&c.new_phone);
            if let Err(PhoneError::Malformed { problem }) = &parsed {
                e.add("new_phone", format!("is malformed: {problem}"));
            }
            phone = Some(parsed);
        }
        _ => {}
    }
    let identifier = id.map_or_else(|| person.identification_number.clone(), String::from);
    let first = if matches!(request, Request::UnblockV2(_)) {
        Stage::LookingUp
    } else {
        Stage::Reconciling
    };
    let state = initial(desk_id, number, identifier, request, first);
    if !e.is_empty() {
        return reject(&state, Reason::InvalidInput, None, e.fields);
    }
    if !consent {
        return reject(&state, Reason::ConsentMissing, None, vec![]);
    }
    if document.expires_on < today {
        return reject(
            &state,
            Reason::DocumentInvalid,
            Some(RejectDetail::Expired),
            vec![],
        );
    }
    if let Some(Err(err)) = phone {
        return reject(
            &state,
            Reason::PhoneNotMobile,
            None,
            vec![FieldError {
                field: "new_phone".into(),
                problem: err.to_string(),
            }],
        );
    }
    if state.stage == Stage::LookingUp {
        return Ok(Step::to(state.clone()).send(Command::new(&LookupAccount {
            identifier: state.identifier.clone(),
            phone: None,
        })?));
    }
    let mut person = person.clone();
    person.identification_number.clone_from(&state.identifier);
    Ok(Step::to(state).send(Command::new(&Reconcile {
        person,
        document: document.clone(),
    })?))
}

/// The code awaited on the new phone, as the state keeps it.
struct CodeCheck<'a> {
    code_hash: &'a str,
    attempts_left: u32,
    expires_at: DateTime<Utc>,
    operator: Operator,
}

/// The registry's answer to a block.
fn blocked(
    s: &AccountRequest,
    b: &AccountBlocked,
    ctx: &StepContext<'_>,
) -> Result<Step<AccountRequest>, Failure> {
    match b.outcome {
        BlockOutcome::Blocked => Ok(with_stage(s, Stage::Blocked).send(Command::new(
            &IdentifierBlocked {
                desk_id: s.desk_id.clone(),
                application_number: s.application_number.clone(),
                blocked_at: ctx.now,
            },
        )?)),
        BlockOutcome::AlreadyBlocked => reject(s, Reason::AlreadyBlocked, None, vec![]),
        BlockOutcome::UnknownIdentifier => unknown(s),
    }
}

impl AccountSaga {
    /// The MVD registry's verdict on an unblock: on a match, a new temporary password (made and
    /// hashed before the transaction) goes to the registry with the unblock, its SMS sealed in
    /// the state until the registry names the phone.
    fn reconciled(
        &self,
        s: &AccountRequest,
        r: &Reconciled,
        ctx: &StepContext<'_>,
    ) -> Result<Step<AccountRequest>, Failure> {
        if r.result != ReconcileResult::Match {
            return not_reconciled(s, r);
        }
        let worker_id = s
            .request
            .identity()
            .and_then(|(_, _, w)| w)
            .map(str::to_owned);
        match &s.request {
            Request::BlockV2(b) => {
                return Ok(
                    with_stage(s, Stage::Blocking).send(Command::new(&BlockAccount {
                        identifier: s.identifier.clone(),
                        application: s.business_key(),
                        reason: b.reason.as_ref().map(|r| r.trim().to_owned()),
                        worker_id,
                    })?),
                );
            }
            Request::ChangePhoneV2(_) => {
                let phone = s
                    .new_phone()
                    .ok_or_else(|| Failure::permanent("validated new phone missing"))?;
                return Ok(
                    with_stage(s, Stage::LookingUp).send(Command::new(&LookupAccount {
                        identifier: s.identifier.clone(),
                        phone: Some(phone),
                    })?),
                );
            }
            _ => {}
        }
        let password = ctx.fresh_secret(SecretKind::Password)?;
        let mut rng = ctx.rng();
        let expires_at = ctx.now + self.settings.temporary_password_ttl;
        let text = self
            .settings
            .temporary_password_text
            .replace("{identifier}", &s.identifier)
            .replace("{password}", password.clear());
        Ok(with_stage(
            s,
            Stage::Unblocking {
                text: Some(self.sealer.seal(&mut rng, &text)?),
                expires_at: Some(expires_at),
            },
        )
        .send(Command::new(&UnblockAccount {
            identifier: s.identifier.clone(),
            application: s.business_key(),
            worker_id,
            temporary_password_hash: Some(password.hash().to_owned()),
            temporary_password_expires_at: Some(expires_at),
        })?))
    }
}

/// The MVD registry's verdict on an unblock, when it is not a match.
fn not_reconciled(s: &AccountRequest, r: &Reconciled) -> Result<Step<AccountRequest>, Failure> {
    match &r.result {
        ReconcileResult::Match => Err(Failure::permanent("a match is not a refusal")),
        ReconcileResult::Mismatch { fields } => {
            let fields = fields
                .iter()
                .map(|f| FieldError {
                    field: mvd_field(f),
                    problem: "differs from the MVD registry".into(),
                })
                .collect();
            reject(s, Reason::MvdMismatch, None, fields)
        }
        ReconcileResult::PersonUnknown => reject(
            s,
            Reason::MvdMismatch,
            Some(RejectDetail::PersonUnknown),
            vec![FieldError {
                field: "person.identification_number".into(),
                problem: "the MVD registry does not know this person".into(),
            }],
        ),
        ReconcileResult::DocumentInvalid { status } => reject(
            s,
            Reason::DocumentInvalid,
            Some(RejectDetail::from(status.as_str())),
            vec![],
        ),
    }
}

/// The registry's answer to an unblock: the sealed temporary password goes to the phone the
/// registry holds (the SMS worker's own retries deliver it; if it never arrives, the desk asks
/// for a resend under the issuance application, which the temporary password allows).
fn unblocked(
    s: &AccountRequest,
    u: &AccountUnblocked,
    password: Option<(&Sealed, DateTime<Utc>)>,
    ctx: &StepContext<'_>,
) -> Result<Step<AccountRequest>, Failure> {
    match u.outcome {
        UnblockOutcome::Unblocked => {
            let sms = password.zip(u.phone.as_ref());
            let mut step =
                with_stage(s, Stage::Unblocked).send(Command::new(&IdentifierUnblocked {
                    desk_id: s.desk_id.clone(),
                    application_number: s.application_number.clone(),
                    unblocked_at: ctx.now,
                    phone_masked: sms.map(|(_, phone)| masked_phone(phone)),
                    temporary_password_expires_at: sms.map(|((_, at), _)| at),
                })?);
            if let Some(((text, _), phone)) = sms {
                step = step.send(
                    Command::new(&SendSms {
                        to: phone.clone(),
                        operator: None,
                        purpose: SmsPurpose::TemporaryPassword,
                        text: text.clone(),
                    })?
                    .detach(),
                );
            }
            Ok(step)
        }
        // Unblocked meanwhile by another application: nothing is left to do here.
        UnblockOutcome::NotBlocked => reject(s, Reason::NotBlocked, None, vec![]),
        UnblockOutcome::UnknownIdentifier => unknown(s),
    }
}

/// The code the person read out, checked here, under the saga row's lock, so that each attempt
/// is counted before the next is checked.
fn confirm(
    s: &AccountRequest,
    code: &CodeCheck<'_>,
    c: &ConfirmNewPhone,
    ctx: &StepContext<'_>,
) -> Result<Step<AccountRequest>, Failure> {
    if ctx.now >= code.expires_at {
        return not_confirmed(s, RejectDetail::TimedOut);
    }
    if verify_secret(c.code.trim(), code.code_hash) {
        let phone = s
            .new_phone()
            .ok_or_else(|| Failure::permanent("validated new phone missing"))?;
        return Ok(with_stage(s, Stage::ChangingPhone)
            .send(Command::new(&ChangeAccountPhone {
                identifier: s.identifier.clone(),
                phone,
                application: s.business_key(),
                worker_id: s
                    .request
                    .identity()
                    .and_then(|(_, _, w)| w)
                    .map(str::to_owned),
            })?)
            .cancel_timer(CODE_TIMER));
    }
    if code.attempts_left <= 1 {
        return count_wrong_code(s, not_confirmed(s, RejectDetail::TooManyAttempts)?);
    }
    let left = code.attempts_left - 1;
    let step = with_stage(
        s,
        Stage::ConfirmingPhone {
            code_hash: code.code_hash.to_owned(),
            attempts_left: left,
            expires_at: code.expires_at,
            operator: code.operator,
        },
    )
    .send(Command::new(&NewPhoneCodeWrong {
        desk_id: s.desk_id.clone(),
        application_number: s.application_number.clone(),
        attempts_left: left,
    })?);
    count_wrong_code(s, step)
}

/// The registry's answer to the change of phone.
fn phone_changed(
    s: &AccountRequest,
    c: &AccountPhoneChanged,
    ctx: &StepContext<'_>,
) -> Result<Step<AccountRequest>, Failure> {
    match c.outcome {
        ChangePhoneOutcome::Changed => {
            let phone = s.new_phone().unwrap_or_default();
            Ok(
                with_stage(s, Stage::PhoneChanged).send(Command::new(&PhoneChanged {
                    desk_id: s.desk_id.clone(),
                    application_number: s.application_number.clone(),
                    phone_masked: masked_phone(&phone),
                    changed_at: ctx.now,
                })?),
            )
        }
        ChangePhoneOutcome::PhoneBound => phone_bound(s),
        ChangePhoneOutcome::Blocked => reject(
            s,
            Reason::AlreadyBlocked,
            Some(RejectDetail::IdentifierBlocked),
            vec![],
        ),
        ChangePhoneOutcome::UnknownIdentifier => unknown(s),
    }
}

fn with_stage(s: &AccountRequest, stage: Stage) -> Step<AccountRequest> {
    Step::to(AccountRequest { stage, ..s.clone() })
}

/// Ends the request with `reason`, telling the desk. The code timer, if any, is cancelled
/// (cancelling a timer that is not set does nothing).
fn reject(
    s: &AccountRequest,
    reason: Reason,
    detail: Option<RejectDetail>,
    fields: Vec<FieldError>,
) -> Result<Step<AccountRequest>, Failure> {
    let step = with_stage(
        s,
        Stage::Rejected {
            reason,
            detail: detail.clone(),
        },
    )
    .send(Command::new(&RequestRejected {
        desk_id: s.desk_id.clone(),
        application_number: s.application_number.clone(),
        reason,
        detail,
        fields,
    })?);
    Ok(if matches!(s.stage, Stage::ConfirmingPhone { .. }) {
        step.cancel_timer(CODE_TIMER)
    } else {
        step
    })
}

fn unknown(s: &AccountRequest) -> Result<Step<AccountRequest>, Failure> {
    let field = match s.request {
        Request::Unblock(_)
        | Request::UnblockV2(_)
        | Request::BlockV2(_)
        | Request::ChangePhoneV2(_) => "person.identification_number",
        _ => "identifier",
    };
    reject(
        s,
        Reason::UnknownIdentifier,
        None,
        vec![FieldError {
            field: field.into(),
            problem: "no identifier is assigned under this number".into(),
        }],
    )
}

fn phone_bound(s: &AccountRequest) -> Result<Step<AccountRequest>, Failure> {
    reject(
        s,
        Reason::PhoneBound,
        None,
        vec![FieldError {
            field: "new_phone".into(),
            problem: "is used with another identifier".into(),
        }],
    )
}

/// Tells the SMS worker a wrong code was typed for the new phone: it counts them per phone over
/// every application and recovery, as for issuance.
fn count_wrong_code(
    s: &AccountRequest,
    step: Step<AccountRequest>,
) -> Result<Step<AccountRequest>, Failure> {
    let Some(phone) = s.new_phone() else {
        return Ok(step);
    };
    Ok(step.send(
        Command::new(&WrongCode {
            phone,
            purpose: SmsPurpose::PhoneCode,
        })?
        .detach(),
    ))
}

fn not_confirmed(
    s: &AccountRequest,
    detail: RejectDetail,
) -> Result<Step<AccountRequest>, Failure> {
    reject(s, Reason::PhoneNotConfirmed, Some(detail), vec![])
}

fn masked_phone(phone: &str) -> String {
    Msisdn::parse(phone).map_or_else(|_| "***".into(), |p| p.masked())
}

fn check_application(e: &mut ValidationErrors, desk_id: &str, application_number: &str) {
    e.check(!desk_id.trim().is_empty(), "desk_id", "must not be empty");
    e.check(
        !application_number.trim().is_empty(),
        "application_number",
        "must not be empty",
    );
}

impl Request {
    /// The person, the document and the worker of a request that carries them.
    fn identity(&self) -> Option<(&Applicant, &IdentityDocument, Option<&str>)> {
        match self {
            Request::Unblock(u) => Some((&u.person, &u.document, None)),
            Request::UnblockV2(u) => Some((&u.person, &u.document, Some(u.worker_id.as_str()))),
            Request::BlockV2(b) => Some((&b.person, &b.document, Some(b.worker_id.as_str()))),
            Request::ChangePhoneV2(c) => Some((&c.person, &c.document, Some(c.worker_id.as_str()))),
            Request::Block(_) | Request::ChangePhone(_) => None,
        }
    }

    fn is_unblock(&self) -> bool {
        matches!(self, Request::Unblock(_) | Request::UnblockV2(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::Metadata;
    use contracts::issuance::DocumentKind;
    use contracts::person::PersonStatus;
    use contracts::sms::NotSentReason;
    use hub_runtime::secrets::FreshSecret;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use uuid::Uuid;

    const ID: &str = "3270287A012PB2";

    fn saga() -> AccountSaga {
        let sealer = Sealer::from_config(Some("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
            .expect("key");
        AccountSaga::new(Arc::new(sealer), AccountSettings::default())
    }

    fn block() -> BlockIdentifierV2 {
        let u = unblock();
        let mut person = u.person;
        // As a worker might type it: lower case, spaces around.
        person.identification_number = " 3270287a012pb2 ".into();
        BlockIdentifierV2 {
            desk_id: "minsk-1".into(),
            application_number: "B-1".into(),
            worker_id: "w-7".into(),
            person,
            document: u.document,
            consent_to_mvd_check: true,
            reason: Some("gives it up".into()),
        }
    }

    fn matched() -> Input {
        reconciled(ReconcileResult::Match)
    }

    fn unblock() -> UnblockIdentifierV2 {
        UnblockIdentifierV2 {
            desk_id: "minsk-1".into(),
            application_number: "U-1".into(),
            worker_id: "w-7".into(),
            person: Applicant {
                identification_number: ID.into(),
                surname: "Иванова".into(),
                given_name: "Анна".into(),
                patronymic: Some("Сергеевна".into()),
                birth_date: NaiveDate::from_ymd_opt(1987, 2, 27).expect("date"),
                status: PersonStatus::Citizen,
            },
            document: IdentityDocument {
                kind: DocumentKind::Passport,
                number: "MP1234567".into(),
                issued_on: NaiveDate::from_ymd_opt(2020, 3, 1).expect("date"),
                expires_on: NaiveDate::from_ymd_opt(2030, 3, 1).expect("date"),
            },
            consent_to_mvd_check: true,
        }
    }

    fn change_phone() -> ChangePhoneV2 {
        let u = unblock();
        ChangePhoneV2 {
            desk_id: "minsk-1".into(),
            application_number: "P-1".into(),
            worker_id: "w-7".into(),
            person: u.person,
            document: u.document,
            consent_to_mvd_check: true,
            new_phone: "8 (029) 765-43-21".into(),
        }
    }

    fn confirm(code: &str) -> Input {
        Input::Confirm(ConfirmNewPhone {
            desk_id: "minsk-1".into(),
            application_number: "P-1".into(),
            code: code.into(),
        })
    }

    struct Run {
        saga: AccountSaga,
        meta: Metadata,
        seed: u8,
        now: DateTime<Utc>,
    }

    impl Run {
        fn new() -> Self {
            Self {
                saga: saga(),
                meta: Metadata::new("test.v1", "test"),
                seed: 0,
                now: DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
                    .expect("time")
                    .with_timezone(&Utc),
            }
        }

        fn try_step(
            &mut self,
            state: Option<&AccountRequest>,
            input: Input,
        ) -> Result<Step<AccountRequest>, Failure> {
            self.seed += 1;
            // As the engine does before its transaction: the new secret the saga asks for.
            let prepared = self.saga.fresh_secret(state, &input).map(|kind| {
                let mut rng = StdRng::from_seed([self.seed.wrapping_add(100); 32]);
                FreshSecret::make_with(kind, &mut rng).expect("secret")
            });
            let ctx = StepContext {
                now: self.now,
                saga_id: Uuid::nil(),
                message: &self.meta,
                seed: [self.seed; 32],
                prepared: prepared.as_ref(),
            };
            self.saga.transition(state, &input, &ctx)
        }

        fn step(&mut self, state: Option<&AccountRequest>, input: Input) -> Step<AccountRequest> {
            self.try_step(state, input).expect("transition")
        }

        /// Runs `inputs` from no state; returns every step.
        fn run(&mut self, inputs: Vec<Input>) -> Vec<Step<AccountRequest>> {
            let mut steps: Vec<Step<AccountRequest>> = Vec::new();
            for input in inputs {
                let state = steps.last().map(|s| s.state.clone());
                steps.push(self.step(state.as_ref(), input));
            }
            steps
        }
    }

    fn sent(step: &Step<AccountRequest>) -> Vec<String> {
        step.commands
            .iter()
            .map(|c| c.message_type.to_string())
            .collect()
    }

    fn body<M: Message>(step: &Step<AccountRequest>) -> M {
        let c = step
            .commands
            .iter()
            .find(|c| c.message_type == M::TYPE)
            .unwrap_or_else(|| panic!("a {} in {:?}", M::TYPE, sent(step)));
        serde_json::from_slice(&c.body).expect("body")
    }

    fn rejection(step: &Step<AccountRequest>) -> RequestRejected {
        body(step)
    }

    fn looked_up(state: AccountState, phone: Option<PhoneUse>) -> Input {
        Input::LookedUp(AccountLookedUp { state, phone })
    }

    fn reconciled(result: ReconcileResult) -> Input {
        Input::Reconciled(Reconciled {
            reconciliation_id: "r".into(),
            result,
            checked_on: NaiveDate::from_ymd_opt(2026, 11, 22).expect("date"),
        })
    }

    fn subscriber(status: SubscriberStatus) -> Input {
        Input::Subscriber(SubscriberChecked {
            status,
            operator: Some(Operator::Mts),
        })
    }

    #[test]
    fn a_block_goes_to_the_registry_and_ends_blocked() {
        let mut run = Run::new();
        let steps = run.run(vec![
            Input::BlockV2(block()),
            matched(),
            Input::Blocked(AccountBlocked {
                outcome: BlockOutcome::Blocked,
            }),
        ]);
        // The person is checked as at issuance before anything is blocked.
        assert_eq!(sent(&steps[0]), ["mvd.reconcile.v1"]);
        let reconcile: Reconcile = body(&steps[0]);
        assert_eq!(reconcile.person.identification_number, ID, "normalised");
        assert_eq!(reconcile.document, block().document);
        assert_eq!(run.saga.state_name(&steps[0].state), "reconciling");
        assert_eq!(
            run.saga.fresh_secret(Some(&steps[0].state), &matched()),
            None,
            "a block hands out no password"
        );
        assert_eq!(sent(&steps[1]), ["registry.block_account.v1"]);
        let cmd: BlockAccount = body(&steps[1]);
        assert_eq!(cmd.identifier, ID, "the identifier is normalised");
        assert_eq!(cmd.application, "minsk-1/B-1");
        assert_eq!(cmd.reason.as_deref(), Some("gives it up"));
        assert_eq!(cmd.worker_id.as_deref(), Some("w-7"));
        assert_eq!(run.saga.state_name(&steps[1].state), "blocking");
        assert_eq!(sent(&steps[2]), ["identifier.blocked.v1"]);
        let blocked: IdentifierBlocked = body(&steps[2]);
        assert_eq!(
            (blocked.application_number.as_str(), blocked.blocked_at),
            ("B-1", run.now)
        );
        assert!(run.saga.is_terminal(&steps[2].state));
    }

    #[test]
    fn a_block_of_a_blocked_or_unknown_identifier_is_rejected_with_its_reason() {
        let mut run = Run::new();
        for (outcome, reason) in [
            (BlockOutcome::AlreadyBlocked, Reason::AlreadyBlocked),
            (BlockOutcome::UnknownIdentifier, Reason::UnknownIdentifier),
        ] {
            let steps = run.run(vec![
                Input::BlockV2(block()),
                matched(),
                Input::Blocked(AccountBlocked { outcome }),
            ]);
            assert_eq!(sent(&steps[2]), ["identifier.request_rejected.v1"]);
            assert_eq!(rejection(&steps[2]).reason, reason);
            assert!(run.saga.is_terminal(&steps[2].state));
        }
        // The MVD does not confirm the person: nothing is blocked.
        let steps = run.run(vec![
            Input::BlockV2(block()),
            reconciled(ReconcileResult::Mismatch {
                fields: vec!["document.number".into()],
            }),
        ]);
        assert_eq!(sent(&steps[1]), ["identifier.request_rejected.v1"]);
        assert_eq!(rejection(&steps[1]).reason, Reason::MvdMismatch);
        let mut no_consent = block();
        no_consent.consent_to_mvd_check = false;
        let step = run.step(None, Input::BlockV2(no_consent));
        assert_eq!(rejection(&step).reason, Reason::ConsentMissing);

        let mut bad = block();
        bad.person.identification_number = "3270287А012PB2".into(); // a Cyrillic А
        bad.application_number = " ".into();
        let step = run.step(None, Input::BlockV2(bad));
        assert_eq!(
            sent(&step),
            ["identifier.request_rejected.v1"],
            "nothing reaches the registry"
        );
        let r = rejection(&step);
        assert_eq!(r.reason, Reason::InvalidInput);
        let fields: Vec<&str> = r.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["application_number", "person.identification_number"]
        );

        // The retired v1 is refused; v2 under its number starts afresh.
        let v1 = BlockIdentifier {
            desk_id: "minsk-1".into(),
            application_number: "B-1".into(),
            identifier: ID.into(),
            reason: None,
        };
        let refused = run.step(None, Input::Block(v1));
        assert_eq!(rejection(&refused).reason, Reason::RetiredVersion);
        let again = run.step(Some(&refused.state), Input::BlockV2(block()));
        assert_eq!(sent(&again), ["mvd.reconcile.v1"]);
    }

    #[test]
    fn an_unblock_looks_up_reconciles_with_the_mvd_then_unblocks() {
        let mut run = Run::new();
        let steps = run.run(vec![
            Input::UnblockV2(unblock()),
            looked_up(AccountState::Blocked, None),
            reconciled(ReconcileResult::Match),
            Input::Unblocked(AccountUnblocked {
                outcome: UnblockOutcome::Unblocked,
                phone: Some("+375297654321".into()),
            }),
        ]);
        assert_eq!(sent(&steps[0]), ["registry.lookup_account.v1"]);
        let lookup: LookupAccount = body(&steps[0]);
        assert_eq!((lookup.identifier.as_str(), lookup.phone), (ID, None));
        assert_eq!(sent(&steps[1]), ["mvd.reconcile.v1"]);
        let reconcile: Reconcile = body(&steps[1]);
        assert_eq!(reconcile.person, unblock().person);
        assert_eq!(reconcile.document, unblock().document);
        assert_eq!(sent(&steps[2]), ["registry.unblock_account.v1"]);
        let cmd: UnblockAccount = body(&steps[2]);
        assert_eq!(
            (
                cmd.identifier.as_str(),
                cmd.application.as_str(),
                cmd.worker_id.as_deref()
            ),
            (ID, "minsk-1/U-1", Some("w-7"))
        );
        // A new temporary password: only its hash to the registry, its SMS sealed in the state.
        let hash = cmd
            .temporary_password_hash
            .expect("a new temporary password");
        assert!(hash.starts_with("$argon2"), "{hash}");
        let Stage::Unblocking {
            text: Some(text),
            expires_at: Some(expires_at),
        } = &steps[2].state.stage
        else {
            panic!("unblocking: {:?}", steps[2].state.stage);
        };
        assert_eq!(
            *expires_at,
            run.now + AccountSettings::default().temporary_password_ttl
        );
        let clear = run.saga.sealer.open(text).expect("opens");
        let password = clear
            .split("пароль: ")
            .nth(1)
            .and_then(|rest| rest.split('.').next())
            .expect("the password in the text")
            .to_owned();
        assert!(hub_runtime::secrets::verify_secret(&password, &hash));
        for step in &steps {
            let mut all = serde_json::to_vec(&step.state).expect("state");
            for c in &step.commands {
                all.extend_from_slice(&c.body);
            }
            assert!(
                !String::from_utf8_lossy(&all).contains(&password),
                "the password is never in the clear"
            );
        }
        // The registry names the phone it holds; the sealed SMS goes there, told to the desk.
        assert_eq!(sent(&steps[3]), ["identifier.unblocked.v1", "sms.send.v1"]);
        let sms: SendSms = body(&steps[3]);
        assert_eq!(
            (sms.to.as_str(), sms.purpose, &sms.text),
            ("+375297654321", SmsPurpose::TemporaryPassword, text)
        );
        let told: IdentifierUnblocked = body(&steps[3]);
        assert_eq!(told.phone_masked.as_deref(), Some("+375 29 ***-**-21"));
        assert_eq!(told.temporary_password_expires_at, Some(*expires_at));
        assert_eq!(run.saga.state_name(&steps[3].state), "unblocked");
        assert!(run.saga.is_terminal(&steps[3].state));
    }

    #[test]
    fn a_retired_unblock_is_refused_and_v2_under_its_number_starts_afresh() {
        let mut run = Run::new();
        let v2 = unblock();
        let v1 = UnblockIdentifier {
            desk_id: v2.desk_id.clone(),
            application_number: v2.application_number.clone(),
            person: v2.person.clone(),
            document: v2.document.clone(),
            consent_to_mvd_check: true,
        };
        let refused = run.step(None, Input::Unblock(v1));
        assert_eq!(sent(&refused), ["identifier.request_rejected.v1"]);
        let r = rejection(&refused);
        assert_eq!(r.reason, Reason::RetiredVersion);
        assert!(
            r.detail
                .as_ref()
                .is_some_and(|d| d.as_str().contains("identifier.unblock.v2")),
            "{r:?}"
        );
        let again = run.step(Some(&refused.state), Input::UnblockV2(v2));
        assert_eq!(sent(&again), ["registry.lookup_account.v1"]);
        assert_eq!(run.saga.state_name(&again.state), "looking_up");
    }

    #[test]
    fn each_failed_rule_of_an_unblock_is_its_own_rejection() {
        let mut run = Run::new();
        let reason_after = |run: &mut Run, inputs: Vec<Input>| {
            let steps = run.run(inputs);
            let last = steps.last().expect("a step");
            assert!(run.saga.is_terminal(&last.state));
            rejection(last)
        };
        let r = reason_after(
            &mut run,
            vec![
                Input::UnblockV2(unblock()),
                looked_up(AccountState::Active, None),
            ],
        );
        assert_eq!(r.reason, Reason::NotBlocked);
        let r = reason_after(
            &mut run,
            vec![
                Input::UnblockV2(unblock()),
                looked_up(AccountState::Unknown, None),
            ],
        );
        assert_eq!(r.reason, Reason::UnknownIdentifier);
        assert_eq!(r.fields[0].field, "person.identification_number");

        let no_consent = UnblockIdentifierV2 {
            consent_to_mvd_check: false,
            ..unblock()
        };
        let r = reason_after(&mut run, vec![Input::UnblockV2(no_consent)]);
        assert_eq!(r.reason, Reason::ConsentMissing);

        let r = reason_after(
            &mut run,
            vec![
                Input::UnblockV2(unblock()),
                looked_up(AccountState::Blocked, None),
                reconciled(ReconcileResult::Mismatch {
                    fields: vec!["surname".into(), "document.number".into()],
                }),
            ],
        );
        assert_eq!(r.reason, Reason::MvdMismatch);
        let fields: Vec<&str> = r.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["person.surname", "document.number"]);

        let r = reason_after(
            &mut run,
            vec![
                Input::UnblockV2(unblock()),
                looked_up(AccountState::Blocked, None),
                reconciled(ReconcileResult::PersonUnknown),
            ],
        );
        assert_eq!(
            (r.reason, r.detail.as_ref().map(RejectDetail::as_str)),
            (Reason::MvdMismatch, Some("person_unknown"))
        );

        let r = reason_after(
            &mut run,
            vec![
                Input::UnblockV2(unblock()),
                looked_up(AccountState::Blocked, None),
                reconciled(ReconcileResult::DocumentInvalid {
                    status: "lost".into(),
                }),
            ],
        );
        assert_eq!(
            (r.reason, r.detail.as_ref().map(RejectDetail::as_str)),
            (Reason::DocumentInvalid, Some("lost"))
        );

        let r = reason_after(
            &mut run,
            vec![
                Input::UnblockV2(unblock()),
                looked_up(AccountState::Blocked, None),
                reconciled(ReconcileResult::Match),
                Input::Unblocked(AccountUnblocked {
                    outcome: UnblockOutcome::NotBlocked,
                    phone: None,
                }),
            ],
        );
        assert_eq!(r.reason, Reason::NotBlocked);

        let mut expired = unblock();
        expired.document.expires_on = NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
        let r = reason_after(&mut run, vec![Input::UnblockV2(expired)]);
        assert_eq!(
            (r.reason, r.detail.as_ref().map(RejectDetail::as_str)),
            (Reason::DocumentInvalid, Some("expired"))
        );

        let mut malformed = unblock();
        malformed.person.status = PersonStatus::Stateless;
        malformed.person.surname = "Ivanova1".into();
        let r = reason_after(&mut run, vec![Input::UnblockV2(malformed)]);
        assert_eq!(r.reason, Reason::InvalidInput);
        let fields: Vec<&str> = r.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["person.status", "person.surname", "document.kind"]);
    }

    #[test]
    fn the_code_for_the_new_phone_is_prepared_before_the_transaction_not_hashed_in_it() {
        let mut run = Run::new();
        let steps = run.run(vec![
            Input::ChangePhoneV2(change_phone()),
            matched(),
            looked_up(AccountState::Active, Some(PhoneUse::Free)),
        ]);
        let checking = &steps[2].state;
        let active = subscriber(SubscriberStatus::Active);
        assert_eq!(
            run.saga.fresh_secret(Some(checking), &active),
            Some(SecretKind::Digits(6))
        );
        assert_eq!(
            run.saga
                .fresh_secret(Some(checking), &subscriber(SubscriberStatus::Blocked)),
            None
        );
        let code = FreshSecret::from_parts(SecretKind::Digits(6), "246810", "prepared-code-hash");
        let at = |prepared| StepContext {
            now: run.now,
            saga_id: Uuid::nil(),
            message: &run.meta,
            seed: [3; 32],
            prepared,
        };
        let step = run
            .saga
            .transition(Some(checking), &active, &at(Some(&code)))
            .expect("transition");
        // The hash given, not one made here (it is not even a PHC string).
        let Stage::ConfirmingPhone { code_hash, .. } = &step.state.stage else {
            panic!("confirming the phone: {:?}", step.state.stage);
        };
        assert_eq!(code_hash, "prepared-code-hash");
        let sms: SendSms = body(&step);
        assert!(
            run.saga
                .sealer
                .open(&sms.text)
                .expect("opens")
                .contains("246810")
        );
        let unprepared = run
            .saga
            .transition(Some(checking), &active, &at(None))
            .expect_err("not prepared");
        assert!(unprepared.reason.contains("not prepared"), "{unprepared:?}");
    }

    #[test]
    fn a_phone_change_confirms_the_new_phone_by_code_and_the_code_is_never_in_the_clear() {
        let mut run = Run::new();
        let s0 = run.step(None, Input::ChangePhoneV2(change_phone()));
        assert_eq!(sent(&s0), ["mvd.reconcile.v1"], "the person first");
        let s1 = run.step(Some(&s0.state), matched());
        assert_eq!(sent(&s1), ["registry.lookup_account.v1"]);
        let lookup: LookupAccount = body(&s1);
        assert_eq!(
            lookup.phone.as_deref(),
            Some("+375297654321"),
            "the phone is normalised"
        );
        let s2 = run.step(
            Some(&s1.state),
            looked_up(AccountState::Active, Some(PhoneUse::Free)),
        );
        assert_eq!(sent(&s2), ["sms.check_subscriber.v1"]);
        let s3 = run.step(Some(&s2.state), subscriber(SubscriberStatus::Active));
        assert_eq!(sent(&s3), ["sms.send.v1", "identifier.phone_code_sent.v1"]);
        assert_eq!(s3.timers.len(), 1);
        assert_eq!(s3.timers[0].message.message_type, NewPhoneCodeExpired::TYPE);
        let code_sent: NewPhoneCodeSent = body(&s3);
        assert_eq!(code_sent.phone_masked, "+375 29 ***-**-21");
        assert_eq!(code_sent.attempts_left, 3);
        assert_eq!(
            code_sent.expires_at,
            run.now + AccountSettings::default().code_ttl
        );
        let send: SendSms = body(&s3);
        assert_eq!(
            (send.to.as_str(), send.purpose),
            ("+375297654321", SmsPurpose::PhoneCode)
        );
        let text = run.saga.sealer.open(&send.text).expect("opens");
        let code: String = text.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(code.len(), 6);
        let mut all = serde_json::to_vec(&s3.state).expect("state");
        for c in s3
            .commands
            .iter()
            .chain(s3.timers.iter().map(|t| &t.message))
        {
            all.extend_from_slice(&c.body);
        }
        assert!(
            !String::from_utf8_lossy(&all).contains(&code),
            "the code is never in the clear"
        );

        let s4 = run.step(Some(&s3.state), confirm(&format!(" {code} ")));
        assert_eq!(sent(&s4), ["registry.change_phone.v1"]);
        assert_eq!(s4.cancel_timers, vec![CODE_TIMER.to_string()]);
        let change: ChangeAccountPhone = body(&s4);
        assert_eq!(
            (
                change.identifier.as_str(),
                change.phone.as_str(),
                change.application.as_str()
            ),
            (ID, "+375297654321", "minsk-1/P-1")
        );
        let s5 = run.step(
            Some(&s4.state),
            Input::PhoneChanged(AccountPhoneChanged {
                outcome: ChangePhoneOutcome::Changed,
            }),
        );
        assert_eq!(sent(&s5), ["identifier.phone_changed.v1"]);
        let changed: PhoneChanged = body(&s5);
        assert_eq!(changed.phone_masked, "+375 29 ***-**-21");
        assert!(run.saga.is_terminal(&s5.state));
        // The code timer firing late changes nothing.
        let late = run.step(Some(&s5.state), Input::CodeExpired);
        assert!(late.commands.is_empty());
        assert_eq!(late.state, s5.state);
    }

    #[test]
    fn a_phone_change_is_rejected_by_each_rule() {
        let mut run = Run::new();
        let last = |run: &mut Run, inputs: Vec<Input>| {
            let steps = run.run(inputs);
            let last = steps.last().expect("a step").clone();
            assert!(run.saga.is_terminal(&last.state), "{:?}", last.state.stage);
            rejection(&last)
        };
        let start = || Input::ChangePhoneV2(change_phone());
        let active = |phone| looked_up(AccountState::Active, Some(phone));

        let r = last(
            &mut run,
            vec![start(), matched(), active(PhoneUse::AnotherIdentifier)],
        );
        assert_eq!(
            (r.reason, r.fields[0].field.as_str()),
            (Reason::PhoneBound, "new_phone")
        );
        let r = last(
            &mut run,
            vec![start(), matched(), active(PhoneUse::ThisIdentifier)],
        );
        assert_eq!(
            (r.reason, r.fields[0].field.as_str()),
            (Reason::InvalidInput, "new_phone")
        );
        let r = last(
            &mut run,
            vec![
                start(),
                matched(),
                looked_up(AccountState::Blocked, Some(PhoneUse::Free)),
            ],
        );
        assert_eq!(r.reason, Reason::AlreadyBlocked);
        let r = last(
            &mut run,
            vec![
                start(),
                matched(),
                looked_up(AccountState::Unknown, Some(PhoneUse::Free)),
            ],
        );
        assert_eq!(
            (r.reason, r.fields[0].field.as_str()),
            (Reason::UnknownIdentifier, "person.identification_number")
        );
        let r = last(
            &mut run,
            vec![
                start(),
                matched(),
                active(PhoneUse::Free),
                subscriber(SubscriberStatus::Blocked),
            ],
        );
        assert_eq!(
            (r.reason, r.detail.as_ref().map(RejectDetail::as_str)),
            (Reason::PhoneNotMobile, Some("subscriber_blocked"))
        );

        // The unique constraint decides at the end: another identifier took the phone meanwhile.
        let mut steps = run.run(vec![
            start(),
            matched(),
            active(PhoneUse::Free),
            subscriber(SubscriberStatus::Active),
        ]);
        let send: SendSms = body(&steps[3]);
        let code: String = run
            .saga
            .sealer
            .open(&send.text)
            .expect("opens")
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let state = steps.pop().expect("step").state;
        let changing = run.step(Some(&state), confirm(&code));
        let bound = run.step(
            Some(&changing.state),
            Input::PhoneChanged(AccountPhoneChanged {
                outcome: ChangePhoneOutcome::PhoneBound,
            }),
        );
        assert_eq!(rejection(&bound).reason, Reason::PhoneBound);

        let mut landline = change_phone();
        landline.new_phone = "+375 17 123-45-67".into();
        let r = last(&mut run, vec![Input::ChangePhoneV2(landline)]);
        assert_eq!(
            (r.reason, r.fields[0].field.as_str()),
            (Reason::PhoneNotMobile, "new_phone")
        );
        let mut malformed = change_phone();
        malformed.new_phone = "call me".into();
        malformed.person.identification_number = "123".into();
        let r = last(&mut run, vec![Input::ChangePhoneV2(malformed)]);
        assert_eq!(r.reason, Reason::InvalidInput);
        let fields: Vec<&str> = r.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["person.identification_number", "new_phone"]);
        // The MVD does not know the person: no code goes anywhere.
        let steps = run.run(vec![start(), reconciled(ReconcileResult::PersonUnknown)]);
        assert_eq!(sent(&steps[1]), ["identifier.request_rejected.v1"]);
        assert_eq!(rejection(&steps[1]).reason, Reason::MvdMismatch);
        // The retired v1 is refused.
        let v1 = ChangePhone {
            desk_id: "minsk-1".into(),
            application_number: "P-1".into(),
            identifier: ID.into(),
            new_phone: "+375297654321".into(),
        };
        let r = last(&mut run, vec![Input::ChangePhone(v1)]);
        assert_eq!(r.reason, Reason::RetiredVersion);
    }

    #[test]
    fn wrong_codes_are_counted_and_the_last_one_rejects_as_does_the_timer() {
        let mut run = Run::new();
        let state = run
            .run(vec![
                Input::ChangePhoneV2(change_phone()),
                matched(),
                looked_up(AccountState::Active, Some(PhoneUse::Free)),
                subscriber(SubscriberStatus::Active),
            ])
            .pop()
            .expect("step")
            .state;
        let first = run.step(Some(&state), confirm("000000x"));
        // The desk hears of it, and the SMS worker counts it against the new phone.
        assert_eq!(
            sent(&first),
            ["identifier.phone_code_wrong.v1", "sms.wrong_code.v1"]
        );
        let wrong: NewPhoneCodeWrong = body(&first);
        assert_eq!(wrong.attempts_left, 2);
        let second = run.step(Some(&first.state), confirm("111111x"));
        let third = run.step(Some(&second.state), confirm("222222x"));
        assert!(
            sent(&third).contains(&"sms.wrong_code.v1".to_owned()),
            "{:?}",
            sent(&third)
        );
        let r = rejection(&third);
        assert_eq!(
            (r.reason, r.detail.as_ref().map(RejectDetail::as_str)),
            (Reason::PhoneNotConfirmed, Some("too_many_attempts"))
        );
        assert_eq!(third.cancel_timers, vec![CODE_TIMER.to_string()]);
        // A code after the end changes nothing.
        let after = run.step(Some(&third.state), confirm("333333"));
        assert!(after.commands.is_empty());

        let expired = run.step(Some(&state), Input::CodeExpired);
        assert_eq!(
            rejection(&expired)
                .detail
                .as_ref()
                .map(RejectDetail::as_str),
            Some("timed_out")
        );

        // A code that arrives after its expiry is refused even before the timer fires.
        run.now += AccountSettings::default().code_ttl;
        let late = run.step(Some(&state), confirm("444444"));
        assert_eq!(
            rejection(&late).detail.as_ref().map(RejectDetail::as_str),
            Some("timed_out")
        );

        let refused = run.step(
            Some(&state),
            Input::SmsNotSent(SmsNotSent::new(
                SmsPurpose::PhoneCode,
                NotSentReason::Refused,
            )),
        );
        let r = rejection(&refused);
        assert_eq!(
            (r.reason, r.detail.as_ref().map(RejectDetail::as_str)),
            (Reason::PhoneNotConfirmed, Some("code_not_delivered"))
        );
    }

    #[test]
    fn a_resent_request_changes_nothing_and_another_under_the_same_number_is_refused() {
        let mut run = Run::new();
        let s1 = run.step(None, Input::BlockV2(block()));
        let again = run.step(Some(&s1.state), Input::BlockV2(block()));
        assert!(again.commands.is_empty());
        assert_eq!(again.state, s1.state);
        let mut other = change_phone();
        other.application_number = "B-1".into();
        assert!(
            run.try_step(Some(&s1.state), Input::ChangePhoneV2(other))
                .is_err()
        );
        assert!(
            run.try_step(None, confirm("123456")).is_err(),
            "no such application"
        );
        assert!(
            run.try_step(None, looked_up(AccountState::Active, None))
                .is_err(),
            "an answer without a request"
        );
    }
}
