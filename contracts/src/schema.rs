//! The published contracts: a JSON Schema (2020-12) for every message body, generated from the
//! types of this crate, and the compatibility gate that keeps one major version additive.
//!
//! [`PUBLISHED`] lists every message type with the Rust type of its body. [`Published::schema`]
//! is the body's schema as agencies get it (`contracts/published/schemas/<type>.json`, written by
//! `hub contracts export`): the doc comments are its descriptions, dates and times carry their
//! `format`, identification numbers, phone numbers and order numbers their `pattern`, enums every
//! value. [`compat::breaking_changes`] compares a schema with the last released one and names each
//! change that would break an agency written against it.

pub mod compat;
pub mod openapi;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::Value;

use crate::{Message, MessageType};

/// The `$id` of a message type's schema is this followed by the type (`procedure.submit.v1`).
pub const SCHEMA_ID_PREFIX: &str = "urn:e-services-hub:contracts:schema:";

/// The JSON Schema dialect every schema is written in.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// One published message type.
#[derive(Clone, Copy)]
pub struct Published {
    /// The type as it travels (`type` property and routing key).
    pub message_type: MessageType,
    /// The Rust type of its body, for the reader of the generated files.
    pub rust_type: &'static str,
    generate: fn() -> Schema,
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("message_type", &self.message_type.to_string())
            .field("rust_type", &self.rust_type)
            .finish_non_exhaustive()
    }
}

impl Published {
    /// The body's schema: a standalone 2020-12 document (`$defs` inside), its `$id`
    /// [`SCHEMA_ID_PREFIX`] and the type, its `title` the type, its `examples` the body a real
    /// run sent ([`example`]), when one was captured.
    pub fn schema(&self) -> Value {
        let mut schema = (self.generate)().to_value();
        if let Value::Object(map) = &mut schema {
            let description = map.remove("description");
            map.remove("title");
            let mut out = serde_json::Map::new();
            out.insert("$schema".into(), DIALECT.into());
            out.insert(
                "$id".into(),
                format!("{SCHEMA_ID_PREFIX}{}", self.message_type).into(),
            );
            out.insert("title".into(), self.message_type.to_string().into());
            if let Some(d) = description {
                out.insert("description".into(), d);
            }
            if let Some(example) = example(&self.message_type.to_string()) {
                out.insert("examples".into(), Value::Array(vec![example]));
            }
            out.insert("x-rust-type".into(), self.rust_type.into());
            for (k, v) in std::mem::take(map) {
                if k != "$schema" {
                    out.insert(k, v);
                }
            }
            *map = out;
        }
        schema
    }

    /// The file name of the schema in a published set: `<type>.json`.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.message_type)
    }
}

/// The examples taken from a real run: `contracts/published/examples.json`, a body per message
/// type, captured by the end-to-end tests with `HUB_CAPTURE_EXAMPLES` (the first conforming body
/// of each type the hub, the tests' desks and portal and the queue authorities sent, its secrets
/// replaced by placeholders; see `hub_runtime::conformance`). Each schema carries its type's
/// as `examples`.
pub const EXAMPLES: &str = include_str!("../published/examples.json");

/// The example of `message_type` taken from a real run ([`EXAMPLES`]), if one was captured.
pub fn example(message_type: &str) -> Option<Value> {
    static PARSED: std::sync::LazyLock<serde_json::Map<String, Value>> =
        std::sync::LazyLock::new(|| match serde_json::from_str(EXAMPLES) {
            Ok(Value::Object(map)) => map,
            // A test (tests/published.rs) keeps the file an object of bodies.
            _ => serde_json::Map::new(),
        });
    PARSED.get(message_type).cloned()
}

fn generate<T: JsonSchema>() -> Schema {
    SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
}

const fn entry<T: Message + JsonSchema>(rust_type: &'static str) -> Published {
    Published {
        message_type: T::TYPE,
        rust_type,
        generate: generate::<T>,
    }
}

/// The published message types, `module::Type` each.
macro_rules! published {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        &[$(entry::<crate::$module::$ty>(concat!(stringify!($module), "::", stringify!($ty)))),*]
    };
}

