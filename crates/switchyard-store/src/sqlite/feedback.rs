//! SQLite: feedback and experiment reports.

use super::{SqliteStore, BACKEND};
use crate::feedback::{
    check, decode_feedback, decode_outcome, decode_report, percentile_sql, report_sql,
    ExperimentQuery, FEEDBACK_COLUMNS, OUTCOMES_SQL,
};
use crate::{ArmStats, FeedbackRecord, ModelFeedback, StoreError};

impl SqliteStore {
    pub(super) async fn feedback_put(
        &self,
        fb: &FeedbackRecord,
    ) -> Result<Option<FeedbackRecord>, StoreError> {
        let db = StoreError::db;
        let fb = check(fb)?;
        // IMMEDIATE: the verdict read here is the one this write replaces, even when the same
        // request gets two verdicts at once.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db(BACKEND))?;
        let previous = sqlx::query(&format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE request_id = ?"
        ))
        .bind(&fb.request_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(BACKEND))?
        .map(|r| decode_feedback(BACKEND, &r))
        .transpose()?;
        sqlx::query(&format!(
            "INSERT INTO feedback ({FEEDBACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (request_id) DO UPDATE SET tenant = excluded.tenant,
                 model = excluded.model, score = excluded.score, comment = excluded.comment,
                 ts_ms = excluded.ts_ms"
        ))
        .bind(&fb.request_id)
        .bind(&fb.tenant)
        .bind(&fb.model)
        .bind(fb.score)
        .bind(&fb.comment)
        .bind(fb.ts_ms)
        .execute(&mut *tx)
        .await
        .map_err(db(BACKEND))?;
        tx.commit().await.map_err(db(BACKEND))?;
        Ok(previous)
    }

    pub(super) async fn feedback_get(
        &self,
        request_id: &str,
    ) -> Result<Option<FeedbackRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE request_id = ?"
        ))
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?
        .map(|r| decode_feedback(BACKEND, &r))
        .transpose()
    }

    pub(super) async fn outcomes_by_model(&self) -> Result<Vec<ModelFeedback>, StoreError> {
        let rows = sqlx::query(OUTCOMES_SQL)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db(BACKEND))?;
        rows.iter().map(|r| decode_outcome(BACKEND, r)).collect()
    }

    pub(super) async fn experiment_stats(
        &self,
        q: &ExperimentQuery,
    ) -> Result<Vec<ArmStats>, StoreError> {
        let (from, to) = (q.from_ms.unwrap_or(i64::MIN), q.to_ms.unwrap_or(i64::MAX));
        let totals = sqlx::query(&report_sql(false))
            .bind(&q.name)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db(BACKEND))?;
        let ranked = sqlx::query(&percentile_sql(false))
            .bind(&q.name)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db(BACKEND))?;
        decode_report(BACKEND, &totals, &ranked)
    }
}
