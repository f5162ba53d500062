//! Validating an EDS certificate: building its path to a trusted root, checking every link of
//! it, and asking a [`RevocationSource`] whether the leaf or an intermediate was revoked.
//!
//! The path is built by names (and key identifiers when both sides have them) through the
//! intermediates the caller gives, in any order, and checked as RFC 5280 section 6 asks, for
//! the little that GosSUOK uses: bign-with-hbelt signatures only, validity periods at the time
//! asked, `basicConstraints` (CA and path length) and `keyUsage` (`keyCertSign` on issuers,
//! `digitalSignature` on the leaf), and no critical extension left unprocessed. Policies and
//! name constraints are not processed, so a certificate marking them critical is refused. The
//! CRL distribution points and the authorityInfoAccess must decode: they say where the
//! certificate's status is published (see [`super::Checker`]).
//!
//! Everything is synchronous and pure: the caller gathers the revocation data first (see
//! [`super::Checker`]), so the same inputs always give the same answer.

use chrono::{DateTime, Utc};
use der::asn1::{Any, ObjectIdentifier};
use der::{Decode, Tag, Tagged};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints,
    ExtendedKeyUsage, KeyUsage, PrivateKeyUsagePeriod, SubjectKeyIdentifier,
};
use x509_cert::name::Name;

use super::bign::{self, PublicKey};
use super::revocation::{CaLevel, RevocationSource, RevocationStatus};
use super::signature_cache::{self, SignatureCache};
use super::{serial_hex, to_utc};
use crate::failure::Failure;

/// The most intermediates a path may have; GosSUOK has one (the republican CA).
const MAX_INTERMEDIATES: usize = 4;

/// The most certificates a caller may send along with the leaf.
const MAX_CHAIN: usize = 8;

/// The most signature checks one path search makes; a sane chain needs one per link.
const MAX_VERIFICATIONS: usize = 16;

/// How the certificates are named in errors.
const LEAF: &str = "leaf certificate";
const INTERMEDIATE: &str = "intermediate certificate";
const ROOT: &str = "root certificate";
const RESPONDER: &str = "OCSP responder certificate";

/// extendedKeyUsage (RFC 5280 4.2.1.12): processed on a delegated OCSP responder only.
const EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// id-kp-OCSPSigning: a delegated OCSP responder's key purpose.
const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1): the responder certificate is not to be checked
/// for revocation (the CA keeps it short-lived instead).
const ID_PKIX_OCSP_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");

/// Subject attributes (X.520).
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const SURNAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.4");
const SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");
const GIVEN_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.42");
const ORGANIZATION_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");

/// The extensions this validator processes or that carry nothing to enforce. Any other
/// extension marked critical makes the certificate unusable (RFC 5280 4.2).
const KNOWN_EXTENSIONS: [ObjectIdentifier; 10] = [
    ObjectIdentifier::new_unwrap("2.5.29.9"), // subjectDirectoryAttributes
    ObjectIdentifier::new_unwrap("2.5.29.14"), // subjectKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.15"), // keyUsage
    ObjectIdentifier::new_unwrap("2.5.29.16"), // privateKeyUsagePeriod (enforced on the leaf)
    ObjectIdentifier::new_unwrap("2.5.29.17"), // subjectAltName
    ObjectIdentifier::new_unwrap("2.5.29.18"), // issuerAltName
    ObjectIdentifier::new_unwrap("2.5.29.19"), // basicConstraints
    ObjectIdentifier::new_unwrap("2.5.29.31"), // cRLDistributionPoints
    ObjectIdentifier::new_unwrap("2.5.29.35"), // authorityKeyIdentifier
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1"), // authorityInfoAccess
];

