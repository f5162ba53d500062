//! Registration on the portal and the logins that go with it (contracts::registration):
//! by e-mail with an activation link (level `basic`), by EDS (level `high`), request/reply like
//! the cabinet.
//!
//! - E-mail: the form is checked (address, password rules), the account is kept with an argon2
//!   hash of the password, and an activation token (32 random bytes) goes to the e-mail worker
//!   sealed; only its SHA-256 is stored. Following the link activates the account once, before
//!   it expires. Registering an address that has an account sends the owner a note instead, and
//!   the portal gets the same answer either way (nobody learns which addresses are registered).
//!   The password is hashed, and at login checked, before the transaction (in `prepare`); the
//!   login's lock-out is still decided in it, under the throttle row's lock.
//! - EDS: a challenge (nonce and time, stored, single use, short-lived) is signed by the
//!   person's key; the certificate is validated against GosSUOK (chain to a configured root,
//!   validity, key usage, revocation) outside the transaction, the challenge is spent inside it
//!   under its row's lock (of two copies of one proof, however close, one wins), and the holder
//!   is registered (or linked to an account with the same identification number) or logged in
//!   at level `high`. A CA that cannot be reached is `try_later`, never a success.
//! - Replays: a proof over a challenge already spent is refused `challenge_used`, one past its
//!   time `challenge_expired`, one whose nonce this hub never issued (or forgot, a day after it
//!   expired) `challenge_unknown`. A challenge is bound to no one when issued; the signature
//!   binds it: made with another person's key, or over another challenge's bytes, it is
//!   `bad_signature`, and that failed attempt leaves the challenge to its holder.

use std::sync::Arc;
use std::time::Duration;

use adapters::Failure;
use adapters::gossuok::{Challenge, Checker};
use base64::Engine;
use chrono::{DateTime, Utc};
use contracts::cabinet::{CabinetOutcome, CabinetReply};
use contracts::person::mask_name;
use contracts::registration::{
    ActivateEmail, EdsProof, EmailPurpose, LogInByEds, LogInByEmail, RegisterByEds,
    RegisterByEmail, RequestEdsChallenge, SendEmail,
};
use contracts::sealed::Sealed;
use contracts::{Message, decode};
use futures_util::future::BoxFuture;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::cabinet::{Throttle, password_problems};
use crate::sessions::{self, Method};
use contracts::procedure::AssuranceLevel;
use hub_runtime::broker::Incoming;
use hub_runtime::engine::db_failure;
use hub_runtime::engine::{Command, Service};
use hub_runtime::secrets::{Sealer, decoy_hash, hash_secret, verify_secret};

/// The service's queue (short name).
pub const QUEUE: &str = "registration";

/// The refusal of a proof whose challenge was already answered: a replay.
pub const CHALLENGE_USED: &str = "challenge_used";
/// The refusal of a proof whose challenge's time has passed.
pub const CHALLENGE_EXPIRED: &str = "challenge_expired";
/// The refusal of a proof whose nonce this hub did not issue (or forgot, a day after it expired).
pub const CHALLENGE_UNKNOWN: &str = "challenge_unknown";

/// The queue and the requests it takes.
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        QUEUE,
        [
            RegisterByEmail::TYPE.to_string(),
            ActivateEmail::TYPE.to_string(),
            LogInByEmail::TYPE.to_string(),
            RequestEdsChallenge::TYPE.to_string(),
            LogInByEds::TYPE.to_string(),
            RegisterByEds::TYPE.to_string(),
        ],
    )
}

/// Limits.
#[derive(Debug, Clone)]
pub struct RegistrationSettings {
    /// How long an activation link works.
    pub activation_ttl: Duration,
    /// How long a challenge may be answered.
    pub challenge_ttl: Duration,
    /// The lock-out of e-mail logins (the same rules as the cabinet's).
    pub free_failures: i32,
    /// The first lock-out.
    pub first_lockout: Duration,
    /// The longest lock-out.
    pub max_lockout: Duration,
    /// How long a session lasts after the login (`HUB_SESSION_TTL`).
    pub session_ttl: Duration,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self {
            activation_ttl: Duration::from_secs(24 * 3600),
            challenge_ttl: Duration::from_secs(5 * 60),
            free_failures: 5,
            first_lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(24 * 3600),
            session_ttl: sessions::DEFAULT_TTL,
        }
    }
}

