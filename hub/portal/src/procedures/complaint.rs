//! Administrative complaints, one saga per complaint (DOMAIN.md: an applicant "may appeal a
//! decision"):
//!
//! ```text
//! submit --lookup--> looking_up --application decided, same applicant--> at_authority
//!                               --otherwise--> rejected
//! at_authority | withdrawing --authority decided--> decided
//! withdraw: looking_up --> withdrawn
//!           at_authority --> withdrawing --authority stops--> withdrawn
//!                                        --authority had decided--> decided
//! ```
//!
//! A complaint against a decision is heard by the authority that decided the application; a
//! complaint of inaction (`kind: inaction`: the application's term passed without a decision,
//! the person was told `procedure.overdue.v1`) by that authority's superior body, as the
//! catalogue names it, and only while the application is still undecided. A transition is pure
//! and cannot read the application saga's state, so the saga asks [`ApplicationLookup`], a
//! small service over the `sagas` table, and goes on with its answer. As for applications, a
//! withdrawal racing the decision is settled by the authority, and only the authority's own
//! broker user may answer for it.
//!
//! A decision on a complaint is an administrative decision too: the body that heard it signs it
//! (`authority.complaint_decided.v2`), the decision gate ([`super::decision`]) checks the
//! signature, the certificate's path and revocation, and the saga takes it only when the signer
//! is that body (organizationName = its id); otherwise, and for the unsigned
//! `authority.complaint_decided.v1` unless `HUB_UNSIGNED_DECISIONS=accept`, it answers the body
//! `authority.complaint_decision_refused.v1` and the complaint keeps waiting.

use std::sync::Arc;

use adapters::Failure;
use chrono::{DateTime, Utc};
use contracts::procedure::{
    AuthorityComplaint, AuthorityComplaintDecided, AuthorityComplaintDecisionRefused,
    AuthorityComplaintWithdrawal, AuthorityComplaintWithdrawalAnswered, ComplaintAccepted,
    ComplaintDecided, ComplaintKind, ComplaintRejectReason, ComplaintRejected, ComplaintVerdict,
    ComplaintWithdrawn, DecisionRefusalReason, SignedComplaintDecision,
};
use contracts::{Message, MessageType, decode};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::catalogue::Catalogue;
use super::decision::{CheckOutcome, ComplaintDecisionChecked};
use super::saga::{self as procedure, ProcedureSaga, UnsignedDecisions, authority_queue};
use crate::sessions::{self, StartComplaint, WithdrawComplaintAs};
use hub_runtime::broker::Incoming;
use hub_runtime::engine::db_failure;
use hub_runtime::engine::{Command, Saga, SagaKey, Service, Step, StepContext};

/// The saga type.
pub const SAGA_TYPE: &str = "complaint";
/// Its queue (short name).
pub const QUEUE: &str = "saga.complaint";
/// The lookup service's queue (short name).
pub const LOOKUP_QUEUE: &str = "procedure.lookup";

/// `procedure.lookup_application.v1`: the complaint saga asks what became of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupApplication {
    /// The application.
    pub application_id: Uuid,
}

impl Message for LookupApplication {
    const TYPE: MessageType = MessageType::new("procedure.lookup_application", 1);
}

/// `procedure.application_looked_up.v1`: the lookup's answer (to the asking saga, by its
/// correlation id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationLookedUp {
    /// Whether the application exists.
    pub found: bool,
    /// Whether it is decided.
    pub decided: bool,
    /// Its deciding authority (empty when not found).
    pub authority: String,
    /// Its applicant's identifier (empty when not found).
    pub applicant: String,
    /// The hub's number of the application (empty when not found).
    pub number: String,
    /// Whether its term passed without a decision and it is still with the authority.
    #[serde(default)]
    pub overdue: bool,
}

impl Message for ApplicationLookedUp {
    const TYPE: MessageType = MessageType::new("procedure.application_looked_up", 1);
}

/// The saga's queue and what it takes from the bus (the portal's requests come through the
/// session gate, [`crate::sessions`], by name).
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        QUEUE,
        [
            AuthorityComplaintDecided::TYPE.to_string(),
            AuthorityComplaintWithdrawalAnswered::TYPE.to_string(),
        ],
    )
}

/// The lookup service's queue.
pub fn lookup_queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(LOOKUP_QUEUE, [LookupApplication::TYPE.to_string()])
}

/// The complaint saga.
#[derive(Debug, Clone)]
pub struct ComplaintSaga {
    catalogue: Arc<Catalogue>,
    /// The namespace prefix of queue names (`ns.`), to address authorities' queues.
    prefix: String,
    /// The hub's own broker user: HTTP back-offices' answers come through its bridge.
    bridge_user: String,
    /// What becomes of an unsigned `authority.complaint_decided.v1`.
    unsigned_decisions: UnsignedDecisions,
}

