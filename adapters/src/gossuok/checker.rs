//! The one place that brings the network and the validator together: gather what the
//! validator needs to know about revocation, then ask it.
//!
//! For each certificate whose status matters (the leaf, the intermediate) the issuer's CRL is
//! the source: a fresh one from the cache, else a newly fetched one, verified with the issuer's
//! key. Only when no fresh CRL can be had is the CA's online status asked instead, and its
//! answer is unsigned JSON: whoever sits on the path could answer `good` for a revoked
//! certificate while blocking the CRL. So it may refuse (`revoked`) but never vouch: its `good`
//! leaves the status unknown. When no signed source answers, the check fails with
//! [`Invalid::StatusUnknown`], transient (`try_later`): an unreachable or blocked CA never lets a
//! certificate through.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::sync::RwLock;
use x509_cert::Certificate;

use super::SYSTEM;
use super::client::{GosSuokClient, OnlineStatus};
use super::revocation::{Crl, CrlCache, RevocationSource, RevocationStatus};
use super::validate::{Invalid, StatusQuery, ValidCertificate, Validator};

/// Checks certificates with a [`Validator`], keeping the CAs' CRLs fresh through a
/// [`GosSuokClient`].
#[derive(Debug)]
pub struct Checker {
    validator: Validator,
    client: GosSuokClient,
    cache: RwLock<CrlCache>,
}

impl Checker {
    /// A checker with an empty CRL cache: the first check fetches the CRLs.
    pub fn new(validator: Validator, client: GosSuokClient) -> Self {
        Checker {
            validator,
            client,
            cache: RwLock::new(CrlCache::new()),
        }
    }

    /// Validates `leaf_der` (with the intermediates `chain_der`, in any order) at `at`,
    /// refreshing a missing or stale CRL first, and asking the CA's status API about a
    /// certificate only when its issuer's CRL cannot be had fresh.
    ///
    /// A certificate that fails before revocation (a bad signature, an untrusted chain, expiry)
    /// costs no call to the CA. Errors: see [`Invalid`]; [`Invalid::StatusUnknown`] (transient)
    /// when neither a fresh CRL nor the status API tells a certificate's status.
    pub async fn check(
        &self,
        leaf_der: &[u8],
        chain_der: &[Vec<u8>],
        at: DateTime<Utc>,
    ) -> Result<ValidCertificate, Invalid> {
        let path = self.validator.path(leaf_der, chain_der, at)?;
        let mut online = HashMap::new();
        for query in path.status_queries() {
            if self.cache.read().await.is_fresh(query.issuer, at) {
                continue;
            }
            self.refresh_crl(&query).await;
            if self.cache.read().await.is_fresh(query.issuer, at) {
                continue;
            }
            if let Ok(status) = self.client.status(query.serial).await {
                online.insert(query.serial.to_owned(), status);
            }
        }
        let cache = self.cache.read().await;
        let result = path.check_revocation(
            &Gathered {
                crls: &cache,
                online,
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

    /// Fetches the CRL of the query's issuer and keeps it when it verifies with the issuer's
    /// key. A failure is logged and left for the status API to make up for.
    async fn refresh_crl(&self, query: &StatusQuery<'_>) {
        let Ok(der) = self.client.fetch_crl(query.issuer_level).await else {
            return;
        };
        match Crl::parse_verified(&der, query.issuer) {
            Ok(crl) => {
                let next_update = crl.next_update();
                let kept = self.cache.write().await.insert(crl);
                tracing::info!(
                    system = SYSTEM,
                    ca = %query.issuer_level,
                    %next_update,
                    kept,
                    "CRL verified"
                );
            }
            Err(invalid) => tracing::warn!(
                system = SYSTEM,
                ca = %query.issuer_level,
                reason_code = invalid.reason_code(),
                reason = %invalid,
                "CRL refused"
            ),
        }
    }
}

/// The revocation data gathered for one check: the CRLs first, the status API's answers for
/// the certificates no fresh CRL covered.
#[derive(Debug)]
struct Gathered<'a> {
    crls: &'a CrlCache,
    /// Answers by serial number.
    online: HashMap<String, OnlineStatus>,
}

impl RevocationSource for Gathered<'_> {
    fn status(&self, issuer: &Certificate, serial: &str, at: DateTime<Utc>) -> RevocationStatus {
        let from_crl = self.crls.status(issuer, serial, at);
        if !matches!(from_crl, RevocationStatus::Unknown(_)) {
            return from_crl;
        }
        match self.online.get(serial) {
            // Unsigned: it cannot vouch (see the module's documentation).
            Some(OnlineStatus::Good) => RevocationStatus::Unknown(
                "no fresh CRL, and the CA's status API, which said good, answers unsigned: only \
                 a signed source vouches for a certificate"
                    .to_owned(),
            ),
            Some(OnlineStatus::Revoked { revoked_at, reason }) => RevocationStatus::Revoked {
                revoked_at: *revoked_at,
                reason: *reason,
            },
            Some(OnlineStatus::Unknown) => RevocationStatus::Unknown(
                "no fresh CRL, and the CA's status API does not know the certificate".to_owned(),
            ),
            None => RevocationStatus::Unknown(
                "no fresh CRL, and the CA's status API did not answer".to_owned(),
            ),
        }
    }
}
