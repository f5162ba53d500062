//! Tests of the whole module against the simulator's test CA: real bign-with-hbelt
//! certificates and CRLs, each test asserting the reason it expects; and of the HTTP side
//! against `wiremock`.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use der::{Decode, Encode};
use serde_json::json;
use simulators::gossuok::ca::{
    IssueOptions, Issued, Issuer, LeafKeyUsage, Revocation, RevocationReason as SimReason, Subject,
    TestCa,
};
use simulators::gossuok::ocsp::{
    self, OcspAnswer, OcspSigner, OcspStatus, ResponderIdForm, ResponderOptions,
};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use x509_ocsp::OcspResponseStatus;

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
        organization: None,
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
    assert_eq!(*queries[1].subject, certificate(&issued.certificate_der));
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

fn url_of(server: &MockServer, at_path: &str) -> Url {
    Url::parse(&format!("{}{at_path}", server.uri())).expect("a URL")
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
async fn a_busy_or_slow_ca_is_transient_and_a_missing_crl_permanent() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(503))
        // Three attempts for each call.
        .expect(6)
        .mount(&server)
        .await;
    let f = client(&server)
        .fetch_crl(&url_of(&server, "/crl/intermediate.crl"))
        .await
        .expect_err("busy");
    assert_eq!(f.kind, FailureKind::Transient);
    let f = client(&server)
        .ocsp(&url_of(&server, "/ocsp"), b"request")
        .await
        .expect_err("busy");
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
        .fetch_crl(&url_of(&server, "/crl/intermediate.crl"))
        .await
        .expect_err("timed out");
    assert_eq!(f.kind, FailureKind::Transient);
    assert!(f.reason.contains("timed out"), "{}", f.reason);

    let server = MockServer::start().await;
    serve(&server, "/crl/root.crl", ResponseTemplate::new(404)).await;
    let f = client(&server)
        .fetch_crl(&url_of(&server, "/crl/root.crl"))
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
    Mock::given(method("POST"))
        .and(path("/ocsp"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "60"))
        .mount(&server)
        .await;
    let f = client(&server)
        .fetch_crl(&url_of(&server, "/crl/root.crl"))
        .await
        .expect_err("down");
    assert_eq!(f.kind, FailureKind::Transient);
    assert_eq!(f.retry_after, Some(Duration::from_secs(300)));
    let f = client(&server)
        .ocsp(&url_of(&server, "/ocsp"), b"request")
        .await
        .expect_err("busy");
    assert_eq!(f.kind, FailureKind::Transient);
    assert_eq!(f.retry_after, Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn an_ocsp_request_is_posted_as_application_ocsp_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/pki/ocsp"))
        .and(wiremock::matchers::header(
            "content-type",
            "application/ocsp-request",
        ))
        .and(wiremock::matchers::body_bytes(b"the request".to_vec()))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(b"the answer".to_vec(), OCSP_RESPONSE),
        )
        .expect(1)
        .mount(&server)
        .await;
    let answer = client(&server)
        .ocsp(&url_of(&server, "/pki/ocsp"), b"the request")
        .await
        .expect("an answer");
    assert_eq!(answer, b"the answer");
}

// The checker: where it looks, and what it trusts.

const OCSP_RESPONSE: &str = "application/ocsp-response";

/// The test CA publishing under `base` (the mock server's URL and a path): the intermediate and
/// every certificate issued name `{base}crl/...` and `{base}ocsp`.
fn published_at(base: &str) -> TestCa {
    CA.with_publication(&Url::parse(base).expect("a URL"))
}

/// The CA publishing at the root of `server`.
fn published(server: &MockServer) -> TestCa {
    published_at(&format!("{}/", server.uri()))
}

/// A checker whose configured base URL is `server`'s.
fn checker(server: &MockServer) -> Checker {
    let client = client_with(server, Duration::from_millis(300));
    Checker::new(validator(), client, DEFAULT_OCSP_CACHE)
}

/// Issues a leaf from `ca` and checks it (with `ca`'s intermediate) at `at()`.
async fn check_with(checker: &Checker, ca: &TestCa) -> (Issued, Result<ValidCertificate, Invalid>) {
    let issued = ca.issue(&subject(), &options());
    let result = checker
        .check(&issued.certificate_der, &[ca.intermediate_der()], at())
        .await;
    (issued, result)
}

