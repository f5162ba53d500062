//! The monitor page: what the hub did over the last hour, in small charts (throughput, queue
//! depth, dead letters waiting, saga time), from samples the console takes itself. No
//! Prometheus is needed: a task of the console samples every `HUB_CONSOLE_SAMPLE_INTERVAL`
//! (15 s by default) into a ring that keeps one hour.
//!
//! Each sample reads
//! - this process's counters (the metrics registry `GET /metrics` shows): messages the consumers
//!   took (`hub_messages_in`), as a rate per minute since the previous sample, and the saga
//!   duration histogram (`hub_saga_duration_seconds`), whose p50 and p95 over the sagas that
//!   ended in the last minute are estimated from its buckets as Prometheus'
//!   `histogram_quantile` does;
//! - the broker: the messages ready in the namespace's work queues, summed (the health page's
//!   passive declares);
//! - the database: the dead letters waiting (neither replayed nor discarded).
//!
//! A value that could not be read (the broker down, the database slow) is left out of the
//! sample and the chart's line skips it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::html;

use super::Console;
use super::auth::SignedIn;
use super::chart::{self, Chart, Series};
use super::layout::{self, Section};
use crate::dlq::{self, Filter};

/// How far back the charts look.
pub const WINDOW: Duration = Duration::from_secs(3600);
/// The default of `HUB_CONSOLE_SAMPLE_INTERVAL`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// The saga time's window: the sagas that ended in the last minute.
const MINUTE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// The most samples the ring keeps, whatever the interval.
const MAX_SAMPLES: usize = 36_000;
/// The most points a chart draws (about one per pixel): more samples are thinned evenly.
const MAX_POINTS: usize = 300;

/// What the counters of the registry said at one time: cumulative, since the process started.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Totals {
    /// Messages the consumers took, every queue and outcome.
    pub handled: f64,
    /// The saga duration histogram over every saga type: `(upper bound, cumulative count)`,
    /// by upper bound, the last `+Inf`.
    pub saga_buckets: Vec<(f64, f64)>,
}

impl Totals {
    /// This process's counters now.
    pub(super) fn read() -> Self {
        let text = hub_runtime::metrics::metrics()
            .encode(&prometheus_client::registry::Registry::default());
        Self::parse(&text)
    }

    /// The totals in a text exposition (what `GET /metrics` answers).
    pub(super) fn parse(text: &str) -> Self {
        let mut totals = Totals::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, rest) = match line.find('}') {
                Some(end) => line.split_at(end + 1),
                None => line.split_once(' ').unwrap_or((line, "")),
            };
            let Some(Ok(value)) = rest.split_whitespace().next().map(str::parse::<f64>) else {
                continue;
            };
            let name = series.split('{').next().unwrap_or(series);
            match name {
                "hub_messages_in_total" => totals.handled += value,
                "hub_saga_duration_seconds_bucket" => {
                    let Some(le) = label(series, "le").and_then(|v| match v {
                        "+Inf" => Some(f64::INFINITY),
                        v => v.parse().ok(),
                    }) else {
                        continue;
                    };
                    match totals.saga_buckets.iter_mut().find(|(b, _)| *b == le) {
                        Some((_, count)) => *count += value,
                        None => totals.saga_buckets.push((le, value)),
                    }
                }
                _ => {}
            }
        }
        totals.saga_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        totals
    }
}

/// The value of label `name` in `series` (`metric{a="x",le="1.0"}`).
fn label<'a>(series: &'a str, name: &str) -> Option<&'a str> {
    let labels = &series[series.find('{')? + 1..];
    labels
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_end_matches('}').trim_matches('"'))
}

/// The `q` quantile (0 to 1) of a cumulative histogram, interpolated linearly within its bucket
/// (the first bucket starts at 0); the highest finite bound when it falls in `+Inf`. `None`
/// when the histogram is empty.
pub(super) fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let width = count - below;
            return Some(if width > 0.0 {
                lower + (le - lower) * (rank - below) / width
            } else {
                le
            });
        }
        (lower, below) = (le, count);
    }
    Some(lower)
}

/// What ended between `before` and `now`: the difference of two cumulative histograms.
fn difference(before: &[(f64, f64)], now: &[(f64, f64)]) -> Vec<(f64, f64)> {
    now.iter()
        .map(|&(le, count)| {
            let was = before
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, c)| *c);
            (le, (count - was).max(0.0))
        })
        .collect()
}

/// One sample of the charts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sample {
    /// When.
    pub at: DateTime<Utc>,
    /// Messages the consumers took per minute, since the previous sample.
    pub handled_per_minute: Option<f64>,
    /// Messages ready in the work queues, summed.
    pub queue_depth: Option<u64>,
    /// Dead letters neither replayed nor discarded.
    pub dead_letters: Option<i64>,
    /// Median time of the sagas that ended in the last minute, in seconds.
    pub saga_p50: Option<f64>,
    /// 95th percentile of the same.
    pub saga_p95: Option<f64>,
}

