//! `[router]`, model tiers and tenant routing rules: what `"model": "auto"` may pick.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Config;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// The model name clients send to let the gateway choose.
    pub model: String,
    /// A model file written by `switchyard router train`; unset: the embedded default.
    pub classifier: Option<PathBuf>,
    /// A conversation (OpenAI `user`, or the `x-switchyard-session` header) never drops to a
    /// lower tier within this many seconds of its last request.
    pub session_ttl_secs: u64,
    /// Sessions remembered per replica.
    pub max_sessions: u64,
    /// Non-streamed `auto` answers below `cascade_threshold` confidence are asked again one
    /// tier up.
    pub cascade: bool,
    pub cascade_threshold: f32,
    /// Thompson sampling among the models of the chosen tier, learning from cascades and
    /// feedback. Off: the cheapest model of the tier, always.
    pub bandit: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            model: "auto".to_owned(),
            classifier: None,
            session_ttl_secs: 1800,
            max_sessions: 100_000,
            cascade: true,
            cascade_threshold: 0.7,
            bandit: false,
        }
    }
}

/// Where a tenant's requests may be processed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataPolicy {
    #[default]
    Any,
    /// Only providers with `self_hosted = true`.
    SelfHostedOnly,
    /// Requests that contain PII only go to `self_hosted` providers.
    SelfHostedOnlyForPii,
}

impl Config {
    pub(super) fn validate_router(&self, errs: &mut Vec<String>) {
        let auto = self.router.model.as_str();
        if auto.trim().is_empty() {
            errs.push("router.model: must not be empty".to_owned());
        }
        if self.models.iter().any(|m| m.name == auto) {
            errs.push(format!(
                "router.model: {auto:?} is also a [[models]] name; pick another name for automatic routing"
            ));
        }
        if !(0.0..=1.0).contains(&self.router.cascade_threshold) {
            errs.push("router.cascade_threshold: must be between 0 and 1".to_owned());
        }
        if self.router.session_ttl_secs == 0 {
            errs.push("router.session_ttl_secs: must be greater than 0".to_owned());
        }
        for (i, m) in self.models.iter().enumerate() {
            if let Some(t) = m.tier {
                if !(1..=3).contains(&t) {
                    errs.push(format!("models[{i}].tier: must be 1, 2 or 3 (got {t})"));
                }
            }
        }
        let names: HashSet<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        for (i, t) in self.tenants.iter().enumerate() {
            for (j, m) in t.allowed_models.iter().flatten().enumerate() {
                if m != auto && !names.contains(m.as_str()) {
                    errs.push(format!(
                        "tenants[{i}].allowed_models[{j}]: {m:?} is not a configured model"
                    ));
                }
            }
            if t.data_policy != DataPolicy::Any && !self.has_self_hosted_model() {
                errs.push(format!(
                    "tenants[{i}].data_policy: no model runs on a provider with self_hosted = true, \
                     so this tenant's requests could never be served"
                ));
            }
        }
    }

    /// Whether the provider behind model `name` is marked `self_hosted`.
    pub fn model_is_self_hosted(&self, name: &str) -> bool {
        self.models
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| self.providers.iter().find(|p| p.name == m.provider))
            // In-process inference runs on this machine whatever the flag says.
            .is_some_and(|p| p.self_hosted || p.kind == super::ProviderKindConfig::Local)
    }

    fn has_self_hosted_model(&self) -> bool {
        self.models
            .iter()
            .any(|m| self.model_is_self_hosted(&m.name))
    }
}
