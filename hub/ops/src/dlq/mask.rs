//! Masking of personal data in dead letters, for operators' screens and exports.
//!
//! A dead letter is a message as it died, so its body holds whatever the message held:
//! identification numbers, phone numbers, names, e-mail addresses. Operators see them masked
//! unless they are allowed to, and asked to, see them in the clear (`--unmask`, audited).
//!
//! Rules, in order, for every JSON string (or number) in a body or a header:
//!
//! 0. a field that holds a secret (`password`, `current_password`, `new_password`, `code`,
//!    `token`, ...: [`contracts::is_secret_field`], the contracts' one list) is replaced
//!    whatever its value, at any depth: the consumer and the keeper redact such fields before a
//!    letter is stored, so this covers letters kept before they did and bodies of types nobody
//!    listed;
//! 1. a field whose name suggests personal data (`identifier`, `identification_number`,
//!    `phone`, `surname`, `given_name`, `patronymic`, `name`, `email`, ...) is masked whatever
//!    its value;
//! 2. a value that parses as an identification number or a phone number is masked wherever it
//!    is;
//! 3. in free text (an error message, a non-JSON body), each word that parses as one is masked.

use contracts::person::{IdNumber, Msisdn, mask_name};
use serde_json::Value;

/// Name parts that mark a field as personal data.
const PERSONAL: [&str; 10] = [
    "identifier",
    "identification",
    "phone",
    "msisdn",
    "surname",
    "patronymic",
    "name",
    "email",
    "mail",
    "birth",
];

/// Whether a field named `key` holds personal data: one of its `_`- or `-`-separated parts
/// (lower-cased) is a [`PERSONAL`] word.
pub fn is_personal_field(key: &str) -> bool {
    key.to_lowercase()
        .split(['_', '-', '.', ' '])
        .any(|part| PERSONAL.contains(&part))
}

/// Masks `value` in place by the module's rules; `key` is the name of the field holding it.
pub fn mask_json(value: &mut Value) {
    mask_under(None, value);
}

/// What a secret field shows instead of its value.
pub const SECRET_MASK: &str = "********";