/// Why a certificate, a CRL, a signature or a challenge is not accepted.
///
/// The texts say precisely what failed and never carry personal data: no identification
/// number, no name. Serial numbers of certificates do appear; CAs publish them in their CRLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Not DER, not X.509, or breaking the profile (a missing subject attribute, a repeated or
    /// undecodable extension, an unprocessed critical one).
    #[error("malformed: {0}")]
    Malformed(String),
    /// A signature does not verify under the key it must verify under.
    #[error("bad signature: the {which} does not verify")]
    BadSignature {
        /// What is signed: `leaf certificate`, `intermediate certificate`, `CRL`,
        /// `signed message`.
        which: String,
    },
    /// No path from the certificate to a configured trusted root.
    #[error("untrusted chain: {0}")]
    UntrustedChain(String),
    /// A certificate of the path has expired at the time asked.
    #[error("expired: the {which} was valid until {not_after}")]
    Expired {
        /// Which certificate of the path.
        which: String,
        /// The end of its validity.
        not_after: DateTime<Utc>,
    },
    /// A certificate of the path is not valid yet at the time asked.
    #[error("not yet valid: the {which} is valid from {not_before}")]
    NotYetValid {
        /// Which certificate of the path.
        which: String,
        /// The start of its validity.
        not_before: DateTime<Utc>,
    },
    /// The leaf or an intermediate is revoked.
    #[error("revoked: the certificate {serial} was revoked at {revoked_at} ({reason})")]
    Revoked {
        /// The revoked certificate's serial number (lowercase hex).
        serial: String,
        /// When the CA revoked it.
        revoked_at: DateTime<Utc>,
        /// The CRL reason code in snake case (`key_compromise`, `unspecified`, ...).
        reason: String,
    },
    /// A CA certificate that may not issue certificates, or a leaf that may not sign.
    #[error("wrong key usage: {0}")]
    WrongKeyUsage(String),
    /// A signature or key algorithm other than bign-with-hbelt on bign-curve256v1.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// Whether a certificate is revoked cannot be told now: no fresh CRL and no answer from
    /// the CA. Transient: trying again when the CA is back may succeed.
    #[error("revocation status unknown: {0}")]
    StatusUnknown(String),
    /// A login challenge signed too long after it was issued.
    #[error("challenge expired: issued at {issued_at}, older than {max_age_secs} s allowed")]
    ChallengeExpired {
        /// When the hub issued it.
        issued_at: DateTime<Utc>,
        /// The age allowed, in seconds.
        max_age_secs: u64,
    },
}

impl Invalid {
    /// A stable machine-readable code: `malformed`, `bad_signature`, `untrusted_chain`,
    /// `expired`, `not_yet_valid`, `revoked`, `wrong_key_usage`, `unsupported_algorithm`,
    /// `status_unknown`, `challenge_expired`.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Invalid::Malformed(_) => "malformed",
            Invalid::BadSignature { .. } => "bad_signature",
            Invalid::UntrustedChain(_) => "untrusted_chain",
            Invalid::Expired { .. } => "expired",
            Invalid::NotYetValid { .. } => "not_yet_valid",
            Invalid::Revoked { .. } => "revoked",
            Invalid::WrongKeyUsage(_) => "wrong_key_usage",
            Invalid::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Invalid::StatusUnknown(_) => "status_unknown",
            Invalid::ChallengeExpired { .. } => "challenge_expired",
        }
    }

    /// True only for [`Invalid::StatusUnknown`]: the certificate may well be good, but that
    /// cannot be told now. Never a reason to accept it.
    pub fn is_transient(&self) -> bool {
        matches!(self, Invalid::StatusUnknown(_))
    }
}

/// A certificate that passed every check, with what the hub needs of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ValidCertificate {
    /// The serial number, lowercase hex without a leading `00`.
    pub serial: String,
    /// The holder's identification number: the subject's `serialNumber` (2.5.4.5), as written.
    pub identification_number: String,
    /// The subject's `surname` (2.5.4.4).
    pub surname: String,
    /// The subject's `givenName` (2.5.4.42).
    pub given_name: String,
    /// What the subject's `commonName` has after the surname and the given name, when it has
    /// more: X.520 has no attribute for a patronymic.
    pub patronymic: Option<String>,
    /// The subject's `organizationName` (2.5.4.10): the organisation an official signs for
    /// (an authority's catalogue id on its officials' certificates); none for a private person.
    pub organization: Option<String>,
    /// The end of the certificate's validity.
    pub not_after: DateTime<Utc>,
    /// The issuing CA's name (RFC 4514).
    pub issuer: String,
    /// The holder's public key, 64 bytes in the STB 34.101.45 encoding.
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for ValidCertificate {
    /// Leaves the personal data out, so a certificate in a log line leaks nothing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidCertificate")
            .field("serial", &self.serial)
            .field("identification_number", &"(personal data)")
            .field("surname", &"(personal data)")
            .field("given_name", &"(personal data)")
            .field(
                "patronymic",
                &self.patronymic.as_ref().map(|_| "(personal data)"),
            )
            .field("organization", &self.organization)
            .field("not_after", &self.not_after)
            .field("issuer", &self.issuer)
            .field("public_key", &hex::encode(&self.public_key))
            .finish()
    }
}

impl ValidCertificate {
    /// Checks that `signature` (48 bytes) is the holder's bign signature of `message` (hashed
    /// with belt-hash inside): the proof that whoever presented the certificate holds its key.
    ///
    /// Errors: [`Invalid::BadSignature`] for a signature that does not verify, whatever its
    /// length or content.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> Result<(), Invalid> {
        let key = PublicKey::from_stb(&self.public_key).ok_or_else(|| {
            Invalid::Malformed("the public key is not a point of bign-curve256v1".to_owned())
        })?;
        if key.verifies(message, signature) {
            Ok(())
        } else {
            Err(Invalid::BadSignature {
                which: "signed message".to_owned(),
            })
        }
    }
}