impl ComplaintSaga {
    /// The saga over the catalogue (whose broker users answer for which authority);
    /// `namespace` addresses the authorities' queues.
    pub fn new(catalogue: Arc<Catalogue>, namespace: &str, bridge_user: &str) -> Self {
        Self {
            catalogue,
            prefix: format!("{namespace}."),
            bridge_user: bridge_user.to_owned(),
            unsigned_decisions: UnsignedDecisions::Refuse,
        }
    }

    /// The same, taking an unsigned `authority.complaint_decided.v1` as `unsigned_decisions`
    /// says (`HUB_UNSIGNED_DECISIONS`; refused by default).
    pub fn with_unsigned_decisions(mut self, unsigned_decisions: UnsignedDecisions) -> Self {
        self.unsigned_decisions = unsigned_decisions;
        self
    }

    /// The instance key of a complaint.
    pub fn key(complaint_id: Uuid) -> SagaKey {
        SagaKey::for_business_key(SAGA_TYPE, &complaint_id.to_string())
    }
}

/// One complaint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complaint {
    /// The portal's id.
    pub complaint_id: Uuid,
    /// The application appealed.
    pub application_id: Uuid,
    /// Who complains.
    pub applicant: String,
    /// The complaint.
    pub text: String,
    /// The authority hearing it, once known.
    pub authority: Option<String>,
    /// The hub's number of the application, once known.
    pub application_number: Option<String>,
    /// Where it is.
    pub stage: ComplaintStage,
    /// Against the decision or against inaction.
    #[serde(default)]
    pub kind: ComplaintKind,
}

/// Where a complaint is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum ComplaintStage {
    /// Waiting for the application's state.
    LookingUp,
    /// With the authority.
    AtAuthority,
    /// The person withdrew; the authority is asked whether it can still stop.
    Withdrawing,
    /// Decided.
    Decided {
        /// The verdict.
        verdict: ComplaintVerdict,
    },
    /// Withdrawn.
    Withdrawn,
    /// Refused.
    Rejected {
        /// Why.
        reason: ComplaintRejectReason,
    },
}

/// What the saga reads.
#[derive(Debug)]
pub enum ComplaintInput {
    /// A new complaint (from the session gate: the complainant is the session's).
    Submit(StartComplaint),
    /// Someone withdraws (from the session gate, with the session's identifier).
    Withdraw(WithdrawComplaintAs),
    /// The application's state.
    LookedUp(ApplicationLookedUp),
    /// From the authority, unsigned.
    Decided(AuthorityComplaintDecided),
    /// From the decision gate: a signed decision and what the gate found of it.
    DecisionChecked(Box<ComplaintDecisionChecked>),
    /// From the authority.
    WithdrawalAnswered(AuthorityComplaintWithdrawalAnswered),
}

impl Saga for ComplaintSaga {
    type State = Complaint;
    type Input = ComplaintInput;

