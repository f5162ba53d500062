//! The identifier registry: reserves an identifier and a phone for an application, releases the
//! reservation when a later step fails, and turns it into an assigned identifier with an account.
//! The issuance saga talks to it by messages (`contracts::registry`), so uniqueness is enforced
//! by PostgreSQL constraints inside the registry's own transaction while the saga stays pure.
//!
//! The account saga asks it (`contracts::account`) to look an account up, block it, unblock it
//! and change its phone; every change leaves an `account_events` row (see [`account`]).

mod account;

use adapters::Failure;
use contracts::account::{BlockAccount, ChangeAccountPhone, LookupAccount, UnblockAccount};
use contracts::registry::{
    AccountCreated, CreateAccount, PasswordReissued, ReissuePassword, Release, Reserve,
    ReserveOutcome, Reserved,
};
use contracts::{Message, decode};
use futures_util::future::BoxFuture;
use sqlx::PgConnection;

use hub_runtime::broker::Incoming;
use hub_runtime::engine::db_failure;
use hub_runtime::engine::{Command, Service};

/// The registry's queue (short name).
pub const QUEUE: &str = "registry";

/// The registry's queue and the commands it takes.
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        QUEUE,
        [
            Reserve::TYPE.to_string(),
            Release::TYPE.to_string(),
            CreateAccount::TYPE.to_string(),
            LookupAccount::TYPE.to_string(),
            BlockAccount::TYPE.to_string(),
            UnblockAccount::TYPE.to_string(),
            ChangeAccountPhone::TYPE.to_string(),
            ReissuePassword::TYPE.to_string(),
        ],
    )
}

/// A decoded registry command.
#[derive(Debug)]
pub enum RegistryCommand {
    /// Hold identifier and phone.
    Reserve(Reserve),
    /// Undo a hold.
    Release(Release),
    /// Assign and create (or re-key) the account.
    CreateAccount(CreateAccount),
    /// Report an account's state (and who uses a phone).
    LookupAccount(LookupAccount),
    /// Block an account on a desk's application.
    BlockAccount(BlockAccount),
    /// Unblock an account on a desk's application.
    UnblockAccount(UnblockAccount),
    /// Bind an identifier to a new phone.
    ChangePhone(ChangeAccountPhone),
    /// Replace a temporary password on a desk's resend.
    Reissue(ReissuePassword),
}

/// The registry service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

impl Service for Registry {
    type Prepared = RegistryCommand;

    fn name(&self) -> &'static str {
        "registry"
    }

    fn prepare<'a>(
        &'a self,
        message: &'a Incoming,
    ) -> BoxFuture<'a, Result<RegistryCommand, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            if Reserve::TYPE.matches(t) {
                Ok(RegistryCommand::Reserve(decode(t, &message.body)?))
            } else if Release::TYPE.matches(t) {
                Ok(RegistryCommand::Release(decode(t, &message.body)?))
            } else if CreateAccount::TYPE.matches(t) {
                Ok(RegistryCommand::CreateAccount(decode(t, &message.body)?))
            } else if LookupAccount::TYPE.matches(t) {
                Ok(RegistryCommand::LookupAccount(decode(t, &message.body)?))
            } else if BlockAccount::TYPE.matches(t) {
                Ok(RegistryCommand::BlockAccount(decode(t, &message.body)?))
            } else if UnblockAccount::TYPE.matches(t) {
                Ok(RegistryCommand::UnblockAccount(decode(t, &message.body)?))
            } else if ChangeAccountPhone::TYPE.matches(t) {
                Ok(RegistryCommand::ChangePhone(decode(t, &message.body)?))
            } else if ReissuePassword::TYPE.matches(t) {
                Ok(RegistryCommand::Reissue(decode(t, &message.body)?))
            } else {
                Err(Failure::invalid_input(format!(
                    "the registry does not take {t}"
                )))
            }
        })
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        _message: &'a Incoming,
        command: RegistryCommand,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move {
            match command {
                RegistryCommand::Reserve(r) => {
                    let outcome = reserve(conn, &r).await.map_err(|e| db_failure(&e))?;
                    Ok(vec![Command::new(&Reserved { outcome })?])
                }
                RegistryCommand::Release(r) => {
                    sqlx::query(
                        "DELETE FROM identifiers
                         WHERE identifier = $1 AND application = $2 AND status = 'reserved'",
                    )
                    .bind(&r.identifier)
                    .bind(&r.application)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| db_failure(&e))?;
                    Ok(vec![])
                }
                RegistryCommand::CreateAccount(c) => {
                    let replaced = create_account(conn, &c).await?;
                    Ok(vec![Command::new(&AccountCreated {
                        password_replaced: replaced,
                    })?])
                }
                RegistryCommand::LookupAccount(l) => {
                    Ok(vec![Command::new(&account::lookup(conn, &l).await?)?])
                }
                RegistryCommand::BlockAccount(b) => {
                    Ok(vec![Command::new(&account::block(conn, &b).await?)?])
                }
                RegistryCommand::UnblockAccount(u) => {
                    Ok(vec![Command::new(&account::unblock(conn, &u).await?)?])
                }
                RegistryCommand::ChangePhone(c) => {
                    Ok(vec![Command::new(&account::change_phone(conn, &c).await?)?])
                }
                RegistryCommand::Reissue(r) => Ok(vec![Command::new(&PasswordReissued {
                    outcome: account::reissue(conn, &r).await?,
                })?]),
            }
        })
    }
}

