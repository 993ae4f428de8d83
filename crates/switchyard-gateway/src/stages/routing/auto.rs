//! `"model": "auto"`: the cheapest tier a request needs, under the tenant's rules.
//!
//! Order of the decision: tenant rules first (allowed models, data policy), then a trusted
//! tenant's `x-switchyard-tier` header, else the complexity classifier
//! (`switchyard_router::ComplexityRouter`); then the session floor (a conversation never drops
//! to a lower tier within `session_ttl_secs`). Among the allowed models the lowest tier at or
//! above the need wins, the cheapest within it. Everything here is built from the config alone
//! (no providers), so `switchyard replay` re-decides logged traffic with the same code.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use switchyard_api::ChatMessage;
use switchyard_guardrails::{Action, Kind, Scanner, ScannerConfig};
use switchyard_router::ComplexityRouter;

use crate::config::{Config, DataPolicy};
use crate::stages::experiment::FeedbackStats;

mod bandit;

pub use bandit::ArmDraw;
use bandit::Bandit;

/// A model `auto` may pick.
#[derive(Debug, Clone)]
pub struct TierModel {
    pub name: String,
    pub tier: u8,
    /// Input plus output price per million tokens: the tie-break within a tier.
    pub price: f64,
    pub self_hosted: bool,
}

#[derive(Debug, Clone, Default)]
struct TenantRules {
    policy: DataPolicy,
    allowed: Option<Vec<String>>,
    overrides: bool,
}

/// Why the route is what it is: sent as `x-switchyard-route` and stored in the request log.
#[derive(Debug, Clone, Serialize)]
pub struct RouteDecision {
    pub model: String,
    pub tier: u8,
    /// What the request needed before the session floor and availability.
    pub needed: u8,
    /// `classifier`, `header`, `session` (the floor raised it), `policy` (a data policy removed
    /// the cheaper models) or `cascade` (a low-confidence answer was asked again one tier up).
    pub reason: &'static str,
    pub score: f32,
    pub signals: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_policy: Option<&'static str>,
    /// Set when a cascade judged the first answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<super::cascade::Confidence>,
    /// The model whose low-confidence answer was replaced, when the cascade escalated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalated_from: Option<String>,
    /// The Thompson-sampling draws among the tier's models, when `[router] bandit` chose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bandit: Vec<ArmDraw>,
}

