//! Secrets the hub makes and keeps: confirmation codes and temporary passwords.
//!
//! - A secret that must travel (to the SMS adapter) is **sealed** with XChaCha20-Poly1305 under
//!   a key from configuration (`HUB_SEAL_KEY`), so the outbox, dead letters and logs only ever
//!   hold ciphertext.
//! - A secret that must be checked later is kept as an **argon2** hash, never in the clear.
//! - Codes and passwords come from a CSPRNG (`StdRng`, ChaCha12) seeded per saga step from the
//!   operating system, so a transition stays a function of its arguments and a test can fix the
//!   seed.
//! - Argon2 work is slow on purpose (tens of milliseconds, 19 MiB each): it runs on a pool of
//!   its own, one thread per core, so the async workers keep serving and no more hashes run at
//!   once than there are cores to run them (each thread reuses its own working memory; a hash on
//!   every blocked thread once made a hub process peak at 700 MiB). A synchronous caller
//!   ([`hash_secret`], [`verify_secret`]) waits in `block_in_place` on a multi-thread runtime;
//!   [`FreshSecret::make`] awaits the pool without holding a worker thread. Its CPU time is
//!   recorded ([`argon2_seconds`], `hub_argon2_seconds`).
//! - **No hash is made inside an open transaction.** A saga step that hands out a new secret
//!   (a phone code, a temporary password) gets it as a [`FreshSecret`], made and hashed by the
//!   engine *before* it opens the step's transaction (see `crate::engine`): the transaction only
//!   stores the hash it is given. A check that must be counted under a row lock (a code typed
//!   against the attempts left, a password against the lock-out) still verifies there, so that
//!   parallel guesses are counted one by one.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, mpsc};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use contracts::Failure;
use contracts::sealed::Sealed;
use rand::{Rng, RngCore};
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::metrics::{Argon2Op, metrics};

/// The development key: used only when `HUB_SEAL_KEY` is not set (announced at start; refused
/// in production mode, see [`is_dev_seal_key`]).
pub const DEV_SEAL_KEY: [u8; 32] = *b"dev-only-seal-key-do-not-deploy!";

/// The configured sealing key is the development one: not set, or set to the development key's
/// bytes (under any key id).
pub fn is_dev_seal_key(key: Option<&str>) -> bool {
    let Some(key) = key.filter(|k| !k.trim().is_empty()) else {
        return true;
    };
    let b64 = key.trim().split_once(':').map_or(key.trim(), |(_, b)| b);
    B64.decode(b64).is_ok_and(|bytes| bytes == DEV_SEAL_KEY)
}

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
    /// development key when none is configured (the binary announces it at start, and refuses
    /// it in production mode).
    pub fn from_config(key: Option<&str>) -> Result<Self, KeyError> {
        let Some(key) = key.filter(|k| !k.trim().is_empty()) else {
            return Ok(Self::with_key("dev", &DEV_SEAL_KEY));
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

/// Nanoseconds of CPU spent in argon2 by this process.
static ARGON2_NANOS: AtomicU64 = AtomicU64::new(0);

/// CPU seconds spent in argon2 (hashing and verifying) by this process so far.
pub fn argon2_seconds() -> f64 {
    Duration::from_nanos(ARGON2_NANOS.load(Ordering::Relaxed)).as_secs_f64()
}

type Job = Box<dyn FnOnce() + Send>;

/// The argon2 threads' queue; `None` where no thread could be started (the work then runs on
/// the caller's thread).
static POOL: LazyLock<Option<mpsc::Sender<Job>>> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    let mut started = 0;
    for i in 0..threads {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        started += usize::from(spawned.is_ok());
    }
    (started > 0).then_some(jobs)
});

