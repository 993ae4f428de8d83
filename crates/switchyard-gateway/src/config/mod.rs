//! The one TOML file that drives the gateway, and its validation.
//!
//! Parsing names the offending key (`models[1].timeout_ms: invalid type...`) through
//! `serde_path_to_error`; unknown keys are refused so a typo never silently falls back to a default.
//! Cross-references (fallbacks, providers) are checked after parsing and every problem is reported
//! at once, each prefixed with its key path.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod balance;
mod cache;
mod governance;
mod local;
mod router;

pub use balance::{BalanceStrategy, ModelGroupConfig, MAX_GROUP_MEMBERS};
pub use cache::{CacheConfig, CacheOverride, CachePolicy};
pub use router::{DataPolicy, RouterConfig};

pub use governance::{BudgetConfig, BudgetMode, BudgetPeriod, StateConfig, TenantConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// One client-facing name balanced over several `[[models]]` deployments.
    #[serde(default)]
    pub model_groups: Vec<ModelGroupConfig>,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub state: StateConfig,
    /// Budgets for use-case tags (`x-switchyard-tags` / `metadata.tags`).
    #[serde(default)]
    pub budgets: Vec<BudgetConfig>,
    #[serde(default)]
    pub guardrails: crate::stages::guardrails::GuardrailsConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    /// `"model": "auto"`: tiered routing with the complexity classifier.
    #[serde(default)]
    pub router: RouterConfig,
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Bodies larger than this are refused with 413, from Content-Length before reading.
    pub max_body_bytes: u64,
    /// How long a graceful shutdown waits for in-flight requests before flushing the log anyway.
    pub shutdown_grace_secs: u64,
    /// Where generated secrets and the request-log spool live.
    pub data_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            shutdown_grace_secs: 30,
            data_dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub url: String,
    /// Request-log spool used while the store is unreachable. Default: `<data_dir>/request-log.spool`.
    pub spool_path: Option<PathBuf>,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    /// Prompts and answers in the request log: `redacted` (PII and secrets replaced by typed
    /// placeholders; raw only for tenants with `log_raw_bodies = true`) or `off`.
    pub log_bodies: crate::logbodies::BodiesMode,
    /// Logged prompt and answer text per request, at most (the rest is cut, `truncated: true`).
    pub log_body_max_bytes: usize,
    /// Logged bodies held in memory by records waiting for a slow store, at most; past it,
    /// records are logged without their bodies until the writer catches up.
    pub log_backlog_max_bytes: usize,
    /// Records waiting for a slow store, at most; past it, new requests wait (backpressure).
    pub log_backlog_max_records: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/switchyard.db".to_owned(),
            spool_path: None,
            batch_size: 256,
            flush_interval_ms: 20,
            log_bodies: crate::logbodies::BodiesMode::Redacted,
            // The writer task redacts what it keeps: 4 KiB a request keeps that well ahead of
            // the request rate (16 KiB bodies of 32 KiB prompts let its queue, and RSS, grow).
            log_body_max_bytes: 4 * 1024,
            log_backlog_max_bytes: switchyard_store::WriterOptions::default().max_queued_body_bytes,
            log_backlog_max_records: switchyard_store::WriterOptions::default().max_queued_records,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries of the same model on 429, 5xx, connect errors and timeouts (per model unless overridden).
    pub max_retries: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// A `retry-after` longer than this moves on to the fallbacks instead of waiting.
    pub max_retry_after_ms: u64,
    /// Overall deadline for one client request, across every attempt and fallback.
    pub deadline_ms: u64,
    /// Per-attempt timeout for models that set none.
    pub timeout_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 2,
            backoff_base_ms: 50,
            backoff_max_ms: 2_000,
            max_retry_after_ms: 10_000,
            deadline_ms: 120_000,
            timeout_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive provider faults that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before letting one probe through.
    pub cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKindConfig {
    Openai,
    Anthropic,
    Azure,
    Gemini,
    Local,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKindConfig,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    pub api_version: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub default_max_tokens: Option<u32>,
    /// Runs on infrastructure the operator controls (used by data-policy routing).
    #[serde(default)]
    pub self_hosted: bool,
    /// `kind = "local"`: the GGUF chat model run in-process by llama.cpp.
    pub model_path: Option<PathBuf>,
    /// `kind = "local"`: folder with an embedding model's config.json, tokenizer.json and
    /// model.safetensors (all-MiniLM-L6-v2 or another BERT-family sentence encoder).
    pub embedding_model_path: Option<PathBuf>,
    /// `kind = "local"`: sequences decoded together (default 8); more requests queue.
    pub parallel: Option<u32>,
    /// `kind = "local"`: KV cache size in tokens shared by all sequences (default 8192).
    pub context_size: Option<u32>,
    /// `kind = "local"`: CPU threads for llama.cpp (default: every core).
    pub threads: Option<u32>,
    /// `kind = "local"`: most tokens per decode call (default 512).
    pub batch_size: Option<u32>,
    /// `kind = "local"`: temperature for requests that send none (default 0, greedy).
    pub default_temperature: Option<f32>,
}

impl ProviderConfig {
    /// The upstream API key: inline, or read from the named environment variable.
    pub fn resolved_api_key(&self) -> Option<String> {
        self.api_key.clone().or_else(|| {
            self.api_key_env
                .as_ref()
                .and_then(|var| std::env::var(var).ok())
        })
    }

    pub fn resolved_base_url(&self) -> Option<String> {
        self.base_url.clone().or_else(|| {
            match self.kind {
                ProviderKindConfig::Openai => Some("https://api.openai.com/v1"),
                ProviderKindConfig::Anthropic => Some("https://api.anthropic.com"),
                ProviderKindConfig::Gemini => Some("https://generativelanguage.googleapis.com"),
                ProviderKindConfig::Azure | ProviderKindConfig::Local => None,
            }
            .map(str::to_owned)
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub provider: String,
    pub upstream: Option<String>,
    #[serde(default)]
    pub input_usd_per_mtok: f64,
    #[serde(default)]
    pub output_usd_per_mtok: f64,
    pub timeout_ms: Option<u64>,
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Context window in tokens; lets a context-length error pick a larger fallback.
    pub context_window: Option<u64>,
    /// Model to use when this one reports context length exceeded.
    pub context_fallback: Option<String>,
    /// 1 (cheap) to 3 (strongest): what `"model": "auto"` may pick. Without one, never picked.
    pub tier: Option<u8>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Parse {
                path: if path == "." {
                    "config".to_owned()
                } else {
                    path
                },
                message: e.into_inner().to_string().trim().to_owned(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Cross-field checks; every problem is reported, each with its key path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errs = Vec::new();
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            errs.push(format!(
                "listen: {:?} is not an address like 127.0.0.1:8080",
                self.listen
            ));
        }
        if self.server.max_body_bytes == 0 {
            errs.push("server.max_body_bytes: must be greater than 0".to_owned());
        }
        let url = self.store.url.as_str();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            errs.push("store.url: must start with sqlite: or postgres://".to_owned());
        }
        if self.store.log_backlog_max_records == 0 {
            errs.push("store.log_backlog_max_records: must be greater than 0".to_owned());
        }
        if self.store.batch_size == 0 {
            errs.push("store.batch_size: must be greater than 0".to_owned());
        }
        if matches!(&self.admin.key, Some(k) if k.len() < 16) {
            errs.push("admin.key: must be at least 16 characters".to_owned());
        }
        if self.retry.backoff_base_ms > self.retry.backoff_max_ms {
            errs.push("retry.backoff_base_ms: must not exceed retry.backoff_max_ms".to_owned());
        }
        if self.breaker.failure_threshold == 0 {
            errs.push("breaker.failure_threshold: must be at least 1".to_owned());
        }
        self.validate_providers(&mut errs);
        self.validate_models(&mut errs);
        self.validate_model_groups(&mut errs);
        self.validate_governance(&mut errs);
        self.validate_cache(&mut errs);
        errs.extend(self.guardrails.problems());
        self.validate_router(&mut errs);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errs))
        }
    }

    fn validate_providers(&self, errs: &mut Vec<String>) {
        let mut seen = HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = format!("providers[{i}]");
            if p.name.trim().is_empty() {
                errs.push(format!("{at}.name: must not be empty"));
            } else if !seen.insert(p.name.as_str()) {
                errs.push(format!("{at}.name: duplicate provider {:?}", p.name));
            }
            local::validate_local_fields(p, &at, errs);
            if p.kind == ProviderKindConfig::Local {
                continue;
            }
            match p.resolved_base_url() {
                None => errs.push(format!("{at}.base_url: required for kind {:?}", p.kind)),
                Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => errs.push(
                    format!("{at}.base_url: {u:?} must be an http:// or https:// URL"),
                ),
                Some(_) => {}
            }
            if let Some(var) = &p.api_key_env {
                if p.api_key.is_some() {
                    errs.push(format!(
                        "{at}.api_key_env: set either api_key or api_key_env, not both"
                    ));
                } else if std::env::var(var).is_err() {
                    errs.push(format!(
                        "{at}.api_key_env: environment variable {var} is not set"
                    ));
                }
            }
            for (name, value) in &p.headers {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                    || http::HeaderValue::from_str(value).is_err()
                {
                    errs.push(format!("{at}.headers.{name}: not a valid HTTP header"));
                }
            }
        }
    }

    fn validate_models(&self, errs: &mut Vec<String>) {
        let providers: HashSet<&str> = self.providers.iter().map(|p| p.name.as_str()).collect();
        let names: HashSet<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        let mut seen = HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let at = format!("models[{i}]");
            if m.name.trim().is_empty() {
                errs.push(format!("{at}.name: must not be empty"));
            } else if !seen.insert(m.name.as_str()) {
                errs.push(format!("{at}.name: duplicate model {:?}", m.name));
            }
            if !providers.contains(m.provider.as_str()) {
                errs.push(format!("{at}.provider: unknown provider {:?}", m.provider));
            }
            for (field, price) in [
                ("input_usd_per_mtok", m.input_usd_per_mtok),
                ("output_usd_per_mtok", m.output_usd_per_mtok),
            ] {
                if !price.is_finite() || price < 0.0 {
                    errs.push(format!("{at}.{field}: must be a non-negative number"));
                }
            }
            if m.timeout_ms == Some(0) {
                errs.push(format!("{at}.timeout_ms: must be greater than 0"));
            }
            for (j, f) in m.fallbacks.iter().enumerate() {
                if !names.contains(f.as_str()) {
                    errs.push(format!("{at}.fallbacks[{j}]: unknown model {f:?}"));
                } else if f == &m.name {
                    errs.push(format!(
                        "{at}.fallbacks[{j}]: a model cannot fall back to itself"
                    ));
                }
            }
            if let Some(f) = &m.context_fallback {
                if !names.contains(f.as_str()) {
                    errs.push(format!("{at}.context_fallback: unknown model {f:?}"));
                } else if f == &m.name {
                    errs.push(format!(
                        "{at}.context_fallback: a model cannot fall back to itself"
                    ));
                }
            }
        }
    }

    /// Where generated secrets and spools go: `[server] data_dir`, else the SQLite file's folder,
    /// else `./data`.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.server.data_dir {
            return d.clone();
        }
        if let Some(path) = self.store.url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(parent) = Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    return parent.to_owned();
                }
            }
        }
        PathBuf::from("data")
    }

    pub fn spool_path(&self) -> PathBuf {
        self.store
            .spool_path
            .clone()
            .unwrap_or_else(|| self.data_dir().join("request-log.spool"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:8080"
[store]
url = "sqlite:///tmp/sy/switchyard.db"
[admin]
key = "sk-admin-0123456789abcdef"
[[providers]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:9100/v1"
api_key = "sk-upstream"
[[models]]
name = "small"
provider = "mock"
upstream = "gpt-4o-mini"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
timeout_ms = 500
fallbacks = ["large"]
[[models]]
name = "large"
provider = "mock"
[[tenants]]
name = "acme"
keys = ["sk-acme-0123456789"]
"#;

    #[test]
    fn contract_config_parses() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.models[0].fallbacks, vec!["large"]);
        assert_eq!(c.data_dir(), PathBuf::from("/tmp/sy"));
        assert_eq!(c.server.max_body_bytes, 32 * 1024 * 1024);
    }

    #[test]
    fn unknown_fallback_names_the_key() {
        let bad = GOOD.replace("fallbacks = [\"large\"]", "fallbacks = [\"huge\"]");
        let err = Config::parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains("models[0].fallbacks[0]: unknown model \"huge\""),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        let bad = GOOD.replace("timeout_ms = 500", "timeout_ms = \"fast\"");
        let err = Config::parse(&bad).unwrap_err().to_string();
        assert!(err.starts_with("models[0].timeout_ms"), "{err}");
    }

    #[test]
    fn typo_is_refused() {
        let bad = GOOD.replace("timeout_ms = 500", "timeout = 500");
        let err = Config::parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains("models[0]") && err.contains("timeout"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let bad = GOOD
            .replace(
                "provider = \"mock\"\nupstream",
                "provider = \"nope\"\nupstream",
            )
            .replace("keys = [\"sk-acme-0123456789\"]", "keys = [\"short\"]");
        let err = Config::parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains("models[0].provider: unknown provider \"nope\""),
            "{err}"
        );
        assert!(err.contains("tenants[0].keys[0]"), "{err}");
    }
}