/// Every message type of the contracts, with its body. `tests/published.rs` reads this crate's
/// sources and fails when a type that implements [`Message`] is missing here.
pub const PUBLISHED: &[Published] = published![
    account::AccountBlocked,
    account::AccountLookedUp,
    account::AccountPhoneChanged,
    account::AccountUnblocked,
    account::BlockAccount,
    account::BlockIdentifier,
    account::BlockIdentifierV2,
    account::ChangeAccountPhone,
    account::ChangePhone,
    account::ChangePhoneV2,
    account::ConfirmNewPhone,
    account::IdentifierBlocked,
    account::IdentifierUnblocked,
    account::LookupAccount,
    account::NewPhoneCodeExpired,
    account::NewPhoneCodeSent,
    account::NewPhoneCodeWrong,
    account::PhoneChanged,
    account::RequestRejected,
    account::UnblockAccount,
    account::UnblockIdentifier,
    account::UnblockIdentifierV2,
    cabinet::BlockSelf,
    cabinet::CabinetReply,
    cabinet::ChangePassword,
    cabinet::CompleteRecovery,
    cabinet::CompleteUnblock,
    cabinet::LogIn,
    cabinet::LogOut,
    cabinet::RecoverPassword,
    cabinet::UnblockSelf,
    issuance::ApplicationRejected,
    issuance::ApplyForIdentifier,
    issuance::ConfirmPhone,
    issuance::IdentifierIssued,
    issuance::NoticeRecorded,
    issuance::NoticeRefused,
    issuance::NoticeSigned,
    issuance::PasswordNotDelivered,
    issuance::PasswordResent,
    issuance::PhoneCodeExpired,
    issuance::PhoneCodeSent,
    issuance::PhoneCodeWrong,
    issuance::ResendRefused,
    issuance::ResendTemporaryPassword,
    issuance::ResendTemporaryPasswordV2,
    mvd::Reconcile,
    mvd::Reconciled,
    offer::ListProcedures,
    offer::ProceduresListed,
    ops::CancelSaga,
    procedure::ApplicationAccepted,
    procedure::ApplicationDecided,
    procedure::ApplicationOverdue,
    procedure::ApplicationRegistered,
    procedure::ApplicationRejected,
    procedure::ApplicationWithdrawn,
    procedure::AttachReceipt,
    procedure::AuthorityApplication,
    procedure::AuthorityComplaint,
    procedure::AuthorityComplaintDecided,
    procedure::AuthorityComplaintDecidedSigned,
    procedure::AuthorityComplaintDecisionRefused,
    procedure::AuthorityComplaintWithdrawal,
    procedure::AuthorityComplaintWithdrawalAnswered,
    procedure::AuthorityDecided,
    procedure::AuthorityDecidedSigned,
    procedure::AuthorityDecisionRefused,
    procedure::AuthorityInfoProvided,
    procedure::AuthorityInfoRequested,
    procedure::AuthorityPaymentReceipt,
    procedure::AuthorityReceiptAnswered,
    procedure::AuthorityRegistered,
    procedure::AuthorityWithdrawal,
    procedure::AuthorityWithdrawalAnswered,
    procedure::CancelInvoice,
    procedure::ComplaintAccepted,
    procedure::ComplaintDecided,
    procedure::ComplaintRejected,
    procedure::ComplaintWithdrawn,
    procedure::CreateInvoice,
    procedure::InfoProvided,
    procedure::InfoRequested,
    procedure::InvoiceCreated,
    procedure::InvoiceNotified,
    procedure::PaymentDueBack,
    procedure::PaymentReceived,
    procedure::PaymentReturned,
    procedure::ProvideInfo,
    procedure::ReceiptChecked,
    procedure::SubmitApplication,
    procedure::SubmitComplaint,
    procedure::WithdrawApplication,
    procedure::WithdrawComplaint,
    registration::ActivateEmail,
    registration::LogInByEds,
    registration::LogInByEmail,
    registration::RegisterByEds,
    registration::RegisterByEmail,
    registration::RequestEdsChallenge,
    registration::SendEmail,
    registry::AccountCreated,
    registry::CreateAccount,
    registry::PasswordReissued,
    registry::ReissuePassword,
    registry::Release,
    registry::Reserve,
    registry::Reserved,
    sms::CheckSubscriber,
    sms::DeliveryReported,
    sms::NotifyHolder,
    sms::SendSms,
    sms::SmsNotSent,
    sms::SmsSent,
    sms::SubscriberChecked,
    sms::WrongCode,
];

/// The published type whose wire form is `message_type` (`procedure.submit.v1`).
pub fn find(message_type: &str) -> Option<&'static Published> {
    PUBLISHED
        .iter()
        .find(|p| p.message_type.matches(message_type))
}

/// Every schema, keyed by its file name, in a stable order.
pub fn schemas() -> std::collections::BTreeMap<String, Value> {
    PUBLISHED
        .iter()
        .map(|p| (p.file_name(), p.schema()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_published_type_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for p in PUBLISHED {
            assert!(
                seen.insert(p.message_type.to_string()),
                "{} is listed twice",
                p.message_type
            );
        }
    }

    #[test]
    fn a_schema_names_its_type_and_dialect() {
        let s = find("procedure.submit.v1").expect("listed").schema();
        assert_eq!(s["$schema"], DIALECT);
        assert_eq!(s["title"], "procedure.submit.v1");
        assert_eq!(
            s["$id"],
            "urn:e-services-hub:contracts:schema:procedure.submit.v1"
        );
        assert!(
            s["description"]
                .as_str()
                .is_some_and(|d| d.contains("procedure.submit.v1")),
            "the doc comment is the description: {s}"
        );
        assert_eq!(s["type"], "object");
    }
}