/// Both CAs' CRLs served at `{prefix}crl/...`, listing `revoked` on the intermediate's, each
/// expected `times` times.
async fn serve_crls(
    server: &MockServer,
    prefix: &str,
    revoked: &[Revocation],
    next_update: DateTime<Utc>,
    times: u64,
) {
    for (issuer, listed) in [(Issuer::Root, &[][..]), (Issuer::Intermediate, revoked)] {
        Mock::given(method("GET"))
            .and(path(format!("{prefix}crl/{}.crl", issuer.label())))
            .respond_with(der_body(crl(issuer, listed, next_update)))
            .expect(times)
            .mount(server)
            .await;
    }
}

/// CRLs that cannot be had: every GET answers 503.
async fn crls_down(server: &MockServer) {
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(server)
        .await;
}

/// How a test reshapes an honest OCSP answer.
type Forge = Box<dyn Fn(&mut OcspAnswer) + Send + Sync>;

/// An OCSP responder for wiremock, answering as GosSUOK does (good, or revoked for the serials
/// listed; signed by the issuer; the request's nonce echoed; made at `at()`), each answer
/// about a leaf then reshaped by `forge`. Answers about the intermediate stay honest, so that
/// what a test checks is the leaf's answer.
struct Responder {
    ca: TestCa,
    revoked: Vec<(String, DateTime<Utc>, SimReason)>,
    forge: Forge,
}

impl Responder {
    fn honest(ca: &TestCa) -> Responder {
        Responder::forging(ca, |_| {})
    }

    fn forging(ca: &TestCa, forge: impl Fn(&mut OcspAnswer) + Send + Sync + 'static) -> Responder {
        Responder {
            ca: ca.clone(),
            revoked: Vec::new(),
            forge: Box::new(forge),
        }
    }

    fn revoking(mut self, serial: &str, revoked_at: DateTime<Utc>, reason: SimReason) -> Self {
        self.revoked.push((serial.to_owned(), revoked_at, reason));
        self
    }

    /// The honest answer to `request_der`, before any forgery.
    fn answer(&self, request_der: &[u8]) -> Option<OcspAnswer> {
        let request = x509_ocsp::OcspRequest::from_der(request_der).ok()?;
        let asked = &request.tbs_request.request_list.first()?.req_cert;
        let serial = serial_hex(asked.serial_number.as_bytes());
        let issuer = [Issuer::Intermediate, Issuer::Root]
            .into_iter()
            .find(|issuer| self.ca.ocsp_cert_id(*issuer, &serial) == *asked)?;
        let status = match self.revoked.iter().find(|(s, _, _)| *s == serial) {
            Some((_, revoked_at, reason)) => OcspStatus::Revoked {
                revoked_at: *revoked_at,
                reason: *reason,
            },
            None => OcspStatus::Good,
        };
        let mut answer = OcspAnswer::new(issuer, &serial, status, at(), TimeDelta::minutes(10));
        answer.nonce = request.nonce().map(|nonce| nonce.0.as_bytes().to_vec());
        Some(answer)
    }
}

impl wiremock::Respond for Responder {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let Some(mut answer) = self.answer(&request.body) else {
            return ResponseTemplate::new(200).set_body_raw(
                ocsp::status_only_der(OcspResponseStatus::MalformedRequest),
                OCSP_RESPONSE,
            );
        };
        if answer.issuer == Issuer::Intermediate {
            (self.forge)(&mut answer);
        }
        ResponseTemplate::new(200).set_body_raw(self.ca.ocsp_response_der(&answer), OCSP_RESPONSE)
    }
}

/// Mounts `responder` at `POST {at_path}`, expected `times` times.
async fn serve_ocsp(
    server: &MockServer,
    at_path: &str,
    responder: impl wiremock::Respond + 'static,
    times: impl Into<wiremock::Times>,
) {
    Mock::given(method("POST"))
        .and(path(at_path))
        .respond_with(responder)
        .expect(times)
        .mount(server)
        .await;
}

/// No OCSP responder: a POST is answered 404 (permanent, no retries).
async fn no_ocsp(server: &MockServer, times: u64) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404))
        .expect(times)
        .mount(server)
        .await;
}