/// Validates certificates against the trusted roots it was made with.
///
/// It remembers the certificate signatures it verified (by the exact DER and the issuer's key,
/// see [`super::signature_cache`]), so a path checked again costs no curve work for its
/// certificates; every other check runs each time. Clones share that memory.
#[derive(Debug, Clone)]
pub struct Validator {
    trusted_roots: Vec<Parsed>,
    signatures: SignatureCache,
}

impl Validator {
    /// A validator trusting these roots (DER certificates): GosSUOK's root CA, from the hub's
    /// configuration. Never take them from the network unchecked.
    ///
    /// Errors: no root, or a root that does not parse, is not self-signed with a bign key that
    /// verifies its own signature, or may not issue certificates, is a permanent failure (a
    /// configuration mistake).
    pub fn new(trusted_roots_der: &[Vec<u8>]) -> Result<Validator, Failure> {
        if trusted_roots_der.is_empty() {
            return Err(Failure::permanent("GosSUOK: no trusted root configured"));
        }
        let trusted_roots = trusted_roots_der
            .iter()
            .enumerate()
            .map(|(i, der)| {
                let refused = |e: Invalid| {
                    Failure::permanent(format!("GosSUOK trusted root #{}: {e}", i + 1))
                };
                let root = Parsed::from_der(der, ROOT).map_err(refused)?;
                if root.cert.tbs_certificate.subject != root.cert.tbs_certificate.issuer
                    || !root.key.verifies(&root.signed, root.signature())
                {
                    return Err(refused(Invalid::BadSignature {
                        which: "self-signed root certificate".to_owned(),
                    }));
                }
                check_issuer(&root, 0).map_err(refused)?;
                Ok(root)
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        Ok(Validator {
            trusted_roots,
            signatures: SignatureCache::new(signature_cache::CAPACITY),
        })
    }

    /// Validates `leaf_der` at `at`: builds its path through `chain_der` (intermediates, in any
    /// order; extra ones are ignored) to a trusted root, checks every link, and asks
    /// `revocation` about the leaf and the intermediates.
    ///
    /// Errors: see [`Invalid`]. Of several problems, the first found is reported: parsing,
    /// then the path and its signatures, then validity periods, constraints and key usage, then
    /// revocation (a revocation anywhere wins over a status unknown elsewhere).
    pub fn validate(
        &self,
        leaf_der: &[u8],
        chain_der: &[Vec<u8>],
        at: DateTime<Utc>,
        revocation: &(impl RevocationSource + ?Sized),
    ) -> Result<ValidCertificate, Invalid> {
        self.path(leaf_der, chain_der, at)?
            .check_revocation(revocation, at)
    }

    /// Everything [`Self::validate`] does except revocation: the checked path, which says
    /// whose status must be known ([`CertPath::status_queries`]) so the caller can gather it,
    /// and then finishes with [`CertPath::check_revocation`].
    pub fn path(
        &self,
        leaf_der: &[u8],
        chain_der: &[Vec<u8>],
        at: DateTime<Utc>,
    ) -> Result<CertPath, Invalid> {
        if chain_der.len() > MAX_CHAIN {
            return Err(Invalid::Malformed(format!(
                "the chain has {} certificates, at most {MAX_CHAIN} are taken",
                chain_der.len()
            )));
        }
        let leaf = Parsed::from_der(leaf_der, LEAF)?;
        // A trusted root sent along in the chain is not an intermediate.
        let chain = chain_der
            .iter()
            .filter(|der| !self.trusted_roots.iter().any(|root| root.der == **der))
            .map(|der| Parsed::from_der(der, INTERMEDIATE))
            .collect::<Result<Vec<_>, _>>()?;
        let mut search = Search {
            chain: &chain,
            signatures: &self.signatures,
            visited: Vec::new(),
            verifications_left: MAX_VERIFICATIONS,
        };
        let issuers = self
            .issuers_of(&leaf, &mut search)?
            .into_iter()
            .cloned()
            .collect();
        let path = CertPath { leaf, issuers };
        path.check(at)?;
        Ok(path)
    }

    /// The issuers of `cert` up to a trusted root (its issuer first), each signature verified.
    ///
    /// Candidates are tried depth first; the search remembers the chain certificates already
    /// on the way up, so a loop of names cannot recurse forever, and counts its signature
    /// checks, so a chain of many look-alike certificates cannot make it run for long. A
    /// signature that fails under a key already linked to a trusted root means the certificate
    /// was altered (`bad_signature`); a same-named CA whose key is not the trusted one is
    /// someone else's (`untrusted_chain`).
    fn issuers_of<'a>(
        &'a self,
        cert: &Parsed,
        search: &mut Search<'a>,
    ) -> Result<Vec<&'a Parsed>, Invalid> {
        let mut failure = None;
        for root in self
            .trusted_roots
            .iter()
            .filter(|root| may_have_issued(root, cert))
        {
            if search.verifies(root, cert)? {
                return Ok(vec![root]);
            }
            let named_by_key_id = matches!(
                (&cert.authority_key_id, &root.subject_key_id),
                (Some(aki), Some(ski)) if aki == ski
            );
            remember(
                &mut failure,
                if named_by_key_id {
                    bad_signature(cert)
                } else {
                    Invalid::UntrustedChain(format!(
                        "the {} names a trusted root as its issuer but is not signed with its key",
                        cert.which
                    ))
                },
            );
        }
        if search.visited.len() < MAX_INTERMEDIATES {
            let chain = search.chain;
            for (i, candidate) in chain.iter().enumerate() {
                if search.visited.contains(&i) || !may_have_issued(candidate, cert) {
                    continue;
                }
                search.visited.push(i);
                let above = self.issuers_of(candidate, search);
                search.visited.pop();
                match above {
                    Ok(above) => {
                        if search.verifies(candidate, cert)? {
                            let mut path = vec![candidate];
                            path.extend(above);
                            return Ok(path);
                        }
                        remember(&mut failure, bad_signature(cert));
                    }
                    Err(e) => remember(&mut failure, e),
                }
            }
        }
        Err(failure.unwrap_or_else(|| {
            Invalid::UntrustedChain(format!(
                "no trusted root or given intermediate issued the {}",
                cert.which
            ))
        }))
    }
}

