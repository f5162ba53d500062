//! The fault schedule of a chaos run: drawn from a seed, so a run that found a violation can be
//! played again with the same faults at the same moments (the load's timing still varies).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use simulators::SimKind;

/// A kind of fault the run may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A hub process killed with SIGKILL, started again after a while.
    Kill,
    /// The broker stopped and started again.
    Broker,
    /// PostgreSQL killed (immediate shutdown, recovery from the WAL) and started again.
    Postgres,
    /// A simulator's faults: latency, errors, timeouts, duplicate or late callbacks, outages.
    Sims,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Kill,
        FaultKind::Broker,
        FaultKind::Postgres,
        FaultKind::Sims,
    ];
}

/// What a simulator is made to do for a while (`PUT /sim/faults`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimFault {
    /// Every answer this late, ms.
    Latency(u64),
    /// This share of calls answered with a server error.
    Errors(f64),
    /// This share of calls held past the hub's HTTP timeout.
    Timeouts(f64),
    /// This share of callbacks (delivery reports, payment notifications, decisions) sent twice.
    DuplicateCallbacks(f64),
    /// Payment notifications held this long before their first attempt, ms (they arrive after
    /// the hub has moved on, out of order with what it did meanwhile).
    LateNotifications(u64),
    /// Every call fails: the system is down.
    Outage,
    /// The SMS centre answers every SMPP request this late, ms.
    SmppLatency(u64),
    /// This share of `submit_sm` answered `ESME_RTHROTTLED`, and as much again `ESME_RMSGQFUL`.
    SmppThrottling(f64),
    /// This share of `submit_sm` answered `ESME_RSYSERR`.
    SmppSystemErrors(f64),
    /// This share of delivery receipts never sent.
    SmppLostReceipts(f64),
    /// This share of delivery receipts sent twice.
    SmppDuplicateReceipts(f64),
    /// This share of single-part SMS delivered, and their receipt sent, before the
    /// `submit_sm_resp`.
    SmppReceiptsFirst(f64),
    /// The next this many binds refused (`ESME_RBINDFAIL`).
    SmppRefusedBinds(u32),
    /// The connection dropped without an answer on the `after`th `submit_sm` from now, which
    /// the SMS centre took first when `taken` (the client cannot know, so it sends it again and
    /// the phone shows it twice: the checker expects that one, recorded as in doubt).
    SmppDroppedConnection {
        /// On which `submit_sm`.
        after: u32,
        /// Whether that one reaches the phone.
        taken: bool,
    },
}

impl SimFault {
    /// The `/sim/faults` body that turns the fault on, and the one that turns it off again
    /// (only its own field, so overlapping faults on one simulator do not end each other).
    pub fn patches(self) -> (serde_json::Value, serde_json::Value) {
        use serde_json::json;
        match self {
            SimFault::Latency(ms) => (json!({"latency_ms": ms}), json!({"latency_ms": 0})),
            SimFault::Errors(r) => (json!({"error_rate": r}), json!({"error_rate": 0.0})),
            SimFault::Timeouts(r) => (json!({"timeout_rate": r}), json!({"timeout_rate": 0.0})),
            SimFault::DuplicateCallbacks(r) => (
                json!({"duplicate_callback_rate": r}),
                json!({"duplicate_callback_rate": 0.0}),
            ),
            SimFault::LateNotifications(ms) => (
                json!({"notification_delay_ms": ms}),
                json!({"notification_delay_ms": 0}),
            ),
            SimFault::Outage => (json!({"error_rate": 1.0}), json!({"error_rate": 0.0})),
            SimFault::SmppLatency(ms) => (json!({"latency_ms": ms}), json!({"latency_ms": 0})),
            SimFault::SmppThrottling(r) => (
                json!({"throttle_rate": r, "queue_full_rate": r}),
                json!({"throttle_rate": 0.0, "queue_full_rate": 0.0}),
            ),
            SimFault::SmppSystemErrors(r) => (
                json!({"system_error_rate": r}),
                json!({"system_error_rate": 0.0}),
            ),
            SimFault::SmppLostReceipts(r) => (
                json!({"drop_receipt_rate": r}),
                json!({"drop_receipt_rate": 0.0}),
            ),
            SimFault::SmppDuplicateReceipts(r) => (
                json!({"duplicate_receipt_rate": r}),
                json!({"duplicate_receipt_rate": 0.0}),
            ),
            SimFault::SmppReceiptsFirst(r) => (
                json!({"receipt_first_rate": r}),
                json!({"receipt_first_rate": 0.0}),
            ),
            SimFault::SmppRefusedBinds(n) => {
                (json!({"refuse_binds": n}), json!({"refuse_binds": 0}))
            }
            SimFault::SmppDroppedConnection { after, taken } => (
                json!({"drop_connection_after": after, "drop_accepted": taken}),
                json!({"drop_connection_after": 0, "drop_accepted": false}),
            ),
        }
    }

