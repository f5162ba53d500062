//! A test certification authority of the Belarusian state PKI (GosSUOK): a root ("KUC") and an
//! intermediate, republican CA ("RUC") that issue citizens' EDS certificates and sign CRLs.
//!
//! The cryptography is real and is the Belarusian standards': every certificate and CRL is
//! signed with bign-with-hbelt (STB 34.101.45 signatures over the STB 34.101.31 belt-hash of the
//! DER `tbsCertificate`/`tbsCertList`), keys live on bign-curve256v1. So a validator tested
//! against this CA runs exactly the checks it would run against the real one.
//!
//! Wire format, as GosSUOK's certificates carry it:
//! - `signatureAlgorithm` is bign-with-hbelt `1.2.112.0.2.0.34.101.45.12` with its parameters
//!   **absent**; the signature BIT STRING holds the 48-byte bign signature `S0 || S1`
//!   (STB 34.101.45 byte order, as `bign256::dsa::Signature::to_bytes` gives it).
//! - `SubjectPublicKeyInfo` is bign-pubkey `1.2.112.0.2.0.34.101.45.2.1` with the curve OID
//!   bign-curve256v1 `1.2.112.0.2.0.34.101.45.3.1` as parameters, and the BIT STRING holds the
//!   64-byte STB 34.101.45 public key `<x> || <y>`, each coordinate 32 bytes **little-endian**.
//!   bign256 0.13 offers only SEC1 (`0x04 || X || Y`, big-endian) for its keys, so this module
//!   converts (reverses each coordinate); the standard's Annex G key pair in `vectors.rs`
//!   checks the conversion. (The crate's successor, `bignp256`, names this encoding
//!   `PublicKey::to_bytes`.)
//! - Key identifiers are RFC 5280's method 1 (SHA-1 of the key's BIT STRING), as x509-cert
//!   computes them.
//! - Every certificate below the root names where its status is published, under the CA's
//!   publication base URL ([`TestCa::with_publication`]; `http://gossuok.sim/` by default): a CRL
//!   distribution point `{base}crl/<issuer>.crl` (the CRL of the CA that issued it) and an
//!   authorityInfoAccess with the OCSP responder `{base}ocsp` and the issuer's certificate
//!   `{base}ca/<issuer>.der`. The root names nothing: it is the trust anchor, the same whatever
//!   the URL the simulator is reached at.
//!
//! Everything is a function of the seed: the same seed gives byte-identical CA certificates,
//! and a holder's key is a function of its `key_seed`. No private key is stored anywhere: the
//! keys are derived at start (belt-hash over a label and the seed, retried until the value is a
//! valid scalar). That makes the CA worthless outside tests, which is the point.

use std::fmt;
use std::time::Duration;

use belt_hash::{BeltHash, Digest};
use bign256::dsa::signature::{Keypair, Signer};
use bign256::dsa::{SigningKey, VerifyingKey};
use bign256::elliptic_curve::sec1::ToEncodedPoint;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use der::Encode;
use der::asn1::{
    Any, BitString, GeneralizedTime, Ia5String, ObjectIdentifier, PrintableStringRef, SetOfVec,
    Uint, UtcTime, Utf8StringRef,
};
use der::referenced::OwnedToRef;
use url::Url;
use x509_cert::Version;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CrlDistributionPoints, CrlNumber, CrlReason, KeyUsage, KeyUsages, PrivateKeyUsagePeriod,
    SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey,
    SignatureBitStringEncoding, SubjectPublicKeyInfoOwned,
};
use x509_cert::time::{Time, Validity};

/// bign-with-hbelt: a bign signature over the belt-hash of the message (STB 34.101.45).
pub(crate) const BIGN_WITH_HBELT: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.112.0.2.0.34.101.45.12");
/// bign-pubkey: the algorithm of a bign public key (STB 34.101.45).
pub(crate) const BIGN_PUBKEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.112.0.2.0.34.101.45.2.1");
/// bign-curve256v1: the standard 256-bit curve (STB 34.101.45).
pub(crate) const BIGN_CURVE256V1: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.112.0.2.0.34.101.45.3.1");

const ID_AT_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const ID_AT_SURNAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.4");
const ID_AT_SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");
const ID_AT_COUNTRY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
const ID_AT_ORGANIZATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const ID_AT_GIVEN_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.42");

/// The root's common name.
const ROOT_CN: &str = "GosSUOK Test Root CA (KUC)";
/// The intermediate's common name.
const INTERMEDIATE_CN: &str = "GosSUOK Test Republican CA (RUC)";
/// The organisation of both CAs.
const CA_ORGANIZATION: &str = "Simulator";

/// The publication base of [`TestCa::new`]: a name that resolves nowhere, for tests that make
/// no call. The simulator gives its own URL ([`TestCa::with_publication`]).
pub const DEFAULT_PUBLICATION: &str = "http://gossuok.sim/";

/// id-ad-ocsp (RFC 5280 4.2.2.1): the access method of an OCSP responder.
pub const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
/// id-ad-caIssuers (RFC 5280 4.2.2.1): where the issuer's certificate is published.
pub const ID_AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");

/// Separates this module's derivations from any other use of belt-hash over a seed.
const DERIVATION_DOMAIN: &[u8] = b"gossuok-sim/v1";

/// Which CA signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Issuer {
    /// The root CA (KUC): signs the intermediate, its own CRL and, for odd chains, leaves.
    Root,
    /// The republican CA (RUC): signs the citizens' certificates and their CRL.
    Intermediate,
}

impl Issuer {
    /// `root` or `intermediate`, as the publication URLs name the CA.
    pub fn label(self) -> &'static str {
        match self {
            Issuer::Root => "root",
            Issuer::Intermediate => "intermediate",
        }
    }
}

/// The person a leaf certificate is issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The identification number (личный номер); the subject's `serialNumber` (2.5.4.5).
    pub identification_number: String,
    /// The surname (2.5.4.4).
    pub surname: String,
    /// The given name (2.5.4.42).
    pub given_name: String,
    /// The patronymic, if the person has one (only in the common name).
    pub patronymic: Option<String>,
    /// The organisation the holder signs for (`organizationName`, 2.5.4.10): an authority's
    /// official has the authority's catalogue id there; none for a private person.
    pub organization: Option<String>,
}

impl Subject {
    /// `Surname GivenName Patronymic`, the patronymic left out when there is none.
    fn common_name(&self) -> String {
        let mut parts = vec![self.surname.as_str(), self.given_name.as_str()];
        if let Some(patronymic) = self.patronymic.as_deref().filter(|p| !p.is_empty()) {
            parts.push(patronymic);
        }
        parts.join(" ")
    }
}

/// What a leaf certificate's key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeafKeyUsage {
    /// `digitalSignature | nonRepudiation`: logging in and signing, what a citizen's EDS has.
    DigitalSignature,
    /// `keyEncipherment` only: a key that must not be accepted for login or signing.
    KeyEnciphermentOnly,
}

