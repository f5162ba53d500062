//! OCSP (RFC 6960) for the test CA: the responder the simulator runs at `/ocsp`, and the
//! responses tests build themselves, honest or forged, to check that a client trusts only the
//! honest ones.
//!
//! The responses are what a CA-signed responder gives: a BasicOCSPResponse signed with
//! bign-with-hbelt by the CA that issued the certificate asked about (its responderID byKey, the
//! SHA-1 of the CA's key, or byName), `thisUpdate` now and `nextUpdate` one CRL validity later,
//! the request's nonce echoed. Requests name certificates by CertID with SHA-1 (RFC 5019's
//! choice, what clients send), SHA-256 or belt-hash; the response echoes the CertID as asked.
//! One response answers for one CA: a request about certificates of both CAs, or of a CA this
//! one does not know, is `unauthorized` (RFC 6960 2.3); bytes that are not an OCSPRequest, or a
//! nonce outside RFC 8954's 1 to 32 bytes, are `malformedRequest`.
//!
//! A delegated responder (a certificate the CA issues with id-kp-OCSPSigning and
//! id-pkix-ocsp-nocheck, included in the response's `certs`) is available to tests
//! ([`OcspSigner::Delegated`]) and as the `/sim/ocsp` mode `delegated_responder`.

use belt_hash::BeltHash;
use bign256::dsa::SigningKey;
use bign256::dsa::signature::Signer;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Length, Writer};
use serde::{Deserialize, Serialize};
use x509_cert::Certificate;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use super::ca::{
    self, CaError, CaSigner, CertSignature, Issuer, RevocationReason, TestCa, stb_public_key,
};

/// id-pkix-ocsp-basic: the one response type (RFC 6960 4.2.1).
pub const ID_PKIX_OCSP_BASIC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce (RFC 6960 4.4.1).
pub const ID_PKIX_OCSP_NONCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1): a responder certificate not to be checked.
pub const ID_PKIX_OCSP_NOCHECK: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
/// id-kp-OCSPSigning (RFC 5280 4.2.1.12): the key signs OCSP responses.
pub const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// SHA-1, the CertID hash of RFC 5019 and of the hub's requests.
pub const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// SHA-256.
pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// belt-hash (STB 34.101.31).
pub const ID_BELT_HASH: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.112.0.2.0.34.101.31.81");

/// The longest nonce a responder takes (RFC 8954).
pub const MAX_NONCE_LEN: usize = 32;

/// A made-up extension, marked critical in [`OcspAnswer::critical_extension`] answers: no
/// client knows it, so every client must refuse the answer.
const UNKNOWN_EXTENSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55555.1.1");

/// What the CA says of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspStatus {
    /// Issued by the CA and not revoked.
    Good,
    /// Revoked.
    Revoked {
        /// When (kept to the second).
        revoked_at: DateTime<Utc>,
        /// Why.
        reason: RevocationReason,
    },
    /// The CA knows no certificate of this serial.
    Unknown,
}

/// Who signs a response. Only [`OcspSigner::Issuer`] and a proper
/// [`OcspSigner::Delegated`] responder make an answer a client may trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspSigner {
    /// The CA that issued the certificate asked about: what the simulator answers.
    Issuer,
    /// The CA's other key (the root for a leaf's answer): a real CA key, but not the one.
    OtherCa,
    /// A key that belongs to no CA, naming the issuer as responder: an impostor.
    Stranger,
    /// The issuer's signature with one bit flipped.
    CorruptedSignature,
    /// A delegated responder whose certificate the issuer signed, included in `certs`.
    Delegated(ResponderOptions),
}

/// The certificate of a delegated OCSP responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponderOptions {
    /// Whether it carries id-kp-OCSPSigning in its extendedKeyUsage (a responder must).
    pub ocsp_signing: bool,
    /// Whether it carries id-pkix-ocsp-nocheck.
    pub no_check: bool,
    /// Start of validity (kept to the second).
    pub not_before: DateTime<Utc>,
    /// End of validity (kept to the second).
    pub not_after: DateTime<Utc>,
}

impl Default for ResponderOptions {
    /// id-kp-OCSPSigning and nocheck, valid as long as the CAs (2020 to 2040).
    fn default() -> Self {
        let at = |year| {
            Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        };
        ResponderOptions {
            ocsp_signing: true,
            no_check: true,
            not_before: at(2020),
            not_after: at(2040),
        }
    }
}

/// How the response names its signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponderIdForm {
    /// The SHA-1 of the signer's public key.
    #[default]
    ByKey,
    /// The signer's subject name.
    ByName,
}

