//! The ERIP worker: creates and cancels invoices for the procedure saga. Invoices are keyed by
//! the saga's order number; the worker keeps ERIP's invoice id beside it so that a cancellation
//! (which ERIP takes by invoice id) can be made from the order number alone.
//!
//! The invoice's `notify_url` is this process's callback, but a command that another process
//! already sent to ERIP goes again with that process's URL ([`first_callback`]): ERIP compares
//! the whole request under its `Idempotency-Key`.

use adapters::Failure;
use adapters::erip::{EripClient, NewInvoice};
use contracts::procedure::{CancelInvoice, CreateInvoice, InvoiceCreated};
use contracts::{Message, decode};
use futures_util::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use url::Url;

use hub_runtime::broker::Incoming;
use hub_runtime::engine::db_failure;
use hub_runtime::engine::{Command, Service};
use hub_runtime::metrics::external_call;

use crate::external::{first_callback, release_callback};

/// The worker's queue (short name).
pub const QUEUE: &str = "adapter.erip";

/// The queue and the commands it takes.
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        QUEUE,
        [
            CreateInvoice::TYPE.to_string(),
            CancelInvoice::TYPE.to_string(),
        ],
    )
}

/// Calls ERIP.
#[derive(Debug, Clone)]
pub struct EripWorker {
    client: EripClient,
    pool: PgPool,
    notify_url: Option<Url>,
}

impl EripWorker {
    /// A worker; ERIP is told to notify `notify_url` (this process's callback), unless the
    /// command first went out from another process, with its own.
    pub fn new(client: EripClient, pool: PgPool, notify_url: Option<Url>) -> Self {
        Self {
            client,
            pool,
            notify_url,
        }
    }
}

/// What the call came to.
#[derive(Debug)]
pub enum EripOutcome {
    /// Created (or found created).
    Created {
        /// Order number.
        order_number: String,
        /// ERIP's id.
        invoice_id: String,
    },
    /// Cancelled, or nothing to cancel.
    Cancelled,
}

impl Service for EripWorker {
    type Prepared = EripOutcome;

    fn name(&self) -> &'static str {
        "adapter.erip"
    }

    fn prepare<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<EripOutcome, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            let client = self
                .client
                .clone()
                .with_traceparent(message.metadata.traceparent.as_deref());
            if CreateInvoice::TYPE.matches(t) {
                let c: CreateInvoice = decode(t, &message.body)?;
                // The notify URL is in the body ERIP compares under the key: the one this
                // command first went out with, whichever process sent it.
                let notify_url = first_callback(
                    &self.pool,
                    message.metadata.message_id,
                    self.notify_url.as_ref(),
                )
                .await?;
                let invoice = NewInvoice {
                    account_number: c.order_number.clone(),
                    amount_kopecks: c.amount_kopecks,
                    description: c.description.clone(),
                    expires_at: c.expires_at,
                    notify_url,
                };
                let created = client.create_invoice(message.metadata.message_id, &invoice);
                let invoice = external_call("erip", "create_invoice", created).await?;
                Ok(EripOutcome::Created {
                    order_number: c.order_number,
                    invoice_id: invoice.invoice_id,
                })
            } else if CancelInvoice::TYPE.matches(t) {
                let c: CancelInvoice = decode(t, &message.body)?;
                let invoice_id: Option<String> = sqlx::query_scalar(
                    "SELECT invoice_id FROM erip_invoices WHERE order_number = $1",
                )
                .bind(&c.order_number)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| db_failure(&e))?;
                let Some(invoice_id) = invoice_id else {
                    // The invoice is not created yet: cancelling must wait for it.
                    return Err(Failure::transient("invoice not created yet; cancel later"));
                };
                let cancelled = client.cancel(message.metadata.message_id, &invoice_id);
                match external_call("erip", "cancel_invoice", cancelled).await {
                    Ok(_) => Ok(EripOutcome::Cancelled),
                    // Paid or expired meanwhile: the saga learns it from ERIP's notification;
                    // nothing is left to cancel here. A payment that reached an application
                    // which ended is recorded by the saga as due back (its ledger and the view
                    // `payments_due_back`); ERIP's refund of it, when it comes, settles that.
                    Err(f)
                        if f.reason.contains(adapters::erip::ALREADY_PAID)
                            || f.reason.contains(adapters::erip::INVOICE_EXPIRED) =>
                    {
                        Ok(EripOutcome::Cancelled)
                    }
                    Err(f) => Err(f),
                }
            } else {
                Err(Failure::invalid_input(format!(
                    "the ERIP worker does not take {t}"
                )))
            }
        })
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        message: &'a Incoming,
        outcome: EripOutcome,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move {
            match outcome {
                EripOutcome::Created {
                    order_number,
                    invoice_id,
                } => {
                    sqlx::query(
                        "INSERT INTO erip_invoices (order_number, invoice_id, correlation_id)
                         VALUES ($1, $2, $3) ON CONFLICT (order_number) DO NOTHING",
                    )
                    .bind(&order_number)
                    .bind(&invoice_id)
                    .bind(message.metadata.correlation_id.as_deref())
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| db_failure(&e))?;
                    release_callback(conn, message.metadata.message_id).await?;
                    Ok(vec![Command::new(&InvoiceCreated { invoice_id })?])
                }
                EripOutcome::Cancelled => Ok(vec![]),
            }
        })
    }
}
