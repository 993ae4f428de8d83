//! Keys made through the admin API: shown once, stored as digests, scoped, revoked at once, and
//! every change audited.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn create(gw: &TestGateway, by: &str, body: Value) -> reqwest::Response {
    gw.admin(Method::POST, "/admin/keys", by, Some(body)).await
}

#[tokio::test]
async fn created_key_works_until_revoked_and_both_actions_are_audited() {
    let gw = TestGateway::start().await;
    let resp = create(
        &gw,
        ADMIN_KEY,
        json!({"tenant": "acme", "name": "batch-jobs"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let (id, key) = (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    );
    assert!(key.starts_with("sk-sy-"));

    let ok = gw.chat(&key, hello("small")).await;
    assert_eq!(ok.status(), 200);
    let rid = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    let rec: Value = gw
        .admin_get(&format!("/admin/requests/{rid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (rec["tenant"].as_str(), rec["key_id"].as_str()),
        (Some("acme"), Some(id.as_str()))
    );

    let listed: Value = gw
        .admin_get("/admin/keys?tenant=acme")
        .await
        .json()
        .await
        .unwrap();
    let row = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["name"], "batch-jobs");
    assert!(
        row.get("key").is_none() && !listed.to_string().contains(&key),
        "the secret is shown once only"
    );

    let revoked = gw
        .admin(
            Method::DELETE,
            &format!("/admin/keys/{id}"),
            ADMIN_KEY,
            None,
        )
        .await;
    assert_eq!(revoked.status(), 200);
    let (status, _) = error_of(gw.chat(&key, hello("small")).await).await;
    assert_eq!(status, 401, "refused at once");

    let audit: Value = gw.admin_get("/admin/audit").await.json().await.unwrap();
    let actions: Vec<(String, String, String)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["target"].as_str().unwrap().into(),
                e["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("key.create".into(), id.clone(), "ok".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("key.revoke".into(), id.clone(), "ok".into())),
        "{actions:?}"
    );
    assert_eq!(actions[0].0, "key.revoke", "newest first");

    // Nothing on disk holds a key in clear: neither the configured nor the created one.
    let (mock, dir) = gw.shutdown().await;
    drop(mock);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("switchyard.db") {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!bytes.is_empty());
    for secret in [key.as_str(), ACME_KEY, ADMIN_KEY] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} found in the database"
        );
    }
}

#[tokio::test]
async fn revocation_survives_a_restart_even_for_configured_keys() {
    let gw = TestGateway::start().await;
    let keys: Value = gw
        .admin_get("/admin/keys?tenant=acme")
        .await
        .json()
        .await
        .unwrap();
    let id = keys["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        gw.admin(
            Method::DELETE,
            &format!("/admin/keys/{id}"),
            ADMIN_KEY,
            None
        )
        .await
        .status(),
        200
    );
    let (mock, dir) = gw.shutdown().await;
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let gw = TestGateway::start_full(dir, mock, &url, "").await;
    assert_eq!(gw.chat(ACME_KEY, hello("small")).await.status(), 401);
    gw.shutdown().await;
}

#[tokio::test]
async fn roles_scope_what_a_key_may_do() {
    let gw = TestGateway::start().await;
    let ta: Value = create(
        &gw,
        ADMIN_KEY,
        json!({"tenant": "acme", "name": "acme-admin", "role": "tenant_admin"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let ta_key = ta["key"].as_str().unwrap().to_owned();
    let viewer: Value = create(
        &gw,
        ADMIN_KEY,
        json!({"tenant": "acme", "name": "acme-viewer", "role": "viewer"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let viewer_key = viewer["key"].as_str().unwrap().to_owned();

    // A tenant admin manages its own tenant only, and cannot mint admins.
    assert_eq!(
        create(&gw, &ta_key, json!({"tenant": "acme", "name": "svc"}))
            .await
            .status(),
        201
    );
    assert_eq!(
        create(&gw, &ta_key, json!({"tenant": "limited", "name": "svc"}))
            .await
            .status(),
        403
    );
    assert_eq!(
        create(
            &gw,
            &ta_key,
            json!({"tenant": "acme", "name": "x", "role": "admin"})
        )
        .await
        .status(),
        403
    );
    let seen: Value = gw
        .admin(Method::GET, "/admin/keys", &ta_key, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(seen["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["tenant"] == "acme"));
    // Viewers read, never write; plain keys have no admin access; the request log is admin-only.
    assert_eq!(
        gw.admin(Method::GET, "/admin/spend", &viewer_key, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        create(&gw, &viewer_key, json!({"tenant": "acme", "name": "y"}))
            .await
            .status(),
        403
    );
    assert_eq!(
        gw.admin(Method::GET, "/admin/keys", ACME_KEY, None)
            .await
            .status(),
        403
    );
    assert_eq!(
        gw.admin(Method::GET, "/admin/requests", &ta_key, None)
            .await
            .status(),
        403
    );

    let audit: Value = gw.admin_get("/admin/audit").await.json().await.unwrap();
    let denied = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .count();
    assert_eq!(denied, 2, "refused attempts are audited: {audit}");
    gw.shutdown().await;
}

#[tokio::test]
async fn model_scopes_and_expiry() {
    let gw = TestGateway::start().await;
    let scoped: Value = create(
        &gw,
        ADMIN_KEY,
        json!({"tenant": "acme", "name": "small-only", "models": ["small"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let key = scoped["key"].as_str().unwrap();
    assert_eq!(gw.chat(key, hello("small")).await.status(), 200);
    let (status, body) = error_of(gw.chat(key, hello("large")).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("model_not_allowed"))
    );
    let models: Value = gw
        .client
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 1);

    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let short: Value = create(
        &gw,
        ADMIN_KEY,
        json!({"tenant": "acme", "name": "short", "expires_at": soon}),
    )
    .await
    .json()
    .await
    .unwrap();
    let key = short["key"].as_str().unwrap();
    assert_eq!(gw.chat(key, hello("small")).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (status, body) = error_of(gw.chat(key, hello("small")).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("expired_api_key"))
    );

    let bad = create(&gw, ADMIN_KEY, json!({"tenant": "nobody", "name": "x"})).await;
    assert_eq!(bad.status(), 404);
    let bad = create(
        &gw,
        ADMIN_KEY,
        json!({"tenant": "acme", "name": "x", "models": ["gpt-9"]}),
    )
    .await;
    assert_eq!(error_of(bad).await.0, 400);
    gw.shutdown().await;
}
