//! The GosSUOK simulator over real HTTP, checked from the outside with bign256 and x509-cert:
//! a person's certificate chains to the published CA certificates, their key token's signature
//! verifies with the certificate's key, a revocation shows in the status endpoint, in a freshly
//! signed CRL and in the OCSP responder's signed answers, the certificates name where those are
//! published, odd certificates can be issued, and the faults reach the CA's services.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bign256::dsa::signature::Verifier;
use bign256::dsa::{Signature, VerifyingKey};
use chrono::{TimeDelta, Utc};
use common::Sims;
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use serde_json::{Value, json};
use simulators::{GossuokSimConfig, SimConfig, SimKind};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, CrlDistributionPoints, CrlReason, ExtendedKeyUsage,
};
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    ResponderId, TbsRequest,
};

const GOSSUOK: SimKind = SimKind::Gossuok;

const BIGN_WITH_HBELT: &str = "1.2.112.0.2.0.34.101.45.12";
const BIGN_PUBKEY: &str = "1.2.112.0.2.0.34.101.45.2.1";
const BIGN_CURVE256V1: &str = "1.2.112.0.2.0.34.101.45.3.1";

/// GosSUOK and the MVD registry (whose population it issues certificates to), CRLs valid 2 min.
async fn gossuok() -> Sims {
    Sims::start(SimConfig {
        only: Some(vec![SimKind::Mvd, GOSSUOK]),
        population: 300,
        gossuok: GossuokSimConfig {
            crl_validity: Duration::from_secs(120),
            ..GossuokSimConfig::default()
        },
        ..SimConfig::ephemeral()
    })
    .await
}

/// The simulators of [`gossuok`], their certificates naming `public_url`.
async fn gossuok_published_at(public_url: &str) -> Sims {
    Sims::start(SimConfig {
        only: Some(vec![SimKind::Mvd, GOSSUOK]),
        population: 300,
        gossuok: GossuokSimConfig {
            crl_validity: Duration::from_secs(120),
            public_url: Some(url::Url::parse(public_url).expect("a URL")),
        },
        ..SimConfig::ephemeral()
    })
    .await
}

/// The `n`-th person of the MVD registry, as `/sim/population` shows them.
async fn person(sims: &Sims, n: usize) -> Value {
    let (status, body) = sims
        .get(SimKind::Mvd, &format!("sim/population?offset={n}&limit=1"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["persons"][0].clone()
}

fn id_of(person: &Value) -> &str {
    person["identification_number"]
        .as_str()
        .expect("an identification number")
}

/// A GET answered with DER of the given content type.
async fn get_der(sims: &Sims, path: &str, content_type: &str) -> Vec<u8> {
    let response = sims
        .client
        .get(sims.url(GOSSUOK, path))
        .send()
        .await
        .expect("the GET is answered");
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(content_type)
    );
    response.bytes().await.expect("a body").to_vec()
}

fn base64_der(value: &Value) -> Vec<u8> {
    BASE64
        .decode(value.as_str().expect("base64 text"))
        .expect("base64")
}

fn parse(der: &[u8]) -> Certificate {
    Certificate::from_der(der).expect("a DER certificate")
}

/// The certificate's key: bign-pubkey on bign-curve256v1, the 64-byte STB encoding (x and y
/// little-endian) turned into SEC1 for bign256.
fn key_of(certificate: &Certificate) -> VerifyingKey {
    let spki = &certificate.tbs_certificate.subject_public_key_info;
    assert_eq!(spki.algorithm.oid.to_string(), BIGN_PUBKEY);
    let curve: ObjectIdentifier = spki
        .algorithm
        .parameters
        .as_ref()
        .expect("the curve as parameters")
        .decode_as()
        .expect("an OID");
    assert_eq!(curve.to_string(), BIGN_CURVE256V1);
    let stb = spki.subject_public_key.as_bytes().expect("whole bytes");
    assert_eq!(stb.len(), 64);
    let mut sec1 = vec![0x04];
    sec1.extend(stb[..32].iter().rev());
    sec1.extend(stb[32..].iter().rev());
    VerifyingKey::from_sec1_bytes(&sec1).expect("a point on the curve")
}

/// Whether bign-with-hbelt over `tbs` with `signature` verifies with `key`.
fn signed_by(tbs: &[u8], signature: &[u8], key: &VerifyingKey) -> bool {
    Signature::from_slice(signature).is_ok_and(|s| key.verify(tbs, &s).is_ok())
}

fn certificate_verifies(certificate: &Certificate, issuer: &VerifyingKey) -> bool {
    assert_eq!(
        certificate.signature_algorithm.oid.to_string(),
        BIGN_WITH_HBELT
    );
    assert!(certificate.signature_algorithm.parameters.is_none());
    let tbs = certificate.tbs_certificate.to_der().expect("DER");
    signed_by(&tbs, certificate.signature.raw_bytes(), issuer)
}

/// The hex serial a DER serial number stands for (its sign byte dropped).
fn serial_hex(bytes: &[u8]) -> String {
    let hex = hex::encode(bytes);
    hex.strip_prefix("00").map(str::to_owned).unwrap_or(hex)
}

/// The value of one attribute of a name, as text.
fn attribute(name: &x509_cert::name::Name, oid: &str) -> String {
    let oid = ObjectIdentifier::new_unwrap(oid);
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == oid)
        .map(|atv| {
            std::str::from_utf8(atv.value.value())
                .expect("text")
                .to_owned()
        })
        .expect("the attribute")
}

