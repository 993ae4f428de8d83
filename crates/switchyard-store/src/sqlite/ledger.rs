//! SQLite: audit log, spend reports, retention and end-user deletion.

use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Row, Sqlite};

use super::{SqliteStore, BACKEND};
use crate::audit::{decode_audit, AuditRow, AUDIT_COLUMNS};
use crate::spend::{
    cost_sql, decode_spend, rollup_select, spend_sql, Arg, Dialect, Sql, ROLLUP_COLUMNS,
    ROLLUP_GROUP, ROLLUP_MERGE,
};
use crate::{AuditEvent, CostFilter, SpendQuery, SpendRow, StoreError};

pub(super) const DIALECT: Dialect = Dialect {
    numbered: false,
    utc_date: |ms| format!("strftime('%Y-%m-%d', ({ms}) / 1000, 'unixepoch')"),
    // The NOT EXISTS keeps only the first occurrence of a repeated tag.
    each_tag: ", json_each(s.tags) AS t WHERE NOT EXISTS (SELECT 1 FROM json_each(s.tags) AS u \
               WHERE u.value = t.value AND u.key < t.key)",
    has_tag: |ph| format!("EXISTS (SELECT 1 FROM json_each(tags) WHERE json_each.value = {ph})"),
};

fn bound(sql: &Sql) -> Query<'_, Sqlite, SqliteArguments<'_>> {
    sql.args
        .iter()
        .fold(sqlx::query(&sql.text), |q, arg| match arg {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_str()),
        })
}

impl SqliteStore {
    pub(super) async fn audit_append(&self, ev: &AuditEvent) -> Result<(), StoreError> {
        let r = AuditRow::from_event(ev)?;
        sqlx::query(&format!(
            "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
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
        let order = "ORDER BY ts_ms DESC, seq DESC LIMIT ?";
        let rows = match tenant {
            None => {
                sqlx::query(&format!("SELECT {AUDIT_COLUMNS} FROM audit_log {order}"))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
            }
            Some(t) => {
                sqlx::query(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log
                     WHERE actor_tenant = ? OR json_extract(details, '$.tenant') = ? {order}"
                ))
                .bind(t)
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

    pub(super) async fn purge(&self, tenant: &str, before_ms: i64) -> Result<u64, StoreError> {
        let db = StoreError::db;
        // IMMEDIATE takes the write lock up front, so no row can slip in
        // between the rollup and the delete.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db(BACKEND))?;
        sqlx::query(&format!(
            "INSERT INTO request_rollups ({ROLLUP_COLUMNS}) {}
             WHERE tenant = ? AND ts_ms < ? {ROLLUP_GROUP} {ROLLUP_MERGE}",
            rollup_select("requests")
        ))
        .bind(tenant)
        .bind(before_ms)
        .execute(&mut *tx)
        .await
        .map_err(db(BACKEND))?;
        let gone = sqlx::query("DELETE FROM requests WHERE tenant = ? AND ts_ms < ?")
            .bind(tenant)
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .map_err(db(BACKEND))?
            .rows_affected();
        sqlx::query("DELETE FROM feedback WHERE tenant = ? AND ts_ms < ?")
            .bind(tenant)
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .map_err(db(BACKEND))?;
        tx.commit().await.map_err(db(BACKEND))?;
        Ok(gone)
    }

    /// The user's feedback goes too: its comments are theirs.
    pub(super) async fn delete_user(&self, user: &str) -> Result<u64, StoreError> {
        let db = StoreError::db;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db(BACKEND))?;
        sqlx::query(
            "DELETE FROM feedback WHERE request_id IN
                 (SELECT request_id FROM requests WHERE user_id = ?)",
        )
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(db(BACKEND))?;
        let gone = sqlx::query("DELETE FROM requests WHERE user_id = ?")
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(db(BACKEND))?
            .rows_affected();
        tx.commit().await.map_err(db(BACKEND))?;
        Ok(gone)
    }
}