/// Turns counter totals into a sample's rates and quantiles: it keeps the totals of the last
/// minute or so.
#[derive(Debug, Default)]
pub(super) struct Sampler {
    history: VecDeque<(DateTime<Utc>, Totals)>,
}

impl Sampler {
    /// The sample at `at`, from the registry's `totals` then and what the broker and the
    /// database said.
    pub(super) fn sample(
        &mut self,
        at: DateTime<Utc>,
        totals: Totals,
        queue_depth: Option<u64>,
        dead_letters: Option<i64>,
    ) -> Sample {
        let handled_per_minute = self.history.back().and_then(|(then, before)| {
            let seconds = (at - *then).num_milliseconds() as f64 / 1000.0;
            (seconds > 0.0).then(|| (totals.handled - before.handled).max(0.0) / seconds * 60.0)
        });
        // Against the newest totals at least a minute old (or the oldest kept, early on).
        let base = self
            .history
            .iter()
            .rev()
            .find(|(then, _)| at - *then >= MINUTE)
            .or(self.history.front());
        let ended = base.map(|(_, before)| difference(&before.saga_buckets, &totals.saga_buckets));
        let (saga_p50, saga_p95) = match ended {
            Some(ended) => (quantile(0.5, &ended), quantile(0.95, &ended)),
            None => (None, None),
        };
        self.history.push_back((at, totals));
        while self.history.len() > 1 && at - self.history[1].0 >= MINUTE {
            self.history.pop_front();
        }
        Sample {
            at,
            handled_per_minute,
            queue_depth,
            dead_letters,
            saga_p50,
            saga_p95,
        }
    }
}

/// The samples of the last hour, oldest first, bounded in number.
#[derive(Debug)]
pub(super) struct Ring {
    window: chrono::TimeDelta,
    capacity: usize,
    samples: Mutex<VecDeque<Sample>>,
}

impl Ring {
    /// A ring for samples taken every `interval`, keeping `window`.
    pub(super) fn new(interval: Duration, window: Duration) -> Self {
        let per_window = window.as_secs_f64() / interval.as_secs_f64().max(0.001);
        Ring {
            window: chrono::TimeDelta::from_std(window).unwrap_or(chrono::TimeDelta::hours(1)),
            capacity: (per_window.ceil() as usize)
                .saturating_add(1)
                .min(MAX_SAMPLES),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Adds `sample`, dropping those older than the window before it and any over the bound.
    pub(super) fn push(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = sample.at - self.window;
        samples.push_back(sample);
        while samples.front().is_some_and(|s| s.at < oldest) || samples.len() > self.capacity {
            samples.pop_front();
        }
    }

    /// The samples kept, oldest first.
    pub(super) fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

/// Samples every `interval` into the console's ring until shutdown.
pub(super) async fn run(console: Arc<Console>, interval: Duration) {
    let mut sampler = Sampler::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = console.shutdown.cancelled() => return,
        }
        let waiting = Filter::default();
        let (depth, dead) = tokio::join!(
            super::health::work_queue_depth(&console),
            tokio::time::timeout(
                console.probe_timeout,
                dlq::count(&console.hub.pool, &waiting)
            ),
        );
        let dead = match dead {
            Ok(Ok(n)) => Some(n),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "console: the dead letters could not be counted");
                None
            }
            Err(_) => None,
        };
        let sample = sampler.sample(Utc::now(), Totals::read(), depth, dead);
        console.monitor.push(sample);
    }
}

/// At most [`MAX_POINTS`] of `samples`, evenly spread, the newest always among them.
fn thinned(samples: Vec<Sample>) -> Vec<Sample> {
    if samples.len() <= MAX_POINTS {
        return samples;
    }
    let step = samples.len().div_ceil(MAX_POINTS);
    let last = samples.len() - 1;
    samples
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (last - i).is_multiple_of(step))
        .map(|(_, s)| s)
        .collect()
}

