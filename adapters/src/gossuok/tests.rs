//! Tests of the whole module against the simulator's test CA: real bign-with-hbelt
//! certificates and CRLs, each test asserting the reason it expects; and of the HTTP side
//! against `wiremock`.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use der::Decode;
use serde_json::json;
use simulators::gossuok::ca::{
    IssueOptions, Issued, Issuer, LeafKeyUsage, Revocation, RevocationReason as SimReason, Subject,
    TestCa,
};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::failure::{FailureKind, QuickRetry};

const SEED: u64 = 7;
const OTHER_SEED: u64 = 8;
const ID_NUMBER: &str = "3270287A012PB2";
const SURNAME: &str = "Иванова";
const GIVEN_NAME: &str = "Анна";
const PATRONYMIC: &str = "Сергеевна";

/// The test CA, built once: deriving keys and signing is not free in a debug build.
static CA: LazyLock<TestCa> = LazyLock::new(|| TestCa::new(SEED));
static OTHER_CA: LazyLock<TestCa> = LazyLock::new(|| TestCa::new(OTHER_SEED));

/// The time every check is made at, well inside the CA's validity (2020 to 2040).
fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
        .expect("a time")
        .with_timezone(&Utc)
}

fn subject() -> Subject {
    Subject {
        identification_number: ID_NUMBER.to_owned(),
        surname: SURNAME.to_owned(),
        given_name: GIVEN_NAME.to_owned(),
        patronymic: Some(PATRONYMIC.to_owned()),
    }
}

fn options() -> IssueOptions {
    IssueOptions {
        not_before: at() - TimeDelta::days(30),
        not_after: at() + TimeDelta::days(365),
        ..IssueOptions::default()
    }
}

fn issue(options: &IssueOptions) -> Issued {
    CA.issue(&subject(), options)
}

fn validator() -> Validator {
    Validator::new(&[CA.root_der()]).expect("the test CA's root is a good root")
}

fn chain() -> Vec<Vec<u8>> {
    vec![CA.intermediate_der()]
}

fn crl(issuer: Issuer, revoked: &[Revocation], next_update: DateTime<Utc>) -> Vec<u8> {
    CA.crl_der(issuer, revoked, at() - TimeDelta::hours(1), next_update)
}

fn certificate(der: &[u8]) -> Certificate {
    Certificate::from_der(der).expect("a certificate")
}

/// A cache with both CAs' CRLs, valid for a day, listing `revoked` on the intermediate's.
fn crls(revoked: &[Revocation]) -> CrlCache {
    let next_update = at() + TimeDelta::days(1);
    let mut cache = CrlCache::new();
    let root = certificate(&CA.root_der());
    let intermediate = certificate(&CA.intermediate_der());
    for (der, issuer) in [
        (crl(Issuer::Root, &[], next_update), &root),
        (
            crl(Issuer::Intermediate, revoked, next_update),
            &intermediate,
        ),
    ] {
        assert!(cache.insert(Crl::parse_verified(&der, issuer).expect("a good CRL")));
    }
    cache
}

fn validate(
    leaf: &[u8],
    chain: &[Vec<u8>],
    revocation: &CrlCache,
) -> Result<ValidCertificate, Invalid> {
    validator().validate(leaf, chain, at(), revocation)
}

/// What a refusal says must hold no personal data, wherever it ends up.
fn refused(result: Result<ValidCertificate, Invalid>, code: &str) -> Invalid {
    let invalid = result.expect_err("refused");
    assert_eq!(invalid.reason_code(), code, "{invalid}");
    let text = invalid.to_string();
    for personal in [ID_NUMBER, SURNAME, GIVEN_NAME, PATRONYMIC] {
        assert!(!text.contains(personal), "personal data leaked: {text}");
    }
    invalid
}

fn serial_of(der: &[u8]) -> String {
    serial_hex(certificate(der).tbs_certificate.serial_number.as_bytes())
}

/// Replaces every occurrence of `from` in `bytes` by `to` (same length).
fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    let mut count = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            count += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    count
}

// The validator.

#[test]
fn a_chain_from_the_test_ca_validates_and_names_the_holder() {
    let issued = issue(&options());
    let valid = validate(&issued.certificate_der, &chain(), &crls(&[])).expect("valid");
    assert_eq!(valid.serial, issued.serial);
    assert_eq!(valid.identification_number, ID_NUMBER);
    assert_eq!(valid.surname, SURNAME);
    assert_eq!(valid.given_name, GIVEN_NAME);
    assert_eq!(valid.patronymic.as_deref(), Some(PATRONYMIC));
    assert_eq!(valid.not_after, options().not_after);
    assert!(valid.issuer.contains("Republican CA"), "{}", valid.issuer);
    assert_eq!(valid.public_key, issued.holder.public_key_bytes());
}

