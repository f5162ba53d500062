//! Keeps [`contracts::SECRET_FIELDS`] in sync with the types: reads this crate's sources and
//! fails when a field whose name suggests a secret is neither listed for its message type nor
//! named below as not a secret in the clear, or when the list names a field its type lacks.

use std::collections::{BTreeMap, BTreeSet};

use common::is_test_module;
use contracts::{SECRET_FIELDS, is_secret_field};

mod common;

/// Name parts that suggest a field holds a secret.
const SUSPICIOUS: [&str; 8] = [
    "password",
    "passwd",
    "code",
    "token",
    "secret",
    "pin",
    "otp",
    "passphrase",
];

/// Fields (type, field) whose names suggest a secret but that hold none in the clear, and why.
/// (A time or a flag cannot hold one: such fields pass by their type.)
const NOT_SECRET: [(&str, &str, &str); 11] = [
    ("SubmitApplication", "procedure_code", "a catalogue code"),
    (
        "AuthorityPaymentReceipt",
        "procedure_code",
        "a catalogue code",
    ),
    ("ApplicationOverdue", "procedure_code", "a catalogue code"),
    ("AuthorityApplication", "procedure_code", "a catalogue code"),
    ("OrderableProcedure", "code", "a catalogue code"),
    (
        "CreateAccount",
        "temporary_password_hash",
        "an argon2 hash; a replayed letter must keep it",
    ),
    (
        "ReissuePassword",
        "temporary_password_hash",
        "an argon2 hash; a replayed letter must keep it",
    ),
    (
        "UnblockAccount",
        "temporary_password_expires_at",
        "a time (optional)",
    ),
    (
        "IdentifierUnblocked",
        "temporary_password_expires_at",
        "a time (optional)",
    ),
    (
        "UnblockAccount",
        "temporary_password_hash",
        "an argon2 hash; a replayed letter must keep it",
    ),
    (
        "PhoneError",
        "code",
        "the operator code of a phone number, in a parse error",
    ),
];

/// Types whose fields are flattened into a message type's body (`#[serde(flatten)]`): their
/// fields count as that message type's.
const FLATTENED: [(&str, &str); 1] = [("CabinetOutcome", "CabinetReply")];

/// A field of a struct or enum variant in the sources.
struct Field {
    owner: String,
    name: String,
    ty: String,
}

fn named(owner: &str, fields: &syn::Fields, out: &mut Vec<Field>) {
    let owner = FLATTENED
        .iter()
        .find(|(inner, _)| *inner == owner)
        .map_or(owner, |(_, outer)| outer);
    for f in fields {
        if let Some(ident) = &f.ident {
            let ty = &f.ty;
            out.push(Field {
                owner: owner.to_owned(),
                name: ident.to_string(),
                ty: quote_type(ty),
            });
        }
    }
}

fn quote_type(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .iter()
            .map(|s| {
                let args = match &s.arguments {
                    syn::PathArguments::AngleBracketed(a) => a
                        .args
                        .iter()
                        .filter_map(|a| match a {
                            syn::GenericArgument::Type(t) => Some(quote_type(t)),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => String::new(),
                };
                format!("{}<{args}>", s.ident)
            })
            .collect::<Vec<_>>()
            .join("::"),
        _ => "?".to_owned(),
    }
}

/// Walks `items`: every named field, and which struct implements `Message` with which type.
fn walk(items: &[syn::Item], fields: &mut Vec<Field>, types: &mut BTreeMap<String, String>) {
    for item in items {
        match item {
            syn::Item::Struct(s) => named(&s.ident.to_string(), &s.fields, fields),
            syn::Item::Enum(e) => {
                for v in &e.variants {
                    named(&e.ident.to_string(), &v.fields, fields);
                }
            }
            syn::Item::Impl(i) => {
                let is_message = i
                    .trait_
                    .as_ref()
                    .and_then(|(_, path, _)| path.segments.last())
                    .is_some_and(|s| s.ident == "Message");
                let syn::Type::Path(owner) = &*i.self_ty else {
                    continue;
                };
                let Some(owner) = owner.path.segments.last() else {
                    continue;
                };
                for it in &i.items {
                    if let syn::ImplItem::Const(c) = it
                        && is_message
                        && c.ident == "TYPE"
                        && let syn::Expr::Call(call) = &c.expr
                    {
                        let args: Vec<String> = call
                            .args
                            .iter()
                            .filter_map(|a| match a {
                                syn::Expr::Lit(l) => match &l.lit {
                                    syn::Lit::Str(s) => Some(s.value()),
                                    syn::Lit::Int(n) => Some(format!("v{}", n.base10_digits())),
                                    _ => None,
                                },
                                _ => None,
                            })
                            .collect();
                        types.insert(owner.ident.to_string(), args.join("."));
                    }
                }
            }
            syn::Item::Mod(m) if !is_test_module(&m.attrs) => {
                if let Some((_, inner)) = &m.content {
                    walk(inner, fields, types);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_field_that_looks_secret_is_listed_or_explained() {
    let (mut fields, mut types) = (Vec::new(), BTreeMap::new());
    for parsed in common::parsed_sources() {
        walk(&parsed.items, &mut fields, &mut types);
    }
    assert!(
        types.len() > 40,
        "found only {} message types: the walk is broken",
        types.len()
    );
    let listed: BTreeMap<String, BTreeSet<&str>> = SECRET_FIELDS
        .iter()
        .map(|(t, f)| (t.to_string(), f.iter().copied().collect()))
        .collect();
    let mut problems = Vec::new();
    for f in &fields {
        let looks_secret = f
            .name
            .to_lowercase()
            .split('_')
            .any(|part| SUSPICIOUS.contains(&part));
        if !looks_secret {
            continue;
        }
        let explained = NOT_SECRET
            .iter()
            .any(|(owner, name, _)| *owner == f.owner && *name == f.name);
        // A sealed envelope is no secret in the clear: only the hub's key opens it.
        let sealed = f.ty.contains("Sealed<");
        let time_or_flag = ["DateTime<", "NaiveDate<", "bool<"]
            .iter()
            .any(|t| f.ty.starts_with(t));
        let in_list = types
            .get(&f.owner)
            .and_then(|t| listed.get(t))
            .is_some_and(|names| names.contains(f.name.as_str()));
        if !(explained || sealed || time_or_flag || in_list) {
            problems.push(format!(
                "{}.{} ({}) looks like a secret: list it in contracts::SECRET_FIELDS for {}, \
                 or explain in NOT_SECRET why it is none",
                f.owner,
                f.name,
                f.ty,
                types.get(&f.owner).map_or(
                    "(not a message type: nested secrets are not \
                     redacted by type)",
                    String::as_str
                )
            ));
        }
    }
    // The list names only fields its types have, and names the masking recognises.
    for (message_type, names) in &listed {
        let owner = types
            .iter()
            .find(|(_, t)| *t == message_type)
            .map(|(o, _)| o.clone());
        let Some(owner) = owner else {
            problems.push(format!("{message_type} is listed but no type has it"));
            continue;
        };
        for name in names {
            if !fields.iter().any(|f| f.owner == owner && f.name == *name) {
                problems.push(format!("{message_type} lists {name}, which {owner} lacks"));
            }
            if !is_secret_field(name) {
                problems.push(format!(
                    "{name} is listed but is_secret_field does not know it"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
