//! Shared runtime state for the gateway: rate limits, in-flight (concurrency) counters and spend
//! counters.
//!
//! A single replica keeps this state in process ([`MemoryState`]). Several replicas behind a load
//! balancer must share it, or each would admit its own full quota; they point at Redis and get a
//! [`ResilientState`], which answers from Redis and falls back to in-process state while Redis is
//! unreachable, so an outage of the shared store degrades limits to per-replica instead of
//! failing requests.
//!
//! Every backend implements [`StateBackend`]; the gateway codes against `Arc<dyn StateBackend>`
//! obtained from [`connect`].

mod error;
mod gcra;
mod memory;
mod redis_state;
mod resilient;

use std::sync::Arc;
use std::time::Duration;

pub use error::StateError;
pub use memory::MemoryState;
pub use redis_state::{RedisOptions, RedisState};
pub use resilient::ResilientState;

/// Key prefix used in Redis unless the caller asks for another (tests isolate themselves this way).
pub const DEFAULT_PREFIX: &str = "switchyard:";

/// The answer to a rate-limit acquisition, shaped for `RateLimit-*` / `Retry-After` headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateDecision {
    /// Whether the `cost` units were consumed.
    pub allowed: bool,
    /// The limit the decision was made against (units per period).
    pub limit: u64,
    /// Units that could be acquired right now, after this decision.
    pub remaining: u64,
    /// Zero when allowed. When refused: how long until the same `cost` would fit. A `cost` larger
    /// than `limit` never fits; `retry_after` is then `period`, so a caller forwarding it as
    /// `Retry-After` does not invite a tight retry loop.
    pub retry_after: Duration,
    /// How long until the bucket is completely refilled (nothing consumed any more).
    pub reset_after: Duration,
}

/// Runtime state shared by the gateway's stages. Implementations are cheap to call concurrently.
#[async_trait::async_trait]
pub trait StateBackend: Send + Sync + 'static {
    /// `"memory"` or `"redis"`.
    fn backend(&self) -> &'static str;

    /// GCRA (generic cell rate algorithm): `limit` units per `period`, burst up to `limit`.
    /// All-or-nothing: consumes `cost` units only if allowed. cost > limit is never allowed.
    async fn rate_acquire(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
        cost: u64,
    ) -> Result<RateDecision, StateError>;

    /// Settles an earlier acquisition (tokens-per-minute: estimate up front, real usage after):
    /// positive delta consumes more (may push the bucket into debt; never refused), negative
    /// refunds (never below empty).
    async fn rate_adjust(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
        delta: i64,
    ) -> Result<(), StateError>;

    /// In-flight counter: increments and returns true if the count was below `max`, else returns
    /// false and changes nothing.
    async fn concurrency_acquire(&self, key: &str, max: u64) -> Result<bool, StateError>;

    /// Gives back one slot taken by [`StateBackend::concurrency_acquire`]; never goes below zero.
    async fn concurrency_release(&self, key: &str) -> Result<(), StateError>;

    /// Adds `usd` to a spend counter that expires after `ttl`; returns the new total.
    ///
    /// The expiry is set when the counter is created and not extended by later additions, so a
    /// counter for a budget window goes away on schedule even under constant traffic.
    async fn spend_add(&self, key: &str, usd: f64, ttl: Duration) -> Result<f64, StateError>;

    /// The counter's total; 0.0 when absent or expired.
    async fn spend_get(&self, key: &str) -> Result<f64, StateError>;

    /// Sets the counter only if it does not exist yet (seeding from the durable store at
    /// start-up).
    async fn spend_seed(&self, key: &str, usd: f64, ttl: Duration) -> Result<(), StateError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StateError>;
}

/// Opens the state backend named by `url`, with the default Redis key prefix.
///
/// `None` gives in-process state. A `redis://` or `unix://` URL gives a [`ResilientState`]; if
/// Redis cannot be reached yet, that is logged and the backend still starts, answering from
/// process memory and retrying Redis on later calls. Only a malformed URL is an error.
///
/// `rediss://` (TLS) is recognised but refused with [`StateError::InvalidUrl`] for now: this
/// build does not enable the redis crate's TLS support, and failing at start-up beats silently
/// running per-replica limits.
pub async fn connect(url: Option<&str>) -> Result<Arc<dyn StateBackend>, StateError> {
    connect_with_prefix(url, DEFAULT_PREFIX).await
}

/// [`connect`] with an explicit Redis key prefix (tests use a random one to stay isolated).
pub async fn connect_with_prefix(
    url: Option<&str>,
    prefix: &str,
) -> Result<Arc<dyn StateBackend>, StateError> {
    let Some(url) = url else {
        return Ok(Arc::new(MemoryState::new()));
    };
    let options = RedisOptions {
        prefix: prefix.to_owned(),
        ..RedisOptions::default()
    };
    let state = ResilientState::open(url, options)?;
    state.probe_at_start().await;
    Ok(Arc::new(state))
}

/// Argument checks shared by every backend, so that each answers a bad call the same way and
/// [`ResilientState`] can refuse it before touching Redis (a caller bug is not an outage).
pub(crate) mod args {
    use super::StateError;
    use std::time::Duration;

    /// Lua numbers are doubles; beyond 2^53 counts stop being exact.
    pub(crate) const MAX_UNITS: u64 = 1 << 53;

    pub(crate) fn rate(limit: u64, period: Duration) -> Result<(), StateError> {
        if period.is_zero() {
            return Err(StateError::InvalidArgument(
                "rate period must be positive".into(),
            ));
        }
        if limit > MAX_UNITS {
            return Err(StateError::InvalidArgument(format!(
                "rate limit {limit} exceeds {MAX_UNITS}"
            )));
        }
        Ok(())
    }

    pub(crate) fn delta(delta: i64) -> Result<(), StateError> {
        if delta.unsigned_abs() > MAX_UNITS {
            return Err(StateError::InvalidArgument(format!(
                "rate adjustment {delta} exceeds {MAX_UNITS}"
            )));
        }
        Ok(())
    }

    pub(crate) fn spend(usd: f64, ttl: Duration) -> Result<(), StateError> {
        if !usd.is_finite() {
            return Err(StateError::InvalidArgument(format!(
                "spend amount must be finite, got {usd}"
            )));
        }
        if ttl.as_millis() == 0 {
            return Err(StateError::InvalidArgument(
                "spend ttl must be at least 1 ms".into(),
            ));
        }
        Ok(())
    }
}
