//! The personal cabinet's account operations, answered over the broker (request/reply): log in,
//! replace the temporary password, change the password, recover a lost one by an SMS code, block
//! the identifier oneself, and unblock it again by an SMS code with a new password.
//!
//! Rules:
//! - passwords and codes are checked against argon2 hashes; none is stored or logged in clear;
//! - failures count per identifier *as typed*, known or not, and lock attempts out for a time
//!   that doubles with each further failure, so the answers never tell whether an identifier
//!   exists to someone who has not proved they hold it; nor does their time: an unknown
//!   identifier's password is checked against a decoy hash ([`decoy_hash`]), the same argon2
//!   work as a known one's;
//! - each request runs in one transaction that locks the identifier's throttle row, so parallel
//!   guesses are serialised and counted;
//! - new passwords and recovery codes are hashed before that transaction (in `prepare`), so it
//!   holds its locks only for the check of the password or code;
//! - recovery is also limited per phone number ([`PhoneLimits`]): at most
//!   `HUB_RECOVERY_CODES_PER_PHONE` codes to one number in a window, whichever identifiers they
//!   were asked for, and wrong codes count against the number the code went to as well as the
//!   identifier, in the same count as the sagas' wrong phone codes; over `HUB_WRONG_CODES_PER_PHONE`
//!   no code is sent to the number, and none checked, until the window moves on. A request held
//!   back gets the same `code_sent_if_known` as any other, so the limits tell nobody who exists.
//!
//! Logging in is limited per identifier only: an identifier has exactly one phone, so the
//! identifier's count is the phone's.
//!
//! Unblocking (`cabinet.unblock.v1`, then `cabinet.complete_unblock.v1`) is the recovery's
//! two steps over a blocked identifier: the code goes to the phone the registry holds now, only
//! when the phone given is that one and the identifier is blocked (else the same
//! `code_sent_if_known`); the code and a new static password unblock it, all history kept. Its
//! codes are counted with the recovery codes against the phone's limits.
//!
//! A login opens a session ([`crate::sessions`]) and answers its token; `cabinet.logout.v1` ends
//! it; a password change, a recovery and a self-service block end every session of the
//! identifier, in the same transaction.

use std::sync::Arc;
use std::time::Duration;

use adapters::Failure;
use chrono::{DateTime, Utc};
use contracts::cabinet::{
    BlockSelf, CabinetOutcome, CabinetReply, ChangePassword, CompleteRecovery, CompleteUnblock,
    LogIn, LogOut, RecoverPassword, UnblockSelf,
};
use contracts::person::Msisdn;
use contracts::procedure::AssuranceLevel;
use contracts::sealed::Sealed;
use contracts::sms::{SendSms, SmsPurpose};
use contracts::{Message, decode};
use futures_util::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::external::sms::worker::{PhoneEvent, PhoneKey, PhoneLimits};
use crate::metrics::portal_metrics;
use crate::sessions;
use hub_runtime::broker::Incoming;
use hub_runtime::engine::db_failure;
use hub_runtime::engine::{Command, Service};
use hub_runtime::secrets::{Sealer, decoy_hash, hash_secret, random_digits, verify_secret};

/// The cabinet's queue (short name).
pub const QUEUE: &str = "cabinet";

/// The queue and the requests it takes.
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        QUEUE,
        [
            LogIn::TYPE.to_string(),
            ChangePassword::TYPE.to_string(),
            RecoverPassword::TYPE.to_string(),
            CompleteRecovery::TYPE.to_string(),
            BlockSelf::TYPE.to_string(),
            LogOut::TYPE.to_string(),
            UnblockSelf::TYPE.to_string(),
            CompleteUnblock::TYPE.to_string(),
        ],
    )
}

/// Limits and texts.
#[derive(Debug, Clone)]
pub struct CabinetSettings {
    /// Failures answered plainly; the next one starts a lock-out.
    pub free_failures: i32,
    /// The first lock-out; each further failure doubles it.
    pub first_lockout: Duration,
    /// The longest lock-out.
    pub max_lockout: Duration,
    /// How long a recovery code is valid.
    pub recovery_code_ttl: Duration,
    /// Wrong recovery codes accepted before the code is void.
    pub recovery_attempts: i32,
    /// Shortest time between two recovery codes for one identifier.
    pub recovery_interval: Duration,
    /// The recovery SMS; `{code}` is replaced.
    pub recovery_text: String,
    /// The unblock SMS; `{code}` is replaced.
    pub unblock_text: String,
    /// How long a session lasts after the login (`HUB_SESSION_TTL`).
    pub session_ttl: Duration,
}

