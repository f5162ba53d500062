//! The saga engine. A saga is a pure transition function, `(state, message) -> (new state,
//! commands, timers)`; the engine around it does the I/O, exactly as DESIGN.md's "Sagas" says:
//!
//! 1. skip the message if its `message_id` is already in the inbox;
//! 2. lock the saga row (`SELECT ... FOR UPDATE`) and apply the transition;
//! 3. in one transaction: new state (version + 1), a history row, the outgoing messages into
//!    the outbox, timers, the inbox row;
//! 4. the consumer runner acks after the commit.
//!
//! **Argon2 never runs inside the step's transaction.** A transition that hands out a new secret
//! (a phone code, a temporary password) says so beforehand: [`Saga::fresh_secret`] names the kind
//! it needs for a given state and input, purely. The engine locks the row; if the transition
//! needs a secret the step does not have yet, it rolls the transaction back at once (nothing
//! written, the lock released), makes the secret and its argon2 hash
//! ([`crate::secrets::FreshSecret::make`], on the argon2 threads, awaited), and runs the step
//! again from the start; under the lock it asks again, and the transition gets the secret in
//! [`StepContext::fresh_secret`] only if the kind still matches (else it is made anew). The
//! transition seals the clear secret for the SMS and stores or sends only the hash. A message
//! that needs no new secret costs what it always did; one that does costs one extra `BEGIN`
//! and `ROLLBACK`. A check that must be counted under the row lock (a code typed against the
//! attempts left) still verifies inside the transition, under the lock, so that two parallel
//! guesses are counted one after the other.

mod command;
mod runner;
mod service;

use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::Failure;
use contracts::Metadata;
use contracts::ops::CancelSaga;
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use std::sync::Arc;

use contracts::Topology;

use crate::broker::{Handler, Incoming};

pub use command::Command;
pub use runner::SagaEngine;
pub use service::{Service, ServiceRunner};

use crate::secrets::{FreshSecret, SecretKind};
use crate::store::is_transient;

/// A saga: its state type, how it reads messages, and its pure transition.
pub trait Saga: Send + Sync + 'static {
    /// The state kept in the saga row (as JSON).
    type State: Serialize + DeserializeOwned + Send + Sync;
    /// What the saga reads out of a message.
    type Input: Send + Sync;

    /// The saga type, stored with each instance and used in the inbox key.
    fn saga_type(&self) -> &'static str;

    /// Decodes a message and names the instance it belongs to. An error here is invalid
    /// input, dead-lettered with its reason.
    fn read(&self, message: &Incoming) -> Result<(SagaKey, Self::Input), Failure>;

    /// The transition. `state` is `None` when no instance exists yet. Pure: everything it may
    /// depend on is in its arguments (the time is `ctx.now`).
    fn transition(
        &self,
        state: Option<&Self::State>,
        input: &Self::Input,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Self::State>, Failure>;

    /// The new secret the transition from `state` on `input` hands out, if it hands one out:
    /// the engine makes it (argon2 hash included) before it opens the step's transaction and
    /// passes it in [`StepContext::prepared`]. Pure, and it must agree with
    /// [`Saga::transition`]: a transition that asks [`StepContext::fresh_secret`] for a kind
    /// not named here fails. Most sagas hand out none.
    fn fresh_secret(&self, state: Option<&Self::State>, input: &Self::Input) -> Option<SecretKind> {
        let _ = (state, input);
        None
    }

    /// The new secret a message of this `input` will most likely need, judged by the input alone
    /// (no state read): the engine makes it before the step's first attempt, so the usual case
    /// pays no extra round to the database. Only a hint: [`Saga::fresh_secret`], asked under
    /// the row lock, decides; a hint it does not confirm costs one unused hash, and a secret it
    /// wants that was not hinted costs one attempt rolled back at once. Most sagas hint none.
    fn likely_secret(&self, input: &Self::Input) -> Option<SecretKind> {
        let _ = input;
        None
    }

    /// A short name of the state for listing and history (`awaiting_mvd`).
    fn state_name(&self, state: &Self::State) -> String;

    /// Whether the saga has ended.
    fn is_terminal(&self, state: &Self::State) -> bool;

    /// An operator ends a stuck instance (`hub saga cancel`, message `ops.cancel_saga.v1`):
    /// the step runs the compensations the saga defines and must end in a terminal state.
    /// `state` is never terminal (the engine leaves an ended saga alone). Pure, like
    /// [`Saga::transition`]. A saga that does not override it cannot be cancelled.
    fn cancel(
        &self,
        state: &Self::State,
        request: &CancelSaga,
        ctx: &StepContext<'_>,
    ) -> Result<Step<Self::State>, Failure> {
        let _ = (state, request, ctx);
        Err(Failure::permanent(format!(
            "this saga ({}) cannot be cancelled",
            self.saga_type()
        )))
    }
}

/// What operators' tools may ask of a running saga type without knowing its Rust types: the
/// CLI and the console find it through [`crate::broker::Handler::saga`] on a plan's handlers.
pub trait SagaControl: Send + Sync {
    /// The saga type.
    fn saga_type(&self) -> &str;

    /// Its work queue (full name): timers and operators' messages go there.
    fn queue(&self) -> &str;

    /// What cancelling the instance `saga_id` in stored state `state` would do, without doing
    /// it; or why the saga refuses.
    fn preview_cancel(
        &self,
        saga_id: Uuid,
        state: &serde_json::Value,
        request: &CancelSaga,
    ) -> Result<CancelPreview, Failure>;
}

/// What a cancel would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelPreview {
    /// The state it ends in.
    pub to_state: String,
    /// The types of the messages it sends (the compensations and the news), in order.
    pub sends: Vec<String>,
}

