//! Every exchange, queue and routing-key name the hub uses, derived from one namespace prefix so
//! that tests and tenants sharing a broker never collide.
//!
//! Under namespace `ns`:
//!
//! | name              | kind            | role                                                    |
//! |-------------------|-----------------|---------------------------------------------------------|
//! | `ns.bus`          | topic exchange  | every message, routing key = message type               |
//! | `ns.unrouted`     | fanout + queue  | alternate exchange of `ns.bus`: messages no queue takes |
//! | `ns.Q`            | quorum queue    | work queue `Q`, bound to `ns.bus` by type patterns      |
//! | `ns.requeue`      | direct exchange | back from a retry tier: routing key = work queue name   |
//! | `ns.retry.N`      | fanout + queue  | retry tier N: waits out its TTL, then dead-letters to   |
//! |                   |                 | `ns.requeue` keeping the routing key (the work queue)   |
//! | `ns.dead`         | direct exchange | dead letters: routing key = work queue name             |
//! | `ns.Q.dead`       | quorum queue    | dead letters of work queue `Q`                          |

use std::time::Duration;

/// A namespace prefix: 1-40 characters of `[a-z0-9_-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

/// A namespace or queue name that breaks the naming rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {rule}")]
pub struct NamespaceError {
    what: &'static str,
    value: String,
    rule: &'static str,
}

impl Namespace {
    /// Checks and wraps a namespace.
    pub fn new(value: impl Into<String>) -> Result<Self, NamespaceError> {
        let value = value.into();
        let ok = (1..=40).contains(&value.len())
            && value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(value))
        } else {
            Err(NamespaceError {
                what: "namespace",
                value,
                rule: "use 1-40 characters of a-z, 0-9, '_' or '-', starting with a letter or digit",
            })
        }
    }

    /// The prefix itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A work queue: its short name (without the namespace) and the message-type patterns it takes
/// from the bus exchange (`#` and `*` as in AMQP topic bindings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Short name, dotted lower case, e.g. `saga.issuance`.
    pub name: String,
    /// Topic patterns over message types, e.g. `issuance.*.v1`.
    pub bindings: Vec<String>,
}

const RESERVED: [&str; 5] = ["bus", "requeue", "retry", "dead", "unrouted"];

impl QueueSpec {
    /// A queue spec; the name is checked when the topology is built.
    pub fn new(
        name: impl Into<String>,
        bindings: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            bindings: bindings.into_iter().map(Into::into).collect(),
        }
    }

    fn check(&self) -> Result<(), NamespaceError> {
        let first = self.name.split('.').next().unwrap_or_default();
        let well_formed = !self.name.is_empty()
            && self.name.split('.').all(|seg| {
                !seg.is_empty()
                    && seg.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
            })
            && !self.name.ends_with(".dead");
        if well_formed && !RESERVED.contains(&first) {
            Ok(())
        } else {
            Err(NamespaceError {
                what: "queue name",
                value: self.name.clone(),
                rule: "use dotted segments of a-z, 0-9, '_' or '-', not starting with bus, requeue, retry, dead or unrouted, not ending with .dead",
            })
        }
    }
}

/// One delayed-retry tier: messages wait here about `delay` before going back to their queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryTier {
    /// The tier's nominal delay; each message's TTL is this with jitter.
    pub delay: Duration,
}

/// The names of one namespace's topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    namespace: Namespace,
    queues: Vec<QueueSpec>,
    retry_tiers: Vec<RetryTier>,
}

