//! `GET /admin/spend?group_by=tenant|key|model|tag|day|user&from&to[&tenant]`: spend from the
//! request log (and the aggregates retention keeps), with a month-end forecast.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, TimeZone, Utc};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use switchyard_store::{CostFilter, GroupBy, SpendQuery};

use super::{authorize, store_error, ApiError, AppState};
use crate::stages::admission::{forecast_month_end, month_start_ms};
use crate::stages::auth::Role;

#[derive(Deserialize)]
pub struct SpendParams {
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
    tenant: Option<String>,
}

/// A time bound: `YYYY-MM-DD` (UTC midnight), RFC 3339, or unix milliseconds.
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| Utc.from_utc_datetime(&t).timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

pub async fn spend(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<SpendParams>,
) -> Response {
    let actor = match authorize(&app, &headers, Role::Viewer) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let group_by = match q.group_by.as_deref().unwrap_or("tenant") {
        "tenant" => GroupBy::Tenant,
        "key" => GroupBy::Key,
        "model" => GroupBy::Model,
        "tag" => GroupBy::Tag,
        "day" => GroupBy::Day,
        "user" => GroupBy::User,
        other => {
            return ApiError::invalid_request(
                "invalid_request",
                format!(
                "group_by: unknown grouping {other:?}; use tenant, key, model, tag, day or user"
            ),
            )
            .with_param("group_by")
            .into_response()
        }
    };
    let mut bounds = [None, None];
    for (slot, (name, raw)) in bounds.iter_mut().zip([("from", &q.from), ("to", &q.to)]) {
        if let Some(raw) = raw {
            match parse_time(raw) {
                Some(ms) => *slot = Some(ms),
                None => {
                    return ApiError::invalid_request(
                        "invalid_request",
                        format!("{name}: expected YYYY-MM-DD, RFC 3339 or unix milliseconds"),
                    )
                    .into_response()
                }
            }
        }
    }
    let tenant = if actor.is_admin() {
        q.tenant
    } else {
        Some(actor.tenant.to_string())
    };
    let query = SpendQuery {
        group_by,
        from_ms: bounds[0],
        to_ms: bounds[1],
        tenant: tenant.clone(),
    };
    app.log.flush().await;
    let rows = match app.store.spend_report(&query).await {
        Ok(rows) => rows,
        Err(e) => return store_error(e).into_response(),
    };
    let now = Utc::now();
    let month_start = month_start_ms(now);
    let mtd = match app
        .store
        .sum_cost(&CostFilter {
            tenant: tenant.clone(),
            from_ms: month_start,
            ..CostFilter::default()
        })
        .await
    {
        Ok(v) => v,
        Err(e) => return store_error(e).into_response(),
    };
    let (daily, month_end) = forecast_month_end(mtd, now);
    Json(json!({
        "object": "list",
        "group_by": q.group_by.as_deref().unwrap_or("tenant"),
        "tenant": tenant,
        "from": bounds[0],
        "to": bounds[1],
        "data": rows,
        "forecast": {
            "month_to_date_usd": mtd,
            "daily_run_rate_usd": daily,
            "projected_month_end_usd": month_end,
        },
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn time_bounds() {
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
