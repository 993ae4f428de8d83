//! Training: ordinal logistic regression fitted by deterministic full-batch gradient descent.
//!
//! One linear score `z = w·x` with two intercepts: `P(tier >= 2) = σ(z + b2)` and
//! `P(tier >= 3) = σ(z + b3)`. Sharing `w` keeps the tiers ordered (a request can't look "more
//! than tier 2" but "less than tier 1") and halves the parameters, which matters with a few
//! hundred rows. The router's single score is `σ(z + (b2 + b3) / 2)`; its thresholds are then
//! placed on out-of-fold scores (see [`train`]).

use std::fmt::Write as _;

use crate::eval::{confusion_markdown, curve_markdown, evaluate_scores, CurvePoint};
use crate::features::{Extractor, Features, FEATURE_COUNT, FEATURE_NAMES};
use crate::model::{sigmoid, RouterModel, TrainingSummary, MODEL_FORMAT_VERSION};
use crate::{data::fold_of, Example, RouterError};

/// Knobs for [`train`].
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Cross-validation folds (by hash of `group`).
    pub folds: usize,
    /// L2 penalty on the weights (not on the intercepts).
    pub l2: f32,
    /// Full-batch gradient steps.
    pub epochs: usize,
    pub learning_rate: f32,
    /// The tier-3 threshold is the highest one that keeps at least this share of tier-3 rows in
    /// tier 3 on out-of-fold scores.
    pub tier3_recall_target: f32,
    /// Weight rows so that each tier contributes equally, whatever its share of the data.
    pub balance_classes: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            folds: 5,
            l2: 0.001,
            epochs: 3000,
            learning_rate: 0.5,
            tier3_recall_target: 0.95,
            balance_classes: true,
        }
    }
}

/// The trained model plus its cross-validated quality.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub model: RouterModel,
    /// Out-of-fold accuracy with the chosen thresholds.
    pub cv_accuracy: f32,
    pub cv_tier3_recall: f32,
    pub cv_tier1_precision: f32,
    /// Out-of-fold `confusion[true_tier - 1][predicted_tier - 1]`.
    pub confusion: [[u32; 3]; 3],
    /// Out-of-fold cost/quality curve over the tier-3 threshold.
    pub curve: Vec<CurvePoint>,
}

struct Params {
    w: [f64; FEATURE_COUNT],
    b2: f64,
    b3: f64,
}

impl Params {
    fn score(&self, x: &Features) -> f32 {
        let z: f64 = self.w.iter().zip(x).map(|(w, x)| w * f64::from(*x)).sum();
        sigmoid((z + (self.b2 + self.b3) / 2.0) as f32)
    }
}

/// Trains a router model. Deterministic: no randomness anywhere, so the same data and options
/// always give the same model file.
///
/// Steps:
/// 1. Features for every example; rows are assigned to `opts.folds` folds by a hash of their
///    `group`, so paraphrases of one request never straddle folds.
/// 2. For each fold, fit on the other folds and score the fold: out-of-fold (OOF) scores.
/// 3. Thresholds, from the OOF scores only:
///    - `t3` is the highest threshold at which OOF tier-3 recall is still at least
///      `opts.tier3_recall_target` (placed midway to the next lower score);
///    - `t2` (at most `t3`) maximizes OOF three-tier accuracy given `t3`, ties going to the
///      higher (cheaper) threshold.
/// 4. The shipped weights are fitted on all rows; the CV numbers are those of step 2 with the
///    step-3 thresholds (slightly optimistic, since the thresholds saw the same OOF scores).
pub fn train(examples: &[Example], opts: &TrainOptions) -> Result<TrainReport, RouterError> {
    validate(examples, opts)?;
    let extractor = Extractor::new()?;
    let xs: Vec<Features> = examples
        .iter()
        .map(|e| extractor.extract(&e.messages))
        .collect();
    let ys: Vec<u8> = examples.iter().map(|e| e.tier).collect();
    let mut tier_counts = [0usize; 3];
    for &y in &ys {
        tier_counts[usize::from(y - 1)] += 1;
    }
    let sample_weights: Vec<f64> = ys
        .iter()
        .map(|&y| {
            if opts.balance_classes {
                ys.len() as f64 / (3.0 * tier_counts[usize::from(y - 1)] as f64)
            } else {
                1.0
            }
        })
        .collect();

    let folds: Vec<usize> = examples
        .iter()
        .map(|e| fold_of(&e.group, opts.folds))
        .collect();
    let mut oof = vec![0.0f32; xs.len()];
    for k in 0..opts.folds {
        let train_idx: Vec<usize> = (0..xs.len()).filter(|&i| folds[i] != k).collect();
        if train_idx.len() == xs.len() {
            continue;
        }
        if train_idx.is_empty() {
            return Err(RouterError::Training(
                "every row falls in one cross-validation fold; give rows distinct groups".into(),
            ));
        }
        let params = fit(&xs, &ys, &sample_weights, &train_idx, opts);
        for i in (0..xs.len()).filter(|&i| folds[i] == k) {
            oof[i] = params.score(&xs[i]);
        }
    }

    let thresholds = choose_thresholds(&oof, &ys, opts.tier3_recall_target);
    let cv = evaluate_scores(&oof, &ys, thresholds);
    let all: Vec<usize> = (0..xs.len()).collect();
    let params = fit(&xs, &ys, &sample_weights, &all, opts);
    let model = RouterModel {
        version: MODEL_FORMAT_VERSION,
        features: FEATURE_NAMES.iter().map(|n| (*n).to_string()).collect(),
        weights: params.w.iter().map(|w| round4(*w)).collect(),
        bias: round4((params.b2 + params.b3) / 2.0),
        thresholds: thresholds.map(|t| round4(f64::from(t))),
        training: TrainingSummary {
            rows: examples.len(),
            tier_counts,
            cv_accuracy: cv.accuracy,
            cv_tier3_recall: cv.tier3_recall,
            cv_tier1_precision: cv.tier1_precision,
            l2: opts.l2,
            epochs: opts.epochs,
            threshold_rule: format!(
                "t3 = highest threshold with out-of-fold tier-3 recall >= {}; t2 = best out-of-fold accuracy given t3",
                opts.tier3_recall_target
            ),
        },
    };
    Ok(TrainReport {
        model,
        cv_accuracy: cv.accuracy,
        cv_tier3_recall: cv.tier3_recall,
        cv_tier1_precision: cv.tier1_precision,
        confusion: cv.confusion,
        curve: cv.curve,
    })
}

