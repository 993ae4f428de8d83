//! Budgets per tenant, key and tag, and the spend report.

mod common;

use common::*;
use reqwest::Method;
use serde_json::Value;

const BUDGETS: &str = r#"
[[tenants]]
name = "frugal"
keys = ["sk-frugal-test-key"]
budget_usd = 0.000001
[[tenants]]
name = "relaxed"
keys = ["sk-relaxed-test-key"]
budget_usd = 0.000001
budget_mode = "soft"
budget_period = "daily"
[[budgets]]
tag = "experiments"
budget_usd = 0.000001
"#;

async fn start() -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    TestGateway::start_with(dir, &url, BUDGETS).await
}

/// Spend is added off the request path; give it a moment to land.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

#[tokio::test]
async fn hard_budget_refuses_once_spent() {
    let gw = start().await;
    assert_eq!(
        gw.chat("sk-frugal-test-key", hello("large")).await.status(),
        200
    );
    settle().await;
    let (status, body) = error_of(gw.chat("sk-frugal-test-key", hello("small")).await).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("budget exhausted"),
        "{body}"
    );
    assert_eq!(
        gw.chat(ACME_KEY, hello("small")).await.status(),
        200,
        "other tenants are unaffected"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn spend_is_remembered_across_restarts() {
    let gw = start().await;
    assert_eq!(
        gw.chat("sk-frugal-test-key", hello("large")).await.status(),
        200
    );
    let (mock, dir) = gw.shutdown().await;
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let gw = TestGateway::start_full(dir, mock, &url, BUDGETS).await;
    assert_eq!(
        gw.chat("sk-frugal-test-key", hello("small")).await.status(),
        429
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn soft_budget_warns_and_serves() {
    let gw = start().await;
    gw.chat("sk-relaxed-test-key", hello("large")).await;
    settle().await;
    let resp = gw.chat("sk-relaxed-test-key", hello("small")).await;
    assert_eq!(resp.status(), 200);
    let warning = resp.headers()["x-switchyard-budget-warning"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        warning.contains("relaxed") && warning.contains("daily"),
        "{warning}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn tag_budget_applies_to_tagged_requests_only() {
    let gw = start().await;
    let tagged = |gw: &TestGateway| {
        gw.client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(ACME_KEY)
            .header("x-switchyard-tags", "experiments")
            .json(&hello("large"))
            .send()
    };
    assert_eq!(tagged(&gw).await.unwrap().status(), 200);
    settle().await;
    assert_eq!(tagged(&gw).await.unwrap().status(), 429);
    assert_eq!(gw.chat(ACME_KEY, hello("large")).await.status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn spend_report_groups_and_forecasts() {
    let gw = start().await;
    for model in ["small", "small", "large"] {
        gw.client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(ACME_KEY)
            .header("x-switchyard-tags", "support")
            .json(&hello(model))
            .send()
            .await
            .unwrap();
    }
    let by_model: Value = gw
        .admin_get("/admin/spend?group_by=model")
        .await
        .json()
        .await
        .unwrap();
    let rows = by_model["data"].as_array().unwrap();
    let small = rows.iter().find(|r| r["group"] == "small").unwrap();
    assert_eq!(small["requests"], 2);
    assert_eq!(rows[0]["group"], "large", "ordered by cost");
    let by_tag: Value = gw
        .admin_get("/admin/spend?group_by=tag")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_tag["data"][0]["group"], "support");
    assert_eq!(by_tag["data"][0]["requests"], 3);
    let total: f64 = rows.iter().map(|r| r["cost_usd"].as_f64().unwrap()).sum();
    let f = &by_model["forecast"];
    assert!((f["month_to_date_usd"].as_f64().unwrap() - total).abs() < 1e-12);
    assert!(f["projected_month_end_usd"].as_f64().unwrap() >= total);
    let future: Value = gw
        .admin_get("/admin/spend?group_by=tenant&from=2999-01-01")
        .await
        .json()
        .await
        .unwrap();
    assert!(future["data"].as_array().unwrap().is_empty());
    assert_eq!(
        gw.admin(Method::GET, "/admin/spend?group_by=planet", ADMIN_KEY, None)
            .await
            .status(),
        400
    );
    gw.shutdown().await;
}
