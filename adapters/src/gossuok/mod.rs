//! GosSUOK, the state PKI of Belarus: validating the EDS certificates and signatures people log
//! in and register with.
//!
//! An EDS login gives the hub the highest assurance level, so nothing here is valid by default.
//! The decisions are pure and synchronous: [`Validator`] builds a certificate's path to a
//! configured trusted root and checks every link (bign-with-hbelt signatures, validity periods,
//! basic constraints and key usage) and the revocation status of the leaf and the
//! intermediates through a [`RevocationSource`]; [`Crl`] and [`CrlCache`] answer that status
//! from the CAs' signed CRLs, the OCSP checks (RFC 6960) from a responder's signed answer;
//! [`Challenge`] is what a holder signs to prove they hold the key.
//!
//! The network is a thin shell around them: [`GosSuokClient`] asks the OCSP responders and
//! fetches the CRLs at the addresses each certificate names (its authorityInfoAccess and CRL
//! distribution points, never fixed paths), and the CA certificates; [`Checker`] gathers what
//! the validator needs (a fresh cached CRL, else a verified OCSP answer, kept from a recent check
//! or fetched, else a freshly fetched CRL) before it asks it. Only answers signed by the
//! certificate's CA count: when none can be had, the answer is [`Invalid::StatusUnknown`],
//! transient: an unreachable or lying CA is never a pass. GosSUOK's unsigned JSON status API is
//! not used.
//!
//! Work already done is not done again: the validator remembers the certificate signatures it
//! verified (by exact DER and issuer key), the checker the verified OCSP answers for a few
//! minutes ([`DEFAULT_OCSP_CACHE`], configurable, with the trade-off it states).
//!
//! The cryptography is the Belarusian one (STB 34.101.45 bign on bign-curve256v1, over
//! STB 34.101.31 belt-hash) from the RustCrypto `bign256` crate; certificates and CRLs are read
//! with `x509-cert`. Public keys are carried in their STB encoding: 64 bytes, x then y, each
//! little-endian; signatures are 48 bytes.

mod bign;
mod challenge;
mod checker;
mod client;
mod locations;
mod ocsp;
mod ocsp_cache;
mod revocation;
mod signature_cache;
mod validate;

pub use challenge::{CHALLENGE_CONTEXT, Challenge};
pub use checker::Checker;
pub use client::GosSuokClient;
pub use ocsp_cache::DEFAULT_OCSP_CACHE;
pub use revocation::{
    CaLevel, Crl, CrlCache, RevocationReason, RevocationSource, RevocationStatus,
};
pub use validate::{CertPath, Invalid, StatusQuery, ValidCertificate, Validator};

/// The certificate type the API takes and gives: RFC 5280 as `x509-cert` parses it.
pub use x509_cert::Certificate;

use chrono::{DateTime, Utc};

/// How GosSUOK is named in failure reasons and logs.
const SYSTEM: &str = "GosSUOK";

/// A certificate serial number as this module writes it: the INTEGER's bytes in lowercase hex,
/// without the leading `00` that DER adds to keep a number positive (`0a1b2c`, not `000a1b2c`).
fn serial_hex(integer_bytes: &[u8]) -> String {
    let first = integer_bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(integer_bytes.len().saturating_sub(1));
    hex::encode(&integer_bytes[first.min(integer_bytes.len())..])
}

/// A serial number given as text (by a caller or a CRL) in the form of
/// [`serial_hex`]: case and leading zeros do not matter. `None` when it is not 1 to 42 hex
/// digits (a DER serial has at most 21 bytes).
fn normalize_serial(serial: &str) -> Option<String> {
    let serial = serial.trim();
    if serial.is_empty() || serial.len() > 42 || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = if serial.len() % 2 == 1 {
        format!("0{serial}")
    } else {
        serial.to_owned()
    };
    hex::decode(padded).ok().map(|bytes| serial_hex(&bytes))
}

/// An X.509 time as a `DateTime<Utc>`; `None` only past chrono's range, which `x509-cert`
/// never decodes (it keeps times between 1970 and 9999).
fn to_utc(time: x509_cert::time::Time) -> Option<DateTime<Utc>> {
    let since_epoch = time.to_unix_duration();
    let secs = i64::try_from(since_epoch.as_secs()).ok()?;
    DateTime::from_timestamp(secs, since_epoch.subsec_nanos())
}

#[cfg(test)]
mod tests;