/// One path search: the intermediates given, those on the current way up, the signatures
/// verified before, and how many signature checks are left.
struct Search<'a> {
    chain: &'a [Parsed],
    signatures: &'a SignatureCache,
    visited: Vec<usize>,
    verifications_left: usize,
}

impl Search<'_> {
    /// Whether `cert`'s signature verifies with `issuer`'s key, counted (a remembered one
    /// too, so a search goes the same way whatever the cache holds).
    ///
    /// Errors: [`Invalid::UntrustedChain`] once the checks run out.
    fn verifies(&mut self, issuer: &Parsed, cert: &Parsed) -> Result<bool, Invalid> {
        self.verifications_left = self.verifications_left.checked_sub(1).ok_or_else(|| {
            Invalid::UntrustedChain(format!(
                "no path found within {MAX_VERIFICATIONS} signature checks"
            ))
        })?;
        // `signed` and the signature are both read from `der`, the cache's key.
        Ok(self.signatures.verifies(&issuer.key, &cert.der, || {
            issuer.key.verifies(&cert.signed, cert.signature())
        }))
    }
}

/// Keeps the first failure met, unless a more telling one than "untrusted" comes later.
fn remember(failure: &mut Option<Invalid>, new: Invalid) {
    let replace = match failure {
        None => true,
        Some(Invalid::UntrustedChain(_)) => !matches!(new, Invalid::UntrustedChain(_)),
        Some(_) => false,
    };
    if replace {
        *failure = Some(new);
    }
}

fn bad_signature(cert: &Parsed) -> Invalid {
    Invalid::BadSignature {
        which: cert.which.to_owned(),
    }
}

/// Whether `issuer` can be the issuer of `cert` by name and, when both say, by key identifier.
fn may_have_issued(issuer: &Parsed, cert: &Parsed) -> bool {
    issuer.cert.tbs_certificate.subject == cert.cert.tbs_certificate.issuer
        && match (&cert.authority_key_id, &issuer.subject_key_id) {
            (Some(aki), Some(ski)) => aki == ski,
            _ => true,
        }
}

/// A path whose signatures, validity periods, constraints and key usage are checked, and whose
/// revocation status is not yet: only [`CertPath::check_revocation`] turns it into a
/// [`ValidCertificate`].
#[derive(Debug, Clone)]
pub struct CertPath {
    leaf: Parsed,
    /// The leaf's issuer first, the trusted root last.
    issuers: Vec<Parsed>,
}

/// A certificate of a path whose revocation status must be known, with its issuer, whose CRL
/// or OCSP responder tells it.
#[derive(Debug, Clone, Copy)]
pub struct StatusQuery<'a> {
    /// The certificate's serial number (lowercase hex).
    pub serial: &'a str,
    /// The certificate itself: its CRL distribution points and OCSP responders say where to
    /// ask.
    pub subject: &'a Certificate,
    /// Its issuer's certificate.
    pub issuer: &'a Certificate,
    /// Whether the issuer is the trusted root or an intermediate CA.
    pub issuer_level: CaLevel,
}

