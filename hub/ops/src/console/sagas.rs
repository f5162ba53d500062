//! The saga pages: a search (by saga id, business key, identification number, application or
//! order number), the sagas waiting longest, and one saga's timeline with Retry step and
//! Cancel. Every action is a call of [`crate::sagas`] with the logged-in operator, which
//! writes the audit row.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{self, Section};
use super::signed_in::{Flash, SignedIn};
use super::{Console, internal, reason, see_other};
use crate::dlq::{Disclosure, mask_text};
use crate::sagas::{self, ListFilter, OperatorRequest, SagaDetail, SagaOpsError, SagaSummary};

/// How long without a step makes a saga worth an operator's look on the index page.
const WAITING: chrono::Duration = chrono::Duration::minutes(5);

/// The sender named on the cancels the console sends.
const APP_ID: &str = "hub console";

/// `GET /sagas`: the search box and the sagas that wait longest.
pub(super) async fn index(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
) -> Response {
    let flash = console.sessions.take_flash(&signed.id);
    search_page(&console, &signed, flash, None).await
}

/// The search form.
#[derive(Debug, Deserialize)]
pub(super) struct SearchForm {
    #[serde(default)]
    q: String,
}

/// `POST /sagas/search`: one match opens the saga; several are listed. A POST, so what was
/// searched for (an identification number) stays out of URLs and the browser's history.
pub(super) async fn search(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
    Form(form): Form<SearchForm>,
) -> Response {
    let q = form.q.trim();
    if q.is_empty() {
        return search_page(
            &console,
            &signed,
            Some(Flash::error("Type what to search for.")),
            None,
        )
        .await;
    }
    match sagas::find(&console.hub.pool, q).await {
        Ok(found) if found.len() == 1 => see_other(&format!("/sagas/{}", found[0].id)),
        Ok(found) => {
            let flash = found
                .is_empty()
                .then(|| Flash::error(format!("No saga matches {}.", mask_text(q))));
            search_page(&console, &signed, flash, Some((mask_text(q), found))).await
        }
        Err(e) => internal("Searching the sagas", &e),
    }
}

async fn search_page(
    console: &Console,
    signed: &SignedIn,
    flash: Option<Flash>,
    results: Option<(String, Vec<SagaSummary>)>,
) -> Response {
    let waiting = ListFilter {
        stuck_longer_than: Some(WAITING),
        limit: 50,
        ..ListFilter::default()
    };
    let recent = ListFilter {
        limit: 20,
        ..ListFilter::default()
    };
    let pool = &console.hub.pool;
    let (waiting, recent) =
        match tokio::try_join!(sagas::list(pool, &waiting), sagas::list(pool, &recent)) {
            Ok(lists) => lists,
            Err(e) => return internal("Listing the sagas", &e),
        };
    let now = Utc::now();
    let content = html! {
        form.inline #saga-search method="post" action="/sagas/search" {
            (layout::csrf(signed))
            input #q type="search" name="q" size="48" required
                placeholder="saga id, business key, identification number, application or order number";
            button.primary type="submit" #search { "Find" }
        }
        @if let Some((q, found)) = &results {
            @if !found.is_empty() {
                h2 { (found.len()) " sagas match " code { (q) } }
                (saga_table(found, now))
            }
        }
        h2 { "Waiting longest (no step for " (sagas::age_text(WAITING)) " or more)" }
        @if waiting.is_empty() {
            p.muted { "None: every saga that has not ended moved within " (sagas::age_text(WAITING)) "." }
        } @else {
            (saga_table(&waiting, now))
        }
        h2 { "Latest steps" }
        (saga_table(&recent, now))
    };
    layout::page("Sagas", Section::Sagas, signed, flash, content).into_response()
}

fn saga_table(rows: &[SagaSummary], now: chrono::DateTime<Utc>) -> Markup {
    html! {
        table.sagas {
            thead { tr {
                th { "Saga" } th { "Type" } th { "Business key" } th { "State" }
                th.num { "Steps" } th { "Started" } th { "Last step" }
            } }
            tbody {
                @for s in rows {
                    tr data-saga=(s.id) {
                        td { a href={ "/sagas/" (s.id) } { code { (s.id) } } }
                        td { (s.saga_type) }
                        td { (s.business_key.as_deref().unwrap_or("—")) }
                        td { (s.state_name) @if s.terminal { " " span.tag { "ended" } } }
                        td.num { (s.version) }
                        td { (layout::time(s.created_at)) }
                        td { (layout::time_ago(s.updated_at, now)) }
                    }
                }
            }
        }
    }
}

