//! The in-process chat engine: one llama.cpp context shared by several sequences.
//!
//! A dedicated OS thread owns the context and runs the batching loop ([`batcher`]); async callers
//! talk to it through channels, so no llama.cpp call ever runs on (or blocks) a tokio worker.
//! Prompts are rendered with the model's own chat template and tokenized by the caller, which
//! lets a too-long prompt fail with a 400 before it ever reaches the queue.

mod batcher;
mod slots;
mod text;

use std::path::PathBuf;
use std::sync::{mpsc as std_mpsc, Arc, OnceLock};

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use crate::LocalError;

/// How the engine is sized; see `[[providers]]` with `kind = "local"` in the README.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatEngineConfig {
    pub model_path: PathBuf,
    /// Sequences decoded together; further requests queue.
    pub parallel: u32,
    /// KV cache size in tokens, shared by all sequences (and by cached prefixes).
    pub context_size: u32,
    /// CPU threads for llama.cpp; `None` uses every core.
    pub threads: Option<u32>,
    /// Largest number of tokens sent to one decode call (prompt chunks plus decode tokens).
    pub batch_size: u32,
}

impl ChatEngineConfig {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            parallel: 8,
            context_size: 8192,
            threads: None,
            batch_size: 512,
        }
    }
}

/// Sampling settings of one request, already defaulted and clamped.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// 0 means greedy decoding.
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u32,
    pub max_tokens: u32,
    pub stop: Vec<String>,
}

/// Why a generation ended, in OpenAI's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub reason: FinishReason,
    pub prompt_tokens: u32,
    /// Prompt tokens whose KV cache was reused from an earlier request (not recomputed).
    pub cached_prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// What the engine sends back for one request, in order: text pieces, then one end event.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    Text(String),
    Done(Finished),
    Failed(String),
}

/// A rendered, tokenized prompt.
#[derive(Debug, Clone)]
pub struct Prompt(pub(crate) Vec<LlamaToken>);

impl Prompt {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) struct Job {
    prompt: Vec<LlamaToken>,
    sampling: Sampling,
    events: mpsc::UnboundedSender<EngineEvent>,
}

/// A loaded chat model and the thread that serves it. Dropping the last handle stops the thread
/// once its running requests are done.
pub struct ChatEngine {
    model: Arc<LlamaModel>,
    template: LlamaChatTemplate,
    jobs: std_mpsc::Sender<Job>,
    context_limit: u32,
    config: ChatEngineConfig,
}

/// llama.cpp's backend may be initialized once per process.
fn backend() -> Result<&'static LlamaBackend, LocalError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LocalError::Load(format!("llama.cpp backend: {e}")))
}

impl ChatEngine {
    /// Loads the model and starts the batching thread; fails with a readable error on a missing
    /// or corrupt file instead of crashing.
    pub fn start(config: ChatEngineConfig) -> Result<Arc<Self>, LocalError> {
        let path = &config.model_path;
        if !path.is_file() {
            return Err(LocalError::Load(format!(
                "chat model {} not found (run `make setup` to fetch it)",
                path.display()
            )));
        }
        if config.parallel == 0 || config.context_size < 64 || config.batch_size == 0 {
            return Err(LocalError::Load(
                "parallel and batch_size must be at least 1, context_size at least 64".into(),
            ));
        }
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| {
                LocalError::Load(format!(
                    "chat model {} is not a loadable GGUF file: {e}",
                    path.display()
                ))
            })?;
        let template = match model.chat_template(None) {
            Ok(t) => t,
            // Models without an embedded template get ChatML, the most common convention.
            Err(_) => LlamaChatTemplate::new("chatml")
                .map_err(|e| LocalError::Load(format!("chat template: {e}")))?,
        };
        let model = Arc::new(model);
        let context_limit = config.context_size.min(model.n_ctx_train().max(1));
        let (jobs, rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let thread_model = Arc::clone(&model);
        let thread_config = config.clone();
        std::thread::Builder::new()
            .name("switchyard-local-chat".into())
            .spawn(move || batcher::run(backend, thread_model, thread_config, rx, ready_tx))
            .map_err(|e| LocalError::Load(format!("cannot start the engine thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| LocalError::Load("the engine thread exited during start".into()))??;
        tracing::info!(
            model = %path.display(),
            parallel = config.parallel,
            context_size = config.context_size,
            "local chat model loaded"
        );
        Ok(Arc::new(Self {
            model,
            template,
            jobs,
            context_limit,
            config,
        }))
    }

    pub fn config(&self) -> &ChatEngineConfig {
        &self.config
    }

    /// Most tokens (prompt plus answer) one request may use.
    pub fn context_limit(&self) -> u32 {
        self.context_limit
    }

    /// Applies the model's chat template to `(role, content)` pairs and tokenizes the result.
    pub fn render(&self, messages: &[(String, String)]) -> Result<Prompt, LocalError> {
        let chat = messages
            .iter()
            .map(|(role, content)| LlamaChatMessage::new(role.clone(), content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                LocalError::InvalidRequest("messages must not contain NUL bytes".into())
            })?;
        let text = self
            .model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| LocalError::InvalidRequest(format!("chat template: {e}")))?;
        let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
        Ok(Prompt(tokens))
    }

    /// Queues a generation; events arrive on the returned channel. Dropping the receiver cancels
    /// the request and frees its sequence at the next step.
    pub fn submit(
        &self,
        prompt: Prompt,
        sampling: Sampling,
    ) -> Result<mpsc::UnboundedReceiver<EngineEvent>, LocalError> {
        if prompt.is_empty() {
            return Err(LocalError::InvalidRequest("the prompt is empty".into()));
        }
        if prompt.len() as u64 >= u64::from(self.context_limit) {
            return Err(LocalError::ContextLength {
                prompt_tokens: prompt.len(),
                limit: self.context_limit,
            });
        }
        let (events, rx) = mpsc::unbounded_channel();
        metrics::gauge!("switchyard_local_queue_depth").increment(1.0);
        self.jobs
            .send(Job {
                prompt: prompt.0,
                sampling,
                events,
            })
            .map_err(|_| {
                metrics::gauge!("switchyard_local_queue_depth").decrement(1.0);
                LocalError::Unavailable("the local engine has stopped".into())
            })?;
        Ok(rx)
    }
}
