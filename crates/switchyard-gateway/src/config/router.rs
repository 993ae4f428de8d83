//! `[router]`, model tiers and tenant routing rules: what `"model": "auto"` may pick; and
//! `[[router.experiments]]`, A/B experiments that split one client-facing model name over arms.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Config;
pub use crate::stages::experiment::{PromptMode, StickyBy};

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
    /// `[[router.experiments]]`: each claims a model name and splits its traffic over arms.
    pub experiments: Vec<ExperimentConfig>,
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
            experiments: Vec::new(),
        }
    }
}

/// One A/B experiment: requests for `model` are split over `arms` by a sticky hash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Identifies the experiment in the request log and at `/admin/experiments/{name}`.
    pub name: String,
    /// The model name clients request to take part.
    pub model: String,
    pub arms: Vec<ArmConfig>,
    #[serde(default)]
    pub sticky_by: StickyBy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmConfig {
    pub name: String,
    /// A `[[models]]` (or `[[model_groups]]`) name; its fallbacks apply as usual.
    pub model: String,
    /// Relative share of the traffic; 0 closes the arm to new assignments.
    #[serde(default = "default_arm_weight")]
    pub weight: u32,
    /// The prompt version this arm tests.
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub system_prompt_mode: PromptMode,
}

fn default_arm_weight() -> u32 {
    1
}

