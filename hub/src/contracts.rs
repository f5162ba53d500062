//! `hub contracts`: the published contracts, written from the code, and the release that
//! freezes them.
//!
//! A published set is a directory (the repository keeps one in `contracts/published/`):
//!
//! | path | what |
//! |---|---|
//! | `schemas/<type>.json` | the JSON Schema (2020-12) of each message body ([`contracts::schema`]) |
//! | `asyncapi.json` | the bus: servers, channels, each party role's operations ([`hub_portal::asyncapi`]) |
//! | `openapi/hub.json` | the hub's HTTP side: the callbacks, health, metrics ([`hub_portal::http::openapi`]) |
//! | `openapi/simulator-<name>.json` | each simulator's API (only in a build with the lab) |
//! | `baseline/` | the last release: its schemas, which the compatibility gate compares with |
//! | `CHANGELOG.md` | one entry per release |
//!
//! [`generated`] is everything the code writes; `hub contracts export` writes it, and a test
//! keeps the checked-in copy equal to it. [`release`] (`hub contracts release`) runs the gate
//! against the baseline and, when nothing breaks, makes the current schemas the new baseline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// The directory of the schemas in a published set.
pub const SCHEMAS_DIR: &str = "schemas";
/// The directory of the last release in a published set.
pub const BASELINE_DIR: &str = "baseline";
/// The AsyncAPI document in a published set.
pub const ASYNCAPI_FILE: &str = "asyncapi.json";
/// The directory of the OpenAPI documents in a published set.
pub const OPENAPI_DIR: &str = "openapi";
/// The changelog of a published set.
pub const CHANGELOG_FILE: &str = "CHANGELOG.md";

/// The version the documents name: the hub's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every file the code generates, by its path in a published set, in a stable order.
pub fn generated() -> BTreeMap<String, Value> {
    let mut files: BTreeMap<String, Value> = contracts::schema::schemas()
        .into_iter()
        .map(|(name, schema)| (format!("{SCHEMAS_DIR}/{name}"), schema))
        .collect();
    files.insert(
        ASYNCAPI_FILE.to_owned(),
        hub_portal::asyncapi::document(VERSION),
    );
    files.insert(
        format!("{OPENAPI_DIR}/hub.json"),
        hub_portal::http::openapi(),
    );
    #[cfg(feature = "lab")]
    for (stem, doc) in hub_lab::simulator_openapi() {
        files.insert(format!("{OPENAPI_DIR}/simulator-{stem}.json"), doc);
    }
    files
}

/// Whether this build writes the simulators' OpenAPI documents too (the lab is linked).
pub const WITH_SIMULATORS: bool = cfg!(feature = "lab");

/// The text a JSON file is written as: pretty, two-space indented, a final newline.
pub fn to_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    text.push('\n');
    text
}

/// Writes `files` under `dir` (creating directories); returns how many were written.
///
/// Errors: a directory or file that cannot be written, named.
pub fn write(dir: &Path, files: &BTreeMap<String, Value>) -> anyhow::Result<usize> {
    for (path, value) in files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the directory {}", parent.display()))?;
        }
        std::fs::write(&target, to_text(value))
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    Ok(files.len())
}

/// The JSON files directly in `dir`, by file name (an absent directory reads as empty).
///
/// Errors: a file that cannot be read or is not JSON, named.
pub fn read_json_dir(dir: &Path) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.insert(name, value);
        }
    }
    Ok(out)
}

/// The schemas the code generates now, by file name.
pub fn current_schemas() -> BTreeMap<String, Value> {
    contracts::schema::schemas()
}

/// The baseline of the published set at `published`, by file name.
///
/// Errors: as [`read_json_dir`].
pub fn baseline(published: &Path) -> anyhow::Result<BTreeMap<String, Value>> {
    read_json_dir(&published.join(BASELINE_DIR).join(SCHEMAS_DIR))
}