impl LeafKeyUsage {
    fn label(self) -> &'static str {
        match self {
            LeafKeyUsage::DigitalSignature => "digital_signature",
            LeafKeyUsage::KeyEnciphermentOnly => "key_encipherment_only",
        }
    }
}

/// How to issue a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueOptions {
    /// Start of validity (kept to the second).
    pub not_before: DateTime<Utc>,
    /// End of validity (kept to the second).
    pub not_after: DateTime<Utc>,
    /// The key usage.
    pub key_usage: LeafKeyUsage,
    /// The signing CA: the intermediate normally; the root to make an odd chain.
    pub signed_by: Issuer,
    /// The holder's key is derived from this: the same seed, the same key.
    pub key_seed: u64,
    /// A `privateKeyUsagePeriod` extension (from, until), to test that the hub enforces one;
    /// none by default, as RFC 5280 advises.
    pub private_key_usage: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Adds an extension of a made-up OID marked critical, which no validator can process and
    /// so must refuse the certificate for; false by default.
    pub unknown_critical_extension: bool,
}

impl Default for IssueOptions {
    /// Valid from a day ago for a year, `digitalSignature | nonRepudiation`, signed by the
    /// intermediate, key seed 0.
    fn default() -> Self {
        let now = Utc::now();
        IssueOptions {
            not_before: now - TimeDelta::days(1),
            not_after: now + TimeDelta::days(365),
            key_usage: LeafKeyUsage::DigitalSignature,
            signed_by: Issuer::Intermediate,
            key_seed: 0,
            private_key_usage: None,
            unknown_critical_extension: false,
        }
    }
}

/// A certificate issued by [`TestCa::issue`], with the holder's key.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, DER.
    pub certificate_der: Vec<u8>,
    /// The serial number in lower-case hex, without leading `00`.
    pub serial: String,
    /// The holder's key, as their key token holds it.
    pub holder: HolderKey,
}

/// A certificate holder's bign signing key. Its `Debug` shows the public key only.
#[derive(Clone)]
pub struct HolderKey(SigningKey);

impl HolderKey {
    /// Signs `message` as the holder's key token would: bign-with-hbelt, the 48-byte signature
    /// `S0 || S1` of STB 34.101.45 over the belt-hash of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 48] {
        Signer::<bign256::dsa::Signature>::sign(&self.0, message).to_bytes()
    }

    /// The public key as the certificate carries it: 64 bytes, STB 34.101.45 `<x> || <y>`, each
    /// coordinate little-endian.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        stb_public_key(self.0.verifying_key()).to_vec()
    }
}

impl fmt::Debug for HolderKey {
    /// Shows the public key; the secret stays out of logs and test output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HolderKey")
            .field("public_key", &hex::encode(self.public_key_bytes()))
            .finish_non_exhaustive()
    }
}

/// Why a certificate was revoked: RFC 5280's CRLReason, as the CRL entry says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// `unspecified` (0).
    Unspecified,
    /// `keyCompromise` (1): the key token was lost or stolen.
    KeyCompromise,
    /// `cACompromise` (2).
    CaCompromise,
    /// `affiliationChanged` (3).
    AffiliationChanged,
    /// `superseded` (4): a new certificate replaced it.
    Superseded,
    /// `cessationOfOperation` (5).
    CessationOfOperation,
    /// `certificateHold` (6): suspended.
    CertificateHold,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub(crate) const ALL: [RevocationReason; 7] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold,
    ];

    /// The snake_case name (`key_compromise`), as the simulator's JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key_compromise",
            RevocationReason::CaCompromise => "ca_compromise",
            RevocationReason::AffiliationChanged => "affiliation_changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation_of_operation",
            RevocationReason::CertificateHold => "certificate_hold",
        }
    }

    /// The reason named `name` (see [`RevocationReason::as_str`]).
    pub(crate) fn from_name(name: &str) -> Option<RevocationReason> {
        RevocationReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == name)
    }

    pub(crate) fn crl_reason(self) -> CrlReason {
        match self {
            RevocationReason::Unspecified => CrlReason::Unspecified,
            RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
            RevocationReason::CaCompromise => CrlReason::CaCompromise,
            RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
            RevocationReason::Superseded => CrlReason::Superseded,
            RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
            RevocationReason::CertificateHold => CrlReason::CertificateHold,
        }
    }
}

/// One entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The revoked certificate's serial number in hex (as [`Issued::serial`]).
    pub serial: String,
    /// When it was revoked (kept to the second).
    pub revoked_at: DateTime<Utc>,
    /// Why.
    pub reason: RevocationReason,
}

