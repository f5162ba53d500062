//! The one place that brings the network and the validator together: gather what the
//! validator needs to know about revocation, then ask it.
//!
//! For each certificate whose status matters (the intermediate, then the leaf) the sources are
//! tried in this order, and the first that answers with its CA's signature decides:
//! 1. a fresh CRL of the issuer in the cache (no call at all);
//! 2. a fresh verified OCSP answer about the certificate kept from an earlier check (no call
//!    either; kept at most the configured maximum age, see [`super::ocsp_cache`] for what that
//!    trades);
//! 3. the OCSP responders the certificate names (authorityInfoAccess, id-ad-ocsp), in order:
//!    an answer is taken only once [`super::ocsp`] checked it (signed by the issuer or its
//!    delegated responder, about this certificate, echoing this request's nonce, fresh). A
//!    taken `revoked` refuses, `good` vouches, `unknown` leaves the status unknown (the CA said
//!    it does not know the certificate, so no CRL is asked to overrule it);
//! 4. the issuer's CRL fetched from the distribution points the certificate names, in order,
//!    kept once it verifies with the issuer's key.
//!
//! OCSP comes before the CRL download because it tells the status now, and costs one small
//! answer instead of a list; a fresh cached CRL comes first because it costs nothing. Anything
//! refused on the way (an HTTP failure, an unsigned or forged answer, a stale one, one about
//! another certificate) is logged with its reason and tells nothing. When no signed source
//! answers, the check fails with [`Invalid::StatusUnknown`], transient (`try_later`): an
//! unreachable, blocked or lying CA never lets a certificate through.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::RwLock;
use x509_cert::Certificate;

use super::SYSTEM;
use super::client::GosSuokClient;
use super::locations;
use super::ocsp::{OcspQuery, TakenAnswer};
use super::ocsp_cache::OcspCache;
use super::revocation::{Crl, CrlCache, RevocationSource, RevocationStatus};
use super::validate::{Invalid, StatusQuery, ValidCertificate, Validator};

/// Checks certificates with a [`Validator`], asking the CAs' OCSP responders and keeping their
/// CRLs fresh through a [`GosSuokClient`].
#[derive(Debug)]
pub struct Checker {
    validator: Validator,
    client: GosSuokClient,
    cache: RwLock<CrlCache>,
    ocsp: OcspCache,
}

impl Checker {
    /// A checker with empty caches, reusing a verified OCSP answer for at most
    /// `ocsp_cache_max_age` (also never past the answer's `nextUpdate`; zero asks the
    /// responder at every check). [`super::DEFAULT_OCSP_CACHE`] is the hub's default.
    ///
    /// The trade-off: a certificate revoked while a `good` answer about it is kept is refused
    /// at the latest once that answer ages out, not at once (see [`super::ocsp_cache`]).
    pub fn new(validator: Validator, client: GosSuokClient, ocsp_cache_max_age: Duration) -> Self {
        Checker {
            validator,
            client,
            cache: RwLock::new(CrlCache::new()),
            ocsp: OcspCache::new(ocsp_cache_max_age),
        }
    }

    /// Validates `leaf_der` (with the intermediates `chain_der`, in any order) at `at`: for each
    /// certificate of the path whose issuer has no fresh CRL in the cache and that has no fresh
    /// OCSP answer kept, asks its OCSP responders, then fetches the CRL from its distribution
    /// points (see the module).
    ///
    /// A certificate that fails before revocation (a bad signature, an untrusted chain, expiry)
    /// costs no call to the CA. Errors: see [`Invalid`]; [`Invalid::StatusUnknown`] (transient)
    /// when no signed source tells a certificate's status.
    pub async fn check(
        &self,
        leaf_der: &[u8],
        chain_der: &[Vec<u8>],
        at: DateTime<Utc>,
    ) -> Result<ValidCertificate, Invalid> {
        let path = self.validator.path(leaf_der, chain_der, at)?;
        let mut gathered = HashMap::new();
        for query in path.status_queries() {
            if self.cache.read().await.is_fresh(query.issuer, at) {
                continue;
            }
            if let Some(status) = self.ocsp.status(query.issuer, query.serial, at) {
                tracing::debug!(
                    system = SYSTEM,
                    ca = %query.issuer_level,
                    serial = query.serial,
                    status = ?status,
                    "OCSP answer reused"
                );
                gathered.insert(query.serial.to_owned(), Ok(status));
                continue;
            }
            let mut notes = Vec::new();
            match self.ask_ocsp(&query, at, &mut notes).await {
                Some(answer) => {
                    self.ocsp.keep(query.issuer, query.serial, &answer, at);
                    gathered.insert(query.serial.to_owned(), Ok(answer.status));
                }
                None => {
                    self.refresh_crl(&query, at, &mut notes).await;
                    gathered.insert(query.serial.to_owned(), Err(notes.join("; ")));
                }
            }
        }
        let cache = self.cache.read().await;
        let result = path.check_revocation(
            &Gathered {
                crls: &cache,
                ocsp: gathered,
            },
            at,
        );
        if let Err(invalid) = &result {
            tracing::warn!(
                system = SYSTEM,
                reason_code = invalid.reason_code(),
                reason = %invalid,
                "EDS certificate refused"
            );
        }
        result
    }

