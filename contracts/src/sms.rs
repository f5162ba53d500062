//! The SMS adapter worker's commands and answers: the mobile operators' subscriber check, sending
//! an SMS (its text sealed), and the operators' delivery reports.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::person::Operator;
use crate::sealed::Sealed;
use crate::{Message, MessageType};

/// `sms.check_subscriber.v1`: which operator serves this number, and is it active?
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckSubscriber {
    /// `+375XXXXXXXXX`.
    #[schemars(pattern(crate::person::phone_pattern()))]
    pub phone: String,
}

masked_debug!(CheckSubscriber, "CheckSubscriber");

impl Message for CheckSubscriber {
    const TYPE: MessageType = MessageType::new("sms.check_subscriber", 1);
}

/// What the operators said about a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriberStatus {
    /// In service.
    Active,
    /// Known but blocked.
    Blocked,
    /// No operator serves it.
    Unknown,
}

/// `sms.subscriber_checked.v1`: the answer to [`CheckSubscriber`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriberChecked {
    /// The status.
    pub status: SubscriberStatus,
    /// The operator that serves it (the truth for ported numbers).
    pub operator: Option<Operator>,
}

impl Message for SubscriberChecked {
    const TYPE: MessageType = MessageType::new("sms.subscriber_checked", 1);
}

/// What an SMS is for (the text itself is sealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmsPurpose {
    /// A phone confirmation code.
    PhoneCode,
    /// A temporary password.
    TemporaryPassword,
    /// A password recovery code.
    RecoveryCode,
    /// A notice about the person's application (registered, decided): nothing secret.
    Notice,
}

/// `sms.send.v1`: send a text to a phone.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SendSms {
    /// `+375XXXXXXXXX`.
    pub to: String,
    /// The operator to send through, if known (else by prefix).
    pub operator: Option<Operator>,
    /// Why.
    pub purpose: SmsPurpose,
    /// The whole text, sealed: it carries a code or a password.
    pub text: Sealed,
}

impl std::fmt::Debug for SendSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendSms")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

impl Message for SendSms {
    const TYPE: MessageType = MessageType::new("sms.send", 1);
}

/// `sms.notify_holder.v1`: tell the holder of an identifier something by SMS, at the phone the
/// registry has for it. Nobody waits for an answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NotifyHolder {
    /// The identifier whose phone gets the SMS.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The text (a notice: nothing secret).
    pub text: String,
}

masked_debug!(NotifyHolder, "NotifyHolder");

impl Message for NotifyHolder {
    const TYPE: MessageType = MessageType::new("sms.notify_holder", 1);
}

/// `sms.sent.v1`: the operator accepted the SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SmsSent {
    /// Why it was sent.
    pub purpose: SmsPurpose,
    /// The operator.
    pub operator: Operator,
    /// The operator's message id (delivery reports name it).
    pub provider_message_id: String,
}

impl Message for SmsSent {
    const TYPE: MessageType = MessageType::new("sms.sent", 1);
}

/// `sms.not_sent.v1`: the SMS was not sent, for good: the operator refused it, no operator
/// serves the number, or a per-phone limit held it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SmsNotSent {
    /// Why it was to be sent.
    pub purpose: SmsPurpose,
    /// Why it was not: the code the requester decides by.
    pub reason: NotSentReason,
    /// The operator's own words when it refused ([`NotSentReason::Refused`]), for people
    /// reading logs and dead letters; never the number or the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl SmsNotSent {
    /// Not sent for `reason`, with no words of the operator's.
    pub fn new(purpose: SmsPurpose, reason: NotSentReason) -> Self {
        Self {
            purpose,
            reason,
            detail: None,
        }
    }
}

