//! The command line as operators and the broker's administrators use it.

use std::process::Command;

fn hub(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the hub binary runs")
}

#[test]
fn agency_users_are_printed_as_rabbitmqctl_commands_with_least_privilege() {
    let out = hub(&["topology", "--agency-users"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Each queue authority of the catalogue: a user, and permissions on its own queue only.
    assert!(
        stdout.contains("rabbitmqctl add_user authority-fszn PASSWORD_OF_AUTHORITY_FSZN"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            r"rabbitmqctl set_permissions -p / authority-fszn '^$' '^[a-z0-9_-]+\.bus$' '^[a-z0-9_-]+\.authority\.fszn$'"
        ),
        "{stdout}"
    );
    // Authorities with an HTTP back-office have no broker user.
    assert!(!stdout.contains("tax-ministry"), "{stdout}");
    // The portal reads its own queue only.
    assert!(
        stdout.contains(
            r"rabbitmqctl set_permissions -p / portal '^$' '^[a-z0-9_-]+\.bus$' '^[a-z0-9_-]+\.portal$'"
        ),
        "{stdout}"
    );
}

#[test]
fn the_topology_declares_every_partys_queue_and_refuses_a_bad_desk() {
    let out = hub(&[
        "topology",
        "--dry-run",
        "--json",
        "--desks",
        "minsk-desk-1,brest-desk-2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for queue in [
        "hub.portal",
        "hub.desk.minsk-desk-1",
        "hub.desk.brest-desk-2",
    ] {
        assert!(text.contains(&format!("\"{queue}\"")), "{queue}: {text}");
    }
    let users = hub(&["topology", "--agency-users", "--desks", "minsk-desk-1"]);
    let stdout = String::from_utf8_lossy(&users.stdout);
    assert!(
        stdout.contains(
            r"rabbitmqctl set_permissions -p / desk-minsk-desk-1 '^$' '^[a-z0-9_-]+\.bus$' '^[a-z0-9_-]+\.desk\.minsk-desk-1$'"
        ),
        "{stdout}"
    );
    let bad = hub(&["topology", "--dry-run", "--desks", "a.b"]);
    assert_eq!(
        bad.status.code(),
        Some(1),
        "a desk id with a dot is refused"
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("HUB_DESKS") && stderr.contains("a.b"),
        "{stderr}"
    );
}

#[test]
fn the_dry_run_topology_lists_the_authorities_queues() {
    let out = hub(&["topology", "--dry-run", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Consumed by the authority itself (on the bus) or by the hub's bridge (HTTP).
    assert!(text.contains("hub.authority.fszn"), "{text}");
    assert!(text.contains("hub.authority.tax-ministry"), "{text}");
}

#[test]
fn run_refuses_a_queue_it_does_not_have_and_names_the_ones_it_has() {
    let out = hub(&["run", "--queues", "adapter.nope"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"adapter.nope\" is not a work queue"),
        "{stderr}"
    );
    assert!(stderr.contains("adapter.sms"), "{stderr}");
}