/// The registration service.
#[derive(Clone)]
pub struct Registration {
    sealer: Arc<Sealer>,
    settings: RegistrationSettings,
    pool: PgPool,
    eds: Option<Arc<Checker>>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("settings", &self.settings)
            .field("eds", &self.eds.is_some())
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// The service; without `eds` (no trusted root configured) EDS proofs are refused as
    /// `untrusted_chain`.
    pub fn new(
        sealer: Arc<Sealer>,
        settings: RegistrationSettings,
        pool: PgPool,
        eds: Option<Arc<Checker>>,
    ) -> Self {
        Self {
            sealer,
            settings,
            pool,
            eds,
        }
    }

    fn throttle(&self) -> Throttle {
        Throttle {
            free_failures: self.settings.free_failures,
            first_lockout: self.settings.first_lockout,
            max_lockout: self.settings.max_lockout,
        }
    }
}

/// The EDS holder a valid proof names.
#[derive(Debug)]
pub struct Holder {
    identification_number: String,
    surname: String,
    given_name: String,
    serial: String,
    nonce: String,
}

/// What an EDS proof came to, before the challenge is spent.
#[derive(Debug)]
pub enum Proof {
    /// Valid: the holder.
    Valid(Holder),
    /// Refused, with the reason code.
    Refused(String),
    /// Not decidable now.
    TryLater(String),
}

/// What a valid registration form needs stored and sent, made before the transaction.
pub struct EmailSecrets {
    hash: String,
    token: String,
    sealed: Sealed,
}

impl std::fmt::Debug for EmailSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailSecrets(..)")
    }
}

/// An e-mail login's password as checked before the transaction, against `hash`.
pub struct CheckedPassword {
    hash: String,
    holds: bool,
}

impl std::fmt::Debug for CheckedPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedPassword")
            .field("holds", &self.holds)
            .finish_non_exhaustive()
    }
}

/// A decoded request (with the EDS proof already checked).
#[derive(Debug)]
pub enum Request {
    /// Registration form: its secrets, or what is wrong with it.
    Email(RegisterByEmail, Result<EmailSecrets, Vec<String>>),
    /// Activation link followed.
    Activate(ActivateEmail),
    /// E-mail login, with the password checked if the address has one and is not locked out.
    LogInEmail(LogInByEmail, Option<CheckedPassword>),
    /// A challenge, please.
    Challenge,
    /// EDS login.
    LogInEds(Proof),
    /// EDS registration.
    RegisterEds(Proof),
}

impl Service for Registration {
    type Prepared = Request;

    fn name(&self) -> &'static str {
        "registration"
    }

    fn prepare<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Request, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            let b = &message.body;
            Ok(if RegisterByEmail::TYPE.matches(t) {
                let r: RegisterByEmail = decode(t, b)?;
                let problems = form_problems(&r);
                let secrets = if problems.is_empty() {
                    Ok(self.email_secrets(&r)?)
                } else {
                    Err(problems)
                };
                Request::Email(r, secrets)
            } else if ActivateEmail::TYPE.matches(t) {
                Request::Activate(decode(t, b)?)
            } else if LogInByEmail::TYPE.matches(t) {
                let r: LogInByEmail = decode(t, b)?;
                let checked = self.check_password(&r).await?;
                Request::LogInEmail(r, checked)
            } else if RequestEdsChallenge::TYPE.matches(t) {
                let _: RequestEdsChallenge = decode(t, b)?;
                Request::Challenge
            } else if LogInByEds::TYPE.matches(t) {
                let r: LogInByEds = decode(t, b)?;
                Request::LogInEds(self.check_proof(&r.proof).await?)
            } else if RegisterByEds::TYPE.matches(t) {
                let r: RegisterByEds = decode(t, b)?;
                Request::RegisterEds(self.check_proof(&r.proof).await?)
            } else {
                return Err(Failure::invalid_input(format!(
                    "the registration service does not take {t}"
                )));
            })
        })
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        _message: &'a Incoming,
        request: Request,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move {
            let mut extra = Vec::new();
            let outcome = match request {
                Request::Email(r, secrets) => {
                    self.register_email(conn, &r, secrets, &mut extra).await?
                }
                Request::Activate(r) => activate(conn, &r).await.map_err(|e| db_failure(&e))?,
                Request::LogInEmail(r, checked) => self
                    .log_in_email(conn, &r, checked)
                    .await
                    .map_err(|e| db_failure(&e))?,
                Request::Challenge => self.challenge(conn).await.map_err(|e| db_failure(&e))?,
                Request::LogInEds(p) => {
                    self.eds(conn, p, false).await.map_err(|e| db_failure(&e))?
                }
                Request::RegisterEds(p) => {
                    self.eds(conn, p, true).await.map_err(|e| db_failure(&e))?
                }
            };
            let mut answers = vec![Command::new(&CabinetReply { outcome })?];
            answers.extend(extra);
            Ok(answers)
        })
    }
}

