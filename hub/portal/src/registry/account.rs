//! The registry's side of the account lifecycle: look an account up, block it, unblock it, bind
//! it to a new phone. Each runs inside the registry service's transaction (with the inbox row
//! and the answer), locks the rows it changes, and writes one `account_events` row per change,
//! naming the desk application and what changed. Nothing is ever deleted: an unblocked account
//! has all its earlier history.

use adapters::Failure;
use contracts::account::{
    AccountBlocked, AccountLookedUp, AccountPhoneChanged, AccountState, AccountUnblocked,
    BlockAccount, BlockOutcome, ChangeAccountPhone, ChangePhoneOutcome, LookupAccount, PhoneUse,
    UnblockAccount, UnblockOutcome,
};
use contracts::registry::{ReissueOutcome, ReissuePassword};
use serde_json::json;
use sqlx::{Connection, PgConnection};

use hub_runtime::engine::db_failure;

/// The `account_events.event` of each change a desk asks for.
const BLOCKED_BY_DESK: &str = "blocked_by_desk";
const UNBLOCKED_BY_DESK: &str = "unblocked_by_desk";
const PHONE_CHANGED: &str = "phone_changed";
const TEMPORARY_PASSWORD_REISSUED: &str = "temporary_password_reissued";

fn db(e: sqlx::Error) -> Failure {
    db_failure(&e)
}

/// The account's `blocked` flag, locked for update; `None` when no identifier is assigned
/// under this number (a mere reservation is no account).
async fn lock_account(
    conn: &mut PgConnection,
    identifier: &str,
) -> Result<Option<(String, bool)>, Failure> {
    sqlx::query_as(
        "SELECT i.phone, a.blocked
         FROM identifiers i JOIN accounts a USING (identifier)
         WHERE i.identifier = $1 AND i.status = 'assigned'
         FOR UPDATE OF i, a",
    )
    .bind(identifier)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)
}

