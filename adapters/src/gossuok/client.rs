//! The HTTP side of GosSUOK: the CAs' CRLs and certificates, and the online status of a
//! certificate. It only fetches: what the bytes are worth is decided by
//! [`super::Crl::parse_verified`] and [`super::Validator`].
//!
//! Failures are classified once ([`crate::failure`]): a busy or unreachable CA is transient
//! (a few quick retries here), an answer outside the published contract permanent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use der::Decode;
use serde::Deserialize;
use url::Url;

use super::revocation::{CaLevel, RevocationReason};
use super::{SYSTEM, normalize_serial};
use crate::api_url;
use crate::client::{ClientError, HttpClient};
use crate::failure::{Failure, QuickRetry, contract_violation, quoted_code, unexpected_json};

/// A client of GosSUOK's publication points and status API.
#[derive(Clone, Debug)]
pub struct GosSuokClient {
    http: HttpClient,
    base: Url,
}

/// What the CA's status API says of a certificate, now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnlineStatus {
    /// Issued and not revoked.
    Good,
    /// Revoked.
    Revoked {
        /// When the CA revoked it.
        revoked_at: DateTime<Utc>,
        /// Why; `Unspecified` when the CA gave no reason or one outside RFC 5280's list.
        reason: RevocationReason,
    },
    /// The CA does not know this serial number.
    Unknown,
}

impl GosSuokClient {
    /// A client of GosSUOK at `base_url` (the CA's publication point, or the simulator). Every
    /// HTTP attempt is bounded by `timeout`; transient failures get [`QuickRetry::default`].
    ///
    /// Errors: the HTTP client cannot be built (a start-up error naming GosSUOK).
    pub fn new(base_url: Url, timeout: Duration) -> Result<Self, ClientError> {
        Ok(GosSuokClient {
            http: HttpClient::new(SYSTEM, timeout)?,
            base: base_url,
        })
    }

    /// The same client with another in-process retry policy.
    pub fn with_retry(mut self, retry: QuickRetry) -> Self {
        self.http = self.http.with_retry(retry);
        self
    }

    /// The same client, its HTTPS verified against `tls`'s CA bundle (instead of the OS roots)
    /// and showing `tls`'s client certificate, if any ([`crate::tls`]).
    ///
    /// Errors: rustls refuses the settings (a start-up error naming GosSUOK).
    pub fn with_tls(mut self, tls: &crate::tls::ClientTls) -> Result<Self, ClientError> {
        self.http = self.http.retls(SYSTEM, tls)?;
        Ok(self)
    }

    /// The current CRL of a CA (`GET crl/root.crl` or `crl/intermediate.crl`), as DER bytes,
    /// not yet verified.
    ///
    /// Errors: an empty body is a contract violation (permanent); other refusals permanent;
    /// timeouts, lost connections, 429 and 5xx transient after the quick retries.
    pub async fn fetch_crl(&self, which: CaLevel) -> Result<Vec<u8>, Failure> {
        let result = self.get_bytes(&format!("crl/{which}.crl")).await;
        log_fetch("CRL fetched", which, &result);
        result
    }

    /// The CA's certificates, root then intermediate (`GET ca/root.der`, `ca/intermediate.der`),
    /// checked to be DER certificates and nothing more. For chain building and for operators
    /// comparing fingerprints: a root is trusted from configuration, never from here.
    ///
    /// Errors: a body that is not a DER certificate is a contract violation (permanent);
    /// otherwise as [`Self::fetch_crl`].
    pub async fn ca_certificates(&self) -> Result<(Vec<u8>, Vec<u8>), Failure> {
        let mut certificates = Vec::with_capacity(2);
        for which in [CaLevel::Root, CaLevel::Intermediate] {
            let result = self.get_bytes(&format!("ca/{which}.der")).await;
            log_fetch("CA certificate fetched", which, &result);
            let der = result?;
            if x509_cert::Certificate::from_der(&der).is_err() {
                return Err(contract_violation(
                    SYSTEM,
                    format!("answered a {which} CA certificate that is not a DER certificate"),
                ));
            }
            certificates.push(der);
        }
        let intermediate = certificates.pop().unwrap_or_default();
        let root = certificates.pop().unwrap_or_default();
        Ok((root, intermediate))
    }

