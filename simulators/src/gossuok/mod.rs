//! GosSUOK, the Belarusian state PKI: a test CA with real bign cryptography ([`ca`]) and the
//! simulator of the CA's public services over HTTP.
//!
//! A citizen logs in and signs with an EDS key whose certificate the republican CA (RUC) issued
//! under the root (KUC). The hub must build and check that chain, check the signature of a
//! challenge, and learn of revocations from the CAs' signed answers (the CRLs and the OCSP
//! responder each certificate names) — and keep working sensibly when the CA is slow, down or
//! answering falsely. The simulator publishes the CA certificates and freshly signed CRLs,
//! answers OCSP requests ([`ocsp`]) and the unsigned status endpoint, and plays each person's
//! key token: it holds one certificate per person of the MVD population (issued on
//! first use, the holder's key fixed by the identification number) and signs with it on
//! request. Tests can also issue odd certificates (expired, not yet valid, the wrong key usage,
//! signed straight by the root) and revoke any of them.
//!
//! [`ca::TestCa`] is public so that validators elsewhere can be tested against the same CA
//! without HTTP.

mod api;
pub mod ca;
pub mod ocsp;
#[cfg(test)]
mod vectors;

use std::time::Duration;

pub use api::{KeyTokens, OfficialCertificate};
pub(crate) use api::{MAX_CRL_VALIDITY, key_tokens, router};

use crate::mvd::population::Population;

/// What the GosSUOK simulator needs from the process that starts it.
#[derive(Debug)]
pub(crate) struct Deps {
    /// The CA, derived from the simulators' seed.
    pub(crate) ca: ca::TestCa,
    /// The persons it issues certificates to: the MVD registry's population.
    pub(crate) population: Population,
    /// How long each CRL is valid: its nextUpdate is its thisUpdate plus this.
    pub(crate) crl_validity: Duration,
}
