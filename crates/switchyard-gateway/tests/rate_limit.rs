//! Rate limits per tenant and per key: requests, tokens, concurrency; in-process and shared
//! across replicas through the machine's real Redis.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const BURSTY: &str = r#"
[[tenants]]
name = "bursty"
keys = ["sk-bursty-test-key"]
rpm = 5
[[tenants]]
name = "wordy"
keys = ["sk-wordy-test-key"]
tpm = 100
[[tenants]]
name = "serial"
keys = ["sk-serial-test-key"]
max_concurrent = 1
"#;

async fn start(extra: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    TestGateway::start_with(dir, &url, extra).await
}

#[tokio::test]
async fn tenant_rpm_refuses_the_burst_past_its_limit() {
    let gw = start(BURSTY).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..7 {
        let resp = gw.chat("sk-bursty-test-key", hello("small")).await;
        statuses.push(resp.status().as_u16());
        last = Some(resp);
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429, 429]);
    let resp = last.unwrap();
    let retry: f64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1.0..=60.0).contains(&retry), "{retry}");
    assert_eq!(resp.headers()["x-ratelimit-limit-requests"], "5");
    assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], "0");
    let (_, body) = error_of(resp).await;
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    // A successful answer carries the headers too.
    let ok = gw.chat(ACME_KEY, hello("small")).await;
    assert_eq!(ok.status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn tokens_per_minute_count_the_prompt_up_front() {
    let gw = start(BURSTY).await;
    let long = "word ".repeat(100); // ~125 estimated tokens: more than the whole minute
    let first = gw
        .chat(
            "sk-wordy-test-key",
            json!({"model": "small", "messages": [{"role": "user", "content": long}]}),
        )
        .await;
    assert_eq!(
        first.status(),
        200,
        "a prompt bigger than the allowance is charged what fits"
    );
    assert!(first.headers().contains_key("x-ratelimit-remaining-tokens"));
    let second = gw.chat("sk-wordy-test-key", hello("small")).await;
    let (status, body) = error_of(second).await;
    assert_eq!(status, 429);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens"),
        "{body}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn concurrency_limit_refuses_a_second_request_in_flight() {
    let gw = start(&format!(
        "{BURSTY}\n[[models]]\nname = \"slow\"\nprovider = \"mock\"\nupstream = \"slow-400\"\n"
    ))
    .await;
    let (client, url) = (gw.client.clone(), format!("{}/v1/chat/completions", gw.url));
    let slow = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth("sk-serial-test-key")
            .json(&hello("slow"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let (status, body) = error_of(gw.chat("sk-serial-test-key", hello("small")).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("concurrency_limit_exceeded"))
    );
    assert_eq!(slow.await.unwrap(), 200);
    // The slot is given back when the request ends (settled off the request path).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        gw.chat("sk-serial-test-key", hello("small")).await.status(),
        200
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn key_limits_apply_on_top_of_the_tenant() {
    let gw = start("").await;
    let created: Value = gw
        .admin(
            Method::POST,
            "/admin/keys",
            ADMIN_KEY,
            Some(json!({"tenant": "acme", "name": "ci", "rpm": 2})),
        )
        .await
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(gw.chat(&key, hello("small")).await.status(), 200);
    assert_eq!(gw.chat(&key, hello("small")).await.status(), 200);
    assert_eq!(gw.chat(&key, hello("small")).await.status(), 429);
    assert_eq!(
        gw.chat(ACME_KEY, hello("small")).await.status(),
        200,
        "the tenant's other keys are unaffected"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn two_replicas_share_one_limit_through_redis() {
    let prefix = format!("sy-test-{}-{}:", std::process::id(), rand_suffix());
    let extra = format!(
        "[state]\nurl = \"redis://127.0.0.1:6379\"\nprefix = \"{prefix}\"\n[[tenants]]\nname = \"shared\"\nkeys = [\"sk-shared-test-key\"]\nrpm = 10\n"
    );
    let a = start(&extra).await;
    let b = start(&extra).await;
    let mut ok = 0;
    for i in 0..20 {
        let gw = if i % 2 == 0 { &a } else { &b };
        if gw.chat("sk-shared-test-key", hello("small")).await.status() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 10, "one limit of 10 across both replicas");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_local_limits() {
    let extra = "[state]\nurl = \"redis://127.0.0.1:1\"\n[[tenants]]\nname = \"fallback\"\nkeys = [\"sk-fallback-test-key\"]\nrpm = 2\n";
    let gw = start(extra).await;
    let statuses: Vec<u16> = futures::future::join_all((0..3).map(|_| async {
        gw.chat("sk-fallback-test-key", hello("small"))
            .await
            .status()
            .as_u16()
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    let metrics = gw
        .client
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchyard_state_fallback_total"),
        "fallback is visible in metrics"
    );
    gw.shutdown().await;
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
