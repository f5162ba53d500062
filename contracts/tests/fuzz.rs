//! Hostile bodies for every contract message type: whatever arrives, `contracts::decode` answers
//! `Ok` or an error and never panics, hangs or overflows its stack; it agrees with "parse, then
//! validate"; and whatever it accepts encodes and decodes back to the same value.
//!
//! The types are listed once, in [`every_type!`], each with valid samples; a test scans the
//! crate's sources for `MessageType::new("...", N)` so that a type added to the crate and not to
//! the list fails here. Cases per property: `PROPTEST_CASES` when set, else the counts below
//! (chosen so the file runs in seconds in a debug build).

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use contracts::{
    DecodeError, Message, MessageType, account, cabinet, issuance, mvd, offer, ops, procedure,
    registration, registry, sms,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Every type, with valid samples.

const UUID: &str = "8f0c6f4e-8a0e-4d5c-9d55-3f1f0b8a2b6e";
const AT: &str = "2026-11-27T10:00:00Z";
const DAY: &str = "2026-11-27";

fn person() -> Value {
    json!({
        "identification_number": "3270287A012PB2",
        "surname": "Иванова",
        "given_name": "Анна",
        "patronymic": "Сергеевна",
        "birth_date": "1987-02-27",
        "status": "citizen",
    })
}

fn document() -> Value {
    json!({"kind": "passport", "number": "MP1234567", "issued_on": "2020-03-01", "expires_on": "2030-03-01"})
}

fn application() -> Value {
    json!({"number": "A-1", "date": DAY, "desk_id": "desk-1", "worker_id": "w-1"})
}

fn sealed() -> Value {
    json!({"key_id": "k1", "nonce": "bm9uY2UxMjM0NTY=", "ciphertext": "Y2lwaGVydGV4dA=="})
}

fn field_errors() -> Value {
    json!([{"field": "phone", "problem": "must be a mobile number"}])
}

fn desk(mut extra: Value) -> Value {
    let object = extra.as_object_mut().expect("an object");
    object.insert("desk_id".into(), json!("desk-1"));
    object.insert("application_number".into(), json!("A-1"));
    extra
}

fn proof() -> Value {
    json!({"certificate": "MIIB", "chain": ["MIIC"], "nonce": "00ff", "signature": "c2ln"})
}

/// One message type under test: its wire name, its samples, and its checker.
struct Case {
    rust_name: &'static str,
    ty: MessageType,
    samples: Vec<Value>,
    check: fn(&str, &[u8]) -> Result<Verdict, String>,
    /// A valid sample decoded and encoded again, as a JSON value.
    reencode: fn(&Value) -> Value,
}

/// What `decode` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accepted,
    WrongType,
    NotJson,
    Invalid,
}

impl Case {
    fn of<M: Message + PartialEq + Debug>(rust_name: &'static str, samples: Vec<Value>) -> Self {
        Case {
            rust_name,
            ty: M::TYPE,
            samples,
            check: check_decode::<M>,
            reencode: reencode::<M>,
        }
    }

    fn wire(&self) -> String {
        self.ty.to_string()
    }
}

/// Lists every message type with its samples (at least one each, every field present, as
/// the type encodes it).
macro_rules! every_type {
    ($($ty:ty => [$($sample:expr),+ $(,)?]),+ $(,)?) => {
        fn cases() -> Vec<Case> {
            vec![$(Case::of::<$ty>(stringify!($ty), vec![$($sample),+])),+]
        }
    };
}