#[test]
fn no_patronymic_is_none_and_personal_data_stays_out_of_debug() {
    let subject = Subject {
        patronymic: None,
        ..subject()
    };
    let issued = CA.issue(&subject, &options());
    let valid = validate(&issued.certificate_der, &chain(), &crls(&[])).expect("valid");
    assert_eq!(valid.patronymic, None);
    let debug = format!("{valid:?}");
    for personal in [ID_NUMBER, SURNAME, GIVEN_NAME] {
        assert!(!debug.contains(personal), "{debug}");
    }
    assert!(debug.contains(&issued.serial), "{debug}");
}

#[test]
fn the_chain_may_come_in_any_order_with_the_root_and_extras() {
    let issued = issue(&options());
    let chain = vec![
        OTHER_CA.intermediate_der(),
        CA.root_der(),
        CA.intermediate_der(),
    ];
    validate(&issued.certificate_der, &chain, &crls(&[])).expect("valid");
}

#[test]
fn a_leaf_signed_by_the_root_validates_without_an_intermediate() {
    let issued = issue(&IssueOptions {
        signed_by: Issuer::Root,
        ..options()
    });
    validate(&issued.certificate_der, &[], &crls(&[])).expect("valid");
}

#[test]
fn a_key_signing_outside_its_private_key_usage_period_is_refused() {
    // The certificate is valid at `at()`, but its key may sign only within the period.
    for (from, until, code) in [
        (
            at() - TimeDelta::days(20),
            at() - TimeDelta::days(1),
            Some("expired"),
        ),
        (
            at() + TimeDelta::days(1),
            at() + TimeDelta::days(20),
            Some("not_yet_valid"),
        ),
        (at() - TimeDelta::days(1), at() + TimeDelta::days(1), None),
    ] {
        let issued = issue(&IssueOptions {
            private_key_usage: Some((from, until)),
            ..options()
        });
        let result = validate(&issued.certificate_der, &chain(), &crls(&[]));
        match code {
            Some(code) => {
                let invalid = refused(result, code);
                assert!(
                    invalid.to_string().contains("privateKeyUsagePeriod"),
                    "{invalid}"
                );
            }
            None => {
                result.expect("signed within the period");
            }
        }
    }
}

#[test]
fn a_flipped_bit_in_the_leafs_signature_is_a_bad_signature() {
    let mut der = issue(&options()).certificate_der;
    // The signature BIT STRING ends the certificate.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let invalid = refused(validate(&der, &chain(), &crls(&[])), "bad_signature");
    assert_eq!(
        invalid,
        Invalid::BadSignature {
            which: "leaf certificate".to_owned()
        }
    );
}

#[test]
fn a_changed_identification_number_is_a_bad_signature() {
    let mut der = issue(&options()).certificate_der;
    let changed = ID_NUMBER.replace('1', "2");
    assert_eq!(
        replace_all(&mut der, ID_NUMBER.as_bytes(), changed.as_bytes()),
        1
    );
    refused(validate(&der, &chain(), &crls(&[])), "bad_signature");
}

#[test]
fn an_expired_certificate_is_expired() {
    let not_after = at() - TimeDelta::days(1);
    let issued = issue(&IssueOptions {
        not_before: at() - TimeDelta::days(400),
        not_after,
        ..options()
    });
    let invalid = refused(
        validate(&issued.certificate_der, &chain(), &crls(&[])),
        "expired",
    );
    assert_eq!(
        invalid,
        Invalid::Expired {
            which: "leaf certificate".to_owned(),
            not_after
        }
    );
}

#[test]
fn a_certificate_not_yet_valid_is_not_yet_valid() {
    let not_before = at() + TimeDelta::days(1);
    let issued = issue(&IssueOptions {
        not_before,
        not_after: at() + TimeDelta::days(400),
        ..options()
    });
    let invalid = refused(
        validate(&issued.certificate_der, &chain(), &crls(&[])),
        "not_yet_valid",
    );
    assert_eq!(
        invalid,
        Invalid::NotYetValid {
            which: "leaf certificate".to_owned(),
            not_before
        }
    );
}

#[test]
fn a_certificate_on_the_crl_is_revoked_with_its_date_and_reason() {
    let issued = issue(&options());
    let revoked_at = at() - TimeDelta::days(2);
    let cache = crls(&[Revocation {
        serial: issued.serial.clone(),
        revoked_at,
        reason: SimReason::KeyCompromise,
    }]);
    let invalid = refused(
        validate(&issued.certificate_der, &chain(), &cache),
        "revoked",
    );
    assert_eq!(
        invalid,
        Invalid::Revoked {
            serial: issued.serial,
            revoked_at,
            reason: "key_compromise".to_owned()
        }
    );
    // Another holder's certificate of the same CA is not affected.
    let other = issue(&IssueOptions {
        key_seed: 1,
        ..options()
    });
    validate(&other.certificate_der, &chain(), &cache).expect("not revoked");
}