/// Which instance a message belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaKey {
    /// The saga id, also the `correlation_id` of its messages.
    pub id: Uuid,
    /// A business key operators search by (application number, order number), if any.
    pub business_key: Option<String>,
}

impl SagaKey {
    /// The key of the instance of `saga_type` for a business key: the id is derived from both,
    /// so every message carrying that business key finds the same instance.
    pub fn for_business_key(saga_type: &str, business_key: &str) -> Self {
        Self {
            id: Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("{saga_type}/{business_key}").as_bytes(),
            ),
            business_key: Some(business_key.to_owned()),
        }
    }

    /// The key named by a message's `correlation_id`, which must be a saga id.
    pub fn from_correlation_id(metadata: &Metadata) -> Result<Self, Failure> {
        let raw = metadata.correlation_id.as_deref().ok_or_else(|| {
            Failure::invalid_input("property correlation_id (the saga id) is missing")
        })?;
        let id = Uuid::parse_str(raw).map_err(|_| {
            Failure::invalid_input(format!(
                "property correlation_id {raw:?} is not a saga id (UUID)"
            ))
        })?;
        Ok(Self {
            id,
            business_key: None,
        })
    }
}

/// What a transition may look at besides the state and the input.
#[derive(Debug)]
pub struct StepContext<'a> {
    /// The time of this step.
    pub now: DateTime<Utc>,
    /// The saga id.
    pub saga_id: Uuid,
    /// The message being handled.
    pub message: &'a Metadata,
    /// Fresh randomness for this step, from the operating system (tests fix it).
    pub seed: [u8; 32],
    /// The new secret [`Saga::fresh_secret`] asked for, made and hashed before the step's
    /// transaction; `None` when it asked for none.
    pub prepared: Option<&'a FreshSecret>,
}

impl StepContext<'_> {
    /// A CSPRNG for this step. Call it once per transition: every call starts from the same seed.
    pub fn rng(&self) -> rand::rngs::StdRng {
        <rand::rngs::StdRng as rand::SeedableRng>::from_seed(self.seed)
    }

    /// The new secret of `kind` prepared for this step. A transition never hashes one itself:
    /// when none was prepared ([`Saga::fresh_secret`] did not name it), the step fails.
    pub fn fresh_secret(&self, kind: SecretKind) -> Result<&FreshSecret, Failure> {
        self.prepared.filter(|s| s.kind() == kind).ok_or_else(|| {
            Failure::permanent(format!(
                "the step needs a new secret ({kind:?}) that was not prepared: the saga's \
                 fresh_secret and its transition disagree"
            ))
        })
    }
}

/// A database error as a failure: connection trouble is transient, the rest permanent.
pub fn db_failure(e: &sqlx::Error) -> Failure {
    if is_transient(e) {
        Failure::transient(format!("database: {e}"))
    } else {
        Failure::permanent(format!("database: {e}"))
    }
}

/// A timeout a transition asks for; when due it comes back to this saga's queue as a message.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerRequest {
    /// Unique within the saga: setting a timer of the same name replaces it.
    pub name: String,
    /// How long after this step it fires.
    pub after: Duration,
    /// The message it fires.
    pub message: Command,
}

/// The result of a transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Step<S> {
    /// The new state.
    pub state: S,
    /// Messages to send, in order.
    pub commands: Vec<Command>,
    /// Timers to set (or replace).
    pub timers: Vec<TimerRequest>,
    /// Names of timers to cancel.
    pub cancel_timers: Vec<String>,
}

impl<S> Step<S> {
    /// Move to `state` with no effects.
    pub fn to(state: S) -> Self {
        Self {
            state,
            commands: Vec::new(),
            timers: Vec::new(),
            cancel_timers: Vec::new(),
        }
    }

    /// Also send `command`.
    pub fn send(mut self, command: Command) -> Self {
        self.commands.push(command);
        self
    }

    /// Also set a timer.
    pub fn set_timer(mut self, timer: TimerRequest) -> Self {
        self.timers.push(timer);
        self
    }

    /// Also cancel the timer `name`.
    pub fn cancel_timer(mut self, name: impl Into<String>) -> Self {
        self.cancel_timers.push(name.into());
        self
    }
}

/// The saga types a hub runs, with what operators may ask of each: built from the plan's
/// handlers.
pub struct SagaTypes {
    requeue_exchange: String,
    handlers: Vec<Arc<dyn Handler>>,
}

impl std::fmt::Debug for SagaTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaTypes")
            .field("requeue_exchange", &self.requeue_exchange)
            .field("types", &self.types())
            .finish()
    }
}

impl SagaTypes {
    /// The sagas among `handlers` (the others are left out), in `topology`'s namespace.
    pub fn new(topology: &Topology, handlers: impl IntoIterator<Item = Arc<dyn Handler>>) -> Self {
        Self {
            requeue_exchange: topology.requeue_exchange(),
            handlers: handlers
                .into_iter()
                .filter(|h| h.saga().is_some())
                .collect(),
        }
    }

    /// Saga type `saga_type`, if the hub runs it.
    pub fn get(&self, saga_type: &str) -> Option<&dyn SagaControl> {
        self.handlers
            .iter()
            .filter_map(|h| h.saga())
            .find(|s| s.saga_type() == saga_type)
    }

    /// The exchange a cancel (or any message an operator sends a saga) is published to: it
    /// routes by queue name to the saga's work queue.
    pub fn requeue_exchange(&self) -> &str {
        &self.requeue_exchange
    }

    /// The types, for messages.
    pub fn types(&self) -> Vec<String> {
        self.handlers
            .iter()
            .filter_map(|h| h.saga())
            .map(|s| s.saga_type().to_owned())
            .collect()
    }
}
