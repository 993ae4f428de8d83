//! Redis first, process memory when Redis fails: limits degrade to per-replica during an outage
//! instead of failing (or blocking) requests.

use crate::{args, MemoryState, RateDecision, RedisOptions, RedisState, StateBackend, StateError};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// At most one outage warning per this interval, so a Redis outage does not flood the log.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// After this many failures in a row the connection manager is replaced, in case it is stuck on a
/// failure it does not retry by itself (it only reconnects after I/O errors).
const REOPEN_AFTER_FAILURES: u32 = 3;
const REOPEN_EVERY: Duration = Duration::from_secs(10);

const FALLBACK_TOTAL: &str = "switchyard_state_fallback_total";
const REDIS_UP: &str = "switchyard_state_redis_up";

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Redis as the shared source of truth, with a [`MemoryState`] answering whenever Redis fails.
///
/// - Each Redis error (or a call skipped while Redis is known to be down) is answered locally,
///   counted in `switchyard_state_fallback_total{op}` and sets `switchyard_state_redis_up` to 0;
///   a warning is logged at most once per 10 s. A successful call sets the gauge back to 1.
/// - After a failure, Redis is skipped for `retry_interval`; then one call probes it again, so an
///   outage costs at most one slow call per interval rather than a timeout per request.
/// - Spend added locally during an outage, seeds that could not be written and concurrency
///   releases that could not be delivered are remembered and replayed on the next successful
///   contact, before the call that made it; the local spend counters mirror the last totals
///   Redis reported, so a local answer continues from the shared total rather than from zero.
/// - A slot taken locally during an outage is released locally, so Redis only ever sees releases
///   of slots it handed out.
///
/// Methods return `Err` only when the local backend fails too, which happens only for invalid
/// arguments.
pub struct ResilientState {
    redis: Mutex<RedisState>,
    local: MemoryState,
    retry_interval: Duration,
    health: Mutex<Health>,
    pending: Mutex<Pending>,
    has_pending: AtomicBool,
    up: AtomicU8,
}

#[derive(Default)]
struct Health {
    /// Redis is skipped until then.
    down_until: Option<Instant>,
    failures_in_a_row: u32,
    last_warning: Option<Instant>,
    last_reopen: Option<Instant>,
}

#[derive(Default)]
struct Pending {
    /// Spend to add: key → (amount, ttl for a counter that does not exist any more).
    spend: HashMap<String, (f64, Duration)>,
    /// Seeds that could not be written: key → (amount, ttl).
    seeds: HashMap<String, (f64, Duration)>,
    /// Concurrency slots to give back: key → count.
    releases: HashMap<String, u64>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.spend.is_empty() && self.seeds.is_empty() && self.releases.is_empty()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a few plain assignments; a panic cannot leave them half
    // done, so a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for ResilientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientState")
            .field("redis", &*lock(&self.redis))
            .field("up", &self.is_redis_up())
            .finish_non_exhaustive()
    }
}

impl ResilientState {
    /// Prepares Redis at `url` without connecting (the first call does). Only a malformed URL is
    /// an error.
    pub fn open(url: &str, options: RedisOptions) -> Result<Self, StateError> {
        Ok(Self::with_redis(RedisState::open(url, options)?))
    }

    /// Wraps an existing Redis backend.
    pub fn with_redis(redis: RedisState) -> Self {
        metrics::describe_counter!(
            FALLBACK_TOTAL,
            "State operations answered from process memory because Redis failed or was down"
        );
        metrics::describe_gauge!(
            REDIS_UP,
            "1 when the last Redis state call succeeded, else 0"
        );
        Self {
            redis: Mutex::new(redis),
            local: MemoryState::new(),
            retry_interval: Duration::from_secs(1),
            health: Mutex::new(Health::default()),
            pending: Mutex::new(Pending::default()),
            has_pending: AtomicBool::new(false),
            up: AtomicU8::new(UNKNOWN),
        }
    }

    /// How long Redis is skipped after a failure before one call probes it again (default 1 s).
    pub fn with_retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// Whether the last contact with Redis succeeded.
    pub fn is_redis_up(&self) -> bool {
        self.up.load(Ordering::Relaxed) == UP
    }

    /// Pings Redis once, warning (not failing) if it is unreachable, so a start-up without Redis
    /// is visible in the log while the gateway still starts.
    pub async fn probe_at_start(&self) {
        let redis = self.redis();
        match redis.ping().await {
            Ok(()) => self.succeeded(),
            Err(err) => {
                tracing::warn!(
                    url = redis.redacted_url(),
                    error = %err,
                    "redis state backend unreachable at start-up; using per-replica state until it answers"
                );
                self.mark_down(&err, false);
            }
        }
    }

