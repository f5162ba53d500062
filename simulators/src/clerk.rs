//! The clerk of a simulated authority: what the authority does with an application or a
//! complaint, whatever carries them. The queue back-office ([`crate::authority`]) and the HTTP
//! back-office ([`crate::backoffice`]) both hand their work to a [`Clerk`], so they behave
//! alike by construction; each only moves messages.
//!
//! The clerk keeps the book of one authority:
//!
//! - an application is registered once, under the next registration number
//!   (`<AUTHORITY>-000001`); a repeat gets the same number and nothing more;
//! - once taken up, it asks for more information at once when the form says
//!   `"simulate_info_request": true` or an attachment is [`INFO_REQUEST_ATTACHMENT`], and
//!   decides `decide_after` later: `refused` when the form says `"simulate_refusal": true` or
//!   an attachment is [`REFUSAL_ATTACHMENT`], else `granted` — unless it was withdrawn first.
//!   An application with an attachment [`IDLE_ATTACHMENT`] is not decided on that pace: it
//!   stays undecided (its term passes: an inaction to complain of) until the person answers
//!   the clerk's information request, and is decided `decide_after` after that answer.
//!   (The hub validates forms against its catalogue, so through the hub only the attachment
//!   markers reach the clerk);
//! - a withdrawal is accepted unless the application was decided (a repeat answers the same);
//! - a complaint is decided `complaint_decide_after` after it arrived, unless it was withdrawn
//!   first, by [`Complaint::verdict`]: `upheld` when its text carries [`UPHELD_MARKER`],
//!   `dismissed` when it carries [`DISMISSED_MARKER`], else `upheld` for a complaint of inaction
//!   (the hub sends one only once the term passed with no decision) and `dismissed` for one
//!   against a decision; its withdrawal is accepted unless it was decided.
//!
//! The answers the clerk gives on the spot (a registration number, a withdrawal's answer) are
//! return values; the ones it gives later on its own (an info request, a decision) go through
//! an [`Outbox`], which the transport implements.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::error::timestamp;
use crate::retention::{Bounded, Limit};

/// What the clerk asks for when the form asks it to ask.
const INFO_REQUEST: &str = "Please attach a copy of the lease.";

/// Where the answers the clerk gives later go: the bus, or the hub's callback URL.
pub(crate) trait Outbox: Send + Sync + 'static {
    /// Where one application's or complaint's answers go (a correlation id, a callback URL).
    type Address: Clone + Send + Sync + 'static;

    /// Sends one answer; an error means it was not delivered and will not be (the clerk logs
    /// it). It may take long: it runs on the case's own task.
    fn send(
        &self,
        to: &Self::Address,
        answer: &Answer,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The decision on an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Granted,
    Refused,
}

impl Verdict {
    /// The wire name: `granted`, `refused`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Verdict::Granted => "granted",
            Verdict::Refused => "refused",
        }
    }
}

/// The period the clerk gives the person to answer its information request, working days.
pub const INFO_PERIOD_WORKING_DAYS: u32 = 5;

/// An answer the clerk gives later, on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `authority.info_requested.v1`.
    InfoRequested {
        application_id: Uuid,
        request: String,
    },
    /// `authority.decided.v1`.
    Decided {
        application_id: Uuid,
        verdict: Verdict,
        document: String,
        decided_at: DateTime<Utc>,
    },
    /// `authority.complaint_decided.v1`.
    ComplaintDecided {
        complaint_id: Uuid,
        verdict: ComplaintVerdict,
        document: String,
        decided_at: DateTime<Utc>,
    },
}

