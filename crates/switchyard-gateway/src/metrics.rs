//! Prometheus metrics through the `metrics` facade. Recording is a few atomic operations; the
//! text exposition is rendered only when `/metrics` is scraped.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
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
    match handles(m) {
        Some(h) => h.record(m),
        None => Handles::new(m).record(m),
    }
}

/// The handles of one label set. Looking a metric up by name and labels allocates every label
/// and hashes the key in the registry; that was a few percent of the gateway's CPU per request,
/// so each label set's handles are looked up once and kept. The map grows with the label sets
/// seen, which is the cardinality the Prometheus output has anyway.
struct Handles {
    model: Box<str>,
    provider: Box<str>,
    tenant: Box<str>,
    status: u16,
    requests: Counter,
    duration: Histogram,
    ttft: Histogram,
    prompt_tokens: Counter,
    completion_tokens: Counter,
    cost: Gauge,
}

impl Handles {
    fn new(m: &RequestMetrics<'_>) -> Self {
        let model = || m.model.to_owned();
        let tenant = || m.tenant.to_owned();
        Self {
            model: m.model.into(),
            provider: m.provider.into(),
            tenant: m.tenant.into(),
            status: m.status,
            requests: counter!("switchyard_requests_total", "model" => model(), "provider" => m.provider.to_owned(), "status" => m.status.to_string(), "tenant" => tenant()),
            duration: histogram!("switchyard_request_duration_seconds", "model" => model()),
            ttft: histogram!("switchyard_ttft_seconds", "model" => model()),
            prompt_tokens: counter!("switchyard_tokens_total", "model" => model(), "tenant" => tenant(), "type" => "prompt"),
            completion_tokens: counter!("switchyard_tokens_total", "model" => model(), "tenant" => tenant(), "type" => "completion"),
            cost: gauge!("switchyard_cost_usd_total", "model" => model(), "tenant" => tenant()),
        }
    }

    fn matches(&self, m: &RequestMetrics<'_>) -> bool {
        self.status == m.status
            && &*self.model == m.model
            && &*self.provider == m.provider
            && &*self.tenant == m.tenant
    }

    fn record(&self, m: &RequestMetrics<'_>) {
        self.requests.increment(1);
        self.duration.record(m.duration.as_secs_f64());
        if let Some(ttft) = m.ttft {
            self.ttft.record(ttft.as_secs_f64());
        }
        if m.prompt_tokens > 0 || m.completion_tokens > 0 {
            self.prompt_tokens.increment(m.prompt_tokens);
            self.completion_tokens.increment(m.completion_tokens);
        }
        if m.cost_usd > 0.0 {
            self.cost.increment(m.cost_usd);
        }
    }
}

type HandleMap = RwLock<HashMap<u64, Vec<Arc<Handles>>>>;

static HANDLES: OnceLock<HandleMap> = OnceLock::new();

/// `None` until the recorder is installed: handles taken before would be no-ops forever.
fn handles(m: &RequestMetrics<'_>) -> Option<Arc<Handles>> {
    if !matches!(HANDLE.get(), Some(Some(_))) {
        return None;
    }
    let map = HANDLES.get_or_init(Default::default);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (m.model, m.provider, m.tenant, m.status).hash(&mut hasher);
    let key = hasher.finish();
    if let Ok(read) = map.read() {
        if let Some(h) = read.get(&key).and_then(|v| v.iter().find(|h| h.matches(m))) {
            return Some(h.clone());
        }
    }
    let mut write = map.write().ok()?;
    let list = write.entry(key).or_default();
    if let Some(existing) = list.iter().find(|h| h.matches(m)) {
        return Some(existing.clone());
    }
    let h = Arc::new(Handles::new(m));
    list.push(h.clone());
    Some(h)
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
    static INFLIGHT: OnceLock<Gauge> = OnceLock::new();
    if matches!(HANDLE.get(), Some(Some(_))) {
        INFLIGHT
            .get_or_init(|| gauge!("switchyard_inflight_requests"))
            .increment(delta);
    } else {
        gauge!("switchyard_inflight_requests").increment(delta);
    }
}
