//! GosSUOK's document (handlers: `crate::gossuok::api`).

#![allow(
    dead_code,
    reason = "the functions carry the operations' annotations and the types are schemas only"
)]

use chrono::{DateTime, Utc};
use utoipa::{OpenApi, ToSchema};

use super::common::{ApiError, IDEMPOTENCY_KEY};
use crate::gossuok::ocsp::OcspMode;

/// A certificate's status as the CA knows it (unsigned: the hub trusts only CRLs and OCSP).
#[derive(ToSchema)]
#[schema(example = json!({"serial": "3a5f01", "status": "revoked", "revoked_at": "2026-11-26T10:00:00.000Z", "reason": "key_compromise"}))]
struct CertificateStatus {
    /// The serial, lower-case hex without leading zero bytes.
    serial: String,
    /// `good`, `revoked` or `unknown`.
    #[schema(pattern = "^(good|revoked|unknown)$")]
    status: String,
    /// For `revoked`: when.
    #[schema(nullable = false)]
    revoked_at: Option<DateTime<Utc>>,
    /// For `revoked`: RFC 5280's CRLReason (`unspecified`, `key_compromise`, `ca_compromise`,
    /// `affiliation_changed`, `superseded`, `cessation_of_operation`, `certificate_hold`).
    #[schema(nullable = false)]
    reason: Option<String>,
}

/// A certificate with its issuers up to the root.
#[derive(ToSchema)]
struct Certificate {
    /// The serial, lower-case hex.
    serial: String,
    /// DER, base64.
    #[schema(content_encoding = "base64")]
    certificate: String,
    /// The issuers up to the root, each DER in base64.
    chain: Vec<String>,
}

/// Bytes to sign with a key token.
#[derive(ToSchema)]
struct SignRequest {
    /// The bytes, base64.
    #[schema(content_encoding = "base64")]
    data: String,
}

/// A bign signature (STB 34.101.45 with belt-hash).
#[derive(ToSchema)]
struct Signature {
    /// The certificate whose key signed.
    serial: String,
    /// The signature, base64.
    #[schema(content_encoding = "base64")]
    signature: String,
}

/// A certificate to issue (simulator only).
#[derive(ToSchema)]
struct IssueRequest {
    /// The holder's identification number (a person of the population).
    identification_number: String,
    /// Not before; now by default.
    valid_from: Option<DateTime<Utc>>,
    /// Not after; a year on by default.
    valid_to: Option<DateTime<Utc>>,
    /// `digital_signature` (default) or `key_encipherment_only`.
    #[schema(pattern = "^(digital_signature|key_encipherment_only)$")]
    key_usage: Option<String>,
    /// `intermediate` (default) or `root`.
    #[schema(pattern = "^(intermediate|root)$")]
    signed_by: Option<String>,
    /// The organisation the person signs for (`organizationName`): an authority's catalogue
    /// id for its official.
    organization: Option<String>,
}

/// A revocation (simulator only); an empty body takes the defaults.
#[derive(ToSchema)]
struct RevokeRequest {
    /// RFC 5280's CRLReason name (`unspecified` by default).
    reason: Option<String>,
    /// When; now by default.
    revoked_at: Option<DateTime<Utc>>,
}

/// How the OCSP responder answers.
#[derive(ToSchema)]
struct OcspModeBody {
    mode: OcspMode,
}

/// The description of a serial path parameter.
const SERIAL: &str = "A certificate's serial in hex (case and leading zero bytes ignored).";

/// The root CA's certificate.
#[utoipa::path(get, path = "/ca/root.der", tag = "pki", operation_id = "root_certificate",
    responses((status = 200, description = "DER.", content_type = "application/pkix-cert", body = Vec<u8>)))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn root_certificate() {}

/// The intermediate CA's certificate.
#[utoipa::path(get, path = "/ca/intermediate.der", tag = "pki", operation_id = "intermediate_certificate",
    responses((status = 200, description = "DER.", content_type = "application/pkix-cert", body = Vec<u8>)))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn intermediate_certificate() {}

/// The root's CRL, signed now.
#[utoipa::path(get, path = "/crl/root.crl", tag = "pki", operation_id = "root_crl",
    responses(
        (status = 200, description = "DER, valid for the configured time.", content_type = "application/pkix-crl", body = Vec<u8>),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    ))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn root_crl() {}

/// The intermediate's CRL, signed now.
#[utoipa::path(get, path = "/crl/intermediate.crl", tag = "pki", operation_id = "intermediate_crl",
    responses(
        (status = 200, description = "DER, valid for the configured time.", content_type = "application/pkix-crl", body = Vec<u8>),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    ))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn intermediate_crl() {}

/// The OCSP responder (RFC 6960); a refusal is in the response's status, always 200.
#[utoipa::path(post, path = "/ocsp", tag = "pki", operation_id = "ocsp_post",
    request_body(content = Vec<u8>, content_type = "application/ocsp-request", description = "A DER OCSPRequest."),
    responses(
        (status = 200, description = "A DER OCSPResponse.", content_type = "application/ocsp-response", body = Vec<u8>),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    ))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn ocsp_post() {}