impl Default for CabinetSettings {
    fn default() -> Self {
        Self {
            free_failures: 5,
            first_lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(24 * 3600),
            recovery_code_ttl: Duration::from_secs(10 * 60),
            recovery_attempts: 3,
            recovery_interval: Duration::from_secs(60),
            recovery_text: "Код для восстановления пароля: {code}. Никому его не сообщайте.".into(),
            unblock_text: "Код для разблокировки идентификатора: {code}. Никому его не сообщайте."
                .into(),
            session_ttl: sessions::DEFAULT_TTL,
        }
    }
}

/// The cabinet service.
#[derive(Debug, Clone)]
pub struct Cabinet {
    sealer: Arc<Sealer>,
    settings: CabinetSettings,
    limits: PhoneLimits,
}

impl Cabinet {
    /// The service with the hub's sealing key, its settings and the per-phone limits (the same
    /// as the SMS worker's, so both count one phone alike).
    pub fn new(sealer: Arc<Sealer>, settings: CabinetSettings, limits: PhoneLimits) -> Self {
        Self {
            sealer,
            settings,
            limits,
        }
    }
}

/// A decoded request, with what it may store hashed already.
#[derive(Debug)]
pub enum Request {
    /// Log in.
    LogIn(LogIn),
    /// Change the password.
    Change(ChangePassword, NewPassword),
    /// Start a recovery, with the code it would send (`None` if making it failed).
    Recover(RecoverPassword, Option<RecoveryCode>),
    /// Finish a recovery.
    Complete(CompleteRecovery, NewPassword),
    /// Block oneself.
    Block(BlockSelf),
    /// Start an unblock, with the code it would send.
    Unblock(UnblockSelf, Option<RecoveryCode>),
    /// Finish an unblock.
    CompleteUnblock(CompleteUnblock, NewPassword),
    /// End a session.
    LogOut(LogOut),
}

/// A new password, checked against the rules and hashed before the transaction.
pub enum NewPassword {
    /// It breaks the rules: what is wrong.
    Weak(Vec<String>),
    /// Its argon2 hash, or why hashing failed.
    Hashed(Result<String, Failure>),
}

impl NewPassword {
    fn new(new: &str, id: &str, current: Option<&str>) -> Self {
        let problems = password_problems(new, id, current);
        if problems.is_empty() {
            Self::Hashed(hash_secret(&mut rand::rng(), new))
        } else {
            Self::Weak(problems)
        }
    }

    /// The hash to store, or the answer when the password breaks the rules.
    fn hash(self) -> Result<Result<String, CabinetOutcome>, sqlx::Error> {
        match self {
            Self::Weak(problems) => Ok(Err(CabinetOutcome::WeakPassword { problems })),
            Self::Hashed(hash) => hash.map(Ok).map_err(|f| sqlx::Error::Protocol(f.reason)),
        }
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Weak(problems) => f.debug_tuple("Weak").field(problems).finish(),
            Self::Hashed(_) => f.write_str("Hashed(..)"),
        }
    }
}

/// A recovery code made before the transaction: its hash and the sealed SMS text.
pub struct RecoveryCode {
    hash: String,
    text: Sealed,
}

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(..)")
    }
}

const LEVEL: &str = "substantial";

fn ok() -> CabinetOutcome {
    CabinetOutcome::Ok {
        assurance_level: LEVEL.into(),
        session_token: None,
    }
}

/// `cabinet.logout.v1`: ends the session; `ok` with its level, or with an empty level when it was
/// not open (unknown, expired, ended before).
async fn log_out(conn: &mut PgConnection, r: &LogOut) -> Result<CabinetOutcome, sqlx::Error> {
    let level = sessions::end(conn, &r.session_token).await?;
    Ok(CabinetOutcome::Ok {
        assurance_level: level.map_or("", sessions::level_str).into(),
        session_token: None,
    })
}

struct Account {
    password_hash: String,
    must_change_password: bool,
    temporary_expires_at: Option<DateTime<Utc>>,
    blocked: bool,
}

impl Service for Cabinet {
    type Prepared = Request;

