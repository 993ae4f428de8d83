//! SQLite backend against real database files in a temporary directory.

mod common;

use std::time::Duration;

use switchyard_store::{connect, connect_lazy, connect_with, StoreError, StoreOptions};

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
