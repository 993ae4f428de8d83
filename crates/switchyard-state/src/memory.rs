//! In-process state: the default for a single replica, and the fallback of [`ResilientState`].
//!
//! [`ResilientState`]: crate::ResilientState

use crate::{args, gcra, RateDecision, StateBackend, StateError};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Enough shards that request handlers on a many-core host rarely meet on one lock.
const SHARDS: usize = 32;
/// A shard is swept for expired entries after this many operations, or after as many operations
/// as it has entries if that is more, so sweeping costs O(1) per operation amortised.
const SWEEP_MIN_OPS: usize = 256;

/// Rate, concurrency and spend state in process memory.
///
/// Keys are spread over mutex-guarded shards; a lock is held only for a few arithmetic steps and
/// never across an `.await`. Expired rate buckets and spend counters are pruned lazily.
pub struct MemoryState {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    // tokio's clock rather than std's, so tests can pause and advance time deterministically.
    origin: Instant,
}

#[derive(Default)]
struct Shard {
    /// Theoretical arrival time in ms since `origin`; stale once it is in the past.
    rate: HashMap<String, f64>,
    in_flight: HashMap<String, u64>,
    spend: HashMap<String, Spend>,
    ops: usize,
}

struct Spend {
    total: f64,
    expires_at: f64,
}

impl Shard {
    fn len(&self) -> usize {
        self.rate.len() + self.in_flight.len() + self.spend.len()
    }

    fn maybe_sweep(&mut self, now: f64) {
        self.ops += 1;
        if self.ops < SWEEP_MIN_OPS.max(self.len()) {
            return;
        }
        self.ops = 0;
        self.rate.retain(|_, tat| *tat > now);
        self.spend.retain(|_, spend| spend.expires_at > now);
    }

    fn live_spend(&mut self, key: &str, now: f64) -> Option<&mut Spend> {
        self.spend
            .get_mut(key)
            .filter(|spend| spend.expires_at > now)
    }
}

