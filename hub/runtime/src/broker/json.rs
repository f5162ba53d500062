//! A message's properties and headers as JSON, and back: the form the dead-letter keeper keeps
//! them in (`dead_letters.properties`) and the operators' tools read, change and republish,
//! so that nothing outside `broker/` handles AMQP types.

use base64::Engine as _;
use contracts::Metadata;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde_json::{Map, Value};

use super::properties::decode_properties;

/// The text properties, by their AMQP names.
const TEXT_PROPERTIES: [&str; 10] = [
    "message_id",
    "type",
    "correlation_id",
    "app_id",
    "user_id",
    "reply_to",
    "content_type",
    "content_encoding",
    "expiration",
    "cluster_id",
];

/// PostgreSQL text cannot hold NUL characters.
pub(crate) fn clean(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// Every property and header of a message as JSON: the properties by their AMQP names
/// (`message_id`, `type`, `timestamp`, ...), the headers under `headers`. Strings stay strings,
/// numbers numbers, tables objects; byte arrays become base64 text.
pub fn properties_to_json(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let texts = [
        p.message_id(),
        p.kind(),
        p.correlation_id(),
        p.app_id(),
        p.user_id(),
        p.reply_to(),
        p.content_type(),
        p.content_encoding(),
        p.expiration(),
        p.cluster_id(),
    ];
    for (name, v) in TEXT_PROPERTIES.iter().zip(texts) {
        if let Some(v) = v {
            m.insert((*name).to_owned(), Value::String(clean(v.as_str())));
        }
    }
    if let Some(t) = p.timestamp() {
        m.insert("timestamp".into(), Value::from(*t));
    }
    if let Some(d) = p.delivery_mode() {
        m.insert("delivery_mode".into(), Value::from(*d));
    }
    if let Some(d) = p.priority() {
        m.insert("priority".into(), Value::from(*d));
    }
    let headers = p.headers().as_ref().map_or_else(
        || Value::Object(Map::new()),
        |h| table_to_json(h.inner().iter()),
    );
    m.insert("headers".into(), headers);
    Value::Object(m)
}

/// The properties `json` describes, the inverse of [`properties_to_json`] up to integer widths
/// in headers: what it does not name (or names with a value of the wrong type) is left unset.
pub fn properties_from_json(json: &Value) -> BasicProperties {
    let text = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .map(ShortString::from)
    };
    let octet = |name: &str| {
        json.get(name)
            .and_then(Value::as_u64)
            .and_then(|n| u8::try_from(n).ok())
    };
    let mut p = BasicProperties::default();
    let setters: [fn(BasicProperties, ShortString) -> BasicProperties; 10] = [
        BasicProperties::with_message_id,
        BasicProperties::with_type,
        BasicProperties::with_correlation_id,
        BasicProperties::with_app_id,
        BasicProperties::with_user_id,
        BasicProperties::with_reply_to,
        BasicProperties::with_content_type,
        BasicProperties::with_content_encoding,
        BasicProperties::with_expiration,
        BasicProperties::with_cluster_id,
    ];
    for (name, set) in TEXT_PROPERTIES.iter().zip(setters) {
        if let Some(v) = text(name) {
            p = set(p, v);
        }
    }
    if let Some(t) = json.get("timestamp").and_then(Value::as_u64) {
        p = p.with_timestamp(t);
    }
    if let Some(d) = octet("delivery_mode") {
        p = p.with_delivery_mode(d);
    }
    if let Some(d) = octet("priority") {
        p = p.with_priority(d);
    }
    if let Some(h) = json.get("headers").and_then(Value::as_object) {
        p = p.with_headers(json_to_table(h));
    }
    p
}

/// The metadata of a message whose properties `json` describes ([`properties_to_json`]).
///
/// Errors: what is missing or malformed, as [`super::decode_properties`] says it.
pub fn metadata_from_json(json: &Value) -> Result<Metadata, String> {
    decode_properties(&properties_from_json(json))
}