/// What can go wrong building a certificate or a CRL: only inputs out of X.509's range.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaError {
    /// A time before 1970 or after 9999.
    #[error("{0} is outside the times a certificate can carry (1970 to 9999)")]
    TimeOutOfRange(DateTime<Utc>),
    /// A serial number that is not 1 to 40 hex digits.
    #[error("serial {0:?} is not 1 to 40 hex digits")]
    BadSerial(String),
    /// The DER encoding failed.
    #[error("DER encoding: {0}")]
    Der(#[from] der::Error),
    /// The certificate builder failed.
    #[error("building the certificate: {0}")]
    Builder(#[from] x509_cert::builder::Error),
    /// Signing failed (it does not: bign signs any message).
    #[error("signing: {0}")]
    Signature(#[from] bign256::dsa::signature::Error),
    /// A publication URL that does not parse (the default one does).
    #[error("publication URL: {0}")]
    Url(#[from] url::ParseError),
}

/// One CA: its key, name and certificate.
#[derive(Clone)]
pub(crate) struct Authority {
    pub(crate) key: SigningKey,
    pub(crate) name: Name,
    pub(crate) certificate_der: Vec<u8>,
    serial: String,
}

/// A root and an intermediate CA derived from a seed. Its `Debug` leaves the keys out.
#[derive(Clone)]
pub struct TestCa {
    seed: u64,
    /// Where the CRLs, the OCSP responder and the CA certificates are published (ends with `/`).
    publication: Url,
    /// Further publication bases the certificates name after the first, in order.
    mirrors: Vec<Url>,
    root: Authority,
    intermediate: Authority,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("seed", &self.seed)
            .field("publication", &self.publication.as_str())
            .field("root_serial", &self.root.serial)
            .field("intermediate_serial", &self.intermediate.serial)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// The CA of `seed`: the same seed gives the same keys and byte-identical certificates.
    ///
    /// The root (`CN=GosSUOK Test Root CA (KUC), O=Simulator, C=BY`) is self-signed; the
    /// intermediate (`CN=GosSUOK Test Republican CA (RUC), O=Simulator, C=BY`) is signed by it
    /// with `pathLenConstraint` 0. Both are CAs with `keyCertSign | cRLSign`, valid for 20 years
    /// from 2020-01-01. What they issue names the publication base [`DEFAULT_PUBLICATION`].
    pub fn new(seed: u64) -> TestCa {
        Self::build(seed).expect("the test CA's fixed certificates always encode")
    }

    /// The same CA (the same keys, names and root certificate) publishing under `base`: the
    /// intermediate is signed again so that its CRL distribution point and OCSP responder are
    /// under `base`, and every certificate issued from now on names `base` too. A `base`
    /// without a trailing `/` gets one; its query and fragment are dropped.
    pub fn with_publication(&self, base: &Url) -> TestCa {
        let mut ca = self.clone();
        ca.publication = publication_base(base);
        ca.mirrors.clear();
        ca.resign_intermediate()
    }

    /// The same CA naming `base` too, after the places it names already: each certificate then
    /// has a CRL distribution point and an OCSP responder under each base, in order (to test
    /// that a client tries them in order).
    pub fn with_mirror(&self, base: &Url) -> TestCa {
        let mut ca = self.clone();
        ca.mirrors.push(publication_base(base));
        ca.resign_intermediate()
    }

    fn resign_intermediate(mut self) -> TestCa {
        self.intermediate.certificate_der = self
            .intermediate_certificate()
            .expect("the test CA's fixed certificates always encode");
        self
    }

    /// The seed the CA's keys derive from.
    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    /// The publication base URL (ends with `/`).
    pub fn publication(&self) -> &Url {
        &self.publication
    }

    /// Where `issuer`'s CRL is published: `{base}crl/<issuer>.crl`.
    pub fn crl_url(&self, issuer: Issuer) -> String {
        format!("{}crl/{}.crl", self.publication, issuer.label())
    }

    /// Where the OCSP responder answers: `{base}ocsp`.
    pub fn ocsp_url(&self) -> String {
        format!("{}ocsp", self.publication)
    }

    /// Where `issuer`'s certificate is published: `{base}ca/<issuer>.der`.
    pub fn ca_certificate_url(&self, issuer: Issuer) -> String {
        format!("{}ca/{}.der", self.publication, issuer.label())
    }

    fn build(seed: u64) -> Result<TestCa, CaError> {
        let validity = ca_validity()?;

        let root_key = derive_key(&[b"ca", b"root", &seed.to_be_bytes()]);
        let root_name = ca_name(ROOT_CN)?;
        let root_serial = derive_serial(&[b"ca", b"root", &seed.to_be_bytes()]);
        let root_signer = CaSigner(&root_key);
        let mut builder = CertificateBuilder::new(
            Profile::Manual { issuer: None },
            SerialNumber::new(&root_serial)?,
            validity,
            root_name.clone(),
            subject_public_key_info(root_key.verifying_key())?,
            &root_signer,
        )?;
        add_ca_extensions(&mut builder, &root_key, None, None)?;
        let root_der = builder.build::<CertSignature>()?.to_der()?;

        let intermediate_key = derive_key(&[b"ca", b"intermediate", &seed.to_be_bytes()]);
        let intermediate_serial = derive_serial(&[b"ca", b"intermediate", &seed.to_be_bytes()]);
        let mut ca = TestCa {
            seed,
            publication: Url::parse(DEFAULT_PUBLICATION)?,
            mirrors: Vec::new(),
            root: Authority {
                key: root_key,
                name: root_name,
                certificate_der: root_der,
                serial: hex::encode(root_serial),
            },
            intermediate: Authority {
                key: intermediate_key,
                name: ca_name(INTERMEDIATE_CN)?,
                certificate_der: Vec::new(),
                serial: hex::encode(intermediate_serial),
            },
        };
        ca.intermediate.certificate_der = ca.intermediate_certificate()?;
        Ok(ca)
    }

    /// The intermediate's certificate, signed by the root, naming the root's CRL and the OCSP
    /// responder under the publication base.
    fn intermediate_certificate(&self) -> Result<Vec<u8>, CaError> {
        let serial = serial_bytes(&self.intermediate.serial)?;
        let root_signer = CaSigner(&self.root.key);
        let mut builder = CertificateBuilder::new(
            Profile::Manual {
                issuer: Some(self.root.name.clone()),
            },
            SerialNumber::new(&serial)?,
            ca_validity()?,
            self.intermediate.name.clone(),
            subject_public_key_info(self.intermediate.key.verifying_key())?,
            &root_signer,
        )?;
        add_ca_extensions(
            &mut builder,
            &self.intermediate.key,
            Some(&self.root.key),
            Some(0),
        )?;
        self.add_publication_extensions(&mut builder, Issuer::Root)?;
        Ok(builder.build::<CertSignature>()?.to_der()?)
    }

    /// The CRL distribution point and the authorityInfoAccess (OCSP responder, issuer's
    /// certificate) of a certificate `issuer` signs, under the publication base (and the
    /// mirrors, in order).
    fn add_publication_extensions(
        &self,
        builder: &mut CertificateBuilder<'_, CaSigner<'_>>,
        issuer: Issuer,
    ) -> Result<(), CaError> {
        let uri = |url: String| -> Result<GeneralName, CaError> {
            Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(
                &url,
            )?))
        };
        let bases = std::iter::once(&self.publication).chain(&self.mirrors);
        let mut points = Vec::new();
        let mut access = Vec::new();
        for base in bases {
            points.push(DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![uri(format!(
                    "{base}crl/{}.crl",
                    issuer.label()
                ))?])),
                reasons: None,
                crl_issuer: None,
            });
            access.push(AccessDescription {
                access_method: ID_AD_OCSP,
                access_location: uri(format!("{base}ocsp"))?,
            });
            access.push(AccessDescription {
                access_method: ID_AD_CA_ISSUERS,
                access_location: uri(format!("{base}ca/{}.der", issuer.label()))?,
            });
        }
        builder.add_extension(&CrlDistributionPoints(points))?;
        builder.add_extension(&AuthorityInfoAccessSyntax(access))?;
        Ok(())
    }

    /// The root CA's self-signed certificate, DER.
    pub fn root_der(&self) -> Vec<u8> {
        self.root.certificate_der.clone()
    }

    /// The intermediate CA's certificate (signed by the root), DER.
    pub fn intermediate_der(&self) -> Vec<u8> {
        self.intermediate.certificate_der.clone()
    }

    /// The intermediate's serial number in lower-case hex (the root's CRL may list it).
    pub(crate) fn intermediate_serial(&self) -> &str {
        &self.intermediate.serial
    }

    /// Issues a leaf certificate to `subject`, signed by `options.signed_by`.
    ///
    /// The subject DN is `serialNumber` (the identification number), `surname`, `givenName`
    /// and `commonName` "Surname GivenName Patronymic"; the extensions are keyUsage (critical),
    /// basicConstraints CA:false, the authority and subject key identifiers, a CRL
    /// distribution point and the authorityInfoAccess (see the module). The serial (16 bytes, positive) is a function of the seed, the
    /// subject and the options, so issuing twice alike gives the same certificate.
    ///
    /// # Panics
    ///
    /// If a validity time is before 1970 or after 9999, which X.509 cannot carry.
    pub fn issue(&self, subject: &Subject, options: &IssueOptions) -> Issued {
        match self.try_issue(subject, options) {
            Ok(issued) => issued,
            Err(e) => panic!("cannot issue the certificate: {e}"),
        }
    }

    /// [`TestCa::issue`], with inputs out of X.509's range as an error.
    pub(crate) fn try_issue(
        &self,
        subject: &Subject,
        options: &IssueOptions,
    ) -> Result<Issued, CaError> {
        let issuer = self.authority(options.signed_by);
        let holder = derive_key(&[b"holder", &options.key_seed.to_be_bytes()]);
        let validity = validity(options.not_before, options.not_after)?;
        let serial = derive_serial(&[
            b"leaf",
            &self.seed.to_be_bytes(),
            options.signed_by.label().as_bytes(),
            &options.key_seed.to_be_bytes(),
            subject.identification_number.as_bytes(),
            subject.surname.as_bytes(),
            subject.given_name.as_bytes(),
            subject.patronymic.as_deref().unwrap_or("").as_bytes(),
            subject.organization.as_deref().unwrap_or("").as_bytes(),
            &options.not_before.timestamp().to_be_bytes(),
            &options.not_after.timestamp().to_be_bytes(),
            options.key_usage.label().as_bytes(),
        ]);
        let signer = CaSigner(&issuer.key);
        let mut builder = CertificateBuilder::new(
            Profile::Manual {
                issuer: Some(issuer.name.clone()),
            },
            SerialNumber::new(&serial)?,
            validity,
            leaf_name(subject)?,
            subject_public_key_info(holder.verifying_key())?,
            &signer,
        )?;
        let usage = match options.key_usage {
            LeafKeyUsage::DigitalSignature => {
                KeyUsages::DigitalSignature | KeyUsages::NonRepudiation
            }
            LeafKeyUsage::KeyEnciphermentOnly => KeyUsages::KeyEncipherment.into(),
        };
        builder.add_extension(&KeyUsage(usage))?;
        if let Some((from, until)) = options.private_key_usage {
            let generalized = |t: DateTime<Utc>| {
                x509_cert::der::asn1::GeneralizedTime::from_unix_duration(
                    std::time::Duration::from_secs(
                        u64::try_from(t.timestamp()).unwrap_or_default(),
                    ),
                )
            };
            builder.add_extension(&PrivateKeyUsagePeriod {
                not_before: Some(generalized(from)?),
                not_after: Some(generalized(until)?),
            })?;
        }
        builder.add_extension(&BasicConstraints {
            ca: false,
            path_len_constraint: None,
        })?;
        builder.add_extension(&authority_key_identifier(&issuer.key)?)?;
        builder.add_extension(&subject_key_identifier(&holder)?)?;
        self.add_publication_extensions(&mut builder, options.signed_by)?;
        if options.unknown_critical_extension {
            builder.add_extension(&UnknownCritical)?;
        }
        let certificate = builder.build::<CertSignature>()?;
        Ok(Issued {
            certificate_der: certificate.to_der()?,
            serial: hex::encode(serial),
            holder: HolderKey(holder),
        })
    }

    /// A CRL signed by `issuer` listing `revoked` (each entry with its CRLReason), with the
    /// authority key identifier and a CRL number (`this_update` in Unix seconds, so a later CRL
    /// has a greater number). An empty list leaves `revokedCertificates` out, as RFC 5280 asks.
    ///
    /// # Panics
    ///
    /// If a serial is not 1 to 40 hex digits, or a time is before 1970 or after 9999.
    pub fn crl_der(
        &self,
        issuer: Issuer,
        revoked: &[Revocation],
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Vec<u8> {
        match self.try_crl_der(issuer, revoked, this_update, next_update) {
            Ok(der) => der,
            Err(e) => panic!("cannot build the CRL: {e}"),
        }
    }

    /// [`TestCa::crl_der`], with inputs out of range as an error.
    pub(crate) fn try_crl_der(
        &self,
        issuer: Issuer,
        revoked: &[Revocation],
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<Vec<u8>, CaError> {
        let authority = self.authority(issuer);
        let no_extensions: &[Extension] = &[];
        let mut entries = Vec::with_capacity(revoked.len());
        for revocation in revoked {
            let reason = revocation
                .reason
                .crl_reason()
                .to_extension(&authority.name, no_extensions)?;
            entries.push(RevokedCert {
                serial_number: SerialNumber::new(&serial_bytes(&revocation.serial)?)?,
                revocation_date: x509_time(revocation.revoked_at)?,
                crl_entry_extensions: Some(vec![reason]),
            });
        }
        let crl_number = u64::try_from(this_update.timestamp())
            .map_err(|_| CaError::TimeOutOfRange(this_update))?;
        let extensions = vec![
            authority_key_identifier(&authority.key)?.to_extension(&authority.name, &[])?,
            CrlNumber(Uint::new(&crl_number.to_be_bytes())?).to_extension(&authority.name, &[])?,
        ];
        let tbs = TbsCertList {
            version: Version::V2,
            signature: bign_with_hbelt(),
            issuer: authority.name.clone(),
            this_update: x509_time(this_update)?,
            next_update: Some(x509_time(next_update)?),
            revoked_certificates: (!entries.is_empty()).then_some(entries),
            crl_extensions: Some(extensions),
        };
        let signature = CaSigner(&authority.key).try_sign(&tbs.to_der()?)?;
        let crl = CertificateList {
            tbs_cert_list: tbs,
            signature_algorithm: bign_with_hbelt(),
            signature: signature.to_bitstring()?,
        };
        Ok(crl.to_der()?)
    }

    pub(crate) fn authority(&self, issuer: Issuer) -> &Authority {
        match issuer {
            Issuer::Root => &self.root,
            Issuer::Intermediate => &self.intermediate,
        }
    }
}

/// The 64-byte STB 34.101.45 encoding of a public key: `<x> || <y>`, each little-endian.
pub(crate) fn stb_public_key(key: &VerifyingKey) -> [u8; 64] {
    let point = key.to_encoded_point(false);
    let mut out = [0_u8; 64];
    // An uncompressed SEC1 point is 0x04 || X || Y, both big-endian.
    if let Some(sec1) = point.as_bytes().get(1..65) {
        out.copy_from_slice(sec1);
    }
    out[..32].reverse();
    out[32..].reverse();
    out
}

/// The key of a 64-byte STB 34.101.45 public key, or `None` if it is not a point on the curve.
#[cfg(test)]
pub(crate) fn verifying_key_from_stb(bytes: &[u8]) -> Option<VerifyingKey> {
    let (x, y) = (bytes.get(..32)?, bytes.get(32..)?);
    if y.len() != 32 {
        return None;
    }
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend(x.iter().rev());
    sec1.extend(y.iter().rev());
    VerifyingKey::from_sec1_bytes(&sec1).ok()
}

/// A signing key from belt-hash over the domain, the parts (each length-prefixed) and a
/// counter, retried until the hash is a valid scalar (1..q-1: a retry is rarer than 1 in 10^9).
pub(crate) fn derive_key(parts: &[&[u8]]) -> SigningKey {
    let mut counter: u32 = 0;
    loop {
        let mut hasher = derivation(b"key", parts);
        hasher.update(counter.to_be_bytes());
        if let Ok(key) = SigningKey::from_slice(&hasher.finalize()) {
            return key;
        }
        counter = counter.wrapping_add(1);
    }
}

/// A 16-byte positive serial number without a leading zero byte (its top bits are `01`).
pub(crate) fn derive_serial(parts: &[&[u8]]) -> [u8; 16] {
    let digest = derivation(b"serial", parts).finalize();
    let mut serial = [0_u8; 16];
    serial.copy_from_slice(&digest[..16]);
    serial[0] = (serial[0] & 0x3f) | 0x40;
    serial
}

fn derivation(purpose: &[u8], parts: &[&[u8]]) -> BeltHash {
    let mut hasher = BeltHash::new();
    for part in [DERIVATION_DOMAIN, purpose].iter().chain(parts) {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher
}

/// The bytes of a hex serial number (an odd count of digits gets a leading zero).
pub(crate) fn serial_bytes(serial: &str) -> Result<Vec<u8>, CaError> {
    let bad = || CaError::BadSerial(serial.to_owned());
    if serial.is_empty() || serial.len() > 40 {
        return Err(bad());
    }
    let padded = if serial.len() % 2 == 1 {
        format!("0{serial}")
    } else {
        serial.to_owned()
    };
    let bytes = hex::decode(padded).map_err(|_| bad())?;
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    Ok(bytes[first..].to_vec())
}

/// `base` as a publication base: its query and fragment dropped, its path ending with `/`.
fn publication_base(base: &Url) -> Url {
    let mut publication = base.clone();
    publication.set_query(None);
    publication.set_fragment(None);
    if !publication.path().ends_with('/') {
        let path = format!("{}/", publication.path());
        publication.set_path(&path);
    }
    publication
}

/// The CAs' validity: 2020-01-01 to 2040-01-01.
fn ca_validity() -> Result<Validity, CaError> {
    let not_before = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single();
    let not_after = Utc.with_ymd_and_hms(2040, 1, 1, 0, 0, 0).single();
    let (Some(not_before), Some(not_after)) = (not_before, not_after) else {
        unreachable!("fixed dates are valid");
    };
    validity(not_before, not_after)
}

/// An X.509 time: UTCTime up to 2049, GeneralizedTime from 2050, to the second.
pub(crate) fn x509_time(at: DateTime<Utc>) -> Result<Time, CaError> {
    let out_of_range = || CaError::TimeOutOfRange(at);
    let seconds = u64::try_from(at.timestamp()).map_err(|_| out_of_range())?;
    let unix = Duration::from_secs(seconds);
    let time = der::DateTime::from_unix_duration(unix).map_err(|_| out_of_range())?;
    if time.year() < 2050 {
        Ok(Time::UtcTime(UtcTime::from_date_time(time)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(time)))
    }
}

pub(crate) fn validity(
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<Validity, CaError> {
    Ok(Validity {
        not_before: x509_time(not_before)?,
        not_after: x509_time(not_after)?,
    })
}

/// `C=BY, O=Simulator, CN=<cn>`.
pub(crate) fn ca_name(common_name: &str) -> Result<Name, CaError> {
    Ok(RdnSequence(vec![
        rdn(ID_AT_COUNTRY, printable_or_utf8("BY")?)?,
        rdn(ID_AT_ORGANIZATION, utf8(CA_ORGANIZATION)?)?,
        rdn(ID_AT_COMMON_NAME, utf8(common_name)?)?,
    ]))
}

/// `serialNumber=<id>, SN=<surname>, GN=<given name>, CN=<full name>`.
fn leaf_name(subject: &Subject) -> Result<Name, CaError> {
    let mut rdns = vec![
        rdn(
            ID_AT_SERIAL_NUMBER,
            printable_or_utf8(&subject.identification_number)?,
        )?,
        rdn(ID_AT_SURNAME, utf8(&subject.surname)?)?,
        rdn(ID_AT_GIVEN_NAME, utf8(&subject.given_name)?)?,
        rdn(ID_AT_COMMON_NAME, utf8(&subject.common_name())?)?,
    ];
    if let Some(organization) = subject.organization.as_deref() {
        rdns.push(rdn(ID_AT_ORGANIZATION, utf8(organization)?)?);
    }
    Ok(RdnSequence(rdns))
}

fn rdn(oid: ObjectIdentifier, value: Any) -> Result<RelativeDistinguishedName, CaError> {
    let attribute = AttributeTypeAndValue { oid, value };
    Ok(RelativeDistinguishedName(SetOfVec::try_from(vec![
        attribute,
    ])?))
}

/// A UTF8String: names are Cyrillic.
fn utf8(value: &str) -> Result<Any, CaError> {
    Ok(Any::encode_from(&Utf8StringRef::new(value)?)?)
}

/// A PrintableString (what X.520 asks for `serialNumber` and `C`), or a UTF8String when the
/// value has characters PrintableString lacks.
fn printable_or_utf8(value: &str) -> Result<Any, CaError> {
    match PrintableStringRef::new(value) {
        Ok(printable) => Ok(Any::encode_from(&printable)?),
        Err(_) => utf8(value),
    }
}

/// bign-with-hbelt with its parameters absent.
pub(crate) fn bign_with_hbelt() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: BIGN_WITH_HBELT,
        parameters: None,
    }
}

/// bign-pubkey with the curve as its parameters, and the STB public key.
pub(crate) fn subject_public_key_info(
    key: &VerifyingKey,
) -> Result<SubjectPublicKeyInfoOwned, CaError> {
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: BIGN_PUBKEY,
            parameters: Some(Any::encode_from(&BIGN_CURVE256V1)?),
        },
        subject_public_key: BitString::from_bytes(&stb_public_key(key))?,
    })
}

