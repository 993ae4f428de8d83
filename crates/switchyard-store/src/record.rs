//! Record types and their mapping to the flat column layout both backends share.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// One request as seen by the gateway, written once when the request finishes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    pub request_id: String,
    /// Unix milliseconds when the request arrived.
    pub ts_ms: i64,
    pub tenant: String,
    pub key_id: String,
    /// `"chat.completions"` or `"embeddings"`.
    pub endpoint: String,
    pub model_requested: String,
    pub model_used: Option<String>,
    pub provider: Option<String>,
    /// HTTP status returned to the client (499 when the client went away).
    pub status: u16,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub attempts: u32,
    pub stream: bool,
    /// `"hit-exact"`, `"miss"`, ...
    pub cache: Option<String>,
    // `default` keeps spool lines written by older builds (without these
    // fields) replayable instead of rejecting them as corrupt.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The end user the request was made for (OpenAI's `user` field), if the
    /// client named one. Stored as `user_id`; see `Store::delete_user_requests`.
    #[serde(default)]
    pub user: Option<String>,
    /// What was asked and answered, as the gateway chose to keep it: redacted by default (see
    /// the gateway's `[request_log] bodies`), raw only where a tenant opted in, absent when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bodies: Option<serde_json::Value>,
}

/// Insert/select column order for the `requests` table. Both backends bind and
/// read in exactly this order, so it is the single source of truth.
pub(crate) const REQUEST_COLUMNS: &str = "request_id, ts_ms, tenant, key_id, endpoint, \
     model_requested, model_used, provider, status, error_kind, error_message, \
     prompt_tokens, completion_tokens, cost_usd, latency_ms, ttft_ms, attempts, \
     stream, cache, tags, metadata, user_id, bodies";

/// Insert column order: [`REQUEST_COLUMNS`], then the columns derived from the record (never read
/// back: `metadata` holds the same facts).
pub(crate) const REQUEST_INSERT_COLUMNS: &str = "request_id, ts_ms, tenant, key_id, endpoint, \
     model_requested, model_used, provider, status, error_kind, error_message, \
     prompt_tokens, completion_tokens, cost_usd, latency_ms, ttft_ms, attempts, \
     stream, cache, tags, metadata, user_id, bodies, experiment, experiment_arm";

/// A [`RequestRecord`] reduced to types every SQL backend can bind natively
/// (signed integers, text, f64, bool), so the backend modules only move values. Text borrows
/// from the record being written (or the row being read): the writer keeps its batch for the
/// spool, so owning would copy every string of every record once more before the driver does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RequestRow<'a> {
    pub request_id: Cow<'a, str>,
    pub ts_ms: i64,
    pub tenant: Cow<'a, str>,
    pub key_id: Cow<'a, str>,
    pub endpoint: Cow<'a, str>,
    pub model_requested: Cow<'a, str>,
    pub model_used: Option<Cow<'a, str>>,
    pub provider: Option<Cow<'a, str>>,
    pub status: i32,
    pub error_kind: Option<Cow<'a, str>>,
    pub error_message: Option<Cow<'a, str>>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub attempts: i64,
    pub stream: bool,
    pub cache: Option<Cow<'a, str>>,
    pub tags: Cow<'a, str>,
    pub metadata: Cow<'a, str>,
    pub user_id: Option<Cow<'a, str>>,
    pub bodies: Option<Cow<'a, str>>,
    /// `metadata.experiment`'s name and arm, as their own indexed columns (insert only).
    pub experiment: Option<Cow<'a, str>>,
    pub experiment_arm: Option<Cow<'a, str>>,
}

/// Saturates instead of failing: a single absurd counter must not make a
/// whole batch (and then the spool replay) fail forever.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(field: &str, request_id: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| {
        StoreError::Corrupt(format!(
            "request {request_id}: column {field} is negative ({v})"
        ))
    })
}

/// SQLite turns NaN into NULL (violating NOT NULL and poisoning the batch)
/// and JSON has no NaN/inf, so a spooled one would not parse back; a cost
/// that could not be computed is better recorded as zero.
pub(crate) fn finite_cost(rec: &RequestRecord) -> f64 {
    if rec.cost_usd.is_finite() {
        rec.cost_usd
    } else {
        tracing::warn!(request_id = %rec.request_id, "non-finite cost_usd; recording 0");
        0.0
    }
}

fn borrowed(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(Cow::Borrowed)
}

fn owned(s: Option<Cow<'_, str>>) -> Option<String> {
    s.map(Cow::into_owned)
}

