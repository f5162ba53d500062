//! Broker users of the agencies on the bus: the queue-contract authorities (`channel = "queue"`
//! in the catalogue) and the issuance desks. Each connects to RabbitMQ as its own user, which
//! the broker checks against the `user_id` a message carries; the hub takes an authority's
//! answers only from that authority's user, and a desk's commands only for that desk.
//!
//! The permissions are the least an agency needs, in any namespace: write (publish) to the bus
//! exchange `<ns>.bus`, read (consume) its own queue (`<ns>.authority.<id>`, `<ns>.desk.<id>`
//! for a desk that has one), configure nothing. In production the broker's administrators
//! create the users with the commands [`rabbitmqctl_commands`] and [`desk_rabbitmqctl_commands`]
//! print (`hub topology --agency-users [--desks ...]`, with passwords of their own); on one
//! machine the demo and the tests create them with `rabbitmqctl` and [`DEV_PASSWORD`].
//!
//! A desk connects as `desk-<desk_id>` ([`desk_user`]). Every consumer of the hub runs
//! [`authorise_desk`] on what it takes: a message from a `desk-*` user must name that desk in
//! its body (`desk_id`, or `application.desk_id` of an application), else it is dead-lettered
//! with a reason naming both desks before any handler sees it, so no saga is touched. Messages
//! of the hub's own user (the demo's and the tests' desks) stay trusted, and so, for now, do
//! those without a `user_id`, which the demo's and the tests' desks send: RabbitMQ checks a
//! `user_id` only when one is set, so a desk that leaves it out is not judged here.

use std::process::Command;

use anyhow::Context;
use hub_runtime::broker::{SenderPolicy, require_sender};

use crate::procedures::catalogue::Catalogue;
use crate::procedures::saga::authority_queue;

/// The password the demo and the tests give agency users on a development broker.
pub const DEV_PASSWORD: &str = "agency-dev-password";

/// The prefix of a desk's broker user: desk `minsk-desk-1` connects as `desk-minsk-desk-1`.
pub const DESK_USER_PREFIX: &str = "desk-";

/// The longest desk id the hub takes for a broker user.
const MAX_DESK_ID_LEN: usize = 64;

/// The permission patterns (configure, write, read) of authority `id`'s broker user.
pub fn permissions(id: &str) -> [String; 3] {
    least_permissions(&authority_queue(id))
}

/// The permission patterns of desk `desk_id`'s broker user: the bus, and its own queue
/// `<ns>.desk.<desk_id>` if its administrators declare one for its events.
pub fn desk_permissions(desk_id: &str) -> [String; 3] {
    least_permissions(&desk_queue(desk_id))
}

/// The short name of the queue a desk may read its events from.
pub fn desk_queue(desk_id: &str) -> String {
    format!("desk.{desk_id}")
}

/// The broker user desk `desk_id` connects as.
pub fn desk_user(desk_id: &str) -> String {
    format!("{DESK_USER_PREFIX}{desk_id}")
}

/// Configure nothing, write the bus, read the one queue `queue` (short name) in any namespace.
fn least_permissions(queue: &str) -> [String; 3] {
    let queue = regex_escape(queue);
    [
        "^$".to_owned(),
        r"^[a-z0-9_-]+\.bus$".to_owned(),
        format!(r"^[a-z0-9_-]+\.{queue}$"),
    ]
}

/// Checks a list of desk ids (`--desks`, `HUB_DESKS`): 1 to 64 ASCII letters, digits, `-` or
/// `_` each, as a broker user name and a queue name can carry them plainly; duplicates dropped.
pub fn check_desk_ids(ids: &[String]) -> Result<Vec<String>, String> {
    let mut checked: Vec<String> = Vec::new();
    for id in ids.iter().map(|id| id.trim()).filter(|id| !id.is_empty()) {
        let plain = id.len() <= MAX_DESK_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plain {
            return Err(format!(
                "desk id {id:?}: 1 to {MAX_DESK_ID_LEN} ASCII letters, digits, '-' or '_'"
            ));
        }
        if !checked.iter().any(|c| c == id) {
            checked.push(id.to_owned());
        }
    }
    Ok(checked)
}

