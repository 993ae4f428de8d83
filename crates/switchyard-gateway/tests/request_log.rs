//! The request log: every request recorded with its fields, across restarts and graceful
//! shutdowns, and the metrics that go with it.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn every_request_is_logged_with_its_fields() {
    let gw = TestGateway::start().await;
    let ok = gw
        .client
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(ACME_KEY)
        .header("x-switchyard-tags", "support,faq")
        .json(
            &json!({"model": "small", "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"use_case": "billing", "tags": ["vip"]}}),
        )
        .send()
        .await
        .unwrap();
    let ok_id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    let bad = gw.chat("sk-nope-nope-nope", hello("small")).await;
    let bad_id = bad.headers()["x-request-id"].to_str().unwrap().to_owned();
    let fb = gw.chat(ACME_KEY, hello("error500")).await;
    let fb_id = fb.headers()["x-request-id"].to_str().unwrap().to_owned();

    let list: Value = gw
        .admin_get("/admin/requests?limit=10")
        .await
        .json()
        .await
        .unwrap();
    let rows = list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["request_id"], fb_id.as_str(), "newest first");

    let rec: Value = gw
        .admin_get(&format!("/admin/requests/{ok_id}"))
        .await
        .json()
        .await
        .unwrap();
    for field in [
        "request_id",
        "ts_ms",
        "tenant",
        "key_id",
        "model_requested",
        "model_used",
        "provider",
        "status",
        "error_kind",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_ms",
        "ttft_ms",
        "attempts",
        "stream",
        "tags",
        "metadata",
    ] {
        assert!(rec.get(field).is_some(), "field {field} missing: {rec}");
    }
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["tenant"], "acme");
    assert_eq!(rec["model_used"], "small");
    assert_eq!(rec["provider"], "mock");
    assert!(rec["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(rec["tags"], json!(["support", "faq", "vip"]));
    assert_eq!(rec["metadata"]["use_case"], "billing");

    let rec: Value = gw
        .admin_get(&format!("/admin/requests/{bad_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["status"], 401);
    assert_eq!(rec["error_kind"], "invalid_api_key");

    let rec: Value = gw
        .admin_get(&format!("/admin/requests/{fb_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (rec["model_requested"].as_str(), rec["model_used"].as_str()),
        (Some("error500"), Some("large"))
    );
    assert_eq!(rec["attempts"], 4);

    assert_eq!(
        gw.admin_get("/admin/requests/req_missing").await.status(),
        404
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn concurrent_requests_all_survive_shutdown_and_restart() {
    let gw = TestGateway::start().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = gw.client.clone();
        let url = format!("{}/v1/chat/completions", gw.url);
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(ACME_KEY)
                .json(&json!({"model": "small", "messages": [{"role": "user", "content": format!("n{i}")}]}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    let (mock, dir) = gw.shutdown().await;

    let store_url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let gw = TestGateway::start_full(dir, mock, &store_url, "").await;
    assert_eq!(gw.state.store.count_requests().await.unwrap(), 200);
    let list: Value = gw
        .admin_get("/admin/requests?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn metrics_expose_counters_and_histograms() {
    let gw = TestGateway::start().await;
    gw.chat(ACME_KEY, hello("small")).await;
    gw.chat(ACME_KEY, hello("error500")).await;
    gw.chat(
        ACME_KEY,
        json!({"model": "small", "stream": true, "messages": [{"role": "user", "content": "x y"}]}),
    )
    .await
    .text()
    .await
    .unwrap();
    let text = gw
        .client
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "switchyard_requests_total",
        "switchyard_request_duration_seconds_bucket",
        "switchyard_ttft_seconds_bucket",
        "switchyard_tokens_total",
        "switchyard_cost_usd_total",
        "switchyard_upstream_errors_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert!(text.contains("tenant=\"acme\""));
    gw.shutdown().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let gw = TestGateway::start().await;
    assert_eq!(
        gw.client
            .get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready: Value = gw
        .client
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["store"], "sqlite");
    gw.shutdown().await;
}
