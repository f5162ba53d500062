//! A small saga that lives in the tests: an account that is opened, takes deposits, and may
//! expire by a timer. It exercises every part of the engine: creation, updates, commands,
//! timers, refusals.

use std::time::Duration;

use contracts::Failure;
use contracts::{Message, MessageType, ValidationErrors};
use hub_runtime::broker::Incoming;
use hub_runtime::engine::{Command, Saga, SagaKey, Step, StepContext, TimerRequest};
use serde::{Deserialize, Serialize};

/// Open an account; it expires `expire_after_ms` later if given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenAccount {
    /// Account name (the business key).
    pub account: String,
    /// Close the account this long after opening.
    pub expire_after_ms: Option<u64>,
}
impl Message for OpenAccount {
    const TYPE: MessageType = MessageType::new("test.open_account", 1);
}

/// Deposit `amount` (positive) with a sequence number the test tracks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposit {
    /// Account name.
    pub account: String,
    /// Kopecks, positive.
    pub amount: i64,
    /// Test-chosen sequence number.
    pub seq: u64,
}
impl Message for Deposit {
    const TYPE: MessageType = MessageType::new("test.deposit", 1);
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut e = ValidationErrors::new();
        e.check(self.amount > 0, "amount", "must be positive");
        e.check(!self.account.is_empty(), "account", "must not be empty");
        e.into_result()
    }
}

/// Fired by the expiry timer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpiryDue {
    /// Account name.
    pub account: String,
}
impl Message for ExpiryDue {
    const TYPE: MessageType = MessageType::new("test.expiry_due", 1);
}

/// Event: the account was opened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountOpened {
    /// Account name.
    pub account: String,
}
impl Message for AccountOpened {
    const TYPE: MessageType = MessageType::new("test.account_opened", 1);
}

/// Event: a deposit was applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposited {
    /// Account name.
    pub account: String,
    /// The deposit's sequence number.
    pub seq: u64,
    /// Balance after it.
    pub balance: i64,
}
impl Message for Deposited {
    const TYPE: MessageType = MessageType::new("test.deposited", 1);
}

/// Event: the account expired.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountClosed {
    /// Account name.
    pub account: String,
}
impl Message for AccountClosed {
    const TYPE: MessageType = MessageType::new("test.account_closed", 1);
}

/// The saga's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Sum of deposits.
    pub balance: i64,
    /// Sequence numbers in the order they were applied.
    pub applied: Vec<u64>,
    /// How many times the expiry timer fired.
    pub expiries: u32,
    /// Closed by expiry.
    pub closed: bool,
}

/// What the saga reads from a message.
#[derive(Debug)]
pub enum Input {
    /// [`OpenAccount`].
    Open(OpenAccount),
    /// [`Deposit`].
    Deposit(Deposit),
    /// [`ExpiryDue`].
    Expiry(ExpiryDue),
}

/// The ledger saga.
#[derive(Debug, Clone, Copy)]
pub struct Ledger;

/// The saga type.
pub const SAGA_TYPE: &str = "test.ledger";
/// Its work queue (short name).
pub const QUEUE: &str = "saga.ledger";

impl Ledger {
    /// The instance key of an account.
    pub fn key(account: &str) -> SagaKey {
        SagaKey::for_business_key(SAGA_TYPE, account)
    }
}

impl Saga for Ledger {
    type State = Account;
    type Input = Input;

    fn saga_type(&self) -> &'static str {
        SAGA_TYPE
    }

    fn read(&self, message: &Incoming) -> Result<(SagaKey, Input), Failure> {
        let t = message.metadata.message_type.as_str();
        let input = if OpenAccount::TYPE.matches(t) {
            Input::Open(contracts::decode(t, &message.body)?)
        } else if Deposit::TYPE.matches(t) {
            Input::Deposit(contracts::decode(t, &message.body)?)
        } else if ExpiryDue::TYPE.matches(t) {
            Input::Expiry(contracts::decode(t, &message.body)?)
        } else {
            return Err(Failure::invalid_input(format!(
                "the ledger saga does not take {t}"
            )));
        };
        let account = match &input {
            Input::Open(m) => &m.account,
            Input::Deposit(m) => &m.account,
            Input::Expiry(m) => &m.account,
        };
        Ok((Ledger::key(account), input))
    }

    fn transition(
        &self,
        state: Option<&Account>,
        input: &Input,
        _ctx: &StepContext<'_>,
    ) -> Result<Step<Account>, Failure> {
        match (state, input) {
            (None, Input::Open(m)) => {
                let mut step = Step::to(Account {
                    balance: 0,
                    applied: Vec::new(),
                    expiries: 0,
                    closed: false,
                })
                .send(Command::new(&AccountOpened {
                    account: m.account.clone(),
                })?);
                if let Some(ms) = m.expire_after_ms {
                    step = step.set_timer(TimerRequest {
                        name: "expiry".into(),
                        after: Duration::from_millis(ms),
                        message: Command::new(&ExpiryDue {
                            account: m.account.clone(),
                        })?,
                    });
                }
                Ok(step)
            }
            (Some(_), Input::Open(_)) => Err(Failure::permanent("account already open")),
            (None, _) => Err(Failure::permanent("no such account")),
            (Some(a), Input::Deposit(_)) if a.closed => Err(Failure::permanent("account closed")),
            (Some(a), Input::Deposit(d)) => {
                let mut next = a.clone();
                next.balance += d.amount;
                next.applied.push(d.seq);
                let event = Deposited {
                    account: d.account.clone(),
                    seq: d.seq,
                    balance: next.balance,
                };
                Ok(Step::to(next).send(Command::new(&event)?))
            }
            (Some(a), Input::Expiry(e)) => {
                let mut next = a.clone();
                next.expiries += 1;
                next.closed = true;
                Ok(Step::to(next).send(Command::new(&AccountClosed {
                    account: e.account.clone(),
                })?))
            }
        }
    }

    fn state_name(&self, state: &Account) -> String {
        if state.closed { "closed" } else { "open" }.into()
    }

    fn is_terminal(&self, state: &Account) -> bool {
        state.closed
    }
}