/// The `rabbitmqctl` commands that create each desk's user (`desk-<id>`) with its permissions,
/// as [`rabbitmqctl_commands`] does for the authorities.
pub fn desk_rabbitmqctl_commands(desk_ids: &[String], vhost: &str) -> Vec<Vec<String>> {
    desk_ids
        .iter()
        .flat_map(|id| user_commands(&desk_user(id), desk_permissions(id), vhost))
        .collect()
}

/// The message types only the hub itself sends: commands to its adapter workers and their
/// results, the registry's, and operators' (sent by `hub` commands with the hub's user).
const INTERNAL_PREFIXES: [&str; 6] = ["mvd.", "sms.", "erip.", "email.", "registry.", "ops."];

/// The portal's [`SenderPolicy`]: who may send what, asked by the runtime's consumer about
/// every message before any handler sees it.
///
/// - every message names its sender in `user_id`, which the broker checks against the
///   connection; one without it cannot be attributed, so it is refused (a desk leaving it out
///   could otherwise speak for any desk);
/// - the hub's internal types (adapter commands and results, the registry's, operators') only
///   from the hub's own user, so nobody on the bus can send an SMS or spend a phone's limits;
/// - a desk user only for its own desk ([`authorise_desk`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Senders;

impl SenderPolicy for Senders {
    fn authorise(
        &self,
        sender: Option<&str>,
        hub_user: &str,
        message_type: &str,
        body: &[u8],
    ) -> Result<(), contracts::Failure> {
        authorise_sender(sender, hub_user, message_type, body)
    }
}

/// What [`Senders`] decides, as a function.
///
/// Errors: a permanent failure naming the sender (the message is dead-lettered with it).
pub fn authorise_sender(
    user_id: Option<&str>,
    hub_user: &str,
    message_type: &str,
    body: &[u8],
) -> Result<(), contracts::Failure> {
    let user = require_sender(user_id, message_type)?;
    if user != hub_user
        && INTERNAL_PREFIXES
            .iter()
            .any(|p| message_type.starts_with(p))
    {
        return Err(contracts::Failure::permanent(format!(
            "{message_type} is the hub's own message type, but broker user {user:?} sent it: \
             only the hub ({hub_user:?}) sends it"
        )));
    }
    authorise_desk(user_id, hub_user, body)
}

/// Checks that a message a consumer took may speak for the desk its body names.
///
/// `user_id` is the sender as the broker checked it (for the hub's own retry copies, the
/// original sender). Only a `desk-<id>` user is judged: its message must name desk `<id>` (in
/// `desk_id`, or `application.desk_id` for an application); anything else it sends — another
/// desk's command, or a message that names no desk — is refused, naming both. Messages of the
/// hub's own user, of other agencies (judged by their sagas) and without a `user_id` pass.
///
/// Errors: a permanent failure (the message is dead-lettered with it as the reason).
pub fn authorise_desk(
    user_id: Option<&str>,
    hub_user: &str,
    body: &[u8],
) -> Result<(), contracts::Failure> {
    let Some(user) = user_id.filter(|u| *u != hub_user) else {
        return Ok(());
    };
    let Some(desk) = user.strip_prefix(DESK_USER_PREFIX) else {
        return Ok(());
    };
    let named = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            [
                v.get("desk_id"),
                v.get("application").and_then(|a| a.get("desk_id")),
            ]
            .into_iter()
            .flatten()
            .find_map(|d| d.as_str().map(str::to_owned))
        });
    match named {
        Some(named) if named == desk => Ok(()),
        Some(named) => Err(contracts::Failure::permanent(format!(
            "sent by broker user {user:?} (desk {desk:?}), but the message is desk {named:?}'s \
             (user {:?}): a desk sends only its own desk's commands",
            desk_user(&named)
        ))),
        None => Err(contracts::Failure::permanent(format!(
            "sent by broker user {user:?} (desk {desk:?}), but the message names no desk: a \
             desk sends only its own desk's commands"
        ))),
    }
}

