//! PostgreSQL backend against the real server on this machine. Each test works
//! in its own schema, dropped afterwards even if the test fails.

mod common;

use std::future::Future;
use std::sync::Arc;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use switchyard_store::{connect, connect_postgres_schema, Store};

const CANDIDATES: &[&str] = &[
    "postgres://postgres@127.0.0.1:5432/test",
    "postgres://root@127.0.0.1:5432/test",
];

/// `SWITCHYARD_TEST_PG_URL` overrides; otherwise the first local role that
/// accepts a connection. Failing to reach any is a test failure, not a skip.
async fn base_url() -> String {
    if let Ok(url) = std::env::var("SWITCHYARD_TEST_PG_URL") {
        return url;
    }
    for url in CANDIDATES {
        if let Ok(conn) = PgConnection::connect(url).await {
            let _ = conn.close().await;
            return (*url).to_string();
        }
    }
    panic!("no PostgreSQL reachable at {CANDIDATES:?}; set SWITCHYARD_TEST_PG_URL");
}

fn unique_schema() -> String {
    format!("sy_test_{}", uuid::Uuid::new_v4().simple())
}

async fn drop_schema(url: &str, schema: &str) {
    let mut conn = PgConnection::connect(url)
        .await
        .expect("connect for cleanup");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut conn)
        .await
        .expect("drop schema");
    let _ = conn.close().await;
}

/// Runs `body` against a store pinned to a fresh schema, then drops the
/// schema whether or not `body` panicked.
async fn with_schema<F, Fut>(body: F)
where
    F: FnOnce(String, String, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = base_url().await;
    let schema = unique_schema();
    let store = connect_postgres_schema(&url, &schema)
        .await
        .expect("connect");
    assert_eq!(store.backend(), "postgres");
    let outcome = tokio::spawn(body(url.clone(), schema.clone(), store)).await;
    drop_schema(&url, &schema).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn postgres_conformance() {
    with_schema(|_, _, store| common::conformance(store)).await;
}

#[tokio::test]
async fn schemas_are_isolated_and_url_search_path_works() {
    with_schema(|url, schema, store| async move {
        store.migrate().await.unwrap();
        store
            .insert_requests(&[common::record("only-here", 5)])
            .await
            .unwrap();

        let other_schema = unique_schema();
        let other = connect_postgres_schema(&url, &other_schema).await.unwrap();
        other.migrate().await.unwrap();
        let other_count = other.count_requests().await;
        drop_schema(&url, &other_schema).await;
        assert_eq!(other_count.unwrap(), 0);

        // The same schema reached through the URL's `options` parameter.
        let via_url = format!("{url}?options=-c%20search_path%3D{schema}");
        let same = connect(&via_url).await.unwrap();
        assert_eq!(same.count_requests().await.unwrap(), 1);
        assert_eq!(
            same.get_request("only-here").await.unwrap(),
            Some(common::record("only-here", 5))
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_migrations_do_not_race() {
    with_schema(|url, schema, store| async move {
        let second = connect_postgres_schema(&url, &schema).await.unwrap();
        let (a, b) = tokio::join!(store.migrate(), second.migrate());
        a.unwrap();
        b.unwrap();
        assert_eq!(store.count_requests().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn bad_schema_names_are_refused_before_any_sql() {
    let err = connect_postgres_schema("postgres://u@127.0.0.1:1/x", "x; DROP TABLE y")
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("invalid schema name"), "{err}");
}

/// A separate pool pinned to the test's schema, for statements the `Store`
/// API would never issue.
async fn raw(url: &str, schema: &str) -> common::Raw {
    let opts = PgConnectOptions::from_str(url)
        .unwrap()
        .options([("search_path", schema)]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
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
async fn postgres_keys() {
    with_schema(|_, _, store| common::tenancy::keys_suite(store)).await;
}

#[tokio::test]
async fn postgres_tenants() {
    with_schema(|_, _, store| common::tenancy::tenants_suite(store)).await;
}

#[tokio::test]
async fn postgres_audit_is_append_only() {
    with_schema(|url, schema, store| async move {
        store.migrate().await.unwrap();
        let raw = raw(&url, &schema).await;
        common::tenancy::audit_suite(store, raw, &["TRUNCATE audit_log"]).await;
    })
    .await;
}

#[tokio::test]
async fn postgres_spend() {
    with_schema(|_, _, store| common::ledger::spend_suite(store)).await;
}

#[tokio::test]
async fn postgres_retention_keeps_totals() {
    with_schema(|_, _, store| common::ledger::retention_suite(store)).await;
}

#[tokio::test]
async fn postgres_delete_user() {
    with_schema(|_, _, store| common::ledger::delete_user_suite(store)).await;
}

#[tokio::test]
async fn postgres_cache_entries() {
    with_schema(|_, _, store| common::cache::cache_suite(store)).await;
}

#[tokio::test]
async fn postgres_feedback_and_experiment_reports() {
    with_schema(|_, _, store| common::feedback::feedback_suite(store)).await;
}

#[tokio::test]
async fn postgres_feedback_follows_deletion_and_retention() {
    with_schema(|_, _, store| common::feedback::feedback_lifecycle(store)).await;
}

/// The schema and one row of each table exactly as the first release wrote
/// them.
const OLD_SCHEMA: &[&str] = &[
    "CREATE TABLE requests (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id TEXT NOT NULL UNIQUE,
        ts_ms BIGINT NOT NULL,
        tenant TEXT NOT NULL,
        key_id TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        model_requested TEXT NOT NULL,
        model_used TEXT,
        provider TEXT,
        status INTEGER NOT NULL,
        error_kind TEXT,
        error_message TEXT,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        latency_ms BIGINT NOT NULL,
        ttft_ms BIGINT,
        attempts BIGINT NOT NULL,
        stream BOOLEAN NOT NULL,
        cache TEXT,
        tags TEXT NOT NULL,
        metadata TEXT NOT NULL
    )",
    "CREATE INDEX requests_ts_idx ON requests (ts_ms DESC, seq DESC)",
    "CREATE INDEX requests_tenant_ts_idx ON requests (tenant, ts_ms)",
    "CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        key_hash TEXT NOT NULL,
        tenant TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        revoked BOOLEAN NOT NULL DEFAULT FALSE
    )",
    "CREATE INDEX api_keys_hash_idx ON api_keys (key_hash)",
    "INSERT INTO requests (request_id, ts_ms, tenant, key_id, endpoint, model_requested,
        status, prompt_tokens, completion_tokens, cost_usd, latency_ms, attempts, stream,
        tags, metadata)
     VALUES ('old-req', 1000, 'acme', 'old-key', 'chat.completions', 'gpt-4o',
        200, 3, 4, 0.5, 10, 1, FALSE, '[\"prod\"]', '{}')",
    "INSERT INTO api_keys (key_id, key_hash, tenant, created_ms) VALUES ('old-key', 'ff', 'acme', 7)",
];

#[tokio::test]
async fn postgres_upgrades_a_database_from_the_old_schema() {
    with_schema(|url, schema, store| async move {
        let raw = raw(&url, &schema).await;
        for stmt in OLD_SCHEMA {
            raw(stmt.to_string()).await.unwrap();
        }
        common::tenancy::after_upgrade(store).await;
    })
    .await;
}
