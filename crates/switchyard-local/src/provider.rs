//! The local tier as a [`Provider`]: OpenAI chat and embeddings requests in, engine calls out.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ChatMessage, Choice, Delta,
    Embedding, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage, PromptTokensDetails, Role,
    Usage,
};
use switchyard_providers::{ChunkStream, Provider, ProviderError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::embed::Embedder;
use crate::engine::{ChatEngine, ChatEngineConfig, EngineEvent, Finished, Sampling};
use crate::LocalError;

/// What `[[providers]] kind = "local"` configures.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSettings {
    pub name: String,
    pub chat: Option<ChatEngineConfig>,
    /// Directory holding `config.json`, `tokenizer.json` and `model.safetensors`.
    pub embedding_model: Option<PathBuf>,
    /// Used when a request sends no `temperature`. Small models answer much better greedily
    /// (SmolLM2-135M names Paris as France's capital 16 times in 20 at 1.0, always at 0), so the
    /// local default is 0 rather than OpenAI's 1.0.
    pub default_temperature: f32,
    /// Used when a request sends no `max_tokens`: a small model at a high temperature may never
    /// produce an end token, and would otherwise hold a sequence until the context is full.
    pub default_max_tokens: u32,
}

impl LocalSettings {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            chat: None,
            embedding_model: None,
            default_temperature: 0.0,
            default_max_tokens: 1024,
        }
    }
}

pub struct LocalProvider {
    name: String,
    default_temperature: f32,
    default_max_tokens: u32,
    chat: Option<Arc<ChatEngine>>,
    embedder: Option<Arc<Embedder>>,
}

/// Loaded models outlive a configuration reload: a reload that keeps the same settings gets the
/// same engine back instead of loading the weights a second time.
static CHAT_ENGINES: Mutex<Vec<(ChatEngineConfig, Weak<ChatEngine>)>> = Mutex::new(Vec::new());
static EMBEDDERS: Mutex<Vec<(PathBuf, Weak<Embedder>)>> = Mutex::new(Vec::new());

fn shared<K: PartialEq + Clone, V>(
    registry: &Mutex<Vec<(K, Weak<V>)>>,
    key: &K,
    load: impl FnOnce() -> Result<Arc<V>, LocalError>,
) -> Result<Arc<V>, LocalError> {
    let mut entries = registry.lock().unwrap_or_else(|e| e.into_inner());
    entries.retain(|(_, weak)| weak.strong_count() > 0);
    if let Some(live) = entries
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, weak)| weak.upgrade())
    {
        return Ok(live);
    }
    let value = load()?;
    entries.push((key.clone(), Arc::downgrade(&value)));
    Ok(value)
}

impl LocalProvider {
    /// Loads (or reuses) the configured models. Fails at start on a missing or corrupt file.
    pub fn open(settings: LocalSettings) -> Result<Self, LocalError> {
        let chat = settings
            .chat
            .map(|config| shared(&CHAT_ENGINES, &config, || ChatEngine::start(config.clone())))
            .transpose()?;
        let embedder = settings
            .embedding_model
            .map(|dir| shared(&EMBEDDERS, &dir, || Embedder::load(&dir)))
            .transpose()?;
        Ok(Self {
            name: settings.name,
            default_temperature: settings.default_temperature,
            default_max_tokens: settings.default_max_tokens,
            chat,
            embedder,
        })
    }

    fn engine(&self) -> Result<&Arc<ChatEngine>, ProviderError> {
        self.chat.as_ref().ok_or_else(|| {
            ProviderError::Unsupported(format!("provider {} has no chat model", self.name))
        })
    }

    /// Validates the request, renders the prompt and queues it.
    fn start(
        &self,
        req: &ChatCompletionRequest,
    ) -> Result<mpsc::UnboundedReceiver<EngineEvent>, ProviderError> {
        let engine = self.engine()?;
        if req.n.unwrap_or(1) != 1 {
            return Err(ProviderError::InvalidRequest(
                "the local engine generates one choice per request (n = 1)".into(),
            ));
        }
        if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(ProviderError::Unsupported(
                "the local engine does not support tool calls".into(),
            ));
        }
        let messages: Vec<(String, String)> = req
            .messages
            .iter()
            .map(|m| (role_name(m.role).to_owned(), m.text()))
            .collect();
        let prompt = engine.render(&messages).map_err(to_provider_error)?;
        let room = engine.context_limit().saturating_sub(prompt.len() as u32);
        let sampling = Sampling {
            temperature: req
                .temperature
                .map_or(self.default_temperature, |t| t as f32)
                .clamp(0.0, 2.0),
            top_p: req.top_p.unwrap_or(1.0).clamp(0.0, 1.0) as f32,
            seed: req.seed.map_or_else(random_seed, |s| s as u32),
            max_tokens: req
                .max_output_tokens()
                .unwrap_or(self.default_max_tokens)
                .min(room),
            stop: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
        };
        engine.submit(prompt, sampling).map_err(to_provider_error)
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System | Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool | Role::Function => "tool",
    }
}

