//! Spend reporting over live request rows plus the daily rollups that
//! retention leaves behind, so totals survive `Store::purge_requests`.
//!
//! The query shape is shared; each backend supplies a [`Dialect`] with the
//! few fragments that differ (placeholders, dates, JSON array expansion).

use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::StoreError;

/// What a spend report groups by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    #[default]
    Tenant,
    Key,
    /// `model_used`, or `model_requested` when no model answered.
    Model,
    /// One group per tag; a request with several tags counts fully in each
    /// (once, even if a tag repeats), and untagged requests appear in none.
    Tag,
    /// UTC date, `"YYYY-MM-DD"`.
    Day,
    /// End user (`""` for requests without one). Live rows only: rollups
    /// deliberately keep no user, so purged history is not attributed.
    User,
}

/// `from_ms` is inclusive and `to_ms` exclusive. Rolled-up (purged) history
/// counts as if every request of a day happened at that day's UTC midnight.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpendQuery {
    #[serde(default)]
    pub group_by: GroupBy,
    #[serde(default)]
    pub from_ms: Option<i64>,
    #[serde(default)]
    pub to_ms: Option<i64>,
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpendRow {
    pub group: String,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

/// Filters for `Store::sum_cost`; every `Some` must match. `from_ms` is
/// inclusive, with the same day-start rule for rollups as [`SpendQuery`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostFilter {
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    pub from_ms: i64,
}

/// The SQL fragments that differ between backends.
pub(crate) struct Dialect {
    /// `$1, $2, …` (PostgreSQL) rather than `?` (SQLite).
    pub numbered: bool,
    /// UTC `YYYY-MM-DD` of a millisecond expression that is always a UTC
    /// midnight within years 1..=9999.
    pub utc_date: fn(&str) -> String,
    /// Appended after `FROM (…) s` (and may add the query's only `WHERE`):
    /// exposes each distinct element of the JSON array `s.tags` as the text
    /// column `t.value`.
    pub each_tag: &'static str,
    /// Condition that the JSON array in column `tags` holds the text bound at
    /// placeholder `ph`.
    pub has_tag: fn(ph: &str) -> String,
}

pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

/// SQL text and its arguments, in placeholder order.
#[derive(Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    fn placeholder(&mut self, d: &Dialect, arg: Arg) -> String {
        self.args.push(arg);
        if d.numbered {
            format!("${}", self.args.len())
        } else {
            "?".to_string()
        }
    }

    fn bind(&mut self, d: &Dialect, arg: Arg) -> &mut Self {
        let ph = self.placeholder(d, arg);
        self.push(&ph)
    }
}

const DAY_MS: i64 = 86_400_000;
/// 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z: outside this range a date
/// has no `YYYY-MM-DD` form and the day is reported as `""`.
const MIN_DATE_MS: i64 = -62_135_596_800_000;
const END_DATE_MS: i64 = 253_402_300_800_000;

/// UTC midnight starting the day that holds `col` (floor, also for negatives).
pub(crate) fn day_start(col: &str) -> String {
    format!("({col} - ((({col} % {DAY_MS}) + {DAY_MS}) % {DAY_MS}))")
}

fn day_label(d: &Dialect, col: &str) -> String {
    format!(
        "CASE WHEN {col} >= {MIN_DATE_MS} AND {col} < {END_DATE_MS} THEN {} ELSE '' END",
        (d.utc_date)(&day_start(col))
    )
}

/// Merges freshly aggregated rows into existing rollups (same day, tenant,
/// key, model and tag set).
pub(crate) const ROLLUP_MERGE: &str = "ON CONFLICT (day_ms, tenant, key_id, model, tags) \
     DO UPDATE SET requests = request_rollups.requests + excluded.requests, \
     prompt_tokens = request_rollups.prompt_tokens + excluded.prompt_tokens, \
     completion_tokens = request_rollups.completion_tokens + excluded.completion_tokens, \
     cost_usd = request_rollups.cost_usd + excluded.cost_usd";

pub(crate) const ROLLUP_COLUMNS: &str =
    "day_ms, tenant, key_id, model, tags, requests, prompt_tokens, completion_tokens, cost_usd";

/// Aggregates request rows from `source` (a table or CTE with the request
/// columns) into rollup rows; the caller appends `WHERE …` and then
/// [`ROLLUP_GROUP`].
pub(crate) fn rollup_select(source: &str) -> String {
    format!(
        "SELECT {} AS d, tenant, key_id, COALESCE(model_used, model_requested) AS m, tags, \
         COUNT(*), CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT), \
         CAST(SUM(cost_usd) AS DOUBLE PRECISION) FROM {source}",
        day_start("ts_ms")
    )
}

pub(crate) const ROLLUP_GROUP: &str = " GROUP BY 1, 2, 3, 4, 5 ";

struct Filters<'a> {
    tenant: Option<&'a str>,
    key_id: Option<&'a str>,
    tag: Option<&'a str>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

/// Appends ` AND …` conditions for one branch of the union; `ts` is the
/// branch's time column.
fn push_filters(sql: &mut Sql, d: &Dialect, ts: &str, f: &Filters<'_>) {
    if let Some(from) = f.from_ms {
        sql.push(&format!(" AND {ts} >= ")).bind(d, Arg::Int(from));
    }
    if let Some(to) = f.to_ms {
        sql.push(&format!(" AND {ts} < ")).bind(d, Arg::Int(to));
    }
    if let Some(t) = f.tenant {
        sql.push(" AND tenant = ").bind(d, Arg::Text(t.to_string()));
    }
    if let Some(k) = f.key_id {
        sql.push(" AND key_id = ").bind(d, Arg::Text(k.to_string()));
    }
    if let Some(tag) = f.tag {
        let ph = sql.placeholder(d, Arg::Text(tag.to_string()));
        sql.push(&format!(" AND {}", (d.has_tag)(&ph)));
    }
}