    /// The simulator's path that takes [`Self::patches`]: the HTTP gateway's faults
    /// (`sim/faults`) or, for an operator, its SMS centre's (`sim/smpp/faults`).
    pub fn path(self) -> &'static str {
        match self {
            SimFault::SmppLatency(_)
            | SimFault::SmppThrottling(_)
            | SimFault::SmppSystemErrors(_)
            | SimFault::SmppLostReceipts(_)
            | SimFault::SmppDuplicateReceipts(_)
            | SimFault::SmppReceiptsFirst(_)
            | SimFault::SmppRefusedBinds(_)
            | SimFault::SmppDroppedConnection { .. } => "sim/smpp/faults",
            _ => "sim/faults",
        }
    }
}

/// The faults of an operator's SMS centre, for a run whose hub sends over SMPP.
fn smpp_faults(rng: &mut StdRng) -> Vec<SimFault> {
    vec![
        SimFault::SmppLatency(rng.random_range(200..3000)),
        SimFault::SmppThrottling(rng.random_range(0.2..0.6)),
        SimFault::SmppSystemErrors(rng.random_range(0.2..0.6)),
        SimFault::SmppLostReceipts(rng.random_range(0.3..1.0)),
        SimFault::SmppDuplicateReceipts(rng.random_range(0.3..1.0)),
        SimFault::SmppReceiptsFirst(rng.random_range(0.3..1.0)),
        SimFault::SmppRefusedBinds(rng.random_range(1..4)),
        SimFault::SmppDroppedConnection {
            after: rng.random_range(1..10),
            taken: rng.random_bool(0.5),
        },
    ]
}

/// One fault of the schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fault")]
pub enum Fault {
    /// SIGKILL hub process `hub`.
    KillHub {
        /// Its index.
        hub: usize,
    },
    /// Stop and start the broker.
    RestartBroker,
    /// Crash and start PostgreSQL.
    RestartPostgres,
    /// A simulator fault.
    Sim {
        /// Which simulator.
        #[serde(serialize_with = "sim_name")]
        sim: SimKind,
        /// What it does.
        what: SimFault,
    },
}

fn sim_name<S: serde::Serializer>(k: &SimKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{k:?}").to_lowercase())
}

/// A fault at a moment of the run, held for a while (the time a process or server stays down,
/// or a simulator keeps misbehaving).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    /// Since the start of the load, ms.
    pub at_ms: u64,
    /// How long it lasts, ms.
    pub hold_ms: u64,
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
}

impl Planned {
    /// Since the start of the load.
    pub fn at(&self) -> Duration {
        Duration::from_millis(self.at_ms)
    }

    /// How long it lasts.
    pub fn hold(&self) -> Duration {
        Duration::from_millis(self.hold_ms)
    }

    /// The kind of fault.
    pub fn kind(&self) -> FaultKind {
        match self.fault {
            Fault::KillHub { .. } => FaultKind::Kill,
            Fault::RestartBroker => FaultKind::Broker,
            Fault::RestartPostgres => FaultKind::Postgres,
            Fault::Sim { .. } => FaultKind::Sims,
        }
    }
}

/// The simulators the journeys reach, with the faults each can show.
fn sim_faults(rng: &mut StdRng, longest: Duration, smpp: bool) -> (SimKind, SimFault, Duration) {
    let sims = [
        SimKind::Mvd,
        SimKind::A1,
        SimKind::Erip,
        SimKind::BackOffice,
    ];
    let sim = sims[rng.random_range(0..sims.len())];
    let mut choices = vec![
        SimFault::Latency(rng.random_range(200..3000)),
        SimFault::Errors(rng.random_range(0.2..0.6)),
        SimFault::Timeouts(rng.random_range(0.05..0.3)),
        SimFault::Outage,
    ];
    match sim {
        // Over SMPP the operator's HTTP gateway still answers which operator serves a number;
        // its SMS centre's faults join the gateway's.
        SimKind::A1 if smpp => choices.extend(smpp_faults(rng)),
        SimKind::A1 | SimKind::BackOffice => {
            choices.push(SimFault::DuplicateCallbacks(rng.random_range(0.3..1.0)));
        }
        SimKind::Erip => {
            choices.push(SimFault::DuplicateCallbacks(rng.random_range(0.3..1.0)));
            choices.push(SimFault::LateNotifications(rng.random_range(1000..8000)));
        }
        _ => {}
    }
    let what = choices[rng.random_range(0..choices.len())];
    // Outages last longest: up to a quarter of the run (minutes, in a long run).
    let hold = match what {
        SimFault::Outage => rng.random_range(longest / 4..=longest),
        _ => rng.random_range(Duration::from_secs(2)..=longest),
    };
    (sim, what, hold)
}

