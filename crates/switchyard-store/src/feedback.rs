//! End-user feedback on answers, and the per-arm experiment report built from the request log
//! joined with it.
//!
//! The SQL is shared; the backends differ only in placeholders (`?` or `$n`), so each query is a
//! function of the placeholder style. Experiment rows are found through the `experiment` and
//! `experiment_arm` columns of `requests`, which the insert derives from the record's
//! `metadata.experiment` (see [`experiment_tag`]): no JSON is parsed at query time, so a report
//! stays an index range scan however large the log grows.

use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::StoreError;

/// One verdict on one answer. A request has at most one: a later verdict replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub request_id: String,
    /// The tenant whose request it is.
    pub tenant: String,
    /// The model that answered (`model_used`, else `model_requested`), kept on the row so
    /// per-model outcomes survive the request's retention.
    pub model: String,
    /// From -1 (bad) to 1 (good).
    pub score: f64,
    pub comment: Option<String>,
    pub ts_ms: i64,
}

/// Feedback outcomes of one model: what a bandit needs. `score > 0` is a success, `< 0` a
/// failure, `0` neutral.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFeedback {
    pub model: String,
    pub successes: u64,
    pub failures: u64,
    pub neutral: u64,
}

/// Which experiment rows a report covers; `from_ms` inclusive, `to_ms` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentQuery {
    pub name: String,
    #[serde(default)]
    pub from_ms: Option<i64>,
    #[serde(default)]
    pub to_ms: Option<i64>,
}

/// One arm's numbers over the logged requests of an experiment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmStats {
    pub arm: String,
    pub requests: u64,
    /// Requests answered with a status of 400 or more (499: the client went away).
    pub errors: u64,
    /// Requests answered from the cache.
    pub cache_hits: u64,
    pub cost_usd: f64,
    /// Nearest-rank percentiles of the successful requests' latency; `None` without any.
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
    pub feedback_count: u64,
    /// Mean feedback score; `None` without feedback.
    pub feedback_mean: Option<f64>,
}

/// `(name, arm)` of `metadata.experiment`, when it is an object with both as strings.
pub(crate) fn experiment_tag(
    metadata: &serde_json::Map<String, serde_json::Value>,
) -> (Option<String>, Option<String>) {
    let Some(exp) = metadata.get("experiment").and_then(|v| v.as_object()) else {
        return (None, None);
    };
    match (
        exp.get("name").and_then(|v| v.as_str()),
        exp.get("arm").and_then(|v| v.as_str()),
    ) {
        (Some(name), Some(arm)) => (Some(name.to_owned()), Some(arm.to_owned())),
        _ => (None, None),
    }
}

pub(crate) const FEEDBACK_COLUMNS: &str = "request_id, tenant, model, score, comment, ts_ms";

/// The placeholder for the `i`th (1-based) argument.
pub(crate) fn ph(numbered: bool, i: usize) -> String {
    if numbered {
        format!("${i}")
    } else {
        "?".to_owned()
    }
}

/// Binds: name, from (inclusive), to (exclusive).
pub(crate) fn report_sql(numbered: bool) -> String {
    let p = |i| ph(numbered, i);
    format!(
        "SELECT r.experiment_arm AS arm, COUNT(*) AS n_requests,
                CAST(SUM(CASE WHEN r.status >= 400 THEN 1 ELSE 0 END) AS BIGINT) AS n_errors,
                CAST(SUM(CASE WHEN r.cache LIKE 'hit%' THEN 1 ELSE 0 END) AS BIGINT) AS n_cached,
                CAST(SUM(r.cost_usd) AS DOUBLE PRECISION) AS total_cost,
                COUNT(f.score) AS n_feedback,
                CAST(AVG(f.score) AS DOUBLE PRECISION) AS mean_score
         FROM requests r LEFT JOIN feedback f ON f.request_id = r.request_id
         WHERE r.experiment = {} AND r.ts_ms >= {} AND r.ts_ms < {}
           AND r.experiment_arm IS NOT NULL
         GROUP BY r.experiment_arm ORDER BY r.experiment_arm",
        p(1),
        p(2),
        p(3)
    )
}

/// The rows holding each arm's p50 and p95 latency (nearest rank among successful requests).
/// Binds: name, from, to.
pub(crate) fn percentile_sql(numbered: bool) -> String {
    let p = |i| ph(numbered, i);
    format!(
        "SELECT arm, rn, cnt, latency_ms FROM (
             SELECT experiment_arm AS arm, latency_ms,
                    ROW_NUMBER() OVER (PARTITION BY experiment_arm ORDER BY latency_ms) AS rn,
                    COUNT(*) OVER (PARTITION BY experiment_arm) AS cnt
             FROM requests
             WHERE experiment = {} AND ts_ms >= {} AND ts_ms < {}
               AND experiment_arm IS NOT NULL AND status < 400
         ) ranked
         WHERE rn = {} OR rn = {}",
        p(1),
        p(2),
        p(3),
        rank_sql(50),
        rank_sql(95)
    )
}

/// `ceil(cnt * pct / 100)` in integer arithmetic, identical in SQL and in [`rank`].
fn rank_sql(pct: i64) -> String {
    format!("(cnt * {pct} + 99) / 100")
}

fn rank(cnt: i64, pct: i64) -> i64 {
    (cnt * pct + 99) / 100
}

