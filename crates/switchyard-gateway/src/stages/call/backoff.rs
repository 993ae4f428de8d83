use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter: a uniform wait in `[0, min(max, base * 2^attempt)]`,
/// which spreads retries of many clients hitting the same rate limit. An upstream's `retry-after`
/// overrides the jitter when it is longer.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max);
        let jitter = if cap.is_zero() {
            Duration::ZERO
        } else {
            rand::rng().random_range(Duration::ZERO..=cap)
        };
        match retry_after {
            Some(ra) if ra > jitter => ra,
            _ => jitter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_the_exponential_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1_000),
        };
        for _ in 0..200 {
            assert!(b.delay(0, None) <= Duration::from_millis(100));
            assert!(b.delay(2, None) <= Duration::from_millis(400));
            assert!(b.delay(30, None) <= Duration::from_millis(1_000));
        }
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let b = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(10),
        };
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }
}