    fn saga_type(&self) -> &'static str {
        SAGA_TYPE
    }

    fn read(&self, message: &Incoming) -> Result<(SagaKey, ComplaintInput), Failure> {
        let t = message.metadata.message_type.as_str();
        let b = &message.body;
        let bus = format!("{}bus", self.prefix);
        Ok(if StartComplaint::TYPE.matches(t) {
            sessions::check_internal(message, &bus)?;
            let m: StartComplaint = decode(t, b)?;
            (Self::key(m.complaint_id), ComplaintInput::Submit(m))
        } else if WithdrawComplaintAs::TYPE.matches(t) {
            sessions::check_internal(message, &bus)?;
            let m: WithdrawComplaintAs = decode(t, b)?;
            (Self::key(m.complaint_id), ComplaintInput::Withdraw(m))
        } else if ApplicationLookedUp::TYPE.matches(t) {
            (
                SagaKey::from_correlation_id(&message.metadata)?,
                ComplaintInput::LookedUp(decode(t, b)?),
            )
        } else if ComplaintDecisionChecked::TYPE.matches(t) {
            sessions::check_internal(message, &bus)?;
            let m: ComplaintDecisionChecked = decode(t, b)?;
            (
                Self::key(m.decided.complaint_id),
                ComplaintInput::DecisionChecked(Box::new(m)),
            )
        } else if AuthorityComplaintDecided::TYPE.matches(t) {
            let m: AuthorityComplaintDecided = decode(t, b)?;
            (Self::key(m.complaint_id), ComplaintInput::Decided(m))
        } else if AuthorityComplaintWithdrawalAnswered::TYPE.matches(t) {
            let m: AuthorityComplaintWithdrawalAnswered = decode(t, b)?;
            (
                Self::key(m.complaint_id),
                ComplaintInput::WithdrawalAnswered(m),
            )
        } else {
            return Err(Failure::invalid_input(format!(
                "the complaint saga does not take {t}"
            )));
        })
    }

    fn transition(
        &self,
        state: Option<&Complaint>,
        input: &ComplaintInput,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Complaint>, Failure> {
        use ComplaintInput as I;
        use ComplaintStage as S;
        let Some(s) = state else {
            return match input {
                I::Submit(m) => Ok(Step::to(Complaint {
                    complaint_id: m.complaint_id,
                    application_id: m.application_id,
                    applicant: m.applicant.clone(),
                    text: m.text.clone(),
                    authority: None,
                    application_number: None,
                    stage: S::LookingUp,
                    kind: m.kind,
                })
                .send(Command::new(&LookupApplication {
                    application_id: m.application_id,
                })?)),
                _ => Err(Failure::permanent("no such complaint")),
            };
        };
        match input {
            I::Decided(_) | I::WithdrawalAnswered(_) => {
                self.check_sender(s, ctx.message.user_id.as_deref())?;
            }
            // Sent by the hearing body (its broker user, as the gate received it).
            I::DecisionChecked(c) => self.check_sender(s, c.sender.as_deref())?,
            _ => {}
        }
        if let I::Withdraw(w) = input
            && w.applicant != s.applicant
        {
            // Another person's session: refused, the complaint unchanged.
            return Ok(Step::to(s.clone()).send(Command::new(&ComplaintRejected {
                complaint_id: s.complaint_id,
                reason: ComplaintRejectReason::NotTheApplicant,
                detail: "only the complainant may withdraw the complaint".into(),
            })?));
        }
        match (&s.stage, input) {
            (S::LookingUp, I::LookedUp(a)) => self.looked_up(s, a),
            // Nothing has reached an authority yet: the withdrawal needs nobody's consent.
            (S::LookingUp, I::Withdraw(_)) => Ok(with_stage(s, S::Withdrawn).send(Command::new(
                &ComplaintWithdrawn {
                    complaint_id: s.complaint_id,
                },
            )?)),
            // The decision wins over a withdrawal the authority has not answered yet: it
            // decided first, and will refuse the withdrawal.
            (S::AtAuthority | S::Withdrawing, I::Decided(d)) => match self.unsigned_decisions {
                UnsignedDecisions::Accept => decided(s, d.verdict, &d.document, d.decided_at, None),
                UnsignedDecisions::Refuse => self.refuse_decision(
                    s,
                    String::new(),
                    DecisionRefusalReason::Unsigned,
                    "authority.complaint_decided.v1 carries no signature: send the signed \
                     authority.complaint_decided.v2"
                        .to_owned(),
                ),
            },
            (S::AtAuthority | S::Withdrawing, I::DecisionChecked(c)) => self.decision_checked(s, c),
            (S::AtAuthority, I::Withdraw(_)) => Ok(with_stage(s, S::Withdrawing).send(
                Command::new(&AuthorityComplaintWithdrawal {
                    complaint_id: s.complaint_id,
                })?
                .reply_to(self.queue_of(s)?),
            )),
            (S::Withdrawing, I::WithdrawalAnswered(a)) if a.accepted => {
                Ok(
                    with_stage(s, S::Withdrawn).send(Command::new(&ComplaintWithdrawn {
                        complaint_id: s.complaint_id,
                    })?),
                )
            }
            // The authority had decided: its decision is on the way (or here already).
            (S::Withdrawing | S::Decided { .. }, I::WithdrawalAnswered(_))
            | (S::Decided { .. }, I::Withdraw(_)) => {
                let stage = match s.stage {
                    S::Withdrawing => S::AtAuthority,
                    ref other => other.clone(),
                };
                Ok(with_stage(s, stage).send(Command::new(&ComplaintRejected {
                    complaint_id: s.complaint_id,
                    reason: ComplaintRejectReason::AlreadyDecided,
                    detail: "the authority decided on the complaint before the withdrawal".into(),
                })?))
            }
            // A repeated submission, a second withdrawal, an answer after the end: no change.
            _ => Ok(Step::to(s.clone())),
        }
    }

    fn state_name(&self, s: &Complaint) -> String {
        match s.stage {
            ComplaintStage::LookingUp => "looking_up",
            ComplaintStage::AtAuthority => "at_authority",
            ComplaintStage::Withdrawing => "withdrawing",
            ComplaintStage::Decided { .. } => "decided",
            ComplaintStage::Withdrawn => "withdrawn",
            ComplaintStage::Rejected { .. } => "rejected",
        }
        .into()
    }

    fn is_terminal(&self, s: &Complaint) -> bool {
        matches!(
            s.stage,
            ComplaintStage::Decided { .. }
                | ComplaintStage::Withdrawn
                | ComplaintStage::Rejected { .. }
        )
    }
}

