//! Turns a validated `Config` into a running pipeline: store, request log, providers, models,
//! keys, and the admin key (generated on first run when none is configured).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use switchyard_providers::{build_provider, ProviderKind, ProviderSettings};
use switchyard_store::{ApiKeyRecord, RequestLog, StoreError, WriterOptions};

use crate::config::{Config, ProviderKindConfig};
use crate::server::AppState;
use crate::stages::admission::Admission;
use crate::stages::auth::{digest, key_id, KeyRing};
use crate::stages::call::{Backoff, Breakers, Caller};
use crate::stages::routing::{ModelEntry, ModelTable};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("admin key file {path}: {source}")]
    AdminKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("{0}")]
    Config(String),
}

/// Where the admin key came from, so the operator is told where to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminKeySource {
    Config,
    Env,
    File(PathBuf),
    Generated(PathBuf),
}

pub struct Gateway {
    pub state: Arc<AppState>,
    pub admin_key_source: AdminKeySource,
    pub log_task: tokio::task::JoinHandle<()>,
}

pub const ADMIN_KEY_ENV: &str = "SWITCHYARD_ADMIN_KEY";

pub async fn build(config: Config) -> Result<Gateway, StartError> {
    let (admin_key, admin_key_source) = resolve_admin_key(&config)?;
    let store = switchyard_store::connect(&config.store.url).await?;
    store.migrate().await?;

    let mut keys = KeyRing::new(&admin_key);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for tenant in &config.tenants {
        for key in &tenant.keys {
            let d = digest(key);
            keys.insert_digest(d, &tenant.name);
            store
                .upsert_api_key(&ApiKeyRecord {
                    key_id: key_id(&d),
                    key_hash: hex::encode(d),
                    tenant: tenant.name.clone(),
                    created_ms: now_ms,
                    revoked: false,
                })
                .await?;
        }
    }

    let (log, log_task) = RequestLog::spawn(
        store.clone(),
        config.spool_path(),
        WriterOptions {
            batch_size: config.store.batch_size,
            flush_interval: Duration::from_millis(config.store.flush_interval_ms),
            ..WriterOptions::default()
        },
    );

    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| StartError::Http(e.to_string()))?;
    let models = build_models(&config, &client)?;
    let breaker_keys: Vec<String> = config
        .models
        .iter()
        .filter_map(|m| models.get(&m.name).map(|e| e.breaker_key.clone()))
        .collect();

    let state = AppState {
        keys,
        admission: Admission::new(
            config.server.max_body_bytes,
            config
                .tenants
                .iter()
                .filter_map(|t| t.rpm.map(|rpm| (t.name.clone(), rpm))),
        ),
        caller: Caller {
            breakers: Breakers::new(
                config.breaker.failure_threshold,
                Duration::from_millis(config.breaker.cooldown_ms),
                breaker_keys.iter().map(String::as_str),
            ),
            backoff: Backoff {
                base: Duration::from_millis(config.retry.backoff_base_ms),
                max: Duration::from_millis(config.retry.backoff_max_ms),
            },
            deadline: Duration::from_millis(config.retry.deadline_ms),
            max_retry_after: Duration::from_millis(config.retry.max_retry_after_ms),
        },
        models,
        log,
        store,
        metrics: crate::metrics::install(),
        shutting_down: AtomicBool::new(false),
        config,
    };
    Ok(Gateway {
        state: Arc::new(state),
        admin_key_source,
        log_task,
    })
}

fn build_models(config: &Config, client: &reqwest::Client) -> Result<ModelTable, StartError> {
    let mut providers = std::collections::HashMap::new();
    for p in &config.providers {
        let kind = match p.kind {
            ProviderKindConfig::Openai => ProviderKind::OpenAi,
            ProviderKindConfig::Anthropic => ProviderKind::Anthropic,
            ProviderKindConfig::Azure => ProviderKind::Azure,
            ProviderKindConfig::Gemini => ProviderKind::Gemini,
            ProviderKindConfig::Local => {
                return Err(StartError::Config(format!(
                    "provider {}: kind \"local\" is not available in this build",
                    p.name
                )))
            }
        };
        let base_url = p.resolved_base_url().ok_or_else(|| {
            StartError::Config(format!("provider {}: base_url is required", p.name))
        })?;
        let mut settings = ProviderSettings::new(&p.name, kind, &base_url);
        settings.api_key = p.resolved_api_key();
        settings.api_version = p.api_version.clone();
        if let Some(n) = p.default_max_tokens {
            settings.default_max_tokens = n;
        }
        settings.headers = p
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        providers.insert(p.name.clone(), build_provider(settings, client.clone()));
    }
    let mut table = ModelTable::default();
    for m in &config.models {
        let provider = providers.get(&m.provider).cloned().ok_or_else(|| {
            StartError::Config(format!("model {}: unknown provider {}", m.name, m.provider))
        })?;
        let upstream = m.upstream.clone().unwrap_or_else(|| m.name.clone());
        table.insert(ModelEntry {
            breaker_key: format!("{}/{}", m.provider, upstream),
            name: m.name.clone(),
            provider,
            upstream,
            input_usd_per_mtok: m.input_usd_per_mtok,
            output_usd_per_mtok: m.output_usd_per_mtok,
            timeout: Duration::from_millis(m.timeout_ms.unwrap_or(config.retry.timeout_ms)),
            max_retries: m.max_retries.unwrap_or(config.retry.max_retries),
            fallbacks: m.fallbacks.clone(),
            context_window: m.context_window,
            context_fallback: m.context_fallback.clone(),
        });
    }
    Ok(table)
}

/// The admin key from `[admin] key`, then `SWITCHYARD_ADMIN_KEY`, then `<data_dir>/admin.key`;
/// on first run a new random key is written there (mode 0600). The gateway never runs without one.
fn resolve_admin_key(config: &Config) -> Result<(String, AdminKeySource), StartError> {
    if let Some(k) = &config.admin.key {
        return Ok((k.clone(), AdminKeySource::Config));
    }
    if let Ok(k) = std::env::var(ADMIN_KEY_ENV) {
        let k = k.trim().to_owned();
        if k.len() < 16 {
            return Err(StartError::Config(format!(
                "{ADMIN_KEY_ENV}: must be at least 16 characters"
            )));
        }
        return Ok((k, AdminKeySource::Env));
    }
    let path = config.data_dir().join("admin.key");
    let io = |source| StartError::AdminKey {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(k) if k.trim().len() >= 16 => {
            return Ok((k.trim().to_owned(), AdminKeySource::File(path)))
        }
        Ok(_) => {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "shorter than 16 characters",
            )))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        Err(_) => {}
    }
    let key = format!("sk-admin-{}", hex::encode(rand::random::<[u8; 24]>()));
    write_secret(&path, &key).map_err(io)?;
    Ok((key, AdminKeySource::Generated(path)))
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}
