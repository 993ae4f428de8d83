use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Circuit breakers, one per provider deployment (see `ModelEntry::breaker_key`). After `threshold` consecutive provider faults the breaker
/// opens and calls skip straight to fallbacks; after `cooldown` one probe is let through
/// (half-open), and its result closes or re-opens the breaker.
///
/// The lock is a plain mutex held for a few instructions and never across an await.
pub struct Breakers {
    threshold: u32,
    cooldown: Duration,
    states: HashMap<String, Mutex<Breaker>>,
}

#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_started: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl Breakers {
    pub fn new<'a>(
        threshold: u32,
        cooldown: Duration,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Self {
            threshold,
            cooldown,
            states: keys
                .into_iter()
                .map(|p| (p.to_owned(), Mutex::new(Breaker::default())))
                .collect(),
        }
    }

    fn with<R>(&self, provider: &str, f: impl FnOnce(&mut Breaker) -> R) -> Option<R> {
        let cell = self.states.get(provider)?;
        // A poisoned lock only means another thread panicked mid-update of plain counters.
        let mut guard = cell.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut guard))
    }

    /// How long an open breaker refuses calls before its half-open probe.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// Whether a call to `provider` may go out now.
    pub fn allow(&self, provider: &str) -> bool {
        let (cooldown, now) = (self.cooldown, Instant::now());
        self.with(provider, |b| match b.opened_at {
            None => true,
            Some(opened) if now.duration_since(opened) < cooldown => false,
            Some(_) => match b.probe_started {
                // One probe at a time; a probe that never reported back is replaced after a cooldown.
                Some(started) if now.duration_since(started) < cooldown => false,
                _ => {
                    b.probe_started = Some(now);
                    true
                }
            },
        })
        .unwrap_or(true)
    }

    pub fn record_success(&self, provider: &str) {
        self.with(provider, |b| *b = Breaker::default());
    }

    /// Records a provider fault; returns true when this fault opened (or re-opened) the breaker.
    pub fn record_failure(&self, provider: &str) -> bool {
        let threshold = self.threshold;
        self.with(provider, |b| {
            b.consecutive_failures = b.consecutive_failures.saturating_add(1);
            let was_probe = b.probe_started.take().is_some();
            if was_probe || b.consecutive_failures >= threshold {
                b.opened_at = Some(Instant::now());
                true
            } else {
                false
            }
        })
        .unwrap_or(false)
    }

    /// Releases a probe slot without judging the provider (e.g. the request itself was bad).
    pub fn record_neutral(&self, provider: &str) {
        self.with(provider, |b| b.probe_started = None);
    }

    pub fn state(&self, provider: &str) -> BreakerState {
        let cooldown = self.cooldown;
        self.with(provider, |b| match b.opened_at {
            None => BreakerState::Closed,
            Some(o) if o.elapsed() < cooldown => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        })
        .unwrap_or(BreakerState::Closed)
    }

    pub fn snapshot(&self) -> Vec<(String, BreakerState)> {
        let mut v: Vec<_> = self
            .states
            .keys()
            .map(|p| (p.clone(), self.state(p)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let b = Breakers::new(3, Duration::from_millis(30), ["p"]);
        assert!(b.allow("p"));
        b.record_failure("p");
        b.record_failure("p");
        assert_eq!(b.state("p"), BreakerState::Closed);
        assert!(b.record_failure("p"));
        assert_eq!(b.state("p"), BreakerState::Open);
        assert!(!b.allow("p"));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.state("p"), BreakerState::HalfOpen);
        assert!(b.allow("p"), "one probe goes through");
        assert!(!b.allow("p"), "but only one");
        b.record_success("p");
        assert_eq!(b.state("p"), BreakerState::Closed);
        assert!(b.allow("p"));
    }

    #[test]
    fn failed_probe_reopens() {
        let b = Breakers::new(1, Duration::from_millis(20), ["p"]);
        b.record_failure("p");
        std::thread::sleep(Duration::from_millis(25));
        assert!(b.allow("p"));
        assert!(b.record_failure("p"));
        assert!(!b.allow("p"));
    }

    #[test]
    fn success_resets_the_count() {
        let b = Breakers::new(2, Duration::from_secs(60), ["p"]);
        b.record_failure("p");
        b.record_success("p");
        b.record_failure("p");
        assert_eq!(b.state("p"), BreakerState::Closed);
    }
}
