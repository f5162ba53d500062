//! OCSP (RFC 6960): the request the hub sends about one certificate, and the checks an answer
//! must pass before its word counts. Pure: [`super::Checker`] does the HTTP.
//!
//! The request names the certificate by a CertID hashed with SHA-1 (RFC 5019's profile, what
//! OCSP responders answer; the hash only names the issuer, it signs nothing) and carries a fresh
//! random 32-byte nonce (RFC 8954). An answer is taken only when all of this holds, else it is
//! refused with an [`OcspRefusal`] and tells nothing:
//! - `responseStatus` is `successful` and the response is an id-pkix-ocsp-basic one;
//! - it is signed with bign-with-hbelt, and the signature verifies with the key of the CA that
//!   issued the certificate (its responderID names that CA by name or key hash), or with the
//!   key of a delegated responder whose certificate is in the response, issued by that CA, with
//!   id-kp-OCSPSigning and id-pkix-ocsp-nocheck ([`super::validate::ocsp_responder_key`]);
//! - it echoes the request's nonce (strict: a responder that answers from a cache without the
//!   nonce is not trusted, and the checker goes on to the CRL);
//! - exactly one of its answers is about the CertID asked (hash algorithm, issuer name hash,
//!   issuer key hash, serial);
//! - `producedAt` and `thisUpdate` are not in the future (beyond [`CLOCK_SKEW`]), `nextUpdate`
//!   is not past, and an answer without `nextUpdate` was made within [`MAX_AGE_WITHOUT_NEXT`];
//! - no extension it marks critical is unknown (the nonce is the only one known).
//!
//! A taken answer says `good`, `revoked` (with the time and the reason) or `unknown` (the CA
//! does not know the certificate: signed, so not overruled by a CRL's silence).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use der::asn1::{Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    ResponderId, SingleResponse, TbsRequest,
};

use super::bign::{self, PublicKey};
use super::revocation::{RevocationReason, RevocationStatus};
use super::to_utc;
use super::validate::ocsp_responder_key;

/// id-pkix-ocsp-basic: the one response type taken.
const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce (RFC 6960 4.4.1).
const ID_PKIX_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// SHA-1, the CertID hash.
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// The nonce length: RFC 8954's largest, and what it recommends.
const NONCE_LEN: usize = 32;

/// How far in the future `thisUpdate` or `producedAt` may be: the responder's clock and ours
/// differ a little.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// How old an answer without `nextUpdate` may be (its `thisUpdate`): such an answer says
/// nothing of how long it holds, so only a recent one is taken.
pub(crate) const MAX_AGE_WITHOUT_NEXT: Duration = Duration::from_secs(5 * 60);

/// An answer that passed every check of [`OcspQuery::verify`]: what it says, and the times
/// that say how long it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TakenAnswer {
    /// `good`, `revoked` or `unknown`, in the signer's word.
    pub(crate) status: RevocationStatus,
    /// When the responder last knew the status to be so.
    pub(crate) this_update: DateTime<Utc>,
    /// When newer information will be available, if the responder says.
    pub(crate) next_update: Option<DateTime<Utc>>,
}

impl TakenAnswer {
    /// The last time the answer is fresh, as [`OcspQuery::verify`] judges it: its
    /// `nextUpdate`, or without one its `thisUpdate` plus [`MAX_AGE_WITHOUT_NEXT`].
    pub(crate) fn fresh_until(&self) -> DateTime<Utc> {
        self.next_update.unwrap_or_else(|| {
            TimeDelta::from_std(MAX_AGE_WITHOUT_NEXT)
                .ok()
                .and_then(|age| self.this_update.checked_add_signed(age))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        })
    }
}

/// A request about one certificate: its DER, and what the answer must match.
#[derive(Clone)]
pub(crate) struct OcspQuery {
    der: Vec<u8>,
    cert_id: CertId,
    nonce: Vec<u8>,
}

impl fmt::Debug for OcspQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcspQuery")
            .field(
                "serial",
                &hex::encode(self.cert_id.serial_number.as_bytes()),
            )
            .finish_non_exhaustive()
    }
}

