//! The AsyncAPI 3.0 document of the hub's bus, for agencies that do not read Rust.
//!
//! It is generated from what the hub enforces, so it cannot say one thing while the hub does
//! another: the channels are the bus exchange and the parties' queues ([`crate::parties`]), the
//! operations are each party role's sends (the access matrix, [`MATRIX`]) and receives (the types
//! the hub addresses to that party), and every message's payload is the JSON Schema of its body
//! ([`contracts::schema`], `schemas/<type>.json` beside the document). `hub contracts export`
//! writes it as `asyncapi.json`.
//!
//! Messages of the hub's own (its sagas' commands to its adapters and their results, the
//! registry's, the operators') travel the same bus; the document lists them on the bus channel
//! under the `hub` role, so an agency sees that they exist and that it may neither send nor hear
//! them.

use std::collections::HashSet;

use contracts::schema::{PUBLISHED, Published};
use contracts::{MessageType, headers};
use serde_json::{Map, Value, json};

use crate::parties::{DIRECT_REPLY_TO, MATRIX, RECIPIENTS, Recipient, Sender};

/// The AsyncAPI version written.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// The version of the AMQP bindings written.
const AMQP_BINDING_VERSION: &str = "0.3.0";

/// The schema format of the payloads: JSON Schema 2020-12.
pub const PAYLOAD_SCHEMA_FORMAT: &str = "application/schema+json;version=2020-12";

/// A party role and what it sends and hears.
struct Role {
    /// The operation id prefix (`portal`, `desk`, `authority`, `hub`).
    id: &'static str,
    /// Who that is, in words.
    who: &'static str,
    /// The channel it hears on (`None`: the hub's own, the bus).
    queue_channel: Option<&'static str>,
    sends: Vec<&'static Published>,
    receives: Vec<&'static Published>,
}

fn published(t: MessageType) -> &'static Published {
    PUBLISHED
        .iter()
        .find(|p| p.message_type == t)
        .unwrap_or_else(|| {
            panic!("{t} is in the access matrix but not in contracts::schema::PUBLISHED")
        })
}

/// The hub's messages to authorities: every `authority.*` type no party sends.
fn to_authorities() -> Vec<&'static Published> {
    PUBLISHED
        .iter()
        .filter(|p| {
            p.message_type.name.starts_with("authority.")
                && !MATRIX.iter().any(|(t, _)| *t == p.message_type)
        })
        .collect()
}

fn roles() -> Vec<Role> {
    let sent_by = |s: Sender| -> Vec<&'static Published> {
        MATRIX
            .iter()
            .filter(|(_, who)| *who == s)
            .map(|(t, _)| published(*t))
            .collect()
    };
    let heard_by = |r: Recipient| -> Vec<&'static Published> {
        RECIPIENTS
            .iter()
            .filter(|(_, who)| *who == r)
            .map(|(t, _)| published(*t))
            .collect()
    };
    let authorities = to_authorities();
    let party_types: HashSet<MessageType> = MATRIX
        .iter()
        .map(|(t, _)| *t)
        .chain(RECIPIENTS.iter().map(|(t, _)| *t))
        .chain(authorities.iter().map(|p| p.message_type))
        .collect();
    let internal: Vec<&'static Published> = PUBLISHED
        .iter()
        .filter(|p| !party_types.contains(&p.message_type))
        .collect();
    vec![
        Role {
            id: "portal",
            who: "the portal (its one broker user, HUB_PORTAL_USER)",
            queue_channel: Some("portalQueue"),
            sends: sent_by(Sender::Portal),
            receives: heard_by(Recipient::Portal),
        },
        Role {
            id: "desk",
            who: "an issuance desk (broker user `desk-<id>`), only for the desk its body names",
            queue_channel: Some("deskQueue"),
            sends: sent_by(Sender::Desk),
            receives: heard_by(Recipient::Desk),
        },
        Role {
            id: "authority",
            who: "an authority on the bus (its own broker user from the catalogue), only about \
                  its own applications and complaints",
            queue_channel: Some("authorityQueue"),
            sends: sent_by(Sender::OwningAuthority),
            receives: authorities,
        },
        Role {
            id: "hub",
            who: "the hub itself: its sagas' commands to its adapters and their results, the \
                  registry's and the operators' messages. No party may send these (the access \
                  matrix refuses them) and none hears them",
            queue_channel: None,
            sends: internal.clone(),
            receives: internal,
        },
    ]
}