    fn name(&self) -> &'static str {
        "cabinet"
    }

    fn prepare<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Request, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            let b = &message.body;
            Ok(if LogIn::TYPE.matches(t) {
                Request::LogIn(decode(t, b)?)
            } else if ChangePassword::TYPE.matches(t) {
                let r: ChangePassword = decode(t, b)?;
                let id = normalise(&r.identifier);
                let new = NewPassword::new(&r.new_password, &id, Some(&r.current_password));
                Request::Change(r, new)
            } else if RecoverPassword::TYPE.matches(t) {
                // Made whether or not it is sent: the answer takes as long either way.
                Request::Recover(decode(t, b)?, self.code(CodeFlow::Recovery))
            } else if CompleteRecovery::TYPE.matches(t) {
                let r: CompleteRecovery = decode(t, b)?;
                let new = NewPassword::new(&r.new_password, &normalise(&r.identifier), None);
                Request::Complete(r, new)
            } else if BlockSelf::TYPE.matches(t) {
                Request::Block(decode(t, b)?)
            } else if UnblockSelf::TYPE.matches(t) {
                Request::Unblock(decode(t, b)?, self.code(CodeFlow::Unblock))
            } else if CompleteUnblock::TYPE.matches(t) {
                let r: CompleteUnblock = decode(t, b)?;
                let new = NewPassword::new(&r.new_password, &normalise(&r.identifier), None);
                Request::CompleteUnblock(r, new)
            } else if LogOut::TYPE.matches(t) {
                Request::LogOut(decode(t, b)?)
            } else {
                return Err(Failure::invalid_input(format!(
                    "the cabinet does not take {t}"
                )));
            })
        })
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        message: &'a Incoming,
        request: Request,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move {
            let mut extra = Vec::new();
            let cause = message.metadata.message_id;
            let outcome = match request {
                Request::LogIn(r) => self.log_in(conn, &r).await,
                Request::Change(r, new) => self.change(conn, &r, new).await,
                Request::Recover(r, code) => {
                    let ask = CodeRequest {
                        identifier: &r.identifier,
                        phone: &r.phone,
                    };
                    self.send_code(conn, CodeFlow::Recovery, ask, code, cause, &mut extra)
                        .await
                }
                Request::Complete(r, new) => {
                    let typed = CodeTyped {
                        identifier: &r.identifier,
                        code: &r.code,
                    };
                    self.complete(conn, CodeFlow::Recovery, typed, new, cause)
                        .await
                }
                Request::Unblock(r, code) => {
                    let ask = CodeRequest {
                        identifier: &r.identifier,
                        phone: &r.phone,
                    };
                    self.send_code(conn, CodeFlow::Unblock, ask, code, cause, &mut extra)
                        .await
                }
                Request::CompleteUnblock(r, new) => {
                    let typed = CodeTyped {
                        identifier: &r.identifier,
                        code: &r.code,
                    };
                    self.complete(conn, CodeFlow::Unblock, typed, new, cause)
                        .await
                }
                Request::Block(r) => self.block(conn, &r).await,
                Request::LogOut(r) => log_out(conn, &r).await,
            }
            .map_err(|e| db_failure(&e))?;
            let mut answers = vec![Command::new(&CabinetReply { outcome })?];
            answers.extend(extra);
            Ok(answers)
        })
    }
}

fn normalise(identifier: &str) -> String {
    identifier.trim().to_uppercase()
}

/// The doubling lock-out after repeated failed logins, per login name (`login_throttle`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Throttle {
    /// Failures answered plainly; the next one starts a lock-out.
    pub(crate) free_failures: i32,
    /// The first lock-out; each further failure doubles it.
    pub(crate) first_lockout: Duration,
    /// The longest lock-out.
    pub(crate) max_lockout: Duration,
}

impl Throttle {
    /// Locks the throttle row; returns the lock-out end if attempts are locked out now.
    pub(crate) async fn locked(
        &self,
        conn: &mut PgConnection,
        id: &str,
    ) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        sqlx::query("INSERT INTO login_throttle (identifier) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        let until: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT locked_until FROM login_throttle WHERE identifier = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        Ok(until.filter(|u| *u > Utc::now()))
    }