/// The URIs of a certificate's CRL distribution points.
fn distribution_points(certificate: &Certificate) -> Vec<String> {
    let Some((_, points)) = certificate
        .tbs_certificate
        .get::<CrlDistributionPoints>()
        .expect("decodes")
    else {
        return Vec::new();
    };
    points
        .0
        .iter()
        .flat_map(|point| match &point.distribution_point {
            Some(DistributionPointName::FullName(names)) => names.clone(),
            _ => Vec::new(),
        })
        .map(|name| match name {
            GeneralName::UniformResourceIdentifier(uri) => uri.to_string(),
            other => panic!("not a URI: {other:?}"),
        })
        .collect()
}

/// The (access method, URI) pairs of a certificate's authorityInfoAccess.
fn authority_info_access(certificate: &Certificate) -> Vec<(String, String)> {
    let Some((_, access)) = certificate
        .tbs_certificate
        .get::<AuthorityInfoAccessSyntax>()
        .expect("decodes")
    else {
        return Vec::new();
    };
    access
        .0
        .iter()
        .map(|description| match &description.access_location {
            GeneralName::UniformResourceIdentifier(uri) => {
                (description.access_method.to_string(), uri.to_string())
            }
            other => panic!("not a URI: {other:?}"),
        })
        .collect()
}