every_type! {
    // account
    account::BlockIdentifier => [
        desk(json!({"identifier": "3270287A012PB2", "reason": "lost phone"})),
        desk(json!({"identifier": "3270287A012PB2"})),
    ],
    account::UnblockIdentifier => [desk(json!({
        "person": person(), "document": document(), "consent_to_mvd_check": true,
    }))],
    account::BlockIdentifierV2 => [desk(json!({
        "worker_id": "w-1", "person": person(), "document": document(), "consent_to_mvd_check": true,
        "reason": "gives it up",
    }))],
    account::ChangePhoneV2 => [desk(json!({
        "worker_id": "w-1", "person": person(), "document": document(), "consent_to_mvd_check": true,
        "new_phone": "+375 29 123-45-67",
    }))],
    account::UnblockIdentifierV2 => [desk(json!({
        "worker_id": "w-1", "person": person(), "document": document(), "consent_to_mvd_check": true,
    }))],
    account::ChangePhone => [desk(json!({"identifier": "3270287A012PB2", "new_phone": "+375 29 123-45-67"}))],
    account::ConfirmNewPhone => [desk(json!({"code": "493817"}))],
    account::IdentifierBlocked => [desk(json!({"blocked_at": AT}))],
    account::IdentifierUnblocked => [
        desk(json!({"unblocked_at": AT})),
        desk(json!({"unblocked_at": AT, "phone_masked": "+375 29 ***-**-67", "temporary_password_expires_at": AT})),
    ],
    account::NewPhoneCodeSent => [desk(json!({
        "phone_masked": "+375 29 ***-**-67", "expires_at": AT, "attempts_left": 3,
    }))],
    account::NewPhoneCodeWrong => [desk(json!({"attempts_left": 2}))],
    account::PhoneChanged => [desk(json!({"phone_masked": "+375 29 ***-**-67", "changed_at": AT}))],
    account::RequestRejected => [
        desk(json!({"reason": "mvd_mismatch", "detail": "person_unknown", "fields": field_errors()})),
        desk(json!({"reason": "phone_not_confirmed", "detail": null, "fields": []})),
    ],
    account::NewPhoneCodeExpired => [desk(json!({}))],
    account::LookupAccount => [
        json!({"identifier": "3270287A012PB2", "phone": "+375291234567"}),
        json!({"identifier": "3270287A012PB2"}),
    ],
    account::AccountLookedUp => [
        json!({"state": "active", "phone": "another_identifier"}),
        json!({"state": "unknown"}),
    ],
    account::BlockAccount => [
        json!({"identifier": "3270287A012PB2", "application": "desk-1/A-1", "reason": "lost"}),
        json!({"identifier": "3270287A012PB2", "application": "desk-1/A-1", "worker_id": "w-1"}),
    ],
    account::AccountBlocked => [json!({"outcome": "already_blocked"})],
    account::UnblockAccount => [
        json!({"identifier": "3270287A012PB2", "application": "desk-1/A-1"}),
        json!({
            "identifier": "3270287A012PB2", "application": "desk-1/A-1", "worker_id": "w-1",
            "temporary_password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            "temporary_password_expires_at": AT,
        }),
    ],
    account::AccountUnblocked => [
        json!({"outcome": "not_blocked"}),
        json!({"outcome": "unblocked", "phone": "+375291234567"}),
    ],
    account::ChangeAccountPhone => [
        json!({"identifier": "3270287A012PB2", "phone": "+375291234567", "application": "desk-1/A-1"}),
        json!({
            "identifier": "3270287A012PB2", "phone": "+375291234567", "application": "desk-1/A-1",
            "worker_id": "w-1",
        }),
    ],
    account::AccountPhoneChanged => [json!({"outcome": "phone_bound"})],
    // cabinet
    cabinet::LogIn => [json!({"identifier": "3270287A012PB2", "password": "Secret-42"})],
    cabinet::ChangePassword => [json!({
        "identifier": "3270287A012PB2", "current_password": "Temp-1", "new_password": "Secret-42",
    })],
    cabinet::RecoverPassword => [json!({"identifier": "3270287A012PB2", "phone": "+375291234567"})],
    cabinet::CompleteRecovery => [json!({
        "identifier": "3270287A012PB2", "code": "493817", "new_password": "Secret-42",
    })],
    cabinet::BlockSelf => [json!({"identifier": "3270287A012PB2", "password": "Secret-42"})],
    cabinet::UnblockSelf => [json!({"identifier": "3270287A012PB2", "phone": "+375291234567"})],
    cabinet::CompleteUnblock => [json!({
        "identifier": "3270287A012PB2", "code": "493817", "new_password": "Secret-42",
    })],
    cabinet::LogOut => [json!({"session_token": "tok-1"})],
    cabinet::CabinetReply => [
        json!({"outcome": "ok", "assurance_level": "substantial"}),
        json!({"outcome": "ok", "assurance_level": "high", "session_token": "tok-1"}),
        json!({"outcome": "must_change_password"}),
        json!({"outcome": "locked_out", "until": AT}),
        json!({"outcome": "weak_password", "problems": ["too short", "no digit"]}),
        json!({"outcome": "eds_challenge", "nonce": "00ff", "to_sign": "c2lnbg==", "expires_at": AT}),
        json!({"outcome": "eds_refused", "reason": "bad_signature"}),
        json!({"outcome": "try_later", "reason": "ca unreachable"}),
        json!({"outcome": "invalid_form", "problems": ["email: malformed"]}),
    ],
    // issuance
    issuance::ApplyForIdentifier => [json!({
        "application": application(),
        "person": person(),
        "document": document(),
        "phone": "+375 29 123-45-67",
        "consent_to_mvd_check": true,
    })],
    issuance::ConfirmPhone => [desk(json!({"code": "493817"}))],
    issuance::ResendTemporaryPassword => [desk(json!({}))],
    issuance::ResendTemporaryPasswordV2 => [desk(json!({
        "worker_id": "w-1", "person": person(), "document": document(), "consent_to_mvd_check": true,
    }))],
    issuance::NoticeSigned => [desk(json!({
        "notice_number": "UI-2026-desk-1-A-1", "signed_on": DAY, "worker_id": "w-1",
    }))],
    issuance::NoticeRecorded => [desk(json!({"notice_number": "UI-2026-desk-1-A-1", "signed_on": DAY}))],
    issuance::NoticeRefused => [desk(json!({"reason": "notice_mismatch", "fields": field_errors()}))],
    issuance::ResendRefused => [desk(json!({
        "reason": "use_recovery", "detail": null, "fields": [],
    }))],
    issuance::PhoneCodeSent => [desk(json!({
        "phone_masked": "+375 29 ***-**-67", "expires_at": AT, "attempts_left": 3,
    }))],
    issuance::PhoneCodeWrong => [desk(json!({"attempts_left": 2}))],
    issuance::IdentifierIssued => [json!({"notice": {
        "notice_number": "UI-2026-desk-1-A-1",
        "identifier": "3270287A012PB2",
        "issued_on": DAY,
        "surname": "Иванова",
        "given_name": "Анна",
        "patronymic": null,
        "application": application(),
        "phone_masked": "+375 29 ***-**-67",
        "temporary_password_expires_at": AT,
    }})],
    issuance::PasswordResent => [
        desk(json!({"temporary_password_expires_at": AT})),
        desk(json!({"temporary_password_expires_at": AT, "phone_masked": "+375 29 ***-**-67"})),
    ],
    issuance::PasswordNotDelivered => [desk(json!({}))],
    issuance::ApplicationRejected => [desk(json!({
        "reason": "invalid_input", "detail": "expired", "fields": field_errors(),
    }))],
    issuance::PhoneCodeExpired => [desk(json!({}))],
    // mvd
    mvd::Reconcile => [json!({"person": person(), "document": document()})],
    mvd::Reconciled => [
        json!({"reconciliation_id": "r-1", "result": {"result": "mismatch", "fields": ["surname"]}, "checked_on": DAY}),
        json!({"reconciliation_id": "r-2", "result": {"result": "document_invalid", "status": "lost"}, "checked_on": DAY}),
        json!({"reconciliation_id": "r-3", "result": {"result": "match"}, "checked_on": DAY}),
    ],
    // ops
    ops::CancelSaga => [json!({"saga_id": UUID, "reason": "MVD outage, the desk asked", "operator": "ivanov"})],
    // procedure
    procedure::SubmitApplication => [json!({
        "application_id": UUID,
        "procedure_code": "1.1.5",
        "session_token": "q3Jx0Wm6oVt1b1tVZ2p0f0sSb3QkqB9fQm3P4x7JdE8",
        "form": {"address": "Minsk", "children": [{"name": "A", "age": 3}], "paid": true, "rooms": 2, "note": null},
        "attachments": ["att-1"],
        "delivery": "cabinet_and_collect",
    })],
    procedure::WithdrawApplication => [json!({"application_id": UUID, "session_token": "tok-1"})],
    procedure::AttachReceipt => [
        json!({"application_id": UUID, "session_token": "tok-1", "operation_id": "op-1", "amount_kopecks": 2750}),
        json!({"application_id": UUID, "session_token": "tok-1", "operation_id": "", "amount_kopecks": 2750,
               "outside_erip": {"order_number": "123456789012345678901234567897", "bank": "Belarusbank",
                                "paid_on": DAY, "document_number": "PP-1"}}),
    ],
    procedure::ReceiptChecked => [json!({"application_id": UUID, "matches": false, "problem": "amount differs", "checked_by": "erip"})],
    procedure::ApplicationAccepted => [json!({
        "application_id": UUID,
        "number": "P-1",
        "order_number": "123456789012345678901234567897",
        "amount_kopecks": 2750,
        "pay_before": AT,
    })],
    procedure::PaymentReceived => [json!({
        "application_id": UUID, "operation_id": "op-1", "amount_kopecks": 1000, "paid_kopecks": 1000, "missing_kopecks": 1750,
    })],
    procedure::PaymentDueBack => [json!({
        "application_id": UUID, "operation_ids": ["op-1"], "amount_kopecks": 250, "reason": "overpaid", "due_back_kopecks": 250,
    })],
    procedure::PaymentReturned => [json!({
        "application_id": UUID, "operation_id": "op-1", "amount_kopecks": 250, "kind": "reversal",
        "missing_kopecks": 0, "due_back_kopecks": 0,
    })],
    procedure::ApplicationRegistered => [json!({
        "application_id": UUID, "registration_number": "TAX-1", "decision_due": DAY,
    })],
    procedure::InfoRequested => [
        json!({"application_id": UUID, "request": "a copy of the lease"}),
        json!({"application_id": UUID, "request": "a copy of the lease", "answer_by": DAY}),
    ],
    procedure::ProvideInfo => [json!({
        "application_id": UUID, "session_token": "tok-1", "form": {"lease_number": "L-7"}, "attachments": ["att-2"],
    })],
    procedure::InfoProvided => [json!({"application_id": UUID, "suspended_working_days": 3, "decision_due": DAY})],
    procedure::AuthorityInfoProvided => [json!({
        "application_id": UUID, "form": {"lease_number": "L-7"}, "attachments": ["att-2"],
        "suspended_working_days": 3, "decision_due": DAY,
    })],
    procedure::ApplicationDecided => [
        json!({"application_id": UUID, "verdict": "granted", "document": "Certificate 1", "decided_at": AT}),
        json!({
            "application_id": UUID, "verdict": "granted", "document": "Certificate 1", "decided_at": AT,
            "signed": {
                "document": {"application_id": UUID, "authority_id": "mns", "number": "R-1", "date": DAY,
                             "verdict": "granted", "text": "Certificate 1"},
                "signature": {"signature": "AAAA", "certificate": "MIIB", "chain": []},
                "signer": {"name": "Петров Пётр", "organization": "mns", "certificate_serial": "0a1b",
                           "issuer": "CN=RUC"},
            },
        }),
    ],
    procedure::ApplicationWithdrawn => [json!({
        "application_id": UUID, "refund_due_kopecks": 2750, "reason": "cancelled_by_operator", "detail": "stuck",
    })],
    procedure::ApplicationRejected => [json!({
        "application_id": UUID, "reason": "assurance_too_low", "fields": field_errors(),
    })],
    procedure::ApplicationOverdue => [json!({
        "application_id": UUID, "procedure_code": "1.1.5", "authority": "tax", "decision_due": DAY,
    })],
    procedure::AuthorityApplication => [json!({
        "application_id": UUID,
        "number": "P-1",
        "procedure_code": "1.1.5",
        "applicant": "3270287A012PB2",
        "form": {"address": "Minsk", "rooms": 2, "flags": [true, false, null]},
        "attachments": ["att-1"],
        "paid_kopecks": 2750,
        "decision_due": DAY,
        "delivery": "cabinet",
    })],
    procedure::AuthorityWithdrawal => [json!({"application_id": UUID})],
    procedure::AuthorityRegistered => [json!({"application_id": UUID, "registration_number": "TAX-1"})],
    procedure::AuthorityInfoRequested => [
        json!({"application_id": UUID, "request": "a copy of the lease"}),
        json!({"application_id": UUID, "request": "a copy of the lease", "answer_within_working_days": 5}),
    ],
    procedure::AuthorityDecided => [json!({
        "application_id": UUID, "verdict": "refused", "document": "Notice 1", "decided_at": AT,
    })],
    procedure::AuthorityDecidedSigned => [
        json!({
            "application_id": UUID, "decided_at": AT,
            "document": {"application_id": UUID, "authority_id": "mns", "number": "R-1", "date": DAY,
                         "verdict": "granted", "text": "Granted.\nSecond line."},
            "signature": {"signature": "AAAA", "certificate": "MIIB", "chain": ["MIIC"]},
        }),
        json!({
            "application_id": UUID, "decided_at": AT,
            "document": {"application_id": UUID, "authority_id": "mns", "number": "R-1", "date": DAY,
                         "verdict": "refused", "text": ""},
        }),
    ],
    procedure::AuthorityDecisionRefused => [json!({
        "application_id": UUID, "number": "R-1", "reason": "bad_signature", "detail": "the signature does not verify",
    })],
    procedure::AuthorityWithdrawalAnswered => [json!({"application_id": UUID, "accepted": true})],
    procedure::AuthorityPaymentReceipt => [json!({
        "application_id": UUID, "number": "P-1", "procedure_code": "5.13", "fee_kopecks": 2100, "amount_kopecks": 2100,
        "payment": {"order_number": "123456789012345678901234567897", "bank": "Belarusbank", "paid_on": DAY,
                    "document_number": "PP-1"},
    })],
    procedure::AuthorityReceiptAnswered => [
        json!({"application_id": UUID, "document_number": "PP-1", "confirmed": true}),
        json!({"application_id": UUID, "document_number": "PP-1", "confirmed": false, "reason": "no such payment"}),
    ],
    procedure::CreateInvoice => [json!({
        "order_number": "123456789012345678901234567897",
        "amount_kopecks": 2750,
        "description": "State fee",
        "expires_at": AT,
    })],
    procedure::InvoiceCreated => [json!({"invoice_id": "erip-1"})],
    procedure::CancelInvoice => [json!({"order_number": "123456789012345678901234567897"})],
    procedure::InvoiceNotified => [json!({
        "order_number": "123456789012345678901234567897", "event": "paid", "amount_kopecks": 2750, "operation_id": "op-1",
    })],
    procedure::SubmitComplaint => [
        json!({"complaint_id": UUID, "application_id": UUID, "session_token": "tok-1", "text": "unfair", "kind": "decision"}),
        json!({"complaint_id": UUID, "application_id": UUID, "session_token": "tok-1", "text": "no answer", "kind": "inaction"}),
    ],
    procedure::WithdrawComplaint => [json!({"complaint_id": UUID, "session_token": "tok-1"})],
    procedure::ComplaintAccepted => [json!({"complaint_id": UUID, "application_id": UUID, "authority": "tax"})],
    procedure::ComplaintDecided => [
        json!({"complaint_id": UUID, "verdict": "upheld", "document": "Decision 2", "decided_at": AT}),
        json!({
            "complaint_id": UUID, "verdict": "upheld", "document": "Decision 2", "decided_at": AT,
            "signed": {
                "document": {"complaint_id": UUID, "authority_id": "mintrud", "number": "C-1", "date": DAY,
                             "verdict": "upheld", "text": "Decision 2"},
                "signature": {"signature": "AAAA", "certificate": "MIIB", "chain": []},
                "signer": {"name": "Петров Пётр", "organization": "mintrud", "certificate_serial": "0a1b",
                           "issuer": "CN=RUC"},
            },
        }),
    ],
    procedure::ComplaintWithdrawn => [json!({"complaint_id": UUID})],
    procedure::ComplaintRejected => [json!({
        "complaint_id": UUID, "reason": "not_the_applicant", "detail": "another person's application",
    })],
    procedure::AuthorityComplaint => [
        json!({"complaint_id": UUID, "application_id": UUID, "application_number": "P-1", "text": "unfair", "kind": "decision"}),
        json!({"complaint_id": UUID, "application_id": UUID, "application_number": "P-1", "text": "no answer",
               "kind": "inaction", "subordinate": "fszn"}),
    ],
    procedure::AuthorityComplaintWithdrawal => [json!({"complaint_id": UUID})],
    procedure::AuthorityComplaintDecided => [json!({
        "complaint_id": UUID, "verdict": "dismissed", "document": "Decision 3", "decided_at": AT,
    })],
    procedure::AuthorityComplaintDecidedSigned => [
        json!({
            "complaint_id": UUID, "decided_at": AT,
            "document": {"complaint_id": UUID, "authority_id": "fszn", "number": "C-1", "date": DAY,
                         "verdict": "dismissed", "text": "The decision stands.\nSecond line."},
            "signature": {"signature": "AAAA", "certificate": "MIIB", "chain": ["MIIC"]},
        }),
        json!({
            "complaint_id": UUID, "decided_at": AT,
            "document": {"complaint_id": UUID, "authority_id": "fszn", "number": "C-1", "date": DAY,
                         "verdict": "upheld", "text": ""},
        }),
    ],
    procedure::AuthorityComplaintDecisionRefused => [json!({
        "complaint_id": UUID, "number": "C-1", "reason": "unsigned", "detail": "no signature",
    })],
    procedure::AuthorityComplaintWithdrawalAnswered => [json!({"complaint_id": UUID, "accepted": false})],
    // offer
    offer::ListProcedures => [json!({"request_id": UUID, "session_token": "tok-1"})],
    offer::ProceduresListed => [
        json!({"request_id": UUID, "outcome": {"status": "session_invalid"}}),
        json!({"request_id": UUID, "outcome": {"status": "listed", "level": "basic", "procedures": [{
            "code": "16.6", "name_ru": "Справка", "name_en": "A certificate", "authority_id": "fszn",
            "authority_name": "Social protection fund", "assurance": "basic", "fee_kopecks": 0,
            "term_working_days": 5, "fields": [
                {"name": "purpose", "kind": "text", "max_length": 200, "required": true},
                {"name": "year", "kind": "number", "min": 2000, "max": null, "required": false},
                {"name": "kind", "kind": "choice", "options": ["a", "b"], "required": true},
                {"name": "from", "kind": "date", "required": true},
                {"name": "urgent", "kind": "boolean", "required": false},
            ],
        }]}}),
    ],
    // registration
    registration::RegisterByEmail => [json!({
        "email": "anna@example.by", "password": "Secret-42", "surname": "Иванова", "given_name": "Анна",
    })],
    registration::ActivateEmail => [json!({"token": "tok-123"})],
    registration::LogInByEmail => [json!({"email": "anna@example.by", "password": "Secret-42"})],
    registration::RequestEdsChallenge => [json!({})],
    registration::LogInByEds => [proof()],
    registration::RegisterByEds => [proof()],
    registration::SendEmail => [
        json!({"purpose": "activation", "to": "anna@example.by", "name": "Анна", "token": sealed()}),
        json!({"purpose": "already_registered", "to": "anna@example.by", "name": "Анна", "token": null}),
    ],
    // registry
    registry::Reserve => [json!({"identifier": "3270287A012PB2", "phone": "+375291234567", "application": "desk-1/A-1"})],
    registry::Reserved => [json!({"outcome": "reserved"})],
    registry::Release => [json!({"identifier": "3270287A012PB2", "application": "desk-1/A-1"})],
    registry::CreateAccount => [json!({
        "identifier": "3270287A012PB2",
        "application": "desk-1/A-1",
        "temporary_password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        "temporary_password_expires_at": AT,
    })],
    registry::AccountCreated => [json!({"password_replaced": false})],
    registry::ReissuePassword => [json!({
        "identifier": "3270287A012PB2", "application": "desk-1/A-1", "worker_id": "w-1",
        "temporary_password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        "temporary_password_expires_at": AT,
    })],
    registry::PasswordReissued => [
        json!({"outcome": "reissued", "phone": "+375291234567"}),
        json!({"outcome": "static_password_set"}),
        json!({"outcome": "blocked"}),
        json!({"outcome": "unknown_identifier"}),
    ],
    // sms
    sms::CheckSubscriber => [json!({"phone": "+375291234567"})],
    sms::SubscriberChecked => [
        json!({"status": "active", "operator": "mts"}),
        json!({"status": "unknown", "operator": null}),
    ],
    sms::SendSms => [json!({"to": "+375291234567", "operator": "a1", "purpose": "phone_code", "text": sealed()})],
    sms::NotifyHolder => [json!({"identifier": "3270287A012PB2", "text": "Your application is registered"})],
    sms::SmsSent => [json!({"purpose": "temporary_password", "operator": "life", "provider_message_id": "m-1"})],
    sms::SmsNotSent => [json!({"purpose": "recovery_code", "reason": "refused", "detail": "subscriber blocked"})],
    sms::WrongCode => [json!({"phone": "+375291234567", "purpose": "phone_code"})],
    sms::DeliveryReported => [json!({
        "purpose": "notice", "provider_message_id": "m-1", "delivered": true, "at": AT,
    })],
}

