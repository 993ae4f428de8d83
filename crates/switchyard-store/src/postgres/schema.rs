//! PostgreSQL schema and its migrations. Every step is idempotent, so
//! `migrate` runs on every start and also upgrades databases created by
//! older builds. The caller holds the migration advisory lock.

use sqlx::{Postgres, Transaction};

use super::BACKEND;
use crate::audit::APPEND_ONLY_MESSAGE;
use crate::StoreError;

/// Tables as the first release created them; later columns are in
/// [`ADDED_COLUMNS`], so fresh and upgraded databases take the same path.
const BASE: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS requests (
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
    "CREATE INDEX IF NOT EXISTS requests_ts_idx ON requests (ts_ms DESC, seq DESC)",
    "CREATE INDEX IF NOT EXISTS requests_tenant_ts_idx ON requests (tenant, ts_ms)",
    "CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY,
        key_hash TEXT NOT NULL,
        tenant TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        revoked BOOLEAN NOT NULL DEFAULT FALSE
    )",
    "CREATE INDEX IF NOT EXISTS api_keys_hash_idx ON api_keys (key_hash)",
];

/// `(table, column, definition)`. Keys that predate roles were tenant keys,
/// hence the `'user'` default.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("requests", "user_id", "TEXT"),
    ("requests", "bodies", "TEXT"),
    ("requests", "experiment", "TEXT"),
    ("requests", "experiment_arm", "TEXT"),
    ("api_keys", "name", "TEXT NOT NULL DEFAULT ''"),
    ("api_keys", "role", "TEXT NOT NULL DEFAULT 'user'"),
    ("api_keys", "models", "TEXT NOT NULL DEFAULT '[]'"),
    ("api_keys", "expires_ms", "BIGINT"),
    ("api_keys", "rpm", "BIGINT"),
    ("api_keys", "tpm", "BIGINT"),
    ("api_keys", "max_concurrent", "BIGINT"),
    ("api_keys", "budget_usd", "DOUBLE PRECISION"),
    ("api_keys", "revoked_ms", "BIGINT"),
    ("api_keys", "last_used_ms", "BIGINT"),
];