impl CertPath {
    /// The leaf and every intermediate, each with its issuer, from the top down.
    pub fn status_queries(&self) -> Vec<StatusQuery<'_>> {
        let root = self.issuers.len().saturating_sub(1);
        let subjects = std::iter::once(&self.leaf).chain(&self.issuers);
        let mut queries: Vec<StatusQuery<'_>> = subjects
            .zip(self.issuers.iter().enumerate())
            .map(|(subject, (i, issuer))| StatusQuery {
                serial: &subject.serial,
                subject: &subject.cert,
                issuer: &issuer.cert,
                issuer_level: if i == root {
                    CaLevel::Root
                } else {
                    CaLevel::Intermediate
                },
            })
            .collect();
        queries.reverse();
        queries
    }

    /// Asks `revocation` about the leaf and every intermediate at `at` and, when none is
    /// revoked and every status is known, gives the valid certificate.
    ///
    /// Errors: [`Invalid::Revoked`] for the first revoked certificate from the top;
    /// [`Invalid::StatusUnknown`] when none is revoked but a status is unknown.
    pub fn check_revocation(
        self,
        revocation: &(impl RevocationSource + ?Sized),
        at: DateTime<Utc>,
    ) -> Result<ValidCertificate, Invalid> {
        let mut unknown = None;
        let queries = self.status_queries();
        let leaf = queries.len().saturating_sub(1);
        for (i, query) in queries.into_iter().enumerate() {
            match revocation.status(query.issuer, query.serial, at) {
                RevocationStatus::Good => {}
                RevocationStatus::Revoked { revoked_at, reason } => {
                    return Err(Invalid::Revoked {
                        serial: query.serial.to_owned(),
                        revoked_at,
                        reason: reason.as_str().to_owned(),
                    });
                }
                RevocationStatus::Unknown(why) => {
                    let which = if i == leaf { LEAF } else { INTERMEDIATE };
                    unknown.get_or_insert(Invalid::StatusUnknown(format!("{which}: {why}")));
                }
            }
        }
        match unknown {
            Some(unknown) => Err(unknown),
            None => self.leaf.valid_certificate(),
        }
    }

    /// The validity periods, constraints and key usage of every certificate of the path.
    fn check(&self, at: DateTime<Utc>) -> Result<(), Invalid> {
        for cert in std::iter::once(&self.leaf).chain(&self.issuers) {
            if at < cert.not_before {
                return Err(Invalid::NotYetValid {
                    which: cert.which.to_owned(),
                    not_before: cert.not_before,
                });
            }
            if at > cert.not_after {
                return Err(Invalid::Expired {
                    which: cert.which.to_owned(),
                    not_after: cert.not_after,
                });
            }
        }
        // The leaf's key signed at `at`: within its private key usage period, if it has one.
        if let Some((from, until)) = self.leaf.private_key_usage {
            let which = format!("{}'s private key (privateKeyUsagePeriod)", self.leaf.which);
            if let Some(from) = from.filter(|from| at < *from) {
                return Err(Invalid::NotYetValid {
                    which,
                    not_before: from,
                });
            }
            if let Some(until) = until.filter(|until| at > *until) {
                return Err(Invalid::Expired {
                    which,
                    not_after: until,
                });
            }
        }
        check_leaf(&self.leaf)?;
        for (below, issuer) in self.issuers.iter().enumerate() {
            // `below` intermediates sit between this issuer and the leaf.
            check_issuer(issuer, below)?;
        }
        Ok(())
    }
}

/// The leaf may sign (`digitalSignature`) and is no CA.
fn check_leaf(leaf: &Parsed) -> Result<(), Invalid> {
    if leaf.basic_constraints.as_ref().is_some_and(|bc| bc.ca) {
        return Err(Invalid::WrongKeyUsage(
            "the leaf certificate is a CA certificate".to_owned(),
        ));
    }
    match &leaf.key_usage {
        Some(usage) if usage.digital_signature() => Ok(()),
        Some(_) => Err(Invalid::WrongKeyUsage(
            "the leaf certificate's key usage does not include digitalSignature".to_owned(),
        )),
        None => Err(Invalid::WrongKeyUsage(
            "the leaf certificate has no key usage".to_owned(),
        )),
    }
}

