//! The application for an administrative procedure, one saga per application:
//!
//! ```text
//! submit --checks--> [fee] awaiting_payment --ERIP paid--> at_authority --registered--> registered
//!                    [free] ---------------------------> at_authority
//! at_authority | registered --decided--> decided
//! withdraw: awaiting_payment --> withdrawn (invoice cancelled)
//!           at_authority | registered --> withdrawing --authority stops--> withdrawn (refund due)
//!                                                    --authority had decided--> decided
//! awaiting_payment --payment term over--> rejected (payment_expired)
//! awaiting_payment --receipt of a payment outside ERIP--> receipt_at_authority
//!           --authority confirms--> (counted as a payment) --refuses--> awaiting_payment
//! at_authority --authority asks for information--> awaiting_info (the term suspended)
//!           --the person answers--> at_authority (the term moved by the working days waited)
//!           --the period the authority named passes--> at_authority (moved to the period's end;
//!             the authority may refuse)
//! operator's cancel (a stuck application): --> cancelled, as a withdrawal that does not wait
//!           for the authority (invoice cancelled, or the authority told and the refund due)
//! ```
//!
//! Payments must match the fee ([`super::payment`]): short payments add up, and the application
//! moves on only when they reach the fee; the person is told what is missing after each. Money
//! above the fee, a second payment, a payment after the application ended, and the fee of an
//! application that ends unused are recorded as due back (in the state's `ledger`, and the view
//! `payments_due_back`), and the person is told; ERIP's refunds and reversals are recorded too.
//!
//! The statutory term is counted in working days on the Belarus calendar; when it passes with
//! no decision the saga raises `procedure.overdue.v1` (to the portal) and the person gets an SMS; an
//! information request of the authority suspends the term until the person answers. A withdrawal racing a
//! decision is settled by the authority, which alone knows whether it decided first: the
//! application ends as exactly one of the two, and everyone is told the same.

use std::sync::Arc;
use std::time::Duration;

use adapters::Failure;
use chrono::{DateTime, NaiveDate, Utc};
use contracts::ops::CancelSaga;
use contracts::procedure::{
    ApplicationAccepted, ApplicationDecided, ApplicationOverdue, ApplicationRegistered,
    ApplicationRejected, ApplicationWithdrawn, AuthorityApplication, AuthorityDecided,
    AuthorityDecisionRefused, AuthorityInfoProvided, AuthorityInfoRequested,
    AuthorityPaymentReceipt, AuthorityReceiptAnswered, AuthorityRegistered, AuthorityWithdrawal,
    AuthorityWithdrawalAnswered, BankPayment, CancelInvoice, CreateInvoice, DecisionRefusalReason,
    Delivery, DueBackReason, InfoProvided, InfoRequested, InvoiceCreated, InvoiceEvent,
    InvoiceNotified, PaymentDueBack, PaymentReceived, PaymentReturned, ProcedureRejectReason,
    ReceiptChecked, ReceiptCheckedBy, ReturnKind, SignedDecision, Verdict, WithdrawalReason,
    order_number_check_digit,
};
use contracts::sms::NotifyHolder;
use contracts::{FieldError, Message, MessageType, decode};
use rand::Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::calendar::Calendar;
use super::catalogue::Catalogue;
use super::decision::{CheckOutcome, DecisionChecked};
use super::payment::{Ledger, PaymentSource, Recorded, bank_operation, rubles};
use crate::sessions::{
    self, AttachReceiptAs, ProvideInfoAs, StartApplication, WithdrawApplicationAs,
};
use hub_runtime::broker::Incoming;
use hub_runtime::engine::{Command, Saga, SagaKey, Step, StepContext, TimerRequest};

/// The saga type.
pub const SAGA_TYPE: &str = "procedure";
/// Its queue (short name).
pub const QUEUE: &str = "saga.procedure";
const PAYMENT_TIMER: &str = "payment";
const OVERDUE_TIMER: &str = "overdue";
const INFO_TIMER: &str = "info";
/// The period to answer an information request when the authority names none, working days.
pub const DEFAULT_INFO_PERIOD_WORKING_DAYS: u32 = 10;

/// The short name of an authority's queue: the hub sends it applications and withdrawals there.
pub fn authority_queue(authority: &str) -> String {
    format!("authority.{authority}")
}

/// Fired by the saga's own timers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlinePassed {
    /// The application.
    pub application_id: Uuid,
    /// `payment`, `overdue` or `info`.
    pub which: String,
}

impl Message for DeadlinePassed {
    const TYPE: MessageType = MessageType::new("procedure.deadline_passed", 1);
}

/// The queue and what it takes from the bus (ERIP's events come by name, from the callback;
/// the portal's requests through the session gate, [`crate::sessions`], by name too).
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        QUEUE,
        [
            AuthorityRegistered::TYPE.to_string(),
            AuthorityInfoRequested::TYPE.to_string(),
            AuthorityDecided::TYPE.to_string(),
            AuthorityWithdrawalAnswered::TYPE.to_string(),
            AuthorityReceiptAnswered::TYPE.to_string(),
        ],
    )
}

/// Settings.
#[derive(Debug, Clone)]
pub struct ProcedureSettings {
    /// How long an invoice may stay unpaid.
    pub payment_ttl: Duration,
    /// What becomes of an unsigned `authority.decided.v1` (`HUB_UNSIGNED_DECISIONS`).
    pub unsigned_decisions: UnsignedDecisions,
}

impl Default for ProcedureSettings {
    fn default() -> Self {
        Self {
            payment_ttl: Duration::from_secs(72 * 3600),
            unsigned_decisions: UnsignedDecisions::Refuse,
        }
    }
}

/// What becomes of an unsigned decision (`authority.decided.v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UnsignedDecisions {
    /// Refused back to the authority (`authority.decision_refused.v1`, `unsigned`): the
    /// default, and the only choice in production.
    Refuse,
    /// Taken as before signed decisions existed: development and old test set-ups only; the
    /// cabinet then shows a decision with no signer.
    Accept,
}

/// The procedure saga.
#[derive(Debug, Clone)]
pub struct ProcedureSaga {
    catalogue: Arc<Catalogue>,
    calendar: Arc<Calendar>,
    settings: ProcedureSettings,
    /// The namespace prefix of queue names (`ns.`), to address authorities' queues.
    prefix: String,
    /// The hub's own broker user: HTTP back-offices' answers come through its bridge.
    bridge_user: String,
}

impl ProcedureSaga {
    /// The bus exchange, from which the hub's own messages of the session gate are refused.
    fn bus(&self) -> String {
        format!("{}bus", self.prefix)
    }

    /// The saga over a catalogue and a calendar; `namespace` addresses the authorities' queues.
    pub fn new(
        catalogue: Arc<Catalogue>,
        calendar: Arc<Calendar>,
        settings: ProcedureSettings,
        namespace: &str,
        bridge_user: &str,
    ) -> Self {
        Self {
            catalogue,
            calendar,
            settings,
            prefix: format!("{namespace}."),
            bridge_user: bridge_user.to_owned(),
        }
    }

    /// The instance key of an application.
    pub fn key(application_id: Uuid) -> SagaKey {
        SagaKey::for_business_key(SAGA_TYPE, &application_id.to_string())
    }
}

/// One application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Application {
    /// The portal's id.
    pub application_id: Uuid,
    /// The hub's number.
    pub number: String,
    /// The procedure.
    pub procedure_code: String,
    /// The deciding authority.
    pub authority: String,
    /// The applicant's identifier.
    pub applicant: String,
    /// The form.
    pub form: serde_json::Map<String, serde_json::Value>,
    /// Attachments.
    pub attachments: Vec<String>,
    /// The fee, kopecks.
    pub fee_kopecks: u64,
    /// The ERIP order number, for a paid procedure.
    pub order_number: Option<String>,
    /// ERIP's invoice id, once known.
    pub invoice_id: Option<String>,
    /// The payment that met the fee, once it is met (`amount_kopecks`: the fee).
    pub paid: Option<Paid>,
    /// The ERIP receipt the person attached, if any.
    #[serde(default)]
    pub receipt: Option<Paid>,
    /// Every payment, what counts toward the fee, what is due back, refunds and reversals.
    #[serde(default)]
    pub ledger: Ledger,
    /// The receipt of a payment outside ERIP the authority was sent and has not answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_at_authority: Option<BankReceipt>,
    /// The authority's registration number.
    pub registration_number: Option<String>,
    /// The last day of the statutory term.
    pub decision_due: Option<NaiveDate>,
    /// Where it is.
    pub stage: Stage,
    /// How the person wants the decision.
    #[serde(default)]
    pub delivery: Delivery,
    /// The authority's information request, while it waits for the person (or after its
    /// period passed unanswered: `lapsed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info_request: Option<PendingInfo>,
    /// Working days the term was suspended in all, for the authority's information requests.
    #[serde(default)]
    pub suspended_working_days: u32,
    /// The term passed without a decision (the person was told, and may complain of inaction).
    #[serde(default)]
    pub overdue: bool,
}

/// An information request of the authority, waiting for the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInfo {
    /// What the authority asks.
    pub request: String,
    /// The day (Minsk) it asked: the term stops after it.
    pub requested_on: NaiveDate,
    /// The last day the person may answer.
    pub answer_by: NaiveDate,
    /// The period passed unanswered: the term runs again, an answer is refused.
    #[serde(default)]
    pub lapsed: bool,
}

/// A payment ERIP reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paid {
    /// ERIP's operation number.
    pub operation_id: String,
    /// Amount, kopecks.
    pub amount_kopecks: u64,
}

/// A receipt of a payment outside ERIP, sent to the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankReceipt {
    /// The amount on it, kopecks.
    pub amount_kopecks: u64,
    /// The payment it shows.
    pub payment: BankPayment,
}

/// Where an application is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Waiting for ERIP.
    AwaitingPayment {
        /// The invoice's term.
        pay_before: DateTime<Utc>,
    },
    /// With the authority.
    AtAuthority,
    /// The person withdrew; the authority is asked whether it can still stop.
    Withdrawing,
    /// Decided.
    Decided {
        /// The verdict.
        verdict: Verdict,
    },
    /// Withdrawn.
    Withdrawn {
        /// Fee due back, kopecks.
        refund_due_kopecks: u64,
    },
    /// Ended without a decision.
    Rejected {
        /// Why.
        reason: ProcedureRejectReason,
    },
    /// Ended by an operator (`hub saga cancel`), as a withdrawal.
    Cancelled {
        /// The operator's reason.
        reason: String,
        /// Fee due back, kopecks.
        refund_due_kopecks: u64,
    },
}