impl RouteDecision {
    /// `tier=1; model=small; reason=classifier; score=0.12; signals=short,question`
    pub fn header(&self) -> String {
        let mut h = format!(
            "tier={}; model={}; reason={}; score={:.3}",
            self.tier, self.model, self.reason, self.score
        );
        if !self.signals.is_empty() {
            h.push_str("; signals=");
            h.push_str(&self.signals.join(","));
        }
        if let Some(p) = self.data_policy {
            h.push_str("; data_policy=");
            h.push_str(p);
        }
        if let Some(c) = self.confidence {
            h.push_str(&format!("; confidence={:.2} ({})", c.value, c.source));
        }
        if let Some(from) = &self.escalated_from {
            h.push_str("; escalated_from=");
            h.push_str(from);
        }
        h
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoRouteError {
    #[error("no model is available for `{auto}` under this tenant's rules ({why})")]
    NoModel { auto: String, why: &'static str },
}

pub struct AutoRouter {
    name: String,
    classifier: Arc<ComplexityRouter>,
    /// Sorted by tier, then price, then config order.
    models: Vec<TierModel>,
    tenants: HashMap<String, TenantRules>,
    sessions: moka::sync::Cache<String, u8>,
    pii: Scanner,
    /// `[router] bandit = true`: adaptive choice within a tier.
    bandit: Option<Bandit>,
    /// User verdicts per model (`POST /v1/feedback`), which the bandit counts too.
    feedback: Option<Arc<FeedbackStats>>,
}

/// What one request brings to the decision.
pub struct RouteRequest<'a> {
    pub tenant: &'a str,
    /// `user` or `x-switchyard-session`.
    pub session: Option<&'a str>,
    pub messages: &'a [ChatMessage],
    /// `x-switchyard-tier`, honoured only for tenants with `route_overrides = true`.
    pub tier_header: Option<u8>,
    /// The API key's own model scope, if it has one: `auto` stays within it.
    pub key_models: Option<&'a [String]>,
}

impl AutoRouter {
    pub fn new(config: &Config, classifier: Arc<ComplexityRouter>) -> Result<Self, String> {
        let mut models: Vec<TierModel> = config
            .models
            .iter()
            .filter_map(|m| {
                Some(TierModel {
                    name: m.name.clone(),
                    tier: m.tier?,
                    price: m.input_usd_per_mtok + m.output_usd_per_mtok,
                    self_hosted: config.model_is_self_hosted(&m.name),
                })
            })
            .collect();
        // Stable: config order breaks remaining ties.
        models.sort_by(|a, b| a.tier.cmp(&b.tier).then(a.price.total_cmp(&b.price)));
        let tenants = config
            .tenants
            .iter()
            .map(|t| {
                let rules = TenantRules {
                    policy: t.data_policy,
                    allowed: t.allowed_models.clone(),
                    overrides: t.route_overrides,
                };
                (t.name.clone(), rules)
            })
            .collect();
        let mut pii = ScannerConfig::all(Action::Off);
        for kind in Kind::ALL {
            pii.kinds.insert(kind, Action::Detect);
        }
        Ok(Self {
            name: config.router.model.clone(),
            classifier,
            tenants,
            sessions: moka::sync::Cache::builder()
                .max_capacity(config.router.max_sessions)
                .time_to_idle(Duration::from_secs(config.router.session_ttl_secs))
                .build(),
            pii: Scanner::new(pii).map_err(|e| e.to_string())?,
            bandit: config
                .router
                .bandit
                .then(|| Bandit::new(models.iter().map(|m| m.name.as_str()))),
            models,
            feedback: None,
        })
    }

    /// Lets the bandit count user feedback (seeded from the store, then live).
    pub fn with_feedback(mut self, feedback: Arc<FeedbackStats>) -> Self {
        self.feedback = Some(feedback);
        self
    }

    pub fn is_auto(&self, model: &str) -> bool {
        model == self.name
    }

    /// An outcome for the within-tier bandit: a cascade's verdict or user feedback.
    pub fn record_outcome(&self, model: &str, success: bool) {
        if let Some(b) = &self.bandit {
            b.record(model, success);
        }
    }

    /// Whether any model carries a tier, i.e. whether `auto` can serve at all.
    pub fn has_tiers(&self) -> bool {
        !self.models.is_empty()
    }

    /// The tenant's rules for one request. The PII scan a data policy may need runs here, once,
    /// however many models are then checked against it.
    pub fn rules(&self, tenant: &str, messages: &[ChatMessage]) -> RuleCheck<'_> {
        let rules = self.tenants.get(tenant);
        let policy = rules.map_or(DataPolicy::Any, |r| r.policy);
        let self_hosted_only = match policy {
            DataPolicy::Any => false,
            DataPolicy::SelfHostedOnly => true,
            DataPolicy::SelfHostedOnlyForPii => self.has_pii(messages),
        };
        RuleCheck {
            allowed: rules.and_then(|r| r.allowed.as_deref()),
            policy,
            self_hosted_only,
        }
    }

    /// Whether a tenant rule keeps `model` away from this request (explicit model requests
    /// obey the data policy too). `None` when allowed.
    pub fn forbids(
        &self,
        tenant: &str,
        model: &str,
        self_hosted: bool,
        messages: &[ChatMessage],
    ) -> Option<&'static str> {
        self.rules(tenant, messages).forbids(model, self_hosted)
    }

    /// PII in any message, or a placeholder the input guardrail left where PII was.
    pub fn has_pii(&self, messages: &[ChatMessage]) -> bool {
        messages.iter().any(|m| {
            let text = m.text();
            !self.pii.findings(&text).is_empty() || has_placeholder(&text)
        })
    }

    /// The models this request may be routed to under `check`, cheapest tier first.
    fn candidates(&self, req: &RouteRequest<'_>, check: &RuleCheck<'_>) -> Vec<&TierModel> {
        self.models
            .iter()
            .filter(|m| {
                check.forbids(&m.name, m.self_hosted).is_none()
                    && req
                        .key_models
                        .is_none_or(|k| k.is_empty() || k.contains(&m.name))
            })
            .collect()
    }

    /// The cheapest allowed model above `tier`, for a cascade escalation; records the higher
    /// tier as the session's floor.
    pub fn escalation(
        &self,
        req: &RouteRequest<'_>,
        check: &RuleCheck<'_>,
        tier: u8,
    ) -> Option<(String, u8)> {
        let candidates = self.candidates(req, check);
        let next = candidates.into_iter().find(|m| m.tier > tier)?;
        if let Some(s) = req.session {
            let key = format!("{}\u{0}{s}", req.tenant);
            let floor = self.sessions.get(&key).unwrap_or(0);
            self.sessions.insert(key, next.tier.max(floor));
        }
        Some((next.name.clone(), next.tier))
    }

    pub fn decide(&self, req: &RouteRequest<'_>) -> Result<RouteDecision, AutoRouteError> {
        self.decide_with(req, &self.rules(req.tenant, req.messages))
    }