/// An issuer is a CA (`basicConstraints` CA:true, its path length allowing the `below`
/// intermediates under it) that may sign certificates (`keyCertSign`).
fn check_issuer(issuer: &Parsed, below: usize) -> Result<(), Invalid> {
    let which = issuer.which;
    let Some(constraints) = issuer.basic_constraints.as_ref().filter(|bc| bc.ca) else {
        return Err(Invalid::WrongKeyUsage(format!(
            "the {which} issues certificates but is not a CA certificate"
        )));
    };
    if let Some(max) = constraints.path_len_constraint
        && below > usize::from(max)
    {
        return Err(Invalid::WrongKeyUsage(format!(
            "the {which} allows {max} intermediates under it, the path has {below}"
        )));
    }
    if !issuer
        .key_usage
        .as_ref()
        .is_some_and(KeyUsage::key_cert_sign)
    {
        return Err(Invalid::WrongKeyUsage(format!(
            "the {which}'s key usage does not include keyCertSign"
        )));
    }
    Ok(())
}

/// A certificate parsed once, with what the checks need of it.
#[derive(Clone)]
struct Parsed {
    /// How errors name it.
    which: &'static str,
    cert: Certificate,
    der: Vec<u8>,
    /// The exact signed bytes (the DER of `tbsCertificate` as received).
    signed: Vec<u8>,
    key: PublicKey,
    serial: String,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
    basic_constraints: Option<BasicConstraints>,
    key_usage: Option<KeyUsage>,
    /// The `privateKeyUsagePeriod` (from, until), when the certificate has one: its private
    /// key may sign only within it.
    private_key_usage: Option<KeyUsagePeriod>,
}

/// A `privateKeyUsagePeriod`: from, until (either may be absent).
type KeyUsagePeriod = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

impl std::fmt::Debug for Parsed {
    /// Which certificate and its serial number: its subject may be a person's name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("which", &self.which)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl Parsed {
    fn from_der(der: &[u8], which: &'static str) -> Result<Parsed, Invalid> {
        Self::from_der_knowing(der, which, &[])
    }

    /// [`Self::from_der`], with the critical extensions `also_known` processed by the caller.
    fn from_der_knowing(
        der: &[u8],
        which: &'static str,
        also_known: &[ObjectIdentifier],
    ) -> Result<Parsed, Invalid> {
        let malformed = |what: String| Invalid::Malformed(format!("the {which} {what}"));
        let cert = Certificate::from_der(der)
            .map_err(|e| malformed(format!("is not a DER X.509 certificate ({e})")))?;
        let signed = bign::signed_part(der)
            .map_err(|e| malformed(format!("is not a DER X.509 certificate ({e})")))?
            .to_vec();
        let tbs = &cert.tbs_certificate;
        if tbs.version != x509_cert::Version::V3 {
            return Err(malformed("is not an X.509 v3 certificate".to_owned()));
        }
        bign::check_signature_algorithm(&cert.signature_algorithm, &tbs.signature, which)?;
        let key = PublicKey::from_spki(&tbs.subject_public_key_info, which)?;

        let extensions = tbs.extensions.as_deref().unwrap_or_default();
        for (i, extension) in extensions.iter().enumerate() {
            if extensions[..i]
                .iter()
                .any(|e| e.extn_id == extension.extn_id)
            {
                return Err(malformed(format!(
                    "has the extension {} twice",
                    extension.extn_id
                )));
            }
            if extension.critical
                && !KNOWN_EXTENSIONS.contains(&extension.extn_id)
                && !also_known.contains(&extension.extn_id)
            {
                return Err(malformed(format!(
                    "has the critical extension {}, which is not processed here",
                    extension.extn_id
                )));
            }
        }
        let bad_extension = |name: &'static str| {
            move |_| malformed(format!("has a {name} extension that does not decode"))
        };
        let subject_key_id = tbs
            .get::<SubjectKeyIdentifier>()
            .map_err(bad_extension("subjectKeyIdentifier"))?
            .map(|(_, ski)| ski.0.as_bytes().to_vec());
        let authority_key_id = tbs
            .get::<AuthorityKeyIdentifier>()
            .map_err(bad_extension("authorityKeyIdentifier"))?
            .and_then(|(_, aki)| aki.key_identifier)
            .map(|id| id.as_bytes().to_vec());
        let basic_constraints = tbs
            .get::<BasicConstraints>()
            .map_err(bad_extension("basicConstraints"))?
            .map(|(_, bc)| bc);
        let key_usage = tbs
            .get::<KeyUsage>()
            .map_err(bad_extension("keyUsage"))?
            .map(|(_, usage)| usage);
        // Where the status is published: read by the checker, so they must make sense.
        tbs.get::<CrlDistributionPoints>()
            .map_err(bad_extension("cRLDistributionPoints"))?;
        tbs.get::<AuthorityInfoAccessSyntax>()
            .map_err(bad_extension("authorityInfoAccess"))?;
        let generalized = |t: Option<x509_cert::der::asn1::GeneralizedTime>| {
            t.map(|t| to_utc(x509_cert::time::Time::GeneralTime(t)))
                .map(|t| t.ok_or_else(|| malformed("has a time out of range".to_owned())))
                .transpose()
        };
        let private_key_usage = match tbs
            .get::<PrivateKeyUsagePeriod>()
            .map_err(bad_extension("privateKeyUsagePeriod"))?
        {
            Some((_, period)) => Some((
                generalized(period.not_before)?,
                generalized(period.not_after)?,
            )),
            None => None,
        };