/// The CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Runs the argon2 work `f` on the argon2 pool, waits for it, and records its CPU time. On a
/// multi-thread runtime the wait is in `block_in_place` (the worker's other tasks move to
/// another thread); on a current-thread runtime, where that is not allowed, the caller's thread
/// simply waits. `None` if the work panicked.
fn argon2<T: Send + 'static>(op: Argon2Op, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let work = move || timed(op, f);
    let on_pool = move || {
        let Some(pool) = POOL.as_ref() else {
            return Some(work());
        };
        let (done, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        pool.send(job).ok()?;
        result.recv().ok()
    };
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(on_pool)
        }
        _ => on_pool(),
    }
}

thread_local! {
    /// This thread's argon2 working memory (19 MiB with the default parameters), kept from one
    /// hash to the next: no allocation, no page faults, no memory left behind in malloc arenas.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Computes the argon2 output of `secret` with `salt` into `out`, in this thread's working
/// memory.
fn argon2_into(
    secret: &[u8],
    salt: &[u8],
    hasher: &Argon2<'_>,
    params: &Params,
    out: &mut [u8],
) -> argon2::Result<()> {
    let blocks = params.block_count();
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        hasher.hash_password_into_with_memory(secret, salt, out, &mut memory[..blocks])
    })
}

/// Runs the argon2 work `f` on the argon2 pool and awaits it without blocking the caller's
/// thread (a worker of the async runtime keeps serving other tasks). Records its CPU time like
/// [`argon2`]. `None` if the work panicked.
async fn argon2_async<T: Send + 'static>(
    op: Argon2Op,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let Some(pool) = POOL.as_ref() else {
        return argon2(op, f);
    };
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(timed(op, f));
    });
    pool.send(job).ok()?;
    result.await.ok()
}

/// `f`, with its CPU time recorded.
fn timed<T>(op: Argon2Op, f: impl FnOnce() -> T) -> T {
    let started = thread_cpu();
    let out = f();
    let took = thread_cpu().saturating_sub(started);
    let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    ARGON2_NANOS.fetch_add(nanos, Ordering::Relaxed);
    metrics().argon2(op, took);
    out
}

