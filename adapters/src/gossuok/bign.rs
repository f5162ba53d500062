//! The Belarusian algorithms as certificates and CRLs name them: bign-with-hbelt signatures
//! (STB 34.101.45 over belt-hash, STB 34.101.31) made with bign-curve256v1 keys.
//!
//! Everything that touches `bign256` is here, so the rest of the module deals in checked keys
//! and yes-or-no answers, and the crate's sharp edges are handled once.

use bign256::Scalar;
use bign256::dsa::signature::Verifier;
use bign256::dsa::{Signature, VerifyingKey};
use bign256::elliptic_curve::ff::PrimeField;
use der::asn1::{BitString, ObjectIdentifier};
use der::{Decode, Header, Reader, SliceReader, Tag};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::Invalid;

/// bign-with-hbelt: a bign signature over the belt-hash of the signed bytes. Its parameters
/// are absent.
pub(crate) const BIGN_WITH_HBELT: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.112.0.2.0.34.101.45.12");

/// bign-pubkey: the algorithm of a bign public key; its parameters name the curve.
pub(crate) const BIGN_PUBKEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.112.0.2.0.34.101.45.2.1");

/// bign-curve256v1, the curve of the 128-bit security level.
pub(crate) const BIGN_CURVE256V1: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.112.0.2.0.34.101.45.3.1");

/// A public key in the STB 34.101.45 encoding: x then y, each 32 bytes little-endian.
pub(crate) const PUBLIC_KEY_LEN: usize = 64;

/// A signature: s0 (16 bytes) then s1 (32 bytes), little-endian.
pub(crate) const SIGNATURE_LEN: usize = 48;

/// A bign-curve256v1 public key, checked to be a point of the curve.
#[derive(Clone, Debug)]
pub(crate) struct PublicKey {
    stb: [u8; PUBLIC_KEY_LEN],
    key: VerifyingKey,
}

impl PublicKey {
    /// The key of its STB 34.101.45 encoding (64 bytes, x then y, little-endian); `None` when
    /// the bytes are not a point of the curve.
    pub(crate) fn from_stb(bytes: &[u8]) -> Option<PublicKey> {
        let stb: [u8; PUBLIC_KEY_LEN] = bytes.try_into().ok()?;
        // `bign256` 0.13 reads keys only in the SEC1 encoding: 0x04, then x and y big-endian.
        let mut sec1 = [0u8; 1 + PUBLIC_KEY_LEN];
        sec1[0] = 0x04;
        for (half, out) in stb.chunks_exact(32).zip(sec1[1..].chunks_exact_mut(32)) {
            out.copy_from_slice(half);
            out.reverse();
        }
        let key = VerifyingKey::from_sec1_bytes(&sec1).ok()?;
        Some(PublicKey { stb, key })
    }

    /// The key of a certificate's subjectPublicKeyInfo: bign-pubkey on bign-curve256v1, the
    /// BIT STRING holding the 64-byte STB encoding. `which` names the certificate in errors.
    pub(crate) fn from_spki(
        spki: &SubjectPublicKeyInfoOwned,
        which: &str,
    ) -> Result<PublicKey, Invalid> {
        let algorithm = &spki.algorithm;
        if algorithm.oid != BIGN_PUBKEY {
            return Err(Invalid::UnsupportedAlgorithm(format!(
                "the {which} has a public key of the algorithm {} (expected bign-pubkey {})",
                algorithm.oid, BIGN_PUBKEY
            )));
        }
        let curve = algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        if curve != Some(BIGN_CURVE256V1) {
            return Err(Invalid::UnsupportedAlgorithm(format!(
                "the {which} has a bign public key on another curve than bign-curve256v1 {}",
                BIGN_CURVE256V1
            )));
        }
        spki.subject_public_key
            .as_bytes()
            .and_then(PublicKey::from_stb)
            .ok_or_else(|| {
                Invalid::Malformed(format!(
                    "the {which} has a public key that is not 64 bytes of a point of \
                     bign-curve256v1"
                ))
            })
    }

    /// The STB 34.101.45 encoding: 64 bytes, x then y, little-endian.
    pub(crate) fn to_stb(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.stb
    }