/// The `rabbitmqctl` commands that create every queue authority's user with its permissions;
/// `PASSWORD_OF_<USER>` placeholders stand for passwords the administrators choose.
pub fn rabbitmqctl_commands(catalogue: &Catalogue, vhost: &str) -> Vec<Vec<String>> {
    catalogue
        .authorities()
        .filter_map(|a| Some((a.broker_user()?, permissions(&a.id))))
        .flat_map(|(user, permissions)| user_commands(user, permissions, vhost))
        .collect()
}

/// `add_user` with a `PASSWORD_OF_<USER>` placeholder, then `set_permissions`.
fn user_commands(user: &str, permissions: [String; 3], vhost: &str) -> Vec<Vec<String>> {
    let placeholder = format!(
        "PASSWORD_OF_{}",
        user.to_uppercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let [configure, write, read] = permissions;
    vec![
        vec!["add_user".into(), user.into(), placeholder],
        vec![
            "set_permissions".into(),
            "-p".into(),
            vhost.into(),
            user.into(),
            configure,
            write,
            read,
        ],
    ]
}

/// Creates (or updates) desk `desk_id`'s broker user `desk-<desk_id>` on the local RabbitMQ, as
/// [`ensure_user_with_rabbitmqctl`] does for an authority.
pub fn ensure_desk_user_with_rabbitmqctl(
    desk_id: &str,
    password: &str,
    vhost: &str,
) -> anyhow::Result<String> {
    let id = check_desk_ids(&[desk_id.to_owned()])
        .map_err(anyhow::Error::msg)?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("an empty desk id"))?;
    let user = desk_user(&id);
    ensure_broker_user(&user, password, desk_permissions(&id), vhost)?;
    Ok(user)
}

/// Creates (or updates) the broker user of authority `id` on the local RabbitMQ with
/// `rabbitmqctl`, which needs to run as a user that may administer the broker (root or the
/// `rabbitmq` user on a Debian install).
pub fn ensure_user_with_rabbitmqctl(
    user: &str,
    password: &str,
    id: &str,
    vhost: &str,
) -> anyhow::Result<()> {
    ensure_broker_user(user, password, permissions(id), vhost)
}