async fn event(
    conn: &mut PgConnection,
    identifier: &str,
    event: &str,
    application: &str,
    detail: Option<serde_json::Value>,
) -> Result<(), Failure> {
    sqlx::query(
        "INSERT INTO account_events (identifier, event, application, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(identifier)
    .bind(event)
    .bind(application)
    .bind(detail)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// `registry.lookup_account.v1`.
pub(super) async fn lookup(
    conn: &mut PgConnection,
    l: &LookupAccount,
) -> Result<AccountLookedUp, Failure> {
    let blocked: Option<bool> = sqlx::query_scalar(
        "SELECT a.blocked FROM identifiers i JOIN accounts a USING (identifier)
         WHERE i.identifier = $1 AND i.status = 'assigned'",
    )
    .bind(&l.identifier)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let state = match blocked {
        None => AccountState::Unknown,
        Some(true) => AccountState::Blocked,
        Some(false) => AccountState::Active,
    };
    let phone = match &l.phone {
        None => None,
        Some(phone) => {
            let holder: Option<String> =
                sqlx::query_scalar("SELECT identifier FROM identifiers WHERE phone = $1")
                    .bind(phone)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db)?;
            Some(match holder {
                None => PhoneUse::Free,
                Some(h) if h == l.identifier => PhoneUse::ThisIdentifier,
                Some(_) => PhoneUse::AnotherIdentifier,
            })
        }
    };
    Ok(AccountLookedUp { state, phone })
}

/// `registry.block_account.v1`: blocks an active account.
pub(super) async fn block(
    conn: &mut PgConnection,
    b: &BlockAccount,
) -> Result<AccountBlocked, Failure> {
    let outcome = match lock_account(conn, &b.identifier).await? {
        None => BlockOutcome::UnknownIdentifier,
        Some((_, true)) => {
            // No session outlives a block (none should be open; this makes sure).
            crate::sessions::end_all(conn, &b.identifier)
                .await
                .map_err(db)?;
            BlockOutcome::AlreadyBlocked
        }
        Some((_, false)) => {
            // Every session of the identifier ends with the block, in its transaction.
            crate::sessions::end_all(conn, &b.identifier)
                .await
                .map_err(db)?;
            sqlx::query(
                "UPDATE accounts SET blocked = true, updated_at = now() WHERE identifier = $1",
            )
            .bind(&b.identifier)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            let detail = match (&b.reason, &b.worker_id) {
                (None, None) => None,
                (reason, worker_id) => Some(json!({ "reason": reason, "worker_id": worker_id })),
            };
            event(conn, &b.identifier, BLOCKED_BY_DESK, &b.application, detail).await?;
            BlockOutcome::Blocked
        }
    };
    Ok(AccountBlocked { outcome })
}

/// `registry.unblock_account.v1`: unblocks a blocked account and resets its failed-login
/// throttles; with a new temporary password (every unblock the saga asks for now), that password
/// replaces the old one and the answer names the phone it must go to. The phone and the history
/// stay as they were.
pub(super) async fn unblock(
    conn: &mut PgConnection,
    u: &UnblockAccount,
) -> Result<AccountUnblocked, Failure> {
    let (outcome, phone) = match lock_account(conn, &u.identifier).await? {
        None => (UnblockOutcome::UnknownIdentifier, None),
        Some((_, false)) => (UnblockOutcome::NotBlocked, None),
        Some((phone, true)) => {
            sqlx::query(
                "UPDATE accounts SET blocked = false, failed_logins = 0, locked_until = NULL,
                     updated_at = now()
                 WHERE identifier = $1",
            )
            .bind(&u.identifier)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
            let temporary = u
                .temporary_password_hash
                .as_ref()
                .zip(u.temporary_password_expires_at);
            if let Some((hash, expires_at)) = temporary {
                sqlx::query(
                    "UPDATE accounts SET password_hash = $2, must_change_password = true,
                         temporary_expires_at = $3
                     WHERE identifier = $1",
                )
                .bind(&u.identifier)
                .bind(hash)
                .bind(expires_at)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            }
            reset_login_throttle(conn, &u.identifier).await?;
            let detail = json!({
                "worker_id": u.worker_id,
                "temporary_password": temporary.is_some(),
            });
            event(
                conn,
                &u.identifier,
                UNBLOCKED_BY_DESK,
                &u.application,
                Some(detail),
            )
            .await?;
            (UnblockOutcome::Unblocked, temporary.map(|_| phone))
        }
    };
    Ok(AccountUnblocked { outcome, phone })
}

/// Clears the cabinet's throttle of login attempts, where the schema has one.
async fn reset_login_throttle(conn: &mut PgConnection, identifier: &str) -> Result<(), Failure> {
    let throttled: bool = sqlx::query_scalar("SELECT to_regclass('login_throttle') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    if throttled {
        sqlx::query(
            "UPDATE login_throttle SET failures = 0, locked_until = NULL, updated_at = now()
             WHERE identifier = $1",
        )
        .bind(identifier)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// `registry.change_phone.v1`: binds an active account's identifier to a new phone. The unique
/// index on `identifiers.phone` is the judge: a phone held by another identifier (or reserved by
/// an application in progress) is `phone_bound`, even when the two requests race.
pub(super) async fn change_phone(
    conn: &mut PgConnection,
    c: &ChangeAccountPhone,
) -> Result<AccountPhoneChanged, Failure> {
    let (previous, blocked) = match lock_account(conn, &c.identifier).await? {
        None => return Ok(outcome(ChangePhoneOutcome::UnknownIdentifier)),
        Some(row) => row,
    };
    if blocked {
        return Ok(outcome(ChangePhoneOutcome::Blocked));
    }
    if previous == c.phone {
        // Bound already (a repeated request): nothing changes, nothing to record.
        return Ok(outcome(ChangePhoneOutcome::Changed));
    }
    // A savepoint: a unique violation must not abort the service's transaction.
    let mut savepoint = conn.begin().await.map_err(db)?;
    let updated = sqlx::query("UPDATE identifiers SET phone = $2 WHERE identifier = $1")
        .bind(&c.identifier)
        .bind(&c.phone)
        .execute(&mut *savepoint)
        .await;
    match updated {
        Ok(_) => savepoint.commit().await.map_err(db)?,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            savepoint.rollback().await.map_err(db)?;
            return Ok(outcome(ChangePhoneOutcome::PhoneBound));
        }
        Err(e) => return Err(db(e)),
    }
    sqlx::query("UPDATE accounts SET updated_at = now() WHERE identifier = $1")
        .bind(&c.identifier)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    event(
        conn,
        &c.identifier,
        PHONE_CHANGED,
        &c.application,
        Some(json!({ "previous_phone": previous, "worker_id": c.worker_id })),
    )
    .await?;
    Ok(outcome(ChangePhoneOutcome::Changed))
}

fn outcome(outcome: ChangePhoneOutcome) -> AccountPhoneChanged {
    AccountPhoneChanged { outcome }
}

/// `registry.reissue_password.v1`: a desk's resend of the temporary password, after the identity
/// checks. Decided under the account's lock: only while the account is not blocked and its
/// password is still a temporary one (`must_change_password`: the person has not formed a static
/// password since the last temporary one); then the new hash replaces it, the failed-login count
/// starts again, and the answer names the phone the registry holds now.
pub(super) async fn reissue(
    conn: &mut PgConnection,
    r: &ReissuePassword,
) -> Result<ReissueOutcome, Failure> {
    let row: Option<(String, bool, bool)> = sqlx::query_as(
        "SELECT i.phone, a.blocked, a.must_change_password
         FROM identifiers i JOIN accounts a USING (identifier)
         WHERE i.identifier = $1 AND i.status = 'assigned'
         FOR UPDATE OF i, a",
    )
    .bind(&r.identifier)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some((phone, blocked, temporary)) = row else {
        return Ok(ReissueOutcome::UnknownIdentifier);
    };
    if blocked {
        return Ok(ReissueOutcome::Blocked);
    }
    if !temporary {
        return Ok(ReissueOutcome::StaticPasswordSet);
    }
    sqlx::query(
        "UPDATE accounts SET password_hash = $2, must_change_password = true,
             temporary_expires_at = $3, failed_logins = 0, locked_until = NULL, updated_at = now()
         WHERE identifier = $1",
    )
    .bind(&r.identifier)
    .bind(&r.temporary_password_hash)
    .bind(r.temporary_password_expires_at)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    event(
        conn,
        &r.identifier,
        TEMPORARY_PASSWORD_REISSUED,
        &r.application,
        Some(json!({ "worker_id": r.worker_id })),
    )
    .await?;
    Ok(ReissueOutcome::Reissued { phone })
}
