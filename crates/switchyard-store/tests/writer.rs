//! The batched writer and its spool, end to end against real stores.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchyard_store::{
    connect, connect_lazy_with, ApiKeyRecord, ArmStats, AuditEvent, CacheEntryFilter,
    CacheEntryRecord, CostFilter, ExperimentQuery, FeedbackRecord, ModelFeedback, RequestLog,
    RequestRecord, SpendQuery, SpendRow, Store, StoreError, StoreOptions, TenantRecord,
    WriterOptions,
};

async fn sqlite_store(dir: &Path, name: &str) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", dir.join(name).display());
    let store = connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn unreachable_store() -> Arc<dyn Store> {
    // Port 1 refuses at once; the short acquire timeout keeps the one insert
    // attempt (after which the writer spools directly) quick.
    let opts = StoreOptions {
        acquire_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    connect_lazy_with("postgres://postgres@127.0.0.1:1/test", &opts).unwrap()
}

fn opts() -> WriterOptions {
    WriterOptions {
        batch_size: 64,
        flush_interval: Duration::from_millis(20),
        // Long, so that tests control replays explicitly.
        replay_interval: Duration::from_secs(3600),
        ..WriterOptions::default()
    }
}

fn spool_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0)
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

#[tokio::test]
async fn records_reach_the_store_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path(), "db.sqlite").await;
    let spool = dir.path().join("spool.jsonl");
    let (log, handle) = RequestLog::spawn(store.clone(), spool.clone(), opts());

    for (i, id) in ids("f", 150).iter().enumerate() {
        log.record(common::record(id, i as i64));
    }
    log.flush().await;
    assert_eq!(store.count_requests().await.unwrap(), 150);
    assert_eq!(
        store.get_request("f-00149").await.unwrap(),
        Some(common::record("f-00149", 149))
    );
    assert_eq!(log.spooled_pending(), 0);
    assert_eq!(spool_lines(&spool), 0);

    log.shutdown().await;
    handle.await.unwrap();
}

#[tokio::test]
async fn a_partial_batch_is_written_by_the_flush_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path(), "db.sqlite").await;
    let (log, _handle) = RequestLog::spawn(store.clone(), dir.path().join("s.jsonl"), opts());
    log.record(common::record("lonely", 1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.count_requests().await.unwrap() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never flushed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    log.shutdown().await;
}

#[tokio::test]
async fn unreachable_store_spools_and_next_writer_replays_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("state/spool.jsonl");
    let all = ids("u", 500);

    let (down, handle) = RequestLog::spawn(unreachable_store(), spool.clone(), opts());
    for (i, id) in all.iter().enumerate() {
        down.record(common::record(id, i as i64));
    }
    down.flush().await;
    assert_eq!(down.spooled_pending(), 500);
    assert_eq!(spool_lines(&spool), 500);
    down.shutdown().await;
    handle.await.unwrap();
    // After shutdown the handle still keeps records, synchronously.
    down.record(common::record("late", 10_000));
    assert_eq!(down.spooled_pending(), 501);

    let store = sqlite_store(dir.path(), "db.sqlite").await;
    let (up, handle) = RequestLog::spawn(store.clone(), spool.clone(), opts());
    // The replay on start runs before any message, so one flush suffices.
    up.flush().await;
    assert_eq!(store.count_requests().await.unwrap(), 501);
    for id in all
        .iter()
        .step_by(37)
        .chain(std::iter::once(&"late".to_string()))
    {
        assert!(
            store.get_request(id).await.unwrap().is_some(),
            "{id} missing"
        );
    }
    assert_eq!(up.spooled_pending(), 0);
    assert_eq!(std::fs::metadata(&spool).unwrap().len(), 0);

    // Another replay (and another writer) finds nothing left to do.
    up.replay_now().await;
    up.shutdown().await;
    handle.await.unwrap();
    let (again, handle) = RequestLog::spawn(store.clone(), spool.clone(), opts());
    again.flush().await;
    again.shutdown().await;
    handle.await.unwrap();
    assert_eq!(store.count_requests().await.unwrap(), 501);
}

