//! A/B experiments and feedback through the real server and the mock upstream: sticky arm
//! assignment, the arm in the response header and the request log, prompt versions reaching
//! the upstream, `POST /v1/feedback`, and the per-arm report matching what was sent. (Config
//! validation is unit-tested in `config/router.rs`.)

mod common;

use std::collections::BTreeMap;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const BETA_KEY: &str = "sk-beta-test-key-1";
const PROMPT_B: &str = "You are version B. Answer in one sentence.";

const EXPERIMENTS: &str = r#"
[[models]]
name = "slowish"
provider = "mock"
upstream = "gpt-4o+slow-25"
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10.0

[[tenants]]
name = "beta"
keys = ["sk-beta-test-key-1"]

[[router.experiments]]
name = "mini-vs-large"
model = "assistant"
sticky_by = "user"
arms = [
  { name = "a", model = "small", weight = 50 },
  { name = "b", model = "large", weight = 50, system_prompt = "You are version B. Answer in one sentence." },
]

[[router.experiments]]
name = "prepend"
model = "assistant-prepend"
sticky_by = "key"
arms = [ { name = "only", model = "small", system_prompt = "Be kind.", system_prompt_mode = "prepend" } ]

[[router.experiments]]
name = "errors"
model = "assistant-errors"
arms = [ { name = "ok", model = "slowish", weight = 1 }, { name = "bad", model = "always429", weight = 1 } ]
"#;

async fn start() -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    TestGateway::start_with(dir, &url, EXPERIMENTS).await
}

fn ask(model: &str, user: Option<&str>) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "client prompt"},
            {"role": "user", "content": "hello there"}
        ]
    });
    if let Some(u) = user {
        body["user"] = json!(u);
    }
    body
}

/// What a response says about how it was served.
struct Served {
    status: u16,
    model: String,
    route: String,
    request_id: String,
    cost: f64,
}

impl Served {
    fn arm(&self) -> &str {
        self.route
            .split("; ")
            .find_map(|p| p.strip_prefix("arm="))
            .unwrap_or("")
    }
}

async fn send(gw: &TestGateway, key: &str, body: Value) -> Served {
    let resp = gw.chat(key, body).await;
    let h = resp.headers();
    let text = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let served = Served {
        status: resp.status().as_u16(),
        model: text("x-switchyard-model"),
        route: text("x-switchyard-route"),
        request_id: text("x-request-id"),
        cost: text("x-switchyard-cost-usd").parse().unwrap_or(0.0),
    };
    // Drain the body so the request is complete (and logged) before the next step.
    let _ = resp.bytes().await;
    served
}