    /// Counts a failure; the answer is `wrong` unless this failure starts a lock-out.
    pub(crate) async fn fail(
        &self,
        conn: &mut PgConnection,
        id: &str,
        wrong: CabinetOutcome,
    ) -> Result<CabinetOutcome, sqlx::Error> {
        let failures: i32 = sqlx::query_scalar(
            "UPDATE login_throttle SET failures = failures + 1, updated_at = now()
             WHERE identifier = $1 RETURNING failures",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        let over = failures - self.free_failures;
        if over <= 0 {
            return Ok(wrong);
        }
        let factor = 2u32.saturating_pow((over - 1).unsigned_abs().min(20));
        let lockout = self
            .first_lockout
            .saturating_mul(factor)
            .min(self.max_lockout);
        let until = Utc::now() + lockout;
        sqlx::query("UPDATE login_throttle SET locked_until = $2 WHERE identifier = $1")
            .bind(id)
            .bind(until)
            .execute(&mut *conn)
            .await?;
        Ok(CabinetOutcome::LockedOut { until })
    }

    pub(crate) async fn succeed(
        &self,
        conn: &mut PgConnection,
        id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE login_throttle SET failures = 0, locked_until = NULL, updated_at = now()
             WHERE identifier = $1",
        )
        .bind(id)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    }
}

impl Cabinet {
    fn throttle(&self) -> Throttle {
        Throttle {
            free_failures: self.settings.free_failures,
            first_lockout: self.settings.first_lockout,
            max_lockout: self.settings.max_lockout,
        }
    }