/// The message id of a type in the document: its wire form (`procedure.submit.v1`).
fn message_id(p: &Published) -> String {
    p.message_type.to_string()
}

fn message(p: &Published) -> Value {
    let schema = p.schema();
    let description = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let summary = description
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .replace('\n', " ");
    json!({
        "name": message_id(p),
        "title": message_id(p),
        "summary": summary,
        "description": description,
        "contentType": contracts::metadata::CONTENT_TYPE_JSON,
        "payload": {
            "schemaFormat": PAYLOAD_SCHEMA_FORMAT,
            "schema": {"$ref": format!("schemas/{}", p.file_name())}
        },
        "traits": [{"$ref": "#/components/messageTraits/envelope"}],
        "bindings": {"amqp": {
            "messageType": message_id(p),
            "bindingVersion": AMQP_BINDING_VERSION
        }},
        "x-rust-type": p.rust_type,
    })
}

/// The headers and properties every message carries (the envelope trait).
fn envelope() -> Value {
    json!({
        "summary": "The hub's envelope: AMQP properties and headers of every message.",
        "description": "AMQP properties (not headers): `message_id` (a UUID, unique per message; \
            the receiver deduplicates by it, so a re-send keeps it), `type` (the message type, \
            `name.vN`, also the routing key on the bus), `user_id` (the sender's broker user; the \
            broker refuses a message whose user_id is not the connection's, and the hub refuses a \
            type that user may not send), `correlation_id` (the saga or request it belongs to: an \
            authority echoes the one of the application it answers; the hub puts the request's \
            on a reply), `reply_to` (on the portal's cabinet requests: the sender's own queue or \
            `amq.rabbitmq.reply-to`, anything else is refused), `timestamp` (seconds), \
            `content_type` `application/json`, `delivery_mode` 2 (persistent). Publish with \
            publisher confirms and `mandatory`.",
        "headers": {
            "type": "object",
            "properties": {
                headers::TRACEPARENT: {
                    "type": "string",
                    "description": "W3C trace context (traceparent), so one trace follows a whole saga.",
                    "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
                },
                headers::CAUSATION_ID: {
                    "type": "string",
                    "format": "uuid",
                    "description": "The message_id of the message that caused this one."
                }
            }
        },
        "x-amqp-properties": {
            "type": "object",
            "required": ["message_id", "type", "timestamp", "content_type"],
            "properties": {
                "message_id": {"type": "string", "format": "uuid"},
                "type": {"type": "string", "pattern": "^[a-z0-9_]+(\\.[a-z0-9_]+)*\\.v[1-9][0-9]*$"},
                "user_id": {"type": "string"},
                "correlation_id": {"type": "string"},
                "reply_to": {"type": "string", "description": format!(
                    "The sender's own queue or {DIRECT_REPLY_TO}")},
                "timestamp": {"type": "integer", "description": "Unix seconds."},
                "content_type": {"const": contracts::metadata::CONTENT_TYPE_JSON},
                "app_id": {"type": "string"}
            }
        }
    })
}

fn queue_binding(address: &str) -> Value {
    json!({"amqp": {
        "is": "queue",
        "queue": {"name": address, "durable": true, "exclusive": false, "autoDelete": false, "vhost": "/"},
        "bindingVersion": AMQP_BINDING_VERSION
    }})
}