#[test]
fn a_revoked_intermediate_revokes_its_leaves() {
    let issued = issue(&options());
    let intermediate_serial = serial_of(&CA.intermediate_der());
    let next_update = at() + TimeDelta::days(1);
    let mut cache = crls(&[]);
    let root_crl = CA.crl_der(
        Issuer::Root,
        &[Revocation {
            serial: intermediate_serial.clone(),
            revoked_at: at() - TimeDelta::minutes(30),
            reason: SimReason::CaCompromise,
        }],
        at() - TimeDelta::minutes(10),
        next_update,
    );
    let root = certificate(&CA.root_der());
    assert!(cache.insert(Crl::parse_verified(&root_crl, &root).expect("a good CRL")));
    let invalid = refused(
        validate(&issued.certificate_der, &chain(), &cache),
        "revoked",
    );
    assert!(
        matches!(&invalid, Invalid::Revoked { serial, reason, .. }
            if *serial == intermediate_serial && reason == "ca_compromise"),
        "{invalid:?}"
    );
}

#[test]
fn a_chain_to_another_root_is_untrusted() {
    let foreign = OTHER_CA.issue(&subject(), &options());
    let invalid = refused(
        validate(
            &foreign.certificate_der,
            &[OTHER_CA.intermediate_der()],
            &crls(&[]),
        ),
        "untrusted_chain",
    );
    assert!(matches!(invalid, Invalid::UntrustedChain(_)));
    // Nor does our intermediate vouch for it, nor does the other root once given.
    refused(
        validate(&foreign.certificate_der, &chain(), &crls(&[])),
        "untrusted_chain",
    );
    refused(
        validate(
            &foreign.certificate_der,
            &[OTHER_CA.intermediate_der(), OTHER_CA.root_der()],
            &crls(&[]),
        ),
        "untrusted_chain",
    );
}

#[test]
fn a_long_chain_is_refused_and_look_alikes_are_not_followed_for_long() {
    let issued = issue(&options());
    let too_long = vec![CA.intermediate_der(); 9];
    refused(
        validate(&issued.certificate_der, &too_long, &crls(&[])),
        "malformed",
    );
    let foreign = OTHER_CA.issue(&subject(), &options());
    let look_alikes = vec![OTHER_CA.intermediate_der(); 8];
    refused(
        validate(&foreign.certificate_der, &look_alikes, &crls(&[])),
        "untrusted_chain",
    );
}

#[test]
fn a_missing_intermediate_is_an_untrusted_chain() {
    let issued = issue(&options());
    refused(
        validate(&issued.certificate_der, &[], &crls(&[])),
        "untrusted_chain",
    );
}

#[test]
fn a_key_only_for_encipherment_is_the_wrong_key_usage() {
    let issued = issue(&IssueOptions {
        key_usage: LeafKeyUsage::KeyEnciphermentOnly,
        ..options()
    });
    refused(
        validate(&issued.certificate_der, &chain(), &crls(&[])),
        "wrong_key_usage",
    );
}

#[test]
fn an_intermediate_presented_as_a_leaf_is_the_wrong_key_usage() {
    refused(
        validate(&CA.intermediate_der(), &[], &crls(&[])),
        "wrong_key_usage",
    );
}

#[test]
fn another_signature_algorithm_is_unsupported() {
    let mut der = issue(&options()).certificate_der;
    // bign-with-hbelt (…45.12) becomes …45.13, in the signed part and outside it.
    let hbelt = [
        0x06, 0x09, 0x2a, 0x70, 0x00, 0x02, 0x00, 0x22, 0x65, 0x2d, 0x0c,
    ];
    let other = [
        0x06, 0x09, 0x2a, 0x70, 0x00, 0x02, 0x00, 0x22, 0x65, 0x2d, 0x0d,
    ];
    assert_eq!(replace_all(&mut der, &hbelt, &other), 2);
    refused(
        validate(&der, &chain(), &crls(&[])),
        "unsupported_algorithm",
    );
}

#[test]
fn bytes_that_are_not_a_certificate_are_malformed() {
    refused(
        validate(b"not a certificate", &chain(), &crls(&[])),
        "malformed",
    );
    let issued = issue(&options());
    let truncated = &issued.certificate_der[..issued.certificate_der.len() - 1];
    refused(validate(truncated, &chain(), &crls(&[])), "malformed");
    refused(
        validate(&issued.certificate_der, &[b"junk".to_vec()], &crls(&[])),
        "malformed",
    );
}

#[test]
fn a_stale_crl_and_no_other_answer_is_status_unknown_and_transient() {
    let issued = issue(&options());
    let stale = crls(&[]);
    let later = at() + TimeDelta::days(2);
    let invalid = validator()
        .validate(&issued.certificate_der, &chain(), later, &stale)
        .expect_err("unknown");
    assert_eq!(invalid.reason_code(), "status_unknown");
    assert!(invalid.is_transient());
    // No CRL at all is no better.
    let invalid = refused(
        validate(&issued.certificate_der, &chain(), &CrlCache::new()),
        "status_unknown",
    );
    assert!(invalid.is_transient());
}

