//! The portal's own metrics, registered beside the runtime's ([`Metrics::register`]) so that
//! `GET /metrics` shows them: what the per-phone limits held back. Like the runtime's, each is
//! recorded through a method named for what happened, and its labels are names the portal
//! chose, never a phone number.

use std::sync::OnceLock;

use hub_runtime::metrics::{Metrics, metrics};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

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

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

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
}
