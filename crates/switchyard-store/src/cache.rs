//! Persisted semantic-cache entries, so a restarted gateway (or a new replica) rebuilds its
//! in-process index instead of starting cold. The store does not know the cache's types: the
//! entry is opaque JSON and the keys are hex strings; it only needs the fields that
//! invalidation selects on, the embedding, and the expiry.

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::record::to_i64;
use crate::StoreError;

/// One cached answer with the question's embedding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheEntryRecord {
    /// Hex of the exact-layer key; the primary key (a newer answer replaces an older one).
    pub key: String,
    /// Hex of the semantic scope (tenant, model, parameters, earlier conversation).
    pub scope: String,
    pub tenant: String,
    /// The model the client asked for.
    pub model: String,
    pub tags: Vec<String>,
    /// `(document, version)` pairs the answer was computed from.
    pub documents: Vec<(String, u64)>,
    /// The cache's own entry, as JSON.
    pub entry: serde_json::Value,
    /// The question's embedding; stored as little-endian `f32`s.
    pub embedding: Vec<f32>,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// Which entries [`crate::Store::delete_cache_entries`] removes: every field set must match,
/// and an empty filter matches every entry (the cache's own selector semantics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheEntryFilter {
    pub tenant: Option<String>,
    pub model: Option<String>,
    /// Entries carrying this tag.
    pub tag: Option<String>,
    /// Entries that depended on this document...
    pub document: Option<String>,
    /// ...at a version older than this one (any version when absent).
    pub below_version: Option<u64>,
}

/// Insert/select column order for `cache_entries`; both backends bind and read in exactly
/// this order.
pub(crate) const CACHE_COLUMNS: &str = "cache_key, scope_key, tenant, model, tags, documents, \
     entry, embedding, created_ms, expires_ms";

/// A [`CacheEntryRecord`] in natively bindable types.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CacheRow {
    pub cache_key: String,
    pub scope_key: String,
    pub tenant: String,
    pub model: String,
    pub tags: String,
    pub documents: String,
    pub entry: String,
    pub embedding: Vec<u8>,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// PostgreSQL rejects NUL in TEXT, and `\u0000` in JSON that is cast to `jsonb` (which the
/// tag and document filters do); both backends clean the same way so they select alike.
pub(crate) fn clean(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

fn embedding_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn embedding_floats(key: &str, bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    let floats = bytes.chunks_exact(4);
    if !floats.remainder().is_empty() {
        return Err(StoreError::Corrupt(format!(
            "cache entry {key}: column embedding is {} bytes, not a whole number of f32s",
            bytes.len()
        )));
    }
    Ok(floats
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

impl CacheRow {
    pub(crate) fn from_record(r: &CacheEntryRecord) -> Result<Self, StoreError> {
        let encode = |what: &str, e: serde_json::Error| {
            StoreError::Encode(format!("{what} of cache entry {}: {e}", r.key))
        };
        let tags: Vec<String> = r.tags.iter().map(|t| clean(t)).collect();
        let documents: Vec<(String, u64)> =
            r.documents.iter().map(|(d, v)| (clean(d), *v)).collect();
        Ok(Self {
            cache_key: clean(&r.key),
            scope_key: clean(&r.scope),
            tenant: clean(&r.tenant),
            model: clean(&r.model),
            tags: serde_json::to_string(&tags).map_err(|e| encode("tags", e))?,
            documents: serde_json::to_string(&documents).map_err(|e| encode("documents", e))?,
            entry: serde_json::to_string(&r.entry).map_err(|e| encode("entry", e))?,
            embedding: embedding_bytes(&r.embedding),
            created_ms: r.created_ms,
            expires_ms: r.expires_ms,
        })
    }

    pub(crate) fn into_record(self) -> Result<CacheEntryRecord, StoreError> {
        let key = self.cache_key.as_str();
        let corrupt = |col: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!("cache entry {key}: column {col}: {e}"))
        };
        let tags = serde_json::from_str(&self.tags).map_err(|e| corrupt("tags", e))?;
        let documents =
            serde_json::from_str(&self.documents).map_err(|e| corrupt("documents", e))?;
        let entry = serde_json::from_str(&self.entry).map_err(|e| corrupt("entry", e))?;
        let embedding = embedding_floats(key, &self.embedding)?;
        Ok(CacheEntryRecord {
            key: self.cache_key,
            scope: self.scope_key,
            tenant: self.tenant,
            model: self.model,
            tags,
            documents,
            entry,
            embedding,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
        })
    }
}

/// Keeps the last occurrence of each key: it is the newest answer, and a multi-row upsert must
/// not see one key twice (PostgreSQL refuses to update a row twice in one statement).
pub(crate) fn dedup_cache_rows(rows: Vec<CacheRow>) -> Vec<CacheRow> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    let mut kept: Vec<CacheRow> = rows
        .into_iter()
        .rev()
        .filter(|r| seen.insert(r.cache_key.clone()))
        .collect();
    kept.reverse();
    kept
}

