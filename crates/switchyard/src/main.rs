//! `switchyard`: the gateway binary. `anyhow` lives here, at the edge, and nowhere else.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard_gateway::{AdminKeySource, Config};

mod routing_cmds;
mod warm;

// The request path makes many small, short-lived allocations across worker threads. jemalloc,
// with the options in .cargo/config.toml, matched mimalloc's throughput and kept peak RSS lower
// with 32 KiB prompts, where mimalloc held freed pages for a second before returning them
// (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An OpenAI-compatible LLM gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway.
    Serve {
        /// Without a config file, serves the embedded default: the local chat and embedding
        /// models (`local-chat`, `local-embed`) with a SQLite store under the data folder.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Embedded default only: where the store, spool and generated admin key live.
        #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Embedded default only: where `make setup` put the model files.
        #[arg(long, env = "SWITCHYARD_MODELS_DIR", default_value = "models")]
        models_dir: PathBuf,
        /// Overrides `listen` from the config file.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Response cache tools.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Validate a config file and exit non-zero, naming the bad key, if it is invalid.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Complexity-router tools.
    Router {
        #[command(subcommand)]
        command: RouterCommand,
    },
    /// Re-decide logged `auto` traffic under a new routing config without calling any model,
    /// and report the projected cost and the share of traffic per model.
    Replay {
        /// The config whose routing (tiers, prices, classifier, tenant rules) is replayed; its
        /// `[store] url` is read unless --store is given.
        #[arg(long, short)]
        config: PathBuf,
        /// How far back: 7d, 12h, 30m.
        #[arg(long, default_value = "7d")]
        since: String,
        #[arg(long)]
        store: Option<String>,
        /// Newest requests read at most.
        #[arg(long, default_value_t = 100_000)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum RouterCommand {
    /// Train the complexity classifier from labeled JSONL (`{"prompt"|"messages", "tier"}`
    /// lines) and save a model file for `[router] classifier`.
    Train {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "router-model.json")]
        out: PathBuf,
        /// Cross-validation folds for the report.
        #[arg(long, default_value_t = 5)]
        folds: usize,
    },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Pre-compute answers for predictable questions through a running gateway. FILE is JSONL:
    /// chat request bodies, or `{"prompt": "..."}` lines with --model.
    Warm {
        file: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The API key whose tenant the answers are cached for.
        #[arg(long, env = "SWITCHYARD_API_KEY")]
        key: String,
        #[arg(long)]
        model: Option<String>,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // llama.cpp reports every tensor at info level while loading a model.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,llama-cpp-2=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Router {
            command: RouterCommand::Train { data, out, folds },
        } => routing_cmds::train_router(&data, &out, folds),
        Command::Replay {
            config,
            since,
            store,
            limit,
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| {
                rt.block_on(routing_cmds::replay(
                    &config,
                    &since,
                    store.as_deref(),
                    limit,
                ))
            }),
        Command::Cache {
            command:
                CacheCommand::Warm {
                    file,
                    url,
                    key,
                    model,
                    concurrency,
                },
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| {
                rt.block_on(warm::warm(warm::WarmArgs {
                    file: &file,
                    url: &url,
                    key: &key,
                    model: model.as_deref(),
                    concurrency,
                }))
            }),
        Command::Serve {
            config,
            data_dir,
            models_dir,
            listen,
        } => load_for_serve(config, &data_dir, &models_dir).and_then(|(config, path)| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")
                .and_then(|rt| rt.block_on(serve(config, path, listen)))
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    println!(
        "{}: ok ({} providers, {} models, {} tenants)",
        path.display(),
        config.providers.len(),
        config.models.len(),
        config.tenants.len()
    );
    Ok(())
}

/// The config file, or the embedded default when there is none.
fn load_for_serve(
    path: Option<PathBuf>,
    data_dir: &std::path::Path,
    models_dir: &std::path::Path,
) -> anyhow::Result<(Config, Option<PathBuf>)> {
    match path {
        Some(path) => Ok((Config::load(&path)?, Some(path))),
        None => {
            let config = Config::embedded(data_dir, models_dir)
                .context("no --config given, and the embedded default cannot start")?;
            tracing::info!(
                data_dir = %data_dir.display(),
                models_dir = %models_dir.display(),
                "no --config given: serving the embedded default (local-chat, local-embed)"
            );
            Ok((config, None))
        }
    }
}

async fn serve(
    mut config: Config,
    path: Option<PathBuf>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    if let Some(addr) = listen {
        config.listen = addr.to_string();
    }
    let addr = config.listen.clone();
    let gateway = switchyard_gateway::build_from(config, path).await?;
    match &gateway.admin_key_source {
        AdminKeySource::Generated(p) => {
            tracing::warn!(path = %p.display(), "no admin key configured: generated one and wrote it to this file (mode 0600)");
            println!("admin key generated: {} (mode 0600)", p.display());
        }
        AdminKeySource::File(p) => {
            tracing::info!(path = %p.display(), "admin key read from file");
            println!("admin key: {}", p.display());
        }
        AdminKeySource::Env => tracing::info!("admin key read from SWITCHYARD_ADMIN_KEY"),
        AdminKeySource::Config => tracing::info!("admin key read from [admin] key"),
    }
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, store = gateway.state.store.backend(), "switchyard listening");
    println!("switchyard listening on http://{local}");
    spawn_reload_on_sighup(gateway.state.clone());
    switchyard_gateway::serve(gateway.state, listener, shutdown_signal()).await?;
    if let Err(e) = gateway.log_task.await {
        tracing::warn!(error = %e, "request log writer ended abnormally");
    }
    Ok(())
}

/// SIGHUP re-reads the config file; a bad file is refused and the running config stays.
#[cfg(unix)]
fn spawn_reload_on_sighup(state: std::sync::Arc<switchyard_gateway::AppState>) {
    use tokio::signal::unix::{signal, SignalKind};
    tokio::spawn(async move {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; hot reload only via the admin API");
                return;
            }
        };
        while hup.recv().await.is_some() {
            if let Err(e) = switchyard_gateway::server::reload_audited(&state, None).await {
                tracing::error!(error = %e, "reload refused; the running configuration is unchanged");
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_reload_on_sighup(_state: std::sync::Arc<switchyard_gateway::AppState>) {}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