/// What the saga reads.
#[derive(Debug)]
pub enum Input {
    /// A new application (from the session gate: the applicant is the session's).
    Submit(StartApplication),
    /// Someone withdraws (from the session gate, with the session's identifier).
    Withdraw(WithdrawApplicationAs),
    /// Someone attaches the payment receipt (from the session gate).
    Receipt(AttachReceiptAs),
    /// Someone answers the authority's information request (from the session gate).
    ProvideInfo(ProvideInfoAs),
    /// ERIP created the invoice.
    InvoiceCreated(InvoiceCreated),
    /// ERIP reported on the invoice.
    Invoice(InvoiceNotified),
    /// A timer.
    Deadline(DeadlinePassed),
    /// From the authority.
    Registered(AuthorityRegistered),
    /// From the authority.
    InfoRequested(AuthorityInfoRequested),
    /// From the authority: an unsigned decision (`authority.decided.v1`).
    Decided(AuthorityDecided),
    /// From the decision gate: a signed decision and what the gate found of it.
    DecisionChecked(DecisionChecked),
    /// From the authority.
    WithdrawalAnswered(AuthorityWithdrawalAnswered),
    /// From the authority: its answer on a receipt of a payment outside ERIP.
    ReceiptAnswered(AuthorityReceiptAnswered),
}

impl Input {
    fn is_from_authority(&self) -> bool {
        matches!(
            self,
            Input::Registered(_)
                | Input::InfoRequested(_)
                | Input::Decided(_)
                | Input::WithdrawalAnswered(_)
                | Input::ReceiptAnswered(_)
        )
    }

    /// Who asks, for the person's requests about an existing application.
    fn requester(&self) -> Option<&str> {
        match self {
            Input::Withdraw(m) => Some(&m.applicant),
            Input::Receipt(m) => Some(&m.applicant),
            Input::ProvideInfo(m) => Some(&m.applicant),
            _ => None,
        }
    }
}

impl Saga for ProcedureSaga {
    type State = Application;
    type Input = Input;

    fn saga_type(&self) -> &'static str {
        SAGA_TYPE
    }

    fn read(&self, message: &Incoming) -> Result<(SagaKey, Input), Failure> {
        let t = message.metadata.message_type.as_str();
        let b = &message.body;
        let by_id = |id: Uuid| Self::key(id);
        let by_correlation = || SagaKey::from_correlation_id(&message.metadata);
        Ok(if StartApplication::TYPE.matches(t) {
            sessions::check_internal(message, &self.bus())?;
            let m: StartApplication = decode(t, b)?;
            (by_id(m.application_id), Input::Submit(m))
        } else if WithdrawApplicationAs::TYPE.matches(t) {
            sessions::check_internal(message, &self.bus())?;
            let m: WithdrawApplicationAs = decode(t, b)?;
            (by_id(m.application_id), Input::Withdraw(m))
        } else if AttachReceiptAs::TYPE.matches(t) {
            sessions::check_internal(message, &self.bus())?;
            let m: AttachReceiptAs = decode(t, b)?;
            (by_id(m.application_id), Input::Receipt(m))
        } else if ProvideInfoAs::TYPE.matches(t) {
            sessions::check_internal(message, &self.bus())?;
            let m: ProvideInfoAs = decode(t, b)?;
            (by_id(m.application_id), Input::ProvideInfo(m))
        } else if InvoiceCreated::TYPE.matches(t) {
            (by_correlation()?, Input::InvoiceCreated(decode(t, b)?))
        } else if InvoiceNotified::TYPE.matches(t) {
            (by_correlation()?, Input::Invoice(decode(t, b)?))
        } else if DeadlinePassed::TYPE.matches(t) {
            let m: DeadlinePassed = decode(t, b)?;
            (by_id(m.application_id), Input::Deadline(m))
        } else if AuthorityRegistered::TYPE.matches(t) {
            let m: AuthorityRegistered = decode(t, b)?;
            (by_id(m.application_id), Input::Registered(m))
        } else if AuthorityInfoRequested::TYPE.matches(t) {
            let m: AuthorityInfoRequested = decode(t, b)?;
            (by_id(m.application_id), Input::InfoRequested(m))
        } else if DecisionChecked::TYPE.matches(t) {
            sessions::check_internal(message, &self.bus())?;
            let m: DecisionChecked = decode(t, b)?;
            (by_id(m.decided.application_id), Input::DecisionChecked(m))
        } else if AuthorityDecided::TYPE.matches(t) {
            let m: AuthorityDecided = decode(t, b)?;
            (by_id(m.application_id), Input::Decided(m))
        } else if AuthorityWithdrawalAnswered::TYPE.matches(t) {
            let m: AuthorityWithdrawalAnswered = decode(t, b)?;
            (by_id(m.application_id), Input::WithdrawalAnswered(m))
        } else if AuthorityReceiptAnswered::TYPE.matches(t) {
            let m: AuthorityReceiptAnswered = decode(t, b)?;
            (by_id(m.application_id), Input::ReceiptAnswered(m))
        } else {
            return Err(Failure::invalid_input(format!(
                "the procedure saga does not take {t}"
            )));
        })
    }

    fn transition(
        &self,
        state: Option<&Application>,
        input: &Input,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        let Some(s) = state else {
            return match input {
                Input::Submit(m) => self.submit(m, ctx),
                _ => Err(Failure::permanent("no such application")),
            };
        };
        let s = &with_ledger(s);
        if input.is_from_authority() {
            self.check_sender(s, ctx)?;
        }
        if input.requester().is_some_and(|who| who != s.applicant) {
            // Another person's session: refused, the application unchanged.
            return Ok(Step::to(s.clone()).send(Command::new(&ApplicationRejected {
                application_id: s.application_id,
                reason: ProcedureRejectReason::NotTheApplicant,
                fields: vec![],
            })?));
        }
        match (&s.stage, input) {
            (_, Input::Submit(_)) => Ok(Step::to(s.clone())),
            // A receipt of a payment outside ERIP goes to the authority.
            (_, Input::Receipt(r)) if r.outside_erip.is_some() => self.bank_receipt(s, r),
            // An ERIP receipt is recorded whenever it comes; it is checked once ERIP's record
            // is there too.
            (_, Input::Receipt(r)) => receipt(s, r),
            (_, Input::ReceiptAnswered(a)) => self.receipt_answered(s, a, ctx),
            (Stage::AwaitingPayment { .. }, Input::InvoiceCreated(c)) => {
                Ok(Step::to(Application {
                    invoice_id: Some(c.invoice_id.clone()),
                    ..s.clone()
                }))
            }
            // Every payment is recorded, whatever the stage: it counts toward the fee, or it
            // is due back.
            (_, Input::Invoice(n)) if n.event == InvoiceEvent::Paid => {
                let operation = n.operation_id.clone().unwrap_or_default();
                self.payment(s, &operation, n.amount_kopecks, PaymentSource::Erip, ctx)
            }
            (_, Input::Invoice(n))
                if matches!(n.event, InvoiceEvent::Refunded | InvoiceEvent::Reversed) =>
            {
                self.returned(s, n, ctx)
            }
            // A receipt the authority is checking holds the application open: its answer
            // decides (see `receipt_answered`).
            (Stage::AwaitingPayment { .. }, Input::Invoice(n))
                if n.event == InvoiceEvent::Expired && s.receipt_at_authority.is_some() =>
            {
                Ok(Step::to(s.clone()))
            }
            (Stage::AwaitingPayment { .. }, Input::Deadline(d))
                if d.which == PAYMENT_TIMER && s.receipt_at_authority.is_some() =>
            {
                Ok(Step::to(s.clone()))
            }
            (Stage::AwaitingPayment { .. }, Input::Invoice(n))
                if n.event == InvoiceEvent::Expired =>
            {
                expire(s, ctx).map(|st| st.cancel_timer(PAYMENT_TIMER))
            }
            (Stage::AwaitingPayment { .. }, Input::Deadline(d)) if d.which == PAYMENT_TIMER => {
                payment_overdue(s, ctx)
            }
            (Stage::AwaitingPayment { .. }, Input::Withdraw(_)) => withdraw_unpaid(s, ctx),
            (Stage::AtAuthority, Input::Registered(r)) => self.registered(s, r, ctx),
            (Stage::AtAuthority | Stage::Withdrawing, Input::InfoRequested(r)) => {
                self.info_requested(s, r, ctx)
            }
            (Stage::AtAuthority, Input::ProvideInfo(p)) => self.info_provided(s, p, ctx),
            (_, Input::ProvideInfo(_)) => refuse_info(s, ProcedureRejectReason::NoInfoRequested),
            (Stage::AtAuthority | Stage::Withdrawing, Input::Deadline(d))
                if d.which == INFO_TIMER =>
            {
                self.info_lapsed(s, ctx)
            }
            // The decision wins over a withdrawal the authority has not answered yet: it
            // decided first, and will refuse the withdrawal.
            (Stage::AtAuthority | Stage::Withdrawing, Input::Decided(d)) => {
                match self.settings.unsigned_decisions {
                    UnsignedDecisions::Accept => {
                        self.decided(s, d.verdict, &d.document, d.decided_at, None)
                    }
                    UnsignedDecisions::Refuse => self.refuse_decision(
                        s,
                        String::new(),
                        DecisionRefusalReason::Unsigned,
                        "authority.decided.v1 carries no signature: send the signed \
                         authority.decided.v2"
                            .to_owned(),
                    ),
                }
            }
            (Stage::AtAuthority | Stage::Withdrawing, Input::DecisionChecked(c)) => {
                self.decision_checked(s, c)
            }
            (Stage::AtAuthority, Input::Withdraw(_)) => Ok(with_stage(s, Stage::Withdrawing).send(
                Command::new(&AuthorityWithdrawal {
                    application_id: s.application_id,
                })?
                .reply_to(self.queue_of(&s.authority)),
            )),
            (Stage::Withdrawing, Input::WithdrawalAnswered(a)) if a.accepted => withdrawn(s, ctx),
            // The authority had decided: its decision is on the way (or here already).
            (Stage::Withdrawing | Stage::Decided { .. }, Input::WithdrawalAnswered(_)) => {
                let stage = match s.stage {
                    Stage::Withdrawing => Stage::AtAuthority,
                    ref other => other.clone(),
                };
                Ok(with_stage(s, stage).send(already_decided(s)?))
            }
            (Stage::Decided { .. }, Input::Withdraw(_)) => {
                Ok(Step::to(s.clone()).send(already_decided(s)?))
            }
            // The term is suspended while the authority waits for the person.
            (Stage::AtAuthority | Stage::Withdrawing, Input::Deadline(d))
                if d.which == OVERDUE_TIMER && waiting_for_person(s) =>
            {
                Ok(Step::to(s.clone()))
            }
            (Stage::AtAuthority | Stage::Withdrawing, Input::Deadline(d))
                if d.which == OVERDUE_TIMER =>
            {
                self.overdue(s, ctx)
            }
            // A second payment notice, a late invoice answer, a timer that lost its race: no
            // change.
            _ => Ok(Step::to(s.clone())),
        }
    }

    fn state_name(&self, s: &Application) -> String {
        match s.stage {
            Stage::AwaitingPayment { .. } if s.receipt_at_authority.is_some() => {
                "receipt_at_authority"
            }
            Stage::AwaitingPayment { .. } => "awaiting_payment",
            Stage::AtAuthority if waiting_for_person(s) => "awaiting_info",
            Stage::AtAuthority if s.registration_number.is_some() => "registered",
            Stage::AtAuthority => "at_authority",
            Stage::Withdrawing => "withdrawing",
            Stage::Decided { .. } => "decided",
            Stage::Withdrawn { .. } => "withdrawn",
            Stage::Rejected { .. } => "rejected",
            Stage::Cancelled { .. } => "cancelled",
        }
        .into()
    }

    fn is_terminal(&self, s: &Application) -> bool {
        matches!(
            s.stage,
            Stage::Decided { .. }
                | Stage::Withdrawn { .. }
                | Stage::Rejected { .. }
                | Stage::Cancelled { .. }
        )
    }

    /// Like a withdrawal, without waiting for the authority (which may be why it is stuck):
    /// the unpaid invoice is cancelled, or the authority is told to stop and the fee paid is
    /// recorded as due back; the portal gets `procedure.withdrawn.v1` with the reason.
    fn cancel(
        &self,
        s: &Application,
        request: &CancelSaga,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        let mut s = with_ledger(s);
        let refund = s.ledger.release(DueBackReason::Cancelled, ctx.now);
        let s = &s;
        let compensation = match (&s.stage, &s.order_number) {
            (Stage::AwaitingPayment { .. }, Some(order)) => Some(Command::new(&CancelInvoice {
                order_number: order.clone(),
            })?),
            (Stage::AwaitingPayment { .. }, None) => None,
            (Stage::AtAuthority | Stage::Withdrawing, _) => Some(
                Command::new(&AuthorityWithdrawal {
                    application_id: s.application_id,
                })?
                .reply_to(self.queue_of(&s.authority)),
            ),
            _ => return Err(Failure::permanent("the application has ended")),
        };
        let step = with_stage(
            s,
            Stage::Cancelled {
                reason: request.reason.clone(),
                refund_due_kopecks: refund,
            },
        )
        .cancel_timer(PAYMENT_TIMER)
        .cancel_timer(OVERDUE_TIMER)
        .send(Command::new(&ApplicationWithdrawn {
            application_id: s.application_id,
            refund_due_kopecks: refund,
            reason: Some(WithdrawalReason::CancelledByOperator),
            detail: Some(request.reason.clone()),
        })?);
        Ok(compensation.into_iter().fold(step, Step::send))
    }
}

