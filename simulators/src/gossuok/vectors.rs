//! The standards' own test vectors, so that the test CA is known to speak STB 34.101.31
//! (belt-hash) and STB 34.101.45 (bign) as the standards define them, and not merely to agree
//! with itself.
//!
//! Source of every value: the reference implementation of the standards, bee2
//! (github.com/agievich/bee2), whose tests reproduce the standards' annexes table by table:
//! - `src/crypto/belt/belt_block.c`: the table H of STB 34.101.31, whose first 48 bytes are the
//!   messages of the belt-hash examples;
//! - `test/crypto/belt_test.c`: tests A.23-1, A.23-2 and A.23-3 of STB 34.101.31 Annex A
//!   (belt-hash of the first 13, 32 and 48 bytes of H);
//! - `test/crypto/bign_test.c`: tests G.1 (Г.1: the key pair), G.2 (Г.2: the signature of the
//!   13-byte message) and G.3 (Г.3: the signature of the 48-byte message) of STB 34.101.45
//!   Annex G, on bign-curve256v1 with belt-hash.
//!
//! bign256 0.13 draws its one-time key k by RFC 6979 rather than by the standard's generator,
//! so it cannot reproduce the annex's signatures byte for byte; it must verify them, and reject
//! them once a bit is changed. (The key pair, in the standard's little-endian encoding, checks
//! the STB public-key encoding the certificates use.)

use belt_hash::{BeltHash, Digest};
use bign256::dsa::signature::Verifier;
use bign256::dsa::{Signature, SigningKey};

use super::ca::{stb_public_key, verifying_key_from_stb};

/// The first 48 bytes of the table H of STB 34.101.31 (bee2 `belt_block.c`).
const H48: &str = "B194BAC80A08F53B366D008E584A5DE4\
                   8504FA9D1BB6C7AC252E72C202FDCE0D\
                   5BE3D61217B96181FE6786AD716B890B";

/// STB 34.101.45 test G.1: the private key d, little-endian (bee2 `bign_test.c`).
const PRIVATE_KEY: &str = "1F66B5B84B7339674533F0329C74F218\
                           34281FED0732429E0C79235FC273E269";

/// STB 34.101.45 test G.1: the public key Q = <x> || <y>, little-endian (bee2 `bign_test.c`).
const PUBLIC_KEY: &str = "BD1A5650179D79E03FCEE49D4C2BD5DD\
                          F54CE46D0CF11E4FF87BF7A890857FD0\
                          7AC6A60361E8C8173491686D461B2826\
                          190C2EDA5909054A9AB84D2AB9D99A90";

/// STB 34.101.45 test G.2: the signature of the first 13 bytes of H (bee2 `bign_test.c`).
const SIGNATURE_13: &str = "E36B7F0377AE4C524027C387FADF1B20\
                            CE72F1530B71F2B5FD3A8C584FE2E1AE\
                            D20082E30C8AF65011F4FB54649DFD3D";

/// STB 34.101.45 test G.3: the signature of the first 48 bytes of H (bee2 `bign_test.c`).
const SIGNATURE_48: &str = "47A63C8B9C936E94B5FAB3D9CBD78366\
                            290F3210E163EEC8DB4E921E8479D413\
                            8F112CC23E6DCE65EC5FF21DF4231C28";

fn bytes(hex: &str) -> Vec<u8> {
    hex::decode(hex.replace(' ', "")).expect("hex in a test vector")
}

fn h(len: usize) -> Vec<u8> {
    bytes(H48)[..len].to_vec()
}

#[test]
fn belt_hash_stb_34_101_31_tests_a23() {
    // A.23-1, A.23-2, A.23-3 (bee2 `belt_test.c`).
    for (len, expected) in [
        (
            13,
            "ABEF9725D4C5A83597A367D14494CC2542F20F659DDFECC961A3EC550CBA8C75",
        ),
        (
            32,
            "749E4C3653AECE5E48DB4761227742EB6DBE13F4A80F7BEFF1A9CF8D10EE7786",
        ),
        (
            48,
            "9D02EE446FB6A29FE5C982D4B13AF9D3E90861BC4CEF27CF306BFB0B174A154A",
        ),
    ] {
        let digest = BeltHash::digest(h(len));
        assert_eq!(
            hex::encode_upper(digest),
            expected,
            "belt-hash of {len} bytes"
        );
    }
}

#[test]
fn bign_stb_34_101_45_test_g1_key_pair_in_stb_encoding() {
    // The standard writes d little-endian; bign256 takes the scalar big-endian.
    let mut d = bytes(PRIVATE_KEY);
    d.reverse();
    let key = SigningKey::from_slice(&d).expect("the standard's private key");
    assert_eq!(
        hex::encode_upper(stb_public_key(key.verifying_key())),
        PUBLIC_KEY
    );
    let decoded = verifying_key_from_stb(&bytes(PUBLIC_KEY)).expect("the standard's public key");
    assert_eq!(decoded.to_sec1_bytes(), key.verifying_key().to_sec1_bytes());
}

#[test]
fn bign_stb_34_101_45_tests_g2_g3_signatures_verify() {
    let key = verifying_key_from_stb(&bytes(PUBLIC_KEY)).expect("the standard's public key");
    for (len, signature) in [(13, SIGNATURE_13), (48, SIGNATURE_48)] {
        let signature = Signature::from_slice(&bytes(signature)).expect("a 48-byte signature");
        assert!(
            key.verify(&h(len), &signature).is_ok(),
            "the annex's signature of {len} bytes verifies"
        );
        assert!(
            key.verify(&h(len - 1), &signature).is_err(),
            "not for another message"
        );
    }
}

#[test]
fn bign_stb_34_101_45_test_g2_rejects_a_flipped_bit() {
    let key = verifying_key_from_stb(&bytes(PUBLIC_KEY)).expect("the standard's public key");
    let original = bytes(SIGNATURE_13);
    for (byte, bit) in [(0, 0), (15, 7), (16, 0), (47, 3)] {
        let mut tampered = original.clone();
        tampered[byte] ^= 1 << bit;
        // A flipped bit may also make S1 >= q: unparseable counts as rejected.
        let verified = Signature::from_slice(&tampered)
            .map(|signature| key.verify(&h(13), &signature).is_ok())
            .unwrap_or(false);
        assert!(!verified, "bit {bit} of byte {byte} flipped");
    }
    // The key changed (as bee2's test does) fails as well.
    let mut other_key = bytes(PUBLIC_KEY);
    other_key[0] ^= 1;
    let signature = Signature::from_slice(&original).expect("a signature");
    let verified = verifying_key_from_stb(&other_key)
        .map(|key| key.verify(&h(13), &signature).is_ok())
        .unwrap_or(false);
    assert!(!verified);
}

#[test]
fn a_signature_made_here_verifies_with_the_standards_key_pair() {
    use bign256::dsa::signature::Signer;
    let mut d = bytes(PRIVATE_KEY);
    d.reverse();
    let key = SigningKey::from_slice(&d).expect("the standard's private key");
    let signature: Signature = key.sign(&h(13));
    let public = verifying_key_from_stb(&bytes(PUBLIC_KEY)).expect("the public key");
    assert!(public.verify(&h(13), &signature).is_ok());
}