    async fn account(
        &self,
        conn: &mut PgConnection,
        id: &str,
    ) -> Result<Option<Account>, sqlx::Error> {
        let row: Option<(String, bool, Option<DateTime<Utc>>, bool)> = sqlx::query_as(
            "SELECT password_hash, must_change_password, temporary_expires_at, blocked
             FROM accounts WHERE identifier = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(row.map(
            |(password_hash, must_change_password, temporary_expires_at, blocked)| Account {
                password_hash,
                must_change_password,
                temporary_expires_at,
                blocked,
            },
        ))
    }

    /// A fresh recovery (or unblock) code: its hash and the SMS that carries it.
    fn code(&self, flow: CodeFlow) -> Option<RecoveryCode> {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
        let code = random_digits(&mut rng, 6);
        let template = match flow {
            CodeFlow::Recovery => &self.settings.recovery_text,
            CodeFlow::Unblock => &self.settings.unblock_text,
        };
        let (Ok(hash), Ok(text)) = (
            hash_secret(&mut rng, &code),
            self.sealer
                .seal(&mut rng, &template.replace("{code}", &code)),
        ) else {
            return None;
        };
        Some(RecoveryCode { hash, text })
    }

    /// Checks the password; `Err(outcome)` is the answer when it does not hold. The check stays
    /// in the transaction, under the throttle row's lock, so parallel guesses are counted one by
    /// one; the service has no database access of its own to check it before.
    async fn authenticate(
        &self,
        conn: &mut PgConnection,
        id: &str,
        password: &str,
    ) -> Result<Result<Account, CabinetOutcome>, sqlx::Error> {
        if let Some(until) = self.throttle().locked(conn, id).await? {
            return Ok(Err(CabinetOutcome::LockedOut { until }));
        }
        let account = self.account(conn, id).await?;
        // An unknown identifier is checked against the decoy: the refusal costs the argon2 work
        // a known one's does, so its time does not tell who has an account.
        let hash = account
            .as_ref()
            .map_or(decoy_hash(), |a| a.password_hash.as_str());
        let holds = verify_secret(password, hash) && account.is_some();
        let Some(account) = account.filter(|_| holds) else {
            return Ok(Err(self
                .throttle()
                .fail(conn, id, CabinetOutcome::WrongCredentials)
                .await?));
        };
        self.throttle().succeed(conn, id).await?;
        if account.blocked {
            return Ok(Err(CabinetOutcome::Blocked));
        }
        if account.must_change_password
            && account
                .temporary_expires_at
                .is_some_and(|t| t <= Utc::now())
        {
            return Ok(Err(CabinetOutcome::TemporaryPasswordExpired));
        }
        Ok(Ok(account))
    }

    async fn log_in(
        &self,
        conn: &mut PgConnection,
        r: &LogIn,
    ) -> Result<CabinetOutcome, sqlx::Error> {
        let id = normalise(&r.identifier);
        Ok(match self.authenticate(conn, &id, &r.password).await? {
            Err(outcome) => outcome,
            Ok(a) if a.must_change_password => CabinetOutcome::MustChangePassword,
            Ok(_) => {
                event(conn, &id, "logged_in").await?;
                let token = sessions::open(
                    conn,
                    &id,
                    AssuranceLevel::Substantial,
                    sessions::Method::Password,
                    self.settings.session_ttl,
                )
                .await?;
                CabinetOutcome::Ok {
                    assurance_level: LEVEL.into(),
                    session_token: Some(token),
                }
            }
        })
    }

    async fn change(
        &self,
        conn: &mut PgConnection,
        r: &ChangePassword,
        new: NewPassword,
    ) -> Result<CabinetOutcome, sqlx::Error> {
        let id = normalise(&r.identifier);
        if let Err(outcome) = self.authenticate(conn, &id, &r.current_password).await? {
            return Ok(outcome);
        }
        let hash = match new.hash()? {
            Ok(hash) => hash,
            Err(weak) => return Ok(weak),
        };
        set_password(conn, &id, &hash).await?;
        sessions::end_all(conn, &id).await?;
        event(conn, &id, "password_changed").await?;
        Ok(ok())
    }

    /// The first step of a recovery or an unblock: a code to the identifier's phone, when the
    /// phone given is that one and the account is in the state the flow needs (not blocked for
    /// a recovery, blocked for an unblock). The answer is the same whatever happened.
    async fn send_code(
        &self,
        conn: &mut PgConnection,
        flow: CodeFlow,
        r: CodeRequest<'_>,
        code: Option<RecoveryCode>,
        cause: Uuid,
        extra: &mut Vec<Command>,
    ) -> Result<CabinetOutcome, sqlx::Error> {
        let table = flow.table();
        let id = normalise(r.identifier);
        let phone = Msisdn::parse(r.phone).ok();
        let found: Option<(String, bool)> = sqlx::query_as(
            "SELECT i.phone, a.blocked FROM identifiers i JOIN accounts a USING (identifier)
             WHERE i.identifier = $1",
        )
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await?;
        let matches = matches!(
            (&found, &phone),
            (Some((p, blocked)), Some(given))
                if p == given.as_str() && *blocked == flow.needs_blocked()
        );
        if !matches {
            return Ok(CabinetOutcome::CodeSentIfKnown);
        }
        let recent: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE identifier = $1 AND created_at > now() - $2::interval)",
        )))
        .bind(&id)
        .bind(format!("{} seconds", self.settings.recovery_interval.as_secs()))
        .fetch_one(&mut *conn)
        .await?;
        if recent {
            // One code per interval: a flood of requests sends no flood of SMS.
            return Ok(CabinetOutcome::CodeSentIfKnown);
        }
        let (
            Some(RecoveryCode {
                hash: code_hash,
                text,
            }),
            Some(phone),
        ) = (code, phone)
        else {
            return Ok(CabinetOutcome::CodeSentIfKnown);
        };
        // The code's row before the phone, as `complete` takes them: no deadlock between them.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM {table} WHERE identifier = $1 FOR UPDATE"
        )))
        .bind(&id)
        .execute(&mut *conn)
        .await?;
        let key = self.limits.key(&phone);
        self.limits.lock(conn, &key).await?;
        for event in [PhoneEvent::RecoveryCode, PhoneEvent::WrongCode] {
            if let Some(until) = self.limits.reached(conn, &key, event).await? {
                // The same answer as ever: whoever asks learns nothing from the limit.
                tracing::warn!(
                    phone = %phone.masked(),
                    limit = event.limit_name(),
                    %until,
                    flow = flow.name(),
                    "code not sent: a per-phone limit is reached"
                );
                portal_metrics().cabinet_limited(flow.request_name(), event.limit_name());
                return Ok(CabinetOutcome::CodeSentIfKnown);
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (identifier, code_hash, expires_at, attempts_left, phone_key)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (identifier) DO UPDATE SET code_hash = excluded.code_hash,
                 expires_at = excluded.expires_at, attempts_left = excluded.attempts_left,
                 phone_key = excluded.phone_key, created_at = now()",
        )))
        .bind(&id)
        .bind(&code_hash)
        .bind(Utc::now() + self.settings.recovery_code_ttl)
        .bind(self.settings.recovery_attempts)
        .bind(key.as_bytes())
        .execute(&mut *conn)
        .await?;
        self.limits
            .record(conn, &key, PhoneEvent::RecoveryCode, Some(cause))
            .await?;
        event(conn, &id, flow.code_sent_event()).await?;
        if let Ok(send) = Command::new(&SendSms {
            to: phone.as_str().to_owned(),
            operator: None,
            purpose: SmsPurpose::RecoveryCode,
            text,
        }) {
            extra.push(send.detach());
        }
        Ok(CabinetOutcome::CodeSentIfKnown)
    }

    /// The second step of a recovery or an unblock: the code and the new password. An unblock's
    /// code holds only while the identifier is still blocked.
    async fn complete(
        &self,
        conn: &mut PgConnection,
        flow: CodeFlow,
        r: CodeTyped<'_>,
        new: NewPassword,
        cause: Uuid,
    ) -> Result<CabinetOutcome, sqlx::Error> {
        let table = flow.table();
        let id = normalise(r.identifier);
        if let Some(until) = self.throttle().locked(conn, &id).await? {
            return Ok(CabinetOutcome::LockedOut { until });
        }
        type Row = (String, DateTime<Utc>, i32, Option<Vec<u8>>, String);
        let still = match flow {
            CodeFlow::Recovery => "",
            CodeFlow::Unblock => {
                " AND EXISTS (SELECT 1 FROM accounts a WHERE a.identifier = r.identifier AND a.blocked)"
            }
        };
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT r.code_hash, r.expires_at, r.attempts_left, r.phone_key, i.phone
             FROM {table} r JOIN identifiers i USING (identifier)
             WHERE r.identifier = $1{still} FOR UPDATE OF r",
        )))
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((hash, _, _, phone_key, phone)) =
            row.filter(|(_, e, left, _, _)| *e > Utc::now() && *left > 0)
        else {
            return Ok(CabinetOutcome::CodeExpired);
        };
        // The phone the code went to (the identifier's own for codes older than the column).
        let key = phone_key
            .as_deref()
            .and_then(PhoneKey::from_bytes)
            .or_else(|| Msisdn::parse(&phone).ok().map(|p| self.limits.key(&p)));
        if let Some(key) = &key {
            self.limits.lock(conn, key).await?;
            if let Some(until) = self
                .limits
                .reached(conn, key, PhoneEvent::WrongCode)
                .await?
            {
                // Too many wrong codes for this phone, over every account and application: no
                // code is checked until the oldest leaves the window.
                tracing::warn!(
                    limit = PhoneEvent::WrongCode.limit_name(),
                    %until,
                    flow = flow.name(),
                    "code not checked: a per-phone limit is reached"
                );
                portal_metrics()
                    .cabinet_limited(flow.complete_name(), PhoneEvent::WrongCode.limit_name());
                return Ok(CabinetOutcome::LockedOut { until });
            }
        }
        // Checked here, under the throttle, recovery row and phone locks: a wrong code is
        // counted before the next attempt is checked.
        if !verify_secret(r.code.trim(), &hash) {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET attempts_left = attempts_left - 1 WHERE identifier = $1",
            )))
            .bind(&id)
            .execute(&mut *conn)
            .await?;
            if let Some(key) = &key {
                self.limits
                    .record(conn, key, PhoneEvent::WrongCode, Some(cause))
                    .await?;
            }
            return self
                .throttle()
                .fail(conn, &id, CabinetOutcome::WrongCode)
                .await;
        }
        let hash = match new.hash()? {
            Ok(hash) => hash,
            Err(weak) => return Ok(weak),
        };
        set_password(conn, &id, &hash).await?;
        if flow == CodeFlow::Unblock {
            sqlx::query(
                "UPDATE accounts SET blocked = false, failed_logins = 0, locked_until = NULL
                 WHERE identifier = $1",
            )
            .bind(&id)
            .execute(&mut *conn)
            .await?;
        }
        sessions::end_all(conn, &id).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE identifier = $1"
        )))
        .bind(&id)
        .execute(&mut *conn)
        .await?;
        self.throttle().succeed(conn, &id).await?;
        event(conn, &id, flow.completed_event()).await?;
        Ok(ok())
    }

    async fn block(
        &self,
        conn: &mut PgConnection,
        r: &BlockSelf,
    ) -> Result<CabinetOutcome, sqlx::Error> {
        let id = normalise(&r.identifier);
        match self.authenticate(conn, &id, &r.password).await? {
            // Blocking what is blocked already is done (and no session outlives it).
            Err(CabinetOutcome::Blocked) => {
                sessions::end_all(conn, &id).await?;
                Ok(ok())
            }
            Err(CabinetOutcome::TemporaryPasswordExpired) | Ok(_) => {
                sqlx::query(
                    "UPDATE accounts SET blocked = true, updated_at = now() WHERE identifier = $1",
                )
                .bind(&id)
                .execute(&mut *conn)
                .await?;
                sessions::end_all(conn, &id).await?;
                event(conn, &id, "blocked_by_person").await?;
                Ok(ok())
            }
            Err(outcome) => Ok(outcome),
        }
    }
}

