//! Trace export over OTLP/HTTP (protobuf), so that a tracing backend (Jaeger, Tempo, an
//! OpenTelemetry Collector) shows one application as one tree of spans with their durations.
//!
//! Off by default; on when the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is)
//! or `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended) is set, unless
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. `OTEL_SERVICE_NAME` names the
//! service (`hub` by default); the SDK's own variables (`OTEL_BSP_*`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_RESOURCE_ATTRIBUTES`)
//! apply as the SDK documents them.
//!
//! What is exported are the hub's spans at level `info` (`message`, `saga_step`,
//! `external_call`, `callback`), with their fields as attributes; log events stay in the logs.
//! The ids of an exported span are the ones the hub writes into its log lines and its
//! `traceparent` headers ([`crate::trace::open`]).
//!
//! The export never slows message handling: a finished span goes into the batch processor's
//! bounded queue (dropped when it is full), and a thread of the SDK's own sends the batches. A
//! collector that cannot be reached costs one warning a minute at most
//! ([`ReportedExporter`]). [`TraceExport::shutdown`] sends what is left when the hub stops,
//! waiting [`SHUTDOWN_TIMEOUT`] at most.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

/// The collector's base URL; the traces go to `<it>/v1/traces`.
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The full URL of the traces (wins over [`ENDPOINT_VAR`]).
pub const TRACES_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// The service name the spans are exported under.
pub const SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";
/// `true` switches every OpenTelemetry signal off.
pub const SDK_DISABLED_VAR: &str = "OTEL_SDK_DISABLED";
/// `none` switches the trace export off.
pub const TRACES_EXPORTER_VAR: &str = "OTEL_TRACES_EXPORTER";
/// The service name when [`SERVICE_NAME_VAR`] is not set.
pub const DEFAULT_SERVICE_NAME: &str = "hub";
/// The longest the hub waits at stop for the last spans to be sent.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one warning about failing exports in this time.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Where and as what the spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The URL the `ExportTraceServiceRequest`s are POSTed to.
    pub traces_endpoint: String,
    /// The `service.name` of the spans.
    pub service_name: String,
}

impl OtlpSettings {
    /// The settings of the process's environment; `None` when no endpoint is set (no export).
    pub fn from_env() -> Result<Option<Self>, String> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings `var` gives (a variable set to an empty value is unset, as the
    /// specification says); `None` when the export is off. An endpoint that is not an
    /// `http://` or `https://` URL is an error naming its variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if set(SDK_DISABLED_VAR).is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || set(TRACES_EXPORTER_VAR).is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        let (variable, traces_endpoint) = match (set(TRACES_ENDPOINT_VAR), set(ENDPOINT_VAR)) {
            (Some(url), _) => (TRACES_ENDPOINT_VAR, url),
            (None, Some(base)) => (
                ENDPOINT_VAR,
                format!("{}/v1/traces", base.trim_end_matches('/')),
            ),
            (None, None) => return Ok(None),
        };
        match url::Url::parse(&traces_endpoint) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => {
                return Err(format!(
                    "{variable}={traces_endpoint:?} is not an http:// or https:// URL of an OTLP \
                     collector (leave it unset to export no traces)"
                ));
            }
        }
        let service_name = set(SERVICE_NAME_VAR).unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        Ok(Some(Self {
            traces_endpoint,
            service_name,
        }))
    }
}

impl OtlpSettings {
    /// What production mode refuses here: spans sent in plain text (`http://`) to another host.
    /// They carry queue, message type and saga names and message and saga ids, never personal
    /// data, but production sends nothing over the network unencrypted. A collector on the
    /// hub's own host (loopback: an agent beside it) may take plain HTTP.
    pub fn production_problem(&self) -> Option<crate::config::Problem> {
        let url = url::Url::parse(&self.traces_endpoint).ok()?;
        let loopback = match url.host()? {
            url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        (url.scheme() == "http" && !loopback).then(|| {
            crate::config::Problem::new(
                format!("{ENDPOINT_VAR} / {TRACES_ENDPOINT_VAR}"),
                format!(
                    "spans go to {} in plain text, to another host",
                    url.origin().ascii_serialization()
                ),
                "give the collector's https:// URL, or run a collector on this host \
                 (http://127.0.0.1:4318) that forwards over TLS; unset it to export no traces",
                false,
            )
        })
    }
}

/// The running export: the SDK's tracer provider and its batch processor.
#[derive(Debug)]
pub struct TraceExport {
    provider: SdkTracerProvider,
}

impl TraceExport {
    /// Builds the exporter and its batch processor (nothing is sent before the first span).
    pub fn start(settings: &OtlpSettings) -> Result<Self, String> {
        // An https:// collector is reached through rustls with the process's provider.
        crate::tls::install_default_provider();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(settings.traces_endpoint.clone())
            .build()
            .map_err(|e| {
                format!(
                    "the OTLP trace exporter to {} cannot be built: {e}",
                    settings.traces_endpoint
                )
            })?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(ReportedExporter::new(
                exporter,
                settings.traces_endpoint.clone(),
            ))
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .build();
        Ok(Self { provider })
    }

