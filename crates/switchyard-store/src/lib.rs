//! Durable request log, API-key and tenant store, audit log, spend ledger,
//! persisted semantic-cache entries and end-user feedback for Switchyard.
//!
//! SQLite is the zero-configuration default; PostgreSQL is for production.
//! [`RequestLog`] sits in front of either and batches writes off the request
//! path, falling back to a local spool file so an accepted record is never
//! lost while the database is unavailable.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

mod audit;
mod backlog;
mod cache;
mod feedback;
mod keys;
mod postgres;
mod record;
mod spend;
mod spool;
mod sqlite;
mod writer;

pub use audit::AuditEvent;
pub use cache::{CacheEntryFilter, CacheEntryRecord};
pub use feedback::{ArmStats, ExperimentQuery, FeedbackRecord, ModelFeedback};
pub use keys::{ApiKeyRecord, TenantRecord};
pub use postgres::PostgresStore;
pub use record::RequestRecord;
pub use spend::{CostFilter, GroupBy, SpendQuery, SpendRow};
pub use sqlite::SqliteStore;
pub use writer::{RecordHook, RequestLog, WriterOptions};

/// Errors from the store and its connection setup. Messages never contain a
/// password: URLs are shown redacted and only their scheme is echoed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported store URL scheme `{0}`: expected `sqlite:`, `postgres://` or `postgresql://`"
    )]
    UnsupportedScheme(String),
    #[error("invalid store URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid schema name `{0}`: use 1-63 lowercase ASCII letters, digits or `_`, not starting with a digit")]
    InvalidSchema(String),
    #[error("cannot prepare `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{backend} error: {source}")]
    Database {
        backend: &'static str,
        source: sqlx::Error,
    },
    #[error("stored row is not a valid record: {0}")]
    Corrupt(String),
    #[error("cannot encode record: {0}")]
    Encode(String),
}

impl StoreError {
    pub(crate) fn db(backend: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Database { backend, source }
    }
}