impl ProcedureSaga {
    /// A payment (ERIP's, or a bank receipt the authority confirmed), whatever the stage: it
    /// counts toward the fee while the application can use it, the rest is due back; when it
    /// completes the fee of an application awaiting payment, the application goes to the
    /// authority. A payment already recorded changes nothing.
    fn payment(
        &self,
        s: &Application,
        operation: &str,
        amount: u64,
        source: PaymentSource,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        if s.ledger.knows(operation) {
            return Ok(Step::to(s.clone()));
        }
        let mut next = s.clone();
        let recorded = match ended_reason(&s.stage) {
            Some(reason) => next
                .ledger
                .pay_late(operation, amount, source, reason, ctx.now),
            None => next
                .ledger
                .pay_toward(operation, amount, source, s.fee_kopecks, ctx.now),
        };
        let missing = next.ledger.missing(next.fee_kopecks);
        let completes = matches!(s.stage, Stage::AwaitingPayment { .. })
            && recorded.counted_kopecks > 0
            && missing == 0;
        let mut step = if completes {
            next.paid = Some(Paid {
                operation_id: operation.to_owned(),
                amount_kopecks: next.fee_kopecks,
            });
            self.to_authority(&next, ctx)?.cancel_timer(PAYMENT_TIMER)
        } else {
            Step::to(next.clone())
        };
        if recorded.counted_kopecks > 0 {
            step = step.send(Command::new(&PaymentReceived {
                application_id: s.application_id,
                operation_id: operation.to_owned(),
                amount_kopecks: amount,
                paid_kopecks: next.ledger.counted(),
                missing_kopecks: missing,
            })?);
            if missing > 0 {
                step = step.send(self.notify(
                    s,
                    format!(
                        "Оплата по заявлению № {} получена: {} руб. Не хватает {} руб.; \
                         заявление будет направлено в орган после полной оплаты.",
                        s.number,
                        rubles(amount),
                        rubles(missing)
                    ),
                )?);
            }
        }
        if let Some(command) = self.due_back_news(&next, operation, recorded)? {
            step = step.send(command.0).send(command.1);
        }
        // The ERIP receipt the person attached first is checked when its payment comes.
        let check = if s
            .receipt
            .as_ref()
            .is_some_and(|r| r.operation_id == operation)
        {
            receipt_check(&step.state)?
        } else {
            None
        };
        Ok(check.into_iter().fold(step, Step::send))
    }

    /// `procedure.payment_due_back.v1` and the person's SMS, when a payment left money due back.
    fn due_back_news(
        &self,
        s: &Application,
        operation: &str,
        recorded: Recorded,
    ) -> Result<Option<(Command, Command)>, Failure> {
        let Some((amount, reason)) = recorded.due_back else {
            return Ok(None);
        };
        let why = match reason {
            DueBackReason::Overpaid => "оплачено больше пошлины",
            DueBackReason::AlreadyPaid => "пошлина уже была оплачена",
            DueBackReason::Expired => "срок оплаты истёк",
            DueBackReason::Withdrawn => "заявление отозвано",
            DueBackReason::Cancelled => "заявление прекращено",
        };
        Ok(Some((
            Command::new(&PaymentDueBack {
                application_id: s.application_id,
                operation_ids: vec![operation.to_owned()],
                amount_kopecks: amount,
                reason,
                due_back_kopecks: s.ledger.due_back_outstanding(),
            })?,
            self.notify(
                s,
                format!(
                    "По заявлению № {} к возврату {} руб.: {}.",
                    s.number,
                    rubles(amount),
                    why
                ),
            )?,
        )))
    }

    /// ERIP refunded a payment or the bank reversed it: recorded once; it settles what was due
    /// back, and what it takes from the fee is missing again (the person is told; an application
    /// already with the authority stays there, the operators see the shortfall in the state).
    fn returned(
        &self,
        s: &Application,
        n: &InvoiceNotified,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        let kind = if n.event == InvoiceEvent::Reversed {
            ReturnKind::Reversal
        } else {
            ReturnKind::Refund
        };
        let operation = n.operation_id.clone().unwrap_or_default();
        if s.ledger.knows_return(&operation, kind) {
            return Ok(Step::to(s.clone()));
        }
        let mut next = s.clone();
        let settled = next
            .ledger
            .returned(&operation, n.amount_kopecks, kind, ctx.now);
        tracing::debug!(
            from_due_back = settled.from_due_back_kopecks,
            from_fee = settled.from_fee_kopecks,
            "payment returned"
        );
        let missing = if ended_reason(&next.stage).is_some() {
            0
        } else {
            next.ledger.missing(next.fee_kopecks)
        };
        let news = PaymentReturned {
            application_id: s.application_id,
            operation_id: operation,
            amount_kopecks: n.amount_kopecks,
            kind,
            missing_kopecks: missing,
            due_back_kopecks: next.ledger.due_back_outstanding(),
        };
        let what = match kind {
            ReturnKind::Refund => "возвращён платёж",
            ReturnKind::Reversal => "платёж сторнирован банком",
        };
        let mut text = format!(
            "По заявлению № {} {}: {} руб.",
            s.number,
            what,
            rubles(n.amount_kopecks)
        );
        if missing > 0 {
            text.push_str(&format!(" Пошлина не оплачена на {} руб.", rubles(missing)));
        }
        Ok(Step::to(next)
            .send(Command::new(&news)?)
            .send(self.notify(s, text)?))
    }

    /// A receipt of a payment outside ERIP: while the application awaits payment, it goes to
    /// the authority, and the application waits for its answer; otherwise it is refused with
    /// `procedure.receipt_checked.v1` saying why, nothing changed.
    fn bank_receipt(
        &self,
        s: &Application,
        r: &AttachReceiptAs,
    ) -> Result<Step<Application>, Failure> {
        let Some(payment) = &r.outside_erip else {
            return Ok(Step::to(s.clone()));
        };
        let refuse = |problem: String| -> Result<Step<Application>, Failure> {
            Ok(Step::to(s.clone()).send(Command::new(&ReceiptChecked {
                application_id: s.application_id,
                matches: false,
                problem: Some(problem),
                checked_by: ReceiptCheckedBy::Authority,
            })?))
        };
        if !matches!(s.stage, Stage::AwaitingPayment { .. }) {
            return refuse("the application is not waiting for a payment".into());
        }
        if s.order_number.as_deref() != Some(payment.order_number.as_str()) {
            return refuse("the receipt's order number is not this application's".into());
        }
        if r.amount_kopecks == 0
            || payment.bank.trim().is_empty()
            || payment.document_number.trim().is_empty()
        {
            return refuse("the receipt needs the amount, the bank and the document number".into());
        }
        if s.ledger.knows(&bank_operation(&payment.document_number)) {
            return refuse("this receipt is counted already".into());
        }
        if s.receipt_at_authority.is_some() {
            return refuse(
                "the authority is checking another receipt of this application; attach this one \
                 after its answer"
                    .into(),
            );
        }
        let next = Application {
            receipt_at_authority: Some(BankReceipt {
                amount_kopecks: r.amount_kopecks,
                payment: payment.clone(),
            }),
            ..s.clone()
        };
        Ok(Step::to(next).send(
            Command::new(&AuthorityPaymentReceipt {
                application_id: s.application_id,
                number: s.number.clone(),
                procedure_code: s.procedure_code.clone(),
                fee_kopecks: s.fee_kopecks,
                amount_kopecks: r.amount_kopecks,
                payment: payment.clone(),
            })?
            .reply_to(self.queue_of(&s.authority)),
        ))
    }

