//! Lookup latency of both cache layers at 100,000 entries (docs/benchmarks.md).
//!
//!     cargo run --release -p switchyard-cache --example bench_cache [-- ENTRIES [SCOPES]]
//!
//! Exact layer: key computation (normalize + SHA-256) plus a moka lookup, hits and misses.
//! Semantic layer: ENTRIES 384-dimension unit vectors (clustered by topic like real question
//! embeddings) spread over SCOPES scopes (default 100; scopes under 2,048 entries are
//! scanned exactly, bigger ones get an HNSW graph), plus the verifier on the best candidate. The
//! embedding of the question itself is not included (see the local engine's benchmark for that).

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_api::ChatCompletionRequest;
use switchyard_cache::{exact_key, CachedEntry, ExactStore, SemanticIndex};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<34} p50 {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples[samples.len() - 1].as_secs_f64() * 1e6
    );
}

/// xorshift: deterministic vectors without pulling in a RNG crate.
struct Rng(u64);
impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
    fn unit(&mut self, dims: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dims).map(|_| self.next_f32()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}

fn entry(i: usize) -> Arc<CachedEntry> {
    Arc::new(CachedEntry {
        response: serde_json::json!({"id": format!("c{i}"), "choices": [{"index": 0, "message": {"role": "assistant", "content": "An answer of a typical length, a sentence or two."}, "finish_reason": "stop"}]}),
        tenant: "acme".into(),
        model: "small".into(),
        model_used: "small".into(),
        provider: "openai".into(),
        cost_usd: 0.0001,
        prompt_tokens: 20,
        completion_tokens: 30,
        tags: vec![],
        documents: vec![],
        question: format!("How do I configure feature number {i} of the product?"),
        created_ms: 0,
    })
}

fn request(i: usize) -> ChatCompletionRequest {
    serde_json::from_value(serde_json::json!({
        "model": "small",
        "messages": [
            {"role": "system", "content": "You are a helpful support assistant for Acme."},
            {"role": "user", "content": format!("How do I configure feature number {i} of the product?")}
        ]
    }))
    .expect("valid request")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let scope_count: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let ttl = Duration::from_secs(3600);

    let exact = ExactStore::memory(n as u64 * 2);
    let start = Instant::now();
    for i in 0..n {
        exact
            .put(exact_key("acme", &request(i)), entry(i), ttl)
            .await;
    }
    println!("exact: {n} entries inserted in {:.1?}", start.elapsed());
    let requests: Vec<_> = (0..10_000).map(|i| request(i * 29 % (2 * n))).collect();
    let mut hit = Vec::new();
    let mut miss = Vec::new();
    for r in &requests {
        let t = Instant::now();
        let found = exact.get(&exact_key("acme", r)).await;
        let d = t.elapsed();
        if found.is_some() {
            hit.push(d)
        } else {
            miss.push(d)
        }
    }
    report("exact hit (key + lookup)", hit);
    report("exact miss (key + lookup)", miss);

    let semantic = SemanticIndex::new(n);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let scopes: Vec<_> = (0..scope_count)
        .map(|s| exact_key(&format!("t{s}"), &request(0)))
        .collect();
    let start = Instant::now();
    let mut stored = Vec::with_capacity(1000);
    // Questions cluster by topic, as real embeddings do: 1,000 topics, each entry its topic's
    // direction plus its own noise (pairwise similarity within a topic ≈ 0.8).
    let topics: Vec<Vec<f32>> = (0..1000).map(|_| rng.unit(384)).collect();
    for i in 0..n {
        let noise = rng.unit(384);
        let v: Vec<f32> = topics[(i / scope_count) % topics.len()]
            .iter()
            .zip(&noise)
            .map(|(t, e)| t + 0.5 * e)
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let v: Vec<f32> = v.into_iter().map(|x| x / norm).collect();
        if i % (n / 1000).max(1) == 0 {
            stored.push((i, v.clone()));
        }
        semantic.insert(
            scopes[i % scopes.len()],
            exact_key("acme", &request(i)),
            v,
            entry(i),
            ttl,
        );
    }
    println!(
        "semantic: {n} entries in {scope_count} scopes indexed in {:.1?}",
        start.elapsed()
    );
    let mut samples = Vec::new();
    let mut hits = 0;
    for (i, v) in &stored {
        // A near-duplicate of a stored question's vector, asked in the same scope.
        let q: Vec<f32> = v.iter().map(|x| x + rng.next_f32() * 0.002).collect();
        let n2 = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        let q: Vec<f32> = q.into_iter().map(|x| x / n2).collect();
        let question = format!("How do I configure feature number {i} of the product?");
        let t = Instant::now();
        let found = semantic.lookup(&scopes[i % scopes.len()], &question, &q, 0.85);
        samples.push(t.elapsed());
        if matches!(found, switchyard_cache::SemanticLookup::Hit { .. }) {
            hits += 1;
        }
    }
    println!("semantic: {hits}/{} near-duplicates found", stored.len());
    report("semantic lookup (index + verifier)", samples);
}