/// The OCSP responder by GET (RFC 6960 appendix A.1).
#[utoipa::path(get, path = "/ocsp/{request}", tag = "pki", operation_id = "ocsp_get",
    params(("request" = String, Path, description = "The DER OCSPRequest in base64 (standard or URL-safe, padded or not), URL-encoded; may contain `/`.")),
    responses(
        (status = 200, description = "A DER OCSPResponse.", content_type = "application/ocsp-response", body = Vec<u8>),
        (status = 400, description = "`invalid_request`: not base64.", body = ApiError)
    ))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn ocsp_get() {}

/// A certificate's status, unsigned (for integrators).
#[utoipa::path(get, path = "/api/v1/certificates/{serial}/status", tag = "pki", operation_id = "certificate_status",
    params(("serial" = String, Path, description = SERIAL)),
    responses(
        (status = 200, description = "The status.", body = CertificateStatus),
        (status = 400, description = "`invalid_request`: not a serial.", body = ApiError)
    ))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn certificate_status() {}

/// A person's own certificate, the one their key token holds (simulator only).
#[utoipa::path(get, path = "/sim/persons/{identification_number}/certificate", tag = "simulator", operation_id = "person_certificate",
    params(("identification_number" = String, Path, description = "A person of the population.")),
    responses(
        (status = 200, description = "The certificate.", body = Certificate),
        (status = 404, description = "`not_found`: no such person.", body = ApiError)
    ))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn person_certificate() {}

/// Signs with a person's key token (simulator only).
#[utoipa::path(post, path = "/sim/persons/{identification_number}/sign", tag = "simulator", operation_id = "person_sign",
    params(
        ("identification_number" = String, Path, description = "A person of the population."),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)
    ),
    request_body(content = SignRequest),
    responses(
        (status = 200, description = "The signature.", body = Signature),
        (status = 400, description = "`invalid_request`.", body = ApiError),
        (status = 404, description = "`not_found`.", body = ApiError)
    ))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn person_sign() {}

/// Issues another certificate to a person (simulator only).
#[utoipa::path(post, path = "/sim/certificates", tag = "simulator", operation_id = "issue_certificate",
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body(content = IssueRequest),
    responses(
        (status = 201, description = "Issued.", body = Certificate),
        (status = 400, description = "`invalid_request`.", body = ApiError),
        (status = 404, description = "`not_found`: no such person.", body = ApiError)
    ))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn issue_certificate() {}

/// Signs with the key of a certificate a key token holds (simulator only).
#[utoipa::path(post, path = "/sim/certificates/{serial}/sign", tag = "simulator", operation_id = "certificate_sign",
    params(
        ("serial" = String, Path, description = SERIAL),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)
    ),
    request_body(content = SignRequest),
    responses(
        (status = 200, description = "The signature.", body = Signature),
        (status = 400, description = "`invalid_request`.", body = ApiError),
        (status = 404, description = "`not_found`: no key token holds it.", body = ApiError)
    ))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn certificate_sign() {}

/// Revokes a certificate; the CRLs, OCSP and the status say so from now on (simulator only).
#[utoipa::path(post, path = "/sim/revoke/{serial}", tag = "simulator", operation_id = "revoke",
    params(
        ("serial" = String, Path, description = SERIAL),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)
    ),
    request_body(content = Option<RevokeRequest>, description = "Optional."),
    responses(
        (status = 200, description = "Revoked.", body = CertificateStatus),
        (status = 400, description = "`invalid_request`.", body = ApiError),
        (status = 404, description = "`not_found`: no certificate with this serial.", body = ApiError)
    ))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn revoke() {}

/// How the OCSP responder answers now (simulator only).
#[utoipa::path(get, path = "/sim/ocsp", tag = "simulator", operation_id = "get_ocsp_mode",
    responses((status = 200, description = "The mode.", body = OcspModeBody)))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn get_ocsp_mode() {}

/// Sets how the OCSP responder answers (simulator only).
#[utoipa::path(put, path = "/sim/ocsp", tag = "simulator", operation_id = "put_ocsp_mode",
    request_body(content = OcspModeBody),
    responses(
        (status = 200, description = "The mode now.", body = OcspModeBody),
        (status = 400, description = "`invalid_request`: not a mode.", body = ApiError)
    ))]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn put_ocsp_mode() {}

/// GosSUOK's own operations.
#[derive(OpenApi)]
#[openapi(paths(
    root_certificate,
    intermediate_certificate,
    root_crl,
    intermediate_crl,
    ocsp_post,
    ocsp_get,
    certificate_status,
    person_certificate,
    person_sign,
    issue_certificate,
    certificate_sign,
    revoke,
    get_ocsp_mode,
    put_ocsp_mode
))]
pub(super) struct Doc;