#[tokio::test]
async fn shutdown_drains_a_burst_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path(), "db.sqlite").await;
    let spool = dir.path().join("spool.jsonl");
    let (log, handle) = RequestLog::spawn(store.clone(), spool.clone(), WriterOptions::default());

    let producers: Vec<_> = (0..4)
        .map(|p| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..250 {
                    log.record(common::record(&format!("b{p}-{i}"), i));
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    log.shutdown().await;
    assert!(
        handle.is_finished()
            || tokio::time::timeout(Duration::from_secs(1), handle)
                .await
                .is_ok()
    );
    assert_eq!(store.count_requests().await.unwrap(), 1000);
    assert_eq!(log.spooled_pending(), 0);

    // Second shutdown and a flush after shutdown return at once.
    tokio::time::timeout(Duration::from_secs(1), log.shutdown())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), log.flush())
        .await
        .unwrap();
}

#[tokio::test]
async fn torn_and_corrupt_spool_lines_do_not_block_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool.jsonl");
    let mut text = String::new();
    for id in ["c1", "c2"] {
        text += &serde_json::to_string(&common::record(id, 1)).unwrap();
        text.push('\n');
    }
    text += "{ this is not json }\n\n";
    text += &serde_json::to_string(&common::record("c3", 1)).unwrap();
    text += "\n{\"request_id\":\"torn\",\"ts_m"; // crash mid-write
    std::fs::write(&spool, text).unwrap();

    let store = sqlite_store(dir.path(), "db.sqlite").await;
    let (log, _handle) = RequestLog::spawn(store.clone(), spool.clone(), opts());
    log.flush().await;
    assert_eq!(store.count_requests().await.unwrap(), 3);
    assert_eq!(log.spooled_pending(), 0);
    assert_eq!(std::fs::metadata(&spool).unwrap().len(), 0);
    log.shutdown().await;
}

/// A real store that can be switched off, and that refuses one poison id the
/// way a constraint violation would.
struct Flaky {
    inner: Arc<dyn Store>,
    down: AtomicBool,
    inserts: AtomicUsize,
    /// Held by a test to make inserts wait, as on a stalled disk.
    stall: tokio::sync::RwLock<()>,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Corrupt("simulated outage".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for Flaky {
    fn backend(&self) -> &'static str {
        "flaky"
    }
    async fn migrate(&self) -> Result<(), StoreError> {
        self.inner.migrate().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.check()
    }
    async fn insert_requests(&self, batch: &[RequestRecord]) -> Result<(), StoreError> {
        self.inserts.fetch_add(1, Ordering::SeqCst);
        let _running = self.stall.read().await;
        self.check()?;
        if batch.iter().any(|r| r.request_id == "poison") {
            return Err(StoreError::Encode("poison".into()));
        }
        self.inner.insert_requests(batch).await
    }
    async fn list_requests(&self, limit: u32) -> Result<Vec<RequestRecord>, StoreError> {
        self.inner.list_requests(limit).await
    }
    async fn get_request(&self, id: &str) -> Result<Option<RequestRecord>, StoreError> {
        self.inner.get_request(id).await
    }
    async fn count_requests(&self) -> Result<u64, StoreError> {
        self.inner.count_requests().await
    }
    async fn upsert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.inner.upsert_api_key(key).await
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.inner.list_api_keys().await
    }
    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.inner.get_api_key(key_id).await
    }
    async fn revoke_api_key(&self, key_id: &str, ts_ms: i64) -> Result<bool, StoreError> {
        self.inner.revoke_api_key(key_id, ts_ms).await
    }
    async fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        self.inner.touch_api_keys(uses).await
    }
    async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        self.inner.upsert_tenant(tenant).await
    }
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.inner.list_tenants().await
    }
    async fn get_tenant(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        self.inner.get_tenant(name).await
    }
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.inner.append_audit(event).await
    }
    async fn list_audit(
        &self,
        limit: u32,
        tenant: Option<&str>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.list_audit(limit, tenant).await
    }
    async fn spend_report(&self, query: &SpendQuery) -> Result<Vec<SpendRow>, StoreError> {
        self.inner.spend_report(query).await
    }
    async fn sum_cost(&self, filter: &CostFilter) -> Result<f64, StoreError> {
        self.inner.sum_cost(filter).await
    }
    async fn purge_requests(&self, tenant: &str, before_ms: i64) -> Result<u64, StoreError> {
        self.inner.purge_requests(tenant, before_ms).await
    }
    async fn delete_user_requests(&self, user: &str) -> Result<u64, StoreError> {
        self.inner.delete_user_requests(user).await
    }
    async fn put_cache_entries(&self, batch: &[CacheEntryRecord]) -> Result<(), StoreError> {
        self.inner.put_cache_entries(batch).await
    }
    async fn load_cache_entries(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<CacheEntryRecord>, StoreError> {
        self.inner.load_cache_entries(now_ms, limit).await
    }
    async fn delete_cache_entries(&self, filter: &CacheEntryFilter) -> Result<u64, StoreError> {
        self.inner.delete_cache_entries(filter).await
    }
    async fn purge_expired_cache_entries(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.inner.purge_expired_cache_entries(now_ms).await
    }
    async fn put_feedback(
        &self,
        feedback: &FeedbackRecord,
    ) -> Result<Option<FeedbackRecord>, StoreError> {
        self.inner.put_feedback(feedback).await
    }
    async fn get_feedback(&self, request_id: &str) -> Result<Option<FeedbackRecord>, StoreError> {
        self.inner.get_feedback(request_id).await
    }
    async fn feedback_outcomes(&self) -> Result<Vec<ModelFeedback>, StoreError> {
        self.inner.feedback_outcomes().await
    }
    async fn experiment_report(
        &self,
        query: &ExperimentQuery,
    ) -> Result<Vec<ArmStats>, StoreError> {
        self.inner.experiment_report(query).await
    }
}