/// The filter's values cleaned like the stored ones, and the version bound as a bindable
/// integer (saturated: a bound past `i64::MAX` matches every version anyway).
pub(crate) struct FilterArgs {
    pub tenant: Option<String>,
    pub model: Option<String>,
    pub tag: Option<String>,
    pub document: Option<String>,
    pub below_version: Option<i64>,
}

impl FilterArgs {
    pub(crate) fn new(f: &CacheEntryFilter) -> Self {
        Self {
            tenant: f.tenant.as_deref().map(clean),
            model: f.model.as_deref().map(clean),
            tag: f.tag.as_deref().map(clean),
            document: f.document.as_deref().map(clean),
            below_version: f.below_version.map(to_i64),
        }
    }
}

/// Reads a row selected with [`CACHE_COLUMNS`], on either backend.
pub(crate) fn decode_cache<R>(
    backend: &'static str,
    row: &R,
) -> Result<CacheEntryRecord, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let read = || -> Result<CacheRow, sqlx::Error> {
        Ok(CacheRow {
            cache_key: row.try_get("cache_key")?,
            scope_key: row.try_get("scope_key")?,
            tenant: row.try_get("tenant")?,
            model: row.try_get("model")?,
            tags: row.try_get("tags")?,
            documents: row.try_get("documents")?,
            entry: row.try_get("entry")?,
            embedding: row.try_get("embedding")?,
            created_ms: row.try_get("created_ms")?,
            expires_ms: row.try_get("expires_ms")?,
        })
    };
    read().map_err(StoreError::db(backend))?.into_record()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CacheEntryRecord {
        CacheEntryRecord {
            key: "ab".repeat(32),
            scope: "cd".repeat(32),
            tenant: "acme".into(),
            model: "small".into(),
            tags: vec!["faq".into(), "a\0b".into()],
            documents: vec![("handbook".into(), u64::MAX)],
            entry: serde_json::json!({"question": "q\u{0}?"}),
            embedding: vec![0.0, -0.0, 1.0, -1.5e-30, f32::MIN_POSITIVE, f32::MAX],
            created_ms: 1,
            expires_ms: 2,
        }
    }

    #[test]
    fn rows_round_trip_with_exact_floats_and_clean_text() {
        let row = CacheRow::from_record(&record()).unwrap();
        assert_eq!(row.embedding.len(), 6 * 4);
        assert_eq!(row.tags, r#"["faq","a�b"]"#);
        let back = row.into_record().unwrap();
        assert_eq!(back.tags[1], "a\u{FFFD}b");
        assert_eq!(back.documents, vec![("handbook".to_owned(), u64::MAX)]);
        assert_eq!(back.entry, record().entry);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.embedding), bits(&record().embedding));
    }

    #[test]
    fn a_torn_embedding_is_corrupt() {
        let mut row = CacheRow::from_record(&record()).unwrap();
        row.embedding.pop();
        let err = row.into_record().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)));
        assert!(err.to_string().contains("embedding"), "{err}");
    }

    #[test]
    fn the_last_write_of_a_key_wins_within_a_batch() {
        let a = CacheRow::from_record(&record()).unwrap();
        let mut b = a.clone();
        b.created_ms = 9;
        let mut other = a.clone();
        other.cache_key = "other".into();
        let kept = dedup_cache_rows(vec![a, other, b]);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].cache_key, "other");
        assert_eq!(kept[1].created_ms, 9);
    }
}
