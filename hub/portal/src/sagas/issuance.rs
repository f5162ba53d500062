//! The issuance of a unique identifier, one saga per application, in the order DOMAIN.md gives:
//!
//! ```text
//! apply --validate--> reserving --registry--> reconciling --MVD--> checking_subscriber
//!   --operator--> confirming_phone --code--> creating_account --registry--> sending_password
//!   --SMS accepted--> issued (notice of issuance)
//! any failed rule --> rejected (reason code), undoing the reservation where one was made
//! operator's cancel, before the account step --> rejected (cancelled_by_operator), likewise
//!
//! issued | sending_password --resend v2, form--> reissue_reconciling --MVD match-->
//!   reissue_registering --registry: still temporary--> sending_password (to the registry's
//!   phone now) --SMS accepted--> issued (password_resent)
//! any failed rule of a resend --> resend_refused, back where it was (`use_recovery` once the
//!   person has formed a static password)
//! notice_signed, once the notice went out --> recorded in the application (notice_recorded)
//! ```
//!
//! A resend is the issuance's own checks again: the person presents the identity document (form,
//! expiry, consent, MVD reconciliation), the registry replaces the password only while it is a
//! temporary one and not blocked (under the account's lock), and the SMS goes to the phone the
//! registry holds now, not the one of the application (a desk may have changed it since).
//!
//! The transition is pure: the registry, MVD and SMS are reached by commands through the outbox,
//! and secrets leave the saga only sealed (to the SMS worker) or hashed (to the registry and the
//! saga's own state). The phone code and the temporary password are not made here: the saga
//! names them in [`Saga::fresh_secret`] and the engine makes them, argon2 hash included, before
//! it opens the step's transaction (see `hub_runtime::engine`); the transition only seals the
//! clear one and keeps or sends the hash. The code the person reads out is checked in the
//! transition, under the saga row's lock, so that every attempt is counted exactly once.

use std::sync::Arc;
use std::time::Duration;

use adapters::Failure;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use contracts::issuance::{
    Applicant, Application, ApplicationRejected, ApplyForIdentifier, ConfirmPhone,
    IdentifierIssued, NoticeOfIssuance, NoticeRecorded, NoticeRefusal, NoticeRefused, NoticeSigned,
    PasswordNotDelivered, PasswordResent, PhoneCodeExpired, PhoneCodeSent, PhoneCodeWrong,
    RejectDetail, RejectReason, ResendRefusal, ResendRefused, ResendTemporaryPassword,
    ResendTemporaryPasswordV2, application_key,
};
use contracts::mvd::{Reconcile, ReconcileResult, Reconciled};
use contracts::ops::CancelSaga;
use contracts::person::{IdNumber, Msisdn, Operator, PhoneError};
use contracts::registry::{
    AccountCreated, CreateAccount, PasswordReissued, ReissueOutcome, ReissuePassword, Release,
    Reserve, ReserveOutcome, Reserved,
};
use contracts::sealed::Sealed;
use contracts::sms::{
    CheckSubscriber, DeliveryReported, NotSentReason, SendSms, SmsNotSent, SmsPurpose, SmsSent,
    SubscriberChecked, SubscriberStatus, WrongCode,
};
use contracts::{FieldError, Message, ValidationErrors, decode};
use serde::{Deserialize, Serialize};

use crate::sagas::identity::{self, mvd_field};

use hub_runtime::broker::Incoming;
use hub_runtime::engine::{Command, Saga, SagaKey, Step, StepContext, TimerRequest};
use hub_runtime::secrets::{Sealer, SecretKind, verify_secret};

/// The saga type.
pub const SAGA_TYPE: &str = "issuance";
/// Its queue (short name).
pub const QUEUE: &str = "saga.issuance";
const CODE_TIMER: &str = "phone_code";
/// The phone confirmation code: six digits.
const PHONE_CODE: SecretKind = SecretKind::Digits(6);

/// Rules the texts leave to the project (see DOMAIN.md), and the SMS texts.
#[derive(Debug, Clone)]
pub struct IssuanceSettings {
    /// How long a phone confirmation code is valid.
    pub code_ttl: Duration,
    /// Codes accepted (wrong ones included) before the application is rejected.
    pub code_attempts: u32,
    /// How long a temporary password is valid.
    pub temporary_password_ttl: Duration,
    /// The youngest age at which an identifier is issued (the age of a first passport).
    pub min_age_years: u32,
    /// The SMS with the phone code; `{code}` is replaced.
    pub phone_code_text: String,
    /// The SMS with the temporary password; `{identifier}` and `{password}` are replaced.
    pub temporary_password_text: String,
}

impl Default for IssuanceSettings {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(10 * 60),
            code_attempts: 3,
            temporary_password_ttl: Duration::from_secs(72 * 3600),
            min_age_years: 14,
            phone_code_text: "Код подтверждения номера для получения идентификатора: {code}. \
                              Никому его не сообщайте, кроме работника службы."
                .into(),
            temporary_password_text: "Ваш идентификатор: {identifier}. Временный пароль: \
                                      {password}. Смените его при первом входе на портал."
                .into(),
        }
    }
}

/// The issuance saga.
#[derive(Debug, Clone)]
pub struct IssuanceSaga {
    sealer: Arc<Sealer>,
    settings: IssuanceSettings,
}

impl IssuanceSaga {
    /// The saga with the hub's sealing key and settings.
    pub fn new(sealer: Arc<Sealer>, settings: IssuanceSettings) -> Self {
        Self { sealer, settings }
    }

    /// The instance key of an application.
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
            ApplyForIdentifier::TYPE.to_string(),
            ConfirmPhone::TYPE.to_string(),
            ResendTemporaryPassword::TYPE.to_string(),
            ResendTemporaryPasswordV2::TYPE.to_string(),
            NoticeSigned::TYPE.to_string(),
        ],
    )
}

/// The state of one application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issuance {
    /// The application.
    pub application: Application,
    /// The person.
    pub person: Applicant,
    /// The document presented.
    pub document: contracts::issuance::IdentityDocument,
    /// The phone, normalised (`+375XXXXXXXXX`).
    pub phone: String,
    /// Where it is.
    pub stage: Stage,
    /// The person's signature for the notice of issuance, as the desk confirmed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_signed: Option<SignedNotice>,
}

/// The person signed for the notice of issuance (seeds 000, 002), as the desk confirmed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedNotice {
    /// The day the person signed.
    pub signed_on: NaiveDate,
    /// The worker before whom the person signed.
    pub worker_id: String,
    /// When the hub recorded it.
    pub recorded_at: DateTime<Utc>,
}

/// Where an application is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Waiting for the registry to hold identifier and phone.
    Reserving,
    /// Waiting for the MVD registry.
    Reconciling,
    /// Waiting for the operators' subscriber check.
    CheckingSubscriber,
    /// Waiting for the desk to send the code the person received.
    ConfirmingPhone {
        /// Argon2 hash of the code.
        code_hash: String,
        /// Attempts left.
        attempts_left: u32,
        /// The code's expiry.
        expires_at: DateTime<Utc>,
        /// The operator that serves the phone.
        operator: Operator,
    },
    /// Waiting for the registry to assign the identifier and create (or re-key) the account.
    CreatingAccount {
        /// The SMS with the temporary password, sealed.
        text: Sealed,
        /// The temporary password's expiry.
        expires_at: DateTime<Utc>,
        /// The operator.
        operator: Operator,
        /// A resend, not the first issue.
        resend: bool,
    },
    /// Waiting for the operator to accept the temporary password SMS.
    SendingPassword {
        /// The temporary password's expiry.
        expires_at: DateTime<Utc>,
        /// The operator.
        operator: Operator,
        /// A resend, not the first issue.
        resend: bool,
        /// Where a resent password went (`+375XXXXXXXXX`): the phone the registry held then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// A resend: waiting for the MVD registry's verdict on the person and the document presented
    /// again.
    ReissueReconciling {
        /// The worker who took the request.
        worker_id: String,
        /// Where the application was; it goes back there when the resend is refused.
        previous: Box<Stage>,
    },
    /// A resend: waiting for the registry to replace the temporary password (only while no
    /// static password is set) and to name the phone it holds now.
    ReissueRegistering {
        /// The SMS with the new temporary password, sealed.
        text: Sealed,
        /// The new password's expiry.
        expires_at: DateTime<Utc>,
        /// Where the application was.
        previous: Box<Stage>,
    },
    /// The identifier is issued.
    Issued {
        /// The notice number.
        notice_number: String,
        /// The temporary password's expiry.
        expires_at: DateTime<Utc>,
        /// The operator.
        operator: Operator,
        /// What the operator last reported about the temporary password SMS.
        password_delivered: Option<bool>,
    },
    /// The application was rejected.
    Rejected {
        /// The rule.
        reason: RejectReason,
        /// Detail.
        detail: Option<RejectDetail>,
    },
}

/// What the saga reads from a message.
#[derive(Debug)]
pub enum Input {
    /// A desk's application.
    Apply(ApplyForIdentifier),
    /// The code the person read out.
    Confirm(ConfirmPhone),
    /// Resend the temporary password: the retired version, without a document.
    ResendRetired(ResendTemporaryPassword),
    /// Resend the temporary password after the identity checks.
    Resend(ResendTemporaryPasswordV2),
    /// The registry's answer to a reissue.
    Reissued(PasswordReissued),
    /// The desk confirms the person signed for the notice.
    NoticeSigned(NoticeSigned),
    /// The registry's answer to a reservation.
    Reserved(Reserved),
    /// The MVD registry's verdict.
    Reconciled(Reconciled),
    /// The operators' answer.
    Subscriber(SubscriberChecked),
    /// The code's timer.
    CodeExpired,
    /// The registry created the account.
    AccountCreated(AccountCreated),
    /// The operator accepted an SMS.
    SmsSent(SmsSent),
    /// The operator refused an SMS.
    SmsNotSent(SmsNotSent),
    /// A delivery report.
    Delivery(DeliveryReported),
}