#[test]
fn a_revocation_wins_over_an_unknown_status() {
    let issued = issue(&options());
    let mut cache = CrlCache::new();
    let der = crl(
        Issuer::Intermediate,
        &[Revocation {
            serial: issued.serial.clone(),
            revoked_at: at() - TimeDelta::days(1),
            reason: SimReason::Superseded,
        }],
        at() + TimeDelta::days(1),
    );
    let intermediate = certificate(&CA.intermediate_der());
    cache.insert(Crl::parse_verified(&der, &intermediate).expect("a good CRL"));
    // The root's CRL is missing: the intermediate's status is unknown, the leaf revoked.
    refused(
        validate(&issued.certificate_der, &chain(), &cache),
        "revoked",
    );
}

#[test]
fn bad_trusted_roots_are_a_permanent_configuration_failure() {
    for roots in [
        vec![],
        vec![b"not a certificate".to_vec()],
        vec![CA.intermediate_der()],
        vec![issue(&options()).certificate_der],
    ] {
        let f = Validator::new(&roots).expect_err("refused");
        assert_eq!(f.kind, FailureKind::Permanent, "{}", f.reason);
    }
    let mut tampered = CA.root_der();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    let f = Validator::new(&[tampered]).expect_err("refused");
    assert_eq!(f.kind, FailureKind::Permanent);
}

#[test]
fn the_path_tells_whose_status_is_needed_from_the_top_down() {
    let issued = issue(&options());
    let path = validator()
        .path(&issued.certificate_der, &chain(), at())
        .expect("a path");
    let queries = path.status_queries();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0].serial, serial_of(&CA.intermediate_der()));
    assert_eq!(queries[0].issuer_level, CaLevel::Root);
    assert_eq!(*queries[0].issuer, certificate(&CA.root_der()));
    assert_eq!(queries[1].serial, issued.serial);
    assert_eq!(queries[1].issuer_level, CaLevel::Intermediate);
    assert_eq!(*queries[1].issuer, certificate(&CA.intermediate_der()));
}

// CRLs.

#[test]
fn a_crl_with_a_bad_signature_is_refused() {
    let mut der = crl(Issuer::Intermediate, &[], at() + TimeDelta::days(1));
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let intermediate = certificate(&CA.intermediate_der());
    assert_eq!(
        Crl::parse_verified(&der, &intermediate).expect_err("refused"),
        Invalid::BadSignature {
            which: "CRL".to_owned()
        }
    );
}

#[test]
fn a_crl_signed_by_a_same_named_ca_with_another_key_is_refused() {
    let foreign = OTHER_CA.crl_der(Issuer::Intermediate, &[], at(), at() + TimeDelta::days(1));
    let intermediate = certificate(&CA.intermediate_der());
    let invalid = Crl::parse_verified(&foreign, &intermediate).expect_err("refused");
    assert_eq!(invalid.reason_code(), "bad_signature");
}

#[test]
fn a_crl_of_another_ca_is_refused() {
    let root_crl = crl(Issuer::Root, &[], at() + TimeDelta::days(1));
    let intermediate = certificate(&CA.intermediate_der());
    let invalid = Crl::parse_verified(&root_crl, &intermediate).expect_err("refused");
    assert_eq!(invalid.reason_code(), "untrusted_chain");
    let invalid = Crl::parse_verified(b"junk", &intermediate).expect_err("refused");
    assert_eq!(invalid.reason_code(), "malformed");
}

#[test]
fn a_crl_answers_until_its_next_update_only() {
    let issued = issue(&options());
    let next_update = at() + TimeDelta::days(1);
    let der = crl(
        Issuer::Intermediate,
        &[Revocation {
            serial: issued.serial.clone(),
            revoked_at: at() - TimeDelta::days(1),
            reason: SimReason::KeyCompromise,
        }],
        next_update,
    );
    let crl = Crl::parse_verified(&der, &certificate(&CA.intermediate_der())).expect("good");
    assert_eq!(crl.next_update(), next_update);
    assert_eq!(crl.revoked_count(), 1);
    assert!(matches!(
        crl.status(&issued.serial, next_update),
        RevocationStatus::Revoked {
            reason: RevocationReason::KeyCompromise,
            ..
        }
    ));
    // Case and leading zeros of the serial do not matter.
    assert!(matches!(
        crl.status(&format!("00{}", issued.serial.to_uppercase()), at()),
        RevocationStatus::Revoked { .. }
    ));
    assert_eq!(crl.status("0abc", at()), RevocationStatus::Good);
    assert!(matches!(
        crl.status(&issued.serial, next_update + TimeDelta::seconds(1)),
        RevocationStatus::Unknown(_)
    ));
}

