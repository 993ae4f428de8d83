//! Switchyard's in-process inference tier.
//!
//! - [`ChatEngine`]: GGUF chat models through llama.cpp, with continuous batching (requests join a
//!   running batch at the next decode step) and prefix reuse (a prompt that starts like an earlier
//!   one reuses its KV cache).
//! - [`Embedder`]: sentence embeddings (all-MiniLM-L6-v2 by default) through candle.
//! - [`LocalProvider`]: both behind the same [`switchyard_providers::Provider`] trait as the
//!   hosted APIs, so routing, retries, caching and logging treat the local tier like any other.

mod embed;
mod engine;
mod provider;

pub use embed::{Embedder, Embeddings};
pub use engine::{
    ChatEngine, ChatEngineConfig, EngineEvent, FinishReason, Finished, Prompt, Sampling,
};
pub use provider::{LocalProvider, LocalSettings};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A model could not be loaded; reported at start, never per request.
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(
        "this model's maximum context length is {limit} tokens; the prompt has {prompt_tokens}"
    )]
    ContextLength { prompt_tokens: usize, limit: u32 },
    /// The engine is stopped or out of capacity; retrying later can succeed.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Inference(String),
}