impl ComplaintSaga {
    /// With the application's state known: refuse the complaint, or send it to the authority
    /// that decided.
    fn looked_up(
        &self,
        s: &Complaint,
        a: &ApplicationLookedUp,
    ) -> Result<Step<Complaint>, Failure> {
        let refusal = if !a.found {
            Some((
                ComplaintRejectReason::UnknownApplication,
                format!("there is no application {}", s.application_id),
            ))
        } else if a.applicant != s.applicant {
            Some((
                ComplaintRejectReason::NotTheApplicant,
                "only the applicant may appeal the decision".into(),
            ))
        } else if s.kind == ComplaintKind::Inaction && !a.overdue {
            Some((
                ComplaintRejectReason::NotOverdue,
                format!(
                    "application {} is not past its term without a decision",
                    a.number
                ),
            ))
        } else if s.kind == ComplaintKind::Decision && !a.decided {
            Some((
                ComplaintRejectReason::NoDecisionToAppeal,
                format!("application {} is not decided", a.number),
            ))
        } else {
            None
        };
        if let Some((reason, detail)) = refusal {
            return Ok(
                with_stage(s, ComplaintStage::Rejected { reason }).send(Command::new(
                    &ComplaintRejected {
                        complaint_id: s.complaint_id,
                        reason,
                        detail,
                    },
                )?),
            );
        }
        // Inaction is heard by the superior body (the catalogue requires one of every deciding
        // authority).
        let (hearer, subordinate) = match s.kind {
            ComplaintKind::Decision => (a.authority.clone(), None),
            ComplaintKind::Inaction => {
                let superior = self
                    .catalogue
                    .authority(&a.authority)
                    .and_then(|x| x.superior.clone())
                    .ok_or_else(|| {
                        Failure::permanent(format!(
                            "authority {} has no superior body in the catalogue",
                            a.authority
                        ))
                    })?;
                (superior, Some(a.authority.clone()))
            }
        };
        let next = Complaint {
            authority: Some(hearer.clone()),
            application_number: Some(a.number.clone()),
            stage: ComplaintStage::AtAuthority,
            ..s.clone()
        };
        let queue = self.queue_of(&next)?;
        Ok(Step::to(next)
            .send(
                Command::new(&AuthorityComplaint {
                    complaint_id: s.complaint_id,
                    application_id: s.application_id,
                    application_number: a.number.clone(),
                    text: s.text.clone(),
                    kind: s.kind,
                    subordinate,
                })?
                .reply_to(queue),
            )
            .send(Command::new(&ComplaintAccepted {
                complaint_id: s.complaint_id,
                application_id: s.application_id,
                authority: hearer,
            })?))
    }

    fn authority<'a>(&self, s: &'a Complaint) -> Result<&'a str, Failure> {
        s.authority.as_deref().ok_or_else(|| {
            Failure::permanent(format!("complaint {} has no authority yet", s.complaint_id))
        })
    }

    fn queue_of(&self, s: &Complaint) -> Result<String, Failure> {
        Ok(format!(
            "{}{}",
            self.prefix,
            authority_queue(self.authority(s)?)
        ))
    }

    /// A signed decision, as the decision gate found it: only one verified and signed by the
    /// body that heard the complaint reaches the person; any other is refused back to that
    /// body, and the complaint keeps waiting.
    fn decision_checked(
        &self,
        s: &Complaint,
        c: &ComplaintDecisionChecked,
    ) -> Result<Step<Complaint>, Failure> {
        let d = &c.decided;
        let number = d.document.number.clone();
        let hearer = self.authority(s)?;
        match &c.check {
            CheckOutcome::Refused { reason, detail } => {
                self.refuse_decision(s, number, *reason, detail.clone())
            }
            CheckOutcome::Verified { .. } if d.document.authority_id != hearer => self
                .refuse_decision(
                    s,
                    number,
                    DecisionRefusalReason::WrongAuthority,
                    format!(
                        "the decision is signed for {}, but complaint {} is heard by {hearer}",
                        d.document.authority_id, s.complaint_id
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
                decided(
                    s,
                    d.document.verdict,
                    &d.document.text,
                    d.decided_at,
                    Some(SignedComplaintDecision {
                        document: d.document.clone(),
                        signature,
                        signer: signer.clone(),
                    }),
                )
            }
        }
    }

    /// Refuses a decision back to the body that heard the complaint: the complaint is
    /// unchanged.
    fn refuse_decision(
        &self,
        s: &Complaint,
        number: String,
        reason: DecisionRefusalReason,
        detail: String,
    ) -> Result<Step<Complaint>, Failure> {
        Ok(Step::to(s.clone()).send(
            Command::new(&AuthorityComplaintDecisionRefused {
                complaint_id: s.complaint_id,
                number,
                reason,
                detail,
            })?
            .reply_to(self.queue_of(s)?),
        ))
    }

    /// Only the authority hearing the complaint may answer for it: the broker checked the
    /// sender's `user_id` (`sender`) against its connection, the catalogue says whose it must
    /// be.
    fn check_sender(&self, s: &Complaint, sender: Option<&str>) -> Result<(), Failure> {
        let authority = self.authority(s)?;
        self.catalogue.check_sender(
            authority,
            sender,
            &format!("complaint {} is heard by {authority}", s.complaint_id),
            &self.bridge_user,
        )
    }
}