#[test]
fn the_cache_never_goes_back_to_an_older_crl() {
    let issued = issue(&options());
    let intermediate = certificate(&CA.intermediate_der());
    let older = CA.crl_der(
        Issuer::Intermediate,
        &[],
        at() - TimeDelta::days(1),
        at() + TimeDelta::days(1),
    );
    let newer = CA.crl_der(
        Issuer::Intermediate,
        &[Revocation {
            serial: issued.serial.clone(),
            revoked_at: at() - TimeDelta::hours(2),
            reason: SimReason::KeyCompromise,
        }],
        at() - TimeDelta::hours(1),
        at() + TimeDelta::days(1),
    );
    let mut cache = CrlCache::new();
    assert!(cache.insert(Crl::parse_verified(&newer, &intermediate).expect("good")));
    assert!(!cache.insert(Crl::parse_verified(&older, &intermediate).expect("good")));
    assert!(matches!(
        cache.status(&intermediate, &issued.serial, at()),
        RevocationStatus::Revoked { .. }
    ));
    assert!(cache.is_fresh(&intermediate, at()));
    assert!(!cache.is_fresh(&certificate(&CA.root_der()), at()));
}

// Challenges.

fn challenge() -> Challenge {
    Challenge {
        nonce: [7; 32],
        issued_at: at(),
    }
}

fn holder_certificate() -> (Issued, ValidCertificate) {
    let issued = issue(&options());
    let valid = validate(&issued.certificate_der, &chain(), &crls(&[])).expect("valid");
    (issued, valid)
}

#[test]
fn the_signed_bytes_have_the_documented_layout() {
    let bytes = challenge().to_signed_bytes();
    assert_eq!(bytes.len(), 68);
    assert_eq!(&bytes[..16], b"gossuok-login-v1");
    assert_eq!(&bytes[16..48], &[7; 32]);
    assert_eq!(&bytes[48..], b"2026-11-26T10:00:00Z");
    let fresh = Challenge::new(at() + TimeDelta::milliseconds(1500));
    assert_eq!(fresh.issued_at, at() + TimeDelta::seconds(1));
    assert_ne!(fresh.nonce, Challenge::new(at()).nonce);
}

#[test]
fn a_challenge_signed_by_the_holder_verifies() {
    let (issued, valid) = holder_certificate();
    let signature = issued.holder.sign(&challenge().to_signed_bytes());
    challenge()
        .verify(
            &valid,
            &signature,
            at() + TimeDelta::seconds(30),
            Duration::from_secs(120),
        )
        .expect("verifies");
}

#[test]
fn an_old_challenge_is_expired() {
    let (issued, valid) = holder_certificate();
    let signature = issued.holder.sign(&challenge().to_signed_bytes());
    let invalid = challenge()
        .verify(
            &valid,
            &signature,
            at() + TimeDelta::seconds(121),
            Duration::from_secs(120),
        )
        .expect_err("expired");
    assert_eq!(invalid.reason_code(), "challenge_expired");
    assert!(!invalid.is_transient());
    let invalid = challenge()
        .verify(
            &valid,
            &signature,
            at() - TimeDelta::minutes(5),
            Duration::from_secs(120),
        )
        .expect_err("from the future");
    assert_eq!(invalid.reason_code(), "malformed");
}

#[test]
fn a_challenge_signed_by_another_key_is_a_bad_signature() {
    let (_, valid) = holder_certificate();
    let impostor = issue(&IssueOptions {
        key_seed: 99,
        ..options()
    });
    let signature = impostor.holder.sign(&challenge().to_signed_bytes());
    let now = at() + TimeDelta::seconds(5);
    let max_age = Duration::from_secs(120);
    let invalid = challenge()
        .verify(&valid, &signature, now, max_age)
        .expect_err("another key");
    assert_eq!(
        invalid,
        Invalid::BadSignature {
            which: "signed message".to_owned()
        }
    );
    // Nor does the holder's signature of another challenge, or a cut one, or junk.
    let (issued, _) = holder_certificate();
    let other = Challenge {
        nonce: [8; 32],
        ..challenge()
    };
    let of_other = issued.holder.sign(&other.to_signed_bytes());
    for signature in [&of_other[..], &of_other[..47], &[0xff; 48], &[]] {
        let invalid = challenge()
            .verify(&valid, signature, now, max_age)
            .expect_err("not this challenge's");
        assert_eq!(invalid.reason_code(), "bad_signature");
    }
}

// The client.

fn quick() -> QuickRetry {
    QuickRetry {
        attempts: 3,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(1),
    }
}

fn client_with(server: &MockServer, timeout: Duration) -> GosSuokClient {
    let base = Url::parse(&server.uri()).expect("the mock server's URL");
    GosSuokClient::new(base, timeout)
        .expect("a client")
        .with_retry(quick())
}

fn client(server: &MockServer) -> GosSuokClient {
    client_with(server, Duration::from_millis(500))
}

async fn serve(server: &MockServer, at_path: &str, template: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(at_path))
        .respond_with(template)
        .mount(server)
        .await;
}

fn der_body(der: Vec<u8>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(der, "application/pkix-crl")
}

