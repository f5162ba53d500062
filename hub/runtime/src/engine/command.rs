//! What a saga step or a service sends: a [`Command`], and the envelope it travels in. Both the
//! saga runner and the service runner build their outgoing messages here.

use contracts::{Failure, Message, MessageType, Metadata, Topology};
use uuid::Uuid;

use crate::broker::Envelope;

/// A message a transition sends. It is published to the bus with the message type as routing
/// key, to `reply_to` when it answers a request, or to a party's own queue (`to`).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Its type (`name.vN` on the wire).
    pub message_type: MessageType,
    /// JSON body.
    pub body: Vec<u8>,
    /// When set, the message goes to this queue through the default exchange (a reply).
    pub reply_to: Option<String>,
    /// When set (and `reply_to` is not), the message goes to the queue of this short name in the
    /// hub's namespace through the default exchange: the own queue of the party it is for (a
    /// desk's, the portal's), so that no other party hears it.
    pub to: Option<String>,
    /// Nobody waits for an answer to it (a notification SMS sent by a service on a person's
    /// request): it carries no `reply_to`, and its answers are not sent anywhere.
    pub detached: bool,
    /// Sent as this broker user (`user_id`, which the broker checks against the hub's
    /// connection): set by the bridge that speaks for an HTTP back-office.
    pub user_id: Option<String>,
}

impl Command {
    /// A command or event carrying `message`.
    pub fn new<M: Message>(message: &M) -> Result<Self, Failure> {
        Ok(Self {
            message_type: M::TYPE,
            body: contracts::encode(message)
                .map_err(|e| Failure::permanent(format!("cannot encode {}: {e}", M::TYPE)))?,
            reply_to: None,
            to: None,
            detached: false,
            user_id: None,
        })
    }
}

impl Command {
    /// The same command, with no answer expected (see [`Command::detached`]).
    pub fn detach(mut self) -> Self {
        self.detached = true;
        self
    }

    /// The same command, sent as broker user `user` (see [`Command::user_id`]).
    pub fn as_user(mut self, user: impl Into<String>) -> Self {
        self.user_id = Some(user.into());
        self
    }

    /// The same command, for the party whose own queue has the short name `queue` (see
    /// [`Command::to`]).
    pub fn to_party(mut self, queue: impl Into<String>) -> Self {
        self.to = Some(queue.into());
        self
    }

    /// The same command, answering a request whose reply queue is `queue`.
    pub fn reply_to(mut self, queue: impl Into<String>) -> Self {
        self.reply_to = Some(queue.into());
        self
    }
}

/// The envelope of a message `c` sent because of `cause`: its id is derived from the cause's
/// id and `slot`, so handling the same input twice yields the same ids. It goes to the bus by
/// type, or, when it answers a request (`c.reply_to`), straight to that queue through the
/// default exchange, keeping the request's correlation.
pub(super) fn outgoing(
    topology: &Topology,
    app_id: &str,
    cause: &Metadata,
    slot: &str,
    c: &Command,
) -> Envelope {
    let message_type = c.message_type.to_string();
    let mut metadata = Metadata::caused_by(cause, message_type.clone(), app_id.to_owned())
        .with_message_id(Uuid::new_v5(&cause.message_id, slot.as_bytes()));
    metadata.correlation_id = cause.correlation_id.clone();
    metadata.user_id.clone_from(&c.user_id);
    let (exchange, routing_key) = match (&c.reply_to, &c.to) {
        (Some(queue), _) => (String::new(), queue.clone()),
        (None, Some(party)) => (String::new(), topology.work_queue(party)),
        (None, None) => (topology.bus_exchange(), message_type),
    };
    Envelope {
        exchange,
        routing_key,
        metadata,
        body: c.body.clone(),
    }
}
