//! The engine against the real SmolLM2-135M model that `make setup` fetches into models/.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use switchyard_local::{
    ChatEngine, ChatEngineConfig, Embedder, EngineEvent, FinishReason, Finished, LocalError,
    Sampling,
};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn model_path() -> PathBuf {
    let path = models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run `make setup`",
        path.display()
    );
    path
}

fn engine() -> Arc<ChatEngine> {
    static ENGINE: OnceLock<Arc<ChatEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = ChatEngineConfig::new(model_path());
            config.parallel = 4;
            config.context_size = 4096;
            ChatEngine::start(config).expect("the model loads")
        })
        .clone()
}

fn greedy(max_tokens: u32) -> Sampling {
    Sampling {
        temperature: 0.0,
        top_p: 1.0,
        seed: 1,
        max_tokens,
        stop: Vec::new(),
    }
}

fn chat(system: Option<&str>, user: &str) -> Vec<(String, String)> {
    let mut m = Vec::new();
    if let Some(s) = system {
        m.push(("system".to_owned(), s.to_owned()));
    }
    m.push(("user".to_owned(), user.to_owned()));
    m
}

async fn generate(
    engine: &ChatEngine,
    messages: &[(String, String)],
    s: Sampling,
) -> (String, Finished) {
    let prompt = engine.render(messages).unwrap();
    let mut rx = engine.submit(prompt, s).unwrap();
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            EngineEvent::Text(t) => text.push_str(&t),
            EngineEvent::Done(done) => return (text, done),
            EngineEvent::Failed(m) => panic!("engine failed: {m}"),
        }
    }
    panic!("the engine closed the stream without finishing");
}

#[tokio::test]
async fn answers_a_factual_question() {
    let e = engine();
    let (text, done) = generate(
        &e,
        &chat(None, "What is the capital of France?"),
        greedy(48),
    )
    .await;
    assert!(text.contains("Paris"), "{text:?}");
    assert!(done.prompt_tokens > 5);
    assert!(done.completion_tokens > 0 && done.completion_tokens <= 48);
}

#[tokio::test]
async fn max_tokens_ends_with_length() {
    let e = engine();
    let (_, done) = generate(
        &e,
        &chat(None, "Write a long story about a dragon."),
        greedy(5),
    )
    .await;
    assert_eq!(done.reason, FinishReason::Length);
    assert_eq!(done.completion_tokens, 5);
}

#[tokio::test]
async fn a_stop_sequence_cuts_the_answer() {
    let e = engine();
    let messages = chat(None, "Explain what a train is.");
    let (full, _) = generate(&e, &messages, greedy(40)).await;
    // Greedy decoding is deterministic: stop at the fourth word of the same answer.
    let stop = full
        .split_whitespace()
        .nth(3)
        .expect("a few words")
        .to_owned();
    let (cut, done) = generate(
        &e,
        &messages,
        Sampling {
            stop: vec![stop.clone()],
            ..greedy(40)
        },
    )
    .await;
    assert_eq!(done.reason, FinishReason::Stop);
    assert_eq!(
        cut,
        full[..full.find(&stop).unwrap()],
        "stop {stop:?} in {full:?}"
    );
}

#[tokio::test]
async fn concurrent_requests_progress_together() {
    // Its own engine: the shared one's sequences are busy with the other tests.
    let mut config = ChatEngineConfig::new(model_path());
    config.parallel = 4;
    config.context_size = 2048;
    let e = ChatEngine::start(config).unwrap();
    let prompts = [
        "Name a fruit.",
        "Name a colour.",
        "Name an animal.",
        "Name a city.",
    ];
    let (tx, mut order) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let prompt = e.render(&chat(None, p)).unwrap();
        let mut rx = e.submit(prompt, greedy(40)).unwrap();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut first = true;
            while let Some(ev) = rx.recv().await {
                match ev {
                    EngineEvent::Text(_) if first => {
                        first = false;
                        let _ = tx.send(("first", i));
                    }
                    EngineEvent::Done(_) => {
                        let _ = tx.send(("done", i));
                    }
                    _ => {}
                }
            }
        }));
    }
    drop(tx);
    for t in tasks {
        t.await.unwrap();
    }
    let mut events = Vec::new();
    while let Some(ev) = order.recv().await {
        events.push(ev);
    }
    let first_done = events.iter().position(|(k, _)| *k == "done").unwrap();
    let firsts = events[..first_done]
        .iter()
        .filter(|(k, _)| *k == "first")
        .count();
    assert_eq!(
        firsts, 4,
        "every request started before any finished: {events:?}"
    );
}

