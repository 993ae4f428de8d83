//! SQLite backend: the default, needing nothing but a writable directory.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::record::{
    dedup_rows, insert_chunks, RequestRow, REQUEST_COLUMNS, REQUEST_INSERT_COLUMNS,
};
use crate::{
    redact_url, ApiKeyRecord, ArmStats, AuditEvent, CacheEntryFilter, CacheEntryRecord, CostFilter,
    ExperimentQuery, FeedbackRecord, ModelFeedback, RequestRecord, SpendQuery, SpendRow, Store,
    StoreError, StoreOptions, TenantRecord,
};

mod cache;
mod feedback;
mod keys;
mod ledger;
mod schema;

const BACKEND: &str = "sqlite";

/// Rows per multi-row INSERT (25 bound variables each, under SQLite's default limit of 32766);
/// a power of two, for [`insert_chunks`].
const ROWS_PER_STATEMENT: usize = 64;

/// Long enough to ride out a checkpoint or a concurrent writer, short enough
/// that a wedged database surfaces as an error and the writer spools.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite-backed [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

struct Prepared {
    connect: SqliteConnectOptions,
    pool: SqlitePoolOptions,
    in_memory: bool,
}

/// Mirrors how sqlx reads the URL, to learn whether the database lives only in
/// memory (sqlx does not expose that after parsing).
fn is_in_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (db, query) = rest.split_once('?').unwrap_or((rest, ""));
    db == ":memory:" || query.split('&').any(|kv| kv == "mode=memory")
}

fn prepare(url: &str, opts: &StoreOptions) -> Result<Prepared, StoreError> {
    // Lower-case the scheme so `SQLite://` works like the other backends.
    let normalized = match url.split_once(':') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("sqlite") => format!("sqlite:{rest}"),
        _ => url.to_string(),
    };
    let in_memory = is_in_memory(&normalized);
    let mut connect =
        SqliteConnectOptions::from_str(&normalized).map_err(|e| StoreError::InvalidUrl {
            url: redact_url(url),
            reason: e.to_string(),
        })?;
    if !in_memory && connect.get_filename().as_os_str().is_empty() {
        return Err(StoreError::InvalidUrl {
            url: redact_url(url),
            reason: "no database file path given (use sqlite:///abs/path.db or sqlite::memory:)"
                .into(),
        });
    }
    connect = connect.busy_timeout(BUSY_TIMEOUT);
    let pool = if in_memory {
        // An in-memory database vanishes with its last connection, so exactly
        // one connection is kept open forever (this also sidesteps
        // shared-cache table locking between connections).
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        connect = connect
            .create_if_missing(true)
            // WAL lets readers (dashboards, /readyz) proceed during batch
            // inserts; NORMAL is durable across process crashes in WAL mode and
            // far cheaper than FULL.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // A multi-row insert with ON CONFLICT keeps a statement journal; in memory it is
            // not a temporary file written on every batch (it showed in the writer's profile).
            .pragma("temp_store", "memory");
        SqlitePoolOptions::new().max_connections(opts.max_connections.unwrap_or(4).max(1))
    };
    Ok(Prepared {
        connect,
        pool: pool.acquire_timeout(opts.acquire_timeout),
        in_memory,
    })
}

impl SqliteStore {
    /// Wraps an existing pool; the caller is responsible for its pragmas.
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) async fn connect(url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        let p = prepare(url, opts)?;
        if !p.in_memory {
            if let Some(dir) = p.connect.get_filename().parent() {
                if !dir.as_os_str().is_empty() {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|source| StoreError::Io {
                            path: dir.to_path_buf(),
                            source,
                        })?;
                }
            }
        }
        let pool = p
            .pool
            .connect_with(p.connect)
            .await
            .map_err(StoreError::db(BACKEND))?;
        Ok(Self { pool })
    }

    pub(crate) fn connect_lazy(url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        let p = prepare(url, opts)?;
        Ok(Self {
            pool: p.pool.connect_lazy_with(p.connect),
        })
    }
}

fn read_request(row: &SqliteRow) -> Result<RequestRow<'_>, sqlx::Error> {
    Ok(RequestRow {
        request_id: row.try_get("request_id")?,
        ts_ms: row.try_get("ts_ms")?,
        tenant: row.try_get("tenant")?,
        key_id: row.try_get("key_id")?,
        endpoint: row.try_get("endpoint")?,
        model_requested: row.try_get("model_requested")?,
        model_used: row.try_get("model_used")?,
        provider: row.try_get("provider")?,
        status: row.try_get("status")?,
        error_kind: row.try_get("error_kind")?,
        error_message: row.try_get("error_message")?,
        prompt_tokens: row.try_get("prompt_tokens")?,
        completion_tokens: row.try_get("completion_tokens")?,
        cost_usd: row.try_get("cost_usd")?,
        latency_ms: row.try_get("latency_ms")?,
        ttft_ms: row.try_get("ttft_ms")?,
        attempts: row.try_get("attempts")?,
        stream: row.try_get("stream")?,
        cache: row.try_get("cache")?,
        tags: row.try_get("tags")?,
        metadata: row.try_get("metadata")?,
        user_id: row.try_get("user_id")?,
        bodies: row.try_get("bodies")?,
        experiment: None,
        experiment_arm: None,
    })
}

