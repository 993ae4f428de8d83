//! `[[model_groups]]`: one client-facing model name served by several deployments
//! (`[[models]]` entries), balanced by a strategy, with self-hosted members preferred until they
//! run full ("burst to cloud").

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use super::Config;

/// More members than this would not fit the fixed-size ordering buffer of the routing stage
/// (which keeps `plan()` free of extra allocations); no real deployment list comes close.
pub const MAX_GROUP_MEMBERS: usize = 32;
/// Keeps one period of the weighted round-robin sequence small (sum of weights / gcd entries).
pub const MAX_WEIGHT: u32 = 1_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelGroupConfig {
    /// What clients send as `"model"`; must not also be a `[[models]]` name.
    pub name: String,
    /// `[[models]]` names: the deployments, in configuration order (the tie-break).
    pub members: Vec<String>,
    #[serde(default)]
    pub strategy: BalanceStrategy,
    /// `strategy = "weighted"` only: one weight per member; default all equal (round robin).
    pub weights: Option<Vec<u32>>,
    /// Most requests in flight per self-hosted member; the base of `overflow_utilization`.
    #[serde(default)]
    pub capacity: BTreeMap<String, u32>,
    /// At or above this share of its capacity a self-hosted member goes behind the hosted ones.
    #[serde(default = "default_overflow_utilization")]
    pub overflow_utilization: f64,
    /// How long a member that just failed is tried after the healthy ones (0: never).
    #[serde(default = "default_cooldown_ms")]
    pub cooldown_ms: u64,
}

fn default_overflow_utilization() -> f64 {
    0.8
}

