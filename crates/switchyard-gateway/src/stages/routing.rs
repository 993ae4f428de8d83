//! Stage 5 — which models may serve a request, in order: the requested model (or, for
//! `"model": "auto"`, the one `auto` picks), then its configured fallbacks. A
//! `[[model_groups]]` name expands to its members, ordered by the group's balancing (see
//! `balance`). Context-length fallbacks are looked up here too, but only taken by the call stage
//! when an upstream actually reports the context exceeded.

pub mod auto;
pub mod balance;
pub mod cascade;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_providers::Provider;

use crate::stages::call::DeploymentStats;
use balance::ModelGroup;

/// One `[[models]]` entry, resolved against its provider.
pub struct ModelEntry {
    pub name: String,
    pub provider: Arc<dyn Provider>,
    pub upstream: String,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    pub timeout: Duration,
    pub max_retries: u32,
    pub fallbacks: Vec<String>,
    pub context_window: Option<u64>,
    pub context_fallback: Option<String>,
    /// Circuit breakers are kept per deployment (provider × upstream model), so one failing model
    /// does not cut off its provider's healthy ones.
    pub breaker_key: String,
    /// The provider runs on the operator's own infrastructure (data-policy routing).
    pub self_hosted: bool,
    /// Live load and health for balancing; shared by entries with the same `breaker_key`.
    pub stats: Arc<DeploymentStats>,
}

impl ModelEntry {
    pub fn cost_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input_usd_per_mtok
            + completion_tokens as f64 * self.output_usd_per_mtok)
            / 1_000_000.0
    }

    pub fn provider_name(&self) -> &str {
        self.provider.name()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("the model `{0}` does not exist or you do not have access to it")]
    UnknownModel(String),
}

#[derive(Default)]
pub struct ModelTable {
    models: HashMap<String, Arc<ModelEntry>>,
    order: Vec<String>,
    groups: HashMap<String, ModelGroup>,
}

impl ModelTable {
    pub fn insert(&mut self, entry: ModelEntry) {
        self.order.push(entry.name.clone());
        self.models.insert(entry.name.clone(), Arc::new(entry));
    }

    pub fn insert_group(&mut self, group: ModelGroup) {
        self.groups.insert(group.name().to_owned(), group);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ModelEntry>> {
        self.models.get(name)
    }

    /// The `[[model_groups]]` entry clients reach under `name`, if `name` is a group.
    pub fn group(&self, name: &str) -> Option<&ModelGroup> {
        self.groups.get(name)
    }

    /// Models in configuration order, for `/v1/models`.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// The ordered candidates for a request: the model itself, then its fallbacks; for a group,
    /// its members in balancing order, then their fallbacks. A group's round robin advances
    /// with every call, so call this once per request.
    pub fn plan(&self, requested: &str) -> Result<Vec<Arc<ModelEntry>>, RoutingError> {
        if let Some(group) = self.groups.get(requested) {
            return Ok(self.group_plan(group));
        }
        let primary = self
            .get(requested)
            .ok_or_else(|| RoutingError::UnknownModel(requested.to_owned()))?;
        let mut plan = Vec::with_capacity(1 + primary.fallbacks.len());
        plan.push(primary.clone());
        for f in &primary.fallbacks {
            if let Some(m) = self.get(f) {
                if !plan.iter().any(|p| p.name == m.name) {
                    plan.push(m.clone());
                }
            }
        }
        Ok(plan)
    }

    fn group_plan(&self, group: &ModelGroup) -> Vec<Arc<ModelEntry>> {
        let fallbacks: usize = group.members().map(|m| m.fallbacks.len()).sum();
        let mut plan = Vec::with_capacity(group.len() + fallbacks);
        group.order_into(&mut plan, crate::stages::call::mono_ms());
        for i in 0..group.len().min(plan.len()) {
            let member = plan[i].clone();
            for f in &member.fallbacks {
                if let Some(m) = self.get(f) {
                    if !plan.iter().any(|p| p.name == m.name) {
                        plan.push(m.clone());
                    }
                }
            }
        }
        plan
    }

    /// Where to go when `model` reports its context exceeded: its `context_fallback`, else the
    /// first of its fallbacks with a larger declared context window.
    pub fn context_fallback(&self, model: &ModelEntry) -> Option<Arc<ModelEntry>> {
        if let Some(name) = &model.context_fallback {
            return self.get(name).cloned();
        }
        let window = model.context_window?;
        model
            .fallbacks
            .iter()
            .filter_map(|f| self.get(f))
            .find(|m| m.context_window.is_some_and(|w| w > window))
            .cloned()
    }
}