fn with_stage(s: &Complaint, stage: ComplaintStage) -> Step<Complaint> {
    Step::to(Complaint { stage, ..s.clone() })
}

/// The body decided: the portal and the person are told.
fn decided(
    s: &Complaint,
    verdict: ComplaintVerdict,
    document: &str,
    decided_at: DateTime<Utc>,
    signed: Option<SignedComplaintDecision>,
) -> Result<Step<Complaint>, Failure> {
    Ok(
        with_stage(s, ComplaintStage::Decided { verdict }).send(Command::new(&ComplaintDecided {
            complaint_id: s.complaint_id,
            verdict,
            document: document.to_owned(),
            decided_at,
            signed,
        })?),
    )
}

/// Answers the complaint saga's [`LookupApplication`] from the procedure saga's stored state:
/// the one place that reads another saga's row, so that the complaint saga stays pure.
#[derive(Debug, Clone)]
pub struct ApplicationLookup {
    pool: PgPool,
}

impl ApplicationLookup {
    /// A lookup over the hub's database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn look_up(&self, application_id: Uuid) -> Result<ApplicationLookedUp, Failure> {
        let state: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT state FROM sagas WHERE saga_type = $1 AND id = $2")
                .bind(procedure::SAGA_TYPE)
                .bind(ProcedureSaga::key(application_id).id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| db_failure(&e))?;
        Ok(looked_up(state.as_ref()))
    }
}

/// What the stored state of a procedure saga (or its absence) says.
fn looked_up(state: Option<&serde_json::Value>) -> ApplicationLookedUp {
    let field = |s: &serde_json::Value, name: &str| s[name].as_str().unwrap_or_default().to_owned();
    match state {
        None => ApplicationLookedUp {
            found: false,
            decided: false,
            authority: String::new(),
            applicant: String::new(),
            number: String::new(),
            overdue: false,
        },
        Some(s) => ApplicationLookedUp {
            found: true,
            decided: s["stage"]["stage"] == "decided",
            authority: field(s, "authority"),
            applicant: field(s, "applicant"),
            number: field(s, "number"),
            // Overdue and still with the authority (not decided, withdrawn or ended).
            overdue: s["overdue"] == true
                && matches!(
                    s["stage"]["stage"].as_str(),
                    Some("at_authority" | "withdrawing")
                ),
        },
    }
}

impl Service for ApplicationLookup {
    type Prepared = ApplicationLookedUp;

