//! The Python clients of `examples/python` against the whole stage (the hub and every simulator,
//! in the test's own namespace and database): written only from `contracts/published`, they
//! play a desk, the portal and a queue authority through a whole journey, and a desk sending
//! what it may not is dead-lettered, not answered.
//!
//! The Python virtualenv is made on first use under `target/python-examples-venv` (`python3 -m
//! venv`, then `pip install -r examples/python/requirements.txt` from PyPI), and made again when
//! the requirements change.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use e2e::harness::{ensure_party_user, url_as};
use e2e::portal::{DESK, Portal, WAIT};
use e2e::{Observer, wait_until};
use simulators::SimKind;
use uuid::Uuid;

/// A queue authority of the catalogue with a free (5.1) and a paid (5.13) procedure.
const AUTHORITY: &str = "minsk-civil-registry";

/// The longest a script may run (the journey's steps each wait 60 s at most).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn examples() -> PathBuf {
    repository().join("examples/python")
}

/// The virtualenv's directory: under the build's target directory.
fn venv_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join("target"));
    target.join("python-examples-venv")
}

/// Runs `program args` to completion; fails the test with its output unless it succeeds.
async fn run(program: &Path, args: &[&str], what: &str) {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: {} does not start: {e}", program.display()));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The virtualenv's Python with the pinned requirements, made if missing or out of date. One
/// test at a time makes it (the lock); the installed requirements are kept beside it to tell.
async fn python() -> PathBuf {
    static MAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = MAKING.lock().await;
    let (venv, requirements) = (venv_dir(), examples().join("requirements.txt"));
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.installed");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return python;
    }
    let system = std::env::var_os("PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    let dir = venv.to_str().expect("a UTF-8 path");
    run(&system, &["-m", "venv", "--clear", dir], "python3 -m venv").await;
    let req = requirements.to_str().expect("a UTF-8 path");
    let pip = ["-m", "pip", "install", "--disable-pip-version-check", "-q"];
    run(&python, &[&pip[..], &["-r", req]].concat(), "pip install").await;
    std::fs::write(&stamp, wanted).expect("the requirements stamp");
    python
}

/// The stage with the parties' broker users made, and the environment the scripts read.
async fn stage() -> (Portal, Vec<(String, String)>) {
    let portal = Portal::start().await;
    let amqp = portal.env.config.amqp_url.clone();
    let catalogue = hub_portal::procedures::catalogue::Catalogue::embedded().expect("catalogue");
    let authority_user = catalogue
        .authority(AUTHORITY)
        .and_then(|a| a.broker_user())
        .expect("a queue authority")
        .to_owned();
    let desk_user = hub_portal::agency::desk_user(DESK);
    let portal_user = hub_portal::parties::DEFAULT_PORTAL_USER;
    for user in [portal_user, desk_user.as_str(), authority_user.as_str()] {
        ensure_party_user(&amqp, user).await;
    }
    let sim = |kind: SimKind| {
        portal
            .sims
            .operator_url(kind)
            .expect("the simulator runs")
            .to_string()
    };
    let env = [
        ("HUB_NAMESPACE", portal.env.config.namespace.to_string()),
        ("DESK_AMQP_URL", url_as(&amqp, &desk_user).to_string()),
        ("PORTAL_AMQP_URL", url_as(&amqp, portal_user).to_string()),
        (
            "AUTHORITY_AMQP_URL",
            url_as(&amqp, &authority_user).to_string(),
        ),
        ("DESK_ID", DESK.to_owned()),
        ("AUTHORITY_ID", AUTHORITY.to_owned()),
        ("SIM_MVD_URL", sim(SimKind::Mvd)),
        ("SIM_A1_URL", sim(SimKind::A1)),
        ("SIM_ERIP_URL", sim(SimKind::Erip)),
        ("SIM_GOSSUOK_URL", sim(SimKind::Gossuok)),
    ];
    let env = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    (portal, env)
}

/// Runs `examples/python/<script>` with `env`; returns its standard output, or fails the test
/// with everything it printed.
async fn script(script: &str, env: &[(String, String)]) -> String {
    let python = python().await;
    let run = tokio::process::Command::new(&python)
        .arg(examples().join(script))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("{script} still running after {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{script} does not start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // Shown with `--nocapture`: each step the script took.
    println!("{script}:\n{stdout}");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_desk_portal_and_authority_play_a_whole_journey_from_the_published_contracts() {
    let (mut portal, env) = stage().await;
    let out = script("journey.py", &env).await;
    assert!(
        out.contains("journey complete"),
        "the journey's last step:\n{out}"
    );
    // Both decisions went through the hub's checks: no dead letter on the way.
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&portal.env.pool)
        .await
        .expect("dead letters");
    assert_eq!(dead, 0, "no dead letter in a clean journey:\n{out}");
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_desk_sending_a_portal_type_is_dead_lettered_not_answered() {
    let (mut portal, env) = stage().await;
    let out = script("hostile.py", &env).await;
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("HOSTILE_MESSAGE_ID="))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
        .unwrap_or_else(|| panic!("the hostile message's id in:\n{out}"));
    let pool = &portal.env.pool;
    let (queue, error): (String, String) =
        wait_until(WAIT, "the hostile message's dead letter", || async {
            sqlx::query_as("SELECT queue, error FROM dead_letters WHERE message_id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
                .expect("dead letters")
        })
        .await;
    println!("dead letter on {queue}: {error}");
    let user = hub_portal::agency::desk_user(DESK);
    assert_eq!(queue, "cabinet", "{error}");
    assert!(
        error.contains(&format!("{user:?}"))
            && error.contains(&format!("desk {DESK}"))
            && error.contains("may not send cabinet.login.v1"),
        "the refusal names the user, its role and the type: {error}"
    );
    // Refused before any handler: the cabinet never took it, so nothing answers the desk.
    let handled: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("inbox");
    assert_eq!(handled, 0, "the refused message reached a handler");
    let topology = portal.env.topology(vec![]);
    let desk_queue = topology.work_queue(&hub_portal::agency::desk_queue(DESK));
    let desk = Observer::attach(&portal.env, desk_queue).await;
    assert!(desk.get().await.is_none(), "the desk got an answer");
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integrators_guide_lists_what_each_party_sends_and_hears_as_the_asyncapi_says() {
    let python = python().await;
    let out = tokio::process::Command::new(&python)
        .arg(examples().join("contract_tables.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("contract_tables.py runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = String::from_utf8(out.stdout).expect("UTF-8");
    let guide =
        std::fs::read_to_string(repository().join("docs/integrators.md")).expect("the guide");
    let (begin, end) = ("<!-- party-tables:begin -->\n", "<!-- party-tables:end -->");
    let start = guide.find(begin).expect("the begin marker") + begin.len();
    let stop = guide.find(end).expect("the end marker");
    assert!(
        guide[start..stop] == tables,
        "docs/integrators.md's party tables differ from asyncapi.json: replace what is between \
         its party-tables markers with the output of `python3 examples/python/contract_tables.py`"
    );
}
