//! Turns a validated `Config` into a running pipeline: store, request log, providers, models,
//! keys, and the admin key (generated on first run when none is configured).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use switchyard_local::{ChatEngineConfig, LocalProvider, LocalSettings};
use switchyard_providers::{build_provider, Provider, ProviderKind, ProviderSettings};
use switchyard_state::StateBackend;
use switchyard_store::{RequestLog, Store, StoreError, WriterOptions};

use crate::config::{Config, ProviderConfig, ProviderKindConfig, TenantConfig};
use crate::server::{now_ms, AppState, Runtime};
use crate::stages::admission::Admission;
use crate::stages::auth::{config_key_record, KeyRing, CONFIG_KEY_NAME};
use crate::stages::call::{Backoff, Breakers, Caller};
use crate::stages::experiment::{Experiments, FeedbackStats};
use crate::stages::guardrails::GuardrailSet;
use crate::stages::routing::auto::{load_classifier, AutoRouter};
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

/// How often a replica re-reads keys from the store (keys made or revoked on other replicas) and
/// writes back last-used times.
const KEY_SYNC_INTERVAL: Duration = Duration::from_secs(5);
/// How often retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3_600);

pub async fn build(config: Config) -> Result<Gateway, StartError> {
    build_from(config, None).await
}

/// Builds the gateway; `config_path` is what a hot reload (SIGHUP) re-reads.
pub async fn build_from(
    config: Config,
    config_path: Option<PathBuf>,
) -> Result<Gateway, StartError> {
    let (admin_key, admin_key_source) = resolve_admin_key(&config)?;
    let store = switchyard_store::connect(&config.store.url).await?;
    store.migrate().await?;
    let state =
        switchyard_state::connect_with_prefix(config.state.url.as_deref(), &config.state.prefix)
            .await
            .map_err(|e| StartError::Config(format!("state.url: {e}")))?;

    let keys = KeyRing::new(&admin_key);
    sync_config_keys(&config, &*store).await?;
    keys.replace_all(&store.list_api_keys().await?, now_ms());

    let redaction = crate::logbodies::redaction_hook()
        .map_err(|e| StartError::Config(format!("store.log_bodies: {e}")))?;
    let (log, log_task) = RequestLog::spawn_with_hook(
        store.clone(),
        config.spool_path(),
        WriterOptions {
            batch_size: config.store.batch_size,
            flush_interval: Duration::from_millis(config.store.flush_interval_ms),
            max_queued_body_bytes: config.store.log_backlog_max_bytes,
            max_queued_records: config.store.log_backlog_max_records,
            ..WriterOptions::default()
        },
        Some(redaction),
    );

    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| StartError::Http(e.to_string()))?;
    let cache = Arc::new(
        crate::stages::cache::CacheStores::build(&config, store.clone())
            .map_err(StartError::Config)?,
    );
    cache.restore(&config.cache).await;
    let runtime = build_runtime(config, &store, &state, &http).await?;
    let app = Arc::new(AppState {
        runtime: ArcSwap::from_pointee(runtime),
        keys,
        log,
        store,
        state,
        metrics: crate::metrics::install(),
        shutting_down: AtomicBool::new(false),
        config_path,
        http,
        cache,
    });
    spawn_background(&app);
    app.cache.spawn_purge();
    Ok(Gateway {
        state: app,
        admin_key_source,
        log_task,
    })
}

