//! The crates' migrations, merged into one ordered set, are the very migrations the hub applied
//! before it was split into crates: an existing database migrates without change.
//!
//! `APPLIED_BEFORE_THE_SPLIT` was read back from `_sqlx_migrations` of a database that the
//! pre-split `main` (commit ace8407, one `hub/migrations` folder) migrated with `hub migrate`.
//! sqlx checks every applied migration's checksum at each start, so a migration renumbered,
//! renamed or edited by one byte would stop every existing database from starting.

use std::path::{Path, PathBuf};

use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

/// (version, description, SHA-384 of the SQL in hex) as the pre-split `main` applied them.
const APPLIED_BEFORE_THE_SPLIT: [(i64, &str, &str); 11] = [
    (
        1,
        "foundation",
        "fc8bbe88a3edffd2f46ca302044636f1dde1bbe39d849777b720989fff83eb529f7ecb6d6b4e897b2500d7525f4508ec",
    ),
    (
        2,
        "identifiers",
        "a0a4afcf3973da72040d65216eb9aaee0ab0ea587efe2895965096f09e325555c40fad5d45d175df3dfda1d97fdcda86",
    ),
    (
        3,
        "cabinet",
        "8003b96d899a04e18208c97b7a51227c3488e5eafa7678f8ea986e8c98b8dae7f50e793a45f7b80d9f7a895d97f2a945",
    ),
    (
        4,
        "account lifecycle",
        "c488b1366fbcc55197b2fbba805aee2a79534cc9f90304c024dcc40346d9c4dc27f9b572f4cce95578c088b47d0e15b3",
    ),
    (
        5,
        "procedures",
        "6e6eaf8ec9395d590d88a436a66f3bea4502c4d3b65c091a2e4bb3a427b02b0b30682b4297def8b229c5fe1a409f9e87",
    ),
    (
        6,
        "registration",
        "919de78512580dfdb21026b87c5c0f7e24222c412bf3f6f11afe77db5f76c8e5ced7d57828b90958184a76f34a5cf2e5",
    ),
    (
        7,
        "operations",
        "18b878cf6ed299b7481d4077b8182478187f35aeb5f61b7408b0674e6cb03c25f205787ae9d7df7404f6955a5a97bcab",
    ),
    (
        8,
        "dead letter keeper",
        "d1c40c3542f7584864e30a81fb3e6d8db931cddf78ccf30b1b0f48e8a4e716bb9d575d9565e308abe7ba1512f85619f3",
    ),
    (
        9,
        "outbox pending order",
        "8cb9d9567f891217eb6dc33e4db0f3c7a50c14bdece08a59141fbf49109b9dd4f5f864fd9f419bb0ee488f62e4761d5d",
    ),
    (
        10,
        "phone limits",
        "1a03786f8f3e6e8f7073fee97045a7f1b6d8170f9309ef3a10c9135967fea3d159745e973656d4c8b88ee8093900ab5c",
    ),
    (
        11,
        "erip notifications",
        "bf4bb4143c947c3a0fe806221839e45ffe0dcf764f0683faef6c9e24550ace9fcc7e0fcfd9df71abc143134640fc5179",
    ),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_migration_keeps_the_version_description_and_checksum_it_was_applied_with() {
    let merged = hub::migrator().expect("no version claimed twice");
    let now: Vec<(i64, String, String)> = merged
        .iter()
        .map(|m| (m.version, m.description.to_string(), hex(&m.checksum)))
        .collect();
    let before: Vec<(i64, String, String)> = APPLIED_BEFORE_THE_SPLIT
        .iter()
        .map(|(v, d, c)| (*v, (*d).to_owned(), (*c).to_owned()))
        .collect();
    // New migrations come after, with higher versions; the applied ones stay as they were.
    assert_eq!(now[..before.len()], before[..]);
    assert!(
        now[before.len()..].iter().all(|(v, _, _)| *v > 11),
        "{now:?}"
    );
}

/// A database of this test's own, dropped at the end (also when the test fails).
struct Db {
    url: String,
    name: String,
}

fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl Db {
    async fn new() -> Self {
        let name = format!(
            "hubtest_migr_{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        let mut server = PgConnection::connect(&server_url())
            .await
            .expect("PostgreSQL is running (see README, Prerequisites)");
        let create = format!("CREATE DATABASE {name}");
        server
            .execute(sqlx::AssertSqlSafe(create))
            .await
            .expect("create the test database");
        let mut url = url::Url::parse(&server_url()).expect("TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        Self {
            url: url.to_string(),
            name,
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let (server, name) = (server_url(), self.name.clone());
        // Drop runs outside the test's runtime: a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| {
                    rt.block_on(async {
                        if let Ok(mut c) = PgConnection::connect(&server).await {
                            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                            let _ = c.execute(sqlx::AssertSqlSafe(drop)).await;
                        }
                    })
                })
        })
        .join();
        if dropped.is_err() {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// The migrations as the pre-split `main` had them: every crate's files of those versions in
/// one folder.
fn one_folder() -> tempfile_dir::Dir {
    let dir = tempfile_dir::Dir::new();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for crate_dir in ["runtime", "portal"] {
        let from = manifest.join(crate_dir).join("migrations");
        for entry in std::fs::read_dir(&from).expect("a migrations folder") {
            let path = entry.expect("a migration file").path();
            let file = path.file_name().expect("a file name");
            // Only what the pre-split `main` had: later migrations are the new binary's to run.
            let version: i64 = file
                .to_string_lossy()
                .split('_')
                .next()
                .and_then(|v| v.parse().ok())
                .expect("a numbered migration");
            if !APPLIED_BEFORE_THE_SPLIT
                .iter()
                .any(|(v, _, _)| *v == version)
            {
                continue;
            }
            std::fs::copy(&path, dir.path().join(file)).expect("copy a migration");
        }
    }
    dir
}

/// `(version, checksum, installed_on)` of every applied migration.
async fn applied(pool: &PgPool) -> Vec<(i64, Vec<u8>, chrono::DateTime<chrono::Utc>)> {
    sqlx::query_as("SELECT version, checksum, installed_on FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .expect("the migrations table")
}

#[tokio::test]
async fn a_database_migrated_from_one_folder_is_migrated_by_the_split_binary_without_change() {
    let db = Db::new().await;
    let folder = one_folder();
    let pool = PgPool::connect(&db.url).await.expect("the test database");
    let old = Migrator::new(folder.path().to_path_buf())
        .await
        .expect("the one-folder migrations");
    old.run(&pool).await.expect("migrated the pre-split way");
    let before = applied(&pool).await;
    assert_eq!(before.len(), APPLIED_BEFORE_THE_SPLIT.len());

    let merged = hub::migrator().expect("no version claimed twice");
    merged
        .run(&pool)
        .await
        .expect("the split binary's migrations accept it");
    let after = applied(&pool).await;
    assert_eq!(
        after[..before.len()],
        before[..],
        "nothing applied again, nothing changed"
    );
    assert_eq!(after.len(), merged.iter().count(), "only newer ones added");
    pool.close().await;

    // And the binary itself, as an operator upgrading would run it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hub"))
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("hub runs");
    assert!(
        out.status.success(),
        "hub migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("({} migrations)", merged.iter().count())),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A temporary folder removed on drop (std has none; one small type instead of a crate).
mod tempfile_dir {
    use super::{Path, PathBuf};

    #[derive(Debug)]
    pub(crate) struct Dir(PathBuf);

    impl Dir {
        pub(crate) fn new() -> Self {
            let path = std::env::temp_dir()
                .join(format!("hub-migrations-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&path).expect("a temporary folder");
            Self(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
