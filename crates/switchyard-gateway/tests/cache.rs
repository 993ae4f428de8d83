//! The response cache behind the real HTTP server: exact hits that never reach the upstream,
//! tenant isolation, request controls, streamed replays, verified semantic hits, invalidation,
//! stats, and the Redis backend shared by two gateways.

mod common;

use common::{TestGateway, ACME_KEY, ADMIN_KEY};
use serde_json::{json, Value};

fn models_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn cache_config(state: &str) -> String {
    let embed = models_dir().join("all-MiniLM-L6-v2");
    assert!(
        embed.is_dir(),
        "{} is missing: run `make setup`",
        embed.display()
    );
    format!(
        r#"
{state}
[cache]
enabled = true
semantic = true
embedding_model = "local-embed"

[[providers]]
name = "local"
kind = "local"
embedding_model_path = {embed:?}

[[models]]
name = "local-embed"
provider = "local"
"#,
        embed = embed.display().to_string()
    )
}

async fn start(state: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/switchyard.db", dir.path().display());
    TestGateway::start_with(dir, &store, &cache_config(state)).await
}

fn ask(question: &str) -> Value {
    json!({"model": "small", "messages": [{"role": "user", "content": question}]})
}

async fn send(
    gw: &TestGateway,
    key: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (String, Value) {
    let mut req = gw
        .client
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let outcome = resp.headers()["x-switchyard-cache"]
        .to_str()
        .unwrap()
        .to_owned();
    let is_stream = resp.headers()["content-type"] == "text/event-stream";
    let body = if is_stream {
        Value::String(resp.text().await.unwrap())
    } else {
        resp.json().await.unwrap()
    };
    (outcome, body)
}

/// Waits until the off-path store has written the answer (it runs after the response).
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
}

fn answer(v: &Value) -> &str {
    v["choices"][0]["message"]["content"].as_str().unwrap()
}

#[tokio::test]
async fn a_repeated_request_is_an_exact_hit_that_never_reaches_the_upstream() {
    let gw = start("").await;
    let (first, a) = send(&gw, ACME_KEY, ask("What is the capital of France?"), &[]).await;
    assert_eq!(first, "miss");
    settle().await;
    let calls = gw.mock.calls("gpt-4o-mini");
    let (second, b) = send(&gw, ACME_KEY, ask("What is the capital of France?"), &[]).await;
    assert_eq!(second, "hit-exact");
    assert_eq!(answer(&a), answer(&b));
    assert_eq!(
        gw.mock.calls("gpt-4o-mini"),
        calls,
        "the upstream was not called again"
    );

    // Another tenant never sees it.
    let (other, _) = send(&gw, ADMIN_KEY, ask("What is the capital of France?"), &[]).await;
    assert_eq!(other, "miss");

    // no-cache bypasses the lookup; no-store neither reads nor writes.
    let (bypass, _) = send(
        &gw,
        ACME_KEY,
        ask("What is the capital of France?"),
        &[("cache-control", "no-cache")],
    )
    .await;
    assert_eq!(bypass, "bypass");
    assert_eq!(gw.mock.calls("gpt-4o-mini"), calls + 2);
    let (_, _) = send(
        &gw,
        ACME_KEY,
        ask("A question never stored"),
        &[("cache-control", "no-store")],
    )
    .await;
    settle().await;
    let (again, _) = send(&gw, ACME_KEY, ask("A question never stored"), &[]).await;
    assert_eq!(again, "miss");

    // The request log says what happened.
    gw.state.log.flush().await;
    let rows: Value = gw
        .admin_get("/admin/requests?limit=20")
        .await
        .json()
        .await
        .unwrap();
    let outcomes: Vec<&str> = rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["cache"].as_str())
        .collect();
    assert!(
        outcomes.contains(&"hit-exact") && outcomes.contains(&"bypass"),
        "{outcomes:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn random_requests_are_not_cached_unless_seeded() {
    let gw = start("").await;
    let mut body = ask("Tell me a joke");
    body["temperature"] = json!(0.9);
    send(&gw, ACME_KEY, body.clone(), &[]).await;
    settle().await;
    let (outcome, _) = send(&gw, ACME_KEY, body.clone(), &[]).await;
    assert_eq!(outcome, "bypass");
    body["seed"] = json!(42);
    send(&gw, ACME_KEY, body.clone(), &[]).await;
    settle().await;
    assert_eq!(send(&gw, ACME_KEY, body, &[]).await.0, "hit-exact");
    gw.shutdown().await;
}

