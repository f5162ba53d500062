//! The health page: readiness as `GET /readyz` sees it, every queue of the namespace with its
//! depth and consumers (a passive `queue.declare` answers both without touching the queue), the
//! dead letters waiting, the outbox lag, and whether each external system answers.
//!
//! An external system is "up" when it answers at all within the probe timeout: an HTTP status
//! of any kind from its base URL (a 5xx shows as "up, failing"), or an open TCP port for the
//! mail server. That is reachability,
//! not correctness; the adapters' own errors (dead letters, retries) say the rest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use maud::{Markup, html};

use super::auth::SignedIn;
use super::layout::{self, Section};
use super::{Console, HubParts};
use crate::dlq::{self, Filter};
use hub_runtime::config::mask_url;
pub use hub_runtime::health::{ExternalSystem, Target};

/// Where a system is, for the page: no password.
fn shown(target: &Target) -> String {
    match target {
        Target::Http(url) => mask_url(url.as_str()),
        Target::Tcp { host, port } => format!("{host}:{port}"),
    }
}

/// What one probe saw.
#[derive(Debug, Clone)]
struct Probe {
    up: bool,
    /// It answers, with server errors (5xx).
    errors: bool,
    latency: Duration,
    detail: String,
}

async fn probe(client: &reqwest::Client, timeout: Duration, target: &Target) -> Probe {
    let started = Instant::now();
    match target {
        Target::Http(url) => match client.get(url.clone()).send().await {
            Ok(r) => Probe {
                up: true,
                errors: r.status().is_server_error(),
                latency: started.elapsed(),
                detail: format!("HTTP {}", r.status().as_u16()),
            },
            Err(e) => Probe {
                up: false,
                errors: false,
                latency: started.elapsed(),
                detail: if e.is_timeout() {
                    format!("no answer within {timeout:?}")
                } else if e.is_connect() {
                    "cannot connect".into()
                } else {
                    "the call failed".into()
                },
            },
        },
        Target::Tcp { host, port } => {
            match tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect((host.as_str(), *port)),
            )
            .await
            {
                Ok(Ok(_)) => Probe {
                    up: true,
                    errors: false,
                    latency: started.elapsed(),
                    detail: "port open".into(),
                },
                Ok(Err(_)) => Probe {
                    up: false,
                    errors: false,
                    latency: started.elapsed(),
                    detail: "cannot connect".into(),
                },
                Err(_) => Probe {
                    up: false,
                    errors: false,
                    latency: started.elapsed(),
                    detail: format!("no answer within {timeout:?}"),
                },
            }
        }
    }
}

/// One queue of the namespace.
#[derive(Debug, Clone)]
struct QueueRow {
    name: String,
    role: String,
    /// Messages ready and consumers, or why they are not known.
    seen: Result<(u32, u32), String>,
}

/// The queues of the namespace, in the order operators read them: each work queue with its
/// dead-letter queue, then the retry tiers and the unrouted queue.
fn queue_names(hub: &HubParts) -> Vec<(String, String)> {
    let t = &hub.topology;
    let mut out = Vec::new();
    for q in t.queues() {
        out.push((t.work_queue(&q.name), "work".to_owned()));
        out.push((t.dead_queue(&q.name), "dead letters".to_owned()));
    }
    for (i, tier) in t.retry_tiers().iter().enumerate() {
        out.push((t.retry_tier(i), format!("retry after {:?}", tier.delay)));
    }
    out.push((t.unrouted(), "unrouted".to_owned()));
    out
}

async fn queue_depths(console: &Console) -> Vec<QueueRow> {
    let names = queue_names(&console.hub);
    let row = |(name, role): &(String, String), seen| QueueRow {
        name: name.clone(),
        role: role.clone(),
        seen,
    };
    let unknown = |why: &str| names.iter().map(|n| row(n, Err(why.to_owned()))).collect();
    if !console.hub.broker.is_connected() {
        return unknown("the broker is not connected");
    }
    let queues: Vec<String> = names.iter().map(|(name, _)| name.clone()).collect();
    let Some(states) = console
        .hub
        .broker
        .queue_states(&queues, console.probe_timeout, &console.shutdown)
        .await
    else {
        return unknown("no channel could be opened");
    };
    names
        .iter()
        .zip(states)
        .map(|(n, state)| {
            let seen = state
                .map(|s| (s.messages, s.consumers))
                .map_err(|e| e.to_string());
            row(n, seen)
        })
        .collect()
}

