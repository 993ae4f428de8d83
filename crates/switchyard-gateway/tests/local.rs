//! The in-process local tier (`kind = "local"`) behind the real HTTP server: chat, streaming,
//! embeddings, model listing and context errors, with the models `make setup` fetches.

mod common;

use common::{error_of, TestGateway, ADMIN_KEY};
use futures::StreamExt;
use serde_json::{json, Value};

fn local_config() -> String {
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let chat = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        chat.is_file(),
        "{} is missing: run `make setup`",
        chat.display()
    );
    format!(
        r#"
[[providers]]
name = "local"
kind = "local"
model_path = {chat:?}
embedding_model_path = {embed:?}
parallel = 4
context_size = 2048

[[models]]
name = "local-chat"
provider = "local"
upstream = "smollm2-135m-instruct"

[[models]]
name = "local-embed"
provider = "local"
upstream = "all-minilm-l6-v2"
"#,
        chat = chat.display().to_string(),
        embed = models.join("all-MiniLM-L6-v2").display().to_string(),
    )
}

async fn start() -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/switchyard.db", dir.path().display());
    TestGateway::start_with(dir, &store, &local_config()).await
}

fn france(stream: bool) -> Value {
    json!({
        "model": "local-chat",
        "temperature": 0,
        "max_tokens": 40,
        "stream": stream,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]
    })
}

#[tokio::test]
async fn local_chat_answers_and_is_logged() {
    let gw = start().await;
    let resp = gw.chat(ADMIN_KEY, france(false)).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(resp.headers()["x-switchyard-provider"], "local");
    let body: Value = resp.json().await.unwrap();
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("Paris"), "{body}");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert!(["stop", "length"].contains(&body["choices"][0]["finish_reason"].as_str().unwrap()));
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 5);
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let logged: Value = gw
        .admin_get(&format!("/admin/requests/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(logged["provider"], "local", "{logged}");
    assert_eq!(logged["status"], 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn local_chat_streams_tokens_then_finishes() {
    let gw = start().await;
    let mut body = france(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = gw.chat(ADMIN_KEY, body).await;
    assert_eq!(resp.status(), 200);
    let mut raw = String::new();
    let mut bytes = resp.bytes_stream();
    while let Some(chunk) = bytes.next().await {
        raw.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let events: Vec<Value> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(raw.trim_end().ends_with("data: [DONE]"), "{raw}");
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.contains("Paris"), "{text:?}");
    let content_chunks = events
        .iter()
        .filter(|e| e["choices"][0]["delta"]["content"].is_string())
        .count();
    assert!(content_chunks > 1, "tokens arrive one by one: {raw}");
    assert!(events
        .iter()
        .any(|e| e["choices"][0]["finish_reason"].is_string()));
    assert!(
        events.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn local_embeddings_are_unit_vectors_in_both_encodings() {
    let gw = start().await;
    let resp = gw
        .client
        .post(format!("{}/v1/embeddings", gw.url))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"model": "local-embed", "input": ["first text", "a second, longer text"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        let v: Vec<f64> = serde_json::from_value(item["embedding"].clone()).unwrap();
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 4);

    let resp = gw
        .client
        .post(format!("{}/v1/embeddings", gw.url))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"model": "local-embed", "input": "first text", "encoding_format": "base64"}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let encoded = body["data"][0]["embedding"]
        .as_str()
        .expect("base64 string");
    assert_eq!(encoded.len(), (384 * 4usize).div_ceil(3) * 4);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_model_list_shows_the_local_models() {
    let gw = start().await;
    let body: Value = gw
        .client
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"local-chat") && ids.contains(&"local-embed"),
        "{ids:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_prompt_beyond_the_context_is_a_400_not_a_crash() {
    let gw = start().await;
    let resp = gw
        .chat(
            ADMIN_KEY,
            json!({"model": "local-chat", "messages": [{"role": "user", "content": "word ".repeat(4000)}]}),
        )
        .await;
    let (status, body) = error_of(resp).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "context_length_exceeded", "{body}");
    // The engine is still serving.
    let resp = gw.chat(ADMIN_KEY, france(false)).await;
    assert_eq!(resp.status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn token_id_input_to_the_local_embedder_is_a_400() {
    let gw = start().await;
    let resp = gw
        .client
        .post(format!("{}/v1/embeddings", gw.url))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"model": "local-embed", "input": [1, 2, 3]}))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(status, 400, "{body}");
    gw.shutdown().await;
}
