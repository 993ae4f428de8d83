//! Keys, tenants and the admin API boundary.

mod common;

use common::*;

#[tokio::test]
async fn missing_and_bad_keys_are_401_in_openai_format() {
    let gw = TestGateway::start().await;
    let resp = gw
        .client
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(&hello("small"))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "authentication_error");
    let (status, body) = error_of(gw.chat("sk-wrong-key-123", hello("small")).await).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_api_key");
    gw.shutdown().await;
}

#[tokio::test]
async fn tenant_keys_are_forbidden_on_admin() {
    let gw = TestGateway::start().await;
    let resp = gw
        .client
        .get(format!("{}/admin/requests", gw.url))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["type"], "permission_error");
    let resp = gw
        .client
        .get(format!("{}/admin/requests", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(gw.admin_get("/admin/requests").await.status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn requests_are_attributed_to_the_tenant_without_exposing_the_key() {
    let gw = TestGateway::start().await;
    let resp = gw.chat(ACME_KEY, hello("small")).await;
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let rec: serde_json::Value = gw
        .admin_get(&format!("/admin/requests/{rid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["tenant"], "acme");
    let key_id = rec["key_id"].as_str().unwrap();
    assert!(key_id.starts_with("key_") && !key_id.contains("acme-test"));
    // Keys are stored as digests only.
    let keys = gw.state.store.list_api_keys().await.unwrap();
    assert!(keys
        .iter()
        .all(|k| k.key_hash.len() == 64 && !k.key_hash.contains(ACME_KEY)));
    assert!(keys.iter().any(|k| k.tenant == "acme"));
    gw.shutdown().await;
}
