//! Tenancy and governance settings: tenants, their limits and budgets, tag budgets, and where
//! shared limit state lives.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::Config;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    #[serde(default, skip_serializing)]
    pub keys: Vec<String>,
    /// Requests per minute for the whole tenant; unlimited when absent.
    pub rpm: Option<u64>,
    /// Tokens per minute (prompt tokens counted up front, settled with the real usage).
    pub tpm: Option<u64>,
    /// Requests in flight at once.
    pub max_concurrent: Option<u64>,
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub budget_period: BudgetPeriod,
    #[serde(default)]
    pub budget_mode: BudgetMode,
    /// Request-log rows older than this are rolled up into daily aggregates and deleted.
    pub retention_days: Option<u32>,
    /// Opt-in: this tenant's prompts and answers are logged as they were, not redacted.
    #[serde(default)]
    pub log_raw_bodies: bool,
    /// Where this tenant's requests may be processed (`any`, `self-hosted-only`,
    /// `self-hosted-only-for-pii`).
    #[serde(default)]
    pub data_policy: super::DataPolicy,
    /// The models `auto` may pick for this tenant (and that it may request); all when unset.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Trusted tenant: its `x-switchyard-tier: 1|2|3` header overrides the classifier.
    #[serde(default)]
    pub route_overrides: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    Daily,
    #[default]
    Monthly,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetMode {
    /// Refuse requests once the budget is spent.
    #[default]
    Hard,
    /// Alert (log, metric, response header) but keep serving.
    Soft,
}

/// A budget for one use-case tag.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    pub tag: String,
    pub budget_usd: f64,
    #[serde(default)]
    pub period: BudgetPeriod,
    #[serde(default)]
    pub mode: BudgetMode,
}

/// Where rate limits, concurrency counts and spend counters live: in-process by default, Redis
/// when several replicas must enforce one limit together.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub url: Option<String>,
    pub prefix: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            url: None,
            prefix: "switchyard:".to_owned(),
        }
    }
}

impl Config {
    pub(super) fn validate_governance(&self, errs: &mut Vec<String>) {
        if let Some(url) = &self.state.url {
            if !url.starts_with("redis://") {
                errs.push("state.url: must be a redis:// URL (TLS is not built in; omit it for in-process state)".to_owned());
            }
        }
        let mut names = HashSet::new();
        let mut keys = HashSet::new();
        if let Some(k) = &self.admin.key {
            keys.insert(k.as_str());
        }
        for (i, t) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{i}]");
            if t.name.trim().is_empty() {
                errs.push(format!("{at}.name: must not be empty"));
            } else if !names.insert(t.name.as_str()) {
                errs.push(format!("{at}.name: duplicate tenant {:?}", t.name));
            } else if t.name.starts_with('_') {
                errs.push(format!("{at}.name: names starting with '_' are reserved"));
            }
            for (field, v) in [
                ("rpm", t.rpm),
                ("tpm", t.tpm),
                ("max_concurrent", t.max_concurrent),
            ] {
                if v == Some(0) {
                    errs.push(format!(
                        "{at}.{field}: must be greater than 0 (omit it for no limit)"
                    ));
                }
            }
            if t.retention_days == Some(0) {
                errs.push(format!(
                    "{at}.retention_days: must be at least 1 (omit it to keep everything)"
                ));
            }
            if let Some(b) = t.budget_usd {
                if !b.is_finite() || b < 0.0 {
                    errs.push(format!("{at}.budget_usd: must be a non-negative number"));
                }
            }
            for (j, k) in t.keys.iter().enumerate() {
                if k.len() < 8 {
                    errs.push(format!(
                        "{at}.keys[{j}]: keys must be at least 8 characters"
                    ));
                } else if !keys.insert(k.as_str()) {
                    errs.push(format!(
                        "{at}.keys[{j}]: key is already used by the admin or another tenant"
                    ));
                }
            }
        }
        let mut tags = HashSet::new();
        for (i, b) in self.budgets.iter().enumerate() {
            let at = format!("budgets[{i}]");
            if b.tag.trim().is_empty() {
                errs.push(format!("{at}.tag: must not be empty"));
            } else if !tags.insert(b.tag.as_str()) {
                errs.push(format!("{at}.tag: duplicate budget for tag {:?}", b.tag));
            }
            if !b.budget_usd.is_finite() || b.budget_usd < 0.0 {
                errs.push(format!("{at}.budget_usd: must be a non-negative number"));
            }
        }
    }
}
