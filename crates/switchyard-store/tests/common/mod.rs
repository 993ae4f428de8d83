//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod cache;
pub mod feedback;
pub mod ledger;
pub mod tenancy;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use switchyard_store::{ApiKeyRecord, RequestRecord, Store};

/// Runs one raw SQL statement against the store's database, bypassing the
/// `Store` API (to prove what the database itself refuses). Returns rows
/// affected, or the database's error message.
pub type Raw =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> + Send + Sync>;

pub fn record(id: &str, ts_ms: i64) -> RequestRecord {
    let mut metadata = serde_json::Map::new();
    metadata.insert("team".into(), serde_json::json!("search"));
    metadata.insert(
        "nested".into(),
        serde_json::json!({"a": [1, 2.5, null, "ü"]}),
    );
    RequestRecord {
        request_id: id.to_string(),
        ts_ms,
        tenant: "acme".into(),
        key_id: "key_1".into(),
        endpoint: "chat.completions".into(),
        model_requested: "gpt-4o".into(),
        model_used: Some("gpt-4o-2024-08-06".into()),
        provider: Some("openai".into()),
        status: 200,
        error_kind: None,
        error_message: None,
        prompt_tokens: 120,
        completion_tokens: 48,
        cost_usd: 0.000_731_5,
        latency_ms: 812,
        ttft_ms: Some(95),
        attempts: 1,
        stream: true,
        cache: Some("miss".into()),
        tags: vec!["prod".into(), "ünïcode ✓".into()],
        metadata,
        user: Some("end-user ü".into()),
        bodies: Some(serde_json::json!({
            "messages": [{"role": "user", "content": "héllo [EMAIL]"}],
            "answer": "ü ✓",
            "redacted": true
        })),
    }
}

fn failed(id: &str, ts_ms: i64) -> RequestRecord {
    RequestRecord {
        request_id: id.to_string(),
        ts_ms,
        tenant: "beta".into(),
        key_id: "key_2".into(),
        endpoint: "embeddings".into(),
        model_requested: "text-embedding-3-small".into(),
        status: 499,
        error_kind: Some("client_closed".into()),
        error_message: Some("client went away".into()),
        attempts: 2,
        ..Default::default()
    }
}

/// The contract every backend must satisfy; each backend's test file runs it
/// against a fresh, empty database.
pub async fn conformance(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrate is idempotent");
    store.ping().await.expect("ping");

    assert_eq!(store.count_requests().await.unwrap(), 0);
    assert!(store.list_requests(10).await.unwrap().is_empty());
    assert_eq!(store.get_request("nope").await.unwrap(), None);
    store
        .insert_requests(&[])
        .await
        .expect("empty batch is a no-op");

    // Order: ts_ms desc, then insertion order desc (r2 and r4 share ts_ms).
    let r1 = record("r1", 100);
    let r2 = record("r2", 300);
    let r3 = failed("r3", 200);
    let r4 = record("r4", 300);
    store
        .insert_requests(&[r1.clone(), r2.clone()])
        .await
        .unwrap();
    store
        .insert_requests(&[r3.clone(), r4.clone()])
        .await
        .unwrap();
    let ids = |v: Vec<RequestRecord>| v.into_iter().map(|r| r.request_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_requests(10).await.unwrap()),
        ["r4", "r2", "r3", "r1"]
    );
    assert_eq!(ids(store.list_requests(2).await.unwrap()), ["r4", "r2"]);
    assert_eq!(store.count_requests().await.unwrap(), 4);

    // Every field round-trips, including the None/empty variants.
    assert_eq!(store.get_request("r1").await.unwrap(), Some(r1.clone()));
    assert_eq!(store.get_request("r3").await.unwrap(), Some(r3.clone()));

    // Idempotent on request_id: a replayed (even altered) row is ignored, new
    // rows in the same batch still land, duplicates inside a batch are fine.
    let mut r1_again = r1.clone();
    r1_again.status = 500;
    let r5 = record("r5", 50);
    store
        .insert_requests(&[r1_again, r5.clone(), r5.clone()])
        .await
        .unwrap();
    assert_eq!(store.count_requests().await.unwrap(), 5);
    assert_eq!(store.get_request("r1").await.unwrap(), Some(r1));

    // Extremes of the integer mappings.
    let mut big = record("big", i64::MAX);
    big.prompt_tokens = i64::MAX as u64;
    big.completion_tokens = 0;
    big.latency_ms = u32::MAX as u64 * 4;
    big.ttft_ms = Some(0);
    big.attempts = u32::MAX;
    big.status = u16::MAX;
    big.cost_usd = 1e-12;
    store.insert_requests(&[big.clone()]).await.unwrap();
    assert_eq!(store.get_request("big").await.unwrap(), Some(big));
    assert_eq!(ids(store.list_requests(1).await.unwrap()), ["big"]);

    // NUL inside text must not make the batch fail (PostgreSQL rejects it raw).
    let mut nul = failed("nul", 1);
    nul.error_message = Some("upstream said \0 oops".into());
    store.insert_requests(&[nul]).await.expect("NUL tolerated");
    assert!(store.get_request("nul").await.unwrap().is_some());

    // A batch larger than one statement's bind budget.
    let many: Vec<_> = (0..2500)
        .map(|i| record(&format!("bulk-{i:05}"), 10 + i))
        .collect();
    store.insert_requests(&many).await.unwrap();
    assert_eq!(store.count_requests().await.unwrap(), 7 + 2500);
    assert_eq!(
        store.get_request("bulk-01234").await.unwrap(),
        Some(many[1234].clone())
    );

    // API keys: upsert inserts, then replaces by key_id.
    assert!(store.list_api_keys().await.unwrap().is_empty());
    let k1 = ApiKeyRecord {
        key_id: "k1".into(),
        key_hash: "aa".repeat(32),
        tenant: "acme".into(),
        created_ms: 2,
        revoked: false,
        ..Default::default()
    };
    let k2 = ApiKeyRecord {
        key_id: "k2".into(),
        key_hash: "bb".repeat(32),
        tenant: "beta".into(),
        created_ms: 1,
        revoked: false,
        ..Default::default()
    };
    store.upsert_api_key(&k1).await.unwrap();
    store.upsert_api_key(&k2).await.unwrap();
    let k1_revoked = ApiKeyRecord {
        revoked: true,
        ..k1.clone()
    };
    store.upsert_api_key(&k1_revoked).await.unwrap();
    assert_eq!(store.list_api_keys().await.unwrap(), vec![k2, k1_revoked]);
}