// ---------------------------------------------------------------------------------------------
// The oracle: `decode` must agree with "type check, parse, validate", and what it accepts must
// round-trip.

/// Decodes `body` as `M` and checks the answer against the rules; `Err` says which broke.
fn check_decode<M: Message + PartialEq + Debug>(t: &str, body: &[u8]) -> Result<Verdict, String> {
    let got = contracts::decode::<M>(t, body);
    if let Err(e) = &got {
        // Formatting an error must not panic either (it is logged and dead-lettered).
        let _ = (e.to_string(), format!("{e:?}"));
    }
    if !M::TYPE.matches(t) {
        return match got {
            Err(DecodeError::WrongType { .. }) => Ok(Verdict::WrongType),
            other => Err(format!(
                "type {t:?} is not {} but decode said {other:?}",
                M::TYPE
            )),
        };
    }
    let parsed = serde_json::from_slice::<M>(body);
    let verdict = match (parsed, got) {
        (Err(_), Err(DecodeError::NotJson { .. })) => Verdict::NotJson,
        (Ok(m), Err(DecodeError::Invalid { errors, .. })) => match m.validate() {
            Err(expected) if expected == errors && !errors.is_empty() => Verdict::Invalid,
            other => {
                return Err(format!(
                    "decode refused as invalid ({errors}) but validate said {other:?}"
                ));
            }
        },
        (Ok(m), Ok(decoded)) => {
            if let Err(e) = m.validate() {
                return Err(format!("decode accepted what validate refuses: {e}"));
            }
            if decoded != m {
                return Err(format!("decode gave {decoded:?}, serde gave {m:?}"));
            }
            round_trip(&decoded)?;
            Verdict::Accepted
        }
        (parsed, got) => {
            return Err(format!(
                "decode said {got:?}, parse said {:?}",
                parsed.map(|m| format!("{m:?}"))
            ));
        }
    };
    Ok(verdict)
}