/// The four charts of `samples`.
pub(super) fn charts(samples: &[Sample]) -> Vec<Chart> {
    let times: Vec<DateTime<Utc>> = samples.iter().map(|s| s.at).collect();
    let one = |id, title, unit, name, values: Vec<Option<f64>>| Chart {
        id,
        title,
        unit,
        times: times.clone(),
        series: vec![Series {
            name,
            class: "s1",
            values,
        }],
    };
    vec![
        one(
            "chart-throughput",
            "Throughput",
            "msg/min",
            "messages",
            samples.iter().map(|s| s.handled_per_minute).collect(),
        ),
        one(
            "chart-queue-depth",
            "Queue depth",
            "messages",
            "ready",
            samples
                .iter()
                .map(|s| s.queue_depth.map(|d| d as f64))
                .collect(),
        ),
        one(
            "chart-dead-letters",
            "Dead letters waiting",
            "letters",
            "waiting",
            samples
                .iter()
                .map(|s| s.dead_letters.map(|d| d as f64))
                .collect(),
        ),
        Chart {
            id: "chart-saga-time",
            title: "Saga time",
            unit: "s",
            times,
            series: vec![
                Series {
                    name: "p50",
                    class: "s1",
                    values: samples.iter().map(|s| s.saga_p50).collect(),
                },
                Series {
                    name: "p95",
                    class: "s2",
                    values: samples.iter().map(|s| s.saga_p95).collect(),
                },
            ],
        },
    ]
}

/// `GET /monitor`.
pub(super) async fn page(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
) -> Response {
    let samples = thinned(console.monitor.samples());
    let interval = console.sample_interval;
    let flash = console.sessions.take_flash(&signed.id);
    let content = html! {
        p.muted {
            "The last hour, sampled every " (format!("{interval:?}"))
            " (HUB_CONSOLE_SAMPLE_INTERVAL); " (samples.len()) " samples shown. "
            "Throughput and saga time are this process's; queue depth is the namespace's work "
            "queues (ready messages); dead letters are those neither replayed nor discarded. "
            "Saga time is the p50 and p95 of the sagas that ended in the minute before each sample."
        }
        div.charts {
            @for c in charts(&samples) { (chart::render(&c)) }
        }
    };
    layout::page("Monitor", Section::Monitor, &signed, flash, content).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a time")
    }

    const EXPOSITION: &str = r#"# HELP hub_messages_in Messages the consumers took