    /// Whether `signature` (48 bytes) is this key's bign signature of the belt-hash of
    /// `message`. Any signature bytes at all are safe to pass: a wrong length or a value out of
    /// range is a plain no.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        #[cfg(test)]
        VERIFICATIONS.with(|count| count.set(count.get() + 1));
        if signature.len() != SIGNATURE_LEN || !s1_below_order(&signature[16..]) {
            return false;
        }
        // `Signature::from_slice` checks s1 read big-endian, but verification reads it
        // little-endian and panics when that value is not below the order: hence the check
        // above, on the value the verification will use.
        match Signature::from_slice(signature) {
            Ok(signature) => self.key.verify(message, &signature).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
thread_local! {
    /// How many signatures [`PublicKey::verifies`] was asked to check on this thread: the
    /// tests' evidence of curve work done or spared (each test runs on a thread of its own).
    static VERIFICATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The signatures [`PublicKey::verifies`] checked on this thread so far.
#[cfg(test)]
pub(crate) fn verifications() -> usize {
    VERIFICATIONS.with(std::cell::Cell::get)
}

/// Whether the 32 little-endian bytes `s1` are a value below the order of the curve's group.
fn s1_below_order(s1: &[u8]) -> bool {
    let mut big_endian = bign256::FieldBytes::default();
    if s1.len() != big_endian.len() {
        return false;
    }
    big_endian.copy_from_slice(s1);
    big_endian.reverse();
    bool::from(Scalar::from_repr(big_endian).is_some())
}

/// Checks that a certificate or CRL is signed with bign-with-hbelt (parameters absent) and
/// that the algorithm inside the signed part is the same (RFC 5280 4.1.1.2, 5.1.1.2).
pub(crate) fn check_signature_algorithm(
    outer: &AlgorithmIdentifierOwned,
    inner: &AlgorithmIdentifierOwned,
    which: &str,
) -> Result<(), Invalid> {
    if outer.oid != BIGN_WITH_HBELT {
        return Err(Invalid::UnsupportedAlgorithm(format!(
            "the {which} is signed with the algorithm {} (expected bign-with-hbelt {})",
            outer.oid, BIGN_WITH_HBELT
        )));
    }
    if outer.parameters.is_some() {
        return Err(Invalid::Malformed(format!(
            "the {which} has parameters for bign-with-hbelt, which has none"
        )));
    }
    if outer != inner {
        return Err(Invalid::Malformed(format!(
            "the {which} names another signature algorithm inside its signed part"
        )));
    }
    Ok(())
}

/// The signature bytes of a BIT STRING, which has no unused bits when it holds a signature.
pub(crate) fn signature_bytes(signature: &BitString) -> &[u8] {
    signature.as_bytes().unwrap_or_default()
}

/// The exact bytes of the first element of a DER SEQUENCE: the signed part of a certificate
/// or a CRL, as it was signed. Re-encoding the parsed structure could differ from what the CA
/// signed; these bytes cannot.
pub(crate) fn signed_part(der: &[u8]) -> der::Result<&[u8]> {
    let mut reader = SliceReader::new(der)?;
    Header::decode(&mut reader)?.tag.assert_eq(Tag::Sequence)?;
    reader.tlv_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key pair of STB 34.101.45 Annex G (table G.1 and G.2 of the standard): the public
    /// key in its STB encoding.
    const ANNEX_G_PUBLIC_KEY: &str = "bd1a5650179d79e03fcee49d4c2bd5ddf54ce46d0cf11e4ff87bf7a890857fd0\
                                      7ac6a60361e8c8173491686d461b2826190c2eda5909054a9ab84d2ab9d99a90";

    /// STB 34.101.45 test G.2: the signature of the first 13 bytes of table H of
    /// STB 34.101.31 (values as bee2, the standards' reference implementation, reproduces them).
    const ANNEX_G_MESSAGE: &str = "b194bac80a08f53b366d008e58";
    const ANNEX_G_SIGNATURE: &str = "e36b7f0377ae4c524027c387fadf1b20ce72f1530b71f2b5fd3a8c584fe2e1ae\
                                     d20082e30c8af65011f4fb54649dfd3d";

    fn key() -> PublicKey {
        PublicKey::from_stb(&hex::decode(ANNEX_G_PUBLIC_KEY).expect("hex")).expect("a point")
    }

    #[test]
    fn the_standards_public_key_reads_in_the_stb_encoding() {
        let key = key();
        assert_eq!(hex::encode(key.to_stb()), ANNEX_G_PUBLIC_KEY);
        let mut off_curve = key.to_stb();
        off_curve[0] ^= 0x01;
        assert!(PublicKey::from_stb(&off_curve).is_none());
        assert!(PublicKey::from_stb(&off_curve[..63]).is_none());
    }

    #[test]
    fn the_standards_signature_verifies_and_a_flipped_bit_does_not() {
        let key = key();
        let message = hex::decode(ANNEX_G_MESSAGE).expect("hex");
        let signature = hex::decode(ANNEX_G_SIGNATURE).expect("hex");
        assert!(key.verifies(&message, &signature));
        assert!(!key.verifies(&message[..12], &signature));
        for byte in [0, 15, 16, 47] {
            let mut tampered = signature.clone();
            tampered[byte] ^= 0x01;
            assert!(!key.verifies(&message, &tampered), "byte {byte}");
        }
    }

    #[test]
    fn signatures_out_of_range_are_refused_without_a_panic() {
        let key = key();
        // s1 below the order when read big-endian but not when read little-endian, as the
        // verification reads it: `bign256` would panic on it.
        let mut signature = [0xff_u8; SIGNATURE_LEN];
        signature[16] = 0x00;
        assert!(!key.verifies(b"message", &signature));
        assert!(!key.verifies(b"message", &[0; SIGNATURE_LEN]));
        assert!(!key.verifies(b"message", &[1; SIGNATURE_LEN - 1]));
        assert!(!key.verifies(b"message", &[]));
    }
}