/// `GET /health`.
pub(super) async fn page(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
) -> Response {
    let pool = &console.hub.pool;
    let probes = join_all(
        console
            .systems
            .iter()
            .map(|s| probe(&console.probe, console.probe_timeout, &s.target)),
    );
    let waiting = Filter::default();
    let (readiness, queues, dead, outbox, probes) = tokio::join!(
        console.hub.readiness.check(),
        queue_depths(&console),
        dlq::count(pool, &waiting),
        hub_runtime::metrics::outbox_lag(pool),
        probes,
    );
    let flash = console.sessions.take_flash(&signed.id);
    let content = html! {
        h2 { "Readiness" }
        p #readiness {
            @if readiness.is_ready() { span.up { "ready" } } @else { span.down { "not ready" } }
        }
        table {
            thead { tr { th { "Check" } th { "" } th { "Seen" } } }
            tbody {
                @for (name, check) in &readiness.checks {
                    tr { td { (name) } td { (up_down(check.ok)) } td { (check.detail) } }
                }
            }
        }
        h2 { "Dead letters and outbox" }
        dl.facts {
            dt { "Dead letters waiting" }
            dd #dead-letter-count {
                @match &dead {
                    Ok(0) => span.up { "0" },
                    Ok(n) => { a.warn href="/dead-letters" { (n) } " not yet replayed nor discarded" },
                    Err(e) => span.down { "unknown: " (e) },
                }
            }
            dt { "Outbox" }
            dd #outbox {
                @match outbox {
                    Some((0, _)) => span.up { "every message sent" },
                    Some((n, lag)) => {
                        span class=(if lag > 30.0 { "down" } else { "warn" }) {
                            (n) " unsent, the oldest for " (crate::sagas::age_text(chrono::Duration::milliseconds((lag * 1000.0) as i64)))
                        }
                    },
                    None => span.down { "unknown: the database did not answer" },
                }
            }
        }
        h2 { "External systems" }
        (systems_table(&console.systems, &probes))
        h2 { "Queues" }
        (queues_table(&queues))
    };
    layout::page("Health", Section::Health, &signed, flash, content).into_response()
}

fn up_down(ok: bool) -> Markup {
    html! { @if ok { span.up { "ok" } } @else { span.down { "failing" } } }
}

fn systems_table(systems: &[ExternalSystem], probes: &[Probe]) -> Markup {
    html! {
        table #systems {
            thead { tr { th { "System" } th { "Address" } th { "State" } th.num { "Latency" } th { "Seen" } } }
            tbody {
                @for (s, p) in systems.iter().zip(probes) {
                    tr data-system=(s.name) {
                        td { (s.name) }
                        td { code { (shown(&s.target)) } }
                        td {
                            @if !p.up { span.down { "down" } }
                            @else if p.errors { span.warn { "up, failing" } }
                            @else { span.up { "up" } }
                        }
                        td.num { (p.latency.as_millis()) " ms" }
                        td { (p.detail) }
                    }
                }
            }
        }
    }
}

fn queues_table(rows: &[QueueRow]) -> Markup {
    html! {
        table #queues {
            thead { tr { th { "Queue" } th { "Role" } th.num { "Messages" } th.num { "Consumers" } } }
            tbody {
                @for q in rows {
                    tr data-queue=(q.name) {
                        td { code { (q.name) } }
                        td { (q.role) }
                        @match &q.seen {
                            Ok((messages, consumers)) => {
                                td.num.warn[q.role == "dead letters" && *messages > 0] { (messages) }
                                td.num.warn[q.role == "work" && *consumers == 0] { (consumers) }
                            },
                            Err(e) => td.down colspan="2" { (e) },
                        }
                    }
                }
            }
        }
        p.muted {
            "A work queue without consumers is consumed by no process of this hub (an authority's "
            "queue is consumed by the authority). Dead-letter queues are emptied into the table by the keeper."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mail_server_is_shown_without_its_password() {
        let t = Target::Http(
            "https://user:secret@erip.example.by/api/"
                .parse()
                .expect("URL"),
        );
        assert!(!shown(&t).contains("secret"));
        let smtp = Target::Tcp {
            host: "mail.example.by".into(),
            port: 465,
        };
        assert_eq!(shown(&smtp), "mail.example.by:465");
    }
}