fn table_to_json<'a>(entries: impl Iterator<Item = (&'a ShortString, &'a AMQPValue)>) -> Value {
    Value::Object(
        entries
            .map(|(k, v)| (clean(k.as_str()), amqp_to_json(v)))
            .collect(),
    )
}

/// One AMQP field value as JSON.
fn amqp_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Float(f) => Value::from(f64::from(*f)),
        AMQPValue::Double(f) => Value::from(*f),
        AMQPValue::DecimalValue(d) => {
            Value::from(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(s) => Value::String(clean(s.as_str())),
        AMQPValue::LongString(s) => Value::String(clean(&String::from_utf8_lossy(s.as_bytes()))),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(amqp_to_json).collect()),
        AMQPValue::Timestamp(t) => Value::from(*t),
        AMQPValue::FieldTable(t) => table_to_json(t.inner().iter()),
        AMQPValue::ByteArray(b) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
        }
        AMQPValue::Void => Value::Null,
    }
}

/// A JSON value as an AMQP field value: the inverse of [`amqp_to_json`] up to integer widths
/// (every integer comes back as a 64-bit one, which every reader of the hub accepts).
fn json_to_amqp(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        Value::Array(a) => AMQPValue::FieldArray(FieldArray::from(
            a.iter().map(json_to_amqp).collect::<Vec<_>>(),
        )),
        Value::Object(o) => AMQPValue::FieldTable(json_to_table(o)),
    }
}

/// A JSON object as an AMQP field table.
fn json_to_table(o: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in o {
        table.insert(ShortString::from(k.as_str()), json_to_amqp(v));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::header_u32;

    fn s(v: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()))
    }

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    #[test]
    fn headers_round_trip_through_json() {
        let h = table(&[
            ("s", s("text")),
            ("n", AMQPValue::LongInt(-3)),
            ("b", AMQPValue::Boolean(true)),
            ("a", AMQPValue::FieldArray(vec![s("x")].into())),
            (
                "t",
                AMQPValue::FieldTable(table(&[("k", AMQPValue::LongLongInt(9))])),
            ),
        ]);
        let json = table_to_json(h.inner().iter());
        let back = json_to_table(json.as_object().expect("object"));
        assert_eq!(table_to_json(back.inner().iter()), json);
        assert_eq!(json["n"], -3);
        assert_eq!(json["t"]["k"], 9);
    }

    #[test]
    fn properties_round_trip_through_json() {
        let p = BasicProperties::default()
            .with_message_id("6f1c1a52-3c55-4a43-9c1e-6f0e8a1d1a01".into())
            .with_type("test.deposit.v1".into())
            .with_correlation_id("saga-7".into())
            .with_app_id("desk".into())
            .with_user_id("hub".into())
            .with_reply_to("ns.replies".into())
            .with_content_type("application/json".into())
            .with_content_encoding("identity".into())
            .with_expiration("300".into())
            .with_cluster_id("c".into())
            .with_timestamp(1_772_000_000)
            .with_delivery_mode(2)
            .with_priority(3)
            .with_headers(table(&[
                ("traceparent", s("00-abc-def-01")),
                ("x-hub-attempts", AMQPValue::LongLongInt(2)),
            ]));
        let json = properties_to_json(&p);
        assert_eq!(json["type"], "test.deposit.v1");
        assert_eq!(json["timestamp"], 1_772_000_000);
        assert_eq!(json["headers"]["traceparent"], "00-abc-def-01");
        let back = properties_from_json(&json);
        assert_eq!(back, p);
        assert_eq!(header_u32(&back, "x-hub-attempts"), Some(2));
        let metadata = metadata_from_json(&json).expect("a hub message");
        assert_eq!(metadata.correlation_id.as_deref(), Some("saga-7"));
        assert_eq!(metadata.traceparent.as_deref(), Some("00-abc-def-01"));
    }

    #[test]
    fn what_json_does_not_name_stays_unset() {
        let p = properties_from_json(&serde_json::json!({"type": 7, "priority": 300}));
        assert_eq!(p, BasicProperties::default());
        assert!(metadata_from_json(&serde_json::json!({})).is_err());
    }
}