impl OcspQuery {
    /// The request about `subject`, issued by `issuer`, with a fresh random nonce.
    ///
    /// Errors: a name or a serial that does not encode (not for a certificate that parsed).
    pub(crate) fn new(subject: &Certificate, issuer: &Certificate) -> der::Result<OcspQuery> {
        Self::with_nonce(subject, issuer, rand::random::<[u8; NONCE_LEN]>().to_vec())
    }

    fn with_nonce(
        subject: &Certificate,
        issuer: &Certificate,
        nonce: Vec<u8>,
    ) -> der::Result<OcspQuery> {
        let issuer_tbs = &issuer.tbs_certificate;
        let cert_id = CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: ID_SHA1,
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new(sha1(&issuer_tbs.subject.to_der()?))?,
            issuer_key_hash: OctetString::new(sha1(
                issuer_tbs
                    .subject_public_key_info
                    .subject_public_key
                    .raw_bytes(),
            ))?,
            serial_number: subject.tbs_certificate.serial_number.clone(),
        };
        let request = OcspRequest {
            tbs_request: TbsRequest {
                version: x509_ocsp::Version::V1,
                requestor_name: None,
                request_list: vec![Request {
                    req_cert: cert_id.clone(),
                    single_request_extensions: None,
                }],
                request_extensions: Some(vec![Extension {
                    extn_id: ID_PKIX_OCSP_NONCE,
                    critical: false,
                    extn_value: OctetString::new(OctetString::new(nonce.clone())?.to_der()?)?,
                }]),
            },
            optional_signature: None,
        };
        Ok(OcspQuery {
            der: request.to_der()?,
            cert_id,
            nonce,
        })
    }

    /// The DER OCSPRequest, to POST as `application/ocsp-request`.
    pub(crate) fn der(&self) -> &[u8] {
        &self.der
    }

    /// Checks `response_der` as the answer to this request about a certificate of `issuer`,
    /// at `at`, and gives what it says (see the module for what is checked).
    ///
    /// Errors: why the answer is not taken.
    pub(crate) fn verify(
        &self,
        response_der: &[u8],
        issuer: &Certificate,
        at: DateTime<Utc>,
    ) -> Result<TakenAnswer, OcspRefusal> {
        let response = OcspResponse::from_der(response_der)
            .map_err(|e| OcspRefusal::Malformed(format!("not a DER OCSPResponse ({e})")))?;
        if response.response_status != OcspResponseStatus::Successful {
            return Err(OcspRefusal::NotSuccessful(response.response_status));
        }
        let bytes = response.response_bytes.ok_or_else(|| {
            OcspRefusal::Malformed("a successful response without responseBytes".to_owned())
        })?;
        if bytes.response_type != ID_PKIX_OCSP_BASIC {
            return Err(OcspRefusal::Malformed(format!(
                "the response type {} (expected id-pkix-ocsp-basic {ID_PKIX_OCSP_BASIC})",
                bytes.response_type
            )));
        }
        let basic_der = bytes.response.as_bytes();
        let basic = BasicOcspResponse::from_der(basic_der)
            .map_err(|e| OcspRefusal::Malformed(format!("not a DER BasicOCSPResponse ({e})")))?;
        let signed = bign::signed_part(basic_der)
            .map_err(|e| OcspRefusal::Malformed(format!("not a DER BasicOCSPResponse ({e})")))?;

        // Signed by the issuer or its delegate, or nothing in it counts.
        let algorithm = &basic.signature_algorithm;
        if algorithm.oid != bign::BIGN_WITH_HBELT || algorithm.parameters.is_some() {
            return Err(OcspRefusal::UnsupportedAlgorithm(algorithm.oid));
        }
        let key = signer_key(&basic, issuer, at)?;
        if !key.verifies(signed, bign::signature_bytes(&basic.signature)) {
            return Err(OcspRefusal::BadSignature);
        }

        // The signer's word from here on: checked for being the answer to this request, now.
        let data = &basic.tbs_response_data;
        let extensions = data.response_extensions.as_deref().unwrap_or_default();
        check_critical(extensions, &[ID_PKIX_OCSP_NONCE])?;
        let nonce = extensions
            .iter()
            .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
            .ok_or_else(|| {
                OcspRefusal::Nonce("the response does not echo the request's nonce".to_owned())
            })?;
        let echoed = OctetString::from_der(nonce.extn_value.as_bytes())
            .map_err(|_| OcspRefusal::Nonce("the response's nonce does not decode".to_owned()))?;
        if echoed.as_bytes() != self.nonce.as_slice() {
            return Err(OcspRefusal::Nonce(
                "the response echoes another nonce than the request's".to_owned(),
            ));
        }
        let time = |t: x509_ocsp::OcspGeneralizedTime| {
            to_utc(x509_cert::time::Time::GeneralTime(t.0))
                .ok_or_else(|| OcspRefusal::Malformed("a time out of range".to_owned()))
        };
        let skew = TimeDelta::from_std(CLOCK_SKEW).unwrap_or(TimeDelta::MAX);
        let produced_at = time(data.produced_at)?;
        if produced_at > at + skew {
            return Err(OcspRefusal::NotFresh(format!(
                "produced at {produced_at}, in the future"
            )));
        }
        let mut about = data
            .responses
            .iter()
            .filter(|single| same_cert_id(&single.cert_id, &self.cert_id));
        let single = about.next().ok_or(OcspRefusal::OtherCertificate)?;
        if about.next().is_some() {
            return Err(OcspRefusal::Malformed(
                "two answers about the certificate asked".to_owned(),
            ));
        }
        check_critical(single.single_extensions.as_deref().unwrap_or_default(), &[])?;
        let (this_update, next_update) = check_times(single, at, time)?;
        let status = match single.cert_status {
            CertStatus::Good(_) => RevocationStatus::Good,
            CertStatus::Revoked(info) => RevocationStatus::Revoked {
                revoked_at: time(info.revocation_time)?,
                reason: info
                    .revocation_reason
                    .map(RevocationReason::from_crl)
                    .unwrap_or(RevocationReason::Unspecified),
            },
            CertStatus::Unknown(_) => RevocationStatus::Unknown(
                "the CA's OCSP responder does not know the certificate".to_owned(),
            ),
        };
        Ok(TakenAnswer {
            status,
            this_update,
            next_update,
        })
    }
}