pub(crate) fn subject_key_identifier(key: &SigningKey) -> Result<SubjectKeyIdentifier, CaError> {
    let spki = subject_public_key_info(key.verifying_key())?;
    Ok(SubjectKeyIdentifier::try_from(spki.owned_to_ref())?)
}

pub(crate) fn authority_key_identifier(
    issuer: &SigningKey,
) -> Result<AuthorityKeyIdentifier, CaError> {
    let spki = subject_public_key_info(issuer.verifying_key())?;
    Ok(AuthorityKeyIdentifier::try_from(spki.owned_to_ref())?)
}

/// basicConstraints CA:true (with `path_len`), keyUsage `keyCertSign | cRLSign`, the subject
/// key identifier and, below the root, the authority key identifier.
fn add_ca_extensions(
    builder: &mut CertificateBuilder<'_, CaSigner<'_>>,
    key: &SigningKey,
    issuer: Option<&SigningKey>,
    path_len: Option<u8>,
) -> Result<(), CaError> {
    builder.add_extension(&BasicConstraints {
        ca: true,
        path_len_constraint: path_len,
    })?;
    builder.add_extension(&KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign))?;
    builder.add_extension(&subject_key_identifier(key)?)?;
    if let Some(issuer) = issuer {
        builder.add_extension(&authority_key_identifier(issuer)?)?;
    }
    Ok(())
}