/// One successful answer about one certificate, to build with [`TestCa::ocsp_response_der`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspAnswer {
    /// The CA that issued the certificate: its name and key make the CertID.
    pub issuer: Issuer,
    /// The certificate's serial (hex, as [`super::ca::Issued::serial`]).
    pub serial: String,
    /// What the answer says.
    pub status: OcspStatus,
    /// `producedAt`.
    pub produced_at: DateTime<Utc>,
    /// `thisUpdate`.
    pub this_update: DateTime<Utc>,
    /// `nextUpdate`, if any.
    pub next_update: Option<DateTime<Utc>>,
    /// The nonce extension, if any.
    pub nonce: Option<Vec<u8>>,
    /// Who signs.
    pub signer: OcspSigner,
    /// How the signer is named.
    pub responder_id: ResponderIdForm,
    /// Adds a critical single extension no one knows.
    pub critical_extension: bool,
}

impl OcspAnswer {
    /// An honest answer made at `at`: `thisUpdate` and `producedAt` then, `nextUpdate`
    /// `validity` later, signed by the issuer, no nonce.
    pub fn new(
        issuer: Issuer,
        serial: &str,
        status: OcspStatus,
        at: DateTime<Utc>,
        validity: TimeDelta,
    ) -> OcspAnswer {
        OcspAnswer {
            issuer,
            serial: serial.to_owned(),
            status,
            produced_at: at,
            this_update: at,
            next_update: Some(at + validity),
            nonce: None,
            signer: OcspSigner::Issuer,
            responder_id: ResponderIdForm::ByKey,
            critical_extension: false,
        }
    }
}

/// How the simulator's responder answers, set at run time with `PUT /sim/ocsp`: honestly, or
/// with one of the faults a client must not trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OcspMode {
    /// Signed by the issuing CA, fresh, the nonce echoed.
    #[default]
    Normal,
    /// Signed by a delegated responder (honest too).
    DelegatedResponder,
    /// `tryLater`, no answer.
    TryLater,
    /// `internalError`, no answer.
    InternalError,
    /// The issuer's signature with a bit flipped.
    BadSignature,
    /// Signed by a key of no CA, claiming to be the issuer.
    WrongKey,
    /// `nextUpdate` already past.
    Stale,
    /// About another serial than asked.
    OtherSerial,
    /// The nonce left out.
    NoNonce,
    /// Another nonce than the request's.
    WrongNonce,
}

impl TestCa {
    /// The CertID a client sends for the certificate `serial` of `issuer`: SHA-1 (parameters
    /// NULL) of the issuer's name and of its public key's bits.
    ///
    /// # Panics
    ///
    /// If `serial` is not 1 to 40 hex digits.
    pub fn ocsp_cert_id(&self, issuer: Issuer, serial: &str) -> CertId {
        match self.try_cert_id(issuer, serial) {
            Ok(id) => id,
            Err(e) => panic!("cannot build the CertID: {e}"),
        }
    }

    /// A successful OCSPResponse (DER) saying `answer`.
    ///
    /// # Panics
    ///
    /// If the serial is not 1 to 40 hex digits or a time is out of X.509's range.
    pub fn ocsp_response_der(&self, answer: &OcspAnswer) -> Vec<u8> {
        let build = || -> Result<Vec<u8>, CaError> {
            let mut single = single_response(
                self.try_cert_id(answer.issuer, &answer.serial)?,
                answer.status,
                answer.this_update,
                answer.next_update,
            )?;
            if answer.critical_extension {
                single.single_extensions = Some(vec![Extension {
                    extn_id: UNKNOWN_EXTENSION,
                    critical: true,
                    extn_value: OctetString::new(Null.to_der()?)?,
                }]);
            }
            self.try_basic_response(
                answer.issuer,
                vec![single],
                answer.produced_at,
                answer.nonce.as_deref(),
                answer.signer,
                answer.responder_id,
            )
        };
        match build() {
            Ok(der) => der,
            Err(e) => panic!("cannot build the OCSP response: {e}"),
        }
    }

    /// The certificate (DER) of the delegated OCSP responder of `issuer`: signed by it,
    /// `CN=GosSUOK Test OCSP Responder (<issuer>)`, keyUsage digitalSignature and, as the
    /// options say, id-kp-OCSPSigning and id-pkix-ocsp-nocheck.
    ///
    /// # Panics
    ///
    /// If a validity time is out of X.509's range.
    pub fn ocsp_responder_der(&self, issuer: Issuer, options: &ResponderOptions) -> Vec<u8> {
        match self.try_responder_certificate(issuer, options) {
            Ok(der) => der,
            Err(e) => panic!("cannot issue the responder certificate: {e}"),
        }
    }

