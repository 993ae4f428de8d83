//! Non-streaming chat, embeddings and the model list through the real server.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn chat_returns_upstream_text_usage_and_route_headers() {
    let gw = TestGateway::start().await;
    let resp = gw.chat(ACME_KEY, hello("small")).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert!(h["x-request-id"].to_str().unwrap().starts_with("req_"));
    assert_eq!(h["x-switchyard-model"], "small");
    assert_eq!(h["x-switchyard-provider"], "mock");
    assert_eq!(h["x-switchyard-attempts"], "1");
    let cost: f64 = h["x-switchyard-cost-usd"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply: hello there"
    );
    let usage = &body["usage"];
    let (p, c) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert!(p > 0 && c > 0);
    let expected = (p as f64 * 0.15 + c as f64 * 0.60) / 1e6;
    assert!((cost - expected).abs() < 1e-8, "cost {cost} vs {expected}");
    // The upstream saw its own model id, not our alias, and no gateway-only fields.
    let sent = gw
        .mock
        .last_request("gpt-4o-mini")
        .expect("mock saw the request");
    assert_eq!(sent["model"], "gpt-4o-mini");
    gw.shutdown().await;
}

#[tokio::test]
async fn tools_and_response_format_pass_through() {
    let gw = TestGateway::start().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let resp = gw
        .chat(
            ACME_KEY,
            json!({"model": "small", "messages": [{"role": "user", "content": "weather?"}],
            "tools": tools, "tool_choice": "auto", "metadata": {"use_case": "support"}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let sent = gw.mock.last_request("gpt-4o-mini").unwrap();
    assert_eq!(sent["tools"], tools);
    assert!(
        sent.get("metadata").is_none(),
        "gateway metadata is not forwarded"
    );

    let resp = gw
        .chat(
            ACME_KEY,
            json!({"model": "small", "messages": [{"role": "user", "content": "json please"}],
            "response_format": {"type": "json_object"}}),
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    let content: Value =
        serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["reply"], "mock reply: json please");
    assert_eq!(
        gw.mock.last_request("gpt-4o-mini").unwrap()["response_format"]["type"],
        "json_object"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn embeddings_and_models() {
    let gw = TestGateway::start().await;
    let resp = gw
        .client
        .post(format!("{}/v1/embeddings", gw.url))
        .bearer_auth(ACME_KEY)
        .json(&json!({"model": "small", "input": ["a", "b"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-model"], "small");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);

    let resp = gw
        .client
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"small") && ids.contains(&"large"));
    assert_eq!(body["object"], "list");
    gw.shutdown().await;
}

#[tokio::test]
async fn missing_upstream_usage_is_estimated_for_cost() {
    let gw = TestGateway::start().await;
    let resp = gw.chat(ACME_KEY, hello("no-usage")).await;
    assert_eq!(resp.status(), 200);
    let cost: f64 = resp.headers()["x-switchyard-cost-usd"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0.0);
    gw.shutdown().await;
}