/// An extension no one knows (a private-arc OID, its value a NULL), marked critical.
struct UnknownCritical;

impl Encode for UnknownCritical {
    fn encoded_len(&self) -> der::Result<der::Length> {
        der::asn1::Null.encoded_len()
    }

    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        der::asn1::Null.encode(writer)
    }
}

impl der::oid::AssociatedOid for UnknownCritical {
    const OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55555.1.2");
}

impl AsExtension for UnknownCritical {
    fn critical(&self, _subject: &Name, _extensions: &[Extension]) -> bool {
        true
    }
}

/// A CA's key as x509-cert's builder wants a signer: it names its algorithm (bign-with-hbelt,
/// no parameters) and gives its public key as an STB SubjectPublicKeyInfo.
pub(crate) struct CaSigner<'k>(pub(crate) &'k SigningKey);

/// A CA's public key, encodable as a SubjectPublicKeyInfo.
#[derive(Clone)]
pub(crate) struct CaPublicKey(VerifyingKey);

/// A bign signature as the builder puts it in the BIT STRING: the 48 bytes as they are.
pub(crate) struct CertSignature(pub(crate) [u8; 48]);

impl Keypair for CaSigner<'_> {
    type VerifyingKey = CaPublicKey;

    fn verifying_key(&self) -> CaPublicKey {
        CaPublicKey(self.0.verifying_key().clone())
    }
}