/// `requests` rows and `request_rollups` rows under one set of columns:
/// ts, tenant, key_id, model, tags, user_id, requests, prompt_tokens,
/// completion_tokens, cost_usd.
fn push_source(sql: &mut Sql, d: &Dialect, f: &Filters<'_>, with_rollups: bool) {
    sql.push(
        "(SELECT ts_ms AS ts, tenant, key_id, COALESCE(model_used, model_requested) AS model, \
         tags, user_id, 1 AS requests, prompt_tokens, completion_tokens, cost_usd \
         FROM requests WHERE 1 = 1",
    );
    push_filters(sql, d, "ts_ms", f);
    if with_rollups {
        sql.push(
            " UNION ALL SELECT day_ms, tenant, key_id, model, tags, NULL, requests, \
             prompt_tokens, completion_tokens, cost_usd FROM request_rollups WHERE 1 = 1",
        );
        push_filters(sql, d, "day_ms", f);
    }
    sql.push(") s");
}

pub(crate) fn spend_sql(q: &SpendQuery, d: &Dialect) -> Sql {
    let group = match q.group_by {
        GroupBy::Tenant => "s.tenant".to_string(),
        GroupBy::Key => "s.key_id".to_string(),
        GroupBy::Model => "s.model".to_string(),
        GroupBy::Tag => "t.value".to_string(),
        GroupBy::Day => day_label(d, "s.ts"),
        GroupBy::User => "COALESCE(s.user_id, '')".to_string(),
    };
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT {group} AS grp, CAST(SUM(s.requests) AS BIGINT) AS n_requests, \
         CAST(SUM(s.prompt_tokens) AS BIGINT) AS n_prompt, \
         CAST(SUM(s.completion_tokens) AS BIGINT) AS n_completion, \
         CAST(SUM(s.cost_usd) AS DOUBLE PRECISION) AS total_cost FROM "
    ));
    let filters = Filters {
        tenant: q.tenant.as_deref(),
        key_id: None,
        tag: None,
        from_ms: q.from_ms,
        to_ms: q.to_ms,
    };
    push_source(&mut sql, d, &filters, q.group_by != GroupBy::User);
    if q.group_by == GroupBy::Tag {
        sql.push(d.each_tag);
    }
    sql.push(" GROUP BY 1 ORDER BY total_cost DESC, grp");
    sql
}

pub(crate) fn cost_sql(f: &CostFilter, d: &Dialect) -> Sql {
    let mut sql = Sql::default();
    sql.push("SELECT CAST(COALESCE(SUM(s.cost_usd), 0) AS DOUBLE PRECISION) AS total FROM ");
    let filters = Filters {
        tenant: f.tenant.as_deref(),
        key_id: f.key_id.as_deref(),
        tag: f.tag.as_deref(),
        from_ms: Some(f.from_ms),
        to_ms: None,
    };
    push_source(&mut sql, d, &filters, true);
    sql
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn decode_spend<R>(backend: &'static str, row: &R) -> Result<SpendRow, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
{
    let read = || -> Result<SpendRow, sqlx::Error> {
        let group: Option<String> = row.try_get("grp")?;
        Ok(SpendRow {
            group: group.unwrap_or_default(),
            requests: count(row.try_get("n_requests")?),
            prompt_tokens: count(row.try_get("n_prompt")?),
            completion_tokens: count(row.try_get("n_completion")?),
            cost_usd: row.try_get("total_cost")?,
        })
    };
    read().map_err(StoreError::db(backend))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMBERED: Dialect = Dialect {
        numbered: true,
        utc_date: |c| format!("date({c})"),
        each_tag: " , each(s.tags) t",
        has_tag: |ph| format!("has(tags, {ph})"),
    };

    #[test]
    fn filters_apply_to_both_branches_in_bind_order() {
        let sql = cost_sql(
            &CostFilter {
                tenant: Some("acme".into()),
                key_id: None,
                tag: Some("prod".into()),
                from_ms: 5,
            },
            &NUMBERED,
        );
        assert_eq!(sql.args.len(), 6);
        assert!(sql
            .text
            .contains("ts_ms >= $1 AND tenant = $2 AND has(tags, $3)"));
        assert!(sql
            .text
            .contains("day_ms >= $4 AND tenant = $5 AND has(tags, $6)"));
    }

    #[test]
    fn user_groups_skip_rollups_and_tags_expand() {
        let q = SpendQuery {
            group_by: GroupBy::User,
            ..Default::default()
        };
        assert!(!spend_sql(&q, &NUMBERED).text.contains("request_rollups"));
        let q = SpendQuery {
            group_by: GroupBy::Tag,
            ..Default::default()
        };
        let text = spend_sql(&q, &NUMBERED).text;
        assert!(text.contains("request_rollups") && text.contains("each(s.tags) t"));
    }

    #[test]
    fn group_by_names_are_snake_case() {
        let g: GroupBy = serde_json::from_str("\"user\"").unwrap();
        assert_eq!(g, GroupBy::User);
        assert_eq!(serde_json::to_string(&GroupBy::Day).unwrap(), "\"day\"");
    }
}