    /// The answer of the first OCSP responder of the certificate that passes the checks;
    /// `None` when none does (each refusal logged and noted).
    async fn ask_ocsp(
        &self,
        query: &StatusQuery<'_>,
        at: DateTime<Utc>,
        notes: &mut Vec<String>,
    ) -> Option<TakenAnswer> {
        let responders = locations::ocsp_responders(query.subject);
        if responders.is_empty() {
            notes.push("the certificate names no http(s) OCSP responder".to_owned());
            return None;
        }
        let request = match OcspQuery::new(query.subject, query.issuer) {
            Ok(request) => request,
            Err(e) => {
                notes.push(format!("no OCSP request could be made ({e})"));
                return None;
            }
        };
        for url in responders {
            let body = match self.client.ocsp(&url, request.der()).await {
                Ok(body) => body,
                Err(f) => {
                    notes.push(format!("OCSP {url}: {}", f.reason));
                    continue;
                }
            };
            match request.verify(&body, query.issuer, at) {
                Ok(answer) => {
                    tracing::info!(
                        system = SYSTEM,
                        ca = %query.issuer_level,
                        serial = query.serial,
                        %url,
                        status = ?answer.status,
                        "OCSP answer verified"
                    );
                    return Some(answer);
                }
                Err(refusal) => {
                    tracing::warn!(
                        system = SYSTEM,
                        ca = %query.issuer_level,
                        serial = query.serial,
                        %url,
                        reason_code = refusal.code(),
                        reason = %refusal,
                        "OCSP answer refused"
                    );
                    notes.push(format!("OCSP {url} refused: {refusal}"));
                }
            }
        }
        None
    }

    /// Fetches the issuer's CRL from the certificate's distribution points, in order, until one
    /// verifies with the issuer's key and is fresh at `at`; keeps every one that verifies.
    /// Failures are logged and noted.
    async fn refresh_crl(
        &self,
        query: &StatusQuery<'_>,
        at: DateTime<Utc>,
        notes: &mut Vec<String>,
    ) {
        let points = locations::crl_distribution_points(query.subject);
        if points.is_empty() {
            notes.push("the certificate names no http(s) CRL distribution point".to_owned());
        }
        for url in points {
            let der = match self.client.fetch_crl(&url).await {
                Ok(der) => der,
                Err(f) => {
                    notes.push(format!("CRL {url}: {}", f.reason));
                    continue;
                }
            };
            match Crl::parse_verified(&der, query.issuer) {
                Ok(crl) => {
                    let next_update = crl.next_update();
                    let fresh = crl.is_fresh_at(at);
                    let kept = self.cache.write().await.insert(crl);
                    tracing::info!(
                        system = SYSTEM,
                        ca = %query.issuer_level,
                        %url,
                        %next_update,
                        kept,
                        "CRL verified"
                    );
                    if fresh {
                        return;
                    }
                    notes.push(format!("CRL {url} was valid until {next_update}"));
                }
                Err(invalid) => {
                    tracing::warn!(
                        system = SYSTEM,
                        ca = %query.issuer_level,
                        %url,
                        reason_code = invalid.reason_code(),
                        reason = %invalid,
                        "CRL refused"
                    );
                    notes.push(format!("CRL {url} refused: {invalid}"));
                }
            }
        }
    }
}

/// The revocation data gathered for one check: the CRLs first, then the verified OCSP answers
/// (or why there was none) for the certificates no fresh cached CRL covered.
#[derive(Debug)]
struct Gathered<'a> {
    crls: &'a CrlCache,
    /// By serial number: a verified OCSP answer, or what was tried and failed.
    ocsp: HashMap<String, Result<RevocationStatus, String>>,
}

impl RevocationSource for Gathered<'_> {
    fn status(&self, issuer: &Certificate, serial: &str, at: DateTime<Utc>) -> RevocationStatus {
        let from_crl = self.crls.status(issuer, serial, at);
        if !matches!(from_crl, RevocationStatus::Unknown(_)) {
            return from_crl;
        }
        match self.ocsp.get(serial) {
            Some(Ok(status)) => status.clone(),
            Some(Err(tried)) => RevocationStatus::Unknown(format!(
                "no signed answer: no fresh CRL and no OCSP answer taken ({tried})"
            )),
            None => from_crl,
        }
    }
}
