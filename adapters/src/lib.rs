//! Adapters between the hub's contract commands and the external systems' HTTP APIs.
//!
//! Each external system gets a module here (mvd, sms and smpp, erip, gossuok, backoffice, email). What
//! they share lives in [`failure`] (one classification of every failure into what the runtime
//! should do about it, and one policy of quick in-process retries) and in [`client`] (the one
//! way an HTTP client is built, with its timeouts, retries and trace context).

pub mod backoffice;
pub mod client;
pub mod email;
pub mod erip;
pub mod failure;
pub mod gossuok;
pub mod mvd;
mod signature;
pub mod smpp;
pub mod sms;
pub mod tls;
#[cfg(test)]
mod tls_tests;

pub use client::{ClientError, TRACEPARENT_HEADER};
pub use failure::{Failure, FailureKind};
pub use tls::{ClientTls, TlsError, TlsFiles};

/// `base` with `path` appended to its own path, so a base URL with a path prefix
/// (`http://gateway/mvd/`) keeps it. `path` has no leading slash and is already URL-encoded.
pub(crate) fn api_url(base: &url::Url, path: &str) -> url::Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", url.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}