    /// The SHA-1 CertID of `serial` issued by `issuer`.
    fn try_cert_id(&self, issuer: Issuer, serial: &str) -> Result<CertId, CaError> {
        let authority = self.authority(issuer);
        let name = authority.name.to_der()?;
        let key = stb_public_key(authority.key.verifying_key());
        Ok(CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: ID_SHA1,
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new(sha1(&name))?,
            issuer_key_hash: OctetString::new(sha1(&key))?,
            serial_number: SerialNumber::new(&ca::serial_bytes(serial)?)?,
        })
    }

    /// Which of the two CAs `id` names (by its name and key hashed as it says), if either.
    fn issuer_of(&self, id: &CertId) -> Option<Issuer> {
        [Issuer::Intermediate, Issuer::Root]
            .into_iter()
            .find(|issuer| {
                let authority = self.authority(*issuer);
                let Ok(name) = authority.name.to_der() else {
                    return false;
                };
                let key = stb_public_key(authority.key.verifying_key());
                let oid = id.hash_algorithm.oid;
                digest(oid, &name).is_some_and(|h| h == id.issuer_name_hash.as_bytes())
                    && digest(oid, &key).is_some_and(|h| h == id.issuer_key_hash.as_bytes())
            })
    }

    fn responder_key(&self, issuer: Issuer) -> SigningKey {
        ca::derive_key(&[
            b"ocsp-responder",
            issuer.label().as_bytes(),
            &self.seed().to_be_bytes(),
        ])
    }

    fn try_responder_certificate(
        &self,
        issuer: Issuer,
        options: &ResponderOptions,
    ) -> Result<Vec<u8>, CaError> {
        let authority = self.authority(issuer);
        let key = self.responder_key(issuer);
        let serial = ca::derive_serial(&[
            b"ocsp-responder",
            issuer.label().as_bytes(),
            &self.seed().to_be_bytes(),
            &options.not_before.timestamp().to_be_bytes(),
            &options.not_after.timestamp().to_be_bytes(),
            &[u8::from(options.ocsp_signing), u8::from(options.no_check)],
        ]);
        let signer = CaSigner(&authority.key);
        let common_name = match issuer {
            Issuer::Root => "GosSUOK Test OCSP Responder (KUC)",
            Issuer::Intermediate => "GosSUOK Test OCSP Responder (RUC)",
        };
        let mut builder = CertificateBuilder::new(
            Profile::Manual {
                issuer: Some(authority.name.clone()),
            },
            SerialNumber::new(&serial)?,
            ca::validity(options.not_before, options.not_after)?,
            ca::ca_name(common_name)?,
            ca::subject_public_key_info(key.verifying_key())?,
            &signer,
        )?;
        builder.add_extension(&KeyUsage(KeyUsages::DigitalSignature.into()))?;
        builder.add_extension(&BasicConstraints {
            ca: false,
            path_len_constraint: None,
        })?;
        builder.add_extension(&ca::authority_key_identifier(&authority.key)?)?;
        builder.add_extension(&ca::subject_key_identifier(&key)?)?;
        if options.ocsp_signing {
            builder.add_extension(&ExtendedKeyUsage(vec![ID_KP_OCSP_SIGNING]))?;
        }
        if options.no_check {
            builder.add_extension(&NoCheck)?;
        }
        Ok(builder.build::<CertSignature>()?.to_der()?)
    }

    /// A successful OCSPResponse (DER) with `responses`, signed as `signer` says.
    fn try_basic_response(
        &self,
        issuer: Issuer,
        responses: Vec<SingleResponse>,
        produced_at: DateTime<Utc>,
        nonce: Option<&[u8]>,
        signer: OcspSigner,
        responder_id: ResponderIdForm,
    ) -> Result<Vec<u8>, CaError> {
        let authority = self.authority(issuer);
        let other = match issuer {
            Issuer::Root => Issuer::Intermediate,
            Issuer::Intermediate => Issuer::Root,
        };
        // The key that signs, the certificate that names the responder (its subject and key)
        // and the certificates sent along.
        let (key, named_name, named_key, certs) = match signer {
            OcspSigner::Issuer | OcspSigner::CorruptedSignature => (
                authority.key.clone(),
                authority.name.clone(),
                authority.key.clone(),
                None,
            ),
            OcspSigner::Stranger => (
                ca::derive_key(&[b"ocsp-stranger", &self.seed().to_be_bytes()]),
                authority.name.clone(),
                authority.key.clone(),
                None,
            ),
            OcspSigner::OtherCa => {
                let other = self.authority(other);
                (
                    other.key.clone(),
                    other.name.clone(),
                    other.key.clone(),
                    None,
                )
            }
            OcspSigner::Delegated(options) => {
                let der = self.try_responder_certificate(issuer, &options)?;
                let certificate = Certificate::from_der(&der)?;
                let key = self.responder_key(issuer);
                let name = certificate.tbs_certificate.subject.clone();
                (key.clone(), name, key, Some(vec![certificate]))
            }
        };
        let responder_id = match responder_id {
            ResponderIdForm::ByName => ResponderId::ByName(named_name),
            ResponderIdForm::ByKey => ResponderId::ByKey(OctetString::new(sha1(&stb_public_key(
                named_key.verifying_key(),
            )))?),
        };
        let response_extensions = match nonce {
            Some(nonce) => Some(vec![nonce_extension(nonce)?]),
            None => None,
        };
        let tbs = ResponseData {
            version: Version::V1,
            responder_id,
            produced_at: generalized(produced_at)?,
            responses,
            response_extensions,
        };
        let signature: bign256::dsa::Signature = key.try_sign(&tbs.to_der()?)?;
        let mut signature = signature.to_bytes();
        if signer == OcspSigner::CorruptedSignature {
            signature[20] ^= 0x01;
        }
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: ca::bign_with_hbelt(),
            signature: BitString::from_bytes(&signature)?,
            certs,
        };
        let response = OcspResponse {
            response_status: OcspResponseStatus::Successful,
            response_bytes: Some(x509_ocsp::ResponseBytes {
                response_type: ID_PKIX_OCSP_BASIC,
                response: OctetString::new(basic.to_der()?)?,
            }),
        };
        Ok(response.to_der()?)
    }
}

