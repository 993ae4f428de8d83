//! `switchyard router train` and `switchyard replay`.

use std::path::Path;

use anyhow::Context;
use switchyard_gateway::replay;
use switchyard_gateway::Config;
use switchyard_router::{read_examples, train, TrainOptions};

/// Trains a complexity classifier from labeled JSONL and saves it as a model file for
/// `[router] classifier`.
pub fn train_router(data: &Path, out: &Path, folds: usize) -> anyhow::Result<()> {
    let examples = read_examples(data).with_context(|| format!("reading {}", data.display()))?;
    let opts = TrainOptions {
        folds,
        ..TrainOptions::default()
    };
    let report = train(&examples, &opts).context("training")?;
    report
        .model
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{}", report.to_markdown());
    println!(
        "saved {} ({} examples); use it with [router] classifier = {:?}",
        out.display(),
        examples.len(),
        out.display().to_string()
    );
    Ok(())
}

/// Re-decides logged traffic under `config`'s routing, from the store `config` names (or
/// `store_url`), without calling any model.
pub async fn replay(
    config_path: &Path,
    since: &str,
    store_url: Option<&str>,
    limit: u32,
) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let window_ms = replay::parse_since(since).map_err(anyhow::Error::msg)?;
    let url = store_url.unwrap_or(&config.store.url);
    let store = switchyard_store::connect(url)
        .await
        .with_context(|| format!("opening the request log at {url}"))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let records: Vec<_> = store
        .list_requests(limit)
        .await
        .context("reading the request log")?
        .into_iter()
        .filter(|r| r.ts_ms >= now_ms - window_ms)
        .collect();
    let report = replay::replay(&config, &records).map_err(anyhow::Error::msg)?;
    println!("{}", report.to_markdown(since));
    Ok(())
}
