//! Stage 4 — answers the gateway already has. Sits after the input guardrails (so keys and
//! entries only ever hold redacted text) and before routing.
//!
//! Lookup: the exact layer first (a hash of the normalized request, scoped by tenant), then, if
//! enabled, the semantic layer: the last user message is embedded and compared with earlier
//! questions asked in the same context, and a candidate is served only when the verifier agrees.
//! Stores happen after the response is sent, off the request's path.
//!
//! Semantic entries are also written to the store, so a restarted gateway (or a new replica)
//! rebuilds its index from them at start instead of starting cold; invalidation deletes them
//! there too, and expired rows are purged hourly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use serde::Serialize;
use switchyard_api::{
    ChatCompletionRequest, ChatCompletionResponse, EmbeddingInput, EmbeddingsRequest,
};
use switchyard_cache::{
    exact_key, is_deterministic, parse_documents, semantic_parts, CacheKey, CachedEntry,
    ExactStore, Selector, SemanticIndex, SemanticLookup, DEFAULT_MIN_SIMILARITY,
};
use switchyard_store::{CacheEntryFilter, CacheEntryRecord, Store};

use crate::config::{CacheConfig, Config};
use crate::server::{now_ms, ApiError, Runtime};

/// The cache's state; it outlives configuration reloads (the policy is re-read per request).
pub struct CacheStores {
    pub exact: ExactStore,
    pub semantic: SemanticIndex,
    /// Where semantic entries outlive the process.
    store: Arc<dyn Store>,
    stats: Mutex<HashMap<(String, String), CacheStats>>,
}

/// How often expired persisted entries are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(3_600);

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CacheStats {
    pub hits_exact: u64,
    pub hits_semantic: u64,
    pub misses: u64,
    pub bypassed: u64,
    pub saved_usd: f64,
}

/// How the cache took part in one request; the value of `x-switchyard-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    HitExact,
    HitSemantic,
    Miss,
    Bypass,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::HitExact => "hit-exact",
            CacheOutcome::HitSemantic => "hit-semantic",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Bypass => "bypass",
        }
    }
}

/// What the stage decided for one request before the call.
pub struct CachePlan {
    tenant: String,
    model: String,
    tags: Vec<String>,
    key: CacheKey,
    semantic: Option<(CacheKey, String)>,
    /// `no-store` (and requests that ask for randomness) are looked up but never written.
    store: bool,
    lookup: bool,
    ttl: Duration,
    documents: Vec<(String, u64)>,
    /// The question's embedding, computed on a semantic miss and reused for the store.
    vector: Option<Vec<f32>>,
}

impl CachePlan {
    /// Whether the cache was consulted (a miss) or skipped by request controls (a bypass).
    pub fn is_lookup(&self) -> bool {
        self.lookup
    }
}

pub struct CacheHit {
    pub entry: Arc<CachedEntry>,
    pub outcome: CacheOutcome,
    pub similarity: Option<f32>,
}

/// Words that mark a question whose answer goes stale quickly.
const TIME_SENSITIVE: &[&str] = &[
    "today",
    "tonight",
    "now",
    "current",
    "currently",
    "latest",
    "recent",
    "this week",
    "this month",
    "price",
    "weather",
    "news",
    "stock",
    "score",
    "live",
];

fn is_time_sensitive(text: &str) -> bool {
    let lower = text.to_lowercase();
    TIME_SENSITIVE.iter().any(|w| {
        lower.match_indices(w).any(|(i, _)| {
            let before = lower[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric());
            let after = lower[i + w.len()..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric());
            before && after
        })
    })
}

impl CacheStores {
    /// Redis when `[state] url` is a Redis URL (shared by replicas), in-process otherwise.
    pub fn build(config: &Config, store: Arc<dyn Store>) -> Result<Self, String> {
        let c = &config.cache;
        let exact = match config.state.url.as_deref() {
            Some(url) if url.starts_with("redis://") => {
                ExactStore::redis(url, &config.state.prefix).map_err(|e| e.to_string())?
            }
            _ => ExactStore::memory(c.max_entries),
        };
        Ok(Self {
            exact,
            semantic: SemanticIndex::new(c.max_entries as usize),
            store,
            stats: Mutex::new(HashMap::new()),
        })
    }