/// The compatibility gate: every breaking change from the baseline at `published` to the code,
/// except the removal of the types in `retired` (a deliberate retirement in a release).
///
/// Errors: the baseline cannot be read.
pub fn check(published: &Path, retired: &[String]) -> anyhow::Result<Vec<String>> {
    let released = baseline(published)?;
    let current = current_schemas();
    Ok(contracts::schema::compat::gate(&released, &current)
        .into_iter()
        .filter(|b| {
            !retired
                .iter()
                .any(|t| b.starts_with(&format!("{t}: message type removed")))
        })
        .collect())
}

/// What a release changed: added, changed (additively) and retired types.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReleaseNotes {
    /// Types new in this release.
    pub added: Vec<String>,
    /// Types whose schema changed additively.
    pub changed: Vec<String>,
    /// Types retired (removed on purpose).
    pub retired: Vec<String>,
}

impl ReleaseNotes {
    /// Nothing changed since the baseline.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.retired.is_empty()
    }
}

/// Why a release was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "the contracts break the last release in {} way{}; a breaking change needs a new major \
     version of the type (a new `.vN` served beside the old one), not a release:\n  {}",
    .0.len(),
    if .0.len() == 1 { "" } else { "s" },
    .0.join("\n  ")
)]
pub struct Breaking(pub Vec<String>);

/// `hub contracts release`: when the gate passes (the types in `retired` may be gone), writes
/// the current schemas as the baseline of `published`, and a changelog entry dated `today`.
///
/// Errors: [`Breaking`] with every break; a file that cannot be read or written.
pub fn release(published: &Path, retired: &[String], today: &str) -> anyhow::Result<ReleaseNotes> {
    let breaks = check(published, retired)?;
    if !breaks.is_empty() {
        return Err(Breaking(breaks).into());
    }
    let released = baseline(published)?;
    let current = current_schemas();
    let stem = |k: &String| k.trim_end_matches(".json").to_owned();
    let notes = ReleaseNotes {
        added: current
            .keys()
            .filter(|k| !released.contains_key(*k))
            .map(stem)
            .collect(),
        changed: current
            .iter()
            .filter(|(k, v)| released.get(*k).is_some_and(|old| old != *v))
            .map(|(k, _)| stem(k))
            .collect(),
        retired: released
            .keys()
            .filter(|k| !current.contains_key(*k))
            .map(stem)
            .collect(),
    };
    for name in released.keys().filter(|k| !current.contains_key(*k)) {
        let path = published.join(BASELINE_DIR).join(SCHEMAS_DIR).join(name);
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    let files: BTreeMap<String, Value> = current
        .into_iter()
        .map(|(k, v)| (format!("{BASELINE_DIR}/{SCHEMAS_DIR}/{k}"), v))
        .collect();
    write(published, &files)?;
    if !notes.is_empty() {
        append_changelog(&published.join(CHANGELOG_FILE), today, &notes)?;
    }
    Ok(notes)
}

fn append_changelog(path: &Path, today: &str, notes: &ReleaseNotes) -> anyhow::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# Changelog of the contracts\n\nEach release of `contracts/published/baseline`, newest first.\n"
                .to_owned()
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut entry = format!("\n## {today}\n\n");
    if notes.changed.is_empty() && notes.retired.is_empty() && !old.contains("\n## ") {
        let _ = writeln!(
            entry,
            "- First release: {} message types, each with its JSON Schema in `schemas/`.",
            notes.added.len()
        );
        return write_changelog(path, &old, &entry);
    }
    for (what, list) in [
        ("Added", &notes.added),
        ("Changed (additive)", &notes.changed),
        ("Retired", &notes.retired),
    ] {
        if !list.is_empty() {
            let _ = writeln!(
                entry,
                "- {what}: {}",
                list.iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    write_changelog(path, &old, &entry)
}

/// Writes the changelog with `entry` first among the releases (newest first).
fn write_changelog(path: &Path, old: &str, entry: &str) -> anyhow::Result<()> {
    let split = old.find("\n## ").unwrap_or(old.len());
    let text = format!("{}{}{}", &old[..split], entry, &old[split..]);
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
