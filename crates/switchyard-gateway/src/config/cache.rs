//! `[cache]`: the exact and semantic response caches.

use serde::Deserialize;

use super::Config;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Also serve verified paraphrases (needs `embedding_model`).
    pub semantic: bool,
    pub ttl_secs: u64,
    /// For questions about things that change (today, now, latest, price, weather, news...).
    pub time_sensitive_ttl_secs: u64,
    /// Entries per layer (and per replica for the in-process layers).
    pub max_entries: u64,
    /// A `[[models]]` name that serves embeddings (the embedded default's `local-embed`).
    pub embedding_model: String,
    /// Cosine similarity a semantic candidate needs before the verifier looks at it.
    pub similarity_threshold: Option<f32>,
    /// Cache requests that ask for randomness (temperature > 0 without a seed, n > 1) too.
    pub cache_nondeterministic: bool,
    /// Per-model and per-tenant exceptions, applied in order (later wins).
    pub overrides: Vec<CacheOverride>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            semantic: false,
            ttl_secs: 3600,
            time_sensitive_ttl_secs: 300,
            max_entries: 100_000,
            embedding_model: "local-embed".to_owned(),
            similarity_threshold: None,
            cache_nondeterministic: false,
            overrides: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheOverride {
    pub model: Option<String>,
    pub tenant: Option<String>,
    pub enabled: Option<bool>,
    pub semantic: Option<bool>,
    pub ttl_secs: Option<u64>,
}

/// The policy for one request, after overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub enabled: bool,
    pub semantic: bool,
    pub ttl_secs: u64,
}

impl CacheConfig {
    pub fn policy(&self, tenant: &str, model: &str) -> CachePolicy {
        let mut p = CachePolicy {
            enabled: self.enabled,
            semantic: self.semantic,
            ttl_secs: self.ttl_secs,
        };
        for o in &self.overrides {
            let applies = o.model.as_deref().is_none_or(|m| m == model)
                && o.tenant.as_deref().is_none_or(|t| t == tenant);
            if applies {
                p.enabled = o.enabled.unwrap_or(p.enabled);
                p.semantic = o.semantic.unwrap_or(p.semantic);
                p.ttl_secs = o.ttl_secs.unwrap_or(p.ttl_secs);
            }
        }
        p.semantic &= p.enabled;
        p
    }
}

impl Config {
    pub(super) fn validate_cache(&self, errs: &mut Vec<String>) {
        let c = &self.cache;
        if c.ttl_secs == 0 {
            errs.push("cache.ttl_secs: must be greater than 0".to_owned());
        }
        if c.max_entries == 0 {
            errs.push("cache.max_entries: must be greater than 0".to_owned());
        }
        if matches!(c.similarity_threshold, Some(t) if !(0.5..=1.0).contains(&t)) {
            errs.push("cache.similarity_threshold: must be between 0.5 and 1.0".to_owned());
        }
        let semantic_anywhere = c.semantic || c.overrides.iter().any(|o| o.semantic == Some(true));
        if semantic_anywhere && !self.models.iter().any(|m| m.name == c.embedding_model) {
            errs.push(format!(
                "cache.embedding_model: {:?} is not a configured model (the semantic cache embeds questions with it)",
                c.embedding_model
            ));
        }
        for (i, o) in c.overrides.iter().enumerate() {
            if o.model.is_none() && o.tenant.is_none() {
                errs.push(format!(
                    "cache.overrides[{i}]: name a model, a tenant or both"
                ));
            }
            if o.ttl_secs == Some(0) {
                errs.push(format!(
                    "cache.overrides[{i}].ttl_secs: must be greater than 0"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_in_order() {
        let c: CacheConfig = toml::from_str(
            r#"
enabled = true
semantic = true
[[overrides]]
model = "code"
semantic = false
[[overrides]]
tenant = "bank"
enabled = false
"#,
        )
        .unwrap();
        assert_eq!(
            c.policy("acme", "chat"),
            CachePolicy {
                enabled: true,
                semantic: true,
                ttl_secs: 3600
            }
        );
        assert!(!c.policy("acme", "code").semantic);
        let bank = c.policy("bank", "chat");
        assert!(!bank.enabled && !bank.semantic);
    }

    #[test]
    fn semantic_needs_an_embedding_model() {
        let e =
            Config::parse("[cache]\nenabled = true\nsemantic = true\nembedding_model = \"nope\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("cache.embedding_model: \"nope\" is not a configured model"),
            "{e}"
        );
    }
}
