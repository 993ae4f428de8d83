//! Apply latency of the embedded router: p50/p99 over 10k calls on a short prompt and on a
//! ~2,000-token prompt.
//!
//! `cargo run --release -p switchyard-router --example bench_router`

use std::time::Instant;

use switchyard_api::{ChatMessage, Role};
use switchyard_router::ComplexityRouter;

const CALLS: usize = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let built = Instant::now();
    let router = ComplexityRouter::embedded()?;
    println!(
        "ComplexityRouter::embedded(): {:.1} ms (once, at startup)",
        built.elapsed().as_secs_f64() * 1e3
    );
    let short = vec![ChatMessage::new(
        Role::User,
        "What is the capital of France?",
    )];
    let paragraph = "We need to migrate the billing service to the new event pipeline. \
        The current implementation polls the database every few seconds, which causes load \
        spikes, and the retry logic sometimes double-charges customers when a timeout occurs. \
        Please analyze the design, propose an idempotent architecture, and list the steps. ";
    let code = "```python\ndef charge(customer, amount):\n    for attempt in range(3):\n        try:\n            return gateway.charge(customer.id, amount)\n        except Timeout:\n            continue\n```\n";
    let mut long_text = String::new();
    while long_text.len() < 8_000 {
        long_text.push_str(paragraph);
        long_text.push_str("\n\n");
        long_text.push_str(code);
        long_text.push('\n');
    }
    let long = vec![
        ChatMessage::new(Role::System, "You are a senior backend engineer."),
        ChatMessage::new(Role::User, long_text),
    ];
    for (name, messages) in [("short prompt", &short), ("~2,000-token prompt", &long)] {
        let mut samples = Vec::with_capacity(CALLS);
        let mut tiers = 0u64;
        for _ in 0..CALLS {
            let start = Instant::now();
            let d = router.classify(messages);
            samples.push(start.elapsed());
            tiers += u64::from(d.tier);
        }
        samples.sort_unstable();
        let p50 = samples[CALLS / 2];
        let p99 = samples[CALLS * 99 / 100];
        println!(
            "{name}: p50 {:.1} µs, p99 {:.1} µs over {CALLS} calls (mean tier {:.2})",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            tiers as f64 / CALLS as f64
        );
    }
    Ok(())
}