fn mask_under(key: Option<&str>, value: &mut Value) {
    // A secret is hidden whole, not masked to a recognisable shape; a sealed envelope (an
    // object) is no secret in the clear and is masked field by field like any other.
    if key.is_some_and(contracts::is_secret_field)
        && matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
    {
        *value = Value::from(SECRET_MASK);
        return;
    }
    let personal = key.is_some_and(is_personal_field);
    match value {
        Value::String(s) => {
            *s = if personal {
                mask_personal(s)
            } else {
                mask_text(s)
            };
        }
        Value::Number(n) => {
            let text = n.to_string();
            if personal || Msisdn::parse(&text).is_ok() {
                *value = Value::String(mask_personal(&text));
            }
        }
        Value::Array(items) => {
            for item in items {
                // Items of a personal field (a list of phones) are personal too.
                mask_under(key.filter(|_| personal), item);
            }
        }
        Value::Object(fields) => {
            for (k, v) in fields.iter_mut() {
                mask_under(Some(k), v);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// A value known to be personal data, masked: as an identification number or a phone number
/// when it parses as one, an e-mail address keeps its domain, anything else keeps its first
/// character.
pub fn mask_personal(value: &str) -> String {
    if let Some(masked) = mask_whole(value) {
        return masked;
    }
    match value.split_once('@') {
        Some((local, domain)) => format!("{}@{domain}", mask_name(local)),
        None => mask_name(value),
    }
}

/// The masked form of `value` when the whole of it is an identification number or a mobile
/// phone number.
fn mask_whole(value: &str) -> Option<String> {
    if let Ok(id) = IdNumber::parse(value) {
        return Some(id.masked());
    }
    // A phone has at least 9 digits: short numbers (amounts, counts) are not phones.
    let digits = value.chars().filter(char::is_ascii_digit).count();
    if digits >= 9
        && let Ok(phone) = Msisdn::parse(value)
    {
        return Some(phone.masked());
    }
    None
}

/// Free text with every word that is an identification number or a phone number masked
/// (a whole value that is one, spaces and all, is masked too).
pub fn mask_text(text: &str) -> String {
    if let Some(masked) = mask_whole(text) {
        return masked;
    }
    let word = |c: char| c.is_alphanumeric() || matches!(c, '+' | '-' | '(' | ')');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !word(c)).unwrap_or(rest.len());
        if end == 0 {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let (token, after) = rest.split_at(end);
        // Punctuation around a word ("(+375291234567)", "3270287A012PB2-") is not part of it.
        let inner = token.trim_matches(|c: char| matches!(c, '-' | '(' | ')'));
        match mask_whole(inner) {
            Some(masked) => out.push_str(&token.replacen(inner, &masked, 1)),
            None => out.push_str(token),
        }
        rest = after;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "3270287A012PB2";

    #[test]
    fn personal_fields_and_values_are_masked_everywhere_in_a_body() {
        let mut body = json!({
            "applicant": {
                "identifier": ID,
                "surname": "Иванова",
                "given_name": "Анна",
                "phone": "+375291234567",
                "email": "anna@example.by",
            },
            "note": "call 375447654321 about it",
            "contact": "+375 33 111-22-33",
            "holder": ID,
            "amount": 2100,
            "phones": ["+375291234567"],
            "procedure_code": "2.19",
        });
        mask_json(&mut body);
        let a = &body["applicant"];
        assert_eq!(a["identifier"], "32**********B2");
        assert_eq!(a["surname"], "И******");
        assert_eq!(a["given_name"], "А***");
        assert_eq!(a["phone"], "+375 29 ***-**-67");
        assert_eq!(a["email"], "a***@example.by");
        assert_eq!(body["note"], "call +375 44 ***-**-21 about it");
        assert_eq!(body["contact"], "+375 33 ***-**-33");
        assert_eq!(body["holder"], "32**********B2");
        assert_eq!(body["amount"], 2100, "not personal");
        assert_eq!(body["phones"][0], "+375 29 ***-**-67");
        assert_eq!(body["procedure_code"], "2.19");
        let text = body.to_string();
        assert!(!text.contains(ID) && !text.contains("1234567"), "{text}");
    }

    #[test]
    fn secret_fields_are_hidden_at_any_depth_whatever_their_value() {
        let mut body = json!({
            "password": "Xy3kLmNpQr",
            "change": {"current_password": "Old-Pass-1", "new_password": "New-Pass-2"},
            "steps": [{"code": 123456}, {"code": "654321"}],
            "token": "tok-abcdef",
            "procedure_code": "2.19",
        });
        mask_json(&mut body);
        let text = body.to_string();
        for secret in [
            "Xy3kLmNpQr",
            "Old-Pass-1",
            "New-Pass-2",
            "123456",
            "654321",
            "tok-abcdef",
        ] {
            assert!(!text.contains(secret), "{secret} shows in {text}");
        }
        assert_eq!(body["change"]["new_password"], SECRET_MASK);
        assert_eq!(body["steps"][0]["code"], SECRET_MASK);
        assert_eq!(
            body["procedure_code"], "2.19",
            "a catalogue code is no secret"
        );
    }

    #[test]
    fn free_text_keeps_everything_but_the_personal_words() {
        assert_eq!(
            mask_text(&format!("identifier {ID} is taken by (+375291234567)")),
            "identifier 32**********B2 is taken by (+375 29 ***-**-67)"
        );
        assert_eq!(
            mask_text("no such account; attempt 3 of 8, id 6f1c1a52-3c55-4a43-9c1e-6f0e8a1d1a01"),
            "no such account; attempt 3 of 8, id 6f1c1a52-3c55-4a43-9c1e-6f0e8a1d1a01"
        );
        assert_eq!(mask_text("Привет, мир"), "Привет, мир");
    }

    #[test]
    fn field_names_that_suggest_personal_data() {
        for key in [
            "identifier",
            "identification_number",
            "phone",
            "holder_phone",
            "surname",
            "given_name",
            "patronymic",
            "name",
            "email",
            "birth_date",
        ] {
            assert!(is_personal_field(key), "{key}");
        }
        for key in ["procedure_code", "amount", "account", "application_id"] {
            assert!(!is_personal_field(key), "{key}");
        }
    }
}