impl Answer {
    /// Its message type, as the queue contracts name it.
    pub(crate) fn message_type(&self) -> &'static str {
        match self {
            Answer::InfoRequested { .. } => "authority.info_requested.v1",
            Answer::Decided { .. } => "authority.decided.v1",
            Answer::ComplaintDecided { .. } => "authority.complaint_decided.v1",
        }
    }

    /// The application or complaint it is about.
    pub(crate) fn about(&self) -> Uuid {
        match self {
            Answer::InfoRequested { application_id, .. }
            | Answer::Decided { application_id, .. } => *application_id,
            Answer::ComplaintDecided { complaint_id, .. } => *complaint_id,
        }
    }

    /// Its body, the contract's JSON.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Answer::InfoRequested {
                application_id,
                request,
            } => json!({"application_id": application_id, "request": request,
                "answer_within_working_days": INFO_PERIOD_WORKING_DAYS}),
            Answer::Decided {
                application_id,
                verdict,
                document,
                decided_at,
            } => json!({"application_id": application_id, "verdict": verdict.name(),
                "document": document, "decided_at": timestamp(*decided_at)}),
            Answer::ComplaintDecided {
                complaint_id,
                verdict,
                document,
                decided_at,
            } => json!({"complaint_id": complaint_id, "verdict": verdict.name(),
                "document": document, "decided_at": timestamp(*decided_at)}),
        }
    }
}

/// An application, as much of it as the clerk looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Application {
    pub(crate) id: Uuid,
    /// The form says `"simulate_info_request": true`.
    pub(crate) info_request: bool,
    /// The form says `"simulate_refusal": true`.
    pub(crate) refusal: bool,
    /// An attachment is [`IDLE_ATTACHMENT`]: decided only after the person's answer.
    pub(crate) idle: bool,
}

/// An attachment reference that makes the clerk refuse the application.
pub const REFUSAL_ATTACHMENT: &str = "simulate:refusal";
/// An attachment reference that makes the clerk ask for more information.
pub const INFO_REQUEST_ATTACHMENT: &str = "simulate:info_request";
/// An attachment reference that makes the clerk leave the application undecided until the
/// person answers its information request (without one, for good: the term passes).
pub const IDLE_ATTACHMENT: &str = "simulate:idle";

impl Application {
    pub(crate) fn new(id: Uuid, form: &Map<String, Value>) -> Self {
        let says = |field: &str| form.get(field) == Some(&Value::Bool(true));
        Application {
            id,
            info_request: says("simulate_info_request"),
            refusal: says("simulate_refusal"),
            idle: false,
        }
    }

    /// The same, also asked by the attachment markers.
    pub(crate) fn marked<S: AsRef<str>>(mut self, attachments: &[S]) -> Self {
        let has = |marker: &str| attachments.iter().any(|a| a.as_ref() == marker);
        self.info_request |= has(INFO_REQUEST_ATTACHMENT);
        self.refusal |= has(REFUSAL_ATTACHMENT);
        self.idle |= has(IDLE_ATTACHMENT);
        self
    }
}

/// The decision on a complaint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ComplaintVerdict {
    Upheld,
    Dismissed,
}

impl ComplaintVerdict {
    /// The wire name: `upheld`, `dismissed`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ComplaintVerdict::Upheld => "upheld",
            ComplaintVerdict::Dismissed => "dismissed",
        }
    }
}

/// A complaint's text carrying this makes the clerk uphold it.
pub const UPHELD_MARKER: &str = "simulate:upheld";
/// A complaint's text carrying this makes the clerk dismiss it (also one of inaction).
pub const DISMISSED_MARKER: &str = "simulate:dismissed";

/// A complaint, as much of it as the clerk looks at: the body of `authority.complaint.v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Complaint {
    pub(crate) id: Uuid,
    /// What the clerk will decide; see [`Complaint::verdict`].
    pub(crate) verdict: ComplaintVerdict,
}

impl Complaint {
    /// The complaint `id` with `text`, of `kind` (`"decision"`, `"inaction"`; none is a
    /// complaint against a decision, as the contract's default).
    pub(crate) fn new(id: Uuid, text: &str, kind: Option<&str>) -> Self {
        Complaint {
            id,
            verdict: Self::verdict(text, kind),
        }
    }

    /// The clerk's rule: a marker in the text decides ([`UPHELD_MARKER`] before
    /// [`DISMISSED_MARKER`]); otherwise a complaint of inaction is upheld — the hub sends one
    /// only once the term passed with no decision — and one against a decision dismissed.
    pub(crate) fn verdict(text: &str, kind: Option<&str>) -> ComplaintVerdict {
        if text.contains(UPHELD_MARKER) {
            ComplaintVerdict::Upheld
        } else if text.contains(DISMISSED_MARKER) {
            ComplaintVerdict::Dismissed
        } else if kind == Some("inaction") {
            ComplaintVerdict::Upheld
        } else {
            ComplaintVerdict::Dismissed
        }
    }
}

