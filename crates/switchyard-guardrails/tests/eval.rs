//! Precision/recall on the hand-labelled set in `tests/data/pii_cases.jsonl`.
//!
//! The `heldout` split was written before the detectors were tuned and must not be used for
//! tuning; iterate on `tune`. Run with `--nocapture` to see the table.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_guardrails::{scan, Kind};

#[derive(Deserialize)]
struct Case {
    split: String,
    text: String,
    expected: BTreeMap<String, usize>,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Counts {
    fn precision(self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    fn recall(self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        }
    }
}

fn load() -> Vec<Case> {
    let raw = include_str!("data/pii_cases.jsonl");
    raw.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| match serde_json::from_str(l) {
            Ok(c) => c,
            Err(e) => panic!("line {}: {e}", i + 1),
        })
        .collect()
}

fn evaluate(split: &str) -> (BTreeMap<Kind, Counts>, Vec<String>) {
    let mut per: BTreeMap<Kind, Counts> = BTreeMap::new();
    let mut misses = Vec::new();
    for case in load().into_iter().filter(|c| c.split == split) {
        let findings = match scan(&case.text) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        for name in case.expected.keys() {
            assert!(Kind::parse(name).is_some(), "unknown kind {name}");
        }
        for kind in Kind::ALL {
            let want = case.expected.get(kind.as_str()).copied().unwrap_or(0);
            let got = findings.iter().filter(|f| f.kind == kind).count();
            if want == 0 && got == 0 {
                continue;
            }
            let c = per.entry(kind).or_default();
            c.tp += want.min(got);
            c.fp += got.saturating_sub(want);
            c.fn_ += want.saturating_sub(got);
            if want != got {
                misses.push(format!("{kind}: want {want} got {got} in {:?}", case.text));
            }
        }
    }
    (per, misses)
}

fn report(split: &str) -> BTreeMap<Kind, Counts> {
    let (per, misses) = evaluate(split);
    println!("== {split} ==");
    println!(
        "{:<16} {:>4} {:>4} {:>4} {:>9} {:>7}",
        "kind", "tp", "fp", "fn", "precision", "recall"
    );
    let mut total = Counts::default();
    for (k, c) in &per {
        println!(
            "{:<16} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}",
            k.as_str(),
            c.tp,
            c.fp,
            c.fn_,
            c.precision(),
            c.recall()
        );
        total.tp += c.tp;
        total.fp += c.fp;
        total.fn_ += c.fn_;
    }
    println!(
        "{:<16} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}",
        "ALL",
        total.tp,
        total.fp,
        total.fn_,
        total.precision(),
        total.recall()
    );
    for m in &misses {
        println!("  miss: {m}");
    }
    per
}

#[test]
fn dataset_is_large_enough_and_split() {
    let cases = load();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let held = cases.iter().filter(|c| c.split == "heldout").count();
    assert!(
        held >= 50
            && cases
                .iter()
                .all(|c| c.split == "heldout" || c.split == "tune")
    );
    let negatives = cases.iter().filter(|c| c.expected.is_empty()).count();
    assert!(negatives >= 40, "only {negatives} hard negatives");
}

#[test]
fn tune_split_report() {
    // Printed for iteration; floors are asserted on held-out only.
    report("tune");
}

#[test]
fn heldout_precision_recall_floors() {
    let per = report("heldout");
    for kind in [Kind::CreditCard, Kind::Iban, Kind::UsSsn] {
        let c = per.get(&kind).copied().unwrap_or_default();
        assert!(c.tp > 0, "{kind}: no positives in held-out");
        assert!(
            c.precision() >= 0.95,
            "{kind} precision {:.3}",
            c.precision()
        );
        assert!(c.recall() >= 0.9, "{kind} recall {:.3}", c.recall());
    }
    let mut total = Counts::default();
    for c in per.values() {
        total.tp += c.tp;
        total.fp += c.fp;
        total.fn_ += c.fn_;
    }
    assert!(
        total.precision() >= 0.85,
        "overall precision {:.3}",
        total.precision()
    );
    assert!(
        total.recall() >= 0.8,
        "overall recall {:.3}",
        total.recall()
    );
}
