//! Metadata <-> AMQP properties and headers, as `contracts::metadata` lays them out.

use chrono::{DateTime, TimeZone, Utc};
use contracts::metadata::CONTENT_TYPE_JSON;
use contracts::{Metadata, headers};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A message ready to publish: where it goes, its metadata and its body. The outbox stores
/// exactly this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Exchange to publish to.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Properties and headers.
    pub metadata: Metadata,
    /// JSON body.
    pub body: Vec<u8>,
}

/// AMQP delivery mode for messages that must survive a broker restart.
const PERSISTENT: u8 = 2;

/// The properties of a persistent JSON message carrying `metadata`.
pub fn encode_properties(metadata: &Metadata) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(c) = metadata.causation_id {
        headers.insert(headers::CAUSATION_ID.into(), long_string(&c.to_string()));
    }
    if let Some(t) = &metadata.traceparent {
        headers.insert(headers::TRACEPARENT.into(), long_string(t));
    }
    let mut p = BasicProperties::default()
        .with_message_id(metadata.message_id.to_string().into())
        .with_type(metadata.message_type.as_str().into())
        .with_timestamp(metadata.timestamp.timestamp().max(0) as u64)
        .with_app_id(metadata.app_id.as_str().into())
        .with_content_type(CONTENT_TYPE_JSON.into())
        .with_delivery_mode(PERSISTENT)
        .with_headers(headers);
    if let Some(c) = &metadata.correlation_id {
        p = p.with_correlation_id(c.as_str().into());
    }
    if let Some(u) = &metadata.user_id {
        p = p.with_user_id(u.as_str().into());
    }
    if let Some(r) = &metadata.reply_to {
        p = p.with_reply_to(r.as_str().into());
    }
    p
}

/// Reads metadata from properties. An error names what is missing or malformed; such a
/// message is invalid input.
pub fn decode_properties(p: &BasicProperties) -> Result<Metadata, String> {
    let message_id = p
        .message_id()
        .as_ref()
        .ok_or("property message_id is missing")?;
    let message_id = Uuid::parse_str(message_id.as_str()).map_err(|_| {
        format!(
            "property message_id {:?} is not a UUID",
            message_id.as_str()
        )
    })?;
    let message_type = p
        .kind()
        .as_ref()
        .ok_or("property type is missing")?
        .to_string();
    if !contracts::MessageType::is_well_formed(&message_type) {
        return Err(format!(
            "property type {message_type:?} is not of the form name.vN"
        ));
    }
    if let Some(ct) = p.content_type()
        && ct.as_str() != CONTENT_TYPE_JSON
    {
        return Err(format!(
            "content type {:?} is not {CONTENT_TYPE_JSON}",
            ct.as_str()
        ));
    }
    let timestamp = p
        .timestamp()
        .and_then(|t| i64::try_from(t).ok())
        .and_then(|t| Utc.timestamp_opt(t, 0).single())
        .unwrap_or_else(Utc::now);
    let causation_id = match header_str(p, headers::CAUSATION_ID) {
        None => None,
        Some(s) => Some(
            Uuid::parse_str(&s).map_err(|_| format!("header causation_id {s:?} is not a UUID"))?,
        ),
    };
    Ok(Metadata {
        message_id,
        message_type,
        correlation_id: p.correlation_id().as_ref().map(ToString::to_string),
        causation_id,
        timestamp,
        app_id: p
            .app_id()
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        user_id: p.user_id().as_ref().map(ToString::to_string),
        reply_to: p.reply_to().as_ref().map(ToString::to_string),
        traceparent: header_str(p, headers::TRACEPARENT),
    })
}

/// A string header, whichever AMQP string type the sender used.
pub fn header_str(p: &BasicProperties, name: &str) -> Option<String> {
    match p.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// An integer header, whichever AMQP integer type the sender used.
pub fn header_u32(p: &BasicProperties, name: &str) -> Option<u32> {
    let v = p.headers().as_ref()?.inner().get(name)?;
    let n: i64 = match v {
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => *n,
        _ => return None,
    };
    u32::try_from(n).ok()
}

/// A time header written by [`set_time`].
pub(crate) fn header_time(p: &BasicProperties, name: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&header_str(p, name)?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// A copy of `p` with these headers set (others kept).
pub(crate) fn with_headers(p: &BasicProperties, set: &[(&str, AMQPValue)]) -> BasicProperties {
    let mut table = p.headers().clone().unwrap_or_default();
    for (k, v) in set {
        table.insert(ShortString::from(*k), v.clone());
    }
    p.clone().with_headers(table)
}

pub(crate) fn time_value(t: DateTime<Utc>) -> AMQPValue {
    long_string(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_properties() {
        let cause = Metadata::new("test.ping.v1", "desk-7").with_correlation_id("saga-1");
        let mut m = Metadata::caused_by(&cause, "test.pong.v1", "hub");
        m.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        m.user_id = Some("hub".into());
        m.reply_to = Some("portal.replies".into());
        let p = encode_properties(&m);
        let back = decode_properties(&p).expect("round trip");
        assert_eq!(back.timestamp.timestamp(), m.timestamp.timestamp());
        assert_eq!(
            Metadata {
                timestamp: m.timestamp,
                ..back
            },
            m
        );
        assert_eq!(p.delivery_mode(), &Some(PERSISTENT));
    }

    #[test]
    fn missing_or_bad_properties_are_named() {
        let no_id = BasicProperties::default().with_type("a.b.v1".into());
        assert_eq!(
            decode_properties(&no_id).expect_err("no id"),
            "property message_id is missing"
        );
        let bad_type = BasicProperties::default()
            .with_message_id(Uuid::new_v4().to_string().into())
            .with_type("Ping".into());
        assert!(
            decode_properties(&bad_type)
                .expect_err("bad type")
                .contains("name.vN")
        );
        let xml = BasicProperties::default()
            .with_message_id(Uuid::new_v4().to_string().into())
            .with_type("a.b.v1".into())
            .with_content_type("text/xml".into());
        assert!(
            decode_properties(&xml)
                .expect_err("xml")
                .contains("text/xml")
        );
    }
}
