//! The production store: the same gateway against the real PostgreSQL on this machine.

mod common;

use common::*;
use serde_json::Value;

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

#[tokio::test]
async fn requests_are_logged_to_postgres_and_survive_restart() {
    let schema = format!("sy_gw_{}", uuid_like());
    switchyard_store::connect_postgres_schema(PG, &schema)
        .await
        .expect("postgres reachable");
    let store_url = format!("{PG}?options=-c%20search_path%3D{schema}");
    let gw = TestGateway::start_with(tempfile::tempdir().unwrap(), &store_url, "").await;
    assert_eq!(gw.state.store.backend(), "postgres");
    let rid = gw.chat(ACME_KEY, hello("small")).await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    gw.chat(ACME_KEY, hello("gpt-unknown")).await;
    let (mock, dir) = gw.shutdown().await;

    let gw = TestGateway::start_full(dir, mock, &store_url, "").await;
    let rec: Value = gw
        .admin_get(&format!("/admin/requests/{rid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["tenant"], "acme");
    let list: Value = gw.admin_get("/admin/requests").await.json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(list["data"][0]["status"], 404);
    gw.shutdown().await;
    drop_schema(&schema).await;
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// Best-effort cleanup with the machine's psql client, so reruns do not pile up schemas.
async fn drop_schema(schema: &str) {
    let _ = tokio::process::Command::new("psql")
        .args([
            PG,
            "-qc",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .output()
        .await;
}
