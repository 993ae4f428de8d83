//! SQLite backend against real database files in a temporary directory.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::SqlitePoolOptions;
use switchyard_store::{connect, connect_lazy, connect_with, Store, StoreError, StoreOptions};

/// A fresh store on a file in `dir`, plus its URL.
async fn file_store(dir: &tempfile::TempDir, name: &str) -> (String, Arc<dyn Store>) {
    let url = format!("sqlite://{}", dir.path().join(name).display());
    let store = connect(&url).await.unwrap();
    (url, store)
}

/// A separate sqlx pool on the same file, for statements the `Store` API
/// would never issue.
async fn raw(url: &str) -> common::Raw {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    Arc::new(move |sql: String| {
        let pool = pool.clone();
        Box::pin(async move {
            sqlx::query(&sql)
                .execute(&pool)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| e.to_string())
        })
    })
}

#[tokio::test]
async fn sqlite_file_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("log.db").display());
    let store = connect(&url).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    common::conformance(store).await;
}

#[tokio::test]
async fn sqlite_memory_conformance() {
    let store = connect("sqlite::memory:").await.unwrap();
    common::conformance(store).await;
}

#[tokio::test]
async fn sqlite_lazy_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("lazy.db").display());
    let store = connect_lazy(&url).unwrap();
    common::conformance(store).await;
}

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Parent directories that do not exist yet are created.
    let path = dir.path().join("nested/deeper/switchyard.db");
    let url = format!("sqlite://{}", path.display());
    {
        let store = connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store
            .insert_requests(&[common::record("a", 1), common::record("b", 2)])
            .await
            .unwrap();
        // WAL mode is on: the write-ahead log sits next to the database.
        assert!(dir.path().join("nested/deeper/switchyard.db-wal").exists());
    }
    assert!(path.exists());
    let store = connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.count_requests().await.unwrap(), 2);
    assert_eq!(
        store.get_request("b").await.unwrap(),
        Some(common::record("b", 2))
    );
}

#[tokio::test]
async fn two_pools_on_one_file_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let a = connect(&url).await.unwrap();
    let b = connect(&url).await.unwrap();
    a.migrate().await.unwrap();
    b.migrate().await.unwrap();
    let (from_a, from_b) = ([common::record("from-a", 1)], [common::record("from-b", 2)]);
    let (ra, rb) = tokio::join!(a.insert_requests(&from_a), b.insert_requests(&from_b));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(a.count_requests().await.unwrap(), 2);
}