const BASIC: &str = "basic";
const HIGH: &str = "high";

fn ok(level: &str) -> CabinetOutcome {
    CabinetOutcome::Ok {
        assurance_level: level.into(),
        session_token: None,
    }
}

/// The address as the login: trimmed and lower-cased.
fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// What is wrong with an address, if anything (a plain syntactic check: the mail server has the
/// last word, and the activation link proves the address).
pub fn email_problems(email: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && email
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !"<>()[]\\,;:\"".contains(c))
        });
    if !valid {
        problems.push("email: not an e-mail address (name@domain.by)".to_owned());
    }
    problems
}

/// What is wrong with a registration form (empty: nothing).
fn form_problems(r: &RegisterByEmail) -> Vec<String> {
    let mut problems = email_problems(&normalise_email(&r.email));
    problems.extend(
        password_problems(&r.password, "", None)
            .into_iter()
            .map(|p| format!("password: {p}")),
    );
    for (field, value) in [("surname", &r.surname), ("given_name", &r.given_name)] {
        let len = value.trim().chars().count();
        if !(1..=100).contains(&len) {
            problems.push(format!("{field}: 1 to 100 characters"));
        }
    }
    problems
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Registration {
    /// The password's hash and the activation token of a valid form, made whatever the outcome:
    /// the answer takes as long for a registered address as for a new one. (The thread's RNG
    /// must not live across awaits.)
    fn email_secrets(&self, r: &RegisterByEmail) -> Result<EmailSecrets, Failure> {
        let mut rng = rand::rng();
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let sealed = self.sealer.seal(&mut rng, &token)?;
        Ok(EmailSecrets {
            hash: hash_secret(&mut rng, &r.password)?,
            token,
            sealed,
        })
    }

    async fn register_email(
        &self,
        conn: &mut PgConnection,
        r: &RegisterByEmail,
        secrets: Result<EmailSecrets, Vec<String>>,
        extra: &mut Vec<Command>,
    ) -> Result<CabinetOutcome, Failure> {
        let email = normalise_email(&r.email);
        let EmailSecrets {
            hash,
            token,
            sealed,
        } = match secrets {
            Ok(secrets) => secrets,
            Err(problems) => return Ok(CabinetOutcome::InvalidForm { problems }),
        };
        let db = |e: sqlx::Error| db_failure(&e);
        let existing: Option<(Uuid, Option<DateTime<Utc>>)> =
            sqlx::query_as("SELECT id, activated_at FROM portal_users WHERE email = $1 FOR UPDATE")
                .bind(&email)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
        let name = r.given_name.trim().to_owned();
        if let Some((_, Some(_))) = existing {
            // The owner learns someone tried; the portal's answer is the same as for a new one.
            extra.push(
                Command::new(&SendEmail {
                    purpose: EmailPurpose::AlreadyRegistered,
                    to: email.clone(),
                    name,
                    token: None,
                })?
                .detach(),
            );
            return Ok(CabinetOutcome::ActivationSent);
        }
        let id = match existing {
            // Registered before but never activated: the new form replaces the old one.
            Some((id, None)) => {
                sqlx::query(
                    "UPDATE portal_users SET password_hash = $2, surname = $3, given_name = $4,
                     updated_at = now() WHERE id = $1",
                )
                .bind(id)
                .bind(&hash)
                .bind(r.surname.trim())
                .bind(r.given_name.trim())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
                id
            }
            _ => {
                let id = Uuid::new_v4();
                sqlx::query(
                    "INSERT INTO portal_users (id, email, password_hash, assurance_level, surname,
                     given_name) VALUES ($1, $2, $3, 'basic', $4, $5)",
                )
                .bind(id)
                .bind(&email)
                .bind(&hash)
                .bind(r.surname.trim())
                .bind(r.given_name.trim())
                .execute(&mut *conn)
                .await
                .map_err(db)?;
                id
            }
        };
        let expires_at = Utc::now() + self.settings.activation_ttl;
        sqlx::query(
            "INSERT INTO email_activations (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash(&token))
        .bind(id)
        .bind(expires_at)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        extra.push(
            Command::new(&SendEmail {
                purpose: EmailPurpose::Activation,
                to: email,
                name,
                token: Some(sealed),
            })?
            .detach(),
        );
        tracing::info!(user = %id, "registration by e-mail: activation link sent");
        Ok(CabinetOutcome::ActivationSent)
    }

    /// Outside the transaction: checks the password against the address's hash, unless its
    /// logins are locked out now (no argon2 work then, for a known address as for an unknown
    /// one). An address with no account, or with no password (registered by EDS), is checked
    /// against the decoy and answers `None`: the refusal costs the argon2 work a password's
    /// does, so its time does not tell which addresses are registered.
    async fn check_password(&self, r: &LogInByEmail) -> Result<Option<CheckedPassword>, Failure> {
        let email = normalise_email(&r.email);
        let locked: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM login_throttle WHERE identifier = $1 AND locked_until > $2)",
        )
        .bind(format!("email:{email}"))
        .bind(Utc::now())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_failure(&e))?;
        if locked {
            return Ok(None);
        }
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM portal_users WHERE email = $1")
                .bind(&email)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| db_failure(&e))?;
        let Some(hash) = hash.flatten() else {
            verify_secret(&r.password, decoy_hash());
            return Ok(None);
        };
        Ok(Some(CheckedPassword {
            holds: verify_secret(&r.password, &hash),
            hash,
        }))
    }

    /// Decides the login under the throttle row's lock, with the password checked before the
    /// transaction; the answer counts only if the attempt is not locked out now, and each
    /// failure is counted before the next attempt is decided, as if checked here.
    async fn log_in_email(
        &self,
        conn: &mut PgConnection,
        r: &LogInByEmail,
        checked: Option<CheckedPassword>,
    ) -> Result<CabinetOutcome, sqlx::Error> {
        let email = normalise_email(&r.email);
        let key = format!("email:{email}");
        let throttle = self.throttle();
        if let Some(until) = throttle.locked(conn, &key).await? {
            return Ok(CabinetOutcome::LockedOut { until });
        }
        type Row = (Option<String>, Option<DateTime<Utc>>, Uuid, Option<String>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT password_hash, activated_at, id, identification_number FROM portal_users
             WHERE email = $1",
        )
        .bind(&email)
        .fetch_optional(&mut *conn)
        .await?;
        let holds = match row.as_ref().and_then(|(hash, ..)| hash.as_deref()) {
            None => false,
            Some(h) => match &checked {
                Some(c) if c.hash == h => c.holds,
                // Not checked before (locked out then, or no hash yet), or the password changed
                // since: checked here.
                _ => verify_secret(&r.password, h),
            },
        };
        if !holds {
            return throttle
                .fail(conn, &key, CabinetOutcome::WrongCredentials)
                .await;
        }
        throttle.succeed(conn, &key).await?;
        Ok(match row {
            Some((_, Some(_), user, identification_number)) => {
                // An e-mail account has no identification number (unless one was linked): its
                // sessions name the account.
                let identifier = identification_number
                    .unwrap_or_else(|| sessions::email_account_identifier(user));
                let token = sessions::open(
                    conn,
                    &identifier,
                    AssuranceLevel::Basic,
                    Method::Email,
                    self.settings.session_ttl,
                )
                .await?;
                CabinetOutcome::Ok {
                    assurance_level: BASIC.into(),
                    session_token: Some(token),
                }
            }
            _ => CabinetOutcome::NotActivated,
        })
    }

    async fn challenge(&self, conn: &mut PgConnection) -> Result<CabinetOutcome, sqlx::Error> {
        let mut nonce = [0u8; 32];
        rand::rng().fill_bytes(&mut nonce);
        let issued_at = Utc::now();
        let expires_at = issued_at + self.settings.challenge_ttl;
        let challenge = Challenge { nonce, issued_at };
        let hex_nonce = hex::encode(nonce);
        sqlx::query(
            "INSERT INTO eds_challenges (nonce, issued_at, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(&hex_nonce)
        .bind(issued_at)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?;
        // Spent and expired challenges are of no further use.
        sqlx::query("DELETE FROM eds_challenges WHERE expires_at < now() - interval '1 day'")
            .execute(&mut *conn)
            .await?;
        Ok(CabinetOutcome::EdsChallenge {
            nonce: hex_nonce,
            to_sign: base64::engine::general_purpose::STANDARD.encode(challenge.to_signed_bytes()),
            expires_at,
        })
    }

    /// Checks an EDS proof: the challenge is known, the certificate valid, the signature over the
    /// challenge made with its key. Outside the transaction (GosSUOK may be called).
    async fn check_proof(&self, proof: &EdsProof) -> Result<Proof, Failure> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let refused = |reason: &str| Ok(Proof::Refused(reason.to_owned()));
        let (Ok(leaf), Ok(signature)) =
            (b64.decode(&proof.certificate), b64.decode(&proof.signature))
        else {
            return refused("malformed");
        };
        let Ok(chain) = proof
            .chain
            .iter()
            .map(|c| b64.decode(c))
            .collect::<Result<Vec<_>, _>>()
        else {
            return refused("malformed");
        };
        let Some(nonce) = hex::decode(&proof.nonce)
            .ok()
            .and_then(|n| <[u8; 32]>::try_from(n).ok())
        else {
            return refused(CHALLENGE_UNKNOWN);
        };
        let challenge: Option<(DateTime<Utc>, bool, bool)> = sqlx::query_as(
            "SELECT issued_at, used_at IS NOT NULL, expires_at <= now() FROM eds_challenges
             WHERE nonce = $1",
        )
        .bind(&proof.nonce)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_failure(&e))?;
        let issued_at = match challenge {
            None => return refused(CHALLENGE_UNKNOWN),
            Some((_, true, _)) => {
                tracing::warn!(
                    nonce = %short(&proof.nonce),
                    "EDS proof refused: its challenge was already used (a replay)"
                );
                return refused(CHALLENGE_USED);
            }
            Some((_, false, true)) => return refused(CHALLENGE_EXPIRED),
            Some((issued_at, false, false)) => issued_at,
        };
        let Some(checker) = &self.eds else {
            return refused("untrusted_chain");
        };
        let now = Utc::now();
        let cert = match checker.check(&leaf, &chain, now).await {
            Ok(c) => c,
            Err(invalid) if invalid.is_transient() => {
                tracing::warn!(reason = %invalid, "EDS status unknown: the CA did not answer");
                return Ok(Proof::TryLater(invalid.reason_code().to_owned()));
            }
            Err(invalid) => {
                tracing::info!(reason = %invalid, "EDS proof refused");
                return refused(invalid.reason_code());
            }
        };
        let challenge = Challenge { nonce, issued_at };
        if let Err(invalid) = challenge.verify(&cert, &signature, now, self.settings.challenge_ttl)
        {
            return refused(invalid.reason_code());
        }
        Ok(Proof::Valid(Holder {
            identification_number: cert.identification_number.clone(),
            surname: cert.surname.clone(),
            given_name: cert.given_name.clone(),
            serial: cert.serial.clone(),
            nonce: proof.nonce.clone(),
        }))
    }
}

