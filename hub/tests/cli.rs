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

/// The hub with only these environment variables (and `RUST_LOG`): nothing of the caller's
/// environment (an `AMQP_URL`, a `HUB_*`) leaks into what the check sees.
fn hub_with_env(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(args)
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("HUB_LOG_FORMAT", "text")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("the hub binary runs")
}

/// Every setting production mode needs, each set right (TLS everywhere, no development value).
fn production_env() -> Vec<(&'static str, String)> {
    let hash = hub_ops::console::cli::hash_password("correct horse battery staple").expect("hash");
    [
        ("HUB_ENV", "production"),
        ("AMQP_URL", "amqps://hub:pw@mq1.example.by:5671/%2f,amqps://hub:pw@mq2.example.by:5671/%2f"),
        ("DATABASE_URL", "postgres://hub:pw@db.example.by:5432/hub?sslmode=verify-full&sslrootcert=/etc/hub/ca.pem"),
        ("HUB_SEAL_KEY", "k1:c2VhbGluZy1rZXktb2YtdGhlLXRlc3RzLTMyYnl0ZXM="),
        ("HUB_ERIP_SECRET", "erip-secret-from-the-vault"),
        ("HUB_SMS_A1_SECRET", "a1-secret-from-the-vault"),
        ("HUB_SMS_MTS_SECRET", "mts-secret-from-the-vault"),
        ("HUB_SMS_LIFE_SECRET", "life-secret-from-the-vault"),
        ("HUB_MVD_URL", "https://mvd.example.by/"),
        ("HUB_SMS_A1_URL", "https://sms.a1.example.by/"),
        ("HUB_SMS_MTS_URL", "https://sms.mts.example.by/"),
        ("HUB_SMS_LIFE_URL", "https://sms.life.example.by/"),
        ("HUB_ERIP_URL", "https://erip.example.by/"),
        ("HUB_GOSSUOK_URL", "https://pki.example.by/"),
        ("HUB_CALLBACK_URL", "https://hub.portal.example.by/"),
        ("HUB_PORTAL_URL", "https://portal.example.by/"),
        ("HUB_SMTP_URL", "smtps://hub:pw@mail.example.by:465"),
        ("HUB_AUTHORITY_MINSK_CEC_URL", "https://cec.minsk.example.by/api/"),
        ("HUB_AUTHORITY_MINSK_CEC_SECRET", "cec-secret-from-the-vault"),
        ("HUB_AUTHORITY_TAX_MINISTRY_URL", "https://tax.example.by/api/"),
        ("HUB_AUTHORITY_TAX_MINISTRY_SECRET", "tax-secret-from-the-vault"),
        ("HUB_CONSOLE_BEHIND_TLS", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .chain([("HUB_CONSOLE_USERS", format!("ivanova:{hash}"))])
    .collect()
}

/// Every variable production mode names when nothing is set.
const REFUSED: &[&str] = &[
    "AMQP_URL",
    "DATABASE_URL",
    "HUB_SEAL_KEY",
    "HUB_SEAL_KEY (the phone-limits key)",
    "HUB_ERIP_SECRET",
    "HUB_SMS_A1_SECRET",
    "HUB_SMS_MTS_SECRET",
    "HUB_SMS_LIFE_SECRET",
    "HUB_MVD_URL",
    "HUB_SMS_A1_URL",
    "HUB_SMS_MTS_URL",
    "HUB_SMS_LIFE_URL",
    "HUB_ERIP_URL",
    "HUB_GOSSUOK_URL",
    "HUB_CALLBACK_URL",
    "HUB_PORTAL_URL",
    "HUB_SMTP_URL",
    "HUB_AUTHORITY_MINSK_CEC_URL",
    "HUB_AUTHORITY_MINSK_CEC_SECRET",
    "HUB_AUTHORITY_TAX_MINISTRY_URL",
    "HUB_AUTHORITY_TAX_MINISTRY_SECRET",
    "HUB_CONSOLE_USERS",
    "HUB_CONSOLE_BEHIND_TLS",
];

#[test]
fn production_mode_refuses_every_development_default_at_once_with_exit_78() {
    let env = [("HUB_ENV", "production".to_owned())];
    for args in [&["check-config"][..], &["run"][..]] {
        let out = hub_with_env(args, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "hub {args:?}: {stderr}");
        for variable in REFUSED {
            assert!(
                stderr.contains(&format!("\n  {variable}: ")),
                "hub {args:?} names {variable}: {stderr}"
            );
        }
        // AMQP_URL twice (plain text, guest), every other variable once: one line each.
        let lines = stderr.lines().filter(|l| l.starts_with("  ")).count();
        assert_eq!(lines, REFUSED.len() + 1, "{stderr}");
        assert!(
            stderr.contains("refuses to start with 24 settings to fix"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("guest:guest"),
            "no password printed: {stderr}"
        );
    }
    // The flag says the same as the variable.
    let out = hub_with_env(&["--env", "production", "check-config"], &[]);
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn production_mode_passes_when_every_setting_is_fixed_and_names_the_one_left() {
    let env = production_env();
    let out = hub_with_env(&["check-config"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the settings pass the check"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The topology's dry run needs no broker, and passes the check too.
    let out = hub_with_env(&["topology", "--dry-run"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each setting put back to its development value is named, alone.
    for (variable, dev) in [
        ("HUB_ERIP_SECRET", "erip-dev-secret"),
        ("HUB_SMS_MTS_SECRET", "mts-dev-secret"),
        ("HUB_AUTHORITY_TAX_MINISTRY_SECRET", "backoffice-dev-secret"),
        ("AMQP_URL", "amqps://guest:guest@mq.example.by:5671/%2f"),
        (
            "DATABASE_URL",
            "postgres://hub:pw@db.example.by/hub?sslmode=require",
        ),
        ("HUB_MVD_URL", "http://mvd.example.by/"),
        ("HUB_CONSOLE_BEHIND_TLS", "false"),
        ("HUB_UNSIGNED_DECISIONS", "accept"),
    ] {
        let mut env = env.clone();
        env.retain(|(k, _)| *k != variable);
        env.push((variable, dev.to_owned()));
        let out = hub_with_env(&["check-config"], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{variable}={dev}: {stderr}");
        assert!(stderr.contains("with 1 setting to fix"), "{stderr}");
        assert!(stderr.contains(&format!("\n  {variable}: ")), "{stderr}");
    }
    // A setting left unset falls back to its development value: refused too.
    for variable in [
        "HUB_SEAL_KEY",
        "HUB_CONSOLE_USERS",
        "HUB_AUTHORITY_MINSK_CEC_SECRET",
    ] {
        let mut env = env.clone();
        env.retain(|(k, _)| *k != variable);
        let out = hub_with_env(&["check-config"], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{variable} unset: {stderr}");
        assert!(stderr.contains(&format!("\n  {variable}")), "{stderr}");
    }
}

#[test]
fn development_stays_the_default_and_lists_its_defaults() {
    let out = hub_with_env(&["check-config"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("HUB_ENV=development: "), "{stdout}");
    for variable in [
        "HUB_SEAL_KEY",
        "HUB_ERIP_SECRET",
        "HUB_SMS_A1_SECRET",
        "AMQP_URL",
    ] {
        assert!(stdout.contains(&format!("  {variable}: ")), "{stdout}");
    }
}