fn reencode<M: Message>(v: &Value) -> Value {
    let m: M = serde_json::from_value(v.clone()).expect("a valid sample");
    serde_json::to_value(&m).expect("encodes")
}

/// An accepted message encodes, decodes to the same value, and encodes to the same bytes again.
fn round_trip<M: Message + PartialEq + Debug>(m: &M) -> Result<(), String> {
    let bytes = contracts::encode(m).map_err(|e| format!("{m:?} does not encode: {e}"))?;
    let back = contracts::decode::<M>(&M::TYPE.to_string(), &bytes)
        .map_err(|e| format!("{m:?} encoded as {} does not decode: {e}", lossy(&bytes)))?;
    if &back != m {
        return Err(format!(
            "round trip changed {m:?} into {back:?} (via {})",
            lossy(&bytes)
        ));
    }
    let again = contracts::encode(&back).map_err(|e| e.to_string())?;
    if again != bytes {
        return Err(format!(
            "encoding is not stable: {} then {}",
            lossy(&bytes),
            lossy(&again)
        ));
    }
    Ok(())
}

fn lossy(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() > 300 {
        format!(
            "{}... ({} bytes)",
            s.chars().take(300).collect::<String>(),
            bytes.len()
        )
    } else {
        s.into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations of a valid document.

/// A step from a JSON node to a child.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    At(usize),
}

/// The path of every node of `v` (the root first), and of every object among them.
fn paths(v: &Value) -> (Vec<Vec<Step>>, Vec<Vec<Step>>) {
    fn walk(
        v: &Value,
        here: &mut Vec<Step>,
        all: &mut Vec<Vec<Step>>,
        objects: &mut Vec<Vec<Step>>,
    ) {
        all.push(here.clone());
        match v {
            Value::Object(m) => {
                objects.push(here.clone());
                for (k, child) in m {
                    here.push(Step::Key(k.clone()));
                    walk(child, here, all, objects);
                    here.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    here.push(Step::At(i));
                    walk(child, here, all, objects);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let (mut all, mut objects) = (Vec::new(), Vec::new());
    walk(v, &mut Vec::new(), &mut all, &mut objects);
    (all, objects)
}

fn node<'a>(v: &'a Value, path: &[Step]) -> &'a Value {
    path.iter().fold(v, |node, step| match step {
        Step::Key(k) => &node[k.as_str()],
        Step::At(i) => &node[*i],
    })
}

fn node_mut<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |node, step| match step {
        Step::Key(k) => &mut node[k.as_str()],
        Step::At(i) => &mut node[*i],
    })
}

/// Stands in for a raw fragment while the document is serialised; it cannot occur in a sample.
const PLACEHOLDER: &str = "\u{0}fuzz-placeholder\u{0}";
const PLACEHOLDER_KEY: &str = "\u{0}fuzz-key\u{0}";

fn replace_once(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    match haystack.windows(needle.len()).position(|w| w == needle) {
        Some(i) => [&haystack[..i], with, &haystack[i + needle.len()..]].concat(),
        None => haystack.to_vec(),
    }
}

/// `sample` with the node at `path` replaced by the raw `fragment`.
fn replace_node(sample: &Value, path: &[Step], fragment: &[u8]) -> Vec<u8> {
    let mut v = sample.clone();
    *node_mut(&mut v, path) = json!(PLACEHOLDER);
    replace_once(&to_bytes(&v), &to_bytes(&json!(PLACEHOLDER)), fragment)
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a Value always serialises")
}

/// One change to a valid document, bytes or structure.
#[derive(Debug, Clone)]
enum Mutation {
    /// Cut the body at a position.
    Truncate(Index),
    /// XOR bytes at positions with non-zero masks.
    Flip(Vec<(Index, u8)>),
    /// Insert raw bytes at a position.
    Splice(Index, Vec<u8>),
    /// Replace a node (the root included) with a raw fragment.
    Replace(Index, Vec<u8>),
    /// Remove a node (a field or an array element; the root becomes an empty body).
    Remove(Index),
    /// Add a member to an object: a second value for an existing key, or an unknown key.
    Insert {
        object: Index,
        key: NewKey,
        value: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
enum NewKey {
    Duplicate(Index),
    Unknown(String),
}

fn apply(sample: &Value, mutation: &Mutation) -> Vec<u8> {
    let valid = to_bytes(sample);
    let (all, objects) = paths(sample);
    match mutation {
        Mutation::Truncate(at) => valid[..at.index(valid.len() + 1)].to_vec(),
        Mutation::Flip(flips) => {
            let mut b = valid;
            for (at, mask) in flips {
                let i = at.index(b.len());
                b[i] ^= mask;
            }
            b
        }
        Mutation::Splice(at, bytes) => {
            let i = at.index(valid.len() + 1);
            [&valid[..i], bytes.as_slice(), &valid[i..]].concat()
        }
        Mutation::Replace(node, fragment) => {
            replace_node(sample, &all[node.index(all.len())], fragment)
        }
        Mutation::Remove(node) => {
            let path = &all[node.index(all.len())];
            let Some((last, parent)) = path.split_last() else {
                return Vec::new();
            };
            let mut v = sample.clone();
            match (node_mut(&mut v, parent), last) {
                (Value::Object(m), Step::Key(k)) => {
                    m.remove(k);
                }
                (Value::Array(a), Step::At(i)) => {
                    a.remove(*i);
                }
                _ => unreachable!("paths() only makes matching steps"),
            }
            to_bytes(&v)
        }
        Mutation::Insert { object, key, value } => {
            let path = &objects[object.index(objects.len())];
            let key = match key {
                NewKey::Duplicate(i) => {
                    let keys: Vec<&String> = node(sample, path)
                        .as_object()
                        .map(|m| m.keys().collect())
                        .unwrap_or_default();
                    if keys.is_empty() {
                        "empty".to_owned()
                    } else {
                        keys[i.index(keys.len())].clone()
                    }
                }
                NewKey::Unknown(k) => k.clone(),
            };
            insert_member(sample, path, &key, value)
        }
    }
}

/// `sample` with one more member in the object at `path`: `key` (which may be there already)
/// with the raw `value`.
fn insert_member(sample: &Value, path: &[Step], key: &str, value: &[u8]) -> Vec<u8> {
    let mut v = sample.clone();
    if let Some(m) = node_mut(&mut v, path).as_object_mut() {
        m.insert(PLACEHOLDER_KEY.into(), json!(PLACEHOLDER));
    }
    let needle = [
        to_bytes(&json!(PLACEHOLDER_KEY)),
        b":".to_vec(),
        to_bytes(&json!(PLACEHOLDER)),
    ]
    .concat();
    let with = [to_bytes(&json!(key)), b":".to_vec(), value.to_vec()].concat();
    replace_once(&to_bytes(&v), &needle, &with)
}

// ---------------------------------------------------------------------------------------------
// Hostile values.

/// serde_json refuses documents nested deeper than this; the tests go just under and over it.
const SERDE_JSON_DEPTH_LIMIT: usize = 128;

/// Any JSON value, a few levels deep (as in the adapters' hostile-input tests).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Numbers no field type holds: past u64 and i64, past f64, with endless digits or exponents.
fn huge_number() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just("18446744073709551616".to_owned()),
        Just("-9223372036854775809".to_owned()),
        Just("4294967296".to_owned()),
        Just("-1".to_owned()),
        Just("-0".to_owned()),
        Just("1.5".to_owned()),
        Just("1e400".to_owned()),
        Just("-1e-400".to_owned()),
        Just("1E+99999999999999999999".to_owned()),
        Just("1.7976931348623157e308".to_owned()),
        (1usize..2000).prop_map(|n| format!("1{}", "0".repeat(n))),
        (1usize..2000).prop_map(|n| format!("0.{}1", "0".repeat(n))),
        (1usize..2000).prop_map(|n| format!("1e{}", "9".repeat(n))),
        "-?[0-9]{1,40}(\\.[0-9]{1,40})?([eE][+-]?[0-9]{1,6})?",
    ]
    .prop_map(String::into_bytes)
}

/// Valid JSON strings that are long, or full of unicode and control characters.
fn odd_string() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (".{1,3}", 1usize..20_000).prop_map(|(s, n)| s.repeat(n)),
        "\\PC{0,64}",
        "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{200b}-\\u{200f}\\u{2028}\\u{2029}\\u{feff}]{0,32}",
        "[ \t\r\n]{0,8}",
        Just(String::new()),
        Just("\u{10FFFF}\u{FFFD}\u{0}".to_owned()),
    ]
    .prop_map(|s| to_bytes(&json!(s)))
}