fn validate(examples: &[Example], opts: &TrainOptions) -> Result<(), RouterError> {
    let bad = |m: String| Err(RouterError::Training(m));
    if opts.folds < 2 {
        return bad(format!("need at least 2 folds, got {}", opts.folds));
    }
    // Written so that NaN options fail the check too.
    let positive_rate = opts.learning_rate.is_finite() && opts.learning_rate > 0.0;
    let valid_l2 = opts.l2.is_finite() && opts.l2 >= 0.0;
    if opts.epochs == 0 || !positive_rate || !valid_l2 {
        return bad("epochs and learning_rate must be positive and l2 non-negative".into());
    }
    if !(0.0..=1.0).contains(&opts.tier3_recall_target) {
        return bad("tier3_recall_target must be in 0..1".into());
    }
    for tier in 1..=3u8 {
        if !examples.iter().any(|e| e.tier == tier) {
            return bad(format!("no tier-{tier} examples; every tier needs some"));
        }
    }
    if let Some(e) = examples.iter().find(|e| !(1..=3).contains(&e.tier)) {
        return bad(format!("tier {} in group {:?}", e.tier, e.group));
    }
    Ok(())
}

// Four decimals keep the model file readable and diffs small, at no measurable cost in accuracy.
fn round4(x: f64) -> f32 {
    ((x * 10_000.0).round() / 10_000.0) as f32
}