#[tokio::test]
async fn crls_are_fetched_from_the_distribution_points_the_certificates_name() {
    // The certificates name a publication point on one server; the checker's configured URL
    // is another, which must not be asked for a CRL.
    let publication = MockServer::start().await;
    let configured = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(503))
        .expect(0)
        .mount(&configured)
        .await;
    serve_crls(&publication, "/pki/", &[], at() + TimeDelta::days(1), 1).await;
    no_ocsp(&publication, 2).await;
    let ca = published_at(&format!("{}/pki/", publication.uri()));
    let (_, result) = check_with(&checker(&configured), &ca).await;
    result.expect("valid, by the CRLs of the distribution points");
    let asked: Vec<String> = publication
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(asked, ["/pki/crl/root.crl", "/pki/crl/intermediate.crl"]);
}

#[tokio::test]
async fn the_checker_fetches_the_crls_once_and_validates() {
    let server = MockServer::start().await;
    serve_crls(&server, "/", &[], at() + TimeDelta::days(1), 1).await;
    // OCSP is asked (and fails) for the first check only: then the CRLs are fresh in the cache.
    no_ocsp(&server, 2).await;
    let ca = published(&server);
    let checker = checker(&server);
    let (_, result) = check_with(&checker, &ca).await;
    assert_eq!(result.expect("valid").identification_number, ID_NUMBER);
    let other = ca.issue(
        &subject(),
        &IssueOptions {
            key_seed: 2,
            ..options()
        },
    );
    checker
        .check(
            &other.certificate_der,
            &[ca.intermediate_der()],
            at() + TimeDelta::hours(1),
        )
        .await
        .expect("valid, from the cached CRLs");
}

#[tokio::test]
async fn the_checker_refreshes_a_stale_crl_and_sees_the_revocation() {
    let server = MockServer::start().await;
    no_ocsp(&server, 3).await;
    let ca = published(&server);
    let issued = ca.issue(&subject(), &options());
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
    let chain = [ca.intermediate_der()];
    checker
        .check(&issued.certificate_der, &chain, at())
        .await
        .expect("good at first");
    let invalid = checker
        .check(&issued.certificate_der, &chain, at() + TimeDelta::hours(2))
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
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let (_, result) = check_with(&checker(&server), &published(&server)).await;
    let invalid = refused(result, "status_unknown");
    assert!(invalid.is_transient());
}

