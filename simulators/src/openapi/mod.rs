//! The simulators' OpenAPI 3.1 documents, generated from the code: each simulator's operations
//! are `utoipa` path annotations and its bodies `ToSchema` types, in one module per simulator
//! beside this one; what every simulator shares (`/sim/faults`, `/sim/health`, `/openapi.json`,
//! the error body, the `Idempotency-Key` header) is in [`common`]. Each simulator serves its own
//! document at `GET /openapi.json` ([`serve`]); [`documents`] gives them all to `hub contracts
//! export`.
//!
//! The annotations sit on functions of their own rather than on the handlers, so that the
//! handlers stay as they are; the tests keep the two together: every route a simulator's router
//! serves, with every method it takes, must be in its document and the other way round, and the
//! answers of a running simulator must match the documented schemas.
//!
//! The documents are deterministic (maps in key order) and name no host: `servers` is one URL
//! template whose scheme, host and port are variables, so a checked-in copy never drifts.

mod backoffice;
mod common;
mod email;
mod erip;
mod gossuok;
mod mvd;
mod operators;

use std::sync::OnceLock;

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use utoipa::OpenApi;

use crate::SimKind;
use crate::server::SimContext;

/// Where every simulator serves its own document.
pub const PATH: &str = "/openapi.json";

/// The file stems of the documents, in [`documents`] order: one per API (the three operators
/// share one).
pub const STEMS: [&str; 6] = ["mvd", "operators", "erip", "backoffice", "email", "gossuok"];

/// Every simulator's OpenAPI 3.1 document, by file stem (`mvd`, `operators` for A1, MTS and
/// life:), `erip`, `backoffice`, `email`, `gossuok`), in a fixed order.
pub fn documents() -> Vec<(&'static str, Value)> {
    STEMS.into_iter().map(|stem| (stem, build(stem))).collect()
}

/// The file stem of the document that describes `kind`'s API.
pub fn stem(kind: SimKind) -> &'static str {
    match kind {
        SimKind::Mvd => "mvd",
        SimKind::A1 | SimKind::Mts | SimKind::Life => "operators",
        SimKind::Erip => "erip",
        SimKind::BackOffice => "backoffice",
        SimKind::Email => "email",
        SimKind::Gossuok => "gossuok",
    }
}

/// The OpenAPI document of `kind`'s API (the same for the three operators).
pub fn document(kind: SimKind) -> Value {
    static CACHE: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    let all = CACHE.get_or_init(documents);
    let wanted = stem(kind);
    all.iter()
        .find(|(stem, _)| *stem == wanted)
        .map(|(_, doc)| doc.clone())
        .unwrap_or_default()
}

/// `GET /openapi.json`: the simulator's own document.
pub(crate) async fn serve(State(ctx): State<SimContext>) -> Json<Value> {
    Json(document(ctx.kind))
}

/// Builds the document of one stem: its own operations, the shared ones, the security schemes,
/// the info and the generic server, then the webhooks (the calls the simulator makes), and the
/// contract bodies' published schemas (`contracts::schema::openapi`).
///
/// # Panics
///
/// When a body's stand-in names no published message type: a mistake in this code, which the
/// tests that build every document find.
fn build(stem: &str) -> Value {
    let (mut api, webhooks) = match stem {
        "mvd" => (mvd::Doc::openapi(), None),
        "operators" => (
            operators::Doc::openapi(),
            Some(operators::Webhooks::openapi()),
        ),
        "erip" => (erip::Doc::openapi(), Some(erip::Webhooks::openapi())),
        "backoffice" => (
            backoffice::Doc::openapi(),
            Some(backoffice::Webhooks::openapi()),
        ),
        "email" => (email::Doc::openapi(), None),
        _ => (gossuok::Doc::openapi(), None),
    };
    api.merge(common::Doc::openapi());
    let mut doc = common::finish(api, stem);
    if let Some(webhooks) = webhooks {
        common::add_webhooks(&mut doc, webhooks);
    }
    if stem == "backoffice" {
        backoffice::link_callbacks(&mut doc);
    }
    // The contract bodies' stand-ins become the contracts' published schemas.
    if let Err(e) = contracts::schema::openapi::fill_components(&mut doc) {
        panic!("the {stem} document: {e}");
    }
    doc
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;
