//! The MVD worker: `mvd.reconcile.v1` -> the population registry -> `mvd.reconciled.v1`.

use adapters::Failure;
use adapters::mvd::{self, MvdClient, ReconcileOutcome, ReconcileRequest};
use contracts::issuance::DocumentKind;
use contracts::mvd::{Reconcile, ReconcileResult, Reconciled};
use contracts::{Message, decode};
use futures_util::future::BoxFuture;
use sqlx::PgConnection;

use hub_runtime::broker::Incoming;
use hub_runtime::engine::{Command, Service};
use hub_runtime::metrics::external_call;

/// The worker's queue (short name).
pub const QUEUE: &str = "adapter.mvd";

/// The queue and the command it takes.
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(QUEUE, [Reconcile::TYPE.to_string()])
}

/// Calls the MVD registry.
#[derive(Debug, Clone)]
pub struct MvdWorker {
    client: MvdClient,
}

impl MvdWorker {
    /// A worker using `client`.
    pub fn new(client: MvdClient) -> Self {
        Self { client }
    }
}

impl Service for MvdWorker {
    type Prepared = Reconciled;

    fn name(&self) -> &'static str {
        "adapter.mvd"
    }

    fn prepare<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Reconciled, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            let cmd: Reconcile = decode(t, &message.body)?;
            let request = ReconcileRequest {
                identification_number: cmd.person.identification_number.clone(),
                surname: cmd.person.surname.clone(),
                given_name: cmd.person.given_name.clone(),
                patronymic: cmd.person.patronymic.clone(),
                birth_date: cmd.person.birth_date,
                document: mvd::DocumentRef {
                    kind: match cmd.document.kind {
                        DocumentKind::Passport => mvd::DocumentKind::Passport,
                        DocumentKind::IdCard => mvd::DocumentKind::IdCard,
                        DocumentKind::ResidencePermit => mvd::DocumentKind::ResidencePermit,
                    },
                    number: cmd.document.number.clone(),
                    issued_on: cmd.document.issued_on,
                    expires_on: cmd.document.expires_on,
                },
            };
            let client = self
                .client
                .clone()
                .with_traceparent(message.metadata.traceparent.as_deref());
            let r = external_call(
                "mvd",
                "reconcile",
                client.reconcile(message.metadata.message_id, &request),
            )
            .await?;
            Ok(Reconciled {
                reconciliation_id: r.reconciliation_id,
                result: match r.outcome {
                    ReconcileOutcome::Match => ReconcileResult::Match,
                    ReconcileOutcome::Mismatch { fields } => ReconcileResult::Mismatch { fields },
                    ReconcileOutcome::DocumentInvalid { status } => {
                        ReconcileResult::DocumentInvalid {
                            status: status.as_str().to_owned(),
                        }
                    }
                    ReconcileOutcome::PersonUnknown => ReconcileResult::PersonUnknown,
                },
                checked_on: chrono::Utc::now().date_naive(),
            })
        })
    }

    fn apply<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _message: &'a Incoming,
        answer: Reconciled,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move { Ok(vec![Command::new(&answer)?]) })
    }
}