/// Strings that are not valid JSON or not valid UTF-8.
fn broken_string() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"\"\\ud800\"".to_vec()),
        Just(b"\"\\udc00\\ud800\"".to_vec()),
        Just(b"\"\\ud800\\u0041\"".to_vec()),
        Just(b"\"\\u00\"".to_vec()),
        Just(b"\"\\x41\"".to_vec()),
        Just(b"\"\x01\"".to_vec()),
        Just(b"\"\xff\xfe\"".to_vec()),
        Just(b"\"\xed\xa0\x80\"".to_vec()),
        Just(b"\"\xc0\xaf\"".to_vec()),
        Just(b"\"unterminated".to_vec()),
        prop::collection::vec(any::<u8>(), 0..16)
            .prop_map(|b| [b"\"".as_slice(), &b, b"\""].concat()),
    ]
}

/// Nested arrays or objects around the parser's depth limit and far beyond it, closed or not.
fn nested() -> impl Strategy<Value = Vec<u8>> {
    let depth = prop_oneof![
        1usize..SERDE_JSON_DEPTH_LIMIT + 8,
        Just(SERDE_JSON_DEPTH_LIMIT - 1),
        Just(SERDE_JSON_DEPTH_LIMIT),
        Just(SERDE_JSON_DEPTH_LIMIT + 1),
        Just(10_000usize),
    ];
    (depth, 0..4u8).prop_map(|(d, shape)| match shape {
        0 => nest_arrays(d),
        1 => nest_objects(d),
        2 => "[".repeat(d).into_bytes(),
        _ => "{\"a\":".repeat(d).into_bytes(),
    })
}