/// `GET /sagas/{id}`: the saga, its timeline, timers and dead letters, masked.
pub(super) async fn saga(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return no_such_saga(&id);
    };
    let detail = match sagas::show(&console.hub.pool, id, Disclosure::Masked).await {
        Ok(d) => d,
        Err(SagaOpsError::NotFound(_)) => return no_such_saga(&id.to_string()),
        Err(e) => return internal("Reading the saga", &e),
    };
    let flash = console.sessions.take_flash(&signed.id);
    let title = format!("Saga {}", detail.saga.id);
    layout::page(
        &title,
        Section::Sagas,
        &signed,
        flash,
        saga_content(&detail, &signed),
    )
    .into_response()
}

fn no_such_saga(id: &str) -> Response {
    layout::plain_page(
        StatusCode::NOT_FOUND,
        "No such saga",
        &format!("There is no saga {}.", mask_text(id)),
    )
}

fn saga_content(d: &SagaDetail, signed: &SignedIn) -> Markup {
    let s = &d.saga;
    let now = Utc::now();
    html! {
        p { a href="/sagas" { "← Sagas" } }
        dl.facts {
            dt { "Type" } dd { (s.saga_type) }
            dt { "Business key" } dd { (s.business_key.as_deref().unwrap_or("—")) }
            dt { "State" } dd #state data-terminal=(s.terminal) {
                strong { (s.state_name) }
                @if s.terminal { " " span.tag #ended { "ended" } }
            }
            dt { "Steps" } dd { (s.version) }
            dt { "Started" } dd { (layout::time_ago(s.created_at, now)) }
            dt { "Last step" } dd { (layout::time_ago(s.updated_at, now)) }
        }
        @if !s.terminal {
            div.actions {
                form.inline method="post" action={ "/sagas/" (s.id) "/retry-step" } {
                    (layout::csrf(signed))
                    input type="text" name="reason" placeholder="reason (optional)";
                    button.primary #retry-step type="submit" { "Retry step " (s.version) }
                }
                form.inline method="post" action={ "/sagas/" (s.id) "/cancel" } {
                    (layout::csrf(signed))
                    input type="text" name="reason" placeholder="reason (required)" required;
                    button.danger #cancel type="submit" { "Cancel saga" }
                }
            }
            p.muted {
                "Retry step sends the last step's messages again with their ids (a receiver that had one drops it). "
                "Cancel ends the saga with the compensations its type defines."
            }
        }
        h2 { "Timeline" }
        table #timeline {
            thead { tr {
                th.num { "Step" } th { "At" } th { "Message in" } th { "State" } th { "Messages out" }
            } }
            tbody {
                @for step in &d.timeline {
                    tr data-step=(step.version) {
                        td.num { (step.version) }
                        td { (layout::time(step.at)) }
                        td { code { (step.message_type) } br; span.muted { code { (step.message_id) } } }
                        td {
                            @if let Some(from) = &step.from_state { (from) " → " }
                            strong { (step.to_state) }
                        }
                        td {
                            @if step.outgoing.is_empty() { span.muted { "—" } }
                            @for m in &step.outgoing {
                                div {
                                    code { (m.message_type.as_deref().unwrap_or("—")) }
                                    @if let Some(key) = &m.routing_key { " → " code { (key) } }
                                    " " span class={ "tag " (outgoing_class(m.status)) } { (m.status) }
                                    @if let Some(at) = m.sent_at { " " span.muted { (layout::time(at)) } }
                                    @if m.attempts > 1 { " " span.muted { (m.attempts) " attempts" } }
                                    @if let Some(e) = &m.last_error { " " span.down { (mask_text(e)) } }
                                    @if let Some(dl) = m.dead_letter_id {
                                        " " a href={ "/dead-letters/" (dl) } { "dead letter #" (dl) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Timers" }
        @if d.timers.is_empty() {
            p.muted { "No timer is pending." }
        } @else {
            table #timers {
                thead { tr { th { "Timer" } th { "Due" } th { "Message" } } }
                tbody {
                    @for t in &d.timers {
                        tr {
                            td { (t.name) }
                            td { (layout::time(t.due_at)) }
                            td { code { (t.message_type.as_deref().unwrap_or("—")) } }
                        }
                    }
                }
            }
        }
        h2 { "Dead letters" }
        @if d.dead_letters.is_empty() {
            p.muted #no-dead-letters { "None." }
        } @else {
            table #saga-dead-letters {
                thead { tr {
                    th.num { "#" } th { "Message" } th { "Queue" } th { "Error" } th { "Status" } th { "Kept" }
                } }
                tbody {
                    @for l in &d.dead_letters {
                        tr data-letter=(l.id) {
                            td.num { a href={ "/dead-letters/" (l.id) } { (l.id) } }
                            td { code { (l.message_type.as_deref().unwrap_or("—")) } }
                            td { code { (l.queue) } }
                            td { span.tag { (l.error_kind) } " " (l.error) }
                            td { span.tag { (l.status) } }
                            td { (layout::time(l.received_at)) }
                        }
                    }
                }
            }
        }
        h2 { "State" }
        (layout::json(&d.state))
        p.muted { "Personal data is masked. The console does not unmask it." }
    }
}

fn outgoing_class(status: &str) -> &'static str {
    match status {
        "sent" => "up",
        "pending" => "warn",
        _ => "down",
    }
}

/// A Retry step or Cancel form.
#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    reason: String,
}

/// `POST /sagas/{id}/retry-step`.
pub(super) async fn retry_step(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
    Path(id): Path<Uuid>,
    Form(form): Form<ActionForm>,
) -> Response {
    let request = OperatorRequest {
        operator: signed.operator.clone(),
        reason: reason(&form.reason),
    };
    let flash = match sagas::retry_step(&console.hub.pool, id, &request).await {
        Ok(r) => {
            let messages: Vec<String> = r
                .messages
                .iter()
                .map(|m| {
                    format!(
                        "{} {}",
                        m.message_type.as_deref().unwrap_or("message"),
                        m.action
                    )
                })
                .collect();
            let text = format!(
                "Step {} ({}) sent again: {}. Audit #{}.",
                r.version,
                r.step_message_type,
                messages.join(", "),
                r.audit_id
            );
            if r.messages.iter().any(|m| m.action == "missing") {
                Flash::error(text)
            } else {
                Flash::ok(text)
            }
        }
        Err(e) => refused("The step was not retried", &e),
    };
    console.sessions.flash(&signed.id, flash);
    see_other(&format!("/sagas/{id}"))
}

/// `POST /sagas/{id}/cancel`: the reason is required.
pub(super) async fn cancel(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
    Path(id): Path<Uuid>,
    Form(form): Form<ActionForm>,
) -> Response {
    let flash = match reason(&form.reason) {
        None => Flash::error("The saga was not cancelled: say why."),
        Some(why) => {
            let request = OperatorRequest {
                operator: signed.operator.clone(),
                reason: Some(why),
            };
            match sagas::cancel(&console.hub.pool, &console.hub.sagas, id, &request, APP_ID).await {
                Ok(r) => Flash::ok(format!(
                    "Cancel sent (message {}): the saga ends as {}{}. Audit #{}.",
                    r.message_id,
                    r.preview.to_state,
                    if r.preview.sends.is_empty() {
                        String::new()
                    } else {
                        format!(", sending {}", r.preview.sends.join(", "))
                    },
                    r.audit_id
                )),
                Err(e) => refused("The saga was not cancelled", &e),
            }
        }
    };
    console.sessions.flash(&signed.id, flash);
    see_other(&format!("/sagas/{id}"))
}

fn refused(what: &str, e: &SagaOpsError) -> Flash {
    if let SagaOpsError::Database(e) = e {
        tracing::warn!(error = %e, "console: a saga action failed");
    }
    Flash::error(format!("{what}: {e}."))
}