async fn reserve(conn: &mut PgConnection, r: &Reserve) -> Result<ReserveOutcome, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO identifiers (identifier, phone, application, status)
         VALUES ($1, $2, $3, 'reserved') ON CONFLICT DO NOTHING",
    )
    .bind(&r.identifier)
    .bind(&r.phone)
    .bind(&r.application)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        return Ok(ReserveOutcome::Reserved);
    }
    let by_identifier: Option<String> =
        sqlx::query_scalar("SELECT application FROM identifiers WHERE identifier = $1")
            .bind(&r.identifier)
            .fetch_optional(&mut *conn)
            .await?;
    let by_phone: Option<String> =
        sqlx::query_scalar("SELECT application FROM identifiers WHERE phone = $1")
            .bind(&r.phone)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match (by_identifier, by_phone) {
        // The same application asking again (a retried step): it holds both already.
        (Some(a), Some(b)) if a == r.application && b == r.application => ReserveOutcome::Reserved,
        (Some(_), _) => ReserveOutcome::AlreadyAssigned,
        _ => ReserveOutcome::PhoneBound,
    })
}

async fn create_account(conn: &mut PgConnection, c: &CreateAccount) -> Result<bool, Failure> {
    let assigned = sqlx::query(
        "UPDATE identifiers SET status = 'assigned', assigned_at = coalesce(assigned_at, now())
         WHERE identifier = $1 AND application = $2",
    )
    .bind(&c.identifier)
    .bind(&c.application)
    .execute(&mut *conn)
    .await
    .map_err(|e| db_failure(&e))?
    .rows_affected();
    if assigned != 1 {
        return Err(Failure::permanent(
            "no reservation of this identifier for this application",
        ));
    }
    let existed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE identifier = $1)")
            .bind(&c.identifier)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| db_failure(&e))?;
    sqlx::query(
        "INSERT INTO accounts (identifier, password_hash, must_change_password, temporary_expires_at)
         VALUES ($1, $2, true, $3)
         ON CONFLICT (identifier) DO UPDATE SET password_hash = excluded.password_hash,
             must_change_password = true, temporary_expires_at = excluded.temporary_expires_at,
             failed_logins = 0, locked_until = NULL, updated_at = now()",
    )
    .bind(&c.identifier)
    .bind(&c.temporary_password_hash)
    .bind(c.temporary_password_expires_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| db_failure(&e))?;
    let event = if existed {
        "temporary_password_replaced"
    } else {
        "account_created"
    };
    sqlx::query("INSERT INTO account_events (identifier, event) VALUES ($1, $2)")
        .bind(&c.identifier)
        .bind(event)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_failure(&e))?;
    Ok(existed)
}
