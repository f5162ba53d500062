//! Secrets the hub makes and keeps: confirmation codes and temporary passwords.
//!
//! - A secret that must travel (to the SMS adapter) is **sealed** with XChaCha20-Poly1305 under
//!   a key from configuration (`HUB_SEAL_KEY`), so the outbox, dead letters and logs only ever
//!   hold ciphertext.
//! - A secret that must be checked later is kept as an **argon2** hash, never in the clear.
//! - Codes and passwords come from a CSPRNG (`StdRng`, ChaCha12) seeded per saga step from the
//!   operating system, so a transition stays a function of its arguments and a test can fix the
//!   seed.

use adapters::Failure;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use contracts::sealed::Sealed;
use rand::{Rng, RngCore};

/// The development key: used only when `HUB_SEAL_KEY` is not set, with a warning at start.
const DEV_KEY: [u8; 32] = *b"dev-only-seal-key-do-not-deploy!";

/// Seals and opens secrets in transit.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    key_id: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(key {})", self.key_id)
    }
}

/// A sealing key that is not 32 bytes of base64.
#[derive(Debug, thiserror::Error)]
#[error(
    "HUB_SEAL_KEY must be 32 random bytes in base64 (make one with `openssl rand -base64 32`): {0}"
)]
pub struct KeyError(String);

impl Sealer {
    /// A sealer with the configured key (`key_id:base64` or just base64, id `k1`), or the
    /// development key when none is configured.
    pub fn from_config(key: Option<&str>) -> Result<Self, KeyError> {
        let Some(key) = key.filter(|k| !k.trim().is_empty()) else {
            tracing::warn!(
                "HUB_SEAL_KEY is not set: sealing secrets with the development key; set it before real use"
            );
            return Ok(Self::with_key("dev", &DEV_KEY));
        };
        let (id, b64) = key.trim().split_once(':').unwrap_or(("k1", key.trim()));
        let bytes = B64.decode(b64).map_err(|e| KeyError(e.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyError(format!("got {} bytes", b.len())))?;
        Ok(Self::with_key(id, &bytes))
    }

    fn with_key(id: &str, key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&(*key).into()),
            key_id: id.to_owned(),
        }
    }

    /// Seals `plaintext` with a random nonce from `rng`.
    pub fn seal(&self, rng: &mut impl RngCore, plaintext: &str) -> Result<Sealed, Failure> {
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let nonce = XNonce::from(nonce);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .map_err(|_| Failure::permanent("sealing failed"))?;
        Ok(Sealed {
            key_id: self.key_id.clone(),
            nonce: B64.encode(nonce.as_slice()),
            ciphertext: B64.encode(ciphertext),
        })
    }

    /// Opens a sealed secret. A wrong key or a tampered envelope is a permanent failure: no
    /// retry will open it.
    pub fn open(&self, sealed: &Sealed) -> Result<String, Failure> {
        if sealed.key_id != self.key_id {
            return Err(Failure::permanent(format!(
                "sealed with key {:?}, this hub has key {:?}",
                sealed.key_id, self.key_id
            )));
        }
        let nonce: [u8; 24] = B64
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| Failure::invalid_input("sealed nonce is not 24 bytes of base64"))?;
        let ciphertext = B64
            .decode(&sealed.ciphertext)
            .map_err(|_| Failure::invalid_input("sealed ciphertext is not base64"))?;
        let plain = self
            .cipher
            .decrypt(&XNonce::from(nonce), ciphertext.as_slice())
            .map_err(|_| Failure::permanent("sealed text does not open with this key"))?;
        String::from_utf8(plain).map_err(|_| Failure::invalid_input("sealed text is not UTF-8"))
    }
}

/// An argon2 hash (PHC string) of `secret`, salted from `rng`.
pub fn hash_secret(rng: &mut impl RngCore, secret: &str) -> Result<String, Failure> {
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    Argon2::default()
        .hash_password_with_salt(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Failure::permanent(format!("hashing failed: {e}")))
}

/// Whether `secret` matches the argon2 hash `phc`. A malformed hash never matches.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Whether `phc` is a hash [`verify_secret`] can check (an argon2 PHC string), not a password
/// written into configuration by mistake.
pub fn is_secret_hash(phc: &str) -> bool {
    phc.starts_with("$argon2") && PasswordHash::new(phc).is_ok()
}

/// `n` random decimal digits.
pub fn random_digits(rng: &mut impl RngCore, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// A temporary password: 10 characters from an alphabet without look-alikes (no 0/O, 1/l/I),
/// with at least one upper-case letter, one lower-case letter and one digit.
pub fn random_password(rng: &mut impl RngCore) -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    let all: Vec<u8> = [UPPER, LOWER, DIGIT].concat();
    loop {
        let p: Vec<u8> = (0..10)
            .map(|_| all[rng.random_range(0..all.len())])
            .collect();
        let has = |set: &[u8]| p.iter().any(|c| set.contains(c));
        if has(UPPER) && has(LOWER) && has(DIGIT) {
            return String::from_utf8_lossy(&p).into_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn sealed_text_opens_only_with_its_key_and_hides_the_plaintext() {
        let mut rng = StdRng::seed_from_u64(1);
        let sealer = Sealer::from_config(Some(&B64.encode([7u8; 32]))).expect("key");
        let sealed = sealer.seal(&mut rng, "Пароль: Xy3kLmNpQr").expect("sealed");
        let json = serde_json::to_string(&sealed).expect("json");
        assert!(!json.contains("Xy3kLmNpQr"));
        assert_eq!(sealer.open(&sealed).expect("opens"), "Пароль: Xy3kLmNpQr");
        let other =
            Sealer::from_config(Some(&format!("k1:{}", B64.encode([8u8; 32])))).expect("key");
        assert!(other.open(&sealed).is_err(), "another key does not open it");
        let mut tampered = sealed.clone();
        tampered.ciphertext = B64.encode(b"garbage that is not it");
        assert!(sealer.open(&tampered).is_err());
        assert!(
            Sealer::from_config(Some("c2hvcnQ=")).is_err(),
            "a short key is refused"
        );
    }

    #[test]
    fn hashes_verify_the_secret_and_nothing_else() {
        let mut rng = StdRng::seed_from_u64(2);
        let h = hash_secret(&mut rng, "123456").expect("hash");
        assert!(h.starts_with("$argon2"));
        assert!(!h.contains("123456"));
        assert!(verify_secret("123456", &h));
        assert!(!verify_secret("123457", &h));
        assert!(!verify_secret("123456", "not a hash"));
    }

    #[test]
    fn codes_and_passwords_have_their_shape() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let code = random_digits(&mut rng, 6);
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
            let p = random_password(&mut rng);
            assert_eq!(p.len(), 10);
            assert!(p.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(p.bytes().any(|b| b.is_ascii_lowercase()));
            assert!(p.bytes().any(|b| b.is_ascii_digit()));
            assert!(!p.contains(['0', 'O', '1', 'l', 'I']));
        }
    }
}
