//! Verified OCSP answers kept for a short while, so that a certificate checked again soon (the
//! intermediate at every check, a person logging in twice, an official signing many decisions)
//! costs neither a request to the CA's responder nor the verification of its signed answer.
//!
//! This is the caching RFC 5019 (section 6) and RFC 6960 allow a client: an answer is reused
//! while it is fresh, that is up to its `nextUpdate` (without one, up to its `thisUpdate` plus
//! [`MAX_AGE_WITHOUT_NEXT`](super::ocsp::MAX_AGE_WITHOUT_NEXT), what a fetched answer is allowed),
//! and never longer than the configured maximum age after the check that fetched it. The CRL path
//! already works this way: a CRL is used until its `nextUpdate`.
//!
//! **The trade-off.** A certificate revoked while a `good` answer about it is kept is seen as
//! revoked at the latest when that answer ages out: after the maximum age (5 minutes by
//! default, [`DEFAULT_OCSP_CACHE`]) or its `nextUpdate`, whichever comes first. A maximum age of
//! zero turns the cache off: every check asks the responder again.
//!
//! What is kept: only answers that passed every check of [`super::ocsp`] when they were fetched
//! (signed by the certificate's CA or its delegated responder, about this certificate, echoing
//! that request's nonce, fresh). The nonce proves an answer was made for the request that
//! fetched it; a kept answer is reused without a new nonce, as RFC 5019 clients do. `good`
//! and `revoked` answers are kept (a revocation is final: reusing it refuses, never admits);
//! `unknown` answers and failures (refusals, unreachable responders) never are, so the next
//! check asks again. Answers are kept per CA (its name and key) and serial number, at most
//! [`CAPACITY`], the least recently used dropped first.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hashlink::LruCache;
use x509_cert::Certificate;

use super::ocsp::TakenAnswer;
use super::revocation::{IssuerId, RevocationStatus};

/// How long a verified OCSP answer is reused at most, unless configured otherwise: short
/// enough that a revocation is seen within minutes, long enough that the bursts of checks of
/// one certificate (and the intermediate's, at every check) cost one answer.
pub const DEFAULT_OCSP_CACHE: Duration = Duration::from_secs(5 * 60);

/// How many answers are kept at most: about one per certificate checked in the last minutes.
pub(crate) const CAPACITY: usize = 10_000;

/// A certificate as OCSP names it: its CA and its serial number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct About {
    issuer: IssuerId,
    serial: String,
}

/// A kept answer: what it said, and the span of checks it may serve.
#[derive(Debug, Clone)]
struct Kept {
    status: RevocationStatus,
    fetched_at: DateTime<Utc>,
    until: DateTime<Utc>,
}

/// The verified OCSP answers of recent checks (see the module).
pub(crate) struct OcspCache {
    max_age: TimeDelta,
    answers: Mutex<LruCache<About, Kept>>,
}

impl fmt::Debug for OcspCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcspCache")
            .field("max_age", &self.max_age)
            .field("len", &self.lock().len())
            .finish()
    }
}

impl OcspCache {
    /// A cache reusing answers at most `max_age` after they were fetched; zero keeps none.
    pub(crate) fn new(max_age: Duration) -> OcspCache {
        OcspCache {
            max_age: TimeDelta::from_std(max_age).unwrap_or(TimeDelta::MAX),
            answers: Mutex::new(LruCache::new(CAPACITY)),
        }
    }

    /// The status a kept answer about the certificate `serial` of `issuer` gives at `at`:
    /// `None` when none is kept or it is no longer fresh at `at` (then it is dropped), or when
    /// `at` is before the check that fetched it.
    pub(crate) fn status(
        &self,
        issuer: &Certificate,
        serial: &str,
        at: DateTime<Utc>,
    ) -> Option<RevocationStatus> {
        let about = About {
            issuer: IssuerId::of(issuer)?,
            serial: serial.to_owned(),
        };
        let mut answers = self.lock();
        let kept = answers.get(&about)?;
        if at > kept.until {
            answers.remove(&about);
            return None;
        }
        (kept.fetched_at <= at).then(|| kept.status.clone())
    }

    /// Keeps `answer` about the certificate `serial` of `issuer`, fetched and verified by the
    /// check at `at`, when it may be reused: a `good` or `revoked` one, with the cache on. True
    /// when kept.
    pub(crate) fn keep(
        &self,
        issuer: &Certificate,
        serial: &str,
        answer: &TakenAnswer,
        at: DateTime<Utc>,
    ) -> bool {
        if self.max_age <= TimeDelta::zero()
            || matches!(answer.status, RevocationStatus::Unknown(_))
        {
            return false;
        }
        let Some(issuer) = IssuerId::of(issuer) else {
            return false;
        };
        let aged_out = at
            .checked_add_signed(self.max_age)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let kept = Kept {
            status: answer.status.clone(),
            fetched_at: at,
            until: aged_out.min(answer.fresh_until()),
        };
        let about = About {
            issuer,
            serial: serial.to_owned(),
        };
        self.lock().insert(about, kept);
        true
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<About, Kept>> {
        // Poisoned only by a panic between two statements above: the map is whole either way.
        self.answers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