#[tokio::test]
async fn streams_fill_the_cache_and_replay_as_streams() {
    let gw = start("").await;
    let mut body = ask("Which ocean is the largest?");
    body["stream"] = json!(true);
    let (first, live) = send(&gw, ACME_KEY, body.clone(), &[]).await;
    assert_eq!(first, "miss");
    settle().await;
    let (second, replay) = send(&gw, ACME_KEY, body.clone(), &[]).await;
    assert_eq!(second, "hit-exact");
    let text = |sse: &Value| -> String {
        sse.as_str()
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|e| {
                e["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    };
    assert!(!text(&live).is_empty());
    assert_eq!(text(&live), text(&replay));
    assert!(replay
        .as_str()
        .unwrap()
        .trim_end()
        .ends_with("data: [DONE]"));
    // And a non-streaming client gets the same answer as JSON.
    let (third, json_body) = send(&gw, ACME_KEY, ask("Which ocean is the largest?"), &[]).await;
    assert_eq!(third, "hit-exact");
    assert_eq!(answer(&json_body), text(&live));
    gw.shutdown().await;
}

#[tokio::test]
async fn paraphrases_hit_the_semantic_layer_and_near_misses_do_not() {
    let gw = start("").await;
    let (_, original) = send(&gw, ACME_KEY, ask("How do I reset my password?"), &[]).await;
    send(&gw, ACME_KEY, ask("What is the capital of France?"), &[]).await;
    settle().await;
    let (outcome, para) = send(&gw, ACME_KEY, ask("How can I reset my password?"), &[]).await;
    assert_eq!(outcome, "hit-semantic");
    assert_eq!(answer(&para), answer(&original));
    for near_miss in [
        "What is the capital of Germany?",
        "What is the capital of France in 1700?",
    ] {
        let (outcome, _) = send(&gw, ACME_KEY, ask(near_miss), &[]).await;
        assert_eq!(outcome, "miss", "{near_miss}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn invalidation_by_tag_and_document_version_and_stats() {
    let gw = start("").await;
    let tagged = [
        ("x-switchyard-tags", "faq"),
        ("x-switchyard-cache-deps", "handbook@3"),
    ];
    send(&gw, ACME_KEY, ask("What are the opening hours?"), &tagged).await;
    settle().await;
    assert_eq!(
        send(&gw, ACME_KEY, ask("What are the opening hours?"), &tagged)
            .await
            .0,
        "hit-exact"
    );
    // A request that declares a newer document version does not get the old answer.
    let newer = [
        ("x-switchyard-tags", "faq"),
        ("x-switchyard-cache-deps", "handbook@4"),
    ];
    assert_eq!(
        send(&gw, ACME_KEY, ask("What are the opening hours?"), &newer)
            .await
            .0,
        "miss"
    );

    send(&gw, ACME_KEY, ask("Where is the office?"), &tagged).await;
    settle().await;
    let resp = gw
        .admin(
            reqwest::Method::POST,
            "/admin/cache/invalidate",
            ADMIN_KEY,
            Some(json!({"tag": "faq"})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["removed"]["exact"].as_u64().unwrap() >= 1, "{body}");
    assert_eq!(
        send(&gw, ACME_KEY, ask("Where is the office?"), &tagged)
            .await
            .0,
        "miss"
    );

    let resp = gw
        .admin(
            reqwest::Method::POST,
            "/admin/cache/invalidate",
            ADMIN_KEY,
            Some(json!({"bogus": 1})),
        )
        .await;
    assert_eq!(resp.status(), 400);

    let stats: Value = gw
        .admin_get("/admin/cache/stats?tenant=acme")
        .await
        .json()
        .await
        .unwrap();
    let faq = stats["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tag"] == "faq")
        .unwrap();
    assert!(faq["hits_exact"].as_u64().unwrap() >= 1, "{stats}");
    assert!(faq["misses"].as_u64().unwrap() >= 2, "{stats}");
    assert!(faq["saved_usd"].as_f64().unwrap() > 0.0, "{stats}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_bad_cache_header_is_a_400() {
    let gw = start("").await;
    let resp = gw
        .client
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(ACME_KEY)
        .header("x-switchyard-cache-ttl", "soon")
        .json(&ask("hi"))
        .send()
        .await
        .unwrap();
    let (status, body) = common::error_of(resp).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_cache_ttl");
    gw.shutdown().await;
}

#[tokio::test]
async fn replicas_share_exact_hits_through_redis() {
    let prefix = format!("sy-test-{}:", uuid::Uuid::new_v4().simple());
    let state = format!("[state]\nurl = \"redis://127.0.0.1:6379\"\nprefix = \"{prefix}\"\n");
    let a = start(&state).await;
    let b = start(&state).await;
    assert_eq!(
        send(&a, ACME_KEY, ask("Shared question?"), &[]).await.0,
        "miss"
    );
    settle().await;
    let calls = b.mock.calls("gpt-4o-mini");
    let (outcome, _) = send(&b, ACME_KEY, ask("Shared question?"), &[]).await;
    assert_eq!(outcome, "hit-exact", "the other replica's answer is shared");
    assert_eq!(b.mock.calls("gpt-4o-mini"), calls);
    let resp = b
        .admin(
            reqwest::Method::POST,
            "/admin/cache/invalidate",
            ADMIN_KEY,
            Some(json!({"tenant": "acme"})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        send(&a, ACME_KEY, ask("Shared question?"), &[]).await.0,
        "miss"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn semantic_entries_survive_a_restart_and_invalidated_ones_stay_gone() {
    let gw = start("").await;
    let store_url = format!("sqlite://{}/switchyard.db", gw.dir.path().display());
    let (first, original) = send(&gw, ACME_KEY, ask("How do I reset my password?"), &[]).await;
    assert_eq!(first, "miss");
    let faq = [("x-switchyard-tags", "faq")];
    send(&gw, ACME_KEY, ask("What are the opening hours?"), &faq).await;
    settle().await;
    let stored = |gw: &TestGateway| {
        let store = gw.state.store.clone();
        async move { store.load_cache_entries(0, 100).await.unwrap().len() }
    };
    assert_eq!(stored(&gw).await, 2, "both answers were persisted");
    let resp = gw
        .admin(
            reqwest::Method::POST,
            "/admin/cache/invalidate",
            ADMIN_KEY,
            Some(json!({"tag": "faq"})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        stored(&gw).await,
        1,
        "the invalidated answer left the store"
    );
    let (mock, dir) = gw.shutdown().await;

    // A new process on the same database and upstream.
    let gw = TestGateway::start_full(dir, mock, &store_url, &cache_config("")).await;
    let calls = gw.mock.calls("gpt-4o-mini");
    let (outcome, para) = send(&gw, ACME_KEY, ask("How can I reset my password?"), &[]).await;
    assert_eq!(outcome, "hit-semantic");
    assert_eq!(answer(&para), answer(&original));
    let (outcome, same) = send(&gw, ACME_KEY, ask("How do I reset my password?"), &[]).await;
    assert_eq!(outcome, "hit-exact");
    assert_eq!(answer(&same), answer(&original));
    assert_eq!(
        gw.mock.calls("gpt-4o-mini"),
        calls,
        "both answered from the restored cache"
    );
    let (outcome, _) = send(&gw, ACME_KEY, ask("What are the opening hours?"), &faq).await;
    assert_eq!(outcome, "miss", "an invalidated answer is not resurrected");
    gw.shutdown().await;
}
