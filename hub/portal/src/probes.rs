//! Where the operators' console probes each external HTTP system: a cheap `GET` of its API,
//! at its probe path, resolved against the system's base URL as a link is (`healthz` under
//! the base URL's path, `/healthz` at the host's root).
//!
//! Each system's path is `<PREFIX>_PROBE_PATH` (`HUB_MVD_PROBE_PATH`, `HUB_ERIP_PROBE_PATH`,
//! `HUB_AUTHORITY_TAX_MINISTRY_PROBE_PATH`, …, the prefix of its TLS settings), else its
//! default:
//!
//! - MVD, the SMS gateways and ERIP: [`SIMULATOR_PROBE`], the simulators' health endpoint, which
//!   answers as their API does (under its injected latency and faults). A real system has its
//!   own: set the variable to a cheap `GET` of its API that needs no personal data.
//! - GosSUOK: [`GOSSUOK_PROBE`], its root CA certificate, which a PKI publishes anyway.
//! - The back-offices: [`BACKOFFICE_PROBE`], from the host's root (the simulator serves every
//!   back-office on one port, each under its own path).
//!
//! The system is "up" only when the probe answers `2xx`.

use crate::config::IntegrationConfig;

/// The default probe of MVD, the SMS gateways and ERIP.
pub const SIMULATOR_PROBE: &str = "healthz";
/// The default probe of GosSUOK: its root certificate.
pub const GOSSUOK_PROBE: &str = "ca/root.der";
/// The default probe of the HTTP back-offices.
pub const BACKOFFICE_PROBE: &str = "/healthz";

/// The URL the console probes for the system at `base` whose settings start with `prefix`:
/// `<prefix>_PROBE_PATH` (from the catalogue's settings, else the environment), or `default`,
/// resolved against `base`.
///
/// Errors: a probe path that makes no URL, or one that leaves the system's host (a full URL
/// or `//host`): the probe must ask the system, nobody else.
pub fn probe_url(
    config: &IntegrationConfig,
    prefix: &str,
    base: &url::Url,
    default: &str,
) -> anyhow::Result<url::Url> {
    let variable = format!("{prefix}_PROBE_PATH");
    let path = config
        .authority_setting(&variable)
        .unwrap_or_else(|| default.to_owned());
    resolve(base, path.trim()).map_err(|e| anyhow::anyhow!("{variable}={path:?}: {e}"))
}

fn resolve(base: &url::Url, path: &str) -> Result<url::Url, String> {
    let url = base
        .join(path)
        .map_err(|e| format!("not a path ({e}); write e.g. healthz or /api/v1/status"))?;
    if url.origin() != base.origin() {
        return Err(
            "a path of the system's own host, not another address; write e.g. healthz".into(),
        );
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IntegrationConfig {
        crate::config::parsed_for_tests(&[])
    }

    #[test]
    fn a_probe_path_is_resolved_against_the_base_url() {
        let base: url::Url = "https://mvd.example.by/registry/".parse().expect("URL");
        let c = config();
        let url = probe_url(&c, "HUB_TEST_MVD", &base, SIMULATOR_PROBE).expect("default");
        assert_eq!(url.as_str(), "https://mvd.example.by/registry/healthz");
        let backoffice: url::Url = "http://127.0.0.1:8131/tax_ministry/".parse().expect("URL");
        let url = probe_url(&c, "HUB_TEST_TAX", &backoffice, BACKOFFICE_PROBE).expect("root");
        assert_eq!(url.as_str(), "http://127.0.0.1:8131/healthz");

        let mut set = c.clone();
        set.authority_settings.insert(
            "HUB_TEST_MVD_PROBE_PATH".into(),
            "api/v1/status?cheap=1".into(),
        );
        let url = probe_url(&set, "HUB_TEST_MVD", &base, SIMULATOR_PROBE).expect("set");
        assert_eq!(
            url.as_str(),
            "https://mvd.example.by/registry/api/v1/status?cheap=1"
        );
    }

    #[test]
    fn a_probe_path_may_not_leave_the_systems_host() {
        let base: url::Url = "https://erip.example.by/api/".parse().expect("URL");
        for elsewhere in ["https://other.example/healthz", "//other.example/healthz"] {
            let mut c = config();
            c.authority_settings
                .insert("HUB_TEST_ERIP_PROBE_PATH".into(), elsewhere.into());
            let e =
                probe_url(&c, "HUB_TEST_ERIP", &base, SIMULATOR_PROBE).expect_err("another host");
            assert!(
                e.to_string().starts_with("HUB_TEST_ERIP_PROBE_PATH="),
                "{e}"
            );
        }
    }
}