/// `thisUpdate` not in the future, `nextUpdate` (when there is one) not past, and without one
/// a `thisUpdate` no older than [`MAX_AGE_WITHOUT_NEXT`]. Gives `thisUpdate` and `nextUpdate`.
fn check_times(
    single: &SingleResponse,
    at: DateTime<Utc>,
    time: impl Fn(x509_ocsp::OcspGeneralizedTime) -> Result<DateTime<Utc>, OcspRefusal>,
) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), OcspRefusal> {
    let skew = TimeDelta::from_std(CLOCK_SKEW).unwrap_or(TimeDelta::MAX);
    let this_update = time(single.this_update)?;
    if this_update > at + skew {
        return Err(OcspRefusal::NotFresh(format!(
            "thisUpdate {this_update} is in the future"
        )));
    }
    let next_update = single.next_update.map(time).transpose()?;
    match next_update {
        Some(next_update) if next_update < this_update => Err(OcspRefusal::Malformed(
            "nextUpdate before thisUpdate".to_owned(),
        )),
        Some(next_update) if next_update < at => {
            Err(OcspRefusal::NotFresh(format!("valid until {next_update}")))
        }
        Some(_) => Ok((this_update, next_update)),
        None => {
            let max_age = TimeDelta::from_std(MAX_AGE_WITHOUT_NEXT).unwrap_or(TimeDelta::MAX);
            if at - this_update > max_age {
                Err(OcspRefusal::NotFresh(format!(
                    "no nextUpdate and thisUpdate {this_update} is older than {} s",
                    MAX_AGE_WITHOUT_NEXT.as_secs()
                )))
            } else {
                Ok((this_update, None))
            }
        }
    }
}

