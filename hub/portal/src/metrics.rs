//! The portal's own metrics, registered beside the runtime's ([`Metrics::register`]) so that
//! `GET /metrics` shows them: what the per-phone limits held back. Like the runtime's, each is
//! recorded through a method named for what happened, and its labels are names the portal
//! chose, never a phone number.
//!
//! One is read at scrape time from the serving hub's database, as the runtime's saga and outbox
//! gauges are: the open applications whose statutory term ends soon or has passed
//! ([`procedure_terms`]), by procedure code, never by application.

use std::sync::OnceLock;
use std::time::Duration;

use hub_runtime::metrics::{Metrics, metrics};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sqlx::PgPool;

use crate::procedures::saga::SAGA_TYPE as PROCEDURE_SAGA;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CappedLabels {
    purpose: &'static str,
    limit: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LimitedLabels {
    request: &'static str,
    limit: &'static str,
}

/// The portal's counters.
#[derive(Debug)]
pub struct PortalMetrics {
    sms_capped: Family<CappedLabels, Counter>,
    cabinet_limited: Family<LimitedLabels, Counter>,
}

/// The portal's metrics, registered with the runtime's at first use (the portal's plan uses
/// them once, so they show from the start).
pub fn portal_metrics() -> &'static PortalMetrics {
    static PORTAL: OnceLock<PortalMetrics> = OnceLock::new();
    PORTAL.get_or_init(|| PortalMetrics::registered_with(metrics()))
}

impl PortalMetrics {
    fn registered_with(runtime: &Metrics) -> Self {
        let sms_capped = Family::default();
        runtime.register(
            "hub_sms_capped",
            "SMS the SMS worker did not send because a per-phone limit was reached, by purpose and limit",
            sms_capped.clone(),
        );
        let cabinet_limited = Family::default();
        runtime.register(
            "hub_cabinet_phone_limited",
            "Cabinet requests held back by a per-phone limit (no code sent, or none checked), by request and limit",
            cabinet_limited.clone(),
        );
        Self {
            sms_capped,
            cabinet_limited,
        }
    }

    /// The SMS worker did not send an SMS for `purpose` (`phone_code`, `notice`, ...) because
    /// the per-phone `limit` (`sms_per_phone`, `wrong_codes_per_phone`) was reached.
    pub fn sms_capped(&self, purpose: &'static str, limit: &'static str) {
        self.sms_capped
            .get_or_create(&CappedLabels { purpose, limit })
            .inc();
    }

    /// The cabinet held back `request` (`recover_password`, `complete_recovery`) because the
    /// per-phone `limit` was reached.
    pub fn cabinet_limited(&self, request: &'static str, limit: &'static str) {
        self.cabinet_limited
            .get_or_create(&LimitedLabels { request, limit })
            .inc();
    }
}

/// An open application counts as `due_soon` when its term's last day (Minsk) is at most this
/// many calendar days away.
pub const TERM_DUE_SOON_DAYS: i32 = 3;

/// How long a scrape waits for the database.
const SCRAPE_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Open applications by procedure code and term state: `(procedure, state, count)`, `state`
/// being `due_soon` or `overdue`.
pub type ProcedureTerms = Vec<(String, String, i64)>;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TermLabels {
    procedure: String,
    state: String,
}

/// The open applications (not decided, withdrawn, rejected or cancelled) whose statutory term
/// has passed (`overdue`: the saga raised `procedure.overdue.v1`, or the last day is over in
/// Minsk) or ends within [`TERM_DUE_SOON_DAYS`] (`due_soon`), by procedure code. An application
/// waiting for the person's answer to an information request has its term suspended: it counts
/// only once the saga found it overdue. `None` when the database did not answer in time.
pub async fn procedure_terms(pool: &PgPool) -> Option<ProcedureTerms> {
    // Minsk is UTC+3 all year, as the saga counts it.
    let query = sqlx::query_as(
        "WITH open AS (
             SELECT state->>'procedure_code' AS procedure,
                    coalesce((state->>'overdue')::boolean, false) AS flagged,
                    state_name = 'awaiting_info' AS suspended,
                    (state->>'decision_due')::date AS due,
                    ((now() AT TIME ZONE 'UTC') + interval '3 hours')::date AS today
             FROM sagas
             WHERE saga_type = $1 AND NOT terminal AND state->>'decision_due' IS NOT NULL
         )
         SELECT procedure,
                CASE WHEN flagged OR due < today THEN 'overdue' ELSE 'due_soon' END AS term,
                count(*)
         FROM open
         WHERE flagged OR (NOT suspended AND due <= today + $2)
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(PROCEDURE_SAGA)
    .bind(TERM_DUE_SOON_DAYS)
    .fetch_all(pool);
    match tokio::time::timeout(SCRAPE_QUERY_TIMEOUT, query).await {
        Ok(Ok(rows)) => Some(rows),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "the procedure terms query failed");
            None
        }
        Err(_) => {
            tracing::debug!("the procedure terms query did not answer in time");
            None
        }
    }
}

/// Adds `hub_procedures_term` with `terms` to the gauges read at scrape (`scraped`). With no
/// application near its term there is no series (and, as for any empty family, no `# TYPE`).
pub fn register_procedure_terms(scraped: &mut Registry, terms: &ProcedureTerms) {
    let family = Family::<TermLabels, Gauge>::default();
    for (procedure, state, count) in terms {
        family
            .get_or_create(&TermLabels {
                procedure: procedure.clone(),
                state: state.clone(),
            })
            .set(*count);
    }
    scraped.register(
        "hub_procedures_term",
        "Open applications whose statutory term ends soon (due_soon) or has passed (overdue), by procedure code",
        family,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_counters_show_beside_the_runtimes_metrics() {
        let m = portal_metrics();
        m.sms_capped("t-portal-purpose", "sms_per_phone");
        m.cabinet_limited("t-portal-request", "wrong_codes_per_phone");
        let text = metrics().encode(&Registry::default());
        for line in [
            r#"hub_sms_capped_total{purpose="t-portal-purpose",limit="sms_per_phone"} 1"#,
            r#"hub_cabinet_phone_limited_total{request="t-portal-request",limit="wrong_codes_per_phone"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn the_procedure_terms_show_by_procedure_and_state() {
        let mut scraped = Registry::default();
        register_procedure_terms(
            &mut scraped,
            &vec![
                ("1.1.5".into(), "overdue".into(), 2),
                ("1.1.5".into(), "due_soon".into(), 1),
            ],
        );
        let text = metrics().encode(&scraped);
        for line in [
            r#"hub_procedures_term{procedure="1.1.5",state="overdue"} 2"#,
            r#"hub_procedures_term{procedure="1.1.5",state="due_soon"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