async fn activate(
    conn: &mut PgConnection,
    r: &ActivateEmail,
) -> Result<CabinetOutcome, sqlx::Error> {
    let user: Option<Uuid> = sqlx::query_scalar(
        "UPDATE email_activations SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING user_id",
    )
    .bind(token_hash(r.token.trim()))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(user) = user else {
        return Ok(CabinetOutcome::ActivationInvalid);
    };
    sqlx::query(
        "UPDATE portal_users SET activated_at = coalesce(activated_at, now()), updated_at = now()
         WHERE id = $1",
    )
    .bind(user)
    .execute(&mut *conn)
    .await?;
    tracing::info!(%user, "registration by e-mail: activated");
    Ok(ok(BASIC))
}

impl Registration {
    /// Spends the challenge, then registers (or links) or logs in the holder; either opens a
    /// session at level `high` (a registration proves the key as a login does).
    async fn eds(
        &self,
        conn: &mut PgConnection,
        proof: Proof,
        register: bool,
    ) -> Result<CabinetOutcome, sqlx::Error> {
        let holder = match proof {
            Proof::Valid(h) => h,
            Proof::Refused(reason) => return Ok(CabinetOutcome::EdsRefused { reason }),
            Proof::TryLater(reason) => return Ok(CabinetOutcome::TryLater { reason }),
        };
        let spent = sqlx::query(
            "UPDATE eds_challenges SET used_at = now()
         WHERE nonce = $1 AND used_at IS NULL AND expires_at > now()",
        )
        .bind(&holder.nonce)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if spent == 0 {
            // Another copy of the proof spent it first (a replay), or it expired meanwhile.
            let used: Option<bool> = sqlx::query_scalar(
                "SELECT used_at IS NOT NULL FROM eds_challenges WHERE nonce = $1",
            )
            .bind(&holder.nonce)
            .fetch_optional(&mut *conn)
            .await?;
            let reason = match used {
                Some(true) => {
                    tracing::warn!(
                        nonce = %short(&holder.nonce),
                        "EDS proof refused: its challenge was spent by another copy (a replay)"
                    );
                    CHALLENGE_USED
                }
                Some(false) => CHALLENGE_EXPIRED,
                None => CHALLENGE_UNKNOWN,
            };
            return Ok(CabinetOutcome::EdsRefused {
                reason: reason.into(),
            });
        }
        if register {
            let linked: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE identifier = $1)")
                    .bind(&holder.identification_number)
                    .fetch_one(&mut *conn)
                    .await?;
            sqlx::query(
            "INSERT INTO portal_users (id, identification_number, eds_serial, linked_identifier,
             assurance_level, surname, given_name)
             VALUES ($1, $2, $3, $4, 'high', $5, $6)
             ON CONFLICT (identification_number) DO UPDATE SET eds_serial = EXCLUDED.eds_serial,
               linked_identifier = EXCLUDED.linked_identifier, assurance_level = 'high',
               updated_at = now()",
        )
        .bind(Uuid::new_v4())
        .bind(&holder.identification_number)
        .bind(&holder.serial)
        .bind(linked)
        .bind(&holder.surname)
        .bind(&holder.given_name)
        .execute(&mut *conn)
        .await?;
            tracing::info!(
                holder = %mask_name(&holder.surname),
                linked,
                "registration by EDS"
            );
            return self.eds_session(conn, &holder).await;
        }
        let known = sqlx::query(
            "UPDATE portal_users SET eds_serial = $2, updated_at = now()
         WHERE identification_number = $1",
        )
        .bind(&holder.identification_number)
        .bind(&holder.serial)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if known == 0 {
            return Ok(CabinetOutcome::NotRegistered);
        }
        self.eds_session(conn, &holder).await
    }

    /// A session at level `high` for the EDS holder, named by the certificate's identification
    /// number (the identifier of a linked account).
    async fn eds_session(
        &self,
        conn: &mut PgConnection,
        holder: &Holder,
    ) -> Result<CabinetOutcome, sqlx::Error> {
        // A blocked identifier opens no session, by EDS either (its sessions ended with the
        // block). The row's share lock orders this against a block in progress, which holds it
        // for update: a session opened first is ended by the block.
        let blocked: Option<bool> =
            sqlx::query_scalar("SELECT blocked FROM accounts WHERE identifier = $1 FOR SHARE")
                .bind(&holder.identification_number)
                .fetch_optional(&mut *conn)
                .await?;
        if blocked == Some(true) {
            return Ok(CabinetOutcome::Blocked);
        }
        let token = sessions::open(
            conn,
            &holder.identification_number,
            AssuranceLevel::High,
            Method::Eds,
            self.settings.session_ttl,
        )
        .await?;
        Ok(CabinetOutcome::Ok {
            assurance_level: HIGH.into(),
            session_token: Some(token),
        })
    }
}

/// The first characters of a nonce, enough to find it in the table from a log line.
fn short(nonce: &str) -> &str {
    nonce.get(..8).unwrap_or(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_checked_plainly() {
        assert!(email_problems("ivan.petrov@mail.by").is_empty());
        for bad in [
            "",
            "ivan",
            "ivan@",
            "@mail.by",
            "ivan@mail",
            "ivan@@mail.by",
            "iv an@mail.by",
            "ivan@.by",
            "ivan@mail.by.",
        ] {
            assert_eq!(email_problems(bad).len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn only_the_hash_of_a_token_is_kept() {
        let h = token_hash("abc");
        assert_eq!(h.len(), 64);
        assert_ne!(h, "abc");
        assert_eq!(h, token_hash("abc"));
    }
}