fn ensure_broker_user(
    user: &str,
    password: &str,
    permissions: [String; 3],
    vhost: &str,
) -> anyhow::Result<()> {
    let run = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        Command::new("rabbitmqctl")
            .args(args)
            .output()
            .context("cannot run rabbitmqctl (it comes with RabbitMQ)")
    };
    let listed = run(&["-q", "list_users"])?;
    anyhow::ensure!(
        listed.status.success(),
        "rabbitmqctl list_users failed: {}",
        String::from_utf8_lossy(&listed.stderr).trim()
    );
    let exists = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(user));
    let set = if exists {
        run(&["change_password", user, password])?
    } else {
        run(&["add_user", user, password])?
    };
    anyhow::ensure!(
        set.status.success() || String::from_utf8_lossy(&set.stderr).contains("already exists"),
        "rabbitmqctl could not set the user {user}: {}",
        String::from_utf8_lossy(&set.stderr).trim()
    );
    let [configure, write, read] = permissions;
    let granted = run(&[
        "set_permissions",
        "-p",
        vhost,
        user,
        &configure,
        &write,
        &read,
    ])?;
    anyhow::ensure!(
        granted.status.success(),
        "rabbitmqctl could not set the permissions of {user}: {}",
        String::from_utf8_lossy(&granted.stderr).trim()
    );
    Ok(())
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = matches!(
                c,
                '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '^' | '$' | '|' | '\\'
            );
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sender_is_named_and_internal_types_come_from_the_hub_only() {
        use super::authorise_sender;
        let body = br#"{"desk_id": "minsk-1", "application_number": "A-1", "code": "1"}"#;
        let unattributed = authorise_sender(None, "hub", "issuance.confirm_phone.v1", body)
            .expect_err("no user_id");
        assert!(
            unattributed.reason.contains("without user_id"),
            "{unattributed:?}"
        );
        let forged = authorise_sender(Some("desk-minsk-1"), "hub", "sms.send.v1", b"{}")
            .expect_err("an agency sending the hub's SMS command");
        assert!(forged.reason.contains("desk-minsk-1"), "{forged:?}");
        assert!(authorise_sender(Some("hub"), "hub", "sms.send.v1", b"{}").is_ok());
        assert!(
            authorise_sender(
                Some("desk-minsk-1"),
                "hub",
                "issuance.confirm_phone.v1",
                body
            )
            .is_ok()
        );
        assert!(
            authorise_sender(
                Some("desk-brest-2"),
                "hub",
                "issuance.confirm_phone.v1",
                body
            )
            .is_err()
        );
        assert!(authorise_sender(Some("fszn"), "hub", "authority.decided.v1", b"{}").is_ok());
    }

    use super::*;

    #[test]
    fn an_agency_may_read_its_queue_and_write_the_bus_only() {
        let [configure, write, read] = permissions("fszn");
        assert_eq!(configure, "^$");
        assert_eq!(write, r"^[a-z0-9_-]+\.bus$");
        assert_eq!(read, r"^[a-z0-9_-]+\.authority\.fszn$");
        let commands = rabbitmqctl_commands(&Catalogue::embedded().expect("catalogue"), "/");
        assert!(commands.iter().any(|c| c[0] == "add_user"
            && c[1] == "authority-fszn"
            && c[2] == "PASSWORD_OF_AUTHORITY_FSZN"));
        // HTTP authorities do not connect to the broker.
        assert!(!commands.iter().any(|c| c[1].contains("tax")));
    }

    #[test]
    fn a_desk_may_write_the_bus_and_read_its_own_queue_only() {
        let [configure, write, read] = desk_permissions("minsk-desk-1");
        assert_eq!(configure, "^$");
        assert_eq!(write, r"^[a-z0-9_-]+\.bus$");
        assert_eq!(read, r"^[a-z0-9_-]+\.desk\.minsk-desk-1$");
        let desks = check_desk_ids(&[" minsk-desk-1".into(), "brest_2".into(), "brest_2".into()])
            .expect("plain ids");
        assert_eq!(desks, ["minsk-desk-1", "brest_2"]);
        let commands = desk_rabbitmqctl_commands(&desks, "/");
        assert_eq!(
            commands[0],
            [
                "add_user",
                "desk-minsk-desk-1",
                "PASSWORD_OF_DESK_MINSK_DESK_1"
            ]
        );
        assert_eq!(
            commands[1][..4],
            ["set_permissions", "-p", "/", "desk-minsk-desk-1"]
        );
        assert_eq!(commands[3][3], "desk-brest_2");
        for bad in ["a.b", "desk 1", "*", &"d".repeat(65)] {
            assert!(check_desk_ids(&[bad.to_owned()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_desk_may_speak_only_for_itself() {
        let own = br#"{"desk_id": "minsk-1", "application_number": "7"}"#;
        let application = br#"{"application": {"number": "7", "desk_id": "minsk-1"}}"#;
        let other = br#"{"desk_id": "brest-2", "application_number": "7"}"#;
        let other_application = br#"{"application": {"number": "7", "desk_id": "brest-2"}}"#;
        let none = br#"{"application_id": "0b6c7a52-1111-4111-8111-111111111111"}"#;
        let desk = Some("desk-minsk-1");
        assert!(authorise_desk(desk, "hub", own).is_ok());
        assert!(authorise_desk(desk, "hub", application).is_ok());
        for body in [&other[..], other_application] {
            let f = authorise_desk(desk, "hub", body).expect_err("another desk's");
            assert_eq!(f.kind, contracts::FailureKind::Permanent);
            assert!(
                f.reason.contains("\"desk-minsk-1\"") && f.reason.contains("\"desk-brest-2\""),
                "{}",
                f.reason
            );
        }
        for body in [&none[..], b"not json"] {
            let f = authorise_desk(desk, "hub", body).expect_err("names no desk");
            assert!(f.reason.contains("names no desk"), "{}", f.reason);
        }
        // The hub's own user (the demo's and tests' desks), other agencies and unattributed
        // messages are not judged here.
        for user in [Some("hub"), Some("authority-fszn"), None] {
            assert!(authorise_desk(user, "hub", other).is_ok(), "{user:?}");
        }
    }
}