#[tokio::test]
async fn a_good_certificate_is_accepted_by_ocsp_when_the_crl_is_unreachable() {
    let server = MockServer::start().await;
    crls_down(&server).await;
    let ca = published(&server);
    serve_ocsp(&server, "/ocsp", Responder::honest(&ca), 2).await;
    let (_, result) = check_with(&checker(&server), &ca).await;
    assert_eq!(result.expect("valid").identification_number, ID_NUMBER);
    // OCSP answered for both: no CRL was asked for.
    let gets = server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .count();
    assert_eq!(gets, 0);
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_by_ocsp() {
    let server = MockServer::start().await;
    crls_down(&server).await;
    let ca = published(&server);
    let issued = ca.issue(&subject(), &options());
    let revoked_at = at() - TimeDelta::days(2);
    let responder =
        Responder::honest(&ca).revoking(&issued.serial, revoked_at, SimReason::KeyCompromise);
    serve_ocsp(&server, "/ocsp", responder, 2).await;
    let invalid = checker(&server)
        .check(&issued.certificate_der, &[ca.intermediate_der()], at())
        .await
        .expect_err("revoked");
    assert_eq!(
        invalid,
        Invalid::Revoked {
            serial: issued.serial,
            revoked_at,
            reason: "key_compromise".to_owned(),
        }
    );
}

/// What a refused leaf answer leaves: the status unknown, saying why the OCSP answer was
/// refused.
fn unknown_because(result: Result<ValidCertificate, Invalid>, why: &str, case: &str) {
    let invalid = result.expect_err(case);
    assert_eq!(invalid.reason_code(), "status_unknown", "{case}: {invalid}");
    let text = invalid.to_string();
    assert!(text.contains("leaf certificate"), "{case}: {text}");
    assert!(text.contains(why), "{case}: {text}");
}

#[tokio::test]
async fn forged_or_stale_ocsp_answers_are_not_trusted() {
    let other_serial = issue(&IssueOptions {
        key_seed: 3,
        ..options()
    })
    .serial;
    let cases: Vec<(&str, Forge, &str)> = vec![
        (
            "a garbage signature",
            Box::new(|a| a.signer = OcspSigner::CorruptedSignature),
            "the signature does not verify",
        ),
        (
            "signed by a key of no CA, claiming to be the issuer",
            Box::new(|a| a.signer = OcspSigner::Stranger),
            "the signature does not verify",
        ),
        (
            "signed by the root for the intermediate's certificate",
            Box::new(|a| a.signer = OcspSigner::OtherCa),
            "not signed by the certificate's CA",
        ),
        (
            "stale (nextUpdate past)",
            Box::new(|a| {
                a.this_update = at() - TimeDelta::hours(2);
                a.next_update = Some(at() - TimeDelta::hours(1));
            }),
            "not fresh",
        ),
        (
            "no nextUpdate and an hour old",
            Box::new(|a| {
                a.this_update = at() - TimeDelta::hours(1);
                a.next_update = None;
            }),
            "not fresh",
        ),
        (
            "thisUpdate in the future",
            Box::new(|a| a.this_update = at() + TimeDelta::hours(1)),
            "not fresh",
        ),
        (
            "about another serial",
            Box::new(move |a| a.serial = other_serial.clone()),
            "no answer about the certificate asked",
        ),
        (
            "another nonce",
            Box::new(|a| a.nonce = Some(vec![0x42; 32])),
            "another nonce",
        ),
        (
            "no nonce",
            Box::new(|a| a.nonce = None),
            "does not echo the request's nonce",
        ),
        (
            "an unknown critical extension",
            Box::new(|a| a.critical_extension = true),
            "critical extension",
        ),
        (
            "a delegated responder without id-kp-OCSPSigning",
            Box::new(|a| {
                a.signer = OcspSigner::Delegated(ResponderOptions {
                    ocsp_signing: false,
                    ..ResponderOptions::default()
                })
            }),
            "id-kp-OCSPSigning",
        ),
        (
            "a delegated responder without id-pkix-ocsp-nocheck",
            Box::new(|a| {
                a.signer = OcspSigner::Delegated(ResponderOptions {
                    no_check: false,
                    ..ResponderOptions::default()
                })
            }),
            "nocheck",
        ),
        (
            "a delegated responder whose certificate expired",
            Box::new(|a| {
                a.signer = OcspSigner::Delegated(ResponderOptions {
                    not_after: at() - TimeDelta::days(1),
                    ..ResponderOptions::default()
                })
            }),
            "expired",
        ),
    ];
    for (case, forge, why) in cases {
        let server = MockServer::start().await;
        crls_down(&server).await;
        let ca = published(&server);
        serve_ocsp(&server, "/ocsp", Responder::forging(&ca, forge), 2).await;
        let (_, result) = check_with(&checker(&server), &ca).await;
        unknown_because(result, why, case);
    }
}

#[tokio::test]
async fn ocsp_refusals_and_http_failures_are_not_trusted() {
    let status = |status: OcspResponseStatus| {
        ResponseTemplate::new(200).set_body_raw(ocsp::status_only_der(status), OCSP_RESPONSE)
    };
    let cases = [
        ("tryLater", status(OcspResponseStatus::TryLater), "TryLater"),
        (
            "internalError",
            status(OcspResponseStatus::InternalError),
            "InternalError",
        ),
        (
            "unauthorized",
            status(OcspResponseStatus::Unauthorized),
            "Unauthorized",
        ),
        (
            "malformedRequest",
            status(OcspResponseStatus::MalformedRequest),
            "MalformedRequest",
        ),
        (
            "HTTP 500",
            ResponseTemplate::new(500),
            "GosSUOK answered HTTP 500",
        ),
        (
            "not DER",
            ResponseTemplate::new(200).set_body_raw(b"<html>ok</html>".to_vec(), "text/html"),
            "not a DER OCSPResponse",
        ),
    ];
    for (case, template, why) in cases {
        let server = MockServer::start().await;
        crls_down(&server).await;
        let ca = published(&server);
        Mock::given(method("POST"))
            .and(path("/ocsp"))
            .respond_with(template)
            .expect(1..)
            .mount(&server)
            .await;
        let (_, result) = check_with(&checker(&server), &ca).await;
        let invalid = refused(result, "status_unknown");
        assert!(invalid.to_string().contains(why), "{case}: {invalid}");
    }
}

#[tokio::test]
async fn an_unsigned_ocsp_answer_is_not_trusted() {
    // An honest answer whose signature is taken out (an empty BIT STRING).
    struct Unsigned(Responder);
    impl wiremock::Respond for Unsigned {
        fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
            let answer = self.0.answer(&request.body).expect("a request");
            let der = self.0.ca.ocsp_response_der(&answer);
            let mut response = x509_ocsp::OcspResponse::from_der(&der).expect("a response");
            let bytes = response.response_bytes.as_mut().expect("bytes");
            let mut basic =
                x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic");
            basic.signature = der::asn1::BitString::from_bytes(&[]).expect("empty");
            bytes.response =
                der::asn1::OctetString::new(basic.to_der().expect("DER")).expect("bytes");
            ResponseTemplate::new(200).set_body_raw(response.to_der().expect("DER"), OCSP_RESPONSE)
        }
    }
    let server = MockServer::start().await;
    crls_down(&server).await;
    let ca = published(&server);
    serve_ocsp(&server, "/ocsp", Unsigned(Responder::honest(&ca)), 1..).await;
    let (_, result) = check_with(&checker(&server), &ca).await;
    let invalid = refused(result, "status_unknown");
    assert!(
        invalid
            .to_string()
            .contains("the signature does not verify"),
        "{invalid}"
    );
}

