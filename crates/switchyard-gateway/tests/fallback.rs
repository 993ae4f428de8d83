//! Fault handling: retries, timeouts, fallbacks, context-length escalation, circuit breakers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

async fn served_by(gw: &TestGateway, model: &str) -> (u16, String, String) {
    let resp = gw.chat(ACME_KEY, hello(model)).await;
    let status = resp.status().as_u16();
    let used = resp
        .headers()
        .get("x-switchyard-model")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let attempts = resp
        .headers()
        .get("x-switchyard-attempts")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, used, attempts)
}

#[tokio::test]
async fn dead_provider_falls_back() {
    let gw = TestGateway::start().await;
    let (status, used, attempts) = served_by(&gw, "dead").await;
    assert_eq!((status, used.as_str()), (200, "large"));
    assert_eq!(
        attempts, "4",
        "3 attempts at the dead provider, then the fallback"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn server_error_is_retried_then_falls_back() {
    let gw = TestGateway::start().await;
    let (status, used, _) = served_by(&gw, "error500").await;
    assert_eq!((status, used.as_str()), (200, "large"));
    assert_eq!(gw.mock.calls("status-500"), 3, "1 try + 2 retries");
    gw.shutdown().await;
}

#[tokio::test]
async fn timeout_falls_back_within_the_budget() {
    let gw = TestGateway::start().await;
    let started = Instant::now();
    let (status, used, _) = served_by(&gw, "hang").await;
    assert_eq!((status, used.as_str()), (200, "large"));
    // 3 attempts of 300 ms plus small backoffs; generous bound for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn rate_limit_is_retried() {
    let gw = TestGateway::start().await;
    let (status, used, attempts) = served_by(&gw, "flaky429").await;
    assert_eq!(
        (status, used.as_str(), attempts.as_str()),
        (200, "flaky429", "3")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn exhausted_rate_limit_is_a_429() {
    let gw = TestGateway::start().await;
    let (status, body) = error_of(gw.chat(ACME_KEY, hello("always429")).await).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["type"], "rate_limit_error");
    gw.shutdown().await;
}

#[tokio::test]
async fn context_length_escalates_to_a_larger_window() {
    let gw = TestGateway::start().await;
    let (status, used, _) = served_by(&gw, "short-context").await;
    assert_eq!((status, used.as_str()), (200, "large"));
    assert_eq!(
        gw.mock.calls("context-limit"),
        1,
        "a context error is not retried"
    );
    assert_eq!(
        gw.mock.calls("gpt-4o-mini"),
        0,
        "small has no larger window and is skipped"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn client_errors_are_not_retried_or_fallen_back() {
    let gw = TestGateway::start().await;
    let (status, body) = error_of(gw.chat(ACME_KEY, hello("bad-request")).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(gw.mock.calls("status-400"), 1);
    assert_eq!(gw.mock.calls("gpt-4o"), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn malformed_upstream_json_falls_back() {
    let gw = TestGateway::start().await;
    let (status, used, _) = served_by(&gw, "malformed").await;
    assert_eq!((status, used.as_str()), (200, "large"));
    gw.shutdown().await;
}

#[tokio::test]
async fn breaker_opens_and_skips_the_failing_deployment() {
    let gw = TestGateway::start().await;
    // Two requests make six consecutive 500s: past the default threshold of five.
    served_by(&gw, "error500").await;
    served_by(&gw, "error500").await;
    let before = gw.mock.calls("status-500");
    let (status, used, _) = served_by(&gw, "error500").await;
    assert_eq!((status, used.as_str()), (200, "large"));
    assert_eq!(
        gw.mock.calls("status-500"),
        before,
        "open breaker sends nothing upstream"
    );
    let breakers: Value = gw.admin_get("/admin/breakers").await.json().await.unwrap();
    let open = breakers["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["deployment"] == "mock/status-500" && b["state"] == "open");
    assert!(open, "{breakers}");
    // The provider's other models are unaffected.
    assert_eq!(served_by(&gw, "small").await.1, "small");
    gw.shutdown().await;
}

#[tokio::test]
async fn exhausted_fallbacks_map_to_gateway_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let gw = TestGateway::start_with(
        dir,
        &store_url,
        r#"
[[models]]
name = "only-dead"
provider = "dead"
upstream = "x"
[[models]]
name = "only-hang"
provider = "mock"
upstream = "hang"
timeout_ms = 100
max_retries = 0
[[models]]
name = "only-500"
provider = "mock"
upstream = "status-502"
"#,
    )
    .await;
    assert_eq!(
        error_of(gw.chat(ACME_KEY, hello("only-dead")).await)
            .await
            .0,
        503
    );
    assert_eq!(
        error_of(gw.chat(ACME_KEY, hello("only-hang")).await)
            .await
            .0,
        504
    );
    assert_eq!(
        error_of(gw.chat(ACME_KEY, hello("only-500")).await).await.0,
        502
    );
    gw.shutdown().await;
}
