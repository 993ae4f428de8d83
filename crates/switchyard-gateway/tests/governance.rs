//! End-user deletion, retention with aggregates kept, tenants made at run time, hot reload.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn deleting_a_user_removes_their_records_and_is_audited() {
    let gw = TestGateway::start().await;
    for user in ["alice", "alice", "bob"] {
        gw.chat(ACME_KEY, json!({"model": "small", "user": user, "messages": [{"role": "user", "content": "hi"}]})).await;
    }
    let resp: Value = gw
        .admin(Method::DELETE, "/admin/users/alice", ADMIN_KEY, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resp["deleted_requests"], 2);
    let rows: Value = gw.admin_get("/admin/requests").await.json().await.unwrap();
    assert_eq!(rows["data"].as_array().unwrap().len(), 1);
    let audit: Value = gw.admin_get("/admin/audit").await.json().await.unwrap();
    let entry = &audit["data"][0];
    assert_eq!(entry["action"], "user.delete");
    assert!(
        !entry.to_string().contains("alice"),
        "the audit trail does not keep the erased name"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn retention_purges_old_rows_but_keeps_spend_totals() {
    let gw = TestGateway::start().await;
    gw.chat(ACME_KEY, hello("large")).await;
    // Rows from 40 days ago, written straight to the store as an older gateway would have.
    let old_ms = switchyard_store_now_ms() - 40 * 86_400_000;
    let old: Vec<_> = (0..3)
        .map(|i| switchyard_store::RequestRecord {
            request_id: format!("req_old_{i}"),
            ts_ms: old_ms,
            tenant: "acme".into(),
            key_id: "key_old".into(),
            model_requested: "large".into(),
            model_used: Some("large".into()),
            status: 200,
            prompt_tokens: 10,
            completion_tokens: 10,
            cost_usd: 0.5,
            tags: vec!["support".into()],
            ..Default::default()
        })
        .collect();
    gw.state.store.insert_requests(&old).await.unwrap();
    let before: Value = gw
        .admin_get("/admin/spend?group_by=tag")
        .await
        .json()
        .await
        .unwrap();
    let tenant = json!({"name": "acme", "retention_days": 30});
    assert_eq!(
        gw.admin(Method::POST, "/admin/tenants", ADMIN_KEY, Some(tenant))
            .await
            .status(),
        200
    );
    let run: Value = gw
        .admin(Method::POST, "/admin/retention/run", ADMIN_KEY, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["purged"]["acme"], 3, "only rows past the retention go");
    let rows: Value = gw.admin_get("/admin/requests").await.json().await.unwrap();
    assert_eq!(rows["data"].as_array().unwrap().len(), 1);
    let after: Value = gw
        .admin_get("/admin/spend?group_by=tag")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["data"], after["data"], "aggregates keep the totals");
    assert_eq!(
        gw.chat(ACME_KEY, hello("small")).await.status(),
        200,
        "the tenant's config keys still work"
    );
    let audit: Value = gw.admin_get("/admin/audit").await.json().await.unwrap();
    assert!(audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "retention.purge" && e["target"] == "acme"));
    gw.shutdown().await;
}

fn switchyard_store_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn tenants_created_through_the_api_get_keys_and_limits() {
    let gw = TestGateway::start().await;
    let t = json!({"name": "newco", "rpm": 1});
    assert_eq!(
        gw.admin(Method::POST, "/admin/tenants", ADMIN_KEY, Some(t))
            .await
            .status(),
        200
    );
    let created: Value = gw
        .admin(
            Method::POST,
            "/admin/keys",
            ADMIN_KEY,
            Some(json!({"tenant": "newco", "name": "first"})),
        )
        .await
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    assert_eq!(gw.chat(key, hello("small")).await.status(), 200);
    assert_eq!(gw.chat(key, hello("small")).await.status(), 429);
    let bad = gw
        .admin(
            Method::POST,
            "/admin/tenants",
            ADMIN_KEY,
            Some(json!({"name": "x", "rpm": 0})),
        )
        .await;
    assert_eq!(error_of(bad).await.0, 400);
    let audit: Value = gw.admin_get("/admin/audit").await.json().await.unwrap();
    assert!(audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "tenant.upsert" && e["target"] == "newco"));
    gw.shutdown().await;
}

#[tokio::test]
async fn config_reload_swaps_models_and_refuses_bad_files() {
    let gw = TestGateway::start().await;
    let path = gw.dir.path().join("switchyard.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!(
            "{text}\n[[models]]\nname = \"added\"\nprovider = \"mock\"\nupstream = \"gpt-4o\"\n"
        ),
    )
    .unwrap();
    assert_eq!(gw.chat(ACME_KEY, hello("added")).await.status(), 404);
    assert_eq!(
        gw.admin(Method::POST, "/admin/config/reload", ADMIN_KEY, None)
            .await
            .status(),
        200
    );
    assert_eq!(gw.chat(ACME_KEY, hello("added")).await.status(), 200);

    std::fs::write(
        &path,
        format!("{text}\n[[models]]\nname = \"broken2\"\nprovider = \"nowhere\"\n"),
    )
    .unwrap();
    let (status, body) = error_of(
        gw.admin(Method::POST, "/admin/config/reload", ADMIN_KEY, None)
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown provider"),
        "{body}"
    );
    assert_eq!(
        gw.chat(ACME_KEY, hello("added")).await.status(),
        200,
        "the running config is unchanged"
    );
    // Deleting a configured key from the file takes it away on reload.
    std::fs::write(
        &path,
        text.replace(&format!("keys = [\"{ACME_KEY}\"]"), "keys = []"),
    )
    .unwrap();
    assert_eq!(
        gw.admin(Method::POST, "/admin/config/reload", ADMIN_KEY, None)
            .await
            .status(),
        200
    );
    assert_eq!(gw.chat(ACME_KEY, hello("small")).await.status(), 401);

    let audit: Value = gw.admin_get("/admin/audit").await.json().await.unwrap();
    let outcomes: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "config.reload")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["ok", "error", "ok"]);
    gw.shutdown().await;
}