#[tokio::test]
async fn a_ca_of_another_seed_answering_for_its_own_certificates_is_not_trusted() {
    // An answer signed by a whole other CA (same names, other keys), about the serial asked but
    // as its own certificate: its CertID names another issuer key, and its key is not ours.
    let server = MockServer::start().await;
    crls_down(&server).await;
    let ca = published(&server);
    let other = OTHER_CA.with_publication(&Url::parse(&server.uri()).expect("a URL"));
    serve_ocsp(&server, "/ocsp", Responder::honest(&other), 1..).await;
    let (_, result) = check_with(&checker(&server), &ca).await;
    refused(result, "status_unknown");
}

#[tokio::test]
async fn proper_answers_are_taken_a_delegated_responder_and_a_recent_one_without_next_update() {
    let cases: Vec<(&str, Forge)> = vec![
        (
            "a delegated responder",
            Box::new(|a| a.signer = OcspSigner::Delegated(ResponderOptions::default())),
        ),
        (
            "the responder named by name",
            Box::new(|a| a.responder_id = ResponderIdForm::ByName),
        ),
        (
            "no nextUpdate, made a minute ago",
            Box::new(|a| {
                a.this_update = at() - TimeDelta::minutes(1);
                a.next_update = None;
            }),
        ),
        (
            "thisUpdate a minute ahead (clock skew)",
            Box::new(|a| a.this_update = at() + TimeDelta::minutes(1)),
        ),
    ];
    for (case, forge) in cases {
        let server = MockServer::start().await;
        crls_down(&server).await;
        let ca = published(&server);
        serve_ocsp(&server, "/ocsp", Responder::forging(&ca, forge), 2).await;
        let (_, result) = check_with(&checker(&server), &ca).await;
        result.unwrap_or_else(|e| panic!("{case}: {e}"));
    }
}

#[tokio::test]
async fn with_the_ocsp_answer_refused_the_crl_of_the_distribution_point_decides() {
    // A forged `good` from the responder, and the CRL lists the certificate: revoked.
    let server = MockServer::start().await;
    let ca = published(&server);
    let issued = ca.issue(&subject(), &options());
    let revocation = Revocation {
        serial: issued.serial.clone(),
        revoked_at: at() - TimeDelta::days(1),
        reason: SimReason::Superseded,
    };
    // The intermediate's answer is honest: only the leaf's CRL is needed.
    Mock::given(method("GET"))
        .and(path("/crl/intermediate.crl"))
        .respond_with(der_body(crl(
            Issuer::Intermediate,
            &[revocation],
            at() + TimeDelta::days(1),
        )))
        .expect(1)
        .mount(&server)
        .await;
    serve_ocsp(
        &server,
        "/ocsp",
        Responder::forging(&ca, |a| a.signer = OcspSigner::Stranger),
        2,
    )
    .await;
    let result = checker(&server)
        .check(&issued.certificate_der, &[ca.intermediate_der()], at())
        .await;
    refused(result, "revoked");
}

#[tokio::test]
async fn a_signed_ocsp_unknown_leaves_the_status_unknown_even_with_a_good_crl() {
    let server = MockServer::start().await;
    serve_crls(&server, "/", &[], at() + TimeDelta::days(1), 0).await;
    let ca = published(&server);
    serve_ocsp(
        &server,
        "/ocsp",
        Responder::forging(&ca, |a| a.status = OcspStatus::Unknown),
        2,
    )
    .await;
    let (_, result) = check_with(&checker(&server), &ca).await;
    unknown_because(result, "does not know the certificate", "a signed unknown");
}