fn channel_messages(list: &[&'static Published]) -> Value {
    let map: Map<String, Value> = list
        .iter()
        .map(|p| {
            (
                message_id(p),
                json!({"$ref": format!("#/components/messages/{}", message_id(p))}),
            )
        })
        .collect();
    Value::Object(map)
}

fn channels(roles: &[Role]) -> Value {
    let on_bus: Vec<&'static Published> = roles
        .iter()
        .flat_map(|r| r.sends.iter().copied())
        .collect::<Vec<_>>();
    let heard = |id: &str| -> Vec<&'static Published> {
        roles
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.receives.clone())
            .unwrap_or_default()
    };
    let ns = json!({"$ref": "#/components/parameters/namespace"});
    json!({
        "bus": {
            "address": "{namespace}.bus",
            "title": "The bus",
            "description": "The topic exchange every party publishes to, with the message type as \
                the routing key. Nothing a party hears comes from it by binding: the hub sends \
                each party its messages straight to its queue.",
            "parameters": {"namespace": ns},
            "messages": channel_messages(&on_bus),
            "bindings": {"amqp": {
                "is": "routingKey",
                "exchange": {"name": "{namespace}.bus", "type": "topic", "durable": true, "autoDelete": false, "vhost": "/"},
                "bindingVersion": AMQP_BINDING_VERSION
            }}
        },
        "portalQueue": {
            "address": "{namespace}.portal",
            "title": "The portal's queue",
            "description": "The portal's events and the answers to its requests. Only the portal's broker user may read it.",
            "parameters": {"namespace": ns},
            "messages": channel_messages(&heard("portal")),
            "bindings": queue_binding("{namespace}.portal")
        },
        "deskQueue": {
            "address": "{namespace}.desk.{deskId}",
            "title": "A desk's queue",
            "description": "One issuance desk's events (the applications it took). Only that desk's broker user (`desk-<deskId>`) may read it.",
            "parameters": {"namespace": ns, "deskId": {"description": "The desk's id, as declared in HUB_DESKS."}},
            "messages": channel_messages(&heard("desk")),
            "bindings": queue_binding("{namespace}.desk.{deskId}")
        },
        "authorityQueue": {
            "address": "{namespace}.authority.{authorityId}",
            "title": "An authority's queue",
            "description": "One authority's applications, withdrawals, receipts, answers and complaints. Only the authority's broker user may read it.",
            "parameters": {"namespace": ns, "authorityId": {"description": "The authority's id in the hub's catalogue (`mns`, `minsk_gik`)."}},
            "messages": channel_messages(&heard("authority")),
            "bindings": queue_binding("{namespace}.authority.{authorityId}")
        }
    })
}

fn operations(roles: &[Role]) -> Value {
    let refs = |channel: &str, list: &[&'static Published]| -> Value {
        list.iter()
            .map(|p| json!({"$ref": format!("#/channels/{channel}/messages/{}", message_id(p))}))
            .collect()
    };
    let mut ops = Map::new();
    for r in roles {
        let (send_title, send_desc) = if r.id == "hub" {
            (
                "The hub's own messages".to_owned(),
                format!("Sent and handled by {}.", r.who),
            )
        } else {
            (
                format!("What the {} sends", r.id),
                format!(
                    "Published to the bus by {}. Any other sender is refused: the message is \
                     dead-lettered with a reason that names the user, its role and the type.",
                    r.who
                ),
            )
        };
        ops.insert(
            format!("{}Sends", r.id),
            json!({
                "action": "send",
                "channel": {"$ref": "#/channels/bus"},
                "title": send_title,
                "description": send_desc,
                "messages": refs("bus", &r.sends),
                "bindings": {"amqp": {"deliveryMode": 2, "mandatory": true, "bindingVersion": AMQP_BINDING_VERSION}}
            }),
        );
        if let Some(channel) = r.queue_channel {
            ops.insert(
                format!("{}Receives", r.id),
                json!({
                    "action": "receive",
                    "channel": {"$ref": format!("#/channels/{channel}")},
                    "title": format!("What the {} hears", r.id),
                    "description": format!("Delivered to the queue of {}; acknowledge after handling, deduplicate by message_id.", r.who),
                    "messages": refs(channel, &r.receives),
                    "bindings": {"amqp": {"ack": true, "bindingVersion": AMQP_BINDING_VERSION}}
                }),
            );
        }
    }
    Value::Object(ops)
}

