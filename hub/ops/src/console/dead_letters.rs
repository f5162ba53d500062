//! The dead-letter pages: the letters grouped by cause with Replay and Discard per group and per
//! letter, and one letter's detail (masked). Every action is a call of [`crate::dlq`] with
//! the logged-in operator, which writes the audit row.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Section};
use super::signed_in::{Flash, SignedIn};
use super::{Console, internal, reason, see_other};
use crate::dlq::{
    self, Disclosure, DlqError, Filter, Group, LetterStatus, ReplayOptions, Selection,
    StatusFilter, Summary,
};

/// Letters read for one page at most (newest first); the CLI reaches the rest.
const PAGE_LIMIT: i64 = 500;

/// The page's query: which letters.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    status: Option<String>,
}

fn status_filter(s: Option<&str>) -> StatusFilter {
    match s {
        Some("replayed") => StatusFilter::Replayed,
        Some("discarded") => StatusFilter::Discarded,
        Some("all") => StatusFilter::All,
        _ => StatusFilter::New,
    }
}

fn status_name(s: StatusFilter) -> &'static str {
    s.as_str()
}

/// `GET /dead-letters`: the letters grouped by cause.
pub(super) async fn index(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
    Query(query): Query<ListQuery>,
) -> Response {
    let status = status_filter(query.status.as_deref());
    let filter = Filter {
        status,
        limit: Some(PAGE_LIMIT),
        ..Filter::default()
    };
    let pool = &console.hub.pool;
    let (rows, total) = match tokio::try_join!(dlq::list(pool, &filter), dlq::count(pool, &filter))
    {
        Ok(found) => found,
        Err(e) => return internal("Reading the dead letters", &e),
    };
    let groups = dlq::group(&rows);
    let flash = console.sessions.take_flash(&signed.id);
    let now = Utc::now();
    let content = html! {
        p {
            "Show: "
            @for s in [StatusFilter::New, StatusFilter::Replayed, StatusFilter::Discarded, StatusFilter::All] {
                @if s == status {
                    strong { (status_name(s)) }
                } @else {
                    a href={ "/dead-letters?status=" (status_name(s)) } { (status_name(s)) }
                }
                " "
            }
        }
        @if rows.is_empty() {
            p #no-letters { "No " (status_name(status)) " dead letters." }
        } @else {
            p.muted {
                (total) " letter" (if total == 1 { "" } else { "s" }) " in "
                (groups.len()) " cause" (if groups.len() == 1 { "" } else { "s" })
                @if total > rows.len() as i64 {
                    "; the newest " (rows.len()) " are shown (the CLI, `hub dlq list`, shows all)"
                }
                ". Replays go out at " (dlq::DEFAULT_RATE) " letters a second, with their original message ids."
            }
            @for g in &groups {
                (group_section(g, &rows, status, &signed, now))
            }
        }
    };
    layout::page(
        "Dead letters",
        Section::DeadLetters,
        &signed,
        flash,
        content,
    )
    .into_response()
}

fn group_section(
    g: &Group,
    rows: &[Summary],
    status: StatusFilter,
    signed: &SignedIn,
    now: chrono::DateTime<Utc>,
) -> Markup {
    let letters: Vec<&Summary> = g
        .ids
        .iter()
        .filter_map(|id| rows.iter().find(|r| r.id == *id))
        .collect();
    html! {
        section.group id={ "group-" (g.key) } data-group=(g.key)
            data-queue=(g.queue) data-message-type=[g.message_type.as_deref()] {
            h2 {
                code { (g.message_type.as_deref().unwrap_or("(no type)")) }
                " on " code { (g.queue) } " · " span.tag { (g.error_kind) }
                " · " (g.count) " letter" (if g.count == 1 { "" } else { "s" })
            }
            p { "Cause: " code.cause { (g.cause) } }
            p.muted {
                "Oldest failure " (layout::time_ago(g.oldest, now))
                ", newest " (layout::time_ago(g.newest, now)) "."
            }
            @if status == StatusFilter::New {
                div.actions {
                    form.inline method="post" action={ "/dead-letters/groups/" (g.key) "/replay" } {
                        (layout::csrf(signed))
                        input type="text" name="reason" placeholder="reason (optional)";
                        button.primary.replay-group type="submit" {
                            "Replay all " (g.count)
                        }
                    }
                    form.inline method="post" action={ "/dead-letters/groups/" (g.key) "/discard" } {
                        (layout::csrf(signed))
                        input type="text" name="reason" placeholder="reason (required)" required;
                        button.danger.discard-group type="submit" { "Discard all " (g.count) }
                    }
                }
            }
            table.letters {
                thead { tr {
                    th.num { "#" } th { "Message" } th { "Saga" } th.num { "Attempts" }
                    th { "Failed" } th { "Error" } th { "Notes" } th { "Actions" }
                } }
                tbody {
                    @for l in letters {
                        tr data-letter=(l.id) {
                            td.num { a href={ "/dead-letters/" (l.id) } { (l.id) } }
                            td { code { (l.message_type.as_deref().unwrap_or("—")) } }
                            td { (layout::saga_link(l.correlation_id.as_deref())) }
                            td.num { (l.attempts) }
                            td { (layout::time_ago(l.failed_at, now)) }
                            td { (l.error) }
                            td {
                                span.tag { (l.status) }
                                @for f in l.flags() { span.tag { (f) } }
                            }
                            td { (letter_actions(l.id, l.status, signed)) }
                        }
                    }
                }
            }
        }
    }
}