#[tokio::test]
async fn responders_and_distribution_points_are_tried_in_order() {
    // The certificates name two places; the first answers nothing (404), the second answers.
    let first = MockServer::start().await;
    let second = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(404))
        .mount(&first)
        .await;
    let ca = published(&first).with_mirror(&Url::parse(&second.uri()).expect("a URL"));
    serve_ocsp(&second, "/ocsp", Responder::honest(&ca), 2).await;
    let (_, result) = check_with(&checker(&first), &ca).await;
    result.expect("valid from the second responder");
    let posts = |requests: Vec<wiremock::Request>| {
        requests
            .iter()
            .filter(|r| r.method.as_str() == "POST")
            .count()
    };
    let first_asked = first.received_requests().await.expect("recorded");
    assert_eq!(posts(first_asked), 2, "the first responder was asked first");

    // No responder answers: the CRLs come from the second distribution point.
    let first = MockServer::start().await;
    let second = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(404))
        .mount(&first)
        .await;
    no_ocsp(&second, 2).await;
    serve_crls(&second, "/", &[], at() + TimeDelta::days(1), 1).await;
    let ca = published(&first).with_mirror(&Url::parse(&second.uri()).expect("a URL"));
    let (_, result) = check_with(&checker(&first), &ca).await;
    result.expect("valid from the second distribution point's CRLs");
    let gets: Vec<String> = first
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(gets, ["/crl/root.crl", "/crl/intermediate.crl"]);
}

#[tokio::test]
async fn a_certificate_naming_no_http_location_has_an_unknown_status() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let ca = published_at("ldap://ldap.gossuok.sim/");
    let (_, result) = check_with(&checker(&server), &ca).await;
    let invalid = refused(result, "status_unknown");
    let text = invalid.to_string();
    assert!(text.contains("names no http(s) OCSP responder"), "{text}");
    assert!(
        text.contains("names no http(s) CRL distribution point"),
        "{text}"
    );
}

#[tokio::test]
async fn a_certificate_refused_before_revocation_costs_no_call() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let ca = published(&server);
    let mut der = ca.issue(&subject(), &options()).certificate_der;
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let invalid = checker(&server)
        .check(&der, &[ca.intermediate_der()], at())
        .await
        .expect_err("bad signature");
    assert_eq!(invalid.reason_code(), "bad_signature");
}

#[test]
fn a_certificate_with_an_unknown_critical_extension_is_malformed() {
    let issued = issue(&IssueOptions {
        unknown_critical_extension: true,
        ..options()
    });
    let invalid = refused(
        validate(&issued.certificate_der, &chain(), &crls(&[])),
        "malformed",
    );
    assert!(
        invalid
            .to_string()
            .contains("critical extension 1.3.6.1.4.1.55555.1.2"),
        "{invalid}"
    );
}

// Work not done twice: the verified certificate signatures and the kept OCSP answers.

/// The bign signatures checked on this thread while `work` runs.
fn curve_work<T>(work: impl FnOnce() -> T) -> (usize, T) {
    let before = bign::verifications();
    let result = work();
    (bign::verifications() - before, result)
}

#[test]
fn a_second_check_of_a_path_does_no_curve_work_for_its_certificates() {
    let validator = validator();
    let issued = issue(&options());
    // Made before: verifying the CRLs' signatures is curve work too.
    let revocation = crls(&[]);
    let check = |at| validator.validate(&issued.certificate_der, &chain(), at, &revocation);
    let (first_work, first) = curve_work(|| check(at()));
    assert_eq!(
        first_work, 2,
        "the leaf's and the intermediate's signatures"
    );
    let (second_work, second) = curve_work(|| check(at()));
    assert_eq!(second_work, 0, "both remembered");
    assert_eq!(second.expect("valid"), first.expect("valid"));
    // Only the signatures are remembered: the validity at the time asked is checked again.
    let late = options().not_after + TimeDelta::days(1);
    let (late_work, expired) = curve_work(|| check(late));
    assert_eq!(late_work, 0);
    refused(expired, "expired");
}