impl<'a> RequestRow<'a> {
    pub(crate) fn from_record(rec: &'a RequestRecord) -> Result<Self, StoreError> {
        let tags = serde_json::to_string(&rec.tags)
            .map_err(|e| StoreError::Encode(format!("tags of {}: {e}", rec.request_id)))?;
        let metadata = serde_json::to_string(&rec.metadata)
            .map_err(|e| StoreError::Encode(format!("metadata of {}: {e}", rec.request_id)))?;
        let bodies =
            match &rec.bodies {
                Some(b) => Some(serde_json::to_string(b).map_err(|e| {
                    StoreError::Encode(format!("bodies of {}: {e}", rec.request_id))
                })?),
                None => None,
            };
        let cost_usd = finite_cost(rec);
        let (experiment, experiment_arm) = crate::feedback::experiment_tag(&rec.metadata);
        Ok(Self {
            request_id: Cow::Borrowed(&rec.request_id),
            ts_ms: rec.ts_ms,
            tenant: Cow::Borrowed(&rec.tenant),
            key_id: Cow::Borrowed(&rec.key_id),
            endpoint: Cow::Borrowed(&rec.endpoint),
            model_requested: Cow::Borrowed(&rec.model_requested),
            model_used: borrowed(&rec.model_used),
            provider: borrowed(&rec.provider),
            status: i32::from(rec.status),
            error_kind: borrowed(&rec.error_kind),
            error_message: borrowed(&rec.error_message),
            prompt_tokens: to_i64(rec.prompt_tokens),
            completion_tokens: to_i64(rec.completion_tokens),
            cost_usd,
            latency_ms: to_i64(rec.latency_ms),
            ttft_ms: rec.ttft_ms.map(to_i64),
            attempts: i64::from(rec.attempts),
            stream: rec.stream,
            cache: borrowed(&rec.cache),
            tags: Cow::Owned(tags),
            metadata: Cow::Owned(metadata),
            user_id: borrowed(&rec.user),
            bodies: bodies.map(Cow::Owned),
            experiment: experiment.map(Cow::Owned),
            experiment_arm: experiment_arm.map(Cow::Owned),
        })
    }

    pub(crate) fn into_record(self) -> Result<RequestRecord, StoreError> {
        let id: &str = &self.request_id;
        let corrupt = |field: &str, detail: String| {
            StoreError::Corrupt(format!("request {id}: column {field}: {detail}"))
        };
        let status = u16::try_from(self.status)
            .map_err(|_| corrupt("status", format!("{} out of range", self.status)))?;
        let attempts = u32::try_from(self.attempts)
            .map_err(|_| corrupt("attempts", format!("{} out of range", self.attempts)))?;
        let tags: Vec<String> =
            serde_json::from_str(&self.tags).map_err(|e| corrupt("tags", e.to_string()))?;
        let metadata: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.metadata).map_err(|e| corrupt("metadata", e.to_string()))?;
        let bodies = match self.bodies.as_deref() {
            Some(b) => Some(serde_json::from_str(b).map_err(|e| corrupt("bodies", e.to_string()))?),
            None => None,
        };
        let prompt_tokens = to_u64("prompt_tokens", id, self.prompt_tokens)?;
        let completion_tokens = to_u64("completion_tokens", id, self.completion_tokens)?;
        let latency_ms = to_u64("latency_ms", id, self.latency_ms)?;
        let ttft_ms = match self.ttft_ms {
            Some(v) => Some(to_u64("ttft_ms", id, v)?),
            None => None,
        };
        Ok(RequestRecord {
            request_id: self.request_id.into_owned(),
            ts_ms: self.ts_ms,
            tenant: self.tenant.into_owned(),
            key_id: self.key_id.into_owned(),
            endpoint: self.endpoint.into_owned(),
            model_requested: self.model_requested.into_owned(),
            model_used: owned(self.model_used),
            provider: owned(self.provider),
            status,
            error_kind: owned(self.error_kind),
            error_message: owned(self.error_message),
            prompt_tokens,
            completion_tokens,
            cost_usd: self.cost_usd,
            latency_ms,
            ttft_ms,
            attempts,
            stream: self.stream,
            cache: owned(self.cache),
            tags,
            metadata,
            user: owned(self.user_id),
            bodies,
        })
    }

    /// PostgreSQL rejects NUL in TEXT; upstream error messages occasionally
    /// carry one, and a rejected row would otherwise poison its whole batch.
    pub(crate) fn strip_nul(mut self) -> Self {
        fn clean(s: &mut Cow<'_, str>) {
            if s.contains('\0') {
                *s = Cow::Owned(s.replace('\0', "\u{FFFD}"));
            }
        }
        fn clean_opt(s: &mut Option<Cow<'_, str>>) {
            if let Some(s) = s {
                clean(s);
            }
        }
        clean(&mut self.request_id);
        clean(&mut self.tenant);
        clean(&mut self.key_id);
        clean(&mut self.endpoint);
        clean(&mut self.model_requested);
        clean_opt(&mut self.model_used);
        clean_opt(&mut self.provider);
        clean_opt(&mut self.error_kind);
        clean_opt(&mut self.error_message);
        clean_opt(&mut self.cache);
        clean_opt(&mut self.user_id);
        clean_opt(&mut self.experiment);
        clean_opt(&mut self.experiment_arm);
        // tags/metadata are JSON text, where serde_json already escapes NUL.
        self
    }
}