#[tokio::test]
async fn url_problems_are_named_without_secrets() {
    let err = connect("mysql://user:hunter2@db/x").await.err().unwrap();
    assert!(matches!(err, StoreError::UnsupportedScheme(_)));
    let msg = err.to_string();
    assert!(msg.contains("mysql") && msg.contains("sqlite:"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");

    let err = connect("just-a-path.db").await.err().unwrap();
    assert!(err.to_string().contains("missing scheme"), "{err}");

    let err = connect("sqlite://").await.err().unwrap();
    assert!(err.to_string().contains("no database file path"), "{err}");

    // A refused connection surfaces as a database error that does not leak
    // the password.
    let opts = StoreOptions {
        acquire_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let err = connect_with("postgres://app:hunter2@127.0.0.1:1/x", &opts)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            StoreError::Database {
                backend: "postgres",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn sqlite_keys() {
    let dir = tempfile::tempdir().unwrap();
    common::tenancy::keys_suite(file_store(&dir, "k.db").await.1).await;
}

#[tokio::test]
async fn sqlite_tenants() {
    let dir = tempfile::tempdir().unwrap();
    common::tenancy::tenants_suite(file_store(&dir, "t.db").await.1).await;
}

#[tokio::test]
async fn sqlite_audit_is_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let (url, store) = file_store(&dir, "a.db").await;
    store.migrate().await.unwrap();
    common::tenancy::audit_suite(store, raw(&url).await, &[]).await;
}

#[tokio::test]
async fn sqlite_spend() {
    let dir = tempfile::tempdir().unwrap();
    common::ledger::spend_suite(file_store(&dir, "s.db").await.1).await;
}

#[tokio::test]
async fn sqlite_spend_in_memory() {
    common::ledger::spend_suite(connect("sqlite::memory:").await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_retention_keeps_totals() {
    let dir = tempfile::tempdir().unwrap();
    common::ledger::retention_suite(file_store(&dir, "r.db").await.1).await;
}

#[tokio::test]
async fn sqlite_delete_user() {
    let dir = tempfile::tempdir().unwrap();
    common::ledger::delete_user_suite(file_store(&dir, "u.db").await.1).await;
}

#[tokio::test]
async fn sqlite_cache_entries() {
    let dir = tempfile::tempdir().unwrap();
    common::cache::cache_suite(file_store(&dir, "c.db").await.1).await;
}

#[tokio::test]
async fn sqlite_cache_entries_in_memory() {
    common::cache::cache_suite(connect("sqlite::memory:").await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_feedback_and_experiment_reports() {
    let dir = tempfile::tempdir().unwrap();
    common::feedback::feedback_suite(file_store(&dir, "f.db").await.1).await;
}

#[tokio::test]
async fn sqlite_feedback_follows_deletion_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    common::feedback::feedback_lifecycle(file_store(&dir, "fl.db").await.1).await;
}

#[tokio::test]
async fn cache_entries_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (url, store) = file_store(&dir, "reopen.db").await;
    store.migrate().await.unwrap();
    let e = common::cache::entry("kept", "acme", "small", 7);
    store
        .put_cache_entries(std::slice::from_ref(&e))
        .await
        .unwrap();
    drop(store);
    let store = connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.load_cache_entries(0, 10).await.unwrap(), vec![e]);
}

/// The schema and one row of each table exactly as the first release wrote
/// them.
const OLD_SCHEMA: &[&str] = &[
    "CREATE TABLE requests (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL UNIQUE,
        ts_ms INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        key_id TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        model_requested TEXT NOT NULL,
        model_used TEXT,
        provider TEXT,
        status INTEGER NOT NULL,
        error_kind TEXT,
        error_message TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        latency_ms INTEGER NOT NULL,
        ttft_ms INTEGER,
        attempts INTEGER NOT NULL,
        stream INTEGER NOT NULL,
        cache TEXT,
        tags TEXT NOT NULL,
        metadata TEXT NOT NULL
    )",
    "CREATE INDEX requests_ts_idx ON requests (ts_ms DESC, seq DESC)",
    "CREATE INDEX requests_tenant_ts_idx ON requests (tenant, ts_ms)",
    "CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY NOT NULL,
        key_hash TEXT NOT NULL,
        tenant TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE INDEX api_keys_hash_idx ON api_keys (key_hash)",
    "INSERT INTO requests (request_id, ts_ms, tenant, key_id, endpoint, model_requested,
        status, prompt_tokens, completion_tokens, cost_usd, latency_ms, attempts, stream,
        tags, metadata)
     VALUES ('old-req', 1000, 'acme', 'old-key', 'chat.completions', 'gpt-4o',
        200, 3, 4, 0.5, 10, 1, 0, '[\"prod\"]', '{}')",
    "INSERT INTO api_keys (key_id, key_hash, tenant, created_ms) VALUES ('old-key', 'ff', 'acme', 7)",
];

#[tokio::test]
async fn sqlite_upgrades_a_database_from_the_old_schema() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    {
        let pool = SqlitePoolOptions::new()
            .connect_with(
                url.parse::<sqlx::sqlite::SqliteConnectOptions>()
                    .unwrap()
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        for stmt in OLD_SCHEMA {
            sqlx::query(stmt).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    let store = connect(&url).await.unwrap();
    common::tenancy::after_upgrade(store).await;
}