/// Everything derived from the config file plus the tenants created through the admin API.
pub(crate) async fn build_runtime(
    mut config: Config,
    store: &Arc<dyn Store>,
    state: &Arc<dyn StateBackend>,
    http: &reqwest::Client,
) -> Result<Runtime, StartError> {
    for record in store.list_tenants().await? {
        match serde_json::from_value::<TenantConfig>(record.settings.clone()) {
            Ok(mut t) => {
                t.name = record.name.clone();
                match config.tenants.iter_mut().find(|c| c.name == t.name) {
                    // Settings changed through the API win; the config keeps its keys.
                    Some(existing) => {
                        t.keys = std::mem::take(&mut existing.keys);
                        *existing = t;
                    }
                    None => config.tenants.push(t),
                }
            }
            Err(e) => {
                tracing::warn!(tenant = %record.name, error = %e, "ignoring stored tenant with invalid settings")
            }
        }
    }
    let models = build_models(&config, http)?;
    let breaker_keys: Vec<String> = config
        .models
        .iter()
        .filter_map(|m| models.get(&m.name).map(|e| e.breaker_key.clone()))
        .collect();
    let guardrails = GuardrailSet::new(&config.guardrails)
        .map_err(|e| StartError::Config(format!("guardrails: {e}")))?;
    let classifier = load_classifier(&config).map_err(StartError::Config)?;
    // From the store, so a reload or restart forgets no verdict (and picks up other replicas');
    // a store that cannot answer only means starting without them.
    let feedback = match store.feedback_outcomes().await {
        Ok(rows) => FeedbackStats::from_store(&rows),
        Err(e) => {
            tracing::warn!(error = %e, "could not read feedback outcomes; counting from zero");
            FeedbackStats::default()
        }
    };
    let feedback = Arc::new(feedback);
    let router = AutoRouter::new(&config, Arc::new(classifier))
        .map_err(|e| StartError::Config(format!("router: {e}")))?
        .with_feedback(feedback.clone());
    Ok(Runtime {
        router,
        experiments: Experiments::new(&config.router),
        feedback,
        bodies: crate::logbodies::BodyPolicy::new(&config),
        admission: Arc::new(Admission::new(&config, state.clone(), store.clone())),
        guardrails,
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
        config,
    })
}

/// Re-reads the config file and swaps the runtime; requests in flight finish on the old one.
/// On any error the running configuration stays as it was.
pub async fn reload(app: &AppState) -> Result<(), StartError> {
    let config = match &app.config_path {
        Some(path) => Config::load(path).map_err(|e| StartError::Config(e.to_string()))?,
        None => app.runtime().config.clone(),
    };
    let current = app.runtime();
    for (what, old, new) in [
        ("listen", &current.config.listen, &config.listen),
        ("store.url", &current.config.store.url, &config.store.url),
    ] {
        if old != new {
            tracing::warn!(
                key = what,
                "changed in the config file; takes effect at the next restart"
            );
        }
    }
    if current.config.state.url != config.state.url {
        tracing::warn!(
            key = "state.url",
            "changed in the config file; takes effect at the next restart"
        );
    }
    sync_config_keys(&config, &*app.store).await?;
    app.keys
        .replace_all(&app.store.list_api_keys().await?, now_ms());
    let runtime = build_runtime(config, &app.store, &app.state, &app.http).await?;
    app.runtime.store(Arc::new(runtime));
    tracing::info!("configuration reloaded");
    Ok(())
}

/// Stores the configured tenant keys as digests. A key an admin revoked stays revoked even though
/// the file still lists it: revocation must not be undone by a restart. A key that was configured
/// before and is no longer in the file is revoked: deleting a line must take the key away.
async fn sync_config_keys(config: &Config, store: &dyn Store) -> Result<(), StartError> {
    let now = now_ms();
    let mut configured = std::collections::HashSet::new();
    for tenant in &config.tenants {
        for key in &tenant.keys {
            let record = config_key_record(key, &tenant.name, now);
            configured.insert(record.key_id.clone());
            match store.get_api_key(&record.key_id).await? {
                Some(existing) if existing.revoked => {
                    tracing::warn!(key_id = %record.key_id, tenant = %tenant.name, "configured key was revoked; it stays revoked")
                }
                Some(existing)
                    if existing.tenant == record.tenant && existing.role == record.role => {}
                _ => store.upsert_api_key(&record).await?,
            }
        }
    }
    for stale in store.list_api_keys().await? {
        if stale.name == CONFIG_KEY_NAME && !stale.revoked && !configured.contains(&stale.key_id) {
            store.revoke_api_key(&stale.key_id, now).await?;
            tracing::warn!(key_id = %stale.key_id, tenant = %stale.tenant, "key removed from the config file: revoked");
        }
    }
    Ok(())
}

