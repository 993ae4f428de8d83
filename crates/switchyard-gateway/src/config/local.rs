//! The local (in-process) provider's settings, and the embedded default configuration that
//! `switchyard serve` uses when it is given no config file.

use std::path::Path;

use super::{Config, ConfigError, ProviderConfig, ProviderKindConfig};

/// File names that `make setup` puts under the models folder.
pub const DEFAULT_CHAT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_EMBEDDING_MODEL: &str = "all-MiniLM-L6-v2";

pub(super) fn validate_local_fields(p: &ProviderConfig, at: &str, errs: &mut Vec<String>) {
    let local_only = [
        ("model_path", p.model_path.is_some()),
        ("embedding_model_path", p.embedding_model_path.is_some()),
        ("parallel", p.parallel.is_some()),
        ("context_size", p.context_size.is_some()),
        ("threads", p.threads.is_some()),
        ("batch_size", p.batch_size.is_some()),
        ("default_temperature", p.default_temperature.is_some()),
    ];
    if p.kind != ProviderKindConfig::Local {
        for (key, set) in local_only {
            if set {
                errs.push(format!("{at}.{key}: only valid for kind = \"local\""));
            }
        }
        return;
    }
    if p.base_url.is_some() {
        errs.push(format!(
            "{at}.base_url: kind = \"local\" runs in-process and has no base_url"
        ));
    }
    match (&p.model_path, &p.embedding_model_path) {
        (None, None) => errs.push(format!(
            "{at}.model_path: kind = \"local\" needs model_path, embedding_model_path or both"
        )),
        (chat, embed) => {
            if let Some(path) = chat {
                if !path.is_file() {
                    errs.push(format!(
                        "{at}.model_path: {} not found (run `make setup` to fetch the model)",
                        path.display()
                    ));
                }
            }
            if let Some(dir) = embed {
                for file in ["config.json", "tokenizer.json", "model.safetensors"] {
                    if !dir.join(file).is_file() {
                        errs.push(format!(
                            "{at}.embedding_model_path: {} not found (run `make setup` to fetch the model)",
                            dir.join(file).display()
                        ));
                    }
                }
            }
        }
    }
    if p.parallel == Some(0) {
        errs.push(format!("{at}.parallel: must be at least 1"));
    }
    if matches!(p.context_size, Some(n) if n < 256) {
        errs.push(format!("{at}.context_size: must be at least 256"));
    }
    if matches!(p.default_temperature, Some(t) if !(0.0..=2.0).contains(&t)) {
        errs.push(format!("{at}.default_temperature: must be between 0 and 2"));
    }
    if p.threads == Some(0) {
        errs.push(format!("{at}.threads: must be at least 1"));
    }
    if let Some(b) = p.batch_size {
        if b < p.parallel.unwrap_or(8) {
            errs.push(format!(
                "{at}.batch_size: must be at least parallel, so every sequence fits one step"
            ));
        }
    }
}

impl Config {
    /// What `switchyard serve` runs without a config file: the local chat and embedding models
    /// from `models_dir`, the SQLite store and generated secrets under `data_dir`.
    pub fn embedded(data_dir: &Path, models_dir: &Path) -> Result<Config, ConfigError> {
        let quote = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
        let store = data_dir.join("switchyard.db");
        let text = format!(
            r#"
listen = "127.0.0.1:8080"

[server]
data_dir = {data_dir}

[store]
url = {store_url}

[[providers]]
name = "local"
kind = "local"
self_hosted = true
model_path = {chat}
embedding_model_path = {embed}

[[models]]
name = "local-chat"
provider = "local"
upstream = "smollm2-135m-instruct"
timeout_ms = 120000
context_window = 8192

[[models]]
name = "local-embed"
provider = "local"
upstream = "all-minilm-l6-v2"
"#,
            data_dir = quote(data_dir),
            store_url = toml::Value::String(format!("sqlite://{}", store.display())),
            chat = quote(&models_dir.join(DEFAULT_CHAT_MODEL)),
            embed = quote(&models_dir.join(DEFAULT_EMBEDDING_MODEL)),
        );
        Config::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_provider(extra: &str) -> String {
        format!(
            r#"
[[providers]]
name = "local"
kind = "local"
{extra}
"#
        )
    }

    fn errors(text: &str) -> String {
        match Config::parse(text) {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        }
    }

    #[test]
    fn a_local_provider_needs_a_model() {
        let e = errors(&local_provider(""));
        assert!(
            e.contains("providers[0].model_path: kind = \"local\" needs"),
            "{e}"
        );
    }

    #[test]
    fn missing_model_files_name_the_key_and_the_fix() {
        let e = errors(&local_provider(
            "model_path = \"/nonexistent/m.gguf\"\nembedding_model_path = \"/nonexistent/e\"",
        ));
        assert!(
            e.contains("providers[0].model_path: /nonexistent/m.gguf not found (run `make setup`"),
            "{e}"
        );
        assert!(
            e.contains(
                "providers[0].embedding_model_path: /nonexistent/e/tokenizer.json not found"
            ),
            "{e}"
        );
    }

    #[test]
    fn engine_settings_are_refused_on_remote_providers() {
        let e = errors("[[providers]]\nname = \"o\"\nkind = \"openai\"\nparallel = 4\n");
        assert!(
            e.contains("providers[0].parallel: only valid for kind = \"local\""),
            "{e}"
        );
    }

    #[test]
    fn engine_sizes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.gguf");
        std::fs::write(&model, b"x").unwrap();
        let e = errors(&local_provider(&format!(
            "model_path = {:?}\nparallel = 0\ncontext_size = 10\nthreads = 0\nbatch_size = 4\nbase_url = \"http://x\"",
            model.display().to_string()
        )));
        for key in ["parallel", "context_size", "threads", "base_url"] {
            assert!(e.contains(&format!("providers[0].{key}:")), "{key}: {e}");
        }
    }

    #[test]
    fn the_embedded_default_names_its_missing_models() {
        let e = Config::embedded(Path::new("/tmp/sy-data"), Path::new("/nonexistent-models"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SmolLM2-135M-Instruct.Q4_1.gguf not found"),
            "{e}"
        );
        assert!(
            e.contains("all-MiniLM-L6-v2/model.safetensors not found"),
            "{e}"
        );
    }

    #[test]
    fn the_embedded_default_serves_local_chat_and_embeddings() {
        let models = tempfile::tempdir().unwrap();
        std::fs::write(models.path().join(DEFAULT_CHAT_MODEL), b"x").unwrap();
        let embed = models.path().join(DEFAULT_EMBEDDING_MODEL);
        std::fs::create_dir(&embed).unwrap();
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            std::fs::write(embed.join(f), b"x").unwrap();
        }
        let c = Config::embedded(Path::new("/tmp/sy data"), models.path()).unwrap();
        let names: Vec<_> = c.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["local-chat", "local-embed"]);
        assert_eq!(c.store.url, "sqlite:///tmp/sy data/switchyard.db");
        assert_eq!(c.data_dir(), Path::new("/tmp/sy data"));
    }
}
