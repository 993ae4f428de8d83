//! Budgets: spend per tenant, key and use-case tag over a day or a month, from real usage and the
//! price table. Counters live in the shared state (so replicas see one total) and are seeded from
//! the durable store the first time a replica touches them, so restarts forget nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Datelike, TimeZone, Utc};
use switchyard_state::StateBackend;
use switchyard_store::{CostFilter, Store};

use super::{AdmissionError, Ticket};
use crate::config::{BudgetMode, BudgetPeriod, Config};
use crate::stages::auth::Principal;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetRule {
    pub usd: f64,
    pub period: BudgetPeriod,
    pub mode: BudgetMode,
}

pub struct Budgets {
    state: Arc<dyn StateBackend>,
    store: Arc<dyn Store>,
    tags: HashMap<String, BudgetRule>,
    /// Spend counters this replica has seeded from the store already.
    seeded: Mutex<HashSet<String>>,
}

/// A period's counter name suffix, its start (unix ms) and how long its counter must live.
fn period_window(period: BudgetPeriod, now: chrono::DateTime<Utc>) -> (String, i64, Duration) {
    match period {
        BudgetPeriod::Daily => {
            let start = Utc
                .with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
                .single()
                .unwrap_or(now);
            (
                format!("d{}", now.format("%Y-%m-%d")),
                start.timestamp_millis(),
                Duration::from_secs(2 * 86_400),
            )
        }
        BudgetPeriod::Monthly => {
            let start = Utc
                .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
                .single()
                .unwrap_or(now);
            (
                format!("m{}", now.format("%Y-%m")),
                start.timestamp_millis(),
                Duration::from_secs(35 * 86_400),
            )
        }
    }
}

pub fn period_name(p: BudgetPeriod) -> &'static str {
    match p {
        BudgetPeriod::Daily => "daily",
        BudgetPeriod::Monthly => "monthly",
    }
}

impl Budgets {
    pub fn new(config: &Config, state: Arc<dyn StateBackend>, store: Arc<dyn Store>) -> Self {
        let tags = config
            .budgets
            .iter()
            .map(|b| {
                (
                    b.tag.clone(),
                    BudgetRule {
                        usd: b.budget_usd,
                        period: b.period,
                        mode: b.mode,
                    },
                )
            })
            .collect();
        Self {
            state,
            store,
            tags,
            seeded: Mutex::new(HashSet::new()),
        }
    }