impl Default for MemoryState {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryState")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl MemoryState {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            origin: Instant::now(),
        }
    }

    fn now_ms(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * 1000.0
    }

    fn shard(&self, key: &str, now: f64) -> MutexGuard<'_, Shard> {
        // Indexing cannot go out of bounds: the modulus is the slice length.
        let index = (self.hasher.hash_one(key) as usize) % self.shards.len();
        // A panic while holding a shard lock cannot leave a half-updated entry (each update is a
        // single assignment), so a poisoned lock is safe to keep using.
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard.maybe_sweep(now);
        shard
    }

    pub(crate) fn rate_acquire_sync(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
        cost: u64,
    ) -> Result<RateDecision, StateError> {
        args::rate(limit, period)?;
        if limit == 0 {
            return Ok(gcra::zero_limit(period));
        }
        let now = self.now_ms();
        let mut shard = self.shard(key, now);
        let stored = shard.rate.get(key).copied().filter(|tat| *tat > now);
        let acquired = gcra::acquire(stored, now, limit, period, cost);
        if let Some(tat) = acquired.store {
            set_rate(&mut shard, key, tat);
        }
        Ok(acquired.decision)
    }

    pub(crate) fn rate_adjust_sync(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
        delta: i64,
    ) -> Result<(), StateError> {
        args::rate(limit, period)?;
        args::delta(delta)?;
        if limit == 0 || delta == 0 {
            return Ok(());
        }
        let now = self.now_ms();
        let mut shard = self.shard(key, now);
        let stored = shard.rate.get(key).copied().filter(|tat| *tat > now);
        match gcra::adjust(stored, now, limit, period, delta) {
            Some(tat) => set_rate(&mut shard, key, tat),
            None => {
                shard.rate.remove(key);
            }
        }
        Ok(())
    }

    pub(crate) fn concurrency_acquire_sync(&self, key: &str, max: u64) -> bool {
        let now = self.now_ms();
        let mut shard = self.shard(key, now);
        match shard.in_flight.get_mut(key) {
            Some(count) if *count < max => {
                *count += 1;
                true
            }
            Some(_) => false,
            None if max > 0 => {
                shard.in_flight.insert(key.to_owned(), 1);
                true
            }
            None => false,
        }
    }

    /// Releases `n` slots; returns how many were actually held (and so released).
    pub(crate) fn concurrency_release_sync(&self, key: &str, n: u64) -> u64 {
        let now = self.now_ms();
        let mut shard = self.shard(key, now);
        let Some(count) = shard.in_flight.get_mut(key) else {
            return 0;
        };
        if *count > n {
            *count -= n;
            return n;
        }
        let held = *count;
        shard.in_flight.remove(key);
        held
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self, key: &str) -> u64 {
        let now = self.now_ms();
        self.shard(key, now)
            .in_flight
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn spend_add_sync(
        &self,
        key: &str,
        usd: f64,
        ttl: Duration,
    ) -> Result<f64, StateError> {
        args::spend(usd, ttl)?;
        let now = self.now_ms();
        let mut shard = self.shard(key, now);
        if let Some(spend) = shard.live_spend(key, now) {
            spend.total += usd;
            return Ok(spend.total);
        }
        let expires_at = now + ttl_ms(ttl);
        shard.spend.insert(
            key.to_owned(),
            Spend {
                total: usd,
                expires_at,
            },
        );
        Ok(usd)
    }

    pub(crate) fn spend_get_sync(&self, key: &str) -> f64 {
        let now = self.now_ms();
        let mut shard = self.shard(key, now);
        shard.live_spend(key, now).map_or(0.0, |spend| spend.total)
    }

    pub(crate) fn spend_seed_sync(
        &self,
        key: &str,
        usd: f64,
        ttl: Duration,
    ) -> Result<(), StateError> {
        args::spend(usd, ttl)?;
        let now = self.now_ms();
        let mut shard = self.shard(key, now);
        if shard.live_spend(key, now).is_none() {
            let expires_at = now + ttl_ms(ttl);
            shard.spend.insert(
                key.to_owned(),
                Spend {
                    total: usd,
                    expires_at,
                },
            );
        }
        Ok(())
    }

    /// Overwrites a counter with the total Redis reported, so that during a later outage local
    /// additions continue from the shared total instead of from zero.
    pub(crate) fn spend_mirror(&self, key: &str, total: f64, ttl: Duration) {
        if !total.is_finite() || ttl.is_zero() {
            return;
        }
        let now = self.now_ms();
        let mut shard = self.shard(key, now);
        let expires_at = now + ttl_ms(ttl);
        shard
            .spend
            .insert(key.to_owned(), Spend { total, expires_at });
    }
}

fn set_rate(shard: &mut Shard, key: &str, tat: f64) {
    match shard.rate.get_mut(key) {
        Some(slot) => *slot = tat,
        None => {
            shard.rate.insert(key.to_owned(), tat);
        }
    }
}

fn ttl_ms(ttl: Duration) -> f64 {
    ttl.as_secs_f64() * 1000.0
}

#[async_trait::async_trait]
impl StateBackend for MemoryState {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn rate_acquire(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
        cost: u64,
    ) -> Result<RateDecision, StateError> {
        self.rate_acquire_sync(key, limit, period, cost)
    }

    async fn rate_adjust(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
        delta: i64,
    ) -> Result<(), StateError> {
        self.rate_adjust_sync(key, limit, period, delta)
    }

    async fn concurrency_acquire(&self, key: &str, max: u64) -> Result<bool, StateError> {
        Ok(self.concurrency_acquire_sync(key, max))
    }

    async fn concurrency_release(&self, key: &str) -> Result<(), StateError> {
        self.concurrency_release_sync(key, 1);
        Ok(())
    }

    async fn spend_add(&self, key: &str, usd: f64, ttl: Duration) -> Result<f64, StateError> {
        self.spend_add_sync(key, usd, ttl)
    }

    async fn spend_get(&self, key: &str) -> Result<f64, StateError> {
        Ok(self.spend_get_sync(key))
    }

    async fn spend_seed(&self, key: &str, usd: f64, ttl: Duration) -> Result<(), StateError> {
        self.spend_seed_sync(key, usd, ttl)
    }

    async fn ping(&self) -> Result<(), StateError> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
