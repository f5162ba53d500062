//! The GosSUOK simulator over real HTTP, checked from the outside with bign256 and x509-cert:
//! a person's certificate chains to the published CA certificates, their key token's signature
//! verifies with the certificate's key, a revocation shows in the status endpoint and in a
//! freshly signed CRL, odd certificates can be issued, and the faults reach the CA's services.

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
use x509_cert::ext::pkix::CrlReason;

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
    assert_eq!(
        der,
        simulators::gossuok::ca::TestCa::new(SimConfig::default().seed).root_der()
    );
}
