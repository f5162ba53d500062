//! W3C trace context (`traceparent`, <https://www.w3.org/TR/trace-context/>), so that one trace
//! follows a request from the portal through every saga step, adapter call and callback.
//!
//! The hub is one hop per message: handling a message (or an HTTP callback) is a span, a child
//! of the `traceparent` it arrived with, or the root of a new trace when it arrived with none
//! (or a malformed one). Everything that handling sends carries the same trace id with the
//! handling's own span id as parent, so each hop adds one span and the trace id never changes.
//!
//! The parsing, formatting and child generation live here, and [`open`], which gives a
//! `tracing` span its place in the trace: the consumer runner, the saga engine, the HTTP
//! callbacks and the adapter workers use them. When the spans are exported
//! ([`crate::otlp`]), the OpenTelemetry span is the source of the ids, so the exported span, the
//! log lines and the `traceparent` headers name the same span; otherwise the ids are made here.

use std::fmt;

use contracts::{Failure, FailureKind};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The version of the header this module writes.
const VERSION: &str = "00";

/// The `sampled` flag: the only flag of version 00; the others are reset when propagating.
const SAMPLED: u8 = 0x01;

/// One span's trace context: the trace it belongs to, its own span id and the trace flags.
/// Formatted, it is the `traceparent` that whatever this span causes carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl TraceContext {
    /// Parses a `traceparent` header as the spec's parsing rules say: lowercase hex fields of
    /// the right length, version `ff` and all-zero ids refused, exactly 55 characters for
    /// version 00, and a later version read by its first four fields. `None` when invalid.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim_matches(|c| c == ' ' || c == '\t');
        if header.len() < 55 || !header.is_ascii() {
            return None;
        }
        let (version, rest) = header.split_at(2);
        if !is_lower_hex(version) || version == "ff" {
            return None;
        }
        if version == VERSION && header.len() != 55 {
            return None;
        }
        // A later version may append fields, each after a dash.
        if header.len() > 55 && header.as_bytes()[55] != b'-' {
            return None;
        }
        let fields = &rest[..53];
        let mut parts = fields.split('-');
        let (Some(""), Some(trace), Some(span), Some(flags), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        if ![trace, span, flags].iter().all(|f| is_lower_hex(f)) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut flag = [0u8; 1];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        hex::decode_to_slice(span, &mut span_id).ok()?;
        hex::decode_to_slice(flags, &mut flag).ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags: flag[0],
        })
    }

    /// The root span of a new trace: a random trace id and span id, sampled (the hub keeps
    /// every trace; a collector may sample further).
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero_random(),
            span_id: nonzero_random(),
            flags: SAMPLED,
        }
    }

    /// A new span in the same trace whose parent is this one: same trace id, a new span id,
    /// the `sampled` flag kept and the flags version 00 does not define reset.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: nonzero_random(),
            flags: self.flags & SAMPLED,
        }
    }

    /// The span of handling something that arrived with `traceparent`: a child of it when it is
    /// valid, else the root of a new trace.
    pub fn continue_or_start(traceparent: Option<&str>) -> Self {
        traceparent
            .and_then(Self::parse)
            .map_or_else(Self::new_root, |parent| parent.child())
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// This span's id, 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex::encode(self.span_id)
    }

    /// Whether the trace is sampled.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent` header of what this span causes: `00-<trace id>-<span id>-<flags>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION}-{}-{}-{:02x}",
            self.trace_id(),
            self.span_id(),
            self.flags
        )
    }
}

impl TraceContext {
    /// This context as OpenTelemetry's, arrived from elsewhere (a header).
    fn remote_span_context(&self) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            TraceFlags::new(self.flags & SAMPLED),
            true,
            TraceState::default(),
        )
    }

    /// OpenTelemetry's span context as ours, when it is valid.
    fn of_span_context(context: &SpanContext) -> Option<Self> {
        context.is_valid().then(|| Self {
            trace_id: context.trace_id().to_bytes(),
            span_id: context.span_id().to_bytes(),
            flags: context.trace_flags().to_u8() & SAMPLED,
        })
    }
}

/// Gives `span` its place in the trace: a child of `parent` (the `traceparent` something
/// arrived with, or the span that caused this one), or the root of a new trace when there is
/// none. Records its `trace_id` and `span_id` fields (declared empty by the caller) and returns
/// its context, whose [`Display`](fmt::Display) is the `traceparent` of what it causes.
///
/// When the span is exported, the ids are the exported span's; otherwise (no export, or a span
/// filtered out) they are made here, [`TraceContext::child`] of the parent or a new root.
pub fn open(span: &tracing::Span, parent: Option<TraceContext>) -> TraceContext {
    let otel_parent = parent.map_or_else(opentelemetry::Context::new, |p| {
        opentelemetry::Context::new().with_remote_span_context(p.remote_span_context())
    });
    // Fails only when the span is not exported: its ids are then made below.
    let _ = span.set_parent(otel_parent);
    let own = exported_context(span)
        .unwrap_or_else(|| parent.map_or_else(TraceContext::new_root, |p| p.child()));
    record(span, &own);
    own
}

/// Gives `span` its place as a child of the span it was created in (the current one), when it
/// is exported: records its ids and returns its context. `None` when it is not exported, and
/// then the span should not be entered, so that log lines keep the ids of the span around it.
pub fn open_in_current(span: &tracing::Span) -> Option<TraceContext> {
    let own = exported_context(span)?;
    record(span, &own);
    Some(own)
}

/// The context of `span`'s OpenTelemetry span, if it has one.
fn exported_context(span: &tracing::Span) -> Option<TraceContext> {
    TraceContext::of_span_context(span.context().span().span_context())
}