    /// Refills the semantic index (and an in-process exact layer) from the persisted entries:
    /// the newest unexpired ones, up to `max_entries`, each with the TTL it has left. A store
    /// error only costs the warm start, so it is logged. Returns how many were loaded.
    pub async fn restore(&self, config: &CacheConfig) -> usize {
        if !semantic_anywhere(config) {
            return 0;
        }
        let now = now_ms();
        let limit = u32::try_from(config.max_entries).unwrap_or(u32::MAX);
        let rows = match self.store.load_cache_entries(now, limit).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "could not load the persisted semantic cache; starting empty");
                return 0;
            }
        };
        // Redis keeps its own entries; only an in-process exact layer starts empty.
        let refill_exact = self.exact.backend() == "memory";
        let (mut loaded, mut skipped) = (0usize, 0usize);
        // Oldest first: the index evicts in insertion order, so the oldest must go first.
        for row in rows.into_iter().rev() {
            let Some((scope, key, vector, entry, ttl)) = restored(row, now) else {
                skipped += 1;
                continue;
            };
            if refill_exact {
                self.exact.put(key, entry.clone(), ttl).await;
            }
            self.semantic.insert(scope, key, vector, entry, ttl);
            loaded += 1;
        }
        if skipped > 0 {
            tracing::warn!(skipped, "ignored unreadable persisted cache entries");
        }
        tracing::info!(loaded, "semantic cache entries restored from the store");
        loaded
    }

    /// Decides whether and how this request uses the cache. `None`: the cache is off for it.
    pub fn plan(
        &self,
        config: &CacheConfig,
        tenant: &str,
        tags: &[String],
        req: &ChatCompletionRequest,
        headers: &HeaderMap,
    ) -> Result<Option<CachePlan>, ApiError> {
        let policy = config.policy(tenant, &req.model);
        if !policy.enabled {
            return Ok(None);
        }
        let control = headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let no_cache = control.split(',').any(|d| d.trim() == "no-cache");
        let no_store = control.split(',').any(|d| d.trim() == "no-store");
        let deterministic = config.cache_nondeterministic || is_deterministic(req);
        let mut ttl = Duration::from_secs(policy.ttl_secs);
        if let Some(v) = headers.get("x-switchyard-cache-ttl") {
            let secs = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    ApiError::invalid_request(
                        "invalid_cache_ttl",
                        "x-switchyard-cache-ttl must be a positive number of seconds",
                    )
                })?;
            ttl = Duration::from_secs(secs);
        } else if req
            .messages
            .last()
            .is_some_and(|m| is_time_sensitive(&m.text()))
        {
            ttl = ttl.min(Duration::from_secs(config.time_sensitive_ttl_secs));
        }
        let documents = match headers.get("x-switchyard-cache-deps") {
            None => Vec::new(),
            Some(v) => v
                .to_str()
                .map_err(|_| "not ASCII".to_owned())
                .and_then(parse_documents)
                .map_err(|e| {
                    ApiError::invalid_request(
                        "invalid_cache_deps",
                        format!("x-switchyard-cache-deps: {e}"),
                    )
                })?,
        };
        let semantic = if policy.semantic {
            semantic_parts(tenant, req)
        } else {
            None
        };
        Ok(Some(CachePlan {
            tenant: tenant.to_owned(),
            model: req.model.clone(),
            tags: tags.to_vec(),
            key: exact_key(tenant, req),
            semantic,
            store: deterministic && !no_store,
            lookup: deterministic && !no_cache && !no_store,
            ttl,
            documents,
            vector: None,
        }))
    }

    pub async fn lookup(&self, rt: &Runtime, plan: &mut CachePlan) -> Option<CacheHit> {
        if !plan.lookup {
            return None;
        }
        if let Some(entry) = self.exact.get(&plan.key).await {
            if entry.is_current(&plan.documents) {
                return Some(CacheHit {
                    entry,
                    outcome: CacheOutcome::HitExact,
                    similarity: None,
                });
            }
            self.exact.remove(&plan.key).await;
        }
        let (scope, question) = plan.semantic.clone()?;
        let vector = embed(rt, &question).await?;
        let threshold = rt
            .config
            .cache
            .similarity_threshold
            .unwrap_or(DEFAULT_MIN_SIMILARITY);
        let found = self.semantic.lookup(&scope, &question, &vector, threshold);
        plan.vector = Some(vector);
        match found {
            SemanticLookup::Hit {
                entry,
                similarity,
                key,
            } if entry.is_current(&plan.documents) => {
                if self.exact.get(&key).await.is_none() {
                    // Invalidated or expired in the shared exact layer (perhaps by another
                    // replica): this replica's index was stale.
                    self.semantic.remove(&scope, &key);
                    return None;
                }
                metrics::histogram!("switchyard_cache_semantic_similarity")
                    .record(f64::from(similarity));
                Some(CacheHit {
                    entry,
                    outcome: CacheOutcome::HitSemantic,
                    similarity: Some(similarity),
                })
            }
            SemanticLookup::Rejected { verdict, .. } => {
                metrics::counter!("switchyard_cache_semantic_rejected_total", "reason" => verdict.reason)
                    .increment(1);
                None
            }
            _ => None,
        }
    }

    /// Writes a fresh answer to both layers. Called off the request path.
    pub async fn store(
        &self,
        rt: &Runtime,
        mut plan: CachePlan,
        resp: &ChatCompletionResponse,
        model_used: &str,
        provider: &str,
        cost_usd: f64,
    ) {
        if !plan.store
            || resp
                .choices
                .iter()
                .any(|c| c.finish_reason.as_deref() != Some("stop"))
        {
            // Truncated answers, tool calls and content-filtered answers are not worth replaying.
            return;
        }
        let Ok(response) = serde_json::to_value(resp) else {
            return;
        };
        let usage = resp.usage.unwrap_or_default();
        let created_ms = now_ms().max(0);
        let entry = Arc::new(CachedEntry {
            response,
            tenant: plan.tenant.clone(),
            model: plan.model.clone(),
            model_used: model_used.to_owned(),
            provider: provider.to_owned(),
            cost_usd,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            tags: plan.tags.clone(),
            documents: plan.documents.clone(),
            question: plan
                .semantic
                .as_ref()
                .map(|(_, q)| q.clone())
                .unwrap_or_default(),
            created_ms: created_ms as u64,
        });
        self.exact.put(plan.key, entry.clone(), plan.ttl).await;
        if let Some((scope, question)) = plan.semantic.take() {
            let vector = match plan.vector.take() {
                Some(v) => Some(v),
                None => embed(rt, &question).await,
            };
            if let Some(vector) = vector {
                let record = persisted(scope, plan.key, &vector, &entry, created_ms, plan.ttl);
                self.semantic
                    .insert(scope, plan.key, vector, entry, plan.ttl);
                // Already off the request path; a failed write only loses the warm start.
                if let Some(record) = record {
                    if let Err(e) = self.store.put_cache_entries(&[record]).await {
                        tracing::warn!(error = %e, "could not persist a semantic cache entry");
                    }
                }
            }
        }
    }

    pub fn record(&self, tenant: &str, tags: &[String], outcome: CacheOutcome, saved_usd: f64) {
        metrics::counter!("switchyard_cache_requests_total", "outcome" => outcome.as_str())
            .increment(1);
        if saved_usd > 0.0 {
            metrics::counter!("switchyard_cache_saved_usd_micros_total")
                .increment((saved_usd * 1e6) as u64);
        }
        let Ok(mut stats) = self.stats.lock() else {
            return;
        };
        let untagged = [String::new()];
        let tags = if tags.is_empty() { &untagged[..] } else { tags };
        for tag in tags {
            let s = stats.entry((tenant.to_owned(), tag.clone())).or_default();
            match outcome {
                CacheOutcome::HitExact => s.hits_exact += 1,
                CacheOutcome::HitSemantic => s.hits_semantic += 1,
                CacheOutcome::Miss => s.misses += 1,
                CacheOutcome::Bypass => s.bypassed += 1,
            }
            s.saved_usd += saved_usd;
        }
    }

    /// Stats by (tenant, tag); the empty tag holds untagged requests.
    pub fn stats(&self, tenant: Option<&str>) -> Vec<(String, String, CacheStats)> {
        let Ok(stats) = self.stats.lock() else {
            return Vec::new();
        };
        let mut rows: Vec<_> = stats
            .iter()
            .filter(|((t, _), _)| tenant.is_none_or(|want| want == t))
            .map(|((t, tag), s)| (t.clone(), tag.clone(), *s))
            .collect();
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        rows
    }

    pub async fn invalidate(&self, selector: &Selector) -> Result<(u64, u64), String> {
        let exact = self
            .exact
            .invalidate(selector)
            .await
            .map_err(|e| e.to_string())?;
        let semantic = self.semantic.invalidate(selector);
        // The persisted copies too, or the next start would bring the answers back.
        let filter = CacheEntryFilter {
            tenant: selector.tenant.clone(),
            model: selector.model.clone(),
            tag: selector.tag.clone(),
            document: selector.document.clone(),
            below_version: selector.below_version,
        };
        self.store
            .delete_cache_entries(&filter)
            .await
            .map_err(|e| format!("store: {e}"))?;
        Ok((exact, semantic))
    }

    /// Deletes expired persisted entries every hour (the first time at start), for as long as
    /// the cache is alive.
    pub fn spawn_purge(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_INTERVAL);
            loop {
                tick.tick().await;
                let Some(cache) = weak.upgrade() else { break };
                match cache.store.purge_expired_cache_entries(now_ms()).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "expired cache entries purged"),
                    Err(e) => tracing::warn!(error = %e, "could not purge expired cache entries"),
                }
            }
        });
    }
}

