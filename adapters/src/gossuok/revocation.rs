//! Revocation status from the CAs' certificate revocation lists.
//!
//! A CRL is used only once its signature is verified with its issuer's key ([`Crl::parse_verified`]),
//! and only until its `nextUpdate`: past it, the CA may have revoked more certificates than it
//! lists, so a stale CRL answers "unknown", never "good". [`CrlCache`] keeps the latest verified
//! CRL of each CA and never goes back to an older one, so a replayed old CRL cannot un-revoke a
//! certificate.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{CrlReason, KeyUsage};

use super::bign::{self, PublicKey};
use super::validate::Invalid;
use super::{normalize_serial, serial_hex, to_utc};

/// How errors name a CRL.
const CRL: &str = "CRL";

/// CRL extensions this module understands (RFC 5280 5.2); any other one marked critical makes
/// the CRL unusable (delta CRLs, issuing distribution points, indirect CRLs are not used by
/// GosSUOK, and processing them wrongly could hide a revocation).
const CRL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.20");
const AUTHORITY_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");

/// CRL entry extensions this module understands (RFC 5280 5.3).
const REASON_CODE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.21");
const INVALIDITY_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");

/// Which of GosSUOK's CAs: the root (the KUC) or the intermediate (the republican CA, RUC)
/// that issues the citizens' certificates. Each publishes its own CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaLevel {
    /// The root CA; its CRL lists revoked intermediates.
    Root,
    /// The intermediate CA; its CRL lists revoked end-entity certificates.
    Intermediate,
}

impl CaLevel {
    /// `root` or `intermediate`, as in the CA's URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            CaLevel::Root => "root",
            CaLevel::Intermediate => "intermediate",
        }
    }
}