#[tokio::test]
async fn a_shared_system_prompt_is_computed_once() {
    let e = engine();
    let system = "You are the support assistant of Acme Rail. ".repeat(20);
    let (_, first) = generate(
        &e,
        &chat(Some(&system), "When does the first train leave?"),
        greedy(4),
    )
    .await;
    let (_, second) = generate(
        &e,
        &chat(Some(&system), "Can I bring a bicycle?"),
        greedy(4),
    )
    .await;
    assert!(first.prompt_tokens > 150);
    assert!(
        second.cached_prompt_tokens as f64 > 0.8 * first.prompt_tokens as f64,
        "reused {} of {} prompt tokens",
        second.cached_prompt_tokens,
        second.prompt_tokens
    );
}

#[tokio::test]
async fn a_cancelled_request_frees_its_sequence() {
    let e = engine();
    for _ in 0..6 {
        let prompt = e
            .render(&chat(None, "Tell me everything about trains."))
            .unwrap();
        let mut rx = e.submit(prompt, greedy(400)).unwrap();
        assert!(matches!(rx.recv().await, Some(EngineEvent::Text(_))));
        drop(rx);
    }
    // With 4 sequences, the 6 abandoned generations must have been freed for this one to run.
    let (text, _) = generate(
        &e,
        &chat(None, "What is the capital of France?"),
        greedy(24),
    )
    .await;
    assert!(!text.is_empty());
}

#[tokio::test]
async fn a_prompt_longer_than_the_context_is_refused() {
    let e = engine();
    let long = "word ".repeat(5000);
    let prompt = e.render(&chat(None, &long)).unwrap();
    match e.submit(prompt, greedy(4)) {
        Err(LocalError::ContextLength { limit, .. }) => assert_eq!(limit, 4096),
        other => panic!(
            "expected a context-length error, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[test]
fn a_corrupt_model_file_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF but not really a model").unwrap();
    match ChatEngine::start(ChatEngineConfig::new(&bad)) {
        Err(LocalError::Load(m)) => assert!(m.contains("not a loadable GGUF"), "{m}"),
        _ => panic!("a corrupt file must not load"),
    }
    match ChatEngine::start(ChatEngineConfig::new(dir.path().join("missing.gguf"))) {
        Err(LocalError::Load(m)) => assert!(m.contains("not found"), "{m}"),
        _ => panic!("a missing file must not load"),
    }
}

#[test]
fn embeddings_are_unit_vectors_that_rank_paraphrases_first() {
    let embedder = Embedder::load(&models_dir().join("all-MiniLM-L6-v2")).unwrap();
    let out = embedder
        .embed(&[
            "How do I reset my password?",
            "I forgot my password, how can I change it?",
            "What is the weather in Paris tomorrow?",
        ])
        .unwrap();
    assert_eq!(out.vectors.len(), 3);
    for v in &out.vectors {
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let para = dot(&out.vectors[0], &out.vectors[1]);
    let other = dot(&out.vectors[0], &out.vectors[2]);
    assert!(
        para > 0.6 && other < 0.3,
        "paraphrase {para}, unrelated {other}"
    );
    assert!(out.tokens > 20);
}

#[test]
fn a_missing_embedding_model_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    match Embedder::load(dir.path()) {
        Err(LocalError::Load(m)) => assert!(m.contains("config.json not found"), "{m}"),
        _ => panic!("an empty folder must not load"),
    }
}
