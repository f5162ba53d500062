//! A secret that travels sealed (AEAD): a temporary password or a confirmation code on its way to
//! the SMS adapter. The outbox, a dead letter and a log only ever see this envelope; the key is in
//! the hub's configuration, and the sealing itself is the hub's (this crate does no crypto).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Ciphertext with what is needed to open it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Sealed {
    /// Which configured key sealed it (for key rotation).
    pub key_id: String,
    /// The nonce, base64.
    pub nonce: String,
    /// Ciphertext and tag, base64.
    pub ciphertext: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed(key {})", self.key_id)
    }
}