    /// The layer that turns the hub's spans into OpenTelemetry spans ([`exported`] says which).
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("hub"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_level(false)
            .with_filter(Exported)
    }

    /// Sends the spans not yet sent and stops the export, waiting [`SHUTDOWN_TIMEOUT`] at most.
    /// Called once the hub has drained; must not run inside an async task (it blocks).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(error = %e, "the last spans may not have been exported");
        }
    }
}

/// The export's filter: [`exported`], decided once per callsite (its interest is `always` or
/// `never`, never `sometimes`), with `info` as its most verbose level. A `filter_fn` (interest
/// `sometimes`) beside the logs' per-layer filter lost spans: most `message` spans never reached
/// this layer, so they were neither exported nor the source of their ids
/// (`cargo test -p e2e --test otlp` failed with it).
struct Exported;

impl<S> Filter<S> for Exported {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        exported(metadata)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if exported(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::INFO)
    }
}

/// Whether a span or event is exported: the hub crates' spans at level `info` or above. Events
/// stay in the logs; library spans and the hub's `debug` spans are not exported.
fn exported(metadata: &Metadata<'_>) -> bool {
    metadata.is_span() && metadata.target().starts_with("hub") && *metadata.level() <= Level::INFO
}

/// The OTLP exporter, reporting its failures in the logs: one warning a minute at most, with
/// how many batches failed since the last one, and a line when the export works again.
#[derive(Debug)]
struct ReportedExporter<E> {
    inner: E,
    endpoint: String,
    failures: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl<E> ReportedExporter<E> {
    fn new(inner: E, endpoint: String) -> Self {
        Self {
            inner,
            endpoint,
            failures: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        }
    }

    /// Counts a failed export, and warns if none was warned of in [`WARN_EVERY`]; true when it
    /// warned.
    fn failed(&self, error: &dyn std::fmt::Display) -> bool {
        let failed = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                endpoint = %self.endpoint,
                failed_batches = failed,
                %error,
                "traces cannot be exported; their spans are dropped (message handling goes on)"
            );
            return true;
        }
        false
    }

    /// Notes a successful export: says so once after failures.
    fn succeeded(&self) {
        let failed = self.failures.swap(0, Ordering::Relaxed);
        if failed > 0 {
            tracing::info!(endpoint = %self.endpoint, failed_batches = failed, "traces are exported again");
        }
    }
}

