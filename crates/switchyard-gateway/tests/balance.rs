//! Load balancing across deployments of one model: `[[model_groups]]` through the real server.
//!
//! Every deployment points at the mock under its own upstream string (unknown `+segments` are
//! ignored by the mock), so the mock's per-model call counts say which deployment served.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use switchyard_mock::MockUpstream;

async fn start(extra: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}/switchyard.db", dir.path().display());
    TestGateway::start_with(dir, &store_url, extra).await
}

/// The deployment that answered and the attempts it took.
async fn served_by(gw: &TestGateway, model: &str) -> (u16, String, String) {
    let resp = gw.chat(ACME_KEY, hello(model)).await;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (model, attempts) = (
        header("x-switchyard-model"),
        header("x-switchyard-attempts"),
    );
    (resp.status().as_u16(), model, attempts)
}

fn in_flight(gw: &TestGateway, model: &str) -> u32 {
    gw.state
        .runtime()
        .models
        .get(model)
        .map(|m| m.stats.in_flight())
        .unwrap_or(u32::MAX)
}

#[tokio::test]
async fn weighted_spreads_exactly_three_to_one() {
    let gw = start(
        r#"
[[models]]
name = "w-east"
provider = "mock"
upstream = "gpt-4o+east"
[[models]]
name = "w-west"
provider = "mock"
upstream = "gpt-4o+west"
[[model_groups]]
name = "gpt-4o-group"
members = ["w-east", "w-west"]
strategy = "weighted"
weights = [3, 1]
"#,
    )
    .await;
    let mut served = Vec::new();
    for _ in 0..40 {
        let (status, model, attempts) = served_by(&gw, "gpt-4o-group").await;
        assert_eq!((status, attempts.as_str()), (200, "1"));
        served.push(model);
    }
    assert_eq!(gw.mock.calls("gpt-4o+east"), 30);
    assert_eq!(gw.mock.calls("gpt-4o+west"), 10);
    // Smooth: the light member is interleaved, never starved for a stretch.
    assert_eq!(served[..4], ["w-east", "w-east", "w-west", "w-east"]);
    assert_eq!(in_flight(&gw, "w-east"), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn least_latency_prefers_the_fast_member_after_warm_up() {
    let gw = start(
        r#"
[[models]]
name = "ll-slow"
provider = "mock"
upstream = "gpt-4o+slow-150+ll"
[[models]]
name = "ll-fast"
provider = "mock"
upstream = "gpt-4o+ll"
[[model_groups]]
name = "ll"
members = ["ll-slow", "ll-fast"]
strategy = "least-latency"
"#,
    )
    .await;
    // Warm-up: each member without a sample is tried once, in configuration order.
    assert_eq!(served_by(&gw, "ll").await.1, "ll-slow");
    assert_eq!(served_by(&gw, "ll").await.1, "ll-fast");
    for _ in 0..10 {
        assert_eq!(served_by(&gw, "ll").await.1, "ll-fast");
    }
    assert_eq!(gw.mock.calls("gpt-4o+slow-150+ll"), 1);
    assert_eq!(gw.mock.calls("gpt-4o+ll"), 11);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_failing_member_cools_down_behind_the_healthy_one() {
    let gw = start(
        r#"
[[models]]
name = "cd-bad"
provider = "mock"
upstream = "status-500+cd"
[[models]]
name = "cd-good"
provider = "mock"
upstream = "gpt-4o+cd"
[[model_groups]]
name = "cd"
members = ["cd-bad", "cd-good"]
cooldown_ms = 60000
"#,
    )
    .await;
    let (status, model, attempts) = served_by(&gw, "cd").await;
    assert_eq!(
        (status, model.as_str(), attempts.as_str()),
        (200, "cd-good", "4")
    );
    assert_eq!(gw.mock.calls("status-500+cd"), 3, "1 try + 2 retries");
    for _ in 0..5 {
        let (status, model, attempts) = served_by(&gw, "cd").await;
        assert_eq!(
            (status, model.as_str(), attempts.as_str()),
            (200, "cd-good", "1"),
            "the healthy member leads: no failed attempt first"
        );
    }
    assert_eq!(gw.mock.calls("status-500+cd"), 3);
    gw.shutdown().await;
}

#[tokio::test]
async fn members_fall_back_to_their_own_fallbacks() {
    let gw = start(
        r#"
[[models]]
name = "fb-a"
provider = "mock"
upstream = "status-503+a"
max_retries = 0
fallbacks = ["large"]
[[models]]
name = "fb-b"
provider = "mock"
upstream = "status-503+b"
max_retries = 0
fallbacks = ["fb-a", "large"]
[[model_groups]]
name = "fb"
members = ["fb-a", "fb-b"]
"#,
    )
    .await;
    let (status, model, attempts) = served_by(&gw, "fb").await;
    assert_eq!(
        (status, model.as_str(), attempts.as_str()),
        (200, "large", "3"),
        "both members once (fallbacks deduplicated), then their fallback"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_full_self_hosted_member_bursts_to_the_cloud() {
    let mock = MockUpstream::start().await.unwrap();
    let extra = format!(
        r#"
[[providers]]
name = "onprem"
kind = "openai"
base_url = "{}"
self_hosted = true
[[models]]
name = "b-cloud"
provider = "mock"
upstream = "gpt-4o+slow-400+cloud"
[[models]]
name = "b-home"
provider = "onprem"
upstream = "gpt-4o+slow-400+home"
[[model_groups]]
name = "burst"
members = ["b-cloud", "b-home"]
capacity = {{ "b-home" = 1 }}
"#,
        mock.base_url()
    );
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let gw = std::sync::Arc::new(TestGateway::start_full(dir, mock, &store_url, &extra).await);

    // Self-hosted first while it has room, although the hosted member is listed first.
    let mut tasks = Vec::new();
    for i in 0..3 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move { served_by(&gw, "burst").await }));
        if i == 0 {
            // Let the first request reach the upstream, filling the member's single slot.
            tokio::time::sleep(Duration::from_millis(150)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut served = Vec::new();
    for t in tasks {
        let (status, model, _) = t.await.unwrap();
        assert_eq!(status, 200);
        served.push(model);
    }
    assert_eq!(served, ["b-home", "b-cloud", "b-cloud"]);
    assert_eq!(gw.mock.calls("gpt-4o+slow-400+home"), 1);
    assert_eq!(gw.mock.calls("gpt-4o+slow-400+cloud"), 2);
    assert_eq!(in_flight(&gw, "b-home"), 0, "attempts release their slot");
    // With the slot free again, traffic comes home.
    assert_eq!(served_by(&gw, "burst").await.1, "b-home");

    let metrics = gw
        .client
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let overflow = metrics
        .lines()
        .find(|l| l.starts_with("switchyard_router_overflow_total{group=\"burst\"}"))
        .unwrap_or_default();
    assert!(overflow.ends_with(" 2"), "{overflow:?} in\n{metrics}");
    match std::sync::Arc::try_unwrap(gw) {
        Ok(gw) => {
            gw.shutdown().await;
        }
        Err(_) => panic!("tasks still hold the gateway"),
    }
}

#[tokio::test]
async fn streaming_through_a_group_releases_its_slot() {
    let gw = start(
        r#"
[[models]]
name = "s-one"
provider = "mock"
upstream = "gpt-4o+s-one"
[[models]]
name = "s-two"
provider = "mock"
upstream = "gpt-4o+s-two"
[[model_groups]]
name = "s"
members = ["s-one", "s-two"]
strategy = "weighted"
"#,
    )
    .await;
    for _ in 0..2 {
        let resp = gw
            .chat(
                ACME_KEY,
                json!({"model": "s", "stream": true,
                       "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 200);
        let body = resp.text().await.unwrap();
        assert!(body.contains("[DONE]"), "{body}");
    }
    assert_eq!(gw.mock.calls("gpt-4o+s-one"), 1);
    assert_eq!(gw.mock.calls("gpt-4o+s-two"), 1);
    assert_eq!((in_flight(&gw, "s-one"), in_flight(&gw, "s-two")), (0, 0));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_group_name_is_not_a_model_name() {
    let mock = MockUpstream::start().await.unwrap();
    let text = config_text(
        &mock.base_url(),
        "sqlite:///tmp/unused.db",
        "[[model_groups]]\nname = \"small\"\nmembers = [\"large\", \"nope\"]\n",
    );
    let err = switchyard_gateway::Config::parse(&text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model_groups[0].name: \"small\" is also a [[models]] name"),
        "{err}"
    );
    assert!(
        err.contains("model_groups[0].members[1]: \"nope\" is not a configured model"),
        "{err}"
    );
}
