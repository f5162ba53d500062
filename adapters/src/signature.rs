//! The one signature scheme of the systems that call the hub back (ERIP's notifications, the
//! authorities' back-offices): HMAC-SHA256 over the exact body bytes under a shared secret, sent
//! as `sha256=<lower-case hex>`. Kept in one place so that every verification is constant-time
//! and refuses the same things.

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
        hex::encode(mac(secret, body).finalize().into_bytes())
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
    mac(secret, body).verify_slice(&tag).map_err(|_| bad())
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes a key of any length (a long one is hashed first), so this is never taken;
        // an all-zero key is what an empty key means to HMAC anyway.
        Err(_) => Hmac::<Sha256>::new(&Default::default()),
    };
    mac.update(body);
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
}
