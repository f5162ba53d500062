//! The demo's first act: an outage, and the operator's repair. The MVD registry fails (its
//! simulator's faults are turned on) while a few applications come in; their reconciliation
//! commands are retried through the tiers and dead-lettered, and the keeper moves them into the
//! `dead_letters` table. Then, as an operator would with `hub dlq list --group` and
//! `hub dlq replay --group KEY` (the same library functions), the demo groups them by cause,
//! turns the fault off, replays each group, and the applications go on to their identifiers.

use std::time::{Duration, Instant};

use contracts::issuance::{ConfirmPhone, PhoneCodeSent};
use serde::Serialize;
use sqlx::PgPool;

use super::{DESK, Expect, Person, Play, STEP_TIMEOUT};
use hub_ops::dlq::{self, Filter, ReplayOptions, Selection, StatusFilter};
use hub_runtime::broker::Publisher;

/// What the outage came to.
#[derive(Debug, Default, Serialize)]
pub struct OutageReport {
    /// Applications sent while the MVD registry was down.
    pub applications: usize,
    /// Their dead letters, kept by the keeper.
    pub dead_letters: i64,
    /// The causes `hub dlq list --group` shows, with their counts.
    pub groups: Vec<(String, usize)>,
    /// Letters replayed once the registry was back.
    pub replayed: usize,
    /// Applications issued after the replay.
    pub issued_after_replay: usize,
}

/// Plays the outage for `persons` (not used by the other acts); `mvd` is the simulator's URL.
pub(super) async fn play(
    ctx: &Play,
    pool: &PgPool,
    publisher: &Publisher,
    broker_user: &str,
    mvd: &url::Url,
    persons: &[&Person],
) -> anyhow::Result<OutageReport> {
    let mut report = OutageReport {
        applications: persons.len(),
        ..OutageReport::default()
    };
    let faults = mvd.join("sim/faults")?;
    ctx.http
        .put(faults.clone())
        .json(&serde_json::json!({"error_rate": 1.0}))
        .send()
        .await?
        .error_for_status()?;
    let applications: Vec<_> = persons
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let number = format!("D-9{k:03}");
            // A1 numbers far from the other acts' (the code is read from the A1 inbox).
            let phone = format!("+3754409{:05}", 1000 + k);
            crate::stage::identifier_application(p, &number, &phone, DESK)
        })
        .collect();
    for a in &applications {
        ctx.send(a).await?;
    }
    let filter = Filter {
        queue: Some(hub_portal::external::mvd::worker::QUEUE.to_owned()),
        status: StatusFilter::New,
        ..Filter::default()
    };
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        report.dead_letters = dlq::count(pool, &filter).await?;
        if report.dead_letters >= persons.len() as i64 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {} MVD commands dead-lettered within {STEP_TIMEOUT:?}",
            report.dead_letters,
            persons.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let groups = dlq::groups(pool, &filter).await?;
    report.groups = groups
        .iter()
        .map(|g| {
            (
                format!("{} {}: {}", g.queue, g.error_kind, g.cause),
                g.count,
            )
        })
        .collect();
    // The registry is back: replay what died meanwhile.
    ctx.http.delete(faults).send().await?.error_for_status()?;
    for g in &groups {
        let replayed = dlq::replay(
            pool,
            publisher,
            broker_user,
            &Selection::Group {
                key: g.key.clone(),
                filter: filter.clone(),
            },
            &ReplayOptions {
                rate: dlq::DEFAULT_RATE,
                operator: "demo-operator".into(),
                reason: Some("the MVD registry is back".into()),
                include_replayed: false,
            },
            &mut |_, _| {},
        )
        .await?;
        report.replayed += replayed.replayed.len();
    }
    for a in &applications {
        let number = &a.application.number;
        let _: PhoneCodeSent = ctx.desk.wait(number).await?;
        let code = ctx.code_from_phone(&a.phone).await?;
        ctx.send(&ConfirmPhone {
            desk_id: DESK.into(),
            application_number: number.clone(),
            code,
        })
        .await?;
        if ctx.desk.outcome(number).await? == Expect::Issued {
            report.issued_after_replay += 1;
        }
    }
    Ok(report)
}
