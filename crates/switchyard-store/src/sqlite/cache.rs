//! SQLite: persisted semantic-cache entries.

use sqlx::{QueryBuilder, Sqlite};

use super::{SqliteStore, BACKEND, ROWS_PER_STATEMENT};
use crate::cache::{
    decode_cache, dedup_cache_rows, CacheEntryFilter, CacheRow, FilterArgs, CACHE_COLUMNS,
};
use crate::{CacheEntryRecord, StoreError};

impl SqliteStore {
    pub(super) async fn cache_put(&self, batch: &[CacheEntryRecord]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let rows = dedup_cache_rows(
            batch
                .iter()
                .map(CacheRow::from_record)
                .collect::<Result<Vec<_>, _>>()?,
        );
        let mut tx = self.pool.begin().await.map_err(StoreError::db(BACKEND))?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO cache_entries ({CACHE_COLUMNS}) "
            ));
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(&r.cache_key)
                    .push_bind(&r.scope_key)
                    .push_bind(&r.tenant)
                    .push_bind(&r.model)
                    .push_bind(&r.tags)
                    .push_bind(&r.documents)
                    .push_bind(&r.entry)
                    .push_bind(&r.embedding)
                    .push_bind(r.created_ms)
                    .push_bind(r.expires_ms);
            });
            qb.push(
                " ON CONFLICT (cache_key) DO UPDATE SET scope_key = excluded.scope_key,
                     tenant = excluded.tenant, model = excluded.model, tags = excluded.tags,
                     documents = excluded.documents, entry = excluded.entry,
                     embedding = excluded.embedding, created_ms = excluded.created_ms,
                     expires_ms = excluded.expires_ms",
            );
            // The gateway writes one answer at a time, so the one-row statement is kept
            // prepared too, besides full chunks.
            let keep = chunk.len() == ROWS_PER_STATEMENT || chunk.len() == 1;
            qb.build()
                .persistent(keep)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db(BACKEND))?;
        }
        tx.commit().await.map_err(StoreError::db(BACKEND))
    }

    pub(super) async fn cache_load(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<CacheEntryRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CACHE_COLUMNS} FROM cache_entries WHERE expires_ms > ?
             ORDER BY created_ms DESC, cache_key DESC LIMIT ?"
        ))
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?;
        rows.iter().map(|r| decode_cache(BACKEND, r)).collect()
    }

    pub(super) async fn cache_delete(&self, filter: &CacheEntryFilter) -> Result<u64, StoreError> {
        let f = FilterArgs::new(filter);
        let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM cache_entries WHERE 1 = 1");
        if let Some(t) = &f.tenant {
            qb.push(" AND tenant = ").push_bind(t);
        }
        if let Some(m) = &f.model {
            qb.push(" AND model = ").push_bind(m);
        }
        if let Some(tag) = &f.tag {
            qb.push(" AND EXISTS (SELECT 1 FROM json_each(tags) AS t WHERE t.value = ")
                .push_bind(tag)
                .push(")");
        }
        if let Some(doc) = &f.document {
            // Documents are `[name, version]` pairs.
            qb.push(
                " AND EXISTS (SELECT 1 FROM json_each(documents) AS d
                  WHERE json_extract(d.value, '$[0]') = ",
            )
            .push_bind(doc);
            if let Some(below) = f.below_version {
                qb.push(" AND json_extract(d.value, '$[1]') < ")
                    .push_bind(below);
            }
            qb.push(")");
        }
        qb.build()
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(StoreError::db(BACKEND))
    }

    pub(super) async fn cache_purge(&self, now_ms: i64) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM cache_entries WHERE expires_ms <= ?")
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(StoreError::db(BACKEND))
    }
}
