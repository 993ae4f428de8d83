//! Stage 2 — may this request proceed: body size (refused from `Content-Length` before a byte of
//! the body is read), rate limits (requests and tokens per minute, requests in flight) for the
//! tenant and the key, and budgets for the tenant, the key and the request's use-case tags.
//!
//! Limit state lives in a `StateBackend`: in-process by default, Redis when replicas share it.
//! What a request was granted travels with it as a [`Ticket`] and is settled when it ends (real
//! token usage, concurrency slot back, spend added), whatever way it ends.

mod budget;
mod limits;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use switchyard_state::StateBackend;
use switchyard_store::Store;

pub use budget::{forecast_month_end, month_start_ms, BudgetRule, Budgets};
pub use limits::{RateHeaders, ScopeLimits};

use crate::config::Config;
use crate::stages::auth::Principal;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdmissionError {
    #[error("request body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("rate limit exceeded for {scope}: {limit} {unit} per minute")]
    RateLimited {
        scope: String,
        limit: u64,
        unit: &'static str,
        retry_after: Duration,
    },
    #[error("too many requests in flight for {scope}: at most {max} at once")]
    TooManyConcurrent { scope: String, max: u64 },
    #[error("budget exhausted: {scope} has spent ${spent:.6} of its ${budget:.6} {period} budget")]
    BudgetExhausted {
        scope: String,
        spent: f64,
        budget: f64,
        period: &'static str,
    },
    #[error("this key may not use the model `{0}`")]
    ModelNotAllowed(String),
}

/// Per-tenant governance from the config.
#[derive(Debug, Clone, Default)]
pub struct TenantPolicy {
    pub limits: ScopeLimits,
    pub budget: Option<BudgetRule>,
    pub retention_days: Option<u32>,
}

pub struct Admission {
    max_body_bytes: u64,
    state: Arc<dyn StateBackend>,
    tenants: HashMap<String, TenantPolicy>,
    pub budgets: Budgets,
}

/// What admission granted a request, settled once when it finishes.
#[derive(Debug, Default)]
pub struct Ticket {
    /// Scopes whose tokens-per-minute were charged up front: (state key, limit, tokens charged).
    tpm_charged: Vec<(String, u64, u64)>,
    /// Concurrency slots held (state keys).
    concurrency: Vec<String>,
    /// Spend counters to charge with the request's cost: (state key, ttl).
    spend: Vec<(String, Duration)>,
    pub rate_headers: RateHeaders,
    pub budget_warning: Option<String>,
}

impl Ticket {
    /// Nothing to give back or charge: settling can be skipped.
    pub fn is_empty(&self) -> bool {
        self.tpm_charged.is_empty() && self.concurrency.is_empty() && self.spend.is_empty()
    }
}

impl Admission {
    pub fn new(config: &Config, state: Arc<dyn StateBackend>, store: Arc<dyn Store>) -> Self {
        let tenants = config
            .tenants
            .iter()
            .map(|t| {
                let policy = TenantPolicy {
                    limits: ScopeLimits {
                        rpm: t.rpm,
                        tpm: t.tpm,
                        max_concurrent: t.max_concurrent,
                    },
                    budget: t.budget_usd.map(|usd| BudgetRule {
                        usd,
                        period: t.budget_period,
                        mode: t.budget_mode,
                    }),
                    retention_days: t.retention_days,
                };
                (t.name.clone(), policy)
            })
            .collect();
        Self {
            max_body_bytes: config.server.max_body_bytes,
            budgets: Budgets::new(config, state.clone(), store),
            state,
            tenants,
        }
    }

    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    pub fn tenant(&self, name: &str) -> Option<&TenantPolicy> {
        self.tenants.get(name)
    }

    pub fn tenants(&self) -> impl Iterator<Item = (&String, &TenantPolicy)> {
        self.tenants.iter()
    }

    pub fn state(&self) -> &Arc<dyn StateBackend> {
        &self.state
    }

    /// Refuses a declared body over the limit. Bodies without `Content-Length` (chunked) are
    /// capped while they are read instead.
    pub fn check_declared_size(&self, headers: &HeaderMap) -> Result<(), AdmissionError> {
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(size) if size > self.max_body_bytes => Err(AdmissionError::TooLarge {
                size,
                limit: self.max_body_bytes,
            }),
            _ => Ok(()),
        }
    }

    fn scopes(&self, p: &Principal) -> Vec<(String, ScopeLimits)> {
        let mut scopes = Vec::with_capacity(2);
        if let Some(t) = self.tenants.get(&*p.tenant) {
            if !t.limits.is_empty() {
                scopes.push((format!("tenant:{}", p.tenant), t.limits.clone()));
            }
        }
        if let Some(k) = &p.key {
            let l = ScopeLimits {
                rpm: k.limits.rpm,
                tpm: k.limits.tpm,
                max_concurrent: k.limits.max_concurrent,
            };
            if !l.is_empty() {
                scopes.push((format!("key:{}", p.key_id), l));
            }
        }
        scopes
    }

    /// Header-time checks: requests per minute and requests in flight.
    pub async fn admit_request(
        &self,
        p: &Principal,
        ticket: &mut Ticket,
    ) -> Result<(), AdmissionError> {
        let scopes = self.scopes(p);
        limits::admit_requests(&*self.state, &scopes, ticket).await
    }

    /// Body-time checks: tokens per minute (the prompt estimate, charged now and settled later),
    /// the model scope of the key, and every budget that applies.
    pub async fn admit_body(
        &self,
        p: &Principal,
        ticket: &mut Ticket,
        model: &str,
        prompt_tokens: u64,
        tags: &[String],
    ) -> Result<(), AdmissionError> {
        if let Some(k) = &p.key {
            if !k.allows_model(model) {
                return Err(AdmissionError::ModelNotAllowed(model.to_owned()));
            }
        }
        let scopes = self.scopes(p);
        limits::admit_tokens(&*self.state, &scopes, prompt_tokens, ticket).await?;
        let tenant_budget = self.tenants.get(&*p.tenant).and_then(|t| t.budget);
        self.budgets.admit(p, tenant_budget, tags, ticket).await
    }

    /// Settles a finished request: real token usage against the up-front charge, concurrency
    /// slots back, spend added. Runs off the request path.
    pub async fn settle(&self, ticket: Ticket, total_tokens: u64, cost_usd: f64) {
        limits::settle(&*self.state, &ticket, total_tokens).await;
        self.budgets.charge(&ticket, cost_usd).await;
    }
}
