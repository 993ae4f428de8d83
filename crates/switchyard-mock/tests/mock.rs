use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use switchyard_api::{ChatCompletionChunk, ChatCompletionResponse, EmbeddingsResponse};
use switchyard_mock::MockUpstream;

async fn mock() -> MockUpstream {
    MockUpstream::start().await.expect("mock starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(mock: &MockUpstream, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", mock.base_url()))
        .json(&body)
        .send()
        .await
        .expect("request sent")
}

async fn chat(mock: &MockUpstream, body: Value) -> reqwest::Response {
    post(mock, "/chat/completions", body).await
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"}
    ]})
}

fn streaming(model: &str, include_usage: bool) -> Value {
    let mut body = hello(model);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": include_usage});
    body
}

/// The `data:` payloads of an SSE body, in order.
fn events(body: &str) -> Vec<&str> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect()
}

fn parse_chunks(body: &str) -> Vec<ChatCompletionChunk> {
    events(body)
        .into_iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).expect("chunk parses"))
        .collect()
}

async fn error_code(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error body is JSON");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    (status, body)
}

#[tokio::test]
async fn plain_chat_is_deterministic_and_counted() {
    let mock = mock().await;
    let resp = chat(&mock, hello("gpt-4o-mini")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let parsed: ChatCompletionResponse = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(parsed.first_text(), "mock reply: hello there");
    assert_eq!(parsed.model, "gpt-4o-mini");
    assert!(parsed.id.starts_with("chatcmpl-mock-"));
    assert!(parsed.created > 1_600_000_000);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // "be brief" + "hello there" = 19 chars -> 5 tokens; the reply has 4 words.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})
    );

    chat(&mock, hello("gpt-4o-mini")).await;
    chat(&mock, hello("other")).await;
    assert_eq!(mock.calls("gpt-4o-mini"), 2);
    assert_eq!(mock.calls("other"), 1);
    assert_eq!(mock.calls("never"), 0);
    assert_eq!(mock.total_calls(), 3);
    assert_eq!(mock.last_request("other"), Some(hello("other")));
    assert_eq!(mock.last_request("never"), None);

    let calls: Value = client()
        .get(format!("http://{}/_mock/calls", mock.addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls, json!({"gpt-4o-mini": 2, "other": 1}));
    let reset = client()
        .post(format!("http://{}/_mock/reset", mock.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(mock.total_calls(), 0);
    assert_eq!(mock.calls("gpt-4o-mini"), 0);
}

#[tokio::test]
async fn multipart_content_and_minimum_usage() {
    let mock = mock().await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
        {"type": "text", "text": "b"}
    ]}]});
    let body: Value = chat(&mock, body).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "mock reply: a\nb");
    assert_eq!(body["usage"]["prompt_tokens"], 1);
    assert_eq!(body["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn stream_with_and_without_usage() {
    let mock = mock().await;
    let text = chat(&mock, streaming("m", true))
        .await
        .text()
        .await
        .unwrap();
    let data = events(&text);
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks = parse_chunks(&text);
    let first = &chunks[0].choices[0].delta;
    assert_eq!(serde_json::to_value(first.role).unwrap(), "assistant");
    assert_eq!(first.content.as_deref(), Some(""));
    let words: Vec<_> = chunks[1..5]
        .iter()
        .map(|c| c.choices[0].delta.content.clone().unwrap())
        .collect();
    assert_eq!(words, ["mock ", "reply: ", "hello ", "there"]);
    assert_eq!(chunks[5].choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(chunks[..6].iter().all(|c| c.usage.is_none()));
    assert!(chunks[6].choices.is_empty());
    assert_eq!(chunks[6].usage.map(|u| u.completion_tokens), Some(4));
    assert_eq!(chunks.len(), 7);
    for raw in &data[..6] {
        assert!(!raw.contains("usage"), "{raw}");
    }

    let text = chat(&mock, streaming("m", false))
        .await
        .text()
        .await
        .unwrap();
    let chunks = parse_chunks(&text);
    assert_eq!(chunks.len(), 6);
    assert!(chunks
        .iter()
        .all(|c| c.usage.is_none() && !c.choices.is_empty()));

    let text = chat(&mock, streaming("m+no-usage", true))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(parse_chunks(&text).len(), 6);
    assert!(!text.contains("\"usage\""));
}

#[tokio::test]
async fn tools_and_json_mode() {
    let mock = mock().await;
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time"}}
    ]);
    let mut body = hello("m");
    body["tools"] = tools;
    let resp: Value = chat(&mock, body.clone()).await.json().await.unwrap();
    let choice = &resp["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "call_mock_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"}}])
    );
    serde_json::from_value::<ChatCompletionResponse>(resp).unwrap();

    body["tool_choice"] = json!({"type": "function", "function": {"name": "get_time"}});
    let resp: Value = chat(&mock, body.clone()).await.json().await.unwrap();
    assert_eq!(
        resp["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );

    body["tool_choice"] = json!("none");
    let resp: Value = chat(&mock, body.clone()).await.json().await.unwrap();
    assert_eq!(
        resp["choices"][0]["message"]["content"],
        "mock reply: hello there"
    );

    body["tool_choice"] = json!("auto");
    body["stream"] = json!(true);
    let text = chat(&mock, body).await.text().await.unwrap();
    let chunks = parse_chunks(&text);
    let call = chunks[1].choices[0].delta.tool_calls.as_ref().unwrap();
    assert_eq!(call[0].id.as_deref(), Some("call_mock_1"));
    let function = call[0].function.as_ref().unwrap();
    assert_eq!(function.name.as_deref(), Some("get_weather"));
    assert_eq!(function.arguments.as_deref(), Some("{}"));
    assert_eq!(
        chunks[2].choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );

    let mut body = hello("m");
    body["response_format"] = json!({"type": "json_object"});
    let resp: Value = chat(&mock, body).await.json().await.unwrap();
    let content: Value =
        serde_json::from_str(resp["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"reply": "mock reply: hello there"}));
}

#[tokio::test]
async fn status_and_retry_headers() {
    let mock = mock().await;
    let resp = chat(&mock, hello("status-503")).await;
    assert_eq!(error_code(resp).await.0, 503);

    let resp = chat(&mock, hello("status-429")).await;
    assert_eq!(resp.headers()["retry-after-ms"], "10");
    assert!(resp.headers().get("retry-after").is_none());
    let (status, body) = error_code(resp).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (429, Some("rate_limit_error"))
    );

    let resp = chat(&mock, hello("status-429+retry-after-2")).await;
    assert_eq!(resp.headers()["retry-after"], "2");
    assert!(resp.headers().get("retry-after-ms").is_none());
    assert_eq!(mock.calls("status-503"), 1);

    let resp = chat(&mock, hello("context-limit")).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {
            "message": "This model's maximum context length is 4096 tokens. However, your messages resulted in 9000 tokens.",
            "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
    );
}

#[tokio::test]
async fn flaky_fails_n_times_per_model_then_recovers() {
    let mock = mock().await;
    let statuses = |model: &'static str, n: usize| {
        let mock = &mock;
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(chat(mock, hello(model)).await.status().as_u16());
            }
            out
        }
    };
    assert_eq!(statuses("flaky-500-2", 3).await, [500, 500, 200]);
    assert_eq!(statuses("m+flaky-429-1", 2).await, [429, 200]);
    assert_eq!(statuses("flaky-500-2", 1).await, [200]);
    mock.reset();
    assert_eq!(statuses("flaky-500-2", 3).await, [500, 500, 200]);

    let resp = chat(&mock, hello("flaky-429-1+x")).await;
    assert_eq!(resp.headers()["retry-after-ms"], "10");
}

