//! Prints the MiniLM cosine similarity of every pair in a JSONL file of `{"a", "b", ...}` pairs,
//! one per line in input order, so the verifier can be studied without re-embedding.
//!
//! `cargo run --release -p switchyard-cache --example pair_similarity -- PAIRS.jsonl > COS.txt`

use std::collections::HashMap;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let input = std::env::args()
        .nth(1)
        .ok_or("usage: pair_similarity PAIRS.jsonl")?;
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2");
    let embedder = switchyard_local::Embedder::load(&model)?;
    let mut pairs = Vec::new();
    for line in std::fs::read_to_string(&input)?.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)?;
        let text = |k: &str| v[k].as_str().map(str::to_owned).ok_or("pair without text");
        pairs.push((text("a")?, text("b")?));
    }
    let mut texts: Vec<&str> = pairs
        .iter()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    texts.sort_by_key(|t| t.len());
    texts.dedup();
    let mut vectors: HashMap<&str, Vec<f32>> = HashMap::new();
    for chunk in texts.chunks(64) {
        let out = embedder.embed(chunk)?;
        for (t, v) in chunk.iter().zip(out.vectors) {
            vectors.insert(t, v);
        }
    }
    for (a, b) in &pairs {
        let dot: f32 = vectors[a.as_str()]
            .iter()
            .zip(&vectors[b.as_str()])
            .map(|(x, y)| x * y)
            .sum();
        println!("{dot:.6}");
    }
    Ok(())
}