fn decode_request(row: &SqliteRow) -> Result<RequestRecord, StoreError> {
    read_request(row)
        .map_err(StoreError::db(BACKEND))?
        .into_record()
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // IMMEDIATE: two processes upgrading one file serialize on the write
        // lock instead of both deciding a column is missing.
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::db(BACKEND))?;
        schema::migrate(tx).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::db(BACKEND))
    }

    async fn insert_requests(&self, batch: &[RequestRecord]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let rows = dedup_rows(
            batch
                .iter()
                .map(RequestRow::from_record)
                .collect::<Result<Vec<_>, _>>()?,
        );
        let mut tx = self.pool.begin().await.map_err(StoreError::db(BACKEND))?;
        for chunk in insert_chunks(&rows, ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO requests ({REQUEST_INSERT_COLUMNS}) "
            ));
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(&r.request_id)
                    .push_bind(r.ts_ms)
                    .push_bind(&r.tenant)
                    .push_bind(&r.key_id)
                    .push_bind(&r.endpoint)
                    .push_bind(&r.model_requested)
                    .push_bind(&r.model_used)
                    .push_bind(&r.provider)
                    .push_bind(r.status)
                    .push_bind(&r.error_kind)
                    .push_bind(&r.error_message)
                    .push_bind(r.prompt_tokens)
                    .push_bind(r.completion_tokens)
                    .push_bind(r.cost_usd)
                    .push_bind(r.latency_ms)
                    .push_bind(r.ttft_ms)
                    .push_bind(r.attempts)
                    .push_bind(r.stream)
                    .push_bind(&r.cache)
                    .push_bind(&r.tags)
                    .push_bind(&r.metadata)
                    .push_bind(&r.user_id)
                    .push_bind(&r.bodies)
                    .push_bind(&r.experiment)
                    .push_bind(&r.experiment_arm);
            });
            qb.push(" ON CONFLICT (request_id) DO NOTHING");
            qb.build()
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db(BACKEND))?;
        }
        tx.commit().await.map_err(StoreError::db(BACKEND))
    }

    async fn list_requests(&self, limit: u32) -> Result<Vec<RequestRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests ORDER BY ts_ms DESC, seq DESC LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?;
        rows.iter().map(decode_request).collect()
    }

    async fn get_request(&self, request_id: &str) -> Result<Option<RequestRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE request_id = ?"
        ))
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?;
        row.as_ref().map(decode_request).transpose()
    }

    async fn count_requests(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db(BACKEND))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn upsert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.key_upsert(key).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.keys_list().await
    }

    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.key_get(key_id).await
    }

    async fn revoke_api_key(&self, key_id: &str, ts_ms: i64) -> Result<bool, StoreError> {
        self.key_revoke(key_id, ts_ms).await
    }

    async fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        self.keys_touch(uses).await
    }

    async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        self.tenant_upsert(tenant).await
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.tenants_list().await
    }

    async fn get_tenant(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        self.tenant_get(name).await
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.audit_append(event).await
    }

    async fn list_audit(
        &self,
        limit: u32,
        tenant: Option<&str>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.audit_list(limit, tenant).await
    }

    async fn spend_report(&self, query: &SpendQuery) -> Result<Vec<SpendRow>, StoreError> {
        self.spend(query).await
    }

    async fn sum_cost(&self, filter: &CostFilter) -> Result<f64, StoreError> {
        self.cost(filter).await
    }

    async fn purge_requests(&self, tenant: &str, before_ms: i64) -> Result<u64, StoreError> {
        self.purge(tenant, before_ms).await
    }

    async fn delete_user_requests(&self, user: &str) -> Result<u64, StoreError> {
        self.delete_user(user).await
    }

    async fn put_cache_entries(&self, batch: &[CacheEntryRecord]) -> Result<(), StoreError> {
        self.cache_put(batch).await
    }

    async fn load_cache_entries(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<CacheEntryRecord>, StoreError> {
        self.cache_load(now_ms, limit).await
    }

    async fn delete_cache_entries(&self, filter: &CacheEntryFilter) -> Result<u64, StoreError> {
        self.cache_delete(filter).await
    }

    async fn purge_expired_cache_entries(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.cache_purge(now_ms).await
    }

    async fn put_feedback(
        &self,
        feedback: &FeedbackRecord,
    ) -> Result<Option<FeedbackRecord>, StoreError> {
        self.feedback_put(feedback).await
    }

    async fn get_feedback(&self, request_id: &str) -> Result<Option<FeedbackRecord>, StoreError> {
        self.feedback_get(request_id).await
    }

    async fn feedback_outcomes(&self) -> Result<Vec<ModelFeedback>, StoreError> {
        self.outcomes_by_model().await
    }

    async fn experiment_report(
        &self,
        query: &ExperimentQuery,
    ) -> Result<Vec<ArmStats>, StoreError> {
        self.experiment_stats(query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_detection() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://:memory:"));
        assert!(is_in_memory("sqlite://?mode=memory"));
        assert!(!is_in_memory("sqlite:///tmp/a.db"));
        assert!(!is_in_memory("sqlite://rel.db"));
    }

    #[test]
    fn empty_path_is_rejected_clearly() {
        let err = prepare("sqlite://", &StoreOptions::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("no database file path"), "{err}");
    }

    #[tokio::test]
    async fn in_memory_database_survives_between_calls() {
        let store = SqliteStore::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let rec = RequestRecord {
            request_id: "m1".into(),
            ..Default::default()
        };
        store
            .insert_requests(std::slice::from_ref(&rec))
            .await
            .unwrap();
        assert_eq!(store.get_request("m1").await.unwrap(), Some(rec));
    }

    #[tokio::test]
    async fn uppercase_scheme_and_nested_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.db");
        let url = format!("SQLite://{}", path.display());
        let store = SqliteStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        store.ping().await.unwrap();
        assert!(path.exists());
    }
}