async fn flaky(dir: &Path) -> Arc<Flaky> {
    Arc::new(Flaky {
        inner: sqlite_store(dir, "db.sqlite").await,
        down: AtomicBool::new(false),
        inserts: AtomicUsize::new(0),
        stall: tokio::sync::RwLock::new(()),
    })
}

#[tokio::test]
async fn a_stalled_store_bounds_queued_bodies_but_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = flaky(dir.path()).await;
    let opts = WriterOptions {
        batch_size: 4,
        max_queued_body_bytes: 20_000,
        max_queued_records: 8,
        ..opts()
    };
    let (log, handle) = RequestLog::spawn(store.clone(), dir.path().join("s.jsonl"), opts);
    let with_body = |id: &str| RequestRecord {
        bodies: Some(
            serde_json::json!({"messages": [{"role": "user", "content": "x".repeat(4_000)}]}),
        ),
        ..common::record(id, 1)
    };

    let stalled = store.stall.write().await;
    // The first batch is taken by the writer and waits in the stalled insert; what comes
    // after queues, and bodies past the bound's 20 kB are omitted.
    for id in ids("b", 4) {
        log.record(with_body(&id));
    }
    while store.inserts.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for id in ids("q", 12) {
        log.record(with_body(&id));
    }
    // 12 queued, 8 allowed: a new request waits until the store takes records again.
    let waiting = tokio::spawn({
        let log = log.clone();
        async move { log.wait_for_room().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "no room while the store is stalled");
    drop(stalled);
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("room once the store took records")
        .unwrap();
    log.flush().await;

    assert_eq!(
        store.count_requests().await.unwrap(),
        16,
        "every record is logged"
    );
    let mut kept = 0;
    for id in ids("q", 12) {
        let rec = store.get_request(&id).await.unwrap().unwrap();
        match rec.bodies.as_ref().and_then(|b| b.get("omitted")) {
            Some(reason) => assert_eq!(reason, "log_backlog"),
            None => kept += 1,
        }
        assert_eq!(rec.prompt_tokens, common::record(&id, 1).prompt_tokens);
    }
    assert_eq!(
        kept, 4,
        "4 bodies of ~4 kB fit the 20 kB bound, the rest were omitted"
    );
    // Once the writer caught up, bodies are kept again.
    log.record(with_body("after"));
    log.flush().await;
    let after = store.get_request("after").await.unwrap().unwrap();
    assert!(after.bodies.unwrap().get("messages").is_some());
    log.shutdown().await;
    handle.await.unwrap();
}

#[tokio::test]
async fn outage_costs_one_attempt_then_recovers_by_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = flaky(dir.path()).await;
    store.down.store(true, Ordering::SeqCst);
    let spool: PathBuf = dir.path().join("spool.jsonl");
    let (log, _handle) = RequestLog::spawn(store.clone(), spool.clone(), opts());

    for id in ids("o", 300) {
        log.record(common::record(&id, 1));
    }
    log.flush().await;
    assert_eq!(log.spooled_pending(), 300);
    // Degraded mode: after the first failed insert, batches go straight to
    // the spool instead of waiting on a dead store each time.
    assert_eq!(store.inserts.load(Ordering::SeqCst), 1);

    log.replay_now().await; // still down: spool is kept
    assert_eq!(log.spooled_pending(), 300);

    store.down.store(false, Ordering::SeqCst);
    log.replay_now().await;
    assert_eq!(log.spooled_pending(), 0);
    assert_eq!(store.count_requests().await.unwrap(), 300);

    // Healthy again: new records go to the store directly.
    log.record(common::record("after", 2));
    log.flush().await;
    assert_eq!(store.count_requests().await.unwrap(), 301);
    assert_eq!(log.spooled_pending(), 0);
    log.shutdown().await;
}