    /// The authority's answer on a receipt: confirmed, it is a payment like ERIP's (and money
    /// that arrived for an application that ended meanwhile is due back); refused, the person is
    /// told why and the application awaits payment again — or ends, if its term passed while
    /// the authority checked.
    fn receipt_answered(
        &self,
        s: &Application,
        a: &AuthorityReceiptAnswered,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        let Some(pending) = s
            .receipt_at_authority
            .as_ref()
            .filter(|p| p.payment.document_number == a.document_number)
        else {
            // Not the receipt it was sent (a repeated answer): nothing changes.
            return Ok(Step::to(s.clone()));
        };
        let cleared = Application {
            receipt_at_authority: None,
            ..s.clone()
        };
        let checked = Command::new(&ReceiptChecked {
            application_id: s.application_id,
            matches: a.confirmed,
            problem: (!a.confirmed).then(|| {
                a.reason
                    .clone()
                    .unwrap_or_else(|| "the authority did not find the payment".into())
            }),
            checked_by: ReceiptCheckedBy::Authority,
        })?;
        let step = if a.confirmed {
            self.payment(
                &cleared,
                &bank_operation(&pending.payment.document_number),
                pending.amount_kopecks,
                PaymentSource::Bank,
                ctx,
            )?
        } else {
            Step::to(cleared)
        };
        let step = step.send(checked);
        // The payment term passed while the authority checked, and the fee is still not met.
        match &step.state.stage {
            Stage::AwaitingPayment { pay_before } if ctx.now >= *pay_before => {
                let ended = expire(&step.state, ctx)?;
                let ended = match &s.order_number {
                    Some(order) => ended.send(Command::new(&CancelInvoice {
                        order_number: order.clone(),
                    })?),
                    None => ended,
                };
                Ok(step.commands.into_iter().fold(ended, Step::send))
            }
            _ => Ok(step),
        }
    }

    /// The authority registered the application: the portal and the person are told.
    fn registered(
        &self,
        s: &Application,
        r: &AuthorityRegistered,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        let due = s.decision_due.unwrap_or_else(|| ctx.now.date_naive());
        Ok(Step::to(Application {
            registration_number: Some(r.registration_number.clone()),
            ..s.clone()
        })
        .send(Command::new(&ApplicationRegistered {
            application_id: s.application_id,
            registration_number: r.registration_number.clone(),
            decision_due: due,
        })?)
        .send(self.notify(
            s,
            format!(
                "Заявление № {} зарегистрировано ({}), рег. № {}. Решение — до {}.",
                s.number,
                self.authority_name(&s.authority),
                r.registration_number,
                due.format("%d.%m.%Y")
            ),
        )?))
    }

    /// A signed decision, as the decision gate found it: only one verified, and signed for the
    /// application's own authority, reaches the person; any other is refused back to the
    /// authority, and the application keeps waiting.
    fn decision_checked(
        &self,
        s: &Application,
        c: &DecisionChecked,
    ) -> Result<Step<Application>, Failure> {
        // Sent by the owning authority (its broker user, as the gate received it).
        self.catalogue.check_sender(
            &s.authority,
            c.sender.as_deref(),
            &format!(
                "procedure {} is decided by {}",
                s.procedure_code, s.authority
            ),
            &self.bridge_user,
        )?;
        let d = &c.decided;
        let number = d.document.number.clone();
        match &c.check {
            CheckOutcome::Refused { reason, detail } => {
                self.refuse_decision(s, number, *reason, detail.clone())
            }
            CheckOutcome::Verified { .. } if d.document.authority_id != s.authority => self
                .refuse_decision(
                    s,
                    number,
                    DecisionRefusalReason::WrongAuthority,
                    format!(
                        "the decision is signed for {}, but procedure {} is decided by {}",
                        d.document.authority_id, s.procedure_code, s.authority
                    ),
                ),
            CheckOutcome::Verified { signer } => {
                let Some(signature) = d.signature.clone() else {
                    return self.refuse_decision(
                        s,
                        number,
                        DecisionRefusalReason::Unsigned,
                        "the decision carries no signature".to_owned(),
                    );
                };
                self.decided(
                    s,
                    d.document.verdict,
                    &d.document.text,
                    d.decided_at,
                    Some(SignedDecision {
                        document: d.document.clone(),
                        signature,
                        signer: signer.clone(),
                    }),
                )
            }
        }
    }

    /// Refuses a decision back to the authority: the application is unchanged.
    fn refuse_decision(
        &self,
        s: &Application,
        number: String,
        reason: DecisionRefusalReason,
        detail: String,
    ) -> Result<Step<Application>, Failure> {
        Ok(Step::to(s.clone()).send(
            Command::new(&AuthorityDecisionRefused {
                application_id: s.application_id,
                number,
                reason,
                detail,
            })?
            .reply_to(self.queue_of(&s.authority)),
        ))
    }

    /// The authority decided: the portal and the person are told.
    fn decided(
        &self,
        s: &Application,
        verdict: Verdict,
        document: &str,
        decided_at: DateTime<Utc>,
        signed: Option<SignedDecision>,
    ) -> Result<Step<Application>, Failure> {
        Ok(with_stage(s, Stage::Decided { verdict })
            .cancel_timer(OVERDUE_TIMER)
            .send(Command::new(&ApplicationDecided {
                application_id: s.application_id,
                verdict,
                document: document.to_owned(),
                decided_at,
                signed,
            })?)
            .send(self.notify(
                s,
                format!(
                    "По заявлению № {} принято решение: {}. Решение — в личном кабинете.",
                    s.number,
                    match verdict {
                        Verdict::Granted => "удовлетворено",
                        Verdict::Refused => "отказано",
                    }
                ),
            )?))
    }

    /// An SMS to the applicant (at the phone the registry has for the identifier); nobody
    /// waits for its fate: the cabinet has the same news.
    fn notify(&self, s: &Application, text: String) -> Result<Command, Failure> {
        Ok(Command::new(&NotifyHolder {
            identifier: s.applicant.clone(),
            text,
        })?
        .detach())
    }

    fn authority_name(&self, id: &str) -> String {
        self.catalogue
            .authority(id)
            .map_or_else(|| id.to_owned(), |a| a.name.clone())
    }

    fn queue_of(&self, authority: &str) -> String {
        format!("{}{}", self.prefix, authority_queue(authority))
    }

    /// Only the authority that owns the procedure may answer for it: the broker checked the
    /// sender's `user_id` against its connection, the catalogue says whose it must be.
    fn check_sender(&self, s: &Application, ctx: &StepContext<'_>) -> Result<(), Failure> {
        self.catalogue.check_sender(
            &s.authority,
            ctx.message.user_id.as_deref(),
            &format!(
                "procedure {} is decided by {}",
                s.procedure_code, s.authority
            ),
            &self.bridge_user,
        )
    }

    fn submit(
        &self,
        m: &StartApplication,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        let mut app = Application {
            application_id: m.application_id,
            number: format!(
                "{}-{}",
                ctx.now.format("%Y%m%d"),
                &m.application_id.simple().to_string()[..8].to_uppercase()
            ),
            procedure_code: m.procedure_code.clone(),
            authority: String::new(),
            applicant: m.applicant.identifier.clone(),
            form: m.form.clone(),
            attachments: m.attachments.clone(),
            fee_kopecks: 0,
            order_number: None,
            invoice_id: None,
            paid: None,
            receipt: None,
            ledger: Ledger::default(),
            receipt_at_authority: None,
            registration_number: None,
            decision_due: None,
            stage: Stage::AtAuthority,
            delivery: m.delivery,
            info_request: None,
            suspended_working_days: 0,
            overdue: false,
        };
        let Some(procedure) = self.catalogue.procedure(&m.procedure_code) else {
            return reject(
                &app,
                ProcedureRejectReason::UnknownProcedure,
                vec![FieldError {
                    field: "procedure_code".into(),
                    problem: "is not in the catalogue".into(),
                }],
            );
        };
        app.authority = procedure.authority.clone();
        app.fee_kopecks = procedure.fee_kopecks;
        if m.applicant.assurance_level < procedure.assurance {
            return reject(
                &app,
                ProcedureRejectReason::AssuranceTooLow,
                vec![FieldError {
                    field: "assurance_level".into(),
                    problem: format!(
                        "the procedure needs {:?} or higher; log in with a stronger method",
                        procedure.assurance
                    )
                    .to_lowercase(),
                }],
            );
        }
        let fields = self.catalogue.validate_form(procedure, &m.form);
        if !fields.is_empty() {
            return reject(&app, ProcedureRejectReason::InvalidInput, fields);
        }
        if procedure.fee_kopecks == 0 {
            let step = self.to_authority(&app, ctx)?;
            let accepted = accepted(&step.state, None);
            return Ok(step.send(Command::new(&accepted)?));
        }
        let order = order_number(&mut ctx.rng());
        let pay_before = ctx.now + self.settings.payment_ttl;
        app.order_number = Some(order.clone());
        app.stage = Stage::AwaitingPayment { pay_before };
        let accepted = accepted(&app, Some(pay_before));
        Ok(Step::to(app.clone())
            .send(Command::new(&CreateInvoice {
                order_number: order,
                amount_kopecks: procedure.fee_kopecks,
                description: format!("{} {}", procedure.code, procedure.name_ru),
                expires_at: pay_before,
            })?)
            .send(Command::new(&accepted)?)
            .set_timer(TimerRequest {
                name: PAYMENT_TIMER.into(),
                after: self.settings.payment_ttl,
                message: Command::new(&DeadlinePassed {
                    application_id: app.application_id,
                    which: PAYMENT_TIMER.into(),
                })?,
            }))
    }

    /// Sends the application to its authority and starts counting the statutory term.
    fn to_authority(
        &self,
        app: &Application,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        let term = self
            .catalogue
            .procedure(&app.procedure_code)
            .map_or(0, |p| p.term_working_days);
        let today = ctx.now.date_naive();
        let due = self.calendar.add_working_days(today, term);
        let mut next = app.clone();
        next.decision_due = Some(due);
        next.stage = Stage::AtAuthority;
        Ok(Step::to(next)
            .send(
                Command::new(&AuthorityApplication {
                    application_id: app.application_id,
                    number: app.number.clone(),
                    procedure_code: app.procedure_code.clone(),
                    applicant: app.applicant.clone(),
                    form: app.form.clone(),
                    attachments: app.attachments.clone(),
                    paid_kopecks: app.paid.as_ref().map_or(0, |p| p.amount_kopecks),
                    decision_due: due,
                    delivery: app.delivery,
                })?
                .reply_to(self.queue_of(&app.authority)),
            )
            .set_timer(timer_at_end_of(
                app.application_id,
                OVERDUE_TIMER,
                due,
                ctx.now,
            )?))
    }

    /// The authority asks for more information: the person is told (with the last day to
    /// answer), and the term stops until the answer or the period's end. A second request while
    /// one waits replaces its text and period; the suspension still counts from the first.
    fn info_requested(
        &self,
        s: &Application,
        r: &AuthorityInfoRequested,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        let today = minsk_today(ctx.now);
        let period = r
            .answer_within_working_days
            .unwrap_or(DEFAULT_INFO_PERIOD_WORKING_DAYS)
            .max(1);
        let answer_by = self.calendar.add_working_days(today, period);
        let requested_on = match &s.info_request {
            Some(p) if !p.lapsed => p.requested_on,
            _ => today,
        };
        let next = Application {
            info_request: Some(PendingInfo {
                request: r.request.clone(),
                requested_on,
                answer_by,
                lapsed: false,
            }),
            ..s.clone()
        };
        Ok(Step::to(next)
            .cancel_timer(OVERDUE_TIMER)
            .set_timer(timer_at_end_of(
                s.application_id,
                INFO_TIMER,
                answer_by,
                ctx.now,
            )?)
            .send(Command::new(&InfoRequested {
                application_id: s.application_id,
                request: r.request.clone(),
                answer_by: Some(answer_by),
            })?)
            .send(self.notify(
                s,
                format!(
                    "По заявлению № {} орган запросил дополнительные сведения. Ответьте в личном \
                     кабинете до {}; срок рассмотрения приостановлен.",
                    s.number,
                    answer_by.format("%d.%m.%Y")
                ),
            )?))
    }

