//! The lab's commands (`hub demo`, `hub bench`, `hub chaos`): only in a binary built with the
//! default feature `lab`.

use anyhow::Context;
use hub_runtime::config::HubConfig;

use super::{BenchArgs, ChaosArgs, DemoArgs};

/// `hub demo`: the whole portal with every simulator; an error when an outcome was not the
/// expected one.
pub(super) async fn demo(config: &HubConfig, args: DemoArgs) -> anyhow::Result<()> {
    let DemoArgs {
        applications,
        seed,
        sms_protocol,
        json,
    } = args;
    let report = hub_lab::demo::run(config, applications, seed, sms_protocol).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", hub_lab::demo::table(&report));
    }
    if !report.unexpected.is_empty() {
        anyhow::bail!(
            "{} of {} applications did not end as expected",
            report.unexpected.len(),
            report.started
        );
    }
    Ok(())
}

/// `hub bench`: the raw limits, then the sagas through `hub run` processes; an error when a saga
/// did not come to its expected end or an effect happened twice.
pub(super) async fn bench(config: &HubConfig, args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        sagas,
        concurrency,
        types,
        raw_operations,
        processes,
        phase_timeout,
        sms_protocol,
        json,
        json_out,
    } = args;
    anyhow::ensure!(
        sagas > 0 && concurrency > 0,
        "--sagas and --concurrency must be positive"
    );
    let settings = hub_lab::bench::Settings {
        sagas,
        concurrency,
        kinds: if types.is_empty() {
            hub_lab::bench::SagaKind::ALL.to_vec()
        } else {
            types
        },
        phase_timeout,
        raw_operations: raw_operations.max(1),
        processes: processes.into_iter().map(usize::from).collect(),
        sms: sms_protocol,
    };
    let report = hub_lab::bench::run(config, &settings).await?;
    let as_json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = json_out {
        std::fs::write(&path, format!("{as_json}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        println!("{as_json}");
    } else {
        print!("{}", hub_lab::bench::table(&report));
    }
    let failed = report.failed();
    anyhow::ensure!(
        failed == 0,
        "{failed} sagas did not come to their expected end"
    );
    let duplicates = report.duplicates();
    anyhow::ensure!(
        duplicates == 0,
        "{duplicates} effects happened more than once (see the report)"
    );
    Ok(())
}

/// `hub chaos`: the journeys under seeded faults, then the invariant checker; an error when an
/// invariant was broken.
pub(super) async fn chaos(config: &HubConfig, args: ChaosArgs) -> anyhow::Result<()> {
    let ChaosArgs {
        seed,
        duration,
        concurrency,
        processes,
        faults,
        fault_every,
        settle_timeout,
        sms_protocol,
        json,
    } = args;
    anyhow::ensure!(
        concurrency > 0 && !duration.is_zero(),
        "--concurrency and --duration must be positive"
    );
    let settings = hub_lab::chaos::Settings {
        seed,
        duration,
        concurrency,
        processes: usize::from(processes),
        faults: if faults.is_empty() {
            hub_lab::chaos::FaultKind::ALL.to_vec()
        } else {
            faults
        },
        fault_every,
        settle_timeout,
        // Outages last up to a quarter of the load; a journey waits them out.
        step_timeout: (duration / 2).max(std::time::Duration::from_secs(120)),
        sms: sms_protocol,
    };
    let report = hub_lab::chaos::run(config, &settings).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", hub_lab::chaos::table(&report));
    }
    let violations = report.violations();
    anyhow::ensure!(
        violations == 0,
        "{violations} invariants broken (see the report); seed {seed} plays the same faults again"
    );
    Ok(())
}
