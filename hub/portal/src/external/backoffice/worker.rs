//! The bridge to an authority whose back-office is an HTTP system (`channel = "http"` in the
//! catalogue). One worker per such authority consumes the authority's queue — the same queue a
//! queue-contract authority would consume itself — calls the back-office
//! ([`adapters::backoffice`] has the contract), and puts the synchronous answers on the bus as
//! the authority's messages (`authority.registered.v1`, the withdrawal answers, the answer on a
//! receipt of a payment outside ERIP); a refusal of its decision (`authority.decision_refused.v1`,
//! `authority.complaint_decision_refused.v1`) is handed to the back-office. The later
//! answers (information requested, decisions) come back to the hub's HTTP callback
//! ([`super::callback`]), which puts them on the bus the same way.
//!
//! Everything the bridge publishes carries the hub's own broker user as `user_id`: the
//! procedure and complaint sagas accept an HTTP authority's answers only from it, and the
//! bridge speaks for an authority only after the authority proved who it is (its signature)
//! and, for callbacks, that the application is its own.

use adapters::Failure;
use adapters::backoffice::BackOfficeClient;
use contracts::procedure::{
    AuthorityApplication, AuthorityComplaint, AuthorityComplaintDecisionRefused,
    AuthorityComplaintWithdrawal, AuthorityComplaintWithdrawalAnswered, AuthorityDecisionRefused,
    AuthorityInfoProvided, AuthorityPaymentReceipt, AuthorityReceiptAnswered, AuthorityRegistered,
    AuthorityWithdrawal, AuthorityWithdrawalAnswered,
};
use contracts::{Message, decode};
use futures_util::future::BoxFuture;
use sqlx::PgConnection;
use url::Url;

use crate::procedures::saga::authority_queue;
use hub_runtime::broker::Incoming;
use hub_runtime::engine::{Command, Service};
use hub_runtime::metrics::external_call;

/// The system label of the back-offices' calls in the metrics (one for every HTTP authority, so
/// the label space stays small).
const SYSTEM: &str = "backoffice";

/// The queue of `authority` and the messages the hub sends there.
pub fn queue_spec(authority: &str) -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        authority_queue(authority),
        [
            AuthorityApplication::TYPE.to_string(),
            AuthorityWithdrawal::TYPE.to_string(),
            AuthorityPaymentReceipt::TYPE.to_string(),
            AuthorityInfoProvided::TYPE.to_string(),
            AuthorityComplaint::TYPE.to_string(),
            AuthorityComplaintWithdrawal::TYPE.to_string(),
        ],
    )
}

/// The callback path under the hub's callback URL where `authority`'s back-office answers.
pub fn callback_path(authority: &str) -> String {
    format!("callbacks/authority/{authority}")
}

/// Speaks for one HTTP authority.
#[derive(Debug, Clone)]
pub struct BackOfficeWorker {
    client: BackOfficeClient,
    callback: Url,
    bridge_user: String,
}

impl BackOfficeWorker {
    /// A worker calling `client`; the back-office is told to answer at `callback` (the hub's
    /// callback for this authority); what it publishes goes as `bridge_user`.
    pub fn new(client: BackOfficeClient, callback: Url, bridge_user: &str) -> Self {
        Self {
            client,
            callback,
            bridge_user: bridge_user.to_owned(),
        }
    }
}

impl Service for BackOfficeWorker {
    type Prepared = Option<Command>;

    fn name(&self) -> &'static str {
        "adapter.backoffice"
    }

    fn prepare<'a>(
        &'a self,
        message: &'a Incoming,
    ) -> BoxFuture<'a, Result<Option<Command>, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            let b = &message.body;
            let client = self
                .client
                .clone()
                .with_traceparent(message.metadata.traceparent.as_deref());
            let answer = if AuthorityApplication::TYPE.matches(t) {
                let a: AuthorityApplication = decode(t, b)?;
                let submitted = client.submit_application(&a, &self.callback);
                let registration_number =
                    external_call(SYSTEM, "submit_application", submitted).await?;
                Some(Command::new(&AuthorityRegistered {
                    application_id: a.application_id,
                    registration_number,
                })?)
            } else if AuthorityWithdrawal::TYPE.matches(t) {
                let w: AuthorityWithdrawal = decode(t, b)?;
                let withdrawn = client.withdraw_application(w.application_id);
                let accepted = external_call(SYSTEM, "withdraw_application", withdrawn).await?;
                Some(Command::new(&AuthorityWithdrawalAnswered {
                    application_id: w.application_id,
                    accepted,
                })?)
            } else if AuthorityPaymentReceipt::TYPE.matches(t) {
                let r: AuthorityPaymentReceipt = decode(t, b)?;
                let checked = client.check_receipt(&r);
                let (confirmed, reason) = external_call(SYSTEM, "check_receipt", checked).await?;
                Some(Command::new(&AuthorityReceiptAnswered {
                    application_id: r.application_id,
                    document_number: r.payment.document_number,
                    confirmed,
                    reason,
                })?)
            } else if AuthorityInfoProvided::TYPE.matches(t) {
                let i: AuthorityInfoProvided = decode(t, b)?;
                let provided = client.provide_info(&i);
                external_call(SYSTEM, "provide_info", provided).await?;
                None
            } else if AuthorityComplaint::TYPE.matches(t) {
                let c: AuthorityComplaint = decode(t, b)?;
                let submitted = client.submit_complaint(&c, &self.callback);
                external_call(SYSTEM, "submit_complaint", submitted).await?;
                None
            } else if AuthorityComplaintWithdrawal::TYPE.matches(t) {
                let w: AuthorityComplaintWithdrawal = decode(t, b)?;
                let withdrawn = client.withdraw_complaint(w.complaint_id);
                let accepted = external_call(SYSTEM, "withdraw_complaint", withdrawn).await?;
                Some(Command::new(&AuthorityComplaintWithdrawalAnswered {
                    complaint_id: w.complaint_id,
                    accepted,
                })?)
            } else if AuthorityDecisionRefused::TYPE.matches(t) {
                // The hub refused the back-office's decision: it is told, nothing goes back.
                let r: AuthorityDecisionRefused = decode(t, b)?;
                let told = client.decision_refused(&r);
                external_call(SYSTEM, "decision_refused", told).await?;
                None
            } else if AuthorityComplaintDecisionRefused::TYPE.matches(t) {
                // The same for a decision on a complaint.
                let r: AuthorityComplaintDecisionRefused = decode(t, b)?;
                let told = client.complaint_decision_refused(&r);
                external_call(SYSTEM, "complaint_decision_refused", told).await?;
                None
            } else {
                return Err(Failure::invalid_input(format!(
                    "the back-office bridge does not take {t}"
                )));
            };
            Ok(answer.map(|c| c.as_user(&self.bridge_user)))
        })
    }

    fn apply<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _message: &'a Incoming,
        answer: Option<Command>,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move { Ok(answer.into_iter().collect()) })
    }
}