/// The two flows of a code by SMS and a new password: recovery and unblocking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeFlow {
    /// A lost password (the identifier not blocked).
    Recovery,
    /// A blocked identifier taken back by its holder.
    Unblock,
}

impl CodeFlow {
    /// The table of its pending codes (a constant: never from a message).
    fn table(self) -> &'static str {
        match self {
            CodeFlow::Recovery => "recoveries",
            CodeFlow::Unblock => "unblock_codes",
        }
    }

    fn needs_blocked(self) -> bool {
        self == CodeFlow::Unblock
    }

    fn name(self) -> &'static str {
        match self {
            CodeFlow::Recovery => "recovery",
            CodeFlow::Unblock => "unblock",
        }
    }

    fn request_name(self) -> &'static str {
        match self {
            CodeFlow::Recovery => "recover_password",
            CodeFlow::Unblock => "unblock",
        }
    }

    fn complete_name(self) -> &'static str {
        match self {
            CodeFlow::Recovery => "complete_recovery",
            CodeFlow::Unblock => "complete_unblock",
        }
    }

    fn code_sent_event(self) -> &'static str {
        match self {
            CodeFlow::Recovery => "recovery_code_sent",
            CodeFlow::Unblock => "unblock_code_sent",
        }
    }

    fn completed_event(self) -> &'static str {
        match self {
            CodeFlow::Recovery => "password_recovered",
            CodeFlow::Unblock => "unblocked_by_person",
        }
    }
}