fn letter_actions(id: i64, status: LetterStatus, signed: &SignedIn) -> Markup {
    html! {
        @if status != LetterStatus::Discarded {
            form.inline method="post" action={ "/dead-letters/" (id) "/replay" } {
                (layout::csrf(signed))
                input type="text" name="reason" placeholder="reason (optional)" size="14";
                button.replay type="submit" { "Replay" }
            }
            form.inline method="post" action={ "/dead-letters/" (id) "/discard" } {
                (layout::csrf(signed))
                input type="text" name="reason" placeholder="reason (required)" size="14" required;
                button.danger.discard type="submit" { "Discard" }
            }
        } @else {
            span.muted { "discarded" }
        }
    }
}

/// `GET /dead-letters/{id}`: one letter, masked.
pub(super) async fn letter(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
    Path(id): Path<i64>,
) -> Response {
    let view = match dlq::show(
        &console.hub.pool,
        id,
        Disclosure::Masked,
        &console.hub.broker_user,
    )
    .await
    {
        Ok(v) => v,
        Err(DlqError::NothingMatched(_)) => {
            return layout::plain_page(
                axum::http::StatusCode::NOT_FOUND,
                "No such dead letter",
                &format!("There is no dead letter #{id}."),
            );
        }
        Err(e) => return internal("Reading the dead letter", &e),
    };
    let flash = console.sessions.take_flash(&signed.id);
    let now = Utc::now();
    let content = html! {
        p { a href="/dead-letters" { "← All dead letters" } }
        dl.facts {
            dt { "Status" } dd #status { span.tag { (view.letter.status) } @for f in &view.flags { span.tag { (f) } } }
            dt { "Message type" } dd { code { (view.letter.message_type.as_deref().unwrap_or("—")) } }
            dt { "Message id" } dd { code { (view.letter.message_id.map(|m| m.to_string()).unwrap_or_else(|| "—".into())) } }
            dt { "Died on queue" } dd { code { (view.letter.queue) } }
            dt { "Sent to" } dd { "exchange " code { (view.letter.original_exchange) } ", routing key " code { (view.letter.original_routing_key) } }
            dt { "Error" } dd { span.tag { (view.letter.error_kind) } " " (view.letter.error) }
            dt { "Attempts" } dd { (view.letter.attempts) }
            dt { "First failure" } dd { (layout::maybe_time(view.letter.first_failure_at)) }
            dt { "Last failure" } dd { (layout::maybe_time(view.letter.last_failure_at)) }
            dt { "Kept" } dd { (layout::time_ago(view.letter.received_at, now)) }
            dt { "Saga" } dd { (layout::saga_link(view.letter.correlation_id.as_deref())) }
            dt { "Replays" } dd {
                (view.letter.replay_count)
                @if let Some(at) = view.letter.replayed_at { ", last " (layout::time(at)) }
                @if let Some(from) = view.letter.replayed_from {
                    " · this failure came from replaying " a href={ "/dead-letters/" (from) } { "#" (from) }
                }
            }
            @if let Some(at) = view.letter.discarded_at {
                dt { "Discarded" } dd { (layout::time(at)) " — " (view.letter.discard_reason.as_deref().unwrap_or("")) }
            }
            dt { "Replayable" } dd {
                @if view.replayable { span.up { "yes" } }
                @else { span.down { "no" } " — " (view.not_replayable.as_deref().unwrap_or("")) }
            }
        }
        @if view.letter.status != LetterStatus::Discarded {
            div.actions {
                @if view.replayable {
                    form.inline method="post" action={ "/dead-letters/" (view.letter.id) "/replay" } {
                        (layout::csrf(&signed))
                        input type="text" name="reason" placeholder="reason (optional)";
                        button.primary.replay type="submit" { "Replay" }
                    }
                }
                form.inline method="post" action={ "/dead-letters/" (view.letter.id) "/discard" } {
                    (layout::csrf(&signed))
                    input type="text" name="reason" placeholder="reason (required)" required;
                    button.danger.discard type="submit" { "Discard" }
                }
            }
        }
        h2 { "Body" }
        @if view.redacted {
            p.warn { "The body was redacted when the message died: it held personal data and failed validation." }
        }
        @if let Some(body) = &view.body_json {
            (layout::json(body))
        } @else if let Some(text) = &view.body_text {
            pre { (text) }
        } @else {
            p.muted { (view.body_bytes) " bytes that are not text." }
        }
        h2 { "Properties and headers" }
        (layout::json(&view.letter.properties))
        p.muted { "Personal data is masked. The console does not unmask it." }
    };
    layout::page(
        &format!("Dead letter #{}", view.letter.id),
        Section::DeadLetters,
        &signed,
        flash,
        content,
    )
    .into_response()
}

