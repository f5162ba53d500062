//! The login challenge: proof that whoever presents a certificate holds its private key.
//!
//! The hub issues a fresh random nonce with its time, the holder's EDS tool signs the bytes of
//! [`Challenge::to_signed_bytes`], and [`Challenge::verify`] checks the signature with the
//! validated certificate's key and the challenge's age. Single use is the hub's job, not this
//! module's: it must store each nonce it issues and accept it once (delete it on first use),
//! or a captured signature could be replayed until the challenge expires.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use rand::RngCore;

use super::validate::{Invalid, ValidCertificate};

/// The first bytes of every signed challenge: they tie the signature to this use (a login to
/// the portal, version 1 of the layout), so a signature made for anything else never verifies.
pub const CHALLENGE_CONTEXT: &[u8] = b"gossuok-login-v1";

/// How far in the future a challenge's time may be (clocks of the hub's instances differ).
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// A login challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// 32 random bytes, unique per challenge.
    pub nonce: [u8; 32],
    /// When the hub issued it; only whole seconds are signed.
    pub issued_at: DateTime<Utc>,
}

impl Challenge {
    /// A new challenge at `now` (to the second) with a nonce from the operating system's
    /// cryptographic generator.
    pub fn new(now: DateTime<Utc>) -> Challenge {
        let mut nonce = [0u8; 32];
        rand::rng().fill_bytes(&mut nonce);
        Challenge {
            nonce,
            issued_at: now.trunc_subsecs(0),
        }
    }

    /// The bytes the holder signs, in this fixed layout:
    ///
    /// ```text
    /// "gossuok-login-v1"   16 bytes, ASCII (CHALLENGE_CONTEXT)
    /// nonce                32 bytes
    /// issued_at            RFC 3339 in UTC to the second, ASCII: "2026-11-27T10:15:00Z"
    /// ```
    ///
    /// with nothing between them (68 bytes for any year up to 9999). The signature is bign over
    /// the belt-hash of these bytes.
    pub fn to_signed_bytes(&self) -> Vec<u8> {
        let issued_at = self.issued_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut bytes = Vec::with_capacity(CHALLENGE_CONTEXT.len() + 32 + issued_at.len());
        bytes.extend_from_slice(CHALLENGE_CONTEXT);
        bytes.extend_from_slice(&self.nonce);
        bytes.extend_from_slice(issued_at.as_bytes());
        bytes
    }

    /// Checks that `signature` is the certificate holder's signature of this challenge and that
    /// the challenge is at most `max_age` old at `now`. The certificate must have been validated
    /// at `now` too; whether this nonce was already used is the hub's to check.
    ///
    /// Errors: [`Invalid::ChallengeExpired`] when older than `max_age`; [`Invalid::Malformed`]
    /// when issued more than a minute after `now`; [`Invalid::BadSignature`] when the signature
    /// is not the holder's of these bytes.
    pub fn verify(
        &self,
        cert: &ValidCertificate,
        signature: &[u8],
        now: DateTime<Utc>,
        max_age: Duration,
    ) -> Result<(), Invalid> {
        let age = now.signed_duration_since(self.issued_at);
        if age < -CLOCK_SKEW {
            return Err(Invalid::Malformed(
                "the challenge was issued in the future".to_owned(),
            ));
        }
        let too_old = chrono::TimeDelta::from_std(max_age).is_ok_and(|max| age > max);
        if too_old {
            return Err(Invalid::ChallengeExpired {
                issued_at: self.issued_at,
                max_age_secs: max_age.as_secs(),
            });
        }
        cert.verify_signature(&self.to_signed_bytes(), signature)
    }
}