/// Whether any tenant or model may use the semantic layer (overrides can turn it on for a few).
fn semantic_anywhere(c: &CacheConfig) -> bool {
    let enabled = c.enabled || c.overrides.iter().any(|o| o.enabled == Some(true));
    let semantic = c.semantic || c.overrides.iter().any(|o| o.semantic == Some(true));
    enabled && semantic
}

/// The store's form of a semantic entry; `None` (not persisted) if it cannot be encoded.
fn persisted(
    scope: CacheKey,
    key: CacheKey,
    vector: &[f32],
    entry: &CachedEntry,
    created_ms: i64,
    ttl: Duration,
) -> Option<CacheEntryRecord> {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    Some(CacheEntryRecord {
        key: key.to_hex(),
        scope: scope.to_hex(),
        tenant: entry.tenant.clone(),
        model: entry.model.clone(),
        tags: entry.tags.clone(),
        documents: entry.documents.clone(),
        entry: serde_json::to_value(entry).ok()?,
        embedding: vector.to_vec(),
        created_ms,
        expires_ms: created_ms.saturating_add(ttl_ms),
    })
}

type Restored = (CacheKey, CacheKey, Vec<f32>, Arc<CachedEntry>, Duration);

/// A persisted entry ready for the index, with the TTL it has left; `None` if it is unreadable
/// or already expired.
fn restored(row: CacheEntryRecord, now: i64) -> Option<Restored> {
    let key_of = |hex_key: &str| -> Option<CacheKey> {
        let bytes: [u8; 32] = hex::decode(hex_key).ok()?.try_into().ok()?;
        Some(CacheKey(bytes))
    };
    let left = u64::try_from(row.expires_ms.checked_sub(now)?)
        .ok()
        .filter(|ms| *ms > 0 && !row.embedding.is_empty())?;
    let entry: CachedEntry = serde_json::from_value(row.entry).ok()?;
    Some((
        key_of(&row.scope)?,
        key_of(&row.key)?,
        row.embedding,
        Arc::new(entry),
        Duration::from_millis(left),
    ))
}