/// A Replay or Discard form.
#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    reason: String,
}

/// `POST /dead-letters/{id}/replay`.
pub(super) async fn replay_letter(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> Response {
    let flash = replay(&console, &signed, Selection::Ids(vec![id]), &form.reason).await;
    console.sessions.flash(&signed.id, flash);
    see_other(&format!("/dead-letters/{id}"))
}

/// `POST /dead-letters/groups/{key}/replay`: the group's `new` letters.
pub(super) async fn replay_group(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
    Path(key): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let selection = Selection::Group {
        key,
        filter: Filter::default(),
    };
    let flash = replay(&console, &signed, selection, &form.reason).await;
    console.sessions.flash(&signed.id, flash);
    see_other("/dead-letters")
}

/// `POST /dead-letters/{id}/discard`.
pub(super) async fn discard_letter(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> Response {
    let flash = discard(&console, &signed, Selection::Ids(vec![id]), &form.reason).await;
    console.sessions.flash(&signed.id, flash);
    see_other(&format!("/dead-letters/{id}"))
}

/// `POST /dead-letters/groups/{key}/discard`: the group's `new` letters.
pub(super) async fn discard_group(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
    Path(key): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let selection = Selection::Group {
        key,
        filter: Filter::default(),
    };
    let flash = discard(&console, &signed, selection, &form.reason).await;
    console.sessions.flash(&signed.id, flash);
    see_other("/dead-letters")
}

async fn replay(console: &Console, signed: &SignedIn, selection: Selection, why: &str) -> Flash {
    let options = ReplayOptions {
        rate: dlq::DEFAULT_RATE,
        operator: signed.operator.clone(),
        reason: reason(why),
        include_replayed: false,
    };
    let report = dlq::replay(
        &console.hub.pool,
        &console.hub.publisher,
        &console.hub.broker_user,
        &selection,
        &options,
        &mut |_, _| {},
    )
    .await;
    match report {
        Ok(r) => {
            let mut text = format!(
                "Replayed {} of {} ({}): {}.",
                r.replayed.len(),
                r.replayed.len() + r.skipped.len() + r.failed.len(),
                r.selection,
                ids(&r.replayed)
            );
            for s in r.skipped.iter().chain(&r.failed) {
                text.push_str(&format!(" #{} not replayed: {}.", s.id, s.reason));
            }
            text.push_str(&format!(" Audit #{}.", r.audit_id));
            if r.replayed.is_empty() {
                Flash::error(text)
            } else {
                Flash::ok(text)
            }
        }
        Err(e) => refused("Nothing was replayed", &e),
    }
}

async fn discard(console: &Console, signed: &SignedIn, selection: Selection, why: &str) -> Flash {
    let Some(why) = reason(why) else {
        return Flash::error("Nothing was discarded: say why the letters are discarded.");
    };
    match dlq::discard(&console.hub.pool, &selection, &why, &signed.operator).await {
        Ok(r) => {
            let mut text = format!(
                "Discarded {} ({}): {}.",
                r.discarded.len(),
                r.selection,
                ids(&r.discarded)
            );
            for s in &r.skipped {
                text.push_str(&format!(" #{} left alone: {}.", s.id, s.reason));
            }
            text.push_str(&format!(" Audit #{}.", r.audit_id));
            Flash::ok(text)
        }
        Err(e) => refused("Nothing was discarded", &e),
    }
}

fn refused(what: &str, e: &DlqError) -> Flash {
    if let DlqError::Database(e) = e {
        tracing::warn!(error = %e, "console: a dead-letter action failed");
    }
    Flash::error(format!("{what}: {e}."))
}

fn ids(ids: &[i64]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(|id| format!("#{id}"))
        .collect::<Vec<_>>()
        .join(", ")
}