fn fit(
    xs: &[Features],
    ys: &[u8],
    sample_weights: &[f64],
    idx: &[usize],
    opts: &TrainOptions,
) -> Params {
    const MOMENTUM: f64 = 0.9;
    let total_weight: f64 = idx.iter().map(|&i| sample_weights[i]).sum();
    let lr = f64::from(opts.learning_rate);
    let l2 = f64::from(opts.l2);
    let mut p = Params {
        w: [0.0; FEATURE_COUNT],
        b2: 0.0,
        b3: 0.0,
    };
    let mut vel_w = [0.0f64; FEATURE_COUNT];
    let (mut vel_b2, mut vel_b3) = (0.0f64, 0.0f64);
    for _ in 0..opts.epochs {
        let mut grad_w = [0.0f64; FEATURE_COUNT];
        let (mut g2, mut g3) = (0.0f64, 0.0f64);
        for &i in idx {
            let x = &xs[i];
            let z: f64 = p.w.iter().zip(x).map(|(w, x)| w * f64::from(*x)).sum();
            let sw = sample_weights[i];
            let e2 = (sigmoid64(z + p.b2) - f64::from(u8::from(ys[i] >= 2))) * sw;
            let e3 = (sigmoid64(z + p.b3) - f64::from(u8::from(ys[i] >= 3))) * sw;
            g2 += e2;
            g3 += e3;
            for (g, xv) in grad_w.iter_mut().zip(x) {
                *g += (e2 + e3) * f64::from(*xv);
            }
        }
        for ((w, v), g) in p.w.iter_mut().zip(vel_w.iter_mut()).zip(grad_w) {
            let grad = g / total_weight + l2 * *w;
            *v = MOMENTUM * *v - lr * grad;
            *w += *v;
        }
        vel_b2 = MOMENTUM * vel_b2 - lr * g2 / total_weight;
        vel_b3 = MOMENTUM * vel_b3 - lr * g3 / total_weight;
        p.b2 += vel_b2;
        p.b3 += vel_b3;
    }
    p
}

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn choose_thresholds(scores: &[f32], tiers: &[u8], tier3_recall_target: f32) -> [f32; 2] {
    let mut tier3: Vec<f32> = scores
        .iter()
        .zip(tiers)
        .filter(|(_, &t)| t == 3)
        .map(|(s, _)| *s)
        .collect();
    tier3.sort_by(f32::total_cmp);
    let allowed_misses =
        ((1.0 - f64::from(tier3_recall_target)) * tier3.len() as f64 + 1e-9).floor() as usize;
    let anchor = tier3
        .get(allowed_misses.min(tier3.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.5);
    let below = scores
        .iter()
        .copied()
        .filter(|s| *s < anchor)
        .fold(None, |m: Option<f32>, s| Some(m.map_or(s, |m| m.max(s))));
    let t3 = below.map_or(anchor, |b| (anchor + b) / 2.0);

    let mut sorted: Vec<f32> = scores.iter().copied().filter(|s| *s < t3).collect();
    sorted.sort_by(f32::total_cmp);
    sorted.dedup();
    let mut candidates: Vec<f32> = sorted.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    candidates.push(0.0);
    candidates.push(t3);
    let mut best = (0u32, 0.0f32);
    for &t2 in &candidates {
        let correct = scores
            .iter()
            .zip(tiers)
            .filter(|(&s, &t)| crate::eval::tier_of(s, [t2, t3]) == t)
            .count() as u32;
        if correct > best.0 || (correct == best.0 && t2 > best.1) {
            best = (correct, t2);
        }
    }
    [best.1, t3]
}

impl TrainReport {
    /// A short human-readable report, as printed by `switchyard router train`.
    pub fn to_markdown(&self) -> String {
        let m = &self.model;
        let t = &m.training;
        let mut out = String::from("## Router training report\n\n");
        let _ = writeln!(
            out,
            "- rows: {} (tier 1: {}, tier 2: {}, tier 3: {})",
            t.rows, t.tier_counts[0], t.tier_counts[1], t.tier_counts[2]
        );
        let _ = writeln!(
            out,
            "- cross-validated: accuracy {:.3}, tier-3 recall {:.3}, tier-1 precision {:.3}",
            self.cv_accuracy, self.cv_tier3_recall, self.cv_tier1_precision
        );
        let _ = writeln!(
            out,
            "- thresholds: t2 = {:.3}, t3 = {:.3} ({})",
            m.thresholds[0], m.thresholds[1], t.threshold_rule
        );
        let _ = writeln!(out, "- l2 {}, {} epochs\n", t.l2, t.epochs);
        out.push_str("Out-of-fold confusion:\n\n");
        out.push_str(&confusion_markdown(&self.confusion));
        out.push_str("\nOut-of-fold cost/quality curve:\n\n");
        out.push_str(&curve_markdown(&self.curve, m.thresholds[1]));
        let mut weights: Vec<(&String, f32)> =
            m.features.iter().zip(m.weights.iter().copied()).collect();
        weights.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        out.push_str("\nStrongest weights: ");
        let top: Vec<String> = weights
            .iter()
            .take(8)
            .map(|(n, w)| format!("{n} {w:+.2}"))
            .collect();
        out.push_str(&top.join(", "));
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::{ChatMessage, Role};

    fn example(text: &str, tier: u8, group: &str) -> Example {
        Example {
            messages: vec![ChatMessage::new(Role::User, text)],
            tier,
            group: group.to_string(),
        }
    }

    fn toy() -> Vec<Example> {
        let mut rows = Vec::new();
        for i in 0..12 {
            rows.push(example(&format!("hi number {i}"), 1, &format!("a{i}")));
            rows.push(example(
                &format!("Explain how topic {i} works with an example."),
                2,
                &format!("b{i}"),
            ));
            rows.push(example(
                &format!("Design and implement a distributed system {i}. Analyze trade-offs, prove correctness and write a detailed plan."),
                3,
                &format!("c{i}"),
            ));
        }
        rows
    }

    #[test]
    fn training_is_deterministic_and_separates_a_toy_set() {
        let opts = TrainOptions {
            epochs: 400,
            ..TrainOptions::default()
        };
        let a = train(&toy(), &opts).unwrap();
        let b = train(&toy(), &opts).unwrap();
        assert_eq!(a.model, b.model);
        assert!(a.cv_accuracy > 0.9, "{}", a.cv_accuracy);
        let [t2, t3] = a.model.thresholds;
        assert!(t2 <= t3);
        assert!(a.to_markdown().contains("Out-of-fold confusion"));
    }

    #[test]
    fn rejects_unusable_input() {
        let opts = TrainOptions::default();
        let only_easy: Vec<Example> = toy().into_iter().filter(|e| e.tier == 1).collect();
        assert!(train(&only_easy, &opts).is_err());
        let one_group: Vec<Example> = toy()
            .into_iter()
            .map(|mut e| {
                e.group = "same".into();
                e
            })
            .collect();
        let err = train(&one_group, &opts).unwrap_err().to_string();
        assert!(err.contains("distinct groups"), "{err}");
        let bad = TrainOptions {
            folds: 1,
            ..TrainOptions::default()
        };
        assert!(train(&toy(), &bad).is_err());
    }
}