/// The question's embedding from the configured embedding model; `None` (semantic layer
/// skipped) if that model is unavailable.
async fn embed(rt: &Runtime, question: &str) -> Option<Vec<f32>> {
    let name = &rt.config.cache.embedding_model;
    let model = rt.models.plan(name).ok()?.into_iter().next()?;
    let req = EmbeddingsRequest {
        model: model.upstream.clone(),
        input: EmbeddingInput::One(question.to_owned()),
        encoding_format: None,
        dimensions: None,
        user: None,
        extra: serde_json::Map::new(),
    };
    match model.provider.embeddings(&req, &model.upstream).await {
        Ok(resp) => {
            let v: Vec<f32> =
                serde_json::from_value(resp.data.into_iter().next()?.embedding).ok()?;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            (norm > 0.0).then(|| v.into_iter().map(|x| x / norm).collect())
        }
        Err(e) => {
            tracing::warn!(error = %e, model = %name, "cache embedding failed; semantic layer skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_sensitive_questions_are_recognised_as_whole_words() {
        assert!(is_time_sensitive("What's the weather in Oslo?"));
        assert!(is_time_sensitive("latest news please"));
        assert!(!is_time_sensitive("What is the capital of France?"));
        assert!(
            !is_time_sensitive("Who is known for his knowledge?"),
            "'now' inside 'known'"
        );
    }
}