#[tokio::test]
async fn a_poison_record_is_set_aside_not_replayed_forever() {
    let dir = tempfile::tempdir().unwrap();
    let store = flaky(dir.path()).await;
    let spool = dir.path().join("spool.jsonl");
    let (log, _handle) = RequestLog::spawn(store.clone(), spool.clone(), opts());

    for id in ["p1", "poison", "p2"] {
        log.record(common::record(id, 1));
    }
    log.flush().await;
    // The live batch failed as a whole, so all three were spooled.
    assert_eq!(log.spooled_pending(), 3);
    assert_eq!(store.count_requests().await.unwrap(), 0);

    log.replay_now().await;
    assert_eq!(log.spooled_pending(), 0);
    assert_eq!(store.count_requests().await.unwrap(), 2);
    let rejected = std::fs::read_to_string(dir.path().join("spool.jsonl.rejected")).unwrap();
    assert_eq!(rejected.lines().count(), 1);
    assert!(rejected.contains("\"poison\""));
    log.shutdown().await;
}

#[tokio::test]
async fn the_record_hook_runs_before_the_store_and_the_spool_see_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path(), "db.sqlite").await;
    let hook: switchyard_store::RecordHook = Arc::new(|rec: &mut RequestRecord| {
        if let Some(b) = rec.bodies.as_mut() {
            b["answer"] = serde_json::json!("[REDACTED]");
        }
    });
    let (log, handle) = RequestLog::spawn_with_hook(
        store.clone(),
        dir.path().join("s.jsonl"),
        opts(),
        Some(hook.clone()),
    );
    let mut rec = common::record("hooked", 1);
    rec.bodies = Some(serde_json::json!({"answer": "mail jane@example.com"}));
    log.record(rec.clone());
    log.flush().await;
    let stored = store.get_request("hooked").await.unwrap().unwrap();
    assert_eq!(
        stored.bodies,
        Some(serde_json::json!({"answer": "[REDACTED]"}))
    );
    log.shutdown().await;
    handle.await.unwrap();

    // A writer that is gone spools synchronously: the hook still runs first.
    let spool = dir.path().join("late.jsonl");
    let (late, handle) =
        RequestLog::spawn_with_hook(store.clone(), spool.clone(), opts(), Some(hook));
    late.shutdown().await;
    handle.await.unwrap();
    rec.request_id = "late".into();
    late.record(rec);
    let text = std::fs::read_to_string(&spool).unwrap();
    assert!(
        text.contains("[REDACTED]") && !text.contains("jane@"),
        "{text}"
    );
}
