//! Broker users of the queue-contract agencies (the authorities with `channel = "queue"` in
//! the catalogue). Each connects to RabbitMQ as its own user, which the broker stamps and
//! checks as `user_id`; the hub takes an authority's answers only from that user.
//!
//! The permissions are the least an agency needs, in any namespace: read (consume) its own
//! queue `<ns>.authority.<id>`, write (publish) to the bus exchange `<ns>.bus`, configure
//! nothing. In production the broker's administrators create the users with the commands
//! [`rabbitmqctl_commands`] prints (with passwords of their own); on one machine the demo and
//! the tests create them with `rabbitmqctl` and [`DEV_PASSWORD`].

use std::process::Command;

use anyhow::Context;

use crate::procedures::catalogue::Catalogue;
use crate::procedures::saga::authority_queue;

/// The password the demo and the tests give agency users on a development broker.
pub const DEV_PASSWORD: &str = "agency-dev-password";

/// The permission patterns (configure, write, read) of authority `id`'s broker user.
pub fn permissions(id: &str) -> [String; 3] {
    let queue = regex_escape(&authority_queue(id));
    [
        "^$".to_owned(),
        r"^[a-z0-9_-]+\.bus$".to_owned(),
        format!(r"^[a-z0-9_-]+\.{queue}$"),
    ]
}

/// The `rabbitmqctl` commands that create every queue authority's user with its permissions;
/// `PASSWORD_OF_<USER>` placeholders stand for passwords the administrators choose.
pub fn rabbitmqctl_commands(catalogue: &Catalogue, vhost: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for a in catalogue.authorities() {
        let Some(user) = a.broker_user() else {
            continue;
        };
        let placeholder = format!(
            "PASSWORD_OF_{}",
            user.to_uppercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        commands.push(vec!["add_user".into(), user.into(), placeholder]);
        let [configure, write, read] = permissions(&a.id);
        commands.push(vec![
            "set_permissions".into(),
            "-p".into(),
            vhost.into(),
            user.into(),
            configure,
            write,
            read,
        ]);
    }
    commands
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
    let [configure, write, read] = permissions(id);
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
}