        let time = |t| to_utc(t).ok_or_else(|| malformed("has a time out of range".to_owned()));
        let not_before = time(tbs.validity.not_before)?;
        let not_after = time(tbs.validity.not_after)?;
        Ok(Parsed {
            which,
            serial: serial_hex(tbs.serial_number.as_bytes()),
            not_before,
            not_after,
            subject_key_id,
            authority_key_id,
            basic_constraints,
            key_usage,
            private_key_usage,
            key,
            signed,
            der: der.to_vec(),
            cert,
        })
    }

    fn signature(&self) -> &[u8] {
        bign::signature_bytes(&self.cert.signature)
    }

    /// What the hub needs of a leaf whose path is checked.
    fn valid_certificate(&self) -> Result<ValidCertificate, Invalid> {
        let subject = &self.cert.tbs_certificate.subject;
        let required = |oid, name: &str| {
            attribute(subject, oid)?.ok_or_else(|| {
                Invalid::Malformed(format!("the leaf certificate's subject has no {name}"))
            })
        };
        let identification_number = required(SERIAL_NUMBER, "serialNumber")?;
        let surname = required(SURNAME, "surname")?;
        let given_name = required(GIVEN_NAME, "givenName")?;
        let patronymic = attribute(subject, COMMON_NAME)?
            .and_then(|cn| patronymic_of(&cn, &surname, &given_name));
        Ok(ValidCertificate {
            serial: self.serial.clone(),
            identification_number,
            surname,
            given_name,
            patronymic,
            organization: attribute(subject, ORGANIZATION_NAME)?,
            not_after: self.not_after,
            issuer: self.cert.tbs_certificate.issuer.to_string(),
            public_key: self.key.to_stb().to_vec(),
        })
    }
}

/// The key of a delegated OCSP responder of `issuer` (RFC 6960 4.2.2.2), checked: its
/// certificate `der` is issued and signed by `issuer`, valid at `at`, no CA, its key usage (if
/// any) allows `digitalSignature`, its extendedKeyUsage has id-kp-OCSPSigning, and it carries
/// id-pkix-ocsp-nocheck: its own revocation is not checked (that would need another status
/// source for every answer), so only a responder the CA declares not to be checked is taken.
///
/// Errors: what is wrong with the certificate, as [`Invalid`].
pub(crate) fn ocsp_responder_key(
    der: &[u8],
    issuer: &Certificate,
    at: DateTime<Utc>,
) -> Result<PublicKey, Invalid> {
    let responder = Parsed::from_der_knowing(der, RESPONDER, &[EXTENDED_KEY_USAGE])?;
    let issuer_tbs = &issuer.tbs_certificate;
    if responder.cert.tbs_certificate.issuer != issuer_tbs.subject {
        return Err(Invalid::UntrustedChain(format!(
            "the {RESPONDER} is not issued by the CA of the certificate asked about"
        )));
    }
    let issuer_key = PublicKey::from_spki(&issuer_tbs.subject_public_key_info, "issuer")?;
    if !issuer_key.verifies(&responder.signed, responder.signature()) {
        return Err(bad_signature(&responder));
    }
    if at < responder.not_before {
        return Err(Invalid::NotYetValid {
            which: RESPONDER.to_owned(),
            not_before: responder.not_before,
        });
    }
    if at > responder.not_after {
        return Err(Invalid::Expired {
            which: RESPONDER.to_owned(),
            not_after: responder.not_after,
        });
    }
    if responder.basic_constraints.as_ref().is_some_and(|bc| bc.ca) {
        return Err(Invalid::WrongKeyUsage(format!(
            "the {RESPONDER} is a CA certificate"
        )));
    }
    if responder
        .key_usage
        .as_ref()
        .is_some_and(|usage| !usage.digital_signature())
    {
        return Err(Invalid::WrongKeyUsage(format!(
            "the {RESPONDER}'s key usage does not include digitalSignature"
        )));
    }
    let purposes = responder
        .cert
        .tbs_certificate
        .get::<ExtendedKeyUsage>()
        .map_err(|_| {
            Invalid::Malformed(format!(
                "the {RESPONDER} has an extendedKeyUsage extension that does not decode"
            ))
        })?;
    if !purposes.is_some_and(|(_, eku)| eku.0.contains(&ID_KP_OCSP_SIGNING)) {
        return Err(Invalid::WrongKeyUsage(format!(
            "the {RESPONDER}'s extendedKeyUsage does not include id-kp-OCSPSigning"
        )));
    }
    let no_check = responder
        .cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .any(|e| e.extn_id == ID_PKIX_OCSP_NOCHECK);
    if !no_check {
        return Err(Invalid::StatusUnknown(format!(
            "the {RESPONDER} has no id-pkix-ocsp-nocheck, and its own status is not checked"
        )));
    }
    Ok(responder.key)
}