    /// The CA's online answer about the certificate `serial` (hex, any case; leading zeros do
    /// not matter): `GET api/v1/certificates/{serial}/status`.
    ///
    /// Errors: a serial that is not 1 to 42 hex digits is invalid input (nothing is sent); an
    /// answer about another serial, an unknown status or a revocation without its date is a
    /// contract violation (permanent); otherwise as [`Self::fetch_crl`].
    pub async fn status(&self, serial: &str) -> Result<OnlineStatus, Failure> {
        let Some(serial) = normalize_serial(serial) else {
            return Err(Failure::invalid_input(
                "GosSUOK serial number must be 1 to 42 hex digits",
            ));
        };
        let url = api_url(&self.base, &format!("api/v1/certificates/{serial}/status"));
        let result = self
            .http
            .run(SYSTEM, || async {
                let body = self.get(url.clone()).await?;
                parse_status(&serial, &body)
            })
            .await;
        match &result {
            Ok(status) => tracing::info!(
                system = SYSTEM,
                serial = %serial,
                status = ?status,
                "certificate status read"
            ),
            Err(f) => tracing::warn!(
                system = SYSTEM,
                serial = %serial,
                kind = ?f.kind,
                reason = %f.reason,
                "GosSUOK call failed (certificate status)"
            ),
        }
        result
    }

    /// The non-empty body of `GET {base}/{path}`, with the quick retries.
    async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, Failure> {
        let url = api_url(&self.base, path);
        self.http
            .run(SYSTEM, || async {
                let body = self.get(url.clone()).await?;
                if body.is_empty() {
                    return Err(contract_violation(SYSTEM, "answered an empty body"));
                }
                Ok(body)
            })
            .await
    }

    /// One attempt at `GET url`: the body of a success, else the failure.
    async fn get(&self, url: Url) -> Result<Vec<u8>, Failure> {
        let request = self.http.get(url);
        self.http.send(SYSTEM, request).await?.body(SYSTEM)
    }
}

fn log_fetch(what: &str, which: CaLevel, result: &Result<Vec<u8>, Failure>) {
    match result {
        Ok(body) => tracing::info!(system = SYSTEM, ca = %which, bytes = body.len(), "{what}"),
        Err(f) => tracing::warn!(
            system = SYSTEM,
            ca = %which,
            kind = ?f.kind,
            reason = %f.reason,
            "GosSUOK call failed ({what})"
        ),
    }
}

/// The status API's answer as the wire has it.
#[derive(Deserialize)]
struct WireStatus {
    serial: String,
    status: String,
    #[serde(default)]
    revoked_at: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Parses a status answer about `serial`; anything outside the contract is permanent.
fn parse_status(serial: &str, body: &[u8]) -> Result<OnlineStatus, Failure> {
    let wire: WireStatus = serde_json::from_slice(body).map_err(|e| unexpected_json(SYSTEM, &e))?;
    if normalize_serial(&wire.serial).as_deref() != Some(serial) {
        return Err(contract_violation(
            SYSTEM,
            "answered about another certificate than the one asked",
        ));
    }
    match wire.status.as_str() {
        "good" => Ok(OnlineStatus::Good),
        "unknown" => Ok(OnlineStatus::Unknown),
        "revoked" => {
            let revoked_at = wire
                .revoked_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .ok_or_else(|| {
                    contract_violation(
                        SYSTEM,
                        "answered a revocation without an RFC 3339 revoked_at",
                    )
                })?
                .with_timezone(&Utc);
            let reason = wire
                .reason
                .as_deref()
                .and_then(RevocationReason::parse)
                .unwrap_or(RevocationReason::Unspecified);
            Ok(OnlineStatus::Revoked { revoked_at, reason })
        }
        other => Err(contract_violation(
            SYSTEM,
            format!(
                "answered an unknown certificate status {} (expected good, revoked or unknown)",
                quoted_code(other)
            ),
        )),
    }
}