/// `d` levels of arrays: `[[[0]]]` for 3.
fn nest_arrays(d: usize) -> Vec<u8> {
    format!("{}0{}", "[".repeat(d), "]".repeat(d)).into_bytes()
}

/// `d` levels of objects: `{"a":{"a":0}}` for 2.
fn nest_objects(d: usize) -> Vec<u8> {
    format!("{}0{}", "{\"a\":".repeat(d), "}".repeat(d)).into_bytes()
}

/// Strings that look like the dates, times and ids the contracts carry, at their edges.
fn typed_string() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Dates: any year chrono might or might not take, any month and day.
        (-300_000i32..300_000, 0u32..14, 0u32..33)
            .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        (0u32..10_000, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        Just("+262143-12-31".to_owned()),
        Just("-262144-01-01".to_owned()),
        Just("2024-02-29".to_owned()),
        Just("2023-02-29".to_owned()),
        // Times: leap seconds, offsets, fractions, the extremes.
        (
            0u32..25,
            0u32..61,
            0u32..62,
            "(\\.[0-9]{1,12})?",
            "(Z|[+-][0-9]{2}:[0-9]{2}|[+-][0-9]{4})"
        )
            .prop_map(|(h, mi, s, frac, tz)| format!("2026-12-31T{h:02}:{mi:02}:{s:02}{frac}{tz}")),
        Just("+262143-12-31T23:59:59.999999999Z".to_owned()),
        Just("-262143-01-01T00:00:00Z".to_owned()),
        Just("1970-01-01T00:00:00+23:59".to_owned()),
        Just("2016-12-31T23:59:60Z".to_owned()),
        Just("2026-11-27 10:00:00Z".to_owned()),
        Just("2026-11-27t10:00:00z".to_owned()),
        // UUIDs in every spelling the uuid crate reads, and near misses.
        Just(UUID.to_uppercase()),
        Just(UUID.replace('-', "")),
        Just(format!("{{{UUID}}}")),
        Just(format!("urn:uuid:{UUID}")),
        Just("00000000-0000-0000-0000-000000000000".to_owned()),
        Just("ffffffff-ffff-ffff-ffff-ffffffffffff".to_owned()),
        "[0-9a-fA-F-]{30,40}",
        // Enum names with the wrong case or padding.
        "(Citizen|PASSPORT| active|mts |granted\\u{0}|paid\\n)",
    ]
    .prop_map(|s| to_bytes(&json!(s)))
}

/// Anything that may stand where a JSON value stands (or where it does not).
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => any_json().prop_map(|v| to_bytes(&v)),
        2 => huge_number(),
        2 => odd_string(),
        2 => typed_string(),
        1 => broken_string(),
        1 => nested(),
        1 => prop::collection::vec(any::<u8>(), 0..16),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec((any::<Index>(), 1u8..=255), 1..4).prop_map(Mutation::Flip),
        1 => (any::<Index>(), fragment()).prop_map(|(at, b)| Mutation::Splice(at, b)),
        4 => (any::<Index>(), fragment()).prop_map(|(at, b)| Mutation::Replace(at, b)),
        1 => any::<Index>().prop_map(Mutation::Remove),
        2 => (
            any::<Index>(),
            prop_oneof![
                any::<Index>().prop_map(NewKey::Duplicate),
                "\\PC{0,12}".prop_map(NewKey::Unknown),
            ],
            fragment(),
        )
            .prop_map(|(object, key, value)| Mutation::Insert { object, key, value }),
    ]
}

/// Bytes that look like JSON, so that the parser gets past its first byte.
fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b'{'),
            Just(b'}'),
            Just(b'['),
            Just(b']'),
            Just(b'"'),
            Just(b':'),
            Just(b','),
            Just(b'\\'),
            Just(b'-'),
            Just(b'.'),
            Just(b'e'),
            Just(b' '),
            b'0'..=b'9',
            b'a'..=b'z',
        ],
        0..256,
    )
}

// ---------------------------------------------------------------------------------------------
// The tests.

fn config(cases: u32) -> ProptestConfig {
    // `ProptestConfig::default()` reads PROPTEST_CASES; keep the environment's count when set.
    if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default()
    } else {
        ProptestConfig::with_cases(cases)
    }
}

/// Runs `check` on every type's every sample after `mutation`; the first broken rule fails.
fn every_sample(mutation: &Mutation) -> Result<(), TestCaseError> {
    for case in cases() {
        for sample in &case.samples {
            let body = apply(sample, mutation);
            (case.check)(&case.wire(), &body).map_err(|e| {
                TestCaseError::fail(format!("{}: {e}\nbody: {}", case.rust_name, lossy(&body)))
            })?;
        }
    }
    Ok(())
}

