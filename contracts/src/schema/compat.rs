//! The compatibility gate: within one major version a message type may only gain optional
//! fields, values and variants. [`breaking_changes`] compares a type's released schema with the
//! one the code generates now and names, in words, every change that would break an agency
//! written against the release:
//!
//! - a field removed or renamed (a rename is a removal and an addition);
//! - a field that became required, or a new required field;
//! - a type narrowed (`["string", "null"]` to `"string"`, `number` to `integer`), or changed;
//! - an enum value, a constant or a variant of a tagged union removed, or a value set imposed
//!   where any value was allowed;
//! - a `pattern` or `format` added or changed, a length or range tightened;
//! - extra fields refused where they were allowed (`additionalProperties: false`).
//!
//! A message type removed altogether is found by [`removed_types`]. Descriptions, examples and
//! titles may change freely. A change the gate cannot prove additive (a union whose variants
//! cannot be matched) counts as breaking: the gate errs on the side of the agency.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// How deep the comparison follows nested schemas (a guard against a recursive type).
const MAX_DEPTH: usize = 64;

/// The breaking changes from `old` (the released schema of `message_type`) to `new` (the
/// generated one), each a sentence that names the field by its path (`document.verdict`).
pub fn breaking_changes(message_type: &str, old: &Value, new: &Value) -> Vec<String> {
    let cx = Cx { old, new };
    let mut out = Vec::new();
    cx.compare("", old, new, 0, &mut out);
    out.into_iter()
        .map(|b| format!("{message_type}: {b}"))
        .collect()
}

/// The message types in `released` (file name -> schema) that `current` lacks.
pub fn removed_types(
    released: &BTreeMap<String, Value>,
    current: &BTreeMap<String, Value>,
) -> Vec<String> {
    released
        .keys()
        .filter(|k| !current.contains_key(*k))
        .map(|k| {
            format!(
                "{}: message type removed (agencies may still send or expect it; serve it until \
                 they move, or retire it in a release)",
                k.trim_end_matches(".json")
            )
        })
        .collect()
}

/// Every breaking change between two released sets (file name -> schema): removed types and
/// each type's breaks, in file-name order.
pub fn gate(released: &BTreeMap<String, Value>, current: &BTreeMap<String, Value>) -> Vec<String> {
    let mut out = removed_types(released, current);
    for (file, old) in released {
        if let Some(new) = current.get(file) {
            out.extend(breaking_changes(file.trim_end_matches(".json"), old, new));
        }
    }
    out
}

struct Cx<'a> {
    old: &'a Value,
    new: &'a Value,
}

/// A schema with its `$ref` followed and a `null` alternative taken apart.
struct Shape<'a> {
    schema: &'a Value,
    nullable: bool,
}

fn shape<'a>(root: &'a Value, mut schema: &'a Value) -> Shape<'a> {
    let mut nullable = false;
    for _ in 0..MAX_DEPTH {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match resolve(root, r) {
                Some(target) => {
                    schema = target;
                    continue;
                }
                None => break,
            }
        }
        // `Option<T>` of a referenced type: `anyOf: [T, {"type": "null"}]`.
        let alternatives = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(alts) = alternatives
            && alts.len() == 2
            && let Some(i) = alts.iter().position(is_null_schema)
        {
            nullable = true;
            schema = &alts[1 - i];
            continue;
        }
        break;
    }
    Shape { schema, nullable }
}

fn is_null_schema(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("null")
        || s.get("const").is_some_and(Value::is_null)
}

fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

