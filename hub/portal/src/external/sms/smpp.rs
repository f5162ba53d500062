//! The operators the hub reaches over SMPP: one [`SmppClient`] per operator per hub process,
//! started with the SMS worker, drained when the hub stops, its delivery receipts fed to the
//! saga through the same [`record`](super::callback::record) the HTTP delivery reports take.
//!
//! SMPP has no idempotency key: the worker keeps its own, in `smpp_sends`
//! ([`SmsWorker::send_smpp`](super::worker::SmsWorker)).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use adapters::smpp::{SmppClient, SmppConfig};
use adapters::sms::DeliveryReport;
use contracts::person::Operator;
use sqlx::PgPool;
use tokio::sync::mpsc::UnboundedReceiver;

use super::callback::{Noted, record};
use super::worker::PhoneLimits;
use crate::config::IntegrationConfig;

/// How many times a receipt is tried into the database before it is given up (logged).
const RECORD_ATTEMPTS: u32 = 8;

/// The SMS centres of the operators on SMPP, started once per process.
#[derive(Debug, Default)]
pub struct SmppOperators {
    configs: Vec<SmppConfig>,
    started: OnceLock<HashMap<Operator, Arc<SmppClient>>>,
}

/// Where the receipts go: the database the saga's message is written to (through the outbox),
/// the app id on that message, and the key the recipient is compared under.
#[derive(Debug, Clone)]
pub struct Receipts {
    /// The hub's database.
    pub pool: PgPool,
    /// The app id of the hub's messages.
    pub app_id: String,
    /// The per-phone limits, for their key of the recipient.
    pub limits: PhoneLimits,
}

impl SmppOperators {
    /// The SMS centres of `configs`, one per operator, not started.
    pub fn new(configs: Vec<SmppConfig>) -> Self {
        Self {
            configs,
            started: OnceLock::new(),
        }
    }

    /// The operators `config` puts on SMPP (none: every operator on HTTP).
    ///
    /// Errors: an SMS setting that is not valid, or a TLS file that cannot be read.
    pub fn from_config(config: &IntegrationConfig) -> anyhow::Result<Self> {
        let mut configs = Vec::new();
        for operator in Operator::ALL {
            if let Some(c) = config.smpp_config(operator)? {
                configs.push(c);
            }
        }
        Ok(Self::new(configs))
    }

    /// Whether no operator is on SMPP.
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// Whether `operator` is on SMPP.
    pub fn uses(&self, operator: Operator) -> bool {
        self.configs.iter().any(|c| c.operator == operator)
    }

    /// Starts every client and the task that records its receipts, once per process (later
    /// calls do nothing). Must run inside the tokio runtime (the clients spawn on it).
    pub fn start(&self, receipts: &Receipts) {
        self.started.get_or_init(|| {
            self.configs
                .iter()
                .map(|config| {
                    let (client, reports) = SmppClient::start(config.clone());
                    tokio::spawn(record_receipts(config.operator, reports, receipts.clone()));
                    (config.operator, Arc::new(client))
                })
                .collect()
        });
    }

    /// The started client of `operator`; `None` when the operator is on HTTP or nothing has
    /// been started.
    pub fn client(&self, operator: Operator) -> Option<Arc<SmppClient>> {
        self.started.get()?.get(&operator).cloned()
    }

    /// Drains every started client, at once: stops taking sends, waits up to `wait` for the
    /// ones under way, unbinds.
    pub async fn drain(&self, wait: Duration) {
        let Some(started) = self.started.get() else {
            return;
        };
        let drains = started.values().map(|client| client.drain(wait));
        futures_util::future::join_all(drains).await;
        tracing::info!(operators = started.len(), "SMPP clients drained");
    }
}

/// Records every receipt `operator`'s SMS centre sends, until the client is gone. A receipt
/// the database does not take is tried again with a doubling wait, then given up (logged): the
/// SMS centre does not resend a receipt the client acknowledged, so the saga then hears nothing
/// of that SMS's fate, as when no report comes at all.
async fn record_receipts(
    operator: Operator,
    mut reports: UnboundedReceiver<DeliveryReport>,
    receipts: Receipts,
) {
    while let Some(report) = reports.recv().await {
        let mut wait = Duration::from_millis(200);
        for attempt in 1..=RECORD_ATTEMPTS {
            let noted = record(
                &receipts.pool,
                &receipts.app_id,
                &receipts.limits,
                operator,
                &report,
                None,
            );
            match noted.await {
                Ok(Noted::Recorded) => break,
                Ok(Noted::OtherRecipient) => {
                    tracing::warn!(%operator, "SMPP receipt about another number than the message's; dropped");
                    break;
                }
                Err(e) if attempt < RECORD_ATTEMPTS => {
                    tracing::warn!(%operator, attempt, error = %e, "SMPP receipt not recorded yet; trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::error!(
                        %operator,
                        provider_message_id = %report.provider_message_id,
                        error = %e,
                        "SMPP receipt given up: the saga hears nothing of this SMS's fate"
                    );
                }
            }
        }
    }
}