    fn redis(&self) -> RedisState {
        lock(&self.redis).clone()
    }

    /// Runs `call` against Redis unless Redis is being skipped; `None` means "answer locally".
    async fn primary<T, F, Fut>(&self, op: &'static str, call: F) -> Option<T>
    where
        F: FnOnce(RedisState) -> Fut,
        Fut: Future<Output = Result<T, StateError>>,
    {
        if !self.may_try() {
            metrics::gauge!(REDIS_UP).set(0.0);
            fallback(op);
            return None;
        }
        let redis = self.redis();
        let outcome = match self.replay_pending(&redis).await {
            Ok(()) => call(redis).await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(value) => {
                self.succeeded();
                Some(value)
            }
            Err(err) => {
                self.mark_down(&err, true);
                fallback(op);
                None
            }
        }
    }

    /// True when Redis is healthy, or when its retry interval has passed; in the latter case
    /// pushes the next retry out, so concurrent calls do not all probe at once.
    fn may_try(&self) -> bool {
        let mut health = lock(&self.health);
        match health.down_until {
            None => true,
            Some(until) => {
                let now = Instant::now();
                if now < until {
                    return false;
                }
                health.down_until = Some(now + self.retry_interval);
                true
            }
        }
    }

    fn succeeded(&self) {
        {
            let mut health = lock(&self.health);
            health.down_until = None;
            health.failures_in_a_row = 0;
        }
        // Set on every call, not only on changes: a recorder installed after start-up must
        // still see the current value.
        metrics::gauge!(REDIS_UP).set(1.0);
        if self.up.swap(UP, Ordering::Relaxed) != UP {
            tracing::info!("redis state backend reachable; using shared state");
        }
    }

    fn mark_down(&self, err: &StateError, warn: bool) {
        let now = Instant::now();
        let (should_warn, reopen) = {
            let mut health = lock(&self.health);
            health.down_until = Some(now + self.retry_interval);
            health.failures_in_a_row = health.failures_in_a_row.saturating_add(1);
            let should_warn = warn
                && health
                    .last_warning
                    .is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
            if should_warn {
                health.last_warning = Some(now);
            }
            let reopen = health.failures_in_a_row >= REOPEN_AFTER_FAILURES
                && health
                    .last_reopen
                    .is_none_or(|at| now.duration_since(at) >= REOPEN_EVERY);
            if reopen {
                health.last_reopen = Some(now);
            }
            (should_warn, reopen)
        };
        metrics::gauge!(REDIS_UP).set(0.0);
        self.up.store(DOWN, Ordering::Relaxed);
        if should_warn {
            tracing::warn!(
                error = %err,
                "redis state backend failed; answering from per-replica state"
            );
        }
        if reopen {
            let mut redis = lock(&self.redis);
            match redis.reopened() {
                Ok(fresh) => *redis = fresh,
                Err(err) => tracing::debug!(error = %err, "could not reopen redis connection"),
            }
        }
    }

    /// Applies what an outage left pending. Items are taken out first so concurrent callers do
    /// not apply them twice; whatever could not be applied goes back.
    async fn replay_pending(&self, redis: &RedisState) -> Result<(), StateError> {
        if !self.has_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut taken = {
            let mut pending = lock(&self.pending);
            self.has_pending.store(false, Ordering::Release);
            std::mem::take(&mut *pending)
        };
        let result = apply(redis, &mut taken).await;
        if !taken.is_empty() {
            self.merge_pending(taken);
        }
        if result.is_ok() {
            tracing::info!("replayed state changes made while redis was unreachable");
        }
        result
    }

    fn merge_pending(&self, more: Pending) {
        let mut pending = lock(&self.pending);
        for (key, (usd, ttl)) in more.spend {
            let entry = pending.spend.entry(key).or_insert((0.0, ttl));
            entry.0 += usd;
        }
        for (key, seed) in more.seeds {
            pending.seeds.entry(key).or_insert(seed);
        }
        for (key, n) in more.releases {
            *pending.releases.entry(key).or_insert(0) += n;
        }
        self.has_pending
            .store(!pending.is_empty(), Ordering::Release);
    }

    fn remember(&self, change: impl FnOnce(&mut Pending)) {
        let mut pending = lock(&self.pending);
        change(&mut pending);
        self.has_pending.store(true, Ordering::Release);
    }
}

/// Seeds first (only-if-absent), then spend on top of them, then releases. Each applied item is
/// removed from `pending`, so on error only the rest is retried. An item whose call failed after
/// Redis executed it (a response timeout) is applied again later: over-counting spend is the
/// safer error for a budget.
async fn apply(redis: &RedisState, pending: &mut Pending) -> Result<(), StateError> {
    let seeds: Vec<_> = pending.seeds.keys().cloned().collect();
    for key in seeds {
        if let Some(&(usd, ttl)) = pending.seeds.get(&key) {
            redis.spend_seed(&key, usd, ttl).await?;
            pending.seeds.remove(&key);
        }
    }
    let spend: Vec<_> = pending.spend.keys().cloned().collect();
    for key in spend {
        if let Some(&(usd, ttl)) = pending.spend.get(&key) {
            redis.spend_add(&key, usd, ttl).await?;
            pending.spend.remove(&key);
        }
    }
    let releases: Vec<_> = pending.releases.keys().cloned().collect();
    for key in releases {
        if let Some(&n) = pending.releases.get(&key) {
            redis.concurrency_release_n(&key, n).await?;
            pending.releases.remove(&key);
        }
    }
    Ok(())
}

fn fallback(op: &'static str) {
    metrics::counter!(FALLBACK_TOTAL, "op" => op).increment(1);
}

#[async_trait::async_trait]
impl StateBackend for ResilientState {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn rate_acquire(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
        cost: u64,
    ) -> Result<RateDecision, StateError> {
        args::rate(limit, period)?;
        let shared = self
            .primary("rate_acquire", |r| async move {
                r.rate_acquire(key, limit, period, cost).await
            })
            .await;
        match shared {
            Some(decision) => Ok(decision),
            None => self.local.rate_acquire_sync(key, limit, period, cost),
        }
    }

