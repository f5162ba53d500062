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

/// `s` as an AMQP short string: at most 255 bytes, cut at a character boundary (a longer one
/// would not encode; the hub fills these from the wire, UUIDs and configuration, which fit).
fn short(s: &str) -> lapin::types::ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].into()
}

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
        .with_type(short(&metadata.message_type))
        .with_timestamp(metadata.timestamp.timestamp().max(0) as u64)
        .with_app_id(short(&metadata.app_id))
        .with_content_type(CONTENT_TYPE_JSON.into())
        .with_delivery_mode(PERSISTENT)
        .with_headers(headers);
    if let Some(c) = &metadata.correlation_id {
        p = p.with_correlation_id(short(c));
    }
    if let Some(u) = &metadata.user_id {
        p = p.with_user_id(short(u));
    }
    if let Some(r) = &metadata.reply_to {
        p = p.with_reply_to(short(r));
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
    fn an_overlong_property_is_cut_not_a_panic() {
        let mut m = Metadata::new("test.ping.v1", "я".repeat(200));
        m.correlation_id = Some("c".repeat(300));
        let decoded = decode_properties(&encode_properties(&m)).expect("decodes");
        // 127 two-byte characters: the cut keeps whole characters within 255 bytes.
        assert_eq!(decoded.app_id, "я".repeat(127));
        assert_eq!(decoded.correlation_id, Some("c".repeat(255)));
    }

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

/// Hostile properties: whatever a publisher puts in them (within what AMQP can carry: short
/// strings of at most 255 bytes, any header value), reading them never panics, and what is
/// accepted is what was sent.
#[cfg(test)]
mod hostile {
    use super::*;
    use lapin::types::{ByteArray, DecimalValue, FieldArray};
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// Cases per property: `PROPTEST_CASES` when set.
    fn config(cases: u32) -> ProptestConfig {
        if std::env::var_os("PROPTEST_CASES").is_some() {
            ProptestConfig::default()
        } else {
            ProptestConfig::with_cases(cases)
        }
    }

    /// `s` cut at a character boundary to the 255 bytes a short string holds.
    fn short(mut s: String) -> ShortString {
        while s.len() > 255 {
            s.pop();
        }
        ShortString::try_new(s).expect("at most 255 bytes")
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,40}",
            "(?s).{0,20}",
            "[\\x00-\\x1f\\x7f\\u{200b}\\u{feff}\\u{10ffff}]{0,10}",
            ("[a-zé😀]", 100usize..300).prop_map(|(c, n)| c.repeat(n)),
        ]
    }

    fn uuid_text() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => Just(Uuid::nil().to_string()),
            4 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
            1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).simple().to_string().to_uppercase()),
            1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).urn().to_string()),
            1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).braced().to_string()),
            1 => "[0-9a-fA-F-]{30,40}",
            1 => any_text(),
        ]
    }

    fn type_text() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-z0-9_]{1,8}(\\.[a-z0-9_]{1,8}){0,3}\\.v[0-9]{1,6}",
            1 => "[a-zA-Z0-9_.+-]{0,20}\\.v[0-9+-]{0,4}",
            1 => any_text(),
        ]
    }

    fn time_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|s| {
                Utc.timestamp_opt(s % 253_402_300_799, 0)
                    .single()
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            }),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
            any_text(),
        ]
    }

    /// Any AMQP field value, tables and arrays a few levels deep.
    fn any_value() -> impl Strategy<Value = AMQPValue> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(AMQPValue::Boolean),
            any::<i8>().prop_map(AMQPValue::ShortShortInt),
            any::<u8>().prop_map(AMQPValue::ShortShortUInt),
            any::<i16>().prop_map(AMQPValue::ShortInt),
            any::<u16>().prop_map(AMQPValue::ShortUInt),
            any::<i32>().prop_map(AMQPValue::LongInt),
            any::<u32>().prop_map(AMQPValue::LongUInt),
            any::<i64>().prop_map(AMQPValue::LongLongInt),
            any::<f32>().prop_map(AMQPValue::Float),
            any::<f64>().prop_map(AMQPValue::Double),
            (any::<u8>(), any::<u32>())
                .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
            any_text().prop_map(|s| AMQPValue::ShortString(short(s))),
            prop_oneof![any_text(), uuid_text(), time_text()].prop_map(|s| long_string(&s)),
            prop::collection::vec(any::<u8>(), 0..64)
                .prop_map(|b| AMQPValue::LongString(LongString::from(b))),
            any::<u64>().prop_map(AMQPValue::Timestamp),
            prop::collection::vec(any::<u8>(), 0..16)
                .prop_map(|b| AMQPValue::ByteArray(ByteArray::from(b))),
            Just(AMQPValue::Void),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
                prop::collection::btree_map(any_text().prop_map(short), inner, 0..4)
                    .prop_map(|m| AMQPValue::FieldTable(FieldTable::from(m))),
            ]
        })
    }

    /// Every header name the hub reads.
    const KNOWN: [&str; 12] = [
        headers::CAUSATION_ID,
        headers::TRACEPARENT,
        headers::ATTEMPTS,
        headers::FIRST_FAILURE,
        headers::LAST_FAILURE,
        headers::ERROR_KIND,
        headers::ERROR_TEXT,
        headers::ORIGINAL_EXCHANGE,
        headers::ORIGINAL_ROUTING_KEY,
        headers::QUEUE,
        headers::REDACTED,
        headers::ORIGINAL_USER_ID,
    ];

    /// A header table: the hub's own names and others, with any values.
    fn any_headers() -> impl Strategy<Value = FieldTable> {
        let name = prop_oneof![
            3 => prop::sample::select(KNOWN.to_vec()).prop_map(ShortString::from),
            1 => any_text().prop_map(short),
        ];
        prop::collection::btree_map(name, any_value(), 0..8).prop_map(FieldTable::from)
    }

    /// Present nine times in ten, so that many properties get past the first check.
    fn maybe_short(
        text: impl Strategy<Value = String>,
    ) -> impl Strategy<Value = Option<ShortString>> {
        prop::option::weighted(0.9, text.prop_map(short))
    }

    prop_compose! {
        fn any_properties()(
            message_id in maybe_short(uuid_text()),
            kind in maybe_short(type_text()),
            content_type in prop::option::of(
                prop_oneof![3 => Just(CONTENT_TYPE_JSON.to_owned()), 1 => any_text()].prop_map(short)
            ),
            timestamp in prop::option::of(prop_oneof![any::<u64>(), 0u64..4_102_444_800]),
            correlation_id in maybe_short(prop_oneof![uuid_text(), any_text()]),
            app_id in maybe_short(any_text()),
            user_id in maybe_short(any_text()),
            reply_to in maybe_short(any_text()),
            expiration in maybe_short(any_text()),
            delivery_mode in prop::option::of(any::<u8>()),
            headers in prop::option::of(any_headers()),
        ) -> BasicProperties {
            let mut p = BasicProperties::default();
            if let Some(v) = message_id { p = p.with_message_id(v); }
            if let Some(v) = kind { p = p.with_type(v); }
            if let Some(v) = content_type { p = p.with_content_type(v); }
            if let Some(v) = timestamp { p = p.with_timestamp(v); }
            if let Some(v) = correlation_id { p = p.with_correlation_id(v); }
            if let Some(v) = app_id { p = p.with_app_id(v); }
            if let Some(v) = user_id { p = p.with_user_id(v); }
            if let Some(v) = reply_to { p = p.with_reply_to(v); }
            if let Some(v) = expiration { p = p.with_expiration(v); }
            if let Some(v) = delivery_mode { p = p.with_delivery_mode(v); }
            if let Some(v) = headers { p = p.with_headers(v); }
            p
        }
    }

    fn text_of(s: &Option<ShortString>) -> Option<String> {
        s.as_ref().map(ToString::to_string)
    }

    /// The properties above are worth as much as the share of them that gets past the checks.
    #[test]
    fn many_generated_properties_are_accepted() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let accepted = (0..400)
            .filter(|_| {
                let p = any_properties()
                    .new_tree(&mut runner)
                    .expect("a value")
                    .current();
                decode_properties(&p).is_ok()
            })
            .count();
        assert!(accepted >= 40, "only {accepted} of 400 accepted");
    }

    proptest! {
        #![proptest_config(config(512))]

        #[test]
        fn any_properties_are_read_or_refused_without_a_panic(p in any_properties()) {
            // Every header reader the consumer and the operators' tools use, on every name.
            for name in KNOWN {
                let _ = (header_str(&p, name), header_time(&p, name));
                if let Some(n) = header_u32(&p, name) {
                    let raw = p.headers().as_ref().and_then(|h| h.inner().get(name).cloned());
                    prop_assert!(
                        matches!(
                            raw,
                            Some(
                                AMQPValue::ShortShortInt(_) | AMQPValue::ShortShortUInt(_)
                                    | AMQPValue::ShortInt(_) | AMQPValue::ShortUInt(_)
                                    | AMQPValue::LongInt(_) | AMQPValue::LongUInt(_)
                                    | AMQPValue::LongLongInt(_)
                            )
                        ),
                        "{n} read from {raw:?}"
                    );
                }
            }
            let Ok(m) = decode_properties(&p) else {
                return Ok(());
            };
            // Accepted: the metadata is what was sent.
            let id = text_of(p.message_id()).expect("a message id was required");
            prop_assert_eq!(Some(m.message_id), Uuid::parse_str(&id).ok());
            prop_assert_eq!(Some(m.message_type.clone()), text_of(p.kind()));
            prop_assert!(contracts::MessageType::is_well_formed(&m.message_type));
            prop_assert!(p.content_type().as_ref().is_none_or(|c| c.as_str() == CONTENT_TYPE_JSON));
            prop_assert_eq!(&m.correlation_id, &text_of(p.correlation_id()));
            prop_assert_eq!(&m.user_id, &text_of(p.user_id()));
            prop_assert_eq!(&m.reply_to, &text_of(p.reply_to()));
            prop_assert_eq!(&m.app_id, &text_of(p.app_id()).unwrap_or_default());
            prop_assert_eq!(&m.traceparent, &header_str(&p, headers::TRACEPARENT));
            prop_assert_eq!(
                m.causation_id,
                header_str(&p, headers::CAUSATION_ID).and_then(|s| Uuid::parse_str(&s).ok())
            );
            if let Some(t) = p.timestamp().and_then(|t| i64::try_from(t).ok())
                && let Some(sent) = Utc.timestamp_opt(t, 0).single()
            {
                prop_assert_eq!(m.timestamp, sent);
            }
            // And what the hub reads it republishes unchanged (to the second).
            let again = decode_properties(&encode_properties(&m)).expect("its own properties");
            prop_assert_eq!(again.timestamp.timestamp(), m.timestamp.timestamp());
            prop_assert_eq!(Metadata { timestamp: m.timestamp, ..again }, m);
        }

        #[test]
        fn a_valid_message_with_one_property_or_header_replaced_is_read_or_refused(
            which in 0usize..6,
            text in any_text(),
            name in any::<Index>(),
            value in any_value(),
        ) {
            let mut m = Metadata::new("test.ping.v1", "desk-7").with_correlation_id("saga-1");
            m.causation_id = Some(Uuid::new_v4());
            m.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
            let p = encode_properties(&m);
            let text = short(text);
            let p = match which {
                0 => p.with_message_id(text),
                1 => p.with_type(text),
                2 => p.with_content_type(text),
                3 => p.with_correlation_id(text),
                4 => p.with_app_id(text),
                _ => with_headers(&p, &[(KNOWN[name.index(KNOWN.len())], value)]),
            };
            let _ = decode_properties(&p);
        }
    }
}