async fn feedback(gw: &TestGateway, key: &str, body: Value) -> reqwest::Response {
    gw.client
        .post(format!("{}/v1/feedback", gw.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn record(gw: &TestGateway, request_id: &str) -> Value {
    gw.admin_get(&format!("/admin/requests/{request_id}"))
        .await
        .json()
        .await
        .unwrap()
}

/// The first user (of `user-0`, `user-1`, …) the experiment puts in `arm`.
async fn user_in_arm(gw: &TestGateway, model: &str, arm: &str) -> String {
    for i in 0..200 {
        let user = format!("user-{i}");
        if send(gw, ACME_KEY, ask(model, Some(&user))).await.arm() == arm {
            return user;
        }
    }
    panic!("no user landed in arm {arm}");
}

#[tokio::test]
async fn assignment_is_sticky_per_user_and_follows_the_weights() {
    let gw = start().await;
    let first = send(&gw, ACME_KEY, ask("assistant", Some("alice"))).await;
    assert_eq!(first.status, 200);
    for _ in 0..20 {
        let again = send(&gw, ACME_KEY, ask("assistant", Some("alice"))).await;
        assert_eq!(
            (again.arm(), again.model.as_str()),
            (first.arm(), first.model.as_str())
        );
    }
    let mut per_arm: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..200 {
        let s = send(&gw, ACME_KEY, ask("assistant", Some(&format!("u{i}")))).await;
        assert_eq!(s.status, 200);
        let expected_model = if s.arm() == "a" { "small" } else { "large" };
        assert_eq!(s.model, expected_model, "{}", s.route);
        *per_arm.entry(s.arm().to_owned()).or_default() += 1;
    }
    assert_eq!(per_arm.len(), 2, "{per_arm:?}");
    // 50/50 over 200 users: each arm well inside 100 ± 30 (over four standard deviations).
    assert!(
        per_arm.values().all(|n| (70..=130).contains(n)),
        "{per_arm:?}"
    );
    // Without a `user`, the API key is the unit: one arm for every such request of the key.
    let keyed = send(&gw, ACME_KEY, ask("assistant", None)).await;
    for _ in 0..5 {
        assert_eq!(
            send(&gw, ACME_KEY, ask("assistant", None)).await.arm(),
            keyed.arm()
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn the_arm_is_in_the_route_header_and_the_request_log() {
    let gw = start().await;
    let mut body = ask("assistant", Some("carol"));
    // A client cannot put itself into an experiment's numbers through metadata.
    body["metadata"] = json!({"experiment": {"name": "mini-vs-large", "arm": "zzz"}, "team": "x"});
    let s = send(&gw, ACME_KEY, body).await;
    assert_eq!(s.status, 200);
    assert_eq!(
        s.route,
        format!(
            "model={}; reason=experiment; experiment=mini-vs-large; arm={}",
            s.model,
            s.arm()
        )
    );
    let rec = record(&gw, &s.request_id).await;
    assert_eq!(rec["model_requested"], "assistant");
    assert_eq!(rec["model_used"], s.model.as_str());
    assert_eq!(
        rec["metadata"]["experiment"],
        json!({"name": "mini-vs-large", "arm": s.arm()})
    );
    assert_eq!(rec["metadata"]["team"], "x");
    assert!(rec["metadata"].get("route").is_none(), "{rec}");
    // Outside an experiment, a client's `experiment` metadata is not kept.
    let mut plain = hello("small");
    plain["metadata"] = json!({"experiment": {"name": "mini-vs-large", "arm": "a"}});
    let s = send(&gw, ACME_KEY, plain).await;
    assert_eq!(s.route, "model=small; reason=requested");
    let rec = record(&gw, &s.request_id).await;
    assert!(rec["metadata"].get("experiment").is_none(), "{rec}");
    // Streams are routed the same way.
    let mut stream = ask("assistant", Some("carol"));
    stream["stream"] = json!(true);
    let s2 = send(&gw, ACME_KEY, stream).await;
    assert_eq!(s2.status, 200);
    assert!(
        s2.route.contains("experiment=mini-vs-large"),
        "{}",
        s2.route
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_arms_prompt_version_reaches_the_upstream() {
    let gw = start().await;
    // Arm b replaces the client's system message.
    let user_b = user_in_arm(&gw, "assistant", "b").await;
    send(&gw, ACME_KEY, ask("assistant", Some(&user_b))).await;
    let body = gw.mock.last_request("gpt-4o").expect("large was called");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[0], json!({"role": "system", "content": PROMPT_B}));
    assert_eq!(messages.len(), 2, "{body}");
    assert!(!body.to_string().contains("client prompt"), "{body}");
    // Arm a has no prompt version: the client's conversation goes as sent.
    let user_a = user_in_arm(&gw, "assistant", "a").await;
    gw.mock.reset();
    send(&gw, ACME_KEY, ask("assistant", Some(&user_a))).await;
    let body = gw
        .mock
        .last_request("gpt-4o-mini")
        .expect("small was called");
    assert_eq!(body["messages"][0]["content"], "client prompt");
    // Prepend mode keeps the client's prompt behind the arm's, in one system message.
    send(&gw, ACME_KEY, ask("assistant-prepend", None)).await;
    let body = gw.mock.last_request("gpt-4o-mini").unwrap();
    assert_eq!(body["messages"][0]["content"], "Be kind.\n\nclient prompt");
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn feedback_is_accepted_for_own_requests_only() {
    let gw = start().await;
    let mine = send(&gw, ACME_KEY, ask("assistant", Some("dave"))).await;
    let theirs = send(&gw, BETA_KEY, ask("assistant", Some("erin"))).await;

    // Sent right away: the request log may not have flushed yet, which must not matter.
    let resp = feedback(
        &gw,
        ACME_KEY,
        json!({"request_id": mine.request_id, "score": 1, "comment": "great ✓"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "feedback");
    assert_eq!(body["replaced"], false);
    assert_eq!(body["model"], mine.model.as_str());
    assert_eq!(body["experiment"]["arm"], mine.arm());
    let stats = gw.state.runtime().feedback.outcomes(&mine.model);
    assert_eq!((stats.successes, stats.failures), (1, 0));
    // A changed mind replaces the verdict, and the counts follow.
    let body: Value = feedback(
        &gw,
        ACME_KEY,
        json!({"request_id": mine.request_id, "score": -0.5}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["replaced"], true);
    let stats = gw.state.runtime().feedback.outcomes(&mine.model);
    assert_eq!((stats.successes, stats.failures), (0, 1));
    let stored = gw
        .state
        .store
        .get_feedback(&mine.request_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.tenant.as_str(), stored.score), ("acme", -0.5));

    // Another tenant's request is as good as missing, both ways round.
    for (key, id) in [(ACME_KEY, &theirs.request_id), (BETA_KEY, &mine.request_id)] {
        let (status, err) =
            error_of(feedback(&gw, key, json!({"request_id": id, "score": 1})).await).await;
        assert_eq!(status, 404, "{err}");
        assert_eq!(err["error"]["param"], "request_id");
    }
    let (status, _) =
        error_of(feedback(&gw, ACME_KEY, json!({"request_id": "req_nope", "score": 0})).await)
            .await;
    assert_eq!(status, 404);

    // Bad input is a 400 in OpenAI's envelope.
    let id = mine.request_id.as_str();
    let long = "x".repeat(2_001);
    for (body, param) in [
        (json!({"request_id": id, "score": 2}), Some("score")),
        (json!({"request_id": id, "score": -1.5}), Some("score")),
        (json!({"request_id": id, "score": "good"}), None),
        (json!({"request_id": id, "score": true}), None),
        (json!({"request_id": id}), None),
        (json!({"request_id": "", "score": 1}), Some("request_id")),
        (
            json!({"request_id": id, "score": 1, "comment": long}),
            Some("comment"),
        ),
        (json!({"request_id": id, "score": 1, "rating": 5}), None),
    ] {
        let (status, err) = error_of(feedback(&gw, ACME_KEY, body.clone()).await).await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert_eq!(err["error"]["type"], "invalid_request_error");
        if let Some(p) = param {
            assert_eq!(err["error"]["param"], p, "{err}");
        }
    }
    let not_json = gw
        .client
        .post(format!("{}/v1/feedback", gw.url))
        .bearer_auth(ACME_KEY)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(not_json).await.0, 400);
    // 2000 characters (not bytes) are fine.
    let ok = json!({"request_id": id, "score": 0, "comment": "é".repeat(2_000)});
    assert_eq!(feedback(&gw, ACME_KEY, ok).await.status(), 200);
    // No key, no feedback.
    let anon = gw
        .client
        .post(format!("{}/v1/feedback", gw.url))
        .json(&json!({"request_id": id, "score": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(anon).await.0, 401);

    // The counts come back from the store on a reload (and a restart).
    let before = gw.state.runtime().feedback.snapshot();
    let reloaded = gw
        .admin(Method::POST, "/admin/config/reload", ADMIN_KEY, None)
        .await;
    assert_eq!(reloaded.status(), 200);
    assert_eq!(gw.state.runtime().feedback.snapshot(), before);
    gw.shutdown().await;
}

/// Nearest-rank percentile, as the report computes it.
fn percentile(sorted: &[u64], pct: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * pct).div_ceil(100);
    Some(sorted[rank - 1])
}

#[derive(Default, Debug)]
struct Expected {
    requests: u64,
    errors: u64,
    cost: f64,
    scores: Vec<f64>,
}

#[tokio::test]
async fn the_report_matches_what_was_sent() {
    let gw = start().await;
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    for i in 0..30 {
        let s = send(
            &gw,
            ACME_KEY,
            ask("assistant-errors", Some(&format!("r{i}"))),
        )
        .await;
        // Error responses carry no route header; the log knows the arm.
        let arm = match s.arm() {
            "" => record(&gw, &s.request_id).await["metadata"]["experiment"]["arm"]
                .as_str()
                .unwrap()
                .to_owned(),
            arm => arm.to_owned(),
        };
        let e = expected.entry(arm).or_default();
        e.requests += 1;
        e.cost += s.cost;
        if s.status >= 400 {
            e.errors += 1;
        }
        // Every third answer gets a verdict, alternating good and bad.
        if i % 3 == 0 {
            let score = if i % 2 == 0 { 1.0 } else { -0.5 };
            let resp = feedback(
                &gw,
                ACME_KEY,
                json!({"request_id": s.request_id, "score": score}),
            )
            .await;
            assert_eq!(resp.status(), 200);
            e.scores.push(score);
        }
    }
    // Traffic outside the experiment does not count.
    send(&gw, ACME_KEY, hello("slowish")).await;
    send(&gw, ACME_KEY, ask("assistant", Some("r1"))).await;
    assert_eq!(expected.len(), 2, "{expected:?}");
    assert!(expected["bad"].errors == expected["bad"].requests && expected["ok"].errors == 0);

    // Latencies from the log itself.
    let log: Value = gw
        .admin_get("/admin/requests?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    let mut latencies: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in log["data"].as_array().unwrap() {
        if r["metadata"]["experiment"]["name"] == "errors" && r["status"].as_u64() < Some(400) {
            let arm = r["metadata"]["experiment"]["arm"]
                .as_str()
                .unwrap()
                .to_owned();
            latencies
                .entry(arm)
                .or_default()
                .push(r["latency_ms"].as_u64().unwrap());
        }
    }
    latencies.values_mut().for_each(|v| v.sort_unstable());

    let resp = gw.admin_get("/admin/experiments/errors").await;
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["object"], "experiment.report");
    assert_eq!(report["model"], "assistant-errors");
    assert_eq!(report["requests"], 30);
    let rows = report["data"].as_array().unwrap();
    // Configuration order.
    assert_eq!(
        rows.iter().map(|r| r["arm"].clone()).collect::<Vec<_>>(),
        [json!("ok"), json!("bad")]
    );
    for row in rows {
        let arm = row["arm"].as_str().unwrap();
        let e = &expected[arm];
        assert_eq!(row["requests"], e.requests, "{row}");
        assert_eq!(row["errors"], e.errors, "{row}");
        let rate = e.errors as f64 / e.requests as f64;
        assert!(
            (row["error_rate"].as_f64().unwrap() - rate).abs() < 1e-9,
            "{row}"
        );
        assert!((row["share"].as_f64().unwrap() - e.requests as f64 / 30.0).abs() < 1e-9);
        // Headers carry 8 decimals.
        let cost = row["cost_usd"].as_f64().unwrap();
        assert!((cost - e.cost).abs() < 1e-6, "{row} vs {e:?}");
        let per = row["cost_per_request_usd"].as_f64().unwrap();
        assert!((per - e.cost / e.requests as f64).abs() < 1e-7, "{row}");
        let lat = latencies.get(arm).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(row["latency_p50_ms"].as_u64(), percentile(lat, 50), "{row}");
        assert_eq!(row["latency_p95_ms"].as_u64(), percentile(lat, 95), "{row}");
        assert_eq!(row["feedback_count"], e.scores.len(), "{row}");
        match e.scores.len() {
            0 => assert!(row["feedback_mean"].is_null(), "{row}"),
            n => {
                let mean = e.scores.iter().sum::<f64>() / n as f64;
                assert!(
                    (row["feedback_mean"].as_f64().unwrap() - mean).abs() < 1e-9,
                    "{row}"
                );
            }
        }
    }
    let ok = rows.iter().find(|r| r["arm"] == "ok").unwrap();
    assert!(
        ok["latency_p50_ms"].as_u64().unwrap() >= 25,
        "the slow arm: {ok}"
    );
    assert!(ok["cost_usd"].as_f64().unwrap() > 0.0);
    let bad = rows.iter().find(|r| r["arm"] == "bad").unwrap();
    assert_eq!(
        (bad["error_rate"].as_f64(), bad["latency_p50_ms"].as_u64()),
        (Some(1.0), None)
    );

    // A window after everything: configured arms, no traffic.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let later = now.unwrap().as_millis() + 3_600_000;
    let empty: Value = gw
        .admin_get(&format!("/admin/experiments/errors?from={later}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty["requests"], 0);
    assert!(empty["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["requests"] == 0 && r["configured"] == true));
    let (status, _) = error_of(
        gw.admin_get("/admin/experiments/errors?from=yesterday")
            .await,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = error_of(gw.admin_get("/admin/experiments/nope").await).await;
    assert_eq!(status, 404);
    // Admin only.
    let (status, _) = error_of(
        gw.admin(Method::GET, "/admin/experiments/errors", ACME_KEY, None)
            .await,
    )
    .await;
    assert_eq!(status, 403);
    // The listing shows what is configured.
    let list: Value = gw
        .admin_get("/admin/experiments")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("mini-vs-large"), json!("prepend"), json!("errors")]
    );
    assert_eq!(list["data"][0]["arms"][1]["system_prompt"], PROMPT_B);
    gw.shutdown().await;
}
