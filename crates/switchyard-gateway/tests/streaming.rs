//! SSE streaming through the real server: reassembly, usage, fallbacks before the first byte,
//! and breaks after it.

mod common;

use common::*;
use serde_json::{json, Value};

/// Reads an SSE body into its `data:` payloads.
async fn events(resp: reqwest::Response) -> Vec<String> {
    let text = resp.text().await.unwrap_or_default();
    text.split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn text_of(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn stream_reassembles_text_and_reports_usage_when_asked() {
    let gw = TestGateway::start().await;
    let resp = gw
        .chat(
            ACME_KEY,
            json!({"model": "small", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "stream me please"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-switchyard-model"], "small");
    let evs = events(resp).await;
    assert_eq!(evs.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(text_of(&evs), "mock reply: stream me please");
    let usage: Vec<Value> = evs
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|v| v["usage"].is_object())
        .collect();
    assert_eq!(usage.len(), 1);
    assert!(usage[0]["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_chunk_but_logs_tokens() {
    let gw = TestGateway::start().await;
    let resp = gw
        .chat(ACME_KEY, json!({"model": "small", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let evs = events(resp).await;
    assert!(evs.iter().all(|e| !e.contains("\"usage\"")), "{evs:?}");
    // The gateway still asked the upstream for usage, so the log has real token counts.
    assert_eq!(
        gw.mock.last_request("gpt-4o-mini").unwrap()["stream_options"]["include_usage"],
        true
    );
    let rec: Value = gw
        .admin_get(&format!("/admin/requests/{rid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["stream"], true);
    assert!(rec["completion_tokens"].as_u64().unwrap() > 0);
    assert!(rec["ttft_ms"].is_u64());
    gw.shutdown().await;
}

#[tokio::test]
async fn stream_falls_back_before_the_first_byte() {
    let gw = TestGateway::start().await;
    let resp = gw
        .chat(ACME_KEY, json!({"model": "hang", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-model"], "large");
    assert_eq!(text_of(&events(resp).await), "mock reply: hi");
    gw.shutdown().await;
}

#[tokio::test]
async fn broken_stream_after_first_byte_ends_with_an_error_event_and_is_logged() {
    let gw = TestGateway::start().await;
    let resp = gw
        .chat(ACME_KEY, json!({"model": "broken", "stream": true, "messages": [{"role": "user", "content": "a b c d e"}]}))
        .await;
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let evs = events(resp).await;
    let last: Value = serde_json::from_str(evs.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stream"),
        "{last}"
    );
    let rec: Value = gw
        .admin_get(&format!("/admin/requests/{rid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["status"], 502);
    assert_eq!(rec["error_kind"], "stream_broken");
    gw.shutdown().await;
}