/// A durable home for request records, API keys, tenants, the audit log and
/// semantic-cache entries.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Creates tables and indexes if missing; safe to run on every start.
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    /// Inserts atomically. Rows whose `request_id` already exists are ignored,
    /// which is what makes spool replays safe to repeat.
    async fn insert_requests(&self, batch: &[RequestRecord]) -> Result<(), StoreError>;
    /// Newest first: `ts_ms` descending, then insertion order descending.
    async fn list_requests(&self, limit: u32) -> Result<Vec<RequestRecord>, StoreError>;
    async fn get_request(&self, request_id: &str) -> Result<Option<RequestRecord>, StoreError>;
    async fn count_requests(&self) -> Result<u64, StoreError>;
    /// Inserts or replaces the key with the same `key_id`: every field is
    /// overwritten (keys from the config file are re-declared at each start)
    /// except `last_used_ms`, which keeps the later of the stored and the new
    /// value.
    async fn upsert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// Ordered by `created_ms`, then `key_id`.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Marks the key revoked at `ts_ms`. True only if the key existed and was
    /// not revoked already (so the first revocation time is kept).
    async fn revoke_api_key(&self, key_id: &str, ts_ms: i64) -> Result<bool, StoreError>;
    /// Records key uses `(key_id, ts_ms)` in one transaction; `last_used_ms`
    /// never moves backwards. Unknown keys are ignored.
    async fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<(), StoreError>;

    /// Inserts, or replaces `settings` and `updated_ms` of the tenant with the
    /// same name (the first `created_ms` is kept).
    async fn upsert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError>;
    /// Ordered by name.
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;
    async fn get_tenant(&self, name: &str) -> Result<Option<TenantRecord>, StoreError>;

    /// Appends one event; an `id` already present is ignored. The database
    /// refuses any `UPDATE` or `DELETE` of the audit log.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Newest first (`ts_ms`, then append order). With `tenant`, only events
    /// whose `actor_tenant` is it or whose `details.tenant` is it.
    async fn list_audit(
        &self,
        limit: u32,
        tenant: Option<&str>,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Totals per group over live requests and rolled-up history, most
    /// expensive first (ties by group name).
    async fn spend_report(&self, query: &SpendQuery) -> Result<Vec<SpendRow>, StoreError>;
    /// Total cost matching `filter`, rolled-up history included.
    async fn sum_cost(&self, filter: &CostFilter) -> Result<f64, StoreError>;
    /// Deletes `tenant`'s requests with `ts_ms < before_ms`, first adding them,
    /// in the same transaction, to the daily rollups that keep spend totals
    /// (without end users), and the tenant's feedback given before
    /// `before_ms`. Returns the number of requests deleted.
    async fn purge_requests(&self, tenant: &str, before_ms: i64) -> Result<u64, StoreError>;
    /// Deletes every request of end user `user` (rollups hold no user) and
    /// the feedback on them. Returns the number of requests deleted.
    async fn delete_user_requests(&self, user: &str) -> Result<u64, StoreError>;

    /// Inserts or replaces (by `key`) semantic-cache entries in one
    /// transaction; within a batch the last entry of a key wins.
    async fn put_cache_entries(&self, batch: &[CacheEntryRecord]) -> Result<(), StoreError>;
    /// Entries with `expires_ms > now_ms`, newest first (`created_ms`
    /// descending, then key), at most `limit`.
    async fn load_cache_entries(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<CacheEntryRecord>, StoreError>;
    /// Deletes the entries `filter` matches; returns how many.
    async fn delete_cache_entries(&self, filter: &CacheEntryFilter) -> Result<u64, StoreError>;
    /// Deletes entries with `expires_ms <= now_ms`; returns how many.
    async fn purge_expired_cache_entries(&self, now_ms: i64) -> Result<u64, StoreError>;

    /// Stores the verdict on `feedback.request_id`, replacing any earlier one,
    /// and returns the one replaced. A score outside [-1, 1] is refused
    /// (`StoreError::Encode`).
    async fn put_feedback(
        &self,
        feedback: &FeedbackRecord,
    ) -> Result<Option<FeedbackRecord>, StoreError>;
    async fn get_feedback(&self, request_id: &str) -> Result<Option<FeedbackRecord>, StoreError>;
    /// Success, failure and neutral counts per answering model, over all
    /// stored feedback; ordered by model.
    async fn feedback_outcomes(&self) -> Result<Vec<ModelFeedback>, StoreError>;
    /// Per-arm numbers of one experiment: the requests whose
    /// `metadata.experiment` names it, joined with their feedback; ordered by
    /// arm. Arms without requests are absent.
    async fn experiment_report(&self, query: &ExperimentQuery)
        -> Result<Vec<ArmStats>, StoreError>;
}

/// Pool tuning shared by both backends. The defaults suit the gateway; tests
/// shorten `acquire_timeout` so an unreachable database fails quickly.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `None` picks a per-backend default (SQLite file 4, in-memory 1, PostgreSQL 10).
    pub max_connections: Option<u32>,
    /// How long an operation waits for a connection, including reconnect
    /// attempts to a database that refuses connections.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

fn classify(url: &str) -> Result<Backend, StoreError> {
    let Some((scheme, _)) = url.split_once(':') else {
        return Err(StoreError::InvalidUrl {
            url: redact_url(url),
            reason: "missing scheme; expected `sqlite:` or `postgres://`".into(),
        });
    };
    // Anything that does not look like a scheme may be part of credentials
    // (`user:pass@host`), so it is not echoed back.
    let plausible = !scheme.is_empty()
        && scheme.len() <= 20
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" | "postgresql" => {
            if url[scheme.len()..].starts_with("://") {
                Ok(Backend::Postgres)
            } else {
                Err(StoreError::InvalidUrl {
                    url: redact_url(url),
                    reason: "PostgreSQL URLs must start with `postgres://`".into(),
                })
            }
        }
        _ if plausible => Err(StoreError::UnsupportedScheme(scheme.to_string())),
        _ => Err(StoreError::UnsupportedScheme("<unrecognised>".into())),
    }
}