    async fn rate_adjust(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
        delta: i64,
    ) -> Result<(), StateError> {
        args::rate(limit, period)?;
        args::delta(delta)?;
        let shared = self
            .primary("rate_adjust", |r| async move {
                r.rate_adjust(key, limit, period, delta).await
            })
            .await;
        match shared {
            Some(()) => Ok(()),
            None => self.local.rate_adjust_sync(key, limit, period, delta),
        }
    }

    async fn concurrency_acquire(&self, key: &str, max: u64) -> Result<bool, StateError> {
        let shared = self
            .primary("concurrency_acquire", |r| async move {
                r.concurrency_acquire(key, max).await
            })
            .await;
        match shared {
            Some(admitted) => Ok(admitted),
            // Local slots are counted against `max` alone: during an outage each replica
            // enforces the whole limit by itself.
            None => Ok(self.local.concurrency_acquire_sync(key, max)),
        }
    }

    async fn concurrency_release(&self, key: &str) -> Result<(), StateError> {
        if self.local.concurrency_release_sync(key, 1) == 1 {
            return Ok(());
        }
        let shared = self
            .primary("concurrency_release", |r| async move {
                r.concurrency_release(key).await
            })
            .await;
        if shared.is_none() {
            self.remember(|p| *p.releases.entry(key.to_owned()).or_insert(0) += 1);
        }
        Ok(())
    }

    async fn spend_add(&self, key: &str, usd: f64, ttl: Duration) -> Result<f64, StateError> {
        args::spend(usd, ttl)?;
        let shared = self
            .primary(
                "spend_add",
                |r| async move { r.spend_add(key, usd, ttl).await },
            )
            .await;
        if let Some(total) = shared {
            self.local.spend_mirror(key, total, ttl);
            return Ok(total);
        }
        self.remember(|p| p.spend.entry(key.to_owned()).or_insert((0.0, ttl)).0 += usd);
        self.local.spend_add_sync(key, usd, ttl)
    }

    async fn spend_get(&self, key: &str) -> Result<f64, StateError> {
        let shared = self
            .primary(
                "spend_get",
                |r| async move { r.spend_get_with_ttl(key).await },
            )
            .await;
        match shared {
            Some((total, Some(ttl))) => {
                self.local.spend_mirror(key, total, ttl);
                Ok(total)
            }
            Some((total, None)) => Ok(total),
            None => Ok(self.local.spend_get_sync(key)),
        }
    }

    async fn spend_seed(&self, key: &str, usd: f64, ttl: Duration) -> Result<(), StateError> {
        args::spend(usd, ttl)?;
        let shared = self
            .primary("spend_seed", |r| async move {
                r.spend_seed(key, usd, ttl).await
            })
            .await;
        if shared.is_none() {
            self.remember(|p| {
                p.seeds.entry(key.to_owned()).or_insert((usd, ttl));
            });
        }
        // Seeded locally either way, so a later outage starts from the durable total.
        self.local.spend_seed_sync(key, usd, ttl)
    }

    async fn ping(&self) -> Result<(), StateError> {
        // Process memory always answers, so the combined backend is always usable; whether Redis
        // is, is in `is_redis_up` and the `switchyard_state_redis_up` gauge.
        let _ = self
            .primary("ping", |r| async move { r.ping().await })
            .await;
        Ok(())
    }
}