impl DynSignatureAlgorithmIdentifier for CaSigner<'_> {
    fn signature_algorithm_identifier(&self) -> x509_cert::spki::Result<AlgorithmIdentifierOwned> {
        Ok(bign_with_hbelt())
    }
}

impl Signer<CertSignature> for CaSigner<'_> {
    fn try_sign(&self, message: &[u8]) -> Result<CertSignature, bign256::dsa::signature::Error> {
        let signature: bign256::dsa::Signature = self.0.try_sign(message)?;
        Ok(CertSignature(signature.to_bytes()))
    }
}

impl EncodePublicKey for CaPublicKey {
    fn to_public_key_der(&self) -> x509_cert::spki::Result<der::Document> {
        let spki =
            subject_public_key_info(&self.0).map_err(|_| x509_cert::spki::Error::KeyMalformed)?;
        Ok(der::Document::encode_msg(&spki)?)
    }
}

impl SignatureBitStringEncoding for CertSignature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bign256::dsa::Signature;
    use bign256::dsa::signature::Verifier;
    use der::Decode;
    use x509_cert::Certificate;

    fn subject() -> Subject {
        Subject {
            identification_number: "3270287A012PB2".to_owned(),
            surname: "Иванова".to_owned(),
            given_name: "Анна".to_owned(),
            patronymic: Some("Сергеевна".to_owned()),
            organization: None,
        }
    }

    fn parse(der: &[u8]) -> Certificate {
        Certificate::from_der(der).expect("a DER certificate")
    }

    /// The key a certificate carries, decoded from its STB SubjectPublicKeyInfo.
    fn public_key(certificate: &Certificate) -> VerifyingKey {
        let spki = &certificate.tbs_certificate.subject_public_key_info;
        assert_eq!(spki.algorithm.oid, BIGN_PUBKEY);
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .expect("the curve as parameters")
            .decode_as::<ObjectIdentifier>()
            .expect("an OID");
        assert_eq!(curve, BIGN_CURVE256V1);
        let bytes = spki.subject_public_key.as_bytes().expect("whole bytes");
        assert_eq!(bytes.len(), 64);
        verifying_key_from_stb(bytes).expect("a point on the curve")
    }

    /// Whether `certificate`'s signature verifies with `issuer`'s key (bign over the belt-hash
    /// of the DER tbsCertificate).
    fn verifies(certificate: &Certificate, issuer: &VerifyingKey) -> bool {
        assert_eq!(certificate.signature_algorithm, bign_with_hbelt());
        assert_eq!(certificate.tbs_certificate.signature, bign_with_hbelt());
        let tbs = certificate.tbs_certificate.to_der().expect("DER");
        let bytes = certificate.signature.as_bytes().expect("whole bytes");
        let Ok(signature) = Signature::from_slice(bytes) else {
            return false;
        };
        issuer.verify(&tbs, &signature).is_ok()
    }

    fn extension<'c>(certificate: &'c Certificate, oid: &str) -> &'c Extension {
        let oid = ObjectIdentifier::new_unwrap(oid);
        certificate
            .tbs_certificate
            .extensions
            .as_ref()
            .and_then(|e| e.iter().find(|e| e.extn_id == oid))
            .expect("the extension")
    }

    fn key_usage(certificate: &Certificate) -> KeyUsage {
        let ext = extension(certificate, "2.5.29.15");
        assert!(ext.critical, "keyUsage is critical");
        KeyUsage::from_der(ext.extn_value.as_bytes()).expect("a keyUsage")
    }

    fn basic_constraints(certificate: &Certificate) -> BasicConstraints {
        let ext = extension(certificate, "2.5.29.19");
        BasicConstraints::from_der(ext.extn_value.as_bytes()).expect("basicConstraints")
    }

    fn at(year: i32, month: u32, day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, 0, 0, 0)
            .single()
            .expect("a date")
    }

    #[test]
    fn the_root_is_self_signed_and_self_verifies() {
        let ca = TestCa::new(7);
        let root = parse(&ca.root_der());
        let key = public_key(&root);
        assert!(verifies(&root, &key));
        assert_eq!(root.tbs_certificate.issuer, root.tbs_certificate.subject);
        assert_eq!(
            root.tbs_certificate.subject.to_string(),
            "CN=GosSUOK Test Root CA (KUC),O=Simulator,C=BY"
        );
        let constraints = basic_constraints(&root);
        assert!(constraints.ca);
        assert_eq!(
            key_usage(&root).0,
            KeyUsages::KeyCertSign | KeyUsages::CRLSign
        );
        let validity = &root.tbs_certificate.validity;
        assert_eq!(
            validity.not_before.to_unix_duration().as_secs(),
            u64::try_from(at(2020, 1, 1).timestamp()).expect("positive")
        );
        assert_eq!(
            validity.not_after.to_unix_duration().as_secs(),
            u64::try_from(at(2040, 1, 1).timestamp()).expect("positive")
        );
    }

    #[test]
    fn the_intermediate_verifies_with_the_roots_key_only() {
        let ca = TestCa::new(7);
        let root = parse(&ca.root_der());
        let intermediate = parse(&ca.intermediate_der());
        assert!(verifies(&intermediate, &public_key(&root)));
        assert!(!verifies(&intermediate, &public_key(&intermediate)));
        assert_eq!(
            intermediate.tbs_certificate.issuer,
            root.tbs_certificate.subject
        );
        let constraints = basic_constraints(&intermediate);
        assert!(constraints.ca);
        assert_eq!(constraints.path_len_constraint, Some(0));
        assert_eq!(
            key_usage(&intermediate).0,
            KeyUsages::KeyCertSign | KeyUsages::CRLSign
        );
        let serial = hex::encode(intermediate.tbs_certificate.serial_number.as_bytes());
        assert_eq!(serial, ca.intermediate_serial());
    }

    #[test]
    fn a_leaf_verifies_with_the_intermediates_key_and_names_the_person() {
        let ca = TestCa::new(7);
        let intermediate = parse(&ca.intermediate_der());
        let issued = ca.issue(&subject(), &IssueOptions::default());
        let leaf = parse(&issued.certificate_der);
        assert!(verifies(&leaf, &public_key(&intermediate)));
        assert!(!verifies(&leaf, &public_key(&parse(&ca.root_der()))));
        assert_eq!(
            leaf.tbs_certificate.issuer,
            intermediate.tbs_certificate.subject
        );
        assert_eq!(
            leaf.tbs_certificate.subject.to_string(),
            "CN=Иванова Анна Сергеевна,GIVENNAME=Анна,SN=Иванова,SERIALNUMBER=3270287A012PB2"
        );
        assert_eq!(
            hex::encode(leaf.tbs_certificate.serial_number.as_bytes()),
            issued.serial
        );
        assert_eq!(issued.serial.len(), 32);
        assert!(!issued.serial.starts_with("00"));
        assert!(!basic_constraints(&leaf).ca);
        assert_eq!(
            key_usage(&leaf).0,
            KeyUsages::DigitalSignature | KeyUsages::NonRepudiation
        );
        for oid in ["2.5.29.35", "2.5.29.14", "2.5.29.31"] {
            extension(&leaf, oid);
        }
        // The leaf's authority key identifier is the intermediate's subject key identifier.
        let aki =
            AuthorityKeyIdentifier::from_der(extension(&leaf, "2.5.29.35").extn_value.as_bytes())
                .expect("an AKI");
        let ski = SubjectKeyIdentifier::from_der(
            extension(&intermediate, "2.5.29.14").extn_value.as_bytes(),
        )
        .expect("an SKI");
        assert_eq!(aki.key_identifier, Some(ski.0));
        assert_eq!(
            issued.holder.public_key_bytes(),
            leaf.tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes()
        );
    }

    #[test]
    fn a_flipped_bit_in_the_signature_fails() {
        let ca = TestCa::new(7);
        let intermediate = parse(&ca.intermediate_der());
        let mut leaf = parse(
            &ca.issue(&subject(), &IssueOptions::default())
                .certificate_der,
        );
        let mut bytes = leaf.signature.raw_bytes().to_vec();
        bytes[20] ^= 0x01;
        leaf.signature = BitString::from_bytes(&bytes).expect("a bit string");
        assert!(!verifies(&leaf, &public_key(&intermediate)));
    }

    #[test]
    fn a_changed_certificate_no_longer_verifies() {
        let ca = TestCa::new(7);
        let intermediate = parse(&ca.intermediate_der());
        let mut leaf = parse(
            &ca.issue(&subject(), &IssueOptions::default())
                .certificate_der,
        );
        leaf.tbs_certificate.serial_number = SerialNumber::new(&[0x42]).expect("a serial");
        assert!(!verifies(&leaf, &public_key(&intermediate)));
    }

    #[test]
    fn the_signature_algorithm_has_no_parameters_and_the_signature_is_48_bytes() {
        let ca = TestCa::new(7);
        let root = parse(&ca.root_der());
        assert_eq!(root.signature_algorithm.oid, BIGN_WITH_HBELT);
        assert!(root.signature_algorithm.parameters.is_none());
        assert_eq!(root.signature.raw_bytes().len(), 48);
        assert_eq!(root.signature.unused_bits(), 0);
        // The encoded AlgorithmIdentifier is the bare OID in a SEQUENCE: no NULL.
        let encoded = root.signature_algorithm.to_der().expect("DER");
        assert_eq!(hex::encode(encoded), "300b06092a7000020022652d0c");
    }

    #[test]
    fn the_same_seed_gives_the_same_ca_and_another_seed_another() {
        let a = TestCa::new(42);
        let b = TestCa::new(42);
        assert_eq!(a.root_der(), b.root_der());
        assert_eq!(a.intermediate_der(), b.intermediate_der());
        let options = IssueOptions {
            key_seed: 5,
            ..IssueOptions::default()
        };
        assert_eq!(
            a.issue(&subject(), &options).certificate_der,
            b.issue(&subject(), &options).certificate_der
        );
        let c = TestCa::new(43);
        assert_ne!(a.root_der(), c.root_der());
        assert_ne!(
            public_key(&parse(&a.root_der())).to_sec1_bytes(),
            public_key(&parse(&c.root_der())).to_sec1_bytes()
        );
    }

    #[test]
    fn the_holders_signature_verifies_with_the_certificates_key() {
        let ca = TestCa::new(7);
        let issued = ca.issue(
            &subject(),
            &IssueOptions {
                key_seed: 99,
                ..IssueOptions::default()
            },
        );
        let key = public_key(&parse(&issued.certificate_der));
        let challenge = b"login challenge 0123456789";
        let signature = issued.holder.sign(challenge);
        let signature = Signature::from_bytes(&signature).expect("a bign signature");
        assert!(key.verify(challenge, &signature).is_ok());
        assert!(key.verify(b"another challenge", &signature).is_err());
        // Another key seed is another key.
        let other = ca.issue(&subject(), &IssueOptions::default());
        assert_ne!(
            other.holder.public_key_bytes(),
            issued.holder.public_key_bytes()
        );
    }

    #[test]
    fn a_root_signed_leaf_and_a_key_encipherment_leaf() {
        let ca = TestCa::new(7);
        let root = parse(&ca.root_der());
        let odd = parse(
            &ca.issue(
                &subject(),
                &IssueOptions {
                    signed_by: Issuer::Root,
                    ..IssueOptions::default()
                },
            )
            .certificate_der,
        );
        assert!(verifies(&odd, &public_key(&root)));
        assert_eq!(odd.tbs_certificate.issuer, root.tbs_certificate.subject);

        let wrong = parse(
            &ca.issue(
                &subject(),
                &IssueOptions {
                    key_usage: LeafKeyUsage::KeyEnciphermentOnly,
                    ..IssueOptions::default()
                },
            )
            .certificate_der,
        );
        let usage = key_usage(&wrong);
        assert!(usage.key_encipherment());
        assert!(!usage.digital_signature() && !usage.non_repudiation());
    }

    #[test]
    fn validity_is_kept_to_the_second_and_late_dates_are_generalized_time() {
        let ca = TestCa::new(7);
        let not_before = at(2019, 5, 1) + TimeDelta::milliseconds(1500);
        let options = IssueOptions {
            not_before,
            not_after: at(2051, 1, 1),
            ..IssueOptions::default()
        };
        let leaf = parse(&ca.issue(&subject(), &options).certificate_der);
        let validity = &leaf.tbs_certificate.validity;
        assert!(matches!(validity.not_before, Time::UtcTime(_)));
        assert!(matches!(validity.not_after, Time::GeneralTime(_)));
        assert_eq!(
            validity.not_before.to_unix_duration().as_secs(),
            u64::try_from(not_before.timestamp()).expect("positive")
        );
        assert!(
            ca.try_issue(
                &subject(),
                &IssueOptions {
                    not_before: at(1969, 12, 31),
                    ..IssueOptions::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn the_crl_verifies_and_lists_each_serial_with_its_reason() {
        let ca = TestCa::new(7);
        let intermediate = parse(&ca.intermediate_der());
        let issued = ca.issue(&subject(), &IssueOptions::default());
        let revoked = [
            Revocation {
                serial: issued.serial.clone(),
                revoked_at: at(2026, 3, 1),
                reason: RevocationReason::KeyCompromise,
            },
            Revocation {
                serial: "ff01".to_owned(),
                revoked_at: at(2026, 3, 2),
                reason: RevocationReason::CertificateHold,
            },
        ];
        let der = ca.crl_der(
            Issuer::Intermediate,
            &revoked,
            at(2026, 3, 3),
            at(2026, 3, 4),
        );
        let crl = CertificateList::from_der(&der).expect("a CRL");
        assert_eq!(crl.signature_algorithm, bign_with_hbelt());
        let tbs = crl.tbs_cert_list.to_der().expect("DER");
        let signature = Signature::from_slice(crl.signature.raw_bytes()).expect("a bign signature");
        let key = public_key(&intermediate);
        assert!(key.verify(&tbs, &signature).is_ok());
        assert!(
            public_key(&parse(&ca.root_der()))
                .verify(&tbs, &signature)
                .is_err()
        );

        assert_eq!(
            crl.tbs_cert_list.issuer,
            intermediate.tbs_certificate.subject
        );
        assert_eq!(crl.tbs_cert_list.version, Version::V2);
        let entries = crl.tbs_cert_list.revoked_certificates.expect("entries");
        // The DER content of a serial with its top bit set has a leading 00 (it is positive).
        let serials: Vec<String> = entries
            .iter()
            .map(|e| hex::encode(e.serial_number.as_bytes()))
            .collect();
        let serials: Vec<&str> = serials
            .iter()
            .map(|s| s.strip_prefix("00").unwrap_or(s))
            .collect();
        assert_eq!(serials, [issued.serial.as_str(), "ff01"]);
        let reasons: Vec<CrlReason> = entries
            .iter()
            .map(|e| {
                let ext = &e.crl_entry_extensions.as_ref().expect("extensions")[0];
                assert_eq!(ext.extn_id, ObjectIdentifier::new_unwrap("2.5.29.21"));
                CrlReason::from_der(ext.extn_value.as_bytes()).expect("a reason")
            })
            .collect();
        assert_eq!(
            reasons,
            [CrlReason::KeyCompromise, CrlReason::CertificateHold]
        );
        // The revocation date is kept.
        assert_eq!(
            entries[0].revocation_date.to_unix_duration().as_secs(),
            u64::try_from(at(2026, 3, 1).timestamp()).expect("positive")
        );
    }

    #[test]
    fn an_empty_root_crl_has_no_entries_and_verifies_with_the_root() {
        let ca = TestCa::new(7);
        let der = ca.crl_der(Issuer::Root, &[], at(2026, 3, 3), at(2026, 3, 4));
        let crl = CertificateList::from_der(&der).expect("a CRL");
        assert!(crl.tbs_cert_list.revoked_certificates.is_none());
        let root = parse(&ca.root_der());
        let tbs = crl.tbs_cert_list.to_der().expect("DER");
        let signature = Signature::from_slice(crl.signature.raw_bytes()).expect("bign");
        assert!(public_key(&root).verify(&tbs, &signature).is_ok());
        let next = crl.tbs_cert_list.next_update.expect("a next update");
        assert_eq!(
            next.to_unix_duration().as_secs(),
            u64::try_from(at(2026, 3, 4).timestamp()).expect("positive")
        );
    }

    #[test]
    fn serials_parse_as_hex_and_reasons_by_name() {
        assert_eq!(serial_bytes("00ff").expect("hex"), [0xff]);
        assert_eq!(serial_bytes("abc").expect("hex"), [0x0a, 0xbc]);
        assert_eq!(serial_bytes("0").expect("hex"), [0x00]);
        assert!(serial_bytes("xyz").is_err());
        assert!(serial_bytes("").is_err());
        assert!(serial_bytes(&"1".repeat(41)).is_err());
        for reason in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_name(reason.as_str()), Some(reason));
        }
        assert_eq!(RevocationReason::from_name("keyCompromise"), None);
    }

    #[test]
    fn debug_output_leaves_the_secret_keys_out() {
        let ca = TestCa::new(7);
        let issued = ca.issue(&subject(), &IssueOptions::default());
        let secret = hex::encode(issued.holder.0.to_bytes());
        let printed = format!("{issued:?} {ca:?}");
        assert!(!printed.contains(&secret));
        assert!(!printed.contains(&hex::encode(ca.root.key.to_bytes())));
        assert!(printed.contains(&hex::encode(issued.holder.public_key_bytes())));
    }

    #[test]
    fn the_publication_base_ends_with_a_slash_and_changes_all_but_the_root() {
        let ca = TestCa::new(7);
        assert_eq!(ca.crl_url(Issuer::Root), "http://gossuok.sim/crl/root.crl");
        let base = url::Url::parse("https://ca.example:8443/pki?x=1").expect("a URL");
        let published = ca.with_publication(&base);
        assert_eq!(
            published.publication().as_str(),
            "https://ca.example:8443/pki/"
        );
        assert_eq!(
            published.crl_url(Issuer::Intermediate),
            "https://ca.example:8443/pki/crl/intermediate.crl"
        );
        assert_eq!(published.ocsp_url(), "https://ca.example:8443/pki/ocsp");
        assert_eq!(published.root_der(), ca.root_der());
        let intermediate = parse(&published.intermediate_der());
        assert!(verifies(&intermediate, &public_key(&parse(&ca.root_der()))));
        let cdp = extension(&intermediate, "2.5.29.31");
        assert!(!cdp.critical);
        let aia = extension(&intermediate, "1.3.6.1.5.5.7.1.1");
        assert!(!aia.critical);
        let text = String::from_utf8_lossy(cdp.extn_value.as_bytes()).into_owned();
        assert!(
            text.contains("https://ca.example:8443/pki/crl/root.crl"),
            "{text}"
        );
    }

    #[test]
    fn stb_public_key_round_trips() {
        let key = derive_key(&[b"test"]);
        let bytes = stb_public_key(key.verifying_key());
        let back = verifying_key_from_stb(&bytes).expect("a point");
        assert_eq!(back.to_sec1_bytes(), key.verifying_key().to_sec1_bytes());
        assert!(verifying_key_from_stb(&bytes[..63]).is_none());
        let spki = subject_public_key_info(key.verifying_key()).expect("an SPKI");
        let _ = spki.owned_to_ref();
    }
}