    /// The person answers in time: the answer goes to the authority, the term runs again,
    /// moved by the working days after the request's day up to the answer's.
    fn info_provided(
        &self,
        s: &Application,
        p: &ProvideInfoAs,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        let today = minsk_today(ctx.now);
        let pending = match &s.info_request {
            None => return refuse_info(s, ProcedureRejectReason::NoInfoRequested),
            Some(pending) if pending.lapsed || today > pending.answer_by => {
                return refuse_info(s, ProcedureRejectReason::InfoPeriodPassed);
            }
            Some(pending) => pending,
        };
        let waited = self
            .calendar
            .working_days_between(pending.requested_on, today);
        let (next, due) = self.resume(s, waited, ctx);
        Ok(Step::to(next)
            .cancel_timer(INFO_TIMER)
            .set_timer(timer_at_end_of(
                s.application_id,
                OVERDUE_TIMER,
                due,
                ctx.now,
            )?)
            .send(
                Command::new(&AuthorityInfoProvided {
                    application_id: s.application_id,
                    form: p.form.clone(),
                    attachments: p.attachments.clone(),
                    suspended_working_days: waited,
                    decision_due: due,
                })?
                .reply_to(self.queue_of(&s.authority)),
            )
            .send(Command::new(&InfoProvided {
                application_id: s.application_id,
                suspended_working_days: waited,
                decision_due: due,
            })?))
    }

    /// The period to answer passed with no answer: the term runs again, moved by the working
    /// days up to the period's last day; the authority decides (it may refuse), and a late
    /// answer is refused.
    fn info_lapsed(
        &self,
        s: &Application,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        let Some(pending) = s.info_request.as_ref().filter(|p| !p.lapsed) else {
            return Ok(Step::to(s.clone()));
        };
        let waited = self
            .calendar
            .working_days_between(pending.requested_on, pending.answer_by);
        let (mut next, due) = self.resume(s, waited, ctx);
        next.info_request = Some(PendingInfo {
            lapsed: true,
            ..pending.clone()
        });
        Ok(Step::to(next).set_timer(timer_at_end_of(
            s.application_id,
            OVERDUE_TIMER,
            due,
            ctx.now,
        )?))
    }

    /// The application with the suspension of `waited` working days over: the term's last day
    /// moved by them, the request cleared.
    fn resume(
        &self,
        s: &Application,
        waited: u32,
        ctx: &StepContext<'_>,
    ) -> (Application, NaiveDate) {
        let due = self.calendar.add_working_days(
            s.decision_due.unwrap_or_else(|| ctx.now.date_naive()),
            waited,
        );
        let next = Application {
            info_request: None,
            decision_due: Some(due),
            suspended_working_days: s.suspended_working_days.saturating_add(waited),
            ..s.clone()
        };
        (next, due)
    }

    /// The term passed without a decision: the portal gets `procedure.overdue.v1` (the person's
    /// cabinet and operators), the person an SMS; from now a complaint of inaction is possible.
    fn overdue(
        &self,
        s: &Application,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Application>, Failure> {
        let due = s.decision_due.unwrap_or_else(|| ctx.now.date_naive());
        Ok(Step::to(Application {
            overdue: true,
            ..s.clone()
        })
        .send(Command::new(&ApplicationOverdue {
            application_id: s.application_id,
            procedure_code: s.procedure_code.clone(),
            authority: s.authority.clone(),
            decision_due: due,
        })?)
        .send(self.notify(
            s,
            format!(
                "Срок рассмотрения заявления № {} истёк {} без решения. Вы можете подать жалобу \
                 на бездействие в личном кабинете.",
                s.number,
                due.format("%d.%m.%Y")
            ),
        )?))
    }
}

/// Whether the authority waits for the person's answer (the term suspended).
fn waiting_for_person(s: &Application) -> bool {
    s.info_request.as_ref().is_some_and(|p| !p.lapsed)
}

/// Today in Minsk (UTC+3 all year).
fn minsk_today(now: DateTime<Utc>) -> NaiveDate {
    (now + chrono::Duration::hours(3)).date_naive()
}

/// A timer `which` at the end of day `last` in Minsk (UTC+3, all year).
fn timer_at_end_of(
    application_id: Uuid,
    which: &str,
    last: NaiveDate,
    now: DateTime<Utc>,
) -> Result<TimerRequest, Failure> {
    let end = last
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc() - chrono::Duration::hours(3))
        .unwrap_or(now);
    Ok(TimerRequest {
        name: which.into(),
        after: (end - now).to_std().unwrap_or_default(),
        message: Command::new(&DeadlinePassed {
            application_id,
            which: which.into(),
        })?,
    })
}

/// A request about the information request refused, the application unchanged.
fn refuse_info(
    s: &Application,
    reason: ProcedureRejectReason,
) -> Result<Step<Application>, Failure> {
    let problem = match reason {
        ProcedureRejectReason::InfoPeriodPassed => {
            "the period the authority named to answer has passed"
        }
        _ => "the authority is not waiting for information on this application",
    };
    Ok(Step::to(s.clone()).send(Command::new(&ApplicationRejected {
        application_id: s.application_id,
        reason,
        fields: vec![FieldError {
            field: "application_id".into(),
            problem: problem.into(),
        }],
    })?))
}

/// The ERIP receipt against ERIP's record of its payment, when both are known.
fn receipt_check(app: &Application) -> Result<Option<Command>, Failure> {
    let Some(receipt) = &app.receipt else {
        return Ok(None);
    };
    let Some(paid) = app
        .ledger
        .payments
        .iter()
        .find(|p| p.operation_id == receipt.operation_id)
    else {
        // ERIP's notice of this operation is not here (yet): checked when it comes. A receipt
        // whose operation ERIP never reports stays unchecked.
        return Ok(None);
    };
    let problem = (receipt.amount_kopecks != paid.amount_kopecks).then(|| {
        format!(
            "the receipt says {} kopecks, ERIP received {}",
            receipt.amount_kopecks, paid.amount_kopecks
        )
    });
    Ok(Some(Command::new(&ReceiptChecked {
        application_id: app.application_id,
        matches: problem.is_none(),
        problem,
        checked_by: ReceiptCheckedBy::Erip,
    })?))
}

/// An application stored before the ledger existed: its one payment becomes the ledger's.
fn with_ledger(s: &Application) -> Application {
    let mut next = s.clone();
    if next.ledger.payments.is_empty()
        && let Some(paid) = &s.paid
    {
        next.ledger.payments.push(super::payment::Payment {
            operation_id: paid.operation_id.clone(),
            amount_kopecks: paid.amount_kopecks,
            counted_kopecks: paid.amount_kopecks.min(s.fee_kopecks),
            source: PaymentSource::Erip,
            at: DateTime::<Utc>::UNIX_EPOCH,
        });
    }
    next
}

/// Why a payment arriving in this stage is due back whole: the application ended without a
/// decision. `None` while the application can still use a payment (a payment to a decided one
/// or one with its authority counts against a fee that is already met: `already_paid`).
fn ended_reason(stage: &Stage) -> Option<DueBackReason> {
    match stage {
        Stage::Rejected { .. } => Some(DueBackReason::Expired),
        Stage::Withdrawn { .. } => Some(DueBackReason::Withdrawn),
        Stage::Cancelled { .. } => Some(DueBackReason::Cancelled),
        Stage::AwaitingPayment { .. }
        | Stage::AtAuthority
        | Stage::Withdrawing
        | Stage::Decided { .. } => None,
    }
}

fn accepted(app: &Application, pay_before: Option<DateTime<Utc>>) -> ApplicationAccepted {
    ApplicationAccepted {
        application_id: app.application_id,
        number: app.number.clone(),
        order_number: app.order_number.clone(),
        amount_kopecks: app.fee_kopecks,
        pay_before,
    }
}

/// The person attached a receipt: kept, and checked against ERIP's record when there is one.
fn receipt(s: &Application, r: &AttachReceiptAs) -> Result<Step<Application>, Failure> {
    let next = Application {
        receipt: Some(Paid {
            operation_id: r.operation_id.clone(),
            amount_kopecks: r.amount_kopecks,
        }),
        ..s.clone()
    };
    let check = receipt_check(&next)?;
    Ok(check.into_iter().fold(Step::to(next), Step::send))
}

/// The fee was not paid in time: rejected, what was paid of it is due back, and the invoice
/// closed so that a late payment cannot land on an ended application.
fn payment_overdue(s: &Application, ctx: &StepContext<'_>) -> Result<Step<Application>, Failure> {
    let step = expire(s, ctx)?;
    Ok(match &s.order_number {
        Some(order) => step.send(Command::new(&CancelInvoice {
            order_number: order.clone(),
        })?),
        None => step,
    })
}

/// The invoice's term passed before the fee was met: rejected (`payment_expired`); the part
/// paid is due back and the person told.
fn expire(s: &Application, ctx: &StepContext<'_>) -> Result<Step<Application>, Failure> {
    let mut next = s.clone();
    let owed = next.ledger.release(DueBackReason::Expired, ctx.now);
    let step = reject(&next, ProcedureRejectReason::PaymentExpired, vec![])?;
    if owed == 0 {
        return Ok(step);
    }
    let operation_ids = next
        .ledger
        .due_back
        .last()
        .map(|d| d.operation_ids.clone())
        .unwrap_or_default();
    Ok(step.send(Command::new(&PaymentDueBack {
        application_id: s.application_id,
        operation_ids,
        amount_kopecks: owed,
        reason: DueBackReason::Expired,
        due_back_kopecks: next.ledger.due_back_outstanding(),
    })?))
}

/// Withdrawn before the fee was met: what was paid of it is due back, the invoice is closed.
fn withdraw_unpaid(s: &Application, ctx: &StepContext<'_>) -> Result<Step<Application>, Failure> {
    let mut next = s.clone();
    let refund = next.ledger.release(DueBackReason::Withdrawn, ctx.now);
    let mut step = with_stage(
        &next,
        Stage::Withdrawn {
            refund_due_kopecks: refund,
        },
    )
    .cancel_timer(PAYMENT_TIMER)
    .send(Command::new(&ApplicationWithdrawn {
        application_id: s.application_id,
        refund_due_kopecks: refund,
        reason: None,
        detail: None,
    })?);
    if let Some(order) = &s.order_number {
        step = step.send(Command::new(&CancelInvoice {
            order_number: order.clone(),
        })?);
    }
    Ok(step)
}