/// An OCSPResponse with only its status (`malformedRequest`, `tryLater`, ...), DER.
pub fn status_only_der(status: OcspResponseStatus) -> Vec<u8> {
    let response = OcspResponse {
        response_status: status,
        response_bytes: None,
    };
    // An ENUMERATED in a SEQUENCE always encodes; the fallback is the same bytes by hand.
    response
        .to_der()
        .unwrap_or_else(|_| vec![0x30, 0x03, 0x0a, 0x01, status as u8])
}

/// The responder's answer (DER) to `request_der` at `now`, each status told by `lookup` (the
/// issuer and the serial in lowercase hex without leading `00`), answers valid for `validity`,
/// shaped by `mode`.
pub(crate) fn respond(
    ca: &TestCa,
    request_der: &[u8],
    now: DateTime<Utc>,
    validity: TimeDelta,
    mode: OcspMode,
    lookup: impl Fn(Issuer, &str) -> OcspStatus,
) -> Vec<u8> {
    match mode {
        OcspMode::TryLater => return status_only_der(OcspResponseStatus::TryLater),
        OcspMode::InternalError => return status_only_der(OcspResponseStatus::InternalError),
        _ => {}
    }
    let Ok(request) = OcspRequest::from_der(request_der) else {
        return status_only_der(OcspResponseStatus::MalformedRequest);
    };
    let Ok(nonce) = request_nonce(&request) else {
        return status_only_der(OcspResponseStatus::MalformedRequest);
    };
    let list = &request.tbs_request.request_list;
    if list.is_empty() {
        return status_only_der(OcspResponseStatus::MalformedRequest);
    }
    let mut issuer = None;
    let mut asked = Vec::with_capacity(list.len());
    for one in list {
        let Some(which) = ca.issuer_of(&one.req_cert) else {
            return status_only_der(OcspResponseStatus::Unauthorized);
        };
        if issuer.is_some_and(|i| i != which) {
            return status_only_der(OcspResponseStatus::Unauthorized);
        }
        issuer = Some(which);
        let serial = serial_hex(one.req_cert.serial_number.as_bytes());
        asked.push((one.req_cert.clone(), lookup(which, &serial)));
    }
    let Some(issuer) = issuer else {
        return status_only_der(OcspResponseStatus::MalformedRequest);
    };

    let (this_update, next_update) = match mode {
        OcspMode::Stale => (now - validity - validity, now - validity),
        _ => (now, now + validity),
    };
    let nonce = match mode {
        OcspMode::NoNonce => None,
        OcspMode::WrongNonce => Some(
            nonce
                .map(|mut n| {
                    n[0] ^= 0xff;
                    n
                })
                .unwrap_or_else(|| vec![0x42; 16]),
        ),
        _ => nonce,
    };
    let signer = match mode {
        OcspMode::BadSignature => OcspSigner::CorruptedSignature,
        OcspMode::WrongKey => OcspSigner::Stranger,
        OcspMode::DelegatedResponder => OcspSigner::Delegated(ResponderOptions::default()),
        _ => OcspSigner::Issuer,
    };
    let build = || -> Result<Vec<u8>, CaError> {
        let mut responses = Vec::with_capacity(asked.len());
        for (mut cert_id, status) in asked {
            if mode == OcspMode::OtherSerial {
                let mut serial = cert_id.serial_number.as_bytes().to_vec();
                if let Some(last) = serial.last_mut() {
                    *last ^= 0x01;
                }
                cert_id.serial_number = SerialNumber::new(&serial)?;
            }
            responses.push(single_response(
                cert_id,
                status,
                this_update,
                Some(next_update),
            )?);
        }
        ca.try_basic_response(
            issuer,
            responses,
            now,
            nonce.as_deref(),
            signer,
            ResponderIdForm::ByKey,
        )
    };
    build().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot sign the OCSP response");
        status_only_der(OcspResponseStatus::InternalError)
    })
}

