//! API keys and run-time tenants: record types and their flat column layout.

use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::record::to_i64;
use crate::StoreError;

/// A stored API key; only the hash of the secret is ever persisted.
///
/// Fields added after the first release are `#[serde(default)]` so older
/// serialized keys still parse.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ApiKeyRecord {
    pub key_id: String,
    /// Lowercase hex SHA-256 of the secret.
    pub key_hash: String,
    pub tenant: String,
    /// Human-readable label chosen by whoever created the key.
    #[serde(default)]
    pub name: String,
    /// `"user"`, `"tenant_admin"`, `"viewer"` or `"admin"`. The store keeps
    /// whatever it is given; the gateway decides what each role may do.
    #[serde(default)]
    pub role: String,
    /// Models this key may call; empty means every model.
    #[serde(default)]
    pub models: Vec<String>,
    /// Unix milliseconds after which the key is no longer valid.
    #[serde(default)]
    pub expires_ms: Option<i64>,
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute.
    #[serde(default)]
    pub tpm: Option<u64>,
    #[serde(default)]
    pub max_concurrent: Option<u64>,
    /// Spend ceiling in USD; must be finite.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    pub created_ms: i64,
    pub revoked: bool,
    #[serde(default)]
    pub revoked_ms: Option<i64>,
    /// Maintained by `Store::touch_api_keys`; only ever moves forward.
    #[serde(default)]
    pub last_used_ms: Option<i64>,
}

/// A tenant created at run time (tenants declared in the config file need no
/// row). `settings` is opaque to the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TenantRecord {
    pub name: String,
    #[serde(default)]
    pub settings: serde_json::Value,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Insert/select column order for `api_keys`; both backends bind and read in
/// exactly this order.
pub(crate) const API_KEY_COLUMNS: &str = "key_id, key_hash, tenant, name, role, models, \
     expires_ms, rpm, tpm, max_concurrent, budget_usd, created_ms, revoked, revoked_ms, \
     last_used_ms";

pub(crate) const TENANT_COLUMNS: &str = "name, settings, created_ms, updated_ms";

/// An [`ApiKeyRecord`] in natively bindable types.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyRow {
    pub key_id: String,
    pub key_hash: String,
    pub tenant: String,
    pub name: String,
    pub role: String,
    pub models: String,
    pub expires_ms: Option<i64>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub budget_usd: Option<f64>,
    pub created_ms: i64,
    pub revoked: bool,
    pub revoked_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
}

fn opt_u64(key_id: &str, field: &str, v: Option<i64>) -> Result<Option<u64>, StoreError> {
    v.map(|v| {
        u64::try_from(v).map_err(|_| {
            StoreError::Corrupt(format!(
                "api key {key_id}: column {field} is negative ({v})"
            ))
        })
    })
    .transpose()
}

impl KeyRow {
    pub(crate) fn from_record(key: &ApiKeyRecord) -> Result<Self, StoreError> {
        let models = serde_json::to_string(&key.models)
            .map_err(|e| StoreError::Encode(format!("models of key {}: {e}", key.key_id)))?;
        if let Some(b) = key.budget_usd {
            if !b.is_finite() {
                return Err(StoreError::Encode(format!(
                    "budget_usd of key {} is not a finite number",
                    key.key_id
                )));
            }
        }
        Ok(Self {
            key_id: key.key_id.clone(),
            key_hash: key.key_hash.clone(),
            tenant: key.tenant.clone(),
            name: key.name.clone(),
            role: key.role.clone(),
            models,
            expires_ms: key.expires_ms,
            rpm: key.rpm.map(to_i64),
            tpm: key.tpm.map(to_i64),
            max_concurrent: key.max_concurrent.map(to_i64),
            budget_usd: key.budget_usd,
            created_ms: key.created_ms,
            revoked: key.revoked,
            revoked_ms: key.revoked_ms,
            last_used_ms: key.last_used_ms,
        })
    }

    pub(crate) fn into_record(self) -> Result<ApiKeyRecord, StoreError> {
        let id = self.key_id.as_str();
        let models: Vec<String> = serde_json::from_str(&self.models)
            .map_err(|e| StoreError::Corrupt(format!("api key {id}: column models: {e}")))?;
        let rpm = opt_u64(id, "rpm", self.rpm)?;
        let tpm = opt_u64(id, "tpm", self.tpm)?;
        let max_concurrent = opt_u64(id, "max_concurrent", self.max_concurrent)?;
        Ok(ApiKeyRecord {
            key_id: self.key_id,
            key_hash: self.key_hash,
            tenant: self.tenant,
            name: self.name,
            role: self.role,
            models,
            expires_ms: self.expires_ms,
            rpm,
            tpm,
            max_concurrent,
            budget_usd: self.budget_usd,
            created_ms: self.created_ms,
            revoked: self.revoked,
            revoked_ms: self.revoked_ms,
            last_used_ms: self.last_used_ms,
        })
    }
}

