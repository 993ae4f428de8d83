//! Client mistakes get the right status and OpenAI's error envelope, never a 500.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn malformed_and_invalid_bodies_are_400() {
    let gw = TestGateway::start().await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let resp = gw
        .client
        .post(&url)
        .bearer_auth(ACME_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("JSON"));

    let (status, body) = error_of(
        gw.chat(ACME_KEY, json!({"model": "small", "messages": []}))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "messages");

    let (status, body) = error_of(gw.chat(ACME_KEY, json!({"model": "small"})).await).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages"),
        "{body}"
    );

    let (status, body) = error_of(
        gw.chat(
            ACME_KEY,
            json!({"model": "small", "messages": [{"role": "wizard", "content": "x"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wizard"),
        "{body}"
    );

    let resp = gw
        .client
        .post(&url)
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 400);
    gw.shutdown().await;
}

#[tokio::test]
async fn unknown_model_is_404() {
    let gw = TestGateway::start().await;
    let (status, body) = error_of(gw.chat(ACME_KEY, hello("gpt-7")).await).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");
    gw.shutdown().await;
}

#[tokio::test]
async fn oversized_body_is_413_from_content_length() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let gw = TestGateway::start_with(dir, &store_url, "[server]\nmax_body_bytes = 1024\n").await;
    let big = "x".repeat(4096);
    let (status, body) = error_of(
        gw.chat(
            ACME_KEY,
            json!({"model": "small", "messages": [{"role": "user", "content": big}]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "request_too_large");
    // A chunked body with no Content-Length is capped while it is read.
    let chunks = futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512])));
    let resp = gw
        .client
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(ACME_KEY)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 413);
    assert_eq!(gw.mock.total_calls(), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn tenant_rate_limit_is_429_with_retry_after() {
    let gw = TestGateway::start().await;
    assert_eq!(gw.chat(LIMITED_KEY, hello("small")).await.status(), 200);
    assert_eq!(gw.chat(LIMITED_KEY, hello("small")).await.status(), 200);
    let resp = gw.chat(LIMITED_KEY, hello("small")).await;
    assert!(resp.headers().contains_key("retry-after"));
    let (status, body) = error_of(resp).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    // Other tenants are not affected.
    assert_eq!(gw.chat(ACME_KEY, hello("small")).await.status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_openai_format() {
    let gw = TestGateway::start().await;
    let resp = gw
        .client
        .get(format!("{}/v1/nope", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 404);
    let resp = gw
        .client
        .get(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 405);
    gw.shutdown().await;
}
