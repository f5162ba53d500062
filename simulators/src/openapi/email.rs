//! The e-mail simulator's document (handlers: `crate::email::api`). Its SMTP sink is not HTTP
//! and not described here.

#![allow(
    dead_code,
    reason = "the functions carry the operations' annotations and the types are schemas only"
)]

use utoipa::{OpenApi, ToSchema};

use super::common::ApiError;

/// A received message as the inbox shows it.
#[derive(ToSchema)]
struct Mail {
    /// The `From` header, decoded (the envelope's sender when the message has none).
    from: String,
    /// The envelope's recipients (`RCPT TO`), in the order given.
    to: Vec<String>,
    /// The `Subject` header, decoded; empty when the message has none.
    subject: String,
    /// The `Message-ID` header, when the message has one.
    message_id: Option<String>,
    /// The text body, decoded, with `\n` line ends.
    text: String,
    /// When the sink accepted it (RFC 3339, UTC).
    received_at: chrono::DateTime<chrono::Utc>,
}

/// One address's inbox, oldest first.
#[derive(ToSchema)]
struct Inbox {
    /// The address, lower-cased.
    address: String,
    messages: Vec<Mail>,
}

/// An inbox emptied.
#[derive(ToSchema)]
struct Cleared {
    address: String,
    /// How many messages it showed.
    deleted: u64,
}

/// The latest messages, all inboxes together.
#[derive(ToSchema)]
struct Messages {
    messages: Vec<Mail>,
}

/// The messages an address received (simulator only).
#[utoipa::path(
    get,
    path = "/sim/inbox/{address}",
    tag = "simulator",
    operation_id = "inbox",
    params(("address" = String, Path, description = "An e-mail address (case ignored).")),
    responses(
        (status = 200, description = "The inbox.", body = Inbox),
        (status = 400, description = "`invalid_address`.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn inbox() {}

/// Empties an address's inbox (simulator only).
#[utoipa::path(
    delete,
    path = "/sim/inbox/{address}",
    tag = "simulator",
    operation_id = "clear_inbox",
    params(("address" = String, Path, description = "An e-mail address (case ignored).")),
    responses(
        (status = 200, description = "Emptied.", body = Cleared),
        (status = 400, description = "`invalid_address`.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn clear_inbox() {}

/// The latest messages (simulator only).
#[utoipa::path(
    get,
    path = "/sim/messages",
    tag = "simulator",
    operation_id = "messages",
    params(("limit" = Option<u64>, Query, description = "How many, newest last (100 by default, at most 10000).")),
    responses(
        (status = 200, description = "The messages.", body = Messages),
        (status = 400, description = "`invalid_request`: a bad query.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn messages() {}

/// The e-mail simulator's own operations. Its `/sim/faults` also takes `smtp_reply` (null or
/// an SMTP reply code to refuse recipients with: 421, 450, 451, 452, 550, 551, 552, 553, 554)
/// and `smtp_reply_rate` (0.0 to 1.0), and shows them.
#[derive(OpenApi)]
#[openapi(paths(inbox, clear_inbox, messages))]
pub(super) struct Doc;