#[test]
fn a_tampered_certificate_is_refused_at_its_first_check_and_every_later_one() {
    let validator = validator();
    let issued = issue(&options());
    let revocation = crls(&[]);
    // The genuine certificate first, so its signature is remembered.
    validator
        .validate(&issued.certificate_der, &chain(), at(), &revocation)
        .expect("valid");
    let mut flipped_signature = issued.certificate_der.clone();
    let last = flipped_signature.len() - 1;
    flipped_signature[last] ^= 0x01;
    let mut changed_subject = issued.certificate_der.clone();
    let changed = ID_NUMBER.replace('1', "2");
    assert_eq!(
        replace_all(
            &mut changed_subject,
            ID_NUMBER.as_bytes(),
            changed.as_bytes()
        ),
        1
    );
    for (case, der) in [
        ("a flipped signature bit", &flipped_signature),
        ("a changed identification number", &changed_subject),
    ] {
        for attempt in 1..=2 {
            let (work, result) =
                curve_work(|| validator.validate(der, &chain(), at(), &revocation));
            let invalid = result.expect_err(case);
            assert_eq!(invalid.reason_code(), "bad_signature", "{case} #{attempt}");
            // The intermediate is remembered; the leaf's signature is verified, and fails.
            assert_eq!(work, 1, "{case} #{attempt}: the leaf verified again");
        }
    }
    let (work, genuine) =
        curve_work(|| validator.validate(&issued.certificate_der, &chain(), at(), &revocation));
    genuine.expect("the genuine one is still valid");
    assert_eq!(work, 0);
}

#[test]
fn the_signature_cache_is_bounded_and_remembers_successes_only() {
    let key = bign::PublicKey::from_spki(
        &certificate(&CA.root_der())
            .tbs_certificate
            .subject_public_key_info,
        "root",
    )
    .expect("a key");
    let cache = signature_cache::SignatureCache::new(2);
    let calls = std::cell::Cell::new(0);
    let counted = &calls;
    let verify = move |outcome: bool| {
        move || {
            counted.set(counted.get() + 1);
            outcome
        }
    };
    for der in [&b"a"[..], b"b", b"c"] {
        assert!(cache.verifies(&key, der, verify(true)));
    }
    assert_eq!((calls.get(), cache.len()), (3, 2));
    assert!(cache.verifies(&key, b"c", verify(true)));
    assert_eq!(calls.get(), 3, "c is remembered");
    assert!(cache.verifies(&key, b"a", verify(true)));
    assert_eq!(calls.get(), 4, "a, the oldest, was dropped");
    for _ in 0..2 {
        assert!(!cache.verifies(&key, b"forged", verify(false)));
    }
    assert_eq!(calls.get(), 6, "a failure is verified every time");
}

/// A checker of `server`'s CA keeping OCSP answers for `max_age`.
fn checker_keeping(server: &MockServer, max_age: Duration) -> Checker {
    Checker::new(
        validator(),
        client_with(server, Duration::from_millis(300)),
        max_age,
    )
}

/// How many OCSP requests `server` received.
async fn ocsp_posts(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count()
}

#[tokio::test]
async fn a_kept_ocsp_answer_is_reused_within_its_window_and_not_after() {
    let server = MockServer::start().await;
    crls_down(&server).await;
    let ca = published(&server);
    serve_ocsp(&server, "/ocsp", Responder::honest(&ca), 4).await;
    let checker = checker_keeping(&server, Duration::from_secs(5 * 60));
    let issued = ca.issue(&subject(), &options());
    let chain = [ca.intermediate_der()];
    checker
        .check(&issued.certificate_der, &chain, at())
        .await
        .expect("valid");
    assert_eq!(
        ocsp_posts(&server).await,
        2,
        "the leaf's and the intermediate's"
    );

    let before = bign::verifications();
    checker
        .check(
            &issued.certificate_der,
            &chain,
            at() + TimeDelta::minutes(4),
        )
        .await
        .expect("valid, from the kept answers");
    assert_eq!(ocsp_posts(&server).await, 2, "no request within 5 minutes");
    assert_eq!(
        bign::verifications() - before,
        0,
        "no signature verified: neither certificates nor answers"
    );

    checker
        .check(
            &issued.certificate_der,
            &chain,
            at() + TimeDelta::minutes(6),
        )
        .await
        .expect("valid, from new answers");
    assert_eq!(
        ocsp_posts(&server).await,
        4,
        "both asked again after 5 minutes"
    );
}

