//! Adapters between the hub's contract commands and the external systems' HTTP APIs.
//!
//! Each external system gets a module here (mvd, sms, erip, gossuok, backoffice) as the issues
//! that need them land. What they share lives in [`failure`]: one classification of every
//! failure into what the runtime should do about it, and one policy of quick in-process retries.

pub mod backoffice;
pub mod email;
pub mod erip;
pub mod failure;
pub mod gossuok;
pub mod mvd;
mod signature;
pub mod sms;

pub use failure::{Failure, FailureKind};

/// The W3C trace context header the HTTP adapters send, so an external system's logs can join
/// the trace of the message that caused the call.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The `traceparent` a client sends with its calls: checked once to be a valid header value,
/// so a malformed one is left out instead of failing the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Traceparent(Option<reqwest::header::HeaderValue>);

impl Traceparent {
    pub(crate) fn new(value: Option<&str>) -> Self {
        Self(value.and_then(|v| reqwest::header::HeaderValue::from_str(v).ok()))
    }

    /// `request` with the header, when there is one.
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.0 {
            Some(value) => request.header(TRACEPARENT_HEADER, value.clone()),
            None => request,
        }
    }
}

/// `base` with `path` appended to its own path, so a base URL with a path prefix
/// (`http://gateway/mvd/`) keeps it. `path` has no leading slash and is already URL-encoded.
pub(crate) fn api_url(base: &url::Url, path: &str) -> url::Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", url.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}