pub(crate) const OUTCOMES_SQL: &str = "SELECT model,
        CAST(SUM(CASE WHEN score > 0 THEN 1 ELSE 0 END) AS BIGINT) AS n_success,
        CAST(SUM(CASE WHEN score < 0 THEN 1 ELSE 0 END) AS BIGINT) AS n_failure,
        CAST(SUM(CASE WHEN score = 0 THEN 1 ELSE 0 END) AS BIGINT) AS n_neutral
     FROM feedback GROUP BY model ORDER BY model";

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Builds the report from the aggregate rows and the percentile rows, on either backend.
pub(crate) fn decode_report<R>(
    backend: &'static str,
    totals: &[R],
    ranked: &[R],
) -> Result<Vec<ArmStats>, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
{
    let read = || -> Result<Vec<ArmStats>, sqlx::Error> {
        let mut arms = Vec::with_capacity(totals.len());
        for row in totals {
            arms.push(ArmStats {
                arm: row.try_get("arm")?,
                requests: count(row.try_get("n_requests")?),
                errors: count(row.try_get("n_errors")?),
                cache_hits: count(row.try_get("n_cached")?),
                cost_usd: row.try_get("total_cost")?,
                latency_p50_ms: None,
                latency_p95_ms: None,
                feedback_count: count(row.try_get("n_feedback")?),
                feedback_mean: row.try_get("mean_score")?,
            });
        }
        for row in ranked {
            let arm: String = row.try_get("arm")?;
            let (rn, cnt): (i64, i64) = (row.try_get("rn")?, row.try_get("cnt")?);
            let latency = count(row.try_get("latency_ms")?);
            if let Some(a) = arms.iter_mut().find(|a| a.arm == arm) {
                if rn == rank(cnt, 50) {
                    a.latency_p50_ms = Some(latency);
                }
                if rn == rank(cnt, 95) {
                    a.latency_p95_ms = Some(latency);
                }
            }
        }
        Ok(arms)
    };
    read().map_err(StoreError::db(backend))
}

pub(crate) fn decode_outcome<R>(backend: &'static str, row: &R) -> Result<ModelFeedback, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let read = || -> Result<ModelFeedback, sqlx::Error> {
        Ok(ModelFeedback {
            model: row.try_get("model")?,
            successes: count(row.try_get("n_success")?),
            failures: count(row.try_get("n_failure")?),
            neutral: count(row.try_get("n_neutral")?),
        })
    };
    read().map_err(StoreError::db(backend))
}

pub(crate) fn decode_feedback<R>(
    backend: &'static str,
    row: &R,
) -> Result<FeedbackRecord, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
{
    let read = || -> Result<FeedbackRecord, sqlx::Error> {
        Ok(FeedbackRecord {
            request_id: row.try_get("request_id")?,
            tenant: row.try_get("tenant")?,
            model: row.try_get("model")?,
            score: row.try_get("score")?,
            comment: row.try_get("comment")?,
            ts_ms: row.try_get("ts_ms")?,
        })
    };
    read().map_err(StoreError::db(backend))
}

/// Refuses what the table cannot hold faithfully: a score outside [-1, 1] (NaN included) would
/// skew every mean it joins.
pub(crate) fn check(fb: &FeedbackRecord) -> Result<FeedbackRecord, StoreError> {
    if !(-1.0..=1.0).contains(&fb.score) {
        return Err(StoreError::Encode(format!(
            "feedback on {}: score {} is outside [-1, 1]",
            fb.request_id, fb.score
        )));
    }
    let clean = crate::cache::clean;
    Ok(FeedbackRecord {
        request_id: clean(&fb.request_id),
        tenant: clean(&fb.tenant),
        model: clean(&fb.model),
        score: fb.score,
        comment: fb.comment.as_deref().map(clean),
        ts_ms: fb.ts_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ranks_are_nearest_rank_percentiles() {
        assert_eq!(rank(1, 50), 1);
        assert_eq!(rank(1, 95), 1);
        assert_eq!(rank(2, 50), 1);
        assert_eq!(rank(10, 50), 5);
        assert_eq!(rank(10, 95), 10);
        assert_eq!(rank(20, 95), 19);
        assert_eq!(rank(100, 95), 95);
    }

    #[test]
    fn only_a_complete_experiment_object_tags_a_row() {
        let meta = |v: serde_json::Value| v.as_object().cloned().unwrap();
        assert_eq!(
            experiment_tag(&meta(json!({"experiment": {"name": "e", "arm": "a"}}))),
            (Some("e".into()), Some("a".into()))
        );
        for v in [
            json!({}),
            json!({"experiment": "e"}),
            json!({"experiment": {"name": "e"}}),
            json!({"experiment": {"name": "e", "arm": 1}}),
        ] {
            assert_eq!(experiment_tag(&meta(v)), (None, None));
        }
    }

    #[test]
    fn out_of_range_scores_are_refused_and_nul_is_cleaned() {
        let mut fb = FeedbackRecord {
            request_id: "r\0".into(),
            tenant: "t".into(),
            model: "m".into(),
            score: 1.0,
            comment: Some("a\0b".into()),
            ts_ms: 1,
        };
        let ok = check(&fb).unwrap();
        assert_eq!(ok.comment.as_deref(), Some("a\u{FFFD}b"));
        for bad in [1.5, -1.01, f64::NAN, f64::INFINITY] {
            fb.score = bad;
            assert!(check(&fb).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders() {
        assert!(report_sql(true).contains("r.experiment = $1 AND r.ts_ms >= $2"));
        assert!(percentile_sql(false).contains("experiment = ? AND ts_ms >= ?"));
    }
}