impl fmt::Display for CaLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a certificate was revoked (RFC 5280 `CRLReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// No reason given; also what an entry without a reason code means.
    Unspecified,
    /// The holder's private key is compromised.
    KeyCompromise,
    /// The CA's key is compromised.
    CaCompromise,
    /// The holder's name or other data changed.
    AffiliationChanged,
    /// Replaced by a new certificate.
    Superseded,
    /// No longer needed.
    CessationOfOperation,
    /// Suspended; may come off the list again.
    CertificateHold,
    /// Taken off a delta CRL.
    RemoveFromCrl,
    /// A privilege was withdrawn.
    PrivilegeWithdrawn,
    /// The attribute authority is compromised.
    AaCompromise,
}

impl RevocationReason {
    const ALL: [RevocationReason; 10] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold,
        RevocationReason::RemoveFromCrl,
        RevocationReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise,
    ];

    /// The snake-case code: `unspecified`, `key_compromise`, `ca_compromise`,
    /// `affiliation_changed`, `superseded`, `cessation_of_operation`, `certificate_hold`,
    /// `remove_from_crl`, `privilege_withdrawn`, `aa_compromise`.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key_compromise",
            RevocationReason::CaCompromise => "ca_compromise",
            RevocationReason::AffiliationChanged => "affiliation_changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation_of_operation",
            RevocationReason::CertificateHold => "certificate_hold",
            RevocationReason::RemoveFromCrl => "remove_from_crl",
            RevocationReason::PrivilegeWithdrawn => "privilege_withdrawn",
            RevocationReason::AaCompromise => "aa_compromise",
        }
    }

    /// The reason of a code, snake case or RFC 5280's camel case (`keyCompromise`); `None`
    /// for anything else.
    pub fn parse(s: &str) -> Option<RevocationReason> {
        let wanted: String = s
            .chars()
            .filter(|c| *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        RevocationReason::ALL
            .into_iter()
            .find(|reason| reason.as_str().replace('_', "") == wanted)
    }

    pub(crate) fn from_crl(reason: CrlReason) -> RevocationReason {
        match reason {
            CrlReason::Unspecified => RevocationReason::Unspecified,
            CrlReason::KeyCompromise => RevocationReason::KeyCompromise,
            CrlReason::CaCompromise => RevocationReason::CaCompromise,
            CrlReason::AffiliationChanged => RevocationReason::AffiliationChanged,
            CrlReason::Superseded => RevocationReason::Superseded,
            CrlReason::CessationOfOperation => RevocationReason::CessationOfOperation,
            CrlReason::CertificateHold => RevocationReason::CertificateHold,
            CrlReason::RemoveFromCRL => RevocationReason::RemoveFromCrl,
            CrlReason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
            CrlReason::AaCompromise => RevocationReason::AaCompromise,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a [`RevocationSource`] knows of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationStatus {
    /// Not revoked, by a source valid at the time asked.
    Good,
    /// Revoked.
    Revoked {
        /// When the CA revoked it.
        revoked_at: DateTime<Utc>,
        /// Why.
        reason: RevocationReason,
    },
    /// Cannot be told: no CRL, a stale one, no answer. Never taken as good.
    Unknown(String),
}

/// Tells whether a certificate is revoked, from data gathered beforehand: the validator asks it
/// synchronously and it does no I/O.
pub trait RevocationSource {
    /// The status at `at` of the certificate with the serial number `serial` (lowercase hex,
    /// see [`super::ValidCertificate::serial`]) issued by the CA `issuer`.
    fn status(&self, issuer: &Certificate, serial: &str, at: DateTime<Utc>) -> RevocationStatus;
}

/// A CA, as a CRL and a certificate both name it: its name (DER) and its key. The key is part
/// of it so that a CRL is only ever applied to the certificates of the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct IssuerId {
    name: Vec<u8>,
    key: Vec<u8>,
}

impl IssuerId {
    /// The CA whose certificate is `issuer`; `None` when its name does not encode (never for a
    /// certificate that was parsed from DER).
    pub(crate) fn of(issuer: &Certificate) -> Option<IssuerId> {
        let tbs = &issuer.tbs_certificate;
        Some(IssuerId {
            name: tbs.subject.to_der().ok()?,
            key: tbs
                .subject_public_key_info
                .subject_public_key
                .raw_bytes()
                .to_vec(),
        })
    }
}

/// One revoked certificate of a CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Revocation {
    revoked_at: DateTime<Utc>,
    reason: RevocationReason,
}

/// A CRL whose signature was verified with its issuer's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crl {
    issuer: IssuerId,
    issuer_name: String,
    this_update: DateTime<Utc>,
    next_update: DateTime<Utc>,
    revoked: HashMap<String, Revocation>,
}

impl Crl {
    /// Parses a DER CRL and verifies it was issued and signed by `issuer` (whose certificate
    /// the caller trusts: a validated intermediate or a trusted root).
    ///
    /// Errors: not a DER CRL, no `nextUpdate`, or an unprocessed critical extension is
    /// [`Invalid::Malformed`]; another algorithm than bign-with-hbelt
    /// [`Invalid::UnsupportedAlgorithm`]; another issuer's name [`Invalid::UntrustedChain`]; an
    /// issuer whose key usage excludes `cRLSign` [`Invalid::WrongKeyUsage`]; a signature that
    /// does not verify with the issuer's key [`Invalid::BadSignature`] (`which` is `CRL`).
    pub fn parse_verified(der: &[u8], issuer: &Certificate) -> Result<Crl, Invalid> {
        let malformed = |what: String| Invalid::Malformed(format!("the CRL {what}"));
        let crl = CertificateList::from_der(der)
            .map_err(|e| malformed(format!("is not a DER X.509 CRL ({e})")))?;
        let signed = bign::signed_part(der)
            .map_err(|e| malformed(format!("is not a DER X.509 CRL ({e})")))?;
        let tbs = &crl.tbs_cert_list;
        bign::check_signature_algorithm(&crl.signature_algorithm, &tbs.signature, CRL)?;

        let issuer_tbs = &issuer.tbs_certificate;
        if tbs.issuer != issuer_tbs.subject {
            return Err(Invalid::UntrustedChain(
                "the CRL names another issuer than the CA it was fetched for".to_owned(),
            ));
        }
        let issuer_usage = issuer_tbs.get::<KeyUsage>().map_err(|_| {
            Invalid::Malformed("the CRL issuer's keyUsage extension does not decode".to_owned())
        })?;
        if issuer_usage.is_some_and(|(_, usage)| !usage.crl_sign()) {
            return Err(Invalid::WrongKeyUsage(
                "the CRL issuer's key usage does not include cRLSign".to_owned(),
            ));
        }
        let key = PublicKey::from_spki(&issuer_tbs.subject_public_key_info, "CRL issuer")?;
        if !key.verifies(signed, bign::signature_bytes(&crl.signature)) {
            return Err(Invalid::BadSignature {
                which: CRL.to_owned(),
            });
        }

        // Signed by the issuer from here on: what follows is the CA's word, checked for sense.
        check_critical(
            tbs.crl_extensions.as_deref(),
            &[CRL_NUMBER, AUTHORITY_KEY_IDENTIFIER],
            "the CRL",
        )?;
        let time = |t| to_utc(t).ok_or_else(|| malformed("has a time out of range".to_owned()));
        let this_update = time(tbs.this_update)?;
        let next_update = match tbs.next_update {
            Some(next) => time(next)?,
            None => return Err(malformed("has no nextUpdate".to_owned())),
        };
        if next_update < this_update {
            return Err(malformed(
                "has its nextUpdate before its thisUpdate".to_owned(),
            ));
        }
        let mut revoked = HashMap::new();
        for entry in tbs.revoked_certificates.as_deref().unwrap_or_default() {
            let extensions = entry.crl_entry_extensions.as_deref();
            check_critical(extensions, &[REASON_CODE, INVALIDITY_DATE], "a CRL entry")?;
            let reason = match extensions
                .unwrap_or_default()
                .iter()
                .find(|e| e.extn_id == REASON_CODE)
            {
                Some(e) => CrlReason::from_der(e.extn_value.as_bytes())
                    .map(RevocationReason::from_crl)
                    .map_err(|_| malformed("has a reason code that does not decode".to_owned()))?,
                None => RevocationReason::Unspecified,
            };
            let revocation = Revocation {
                revoked_at: time(entry.revocation_date)?,
                reason,
            };
            revoked
                .entry(serial_hex(entry.serial_number.as_bytes()))
                .or_insert(revocation);
        }
        Ok(Crl {
            issuer: IssuerId::of(issuer).ok_or_else(|| {
                Invalid::Malformed("the CRL issuer's name does not encode".to_owned())
            })?,
            issuer_name: tbs.issuer.to_string(),
            this_update,
            next_update,
            revoked,
        })
    }

    /// The issuer's name (RFC 4514).
    pub fn issuer(&self) -> &str {
        &self.issuer_name
    }

    /// When the CA issued this CRL.
    pub fn this_update(&self) -> DateTime<Utc> {
        self.this_update
    }

    /// When the CA issues the next one; the CRL says nothing past it.
    pub fn next_update(&self) -> DateTime<Utc> {
        self.next_update
    }

    /// Whether the CRL may be used at `at`: up to its `nextUpdate`. A CRL issued after `at`
    /// is usable too: it knows more, not less.
    pub fn is_fresh_at(&self, at: DateTime<Utc>) -> bool {
        at <= self.next_update
    }

    /// How many certificates it lists.
    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }

    /// The status of the certificate `serial` of this CRL's issuer at `at`: revoked when listed
    /// (whatever the revocation date: a key compromise is found after the fact), good when not,
    /// unknown once the CRL is stale or for a serial that is not hex.
    pub fn status(&self, serial: &str, at: DateTime<Utc>) -> RevocationStatus {
        if !self.is_fresh_at(at) {
            return RevocationStatus::Unknown(format!(
                "the issuer's CRL was valid until {}",
                self.next_update
            ));
        }
        let Some(serial) = normalize_serial(serial) else {
            return RevocationStatus::Unknown("the serial number is not hex".to_owned());
        };
        match self.revoked.get(&serial) {
            Some(r) => RevocationStatus::Revoked {
                revoked_at: r.revoked_at,
                reason: r.reason,
            },
            None => RevocationStatus::Good,
        }
    }
}

/// Refuses an extension marked critical that is not one of `known` (RFC 5280 5.2, 5.3).
fn check_critical(
    extensions: Option<&[Extension]>,
    known: &[ObjectIdentifier],
    what: &str,
) -> Result<(), Invalid> {
    match extensions
        .unwrap_or_default()
        .iter()
        .find(|e| e.critical && !known.contains(&e.extn_id))
    {
        Some(e) => Err(Invalid::Malformed(format!(
            "{what} has the critical extension {}, which is not processed here",
            e.extn_id
        ))),
        None => Ok(()),
    }
}

/// The latest verified CRL of each CA.
#[derive(Debug, Clone, Default)]
pub struct CrlCache {
    latest: HashMap<IssuerId, Crl>,
}

impl CrlCache {
    /// An empty cache: every status is unknown until CRLs are added.
    pub fn new() -> CrlCache {
        CrlCache::default()
    }

    /// Keeps `crl` as its issuer's latest, unless the cache holds one issued later (or the
    /// same one). True when kept.
    pub fn insert(&mut self, crl: Crl) -> bool {
        match self.latest.get(&crl.issuer) {
            Some(held)
                if (held.this_update, held.next_update) >= (crl.this_update, crl.next_update) =>
            {
                false
            }
            _ => {
                self.latest.insert(crl.issuer.clone(), crl);
                true
            }
        }
    }

    /// The latest CRL held of `issuer`, fresh or not.
    pub fn get(&self, issuer: &Certificate) -> Option<&Crl> {
        self.latest.get(&IssuerId::of(issuer)?)
    }

    /// Whether a CRL of `issuer` usable at `at` is held.
    pub fn is_fresh(&self, issuer: &Certificate, at: DateTime<Utc>) -> bool {
        self.get(issuer).is_some_and(|crl| crl.is_fresh_at(at))
    }
}

impl RevocationSource for CrlCache {
    fn status(&self, issuer: &Certificate, serial: &str, at: DateTime<Utc>) -> RevocationStatus {
        match self.get(issuer) {
            Some(crl) => crl.status(serial, at),
            None => RevocationStatus::Unknown("no CRL of the issuer is held".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_in_snake_and_camel_case() {
        for reason in RevocationReason::ALL {
            assert_eq!(RevocationReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(
            RevocationReason::parse("keyCompromise"),
            Some(RevocationReason::KeyCompromise)
        );
        assert_eq!(
            RevocationReason::parse("removeFromCRL"),
            Some(RevocationReason::RemoveFromCrl)
        );
        assert_eq!(RevocationReason::parse("stolen"), None);
        assert_eq!(RevocationReason::parse(""), None);
    }
}