#[tokio::test]
async fn a_kept_ocsp_answer_is_not_reused_past_its_next_update() {
    // The answers hold for 10 minutes; the cache would keep them for an hour.
    let server = MockServer::start().await;
    crls_down(&server).await;
    let ca = published(&server);
    serve_ocsp(&server, "/ocsp", Responder::honest(&ca), 4).await;
    let checker = checker_keeping(&server, Duration::from_secs(3600));
    let issued = ca.issue(&subject(), &options());
    let chain = [ca.intermediate_der()];
    for minutes in [0, 9] {
        checker
            .check(
                &issued.certificate_der,
                &chain,
                at() + TimeDelta::minutes(minutes),
            )
            .await
            .expect("valid");
    }
    assert_eq!(ocsp_posts(&server).await, 2);
    // Past nextUpdate the kept answers are dropped; the responder's (the same, now stale) are
    // refused and no CRL can be had.
    let result = checker
        .check(
            &issued.certificate_der,
            &chain,
            at() + TimeDelta::minutes(11),
        )
        .await;
    refused(result, "status_unknown");
    assert_eq!(ocsp_posts(&server).await, 4);
}

#[tokio::test]
async fn revoked_answers_are_kept_unknown_answers_and_failures_are_not() {
    let cases: Vec<(&str, Forge, &str, usize)> = vec![
        (
            "revoked",
            Box::new(|a| {
                a.status = OcspStatus::Revoked {
                    revoked_at: at() - TimeDelta::days(1),
                    reason: SimReason::KeyCompromise,
                }
            }),
            "revoked",
            2,
        ),
        (
            "a signed unknown",
            Box::new(|a| a.status = OcspStatus::Unknown),
            "status_unknown",
            3,
        ),
        (
            "a forged answer",
            Box::new(|a| a.signer = OcspSigner::Stranger),
            "status_unknown",
            3,
        ),
    ];
    for (case, forge, code, posts) in cases {
        let server = MockServer::start().await;
        crls_down(&server).await;
        let ca = published(&server);
        serve_ocsp(
            &server,
            "/ocsp",
            Responder::forging(&ca, forge),
            posts as u64,
        )
        .await;
        let checker = checker_keeping(&server, DEFAULT_OCSP_CACHE);
        let issued = ca.issue(&subject(), &options());
        for attempt in 1..=2 {
            let result = checker
                .check(&issued.certificate_der, &[ca.intermediate_der()], at())
                .await;
            let invalid = result.expect_err(case);
            assert_eq!(invalid.reason_code(), code, "{case} #{attempt}: {invalid}");
        }
        // The intermediate's good answer is kept in every case; the leaf's only when revoked.
        assert_eq!(ocsp_posts(&server).await, posts, "{case}");
    }
}

#[tokio::test]
async fn with_the_ocsp_cache_off_every_check_asks_the_responder() {
    let server = MockServer::start().await;
    crls_down(&server).await;
    let ca = published(&server);
    serve_ocsp(&server, "/ocsp", Responder::honest(&ca), 4).await;
    let checker = checker_keeping(&server, Duration::ZERO);
    let issued = ca.issue(&subject(), &options());
    for _ in 0..2 {
        checker
            .check(&issued.certificate_der, &[ca.intermediate_der()], at())
            .await
            .expect("valid");
    }
    assert_eq!(ocsp_posts(&server).await, 4);
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
    let ocsp_mode = |mode: &'static str| {
        let http = http.clone();
        let url = gossuok.join("sim/ocsp").expect("a URL");
        async move {
            let response = http
                .put(url)
                .json(&json!({ "mode": mode }))
                .send()
                .await
                .expect("GosSUOK answers");
            assert!(response.status().is_success(), "{mode}");
        }
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
    // Good by OCSP: the checker keeps no CRL, and with its OCSP cache off each check asks the
    // responder (the cache's own tests show reuse within its window).
    let checker = Checker::new(validator.clone(), client.clone(), Duration::ZERO);
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
    // The responder says so at once, to the same checker.
    let invalid = checker
        .check(&leaf, &chain, Utc::now())
        .await
        .expect_err("revoked");
    assert_eq!(invalid.reason_code(), "revoked");

    // With the responder's answers forged, a checker falls back to the CRL at the
    // certificate's distribution point, signed, which lists the revocation too.
    for mode in ["wrong_key", "no_nonce", "stale"] {
        ocsp_mode(mode).await;
        let fresh = Checker::new(validator.clone(), client.clone(), Duration::ZERO);
        let invalid = fresh
            .check(&leaf, &chain, Utc::now())
            .await
            .expect_err("revoked");
        assert_eq!(invalid.reason_code(), "revoked", "{mode}");
    }
    shutdown.cancel();
}