/// The AsyncAPI 3.0 document of the bus; `version` is the contracts' release it describes.
pub fn document(version: &str) -> Value {
    let roles = roles();
    let messages: Map<String, Value> = PUBLISHED
        .iter()
        .map(|p| (message_id(p), message(p)))
        .collect();
    json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "E-services integration hub: the bus",
            "version": version,
            "description": "The queue contracts of the integration hub of the national portal of \
                electronic services: what the portal, the issuance desks and the authorities send \
                to the hub and hear from it over RabbitMQ. Each body's JSON Schema is in \
                `schemas/`. Within one major version (`.vN` of a type) only additive, optional \
                changes are made; a breaking change is a new version, and both are served until \
                agencies move (see CHANGELOG.md).",
            "license": {"name": "Apache-2.0"}
        },
        "defaultContentType": contracts::metadata::CONTENT_TYPE_JSON,
        "servers": {
            "production": {
                "host": "{broker}:5671",
                "protocol": "amqps",
                "protocolVersion": "0.9.1",
                "description": "Production: TLS 1.2+ with the broker's CA; each party logs in as its own broker user (TLS client certificate or password, as the operator issues).",
                "variables": {"broker": {"default": "rabbitmq", "description": "The broker's host name, as its certificate names it."}},
                "security": [{"$ref": "#/components/securitySchemes/brokerUser"}]
            },
            "development": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The lab (`hub run`) on one machine, without TLS.",
                "security": [{"$ref": "#/components/securitySchemes/brokerUser"}]
            }
        },
        "channels": channels(&roles),
        "operations": operations(&roles),
        "components": {
            "messages": messages,
            "messageTraits": {"envelope": envelope()},
            "parameters": {"namespace": {
                "description": "The hub's namespace (HUB_NAMESPACE): every exchange and queue name starts with it.",
                "default": "hub"
            }},
            "securitySchemes": {"brokerUser": {
                "type": "userPassword",
                "description": "The party's own broker user; the broker checks each message's user_id against it."
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn operation_types(doc: &Value, op: &str) -> BTreeSet<String> {
        doc["operations"][op]["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{op} has messages"))
            .iter()
            .map(|m| {
                let r = m["$ref"].as_str().expect("a reference");
                r.rsplit('/').next().expect("an id").to_owned()
            })
            .collect()
    }

    #[test]
    fn each_roles_sends_are_exactly_its_row_of_the_access_matrix() {
        let doc = document("test");
        for (op, sender) in [
            ("portalSends", Sender::Portal),
            ("deskSends", Sender::Desk),
            ("authoritySends", Sender::OwningAuthority),
        ] {
            let matrix: BTreeSet<String> = MATRIX
                .iter()
                .filter(|(_, s)| *s == sender)
                .map(|(t, _)| t.to_string())
                .collect();
            assert_eq!(operation_types(&doc, op), matrix, "{op}");
        }
        // No party's message is listed as the hub's own, and the other way round.
        let hub = operation_types(&doc, "hubSends");
        assert!(MATRIX.iter().all(|(t, _)| !hub.contains(&t.to_string())));
        assert!(hub.contains("mvd.reconcile.v1"), "{hub:?}");
    }

    #[test]
    fn every_message_reference_resolves_and_every_type_is_a_message() {
        let doc = document("test");
        let messages = doc["components"]["messages"].as_object().expect("messages");
        assert_eq!(messages.len(), PUBLISHED.len());
        for (id, op) in doc["operations"].as_object().expect("operations") {
            for m in op["messages"].as_array().expect("messages") {
                let r = m["$ref"].as_str().expect("a reference");
                let target = doc
                    .pointer(r.trim_start_matches('#'))
                    .unwrap_or_else(|| panic!("{id}: {r} does not resolve"));
                let inner = target["$ref"]
                    .as_str()
                    .expect("a channel message refers on");
                assert!(
                    doc.pointer(inner.trim_start_matches('#')).is_some(),
                    "{inner}"
                );
            }
        }
        assert_eq!(
            operation_types(&doc, "portalReceives"),
            RECIPIENTS
                .iter()
                .filter(|(_, r)| *r == Recipient::Portal)
                .map(|(t, _)| t.to_string())
                .collect()
        );
    }
}
