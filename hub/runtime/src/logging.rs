//! Log lines on stderr: one JSON object per line for machines (the default when stderr is not a
//! terminal: a container, a service manager), the human format on a terminal.
//! `HUB_LOG_FORMAT=json|text` forces one; `RUST_LOG` sets the level (`info` by default).
//!
//! A JSON line has `timestamp`, `level`, `target`, the event's fields flattened beside
//! `message`, and `span` with the fields of the span it was logged in: a message's handling
//! and an HTTP callback log inside a span that carries `trace_id` (see [`crate::trace`]).
//! Personal data is masked where it is logged (phone numbers, identification numbers); nothing
//! here adds any.

use std::io::IsTerminal;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::otlp::{OtlpSettings, TraceExport};

/// The environment variable that forces a format.
pub const FORMAT_VAR: &str = "HUB_LOG_FORMAT";

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// The human format.
    Text,
}

impl LogFormat {
    /// The format `HUB_LOG_FORMAT` asks for, else JSON unless stderr is a terminal.
    pub fn from_env() -> Result<Self, String> {
        Self::choose(
            std::env::var(FORMAT_VAR).ok().as_deref(),
            std::io::stderr().is_terminal(),
        )
    }

    /// The format for a `HUB_LOG_FORMAT` value (unset or empty: by the terminal).
    pub fn choose(forced: Option<&str>, terminal: bool) -> Result<Self, String> {
        match forced.map(str::trim) {
            None | Some("") => Ok(if terminal {
                LogFormat::Text
            } else {
                LogFormat::Json
            }),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(v) => Err(format!(
                "{FORMAT_VAR}={v:?} is not a log format: write json or text (or leave it unset: \
                 JSON unless stderr is a terminal)"
            )),
        }
    }
}

/// The level filter from `RUST_LOG`, `info` when unset or unreadable.
fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the process's logger on stderr and, when `traces` is given, the export of its spans
/// over OTLP ([`crate::otlp`]). The export returned is to be shut down when the hub has stopped
/// ([`TraceExport::shutdown`]).
pub fn init(
    format: LogFormat,
    traces: Option<&OtlpSettings>,
) -> Result<Option<TraceExport>, String> {
    let export = traces.map(TraceExport::start).transpose()?;
    subscriber(format, filter(), std::io::stderr, export.as_ref())
        .try_init()
        .map_err(|e| format!("the logger cannot be installed: {e}"))?;
    Ok(export)
}

/// The process's subscriber: log lines in `format` to `writer`, at the levels `filter` lets
/// through, and the spans `export` takes. The logs' level does not limit the export, nor the
/// other way round: each layer has a filter of its own.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    export: Option<&TraceExport>,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let logs = match format {
        LogFormat::Json => json_layer(writer).boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    };
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> =
        vec![logs.with_filter(filter).boxed()];
    if let Some(export) = export {
        layers.push(export.layer().boxed());
    }
    tracing_subscriber::registry().with(layers)
}

/// The JSON log layer writing to `writer` (filtered by whoever adds it).
fn json_layer<S, W>(writer: W) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(writer)
}

/// The JSON logger writing to `writer`.
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    subscriber(LogFormat::Json, filter, writer, None)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn the_format_follows_the_variable_then_the_terminal() {
        assert_eq!(LogFormat::choose(None, true), Ok(LogFormat::Text));
        assert_eq!(LogFormat::choose(None, false), Ok(LogFormat::Json));
        assert_eq!(LogFormat::choose(Some(""), false), Ok(LogFormat::Json));
        assert_eq!(LogFormat::choose(Some("json"), true), Ok(LogFormat::Json));
        assert_eq!(LogFormat::choose(Some("TEXT"), false), Ok(LogFormat::Text));
        let e = LogFormat::choose(Some("yaml"), false).expect_err("not a format");
        assert!(e.contains("json or text"), "{e}");
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_fields_and_the_trace_of_their_span() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = json_subscriber(EnvFilter::new("info"), move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "message",
                queue = "hub.issuance",
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            let _in = span.enter();
            tracing::info!(attempts = 2, "handled");
            tracing::debug!("filtered out");
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("UTF-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "handled");
        assert_eq!(line["attempts"], 2);
        assert_eq!(line["span"]["name"], "message");
        assert_eq!(line["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["span"]["queue"], "hub.issuance");
        assert!(line["timestamp"].is_string());
    }
}
