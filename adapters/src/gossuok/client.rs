//! The HTTP side of GosSUOK: the CRLs at the distribution points a certificate names, its OCSP
//! responder, and the CA certificates. It only fetches: what the bytes are worth is decided by
//! [`super::Crl::parse_verified`], the OCSP checks and [`super::Validator`].
//!
//! Failures are classified once ([`crate::failure`]): a busy or unreachable CA is transient
//! (a few quick retries here), an answer outside the published contract permanent.

use std::time::Duration;

use der::Decode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use url::Url;

use super::SYSTEM;
use super::revocation::CaLevel;
use crate::api_url;
use crate::client::{ClientError, HttpClient};
use crate::failure::{Failure, QuickRetry, contract_violation};

/// The media type of an OCSP request (RFC 6960 appendix C.1).
const OCSP_REQUEST: &str = "application/ocsp-request";
/// The media type of an OCSP response (RFC 6960 appendix C.2).
const OCSP_RESPONSE: &str = "application/ocsp-response";

/// A client of GosSUOK's publication points: its CA certificates under the configured base
/// URL, and the CRLs and OCSP responders at the URLs the certificates name (fetched with the
/// same timeouts, retries and TLS settings).
#[derive(Clone, Debug)]
pub struct GosSuokClient {
    http: HttpClient,
    base: Url,
}

impl GosSuokClient {
    /// A client of GosSUOK at `base_url` (the CA's publication point for its certificates, or
    /// the simulator). Every HTTP attempt is bounded by `timeout`; transient failures get
    /// [`QuickRetry::default`].
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
    /// and showing `tls`'s client certificate, if any ([`crate::tls`]). It applies to every URL
    /// the client fetches, the ones certificates name included.
    ///
    /// Errors: rustls refuses the settings (a start-up error naming GosSUOK).
    pub fn with_tls(mut self, tls: &crate::tls::ClientTls) -> Result<Self, ClientError> {
        self.http = self.http.retls(SYSTEM, tls)?;
        Ok(self)
    }

    /// A CRL from a distribution point a certificate names (`GET url`), as DER bytes, not yet
    /// verified.
    ///
    /// Errors: an empty body is a contract violation (permanent); other refusals permanent;
    /// timeouts, lost connections, 429 and 5xx transient after the quick retries.
    pub async fn fetch_crl(&self, url: &Url) -> Result<Vec<u8>, Failure> {
        let result = self.get_bytes(url.clone()).await;
        log_fetch("CRL fetched", url.as_str(), &result);
        result
    }

    /// An OCSP responder's answer to `request_der` (`POST url`, `application/ocsp-request`),
    /// as DER bytes, not yet verified.
    ///
    /// Errors: as [`Self::fetch_crl`].
    pub async fn ocsp(&self, url: &Url, request_der: &[u8]) -> Result<Vec<u8>, Failure> {
        let result = self
            .http
            .run(SYSTEM, || async {
                let request = self
                    .http
                    .post(url.clone())
                    .header(CONTENT_TYPE, OCSP_REQUEST)
                    .header(ACCEPT, OCSP_RESPONSE)
                    .body(request_der.to_vec());
                let body = self.http.send(SYSTEM, request).await?.body(SYSTEM)?;
                if body.is_empty() {
                    return Err(contract_violation(SYSTEM, "answered an empty body"));
                }
                Ok(body)
            })
            .await;
        log_fetch("OCSP answer received", url.as_str(), &result);
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
            let url = api_url(&self.base, &format!("ca/{which}.der"));
            let result = self.get_bytes(url.clone()).await;
            log_fetch("CA certificate fetched", url.as_str(), &result);
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

    /// The non-empty body of `GET url`, with the quick retries.
    async fn get_bytes(&self, url: Url) -> Result<Vec<u8>, Failure> {
        self.http
            .run(SYSTEM, || async {
                let request = self.http.get(url.clone());
                let body = self.http.send(SYSTEM, request).await?.body(SYSTEM)?;
                if body.is_empty() {
                    return Err(contract_violation(SYSTEM, "answered an empty body"));
                }
                Ok(body)
            })
            .await
    }
}

fn log_fetch(what: &str, url: &str, result: &Result<Vec<u8>, Failure>) {
    match result {
        Ok(body) => tracing::info!(system = SYSTEM, %url, bytes = body.len(), "{what}"),
        Err(f) => tracing::warn!(
            system = SYSTEM,
            %url,
            kind = ?f.kind,
            reason = %f.reason,
            "GosSUOK call failed ({what})"
        ),
    }
}
