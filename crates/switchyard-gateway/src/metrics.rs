//! Prometheus metrics through the `metrics` facade. Recording is a few atomic operations; the
//! text exposition is rendered only when `/metrics` is scraped.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Installs the process-wide recorder once; later calls (several servers in one test process)
/// share it. Returns None only if another recorder was installed by someone else.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "switchyard_requests_total",
        "Requests answered, by model, provider, status and tenant"
    );
    metrics::describe_histogram!(
        "switchyard_request_duration_seconds",
        "Time from request arrival to the last byte of the answer"
    );
    metrics::describe_histogram!(
        "switchyard_ttft_seconds",
        "Time to the first generated token of streamed answers"
    );
    metrics::describe_counter!(
        "switchyard_tokens_total",
        "Prompt and completion tokens, by model and tenant"
    );
    metrics::describe_gauge!(
        "switchyard_cost_usd_total",
        "Accumulated upstream cost in USD, by model and tenant (monotonic)"
    );
    metrics::describe_counter!(
        "switchyard_upstream_errors_total",
        "Failed upstream attempts, by provider and error kind"
    );
    metrics::describe_counter!(
        "switchyard_fallbacks_total",
        "Requests moved from one model to the next"
    );
    metrics::describe_gauge!("switchyard_inflight_requests", "Requests being served now");
}

/// One finished request, as the request log sees it.
pub struct RequestMetrics<'a> {
    pub model: &'a str,
    pub provider: &'a str,
    pub tenant: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub ttft: Option<Duration>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

pub fn request_finished(m: &RequestMetrics<'_>) {
    let labels = [
        ("model", m.model.to_owned()),
        ("provider", m.provider.to_owned()),
        ("status", m.status.to_string()),
        ("tenant", m.tenant.to_owned()),
    ];
    counter!("switchyard_requests_total", &labels).increment(1);
    histogram!("switchyard_request_duration_seconds", "model" => m.model.to_owned())
        .record(m.duration.as_secs_f64());
    if let Some(ttft) = m.ttft {
        histogram!("switchyard_ttft_seconds", "model" => m.model.to_owned())
            .record(ttft.as_secs_f64());
    }
    if m.prompt_tokens > 0 || m.completion_tokens > 0 {
        for (kind, n) in [
            ("prompt", m.prompt_tokens),
            ("completion", m.completion_tokens),
        ] {
            counter!("switchyard_tokens_total", "model" => m.model.to_owned(), "tenant" => m.tenant.to_owned(), "type" => kind)
                .increment(n);
        }
    }
    if m.cost_usd > 0.0 {
        gauge!("switchyard_cost_usd_total", "model" => m.model.to_owned(), "tenant" => m.tenant.to_owned())
            .increment(m.cost_usd);
    }
}

pub fn upstream_error(provider: &str, kind: &'static str) {
    counter!("switchyard_upstream_errors_total", "provider" => provider.to_owned(), "kind" => kind)
        .increment(1);
}

pub fn fallback(from: &str, to: &str) {
    counter!("switchyard_fallbacks_total", "from" => from.to_owned(), "to" => to.to_owned())
        .increment(1);
}

pub fn inflight(delta: f64) {
    gauge!("switchyard_inflight_requests").increment(delta);
}