/// Connects (doing I/O) to the store named by `url`:
/// `sqlite:///abs/path.db`, `sqlite://rel.db`, `sqlite::memory:`,
/// `postgres://…` or `postgresql://…`. A missing SQLite file and its parent
/// directory are created.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, &StoreOptions::default()).await
}

pub async fn connect_with(url: &str, opts: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    match classify(url)? {
        Backend::Sqlite => Ok(Arc::new(SqliteStore::connect(url, opts).await?)),
        Backend::Postgres => Ok(Arc::new(PostgresStore::connect(url, opts).await?)),
    }
}

/// Like [`connect`] but without any I/O: connections are made on first use.
/// A SQLite file is still created on first use, but its directory is not.
pub fn connect_lazy(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_lazy_with(url, &StoreOptions::default())
}

pub fn connect_lazy_with(url: &str, opts: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    match classify(url)? {
        Backend::Sqlite => Ok(Arc::new(SqliteStore::connect_lazy(url, opts)?)),
        Backend::Postgres => Ok(Arc::new(PostgresStore::connect_lazy(url, opts)?)),
    }
}

/// Connects to PostgreSQL with every connection's `search_path` pinned to
/// `schema`, creating the schema first if needed. Meant for isolated tests
/// and multi-tenant deployments sharing one database.
pub async fn connect_postgres_schema(
    url: &str,
    schema: &str,
) -> Result<Arc<dyn Store>, StoreError> {
    if classify(url)? != Backend::Postgres {
        return Err(StoreError::InvalidUrl {
            url: redact_url(url),
            reason: "connect_postgres_schema needs a postgres:// URL".into(),
        });
    }
    let store = PostgresStore::connect_schema(url, schema, &StoreOptions::default()).await?;
    Ok(Arc::new(store))
}

/// Renders a URL safe for logs: the password and the query string (which may
/// also carry `password=`) are replaced.
pub fn redact_url(url: &str) -> String {
    let (base, has_query) = match url.split_once('?') {
        Some((b, _)) => (b, true),
        None => (url, false),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{host}"),
                    None => format!("{userinfo}@{host}"),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        // Without `//` there is no authority to parse reliably; hide
        // everything after the scheme if it might hold `user:pass@`.
        None if base.contains('@') => match base.split_once(':') {
            Some((scheme, _)) => format!("{scheme}:***"),
            None => "***".to_string(),
        },
        None => base.to_string(),
    };
    if has_query {
        out.push_str("?***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_schemes() {
        assert_eq!(classify("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(classify("sqlite:///tmp/x.db").unwrap(), Backend::Sqlite);
        assert_eq!(classify("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(classify("PostgreSQL://u@h/db").unwrap(), Backend::Postgres);
        let err = classify("mysql://u:secret@h/db").unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedScheme(ref s) if s == "mysql"));
        assert!(err.to_string().contains("postgres://"));
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn classify_never_echoes_credentials() {
        let err = classify("user with space:hunter2@host/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!err.to_string().contains("user with space"), "{err}");
        let err = classify("postgres:u:hunter2@host").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(classify("no-scheme-here").is_err());
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://app:s3cr3t@db:5432/x?sslmode=require"),
            "postgres://app:***@db:5432/x?***"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite:///var/x.db"), "sqlite:///var/x.db");
        assert_eq!(redact_url("postgres://a:b:c@h"), "postgres://a:***@h");
    }

    #[tokio::test]
    async fn lazy_connect_does_no_io() {
        let store = connect_lazy("postgres://postgres@127.0.0.1:1/test").unwrap();
        assert_eq!(store.backend(), "postgres");
        assert!(connect_lazy("redis://x").is_err());
    }
}
