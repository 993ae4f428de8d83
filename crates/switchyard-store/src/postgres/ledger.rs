//! PostgreSQL: audit log, spend reports, retention and end-user deletion.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use super::{PostgresStore, BACKEND};
use crate::audit::{decode_audit, AuditRow, AUDIT_COLUMNS};
use crate::spend::{
    cost_sql, decode_spend, rollup_select, spend_sql, Arg, Dialect, Sql, ROLLUP_COLUMNS,
    ROLLUP_GROUP, ROLLUP_MERGE,
};
use crate::{AuditEvent, CostFilter, SpendQuery, SpendRow, StoreError};

/// `TIMESTAMP 'epoch' + interval` is plain UTC arithmetic, independent of
/// the session's time zone.
pub(super) const DIALECT: Dialect = Dialect {
    numbered: true,
    utc_date: |ms| {
        format!("to_char(TIMESTAMP 'epoch' + ({ms}) * INTERVAL '1 millisecond', 'YYYY-MM-DD')")
    },
    each_tag: " CROSS JOIN LATERAL (SELECT DISTINCT e.value \
               FROM jsonb_array_elements_text(s.tags::jsonb) AS e(value)) AS t",
    has_tag: |ph| format!("tags::jsonb @> jsonb_build_array(CAST({ph} AS TEXT))"),
};

fn bound(sql: &Sql) -> Query<'_, Postgres, PgArguments> {
    sql.args
        .iter()
        .fold(sqlx::query(&sql.text), |q, arg| match arg {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_str()),
        })
}

impl PostgresStore {
    pub(super) async fn audit_append(&self, ev: &AuditEvent) -> Result<(), StoreError> {
        let r = AuditRow::from_event(ev)?;
        sqlx::query(&format!(
            "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO NOTHING"
        ))
        .bind(&r.id)
        .bind(r.ts_ms)
        .bind(&r.actor)
        .bind(&r.actor_tenant)
        .bind(&r.action)
        .bind(&r.target)
        .bind(&r.outcome)
        .bind(&r.details)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(StoreError::db(BACKEND))
    }

    pub(super) async fn audit_list(
        &self,
        limit: u32,
        tenant: Option<&str>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = match tenant {
            None => {
                sqlx::query(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY ts_ms DESC, seq DESC LIMIT $1"
                ))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
            Some(t) => {
                sqlx::query(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log
                     WHERE actor_tenant = $1 OR (details::jsonb ->> 'tenant') = $1
                     ORDER BY ts_ms DESC, seq DESC LIMIT $2"
                ))
                .bind(t)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(StoreError::db(BACKEND))?;
        rows.iter().map(|r| decode_audit(BACKEND, r)).collect()
    }

    pub(super) async fn spend(&self, q: &SpendQuery) -> Result<Vec<SpendRow>, StoreError> {
        let sql = spend_sql(q, &DIALECT);
        let rows = bound(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db(BACKEND))?;
        rows.iter().map(|r| decode_spend(BACKEND, r)).collect()
    }

    pub(super) async fn cost(&self, f: &CostFilter) -> Result<f64, StoreError> {
        let sql = cost_sql(f, &DIALECT);
        let row = bound(&sql)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db(BACKEND))?;
        row.try_get("total").map_err(StoreError::db(BACKEND))
    }

    /// One statement: the rows the DELETE removed are exactly the rows rolled
    /// up, even while other sessions insert (a spool replay can bring old
    /// rows back at any moment).
    pub(super) async fn purge(&self, tenant: &str, before_ms: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "WITH gone AS (
                 DELETE FROM requests WHERE tenant = $1 AND ts_ms < $2
                 RETURNING ts_ms, tenant, key_id, model_used, model_requested, tags,
                           prompt_tokens, completion_tokens, cost_usd
             ), merged AS (
                 INSERT INTO request_rollups ({ROLLUP_COLUMNS}) {} WHERE TRUE
                 {ROLLUP_GROUP} {ROLLUP_MERGE}
                 RETURNING 1
             ), verdicts AS (
                 DELETE FROM feedback WHERE tenant = $1 AND ts_ms < $2
             )
             SELECT COUNT(*) FROM gone",
            rollup_select("gone")
        ))
        .bind(tenant)
        .bind(before_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The user's feedback goes too: its comments are theirs.
    pub(super) async fn delete_user(&self, user: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM requests WHERE user_id = $1 RETURNING request_id
             ), verdicts AS (
                 DELETE FROM feedback WHERE request_id IN (SELECT request_id FROM gone)
             )
             SELECT COUNT(*) FROM gone",
        )
        .bind(user)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::db(BACKEND))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