/// Why an SMS was not sent. On the wire the snake_case name; the sentences the SMS worker sent
/// before there was a code (`too many SMS to this number; try later`, ...) still decode to
/// their codes, and any other sentence (an operator's refusal) to [`NotSentReason::Refused`],
/// so an answer in flight across an upgrade is understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotSentReason {
    /// Too many SMS to this number in the window (`HUB_SMS_PER_PHONE`).
    #[serde(alias = "too many SMS to this number; try later")]
    SmsPerPhoneReached,
    /// Too many wrong codes typed for this number in the window (`HUB_WRONG_CODES_PER_PHONE`):
    /// no further code goes to it.
    #[serde(alias = "too many wrong codes for this number; try later")]
    WrongCodesPerPhoneReached,
    /// The holder of the identifier has no phone on record (a notice SMS).
    #[serde(alias = "no phone for the holder")]
    NoPhone,
    /// No operator serves the number.
    #[serde(alias = "no operator serves the number")]
    NoOperator,
    /// The operator refused it for good (a blocked subscriber, say); `detail` has its words.
    #[serde(other)]
    Refused,
}

impl NotSentReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotSentReason::SmsPerPhoneReached => "sms_per_phone_reached",
            NotSentReason::WrongCodesPerPhoneReached => "wrong_codes_per_phone_reached",
            NotSentReason::NoPhone => "no_phone",
            NotSentReason::NoOperator => "no_operator",
            NotSentReason::Refused => "refused",
        }
    }

    /// A sentence for people (logs, the operations console).
    pub fn describe(self) -> &'static str {
        match self {
            NotSentReason::SmsPerPhoneReached => "too many SMS to this number; try later",
            NotSentReason::WrongCodesPerPhoneReached => {
                "too many wrong codes for this number; try later"
            }
            NotSentReason::NoPhone => "no phone for the holder",
            NotSentReason::NoOperator => "no operator serves the number",
            NotSentReason::Refused => "the operator refused the SMS",
        }
    }
}

impl std::fmt::Display for NotSentReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Message for SmsNotSent {
    const TYPE: MessageType = MessageType::new("sms.not_sent", 1);
}

/// `sms.delivery_reported.v1`: an operator's delivery report, turned into a message for the
/// saga that sent the SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryReported {
    /// Why it was sent.
    pub purpose: SmsPurpose,
    /// The operator's message id.
    pub provider_message_id: String,
    /// Delivered to the phone, or failed for good.
    pub delivered: bool,
    /// When the operator says it happened.
    pub at: DateTime<Utc>,
}

impl Message for DeliveryReported {
    const TYPE: MessageType = MessageType::new("sms.delivery_reported", 1);
}

/// `sms.wrong_code.v1`: a code the hub sent to this phone was typed wrong. The SMS worker counts
/// wrong codes per phone, over every application and account, and sends no further code to a
/// phone over its limit, so rotating applications does not multiply the guesses on one phone.
/// Nobody waits for an answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WrongCode {
    /// `+375XXXXXXXXX`.
    #[schemars(pattern(crate::person::phone_pattern()))]
    pub phone: String,
    /// What the code was for.
    pub purpose: SmsPurpose,
}

masked_debug!(WrongCode, "WrongCode");

impl Message for WrongCode {
    const TYPE: MessageType = MessageType::new("sms.wrong_code", 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_sent_reasons_are_codes_and_the_old_sentences_still_decode() {
        let n = SmsNotSent::new(
            SmsPurpose::PhoneCode,
            NotSentReason::WrongCodesPerPhoneReached,
        );
        let json = serde_json::to_value(&n).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"purpose": "phone_code", "reason": "wrong_codes_per_phone_reached"})
        );
        for reason in [
            NotSentReason::SmsPerPhoneReached,
            NotSentReason::WrongCodesPerPhoneReached,
            NotSentReason::NoPhone,
            NotSentReason::NoOperator,
            NotSentReason::Refused,
        ] {
            let wire = serde_json::to_value(reason).expect("json");
            assert_eq!(wire, reason.as_str());
            // An answer written before the codes carried the sentence.
            let old: NotSentReason =
                serde_json::from_value(reason.describe().into()).expect("old sentence");
            assert_eq!(old, reason, "{}", reason.describe());
        }
        let refused: SmsNotSent =
            serde_json::from_str(r#"{"purpose": "recovery_code", "reason": "subscriber blocked"}"#)
                .expect("an operator's words");
        assert_eq!(refused.reason, NotSentReason::Refused);
    }
}