fn spawn_background(app: &Arc<AppState>) {
    if let Some(handle) = app.metrics.clone() {
        // Histograms buffer raw samples until upkeep folds them into buckets; without it memory
        // grows with traffic between scrapes.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_SYNC_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { break };
            let used = app.keys.take_last_used();
            if !used.is_empty() {
                if let Err(e) = app.store.touch_api_keys(&used).await {
                    tracing::warn!(error = %e, "could not record key last-used times");
                }
            }
            match app.store.list_api_keys().await {
                Ok(records) => app.keys.replace_all(&records, now_ms()),
                Err(e) => tracing::warn!(error = %e, "key sync failed; keeping the current keys"),
            }
        }
    });
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RETENTION_INTERVAL);
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { break };
            crate::server::run_retention(&app, None).await;
        }
    });
}

fn build_models(config: &Config, client: &reqwest::Client) -> Result<ModelTable, StartError> {
    use crate::stages::call::DeploymentStats;
    use crate::stages::routing::balance::ModelGroup;
    let mut providers = std::collections::HashMap::new();
    for p in &config.providers {
        let kind = match p.kind {
            ProviderKindConfig::Openai => ProviderKind::OpenAi,
            ProviderKindConfig::Anthropic => ProviderKind::Anthropic,
            ProviderKindConfig::Azure => ProviderKind::Azure,
            ProviderKindConfig::Gemini => ProviderKind::Gemini,
            ProviderKindConfig::Local => {
                providers.insert(p.name.clone(), open_local(p)?);
                continue;
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
    // Entries naming the same deployment share its load and health, as they share its breaker.
    let mut stats: std::collections::HashMap<String, Arc<DeploymentStats>> =
        std::collections::HashMap::new();
    for m in &config.models {
        let provider = providers.get(&m.provider).cloned().ok_or_else(|| {
            StartError::Config(format!("model {}: unknown provider {}", m.name, m.provider))
        })?;
        let upstream = m.upstream.clone().unwrap_or_else(|| m.name.clone());
        let breaker_key = format!("{}/{}", m.provider, upstream);
        let deployment = stats
            .entry(breaker_key.clone())
            .or_insert_with(|| Arc::new(DeploymentStats::new(breaker_key.clone())))
            .clone();
        table.insert(ModelEntry {
            breaker_key,
            stats: deployment,
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
            self_hosted: config.model_is_self_hosted(&m.name),
        });
    }
    for g in &config.model_groups {
        let group = ModelGroup::new(g, |name| table.get(name).cloned())
            .map_err(|e| StartError::Config(e.to_string()))?;
        table.insert_group(group);
    }
    Ok(table)
}

/// Loads the in-process models (or reuses those already loaded with the same settings).
fn open_local(p: &ProviderConfig) -> Result<Arc<dyn Provider>, StartError> {
    let chat = p.model_path.as_ref().map(|path| {
        let mut engine = ChatEngineConfig::new(path);
        engine.parallel = p.parallel.unwrap_or(engine.parallel);
        engine.context_size = p.context_size.unwrap_or(engine.context_size);
        engine.threads = p.threads.or(engine.threads);
        engine.batch_size = p.batch_size.unwrap_or(engine.batch_size);
        engine
    });
    let mut settings = LocalSettings::new(&p.name);
    settings.chat = chat;
    settings.embedding_model = p.embedding_model_path.clone();
    settings.default_max_tokens = p.default_max_tokens.unwrap_or(settings.default_max_tokens);
    settings.default_temperature = p
        .default_temperature
        .unwrap_or(settings.default_temperature);
    let provider = LocalProvider::open(settings)
        .map_err(|e| StartError::Config(format!("provider {}: {e}", p.name)))?;
    Ok(Arc::new(provider))
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
