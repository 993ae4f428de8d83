//! End-to-end quality check of the router on the shipped data.
//!
//! `cargo test --release -p switchyard-router --test router_eval -- --nocapture` prints the
//! training report and the held-out numbers. Data:
//! - `data/labeled.jsonl`: hand-written; rows whose group [`is_held_out`] are never trained on;
//! - `data/public.jsonl`: MT-Bench and HumanEval rows derived by `data/build_public.py`; used
//!   for evaluation only (never trained on: its rule-derived labels are coarser than the
//!   hand-written ones, and adding them lowered grouped-CV accuracy on the hand-written train
//!   split from 0.89 to 0.83, mostly by pushing tier-2 rows to tier 3);
//! - `data/holdout_fresh.jsonl`: hand-written after feature design was frozen and never used for
//!   any tuning; a stand-in for prompts the router has never seen.

use std::path::{Path, PathBuf};

use switchyard_router::{
    evaluate, read_examples, split_held_out, train, ComplexityRouter, Evaluation, Example,
    TrainOptions, TrainReport,
};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

struct Splits {
    train: Vec<Example>,
    held_out: Vec<Example>,
    public: Vec<Example>,
    fresh: Vec<Example>,
}

fn splits() -> Splits {
    let labeled = read_examples(&data("labeled.jsonl")).unwrap();
    let public = read_examples(&data("public.jsonl")).unwrap();
    let fresh = read_examples(&data("holdout_fresh.jsonl")).unwrap();
    let (train, held_out) = split_held_out(&labeled);
    Splits {
        train,
        held_out,
        public,
        fresh,
    }
}

fn train_default(train_rows: &[Example]) -> TrainReport {
    train(train_rows, &TrainOptions::default()).unwrap()
}

fn print_misrouted(router: &ComplexityRouter, examples: &[Example], title: &str) {
    println!("misrouted in {title}:");
    for e in examples {
        let d = router.classify(&e.messages);
        if d.tier != e.tier {
            let text = e.messages.last().map(|m| m.text()).unwrap_or_default();
            let short: String = text.chars().take(90).collect();
            println!(
                "  true {} -> {} (score {:.2}) {:?} {:?}",
                e.tier,
                d.tier,
                d.score,
                short.replace('\n', " "),
                d.reasons
            );
        }
    }
}

fn report(router: &ComplexityRouter, examples: &[Example], title: &str) -> Evaluation {
    let e = evaluate(router, examples);
    println!("{}", e.to_markdown(title));
    print_misrouted(router, examples, title);
    println!();
    e
}

#[test]
fn held_out_quality() {
    let s = splits();
    let trained = train_default(&s.train);
    println!("{}", trained.to_markdown());
    let router = ComplexityRouter::from_model(trained.model).unwrap();

    let held = report(&router, &s.held_out, "held-out hand-written split");
    let public = report(
        &router,
        &s.public,
        "public set (MT-Bench + HumanEval, never trained on)",
    );
    let fresh = report(&router, &s.fresh, "holdout_fresh (never tuned on)");

    // Floors sit a little under the measured numbers (CV 0.870; held-out 0.881 / 0.985 /
    // 0.914; public 0.343 / 0.713; fresh 0.927 / 1.000 / 0.947 for accuracy / tier-3 recall /
    // tier-1 precision). The public set's labels follow a coarser rule than the hand-written
    // ones (see data/build_public.py), hence its low accuracy; its floors guard against drift.
    assert!(
        trained.cv_accuracy >= 0.83,
        "cv accuracy {}",
        trained.cv_accuracy
    );
    assert!(held.accuracy >= 0.84, "held-out accuracy {}", held.accuracy);
    assert!(
        held.tier3_recall >= 0.93,
        "held-out tier-3 recall {}",
        held.tier3_recall
    );
    assert!(
        held.tier1_precision >= 0.87,
        "held-out tier-1 precision {}",
        held.tier1_precision
    );
    // The hardest requests must never land on the smallest model.
    assert_eq!(
        held.confusion[2][0], 0,
        "tier 3 routed to tier 1: {:?}",
        held.confusion
    );
    assert!(
        public.accuracy >= 0.30,
        "public accuracy {}",
        public.accuracy
    );
    assert!(
        public.tier3_recall >= 0.65,
        "public tier-3 recall {}",
        public.tier3_recall
    );
    assert!(fresh.accuracy >= 0.85, "fresh accuracy {}", fresh.accuracy);
    assert!(
        fresh.tier3_recall >= 0.90,
        "fresh tier-3 recall {}",
        fresh.tier3_recall
    );
    assert!(
        fresh.tier1_precision >= 0.90,
        "fresh tier-1 precision {}",
        fresh.tier1_precision
    );
}

#[test]
fn embedded_model_is_trained_on_the_train_split() {
    let s = splits();
    let embedded = ComplexityRouter::embedded().unwrap();
    let fresh = train_default(&s.train).model;
    let m = embedded.model();
    assert_eq!(
        m.training.rows,
        s.train.len(),
        "embedded model is stale: regenerate it"
    );
    assert_eq!(
        m.features, fresh.features,
        "embedded model is stale: regenerate it"
    );
    for (a, b) in m.weights.iter().zip(&fresh.weights) {
        assert!(
            (a - b).abs() < 1e-3,
            "embedded model is stale: regenerate it"
        );
    }
    assert!((m.thresholds[0] - fresh.thresholds[0]).abs() < 1e-3);
    assert!((m.thresholds[1] - fresh.thresholds[1]).abs() < 1e-3);
}

#[test]
fn embedded_model_on_obvious_cases() {
    let router = ComplexityRouter::embedded().unwrap();
    let tier = |text: &str| {
        router
            .classify(&[switchyard_api::ChatMessage::new(
                switchyard_api::Role::User,
                text,
            )])
            .tier
    };
    for easy in [
        "hi",
        "What is the capital of Italy?",
        "convert 10 km to miles",
    ] {
        assert_eq!(tier(easy), 1, "{easy}");
    }
    for hard in [
        "Prove that there are infinitely many primes.",
        "Design a distributed rate limiter for a global API with 1M requests per second.",
    ] {
        assert_eq!(tier(hard), 3, "{hard}");
    }
}

/// Rewrites `data/default_model.json` from the train split:
/// `cargo test --release -p switchyard-router --test router_eval -- --ignored regenerate_default_model`
#[test]
#[ignore]
fn regenerate_default_model() {
    let s = splits();
    let trained = train_default(&s.train);
    println!("{}", trained.to_markdown());
    trained.model.save(&data("default_model.json")).unwrap();
}

#[test]
fn embedded_model_on_conversations() {
    use switchyard_api::{ChatMessage, Role};
    let router = ComplexityRouter::embedded().unwrap();
    assert_eq!(router.classify(&[]).tier, 1, "no messages");
    let follow_up = [
        ChatMessage::new(Role::User, "What is the capital of Spain?"),
        ChatMessage::new(Role::Assistant, "Madrid."),
        ChatMessage::new(Role::User, "and of Portugal?"),
    ];
    assert_eq!(router.classify(&follow_up).tier, 1);
    let with_system = [
        ChatMessage::new(Role::System, "You are a concise assistant for a bank."),
        ChatMessage::new(
            Role::User,
            "Prove that the sum of two odd numbers is always even, then generalize to modular arithmetic.",
        ),
    ];
    let d = router.classify(&with_system);
    assert_eq!(d.tier, 3, "{d:?}");
    assert!(!d.reasons.is_empty() && d.reasons.len() <= 3);
    assert!((0.0..=1.0).contains(&d.score));
}
