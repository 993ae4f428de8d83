//! `switchyard cache warm FILE.jsonl`: pre-computes answers to predictable questions by sending
//! them through a running gateway, so they take the same path (tenant scoping, guardrails,
//! routing) as live traffic and land in the same cache.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

pub struct WarmArgs<'a> {
    pub file: &'a Path,
    pub url: &'a str,
    pub key: &'a str,
    pub model: Option<&'a str>,
    pub concurrency: usize,
}

/// Each line is a chat request body (`{"model": ..., "messages": [...]}`), or `{"prompt": "..."}`
/// for a single user question (the model then comes from `--model`).
fn parse_line(line: &str, model: Option<&str>) -> anyhow::Result<Value> {
    let mut v: Value = serde_json::from_str(line)?;
    if let Some(prompt) = v.get("prompt").and_then(Value::as_str) {
        v = serde_json::json!({"messages": [{"role": "user", "content": prompt}]});
    }
    let obj = v
        .as_object_mut()
        .context("each line must be a JSON object")?;
    if !obj.contains_key("messages") {
        anyhow::bail!("each line needs `messages` or `prompt`");
    }
    if !obj.contains_key("model") {
        let m = model.context("the line names no model and --model is not given")?;
        obj.insert("model".into(), Value::String(m.to_owned()));
    }
    obj.remove("stream");
    Ok(v)
}

pub async fn warm(args: WarmArgs<'_>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let bodies = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_line(l, args.model).with_context(|| format!("line {}", i + 1)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bar = ProgressBar::new(bodies.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed_precise}, eta {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let client = reqwest::Client::new();
    let endpoint = format!("{}/v1/chat/completions", args.url.trim_end_matches('/'));
    let (stored, cached, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    futures::stream::iter(bodies)
        .for_each_concurrent(args.concurrency.max(1), |body| {
            let (client, endpoint, bar) = (&client, &endpoint, &bar);
            let (stored, cached, failed) = (stored.clone(), cached.clone(), failed.clone());
            async move {
                let resp = client
                    .post(endpoint.as_str())
                    .bearer_auth(args.key)
                    .json(&body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        let outcome = r
                            .headers()
                            .get("x-switchyard-cache")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let _ = r.bytes().await;
                        if outcome.starts_with("hit") {
                            cached.fetch_add(1, Ordering::Relaxed);
                        } else {
                            stored.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(r) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        bar.println(format!(
                            "HTTP {}: {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        ));
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        bar.println(format!("request failed: {e}"));
                    }
                }
                bar.set_message(format!(
                    "computed {} · already cached {} · failed {}",
                    stored.load(Ordering::Relaxed),
                    cached.load(Ordering::Relaxed),
                    failed.load(Ordering::Relaxed)
                ));
                bar.inc(1);
            }
        })
        .await;
    bar.finish();
    let failed = failed.load(Ordering::Relaxed);
    println!(
        "warmed: {} computed, {} already cached, {} failed",
        stored.load(Ordering::Relaxed),
        cached.load(Ordering::Relaxed),
        failed
    );
    if failed > 0 {
        anyhow::bail!("{failed} requests failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_chat_bodies_or_prompts() {
        let v = parse_line(r#"{"prompt": "hi"}"#, Some("m")).unwrap();
        assert_eq!(v["model"], "m");
        assert_eq!(v["messages"][0]["content"], "hi");
        let v = parse_line(r#"{"model": "x", "messages": [], "stream": true}"#, None).unwrap();
        assert_eq!(v["model"], "x");
        assert!(v.get("stream").is_none());
        assert!(parse_line(r#"{"prompt": "hi"}"#, None).is_err());
        assert!(parse_line(r#"{"model": "x"}"#, None).is_err());
    }
}
