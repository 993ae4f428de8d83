//! SQLite schema and its migrations. Every step is idempotent, so `migrate`
//! runs on every start and also upgrades databases created by older builds.

use sqlx::{Sqlite, Transaction};

use super::BACKEND;
use crate::audit::APPEND_ONLY_MESSAGE;
use crate::StoreError;

/// Tables as the first release created them. Columns added later are listed
/// in [`ADDED_COLUMNS`], so fresh and upgraded databases take the same path.
const BASE: &[&str] = &[
    // `seq` records insertion order; AUTOINCREMENT keeps it monotonic even
    // after old rows are pruned, so "newest first" stays well defined.
    "CREATE TABLE IF NOT EXISTS requests (
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
    "CREATE INDEX IF NOT EXISTS requests_ts_idx ON requests (ts_ms DESC, seq DESC)",
    "CREATE INDEX IF NOT EXISTS requests_tenant_ts_idx ON requests (tenant, ts_ms)",
    "CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY NOT NULL,
        key_hash TEXT NOT NULL,
        tenant TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE INDEX IF NOT EXISTS api_keys_hash_idx ON api_keys (key_hash)",
];

/// `(table, column, definition)`, added when `PRAGMA table_info` lacks them.
/// Keys that predate roles were tenant keys, hence the `'user'` default.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("requests", "user_id", "TEXT"),
    ("requests", "bodies", "TEXT"),
    ("requests", "experiment", "TEXT"),
    ("requests", "experiment_arm", "TEXT"),
    ("api_keys", "name", "TEXT NOT NULL DEFAULT ''"),
    ("api_keys", "role", "TEXT NOT NULL DEFAULT 'user'"),
    ("api_keys", "models", "TEXT NOT NULL DEFAULT '[]'"),
    ("api_keys", "expires_ms", "INTEGER"),
    ("api_keys", "rpm", "INTEGER"),
    ("api_keys", "tpm", "INTEGER"),
    ("api_keys", "max_concurrent", "INTEGER"),
    ("api_keys", "budget_usd", "REAL"),
    ("api_keys", "revoked_ms", "INTEGER"),
    ("api_keys", "last_used_ms", "INTEGER"),
];

/// Run after the columns exist.
fn later() -> Vec<String> {
    let abort = format!("SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}');");
    vec![
        // Most requests name no end user; the partial index stays small and
        // still serves `user_id = ?`.
        "CREATE INDEX IF NOT EXISTS requests_user_idx ON requests (user_id)
            WHERE user_id IS NOT NULL"
            .into(),
        "CREATE TABLE IF NOT EXISTS tenants (
            name TEXT PRIMARY KEY NOT NULL,
            settings TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        )"
        .into(),
        "CREATE TABLE IF NOT EXISTS audit_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            ts_ms INTEGER NOT NULL,
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
            "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
             BEGIN {abort} END"
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
             BEGIN {abort} END"
        ),
        // One row per (UTC day, tenant, key, model, tag set) of purged
        // requests; deliberately no end user.
        "CREATE TABLE IF NOT EXISTS request_rollups (
            day_ms INTEGER NOT NULL,
            tenant TEXT NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
            tags TEXT NOT NULL,
            requests INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            PRIMARY KEY (day_ms, tenant, key_id, model, tags)
        )"
        .into(),
        "CREATE INDEX IF NOT EXISTS request_rollups_tenant_idx ON request_rollups (tenant, day_ms)"
            .into(),
        // Semantic-cache entries, reloaded at start; tags and documents are JSON arrays
        // (documents of `[name, version]` pairs), the embedding little-endian f32s.
        "CREATE TABLE IF NOT EXISTS cache_entries (
            cache_key TEXT PRIMARY KEY NOT NULL,
            scope_key TEXT NOT NULL,
            tenant TEXT NOT NULL,
            model TEXT NOT NULL,
            tags TEXT NOT NULL,
            documents TEXT NOT NULL,
            entry TEXT NOT NULL,
            embedding BLOB NOT NULL,
            created_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL
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
            request_id TEXT PRIMARY KEY NOT NULL,
            tenant TEXT NOT NULL,
            model TEXT NOT NULL,
            score REAL NOT NULL,
            comment TEXT,
            ts_ms INTEGER NOT NULL
        )"
        .into(),
        "CREATE INDEX IF NOT EXISTS feedback_tenant_ts_idx ON feedback (tenant, ts_ms)".into(),
    ]
}

async fn has_column(
    tx: &mut Transaction<'static, Sqlite>,
    table: &str,
    column: &str,
) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?")
        .bind(table)
        .bind(column)
        .fetch_one(&mut **tx)
        .await
        .map_err(StoreError::db(BACKEND))?;
    Ok(n > 0)
}

pub(super) async fn migrate(mut tx: Transaction<'static, Sqlite>) -> Result<(), StoreError> {
    let db = StoreError::db;
    for stmt in BASE {
        sqlx::query(stmt)
            .execute(&mut *tx)
            .await
            .map_err(db(BACKEND))?;
    }
    for (table, column, ddl) in ADDED_COLUMNS {
        if !has_column(&mut tx, table, column).await? {
            // Identifiers come from the constant table above, never input.
            sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {column} {ddl}"))
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
