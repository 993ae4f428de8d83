//! PostgreSQL: API keys and run-time tenants.

use super::{PostgresStore, BACKEND};
use crate::keys::{
    decode_key, decode_tenant, latest_uses, tenant_settings, KeyRow, API_KEY_COLUMNS,
    TENANT_COLUMNS,
};
use crate::{ApiKeyRecord, StoreError, TenantRecord};

impl PostgresStore {
    pub(super) async fn key_upsert(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let k = KeyRow::from_record(key)?;
        // Everything is re-declared except `last_used_ms`, which only moves
        // forward (GREATEST ignores NULLs).
        sqlx::query(&format!(
            "INSERT INTO api_keys ({API_KEY_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (key_id) DO UPDATE SET key_hash = excluded.key_hash,
                 tenant = excluded.tenant, name = excluded.name, role = excluded.role,
                 models = excluded.models, expires_ms = excluded.expires_ms,
                 rpm = excluded.rpm, tpm = excluded.tpm,
                 max_concurrent = excluded.max_concurrent, budget_usd = excluded.budget_usd,
                 created_ms = excluded.created_ms, revoked = excluded.revoked,
                 revoked_ms = excluded.revoked_ms,
                 last_used_ms = GREATEST(api_keys.last_used_ms, excluded.last_used_ms)"
        ))
        .bind(&k.key_id)
        .bind(&k.key_hash)
        .bind(&k.tenant)
        .bind(&k.name)
        .bind(&k.role)
        .bind(&k.models)
        .bind(k.expires_ms)
        .bind(k.rpm)
        .bind(k.tpm)
        .bind(k.max_concurrent)
        .bind(k.budget_usd)
        .bind(k.created_ms)
        .bind(k.revoked)
        .bind(k.revoked_ms)
        .bind(k.last_used_ms)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(StoreError::db(BACKEND))
    }

    pub(super) async fn keys_list(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_ms, key_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?;
        rows.iter().map(|r| decode_key(BACKEND, r)).collect()
    }

    pub(super) async fn key_get(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_id = $1"
        ))
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?;
        row.as_ref().map(|r| decode_key(BACKEND, r)).transpose()
    }

    pub(super) async fn key_revoke(&self, key_id: &str, ts_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked = TRUE, revoked_ms = $1 WHERE key_id = $2 AND NOT revoked",
        )
        .bind(ts_ms)
        .bind(key_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn keys_touch(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        let latest = latest_uses(uses);
        if latest.is_empty() {
            return Ok(());
        }
        let (ids, stamps): (Vec<&str>, Vec<i64>) = latest.into_iter().unzip();
        // One statement is one transaction; GREATEST ignores a NULL
        // `last_used_ms`.
        sqlx::query(
            "UPDATE api_keys AS k SET last_used_ms = GREATEST(k.last_used_ms, u.ts)
             FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS u(key_id, ts)
             WHERE k.key_id = u.key_id",
        )
        .bind(ids)
        .bind(stamps)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(StoreError::db(BACKEND))
    }

    pub(super) async fn tenant_upsert(&self, t: &TenantRecord) -> Result<(), StoreError> {
        let settings = tenant_settings(t)?;
        sqlx::query(&format!(
            "INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET settings = excluded.settings,
                 updated_ms = excluded.updated_ms"
        ))
        .bind(&t.name)
        .bind(settings)
        .bind(t.created_ms)
        .bind(t.updated_ms)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(StoreError::db(BACKEND))
    }

    pub(super) async fn tenants_list(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?;
        rows.iter().map(|r| decode_tenant(BACKEND, r)).collect()
    }

    pub(super) async fn tenant_get(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?;
        row.as_ref().map(|r| decode_tenant(BACKEND, r)).transpose()
    }
}