impl Saga for IssuanceSaga {
    type State = Issuance;
    type Input = Input;

    fn saga_type(&self) -> &'static str {
        SAGA_TYPE
    }

    fn read(&self, message: &Incoming) -> Result<(SagaKey, Input), Failure> {
        let t = message.metadata.message_type.as_str();
        let by_correlation = || SagaKey::from_correlation_id(&message.metadata);
        let body = &message.body;
        Ok(if ApplyForIdentifier::TYPE.matches(t) {
            let m: ApplyForIdentifier = decode(t, body)?;
            (
                Self::key(&m.application.desk_id, &m.application.number),
                Input::Apply(m),
            )
        } else if ConfirmPhone::TYPE.matches(t) {
            let m: ConfirmPhone = decode(t, body)?;
            (
                Self::key(&m.desk_id, &m.application_number),
                Input::Confirm(m),
            )
        } else if ResendTemporaryPassword::TYPE.matches(t) {
            let m: ResendTemporaryPassword = decode(t, body)?;
            (
                Self::key(&m.desk_id, &m.application_number),
                Input::ResendRetired(m),
            )
        } else if ResendTemporaryPasswordV2::TYPE.matches(t) {
            let m: ResendTemporaryPasswordV2 = decode(t, body)?;
            (
                Self::key(&m.desk_id, &m.application_number),
                Input::Resend(m),
            )
        } else if NoticeSigned::TYPE.matches(t) {
            let m: NoticeSigned = decode(t, body)?;
            (
                Self::key(&m.desk_id, &m.application_number),
                Input::NoticeSigned(m),
            )
        } else if PasswordReissued::TYPE.matches(t) {
            (by_correlation()?, Input::Reissued(decode(t, body)?))
        } else if Reserved::TYPE.matches(t) {
            (by_correlation()?, Input::Reserved(decode(t, body)?))
        } else if Reconciled::TYPE.matches(t) {
            (by_correlation()?, Input::Reconciled(decode(t, body)?))
        } else if SubscriberChecked::TYPE.matches(t) {
            (by_correlation()?, Input::Subscriber(decode(t, body)?))
        } else if PhoneCodeExpired::TYPE.matches(t) {
            let _: PhoneCodeExpired = decode(t, body)?;
            (by_correlation()?, Input::CodeExpired)
        } else if AccountCreated::TYPE.matches(t) {
            (by_correlation()?, Input::AccountCreated(decode(t, body)?))
        } else if SmsSent::TYPE.matches(t) {
            (by_correlation()?, Input::SmsSent(decode(t, body)?))
        } else if SmsNotSent::TYPE.matches(t) {
            (by_correlation()?, Input::SmsNotSent(decode(t, body)?))
        } else if DeliveryReported::TYPE.matches(t) {
            (by_correlation()?, Input::Delivery(decode(t, body)?))
        } else {
            return Err(Failure::invalid_input(format!(
                "the issuance saga does not take {t}"
            )));
        })
    }

    /// Needs a new phone code when the operator confirmed the phone is in service, and a new
    /// temporary password when the desk sends a code or the MVD confirms a resend's person: the
    /// engine makes them (and their argon2 hashes) before it opens the step's transaction. A password is made
    /// for every code sent while one is awaited, right or wrong, because whether it is right is
    /// known only under the row lock, where the attempt is counted.
    fn fresh_secret(&self, state: Option<&Issuance>, input: &Input) -> Option<SecretKind> {
        match (&state?.stage, input) {
            (Stage::CheckingSubscriber, Input::Subscriber(c))
                if c.status == SubscriberStatus::Active && c.operator.is_some() =>
            {
                Some(PHONE_CODE)
            }
            (Stage::ConfirmingPhone { .. }, Input::Confirm(_)) => Some(SecretKind::Password),
            (Stage::ReissueReconciling { .. }, Input::Reconciled(r))
                if r.result == ReconcileResult::Match =>
            {
                Some(SecretKind::Password)
            }
            _ => None,
        }
    }

    /// A code or a password, judged by the message alone (see [`Saga::likely_secret`]): the
    /// operator's answer that a phone is in service, a code typed at the desk. (The MVD's match
    /// of a resend is not hinted: most matches are of first applications, which need none.)
    fn likely_secret(&self, input: &Input) -> Option<SecretKind> {
        match input {
            Input::Subscriber(c)
                if c.status == SubscriberStatus::Active && c.operator.is_some() =>
            {
                Some(PHONE_CODE)
            }
            Input::Confirm(_) => Some(SecretKind::Password),
            _ => None,
        }
    }

    fn transition(
        &self,
        state: Option<&Issuance>,
        input: &Input,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Issuance>, Failure> {
        let Some(s) = state else {
            return self.first(input, ctx);
        };
        match (&s.stage, input) {
            (_, Input::Apply(_)) => Ok(Step::to(s.clone())), // the desk sent it again: no change
            (Stage::Reserving, Input::Reserved(r)) => reserved(s, r),
            (Stage::Reconciling, Input::Reconciled(r)) => reconciled(s, r),
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
                self.confirm(s, &code, c, ctx)
            }
            (Stage::ConfirmingPhone { .. }, Input::CodeExpired) => reject(
                s,
                RejectReason::PhoneNotConfirmed,
                Some(RejectDetail::TimedOut),
                vec![],
                true,
            ),
            // No code will come: too many wrong codes were typed for this phone over every
            // application (the per-phone limit), the phone had too many SMS, or the operator
            // refused it. Said now rather than when the code would have expired.
            (Stage::ConfirmingPhone { .. }, Input::SmsNotSent(n))
                if n.purpose == SmsPurpose::PhoneCode =>
            {
                code_not_sent(s, n)
            }
            (
                Stage::CreatingAccount {
                    text,
                    expires_at,
                    operator,
                    resend,
                },
                Input::AccountCreated(_),
            ) => account_created(s, text, *expires_at, *operator, *resend),
            (Stage::SendingPassword { .. }, Input::SmsSent(m))
                if m.purpose == SmsPurpose::TemporaryPassword =>
            {
                self.password_sent(s, None, ctx)
            }
            (Stage::SendingPassword { .. }, Input::SmsNotSent(m))
                if m.purpose == SmsPurpose::TemporaryPassword =>
            {
                // The identifier is assigned and the account exists; only the SMS failed. The
                // desk learns it and may ask for a resend.
                let step = self.password_sent(s, Some(false), ctx)?;
                Ok(step.send(password_not_delivered(s)?))
            }
            (Stage::Issued { .. }, Input::Delivery(d))
                if d.purpose == SmsPurpose::TemporaryPassword =>
            {
                password_delivery(s, d)
            }
            // A resend after the notice, or while the first password SMS is stuck (the
            // operator refused it until its retries ran out): the identity checks first.
            (Stage::Issued { .. } | Stage::SendingPassword { .. }, Input::Resend(r)) => {
                start_reissue(s, r, ctx.now.date_naive())
            }
            // One resend at a time: the desk sent it again while the first is being checked.
            (
                Stage::ReissueReconciling { .. } | Stage::ReissueRegistering { .. },
                Input::Resend(_),
            ) => Ok(Step::to(s.clone())),
            // Before the identifier is issued, or after a rejection: nothing to resend.
            (_, Input::Resend(_)) => refuse_resend(s, None, ResendRefusal::NotIssued, None, vec![]),
            (_, Input::NoticeSigned(n)) => notice_signed(s, n, ctx),
            (_, Input::ResendRetired(_)) => refuse_retired_resend(s),
            (
                Stage::ReissueReconciling {
                    worker_id,
                    previous,
                },
                Input::Reconciled(r),
            ) => self.reissue_reconciled(s, worker_id, previous, r, ctx),
            (
                Stage::ReissueRegistering {
                    text,
                    expires_at,
                    previous,
                },
                Input::Reissued(r),
            ) => reissued(s, text, *expires_at, previous, r),
            // The registry reserved after an operator's cancel (its command was stuck): undo it.
            (
                Stage::Rejected {
                    reason: RejectReason::CancelledByOperator,
                    ..
                },
                Input::Reserved(Reserved {
                    outcome: ReserveOutcome::Reserved,
                }),
            ) => Ok(Step::to(s.clone()).send(release(s)?)),
            // Late or repeated answers (a delivery report of the phone code, a second copy of a
            // reply, the code timer after the code was confirmed) change nothing.
            _ => Ok(Step::to(s.clone())),
        }
    }

    fn state_name(&self, state: &Issuance) -> String {
        match &state.stage {
            Stage::Reserving => "reserving",
            Stage::Reconciling => "reconciling",
            Stage::CheckingSubscriber => "checking_subscriber",
            Stage::ConfirmingPhone { .. } => "confirming_phone",
            Stage::CreatingAccount { .. } => "creating_account",
            Stage::SendingPassword { .. } => "sending_password",
            Stage::ReissueReconciling { .. } => "reissue_reconciling",
            Stage::ReissueRegistering { .. } => "reissue_registering",
            Stage::Issued { .. } => "issued",
            Stage::Rejected { .. } => "rejected",
        }
        .into()
    }

    fn is_terminal(&self, state: &Issuance) -> bool {
        matches!(state.stage, Stage::Issued { .. } | Stage::Rejected { .. })
    }

    /// The failure path with reason `cancelled_by_operator`: the desk is told, the reservation
    /// released (also one still on its way: see the late `Reserved` above). Refused from the
    /// account step on, when the registry may have assigned the identifier already.
    fn cancel(
        &self,
        s: &Issuance,
        request: &CancelSaga,
        _ctx: &StepContext<'_>,
    ) -> Result<Step<Issuance>, Failure> {
        match s.stage {
            Stage::Reserving
            | Stage::Reconciling
            | Stage::CheckingSubscriber
            | Stage::ConfirmingPhone { .. } => reject(
                s,
                RejectReason::CancelledByOperator,
                Some(RejectDetail::from(request.reason.as_str())),
                vec![],
                true,
            )
            .map(|st| st.cancel_timer(CODE_TIMER)),
            Stage::CreatingAccount { .. }
            | Stage::SendingPassword { .. }
            | Stage::ReissueReconciling { .. }
            | Stage::ReissueRegistering { .. } => Err(Failure::permanent(
                "the registry may have assigned the identifier already: an application \
                     past the phone confirmation cannot be cancelled (the desk may ask for the \
                     temporary password again)",
            )),
            Stage::Issued { .. } | Stage::Rejected { .. } => {
                Err(Failure::permanent("the application has ended"))
            }
        }
    }
}

