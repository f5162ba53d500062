//! The production-like test bed (`compose.production.yaml` over `compose.yaml`) is what it says:
//! the hub's environment it gives, with its secrets supplied and the certificates of
//! `scripts/test-bed-certs.sh`, passes `hub check-config` in production mode; and every file it
//! names is one the script makes. Docker is not needed: the test merges the hub's environment
//! as compose does (the override's keys replace the base's) and resolves `${VAR:?...}` and
//! `${VAR:-default}` itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn load(file: &str) -> Yaml {
    let text = std::fs::read_to_string(repository().join(file)).expect("the compose file");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .remove(0)
}

/// A service's `environment` map, merge keys (`<<: *anchor`) included.
fn environment(compose: &Yaml, service: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let env = &compose["services"][service]["environment"];
    let Some(map) = env.as_hash() else {
        return out;
    };
    for (key, value) in map {
        let key = key.as_str().expect("a variable name");
        if key == "<<" {
            for (k, v) in value.as_hash().expect("a merged map") {
                out.insert(scalar(k), scalar(v));
            }
        } else {
            out.insert(key.to_owned(), scalar(value));
        }
    }
    out
}

fn scalar(value: &Yaml) -> String {
    match value {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// `value` with each `${NAME:?message}` taken from `secrets` (a missing one fails the test,
/// as compose stops) and each `${NAME:-default}` given its default.
fn interpolate(value: &str, secrets: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("a closed ${...}");
        let inner = &rest[start + 2..end];
        if let Some((name, _)) = inner.split_once(":?") {
            out.push_str(
                secrets
                    .get(name)
                    .unwrap_or_else(|| panic!("{name} is not supplied")),
            );
        } else if let Some((name, default)) = inner.split_once(":-") {
            out.push_str(secrets.get(name).map_or(default, String::as_str));
        } else {
            panic!("an unsupported interpolation: ${{{inner}}}");
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_production_test_bed_passes_the_production_check() {
    let base = load("compose.yaml");
    let production = load("compose.production.yaml");

    // The certificates, as the script makes them, where the containers mount them.
    let tls = std::env::temp_dir().join(format!("test-bed-tls-{}", uuid::Uuid::new_v4()));
    let made = Command::new("bash")
        .arg(repository().join("scripts/test-bed-certs.sh"))
        .arg(&tls)
        .output()
        .expect("bash runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let hash = hub_ops::console::cli::hash_password("correct horse battery staple").expect("hash");
    let secrets: BTreeMap<&str, String> = [
        (
            "HUB_RABBITMQ_PASSWORD",
            "mq-secret-from-the-vault".to_owned(),
        ),
        (
            "HUB_POSTGRES_PASSWORD",
            "db-secret-from-the-vault".to_owned(),
        ),
        (
            "HUB_SEAL_KEY",
            "k1:c2VhbGluZy1rZXktb2YtdGhlLXRlc3RzLTMyYnl0ZXM=".to_owned(),
        ),
        ("HUB_ERIP_SECRET", "erip-secret-from-the-vault".to_owned()),
        ("HUB_SMS_SECRET", "sms-secret-from-the-vault".to_owned()),
        (
            "HUB_BACKOFFICE_SECRET",
            "bo-secret-from-the-vault".to_owned(),
        ),
        ("HUB_CONSOLE_USERS", format!("ivanova:{hash}")),
        ("HUB_DESKS", "minsk-desk-1".to_owned()),
    ]
    .into_iter()
    .collect();

    // The hub's environment: the base's, the override's keys replacing them.
    let mut env = environment(&base, "hub");
    env.extend(environment(&production, "hub"));
    let mount = "/etc/hub/tls/";
    let env: Vec<(String, String)> = env
        .into_iter()
        .map(|(k, v)| {
            let v = interpolate(&v, &secrets).replace(mount, &format!("{}/", tls.display()));
            (k, v)
        })
        // The base's trusted EDS root is mounted from the repository.
        .map(|(k, v)| match k.as_str() {
            "HUB_EDS_TRUSTED_ROOTS" => (
                k,
                repository()
                    .join("simulators/data/gossuok-test-root-seed-42.pem")
                    .display()
                    .to_string(),
            ),
            _ => (k, v),
        })
        .collect();
    assert!(
        env.iter().any(|(k, v)| k == "HUB_ENV" && v == "production"),
        "the override is in production mode"
    );
    for (key, value) in &env {
        if key.ends_with("_FILE") || key.ends_with("_CERT") || key.ends_with("_KEY") {
            if key == "HUB_SEAL_KEY" {
                continue;
            }
            assert!(
                Path::new(value).is_file(),
                "{key}={value}: the script makes it"
            );
        }
    }

    let out = Command::new(env!("CARGO_BIN_EXE_hub"))
        .arg("check-config")
        .env_clear()
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("the hub binary runs");
    let _ = std::fs::remove_dir_all(&tls);
    assert!(
        out.status.success(),
        "the test bed's hub passes: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The simulators sign with the same secrets the hub checks, and serve HTTPS.
    let sims = environment(&production, "simulators");
    for (sim, hub) in [
        ("ERIP_SECRET", "HUB_ERIP_SECRET"),
        ("MTS_SECRET", "HUB_SMS_MTS_SECRET"),
        ("BACKOFFICE_SECRET", "HUB_AUTHORITY_TAX_MINISTRY_SECRET"),
    ] {
        let hub_value = env.iter().find(|(k, _)| k == hub).map(|(_, v)| v.clone());
        assert_eq!(
            Some(interpolate(&sims[sim], &secrets)),
            hub_value,
            "{sim} and {hub}"
        );
    }
    let command: Vec<String> = production["services"]["simulators"]["command"]
        .as_vec()
        .expect("the simulators' command")
        .iter()
        .map(scalar)
        .collect();
    assert!(command.contains(&"--tls-cert".to_owned()), "{command:?}");
}