fn default_cooldown_ms() -> u64 {
    5_000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BalanceStrategy {
    /// Smooth weighted round robin (nginx's): exact proportions, evenly interleaved.
    Weighted,
    /// Lowest moving average of successful call latency; members without a sample go first.
    LeastLatency,
    /// Fewest calls in flight; ties go to the member listed first.
    #[default]
    LeastInFlight,
}

impl Config {
    pub(super) fn validate_model_groups(&self, errs: &mut Vec<String>) {
        let models: HashSet<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        let mut seen = HashSet::new();
        for (i, g) in self.model_groups.iter().enumerate() {
            let at = format!("model_groups[{i}]");
            if g.name.trim().is_empty() {
                errs.push(format!("{at}.name: must not be empty"));
            } else if !seen.insert(g.name.as_str()) {
                errs.push(format!("{at}.name: duplicate model group {:?}", g.name));
            } else if models.contains(g.name.as_str()) {
                errs.push(format!(
                    "{at}.name: {:?} is also a [[models]] name; a group needs a name of its own",
                    g.name
                ));
            } else if g.name == self.router.model {
                errs.push(format!(
                    "{at}.name: {:?} is the router.model name used for automatic routing",
                    g.name
                ));
            }
            self.validate_group_members(g, &at, &models, errs);
            validate_group_weights(g, &at, errs);
            self.validate_group_capacity(g, &at, errs);
            let u = g.overflow_utilization;
            if !(u > 0.0 && u <= 1.0) {
                errs.push(format!(
                    "{at}.overflow_utilization: must be greater than 0 and at most 1 (got {u})"
                ));
            }
        }
    }

    fn validate_group_members(
        &self,
        g: &ModelGroupConfig,
        at: &str,
        models: &HashSet<&str>,
        errs: &mut Vec<String>,
    ) {
        if g.members.is_empty() {
            errs.push(format!("{at}.members: list at least one [[models]] name"));
        } else if g.members.len() > MAX_GROUP_MEMBERS {
            errs.push(format!(
                "{at}.members: at most {MAX_GROUP_MEMBERS} members (got {})",
                g.members.len()
            ));
        }
        let mut seen = HashSet::new();
        for (j, m) in g.members.iter().enumerate() {
            if !models.contains(m.as_str()) {
                errs.push(format!(
                    "{at}.members[{j}]: {m:?} is not a configured model"
                ));
            } else if !seen.insert(m.as_str()) {
                errs.push(format!("{at}.members[{j}]: {m:?} is listed twice"));
            }
        }
    }

    fn validate_group_capacity(&self, g: &ModelGroupConfig, at: &str, errs: &mut Vec<String>) {
        for (member, cap) in &g.capacity {
            let key = format!("{at}.capacity.{member}");
            if !g.members.contains(member) {
                errs.push(format!("{key}: {member:?} is not a member of this group"));
            } else if self.models.iter().any(|m| &m.name == member)
                && !self.model_is_self_hosted(member)
            {
                errs.push(format!(
                    "{key}: {member:?} runs on a hosted provider; capacity applies to providers \
                     with self_hosted = true or kind = \"local\""
                ));
            }
            if *cap == 0 {
                errs.push(format!("{key}: must be at least 1"));
            }
        }
    }
}

fn validate_group_weights(g: &ModelGroupConfig, at: &str, errs: &mut Vec<String>) {
    let Some(weights) = &g.weights else { return };
    if g.strategy != BalanceStrategy::Weighted {
        errs.push(format!(
            "{at}.weights: only used with strategy = \"weighted\""
        ));
        return;
    }
    if weights.len() != g.members.len() {
        errs.push(format!(
            "{at}.weights: {} weights for {} members; give one per member, in the same order",
            weights.len(),
            g.members.len()
        ));
    }
    for (j, w) in weights.iter().enumerate() {
        if !(1..=MAX_WEIGHT).contains(w) {
            errs.push(format!(
                "{at}.weights[{j}]: must be between 1 and {MAX_WEIGHT} (got {w})"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = r#"
[[providers]]
name = "cloud"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[[providers]]
name = "onprem"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
self_hosted = true
[[models]]
name = "east"
provider = "cloud"
[[models]]
name = "west"
provider = "cloud"
[[models]]
name = "home"
provider = "onprem"
"#;

    fn problems(group: &str) -> String {
        match Config::parse(&format!("{BASE}{group}")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_full_group_parses_with_defaults() {
        let c = Config::parse(&format!(
            "{BASE}[[model_groups]]\nname = \"gpt-4o\"\nmembers = [\"east\", \"west\", \"home\"]\n\
             capacity = {{ \"home\" = 8 }}\n"
        ))
        .unwrap();
        let g = &c.model_groups[0];
        assert_eq!(g.strategy, super::BalanceStrategy::LeastInFlight);
        assert_eq!(g.overflow_utilization, 0.8);
        assert_eq!(g.cooldown_ms, 5_000);
        assert_eq!(g.capacity["home"], 8);
    }

    #[test]
    fn unknown_member_names_the_key() {
        let e = problems("[[model_groups]]\nname = \"g\"\nmembers = [\"east\", \"west\", \"x\"]\n");
        assert!(
            e.contains("model_groups[0].members[2]: \"x\" is not a configured model"),
            "{e}"
        );
    }

    #[test]
    fn every_group_problem_is_reported() {
        let e = problems(
            "[[model_groups]]\nname = \"east\"\nmembers = [\"east\", \"west\"]\n\
             strategy = \"weighted\"\nweights = [3]\noverflow_utilization = 1.5\n\
             capacity = { \"west\" = 2, \"nope\" = 1, \"home\" = 0 }\n",
        );
        for want in [
            "model_groups[0].name: \"east\" is also a [[models]] name",
            "model_groups[0].weights: 1 weights for 2 members",
            "model_groups[0].overflow_utilization: must be greater than 0 and at most 1",
            "model_groups[0].capacity.west: \"west\" runs on a hosted provider",
            "model_groups[0].capacity.nope: \"nope\" is not a member of this group",
            "model_groups[0].capacity.home: \"home\" is not a member of this group",
        ] {
            assert!(e.contains(want), "missing {want:?} in {e}");
        }
    }

    #[test]
    fn weights_need_the_weighted_strategy() {
        let e = problems("[[model_groups]]\nname = \"g\"\nmembers = [\"east\"]\nweights = [1]\n");
        assert!(
            e.contains("model_groups[0].weights: only used with strategy = \"weighted\""),
            "{e}"
        );
        let e = problems(
            "[[model_groups]]\nname = \"g\"\nmembers = [\"east\"]\nstrategy = \"weighted\"\n\
             weights = [0]\n",
        );
        assert!(
            e.contains("model_groups[0].weights[0]: must be between 1 and 1000"),
            "{e}"
        );
    }

    #[test]
    fn zero_utilization_and_typos_are_refused() {
        let e = problems(
            "[[model_groups]]\nname = \"g\"\nmembers = [\"home\"]\noverflow_utilization = 0.0\n",
        );
        assert!(e.contains("model_groups[0].overflow_utilization"), "{e}");
        let e = problems(
            "[[model_groups]]\nname = \"g\"\nmembers = [\"home\"]\nstrategy = \"fastest\"\n",
        );
        assert!(e.starts_with("model_groups[0].strategy"), "{e}");
    }
}