/// The schedule of a run whose load lasts `duration`, with `hubs` hub processes: about one
/// fault every `every`, each enabled kind at least once, all within the first 80% of the load
/// so the run also shows the system settling. With `smpp` (the hub sends SMS over SMPP) the
/// operator's faults include its SMS centre's.
pub fn plan(
    seed: u64,
    duration: Duration,
    every: Duration,
    hubs: usize,
    kinds: &[FaultKind],
    smpp: bool,
) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    if kinds.is_empty() || duration.is_zero() {
        return Vec::new();
    }
    let window = duration.mul_f64(0.8);
    let count =
        ((duration.as_secs_f64() / every.as_secs_f64().max(0.001)) as usize).max(kinds.len());
    // A quarter of the load, at most two minutes: the longest a simulator misbehaves.
    let longest = (duration / 4).clamp(Duration::from_secs(2), Duration::from_secs(120));
    let mut order: Vec<FaultKind> = kinds.to_vec();
    order.shuffle(&mut rng);
    let mut planned: Vec<Planned> = (0..count)
        .map(|i| {
            let kind = order
                .get(i)
                .copied()
                .unwrap_or_else(|| kinds[rng.random_range(0..kinds.len())]);
            let at = rng
                .random_range(duration / 20..window.max(duration / 20 + Duration::from_millis(1)));
            let (fault, hold) = match kind {
                FaultKind::Kill => (
                    Fault::KillHub {
                        hub: rng.random_range(0..hubs.max(1)),
                    },
                    rng.random_range(Duration::from_millis(500)..Duration::from_secs(5)),
                ),
                FaultKind::Broker => (
                    Fault::RestartBroker,
                    rng.random_range(Duration::from_millis(500)..Duration::from_secs(4)),
                ),
                FaultKind::Postgres => (
                    Fault::RestartPostgres,
                    rng.random_range(Duration::from_millis(500)..Duration::from_secs(4)),
                ),
                FaultKind::Sims => {
                    let (sim, what, hold) = sim_faults(&mut rng, longest, smpp);
                    (Fault::Sim { sim, what }, hold)
                }
            };
            Planned {
                at_ms: at.as_millis() as u64,
                hold_ms: hold.as_millis() as u64,
                fault,
            }
        })
        .collect();
    planned.sort_by_key(|p| p.at_ms);
    planned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_schedule_and_every_kind_asked_for() {
        let d = Duration::from_secs(60);
        let a = plan(7, d, Duration::from_secs(5), 2, &FaultKind::ALL, false);
        assert_eq!(
            a,
            plan(7, d, Duration::from_secs(5), 2, &FaultKind::ALL, false)
        );
        assert_ne!(
            a,
            plan(8, d, Duration::from_secs(5), 2, &FaultKind::ALL, false)
        );
        assert_eq!(a.len(), 12);
        for kind in FaultKind::ALL {
            assert!(
                a.iter().any(|p| p.kind() == kind),
                "{kind:?} missing: {a:?}"
            );
        }
        assert!(a.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        assert!(
            a.iter()
                .all(|p| p.at() < d.mul_f64(0.8) && p.at() >= d / 20)
        );
        assert!(a.iter().all(|p| match p.fault {
            Fault::KillHub { hub } => hub < 2,
            _ => true,
        }));
    }

    #[test]
    fn only_the_kinds_asked_for() {
        let a = plan(
            1,
            Duration::from_secs(30),
            Duration::from_secs(3),
            1,
            &[FaultKind::Sims],
            false,
        );
        assert!(!a.is_empty());
        assert!(a.iter().all(|p| p.kind() == FaultKind::Sims));
        assert!(
            plan(
                1,
                Duration::from_secs(30),
                Duration::from_secs(3),
                1,
                &[],
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn an_smpp_run_draws_the_sms_centres_faults_for_their_own_path() {
        let smpp = |seed| {
            plan(
                seed,
                Duration::from_secs(600),
                Duration::from_secs(1),
                1,
                &[FaultKind::Sims],
                true,
            )
        };
        let drawn: Vec<SimFault> = (1..4)
            .flat_map(smpp)
            .filter_map(|p| match p.fault {
                Fault::Sim { sim, what } if what.path() == "sim/smpp/faults" => {
                    assert_eq!(sim, SimKind::A1, "only an operator has an SMS centre");
                    Some(what)
                }
                _ => None,
            })
            .collect();
        assert!(drawn.len() > 10, "{drawn:?}");
        assert!(
            drawn
                .iter()
                .any(|f| matches!(f, SimFault::SmppDroppedConnection { .. }))
        );
        let (on, off) = SimFault::SmppDroppedConnection {
            after: 3,
            taken: true,
        }
        .patches();
        assert_eq!(on["drop_connection_after"], 3);
        assert_eq!(off["drop_connection_after"], 0);
        // Over HTTP no SMS centre fault is drawn.
        let http = plan(
            1,
            Duration::from_secs(600),
            Duration::from_secs(1),
            1,
            &[FaultKind::Sims],
            false,
        );
        assert!(http.iter().all(|p| match p.fault {
            Fault::Sim { what, .. } => what.path() == "sim/faults",
            _ => true,
        }));
    }
}