# TYPE hub_messages_in counter
hub_messages_in_total{queue="hub.mvd",type="mvd.reconcile.v1",outcome="ok"} 3
hub_messages_in_total{queue="hub.sms",type="sms.send.v1",outcome="retried"} 2
# TYPE hub_saga_duration_seconds histogram
hub_saga_duration_seconds_sum{saga_type="issuance"} 3.5
hub_saga_duration_seconds_count{saga_type="issuance"} 4
hub_saga_duration_seconds_bucket{le="1.0",saga_type="issuance"} 2
hub_saga_duration_seconds_bucket{le="5.0",saga_type="issuance"} 4
hub_saga_duration_seconds_bucket{le="+Inf",saga_type="issuance"} 4
hub_saga_duration_seconds_bucket{le="1.0",saga_type="registration"} 1
hub_saga_duration_seconds_bucket{le="5.0",saga_type="registration"} 1
hub_saga_duration_seconds_bucket{le="+Inf",saga_type="registration"} 2
hub_messages_out_total{exchange="hub.events",type="x.v1"} 9
# EOF
"#;

    #[test]
    fn the_counters_are_read_from_the_exposition() {
        let t = Totals::parse(EXPOSITION);
        assert_eq!(t.handled, 5.0);
        assert_eq!(
            t.saga_buckets,
            [(1.0, 3.0), (5.0, 5.0), (f64::INFINITY, 6.0)]
        );
        assert_eq!(Totals::parse(""), Totals::default());
    }

    #[test]
    fn the_registry_is_read_as_it_counts() {
        let before = Totals::read();
        hub_runtime::metrics::metrics().message_in(
            "console.monitor.test",
            "test.v1",
            hub_runtime::metrics::InOutcome::Ok,
        );
        assert!(Totals::read().handled >= before.handled + 1.0);
        // The saga histogram as the registry encodes it: a bucket per bound, `+Inf` last.
        hub_runtime::metrics::metrics()
            .saga_ended("console.monitor.test", Duration::from_millis(500));
        let after = Totals::read();
        let under_a_second = |t: &Totals| {
            t.saga_buckets
                .iter()
                .find(|(le, _)| *le == 1.0)
                .map_or(0.0, |(_, c)| *c)
        };
        assert!(
            under_a_second(&after) >= under_a_second(&before) + 1.0,
            "{after:?}"
        );
        assert_eq!(
            after.saga_buckets.last().map(|(le, _)| *le),
            Some(f64::INFINITY)
        );
    }

    #[test]
    fn quantiles_interpolate_in_their_bucket() {
        let b = [(1.0, 2.0), (5.0, 4.0), (f64::INFINITY, 4.0)];
        assert_eq!(quantile(0.5, &b), Some(1.0));
        assert_eq!(quantile(0.25, &b), Some(0.5));
        assert_eq!(quantile(0.75, &b), Some(3.0));
        // In +Inf: the highest finite bound.
        assert_eq!(
            quantile(0.99, &[(1.0, 1.0), (f64::INFINITY, 2.0)]),
            Some(1.0)
        );
        assert_eq!(quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(quantile(0.5, &[]), None);
    }

    fn totals(handled: f64, ended_fast: f64, ended_slow: f64) -> Totals {
        Totals {
            handled,
            saga_buckets: vec![
                (1.0, ended_fast),
                (15.0, ended_fast + ended_slow),
                (f64::INFINITY, ended_fast + ended_slow),
            ],
        }
    }

    #[test]
    fn the_sampler_makes_rates_and_the_last_minutes_saga_times() {
        let mut sampler = Sampler::default();
        let first = sampler.sample(at(0), totals(100.0, 0.0, 0.0), Some(4), Some(1));
        assert_eq!(
            first.handled_per_minute, None,
            "no rate without a previous sample"
        );
        assert_eq!((first.saga_p50, first.saga_p95), (None, None));
        assert_eq!((first.queue_depth, first.dead_letters), (Some(4), Some(1)));
        // 30 messages in 15 s: 120 a minute; two sagas ended under a second.
        let second = sampler.sample(at(15), totals(130.0, 2.0, 0.0), None, None);
        assert_eq!(second.handled_per_minute, Some(120.0));
        assert_eq!(second.saga_p50, Some(0.5));
        assert_eq!((second.queue_depth, second.dead_letters), (None, None));
        // Later, one slow saga more: the minute still holds the fast ones.
        let third = sampler.sample(at(45), totals(130.0, 2.0, 1.0), None, None);
        assert_eq!(third.handled_per_minute, Some(0.0));
        assert_eq!(third.saga_p50, Some(0.75));
        let p95 = third.saga_p95.expect("a p95");
        assert!((p95 - 12.9).abs() < 1e-9, "{p95}");
        // A minute after the fast ones, only the slow one is left; after it, none.
        let fourth = sampler.sample(at(76), totals(130.0, 2.0, 1.0), None, None);
        assert_eq!(fourth.saga_p50, Some(8.0), "{fourth:?}");
        let fifth = sampler.sample(at(110), totals(130.0, 2.0, 1.0), None, None);
        assert_eq!((fifth.saga_p50, fifth.saga_p95), (None, None));
        assert!(sampler.history.len() <= 4, "{:?}", sampler.history);
    }

    fn sample(at: DateTime<Utc>) -> Sample {
        Sample {
            at,
            handled_per_minute: Some(1.0),
            queue_depth: Some(2),
            dead_letters: Some(0),
            saga_p50: None,
            saga_p95: None,
        }
    }

    #[test]
    fn the_ring_drops_samples_older_than_its_window_and_over_its_bound() {
        let ring = Ring::new(Duration::from_secs(15), Duration::from_secs(60));
        for s in [0, 15, 30, 45, 60] {
            ring.push(sample(at(s)));
        }
        assert_eq!(ring.samples().len(), 5, "0 is exactly a minute before 60");
        ring.push(sample(at(75)));
        let kept: Vec<_> = ring.samples().iter().map(|s| s.at).collect();
        assert_eq!(kept, [at(15), at(30), at(45), at(60), at(75)]);
        // Sampled faster than planned: the bound holds.
        for i in 0..100 {
            ring.push(sample(at(76) + chrono::TimeDelta::milliseconds(i)));
        }
        assert_eq!(ring.samples().len(), 5);
        assert_eq!(
            ring.samples().last().map(|s| s.at),
            Some(at(76) + chrono::TimeDelta::milliseconds(99))
        );
    }

    #[test]
    fn many_samples_are_thinned_keeping_the_newest() {
        let samples: Vec<Sample> = (0..1000).map(|i| sample(at(i))).collect();
        let shown = thinned(samples);
        assert!(shown.len() <= MAX_POINTS && shown.len() > MAX_POINTS / 2);
        assert_eq!(shown.last().map(|s| s.at), Some(at(999)));
        let few: Vec<Sample> = (0..3).map(|i| sample(at(i))).collect();
        assert_eq!(thinned(few.clone()), few);
    }

    #[test]
    fn the_charts_have_their_units_and_an_empty_ring_no_data_yet() {
        let charts = charts(&[]);
        assert_eq!(charts.len(), 4);
        for c in &charts {
            assert!(chart::render(c).into_string().contains("no data yet"));
        }
        let html: String = super::charts(&[sample(at(0)), sample(at(15))])
            .iter()
            .map(|c| chart::render(c).into_string())
            .collect();
        assert!(html.contains("msg/min") && html.contains("chart-queue-depth"));
        assert!(html.contains("no data yet"), "saga time has no value yet");
    }
}