/// The first step's request: the identifier and the phone the person says is theirs.
#[derive(Clone, Copy)]
struct CodeRequest<'a> {
    identifier: &'a str,
    phone: &'a str,
}

/// The second step's request: the identifier and the code typed.
#[derive(Clone, Copy)]
struct CodeTyped<'a> {
    identifier: &'a str,
    code: &'a str,
}

/// Stores `hash`, the new password's hash, as the account's password.
async fn set_password(conn: &mut PgConnection, id: &str, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE accounts SET password_hash = $2, must_change_password = false,
             temporary_expires_at = NULL, updated_at = now()
         WHERE identifier = $1",
    )
    .bind(id)
    .bind(hash)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

async fn event(conn: &mut PgConnection, id: &str, what: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO account_events (identifier, event) VALUES ($1, $2)")
        .bind(id)
        .bind(what)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// What is wrong with a new static password (empty: nothing).
pub fn password_problems(new: &str, identifier: &str, current: Option<&str>) -> Vec<String> {
    let mut p = Vec::new();
    let len = new.chars().count();
    if !(8..=64).contains(&len) {
        p.push("use 8 to 64 characters".to_owned());
    }
    if !new.chars().any(char::is_alphabetic) || !new.chars().any(|c| c.is_ascii_digit()) {
        p.push("use at least one letter and one digit".to_owned());
    }
    if !identifier.is_empty() && new.to_uppercase().contains(identifier) {
        p.push("do not include the identifier".to_owned());
    }
    if current == Some(new) {
        p.push("choose a password other than the current one".to_owned());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::password_problems;

    #[test]
    fn password_rules_say_what_is_wrong() {
        assert!(password_problems("Zuber2026!", "3270287A012PB2", Some("Tmp")).is_empty());
        assert_eq!(
            password_problems("short1", "X", None),
            ["use 8 to 64 characters"]
        );
        assert_eq!(
            password_problems("onlyletters", "X", None),
            ["use at least one letter and one digit"]
        );
        assert_eq!(
            password_problems("a3270287a012pb2", "3270287A012PB2", None),
            ["do not include the identifier"]
        );
        assert_eq!(
            password_problems("Same1234", "X", Some("Same1234")),
            ["choose a password other than the current one"]
        );
    }
}