/// Experiment and arm names travel in a response header and a URL path.
fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
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
        self.validate_experiments(errs);
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
                if self.router.experiments.iter().any(|e| &e.model == m) {
                    // Arms are held to the tenant's rules like explicit requests, so allowing
                    // the experiment's own name would mean nothing.
                    errs.push(format!(
                        "tenants[{i}].allowed_models[{j}]: {m:?} is an experiment; list the \
                         models of its arms instead"
                    ));
                } else if m != auto && !names.contains(m.as_str()) {
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

    fn validate_experiments(&self, errs: &mut Vec<String>) {
        let models: HashSet<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        let groups: HashSet<&str> = self.model_groups.iter().map(|g| g.name.as_str()).collect();
        let mut names = HashSet::new();
        let mut claimed = HashSet::new();
        for (i, e) in self.router.experiments.iter().enumerate() {
            let at = format!("router.experiments[{i}]");
            if !valid_name(&e.name) {
                errs.push(format!(
                    "{at}.name: {:?} must be 1-64 characters of letters, digits, '-', '_' or '.'",
                    e.name
                ));
            } else if !names.insert(e.name.as_str()) {
                errs.push(format!("{at}.name: duplicate experiment {:?}", e.name));
            }
            let m = e.model.as_str();
            if m.trim().is_empty() {
                errs.push(format!("{at}.model: must not be empty"));
            } else if models.contains(m) || groups.contains(m) {
                errs.push(format!(
                    "{at}.model: {m:?} is also a [[models]] or [[model_groups]] name; an \
                     experiment needs a name of its own"
                ));
            } else if m == self.router.model {
                errs.push(format!(
                    "{at}.model: {m:?} is router.model; an experiment needs a name of its own"
                ));
            } else if !claimed.insert(m) {
                errs.push(format!(
                    "{at}.model: {m:?} is already claimed by another experiment"
                ));
            }
            if e.arms.is_empty() {
                errs.push(format!("{at}.arms: needs at least one arm"));
            } else if e.arms.iter().all(|a| a.weight == 0) {
                errs.push(format!(
                    "{at}.arms: at least one arm needs a weight above 0"
                ));
            }
            let mut arm_names = HashSet::new();
            for (j, a) in e.arms.iter().enumerate() {
                let at = format!("{at}.arms[{j}]");
                if !valid_name(&a.name) {
                    errs.push(format!(
                        "{at}.name: {:?} must be 1-64 characters of letters, digits, '-', '_' \
                         or '.'",
                        a.name
                    ));
                } else if !arm_names.insert(a.name.as_str()) {
                    errs.push(format!("{at}.name: duplicate arm {:?}", a.name));
                }
                if !models.contains(a.model.as_str()) && !groups.contains(a.model.as_str()) {
                    errs.push(format!(
                        "{at}.model: {:?} is not a [[models]] or [[model_groups]] name",
                        a.model
                    ));
                }
                if a.system_prompt
                    .as_deref()
                    .is_some_and(|p| p.trim().is_empty())
                {
                    errs.push(format!(
                        "{at}.system_prompt: must not be empty (leave it out to keep the \
                         client's)"
                    ));
                }
            }
            self.validate_experiment_cache(&at, m, errs);
        }
    }

    /// The cache keys answers by the requested model name, so with the cache on, one arm's
    /// answer would be served to users of another and the comparison would be void.
    fn validate_experiment_cache(&self, at: &str, model: &str, errs: &mut Vec<String>) {
        let tenants = self
            .tenants
            .iter()
            .map(|t| t.name.as_str())
            .chain(
                self.cache
                    .overrides
                    .iter()
                    .filter_map(|o| o.tenant.as_deref()),
            )
            // A tenant no rule names gets the untargeted policy.
            .chain(std::iter::once(""));
        for t in tenants {
            if self.cache.policy(t, model).enabled {
                let whose = if t.is_empty() {
                    String::new()
                } else {
                    format!(" (tenant {t:?})")
                };
                errs.push(format!(
                    "{at}.model: the response cache is on for {model:?}{whose}, so arms would \
                     share cached answers; add [[cache.overrides]] with model = {model:?} and \
                     enabled = false"
                ));
                return;
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

#[cfg(test)]
mod tests {
    use super::super::Config;

    const BASE: &str = r#"
[[providers]]
name = "p"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[[models]]
name = "small"
provider = "p"
[[models]]
name = "large"
provider = "p"
"#;

    fn problems(extra: &str) -> String {
        match Config::parse(&format!("{BASE}{extra}")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    fn assert_all(err: &str, needles: &[&str]) {
        for needle in needles {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }

    #[test]
    fn experiments_name_what_is_wrong_by_key_path() {
        let err = problems(
            r#"
[[router.experiments]]
name = "bad name!"
model = "small"
arms = [ { name = "a", model = "nope" }, { name = "a", model = "large", weight = 0, system_prompt = " " } ]
"#,
        );
        assert_all(
            &err,
            &[
                "router.experiments[0].name",
                "router.experiments[0].model: \"small\" is also a [[models]]",
                "router.experiments[0].arms[0].model: \"nope\"",
                "router.experiments[0].arms[1].name: duplicate arm",
                "router.experiments[0].arms[1].system_prompt",
            ],
        );
        let err = problems(
            r#"
[[router.experiments]]
name = "x"
model = "auto"
arms = [ { name = "a", model = "small", weight = 0 } ]
[[router.experiments]]
name = "x"
model = "assistant"
arms = []
[[tenants]]
name = "t"
allowed_models = ["assistant"]
"#,
        );
        assert_all(
            &err,
            &[
                "router.experiments[0].model: \"auto\" is router.model",
                "router.experiments[0].arms: at least one arm needs a weight above 0",
                "router.experiments[1].name: duplicate experiment",
                "router.experiments[1].arms: needs at least one arm",
                "tenants[0].allowed_models[0]: \"assistant\" is an experiment",
            ],
        );
        let err = problems(
            r#"
[[router.experiments]]
name = "x"
model = "assistant"
arms = [ { name = "a", model = "small", wieght = 3 } ]
"#,
        );
        assert_all(&err, &["router.experiments[0].arms[0]", "wieght"]);
    }

    #[test]
    fn an_experiment_needs_the_cache_off_for_its_model() {
        let cached = r#"
[cache]
enabled = true
[[router.experiments]]
name = "x"
model = "assistant"
arms = [ { name = "a", model = "small" } ]
"#;
        assert_all(
            &problems(cached),
            &["router.experiments[0].model: the response cache is on for \"assistant\""],
        );
        let off = "[[cache.overrides]]\nmodel = \"assistant\"\nenabled = false\n";
        assert_eq!(problems(&format!("{cached}{off}")), "");
        // A tenant rule that turns it back on is caught too.
        let again = "[[cache.overrides]]\ntenant = \"t\"\nenabled = true\n";
        assert_all(
            &problems(&format!("{cached}{off}{again}")),
            &["(tenant \"t\")"],
        );
    }

    #[test]
    fn a_valid_experiment_parses_with_its_defaults() {
        let config = Config::parse(&format!(
            "{BASE}[[router.experiments]]\nname = \"x\"\nmodel = \"assistant\"\n\
             arms = [ {{ name = \"a\", model = \"small\" }} ]\n"
        ))
        .unwrap();
        let e = &config.router.experiments[0];
        assert_eq!(e.sticky_by, super::StickyBy::User);
        assert_eq!(e.arms[0].weight, 1);
        assert_eq!(e.arms[0].system_prompt_mode, super::PromptMode::Replace);
    }
}