    /// [`AutoRouter::decide`] with the tenant's rules already applied to the request.
    pub fn decide_with(
        &self,
        req: &RouteRequest<'_>,
        check: &RuleCheck<'_>,
    ) -> Result<RouteDecision, AutoRouteError> {
        let candidates = self.candidates(req, check);
        let self_hosted_only = check.self_hosted_only;
        let overrides = self.tenants.get(req.tenant).is_some_and(|r| r.overrides);
        if candidates.is_empty() {
            return Err(AutoRouteError::NoModel {
                auto: self.name.clone(),
                why: if self_hosted_only {
                    "no self-hosted model with a tier"
                } else {
                    "no allowed model has a tier"
                },
            });
        }
        let (needed, mut reason, score, signals) = match req.tier_header.filter(|_| overrides) {
            Some(t) => (t.clamp(1, 3), "header", 1.0, Vec::new()),
            None => {
                let d = self.classifier.classify(req.messages);
                let signals = d.reasons.iter().take(3).map(|(name, _)| *name).collect();
                (d.tier, "classifier", d.score, signals)
            }
        };
        let session_key = req.session.map(|s| format!("{}\u{0}{s}", req.tenant));
        let floor = session_key.as_ref().and_then(|k| self.sessions.get(k));
        let want = match floor {
            Some(f) if f > needed => {
                reason = "session";
                f
            }
            _ => needed,
        };
        // The lowest tier at or above the need; if none is that strong, the strongest there is
        // (the top tier's priciest model, price standing in for strength).
        let pick = candidates
            .iter()
            .find(|m| m.tier >= want)
            .or_else(|| candidates.last())
            .copied()
            .ok_or(AutoRouteError::NoModel {
                auto: self.name.clone(),
                why: "no allowed model has a tier",
            })?;
        // Within the tier, the bandit may prefer a model that has been doing better.
        let mut draws = Vec::new();
        let pick = match &self.bandit {
            Some(bandit) => {
                let same_tier: Vec<&TierModel> = candidates
                    .iter()
                    .copied()
                    .filter(|m| m.tier == pick.tier)
                    .collect();
                if same_tier.len() > 1 {
                    let names: Vec<&str> = same_tier.iter().map(|m| m.name.as_str()).collect();
                    let (best, all) = bandit.choose(&names, |m| {
                        self.feedback.as_ref().map_or((0, 0), |f| {
                            let o = f.outcomes(m);
                            (o.successes, o.failures)
                        })
                    });
                    draws = all;
                    same_tier[best]
                } else {
                    pick
                }
            }
            None => pick,
        };
        let unrestricted_pick = self.models.iter().find(|m| m.tier >= want);
        if self_hosted_only && unrestricted_pick.is_some_and(|m| m.name != pick.name) {
            reason = "policy";
        }
        if let Some(k) = session_key {
            self.sessions.insert(k, pick.tier.max(floor.unwrap_or(0)));
        }
        Ok(RouteDecision {
            model: pick.name.clone(),
            tier: pick.tier,
            needed,
            reason,
            score,
            signals,
            data_policy: self_hosted_only.then(|| policy_name(check.policy)),
            confidence: None,
            escalated_from: None,
            bandit: draws,
        })
    }
}

/// A tenant's rules applied to one request (see [`AutoRouter::rules`]).
pub struct RuleCheck<'r> {
    allowed: Option<&'r [String]>,
    policy: DataPolicy,
    /// The data policy applies to this request: only self-hosted providers may serve it.
    self_hosted_only: bool,
}

impl RuleCheck<'_> {
    /// The rule that keeps `model` away from this request, if one does.
    pub fn forbids(&self, model: &str, self_hosted: bool) -> Option<&'static str> {
        if self.allowed.is_some_and(|a| !a.iter().any(|m| m == model)) {
            return Some("allowed_models");
        }
        if self.self_hosted_only && !self_hosted {
            return Some(policy_name(self.policy));
        }
        None
    }
}

/// The classifier `[router] classifier` names, or the embedded default; errors name the key.
pub fn load_classifier(config: &Config) -> Result<ComplexityRouter, String> {
    match &config.router.classifier {
        Some(path) => ComplexityRouter::load(path),
        None => ComplexityRouter::embedded(),
    }
    .map_err(|e| format!("router.classifier: {e}"))
}

fn policy_name(p: DataPolicy) -> &'static str {
    match p {
        DataPolicy::Any => "any",
        DataPolicy::SelfHostedOnly => "self-hosted-only",
        DataPolicy::SelfHostedOnlyForPii => "self-hosted-only-for-pii",
    }
}

/// `[EMAIL_1]`, `[CREDIT_CARD_2]`: what input redaction leaves behind.
fn has_placeholder(text: &str) -> bool {
    text.match_indices('[').any(|(i, _)| {
        let rest = &text[i + 1..];
        let Some(end) = rest.find(']') else {
            return false;
        };
        let inner = &rest[..end];
        inner
            .rsplit_once('_')
            .is_some_and(|(kind, n)| Kind::parse(kind).is_some() && n.parse::<u32>().is_ok())
    })
}

#[cfg(test)]
mod tests;
