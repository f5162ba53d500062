//! The broker runtime: one supervised connection, the topology, a confirming publisher, one
//! consume loop (`runner`) with the consumer runner on it, and the retry / dead-letter
//! [`decision`]. Everything that talks AMQP lives here, so the rest of the hub deals in
//! [`Incoming`] messages and [`Envelope`]s.

mod connection;
mod consumer;
pub mod decision;
mod inspect;
mod json;
mod properties;
mod publisher;
pub(crate) mod runner;
pub mod topology;

pub use connection::{Broker, ConnectError, amqp_urls, connect_first};
pub use consumer::{
    BatchOutcome, Claim, ConsumerSettings, Handler, Incoming, MAX_BODY_BYTES, NamedSenders,
    SenderPolicy, handled_as_duplicate, require_sender, run_consumer,
};
pub use inspect::{InspectError, QueueState};
pub(crate) use json::clean as json_clean;
pub use json::{metadata_from_json, properties_from_json, properties_to_json};
pub use properties::{Envelope, decode_properties, encode_properties, header_str, header_u32};
pub use publisher::{PublishError, Publisher};
pub use topology::{Declaration, DeclareError, declare, declare_topology, describe};

/// The user an AMQP URL logs in as: its user name, or `guest` when it names none (the AMQP
/// URI spec's default). The broker checks a message's `user_id` against it. Of a list of URLs
/// (a cluster's nodes, which share their users), the first's.
pub fn broker_user(amqp_url: &str) -> String {
    url::Url::parse(&first_url(amqp_url))
        .ok()
        .filter(|u| !u.username().is_empty())
        .map_or_else(
            || "guest".to_owned(),
            |u| {
                percent_encoding::percent_decode_str(u.username())
                    .decode_utf8_lossy()
                    .into_owned()
            },
        )
}

/// The virtual host an AMQP URL names: its path, decoded (`%2f` is `/`), or `/` when it names
/// none. Of a list of URLs, the first's.
pub fn vhost(amqp_url: &str) -> String {
    url::Url::parse(&first_url(amqp_url))
        .ok()
        .map(|u| u.path().trim_start_matches('/').to_owned())
        .filter(|p| !p.is_empty())
        .map_or_else(
            || "/".to_owned(),
            |p| {
                percent_encoding::percent_decode_str(&p)
                    .decode_utf8_lossy()
                    .into_owned()
            },
        )
}

/// The first URL of an `AMQP_URL` value.
fn first_url(amqp_url: &str) -> String {
    amqp_urls(amqp_url).into_iter().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_broker_user_comes_from_the_url() {
        assert_eq!(super::broker_user("amqp://hub:pw@h:5672/%2f"), "hub");
        assert_eq!(super::broker_user("amqp://a%40b:pw@h/%2f"), "a@b");
        assert_eq!(super::broker_user("amqp://h:5672/%2f"), "guest");
        assert_eq!(super::vhost("amqp://h:5672/%2f"), "/");
        assert_eq!(super::vhost("amqp://h:5672"), "/");
        assert_eq!(super::vhost("amqp://h:5672/staging"), "staging");
        let cluster = "amqp://hub:pw@h1:5672/staging,amqp://hub:pw@h2:5672/staging";
        assert_eq!(super::broker_user(cluster), "hub");
        assert_eq!(super::vhost(cluster), "staging");
    }
}