/// A person's certificate, the intermediate and the root, parsed.
async fn person_chain(sims: &Sims, n: usize) -> (Certificate, Certificate, Certificate) {
    let id = id_of(&person(sims, n).await).to_owned();
    let (status, body) = sims
        .get(GOSSUOK, &format!("sim/persons/{id}/certificate"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let intermediate = parse(&get_der(sims, "ca/intermediate.der", "application/pkix-cert").await);
    let root = parse(&get_der(sims, "ca/root.der", "application/pkix-cert").await);
    (parse(&base64_der(&body["certificate"])), intermediate, root)
}

fn sha1(bytes: &[u8]) -> Vec<u8> {
    <sha1::Sha1 as sha1::Digest>::digest(bytes).to_vec()
}

/// The SHA-1 CertID of `serial` issued by `issuer`, as RFC 5019 clients send it.
fn cert_id(issuer: &Certificate, serial: &SerialNumber) -> CertId {
    let tbs = &issuer.tbs_certificate;
    CertId {
        hash_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: der::asn1::OctetString::new(sha1(&tbs.subject.to_der().expect("DER")))
            .expect("an octet string"),
        issuer_key_hash: der::asn1::OctetString::new(sha1(
            tbs.subject_public_key_info.subject_public_key.raw_bytes(),
        ))
        .expect("an octet string"),
        serial_number: serial.clone(),
    }
}

const OCSP_NONCE: &str = "1.3.6.1.5.5.7.48.1.2";

/// A DER OCSPRequest about `ids`, with `nonce` if given.
fn ocsp_request(ids: &[CertId], nonce: Option<&[u8]>) -> Vec<u8> {
    let request_extensions = nonce.map(|nonce| {
        vec![x509_cert::ext::Extension {
            extn_id: ObjectIdentifier::new_unwrap(OCSP_NONCE),
            critical: false,
            extn_value: der::asn1::OctetString::new(
                der::asn1::OctetString::new(nonce)
                    .expect("an octet string")
                    .to_der()
                    .expect("DER"),
            )
            .expect("an octet string"),
        }]
    });
    OcspRequest {
        tbs_request: TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: ids
                .iter()
                .map(|id| Request {
                    req_cert: id.clone(),
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .expect("DER")
}

/// The responder's answer to a POSTed request: always 200, `application/ocsp-response`.
async fn post_ocsp(sims: &Sims, request: Vec<u8>) -> OcspResponse {
    let response = sims
        .client
        .post(sims.url(GOSSUOK, "ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(request)
        .send()
        .await
        .expect("the POST is answered");
    ocsp_response(response).await
}

async fn ocsp_response(response: reqwest::Response) -> OcspResponse {
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/ocsp-response")
    );
    OcspResponse::from_der(&response.bytes().await.expect("a body")).expect("a DER OCSPResponse")
}

/// The BasicOCSPResponse of a successful answer.
fn basic(response: &OcspResponse) -> BasicOcspResponse {
    assert_eq!(response.response_status, OcspResponseStatus::Successful);
    let bytes = response.response_bytes.as_ref().expect("response bytes");
    assert_eq!(bytes.response_type.to_string(), "1.3.6.1.5.5.7.48.1.1");
    BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("a BasicOCSPResponse")
}

/// Whether the answer's bign-with-hbelt signature verifies with `key`.
fn ocsp_signed_by(basic: &BasicOcspResponse, key: &VerifyingKey) -> bool {
    assert_eq!(basic.signature_algorithm.oid.to_string(), BIGN_WITH_HBELT);
    let tbs = basic.tbs_response_data.to_der().expect("DER");
    signed_by(&tbs, basic.signature.raw_bytes(), key)
}

fn nonce_of(basic: &BasicOcspResponse) -> Option<Vec<u8>> {
    basic
        .tbs_response_data
        .response_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OCSP_NONCE)
        .map(|e| {
            der::asn1::OctetString::from_der(e.extn_value.as_bytes())
                .expect("an octet string")
                .as_bytes()
                .to_vec()
        })
}

/// The one answer's status, after checking it is about `id`.
fn status_of(basic: &BasicOcspResponse, id: &CertId) -> CertStatus {
    let responses = &basic.tbs_response_data.responses;
    assert_eq!(responses.len(), 1);
    assert_eq!(&responses[0].cert_id, id);
    responses[0].cert_status
}

fn seconds(time: x509_ocsp::OcspGeneralizedTime) -> u64 {
    time.0.to_unix_duration().as_secs()
}

#[tokio::test]
async fn certificates_name_the_crl_and_the_ocsp_responder_under_the_simulators_url() {
    let sims = gossuok().await;
    let base = sims.url(GOSSUOK, "").to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let (leaf, intermediate, root) = person_chain(&sims, 4).await;
    assert_eq!(
        distribution_points(&leaf),
        [format!("{base}crl/intermediate.crl")]
    );
    assert_eq!(
        authority_info_access(&leaf),
        [
            ("1.3.6.1.5.5.7.48.1".to_owned(), format!("{base}ocsp")),
            (
                "1.3.6.1.5.5.7.48.2".to_owned(),
                format!("{base}ca/intermediate.der")
            ),
        ]
    );
    assert_eq!(
        distribution_points(&intermediate),
        [format!("{base}crl/root.crl")]
    );
    assert_eq!(
        authority_info_access(&intermediate)[0],
        ("1.3.6.1.5.5.7.48.1".to_owned(), format!("{base}ocsp"))
    );
    // The root, the trust anchor, names no URL: it is the same wherever the simulator runs.
    assert!(distribution_points(&root).is_empty());
    assert!(authority_info_access(&root).is_empty());
    // The addresses work: the CRL named is there.
    let crl_path = "crl/intermediate.crl";
    get_der(&sims, crl_path, "application/pkix-crl").await;

    let published = gossuok_published_at("http://simulators:8141/").await;
    let (leaf, intermediate, published_root) = person_chain(&published, 4).await;
    assert_eq!(
        distribution_points(&leaf),
        ["http://simulators:8141/crl/intermediate.crl"]
    );
    assert_eq!(
        authority_info_access(&leaf)[0].1,
        "http://simulators:8141/ocsp"
    );
    assert_eq!(
        distribution_points(&intermediate),
        ["http://simulators:8141/crl/root.crl"]
    );
    assert_eq!(published_root, root);
    sims.stop().await;
    published.stop().await;
}

#[tokio::test]
async fn ocsp_answers_good_then_revoked_signed_by_the_issuer_as_the_crl_says() {
    let sims = gossuok().await;
    let (leaf, intermediate, root) = person_chain(&sims, 8).await;
    let leaf_id = cert_id(&intermediate, &leaf.tbs_certificate.serial_number);
    let nonce = [7_u8; 32];

    let asked_at = u64::try_from(Utc::now().timestamp()).expect("after 1970");
    let good = basic(
        &post_ocsp(
            &sims,
            ocsp_request(std::slice::from_ref(&leaf_id), Some(&nonce)),
        )
        .await,
    );
    assert!(matches!(status_of(&good, &leaf_id), CertStatus::Good(_)));
    assert!(ocsp_signed_by(&good, &key_of(&intermediate)));
    assert!(!ocsp_signed_by(&good, &key_of(&root)));
    assert_eq!(
        good.tbs_response_data.responder_id,
        ResponderId::ByKey(
            der::asn1::OctetString::new(sha1(
                intermediate
                    .tbs_certificate
                    .subject_public_key_info
                    .subject_public_key
                    .raw_bytes()
            ))
            .expect("an octet string")
        )
    );
    assert_eq!(nonce_of(&good).as_deref(), Some(&nonce[..]));
    assert!(good.certs.is_none());
    let single = &good.tbs_response_data.responses[0];
    let this_update = seconds(single.this_update);
    assert!(this_update + 5 >= asked_at && this_update <= asked_at + 5);
    assert_eq!(
        seconds(single.next_update.expect("a next update")) - this_update,
        120,
        "valid as long as a CRL"
    );

    // The intermediate is answered for by the root.
    let intermediate_id = cert_id(&root, &intermediate.tbs_certificate.serial_number);
    let answer = basic(
        &post_ocsp(
            &sims,
            ocsp_request(std::slice::from_ref(&intermediate_id), None),
        )
        .await,
    );
    assert!(matches!(
        status_of(&answer, &intermediate_id),
        CertStatus::Good(_)
    ));
    assert!(ocsp_signed_by(&answer, &key_of(&root)));
    assert_eq!(nonce_of(&answer), None, "no nonce asked, none given");

    // A serial the CA never issued is unknown.
    let stranger_id = cert_id(
        &intermediate,
        &SerialNumber::new(&[0x01, 0x23, 0xab, 0xcd]).expect("a serial"),
    );
    let answer = basic(
        &post_ocsp(
            &sims,
            ocsp_request(std::slice::from_ref(&stranger_id), None),
        )
        .await,
    );
    assert!(matches!(
        status_of(&answer, &stranger_id),
        CertStatus::Unknown(_)
    ));

    // Revoked: OCSP and the CRL say the same, at the same time and for the same reason.
    let serial = serial_hex(leaf.tbs_certificate.serial_number.as_bytes());
    let (status, body) = sims
        .post(
            GOSSUOK,
            &format!("sim/revoke/{serial}"),
            None,
            &json!({"reason": "key_compromise", "revoked_at": "2026-01-02T03:04:05Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revoked = basic(
        &post_ocsp(
            &sims,
            ocsp_request(std::slice::from_ref(&leaf_id), Some(&nonce)),
        )
        .await,
    );
    assert!(ocsp_signed_by(&revoked, &key_of(&intermediate)));
    let CertStatus::Revoked(info) = status_of(&revoked, &leaf_id) else {
        panic!("revoked expected");
    };
    assert_eq!(info.revocation_reason, Some(CrlReason::KeyCompromise));
    let crl = CertificateList::from_der(
        &get_der(&sims, "crl/intermediate.crl", "application/pkix-crl").await,
    )
    .expect("a DER CRL");
    let entries = crl.tbs_cert_list.revoked_certificates.expect("entries");
    let entry = entries
        .iter()
        .find(|e| e.serial_number == leaf.tbs_certificate.serial_number)
        .expect("listed");
    assert_eq!(
        seconds(info.revocation_time),
        entry.revocation_date.to_unix_duration().as_secs()
    );
    assert_eq!(
        seconds(info.revocation_time),
        u64::try_from(
            chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .expect("a time")
                .timestamp()
        )
        .expect("after 1970")
    );

    // One answer speaks for one CA: both CAs' certificates at once, or a CA it does not know,
    // are not its to answer.
    let both = post_ocsp(
        &sims,
        ocsp_request(&[leaf_id.clone(), intermediate_id], None),
    )
    .await;
    assert_eq!(both.response_status, OcspResponseStatus::Unauthorized);
    let mut foreign = leaf_id;
    foreign.issuer_key_hash = der::asn1::OctetString::new(vec![0; 20]).expect("bytes");
    let foreign = post_ocsp(&sims, ocsp_request(&[foreign], None)).await;
    assert_eq!(foreign.response_status, OcspResponseStatus::Unauthorized);
    sims.stop().await;
}

#[tokio::test]
async fn the_get_form_answers_as_the_post_does() {
    let sims = gossuok().await;
    let (leaf, intermediate, _) = person_chain(&sims, 9).await;
    let id = cert_id(&intermediate, &leaf.tbs_certificate.serial_number);
    // Find a nonce whose request's standard base64 has `+` or `/`, which must be URL-encoded.
    let (request, nonce) = (0_u8..=255)
        .map(|n| {
            let nonce = [n; 16];
            (ocsp_request(std::slice::from_ref(&id), Some(&nonce)), nonce)
        })
        .find(|(request, _)| BASE64.encode(request).contains(['+', '/']))
        .expect("some nonce gives a + or a /");
    let standard = BASE64
        .encode(&request)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&request);
    for encoded in [standard, url_safe] {
        let response = sims
            .client
            .get(sims.url(GOSSUOK, &format!("ocsp/{encoded}")))
            .send()
            .await
            .expect("the GET is answered");
        let answer = basic(&ocsp_response(response).await);
        assert!(
            matches!(status_of(&answer, &id), CertStatus::Good(_)),
            "{encoded}"
        );
        assert!(ocsp_signed_by(&answer, &key_of(&intermediate)));
        assert_eq!(nonce_of(&answer).as_deref(), Some(&nonce[..]));
    }
    sims.stop().await;
}

#[tokio::test]
async fn a_malformed_request_gets_malformed_request() {
    let sims = gossuok().await;
    let (leaf, intermediate, _) = person_chain(&sims, 10).await;
    let id = cert_id(&intermediate, &leaf.tbs_certificate.serial_number);
    for (what, request) in [
        ("garbage", b"not an OCSP request".to_vec()),
        ("nothing", Vec::new()),
        ("no certificate asked", ocsp_request(&[], None)),
        (
            "a nonce over 32 bytes (RFC 8954)",
            ocsp_request(std::slice::from_ref(&id), Some(&[1; 33])),
        ),
    ] {
        let response = post_ocsp(&sims, request).await;
        assert_eq!(
            response.response_status,
            OcspResponseStatus::MalformedRequest,
            "{what}"
        );
        assert!(response.response_bytes.is_none(), "{what}");
    }
    let response = sims
        .client
        .get(sims.url(GOSSUOK, "ocsp/not*base64"))
        .send()
        .await
        .expect("the GET is answered");
    assert_eq!(
        ocsp_response(response).await.response_status,
        OcspResponseStatus::MalformedRequest
    );
    sims.stop().await;
}

#[tokio::test]
async fn ocsp_modes_give_the_answers_a_client_must_refuse() {
    let sims = gossuok().await;
    let (leaf, intermediate, _) = person_chain(&sims, 11).await;
    let id = cert_id(&intermediate, &leaf.tbs_certificate.serial_number);
    let nonce = [9_u8; 32];
    let intermediate_key = key_of(&intermediate);
    let ask =
        || async { post_ocsp(&sims, ocsp_request(std::slice::from_ref(&id), Some(&nonce))).await };
    let set = |mode: &'static str| {
        let sims = &sims;
        async move {
            let response = sims
                .client
                .put(sims.url(GOSSUOK, "sim/ocsp"))
                .json(&json!({ "mode": mode }))
                .send()
                .await
                .expect("the PUT is answered");
            assert_eq!(response.status().as_u16(), 200, "{mode}");
        }
    };

    set("try_later").await;
    assert_eq!(ask().await.response_status, OcspResponseStatus::TryLater);
    let (status, body) = sims.get(GOSSUOK, "sim/ocsp").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"mode": "try_later"}));
    set("internal_error").await;
    assert_eq!(
        ask().await.response_status,
        OcspResponseStatus::InternalError
    );

    set("bad_signature").await;
    let answer = basic(&ask().await);
    assert!(!ocsp_signed_by(&answer, &intermediate_key));
    set("wrong_key").await;
    let answer = basic(&ask().await);
    assert!(!ocsp_signed_by(&answer, &intermediate_key));

    set("stale").await;
    let answer = basic(&ask().await);
    assert!(ocsp_signed_by(&answer, &intermediate_key));
    let next_update = seconds(
        answer.tbs_response_data.responses[0]
            .next_update
            .expect("next"),
    );
    assert!(next_update < u64::try_from(Utc::now().timestamp()).expect("after 1970"));

    set("other_serial").await;
    let answer = basic(&ask().await);
    assert_ne!(answer.tbs_response_data.responses[0].cert_id, id);

    set("no_nonce").await;
    assert_eq!(nonce_of(&basic(&ask().await)), None);
    set("wrong_nonce").await;
    let echoed = nonce_of(&basic(&ask().await)).expect("a nonce");
    assert_ne!(echoed, nonce);

    // A delegated responder: its certificate, issued by the CA for OCSP signing, is included.
    set("delegated_responder").await;
    let answer = basic(&ask().await);
    let responder = &answer.certs.as_ref().expect("the responder's certificate")[0];
    assert!(certificate_verifies(responder, &intermediate_key));
    assert!(ocsp_signed_by(&answer, &key_of(responder)));
    let (_, purposes) = responder
        .tbs_certificate
        .get::<ExtendedKeyUsage>()
        .expect("decodes")
        .expect("an extendedKeyUsage");
    assert_eq!(purposes.0[0].to_string(), "1.3.6.1.5.5.7.3.9");

    let response = sims
        .client
        .put(sims.url(GOSSUOK, "sim/ocsp"))
        .json(&json!({"mode": "lie"}))
        .send()
        .await
        .expect("the PUT is answered");
    assert_eq!(response.status().as_u16(), 400);

    set("normal").await;
    let answer = basic(&ask().await);
    assert!(matches!(status_of(&answer, &id), CertStatus::Good(_)));
    assert!(ocsp_signed_by(&answer, &intermediate_key));
    assert_eq!(nonce_of(&answer).as_deref(), Some(&nonce[..]));
    sims.stop().await;
}

#[tokio::test]
async fn a_persons_certificate_chains_to_the_published_ca_certificates() {
    let sims = gossuok().await;
    let holder = person(&sims, 3).await;
    let id = id_of(&holder);
    let (status, body) = sims
        .get(GOSSUOK, &format!("sim/persons/{id}/certificate"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let root_der = get_der(&sims, "ca/root.der", "application/pkix-cert").await;
    let intermediate_der = get_der(&sims, "ca/intermediate.der", "application/pkix-cert").await;
    let chain: Vec<Vec<u8>> = body["chain"]
        .as_array()
        .expect("a chain")
        .iter()
        .map(base64_der)
        .collect();
    assert_eq!(chain, [intermediate_der.clone(), root_der.clone()]);

    let leaf = parse(&base64_der(&body["certificate"]));
    let intermediate = parse(&intermediate_der);
    let root = parse(&root_der);
    assert!(certificate_verifies(&leaf, &key_of(&intermediate)));
    assert!(certificate_verifies(&intermediate, &key_of(&root)));
    assert!(certificate_verifies(&root, &key_of(&root)));
    assert!(!certificate_verifies(&leaf, &key_of(&root)));

    let serial = body["serial"].as_str().expect("a serial");
    assert_eq!(
        serial_hex(leaf.tbs_certificate.serial_number.as_bytes()),
        serial
    );
    let subject = &leaf.tbs_certificate.subject;
    assert_eq!(attribute(subject, "2.5.4.5"), id);
    assert_eq!(attribute(subject, "2.5.4.4"), holder["surname"]);
    assert_eq!(attribute(subject, "2.5.4.42"), holder["given_name"]);
    let validity = &leaf.tbs_certificate.validity;
    let now = Duration::from_secs(u64::try_from(Utc::now().timestamp()).expect("after 1970"));
    assert!(validity.not_before.to_unix_duration() < now);
    assert!(validity.not_after.to_unix_duration() > now);

    // The same person has the same certificate on the next request (and ignores case).
    let (_, again) = sims
        .get(
            GOSSUOK,
            &format!("sim/persons/{}/certificate", id.to_lowercase()),
        )
        .await;
    assert_eq!(again, body);
    sims.stop().await;
}

#[tokio::test]
async fn the_key_token_signs_a_challenge_that_verifies_with_the_certificates_key() {
    let sims = gossuok().await;
    let holder = person(&sims, 5).await;
    let id = id_of(&holder);
    let challenge = b"login challenge: 8f14e45fceea167a5a36dedd4bea2543";
    let (status, signed) = sims
        .post(
            GOSSUOK,
            &format!("sim/persons/{id}/sign"),
            None,
            &json!({"data": BASE64.encode(challenge)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let signature = base64_der(&signed["signature"]);
    assert_eq!(signature.len(), 48);

    let (_, body) = sims
        .get(GOSSUOK, &format!("sim/persons/{id}/certificate"))
        .await;
    assert_eq!(signed["serial"], body["serial"]);
    let key = key_of(&parse(&base64_der(&body["certificate"])));
    assert!(signed_by(challenge, &signature, &key));
    assert!(!signed_by(b"another challenge", &signature, &key));

    // Another person's key does not verify it.
    let other = person(&sims, 6).await;
    let (_, other_body) = sims
        .get(
            GOSSUOK,
            &format!("sim/persons/{}/certificate", id_of(&other)),
        )
        .await;
    let other_key = key_of(&parse(&base64_der(&other_body["certificate"])));
    assert!(!signed_by(challenge, &signature, &other_key));

    let (status, body) = sims
        .post(
            GOSSUOK,
            &format!("sim/persons/{id}/sign"),
            None,
            &json!({"data": "not base64!"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    sims.stop().await;
}

#[tokio::test]
async fn a_revocation_shows_in_the_status_and_in_a_freshly_signed_crl() {
    let sims = gossuok().await;
    let id = id_of(&person(&sims, 7).await).to_owned();
    let (_, body) = sims
        .get(GOSSUOK, &format!("sim/persons/{id}/certificate"))
        .await;
    let serial = body["serial"].as_str().expect("a serial").to_owned();
    let status_path = format!("api/v1/certificates/{serial}/status");
    let (status, before) = sims.get(GOSSUOK, &status_path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(before, json!({"serial": serial, "status": "good"}));

    let (status, revoked) = sims
        .post(
            GOSSUOK,
            &format!("sim/revoke/{serial}"),
            None,
            &json!({"reason": "key_compromise"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let (_, after) = sims.get(GOSSUOK, &status_path).await;
    assert_eq!(after["status"], "revoked");
    assert_eq!(after["reason"], "key_compromise");
    assert_eq!(after, revoked);

    // Revoking again changes nothing.
    let (status, again) = sims
        .post(
            GOSSUOK,
            &format!("sim/revoke/{}", serial.to_uppercase()),
            None,
            &json!({"reason": "superseded"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, revoked);

    let fetched_at = Utc::now();
    let der = get_der(&sims, "crl/intermediate.crl", "application/pkix-crl").await;
    let crl = CertificateList::from_der(&der).expect("a DER CRL");
    let intermediate = parse(&get_der(&sims, "ca/intermediate.der", "application/pkix-cert").await);
    let tbs = crl.tbs_cert_list.to_der().expect("DER");
    assert_eq!(crl.signature_algorithm.oid.to_string(), BIGN_WITH_HBELT);
    assert!(signed_by(
        &tbs,
        crl.signature.raw_bytes(),
        &key_of(&intermediate)
    ));
    assert_eq!(
        crl.tbs_cert_list.issuer,
        intermediate.tbs_certificate.subject
    );
    let this_update = crl.tbs_cert_list.this_update.to_unix_duration().as_secs();
    let next_update = crl
        .tbs_cert_list
        .next_update
        .expect("a next update")
        .to_unix_duration()
        .as_secs();
    let fetched = u64::try_from(fetched_at.timestamp()).expect("after 1970");
    assert!(this_update + 5 >= fetched && this_update <= fetched + 5);
    assert_eq!(next_update - this_update, 120);
    let entries = crl
        .tbs_cert_list
        .revoked_certificates
        .expect("revoked certificates");
    let entry = entries
        .iter()
        .find(|e| serial_hex(e.serial_number.as_bytes()) == serial)
        .expect("the revoked serial is listed");
    let reason = &entry.crl_entry_extensions.as_ref().expect("extensions")[0];
    assert_eq!(reason.extn_id.to_string(), "2.5.29.21");
    assert_eq!(
        CrlReason::from_der(reason.extn_value.as_bytes()).expect("a CRLReason"),
        CrlReason::KeyCompromise
    );

    // The root's CRL does not list a leaf the intermediate issued.
    let root_crl =
        CertificateList::from_der(&get_der(&sims, "crl/root.crl", "application/pkix-crl").await)
            .expect("a DER CRL");
    assert!(root_crl.tbs_cert_list.revoked_certificates.is_none());

    let (status, body) = sims
        .post(GOSSUOK, "sim/revoke/abcdef0123", None, &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = sims
        .post(
            GOSSUOK,
            &format!("sim/revoke/{serial}"),
            None,
            &json!({"reason": "stolen"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    sims.stop().await;
}

#[tokio::test]
async fn the_roots_crl_lists_a_revoked_intermediate() {
    let sims = gossuok().await;
    let intermediate = parse(&get_der(&sims, "ca/intermediate.der", "application/pkix-cert").await);
    let serial = serial_hex(intermediate.tbs_certificate.serial_number.as_bytes());
    let (status, body) = sims
        .post(
            GOSSUOK,
            &format!("sim/revoke/{serial}"),
            None,
            &json!({"reason": "ca_compromise"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let root = parse(&get_der(&sims, "ca/root.der", "application/pkix-cert").await);
    let crl =
        CertificateList::from_der(&get_der(&sims, "crl/root.crl", "application/pkix-crl").await)
            .expect("a DER CRL");
    let tbs = crl.tbs_cert_list.to_der().expect("DER");
    assert!(signed_by(&tbs, crl.signature.raw_bytes(), &key_of(&root)));
    let listed: Vec<String> = crl
        .tbs_cert_list
        .revoked_certificates
        .expect("entries")
        .iter()
        .map(|e| serial_hex(e.serial_number.as_bytes()))
        .collect();
    assert_eq!(listed, [serial]);
    sims.stop().await;
}

#[tokio::test]
async fn unknown_persons_and_serials() {
    let sims = gossuok().await;
    let (status, body) = sims
        .get(GOSSUOK, "sim/persons/7000000A000PB1/certificate")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "not_found");
    let (status, body) = sims
        .post(
            GOSSUOK,
            "sim/persons/7000000A000PB1/sign",
            None,
            &json!({"data": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = sims
        .post(
            GOSSUOK,
            "sim/certificates",
            None,
            &json!({"identification_number": "7000000A000PB1"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = sims
        .get(GOSSUOK, "api/v1/certificates/0123abcd/status")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"serial": "0123abcd", "status": "unknown"}));
    let (status, body) = sims
        .get(GOSSUOK, "api/v1/certificates/not-hex/status")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = sims
        .post(
            GOSSUOK,
            "sim/certificates/0123abcd/sign",
            None,
            &json!({"data": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    sims.stop().await;
}

#[tokio::test]
async fn extra_certificates_expired_wrong_usage_and_signed_by_the_root() {
    let sims = gossuok().await;
    let id = id_of(&person(&sims, 11).await).to_owned();
    let (_, own) = sims
        .get(GOSSUOK, &format!("sim/persons/{id}/certificate"))
        .await;

    let expired_at = Utc::now() - TimeDelta::days(2);
    let (status, expired) = sims
        .post(
            GOSSUOK,
            "sim/certificates",
            None,
            &json!({
                "identification_number": id,
                "valid_from": (expired_at - TimeDelta::days(365)).to_rfc3339(),
                "valid_to": expired_at.to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{expired}");
    assert_ne!(expired["serial"], own["serial"]);
    let certificate = parse(&base64_der(&expired["certificate"]));
    assert_eq!(
        certificate
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs(),
        u64::try_from(expired_at.timestamp()).expect("after 1970")
    );
    assert_eq!(expired["chain"].as_array().map(Vec::len), Some(2));

    // Its own key signs through its serial, and differs from the person's own key.
    let serial = expired["serial"].as_str().expect("a serial");
    let (status, signed) = sims
        .post(
            GOSSUOK,
            &format!("sim/certificates/{serial}/sign"),
            None,
            &json!({"data": BASE64.encode(b"hello")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let signature = base64_der(&signed["signature"]);
    assert!(signed_by(b"hello", &signature, &key_of(&certificate)));
    let own_key = key_of(&parse(&base64_der(&own["certificate"])));
    assert!(!signed_by(b"hello", &signature, &own_key));

    let (status, wrong) = sims
        .post(
            GOSSUOK,
            "sim/certificates",
            None,
            &json!({"identification_number": id, "key_usage": "key_encipherment_only"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{wrong}");
    let certificate = parse(&base64_der(&wrong["certificate"]));
    let key_usage = certificate
        .tbs_certificate
        .extensions
        .as_ref()
        .and_then(|e| e.iter().find(|e| e.extn_id.to_string() == "2.5.29.15"))
        .expect("a key usage");
    let key_usage = x509_cert::ext::pkix::KeyUsage::from_der(key_usage.extn_value.as_bytes())
        .expect("a KeyUsage");
    assert!(key_usage.key_encipherment() && !key_usage.digital_signature());

    let (status, odd) = sims
        .post(
            GOSSUOK,
            "sim/certificates",
            None,
            &json!({"identification_number": id, "signed_by": "root"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{odd}");
    let chain = odd["chain"].as_array().expect("a chain");
    assert_eq!(chain.len(), 1);
    let root = parse(&base64_der(&chain[0]));
    assert!(certificate_verifies(
        &parse(&base64_der(&odd["certificate"])),
        &key_of(&root)
    ));

    let (status, body) = sims
        .post(
            GOSSUOK,
            "sim/certificates",
            None,
            &json!({"identification_number": id, "valid_from": "2026-01-02T00:00:00Z",
                    "valid_to": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = sims
        .post(
            GOSSUOK,
            "sim/certificates",
            None,
            &json!({"identification_number": id, "key_usage": "everything"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    sims.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_issues_one_certificate() {
    let sims = gossuok().await;
    let id = id_of(&person(&sims, 12).await).to_owned();
    let body = json!({"identification_number": id, "key_usage": "key_encipherment_only"});
    let (first_status, first) = sims
        .post(GOSSUOK, "sim/certificates", Some("key-1"), &body)
        .await;
    let (second_status, second) = sims
        .post(GOSSUOK, "sim/certificates", Some("key-1"), &body)
        .await;
    assert_eq!(first_status, StatusCode::CREATED);
    assert_eq!(second_status, StatusCode::CREATED);
    assert_eq!(first, second);
    let (_, third) = sims.post(GOSSUOK, "sim/certificates", None, &body).await;
    assert_ne!(third["serial"], first["serial"]);
    sims.stop().await;
}

#[tokio::test]
async fn faults_make_the_ca_unreachable_but_not_the_control_routes() {
    let sims = gossuok().await;
    let (status, _) = sims.put_faults(GOSSUOK, &json!({"error_rate": 1.0})).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "ca/root.der",
        "ca/intermediate.der",
        "crl/root.crl",
        "crl/intermediate.crl",
        "api/v1/certificates/0123/status",
    ] {
        let (status, body) = sims.get(GOSSUOK, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(body["error"], "unavailable");
    }
    let response = sims
        .client
        .post(sims.url(GOSSUOK, "ocsp"))
        .body(b"an OCSP request".to_vec())
        .send()
        .await
        .expect("the POST is answered");
    assert_eq!(response.status().as_u16(), 503, "POST /ocsp");
    let id = id_of(&person(&sims, 1).await).to_owned();
    let (status, _) = sims
        .get(GOSSUOK, &format!("sim/persons/{id}/certificate"))
        .await;
    assert_eq!(status, StatusCode::OK);

    let response = sims
        .client
        .delete(sims.url(GOSSUOK, "sim/faults"))
        .send()
        .await
        .expect("the DELETE is answered");
    assert_eq!(response.status().as_u16(), 200);
    get_der(&sims, "crl/intermediate.crl", "application/pkix-crl").await;
    sims.stop().await;
}

#[tokio::test]
async fn the_same_seed_publishes_the_same_root() {
    let a = gossuok().await;
    let b = gossuok().await;
    assert_eq!(
        get_der(&a, "ca/root.der", "application/pkix-cert").await,
        get_der(&b, "ca/root.der", "application/pkix-cert").await
    );
    let id = id_of(&person(&a, 2).await).to_owned();
    let path = format!("sim/persons/{id}/certificate");
    let (_, from_a) = a.get(GOSSUOK, &path).await;
    let (_, from_b) = b.get(GOSSUOK, &path).await;
    let key = |body: &Value| key_of(&parse(&base64_der(&body["certificate"]))).to_sec1_bytes();
    assert_eq!(key(&from_a), key(&from_b));
    a.stop().await;
    b.stop().await;
}

/// `compose.yaml` gives the hub this file as its trusted EDS root for the simulator started with
/// the default seed: it must be the root that simulator publishes.
#[test]
fn the_committed_root_for_compose_is_the_default_seeds_root() {
    let pem = include_str!("../data/gossuok-test-root-seed-42.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = BASE64.decode(body).expect("base64");
    let ca = simulators::gossuok::ca::TestCa::new(SimConfig::default().seed);
    assert_eq!(der, ca.root_der());
    // Wherever the simulator publishes, the root stays the same.
    let published =
        ca.with_publication(&url::Url::parse("http://simulators:8141/").expect("a URL"));
    assert_eq!(der, published.root_der());
    assert_ne!(ca.intermediate_der(), published.intermediate_der());
}
