//! `hub contracts`: the export equals the checked-in published set, the AsyncAPI document is
//! valid AsyncAPI 3.0, and the compatibility gate fails through the command line on a break.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn hub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hub"))
}

fn published() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/published")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hub-contracts-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Every JSON file under `dir`, by its path relative to `dir`.
fn tree(dir: &Path, base: &Path, out: &mut BTreeMap<String, Value>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            tree(&path, base, out);
        } else if path.extension().is_some_and(|x| x == "json") {
            let rel = path
                .strip_prefix(base)
                .expect("under base")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).expect("readable");
            out.insert(rel, serde_json::from_str(&text).expect("JSON"));
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("created");
    for entry in std::fs::read_dir(from).expect("readable") {
        let path = entry.expect("an entry").path();
        let target = to.join(path.file_name().expect("a name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copied");
        }
    }
}

#[test]
fn export_writes_what_is_checked_in() {
    let out = scratch("export");
    let status = hub()
        .args(["contracts", "export", "--out"])
        .arg(&out)
        .output()
        .expect("hub runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(String::from_utf8_lossy(&status.stdout).contains("wrote"));
    let mut written = BTreeMap::new();
    tree(&out, &out, &mut written);
    assert!(written.contains_key("asyncapi.json"));
    assert!(written.contains_key("schemas/procedure.submit.v1.json"));
    for (path, value) in &written {
        let checked_in = std::fs::read_to_string(published().join(path)).unwrap_or_default();
        let same = serde_json::from_str::<Value>(&checked_in).is_ok_and(|v| v == *value);
        assert!(
            same,
            "contracts/published/{path} differs from what the code generates: regenerate with \
             `cargo run -p hub -- contracts export` and commit it"
        );
    }
    std::fs::remove_dir_all(&out).expect("removed");
}

#[test]
fn the_asyncapi_document_is_valid_asyncapi_3() {
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(published().join("meta/asyncapi-3.0.0.schema.json"))
            .expect("the vendored meta-schema"),
    )
    .expect("JSON");
    let validator = jsonschema::draft7::new(&meta).expect("the meta-schema compiles");
    let doc = hub::contracts::generated()
        .remove("asyncapi.json")
        .expect("generated");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not valid AsyncAPI 3.0.0:\n{}",
        errors.join("\n")
    );

    // And the meta-schema bites: a channel without its address type is refused.
    let mut broken = doc.clone();
    broken["channels"]["bus"]["address"] = Value::from(42);
    assert!(!validator.is_valid(&broken));
    // Every payload names a schema file that exists in the published set.
    for (id, m) in doc["components"]["messages"].as_object().expect("messages") {
        let file = m["payload"]["schema"]["$ref"]
            .as_str()
            .expect("a reference");
        assert!(
            published().join(file).exists(),
            "{id}: {file} is not published"
        );
    }
}

#[test]
fn check_passes_on_the_repository_and_release_refuses_a_break() {
    let ok = hub()
        .args(["contracts", "check", "--published"])
        .arg(published())
        .output()
        .expect("hub runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // A copy of the published set whose baseline has a field the code does not: to the gate,
    // the code renamed or removed it.
    let copy = scratch("gate");
    copy_dir(&published(), &copy);
    let file = copy.join("baseline/schemas/procedure.withdraw.v1.json");
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("released")).expect("JSON");
    schema["properties"]["reason_code"] = serde_json::json!({"type": "string"});
    std::fs::write(&file, schema.to_string()).expect("written");

    let check = hub()
        .args(["contracts", "check", "--published"])
        .arg(&copy)
        .output()
        .expect("hub runs");
    assert_eq!(check.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("procedure.withdraw.v1: `reason_code`: field removed (or renamed)"),
        "{stdout}"
    );
    let release = hub()
        .args(["contracts", "release", "--published"])
        .arg(&copy)
        .output()
        .expect("hub runs");
    assert_eq!(release.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&release.stderr);
    assert!(stderr.contains("needs a new major version"), "{stderr}");
    let after: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("kept")).expect("JSON");
    assert_eq!(
        after, schema,
        "a refused release leaves the baseline as it was"
    );

    // Removing a released type is refused too, unless it is retired by name.
    std::fs::write(
        &file,
        std::fs::read(published().join("baseline/schemas/procedure.withdraw.v1.json"))
            .expect("read"),
    )
    .expect("restored");
    std::fs::write(copy.join("baseline/schemas/test.gone.v1.json"), "{}").expect("written");
    let refused = hub()
        .args(["contracts", "release", "--published"])
        .arg(&copy)
        .output()
        .expect("hub runs");
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("test.gone.v1: message type removed")
    );
    let retired = hub()
        .args([
            "contracts",
            "release",
            "--retire",
            "test.gone.v1",
            "--published",
        ])
        .arg(&copy)
        .output()
        .expect("hub runs");
    assert!(
        retired.status.success(),
        "{}",
        String::from_utf8_lossy(&retired.stderr)
    );
    assert!(!copy.join("baseline/schemas/test.gone.v1.json").exists());
    let changelog = std::fs::read_to_string(copy.join("CHANGELOG.md")).expect("written");
    assert!(
        changelog.contains("- Retired: `test.gone.v1`"),
        "{changelog}"
    );
    std::fs::remove_dir_all(&copy).expect("removed");
}