/// Reads a row selected with [`API_KEY_COLUMNS`], on either backend.
pub(crate) fn read_key<'r, R>(row: &'r R) -> Result<KeyRow, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(KeyRow {
        key_id: row.try_get("key_id")?,
        key_hash: row.try_get("key_hash")?,
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        models: row.try_get("models")?,
        expires_ms: row.try_get("expires_ms")?,
        rpm: row.try_get("rpm")?,
        tpm: row.try_get("tpm")?,
        max_concurrent: row.try_get("max_concurrent")?,
        budget_usd: row.try_get("budget_usd")?,
        created_ms: row.try_get("created_ms")?,
        revoked: row.try_get("revoked")?,
        revoked_ms: row.try_get("revoked_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
    })
}

pub(crate) fn decode_key<R>(backend: &'static str, row: &R) -> Result<ApiKeyRecord, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    read_key(row)
        .map_err(StoreError::db(backend))?
        .into_record()
}

/// Tenant settings travel as JSON text, like request tags and metadata.
pub(crate) fn tenant_settings(t: &TenantRecord) -> Result<String, StoreError> {
    serde_json::to_string(&t.settings)
        .map_err(|e| StoreError::Encode(format!("settings of tenant {}: {e}", t.name)))
}

pub(crate) fn decode_tenant<R>(backend: &'static str, row: &R) -> Result<TenantRecord, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let db = StoreError::db(backend);
    let read = || -> Result<(String, String, i64, i64), sqlx::Error> {
        Ok((
            row.try_get("name")?,
            row.try_get("settings")?,
            row.try_get("created_ms")?,
            row.try_get("updated_ms")?,
        ))
    };
    let (name, settings, created_ms, updated_ms) = read().map_err(db)?;
    let settings = serde_json::from_str(&settings)
        .map_err(|e| StoreError::Corrupt(format!("tenant {name}: column settings: {e}")))?;
    Ok(TenantRecord {
        name,
        settings,
        created_ms,
        updated_ms,
    })
}

/// Collapses a batch of `(key_id, ts_ms)` uses to the latest use per key, in
/// a stable order (so concurrent batches lock rows in the same order).
pub(crate) fn latest_uses(uses: &[(String, i64)]) -> Vec<(&str, i64)> {
    let mut latest = std::collections::BTreeMap::<&str, i64>::new();
    for (key_id, ts) in uses {
        latest
            .entry(key_id.as_str())
            .and_modify(|t| *t = (*t).max(*ts))
            .or_insert(*ts);
    }
    latest.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> ApiKeyRecord {
        ApiKeyRecord {
            key_id: "k".into(),
            key_hash: "ab".repeat(32),
            tenant: "acme".into(),
            name: "ci".into(),
            role: "tenant_admin".into(),
            models: vec!["gpt-4o".into(), "small".into()],
            expires_ms: Some(99),
            rpm: Some(60),
            tpm: Some(u64::MAX),
            max_concurrent: Some(4),
            budget_usd: Some(12.5),
            created_ms: 1,
            revoked: true,
            revoked_ms: Some(7),
            last_used_ms: Some(8),
        }
    }

    #[test]
    fn key_row_round_trip_saturates_huge_limits() {
        let row = KeyRow::from_record(&full()).unwrap();
        assert_eq!(row.models, r#"["gpt-4o","small"]"#);
        assert_eq!(row.tpm, Some(i64::MAX));
        let back = row.into_record().unwrap();
        assert_eq!(back.tpm, Some(i64::MAX as u64));
        assert_eq!(
            back,
            ApiKeyRecord {
                tpm: Some(i64::MAX as u64),
                ..full()
            }
        );
    }

    #[test]
    fn non_finite_budget_is_refused_and_negative_limit_is_corrupt() {
        let bad = ApiKeyRecord {
            budget_usd: Some(f64::NAN),
            ..full()
        };
        assert!(matches!(
            KeyRow::from_record(&bad),
            Err(StoreError::Encode(_))
        ));
        let mut row = KeyRow::from_record(&full()).unwrap();
        row.rpm = Some(-1);
        let err = row.into_record().unwrap_err();
        assert!(err.to_string().contains("rpm"), "{err}");
    }

    #[test]
    fn old_serialized_keys_still_parse() {
        let old = r#"{"key_id":"k","key_hash":"h","tenant":"t","created_ms":3,"revoked":false}"#;
        let k: ApiKeyRecord = serde_json::from_str(old).unwrap();
        assert_eq!(k.created_ms, 3);
        assert!(k.models.is_empty() && k.last_used_ms.is_none() && k.role.is_empty());
    }

    #[test]
    fn latest_use_per_key() {
        let uses = vec![
            ("b".to_string(), 5),
            ("a".to_string(), 9),
            ("b".to_string(), 7),
        ];
        assert_eq!(latest_uses(&uses), vec![("a", 9), ("b", 7)]);
    }
}