#[tokio::test]
async fn header_overrides_model() {
    let mock = mock().await;
    let send = |model: &str, fault: &str| {
        client()
            .post(format!("{}/chat/completions", mock.base_url()))
            .header("x-mock-fault", fault)
            .json(&hello(model))
            .send()
    };
    assert_eq!(send("gpt-4o", "status-502").await.unwrap().status(), 502);
    assert_eq!(send("status-500", "no-usage").await.unwrap().status(), 200);
    assert_eq!(mock.calls("gpt-4o"), 1);
}

#[tokio::test]
async fn slow_and_combined_with_flaky() {
    let mock = mock().await;
    let start = Instant::now();
    let resp = chat(&mock, hello("slow-150+flaky-503-1")).await;
    assert_eq!(resp.status(), 503);
    assert!(start.elapsed() >= Duration::from_millis(150));
    let start = Instant::now();
    assert_eq!(
        chat(&mock, hello("slow-150+flaky-503-1")).await.status(),
        200
    );
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn hang_never_answers() {
    let mock = mock().await;
    let pending =
        tokio::time::timeout(Duration::from_millis(200), chat(&mock, hello("hang"))).await;
    assert!(pending.is_err(), "a hang must still be pending");
    assert_eq!(mock.calls("hang"), 1);
}

#[tokio::test]
async fn chunk_delay_paces_the_stream() {
    let mock = mock().await;
    let start = Instant::now();
    let resp = chat(&mock, streaming("chunk-delay-30", true)).await;
    let head_after = start.elapsed();
    let text = resp.text().await.unwrap();
    // Eight events (role, four words, finish, usage, [DONE]) -> seven gaps.
    assert!(
        start.elapsed() >= Duration::from_millis(7 * 30),
        "{:?}",
        start.elapsed()
    );
    assert!(
        head_after < Duration::from_millis(150),
        "headers come at once: {head_after:?}"
    );
    assert_eq!(parse_chunks(&text).len(), 7);
}

#[tokio::test]
async fn broken_stream_ends_with_an_error() {
    let mock = mock().await;
    let resp = chat(&mock, streaming("broken-stream", true)).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(item) = body.next().await {
        match item {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body must end with an error, not a clean end");
    let text = String::from_utf8(received).unwrap();
    let chunks = parse_chunks(&text);
    assert_eq!(chunks.len(), 3, "{text}");
    assert!(!text.contains("[DONE]"));

    let resp = chat(&mock, hello("broken-stream")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err());
}

#[tokio::test]
async fn malformed_bodies() {
    let mock = mock().await;
    let resp = chat(&mock, hello("malformed")).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    let text = chat(&mock, streaming("malformed", false))
        .await
        .text()
        .await
        .unwrap();
    let bad = events(&text)
        .into_iter()
        .filter(|e| *e != "[DONE]" && serde_json::from_str::<Value>(e).is_err())
        .count();
    assert_eq!(bad, 1, "{text}");
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let mock = mock().await;
    let resp = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = error_code(resp).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    let (status, _) = error_code(chat(&mock, json!({"messages": []})).await).await;
    assert_eq!(status, 400);
    let (status, _) =
        error_code(post(&mock, "/embeddings", json!({"model": "e", "input": ""})).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        mock.total_calls(),
        1,
        "only the well-formed embeddings call counts"
    );
}

#[tokio::test]
async fn embeddings_are_unit_vectors() {
    let mock = mock().await;
    let resp = post(
        &mock,
        "/embeddings",
        json!({"model": "e", "input": ["hello", "world", "hello"]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let parsed: EmbeddingsResponse = resp.json().await.unwrap();
    assert_eq!(parsed.data.len(), 3);
    let vectors: Vec<Vec<f64>> = parsed
        .data
        .iter()
        .map(|d| serde_json::from_value(d.embedding.clone()).unwrap())
        .collect();
    for v in &vectors {
        assert_eq!(v.len(), 8);
        assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-4);
    }
    assert_eq!(vectors[0], vectors[2]);
    assert_ne!(vectors[0], vectors[1]);
    assert_eq!(parsed.usage.prompt_tokens, 4); // 15 chars
    assert_eq!(parsed.model, "e");

    let body: Value = post(
        &mock,
        "/embeddings",
        json!({"model": "e", "input": "x", "dimensions": 16}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        body["data"][0]["embedding"].as_array().map(Vec::len),
        Some(16)
    );

    let body: Value = post(
        &mock,
        "/embeddings",
        json!({"model": "e+no-usage", "input": "x"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(body.get("usage").is_none());
    let resp = post(
        &mock,
        "/embeddings",
        json!({"model": "status-500", "input": "x"}),
    )
    .await;
    assert_eq!(resp.status(), 500);
    assert_eq!(mock.calls("e"), 2);
}

#[tokio::test]
async fn misc_endpoints_and_shutdown() {
    let mock = mock().await;
    let base = format!("http://{}", mock.addr());
    assert_eq!(
        mock.base_url(),
        format!("http://127.0.0.1:{}/v1", mock.addr().port())
    );
    let health = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let models: Value = client()
        .get(format!("{}/models", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert!(models["data"].as_array().is_some_and(|d| !d.is_empty()));
    let missing = client()
        .get(format!("{base}/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // A pooled keep-alive connection must not outlive the server.
    let pooled = client();
    let url = format!("{}/chat/completions", mock.base_url());
    assert!(pooled.post(&url).json(&hello("m")).send().await.is_ok());
    drop(mock);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(pooled.post(&url).json(&hello("m")).send().await.is_err());
}