    fn name(&self) -> &'static str {
        "procedure.lookup"
    }

    fn prepare<'a>(
        &'a self,
        message: &'a Incoming,
    ) -> BoxFuture<'a, Result<ApplicationLookedUp, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            if !LookupApplication::TYPE.matches(t) {
                return Err(Failure::invalid_input(format!(
                    "the application lookup does not take {t}"
                )));
            }
            let m: LookupApplication = decode(t, &message.body)?;
            self.look_up(m.application_id).await
        })
    }

    fn apply<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _message: &'a Incoming,
        answer: ApplicationLookedUp,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move { Ok(vec![Command::new(&answer)?]) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use contracts::Metadata;

    const APPLICANT: &str = "3270287A012PB2";

    struct Run {
        saga: ComplaintSaga,
        meta: Metadata,
        now: DateTime<Utc>,
    }

    impl Run {
        fn new() -> Self {
            Self {
                saga: ComplaintSaga::new(
                    Arc::new(Catalogue::embedded().expect("catalogue")),
                    "ns",
                    "hub",
                ),
                meta: Metadata::new("t.v1", "t"),
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
            state: Option<&Complaint>,
            input: ComplaintInput,
        ) -> Result<Step<Complaint>, Failure> {
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

    fn sent(step: &Step<Complaint>) -> Vec<String> {
        step.commands
            .iter()
            .map(|c| c.message_type.to_string())
            .collect()
    }

    fn submit() -> ComplaintInput {
        ComplaintInput::Submit(StartComplaint {
            complaint_id: Uuid::from_u128(2),
            application_id: Uuid::from_u128(1),
            applicant: APPLICANT.into(),
            text: "The certificate omits March.".into(),
            kind: Default::default(),
        })
    }

    fn application(decided: bool, applicant: &str) -> ComplaintInput {
        ComplaintInput::LookedUp(ApplicationLookedUp {
            found: true,
            decided,
            authority: "fszn".into(),
            applicant: applicant.into(),
            number: "20260416-00000000".into(),
            overdue: false,
        })
    }

    #[test]
    fn a_complaint_of_inaction_goes_to_the_superior_only_when_the_term_passed() {
        let mut run = Run::new();
        let inaction = ComplaintInput::Submit(StartComplaint {
            kind: ComplaintKind::Inaction,
            ..match submit() {
                ComplaintInput::Submit(m) => m,
                _ => unreachable!("a submission"),
            }
        });
        let looking = run.step(None, inaction).expect("submits").state;
        let undecided = |overdue| {
            ComplaintInput::LookedUp(ApplicationLookedUp {
                found: true,
                decided: false,
                authority: "fszn".into(),
                applicant: APPLICANT.into(),
                number: "20260416-00000000".into(),
                overdue,
            })
        };
        let early = run.step(Some(&looking), undecided(false)).expect("refused");
        assert_eq!(rejected(&early), Some(ComplaintRejectReason::NotOverdue));
        let accepted = run.step(Some(&looking), undecided(true)).expect("accepted");
        assert_eq!(
            sent(&accepted),
            ["authority.complaint.v1", "complaint.accepted.v1"]
        );
        assert_eq!(
            accepted.commands[0].reply_to.as_deref(),
            Some("ns.authority.mintrud"),
            "FSZN's superior, from the catalogue"
        );
        let body: AuthorityComplaint =
            serde_json::from_slice(&accepted.commands[0].body).expect("body");
        assert_eq!(
            (body.kind, body.subordinate.as_deref()),
            (ComplaintKind::Inaction, Some("fszn"))
        );
        // Only the superior's own broker user answers for it.
        run.from(Some("authority-fszn"));
        let decided = ComplaintInput::Decided(AuthorityComplaintDecided {
            complaint_id: Uuid::from_u128(2),
            verdict: ComplaintVerdict::Upheld,
            document: "decide within 3 days".into(),
            decided_at: run.now,
        });
        assert!(run.step(Some(&accepted.state), decided).is_err());
        // The superior body signs the decision: its certificate, not the subordinate's.
        let signer = |organization: &str| CheckOutcome::Verified {
            signer: contracts::procedure::DecisionSigner {
                name: "Official".into(),
                organization: organization.into(),
                certificate_serial: "0b".into(),
                issuer: "CN=RUC".into(),
            },
        };
        let by_superior = checked("mintrud", signer("mintrud"), Some("authority-mintrud"));
        let ok = run
            .step(Some(&accepted.state), by_superior)
            .expect("decided");
        assert_eq!(sent(&ok), ["complaint.decided.v1"]);
        let by_subordinate = checked("fszn", signer("fszn"), Some("authority-mintrud"));
        let refused = run
            .step(Some(&accepted.state), by_subordinate)
            .expect("refused");
        let r: AuthorityComplaintDecisionRefused =
            serde_json::from_slice(&refused.commands[0].body).expect("body");
        assert_eq!(r.reason, DecisionRefusalReason::WrongAuthority);
        assert_eq!(
            refused.commands[0].reply_to.as_deref(),
            Some("ns.authority.mintrud"),
            "the refusal goes to the body that heard it"
        );
    }

    fn rejected(step: &Step<Complaint>) -> Option<ComplaintRejectReason> {
        match step.state.stage {
            ComplaintStage::Rejected { reason } => Some(reason),
            _ => None,
        }
    }

    /// A complaint about application 1, now with the FSZN.
    fn at_authority(run: &Run) -> Complaint {
        let looking = run.step(None, submit()).expect("submits").state;
        run.step(Some(&looking), application(true, APPLICANT))
            .expect("looked up")
            .state
    }

    #[test]
    fn a_complaint_against_a_decision_goes_to_the_authority_that_decided() {
        let run = Run::new();
        let looking = run.step(None, submit()).expect("submits");
        assert_eq!(sent(&looking), ["procedure.lookup_application.v1"]);
        assert_eq!(looking.commands[0].reply_to, None, "the answer comes back");
        let accepted = run
            .step(Some(&looking.state), application(true, APPLICANT))
            .expect("looked up");
        assert_eq!(
            sent(&accepted),
            ["authority.complaint.v1", "complaint.accepted.v1"]
        );
        assert_eq!(
            accepted.commands[0].reply_to.as_deref(),
            Some("ns.authority.fszn")
        );
        assert_eq!(run.saga.state_name(&accepted.state), "at_authority");
    }

    #[test]
    fn a_complaint_needs_a_decided_application_of_the_same_applicant() {
        let run = Run::new();
        let looking = run.step(None, submit()).expect("submits").state;
        let cases = [
            (
                application(false, APPLICANT),
                ComplaintRejectReason::NoDecisionToAppeal,
            ),
            (
                application(true, "someone else"),
                ComplaintRejectReason::NotTheApplicant,
            ),
            (
                ComplaintInput::LookedUp(looked_up(None)),
                ComplaintRejectReason::UnknownApplication,
            ),
        ];
        for (input, reason) in cases {
            let step = run.step(Some(&looking), input).expect("answered");
            assert_eq!(sent(&step), ["complaint.rejected.v1"]);
            assert_eq!(rejected(&step), Some(reason));
            assert!(run.saga.is_terminal(&step.state));
        }
    }

    #[test]
    fn only_the_authority_that_hears_the_complaint_may_decide_it() {
        let mut run = Run::new();
        let at = at_authority(&run);
        let decided = || {
            ComplaintInput::Decided(AuthorityComplaintDecided {
                complaint_id: Uuid::from_u128(2),
                verdict: ComplaintVerdict::Dismissed,
                document: "The decision stands.".into(),
                decided_at: DateTime::UNIX_EPOCH,
            })
        };
        assert!(
            run.from(Some("authority-minsk-zags"))
                .step(Some(&at), decided())
                .is_err()
        );
        assert!(run.from(None).step(Some(&at), decided()).is_err());
        // Unsigned: refused back to the body unless the hub accepts unsigned decisions.
        let unsigned = run
            .from(Some("authority-fszn"))
            .step(Some(&at), decided())
            .expect("refused");
        assert_eq!(sent(&unsigned), ["authority.complaint_decision_refused.v1"]);
        assert_eq!(
            unsigned.commands[0].reply_to.as_deref(),
            Some("ns.authority.fszn")
        );
        assert_eq!(unsigned.state, at, "the complaint keeps waiting");
        run.saga = run
            .saga
            .clone()
            .with_unsigned_decisions(UnsignedDecisions::Accept);
        let ok = run.step(Some(&at), decided()).expect("the owner decides");
        assert_eq!(sent(&ok), ["complaint.decided.v1"]);
        assert_eq!(run.saga.state_name(&ok.state), "decided");
    }

    fn checked(authority: &str, check: CheckOutcome, sender: Option<&str>) -> ComplaintInput {
        use contracts::procedure::{
            AuthorityComplaintDecidedSigned, ComplaintDecisionDocument, DecisionSignature,
        };
        ComplaintInput::DecisionChecked(Box::new(ComplaintDecisionChecked {
            decided: AuthorityComplaintDecidedSigned {
                complaint_id: Uuid::from_u128(2),
                document: ComplaintDecisionDocument {
                    complaint_id: Uuid::from_u128(2),
                    authority_id: authority.into(),
                    number: "FSZN-C-1".into(),
                    date: chrono::NaiveDate::from_ymd_opt(2026, 12, 7).expect("a day"),
                    verdict: ComplaintVerdict::Upheld,
                    text: "Upheld.".into(),
                },
                signature: Some(DecisionSignature {
                    signature: "c2ln".into(),
                    certificate: "Y2VydA==".into(),
                    chain: vec![],
                }),
                decided_at: DateTime::UNIX_EPOCH,
            },
            sender: sender.map(str::to_owned),
            check,
        }))
    }

    #[test]
    fn only_a_verified_decision_signed_by_the_hearing_body_reaches_the_person() {
        use contracts::procedure::DecisionSigner;
        let run = Run::new();
        let at = at_authority(&run);
        let verified = || CheckOutcome::Verified {
            signer: DecisionSigner {
                name: "Official".into(),
                organization: "fszn".into(),
                certificate_serial: "0a".into(),
                issuer: "CN=RUC".into(),
            },
        };
        let ok = run
            .step(
                Some(&at),
                checked("fszn", verified(), Some("authority-fszn")),
            )
            .expect("decided");
        assert_eq!(sent(&ok), ["complaint.decided.v1"]);
        let told: ComplaintDecided = serde_json::from_slice(&ok.commands[0].body).expect("body");
        let signed = told.signed.expect("the signed decision");
        assert_eq!(signed.signer.organization, "fszn");
        assert_eq!(told.document, "Upheld.");
        // The gate refused it: back to the body with the gate's reason.
        let bad = CheckOutcome::Refused {
            reason: DecisionRefusalReason::BadSignature,
            detail: "the signature does not verify".into(),
        };
        let refused = run
            .step(Some(&at), checked("fszn", bad, Some("authority-fszn")))
            .expect("refused");
        assert_eq!(sent(&refused), ["authority.complaint_decision_refused.v1"]);
        let r: AuthorityComplaintDecisionRefused =
            serde_json::from_slice(&refused.commands[0].body).expect("body");
        assert_eq!(
            (r.reason, r.number.as_str()),
            (DecisionRefusalReason::BadSignature, "FSZN-C-1")
        );
        assert_eq!(refused.state, at);
        // Signed for another body: refused as not the hearing body's.
        let other = run
            .step(
                Some(&at),
                checked("mintrud", verified(), Some("authority-fszn")),
            )
            .expect("refused");
        let r: AuthorityComplaintDecisionRefused =
            serde_json::from_slice(&other.commands[0].body).expect("body");
        assert_eq!(r.reason, DecisionRefusalReason::WrongAuthority);
        // Forwarded for another body's broker user: not taken at all.
        assert!(
            run.step(
                Some(&at),
                checked("fszn", verified(), Some("authority-mintrud"))
            )
            .is_err()
        );
    }

    #[test]
    fn a_withdrawal_is_settled_by_the_authority() {
        let mut run = Run::new();
        let at = at_authority(&run);
        let withdraw_as = |who: &str| {
            ComplaintInput::Withdraw(WithdrawComplaintAs {
                complaint_id: Uuid::from_u128(2),
                applicant: who.into(),
            })
        };
        let withdraw = || withdraw_as(APPLICANT);
        let answer = |accepted| {
            ComplaintInput::WithdrawalAnswered(AuthorityComplaintWithdrawalAnswered {
                complaint_id: Uuid::from_u128(2),
                accepted,
            })
        };
        // Another person's session cannot withdraw it.
        let stranger = run
            .step(Some(&at), withdraw_as("someone else"))
            .expect("refused");
        assert_eq!(sent(&stranger), ["complaint.rejected.v1"]);
        assert_eq!(stranger.state, at);
        let withdrawing = run.step(Some(&at), withdraw()).expect("withdraws");
        assert_eq!(sent(&withdrawing), ["authority.complaint_withdrawal.v1"]);
        assert_eq!(
            withdrawing.commands[0].reply_to.as_deref(),
            Some("ns.authority.fszn")
        );
        run.from(Some("authority-fszn"));
        let withdrawn = run
            .step(Some(&withdrawing.state), answer(true))
            .expect("answered");
        assert_eq!(sent(&withdrawn), ["complaint.withdrawn.v1"]);
        assert_eq!(withdrawn.state.stage, ComplaintStage::Withdrawn);
        // The authority had decided: the decision stands and is still awaited.
        let refused = run
            .step(Some(&withdrawing.state), answer(false))
            .expect("answered");
        assert_eq!(sent(&refused), ["complaint.rejected.v1"]);
        assert_eq!(refused.state.stage, ComplaintStage::AtAuthority);
        // Before any authority has it, nobody needs to agree.
        let looking = run.step(None, submit()).expect("submits").state;
        let early = run.step(Some(&looking), withdraw()).expect("withdraws");
        assert_eq!(sent(&early), ["complaint.withdrawn.v1"]);
    }

    #[test]
    fn the_lookup_reads_the_stored_application_state() {
        let state = serde_json::json!({
            "application_id": Uuid::from_u128(1), "number": "N-1", "authority": "fszn",
            "applicant": APPLICANT, "stage": {"stage": "decided", "verdict": "granted"}
        });
        let found = looked_up(Some(&state));
        assert!(found.found && found.decided);
        assert_eq!(
            (
                found.authority.as_str(),
                found.applicant.as_str(),
                found.number.as_str()
            ),
            ("fszn", APPLICANT, "N-1")
        );
        let pending = serde_json::json!({"stage": {"stage": "at_authority"}});
        assert!(!looked_up(Some(&pending)).decided);
        assert!(!looked_up(None).found);
    }
}