impl IssuanceSaga {
    /// The step of a message for an application the hub has no saga of: only an application
    /// starts one.
    fn first(&self, input: &Input, ctx: &StepContext<'_>) -> Result<Step<Issuance>, Failure> {
        match input {
            Input::Apply(a) => self.apply(a, ctx),
            Input::Confirm(_)
            | Input::Resend(_)
            | Input::ResendRetired(_)
            | Input::NoticeSigned(_) => Err(Failure::permanent("no such application")),
            _ => Err(Failure::permanent(
                "an answer for an application that does not exist",
            )),
        }
    }

    /// The temporary password's SMS went out (`delivered` unknown yet) or could not be sent
    /// (`Some(false)`): the application is issued either way. `s` is in `SendingPassword`.
    fn password_sent(
        &self,
        s: &Issuance,
        delivered: Option<bool>,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Issuance>, Failure> {
        let Stage::SendingPassword {
            expires_at,
            operator,
            resend,
            to,
        } = &s.stage
        else {
            return Ok(Step::to(s.clone()));
        };
        let sent = Sent {
            expires_at: *expires_at,
            operator: *operator,
            resend: *resend,
            to: to.as_deref(),
        };
        self.issued(s, &sent, delivered, ctx)
    }

    fn apply(
        &self,
        a: &ApplyForIdentifier,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Issuance>, Failure> {
        let today = ctx.now.date_naive();
        let initial = |phone: String, stage| Issuance {
            application: a.application.clone(),
            person: a.person.clone(),
            document: a.document.clone(),
            phone,
            stage,
            notice_signed: None,
        };
        let (errors, id, phone) = validate(a, today, self.settings.min_age_years);
        let rejected = |reason, detail: Option<RejectDetail>, fields: Vec<FieldError>| {
            let state = initial(a.phone.clone(), Stage::Reserving);
            reject(&state, reason, detail, fields, false)
        };
        if !errors.is_empty() {
            return rejected(RejectReason::InvalidInput, None, errors.fields);
        }
        if !a.consent_to_mvd_check {
            return rejected(RejectReason::ConsentMissing, None, vec![]);
        }
        if a.document.expires_on < today {
            return rejected(
                RejectReason::DocumentInvalid,
                Some(RejectDetail::Expired),
                vec![],
            );
        }
        let phone = match phone {
            Ok(p) => p,
            Err(e) => {
                return rejected(
                    RejectReason::PhoneNotMobile,
                    None,
                    vec![FieldError {
                        field: "phone".into(),
                        problem: e.to_string(),
                    }],
                );
            }
        };
        let Some(id) = id else {
            return Err(Failure::permanent(
                "validated identification number missing",
            ));
        };
        let state = initial(phone.as_str().to_owned(), Stage::Reserving);
        Ok(Step::to(state).send(Command::new(&Reserve {
            identifier: id.as_str().to_owned(),
            phone: phone.as_str().to_owned(),
            application: a.application.business_key(),
        })?))
    }

    /// The operators' answer about the phone: send the code, or reject.
    fn subscriber(
        &self,
        s: &Issuance,
        c: &SubscriberChecked,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Issuance>, Failure> {
        let (SubscriberStatus::Active, Some(operator)) = (c.status, c.operator) else {
            let detail = match c.status {
                SubscriberStatus::Blocked => RejectDetail::SubscriberBlocked,
                _ => RejectDetail::NoSubscriber,
            };
            return reject(s, RejectReason::PhoneNotMobile, Some(detail), vec![], true);
        };
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
            to: s.phone.clone(),
            operator: Some(operator),
            purpose: SmsPurpose::PhoneCode,
            text: sealed,
        })?)
        .send(Command::new(&PhoneCodeSent {
            desk_id: s.application.desk_id.clone(),
            application_number: s.application.number.clone(),
            phone_masked: masked_phone(&s.phone),
            expires_at,
            attempts_left: self.settings.code_attempts,
        })?)
        .set_timer(TimerRequest {
            name: CODE_TIMER.into(),
            after: self.settings.code_ttl,
            message: Command::new(&PhoneCodeExpired {
                desk_id: s.application.desk_id.clone(),
                application_number: s.application.number.clone(),
            })?,
        }))
    }

    /// The code the person read out, checked here, under the saga row's lock, so that each
    /// attempt is counted before the next is checked: the right one goes on to the account,
    /// a wrong one costs an attempt (and counts against the phone), the last wrong one rejects.
    fn confirm(
        &self,
        s: &Issuance,
        code: &CodeCheck<'_>,
        c: &ConfirmPhone,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Issuance>, Failure> {
        if ctx.now >= code.expires_at {
            return reject(
                s,
                RejectReason::PhoneNotConfirmed,
                Some(RejectDetail::TimedOut),
                vec![],
                true,
            )
            .map(|st| st.cancel_timer(CODE_TIMER));
        }
        if verify_secret(c.code.trim(), code.code_hash) {
            return self
                .create_account(s, code.operator, false, ctx)
                .map(|st| st.cancel_timer(CODE_TIMER));
        }
        if code.attempts_left <= 1 {
            return reject(
                s,
                RejectReason::PhoneNotConfirmed,
                Some(RejectDetail::TooManyAttempts),
                vec![],
                true,
            )
            .and_then(|st| Ok(st.send(wrong_code(s)?)))
            .map(|st| st.cancel_timer(CODE_TIMER));
        }
        let left = code.attempts_left - 1;
        Ok(with_stage(
            s,
            Stage::ConfirmingPhone {
                code_hash: code.code_hash.to_owned(),
                attempts_left: left,
                expires_at: code.expires_at,
                operator: code.operator,
            },
        )
        .send(Command::new(&PhoneCodeWrong {
            desk_id: s.application.desk_id.clone(),
            application_number: s.application.number.clone(),
            attempts_left: left,
        })?)
        .send(wrong_code(s)?))
    }

    /// A new temporary password (made and hashed before the transaction): its hash to the
    /// registry with the account, its SMS sealed in the state until the account exists.
    fn create_account(
        &self,
        s: &Issuance,
        operator: Operator,
        resend: bool,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Issuance>, Failure> {
        let password = ctx.fresh_secret(SecretKind::Password)?;
        let mut rng = ctx.rng();
        let expires_at = ctx.now + self.settings.temporary_password_ttl;
        let text = self
            .settings
            .temporary_password_text
            .replace("{identifier}", &s.person.identification_number)
            .replace("{password}", password.clear());
        Ok(with_stage(
            s,
            Stage::CreatingAccount {
                text: self.sealer.seal(&mut rng, &text)?,
                expires_at,
                operator,
                resend,
            },
        )
        .send(Command::new(&CreateAccount {
            identifier: s.person.identification_number.clone(),
            application: s.application.business_key(),
            temporary_password_hash: password.hash().to_owned(),
            temporary_password_expires_at: expires_at,
        })?))
    }

    fn issued(
        &self,
        s: &Issuance,
        sent: &Sent<'_>,
        password_delivered: Option<bool>,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Issuance>, Failure> {
        let notice_number = notice_number(&s.application);
        let expires_at = sent.expires_at;
        let step = with_stage(
            s,
            Stage::Issued {
                notice_number: notice_number.clone(),
                expires_at,
                operator: sent.operator,
                password_delivered,
            },
        );
        Ok(if sent.resend {
            step.send(Command::new(&PasswordResent {
                desk_id: s.application.desk_id.clone(),
                application_number: s.application.number.clone(),
                temporary_password_expires_at: expires_at,
                phone_masked: Some(masked_phone(sent.to.unwrap_or(&s.phone))),
            })?)
        } else {
            step.send(Command::new(&IdentifierIssued {
                notice: NoticeOfIssuance {
                    notice_number,
                    identifier: s.person.identification_number.clone(),
                    issued_on: ctx.now.date_naive(),
                    surname: s.person.surname.clone(),
                    given_name: s.person.given_name.clone(),
                    patronymic: s.person.patronymic.clone(),
                    application: s.application.clone(),
                    phone_masked: masked_phone(sent.to.unwrap_or(&s.phone)),
                    temporary_password_expires_at: expires_at,
                },
            })?)
        })
    }
}

impl IssuanceSaga {
    /// The MVD's verdict on a resend's person: a new temporary password (made and hashed before
    /// the transaction) goes to the registry, its SMS sealed in the state until the registry
    /// says where it goes; any other verdict refuses the resend.
    fn reissue_reconciled(
        &self,
        s: &Issuance,
        worker_id: &str,
        previous: &Stage,
        r: &Reconciled,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Issuance>, Failure> {
        let refuse =
            |reason, detail, fields| refuse_resend(s, Some(previous), reason, detail, fields);
        match &r.result {
            ReconcileResult::Match => {}
            ReconcileResult::Mismatch { fields } => {
                let fields = fields
                    .iter()
                    .map(|f| FieldError {
                        field: mvd_field(f),
                        problem: "differs from the MVD registry".into(),
                    })
                    .collect();
                return refuse(ResendRefusal::MvdMismatch, None, fields);
            }
            ReconcileResult::PersonUnknown => {
                return refuse(
                    ResendRefusal::MvdMismatch,
                    Some(RejectDetail::PersonUnknown),
                    vec![FieldError {
                        field: "person.identification_number".into(),
                        problem: "the MVD registry does not know this person".into(),
                    }],
                );
            }
            ReconcileResult::DocumentInvalid { status } => {
                return refuse(
                    ResendRefusal::DocumentInvalid,
                    Some(RejectDetail::from(status.as_str())),
                    vec![],
                );
            }
        }
        let password = ctx.fresh_secret(SecretKind::Password)?;
        let mut rng = ctx.rng();
        let expires_at = ctx.now + self.settings.temporary_password_ttl;
        let text = self
            .settings
            .temporary_password_text
            .replace("{identifier}", &s.person.identification_number)
            .replace("{password}", password.clear());
        Ok(with_stage(
            s,
            Stage::ReissueRegistering {
                text: self.sealer.seal(&mut rng, &text)?,
                expires_at,
                previous: Box::new(previous.clone()),
            },
        )
        .send(Command::new(&ReissuePassword {
            identifier: s.person.identification_number.clone(),
            application: s.application.business_key(),
            worker_id: worker_id.to_owned(),
            temporary_password_hash: password.hash().to_owned(),
            temporary_password_expires_at: expires_at,
        })?))
    }
}

/// A resend's form, as at issuance (the person and the document, the worker, the consent, the
/// document's expiry); then the MVD reconciliation.
fn start_reissue(
    s: &Issuance,
    r: &ResendTemporaryPasswordV2,
    today: NaiveDate,
) -> Result<Step<Issuance>, Failure> {
    let mut e = ValidationErrors::new();
    e.check(
        !r.worker_id.trim().is_empty(),
        "worker_id",
        "must not be empty",
    );
    let id =
        crate::sagas::identity::check_person_and_document(&mut e, &r.person, &r.document, today);
    if let Some(id) = &id {
        e.check(
            id.as_str() == s.person.identification_number,
            "person.identification_number",
            "is not the identifier issued under this application",
        );
    }
    if !e.is_empty() {
        return refuse_resend(s, None, ResendRefusal::InvalidInput, None, e.fields);
    }
    if !r.consent_to_mvd_check {
        return refuse_resend(s, None, ResendRefusal::ConsentMissing, None, vec![]);
    }
    if r.document.expires_on < today {
        return refuse_resend(
            s,
            None,
            ResendRefusal::DocumentInvalid,
            Some(RejectDetail::Expired),
            vec![],
        );
    }
    let mut person = r.person.clone();
    person
        .identification_number
        .clone_from(&s.person.identification_number);
    Ok(with_stage(
        s,
        Stage::ReissueReconciling {
            worker_id: r.worker_id.trim().to_owned(),
            previous: Box::new(s.stage.clone()),
        },
    )
    .send(Command::new(&Reconcile {
        person,
        document: r.document.clone(),
    })?))
}

/// The registry's answer to a reissue: the sealed SMS goes to the phone it holds now, or the
/// resend is refused (a static password set, the identifier blocked).
fn reissued(
    s: &Issuance,
    text: &Sealed,
    expires_at: DateTime<Utc>,
    previous: &Stage,
    r: &PasswordReissued,
) -> Result<Step<Issuance>, Failure> {
    let refuse = |reason, detail| refuse_resend(s, Some(previous), reason, detail, vec![]);
    let phone = match &r.outcome {
        ReissueOutcome::Reissued { phone } => phone,
        ReissueOutcome::StaticPasswordSet => {
            return refuse(
                ResendRefusal::UseRecovery,
                Some(RejectDetail::Other(
                    "the person formed a static password: a lost one is re-formed by recovery \
                     in the cabinet"
                        .into(),
                )),
            );
        }
        ReissueOutcome::Blocked => {
            return refuse(
                ResendRefusal::IdentifierBlocked,
                Some(RejectDetail::IdentifierBlocked),
            );
        }
        ReissueOutcome::UnknownIdentifier => return refuse(ResendRefusal::NotIssued, None),
    };
    // A first password that never went out (its SMS stuck): the notice of issuance is still
    // owed, and goes out with this one.
    let (operator, resend) = match previous {
        Stage::Issued { operator, .. } => (*operator, true),
        Stage::SendingPassword {
            operator, resend, ..
        } => (*operator, *resend),
        _ => {
            return Err(Failure::permanent(
                "a reissue from a stage that has no operator",
            ));
        }
    };
    Ok(with_stage(
        s,
        Stage::SendingPassword {
            expires_at,
            operator,
            resend,
            to: Some(phone.clone()),
        },
    )
    // The operator by the number: a changed phone may be another operator's.
    .send(Command::new(&SendSms {
        to: phone.clone(),
        operator: None,
        purpose: SmsPurpose::TemporaryPassword,
        text: text.clone(),
    })?))
}

/// Whether the notice of issuance went out: issued, or a resend of an issued application.
fn notice_issued(stage: &Stage) -> bool {
    match stage {
        Stage::Issued { .. } => true,
        Stage::SendingPassword { resend, .. } => *resend,
        Stage::ReissueReconciling { previous, .. } | Stage::ReissueRegistering { previous, .. } => {
            notice_issued(previous)
        }
        _ => false,
    }
}

/// The desk confirms the person signed for the notice: recorded once, for this application's
/// notice, on a day not in the future; the same confirmation again is answered again.
fn notice_signed(
    s: &Issuance,
    n: &NoticeSigned,
    ctx: &StepContext<'_>,
) -> Result<Step<Issuance>, Failure> {
    let refuse = |reason, fields: Vec<FieldError>| {
        Ok(Step::to(s.clone()).send(Command::new(&NoticeRefused {
            desk_id: s.application.desk_id.clone(),
            application_number: s.application.number.clone(),
            reason,
            fields,
        })?))
    };
    if !notice_issued(&s.stage) {
        return refuse(NoticeRefusal::NotIssued, vec![]);
    }
    let number = notice_number(&s.application);
    if n.notice_number.trim() != number {
        return refuse(
            NoticeRefusal::NoticeMismatch,
            vec![FieldError {
                field: "notice_number".into(),
                problem: "is not the notice of this application".into(),
            }],
        );
    }
    let mut e = ValidationErrors::new();
    e.check(
        !n.worker_id.trim().is_empty(),
        "worker_id",
        "must not be empty",
    );
    e.check(
        n.signed_on <= ctx.now.date_naive(),
        "signed_on",
        "must not be in the future",
    );
    e.check(
        n.signed_on >= s.application.date,
        "signed_on",
        "must not be before the application",
    );
    if !e.is_empty() {
        return refuse(NoticeRefusal::InvalidInput, e.fields);
    }
    let recorded = |signed: SignedNotice| -> Result<Step<Issuance>, Failure> {
        Ok(Step::to(Issuance {
            notice_signed: Some(signed.clone()),
            ..s.clone()
        })
        .send(Command::new(&NoticeRecorded {
            desk_id: s.application.desk_id.clone(),
            application_number: s.application.number.clone(),
            notice_number: number.clone(),
            signed_on: signed.signed_on,
        })?))
    };
    match &s.notice_signed {
        None => recorded(SignedNotice {
            signed_on: n.signed_on,
            worker_id: n.worker_id.trim().to_owned(),
            recorded_at: ctx.now,
        }),
        Some(first) if first.signed_on == n.signed_on && first.worker_id == n.worker_id.trim() => {
            recorded(first.clone())
        }
        Some(_) => refuse(NoticeRefusal::AlreadyRecorded, vec![]),
    }
}

/// A resend in the retired v1 form: refused, saying what to send instead.
fn refuse_retired_resend(s: &Issuance) -> Result<Step<Issuance>, Failure> {
    refuse_resend(
        s,
        None,
        ResendRefusal::RetiredVersion,
        Some(RejectDetail::Other(format!(
            "send {} with the worker, the person and the identity document presented again",
            ResendTemporaryPasswordV2::TYPE
        ))),
        vec![],
    )
}

/// Answers a resend with a refusal; the application goes back to `previous` (or stays where it
/// is): nothing changed.
fn refuse_resend(
    s: &Issuance,
    previous: Option<&Stage>,
    reason: ResendRefusal,
    detail: Option<RejectDetail>,
    fields: Vec<FieldError>,
) -> Result<Step<Issuance>, Failure> {
    let state = match previous {
        Some(p) => Issuance {
            stage: p.clone(),
            ..s.clone()
        },
        None => s.clone(),
    };
    Ok(Step::to(state).send(Command::new(&ResendRefused {
        desk_id: s.application.desk_id.clone(),
        application_number: s.application.number.clone(),
        reason,
        detail,
        fields,
    })?))
}

/// The temporary password SMS the operator accepted (or refused).
struct Sent<'a> {
    expires_at: DateTime<Utc>,
    operator: Operator,
    resend: bool,
    /// Where a resent one went; `None`: the application's phone.
    to: Option<&'a str>,
}

/// The phone code awaited, as the state keeps it.
struct CodeCheck<'a> {
    code_hash: &'a str,
    attempts_left: u32,
    expires_at: DateTime<Utc>,
    operator: Operator,
}

/// The registry's answer to the reservation.
fn reserved(s: &Issuance, r: &Reserved) -> Result<Step<Issuance>, Failure> {
    match r.outcome {
        ReserveOutcome::Reserved => Ok(with_stage(s, Stage::Reconciling).send(Command::new(
            &Reconcile {
                person: s.person.clone(),
                document: s.document.clone(),
            },
        )?)),
        // Nothing was reserved: nothing to undo.
        ReserveOutcome::AlreadyAssigned => {
            reject(s, RejectReason::AlreadyAssigned, None, vec![], false)
        }
        ReserveOutcome::PhoneBound => reject(s, RejectReason::PhoneBound, None, vec![], false),
    }
}

/// The MVD registry's verdict.
fn reconciled(s: &Issuance, r: &Reconciled) -> Result<Step<Issuance>, Failure> {
    match &r.result {
        ReconcileResult::Match => Ok(with_stage(s, Stage::CheckingSubscriber).send(Command::new(
            &CheckSubscriber {
                phone: s.phone.clone(),
            },
        )?)),
        ReconcileResult::Mismatch { fields } => {
            let fields = fields
                .iter()
                .map(|f| FieldError {
                    field: mvd_field(f),
                    problem: "differs from the MVD registry".into(),
                })
                .collect();
            reject(s, RejectReason::MvdMismatch, None, fields, true)
        }
        ReconcileResult::PersonUnknown => reject(
            s,
            RejectReason::MvdMismatch,
            Some(RejectDetail::PersonUnknown),
            vec![FieldError {
                field: "person.identification_number".into(),
                problem: "the MVD registry does not know this person".into(),
            }],
            true,
        ),
        ReconcileResult::DocumentInvalid { status } => reject(
            s,
            RejectReason::DocumentInvalid,
            Some(RejectDetail::from(status.as_str())),
            vec![],
            true,
        ),
    }
}

/// The phone code was not sent: the application ends now. Held back because the phone's limit
/// of wrong codes is reached, it ends as if its own attempts were used up.
fn code_not_sent(s: &Issuance, n: &SmsNotSent) -> Result<Step<Issuance>, Failure> {
    let detail = match n.reason {
        NotSentReason::WrongCodesPerPhoneReached => RejectDetail::TooManyAttempts,
        NotSentReason::SmsPerPhoneReached
        | NotSentReason::NoPhone
        | NotSentReason::NoOperator
        | NotSentReason::Refused => RejectDetail::CodeNotDelivered,
    };
    reject(
        s,
        RejectReason::PhoneNotConfirmed,
        Some(detail),
        vec![],
        true,
    )
    .map(|st| st.cancel_timer(CODE_TIMER))
}

/// The registry created (or re-keyed) the account: the sealed password SMS goes out.
fn account_created(
    s: &Issuance,
    text: &Sealed,
    expires_at: DateTime<Utc>,
    operator: Operator,
    resend: bool,
) -> Result<Step<Issuance>, Failure> {
    Ok(with_stage(
        s,
        Stage::SendingPassword {
            expires_at,
            operator,
            resend,
            to: None,
        },
    )
    .send(Command::new(&SendSms {
        to: s.phone.clone(),
        operator: Some(operator),
        purpose: SmsPurpose::TemporaryPassword,
        text: text.clone(),
    })?))
}

/// The operator's delivery report of the temporary password: kept, and a first failure told to
/// the desk.
fn password_delivery(s: &Issuance, d: &DeliveryReported) -> Result<Step<Issuance>, Failure> {
    let Stage::Issued {
        notice_number,
        expires_at,
        operator,
        password_delivered,
    } = &s.stage
    else {
        return Ok(Step::to(s.clone()));
    };
    let mut step = with_stage(
        s,
        Stage::Issued {
            notice_number: notice_number.clone(),
            expires_at: *expires_at,
            operator: *operator,
            password_delivered: Some(d.delivered),
        },
    );
    if !d.delivered && *password_delivered != Some(false) {
        step = step.send(password_not_delivered(s)?);
    }
    Ok(step)
}

fn password_not_delivered(s: &Issuance) -> Result<Command, Failure> {
    Command::new(&PasswordNotDelivered {
        desk_id: s.application.desk_id.clone(),
        application_number: s.application.number.clone(),
    })
}

fn with_stage(s: &Issuance, stage: Stage) -> Step<Issuance> {
    Step::to(Issuance { stage, ..s.clone() })
}

/// Ends the application with `reason`, telling the desk, and releases the reservation when one
/// was made.
fn reject(
    s: &Issuance,
    reason: RejectReason,
    detail: Option<RejectDetail>,
    fields: Vec<FieldError>,
    release: bool,
) -> Result<Step<Issuance>, Failure> {
    let mut step = with_stage(
        s,
        Stage::Rejected {
            reason,
            detail: detail.clone(),
        },
    )
    .send(Command::new(&ApplicationRejected {
        desk_id: s.application.desk_id.clone(),
        application_number: s.application.number.clone(),
        reason,
        detail,
        fields,
    })?);
    if release {
        step = step.send(self::release(s)?);
    }
    Ok(step)
}

/// Tells the SMS worker a wrong code was typed for the application's phone: it counts them per
/// phone over every application, so a new application on the same phone gets no fresh guesses
/// once the phone's limit is reached.
fn wrong_code(s: &Issuance) -> Result<Command, Failure> {
    Command::new(&WrongCode {
        phone: s.phone.clone(),
        purpose: SmsPurpose::PhoneCode,
    })
    .map(Command::detach)
}

/// The registry command that frees the application's reservation (a no-op when there is none).
fn release(s: &Issuance) -> Result<Command, Failure> {
    Command::new(&Release {
        identifier: s.person.identification_number.clone(),
        application: s.application.business_key(),
    })
}

fn masked_phone(phone: &str) -> String {
    Msisdn::parse(phone).map_or_else(|_| "***".into(), |p| p.masked())
}

fn notice_number(a: &Application) -> String {
    format!("UI-{}-{}-{}", a.date.year(), a.desk_id, a.number)
}

/// Checks the application's form; returns the problems, the parsed identification number and
/// the parsed phone (the phone's own rule is judged separately, as `phone_not_mobile`).
fn validate(
    a: &ApplyForIdentifier,
    today: NaiveDate,
    min_age: u32,
) -> (
    ValidationErrors,
    Option<IdNumber>,
    Result<Msisdn, PhoneError>,
) {
    let mut e = ValidationErrors::new();
    e.check(
        !a.application.number.trim().is_empty(),
        "application.number",
        "must not be empty",
    );
    e.check(
        !a.application.desk_id.trim().is_empty(),
        "application.desk_id",
        "must not be empty",
    );
    e.check(
        !a.application.worker_id.trim().is_empty(),
        "application.worker_id",
        "must not be empty",
    );
    e.check(
        a.application.date <= today,
        "application.date",
        "must not be in the future",
    );
    let id = identity::check_person(&mut e, &a.person, today, Some(min_age));
    identity::check_document(&mut e, &a.person, &a.document, today);
    let phone = Msisdn::parse(&a.phone);
    if let Err(PhoneError::Malformed { problem }) = &phone {
        e.add("phone", format!("is malformed: {problem}"));
    }
    (e, id, phone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::Metadata;
    use contracts::issuance::DocumentKind;
    use contracts::issuance::IdentityDocument;
    use contracts::person::PersonStatus;
    use hub_runtime::secrets::FreshSecret;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use uuid::Uuid;

    fn saga() -> IssuanceSaga {
        let sealer = Sealer::from_config(Some("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
            .expect("key");
        IssuanceSaga::new(Arc::new(sealer), IssuanceSettings::default())
    }

    fn application() -> ApplyForIdentifier {
        ApplyForIdentifier {
            application: Application {
                number: "A-1".into(),
                date: NaiveDate::from_ymd_opt(2026, 11, 20).expect("date"),
                desk_id: "minsk-1".into(),
                worker_id: "w-7".into(),
            },
            person: Applicant {
                identification_number: "3270287A012PB2".into(),
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
            phone: "+375 29 123-45-67".into(),
            consent_to_mvd_check: true,
        }
    }

    struct Run {
        saga: IssuanceSaga,
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

        /// A step as the engine runs it: the new secret the saga asks for is made first (as
        /// the engine does before its transaction), then the transition runs with it.
        fn step(&mut self, state: Option<&Issuance>, input: Input) -> Step<Issuance> {
            self.seed += 1;
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
            self.saga
                .transition(state, &input, &ctx)
                .expect("transition")
        }
    }

    fn sent(step: &Step<Issuance>) -> Vec<String> {
        step.commands
            .iter()
            .map(|c| c.message_type.to_string())
            .collect()
    }

    fn resend() -> Input {
        let a = application();
        Input::Resend(ResendTemporaryPasswordV2 {
            desk_id: "minsk-1".into(),
            application_number: "A-1".into(),
            worker_id: "w-9".into(),
            person: a.person,
            document: a.document,
            consent_to_mvd_check: true,
        })
    }

    fn matched() -> Input {
        Input::Reconciled(Reconciled {
            reconciliation_id: "r".into(),
            result: ReconcileResult::Match,
            checked_on: NaiveDate::from_ymd_opt(2026, 11, 22).expect("date"),
        })
    }

    fn body<M: Message>(step: &Step<Issuance>) -> M {
        let c = step
            .commands
            .iter()
            .find(|c| c.message_type == M::TYPE)
            .unwrap_or_else(|| panic!("a {} in {:?}", M::TYPE, sent(step)));
        serde_json::from_slice(&c.body).expect("body")
    }

    fn issued_state() -> Issuance {
        let a = application();
        Issuance {
            application: a.application,
            person: a.person,
            document: a.document,
            phone: "+375291234567".into(),
            notice_signed: None,
            stage: Stage::Issued {
                notice_number: "UI-2026-minsk-1-A-1".into(),
                expires_at: DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
                    .expect("time")
                    .with_timezone(&Utc),
                operator: Operator::A1,
                password_delivered: Some(false),
            },
        }
    }

    #[test]
    fn a_resend_checks_the_person_again_and_sends_to_the_phone_the_registry_holds_now() {
        let mut run = Run::new();
        let issued = issued_state();
        let s1 = run.step(Some(&issued), resend());
        assert_eq!(sent(&s1), ["mvd.reconcile.v1"]);
        let reconcile: Reconcile = body(&s1);
        assert_eq!(reconcile.person, application().person);
        assert_eq!(run.saga.state_name(&s1.state), "reissue_reconciling");
        let s2 = run.step(Some(&s1.state), matched());
        assert_eq!(sent(&s2), ["registry.reissue_password.v1"]);
        let reissue: ReissuePassword = body(&s2);
        assert_eq!(
            (reissue.application.as_str(), reissue.worker_id.as_str()),
            ("minsk-1/A-1", "w-9")
        );
        let Stage::ReissueRegistering { text, .. } = &s2.state.stage else {
            panic!("registering: {:?}", s2.state.stage);
        };
        let clear = run.saga.sealer.open(text).expect("opens");
        assert!(clear.contains("Временный пароль"), "{clear}");
        // The registry holds another phone now (a desk changed it): the SMS goes there.
        let s3 = run.step(
            Some(&s2.state),
            Input::Reissued(PasswordReissued {
                outcome: ReissueOutcome::Reissued {
                    phone: "+375447654321".into(),
                },
            }),
        );
        let sms: SendSms = body(&s3);
        assert_eq!(
            (sms.to.as_str(), sms.operator, sms.purpose),
            ("+375447654321", None, SmsPurpose::TemporaryPassword)
        );
        assert_eq!(&sms.text, text);
        let s4 = run.step(
            Some(&s3.state),
            Input::SmsSent(SmsSent {
                purpose: SmsPurpose::TemporaryPassword,
                operator: Operator::A1,
                provider_message_id: "m-1".into(),
            }),
        );
        assert_eq!(sent(&s4), ["issuance.password_resent.v1"]);
        let resent: PasswordResent = body(&s4);
        assert_eq!(resent.phone_masked.as_deref(), Some("+375 44 ***-**-21"));
        assert_eq!(run.saga.state_name(&s4.state), "issued");
        assert_eq!(
            s4.state.phone, "+375291234567",
            "the application's record stays"
        );
    }

    #[test]
    fn a_resend_is_refused_by_each_rule_and_the_application_stays_issued() {
        let mut run = Run::new();
        let issued = issued_state();
        let refusal = |step: &Step<Issuance>| -> ResendRefused { body(step) };
        let reconciling = run.step(Some(&issued), resend()).state;
        let registering = run.step(Some(&reconciling), matched()).state;
        for (outcome, reason) in [
            (
                ReissueOutcome::StaticPasswordSet,
                ResendRefusal::UseRecovery,
            ),
            (ReissueOutcome::Blocked, ResendRefusal::IdentifierBlocked),
            (ReissueOutcome::UnknownIdentifier, ResendRefusal::NotIssued),
        ] {
            let step = run.step(
                Some(&registering),
                Input::Reissued(PasswordReissued { outcome }),
            );
            assert_eq!(sent(&step), ["issuance.resend_refused.v1"]);
            assert_eq!(refusal(&step).reason, reason);
            assert_eq!(step.state, issued, "back where it was");
        }
        let mismatch = run.step(
            Some(&reconciling),
            Input::Reconciled(Reconciled {
                reconciliation_id: "r".into(),
                result: ReconcileResult::Mismatch {
                    fields: vec!["document.number".into()],
                },
                checked_on: run.now.date_naive(),
            }),
        );
        let r = refusal(&mismatch);
        assert_eq!(
            (r.reason, r.fields[0].field.as_str()),
            (ResendRefusal::MvdMismatch, "document.number")
        );
        assert_eq!(mismatch.state, issued);
        let lost = run.step(
            Some(&reconciling),
            Input::Reconciled(Reconciled {
                reconciliation_id: "r".into(),
                result: ReconcileResult::DocumentInvalid {
                    status: "lost".into(),
                },
                checked_on: run.now.date_naive(),
            }),
        );
        assert_eq!(refusal(&lost).reason, ResendRefusal::DocumentInvalid);

        // The form, before anything leaves the saga.
        let mut other = application().person;
        other.identification_number = "7000000A000PB1".into();
        let Input::Resend(mut wrong_person) = resend() else {
            unreachable!()
        };
        wrong_person.person = other;
        wrong_person.worker_id = " ".into();
        let step = run.step(Some(&issued), Input::Resend(wrong_person));
        let r = refusal(&step);
        let fields: Vec<&str> = r.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(r.reason, ResendRefusal::InvalidInput);
        assert_eq!(fields, ["worker_id", "person.identification_number"]);
        assert_eq!(step.state, issued);
        let Input::Resend(mut no_consent) = resend() else {
            unreachable!()
        };
        no_consent.consent_to_mvd_check = false;
        let step = run.step(Some(&issued), Input::Resend(no_consent));
        assert_eq!(refusal(&step).reason, ResendRefusal::ConsentMissing);
        let Input::Resend(mut expired) = resend() else {
            unreachable!()
        };
        expired.document.expires_on = NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
        let step = run.step(Some(&issued), Input::Resend(expired));
        assert_eq!(refusal(&step).reason, ResendRefusal::DocumentInvalid);

        // The retired v1 is refused with the version to send; nothing else happens.
        let v1 = run.step(
            Some(&issued),
            Input::ResendRetired(ResendTemporaryPassword {
                desk_id: "minsk-1".into(),
                application_number: "A-1".into(),
            }),
        );
        assert_eq!(sent(&v1), ["issuance.resend_refused.v1"]);
        let r = refusal(&v1);
        assert_eq!(r.reason, ResendRefusal::RetiredVersion);
        assert!(
            r.detail
                .expect("detail")
                .as_str()
                .contains("issuance.resend_password.v2")
        );
        assert_eq!(v1.state, issued);
        // Before the identifier is issued there is nothing to resend.
        let reserving = Issuance {
            stage: Stage::Reserving,
            ..issued.clone()
        };
        let early = run.step(Some(&reserving), resend());
        assert_eq!(refusal(&early).reason, ResendRefusal::NotIssued);
        assert_eq!(early.state, reserving);
        // A second resend while the first is checked changes nothing.
        let twice = run.step(Some(&reconciling), resend());
        assert!(twice.commands.is_empty());
    }

    #[test]
    fn the_signed_notice_is_recorded_once_for_the_application_s_own_notice() {
        let mut run = Run::new();
        let issued = issued_state();
        let signed = |number: &str, worker: &str| {
            Input::NoticeSigned(NoticeSigned {
                desk_id: "minsk-1".into(),
                application_number: "A-1".into(),
                notice_number: number.into(),
                signed_on: NaiveDate::from_ymd_opt(2026, 11, 22).expect("date"),
                worker_id: worker.into(),
            })
        };
        let refused =
            |step: &Step<Issuance>| -> NoticeRefusal { body::<NoticeRefused>(step).reason };
        let s1 = run.step(Some(&issued), signed("UI-2026-minsk-1-A-1", "w-7"));
        assert_eq!(sent(&s1), ["issuance.notice_recorded.v1"]);
        let recorded = s1.state.notice_signed.clone().expect("recorded");
        assert_eq!(
            (recorded.worker_id.as_str(), recorded.recorded_at),
            ("w-7", run.now)
        );
        assert_eq!(s1.state.stage, issued.stage, "the stage stays");
        // Again, the same: answered again, nothing new. Another signature: refused.
        let again = run.step(Some(&s1.state), signed("UI-2026-minsk-1-A-1", "w-7"));
        assert_eq!(sent(&again), ["issuance.notice_recorded.v1"]);
        assert_eq!(again.state, s1.state);
        let other = run.step(Some(&s1.state), signed("UI-2026-minsk-1-A-1", "w-8"));
        assert_eq!(refused(&other), NoticeRefusal::AlreadyRecorded);
        assert_eq!(other.state, s1.state);
        let wrong = run.step(Some(&issued), signed("UI-2026-minsk-1-A-2", "w-7"));
        assert_eq!(refused(&wrong), NoticeRefusal::NoticeMismatch);
        assert_eq!(wrong.state, issued);
        let nobody = run.step(Some(&issued), signed("UI-2026-minsk-1-A-1", " "));
        assert_eq!(refused(&nobody), NoticeRefusal::InvalidInput);
        let early = Issuance {
            stage: Stage::CheckingSubscriber,
            ..issued.clone()
        };
        let not_yet = run.step(Some(&early), signed("UI-2026-minsk-1-A-1", "w-7"));
        assert_eq!(refused(&not_yet), NoticeRefusal::NotIssued);
        // A resend keeps it.
        let reissuing = run.step(Some(&s1.state), resend());
        assert_eq!(reissuing.state.notice_signed, s1.state.notice_signed);
    }

    fn rejection(step: &Step<Issuance>) -> ApplicationRejected {
        let c = step
            .commands
            .iter()
            .find(|c| c.message_type == ApplicationRejected::TYPE)
            .expect("a rejection");
        serde_json::from_slice(&c.body).expect("body")
    }

    #[test]
    fn a_good_application_is_issued_step_by_step_and_secrets_leave_only_sealed_or_hashed() {
        let mut run = Run::new();
        let s1 = run.step(None, Input::Apply(application()));
        assert_eq!(sent(&s1), ["registry.reserve.v1"]);
        assert_eq!(s1.state.phone, "+375291234567", "the phone is normalised");
        let s2 = run.step(
            Some(&s1.state),
            Input::Reserved(Reserved {
                outcome: ReserveOutcome::Reserved,
            }),
        );
        assert_eq!(sent(&s2), ["mvd.reconcile.v1"]);
        let s3 = run.step(
            Some(&s2.state),
            Input::Reconciled(Reconciled {
                reconciliation_id: "r".into(),
                result: ReconcileResult::Match,
                checked_on: run.now.date_naive(),
            }),
        );
        assert_eq!(sent(&s3), ["sms.check_subscriber.v1"]);
        let s4 = run.step(
            Some(&s3.state),
            Input::Subscriber(SubscriberChecked {
                status: SubscriberStatus::Active,
                operator: Some(Operator::A1),
            }),
        );
        assert_eq!(sent(&s4), ["sms.send.v1", "issuance.phone_code_sent.v1"]);
        assert_eq!(s4.timers.len(), 1);
        let send: SendSms = serde_json::from_slice(&s4.commands[0].body).expect("body");
        let text = run.saga.sealer.open(&send.text).expect("opens");
        let code: String = text.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(code.len(), 6);
        let all_bytes = |s: &Step<Issuance>| {
            let mut v = serde_json::to_vec(&s.state).expect("state");
            for c in &s.commands {
                v.extend_from_slice(&c.body);
            }
            String::from_utf8_lossy(&v).into_owned()
        };
        assert!(
            !all_bytes(&s4).contains(&code),
            "the code is never in the clear"
        );

        let s5 = run.step(
            Some(&s4.state),
            Input::Confirm(ConfirmPhone {
                desk_id: "minsk-1".into(),
                application_number: "A-1".into(),
                code: code.clone(),
            }),
        );
        assert_eq!(sent(&s5), ["registry.create_account.v1"]);
        assert_eq!(s5.cancel_timers, vec![CODE_TIMER.to_string()]);
        let Stage::CreatingAccount { text, .. } = &s5.state.stage else {
            panic!("creating the account: {:?}", s5.state.stage);
        };
        let text = run.saga.sealer.open(text).expect("opens");
        let password = text
            .split("пароль: ")
            .nth(1)
            .and_then(|r| r.split('.').next())
            .expect("password in the text")
            .to_owned();
        assert_eq!(password.len(), 10);
        let create: CreateAccount = serde_json::from_slice(&s5.commands[0].body).expect("body");
        assert!(verify_secret(&password, &create.temporary_password_hash));
        assert!(
            !all_bytes(&s5).contains(&password),
            "the password is never in the clear"
        );

        let s6 = run.step(
            Some(&s5.state),
            Input::AccountCreated(AccountCreated {
                password_replaced: false,
            }),
        );
        assert_eq!(sent(&s6), ["sms.send.v1"]);
        let s7 = run.step(
            Some(&s6.state),
            Input::SmsSent(SmsSent {
                purpose: SmsPurpose::TemporaryPassword,
                operator: Operator::A1,
                provider_message_id: "a1-1".into(),
            }),
        );
        assert_eq!(sent(&s7), ["issuance.identifier_issued.v1"]);
        let issued: IdentifierIssued = serde_json::from_slice(&s7.commands[0].body).expect("body");
        assert_eq!(issued.notice.identifier, "3270287A012PB2");
        assert_eq!(issued.notice.notice_number, "UI-2026-minsk-1-A-1");
        assert_eq!(issued.notice.phone_masked, "+375 29 ***-**-67");
        assert!(run.saga.is_terminal(&s7.state));
    }

    #[test]
    fn the_transition_uses_the_secret_prepared_before_the_transaction_and_hashes_none() {
        let mut run = Run::new();
        let mut state = run.step(None, Input::Apply(application())).state;
        for input in [
            Input::Reserved(Reserved {
                outcome: ReserveOutcome::Reserved,
            }),
            Input::Reconciled(Reconciled {
                reconciliation_id: "r".into(),
                result: ReconcileResult::Match,
                checked_on: run.now.date_naive(),
            }),
        ] {
            state = run.step(Some(&state), input).state;
        }
        let active = || {
            Input::Subscriber(SubscriberChecked {
                status: SubscriberStatus::Active,
                operator: Some(Operator::A1),
            })
        };
        fn at<'a>(run: &'a Run, prepared: Option<&'a FreshSecret>) -> StepContext<'a> {
            StepContext {
                now: run.now,
                saga_id: Uuid::nil(),
                message: &run.meta,
                seed: [7; 32],
                prepared,
            }
        }
        // The saga names what it needs; the engine makes it before BEGIN. Not a PHC string:
        // what comes out was given, not hashed here.
        assert_eq!(
            run.saga.fresh_secret(Some(&state), &active()),
            Some(SecretKind::Digits(6))
        );
        let code = FreshSecret::from_parts(SecretKind::Digits(6), "135790", "prepared-code-hash");
        let sent = run
            .saga
            .transition(Some(&state), &active(), &at(&run, Some(&code)))
            .expect("transition");
        let Stage::ConfirmingPhone { code_hash, .. } = &sent.state.stage else {
            panic!("confirming the phone: {:?}", sent.state.stage);
        };
        assert_eq!(code_hash, "prepared-code-hash");
        let sms: SendSms = serde_json::from_slice(&sent.commands[0].body).expect("body");
        assert!(
            run.saga
                .sealer
                .open(&sms.text)
                .expect("opens")
                .contains("135790")
        );
        // Without the prepared secret the step fails rather than hash in the transaction.
        let unprepared = run
            .saga
            .transition(Some(&state), &active(), &at(&run, None))
            .expect_err("not prepared");
        assert!(unprepared.reason.contains("not prepared"), "{unprepared:?}");

        // The code is checked here, under the lock; the password comes prepared.
        let confirming = Issuance {
            stage: Stage::ConfirmingPhone {
                code_hash: hub_runtime::secrets::hash_secret(
                    &mut StdRng::seed_from_u64(1),
                    "135790",
                )
                .expect("hash"),
                attempts_left: 3,
                expires_at: run.now + Duration::from_secs(60),
                operator: Operator::A1,
            },
            ..state.clone()
        };
        let confirm = Input::Confirm(ConfirmPhone {
            desk_id: "minsk-1".into(),
            application_number: "A-1".into(),
            code: "135790".into(),
        });
        assert_eq!(
            run.saga.fresh_secret(Some(&confirming), &confirm),
            Some(SecretKind::Password)
        );
        let password =
            FreshSecret::from_parts(SecretKind::Password, "Xy3kLmNpQr", "prepared-password-hash");
        let created = run
            .saga
            .transition(Some(&confirming), &confirm, &at(&run, Some(&password)))
            .expect("transition");
        let create: CreateAccount =
            serde_json::from_slice(&created.commands[0].body).expect("body");
        assert_eq!(create.temporary_password_hash, "prepared-password-hash");
        let Stage::CreatingAccount { text, .. } = &created.state.stage else {
            panic!("creating the account: {:?}", created.state.stage);
        };
        assert!(
            run.saga
                .sealer
                .open(text)
                .expect("opens")
                .contains("Xy3kLmNpQr")
        );
        // A resend needs one once the MVD confirms the person again, not before.
        let issued = Issuance {
            stage: Stage::Issued {
                notice_number: "n".into(),
                expires_at: run.now,
                operator: Operator::A1,
                password_delivered: None,
            },
            ..state.clone()
        };
        assert_eq!(run.saga.fresh_secret(Some(&issued), &resend()), None);
        let reconciling = Issuance {
            stage: Stage::ReissueReconciling {
                worker_id: "w-9".into(),
                previous: Box::new(issued.stage.clone()),
            },
            ..state.clone()
        };
        assert_eq!(
            run.saga.fresh_secret(Some(&reconciling), &matched()),
            Some(SecretKind::Password)
        );
        let blocked = Input::Subscriber(SubscriberChecked {
            status: SubscriberStatus::Blocked,
            operator: Some(Operator::A1),
        });
        assert_eq!(run.saga.fresh_secret(Some(&state), &blocked), None);
        assert_eq!(
            run.saga.fresh_secret(None, &Input::Apply(application())),
            None
        );
        // The hint the engine acts on before any read names, for every message of the usual
        // path, what the state then asks for: those steps run once, with no attempt rolled back.
        for (state, input) in [(&state, &active()), (&confirming, &confirm)] {
            assert_eq!(
                run.saga.likely_secret(input),
                run.saga.fresh_secret(Some(state), input),
                "{input:?}"
            );
        }
        assert_eq!(run.saga.likely_secret(&blocked), None);
        assert_eq!(run.saga.likely_secret(&Input::Apply(application())), None);
    }

    #[test]
    fn each_broken_rule_in_the_application_is_its_own_rejection() {
        let mut run = Run::new();
        let mut bad = application();
        bad.person.identification_number = "327028".into();
        bad.person.birth_date = NaiveDate::from_ymd_opt(2020, 1, 1).expect("date");
        let r = rejection(&run.step(None, Input::Apply(bad)));
        assert_eq!(r.reason, RejectReason::InvalidInput);
        let fields: Vec<&str> = r.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["person.identification_number", "person.birth_date"]
        );

        let mut no_consent = application();
        no_consent.consent_to_mvd_check = false;
        let r = rejection(&run.step(None, Input::Apply(no_consent)));
        assert_eq!(r.reason, RejectReason::ConsentMissing);

        let mut expired = application();
        expired.document.expires_on = NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
        let r = rejection(&run.step(None, Input::Apply(expired)));
        assert_eq!(
            (r.reason, r.detail.as_ref().map(RejectDetail::as_str)),
            (RejectReason::DocumentInvalid, Some("expired"))
        );

        let mut landline = application();
        landline.phone = "+375 17 123-45-67".into();
        let r = rejection(&run.step(None, Input::Apply(landline)));
        assert_eq!(r.reason, RejectReason::PhoneNotMobile);

        let mut wrong_status = application();
        wrong_status.person.status = PersonStatus::Stateless;
        wrong_status.document.kind = DocumentKind::ResidencePermit;
        let r = rejection(&run.step(None, Input::Apply(wrong_status)));
        assert_eq!(r.fields[0].field, "person.status");
    }

    #[test]
    fn a_failed_step_after_the_reservation_releases_it() {
        let mut run = Run::new();
        let s1 = run.step(None, Input::Apply(application()));
        let taken = run.step(
            Some(&s1.state),
            Input::Reserved(Reserved {
                outcome: ReserveOutcome::AlreadyAssigned,
            }),
        );
        assert_eq!(rejection(&taken).reason, RejectReason::AlreadyAssigned);
        assert_eq!(sent(&taken), ["issuance.rejected.v1"], "nothing to release");

        let s2 = run.step(
            Some(&s1.state),
            Input::Reserved(Reserved {
                outcome: ReserveOutcome::Reserved,
            }),
        );
        let mismatch = run.step(
            Some(&s2.state),
            Input::Reconciled(Reconciled {
                reconciliation_id: "r".into(),
                result: ReconcileResult::Mismatch {
                    fields: vec!["surname".into()],
                },
                checked_on: run.now.date_naive(),
            }),
        );
        assert_eq!(
            sent(&mismatch),
            ["issuance.rejected.v1", "registry.release.v1"]
        );
        let r = rejection(&mismatch);
        assert_eq!(r.reason, RejectReason::MvdMismatch);
        assert_eq!(r.fields[0].field, "person.surname");
    }

    #[test]
    fn an_operators_cancel_rejects_and_releases_until_the_account_step() {
        let mut run = Run::new();
        let request = CancelSaga {
            saga_id: Uuid::nil(),
            reason: "MVD outage for a week".into(),
            operator: "ivanov".into(),
        };
        let cancel = |run: &Run, state: &Issuance| {
            let ctx = StepContext {
                now: run.now,
                saga_id: Uuid::nil(),
                message: &run.meta,
                seed: [1; 32],
                prepared: None,
            };
            run.saga.cancel(state, &request, &ctx)
        };
        let reserving = run.step(None, Input::Apply(application())).state;
        let reconciling = run
            .step(
                Some(&reserving),
                Input::Reserved(Reserved {
                    outcome: ReserveOutcome::Reserved,
                }),
            )
            .state;
        let stuck = cancel(&run, &reconciling).expect("cancelled");
        assert_eq!(
            sent(&stuck),
            ["issuance.rejected.v1", "registry.release.v1"]
        );
        let r = rejection(&stuck);
        assert_eq!(
            (r.reason, r.detail.as_ref().map(RejectDetail::as_str)),
            (
                RejectReason::CancelledByOperator,
                Some("MVD outage for a week")
            )
        );
        assert_eq!(r.reason.as_str(), "cancelled_by_operator");
        assert!(run.saga.is_terminal(&stuck.state));
        assert_eq!(stuck.cancel_timers, vec![CODE_TIMER.to_string()]);
        // Cancelled while the reservation was on its way: released now, and again when the
        // registry's late answer comes.
        let early = cancel(&run, &reserving).expect("cancelled");
        assert!(sent(&early).contains(&"registry.release.v1".to_owned()));
        let late = run.step(
            Some(&early.state),
            Input::Reserved(Reserved {
                outcome: ReserveOutcome::Reserved,
            }),
        );
        assert_eq!(sent(&late), ["registry.release.v1"]);
        assert_eq!(late.state, early.state);
        // Past the phone confirmation the identifier may be assigned: refused. Ended: refused.
        let creating = Issuance {
            stage: Stage::SendingPassword {
                expires_at: run.now,
                operator: Operator::A1,
                resend: false,
                to: None,
            },
            ..reconciling.clone()
        };
        let refused = cancel(&run, &creating).expect_err("refused");
        assert!(
            refused.reason.contains("cannot be cancelled"),
            "{refused:?}"
        );
        assert!(cancel(&run, &stuck.state).is_err());
    }

    #[test]
    fn wrong_codes_are_counted_and_the_last_one_rejects() {
        let mut run = Run::new();
        let mut state = run.step(None, Input::Apply(application())).state;
        state = run
            .step(
                Some(&state),
                Input::Reserved(Reserved {
                    outcome: ReserveOutcome::Reserved,
                }),
            )
            .state;
        state = run
            .step(
                Some(&state),
                Input::Reconciled(Reconciled {
                    reconciliation_id: "r".into(),
                    result: ReconcileResult::Match,
                    checked_on: run.now.date_naive(),
                }),
            )
            .state;
        state = run
            .step(
                Some(&state),
                Input::Subscriber(SubscriberChecked {
                    status: SubscriberStatus::Active,
                    operator: Some(Operator::Mts),
                }),
            )
            .state;
        let wrong = || {
            Input::Confirm(ConfirmPhone {
                desk_id: "minsk-1".into(),
                application_number: "A-1".into(),
                code: "not-it".into(),
            })
        };
        let first = run.step(Some(&state), wrong());
        assert_eq!(
            sent(&first),
            ["issuance.phone_code_wrong.v1", "sms.wrong_code.v1"]
        );
        let second = run.step(Some(&first.state), wrong());
        let third = run.step(Some(&second.state), wrong());
        let r = rejection(&third);
        assert_eq!(
            (r.reason, r.detail.as_ref().map(RejectDetail::as_str)),
            (RejectReason::PhoneNotConfirmed, Some("too_many_attempts"))
        );
        assert!(sent(&third).contains(&"registry.release.v1".to_owned()));
        assert_eq!(third.cancel_timers, vec![CODE_TIMER.to_string()]);
        // Every wrong code, the last one too, is counted against the phone, detached.
        for step in [&first, &second, &third] {
            let counted: Vec<&Command> = step
                .commands
                .iter()
                .filter(|c| c.message_type == WrongCode::TYPE)
                .collect();
            assert_eq!(counted.len(), 1);
            assert!(counted[0].detached);
            let w: WrongCode = serde_json::from_slice(&counted[0].body).expect("body");
            assert_eq!(
                (w.phone.as_str(), w.purpose),
                ("+375291234567", SmsPurpose::PhoneCode)
            );
        }

        let expired = run.step(Some(&state), Input::CodeExpired);
        let r = rejection(&expired);
        assert_eq!(
            r.detail.as_ref().map(RejectDetail::as_str),
            Some("timed_out")
        );

        // The phone's limit of wrong codes over every application is reached: the code is not
        // sent, and the application ends at once, as if its own attempts were used up.
        let not_sent = |reason| Input::SmsNotSent(SmsNotSent::new(SmsPurpose::PhoneCode, reason));
        let limited = run.step(
            Some(&state),
            not_sent(NotSentReason::WrongCodesPerPhoneReached),
        );
        let r = rejection(&limited);
        assert_eq!(
            (r.reason, r.detail.as_ref().map(RejectDetail::as_str)),
            (RejectReason::PhoneNotConfirmed, Some("too_many_attempts"))
        );
        assert!(sent(&limited).contains(&"registry.release.v1".to_owned()));
        assert_eq!(limited.cancel_timers, vec![CODE_TIMER.to_string()]);
        let refused = run.step(Some(&state), not_sent(NotSentReason::Refused));
        assert_eq!(
            rejection(&refused)
                .detail
                .as_ref()
                .map(RejectDetail::as_str),
            Some("code_not_delivered")
        );
    }
}