fn later() -> Vec<String> {
    vec![
        "CREATE INDEX IF NOT EXISTS requests_user_idx ON requests (user_id)
            WHERE user_id IS NOT NULL"
            .into(),
        "CREATE TABLE IF NOT EXISTS tenants (
            name TEXT PRIMARY KEY,
            settings TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            updated_ms BIGINT NOT NULL
        )"
        .into(),
        "CREATE TABLE IF NOT EXISTS audit_log (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            ts_ms BIGINT NOT NULL,
            actor TEXT NOT NULL,
            actor_tenant TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            outcome TEXT NOT NULL,
            details TEXT NOT NULL
        )"
        .into(),
        "CREATE INDEX IF NOT EXISTS audit_log_ts_idx ON audit_log (ts_ms DESC, seq DESC)".into(),
        "CREATE INDEX IF NOT EXISTS audit_log_tenant_idx ON audit_log (actor_tenant, ts_ms)".into(),
        format!(
            "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
             LANGUAGE plpgsql AS $fn$
             BEGIN
                 RAISE EXCEPTION '{APPEND_ONLY_MESSAGE} (% refused)', TG_OP;
             END
             $fn$"
        ),
        // Row triggers stop UPDATE and DELETE; TRUNCATE bypasses them, so it
        // gets a statement trigger of its own.
        "DO $do$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_trigger
                            WHERE tgrelid = 'audit_log'::regclass
                              AND tgname = 'audit_log_no_rewrite') THEN
                 CREATE TRIGGER audit_log_no_rewrite BEFORE UPDATE OR DELETE ON audit_log
                     FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
             END IF;
             IF NOT EXISTS (SELECT 1 FROM pg_trigger
                            WHERE tgrelid = 'audit_log'::regclass
                              AND tgname = 'audit_log_no_truncate') THEN
                 CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
                     FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
             END IF;
         END $do$"
            .into(),
        // One row per (UTC day, tenant, key, model, tag set) of purged
        // requests; deliberately no end user.
        "CREATE TABLE IF NOT EXISTS request_rollups (
            day_ms BIGINT NOT NULL,
            tenant TEXT NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
            tags TEXT NOT NULL,
            requests BIGINT NOT NULL,
            prompt_tokens BIGINT NOT NULL,
            completion_tokens BIGINT NOT NULL,
            cost_usd DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (day_ms, tenant, key_id, model, tags)
        )"
        .into(),
        "CREATE INDEX IF NOT EXISTS request_rollups_tenant_idx ON request_rollups (tenant, day_ms)"
            .into(),
        // Semantic-cache entries, reloaded at start; tags and documents are JSON arrays
        // (documents of `[name, version]` pairs), the embedding little-endian f32s.
        "CREATE TABLE IF NOT EXISTS cache_entries (
            cache_key TEXT PRIMARY KEY,
            scope_key TEXT NOT NULL,
            tenant TEXT NOT NULL,
            model TEXT NOT NULL,
            tags TEXT NOT NULL,
            documents TEXT NOT NULL,
            entry TEXT NOT NULL,
            embedding BYTEA NOT NULL,
            created_ms BIGINT NOT NULL,
            expires_ms BIGINT NOT NULL
        )"
        .into(),
        "CREATE INDEX IF NOT EXISTS cache_entries_created_idx ON cache_entries (created_ms DESC)"
            .into(),
        "CREATE INDEX IF NOT EXISTS cache_entries_expires_idx ON cache_entries (expires_ms)".into(),
        "CREATE INDEX IF NOT EXISTS cache_entries_tenant_idx ON cache_entries (tenant, model)"
            .into(),
        // Only experiment traffic is indexed; reports read one experiment's rows.
        "CREATE INDEX IF NOT EXISTS requests_experiment_idx
            ON requests (experiment, experiment_arm, ts_ms) WHERE experiment IS NOT NULL"
            .into(),
        // One verdict per request (a later one replaces it); no foreign key, so feedback outlives
        // the request's retention and per-model outcomes stay countable.
        "CREATE TABLE IF NOT EXISTS feedback (
            request_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            model TEXT NOT NULL,
            score DOUBLE PRECISION NOT NULL,
            comment TEXT,
            ts_ms BIGINT NOT NULL
        )"
        .into(),
        "CREATE INDEX IF NOT EXISTS feedback_tenant_ts_idx ON feedback (tenant, ts_ms)".into(),
    ]
}

/// Columns of `table` as the search path resolves it (the same table the
/// `ALTER` would change).
async fn columns(
    tx: &mut Transaction<'static, Postgres>,
    table: &str,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT attname::TEXT FROM pg_attribute
         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await
    .map_err(StoreError::db(BACKEND))
}

pub(super) async fn migrate(mut tx: Transaction<'static, Postgres>) -> Result<(), StoreError> {
    let db = StoreError::db;
    for stmt in BASE {
        sqlx::query(stmt)
            .execute(&mut *tx)
            .await
            .map_err(db(BACKEND))?;
    }
    // `ALTER TABLE` takes an exclusive lock even when every column exists,
    // which would queue the gateway's inserts behind a long report at each
    // start; only tables that really lack a column are altered.
    let mut tables: Vec<&str> = ADDED_COLUMNS.iter().map(|(t, _, _)| *t).collect();
    tables.dedup();
    for table in tables {
        let have = columns(&mut tx, table).await?;
        for (_, column, ddl) in ADDED_COLUMNS.iter().filter(|(t, _, _)| *t == table) {
            if have.iter().any(|c| c == column) {
                continue;
            }
            // Identifiers come from the constant table above, never input.
            sqlx::query(&format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {ddl}"
            ))
            .execute(&mut *tx)
            .await
            .map_err(db(BACKEND))?;
        }
    }
    for stmt in later() {
        sqlx::query(&stmt)
            .execute(&mut *tx)
            .await
            .map_err(db(BACKEND))?;
    }
    tx.commit().await.map_err(db(BACKEND))
}