impl Topology {
    /// The topology of `namespace` with these work queues and retry tiers (shortest delay first).
    pub fn new(
        namespace: Namespace,
        queues: Vec<QueueSpec>,
        retry_tiers: Vec<RetryTier>,
    ) -> Result<Self, NamespaceError> {
        for q in &queues {
            q.check()?;
        }
        if retry_tiers.is_empty() || retry_tiers.windows(2).any(|w| w[0].delay > w[1].delay) {
            return Err(NamespaceError {
                what: "retry tiers",
                value: format!("{retry_tiers:?}"),
                rule: "give at least one tier, in ascending order of delay",
            });
        }
        Ok(Self {
            namespace,
            queues,
            retry_tiers,
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The work queues.
    pub fn queues(&self) -> &[QueueSpec] {
        &self.queues
    }

    /// The retry tiers, shortest first.
    pub fn retry_tiers(&self) -> &[RetryTier] {
        &self.retry_tiers
    }

    /// The topic exchange every message is published to.
    pub fn bus_exchange(&self) -> String {
        format!("{}.bus", self.namespace)
    }

    /// The alternate exchange of the bus (and its queue, same name): a message that matches
    /// no binding is kept here for operators instead of being dropped.
    pub fn unrouted(&self) -> String {
        format!("{}.unrouted", self.namespace)
    }

    /// The direct exchange that takes messages back from the retry tiers to their queue.
    pub fn requeue_exchange(&self) -> String {
        format!("{}.requeue", self.namespace)
    }

    /// The direct exchange of dead letters.
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.namespace)
    }

    /// Full name of work queue `short`.
    pub fn work_queue(&self, short: &str) -> String {
        format!("{}.{short}", self.namespace)
    }

    /// Full name of the dead-letter queue of work queue `short`.
    pub fn dead_queue(&self, short: &str) -> String {
        format!("{}.{short}.dead", self.namespace)
    }

    /// Name of retry tier `index` (its fanout exchange and its queue share it).
    pub fn retry_tier(&self, index: usize) -> String {
        format!("{}.retry.{}", self.namespace, index + 1)
    }

    /// The tier a message goes to after its `attempt`-th failure (1-based): the n-th tier for
    /// the n-th failure, then the last tier.
    pub fn tier_for_attempt(&self, attempt: u32) -> usize {
        let i = attempt.saturating_sub(1) as usize;
        i.min(self.retry_tiers.len() - 1)
    }

    /// The routing key of a message type on the bus exchange.
    pub fn routing_key(message_type: &crate::MessageType) -> String {
        message_type.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<RetryTier> {
        [1, 5, 30]
            .into_iter()
            .map(|s| RetryTier {
                delay: Duration::from_secs(s),
            })
            .collect()
    }

    #[test]
    fn names_are_derived_from_the_namespace() {
        let ns = Namespace::new("t-42").expect("valid");
        let t = Topology::new(
            ns,
            vec![QueueSpec::new("saga.issuance", ["issuance.#"])],
            tiers(),
        )
        .expect("valid");
        assert_eq!(t.bus_exchange(), "t-42.bus");
        assert_eq!(t.work_queue("saga.issuance"), "t-42.saga.issuance");
        assert_eq!(t.dead_queue("saga.issuance"), "t-42.saga.issuance.dead");
        assert_eq!(t.retry_tier(0), "t-42.retry.1");
        assert_eq!(t.requeue_exchange(), "t-42.requeue");
        assert_eq!(t.dead_exchange(), "t-42.dead");
        assert_eq!(t.tier_for_attempt(1), 0);
        assert_eq!(t.tier_for_attempt(3), 2);
        assert_eq!(t.tier_for_attempt(9), 2);
    }

    #[test]
    fn bad_names_are_refused_with_the_rule() {
        for bad in ["", "Upper", "-lead", "a.b", &"x".repeat(41)] {
            assert!(Namespace::new(bad).is_err(), "{bad:?} accepted");
        }
        let ns = Namespace::new("ns").expect("valid");
        for bad in ["retry.x", "dead", "a..b", "q.dead", "Q"] {
            let err = Topology::new(ns.clone(), vec![QueueSpec::new(bad, ["#"])], tiers())
                .expect_err(bad);
            assert!(err.to_string().contains("queue name"), "{err}");
        }
        let unordered = vec![tiers()[2], tiers()[0]];
        assert!(Topology::new(ns.clone(), vec![], unordered).is_err());
        assert!(Topology::new(ns, vec![], vec![]).is_err());
    }
}