#[test]
fn every_declared_message_type_is_under_test() {
    let listed: Vec<String> = cases().iter().map(Case::wire).collect();
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a type is listed twice: {listed:?}"
    );
    let declared = declared_types();
    let missing: Vec<_> = declared.difference(&unique).collect();
    let unknown: Vec<_> = unique.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "add these to every_type! in contracts/tests/fuzz.rs: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "listed but not found in the sources: {unknown:?}"
    );
    for name in &listed {
        assert!(MessageType::is_well_formed(name), "{name}");
    }
}

/// Every `MessageType::new("name", N)` in the crate's sources, outside test modules, as
/// `name.vN`.
fn declared_types() -> BTreeSet<String> {
    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("the crate's src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut found = BTreeSet::new();
    let mut impls = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file is readable");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        impls += code.matches("impl Message for ").count();
        for rest in code.split("MessageType::new(\"").skip(1) {
            let (name, after) = rest.split_once('"').expect("a closing quote");
            let version: String = after
                .trim_start_matches([',', ' ', '\n'])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            assert!(
                !version.is_empty(),
                "{}: {name} has no literal version",
                file.display()
            );
            found.insert(format!("{name}.v{version}"));
        }
    }
    assert_eq!(
        impls,
        found.len(),
        "every `impl Message` names its type with MessageType::new(\"name\", N), once"
    );
    found
}

#[test]
fn every_sample_decodes_and_round_trips_exactly() {
    for case in cases() {
        for sample in &case.samples {
            let body = to_bytes(sample);
            assert_eq!(
                (case.check)(&case.wire(), &body),
                Ok(Verdict::Accepted),
                "{}: {sample}",
                case.rust_name
            );
        }
    }
    // And the samples are complete: every field present, as the type writes it, so that the
    // mutations reach every field.
    for case in cases() {
        for sample in &case.samples {
            assert_eq!(
                &(case.reencode)(sample),
                sample,
                "{} sample is not complete",
                case.rust_name
            );
        }
    }
}

#[test]
fn the_oracle_tells_each_refusal_apart() {
    let cancel = cases()
        .into_iter()
        .find(|c| c.ty == ops::CancelSaga::TYPE)
        .expect("listed");
    let check = |t: &str, body: &str| (cancel.check)(t, body.as_bytes());
    assert_eq!(check("ops.cancel_saga.v2", "{}"), Ok(Verdict::WrongType));
    assert_eq!(check("ops.cancel_saga.v1", "{"), Ok(Verdict::NotJson));
    let blank = json!({"saga_id": UUID, "reason": " ", "operator": "x"}).to_string();
    assert_eq!(check("ops.cancel_saga.v1", &blank), Ok(Verdict::Invalid));
}

/// A key given twice is ambiguous (parsers differ on which value wins), so a message with one
/// is refused, at any depth, except inside a free JSON form, where the last value wins.
#[test]
fn a_key_given_twice_is_refused() {
    let (mut accepted, mut tried) = (Vec::new(), 0);
    for case in cases() {
        for sample in &case.samples {
            let (_, objects) = paths(sample);
            for path in &objects {
                let Some(object) = node(sample, path).as_object() else {
                    continue;
                };
                for (key, value) in object {
                    let body = insert_member(sample, path, key, &to_bytes(value));
                    tried += 1;
                    let verdict = (case.check)(&case.wire(), &body)
                        .unwrap_or_else(|e| panic!("{}: {e}", case.rust_name));
                    let in_form = matches!(path.first(), Some(Step::Key(k)) if k == "form");
                    if verdict == Verdict::Accepted && !in_form {
                        accepted.push(format!("{} {path:?} {key}", case.rust_name));
                    }
                }
            }
        }
    }
    assert!(tried > 300, "only {tried} keys tried");
    assert!(
        accepted.is_empty(),
        "duplicate keys accepted: {accepted:#?}"
    );
}

