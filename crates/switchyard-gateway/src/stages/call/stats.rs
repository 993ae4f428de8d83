//! Live load and health of each deployment, written by the executor around every upstream
//! attempt and read by the routing stage's balancing (`routing::balance`). Atomics only: the
//! hot path takes no lock, and nothing here is held across an await except the in-flight guard,
//! which is a counter, not a lock.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Weight of the newest sample in the latency moving average.
const EWMA_ALPHA: f64 = 0.3;

/// Milliseconds on a process-wide monotonic clock: cheap to store in an atomic, immune to wall
/// clock steps.
pub fn mono_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let ms = EPOCH.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Live load and health of one deployment (provider × upstream model). Shared by every
/// `[[models]]` entry that names the same deployment, like its circuit breaker, because they
/// load the same upstream.
#[derive(Debug)]
pub struct DeploymentStats {
    key: String,
    in_flight: AtomicU32,
    /// Moving average of successful attempt latency in µs; 0 means no sample yet.
    ewma_latency_us: AtomicU64,
    consecutive_failures: AtomicU32,
    last_failure_ms: AtomicU64,
    /// Mirrors the circuit breaker's open period so the plan can put the member last instead
    /// of leading with a candidate the executor would only skip.
    breaker_open_until_ms: AtomicU64,
    /// Registered on first use: the metrics recorder is installed after the model table is
    /// built, and a handle taken before would be a no-op forever.
    gauge: OnceLock<metrics::Gauge>,
}

impl DeploymentStats {
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            in_flight: AtomicU32::new(0),
            ewma_latency_us: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            last_failure_ms: AtomicU64::new(0),
            breaker_open_until_ms: AtomicU64::new(0),
            gauge: OnceLock::new(),
        }
    }

    /// Counts one upstream attempt as in flight until the guard drops, which also happens when
    /// the request is cancelled mid-attempt.
    pub fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.gauge().increment(1.0);
        InFlight { stats: self }
    }

    fn gauge(&self) -> &metrics::Gauge {
        self.gauge.get_or_init(
            || metrics::gauge!("switchyard_deployment_in_flight", "deployment" => self.key.clone()),
        )
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The latency moving average, `None` before the first successful attempt.
    pub fn latency(&self) -> Option<Duration> {
        match self.ewma_latency_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    pub fn record_success(&self, latency: Duration) {
        // At least 1 µs so that 0 keeps meaning "no sample".
        let sample = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = self
            .ewma_latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(match old {
                    0 => sample,
                    old => {
                        let next = EWMA_ALPHA * sample as f64 + (1.0 - EWMA_ALPHA) * old as f64;
                        (next as u64).max(1)
                    }
                })
            });
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.breaker_open_until_ms.store(0, Ordering::Relaxed);
    }

    /// A failure that says the deployment, not the request, is unwell right now.
    pub fn record_failure(&self) {
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        self.last_failure_ms.store(mono_ms(), Ordering::Relaxed);
    }

    /// The circuit breaker opened for `cooldown`.
    pub fn breaker_opened(&self, cooldown: Duration) {
        let ms = u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX);
        self.breaker_open_until_ms
            .store(mono_ms().saturating_add(ms), Ordering::Relaxed);
    }

    /// The latency moving average in µs, 0 before the first sample: the least-latency rank.
    pub fn latency_us(&self) -> u64 {
        self.ewma_latency_us.load(Ordering::Relaxed)
    }

    /// Where this deployment stands at `now_ms` ([`mono_ms`]) for a group whose cool-down is
    /// `cooldown_ms`.
    pub fn health(&self, now_ms: u64, cooldown_ms: u64) -> Health {
        if self.breaker_open_until_ms.load(Ordering::Relaxed) > now_ms {
            return Health::BreakerOpen;
        }
        if self.consecutive_failures() > 0 {
            let since = now_ms.saturating_sub(self.last_failure_ms.load(Ordering::Relaxed));
            if since < cooldown_ms {
                return Health::CoolingDown;
            }
        }
        Health::Healthy
    }
}

/// One attempt in flight; dropping it (attempt over, or cancelled) releases the count.
pub struct InFlight<'a> {
    stats: &'a DeploymentStats,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.stats.gauge().decrement(1.0);
    }
}

/// Ordered best first: the most significant key of a group's plan order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Health {
    #[default]
    Healthy,
    CoolingDown,
    BreakerOpen,
}