#[tokio::test]
async fn crls_are_fetched_from_their_publication_points() {
    let server = MockServer::start().await;
    let root_crl = crl(Issuer::Root, &[], at() + TimeDelta::days(1));
    let intermediate_crl = crl(Issuer::Intermediate, &[], at() + TimeDelta::days(1));
    serve(&server, "/crl/root.crl", der_body(root_crl.clone())).await;
    serve(
        &server,
        "/crl/intermediate.crl",
        der_body(intermediate_crl.clone()),
    )
    .await;
    let client = client(&server);
    assert_eq!(
        client.fetch_crl(CaLevel::Root).await.expect("root"),
        root_crl
    );
    assert_eq!(
        client
            .fetch_crl(CaLevel::Intermediate)
            .await
            .expect("intermediate"),
        intermediate_crl
    );
}

#[tokio::test]
async fn ca_certificates_are_fetched_and_must_be_certificates() {
    let server = MockServer::start().await;
    serve(&server, "/gossuok/ca/root.der", der_body(CA.root_der())).await;
    serve(
        &server,
        "/gossuok/ca/intermediate.der",
        der_body(CA.intermediate_der()),
    )
    .await;
    let base = Url::parse(&format!("{}/gossuok/", server.uri())).expect("a URL");
    let (root, intermediate) = GosSuokClient::new(base, Duration::from_millis(500))
        .expect("a client")
        .ca_certificates()
        .await
        .expect("both");
    assert_eq!(root, CA.root_der());
    assert_eq!(intermediate, CA.intermediate_der());

    let server = MockServer::start().await;
    serve(&server, "/ca/root.der", der_body(b"<html>".to_vec())).await;
    let f = client(&server)
        .ca_certificates()
        .await
        .expect_err("not DER");
    assert_eq!(f.kind, FailureKind::Permanent);
    assert!(
        f.reason.starts_with("contract violation: GosSUOK"),
        "{}",
        f.reason
    );
}

#[tokio::test]
async fn the_online_status_reads_good_revoked_and_unknown() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/api/v1/certificates/4a0b/status",
        ResponseTemplate::new(200).set_body_json(json!({"serial": "4a0b", "status": "good"})),
    )
    .await;
    serve(
        &server,
        "/api/v1/certificates/4a0c/status",
        ResponseTemplate::new(200).set_body_json(json!({
            "serial": "4A0C", "status": "revoked",
            "revoked_at": "2026-11-25T13:00:00+03:00", "reason": "key_compromise",
        })),
    )
    .await;
    serve(
        &server,
        "/api/v1/certificates/4a0d/status",
        ResponseTemplate::new(200).set_body_json(json!({"serial": "4a0d", "status": "unknown"})),
    )
    .await;
    let client = client(&server);
    assert_eq!(
        client.status("004A0B").await.expect("good"),
        OnlineStatus::Good
    );
    assert_eq!(
        client.status("4a0c").await.expect("revoked"),
        OnlineStatus::Revoked {
            revoked_at: DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
                .expect("a time")
                .with_timezone(&Utc),
            reason: RevocationReason::KeyCompromise,
        }
    );
    assert_eq!(
        client.status("4a0d").await.expect("unknown"),
        OnlineStatus::Unknown
    );
}

#[tokio::test]
async fn status_answers_outside_the_contract_are_permanent() {
    for body in [
        json!({"serial": "4a0c", "status": "revoked"}),
        json!({"serial": "ffff", "status": "good"}),
        json!({"serial": "4a0c", "status": "suspended"}),
        json!({"status": "good"}),
    ] {
        let server = MockServer::start().await;
        serve(
            &server,
            "/api/v1/certificates/4a0c/status",
            ResponseTemplate::new(200).set_body_json(body.clone()),
        )
        .await;
        let f = client(&server).status("4a0c").await.expect_err("refused");
        assert_eq!(f.kind, FailureKind::Permanent, "{body}");
        assert!(
            f.reason.starts_with("contract violation: GosSUOK"),
            "{}",
            f.reason
        );
    }
}

#[tokio::test]
async fn a_serial_that_is_not_hex_is_invalid_input_without_a_call() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    for serial in ["", "../admin", "4a0g", &"a".repeat(43)] {
        let f = client(&server).status(serial).await.expect_err("invalid");
        assert_eq!(f.kind, FailureKind::InvalidInput, "{serial:?}");
    }
}

#[tokio::test]
async fn a_busy_or_slow_ca_is_transient_and_a_missing_crl_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        // Three attempts for each call.
        .expect(6)
        .mount(&server)
        .await;
    let f = client(&server)
        .fetch_crl(CaLevel::Intermediate)
        .await
        .expect_err("busy");
    assert_eq!(f.kind, FailureKind::Transient);
    let f = client(&server).status("4a0b").await.expect_err("busy");
    assert_eq!(f.kind, FailureKind::Transient);

    let server = MockServer::start().await;
    serve(
        &server,
        "/crl/intermediate.crl",
        der_body(b"late".to_vec()).set_delay(Duration::from_millis(500)),
    )
    .await;
    let f = client_with(&server, Duration::from_millis(100))
        .with_retry(QuickRetry::NONE)
        .fetch_crl(CaLevel::Intermediate)
        .await
        .expect_err("timed out");
    assert_eq!(f.kind, FailureKind::Transient);
    assert!(f.reason.contains("timed out"), "{}", f.reason);

    let server = MockServer::start().await;
    serve(&server, "/crl/root.crl", ResponseTemplate::new(404)).await;
    let f = client(&server)
        .fetch_crl(CaLevel::Root)
        .await
        .expect_err("missing");
    assert_eq!(f.kind, FailureKind::Permanent);
}