/// The one value of the attribute `oid` in `name`, trimmed; `None` when absent or blank.
///
/// Errors: an attribute given twice (which one would be the holder's?) or not a string.
fn attribute(name: &Name, oid: ObjectIdentifier) -> Result<Option<String>, Invalid> {
    let mut values = name
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == oid);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Invalid::Malformed(format!(
            "the leaf certificate's subject has the attribute {oid} twice"
        )));
    }
    let text = directory_string(&first.value).ok_or_else(|| {
        Invalid::Malformed(format!(
            "the leaf certificate's subject attribute {oid} is not a readable string"
        ))
    })?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// The text of a DirectoryString (UTF8String, PrintableString, BMPString; IA5String and
/// VisibleString too, which some CAs use).
fn directory_string(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            String::from_utf8(value.value().to_vec()).ok()
        }
        Tag::BmpString => {
            let units: Vec<u16> = value
                .value()
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            value
                .value()
                .len()
                .is_multiple_of(2)
                .then(|| String::from_utf16(&units).ok())
                .flatten()
        }
        _ => None,
    }
}

/// The patronymic in a common name written `surname given-name patronymic`: what is left
/// after the surname and the given name, when anything is.
fn patronymic_of(common_name: &str, surname: &str, given_name: &str) -> Option<String> {
    let words: Vec<&str> = common_name.split_whitespace().collect();
    let surname: Vec<&str> = surname.split_whitespace().collect();
    let given: Vec<&str> = given_name.split_whitespace().collect();
    let rest = words
        .strip_prefix(surname.as_slice())?
        .strip_prefix(given.as_slice())?;
    (!rest.is_empty()).then(|| rest.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patronymic_is_what_the_common_name_has_after_the_names() {
        assert_eq!(
            patronymic_of("Иванов Иван Иванович", "Иванов", "Иван").as_deref(),
            Some("Иванович")
        );
        assert_eq!(
            patronymic_of(
                "Римский-Корсаков Николай Андреевич",
                "Римский-Корсаков",
                "Николай"
            )
            .as_deref(),
            Some("Андреевич")
        );
        assert_eq!(patronymic_of("Иванов Иван", "Иванов", "Иван"), None);
        assert_eq!(
            patronymic_of("Иван Иванов Иванович", "Иванов", "Иван"),
            None
        );
        assert_eq!(patronymic_of("", "Иванов", "Иван"), None);
    }

    #[test]
    fn reason_codes_are_stable_and_only_an_unknown_status_is_transient() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let all = [
            (Invalid::Malformed(String::new()), "malformed"),
            (
                Invalid::BadSignature {
                    which: String::new(),
                },
                "bad_signature",
            ),
            (Invalid::UntrustedChain(String::new()), "untrusted_chain"),
            (
                Invalid::Expired {
                    which: String::new(),
                    not_after: at,
                },
                "expired",
            ),
            (
                Invalid::NotYetValid {
                    which: String::new(),
                    not_before: at,
                },
                "not_yet_valid",
            ),
            (
                Invalid::Revoked {
                    serial: String::new(),
                    revoked_at: at,
                    reason: String::new(),
                },
                "revoked",
            ),
            (Invalid::WrongKeyUsage(String::new()), "wrong_key_usage"),
            (
                Invalid::UnsupportedAlgorithm(String::new()),
                "unsupported_algorithm",
            ),
            (Invalid::StatusUnknown(String::new()), "status_unknown"),
            (
                Invalid::ChallengeExpired {
                    issued_at: at,
                    max_age_secs: 0,
                },
                "challenge_expired",
            ),
        ];
        for (invalid, code) in all {
            assert_eq!(invalid.reason_code(), code);
            assert_eq!(invalid.is_transient(), code == "status_unknown", "{code}");
        }
    }
}
