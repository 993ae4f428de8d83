//! PostgreSQL: feedback and experiment reports.

use super::{PostgresStore, BACKEND};
use crate::feedback::{
    check, decode_feedback, decode_outcome, decode_report, percentile_sql, report_sql,
    ExperimentQuery, FEEDBACK_COLUMNS, OUTCOMES_SQL,
};
use crate::{ArmStats, FeedbackRecord, ModelFeedback, StoreError};

impl PostgresStore {
    pub(super) async fn feedback_put(
        &self,
        fb: &FeedbackRecord,
    ) -> Result<Option<FeedbackRecord>, StoreError> {
        let db = StoreError::db;
        let fb = check(fb)?;
        let mut tx = self.pool.begin().await.map_err(db(BACKEND))?;
        // Insert first: a concurrent first verdict on the same request waits on the key here,
        // so exactly one of two racing writers sees no previous verdict.
        let inserted = sqlx::query(&format!(
            "INSERT INTO feedback ({FEEDBACK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (request_id) DO NOTHING"
        ))
        .bind(&fb.request_id)
        .bind(&fb.tenant)
        .bind(&fb.model)
        .bind(fb.score)
        .bind(&fb.comment)
        .bind(fb.ts_ms)
        .execute(&mut *tx)
        .await
        .map_err(db(BACKEND))?
        .rows_affected();
        if inserted == 1 {
            tx.commit().await.map_err(db(BACKEND))?;
            return Ok(None);
        }
        let previous = sqlx::query(&format!(
            "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE request_id = $1 FOR UPDATE"
        ))
        .bind(&fb.request_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(BACKEND))?
        .map(|r| decode_feedback(BACKEND, &r))
        .transpose()?;
        sqlx::query(
            "UPDATE feedback SET tenant = $2, model = $3, score = $4, comment = $5, ts_ms = $6
             WHERE request_id = $1",
        )
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
            "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE request_id = $1"
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
        let totals = sqlx::query(&report_sql(true))
            .bind(&q.name)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db(BACKEND))?;
        let ranked = sqlx::query(&percentile_sql(true))
            .bind(&q.name)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db(BACKEND))?;
        decode_report(BACKEND, &totals, &ranked)
    }
}