/// Where an application is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Registered,
    Decided(Verdict),
    Withdrawn,
}

impl State {
    /// The name the inspection endpoint shows: `registered`, `decided`, `withdrawn`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Registered => "registered",
            State::Decided(_) => "decided",
            State::Withdrawn => "withdrawn",
        }
    }
}

/// Where a complaint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ComplaintState {
    Received,
    Decided(ComplaintVerdict),
    Withdrawn,
}

impl ComplaintState {
    /// The name the inspection endpoint shows: `received`, `decided`, `withdrawn`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ComplaintState::Received => "received",
            ComplaintState::Decided(_) => "decided",
            ComplaintState::Withdrawn => "withdrawn",
        }
    }
}

/// One registered application.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) registration_number: String,
    pub(crate) state: State,
    /// The term's last day after the person answered the information request, once answered.
    pub(crate) due_after_info: Option<String>,
    application: Application,
    taken_up: bool,
    /// Wakes an idle application's work once the person answered.
    answered: Arc<Notify>,
}

/// One authority's applications and complaints, the newest of each up to the record limit. A
/// case dropped is one the clerk never had: its work ends undecided, a repeat registers it anew
/// (under a new number), and a withdrawal or an inspection of it finds nothing.
#[derive(Debug)]
struct Book {
    applications: Bounded<Uuid, Case>,
    complaints: Bounded<Uuid, ComplaintState>,
    registered: u64,
}

impl Book {
    fn new(limit: Limit) -> Self {
        Book {
            applications: Bounded::new(limit),
            complaints: Bounded::new(limit),
            registered: 0,
        }
    }

    /// Ends the work on dropped applications: an idle one waiting for the person's answer is
    /// woken, finds its case gone and stops.
    fn dropped(cases: Vec<(Uuid, Case)>) {
        for (_, case) in cases {
            case.answered.notify_one();
        }
    }
}

/// How long the clerk takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pace {
    /// From taking an application up to deciding it.
    pub(crate) decide_after: Duration,
    /// From receiving a complaint to deciding it.
    pub(crate) complaint_decide_after: Duration,
}

/// The clerk of one authority; see the module docs.
#[derive(Debug)]
pub(crate) struct Clerk<O: Outbox> {
    authority: String,
    pace: Pace,
    outbox: O,
    book: Mutex<Book>,
    /// Where the cases' timers run, so that whoever stops the clerk can wait for them.
    tasks: TaskTracker,
    /// Cancelled when the clerk stops: pending timers end, answers not yet sent are not sent.
    stop: CancellationToken,
}