impl<E: SpanExporter> SpanExporter for ReportedExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => self.succeeded(),
            Err(e) => {
                self.failed(e);
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn production_refuses_plain_http_to_another_host_only() {
        let settings = |endpoint: &str| OtlpSettings {
            traces_endpoint: endpoint.to_owned(),
            service_name: "hub".to_owned(),
        };
        let refused = settings("http://jaeger:4318/v1/traces")
            .production_problem()
            .expect("plain text to another host is refused");
        assert!(refused.variable.contains(ENDPOINT_VAR), "{refused:?}");
        assert!(refused.why.contains("http://jaeger:4318"), "{refused:?}");
        for allowed in [
            "https://collector.example.by/v1/traces",
            "http://127.0.0.1:4318/v1/traces",
            "http://localhost:4318/v1/traces",
            "http://[::1]:4318/v1/traces",
        ] {
            assert!(
                settings(allowed).production_problem().is_none(),
                "{allowed}"
            );
        }
    }
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<OtlpSettings>, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OtlpSettings::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn without_an_endpoint_nothing_is_exported() {
        assert_eq!(settings(&[]), Ok(None));
        assert_eq!(settings(&[(ENDPOINT_VAR, "  ")]), Ok(None));
        assert_eq!(settings(&[(SERVICE_NAME_VAR, "hub-a")]), Ok(None));
        // The standard switches win over an endpoint.
        let on = (ENDPOINT_VAR, "http://jaeger:4318");
        assert_eq!(settings(&[on, (SDK_DISABLED_VAR, "true")]), Ok(None));
        assert_eq!(settings(&[on, (TRACES_EXPORTER_VAR, "none")]), Ok(None));
        assert!(settings(&[on, (SDK_DISABLED_VAR, "false")]).is_ok_and(|s| s.is_some()));
    }

    #[test]
    fn the_endpoint_and_service_name_follow_the_standard_variables() {
        let s = settings(&[(ENDPOINT_VAR, "http://jaeger:4318/")])
            .expect("valid")
            .expect("on");
        assert_eq!(s.traces_endpoint, "http://jaeger:4318/v1/traces");
        assert_eq!(s.service_name, "hub");
        let s = settings(&[
            (ENDPOINT_VAR, "http://jaeger:4318"),
            (TRACES_ENDPOINT_VAR, "https://collector.example/otlp/traces"),
            (SERVICE_NAME_VAR, "hub-minsk"),
        ])
        .expect("valid")
        .expect("on");
        assert_eq!(s.traces_endpoint, "https://collector.example/otlp/traces");
        assert_eq!(s.service_name, "hub-minsk");
    }

    #[test]
    fn an_endpoint_that_is_no_http_url_is_refused_with_its_variable() {
        for bad in ["jaeger:4318", "grpc://jaeger:4317", "not a url"] {
            let e = settings(&[(ENDPOINT_VAR, bad)]).expect_err(bad);
            assert!(e.contains(ENDPOINT_VAR), "{e}");
        }
        let e = settings(&[(TRACES_ENDPOINT_VAR, "ftp://x/v1/traces")]).expect_err("ftp");
        assert!(e.contains(TRACES_ENDPOINT_VAR), "{e}");
    }

    #[test]
    fn failed_exports_are_warned_of_once_a_minute_at_most() {
        let reported = ReportedExporter::new((), "http://127.0.0.1:1/v1/traces".into());
        assert!(
            reported.failed(&"connection refused"),
            "the first failure is told"
        );
        assert!(
            !reported.failed(&"connection refused"),
            "the next is counted"
        );
        assert_eq!(reported.failures.load(Ordering::Relaxed), 2);
        reported.succeeded();
        assert_eq!(reported.failures.load(Ordering::Relaxed), 0);
        assert!(
            !reported.failed(&"connection refused"),
            "still within the minute"
        );
    }

    #[test]
    fn an_unreachable_collector_holds_up_no_span_and_no_stop() {
        use tracing_subscriber::layer::SubscriberExt;

        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let settings = OtlpSettings {
            traces_endpoint: format!("http://127.0.0.1:{port}/v1/traces"),
            service_name: DEFAULT_SERVICE_NAME.into(),
        };
        let export = TraceExport::start(&settings).expect("built without reaching the collector");
        let subscriber = tracing_subscriber::registry().with(export.layer());
        let started = Instant::now();
        tracing::subscriber::with_default(subscriber, || {
            // More than the processor's queue holds: the rest are dropped, nothing waits.
            for _ in 0..5_000 {
                let span = tracing::info_span!(
                    target: "hub_runtime::broker::consumer",
                    "message",
                    trace_id = tracing::field::Empty,
                    span_id = tracing::field::Empty
                );
                let own = crate::trace::open(&span, None);
                assert_eq!(crate::trace::open_in_current(&span), Some(own));
            }
        });
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "5000 spans took {:?}",
            started.elapsed()
        );
        let stopping = Instant::now();
        export.shutdown();
        assert!(
            stopping.elapsed() < SHUTDOWN_TIMEOUT + Duration::from_secs(2),
            "the stop waited {:?}",
            stopping.elapsed()
        );
    }

    #[test]
    fn the_spans_are_exported_whatever_the_logs_level() {
        // No collector is needed: the spans get their exported ids when they are made.
        let settings = OtlpSettings {
            traces_endpoint: "http://127.0.0.1:1/v1/traces".into(),
            service_name: DEFAULT_SERVICE_NAME.into(),
        };
        let export = TraceExport::start(&settings).expect("the exporter");
        for level in ["warn", "info", "debug"] {
            let subscriber = crate::logging::subscriber(
                crate::logging::LogFormat::Json,
                tracing_subscriber::EnvFilter::new(level),
                std::io::sink,
                Some(&export),
            );
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!(
                    "message",
                    trace_id = tracing::field::Empty,
                    span_id = tracing::field::Empty
                );
                let own = crate::trace::open(&span, None);
                let _in = span.enter();
                let child = tracing::info_span!(
                    "external_call",
                    trace_id = tracing::field::Empty,
                    span_id = tracing::field::Empty
                );
                let call = crate::trace::open_in_current(&child)
                    .unwrap_or_else(|| panic!("RUST_LOG={level}: the call is exported"));
                assert_eq!(call.trace_id(), own.trace_id(), "RUST_LOG={level}");
            });
        }
        export.shutdown();
    }

    #[test]
    fn only_the_hubs_spans_at_info_are_exported() {
        use tracing::callsite::Identifier;
        use tracing::field::FieldSet;
        use tracing::metadata::Kind;

        struct Site;
        impl tracing::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!("not registered")
            }
        }
        static SITE: Site = Site;
        let meta = |target: &'static str, level: Level, kind: Kind| {
            Metadata::new(
                "x",
                target,
                level,
                None,
                None,
                None,
                FieldSet::new(&[], Identifier(&SITE)),
                kind,
            )
        };
        assert!(exported(&meta(
            "hub_runtime::broker",
            Level::INFO,
            Kind::SPAN
        )));
        assert!(exported(&meta("hub_portal::http", Level::WARN, Kind::SPAN)));
        assert!(!exported(&meta(
            "hub_runtime::broker",
            Level::DEBUG,
            Kind::SPAN
        )));
        assert!(!exported(&meta(
            "hub_runtime::broker",
            Level::INFO,
            Kind::EVENT
        )));
        assert!(!exported(&meta("sqlx::query", Level::INFO, Kind::SPAN)));
    }
}