/// The key the response must verify under: the issuer's when the responderID names the
/// issuer, else the delegated responder's the response includes.
fn signer_key(
    basic: &BasicOcspResponse,
    issuer: &Certificate,
    at: DateTime<Utc>,
) -> Result<PublicKey, OcspRefusal> {
    let names = |cert: &Certificate| match &basic.tbs_response_data.responder_id {
        ResponderId::ByName(name) => *name == cert.tbs_certificate.subject,
        ResponderId::ByKey(hash) => {
            hash.as_bytes()
                == sha1(
                    cert.tbs_certificate
                        .subject_public_key_info
                        .subject_public_key
                        .raw_bytes(),
                )
                .as_slice()
        }
    };
    if names(issuer) {
        return PublicKey::from_spki(&issuer.tbs_certificate.subject_public_key_info, "issuer")
            .map_err(|e| OcspRefusal::WrongSigner(e.to_string()));
    }
    let delegate = basic
        .certs
        .iter()
        .flatten()
        .find(|cert| names(cert))
        .ok_or_else(|| {
            OcspRefusal::WrongSigner(
                "the responder is neither the certificate's issuer nor a responder certificate \
                 the response includes"
                    .to_owned(),
            )
        })?;
    let der = delegate
        .to_der()
        .map_err(|e| OcspRefusal::Malformed(format!("a responder certificate ({e})")))?;
    ocsp_responder_key(&der, issuer, at).map_err(|e| OcspRefusal::WrongSigner(e.to_string()))
}

/// Whether the answer's CertID is the one asked: the same hash algorithm (its parameters NULL
/// or absent), issuer hashes and serial.
fn same_cert_id(answered: &CertId, asked: &CertId) -> bool {
    let null_or_absent =
        |p: &Option<der::asn1::Any>| p.as_ref().is_none_or(|any| any.decode_as::<Null>().is_ok());
    answered.hash_algorithm.oid == asked.hash_algorithm.oid
        && null_or_absent(&answered.hash_algorithm.parameters)
        && answered.issuer_name_hash == asked.issuer_name_hash
        && answered.issuer_key_hash == asked.issuer_key_hash
        && answered.serial_number == asked.serial_number
}

/// Refuses an extension marked critical that is not one of `known`.
fn check_critical(extensions: &[Extension], known: &[ObjectIdentifier]) -> Result<(), OcspRefusal> {
    match extensions
        .iter()
        .find(|e| e.critical && !known.contains(&e.extn_id))
    {
        Some(e) => Err(OcspRefusal::CriticalExtension(e.extn_id)),
        None => Ok(()),
    }
}

fn sha1(bytes: &[u8]) -> Vec<u8> {
    <sha1::Sha1 as sha1::Digest>::digest(bytes).to_vec()
}

/// Why an OCSP answer is not taken. Each has a stable code ([`OcspRefusal::code`]) for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OcspRefusal {
    /// No answer: the responder said `malformedRequest`, `internalError`, `tryLater`,
    /// `sigRequired` or `unauthorized`.
    #[error("the responder answered {0:?}")]
    NotSuccessful(OcspResponseStatus),
    /// Not a DER OCSP response of the basic type, or not making sense.
    #[error("malformed: {0}")]
    Malformed(String),
    /// Signed with another algorithm than bign-with-hbelt.
    #[error("signed with the algorithm {0} (expected bign-with-hbelt)")]
    UnsupportedAlgorithm(ObjectIdentifier),
    /// The signer is neither the issuer nor a delegated responder of it.
    #[error("not signed by the certificate's CA or its responder: {0}")]
    WrongSigner(String),
    /// The signature does not verify with the signer's key.
    #[error("the signature does not verify")]
    BadSignature,
    /// No answer about the certificate asked.
    #[error("no answer about the certificate asked (another CertID)")]
    OtherCertificate,
    /// The nonce is missing or another.
    #[error("nonce: {0}")]
    Nonce(String),
    /// Made in the future or past its validity.
    #[error("not fresh: {0}")]
    NotFresh(String),
    /// A critical extension no one here knows.
    #[error("the critical extension {0}, which is not processed here")]
    CriticalExtension(ObjectIdentifier),
}

impl OcspRefusal {
    /// `not_successful`, `malformed`, `unsupported_algorithm`, `wrong_signer`,
    /// `bad_signature`, `other_certificate`, `nonce`, `not_fresh`, `critical_extension`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            OcspRefusal::NotSuccessful(_) => "not_successful",
            OcspRefusal::Malformed(_) => "malformed",
            OcspRefusal::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            OcspRefusal::WrongSigner(_) => "wrong_signer",
            OcspRefusal::BadSignature => "bad_signature",
            OcspRefusal::OtherCertificate => "other_certificate",
            OcspRefusal::Nonce(_) => "nonce",
            OcspRefusal::NotFresh(_) => "not_fresh",
            OcspRefusal::CriticalExtension(_) => "critical_extension",
        }
    }
}