fn record(span: &tracing::Span, trace: &TraceContext) {
    span.record("trace_id", trace.trace_id());
    span.record("span_id", trace.span_id());
}

/// Runs `call`, an adapter worker's call of `system`, as a span `external_call` (a child of the
/// message's handling) when spans are exported, with `outcome` recorded: `ok` or the failure's
/// kind. Without export it runs as it is, and its log lines keep the handling's span.
pub async fn external_call<T>(
    system: &'static str,
    operation: &'static str,
    call: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let span = tracing::info_span!(
        "external_call",
        system,
        operation,
        outcome = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    if open_in_current(&span).is_none() {
        return call.await;
    }
    let result = call.instrument(span.clone()).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(f) => match f.kind {
            FailureKind::Transient => "transient",
            FailureKind::Permanent => "permanent",
            FailureKind::InvalidInput => "invalid_input",
        },
    };
    span.record("outcome", outcome);
    result
}

/// The trace id of a `traceparent`, when it is valid.
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    TraceContext::parse(traceparent).map(|t| t.trace_id())
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Random bytes, never all zero (the spec's invalid id).
fn nonzero_random<const N: usize>() -> [u8; N] {
    loop {
        let bytes: [u8; N] = rand::random();
        if bytes != [0; N] {
            return bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the spec's `traceparent` section.
    const SPEC_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_examples_parse_and_format_back() {
        let t = TraceContext::parse(SPEC_EXAMPLE).expect("the spec's example");
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id(), "00f067aa0ba902b7");
        assert!(t.sampled());
        assert_eq!(t.to_string(), SPEC_EXAMPLE);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let t = TraceContext::parse(unsampled).expect("not sampled");
        assert!(!t.sampled());
        assert_eq!(t.to_string(), unsampled);
        let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(
            TraceContext::parse(other).map(|t| t.to_string()).as_deref(),
            Some(other)
        );
    }

    #[test]
    fn what_the_spec_calls_invalid_is_refused() {
        for bad in [
            "",
            // All-zero trace id, all-zero parent id.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Version ff is forbidden.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // Uppercase hex.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            // Version 00 is exactly 55 characters.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // Wrong lengths and separators.
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            // Not hex.
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let future =
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like";
        let t = TraceContext::parse(future).expect("a future version");
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        // What the hub propagates is version 00.
        assert_eq!(t.to_string(), SPEC_EXAMPLE);
        let glued = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x";
        assert_eq!(TraceContext::parse(glued), None);
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_a_span_of_its_own() {
        let parent = TraceContext::parse(SPEC_EXAMPLE).expect("valid");
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert!(child.sampled());
        let grandchild = child.child();
        assert_eq!(grandchild.trace_id(), parent.trace_id());
        assert_ne!(grandchild.span_id(), child.span_id());
        // Flags version 00 does not define are not propagated.
        let odd = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff")
            .expect("any flags parse");
        assert!(odd.child().to_string().ends_with("-01"));
    }

    /// `open` under a subscriber with the OpenTelemetry layer (no exporter: the SDK still
    /// makes the span contexts) and under none.
    fn opened(
        with_layer: bool,
        parent: Option<TraceContext>,
    ) -> (TraceContext, Option<TraceContext>) {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer =
            with_layer.then(|| tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "message",
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty
            );
            let own = open(&span, parent);
            (own, exported_context(&span))
        })
    }

    #[test]
    fn an_exported_span_has_the_ids_the_headers_carry() {
        let parent = TraceContext::parse(SPEC_EXAMPLE).expect("valid");
        let (own, exported) = opened(true, Some(parent));
        assert_eq!(
            exported,
            Some(own),
            "the OpenTelemetry span is the source of the ids"
        );
        assert_eq!(own.trace_id(), parent.trace_id());
        assert_ne!(own.span_id(), parent.span_id());
        assert!(own.sampled());
        // An unsampled parent stays unsampled.
        let unsampled =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .expect("valid");
        let (own, _) = opened(true, Some(unsampled));
        assert!(!own.sampled());
        assert_eq!(own.trace_id(), unsampled.trace_id());
        // No parent: the root of a new trace, even inside another span.
        let (a, exported) = opened(true, None);
        assert_eq!(exported, Some(a));
        let (b, _) = opened(true, None);
        assert_ne!(a.trace_id(), b.trace_id());
    }

    #[test]
    fn without_export_the_ids_are_made_here() {
        let parent = TraceContext::parse(SPEC_EXAMPLE).expect("valid");
        let (own, exported) = opened(false, Some(parent));
        assert_eq!(exported, None);
        assert_eq!(own.trace_id(), parent.trace_id());
        assert_ne!(own.span_id(), parent.span_id());
        let (root, _) = opened(false, None);
        assert_ne!(root.trace_id(), parent.trace_id());
    }

    #[test]
    fn without_a_valid_parent_a_new_trace_starts() {
        let a = TraceContext::continue_or_start(None);
        let b = TraceContext::continue_or_start(Some("garbage"));
        assert_ne!(a.trace_id(), b.trace_id());
        assert!(a.sampled());
        let formatted = a.to_string();
        assert_eq!(
            TraceContext::parse(&formatted),
            Some(a),
            "a new trace formats to a valid header"
        );
        let continued = TraceContext::continue_or_start(Some(SPEC_EXAMPLE));
        assert_eq!(continued.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(continued.span_id(), "00f067aa0ba902b7");
        assert_eq!(
            trace_id_of(SPEC_EXAMPLE).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }
}
