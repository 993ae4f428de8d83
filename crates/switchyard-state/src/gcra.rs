//! GCRA arithmetic, in milliseconds, shared by the in-process backend. The Redis scripts in
//! `redis_state.rs` implement the same formulas in Lua; keep the two in step.
//!
//! State is one number, the theoretical arrival time (TAT): the instant at which the bucket
//! would be empty again. Each unit moves it forward by the emission interval `period / limit`;
//! a request fits while the TAT stays within one `period` of now (burst up to `limit`).

use crate::RateDecision;
use std::time::Duration;

/// Result of an acquisition: the decision, and the TAT to store (`None`: leave state unchanged).
pub(crate) struct Acquired {
    pub(crate) decision: RateDecision,
    pub(crate) store: Option<f64>,
}

/// Floating-point slack, so a burst of exactly `limit` is never refused because `limit` added
/// emission intervals came out a hair above `period`. Capped at half an interval, so it can
/// never admit an extra unit, and at 1 ms, so it never matters for slow limits.
pub(crate) fn tolerance(interval: f64) -> f64 {
    (interval / 2.0).min(1.0)
}

/// The decision for a zero limit: nothing is ever admitted, and there is no state to keep.
pub(crate) fn zero_limit(period: Duration) -> RateDecision {
    RateDecision {
        allowed: false,
        limit: 0,
        remaining: 0,
        retry_after: period,
        reset_after: Duration::ZERO,
    }
}

/// `stored` is the TAT on record (if any), `now` the current time, both in ms on one clock.
/// `limit` must be positive.
pub(crate) fn acquire(
    stored: Option<f64>,
    now: f64,
    limit: u64,
    period: Duration,
    cost: u64,
) -> Acquired {
    let period_ms = period.as_secs_f64() * 1000.0;
    let interval = period_ms / limit as f64;
    let tol = tolerance(interval);
    let tat = stored.map_or(now, |t| t.max(now));
    let new_tat = tat + cost as f64 * interval;

    let (allowed, after, retry_ms) = if cost > limit {
        (false, tat, period_ms)
    } else if new_tat - now <= period_ms + tol {
        (true, new_tat, 0.0)
    } else {
        (false, tat, new_tat - period_ms - now)
    };
    let remaining = ((period_ms + tol - (after - now)) / interval).floor();
    let decision = RateDecision {
        allowed,
        limit,
        remaining: clamp_units(remaining, limit),
        retry_after: ms_to_duration(retry_ms),
        reset_after: ms_to_duration(after - now),
    };
    let store = (allowed && cost > 0).then_some(new_tat);
    Acquired { decision, store }
}

/// The TAT after settling `delta` units; `None` when the bucket ends up empty (drop the state).
/// `limit` must be positive.
pub(crate) fn adjust(
    stored: Option<f64>,
    now: f64,
    limit: u64,
    period: Duration,
    delta: i64,
) -> Option<f64> {
    let period_ms = period.as_secs_f64() * 1000.0;
    let interval = period_ms / limit as f64;
    let tat = stored.map_or(now, |t| t.max(now));
    let new_tat = tat + delta as f64 * interval;
    (new_tat > now).then_some(new_tat)
}

fn clamp_units(units: f64, limit: u64) -> u64 {
    if units <= 0.0 {
        0
    } else {
        // `as` saturates for floats; the min keeps float noise from reporting more than `limit`.
        (units as u64).min(limit)
    }
}

/// Rounded up to the microsecond so a caller waiting exactly this long is not a hair early.
pub(crate) fn ms_to_duration(ms: f64) -> Duration {
    if ms <= 0.0 || !ms.is_finite() {
        return Duration::ZERO;
    }
    Duration::from_micros((ms * 1000.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn burst_of_limit_then_refusal_with_retry_after_one_interval() {
        let mut tat = None;
        for i in 0..10u64 {
            let got = acquire(tat, 1000.0, 10, MINUTE, 1);
            assert!(got.decision.allowed, "request {i} refused");
            assert_eq!(got.decision.remaining, 9 - i);
            tat = got.store;
        }
        let refused = acquire(tat, 1000.0, 10, MINUTE, 1);
        assert!(!refused.decision.allowed);
        assert!(refused.store.is_none());
        assert_eq!(refused.decision.retry_after, Duration::from_secs(6));
        assert_eq!(refused.decision.reset_after, MINUTE);
    }

    #[test]
    fn awkward_intervals_still_admit_the_whole_burst() {
        let period = Duration::from_millis(1000);
        let mut tat = None;
        let now = 1_717_000_000_000.123;
        for _ in 0..7 {
            let got = acquire(tat, now, 7, period, 1);
            assert!(got.decision.allowed);
            tat = got.store;
        }
        assert!(!acquire(tat, now, 7, period, 1).decision.allowed);
    }

    #[test]
    fn cost_above_limit_never_fits_and_changes_nothing() {
        let got = acquire(None, 0.0, 5, MINUTE, 6);
        assert!(!got.decision.allowed);
        assert!(got.store.is_none());
        assert_eq!(got.decision.remaining, 5);
        assert_eq!(got.decision.retry_after, MINUTE);
    }

    #[test]
    fn adjust_goes_into_debt_and_refunds_stop_at_empty() {
        let debt = adjust(None, 0.0, 10, MINUTE, 15);
        assert_eq!(debt, Some(90_000.0));
        assert_eq!(adjust(debt, 0.0, 10, MINUTE, -100), None);
        assert_eq!(adjust(Some(500.0), 1000.0, 10, MINUTE, -1), None);
    }
}
