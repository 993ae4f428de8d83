//! Adaptive choice within a tier: Thompson sampling over the tier's models.
//!
//! Each model keeps a success and a failure count (per replica, in memory): a cascade that had
//! to escalate a model's answer is a failure, an answer it judged confident a success, and user
//! feedback (`POST /v1/feedback`) counts either way. A request samples a success rate from
//! Beta(successes + 1, failures + 1) for every candidate of the tier and takes the highest;
//! models that keep failing are tried less and less, without ever being starved of a chance to
//! recover. The samples go into the route decision so the choice can be explained.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use rand_distr::{Beta, Distribution};
use serde::Serialize;

#[derive(Default)]
struct Counts {
    successes: AtomicU64,
    failures: AtomicU64,
}

/// Outcome counts per model name; the key set is fixed at construction, so no lock is needed.
pub struct Bandit {
    arms: HashMap<String, Counts>,
}

/// One candidate's state and draw, for `metadata.route.bandit`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArmDraw {
    pub model: String,
    pub successes: u64,
    pub failures: u64,
    pub sample: f64,
}

impl Bandit {
    pub fn new<'a>(models: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            arms: models
                .into_iter()
                .map(|m| (m.to_owned(), Counts::default()))
                .collect(),
        }
    }

    pub fn record(&self, model: &str, success: bool) {
        if let Some(c) = self.arms.get(model) {
            let counter = if success { &c.successes } else { &c.failures };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counts(&self, model: &str) -> (u64, u64) {
        self.arms.get(model).map_or((0, 0), |c| {
            (
                c.successes.load(Ordering::Relaxed),
                c.failures.load(Ordering::Relaxed),
            )
        })
    }

    /// Samples every candidate; the index of the best draw (ties: the first, i.e. the cheapest,
    /// since candidates come cheapest first) and every draw. `feedback` adds each model's user
    /// verdicts (successes, failures) to the cascade's.
    pub fn choose(
        &self,
        candidates: &[&str],
        feedback: impl Fn(&str) -> (u64, u64),
    ) -> (usize, Vec<ArmDraw>) {
        let mut rng = rand::rng();
        let draws: Vec<ArmDraw> = candidates
            .iter()
            .map(|m| {
                let (s, f) = self.counts(m);
                let (fs, ff) = feedback(m);
                let (s, f) = (s + fs, f + ff);
                let sample = Beta::new(s as f64 + 1.0, f as f64 + 1.0)
                    .map(|b| b.sample(&mut rng))
                    .unwrap_or(0.5);
                ArmDraw {
                    model: (*m).to_owned(),
                    successes: s,
                    failures: f,
                    sample,
                }
            })
            .collect();
        let best = draws.iter().enumerate().fold(0, |best, (i, d)| {
            if d.sample > draws[best].sample {
                i
            } else {
                best
            }
        });
        (best, draws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_model_loses_most_draws_and_unknown_models_are_ignored() {
        let b = Bandit::new(["a", "b"]);
        for _ in 0..30 {
            b.record("a", false);
            b.record("b", true);
        }
        b.record("nope", true);
        let wins_b = (0..200)
            .filter(|_| b.choose(&["a", "b"], |_| (0, 0)).0 == 1)
            .count();
        assert!(wins_b > 190, "{wins_b}");
        let (_, draws) = b.choose(&["a", "b"], |_| (0, 0));
        assert_eq!((draws[0].successes, draws[0].failures), (0, 30));
        assert!(draws.iter().all(|d| (0.0..=1.0).contains(&d.sample)));
    }

    #[test]
    fn without_evidence_both_models_get_tried() {
        let b = Bandit::new(["a", "b"]);
        let wins_a = (0..400)
            .filter(|_| b.choose(&["a", "b"], |_| (0, 0)).0 == 0)
            .count();
        assert!((120..=280).contains(&wins_a), "{wins_a}");
        // User feedback counts like the cascade's verdicts.
        let wins_a = (0..200)
            .filter(|_| {
                b.choose(&["a", "b"], |m| if m == "a" { (40, 0) } else { (0, 40) })
                    .0
                    == 0
            })
            .count();
        assert!(wins_a > 190, "{wins_a}");
    }
}
