//! The contracts' bodies in OpenAPI 3.1 documents: the simulators' and the hub's HTTP documents
//! describe the bodies that are contract messages (`authority.decided.v2`, ...) with the
//! published schemas themselves, so each body is written once, in this crate.
//!
//! A document names such a body as a component schema called after the message type
//! (`#/components/schemas/authority.decided.v2`); [`fill_components`] puts the type's published
//! schema there, whole: its `$id` stays, so its local `#/$defs/...` references resolve inside
//! it, as JSON Schema 2020-12 (OpenAPI 3.1's dialect) resolves them against the nearest `$id`.

use serde_json::Value;

use super::find;

/// Declares, in a crate that builds its document with `utoipa`, the stand-ins for contract
/// bodies: empty structs whose component schemas are named after the message types (`DecidedV2
/// = authority::decided::v2` names it `authority.decided.v2`), for the operations' `body =
/// ...`; [`fill_components`] then puts the published schemas in their places.
///
/// ```text
/// contracts::openapi_body! {
///     DecidedV1 = authority::decided::v1,
///     DecidedV2 = authority::decided::v2,
/// }
/// ```
#[macro_export]
macro_rules! openapi_body {
    ($($name:ident = $($segment:ident)::+),+ $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($($segment).+), "`: the contract's published schema.")]
            #[derive(::utoipa::ToSchema)]
            #[schema(as = $($segment)::+)]
            struct $name {}
        )+
    };
}

/// A document names a component after a message type that is not published.
#[derive(Debug, thiserror::Error)]
#[error(
    "the OpenAPI document names the component schema {0:?} after a message type, but no such \
     type is published (contracts::schema::PUBLISHED)"
)]
pub struct UnknownType(pub String);

/// Whether a component's name is a message type's (`authority.decided.v2`): it has a dot, which
/// the names of other schemas (Rust type names) never have.
fn names_a_message_type(name: &str) -> bool {
    name.contains('.')
}

/// The reference to `message_type`'s body in a document: `#/components/schemas/<type>`.
pub fn reference(message_type: &str) -> Value {
    serde_json::json!({"$ref": format!("#/components/schemas/{message_type}")})
}

/// Replaces every component schema of `doc` (an OpenAPI 3.1 document) named after a message
/// type with that type's published schema ([`super::Published::schema`]); the other components
/// stay. The operations keep referring to them by name ([`reference`]).
///
/// # Errors
///
/// [`UnknownType`] for a component named like a message type that is not published.
pub fn fill_components(doc: &mut Value) -> Result<(), UnknownType> {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return Ok(());
    };
    for (name, schema) in schemas.iter_mut() {
        if names_a_message_type(name) {
            let published = find(name).ok_or_else(|| UnknownType(name.clone()))?;
            *schema = published.schema();
        }
    }
    Ok(())
}

/// Puts `message_type`'s published schema into `doc`'s `components.schemas` under the type's
/// name, for a schema the document builds by hand (a `oneOf` of bodies); the [`reference`] to
/// it.
///
/// # Errors
///
/// [`UnknownType`] when `message_type` is not published.
pub fn insert(doc: &mut Value, message_type: &str) -> Result<Value, UnknownType> {
    let published = find(message_type).ok_or_else(|| UnknownType(message_type.to_owned()))?;
    if !doc["components"]["schemas"].is_object() {
        doc["components"]["schemas"] = Value::Object(serde_json::Map::new());
    }
    doc["components"]["schemas"][message_type] = published.schema();
    Ok(reference(message_type))
}