#[tokio::test]
async fn a_ca_s_retry_after_reaches_the_failure() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/crl/root.crl",
        ResponseTemplate::new(503).insert_header("Retry-After", "300"),
    )
    .await;
    serve(
        &server,
        "/api/v1/certificates/4a0b/status",
        ResponseTemplate::new(429).insert_header("Retry-After", "60"),
    )
    .await;
    let f = client(&server)
        .fetch_crl(CaLevel::Root)
        .await
        .expect_err("down");
    assert_eq!(f.kind, FailureKind::Transient);
    assert_eq!(f.retry_after, Some(Duration::from_secs(300)));
    let f = client(&server).status("4a0b").await.expect_err("busy");
    assert_eq!(f.kind, FailureKind::Transient);
    assert_eq!(f.retry_after, Some(Duration::from_secs(60)));
}

// The checker.

fn checker(server: &MockServer) -> Checker {
    let client = client_with(server, Duration::from_millis(300));
    Checker::new(validator(), client)
}

#[tokio::test]
async fn the_checker_fetches_the_crls_once_and_validates() {
    let server = MockServer::start().await;
    let next_update = at() + TimeDelta::days(1);
    for (at_path, der) in [
        ("/crl/root.crl", crl(Issuer::Root, &[], next_update)),
        (
            "/crl/intermediate.crl",
            crl(Issuer::Intermediate, &[], next_update),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path(at_path))
            .respond_with(der_body(der))
            .expect(1)
            .mount(&server)
            .await;
    }
    let checker = checker(&server);
    let issued = issue(&options());
    let valid = checker
        .check(&issued.certificate_der, &chain(), at())
        .await
        .expect("valid");
    assert_eq!(valid.identification_number, ID_NUMBER);
    let other = issue(&IssueOptions {
        key_seed: 2,
        ..options()
    });
    checker
        .check(&other.certificate_der, &chain(), at() + TimeDelta::hours(1))
        .await
        .expect("valid, from the cached CRLs");
}

#[tokio::test]
async fn the_checker_refreshes_a_stale_crl_and_sees_the_revocation() {
    let server = MockServer::start().await;
    let issued = issue(&options());
    serve(
        &server,
        "/crl/root.crl",
        der_body(crl(Issuer::Root, &[], at() + TimeDelta::days(30))),
    )
    .await;
    // First an empty CRL valid for an hour, then one listing the certificate.
    Mock::given(method("GET"))
        .and(path("/crl/intermediate.crl"))
        .respond_with(der_body(crl(
            Issuer::Intermediate,
            &[],
            at() + TimeDelta::hours(1),
        )))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let revoked_at = at() + TimeDelta::minutes(90);
    Mock::given(method("GET"))
        .and(path("/crl/intermediate.crl"))
        .respond_with(der_body(CA.crl_der(
            Issuer::Intermediate,
            &[Revocation {
                serial: issued.serial.clone(),
                revoked_at,
                reason: SimReason::KeyCompromise,
            }],
            at() + TimeDelta::minutes(100),
            at() + TimeDelta::days(1),
        )))
        .expect(1)
        .mount(&server)
        .await;
    let checker = checker(&server);
    checker
        .check(&issued.certificate_der, &chain(), at())
        .await
        .expect("good at first");
    let invalid = checker
        .check(
            &issued.certificate_der,
            &chain(),
            at() + TimeDelta::hours(2),
        )
        .await
        .expect_err("revoked since");
    assert_eq!(
        invalid,
        Invalid::Revoked {
            serial: issued.serial,
            revoked_at,
            reason: "key_compromise".to_owned()
        }
    );
}

#[tokio::test]
async fn with_the_ca_down_and_no_fresh_crl_the_status_is_unknown_never_valid() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let issued = issue(&options());
    let invalid = checker(&server)
        .check(&issued.certificate_der, &chain(), at())
        .await
        .expect_err("never valid");
    assert_eq!(invalid.reason_code(), "status_unknown");
    assert!(invalid.is_transient());
}