/// The authority accepted the withdrawal: the fee paid is due back.
fn withdrawn(s: &Application, ctx: &StepContext<'_>) -> Result<Step<Application>, Failure> {
    let mut next = s.clone();
    let refund = next.ledger.release(DueBackReason::Withdrawn, ctx.now);
    Ok(with_stage(
        &next,
        Stage::Withdrawn {
            refund_due_kopecks: refund,
        },
    )
    .cancel_timer(OVERDUE_TIMER)
    .send(Command::new(&ApplicationWithdrawn {
        application_id: s.application_id,
        refund_due_kopecks: refund,
        reason: None,
        detail: None,
    })?))
}

/// A withdrawal refused: the authority decided first.
fn already_decided(s: &Application) -> Result<Command, Failure> {
    Command::new(&ApplicationRejected {
        application_id: s.application_id,
        reason: ProcedureRejectReason::AlreadyDecided,
        fields: vec![],
    })
}

fn with_stage(s: &Application, stage: Stage) -> Step<Application> {
    Step::to(Application { stage, ..s.clone() })
}

fn reject(
    s: &Application,
    reason: ProcedureRejectReason,
    fields: Vec<FieldError>,
) -> Result<Step<Application>, Failure> {
    Ok(
        with_stage(s, Stage::Rejected { reason }).send(Command::new(&ApplicationRejected {
            application_id: s.application_id,
            reason,
            fields,
        })?),
    )
}

