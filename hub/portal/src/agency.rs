//! Broker users of the parties on the bus: the portal, the issuance desks and the authorities
//! that work on the bus (`channel = "queue"` in the catalogue). Each connects to RabbitMQ as its
//! own user, which the broker checks against the `user_id` a message carries; who may send what
//! is [`crate::parties`].
//!
//! The permissions are the least a party needs, in any namespace: write (publish) to the bus
//! exchange `<ns>.bus`, read (consume) its own queue (`<ns>.portal`, `<ns>.desk.<id>`,
//! `<ns>.authority.<id>`), configure nothing: it can neither declare nor bind a queue, so it
//! hears only what the hub sends to its queue. In production the broker's administrators create
//! the users with the commands `hub topology --agency-users` prints (with passwords of their
//! own); on one machine the demo and the tests create them with `rabbitmqctl` and
//! [`DEV_PASSWORD`].
//!
//! A desk connects as `desk-<desk_id>` ([`desk_user`]).

use std::process::Command;

use anyhow::Context;

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

/// The permission patterns of the portal's broker user: the bus, and its own queue
/// `<ns>.portal`.
pub fn portal_permissions() -> [String; 3] {
    least_permissions(crate::parties::PORTAL_QUEUE)
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

/// The `rabbitmqctl` commands that create the portal's user `portal_user`: write the bus, read
/// its own queue `<ns>.portal`, configure nothing.
pub fn portal_rabbitmqctl_commands(portal_user: &str, vhost: &str) -> Vec<Vec<String>> {
    user_commands(portal_user, portal_permissions(), vhost)
}

/// Creates (or updates) the portal's broker user on the local RabbitMQ, as
/// [`ensure_user_with_rabbitmqctl`] does for an authority.
pub fn ensure_portal_user_with_rabbitmqctl(
    portal_user: &str,
    password: &str,
    vhost: &str,
) -> anyhow::Result<()> {
    ensure_broker_user(portal_user, password, portal_permissions(), vhost)
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
    Rabbitmqctl::local().ensure_user(user, password, permissions, vhost)
}

/// The `rabbitmqctl` that administers one node: the one on the `PATH` for the local broker, or
/// a given program for another node (`-n <node>`).
#[derive(Debug, Clone)]
pub struct Rabbitmqctl {
    program: std::path::PathBuf,
    node: Option<String>,
}

impl Rabbitmqctl {
    /// `rabbitmqctl` on the `PATH`, for the local broker; it needs to run as a user that may
    /// administer it (root or the `rabbitmq` user on a Debian install).
    pub fn local() -> Self {
        Rabbitmqctl {
            program: "rabbitmqctl".into(),
            node: None,
        }
    }

    /// `program` for the node named `node` (`rabbit-chaos@localhost`).
    pub fn on_node(program: impl Into<std::path::PathBuf>, node: &str) -> Self {
        Rabbitmqctl {
            program: program.into(),
            node: Some(node.to_owned()),
        }
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let mut command = Command::new(&self.program);
        if let Some(node) = &self.node {
            command.arg("-n").arg(node);
        }
        command
            .args(args)
            .output()
            .with_context(|| format!("cannot run {} (it comes with RabbitMQ)", self.describe()))
    }

    fn describe(&self) -> String {
        match &self.node {
            Some(node) => format!("rabbitmqctl -n {node}"),
            None => "rabbitmqctl".to_owned(),
        }
    }

    /// Creates `user` with `password`, or sets the password of the user that exists, and grants
    /// it `permissions` (configure, write, read) on `vhost`.
    ///
    /// Errors: the program cannot run, or the node refuses a step (named, with its stderr).
    pub fn ensure_user(
        &self,
        user: &str,
        password: &str,
        permissions: [String; 3],
        vhost: &str,
    ) -> anyhow::Result<()> {
        let ctl = self.describe();
        let listed = self.run(&["-q", "list_users"])?;
        anyhow::ensure!(
            listed.status.success(),
            "{ctl} list_users failed: {}",
            String::from_utf8_lossy(&listed.stderr).trim()
        );
        let exists = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(user));
        let set = if exists {
            self.run(&["change_password", user, password])?
        } else {
            self.run(&["add_user", user, password])?
        };
        anyhow::ensure!(
            set.status.success() || String::from_utf8_lossy(&set.stderr).contains("already exists"),
            "{ctl} could not set the user {user}: {}",
            String::from_utf8_lossy(&set.stderr).trim()
        );
        let [configure, write, read] = permissions;
        let granted = self.run(&[
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
            "{ctl} could not set the permissions of {user}: {}",
            String::from_utf8_lossy(&granted.stderr).trim()
        );
        Ok(())
    }
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
}