#[tokio::test]
async fn with_no_crl_the_unsigned_status_api_may_refuse_but_never_vouch() {
    let issued = issue(&options());
    let intermediate_serial = serial_of(&CA.intermediate_der());
    // The CRLs blocked and the status answered `good` is what an attacker on the path would do
    // for a revoked certificate: it is `try_later`, never a login.
    for (leaf_status, expected) in [
        ("good", "status_unknown"),
        ("revoked", "revoked"),
        ("unknown", "status_unknown"),
    ] {
        let server = MockServer::start().await;
        // The CRLs cannot be had: one is down, the other's signature is broken.
        serve(&server, "/crl/root.crl", ResponseTemplate::new(503)).await;
        let mut broken = crl(Issuer::Intermediate, &[], at() + TimeDelta::days(1));
        let last = broken.len() - 1;
        broken[last] ^= 0x01;
        serve(&server, "/crl/intermediate.crl", der_body(broken)).await;
        serve(
            &server,
            &format!("/api/v1/certificates/{intermediate_serial}/status"),
            ResponseTemplate::new(200)
                .set_body_json(json!({"serial": intermediate_serial, "status": "good"})),
        )
        .await;
        serve(
            &server,
            &format!("/api/v1/certificates/{}/status", issued.serial),
            ResponseTemplate::new(200).set_body_json(json!({
                "serial": issued.serial, "status": leaf_status,
                "revoked_at": "2026-11-25T10:00:00Z", "reason": "superseded",
            })),
        )
        .await;
        let result = checker(&server)
            .check(&issued.certificate_der, &chain(), at())
            .await;
        refused(result, expected);
    }
}

#[tokio::test]
async fn a_certificate_refused_before_revocation_costs_no_call() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let mut der = issue(&options()).certificate_der;
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let invalid = checker(&server)
        .check(&der, &chain(), at())
        .await
        .expect_err("bad signature");
    assert_eq!(invalid.reason_code(), "bad_signature");
}

// Against the simulator itself.

#[tokio::test]
async fn a_person_of_the_simulator_logs_in_until_their_certificate_is_revoked() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use serde_json::Value;
    use simulators::{SimConfig, SimKind};
    use tokio_util::sync::CancellationToken;

    let shutdown = CancellationToken::new();
    let sims = simulators::start(
        SimConfig {
            only: Some(vec![SimKind::Mvd, SimKind::Gossuok]),
            population: 10,
            ..SimConfig::ephemeral()
        },
        shutdown.clone(),
    )
    .await
    .expect("the simulators start");
    let gossuok = sims.gossuok.clone().expect("GosSUOK runs");
    let mvd = sims.mvd.clone().expect("the MVD runs");
    crate::tls::install_default_provider();
    let http = reqwest::Client::new();
    let json = |response: reqwest::Response| async move {
        assert!(response.status().is_success(), "{}", response.status());
        response.json::<Value>().await.expect("JSON")
    };
    let der = |value: &Value| {
        BASE64
            .decode(value.as_str().expect("base64"))
            .expect("base64 DER")
    };

    let persons = json(
        http.get(mvd.join("sim/population?offset=0&limit=1").expect("a URL"))
            .send()
            .await
            .expect("the MVD answers"),
    )
    .await;
    let id = persons["persons"][0]["identification_number"]
        .as_str()
        .expect("an identification number")
        .to_owned();
    let issued = json(
        http.get(
            gossuok
                .join(&format!("sim/persons/{id}/certificate"))
                .expect("a URL"),
        )
        .send()
        .await
        .expect("GosSUOK answers"),
    )
    .await;
    let leaf = der(&issued["certificate"]);
    let chain: Vec<Vec<u8>> = issued["chain"]
        .as_array()
        .expect("a chain")
        .iter()
        .map(der)
        .collect();

    // In tests the root comes from the CA itself; the hub takes it from its configuration.
    let client = GosSuokClient::new(gossuok.clone(), Duration::from_secs(5)).expect("a client");
    let (root, _) = client.ca_certificates().await.expect("the CA certificates");
    let validator = Validator::new(&[root]).expect("a root");
    let checker = Checker::new(validator.clone(), client.clone());
    let now = Utc::now();
    let valid = checker.check(&leaf, &chain, now).await.expect("valid");
    assert_eq!(valid.identification_number, id);

    let challenge = Challenge::new(now);
    let signed = json(
        http.post(
            gossuok
                .join(&format!("sim/persons/{id}/sign"))
                .expect("a URL"),
        )
        .json(&json!({"data": BASE64.encode(challenge.to_signed_bytes())}))
        .send()
        .await
        .expect("GosSUOK signs"),
    )
    .await;
    let signature = BASE64
        .decode(signed["signature"].as_str().expect("base64"))
        .expect("a signature");
    challenge
        .verify(&valid, &signature, now, Duration::from_secs(60))
        .expect("the holder's signature");

    json(
        http.post(
            gossuok
                .join(&format!("sim/revoke/{}", valid.serial))
                .expect("a URL"),
        )
        .json(&json!({"reason": "key_compromise"}))
        .send()
        .await
        .expect("GosSUOK revokes"),
    )
    .await;
    assert!(matches!(
        client.status(&valid.serial).await.expect("a status"),
        OnlineStatus::Revoked {
            reason: RevocationReason::KeyCompromise,
            ..
        }
    ));
    // A checker without the old CRL in its cache fetches the new one.
    let fresh = Checker::new(validator, client);
    let invalid = fresh
        .check(&leaf, &chain, Utc::now())
        .await
        .expect_err("revoked");
    assert_eq!(invalid.reason_code(), "revoked");
    shutdown.cancel();
}