/// `doc` (an OpenAPI 3.1 document) as one JSON Schema 2020-12 that a plain validator, which
/// knows no OpenAPI, compiles to check a body against the schema at `pointer` (`/paths/...`):
/// JSON Schema does not look for `$id`s under `components` (not one of its keywords), so the
/// contract bodies are also put under `$defs` (where it does), and each reference to one of them
/// (`#/components/schemas/<type>`) becomes a reference to its `$id`; their own `#/$defs/...`
/// references then resolve inside them, as an OpenAPI 3.1 tool resolves them.
pub fn as_json_schema(doc: &Value, pointer: &str) -> Value {
    let ids: serde_json::Map<String, Value> = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, schema)| {
            let id = schema.get("$id")?.as_str()?;
            Some((format!("#/components/schemas/{name}"), Value::from(id)))
        })
        .collect();
    let mut root = doc.clone();
    refer_by_id(&mut root, &ids);
    let bodies: serde_json::Map<String, Value> = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, schema)| schema.get("$id").is_some())
        .map(|(name, schema)| (name.clone(), schema.clone()))
        .collect();
    root["$schema"] = super::DIALECT.into();
    root["$defs"] = Value::Object(bodies);
    // A pointer to a contract body itself is a reference to it too.
    let target = format!("#{pointer}");
    root["$ref"] = ids.get(&target).cloned().unwrap_or(target.into());
    root
}

/// Replaces, everywhere in `value`, each `$ref` that `ids` maps with what it maps to.
fn refer_by_id(value: &mut Value, ids: &serde_json::Map<String, Value>) {
    match value {
        Value::Object(map) => {
            if let Some(id) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| ids.get(r))
            {
                map.insert("$ref".into(), id.clone());
            }
            map.values_mut().for_each(|v| refer_by_id(v, ids));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| refer_by_id(v, ids)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_component_named_after_a_type_becomes_its_published_schema() {
        let mut doc = json!({"components": {"schemas": {
            "authority.decided.v2": {"type": "object"},
            "ApiError": {"type": "object"},
        }}});
        fill_components(&mut doc).expect("published");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["authority.decided.v2"],
            find("authority.decided.v2").expect("published").schema()
        );
        assert_eq!(
            schemas["authority.decided.v2"]["$id"],
            "urn:e-services-hub:contracts:schema:authority.decided.v2"
        );
        assert_eq!(schemas["ApiError"], json!({"type": "object"}));
        assert_eq!(
            reference("authority.decided.v2"),
            json!({"$ref": "#/components/schemas/authority.decided.v2"})
        );
    }

    #[test]
    fn a_component_named_after_no_published_type_is_refused() {
        let mut doc = json!({"components": {"schemas": {"authority.decided.v9": {}}}});
        let e = fill_components(&mut doc).expect_err("not published");
        assert!(e.to_string().contains("authority.decided.v9"), "{e}");
        assert!(insert(&mut doc, "authority.decided.v9").is_err());
    }

    #[test]
    fn an_inserted_body_is_the_published_schema_and_its_reference() {
        let mut doc = json!({"paths": {}});
        let at = insert(&mut doc, "authority.complaint_decided.v2").expect("published");
        assert_eq!(at, reference("authority.complaint_decided.v2"));
        assert_eq!(
            doc["components"]["schemas"]["authority.complaint_decided.v2"],
            find("authority.complaint_decided.v2")
                .expect("published")
                .schema()
        );
    }

    #[test]
    fn a_plain_validator_checks_a_body_against_a_filled_document() {
        let mut doc = json!({
            "components": {"schemas": {"authority.decision_refused.v1": {"type": "object"}}},
            "paths": {"/x": {"post": {"requestBody": {"content": {"application/json": {
                "schema": reference("authority.decision_refused.v1")
            }}}}}}
        });
        fill_components(&mut doc).expect("published");
        let pointer = "/paths/~1x/post/requestBody/content/application~1json/schema";
        let validator = jsonschema::validator_for(&as_json_schema(&doc, pointer))
            .expect("the references resolve, the contract's own $defs too");
        let refused = json!({
            "application_id": "6f1d2c3b-4a59-4e8f-9a7b-0c1d2e3f4a5b", "number": "",
            "reason": "unsigned", "detail": "no signature"
        });
        assert!(validator.is_valid(&refused));
        let mut unknown_reason = refused.clone();
        unknown_reason["reason"] = json!("tired");
        assert!(
            !validator.is_valid(&unknown_reason),
            "the reason's enum is in $defs"
        );
    }
}