/// A fresh order number: 29 random digits (the first not zero) and the check digit.
fn order_number(rng: &mut impl Rng) -> String {
    let mut body = String::with_capacity(30);
    body.push(char::from(b'1' + rng.random_range(0..9u8)));
    for _ in 0..28 {
        body.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    let check = order_number_check_digit(&body).unwrap_or(0);
    body.push(char::from(b'0' + check));
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::Metadata;
    use contracts::procedure::Applicant;

    struct Run {
        saga: ProcedureSaga,
        meta: Metadata,
        now: DateTime<Utc>,
    }

    impl Run {
        fn new() -> Self {
            Self {
                saga: ProcedureSaga::new(
                    Arc::new(Catalogue::embedded().expect("catalogue")),
                    Arc::new(Calendar::belarus().expect("calendar")),
                    // The older tests decide with the unsigned `authority.decided.v1`, taken
                    // as in development; the signed path has its own tests below.
                    ProcedureSettings {
                        unsigned_decisions: UnsignedDecisions::Accept,
                        ..ProcedureSettings::default()
                    },
                    "ns",
                    "hub",
                ),
                meta: Metadata::new("t.v1", "t"),
                // Thursday 16 April 2026: the term crosses a weekend, the transferred 20 April
                // and Radunitsa on 21 April.
                now: DateTime::parse_from_rfc3339("2026-04-16T09:00:00+03:00")
                    .expect("time")
                    .with_timezone(&Utc),
            }
        }

        fn from(&mut self, user: Option<&str>) -> &mut Self {
            self.meta.user_id = user.map(str::to_owned);
            self
        }

        fn step(
            &self,
            state: Option<&Application>,
            input: Input,
        ) -> Result<Step<Application>, Failure> {
            let ctx = StepContext {
                now: self.now,
                saga_id: Uuid::nil(),
                message: &self.meta,
                seed: [7; 32],
                prepared: None,
            };
            self.saga.transition(state, &input, &ctx)
        }
    }

    const APPLICANT: &str = "3270287A012PB2";

    fn submit(code: &str, form: serde_json::Value) -> Input {
        Input::Submit(StartApplication {
            application_id: Uuid::from_u128(1),
            procedure_code: code.into(),
            applicant: Applicant {
                identifier: APPLICANT.into(),
                assurance_level: contracts::procedure::AssuranceLevel::Substantial,
            },
            form: form.as_object().cloned().expect("object"),
            attachments: vec![],
            delivery: Delivery::CabinetAndCollect,
        })
    }

    fn sent(step: &Step<Application>) -> Vec<String> {
        step.commands
            .iter()
            .map(|c| c.message_type.to_string())
            .collect()
    }

    fn paid() -> Input {
        Input::Invoice(InvoiceNotified {
            order_number: "x".into(),
            event: InvoiceEvent::Paid,
            amount_kopecks: 2100,
            operation_id: Some("op-1".into()),
        })
    }

    #[test]
    fn a_free_application_goes_to_its_authority_with_the_term_in_working_days() {
        let run = Run::new();
        let form = serde_json::json!({"period_from": "2026-01-01", "period_to": "2026-03-31"});
        let step = run.step(None, submit("2.19", form)).expect("submits");
        assert_eq!(
            sent(&step),
            ["authority.application.v1", "procedure.accepted.v1"]
        );
        assert_eq!(
            step.commands[0].reply_to.as_deref(),
            Some("ns.authority.fszn")
        );
        // 7 working days after Thu 16 Apr 2026: 17, (20 off, 21 Radunitsa), 22, 23, 24, 25 (Sat,
        // transferred working day), 27, 28.
        assert_eq!(
            step.state.decision_due,
            NaiveDate::from_ymd_opt(2026, 4, 28)
        );
        assert_eq!(step.timers[0].name, OVERDUE_TIMER);
    }

    #[test]
    fn a_payment_counts_once_even_before_the_invoice_is_confirmed() {
        let mut run = Run::new();
        let form = serde_json::json!({"record_kind": "birth", "record_year": 1990});
        let submitted = run.step(None, submit("5.13", form)).expect("submits");
        assert_eq!(
            sent(&submitted),
            ["erip.create_invoice.v1", "procedure.accepted.v1"]
        );
        let order = submitted.state.order_number.clone().expect("order number");
        assert!(contracts::procedure::is_order_number(&order));
        // ERIP's payment notice overtakes the worker's confirmation of the invoice.
        let first = run.step(Some(&submitted.state), paid()).expect("paid");
        assert_eq!(
            sent(&first),
            ["authority.application.v1", "procedure.payment_received.v1"]
        );
        assert!(first.cancel_timers.contains(&PAYMENT_TIMER.to_string()));
        let again = run.step(Some(&first.state), paid()).expect("again");
        assert!(again.commands.is_empty(), "a second notice changes nothing");
        let late = run
            .step(
                Some(&again.state),
                Input::InvoiceCreated(InvoiceCreated {
                    invoice_id: "erip-1".into(),
                }),
            )
            .expect("late");
        assert!(late.commands.is_empty());
        // Only the owning authority may answer.
        let registered = Input::Registered(AuthorityRegistered {
            application_id: Uuid::from_u128(1),
            registration_number: "R-1".into(),
        });
        assert!(
            run.from(Some("guest"))
                .step(Some(&late.state), registered)
                .is_err()
        );
        let registered = Input::Registered(AuthorityRegistered {
            application_id: Uuid::from_u128(1),
            registration_number: "R-1".into(),
        });
        let ok = run
            .from(Some("authority-minsk-zags"))
            .step(Some(&late.state), registered)
            .expect("the owner registers");
        assert_eq!(
            sent(&ok),
            ["procedure.registered.v1", "sms.notify_holder.v1"]
        );
        assert!(ok.commands[1].detached, "nobody waits for the notice SMS");
    }

    fn payment(operation: &str, amount: u64) -> Input {
        Input::Invoice(InvoiceNotified {
            order_number: "x".into(),
            event: InvoiceEvent::Paid,
            amount_kopecks: amount,
            operation_id: Some(operation.into()),
        })
    }

    fn body<M: serde::de::DeserializeOwned>(step: &Step<Application>, t: MessageType) -> M {
        step.commands
            .iter()
            .find(|c| c.message_type == t)
            .map(|c| serde_json::from_slice(&c.body).expect("body"))
            .unwrap_or_else(|| panic!("{t} sent: {:?}", sent(step)))
    }

    #[test]
    fn short_payments_wait_for_the_rest_and_what_is_above_the_fee_is_due_back() {
        let mut run = Run::new();
        let form = serde_json::json!({"record_kind": "birth", "record_year": 1990});
        let submitted = run.step(None, submit("5.13", form)).expect("submits");
        let short = run
            .step(Some(&submitted.state), payment("op-1", 1000))
            .expect("short");
        assert_eq!(
            sent(&short),
            ["procedure.payment_received.v1", "sms.notify_holder.v1"]
        );
        assert_eq!(run.saga.state_name(&short.state), "awaiting_payment");
        let news: PaymentReceived = body(&short, PaymentReceived::TYPE);
        assert_eq!((news.paid_kopecks, news.missing_kopecks), (1000, 1100));
        // The same notice again changes nothing.
        let again = run
            .step(Some(&short.state), payment("op-1", 1000))
            .expect("again");
        assert!(again.commands.is_empty());
        let rest = run
            .step(Some(&short.state), payment("op-2", 1500))
            .expect("the rest");
        assert_eq!(
            sent(&rest),
            [
                "authority.application.v1",
                "procedure.payment_received.v1",
                "procedure.payment_due_back.v1",
                "sms.notify_holder.v1"
            ]
        );
        let to_authority: AuthorityApplication = body(&rest, AuthorityApplication::TYPE);
        assert_eq!(to_authority.paid_kopecks, 2100);
        let owed: PaymentDueBack = body(&rest, PaymentDueBack::TYPE);
        assert_eq!(
            (owed.amount_kopecks, owed.reason),
            (400, DueBackReason::Overpaid)
        );
        // Withdrawn at the authority: the fee counted is due back, the excess stays recorded.
        let mut withdrawing = rest.state.clone();
        withdrawing.stage = Stage::Withdrawing;
        let done = run
            .from(Some("authority-minsk-zags"))
            .step(
                Some(&withdrawing),
                Input::WithdrawalAnswered(AuthorityWithdrawalAnswered {
                    application_id: Uuid::from_u128(1),
                    accepted: true,
                }),
            )
            .expect("withdrawn");
        let news: ApplicationWithdrawn = body(&done, ApplicationWithdrawn::TYPE);
        assert_eq!(news.refund_due_kopecks, 2100);
        assert_eq!(done.state.ledger.due_back_outstanding(), 2500);
        // A payment after the withdrawal: due back whole.
        let late = run
            .step(Some(&done.state), payment("op-3", 2100))
            .expect("late");
        let owed: PaymentDueBack = body(&late, PaymentDueBack::TYPE);
        assert_eq!(
            (owed.reason, owed.due_back_kopecks),
            (DueBackReason::Withdrawn, 4600)
        );
    }

    #[test]
    fn a_bank_receipt_waits_for_the_authority_and_only_the_owner_answers() {
        let mut run = Run::new();
        let form = serde_json::json!({"record_kind": "birth", "record_year": 1990});
        let submitted = run.step(None, submit("5.13", form)).expect("submits");
        let order = submitted.state.order_number.clone().expect("order");
        let receipt = Input::Receipt(AttachReceiptAs {
            application_id: Uuid::from_u128(1),
            applicant: APPLICANT.into(),
            operation_id: String::new(),
            amount_kopecks: 2100,
            outside_erip: Some(BankPayment {
                order_number: order,
                bank: "Belarusbank".into(),
                paid_on: run.now.date_naive(),
                document_number: "PP-1".into(),
            }),
        });
        let sent_on = run
            .step(Some(&submitted.state), receipt)
            .expect("forwarded");
        assert_eq!(sent(&sent_on), ["authority.payment_receipt.v1"]);
        assert_eq!(
            sent_on.commands[0].reply_to.as_deref(),
            Some("ns.authority.minsk-civil-registry")
        );
        assert_eq!(run.saga.state_name(&sent_on.state), "receipt_at_authority");
        // The payment term passes while the authority checks: the application waits.
        let deadline = Input::Deadline(DeadlinePassed {
            application_id: Uuid::from_u128(1),
            which: PAYMENT_TIMER.into(),
        });
        let waits = run.step(Some(&sent_on.state), deadline).expect("waits");
        assert!(waits.commands.is_empty());
        let answer = |confirmed| {
            Input::ReceiptAnswered(AuthorityReceiptAnswered {
                application_id: Uuid::from_u128(1),
                document_number: "PP-1".into(),
                confirmed,
                reason: None,
            })
        };
        assert!(
            run.from(Some("guest"))
                .step(Some(&sent_on.state), answer(true))
                .is_err(),
            "only the owning authority answers"
        );
        let confirmed = run
            .from(Some("authority-minsk-zags"))
            .step(Some(&sent_on.state), answer(true))
            .expect("confirmed");
        assert_eq!(
            sent(&confirmed),
            [
                "authority.application.v1",
                "procedure.payment_received.v1",
                "procedure.receipt_checked.v1"
            ]
        );
        assert_eq!(run.saga.state_name(&confirmed.state), "at_authority");
        // Refused after the term passed: the application ends unpaid.
        run.now += chrono::Duration::days(4);
        let refused = run
            .step(Some(&sent_on.state), answer(false))
            .expect("refused");
        assert_eq!(
            sent(&refused),
            [
                "procedure.rejected.v1",
                "erip.cancel_invoice.v1",
                "procedure.receipt_checked.v1"
            ]
        );
        let check: ReceiptChecked = body(&refused, ReceiptChecked::TYPE);
        assert_eq!(
            (check.matches, check.checked_by),
            (false, ReceiptCheckedBy::Authority)
        );
    }

    #[test]
    fn the_session_gates_messages_are_taken_only_off_the_bus() {
        let run = Run::new();
        let Input::Submit(start) = submit("2.19", serde_json::json!({})) else {
            unreachable!("a submission");
        };
        let incoming = |exchange: &str| Incoming {
            metadata: Metadata::new(StartApplication::TYPE.to_string(), "hub"),
            body: serde_json::to_vec(&start).expect("json"),
            queue: "ns.saga.procedure".into(),
            exchange: exchange.into(),
            routing_key: "ns.saga.procedure".into(),
            previous_failures: 0,
        };
        // Straight to the queue (the gate), or back from a retry tier: taken.
        assert!(run.saga.read(&incoming("")).is_ok());
        assert!(run.saga.read(&incoming("ns.requeue")).is_ok());
        // Published on the bus, where anyone with a bus right could put it: refused.
        let refused = run.saga.read(&incoming("ns.bus")).expect_err("refused");
        assert_eq!(refused.kind, adapters::FailureKind::InvalidInput);
        assert!(
            refused.reason.contains("procedure.start.v1"),
            "{}",
            refused.reason
        );
    }

    #[test]
    fn a_receipt_is_checked_against_erips_record_whichever_comes_first() {
        let run = Run::new();
        let form = serde_json::json!({"record_kind": "birth", "record_year": 1990});
        let submitted = run.step(None, submit("5.13", form)).expect("submits");
        let receipt = |operation: &str, amount| {
            Input::Receipt(AttachReceiptAs {
                application_id: Uuid::from_u128(1),
                applicant: APPLICANT.into(),
                operation_id: operation.into(),
                amount_kopecks: amount,
                outside_erip: None,
            })
        };
        let early = run
            .step(Some(&submitted.state), receipt("op-1", 2100))
            .expect("recorded");
        assert!(early.commands.is_empty(), "nothing to check against yet");
        let paid_step = run.step(Some(&early.state), paid()).expect("paid");
        let check: ReceiptChecked = paid_step
            .commands
            .iter()
            .find(|c| c.message_type == ReceiptChecked::TYPE)
            .map(|c| serde_json::from_slice(&c.body).expect("body"))
            .expect("checked when the payment came");
        assert!(check.matches);
        let wrong = run
            .step(Some(&paid_step.state), receipt("op-1", 2000))
            .expect("checked");
        let check: ReceiptChecked = serde_json::from_slice(&wrong.commands[0].body).expect("body");
        assert!(!check.matches);
        assert_eq!(
            check.problem.as_deref(),
            Some("the receipt says 2000 kopecks, ERIP received 2100")
        );
        // Another person's session cannot attach a receipt to this application.
        let stranger = run
            .step(
                Some(&wrong.state),
                Input::Receipt(AttachReceiptAs {
                    application_id: Uuid::from_u128(1),
                    applicant: "3270287A012PB3".into(),
                    operation_id: "op-9".into(),
                    amount_kopecks: 1,
                    outside_erip: None,
                }),
            )
            .expect("refused");
        assert_eq!(stranger.state, wrong.state);
        let refused: ApplicationRejected =
            serde_json::from_slice(&stranger.commands[0].body).expect("body");
        assert_eq!(refused.reason, ProcedureRejectReason::NotTheApplicant);
    }

    #[test]
    fn an_operators_cancel_ends_a_stuck_application_as_a_withdrawal_that_does_not_wait() {
        let mut run = Run::new();
        let form = serde_json::json!({"record_kind": "birth", "record_year": 1990});
        let submitted = run.step(None, submit("5.13", form)).expect("submits");
        let request = CancelSaga {
            saga_id: Uuid::nil(),
            reason: "ERIP outage, the person asked by phone".into(),
            operator: "ivanov".into(),
        };
        let cancel = |run: &Run, state: &Application| {
            let ctx = StepContext {
                now: run.now,
                saga_id: Uuid::nil(),
                message: &run.meta,
                seed: [7; 32],
                prepared: None,
            };
            run.saga.cancel(state, &request, &ctx)
        };
        // Unpaid: the invoice is closed, nothing is due back.
        let unpaid = cancel(&run, &submitted.state).expect("cancelled");
        assert_eq!(
            sent(&unpaid),
            ["procedure.withdrawn.v1", "erip.cancel_invoice.v1"]
        );
        assert!(run.saga.is_terminal(&unpaid.state));
        assert_eq!(run.saga.state_name(&unpaid.state), "cancelled");
        assert!(unpaid.cancel_timers.contains(&PAYMENT_TIMER.to_string()));
        // Paid and with the authority: it is told to stop, the fee is due back, the portal
        // learns why.
        let paid_step = run.step(Some(&submitted.state), paid()).expect("paid");
        let stuck = cancel(&run, &paid_step.state).expect("cancelled");
        assert_eq!(
            sent(&stuck),
            ["procedure.withdrawn.v1", "authority.withdrawal.v1"]
        );
        assert_eq!(
            stuck.commands[1].reply_to.as_deref(),
            Some("ns.authority.minsk-civil-registry")
        );
        assert!(stuck.cancel_timers.contains(&OVERDUE_TIMER.to_string()));
        let news: ApplicationWithdrawn =
            serde_json::from_slice(&stuck.commands[0].body).expect("body");
        assert_eq!(news.refund_due_kopecks, 2100);
        assert_eq!(news.reason, Some(WithdrawalReason::CancelledByOperator));
        assert_eq!(news.detail.as_deref(), Some(request.reason.as_str()));
        assert_eq!(
            stuck.state.stage,
            Stage::Cancelled {
                reason: request.reason.clone(),
                refund_due_kopecks: 2100,
            }
        );
        // The authority's late decision changes nothing any more.
        let now = run.now;
        let late = run
            .from(Some("authority-minsk-zags"))
            .step(
                Some(&stuck.state),
                Input::Decided(AuthorityDecided {
                    application_id: Uuid::from_u128(1),
                    verdict: Verdict::Granted,
                    document: "ok".into(),
                    decided_at: now,
                }),
            )
            .expect("ignored");
        assert!(late.commands.is_empty());
        assert_eq!(late.state, stuck.state);
        // An ended application cannot be cancelled.
        assert!(cancel(&run, &stuck.state).is_err());
    }

    #[test]
    fn the_overdue_timer_raises_an_event_and_a_withdrawal_is_settled_by_the_authority() {
        let mut run = Run::new();
        let form = serde_json::json!({"period_from": "2026-01-01", "period_to": "2026-03-31"});
        let at = run.step(None, submit("2.19", form)).expect("submits").state;
        let overdue = run
            .step(
                Some(&at),
                Input::Deadline(DeadlinePassed {
                    application_id: Uuid::from_u128(1),
                    which: OVERDUE_TIMER.into(),
                }),
            )
            .expect("overdue");
        assert_eq!(
            sent(&overdue),
            ["procedure.overdue.v1", "sms.notify_holder.v1"]
        );
        assert!(overdue.state.overdue);
        let stranger = run
            .step(
                Some(&at),
                Input::Withdraw(WithdrawApplicationAs {
                    application_id: Uuid::from_u128(1),
                    applicant: "3270287A012PB3".into(),
                }),
            )
            .expect("refused");
        assert_eq!(sent(&stranger), ["procedure.rejected.v1"]);
        assert_eq!(
            stranger.state, at,
            "another person's withdrawal changes nothing"
        );
        let withdrawing = run
            .step(
                Some(&at),
                Input::Withdraw(WithdrawApplicationAs {
                    application_id: Uuid::from_u128(1),
                    applicant: APPLICANT.into(),
                }),
            )
            .expect("withdraws");
        assert_eq!(sent(&withdrawing), ["authority.withdrawal.v1"]);
        run.from(Some("authority-fszn"));
        // The authority had decided: the decision stands, the withdrawal is refused.
        let decided = run
            .step(
                Some(&withdrawing.state),
                Input::Decided(AuthorityDecided {
                    application_id: Uuid::from_u128(1),
                    verdict: Verdict::Granted,
                    document: "ok".into(),
                    decided_at: run.now,
                }),
            )
            .expect("decided");
        assert_eq!(
            sent(&decided),
            ["procedure.decided.v1", "sms.notify_holder.v1"]
        );
        let refused = run
            .step(
                Some(&decided.state),
                Input::WithdrawalAnswered(AuthorityWithdrawalAnswered {
                    application_id: Uuid::from_u128(1),
                    accepted: false,
                }),
            )
            .expect("answered");
        assert_eq!(sent(&refused), ["procedure.rejected.v1"]);
        assert!(matches!(refused.state.stage, Stage::Decided { .. }));
        // Or it had not: withdrawn, nothing due back for a free procedure.
        let withdrawn = run
            .step(
                Some(&withdrawing.state),
                Input::WithdrawalAnswered(AuthorityWithdrawalAnswered {
                    application_id: Uuid::from_u128(1),
                    accepted: true,
                }),
            )
            .expect("answered");
        assert_eq!(sent(&withdrawn), ["procedure.withdrawn.v1"]);
    }

    fn answer(who: &str) -> Input {
        Input::ProvideInfo(ProvideInfoAs {
            application_id: Uuid::from_u128(1),
            applicant: who.into(),
            form: serde_json::json!({"lease_number": "L-7"})
                .as_object()
                .cloned()
                .expect("object"),
            attachments: vec!["att-2".into()],
        })
    }

    #[test]
    fn an_answered_information_request_moves_the_term_by_the_working_days_waited() {
        let mut run = Run::new();
        let form = serde_json::json!({"period_from": "2026-01-01", "period_to": "2026-03-31"});
        let at = run.step(None, submit("2.19", form)).expect("submits");
        let sent_application: AuthorityApplication = body(&at, AuthorityApplication::TYPE);
        assert_eq!(sent_application.delivery, Delivery::CabinetAndCollect);
        let at = at.state;
        // No request waits: an answer is refused, nothing changes.
        let early = run.step(Some(&at), answer(APPLICANT)).expect("refused");
        let refused: ApplicationRejected = body(&early, ApplicationRejected::TYPE);
        assert_eq!(refused.reason, ProcedureRejectReason::NoInfoRequested);
        assert_eq!(early.state, at);
        run.from(Some("authority-fszn"));
        let asked = run
            .step(
                Some(&at),
                Input::InfoRequested(AuthorityInfoRequested {
                    application_id: Uuid::from_u128(1),
                    request: "the lease".into(),
                    answer_within_working_days: Some(5),
                }),
            )
            .expect("asked");
        assert_eq!(
            sent(&asked),
            ["procedure.info_requested.v1", "sms.notify_holder.v1"]
        );
        assert_eq!(run.saga.state_name(&asked.state), "awaiting_info");
        assert_eq!(asked.cancel_timers, [OVERDUE_TIMER]);
        // Thu 16 Apr + 5 working days: 17, 22, 23, 24, 25 (the transferred Saturday).
        let pending = asked.state.info_request.clone().expect("pending");
        assert_eq!(
            pending.answer_by,
            NaiveDate::from_ymd_opt(2026, 4, 25).expect("day")
        );
        // The overdue timer that lost its race to the request changes nothing.
        let raced = run
            .step(
                Some(&asked.state),
                Input::Deadline(DeadlinePassed {
                    application_id: Uuid::from_u128(1),
                    which: OVERDUE_TIMER.into(),
                }),
            )
            .expect("ignored");
        assert!(raced.commands.is_empty() && !raced.state.overdue);
        // Another person's answer is refused.
        let stranger = run
            .step(Some(&asked.state), answer("3270287A012PB3"))
            .expect("refused");
        let refused: ApplicationRejected = body(&stranger, ApplicationRejected::TYPE);
        assert_eq!(refused.reason, ProcedureRejectReason::NotTheApplicant);
        assert_eq!(stranger.state, asked.state);
        // The person answers on Thu 23 Apr: 17, 22, 23 are the working days waited.
        run.now += chrono::Duration::days(7);
        let answered = run
            .step(Some(&asked.state), answer(APPLICANT))
            .expect("answers");
        assert_eq!(
            sent(&answered),
            ["authority.info_provided.v1", "procedure.info_provided.v1"]
        );
        assert_eq!(
            answered.commands[0].reply_to.as_deref(),
            Some("ns.authority.fszn")
        );
        let provided: InfoProvided = body(&answered, InfoProvided::TYPE);
        assert_eq!(provided.suspended_working_days, 3);
        // 28 Apr + 3 working days: 29, 30 Apr, (1 May off) 4 May.
        assert_eq!(
            provided.decision_due,
            NaiveDate::from_ymd_opt(2026, 5, 4).expect("day")
        );
        assert_eq!(answered.state.decision_due, Some(provided.decision_due));
        assert_eq!(answered.timers[0].name, OVERDUE_TIMER);
        assert_eq!(answered.cancel_timers, [INFO_TIMER]);
        assert_eq!(run.saga.state_name(&answered.state), "at_authority");
        // A second answer finds no request.
        let again = run
            .step(Some(&answered.state), answer(APPLICANT))
            .expect("refused");
        let refused: ApplicationRejected = body(&again, ApplicationRejected::TYPE);
        assert_eq!(refused.reason, ProcedureRejectReason::NoInfoRequested);
        // Unanswered, the period lapses: the term moves to the period's end, an answer is late.
        let lapsed = run
            .step(
                Some(&asked.state),
                Input::Deadline(DeadlinePassed {
                    application_id: Uuid::from_u128(1),
                    which: INFO_TIMER.into(),
                }),
            )
            .expect("lapsed");
        assert_eq!(lapsed.state.suspended_working_days, 5);
        assert_eq!(lapsed.timers[0].name, OVERDUE_TIMER);
        let late = run
            .step(Some(&lapsed.state), answer(APPLICANT))
            .expect("refused");
        let refused: ApplicationRejected = body(&late, ApplicationRejected::TYPE);
        assert_eq!(refused.reason, ProcedureRejectReason::InfoPeriodPassed);
    }

    fn checked(authority: &str, check: CheckOutcome, sender: Option<&str>) -> Input {
        use contracts::procedure::{AuthorityDecidedSigned, DecisionDocument, DecisionSignature};
        let id = Uuid::from_u128(1);
        Input::DecisionChecked(DecisionChecked {
            decided: AuthorityDecidedSigned {
                application_id: id,
                document: DecisionDocument {
                    application_id: id,
                    authority_id: authority.into(),
                    number: "R-1".into(),
                    date: NaiveDate::from_ymd_opt(2026, 4, 20).expect("a day"),
                    verdict: Verdict::Granted,
                    text: "Назначить пособие.".into(),
                },
                signature: Some(DecisionSignature {
                    signature: "c2ln".into(),
                    certificate: "Y2VydA==".into(),
                    chain: vec![],
                }),
                decided_at: DateTime::parse_from_rfc3339("2026-04-20T09:00:00Z")
                    .expect("time")
                    .with_timezone(&Utc),
            },
            sender: sender.map(str::to_owned),
            check,
        })
    }

    fn verified() -> CheckOutcome {
        CheckOutcome::Verified {
            signer: contracts::procedure::DecisionSigner {
                name: "Петров Пётр Петрович".into(),
                organization: "fszn".into(),
                certificate_serial: "0a1b".into(),
                issuer: "CN=RUC".into(),
            },
        }
    }

    #[test]
    fn only_a_verified_decision_of_the_owning_authority_reaches_the_person() {
        let mut run = Run::new();
        run.saga.settings.unsigned_decisions = UnsignedDecisions::Refuse;
        let form = serde_json::json!({"period_from": "2026-01-01", "period_to": "2026-03-31"});
        let at = run.step(None, submit("2.19", form)).expect("submits").state;
        run.from(Some("hub"));

        // The unsigned v1: refused back to the authority's queue, the application unchanged.
        let unsigned = run.step(
            Some(&at),
            Input::Decided(AuthorityDecided {
                application_id: Uuid::from_u128(1),
                verdict: Verdict::Granted,
                document: "ok".into(),
                decided_at: run.now,
            }),
        );
        // v1 comes from the authority itself: from the hub's user it is not taken at all.
        assert!(unsigned.is_err());
        run.from(Some("authority-fszn"));
        let unsigned = run
            .step(
                Some(&at),
                Input::Decided(AuthorityDecided {
                    application_id: Uuid::from_u128(1),
                    verdict: Verdict::Granted,
                    document: "ok".into(),
                    decided_at: run.now,
                }),
            )
            .expect("refused");
        assert_eq!(sent(&unsigned), ["authority.decision_refused.v1"]);
        assert_eq!(
            unsigned.commands[0].reply_to.as_deref(),
            Some("ns.authority.fszn")
        );
        let r: AuthorityDecisionRefused = body(&unsigned, AuthorityDecisionRefused::TYPE);
        assert_eq!(r.reason, DecisionRefusalReason::Unsigned);
        assert_eq!(unsigned.state, at);

        // The gate's finding, forwarded as the hub's user, names the authority's user.
        run.from(Some("hub"));
        let bad = run
            .step(
                Some(&at),
                checked(
                    "fszn",
                    CheckOutcome::Refused {
                        reason: DecisionRefusalReason::BadSignature,
                        detail: "the signed message does not verify".into(),
                    },
                    Some("authority-fszn"),
                ),
            )
            .expect("refused");
        assert_eq!(sent(&bad), ["authority.decision_refused.v1"]);
        let r: AuthorityDecisionRefused = body(&bad, AuthorityDecisionRefused::TYPE);
        assert_eq!(
            (r.reason, r.number.as_str()),
            (DecisionRefusalReason::BadSignature, "R-1")
        );
        assert_eq!(bad.state, at);

        // Verified, but signed for another authority.
        let other = run
            .step(
                Some(&at),
                checked("mns", verified(), Some("authority-fszn")),
            )
            .expect("refused");
        let r: AuthorityDecisionRefused = body(&other, AuthorityDecisionRefused::TYPE);
        assert_eq!(r.reason, DecisionRefusalReason::WrongAuthority);
        assert_eq!(other.state, at);

        // Another authority's broker user: not taken (dead-lettered).
        assert!(
            run.step(
                Some(&at),
                checked("fszn", verified(), Some("authority-mns"))
            )
            .is_err()
        );

        // Verified, the owner's: the person gets the document and the signer.
        let decided = run
            .step(
                Some(&at),
                checked("fszn", verified(), Some("authority-fszn")),
            )
            .expect("decided");
        assert_eq!(
            sent(&decided),
            ["procedure.decided.v1", "sms.notify_holder.v1"]
        );
        let d: ApplicationDecided = body(&decided, ApplicationDecided::TYPE);
        let signed = d.signed.expect("signed");
        assert_eq!(signed.signer.certificate_serial, "0a1b");
        assert_eq!(signed.document.number, "R-1");
        assert_eq!(d.document, "Назначить пособие.");
        assert!(matches!(decided.state.stage, Stage::Decided { .. }));
    }
}