fn to_provider_error(e: LocalError) -> ProviderError {
    match e {
        LocalError::ContextLength { .. } => ProviderError::Status {
            status: 400,
            message: e.to_string(),
            retry_after: None,
            context_length_exceeded: true,
        },
        LocalError::InvalidRequest(m) => ProviderError::InvalidRequest(m),
        LocalError::Unsupported(m) => ProviderError::Unsupported(m),
        LocalError::Unavailable(m) => ProviderError::Status {
            status: 503,
            message: m,
            retry_after: Some(Duration::from_millis(100)),
            context_length_exceeded: false,
        },
        LocalError::Load(m) | LocalError::Inference(m) => ProviderError::Status {
            status: 500,
            message: m,
            retry_after: None,
            context_length_exceeded: false,
        },
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_seed() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

fn completion_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "chatcmpl-local-{nanos:x}{:04x}",
        NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

fn usage(done: &Finished) -> Usage {
    let mut usage = Usage::new(
        u64::from(done.prompt_tokens),
        u64::from(done.completion_tokens),
    );
    usage.prompt_tokens_details = Some(PromptTokensDetails {
        cached_tokens: u64::from(done.cached_prompt_tokens),
    });
    usage
}

/// OpenAI's base64 encoding: the little-endian bytes of each f32 (what the official SDKs request
/// by default and decode).
fn encode_base64(v: &[f32]) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn engine_failure(message: String) -> ProviderError {
    to_provider_error(LocalError::Unavailable(message))
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn chat(
        &self,
        req: &ChatCompletionRequest,
        upstream_model: &str,
    ) -> Result<ChatCompletionResponse, ProviderError> {
        let mut events = self.start(req)?;
        let mut text = String::new();
        while let Some(event) = events.recv().await {
            match event {
                EngineEvent::Text(t) => text.push_str(&t),
                EngineEvent::Failed(m) => return Err(engine_failure(m)),
                EngineEvent::Done(done) => {
                    return Ok(ChatCompletionResponse {
                        id: completion_id(),
                        object: "chat.completion".into(),
                        created: unix_now(),
                        model: upstream_model.to_owned(),
                        choices: vec![Choice {
                            index: 0,
                            message: ChatMessage::new(Role::Assistant, text),
                            finish_reason: Some(done.reason.as_str().to_owned()),
                            logprobs: None,
                        }],
                        usage: Some(usage(&done)),
                        system_fingerprint: None,
                        extra: serde_json::Map::new(),
                    });
                }
            }
        }
        Err(engine_failure("the local engine stopped".into()))
    }

    async fn chat_stream(
        &self,
        req: &ChatCompletionRequest,
        upstream_model: &str,
    ) -> Result<ChunkStream, ProviderError> {
        let mut events = self.start(req)?;
        // Wait for the first event so that a request the engine cannot serve fails as a plain
        // error (and may fall back) instead of as a broken stream.
        let first = match events.recv().await {
            Some(EngineEvent::Failed(m)) => return Err(engine_failure(m)),
            None => {
                return Err(engine_failure(
                    "the local engine stopped before answering".into(),
                ))
            }
            Some(event) => event,
        };
        let id = completion_id();
        let model = upstream_model.to_owned();
        let created = unix_now();
        let mut opened = false;
        let events =
            futures::stream::once(async move { first }).chain(UnboundedReceiverStream::new(events));
        let stream = events.flat_map(move |event| {
            let base = ChatCompletionChunk::new(&id, &model, created);
            let chunks: Vec<Result<ChatCompletionChunk, ProviderError>> = match event {
                EngineEvent::Text(text) => {
                    let delta = Delta {
                        role: (!opened).then_some(Role::Assistant),
                        content: Some(text),
                        tool_calls: None,
                        extra: serde_json::Map::new(),
                    };
                    opened = true;
                    vec![Ok(base.with_delta(delta, None))]
                }
                EngineEvent::Done(done) => {
                    let delta = Delta {
                        role: (!opened).then_some(Role::Assistant),
                        content: None,
                        tool_calls: None,
                        extra: serde_json::Map::new(),
                    };
                    let mut closer = ChatCompletionChunk::new(&id, &model, created);
                    closer.usage = Some(usage(&done));
                    vec![
                        Ok(base.with_delta(delta, Some(done.reason.as_str().to_owned()))),
                        Ok(closer),
                    ]
                }
                EngineEvent::Failed(m) => vec![Err(ProviderError::StreamBroken(m))],
            };
            futures::stream::iter(chunks)
        });
        Ok(stream.boxed())
    }

    async fn embeddings(
        &self,
        req: &EmbeddingsRequest,
        upstream_model: &str,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let embedder = self.embedder.clone().ok_or_else(|| {
            ProviderError::Unsupported(format!("provider {} has no embedding model", self.name))
        })?;
        let texts: Vec<String> = req
            .input
            .texts()
            .ok_or_else(|| {
                ProviderError::InvalidRequest(
                    "the local embedding model takes text input, not token ids".into(),
                )
            })?
            .into_iter()
            .map(str::to_owned)
            .collect();
        if let Some(d) = req.dimensions {
            if d as usize != embedder.dimensions() {
                return Err(ProviderError::InvalidRequest(format!(
                    "the local embedding model produces {} dimensions, not {d}",
                    embedder.dimensions()
                )));
            }
        }
        let result = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed(&refs)
        })
        .await
        .map_err(|e| engine_failure(format!("embedding task failed: {e}")))?
        .map_err(to_provider_error)?;
        let base64 = req.encoding_format.as_deref() == Some("base64");
        let data = result
            .vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| Embedding {
                object: "embedding".into(),
                index: i as u32,
                embedding: if base64 {
                    Value::String(encode_base64(&v))
                } else {
                    Value::from(v)
                },
            })
            .collect();
        Ok(EmbeddingsResponse {
            object: "list".into(),
            data,
            model: upstream_model.to_owned(),
            usage: EmbeddingsUsage {
                prompt_tokens: result.tokens,
                total_tokens: result.tokens,
            },
        })
    }
}