/// The request's nonce, if it has one.
///
/// Errors: a nonce extension that is not an OCTET STRING of 1 to [`MAX_NONCE_LEN`] bytes.
fn request_nonce(request: &OcspRequest) -> Result<Option<Vec<u8>>, ()> {
    let Some(extension) = request
        .tbs_request
        .request_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
    else {
        return Ok(None);
    };
    let nonce = OctetString::from_der(extension.extn_value.as_bytes()).map_err(|_| ())?;
    let bytes = nonce.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NONCE_LEN {
        return Err(());
    }
    Ok(Some(bytes.to_vec()))
}

fn nonce_extension(nonce: &[u8]) -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: ID_PKIX_OCSP_NONCE,
        critical: false,
        extn_value: OctetString::new(OctetString::new(nonce)?.to_der()?)?,
    })
}

fn single_response(
    cert_id: CertId,
    status: OcspStatus,
    this_update: DateTime<Utc>,
    next_update: Option<DateTime<Utc>>,
) -> Result<SingleResponse, CaError> {
    let cert_status = match status {
        OcspStatus::Good => CertStatus::good(),
        OcspStatus::Unknown => CertStatus::unknown(),
        OcspStatus::Revoked { revoked_at, reason } => CertStatus::revoked(RevokedInfo {
            revocation_time: generalized(revoked_at)?,
            revocation_reason: Some(reason.crl_reason()),
        }),
    };
    Ok(SingleResponse {
        cert_id,
        cert_status,
        this_update: generalized(this_update)?,
        next_update: next_update.map(generalized).transpose()?,
        single_extensions: None,
    })
}

/// A GeneralizedTime to the second (OCSP has no UTCTime).
fn generalized(at: DateTime<Utc>) -> Result<OcspGeneralizedTime, CaError> {
    let seconds = u64::try_from(at.timestamp()).map_err(|_| CaError::TimeOutOfRange(at))?;
    GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(seconds))
        .map(OcspGeneralizedTime)
        .map_err(|_| CaError::TimeOutOfRange(at))
}

/// The hash `oid` names of `bytes`, for the hashes a CertID may use here.
fn digest(oid: ObjectIdentifier, bytes: &[u8]) -> Option<Vec<u8>> {
    if oid == ID_SHA1 {
        Some(sha1(bytes))
    } else if oid == ID_SHA256 {
        Some(<sha2::Sha256 as sha2::Digest>::digest(bytes).to_vec())
    } else if oid == ID_BELT_HASH {
        Some(<BeltHash as belt_hash::Digest>::digest(bytes).to_vec())
    } else {
        None
    }
}

fn sha1(bytes: &[u8]) -> Vec<u8> {
    <sha1::Sha1 as sha1::Digest>::digest(bytes).to_vec()
}

/// A serial's INTEGER bytes in lowercase hex without leading `00` (the book's keys).
fn serial_hex(bytes: &[u8]) -> String {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    hex::encode(&bytes[first.min(bytes.len())..])
}

/// id-pkix-ocsp-nocheck: a NULL, as an extension of a responder's certificate.
struct NoCheck;

impl der::Encode for NoCheck {
    fn encoded_len(&self) -> der::Result<Length> {
        Null.encoded_len()
    }

    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        Null.encode(writer)
    }
}

impl der::oid::AssociatedOid for NoCheck {
    const OID: ObjectIdentifier = ID_PKIX_OCSP_NOCHECK;
}

impl AsExtension for NoCheck {
    fn critical(&self, _subject: &Name, _extensions: &[Extension]) -> bool {
        false
    }
}