/// Found by `a_valid_document_changed_anyhow_is_decoded_or_refused`: serde_json's default float
/// parsing may miss the nearest double by one unit in the last place, so a number in an
/// application's form (`-6.293860601978252e+305`) changed each time the hub decoded and
/// re-encoded it on its way to the authority. The crate now parses floats exactly
/// (serde_json's `float_roundtrip`).
#[test]
fn a_number_in_a_form_survives_the_hub_exactly() {
    let texts = [
        "-6.293860601978252e+305",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
        "5e-324",
        "0.30000000000000004",
        "123456.789",
    ];
    for text in texts {
        let exact: f64 = text.parse().expect("a float");
        let body = replace_node(
            &json!({
                "application_id": UUID, "procedure_code": "1.1.5",
                "session_token": "tok-1",
                "form": {"n": 0}, "attachments": [],
            }),
            &[Step::Key("form".into()), Step::Key("n".into())],
            text.as_bytes(),
        );
        let submitted =
            contracts::decode::<procedure::SubmitApplication>("procedure.submit.v1", &body)
                .expect("valid");
        assert_eq!(submitted.form["n"].as_f64(), Some(exact), "{text}");
        let relayed = contracts::encode(&submitted).expect("encodes");
        let again =
            contracts::decode::<procedure::SubmitApplication>("procedure.submit.v1", &relayed)
                .expect("valid");
        assert_eq!(again, submitted, "{text}");
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_are_decoded_or_refused(
        body in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), json_soup()],
    ) {
        for case in cases() {
            let verdict = (case.check)(&case.wire(), &body)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", case.rust_name)))?;
            // Every type needs at least one field or `{}`: raw bytes are never a message.
            if case.ty != registration::RequestEdsChallenge::TYPE {
                prop_assert_ne!(verdict, Verdict::Accepted, "{} took {:?}", case.rust_name, lossy(&body));
            }
        }
    }

    #[test]
    fn a_type_property_other_than_the_message_s_is_refused(
        t in prop_oneof![
            "\\PC{0,40}",
            "[a-z_.]{1,30}\\.v[0-9+-]{0,6}",
            Just("ops.cancel_saga.v".to_owned()),
            Just("ops.cancel_saga.v65537".to_owned()),
        ],
        pick in any::<Index>(),
    ) {
        let all = cases();
        let case = &all[pick.index(all.len())];
        let verdict = (case.check)(&t, &to_bytes(&case.samples[0]))
            .map_err(|e| TestCaseError::fail(format!("{}: {e}", case.rust_name)))?;
        prop_assert_eq!(verdict == Verdict::WrongType, !case.ty.matches(&t));
    }

    #[test]
    fn a_valid_document_changed_anyhow_is_decoded_or_refused(m in mutation()) {
        every_sample(&m)?;
    }

    #[test]
    fn a_cancel_is_accepted_exactly_when_it_has_a_reason_of_at_most_1000_characters_and_an_operator(
        reason in prop_oneof![
            "\\PC{0,20}",
            "[ \t\r\n\u{a0}\u{2003}\u{3000}]{0,6}",
            (995usize..1005, "[aЖ😀 ]").prop_map(|(n, c)| c.repeat(n)),
        ],
        operator in prop_oneof!["\\PC{0,12}", "[ \t\n]{0,3}"],
    ) {
        let body = to_bytes(&json!({"saga_id": UUID, "reason": reason, "operator": operator}));
        let expected = !reason.trim().is_empty()
            && reason.chars().count() <= ops::MAX_REASON_CHARS
            && !operator.trim().is_empty();
        match contracts::decode::<ops::CancelSaga>("ops.cancel_saga.v1", &body) {
            Ok(c) => {
                prop_assert!(expected, "accepted {c:?}");
                prop_assert_eq!((c.reason, c.operator), (reason, operator));
            }
            Err(DecodeError::Invalid { errors, .. }) => {
                prop_assert!(!expected, "refused a valid cancel: {}", errors);
                for f in &errors.fields {
                    prop_assert!(f.field == "reason" || f.field == "operator", "{:?}", f);
                }
            }
            Err(e) => prop_assert!(false, "a well-typed cancel refused as {}", e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies as large as the hub takes, and as deep as the parser goes.

/// The largest body the hub hands to a decoder (`hub_runtime::broker::MAX_BODY_BYTES`; this crate
/// cannot name the hub's constant).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Stack of the threads that decode in the hub (tokio's worker default), so that a recursion a
/// small stack cannot hold shows here as a crash, not in production.
const WORKER_STACK_BYTES: usize = 2 * 1024 * 1024;

/// One type for each way serde reads a body: the 1 MiB sweeps below cost about half a second
/// per type in a debug build, so they run on these: every other type is read by the same serde
/// path as one of them.
fn one_per_shape() -> Vec<Case> {
    let shapes = [
        ops::CancelSaga::TYPE,                   // flat struct with a validation step
        issuance::ApplyForIdentifier::TYPE,      // nested structs, dates, enums
        account::RequestRejected::TYPE,          // a Vec of structs, options
        procedure::SubmitApplication::TYPE,      // a free JSON form (Map<String, Value>)
        cabinet::CabinetReply::TYPE,             // flattened, internally tagged: body buffered
        registration::LogInByEds::TYPE,          // flattened struct: body buffered
        mvd::Reconciled::TYPE,                   // an internally tagged field
        registration::RequestEdsChallenge::TYPE, // no fields: any object is one
        sms::SendSms::TYPE,                      // a nested sealed secret, an optional enum
    ];
    cases()
        .into_iter()
        .filter(|c| shapes.contains(&c.ty))
        .collect()
}

/// Runs `work` on a thread with the hub's stack size and waits for it. The deadline only turns
/// a hang into a failure instead of a stuck run (each call takes seconds at most in a debug
/// build), so it is no timing assertion.
fn on_worker_thread(what: &str, work: impl FnOnce() -> Result<(), String> + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(what.to_owned())
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || {
            let _ = tx.send(work());
        })
        .expect("a thread");
    match rx.recv_timeout(Duration::from_secs(600)) {
        Ok(result) => {
            handle.join().expect("the worker has returned");
            if let Err(e) = result {
                panic!("{what}: {e}");
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: decoding hangs"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let panic = handle
                .join()
                .expect_err("the worker ended without an answer");
            std::panic::resume_unwind(panic)
        }
    }
}

/// `unit` repeated to fill a body of about `MAX_BODY_BYTES`, between `open` and `close`.
fn filled(open: &str, unit: &str, close: &str) -> Vec<u8> {
    let n = (MAX_BODY_BYTES - open.len() - close.len()) / unit.len();
    [open.as_bytes(), unit.repeat(n).as_bytes(), close.as_bytes()].concat()
}

/// Whole bodies of up to 1 MiB that are pathological for a parser.
fn pathological_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let deep = String::from_utf8(nest_arrays(SERDE_JSON_DEPTH_LIMIT - 2)).expect("ASCII");
    vec![
        ("open arrays", "[".repeat(MAX_BODY_BYTES).into_bytes()),
        ("open objects", filled("", "{\"a\":", "")),
        ("closed arrays", nest_arrays(MAX_BODY_BYTES / 2 - 1)),
        ("whitespace", filled("", " ", "")),
        ("one long number", filled("", "9", "")),
        ("one long fraction", filled("0.", "0", "1")),
        ("one long exponent", filled("1e", "9", "")),
        ("one long string", filled("\"", "x", "\"")),
        ("an object with one long key", filled("{\"", "k", "\":0}")),
        (
            "unknown fields, each nested to the limit",
            filled("{", &format!("\"u\":{deep},"), "\"v\":0}"),
        ),
        ("many duplicate keys", filled("{", "\"k\":0,", "\"k\":1}")),
        ("many small members", filled("{", "\"k\":[],", "\"z\":0}")),
        ("a long array of nulls", filled("[", "null,", "null]")),
    ]
}

/// Field values as large or as deep as a body can hold, for every field in turn.
fn pathological_fields() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "a 1 MiB string",
            to_bytes(&json!("x".repeat(MAX_BODY_BYTES - 1024))),
        ),
        (
            "a 1 MiB string of escapes",
            format!("\"{}\"", "\\u0000".repeat((MAX_BODY_BYTES - 1024) / 6)).into_bytes(),
        ),
        (
            "a value nested to the limit",
            nest_arrays(SERDE_JSON_DEPTH_LIMIT - 4),
        ),
        (
            "a 1 MiB array of numbers",
            filled("[", "1,", "1]")[..MAX_BODY_BYTES - 1024].to_vec(),
        ),
    ]
}

/// Every pathological body decoded as each of `cases` on a worker-sized stack: refused or
/// decoded (and then round-tripped), never a panic, a stack overflow or a hang.
fn takes_pathological_bodies(cases: &[Case]) {
    for (name, body) in pathological_bodies() {
        assert!(body.len() <= MAX_BODY_BYTES, "{name}: {} bytes", body.len());
        let checks: Vec<_> = cases
            .iter()
            .map(|c| (c.rust_name, c.wire(), c.check))
            .collect();
        on_worker_thread(name, move || {
            for (rust_name, wire, check) in checks {
                check(&wire, &body).map_err(|e| format!("{rust_name}: {e}"))?;
            }
            Ok(())
        });
    }
}

/// Every field of the samples replaced by each pathological value in turn, decoded on a
/// worker-sized stack, with the same expectations.
fn takes_pathological_fields(cases: &[Case], every_sample: bool) {
    for (name, fragment) in pathological_fields() {
        let mut bodies = Vec::new();
        for case in cases {
            let samples = if every_sample {
                &case.samples[..]
            } else {
                &case.samples[..1]
            };
            for sample in samples {
                let (all, _) = paths(sample);
                for path in &all[1..] {
                    let body = replace_node(sample, path, &fragment);
                    assert!(body.len() <= MAX_BODY_BYTES, "{name}: {} bytes", body.len());
                    bodies.push((
                        case.rust_name,
                        format!("{path:?}"),
                        case.wire(),
                        case.check,
                        body,
                    ));
                }
            }
        }
        on_worker_thread(name, move || {
            for (rust_name, path, wire, check, body) in bodies {
                check(&wire, &body).map_err(|e| format!("{rust_name} at {path}: {e}"))?;
            }
            Ok(())
        });
    }
}

#[test]
fn a_one_mebibyte_pathological_body_is_decoded_or_refused() {
    takes_pathological_bodies(&one_per_shape());
}

#[test]
fn a_field_as_large_or_deep_as_a_body_holds_is_decoded_or_refused() {
    takes_pathological_fields(&one_per_shape(), false);
}