/// The saga state and version of `account`, if the saga exists.
pub async fn load(pool: &sqlx::PgPool, account: &str) -> Option<(Account, i64)> {
    sqlx::query_as::<_, (sqlx::types::Json<Account>, i64)>(
        "SELECT state, version FROM sagas WHERE id = $1",
    )
    .bind(Ledger::key(account).id)
    .fetch_optional(pool)
    .await
    .expect("saga query")
    .map(|(sqlx::types::Json(a), v)| (a, v))
}

/// Waits (up to `timeout`) until deposits `1..=n` were applied to `account`, and fails the test
/// unless each was applied exactly once with nothing lost on the balance (every deposit in these
/// tests is 1 kopeck, or `seq` kopecks when `amount_is_seq`).
pub async fn wait_for_every_deposit_once(
    pool: &sqlx::PgPool,
    account: &str,
    n: u64,
    amount_is_seq: bool,
    timeout: Duration,
) -> (Account, i64) {
    let (state, version) = crate::wait_until(
        timeout,
        &format!("{n} deposits applied to {account}"),
        || async {
            load(pool, account)
                .await
                .filter(|(a, _)| a.applied.len() >= n as usize)
        },
    )
    .await;
    let mut applied = state.applied.clone();
    applied.sort_unstable();
    assert_eq!(
        applied,
        (1..=n).collect::<Vec<_>>(),
        "each deposit applied exactly once"
    );
    let expected: i64 = if amount_is_seq {
        (1..=n as i64).sum()
    } else {
        n as i64
    };
    assert_eq!(state.balance, expected, "no lost update");
    (state, version)
}

/// The ledger's queue, bound to the commands it takes from the bus (timers come back through
/// the requeue exchange).
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        QUEUE,
        [OpenAccount::TYPE.to_string(), Deposit::TYPE.to_string()],
    )
}

/// The registration that runs the ledger in a hub.
pub fn registration() -> hub_runtime::app::Registration {
    hub_runtime::app::Registration {
        queue: queue_spec(),
        factory: Box::new(|ctx| {
            std::sync::Arc::new(hub_runtime::engine::SagaEngine::new(
                Ledger,
                ctx.pool.clone(),
                ctx.topology.clone(),
                QUEUE,
                &ctx.app_id,
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::Metadata;
    use uuid::Uuid;

    fn ctx(m: &Metadata) -> StepContext<'_> {
        StepContext {
            now: chrono::Utc::now(),
            saga_id: Uuid::nil(),
            message: m,
            seed: [0; 32],
            prepared: None,
        }
    }

    #[test]
    fn the_transition_is_pure_and_refuses_what_does_not_fit() {
        let m = Metadata::new("test.deposit.v1", "t");
        let open = Input::Open(OpenAccount {
            account: "a".into(),
            expire_after_ms: Some(10),
        });
        let step = Ledger.transition(None, &open, &ctx(&m)).expect("opens");
        assert_eq!(step.commands.len(), 1);
        assert_eq!(step.timers.len(), 1);
        let dep = Input::Deposit(Deposit {
            account: "a".into(),
            amount: 5,
            seq: 1,
        });
        let after = Ledger
            .transition(Some(&step.state), &dep, &ctx(&m))
            .expect("deposits");
        assert_eq!(after.state.balance, 5);
        assert_eq!(after.state.applied, vec![1]);
        assert!(Ledger.transition(None, &dep, &ctx(&m)).is_err());
        assert!(
            Ledger
                .transition(Some(&step.state), &open, &ctx(&m))
                .is_err()
        );
    }
}
