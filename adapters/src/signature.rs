//! The signature scheme of the systems that call the hub back (ERIP's notifications, the
//! authorities' back-offices): HMAC-SHA256 under a shared secret, sent as
//! `sha256=<lower-case hex>`. ERIP (and the hub's own calls to the back-offices) sign the exact
//! body bytes ([`sign`], [`verify`]); the back-offices' callbacks sign the request — method,
//! path, timestamp and body ([`sign_request`], [`verify_request`]) — so that a signed answer
//! cannot be moved to another authority's or another answer type's path, nor replayed later.
//! Kept in one place so that every verification is constant-time and refuses the same things.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::failure::Failure;

/// The reason of the invalid-input failure for a body whose signature is missing, malformed or
/// wrong. It never says more: the body is not to be trusted, nor echoed.
pub(crate) const BAD_SIGNATURE: &str = "bad signature";

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub(crate) fn sign(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, &[body]).finalize().into_bytes())
    )
}

/// `sha256=<hex of HMAC-SHA256(secret, METHOD "\n" path "\n" timestamp "\n" body)>`: the
/// signature of a request. The method, the path (percent-encoded, as in a URL) and the
/// timestamp (decimal seconds) hold no line feed, so the line feeds keep the parts apart: no
/// other request has the same signed bytes.
pub(crate) fn sign_request(
    secret: &[u8],
    method: &str,
    path: &str,
    timestamp: &str,
    body: &[u8],
) -> String {
    let parts = request_parts(method, path, timestamp, body);
    format!(
        "sha256={}",
        hex::encode(mac(secret, &parts).finalize().into_bytes())
    )
}

/// Checks `signature_header` (`sha256=<hex>`) against `body`, in constant time.
///
/// Errors: an empty `secret` is a permanent failure saying that the `secret_name` secret is not
/// configured — a configuration mistake that would accept any signature made with it; a
/// missing, malformed or wrong signature is invalid input with the reason [`BAD_SIGNATURE`].
pub(crate) fn verify(
    secret: &[u8],
    body: &[u8],
    signature_header: Option<&str>,
    secret_name: &str,
) -> Result<(), Failure> {
    verify_parts(secret, &[body], signature_header, secret_name)
}

/// Checks `signature_header` against the request's method, path, timestamp (exactly as sent) and
/// body, in constant time, as [`sign_request`] makes it.
///
/// Errors: as [`verify`].
pub(crate) fn verify_request(
    secret: &[u8],
    method: &str,
    path: &str,
    timestamp: &str,
    body: &[u8],
    signature_header: Option<&str>,
    secret_name: &str,
) -> Result<(), Failure> {
    let parts = request_parts(method, path, timestamp, body);
    verify_parts(secret, &parts, signature_header, secret_name)
}

/// The signed bytes of a request, in order.
fn request_parts<'a>(
    method: &'a str,
    path: &'a str,
    timestamp: &'a str,
    body: &'a [u8],
) -> [&'a [u8]; 7] {
    [
        method.as_bytes(),
        b"\n",
        path.as_bytes(),
        b"\n",
        timestamp.as_bytes(),
        b"\n",
        body,
    ]
}

/// Checks `signature_header` against the concatenation of `parts`.
fn verify_parts(
    secret: &[u8],
    parts: &[&[u8]],
    signature_header: Option<&str>,
    secret_name: &str,
) -> Result<(), Failure> {
    if secret.is_empty() {
        return Err(Failure::permanent(format!(
            "the {secret_name} secret is not configured"
        )));
    }
    let bad = || Failure::invalid_input(BAD_SIGNATURE);
    let tag = signature_header
        .map(str::trim)
        .and_then(|h| h.strip_prefix("sha256="))
        .and_then(|hex| hex::decode(hex).ok())
        .ok_or_else(bad)?;
    mac(secret, parts).verify_slice(&tag).map_err(|_| bad())
}

/// The HMAC of the concatenation of `parts`.
fn mac(secret: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes a key of any length (a long one is hashed first), so this is never taken;
        // an all-zero key is what an empty key means to HMAC anyway.
        Err(_) => Hmac::<Sha256>::new(&Default::default()),
    };
    for part in parts {
        mac.update(part);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FailureKind;

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_good_signature_verifies_and_anything_else_does_not() {
        let good = sign(b"k", b"body");
        assert_eq!(verify(b"k", b"body", Some(&good), "test"), Ok(()));
        assert_eq!(
            verify(b"k", b"body", Some(&format!(" {good} ")), "test"),
            Ok(())
        );
        for header in [None, Some("sha256="), Some("sha256=zz"), Some("sha1=00")] {
            assert_eq!(
                verify(b"k", b"body", header, "test"),
                Err(Failure::invalid_input(BAD_SIGNATURE)),
                "{header:?}"
            );
        }
        assert_eq!(
            verify(b"k", b"other", Some(&good), "test"),
            Err(Failure::invalid_input(BAD_SIGNATURE))
        );
        let f = verify(b"", b"body", Some(&sign(b"", b"body")), "test").expect_err("no secret");
        assert_eq!(f.kind, FailureKind::Permanent);
        assert_eq!(f.reason, "the test secret is not configured");
    }

    #[test]
    fn a_request_signature_is_the_hmac_of_method_path_timestamp_and_body_on_lines() {
        // The same RFC 4231 key, over the four parts joined by line feeds: a back-office in
        // another language checks its implementation against this value.
        let signature = sign_request(b"Jefe", "POST", "/cb/a.v1", "1700000000", b"{}");
        assert_eq!(signature, sign(b"Jefe", b"POST\n/cb/a.v1\n1700000000\n{}"));
        let check = |method, path, timestamp, body: &[u8]| {
            verify_request(
                b"Jefe",
                method,
                path,
                timestamp,
                body,
                Some(&signature),
                "test",
            )
        };
        assert_eq!(check("POST", "/cb/a.v1", "1700000000", b"{}"), Ok(()));
        let bad = Err(Failure::invalid_input(BAD_SIGNATURE));
        assert_eq!(check("PUT", "/cb/a.v1", "1700000000", b"{}"), bad);
        assert_eq!(check("POST", "/cb/b.v1", "1700000000", b"{}"), bad);
        assert_eq!(check("POST", "/cb/a.v1", "1700000001", b"{}"), bad);
        assert_eq!(check("POST", "/cb/a.v1", "1700000000", b"{ }"), bad);
        // A body-only signature is not a request signature.
        assert_eq!(
            verify_request(
                b"Jefe",
                "POST",
                "/cb/a.v1",
                "1700000000",
                b"{}",
                Some(&sign(b"Jefe", b"{}")),
                "test"
            ),
            bad
        );
    }
}
