use std::fmt::Write as _;

use serde::Serialize;

use crate::{ComplexityRouter, Example};

/// One point of the cost/quality curve obtained by moving the tier-3 threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Tier-3 threshold.
    pub threshold: f32,
    /// Share of all requests sent to tier 3 (the cost proxy).
    pub share_tier3: f32,
    /// Share of truly tier-3 requests that got tier 3 (the quality proxy).
    pub tier3_recall: f32,
    /// Share of requests routed to tier 1 whose true tier is higher, i.e. `1 - tier-1
    /// precision`. The tier-2 threshold stays at the model's value (capped at the tier-3
    /// threshold), so this only moves once the tier-3 threshold drops below it.
    pub tier1_wrongly_low: f32,
}

/// Quality of a router on labeled examples.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub rows: usize,
    pub accuracy: f32,
    /// Share of truly tier-3 rows routed to tier 3.
    pub tier3_recall: f32,
    /// Share of rows routed to tier 1 that truly are tier 1 (1.0 when nothing went to tier 1).
    pub tier1_precision: f32,
    /// `confusion[true_tier - 1][predicted_tier - 1]`.
    pub confusion: [[u32; 3]; 3],
    pub curve: Vec<CurvePoint>,
    pub thresholds: [f32; 2],
}

/// Scores every example with `router` and compares with the labels.
pub fn evaluate(router: &ComplexityRouter, examples: &[Example]) -> Evaluation {
    let scores: Vec<f32> = examples
        .iter()
        .map(|e| router.classify(&e.messages).score)
        .collect();
    let tiers: Vec<u8> = examples.iter().map(|e| e.tier).collect();
    evaluate_scores(&scores, &tiers, router.model().thresholds)
}

pub(crate) fn tier_of(score: f32, [t2, t3]: [f32; 2]) -> u8 {
    if score >= t3 {
        3
    } else if score >= t2 {
        2
    } else {
        1
    }
}

pub(crate) fn evaluate_scores(scores: &[f32], tiers: &[u8], thresholds: [f32; 2]) -> Evaluation {
    let mut confusion = [[0u32; 3]; 3];
    for (&s, &t) in scores.iter().zip(tiers) {
        let predicted = tier_of(s, thresholds);
        confusion[usize::from(t.clamp(1, 3) - 1)][usize::from(predicted - 1)] += 1;
    }
    let total: u32 = confusion.iter().flatten().sum();
    let correct: u32 = (0..3).map(|i| confusion[i][i]).sum();
    let true3: u32 = confusion[2].iter().sum();
    let routed1: u32 = (0..3).map(|i| confusion[i][0]).sum();
    let mut grid: Vec<f32> = (1..20).map(|i| i as f32 * 0.05).collect();
    grid.push(thresholds[1]);
    grid.sort_by(f32::total_cmp);
    grid.dedup();
    Evaluation {
        rows: scores.len(),
        accuracy: ratio(correct, total),
        tier3_recall: ratio(confusion[2][2], true3),
        tier1_precision: if routed1 == 0 {
            1.0
        } else {
            ratio(confusion[0][0], routed1)
        },
        confusion,
        curve: curve(scores, tiers, thresholds[0], &grid),
        thresholds,
    }
}

/// The cost/quality curve over the given tier-3 thresholds.
pub fn curve(scores: &[f32], tiers: &[u8], t2: f32, thresholds: &[f32]) -> Vec<CurvePoint> {
    thresholds
        .iter()
        .map(|&t3| {
            let t2 = t2.min(t3);
            let (mut sent3, mut hit3, mut true3, mut routed1, mut wrong1) = (0, 0, 0, 0, 0);
            for (&s, &t) in scores.iter().zip(tiers) {
                let predicted = tier_of(s, [t2, t3]);
                sent3 += u32::from(predicted == 3);
                true3 += u32::from(t == 3);
                hit3 += u32::from(t == 3 && predicted == 3);
                routed1 += u32::from(predicted == 1);
                wrong1 += u32::from(predicted == 1 && t > 1);
            }
            CurvePoint {
                threshold: t3,
                share_tier3: ratio(sent3, scores.len() as u32),
                tier3_recall: ratio(hit3, true3),
                tier1_wrongly_low: ratio(wrong1, routed1),
            }
        })
        .collect()
}

fn ratio(a: u32, b: u32) -> f32 {
    if b == 0 {
        0.0
    } else {
        a as f32 / b as f32
    }
}

impl Evaluation {
    /// A short Markdown summary: headline numbers, confusion matrix and a thinned curve.
    pub fn to_markdown(&self, title: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {title}\n");
        let _ = writeln!(
            out,
            "rows {} · accuracy {:.3} · tier-3 recall {:.3} · tier-1 precision {:.3} · thresholds t2={:.3} t3={:.3}\n",
            self.rows,
            self.accuracy,
            self.tier3_recall,
            self.tier1_precision,
            self.thresholds[0],
            self.thresholds[1]
        );
        out.push_str(&confusion_markdown(&self.confusion));
        out.push('\n');
        out.push_str(&curve_markdown(&self.curve, self.thresholds[1]));
        out
    }
}

pub(crate) fn confusion_markdown(confusion: &[[u32; 3]; 3]) -> String {
    let mut out =
        String::from("| true \\ routed | tier 1 | tier 2 | tier 3 |\n|---|---:|---:|---:|\n");
    for (i, row) in confusion.iter().enumerate() {
        let _ = writeln!(
            out,
            "| tier {} | {} | {} | {} |",
            i + 1,
            row[0],
            row[1],
            row[2]
        );
    }
    out
}

pub(crate) fn curve_markdown(curve: &[CurvePoint], chosen: f32) -> String {
    let mut out = String::from(
        "| t3 threshold | share to tier 3 | tier-3 recall | tier-1 wrongly low |\n|---:|---:|---:|---:|\n",
    );
    for (i, p) in curve.iter().enumerate() {
        let is_chosen = (p.threshold - chosen).abs() < 1e-3;
        // Every other grid point keeps the table short; the chosen threshold is always shown.
        if !is_chosen && i % 2 == 1 {
            continue;
        }
        let _ = writeln!(
            out,
            "| {:.3}{} | {:.3} | {:.3} | {:.3} |",
            p.threshold,
            if is_chosen { " (chosen)" } else { "" },
            p.share_tier3,
            p.tier3_recall,
            p.tier1_wrongly_low
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_a_toy_set() {
        let scores = [0.1, 0.2, 0.5, 0.6, 0.9, 0.95, 0.3];
        let tiers = [1, 1, 2, 3, 3, 3, 2];
        let e = evaluate_scores(&scores, &tiers, [0.4, 0.8]);
        assert_eq!(e.confusion, [[2, 0, 0], [1, 1, 0], [0, 1, 2]]);
        assert!((e.accuracy - 5.0 / 7.0).abs() < 1e-6);
        assert!((e.tier3_recall - 2.0 / 3.0).abs() < 1e-6);
        assert!((e.tier1_precision - 2.0 / 3.0).abs() < 1e-6);
        let low = curve(&scores, &tiers, 0.4, &[0.05]);
        assert_eq!(low[0].share_tier3, 1.0);
        assert_eq!(low[0].tier3_recall, 1.0);
        assert!(e.to_markdown("toy").contains("| tier 3 | 0 | 1 | 2 |"));
    }
}
