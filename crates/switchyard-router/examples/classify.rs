//! Classifies prompts read from stdin (one per line) with the embedded model and prints the
//! decision, for eyeballing the router on new prompts:
//!
//! `echo "Design a distributed rate limiter." | cargo run --release -p switchyard-router --example classify`

use std::io::BufRead;

use switchyard_api::{ChatMessage, Role};
use switchyard_router::ComplexityRouter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let router = ComplexityRouter::embedded()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let d = router.classify(&[ChatMessage::new(Role::User, line.replace("\\n", "\n"))]);
        let reasons: Vec<String> = d
            .reasons
            .iter()
            .map(|(n, c)| format!("{n} {c:+.2}"))
            .collect();
        println!(
            "tier {} score {:.3} [{}] {}",
            d.tier,
            d.score,
            reasons.join(", "),
            line
        );
    }
    Ok(())
}