/// The JSON types a schema allows, without `null` (`None`: any).
fn types(s: &Value) -> Option<BTreeSet<String>> {
    let set: BTreeSet<String> = match s.get("type")? {
        Value::String(t) => [t.clone()].into(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => return None,
    };
    Some(set.into_iter().filter(|t| t != "null").collect())
}

fn allows_null(s: &Value) -> bool {
    match s.get("type") {
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
        Some(Value::String(t)) => t == "null",
        _ => false,
    }
}

/// The values a schema restricts to (`enum`, `const`, or a union of those), if it does.
fn values(root: &Value, s: &Value) -> Option<BTreeSet<String>> {
    if let Some(c) = s.get("const") {
        return Some([c.to_string()].into());
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return Some(e.iter().map(Value::to_string).collect());
    }
    let alts = s
        .get("oneOf")
        .or_else(|| s.get("anyOf"))
        .and_then(Value::as_array)?;
    let mut all = BTreeSet::new();
    for a in alts {
        all.extend(values(root, shape(root, a).schema)?);
    }
    Some(all)
}

/// The tag of a variant of an internally tagged union: the property whose schema is a
/// `const` (`"outcome": {"const": "logged_in"}`), as `outcome=logged_in`.
fn tag(root: &Value, variant: &Value) -> Option<String> {
    let props = variant.get("properties")?.as_object()?;
    props.iter().find_map(|(name, p)| {
        let p = shape(root, p).schema;
        let c = p.get("const").or_else(|| {
            p.get("enum")
                .and_then(Value::as_array)
                .filter(|e| e.len() == 1)
                .and_then(|e| e.first())
        })?;
        Some(format!("{name}={c}"))
    })
}

fn field(path: &str) -> String {
    if path.is_empty() {
        "the body".to_owned()
    } else {
        format!("`{path}`")
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

impl Cx<'_> {
    fn compare(&self, path: &str, old: &Value, new: &Value, depth: usize, out: &mut Vec<String>) {
        if depth > MAX_DEPTH {
            return;
        }
        let o = shape(self.old, old);
        let n = shape(self.new, new);
        let (os, ns) = (o.schema, n.schema);
        let old_nullable = o.nullable || allows_null(os);
        let new_nullable = n.nullable || allows_null(ns);
        if old_nullable && !new_nullable {
            out.push(format!("{}: null is no longer allowed", field(path)));
        }
        self.compare_types(path, os, ns, out);
        self.compare_values(path, os, ns, out);
        compare_constraints(path, os, ns, out);
        self.compare_objects(path, os, ns, depth, out);
        if let (Some(oi), Some(ni)) = (os.get("items"), ns.get("items")) {
            self.compare(&format!("{path}[]"), oi, ni, depth + 1, out);
        }
        self.compare_variants(path, os, ns, depth, out);
    }

    fn compare_types(&self, path: &str, os: &Value, ns: &Value, out: &mut Vec<String>) {
        match (types(os), types(ns)) {
            (Some(ot), Some(nt)) => {
                // An integer is a number; a number where an integer was is wider.
                let widened = |t: &String| {
                    nt.contains(t) || (t.as_str() == "integer" && nt.contains("number"))
                };
                let lost: Vec<&String> = ot.iter().filter(|t| !widened(t)).collect();
                if !lost.is_empty() {
                    out.push(format!(
                        "{}: type narrowed or changed from {} to {}",
                        field(path),
                        list(&ot),
                        list(&nt)
                    ));
                }
            }
            (None, Some(nt)) if !has_union(os) => out.push(format!(
                "{}: type restricted to {} where any was allowed",
                field(path),
                list(&nt)
            )),
            _ => {}
        }
    }

    fn compare_values(&self, path: &str, os: &Value, ns: &Value, out: &mut Vec<String>) {
        match (values(self.old, os), values(self.new, ns)) {
            (Some(ov), Some(nv)) => {
                for v in ov.difference(&nv) {
                    out.push(format!("{}: value {v} removed", field(path)));
                }
            }
            (None, Some(nv)) => out.push(format!(
                "{}: restricted to the values {} where any was allowed",
                field(path),
                nv.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
            _ => {}
        }
    }

    fn compare_objects(
        &self,
        path: &str,
        os: &Value,
        ns: &Value,
        depth: usize,
        out: &mut Vec<String>,
    ) {
        let empty = serde_json::Map::new();
        let op = os
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let np = ns
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let required = |s: &Value| -> BTreeSet<String> {
            s.get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (or, nr) = (required(os), required(ns));
        for (name, ov) in op {
            let p = join(path, name);
            match np.get(name) {
                None => out.push(format!(
                    "{}: field removed (or renamed): agencies that send or read it break",
                    field(&p)
                )),
                Some(nv) => self.compare(&p, ov, nv, depth + 1, out),
            }
        }
        for name in nr.difference(&or) {
            let p = join(path, name);
            if op.contains_key(name) {
                out.push(format!("{}: optional field became required", field(&p)));
            } else {
                out.push(format!(
                    "{}: new required field: a sender written against the release omits it",
                    field(&p)
                ));
            }
        }
        let closed = |s: &Value| s.get("additionalProperties") == Some(&Value::Bool(false));
        if !op.is_empty() && !closed(os) && closed(ns) {
            out.push(format!(
                "{}: extra fields are now refused (additionalProperties: false)",
                field(path)
            ));
        }
    }

    fn compare_variants(
        &self,
        path: &str,
        os: &Value,
        ns: &Value,
        depth: usize,
        out: &mut Vec<String>,
    ) {
        let variants = |s: &Value| {
            s.get("oneOf")
                .or_else(|| s.get("anyOf"))
                .and_then(Value::as_array)
                .cloned()
        };
        let (Some(ov), Some(nv)) = (variants(os), variants(ns)) else {
            return;
        };
        // Unions of plain values were compared by their values.
        if values(self.old, os).is_some() && values(self.new, ns).is_some() {
            return;
        }
        let tags = |root: &Value, vs: &[Value]| -> Option<Vec<String>> {
            vs.iter()
                .map(|v| tag(root, shape(root, v).schema))
                .collect()
        };
        match (tags(self.old, &ov), tags(self.new, &nv)) {
            (Some(ot), Some(nt)) => {
                for (i, t) in ot.iter().enumerate() {
                    match nt.iter().position(|x| x == t) {
                        None => out.push(format!("{}: variant {t} removed", field(path))),
                        Some(j) => {
                            self.compare(&format!("{path}<{t}>"), &ov[i], &nv[j], depth + 1, out)
                        }
                    }
                }
            }
            _ if ov == nv => {}
            _ if ov.len() <= nv.len() => {
                for (i, (o, n)) in ov.iter().zip(&nv).enumerate() {
                    self.compare(&format!("{path}<{i}>"), o, n, depth + 1, out);
                }
            }
            _ => out.push(format!(
                "{}: a variant of the union was removed ({} before, {} now)",
                field(path),
                ov.len(),
                nv.len()
            )),
        }
    }
}

fn has_union(s: &Value) -> bool {
    s.get("oneOf").is_some() || s.get("anyOf").is_some() || s.get("allOf").is_some()
}

fn list(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(" | ")
}

/// A value as a break names it: at most 40 characters of its JSON.
fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

/// `pattern`, `format`, lengths and ranges: any new or tighter one narrows what is accepted.
fn compare_constraints(path: &str, os: &Value, ns: &Value, out: &mut Vec<String>) {
    for key in ["pattern", "format"] {
        let (o, n) = (os.get(key), ns.get(key));
        if n.is_some() && o != n {
            out.push(format!(
                "{}: {key} {} where it was {}",
                field(path),
                n.map_or("none".to_owned(), short),
                o.map_or("none".to_owned(), short)
            ));
        }
    }
    let num = |s: &Value, k: &str| s.get(k).and_then(Value::as_f64);
    // A lower bound raised or an upper bound lowered (or either added) narrows.
    let bounds = [
        ("minLength", true),
        ("minimum", true),
        ("exclusiveMinimum", true),
        ("minItems", true),
        ("maxLength", false),
        ("maximum", false),
        ("exclusiveMaximum", false),
        ("maxItems", false),
    ];
    for (key, lower) in bounds {
        let Some(n) = num(ns, key) else { continue };
        let tighter = num(os, key).is_none_or(|o| if lower { n > o } else { n < o });
        if tighter {
            let moved = if lower { "raised" } else { "lowered" };
            out.push(format!("{}: {key} {moved} to {n}", field(path)));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(properties: Value, required: &[&str]) -> Value {
        json!({"type": "object", "properties": properties, "required": required})
    }

    #[test]
    fn an_unchanged_schema_and_an_added_optional_field_pass() {
        let old = body(json!({"a": {"type": "string"}}), &["a"]);
        assert!(breaking_changes("t.v1", &old, &old).is_empty());
        let new = body(
            json!({"a": {"type": "string"}, "b": {"type": ["string", "null"]}}),
            &["a"],
        );
        assert_eq!(breaking_changes("t.v1", &old, &new), Vec::<String>::new());
    }

    #[test]
    fn a_renamed_field_is_a_removal_and_a_new_required_field() {
        let old = body(json!({"a": {"type": "string"}}), &["a"]);
        let new = body(json!({"b": {"type": "string"}}), &["b"]);
        let breaks = breaking_changes("t.v1", &old, &new);
        assert_eq!(breaks.len(), 2, "{breaks:?}");
        assert!(breaks[0].contains("`a`: field removed"), "{breaks:?}");
        assert!(breaks[1].contains("`b`: new required field"), "{breaks:?}");
    }

    #[test]
    fn narrowing_a_type_or_dropping_null_breaks_and_widening_does_not() {
        let old = body(
            json!({"a": {"type": ["string", "null"]}, "n": {"type": "integer"}}),
            &[],
        );
        let narrowed = body(
            json!({"a": {"type": "string"}, "n": {"type": "number"}}),
            &[],
        );
        let breaks = breaking_changes("t.v1", &old, &narrowed);
        assert_eq!(breaks, vec!["t.v1: `a`: null is no longer allowed"]);
        let changed = body(
            json!({"a": {"type": ["integer", "null"]}, "n": {"type": "integer"}}),
            &[],
        );
        let breaks = breaking_changes("t.v1", &old, &changed);
        assert!(
            breaks[0].contains("type narrowed or changed from string"),
            "{breaks:?}"
        );
    }

    #[test]
    fn a_removed_enum_value_and_a_removed_variant_break() {
        let root_old = json!({
            "type": "object",
            "properties": {"v": {"$ref": "#/$defs/V"}, "u": {"$ref": "#/$defs/U"}},
            "$defs": {
                "V": {"type": "string", "enum": ["granted", "refused"]},
                "U": {"oneOf": [
                    {"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "string"}}},
                    {"type": "object", "properties": {"kind": {"const": "b"}}}
                ]}
            }
        });
        let mut root_new = root_old.clone();
        root_new["$defs"]["V"]["enum"] = json!(["granted"]);
        root_new["$defs"]["U"]["oneOf"] = json!([
            {"type": "object", "properties": {"kind": {"const": "a"}}}
        ]);
        let breaks = breaking_changes("t.v1", &root_old, &root_new);
        assert!(
            breaks
                .iter()
                .any(|b| b.contains("`v`: value \"refused\" removed")),
            "{breaks:?}"
        );
        assert!(
            breaks
                .iter()
                .any(|b| b.contains("variant kind=\"b\" removed")),
            "{breaks:?}"
        );
        assert!(
            breaks
                .iter()
                .any(|b| b.contains("`u<kind=\"a\">.x`: field removed")),
            "{breaks:?}"
        );
        // Adding a value or a variant is additive.
        assert!(breaking_changes("t.v1", &root_new, &root_old).is_empty());
    }

    #[test]
    fn a_new_pattern_or_a_tighter_length_breaks() {
        let old = body(json!({"a": {"type": "string", "maxLength": 10}}), &[]);
        let new = body(
            json!({"a": {"type": "string", "maxLength": 5, "pattern": "^[0-9]+$"}}),
            &[],
        );
        let breaks = breaking_changes("t.v1", &old, &new);
        assert_eq!(breaks.len(), 2, "{breaks:?}");
    }

    #[test]
    fn a_removed_type_is_named() {
        let released = BTreeMap::from([("a.v1.json".to_owned(), json!({}))]);
        let breaks = gate(&released, &BTreeMap::new());
        assert!(
            breaks[0].starts_with("a.v1: message type removed"),
            "{breaks:?}"
        );
    }
}
