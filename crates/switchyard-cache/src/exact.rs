//! The exact layer: in-process (moka) by default, Redis when replicas must share it.
//!
//! A cache is an optimization: a Redis error is logged and treated as a miss (or a skipped
//! write), never as a failed request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use crate::entry::{CachedEntry, Selector};
use crate::key::CacheKey;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache backend: {0}")]
    Backend(String),
}

#[derive(Clone)]
struct Stored {
    entry: Arc<CachedEntry>,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<CacheKey, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _: &CacheKey, value: &Stored, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub struct ExactStore(Backend);

enum Backend {
    Memory(moka::sync::Cache<CacheKey, Stored>),
    Redis(RedisExact),
}

struct RedisExact {
    conn: ConnectionManager,
    prefix: String,
}

impl ExactStore {
    pub fn memory(max_entries: u64) -> Self {
        Self(Backend::Memory(
            moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntryTtl)
                .support_invalidation_closures()
                .build(),
        ))
    }

    pub fn redis(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(|e| CacheError::Backend(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| CacheError::Backend(e.to_string()))?;
        Ok(Self(Backend::Redis(RedisExact {
            conn,
            prefix: format!("{prefix}cache:"),
        })))
    }

    pub fn backend(&self) -> &'static str {
        match &self.0 {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Arc<CachedEntry>> {
        match &self.0 {
            Backend::Memory(cache) => cache.get(key).map(|s| s.entry),
            Backend::Redis(r) => match r.get(key).await {
                Ok(entry) => entry.map(Arc::new),
                Err(e) => {
                    tracing::warn!(error = %e, "cache lookup failed; treating it as a miss");
                    None
                }
            },
        }
    }

    pub async fn put(&self, key: CacheKey, entry: Arc<CachedEntry>, ttl: Duration) {
        match &self.0 {
            Backend::Memory(cache) => cache.insert(key, Stored { entry, ttl }),
            Backend::Redis(r) => {
                if let Err(e) = r.put(&key, &entry, ttl).await {
                    tracing::warn!(error = %e, "cache write failed; the answer is not cached");
                }
            }
        }
    }

    pub async fn remove(&self, key: &CacheKey) {
        match &self.0 {
            Backend::Memory(cache) => cache.invalidate(key),
            Backend::Redis(r) => {
                let mut conn = r.conn.clone();
                let _: Result<(), _> = conn.del(r.entry_key(key)).await;
            }
        }
    }

    /// Removes every entry the selector matches; returns how many (for Redis, how many were
    /// found through the selector's index).
    pub async fn invalidate(&self, selector: &Selector) -> Result<u64, CacheError> {
        match &self.0 {
            Backend::Memory(cache) => {
                let count = cache
                    .iter()
                    .filter(|(_, stored)| selector.matches(&stored.entry))
                    .count() as u64;
                let selector = selector.clone();
                cache
                    .invalidate_entries_if(move |_, stored| selector.matches(&stored.entry))
                    .map_err(|e| CacheError::Backend(e.to_string()))?;
                cache.run_pending_tasks();
                Ok(count)
            }
            Backend::Redis(r) => r.invalidate(selector).await,
        }
    }

    pub fn entry_count(&self) -> Option<u64> {
        match &self.0 {
            Backend::Memory(cache) => {
                cache.run_pending_tasks();
                Some(cache.entry_count())
            }
            Backend::Redis(_) => None,
        }
    }
}

impl RedisExact {
    fn entry_key(&self, key: &CacheKey) -> String {
        format!("{}e:{}", self.prefix, key.to_hex())
    }

    fn index_keys(&self, e: &CachedEntry) -> Vec<String> {
        let mut keys = vec![
            format!("{}i:all", self.prefix),
            format!("{}i:tenant:{}", self.prefix, e.tenant),
            format!("{}i:model:{}", self.prefix, e.model),
        ];
        keys.extend(e.tags.iter().map(|t| format!("{}i:tag:{t}", self.prefix)));
        keys.extend(
            e.documents
                .iter()
                .map(|(d, _)| format!("{}i:doc:{d}", self.prefix)),
        );
        keys
    }

    /// The narrowest index that holds every entry the selector can match.
    fn index_for(&self, s: &Selector) -> String {
        if let Some(t) = &s.tag {
            format!("{}i:tag:{t}", self.prefix)
        } else if let Some(d) = &s.document {
            format!("{}i:doc:{d}", self.prefix)
        } else if let Some(m) = &s.model {
            format!("{}i:model:{m}", self.prefix)
        } else if let Some(t) = &s.tenant {
            format!("{}i:tenant:{t}", self.prefix)
        } else {
            format!("{}i:all", self.prefix)
        }
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<CachedEntry>, CacheError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = conn
            .get(self.entry_key(key))
            .await
            .map_err(|e| CacheError::Backend(e.to_string()))?;
        Ok(raw.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    async fn put(&self, key: &CacheKey, e: &CachedEntry, ttl: Duration) -> Result<(), CacheError> {
        let bytes = serde_json::to_vec(e).map_err(|e| CacheError::Backend(e.to_string()))?;
        let entry_key = self.entry_key(key);
        let mut pipe = redis::pipe();
        pipe.set_ex(&entry_key, bytes, ttl.as_secs().max(1));
        for index in self.index_keys(e) {
            pipe.sadd(&index, &entry_key).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| CacheError::Backend(e.to_string()))
    }

    async fn invalidate(&self, selector: &Selector) -> Result<u64, CacheError> {
        let err = |e: redis::RedisError| CacheError::Backend(e.to_string());
        let mut conn = self.conn.clone();
        let index = self.index_for(selector);
        let members: Vec<String> = conn.smembers(&index).await.map_err(err)?;
        let mut removed = 0;
        for chunk in members.chunks(256) {
            let values: Vec<Option<Vec<u8>>> = conn.mget(chunk).await.map_err(err)?;
            let mut delete = Vec::new();
            let mut gone = Vec::new();
            for (key, value) in chunk.iter().zip(values) {
                match value.and_then(|b| serde_json::from_slice::<CachedEntry>(&b).ok()) {
                    Some(e) if selector.matches(&e) => delete.push(key.clone()),
                    Some(_) => {}
                    // Expired: drop it from the index too.
                    None => gone.push(key.clone()),
                }
            }
            if !delete.is_empty() {
                let n: u64 = conn.del(&delete).await.map_err(err)?;
                removed += n;
            }
            gone.extend(delete);
            if !gone.is_empty() {
                let _: () = conn.srem(&index, &gone).await.map_err(err)?;
            }
        }
        Ok(removed)
    }
}
