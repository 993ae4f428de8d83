//! PostgreSQL backend for production deployments.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Postgres, QueryBuilder, Row};

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

const BACKEND: &str = "postgres";

/// Rows per multi-row INSERT (25 bound variables each, far below the 65535 bind limit);
/// a power of two, for [`insert_chunks`].
const ROWS_PER_STATEMENT: usize = 64;

/// Several gateway replicas may start at once; concurrent `CREATE TABLE IF NOT
/// EXISTS` can still fail on catalog races, so migrations take this
/// transaction-scoped advisory lock (an arbitrary constant, "swyd" in ASCII).
const MIGRATION_LOCK: i64 = 0x7377_7964;

/// PostgreSQL-backed [`Store`].
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn prepare(
    url: &str,
    opts: &StoreOptions,
) -> Result<(PgConnectOptions, PgPoolOptions), StoreError> {
    let connect = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
        url: redact_url(url),
        reason: e.to_string(),
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(opts.max_connections.unwrap_or(10).max(1))
        .acquire_timeout(opts.acquire_timeout);
    Ok((connect, pool))
}

/// Restricted to names that need no quoting anywhere, because the value also
/// travels inside the libpq `options` startup parameter.
pub(crate) fn validate_schema(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63;
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidSchema(schema.to_string()))
    }
}

impl PostgresStore {
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) async fn connect(url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        let (connect, pool) = prepare(url, opts)?;
        let pool = pool
            .connect_with(connect)
            .await
            .map_err(StoreError::db(BACKEND))?;
        Ok(Self { pool })
    }

    pub(crate) fn connect_lazy(url: &str, opts: &StoreOptions) -> Result<Self, StoreError> {
        let (connect, pool) = prepare(url, opts)?;
        Ok(Self {
            pool: pool.connect_lazy_with(connect),
        })
    }

    pub(crate) async fn connect_schema(
        url: &str,
        schema: &str,
        opts: &StoreOptions,
    ) -> Result<Self, StoreError> {
        validate_schema(schema)?;
        let (connect, pool) = prepare(url, opts)?;
        let mut conn = connect.connect().await.map_err(StoreError::db(BACKEND))?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .execute(&mut conn)
            .await
            .map_err(StoreError::db(BACKEND))?;
        conn.close().await.map_err(StoreError::db(BACKEND))?;
        // Pinned per connection at startup, so pooled connections can never
        // drift to another schema.
        let connect = connect.options([("search_path", schema)]);
        let pool = pool
            .connect_with(connect)
            .await
            .map_err(StoreError::db(BACKEND))?;
        Ok(Self { pool })
    }
}

fn read_request(row: &PgRow) -> Result<RequestRow<'_>, sqlx::Error> {
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

fn decode_request(row: &PgRow) -> Result<RequestRecord, StoreError> {
    read_request(row)
        .map_err(StoreError::db(BACKEND))?
        .into_record()
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::db(BACKEND))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
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
                .map(|r| RequestRow::from_record(r).map(RequestRow::strip_nul))
                .collect::<Result<Vec<_>, _>>()?,
        );
        let mut tx = self.pool.begin().await.map_err(StoreError::db(BACKEND))?;
        for chunk in insert_chunks(&rows, ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Postgres>::new(format!(
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
            "SELECT {REQUEST_COLUMNS} FROM requests ORDER BY ts_ms DESC, seq DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?;
        rows.iter().map(decode_request).collect()
    }

    async fn get_request(&self, request_id: &str) -> Result<Option<RequestRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE request_id = $1"
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
    fn schema_names() {
        assert!(validate_schema("sy_test_0123abcd").is_ok());
        assert!(validate_schema("_x").is_ok());
        for bad in ["", "1abc", "Upper", "a-b", "a;drop", "a b", &"x".repeat(64)] {
            assert!(validate_schema(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn bad_url_error_hides_password() {
        let err = prepare("postgres://u:hunter2@[bad/db", &StoreOptions::default())
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("invalid store URL"), "{msg}");
    }

    #[test]
    fn search_path_option_in_url_is_accepted() {
        let (opts, _) = prepare(
            "postgres://u@localhost/db?options=-c%20search_path%3Dtenant_a",
            &StoreOptions::default(),
        )
        .unwrap();
        assert_eq!(opts.get_options(), Some("-c search_path=tenant_a"));
    }
}
