//! PostgreSQL backend against the real server on this machine. Each test works
//! in its own schema, dropped afterwards even if the test fails.

mod common;

use std::future::Future;
use std::sync::Arc;

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