    /// Checks every budget that applies to the request; records which counters to charge.
    pub async fn admit(
        &self,
        p: &Principal,
        tenant_budget: Option<BudgetRule>,
        tags: &[String],
        ticket: &mut Ticket,
    ) -> Result<(), AdmissionError> {
        let now = Utc::now();
        let mut rules: Vec<(String, String, BudgetRule, CostFilter)> = Vec::new();
        if let Some(rule) = tenant_budget {
            let filter = CostFilter {
                tenant: Some(p.tenant.to_string()),
                ..CostFilter::default()
            };
            rules.push((
                format!("tenant:{}", p.tenant),
                format!("tenant {}", p.tenant),
                rule,
                filter,
            ));
        }
        if let Some(usd) = p.key.as_ref().and_then(|k| k.limits.budget_usd) {
            let rule = BudgetRule {
                usd,
                period: BudgetPeriod::Monthly,
                mode: BudgetMode::Hard,
            };
            let filter = CostFilter {
                key_id: Some(p.key_id.to_string()),
                ..CostFilter::default()
            };
            rules.push((
                format!("key:{}", p.key_id),
                format!("key {}", p.key_id),
                rule,
                filter,
            ));
        }
        for tag in tags {
            if let Some(rule) = self.tags.get(tag) {
                let filter = CostFilter {
                    tag: Some(tag.clone()),
                    ..CostFilter::default()
                };
                rules.push((format!("tag:{tag}"), format!("tag {tag}"), *rule, filter));
            }
        }
        for (scope, label, rule, mut filter) in rules {
            let (suffix, start_ms, ttl) = period_window(rule.period, now);
            let key = format!("spend:{scope}:{suffix}");
            filter.from_ms = start_ms;
            self.seed(&key, &filter, ttl).await;
            let spent = match self.state.spend_get(&key).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(error = %e, "budget state unavailable; request admitted unchecked");
                    0.0
                }
            };
            if spent >= rule.usd {
                metrics::counter!("switchyard_budget_exceeded_total",
                    "scope" => scope.split(':').next().unwrap_or("").to_owned(),
                    "mode" => if rule.mode == BudgetMode::Hard { "hard" } else { "soft" })
                .increment(1);
                if rule.mode == BudgetMode::Hard {
                    return Err(AdmissionError::BudgetExhausted {
                        scope: label,
                        spent,
                        budget: rule.usd,
                        period: period_name(rule.period),
                    });
                }
                tracing::warn!(scope = %label, spent, budget = rule.usd, "soft budget exceeded");
                ticket.budget_warning = Some(format!(
                    "{label} has spent ${spent:.6} of its ${:.6} {} budget",
                    rule.usd,
                    period_name(rule.period)
                ));
            }
            ticket.spend.push((key, ttl));
        }
        Ok(())
    }

    async fn seed(&self, key: &str, filter: &CostFilter, ttl: Duration) {
        let fresh = {
            let mut seeded = self.seeded.lock().unwrap_or_else(|p| p.into_inner());
            seeded.insert(key.to_owned())
        };
        if !fresh {
            return;
        }
        match self.store.sum_cost(filter).await {
            Ok(total) => {
                if let Err(e) = self.state.spend_seed(key, total, ttl).await {
                    tracing::warn!(error = %e, "could not seed a spend counter");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read past spend from the store"),
        }
    }

    /// Adds a finished request's cost to every counter its admission named.
    pub async fn charge(&self, ticket: &Ticket, cost_usd: f64) {
        if cost_usd <= 0.0 || !cost_usd.is_finite() {
            return;
        }
        for (key, ttl) in &ticket.spend {
            if let Err(e) = self.state.spend_add(key, cost_usd, *ttl).await {
                tracing::warn!(error = %e, "could not record spend");
            }
        }
    }
}

pub fn month_start_ms(now: chrono::DateTime<Utc>) -> i64 {
    period_window(BudgetPeriod::Monthly, now).1
}

/// Month-to-date spend projected to the month's end at the current daily run rate.
pub fn forecast_month_end(month_to_date_usd: f64, now: chrono::DateTime<Utc>) -> (f64, f64) {
    let (_, start_ms, _) = period_window(BudgetPeriod::Monthly, now);
    let elapsed_days = ((now.timestamp_millis() - start_ms) as f64 / 86_400_000.0).max(1.0 / 24.0);
    let days_in_month = days_in_month(now.year(), now.month()) as f64;
    let daily = month_to_date_usd / elapsed_days;
    (daily, daily * days_in_month)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    Utc.with_ymd_and_hms(ny, nm, 1, 0, 0, 0)
        .single()
        .map(|d| (d - chrono::Duration::days(1)).day())
        .unwrap_or(30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_forecast() {
        let now = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap();
        let (name, start, _) = period_window(BudgetPeriod::Monthly, now);
        assert_eq!(name, "m2026-11");
        assert_eq!(
            start,
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
        assert_eq!(period_window(BudgetPeriod::Daily, now).0, "d2026-11-16");
        // 15 days elapsed, $15 spent: $1/day over a 30-day month.
        let (daily, month_end) = forecast_month_end(15.0, now);
        assert!((daily - 1.0).abs() < 1e-9 && (month_end - 30.0).abs() < 1e-9);
        assert_eq!(days_in_month(2028, 2), 29);
        assert_eq!(days_in_month(2026, 12), 31);
    }
}