/// The argon2 work of [`hash_secret`]: the PHC string of `secret` with `salt`.
fn hash_with_salt(secret: &str, salt: &[u8; 16]) -> Result<String, String> {
    let params = Params::default();
    let hasher = Argon2::new(Algorithm::default(), Version::default(), params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(secret.as_bytes(), salt, &hasher, &params, &mut out).map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::default().ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// The outcome of a hash on the pool as a failure the caller can return.
fn hashed(outcome: Option<Result<String, String>>) -> Result<String, Failure> {
    outcome
        .ok_or_else(|| Failure::permanent("hashing failed: the argon2 thread stopped"))?
        .map_err(|e| Failure::permanent(format!("hashing failed: {e}")))
}

/// An argon2id hash (PHC string, the default parameters) of `secret`, salted from `rng`.
pub fn hash_secret(rng: &mut impl RngCore, secret: &str) -> Result<String, Failure> {
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let secret = secret.to_owned();
    hashed(argon2(Argon2Op::Hash, move || {
        hash_with_salt(&secret, &salt)
    }))
}

/// What kind of new secret a saga step hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// `n` random decimal digits: a confirmation code ([`random_digits`]).
    Digits(usize),
    /// A temporary password ([`random_password`]).
    Password,
}

/// A new secret in the clear with its argon2 hash, made before the transaction of the saga
/// step that hands it out (the step seals the clear one for the SMS and keeps or sends the
/// hash). Its `Debug` shows the kind only.
#[derive(Clone, PartialEq, Eq)]
pub struct FreshSecret {
    kind: SecretKind,
    clear: String,
    hash: String,
}

impl std::fmt::Debug for FreshSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshSecret")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl FreshSecret {
    /// A new secret of `kind` from the operating system's randomness, hashed on the argon2 pool;
    /// awaited without holding the caller's thread.
    pub async fn make(kind: SecretKind) -> Result<Self, Failure> {
        // The thread's RNG must not live across the await: the secret and salt first.
        let (clear, salt) = {
            let mut rng = rand::rng();
            let clear = Self::generate(kind, &mut rng);
            let mut salt = [0u8; 16];
            rng.fill_bytes(&mut salt);
            (clear, salt)
        };
        let secret = clear.clone();
        let hash =
            hashed(argon2_async(Argon2Op::Hash, move || hash_with_salt(&secret, &salt)).await)?;
        Ok(Self { kind, clear, hash })
    }

    /// A new secret of `kind` from `rng`, hashed here (the caller waits): for pure tests, which
    /// play the engine's part with a fixed seed.
    pub fn make_with(kind: SecretKind, rng: &mut impl RngCore) -> Result<Self, Failure> {
        let clear = Self::generate(kind, rng);
        let hash = hash_secret(rng, &clear)?;
        Ok(Self { kind, clear, hash })
    }

    /// A secret whose hash is already known (tests show with it that a transition stores the
    /// hash it is given and makes none of its own).
    pub fn from_parts(kind: SecretKind, clear: impl Into<String>, hash: impl Into<String>) -> Self {
        Self {
            kind,
            clear: clear.into(),
            hash: hash.into(),
        }
    }

    fn generate(kind: SecretKind, rng: &mut impl RngCore) -> String {
        match kind {
            SecretKind::Digits(n) => random_digits(rng, n),
            SecretKind::Password => random_password(rng),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> SecretKind {
        self.kind
    }

    /// The secret in the clear: to be sealed, never stored or logged.
    pub fn clear(&self) -> &str {
        &self.clear
    }

    /// Its argon2 hash (PHC string).
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

/// A hash no secret matches, with the parameters [`hash_secret`] uses: a login checks an
/// unknown user's password against it, so that the refusal costs the argon2 work a known
/// user's does and its time does not tell who is registered.
///
/// Its salt and output are random bytes from the operating system, not the hash of anything:
/// making it costs no argon2 work, and finding a password that matches it is finding a preimage
/// of argon2. One per process, made at first use.
pub fn decoy_hash() -> &'static str {
    static DECOY: LazyLock<String> = LazyLock::new(|| {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
        let mut salt = [0u8; 16];
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        rng.fill_bytes(&mut salt);
        rng.fill_bytes(&mut out);
        let params = Params::default();
        // Fixed sizes within argon2's bounds: these cannot fail; should they, an empty decoy
        // would skip the work silently, so it is a panic (at first login, found by any test).
        let phc = PasswordHash {
            algorithm: Algorithm::default().ident(),
            version: Some(Version::default().into()),
            params: ParamsString::try_from(&params).expect("the default argon2 parameters"),
            salt: Some(Salt::new(&salt).expect("a 16-byte salt")),
            hash: Some(Output::new(&out).expect("a 32-byte output")),
        };
        phc.to_string()
    });
    &DECOY
}

/// Whether `secret` matches the argon2 hash `phc` (compared in constant time). A malformed hash
/// never matches (and costs no argon2 work).
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    if PasswordHash::new(phc).is_err() {
        return false;
    }
    let (secret, phc) = (secret.to_owned(), phc.to_owned());
    argon2(Argon2Op::Verify, move || {
        let check = || -> Option<bool> {
            let hash = PasswordHash::new(&phc).ok()?;
            let (salt, expected) = (hash.salt.as_ref()?, hash.hash.as_ref()?);
            let params = Params::try_from(&hash).ok()?;
            let algorithm = Algorithm::try_from(hash.algorithm.as_str()).ok()?;
            let version =
                Version::try_from(hash.version.unwrap_or(Version::default().into())).ok()?;
            let hasher = Argon2::new(algorithm, version, params.clone());
            let mut out = vec![0u8; expected.len()];
            argon2_into(secret.as_bytes(), salt, &hasher, &params, &mut out).ok()?;
            Some(Output::new(&out).ok()? == *expected)
        };
        check().unwrap_or(false)
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
    fn the_development_seal_key_is_recognised_however_it_is_given() {
        assert!(is_dev_seal_key(None));
        assert!(is_dev_seal_key(Some("  ")));
        assert!(is_dev_seal_key(Some(&B64.encode(DEV_SEAL_KEY))));
        assert!(is_dev_seal_key(Some(&format!(
            "k7:{}",
            B64.encode(DEV_SEAL_KEY)
        ))));
        assert!(!is_dev_seal_key(Some(&B64.encode([7u8; 32]))));
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
    fn hashes_agree_with_the_argon2_crates_own_hasher_and_verifier() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_secret(&mut StdRng::seed_from_u64(8), "right horse").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        assert!(
            Argon2::default()
                .verify_password(b"right horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong horse", &parsed)
                .is_err()
        );
        let theirs = Argon2::default()
            .hash_password_with_salt(b"right horse", b"0123456789abcdef")
            .expect("hash")
            .to_string();
        assert!(verify_secret("right horse", &theirs));
        assert!(!verify_secret("wrong horse", &theirs));
        // Non-default parameters (a stored hash from another configuration) still verify.
        let params = Params::new(8 * 1024, 1, 1, None).expect("params");
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(b"s3cret", b"fedcba9876543210")
            .expect("hash")
            .to_string();
        assert!(verify_secret("s3cret", &other));
        assert!(!verify_secret("s3cre7", &other));
    }

    #[test]
    fn the_decoy_hash_costs_a_real_verification_and_matches_nothing() {
        let decoy = decoy_hash();
        assert!(is_secret_hash(decoy), "{decoy}");
        assert_eq!(decoy, decoy_hash(), "one per process");
        // The parameters of a real hash: the same argon2 work to check.
        let real = hash_secret(&mut StdRng::seed_from_u64(7), "secret").expect("hash");
        let params =
            |phc: &str| Params::try_from(&PasswordHash::new(phc).expect("PHC")).expect("params");
        assert_eq!(params(decoy), params(&real));
        let before = argon2_seconds();
        for guess in ["", "secret", "password", "Portal2026pass"] {
            assert!(!verify_secret(guess, decoy), "{guess:?} matches the decoy");
        }
        assert!(argon2_seconds() > before, "checking the decoy ran argon2");
    }

    #[test]
    fn argon2_time_is_counted() {
        let before = argon2_seconds();
        hash_secret(&mut StdRng::seed_from_u64(4), "secret").expect("hash");
        assert!(argon2_seconds() > before);
    }

    #[tokio::test]
    async fn argon2_runs_inline_on_a_current_thread_runtime() {
        let h = hash_secret(&mut StdRng::seed_from_u64(6), "135790").expect("hash");
        assert!(verify_secret("135790", &h));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn argon2_runs_in_place_on_a_multi_thread_runtime() {
        let h = hash_secret(&mut StdRng::seed_from_u64(5), "654321").expect("hash");
        assert!(verify_secret("654321", &h));
        assert!(!verify_secret("654320", &h));
        // And in a task on a worker thread, and on a blocking thread (as the console does).
        let in_task = tokio::spawn({
            let h = h.clone();
            async move { verify_secret("654321", &h) }
        });
        assert!(in_task.await.expect("task"));
        let blocking = tokio::task::spawn_blocking(move || verify_secret("654321", &h));
        assert!(blocking.await.expect("blocking task"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fresh_secret_is_of_its_kind_and_its_hash_verifies_it() {
        let code = FreshSecret::make(SecretKind::Digits(6))
            .await
            .expect("made");
        assert_eq!(code.kind(), SecretKind::Digits(6));
        assert_eq!(code.clear().len(), 6);
        assert!(code.clear().bytes().all(|b| b.is_ascii_digit()));
        assert!(verify_secret(code.clear(), code.hash()));
        assert!(!code.hash().contains(code.clear()));
        assert!(
            !format!("{code:?}").contains(code.clear()),
            "Debug hides it"
        );
        let password = FreshSecret::make(SecretKind::Password).await.expect("made");
        assert_eq!(password.clear().len(), 10);
        assert!(verify_secret(password.clear(), password.hash()));
        let seeded = FreshSecret::make_with(SecretKind::Password, &mut StdRng::seed_from_u64(9))
            .expect("made");
        assert!(verify_secret(seeded.clear(), seeded.hash()));
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