impl<O: Outbox> Clerk<O> {
    /// The clerk of `authority`, keeping up to `limit` applications and as many complaints.
    pub(crate) fn new(
        authority: &str,
        (pace, limit): (Pace, Limit),
        outbox: O,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Clerk {
            authority: authority.to_owned(),
            pace,
            outbox,
            book: Mutex::new(Book::new(limit)),
            tasks,
            stop,
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers an application and returns its registration number; a repeat returns the same
    /// number and changes nothing. Work on it starts with [`Self::take_up`], once the transport
    /// has answered the registration.
    pub(crate) fn register(&self, application: Application) -> String {
        let mut book = self.book();
        if let Some(case) = book.applications.get(&application.id) {
            return case.registration_number.clone();
        }
        book.registered += 1;
        let number = format!("{}-{:06}", self.authority.to_uppercase(), book.registered);
        let dropped = book.applications.insert(
            application.id,
            Case {
                registration_number: number.clone(),
                state: State::Registered,
                due_after_info: None,
                application,
                taken_up: false,
                answered: Arc::new(Notify::new()),
            },
        );
        Book::dropped(dropped);
        tracing::info!(
            authority = %self.authority,
            application_id = %application.id,
            registration_number = %number,
            "application registered"
        );
        number
    }

    /// Starts work on a registered application: its later answers go to `reply_to`. Only the
    /// first call does anything.
    pub(crate) fn take_up(self: &Arc<Self>, application_id: Uuid, reply_to: O::Address) {
        let (application, answered) = {
            let mut book = self.book();
            match book.applications.get_mut(&application_id) {
                Some(case) if !case.taken_up && case.state == State::Registered => {
                    case.taken_up = true;
                    (case.application, case.answered.clone())
                }
                _ => return,
            }
        };
        let clerk = self.clone();
        self.tasks
            .spawn(async move { clerk.work_on(application, answered, reply_to).await });
    }

    /// An application's life after registration: the info request, (for an idle one) the
    /// person's answer, then the decision.
    async fn work_on(&self, application: Application, answered: Arc<Notify>, to: O::Address) {
        if application.info_request {
            let answer = Answer::InfoRequested {
                application_id: application.id,
                request: INFO_REQUEST.to_owned(),
            };
            self.deliver(&to, answer).await;
        }
        if application.idle {
            tokio::select! {
                () = answered.notified() => {}
                () = self.stop.cancelled() => return,
            }
        }
        if !self.wait(self.pace.decide_after).await {
            return;
        }
        let verdict = if application.refusal {
            Verdict::Refused
        } else {
            Verdict::Granted
        };
        {
            let mut book = self.book();
            match book.applications.get_mut(&application.id) {
                Some(case) if case.state == State::Registered => {
                    case.state = State::Decided(verdict);
                }
                _ => return,
            }
        }
        tracing::info!(
            authority = %self.authority,
            application_id = %application.id,
            verdict = verdict.name(),
            "application decided"
        );
        let answer = Answer::Decided {
            application_id: application.id,
            verdict,
            document: format!(
                "Decision on application {}: {}.",
                application.id,
                verdict.name()
            ),
            decided_at: Utc::now(),
        };
        self.deliver(&to, answer).await;
    }

    /// Withdraws an application: `Some(true)` when it stops (also again), `Some(false)` when it
    /// was decided, `None` when the clerk does not know it.
    /// The person answered the information request; the term now ends on `due`. `None` for an
    /// application the clerk never had.
    pub(crate) fn info_provided(&self, application_id: Uuid, due: &str) -> Option<()> {
        let mut book = self.book();
        let case = book.applications.get_mut(&application_id)?;
        case.due_after_info = Some(due.to_owned());
        // An idle application is decided from now on (a permit, should its work not wait yet).
        case.answered.notify_one();
        Some(())
    }

    pub(crate) fn withdraw(&self, application_id: Uuid) -> Option<bool> {
        let accepted = {
            let mut book = self.book();
            let case = book.applications.get_mut(&application_id)?;
            match case.state {
                State::Decided(_) => false,
                State::Registered | State::Withdrawn => {
                    case.state = State::Withdrawn;
                    // An idle application's work ends: it sees the withdrawal.
                    case.answered.notify_one();
                    true
                }
            }
        };
        tracing::info!(
            authority = %self.authority,
            %application_id,
            accepted,
            "application withdrawal answered"
        );
        Some(accepted)
    }

    /// Receives a complaint: it is decided later, and the decision goes to `reply_to`. A repeat
    /// does nothing.
    pub(crate) fn receive_complaint(self: &Arc<Self>, complaint: Complaint, reply_to: O::Address) {
        let complaint_id = complaint.id;
        {
            let mut book = self.book();
            if book.complaints.contains_key(&complaint_id) {
                return;
            }
            // A complaint dropped is simply forgotten: its decision finds nothing to decide.
            let _dropped = book
                .complaints
                .insert(complaint_id, ComplaintState::Received);
        }
        tracing::info!(authority = %self.authority, %complaint_id, "complaint received");
        let clerk = self.clone();
        self.tasks
            .spawn(async move { clerk.decide_complaint(complaint, reply_to).await });
    }

    async fn decide_complaint(&self, complaint: Complaint, to: O::Address) {
        let (complaint_id, verdict) = (complaint.id, complaint.verdict);
        if !self.wait(self.pace.complaint_decide_after).await {
            return;
        }
        {
            let mut book = self.book();
            match book.complaints.get_mut(&complaint_id) {
                Some(state) if *state == ComplaintState::Received => {
                    *state = ComplaintState::Decided(verdict);
                }
                _ => return,
            }
        }
        tracing::info!(
            authority = %self.authority,
            %complaint_id,
            verdict = verdict.name(),
            "complaint decided"
        );
        let document = match verdict {
            ComplaintVerdict::Upheld => "the complaint is founded; the case is revised",
            ComplaintVerdict::Dismissed => "the decision stands",
        };
        let answer = Answer::ComplaintDecided {
            complaint_id,
            verdict,
            document: format!("Decision on complaint {complaint_id}: {document}."),
            decided_at: Utc::now(),
        };
        self.deliver(&to, answer).await;
    }

    /// Withdraws a complaint: as [`Self::withdraw`].
    pub(crate) fn withdraw_complaint(&self, complaint_id: Uuid) -> Option<bool> {
        let accepted = {
            let mut book = self.book();
            let state = book.complaints.get_mut(&complaint_id)?;
            match state {
                ComplaintState::Decided(_) => false,
                ComplaintState::Received | ComplaintState::Withdrawn => {
                    *state = ComplaintState::Withdrawn;
                    true
                }
            }
        };
        tracing::info!(
            authority = %self.authority,
            %complaint_id,
            accepted,
            "complaint withdrawal answered"
        );
        Some(accepted)
    }

    /// An application as the book has it now.
    pub(crate) fn application(&self, application_id: Uuid) -> Option<Case> {
        self.book().applications.get(&application_id).cloned()
    }

    /// A complaint's state now.
    pub(crate) fn complaint(&self, complaint_id: Uuid) -> Option<ComplaintState> {
        self.book().complaints.get(&complaint_id).copied()
    }

    async fn deliver(&self, to: &O::Address, answer: Answer) {
        if let Err(e) = self.outbox.send(to, &answer).await {
            tracing::warn!(
                authority = %self.authority,
                id = %answer.about(),
                message_type = answer.message_type(),
                error = %e,
                "answer not delivered"
            );
        }
    }

    /// Sleeps unless the clerk stops first; true when the whole time passed.
    async fn wait(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.stop.cancelled() => false,
        }
    }
}

/// The clerk's answer on the receipt of a payment made outside ERIP: confirmed, unless the
/// receipt's document number starts with `refuse` (case aside) — then refused with the reason
/// given. The simulated authority cannot see a bank account, so the test says which.
pub(crate) fn check_receipt(document_number: &str) -> Result<(), &'static str> {
    if document_number.to_ascii_lowercase().starts_with("refuse") {
        Err("no such payment reached the authority's account")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// Hands every answer to the test.
    struct Collect(mpsc::UnboundedSender<Answer>);

    impl Outbox for Collect {
        type Address = ();

        async fn send(&self, (): &(), answer: &Answer) -> anyhow::Result<()> {
            self.0.send(answer.clone())?;
            Ok(())
        }
    }

    fn clerk(decide_after: Duration) -> (Arc<Clerk<Collect>>, mpsc::UnboundedReceiver<Answer>) {
        bounded_clerk(decide_after, 100)
    }

    fn bounded_clerk(
        decide_after: Duration,
        keep: usize,
    ) -> (Arc<Clerk<Collect>>, mpsc::UnboundedReceiver<Answer>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pace = Pace {
            decide_after,
            complaint_decide_after: decide_after,
        };
        let clerk = Clerk::new(
            "tax-ministry",
            (pace, Limit::new(keep, Duration::from_secs(3600))),
            Collect(tx),
            TaskTracker::new(),
            CancellationToken::new(),
        );
        (clerk, rx)
    }

    fn form(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_form_decides_what_the_clerk_simulates() {
        let id = Uuid::new_v4();
        let plain = Application::new(id, &form(json!({"address": "x"})));
        assert!(!plain.info_request && !plain.refusal);
        let both = Application::new(
            id,
            &form(json!({"simulate_info_request": true, "simulate_refusal": true})),
        );
        assert!(both.info_request && both.refusal);
        let not_quite = Application::new(id, &form(json!({"simulate_refusal": "true"})));
        assert!(!not_quite.refusal, "only the JSON true counts");
        let marked = plain.marked(&["scan-1", REFUSAL_ATTACHMENT]);
        assert!(marked.refusal && !marked.info_request);
        assert!(plain.marked(&[INFO_REQUEST_ATTACHMENT]).info_request);
    }

    #[tokio::test]
    async fn an_application_is_registered_once_and_decided_once() {
        let (clerk, mut answers) = clerk(Duration::from_millis(10));
        let application = Application::new(
            Uuid::new_v4(),
            &form(json!({"simulate_info_request": true, "simulate_refusal": true})),
        );
        let number = clerk.register(application);
        assert_eq!(number, "TAX-MINISTRY-000001");
        assert_eq!(clerk.register(application), number);
        clerk.take_up(application.id, ());
        clerk.take_up(application.id, ());
        let first = answers.recv().await.expect("an answer");
        assert_eq!(first.message_type(), "authority.info_requested.v1");
        let second = answers.recv().await.expect("an answer");
        assert_eq!(second.to_json()["verdict"], "refused");
        assert_eq!(
            clerk.application(application.id).map(|c| c.state),
            Some(State::Decided(Verdict::Refused))
        );
        assert_eq!(clerk.withdraw(application.id), Some(false));
        clerk.tasks.close();
        clerk.tasks.wait().await;
        assert!(answers.try_recv().is_err(), "one decision, once");
        let other = Application::new(Uuid::new_v4(), &Map::new());
        assert_eq!(clerk.register(other), "TAX-MINISTRY-000002");
    }

    #[tokio::test]
    async fn a_withdrawn_application_or_complaint_is_never_decided() {
        let (clerk, mut answers) = clerk(Duration::from_millis(10));
        let application = Application::new(Uuid::new_v4(), &Map::new());
        clerk.register(application);
        clerk.take_up(application.id, ());
        assert_eq!(clerk.withdraw(application.id), Some(true));
        assert_eq!(clerk.withdraw(application.id), Some(true), "again the same");
        let complaint = Uuid::new_v4();
        clerk.receive_complaint(Complaint::new(complaint, "no", Some("inaction")), ());
        assert_eq!(clerk.withdraw_complaint(complaint), Some(true));
        clerk.tasks.close();
        clerk.tasks.wait().await;
        assert!(answers.try_recv().is_err());
        assert_eq!(
            clerk.application(application.id).map(|c| c.state),
            Some(State::Withdrawn)
        );
        assert_eq!(clerk.withdraw(Uuid::new_v4()), None);
        assert_eq!(clerk.withdraw_complaint(Uuid::new_v4()), None);
    }

    #[test]
    fn a_marker_in_the_text_decides_a_complaint_else_its_kind() {
        use ComplaintVerdict::{Dismissed, Upheld};
        assert_eq!(Complaint::verdict("wrong flat", None), Dismissed);
        assert_eq!(
            Complaint::verdict("wrong flat", Some("decision")),
            Dismissed
        );
        assert_eq!(Complaint::verdict("no decision", Some("inaction")), Upheld);
        let upheld = format!("wrong flat {UPHELD_MARKER}");
        assert_eq!(Complaint::verdict(&upheld, Some("decision")), Upheld);
        let dismissed = format!("no decision {DISMISSED_MARKER}");
        assert_eq!(Complaint::verdict(&dismissed, Some("inaction")), Dismissed);
        let both = format!("{DISMISSED_MARKER} {UPHELD_MARKER}");
        assert_eq!(Complaint::verdict(&both, None), Upheld, "upheld first");
    }

    #[tokio::test]
    async fn complaints_are_decided_by_the_rule_and_say_so() {
        let (clerk, mut answers) = clerk(Duration::from_millis(10));
        let cases = [
            (
                Complaint::new(Uuid::new_v4(), "late", Some("inaction")),
                "upheld",
            ),
            (
                Complaint::new(Uuid::new_v4(), "wrong", Some("decision")),
                "dismissed",
            ),
            (
                Complaint::new(Uuid::new_v4(), UPHELD_MARKER, None),
                "upheld",
            ),
        ];
        for (complaint, _) in cases {
            clerk.receive_complaint(complaint, ());
        }
        for _ in cases {
            let answer = answers.recv().await.expect("a decision");
            assert_eq!(answer.message_type(), "authority.complaint_decided.v1");
            let (complaint, verdict) = cases
                .iter()
                .find(|(c, _)| c.id == answer.about())
                .expect("one of the complaints");
            assert_eq!(answer.to_json()["verdict"], *verdict);
            assert_eq!(
                clerk.complaint(complaint.id).map(ComplaintState::name),
                Some("decided")
            );
            assert_eq!(
                clerk.complaint(complaint.id),
                Some(ComplaintState::Decided(complaint.verdict))
            );
        }
    }

    #[tokio::test]
    async fn an_idle_application_is_decided_only_after_the_persons_answer() {
        let (clerk, mut answers) = clerk(Duration::from_millis(10));
        let application = Application::new(Uuid::new_v4(), &Map::new())
            .marked(&[INFO_REQUEST_ATTACHMENT, IDLE_ATTACHMENT]);
        assert!(application.idle && application.info_request);
        clerk.register(application);
        clerk.take_up(application.id, ());
        let asked = answers.recv().await.expect("the info request");
        assert_eq!(asked.message_type(), "authority.info_requested.v1");
        // Many times its pace: still undecided.
        let quiet = tokio::time::timeout(Duration::from_millis(200), answers.recv()).await;
        assert!(quiet.is_err(), "decided before the answer: {quiet:?}");
        assert_eq!(
            clerk.application(application.id).map(|c| c.state),
            Some(State::Registered)
        );
        assert_eq!(clerk.info_provided(application.id, "2026-12-31"), Some(()));
        let decided = answers.recv().await.expect("the decision");
        assert_eq!(decided.to_json()["verdict"], "granted");
        // Without an information request it is never decided; a withdrawal ends its work.
        let idle = Application::new(Uuid::new_v4(), &Map::new()).marked(&[IDLE_ATTACHMENT]);
        clerk.register(idle);
        clerk.take_up(idle.id, ());
        assert_eq!(clerk.withdraw(idle.id), Some(true));
        clerk.tasks.close();
        clerk.tasks.wait().await;
        assert!(answers.try_recv().is_err(), "nothing for the withdrawn one");
    }

    #[tokio::test]
    async fn past_its_bound_the_oldest_cases_are_unknown_and_their_work_ends() {
        let (clerk, mut answers) = bounded_clerk(Duration::from_millis(10), 2);
        // The oldest waits for the person's answer, which never comes.
        let idle = Application::new(Uuid::new_v4(), &Map::new()).marked(&[IDLE_ATTACHMENT]);
        clerk.register(idle);
        clerk.take_up(idle.id, ());
        let second = Application::new(Uuid::new_v4(), &Map::new());
        let third = Application::new(Uuid::new_v4(), &Map::new());
        clerk.register(second);
        assert_eq!(clerk.register(third), "TAX-MINISTRY-000003");
        // The oldest was dropped: unknown to an inspection, a withdrawal, an answer.
        assert!(clerk.application(idle.id).is_none());
        assert_eq!(clerk.withdraw(idle.id), None);
        assert_eq!(clerk.info_provided(idle.id, "2026-12-31"), None);
        assert!(clerk.application(second.id).is_some());
        assert!(clerk.application(third.id).is_some());
        // Its work ended undecided: the tracker empties with no answer.
        clerk.tasks.close();
        tokio::time::timeout(Duration::from_secs(10), clerk.tasks.wait())
            .await
            .expect("the dropped idle application's work ended");
        assert!(answers.try_recv().is_err(), "no decision on a dropped case");
        // Sent again, it is registered anew.
        assert_eq!(clerk.register(idle), "TAX-MINISTRY-000004");

        let complaints: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for id in &complaints {
            clerk.receive_complaint(Complaint::new(*id, "no", Some("inaction")), ());
        }
        assert_eq!(
            clerk.complaint(complaints[0]),
            None,
            "the oldest complaint dropped"
        );
        assert_eq!(clerk.withdraw_complaint(complaints[0]), None);
        assert_eq!(
            clerk.complaint(complaints[2]),
            Some(ComplaintState::Received)
        );
    }
}