/// Splits rows for multi-row INSERTs into chunks of `max` rows (a power of two), the rest into
/// powers of two: every chunk size is one of a handful of statements, all kept prepared.
/// Below full load nearly every batch is partial; a statement per row count was parsed anew for
/// each one (a tenth of the gateway's instructions at a few hundred requests a second), and
/// keeping those would grow the statement cache with every batch size seen.
pub(crate) fn insert_chunks<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let n = rest.len().min(max);
        if n == 0 {
            return None;
        }
        let (chunk, tail) = rest.split_at(1 << n.ilog2());
        rest = tail;
        Some(chunk)
    })
}

/// Keeps the first occurrence of each request_id. Replays and retries make
/// duplicates normal, and a multi-row upsert must not see one id twice.
pub(crate) fn dedup_rows(rows: Vec<RequestRow<'_>>) -> Vec<RequestRow<'_>> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    rows.into_iter()
        .filter(|r| seen.insert(r.request_id.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str) -> RequestRecord {
        let mut metadata = serde_json::Map::new();
        metadata.insert("team".into(), serde_json::json!("search"));
        metadata.insert("n".into(), serde_json::json!(3));
        RequestRecord {
            request_id: id.into(),
            ts_ms: 1_700_000_000_000,
            tenant: "acme".into(),
            key_id: "k1".into(),
            endpoint: "chat.completions".into(),
            model_requested: "gpt-x".into(),
            model_used: Some("gpt-x-2024".into()),
            provider: Some("openai".into()),
            status: 200,
            error_kind: None,
            error_message: None,
            prompt_tokens: 12,
            completion_tokens: 34,
            cost_usd: 0.00123,
            latency_ms: 456,
            ttft_ms: Some(78),
            attempts: 1,
            stream: true,
            cache: Some("miss".into()),
            tags: vec!["a".into(), "b".into()],
            metadata,
            user: Some("end-user-7".into()),
            bodies: Some(serde_json::json!({"answer": "ok"})),
        }
    }

    #[test]
    fn row_round_trip_is_lossless() {
        let rec = sample("r1");
        let row = RequestRow::from_record(&rec).unwrap();
        assert_eq!(row.tags, r#"["a","b"]"#);
        assert_eq!(row.into_record().unwrap(), rec);
    }

    #[test]
    fn huge_counters_saturate_and_nan_cost_becomes_zero() {
        let mut rec = sample("r2");
        rec.prompt_tokens = u64::MAX;
        rec.cost_usd = f64::NAN;
        let row = RequestRow::from_record(&rec).unwrap();
        assert_eq!(row.prompt_tokens, i64::MAX);
        assert_eq!(row.cost_usd, 0.0);
    }

    #[test]
    fn negative_counter_in_db_is_reported_not_wrapped() {
        let rec = sample("r3");
        let mut row = RequestRow::from_record(&rec).unwrap();
        row.latency_ms = -5;
        let err = row.into_record().unwrap_err();
        assert!(err.to_string().contains("latency_ms"), "{err}");
    }

    #[test]
    fn nul_is_replaced_only_where_present() {
        let mut rec = sample("r4");
        rec.error_message = Some("bad\0byte".into());
        let row = RequestRow::from_record(&rec).unwrap().strip_nul();
        assert_eq!(row.error_message.as_deref(), Some("bad\u{FFFD}byte"));
        assert_eq!(row.tenant, "acme");
    }

    #[test]
    fn old_spool_lines_without_tags_still_parse() {
        let rec = sample("r5");
        let mut v = serde_json::to_value(&rec).unwrap();
        let obj = v.as_object_mut().unwrap();
        obj.remove("tags");
        obj.remove("metadata");
        obj.remove("user");
        let back: RequestRecord = serde_json::from_value(v).unwrap();
        assert!(back.tags.is_empty() && back.metadata.is_empty() && back.user.is_none());
    }

    #[test]
    fn insert_chunks_are_full_or_powers_of_two_and_cover_every_row() {
        let rows: Vec<u32> = (0..300).collect();
        for n in [0, 1, 2, 3, 12, 63, 64, 65, 200, 300] {
            let chunks: Vec<&[u32]> = insert_chunks(&rows[..n], 64).collect();
            let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
            assert!(
                sizes.iter().all(|s| s.is_power_of_two() && *s <= 64),
                "{n}: {sizes:?}"
            );
            assert_eq!(chunks.concat(), &rows[..n], "{n}: {sizes:?}");
        }
        let sizes: Vec<usize> = insert_chunks(&rows[..200], 64).map(<[u32]>::len).collect();
        assert_eq!(sizes, [64, 64, 64, 8]);
        let sizes: Vec<usize> = insert_chunks(&rows[..12], 64).map(<[u32]>::len).collect();
        assert_eq!(sizes, [8, 4]);
    }

    #[test]
    fn dedup_keeps_first() {
        let rec = sample("x");
        let a = RequestRow::from_record(&rec).unwrap();
        let mut b = a.clone();
        b.status = 500;
        let out = dedup_rows(vec![a.clone(), b]);
        assert_eq!(out, vec![a]);
    }
}
