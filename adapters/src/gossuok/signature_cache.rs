//! Certificate signatures already verified, so that the curve work of a bign verification is
//! done once per certificate and not at every check of a path that contains it.
//!
//! A certificate's signature by its issuer never changes: the same DER under the same issuer
//! key verifies today as it did yesterday. So a verification that succeeded is remembered by
//! the SHA-256 of the certificate's whole DER and the issuer's public key, and the next path
//! holding that exact certificate under that key skips the curve arithmetic. Only the
//! signature is remembered: everything else about the path (validity at the time asked, trust
//! anchors, constraints, key usage, extensions, names, revocation) is checked every time.
//!
//! A failed verification is not remembered, and any change to a certificate (its signed part or
//! its signature) changes the hash, so a tampered certificate is never a hit: it is verified,
//! and refused, each time it comes. The memory is bounded ([`CAPACITY`] entries, the least
//! recently used dropped first), so a flood of distinct certificates costs at most that much.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use hashlink::LruCache;
use sha2::{Digest, Sha256};

use super::bign::{PUBLIC_KEY_LEN, PublicKey};

/// How many verified (certificate, issuer key) pairs are kept: far more than the CAs' and
/// officials' certificates that come back often, and about 1 MiB of memory at most.
pub(crate) const CAPACITY: usize = 10_000;

/// A certificate by the SHA-256 of its whole DER, and the issuer key it verified under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Verified {
    certificate: [u8; 32],
    issuer_key: [u8; PUBLIC_KEY_LEN],
}

/// The verified certificate signatures, shared by the clones of the validator that holds it.
#[derive(Clone)]
pub(crate) struct SignatureCache {
    verified: Arc<Mutex<LruCache<Verified, ()>>>,
}

impl fmt::Debug for SignatureCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verified = self.lock();
        f.debug_struct("SignatureCache")
            .field("len", &verified.len())
            .field("capacity", &verified.capacity())
            .finish()
    }
}

impl SignatureCache {
    /// An empty cache keeping at most `capacity` verified signatures.
    pub(crate) fn new(capacity: usize) -> SignatureCache {
        SignatureCache {
            verified: Arc::new(Mutex::new(LruCache::new(capacity))),
        }
    }

    /// Whether the certificate `certificate_der` is signed by `issuer`: true at once when this
    /// exact DER verified under this key before, else `verify()` decides (the curve work on
    /// the signed part and the signature of that same DER), and a success is remembered.
    pub(crate) fn verifies(
        &self,
        issuer: &PublicKey,
        certificate_der: &[u8],
        verify: impl FnOnce() -> bool,
    ) -> bool {
        let key = Verified {
            certificate: Sha256::digest(certificate_der).into(),
            issuer_key: issuer.to_stb(),
        };
        if self.lock().get(&key).is_some() {
            return true;
        }
        // The lock is not held over the curve work: other checks go on meanwhile.
        let verified = verify();
        if verified {
            self.lock().insert(key, ());
        }
        verified
    }

    /// How many verified signatures are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Verified, ()>> {
        // A panic elsewhere cannot leave the map half-changed in a way that matters: at worst a
        // signature is verified again.
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
