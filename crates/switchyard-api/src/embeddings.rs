use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/embeddings` request body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: EmbeddingInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Embedding input: one string, many strings, or pre-tokenized ids.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// Texts to embed; token-id inputs have none (only OpenAI-compatible upstreams accept them).
    pub fn texts(&self) -> Option<Vec<&str>> {
        match self {
            EmbeddingInput::One(s) => Some(vec![s.as_str()]),
            EmbeddingInput::Many(v) => Some(v.iter().map(String::as_str).collect()),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            EmbeddingInput::One(s) => s.is_empty(),
            EmbeddingInput::Many(v) => v.is_empty(),
            EmbeddingInput::Tokens(v) => v.is_empty(),
            EmbeddingInput::ManyTokens(v) => v.is_empty(),
        }
    }

    pub fn chars(&self) -> usize {
        match self {
            EmbeddingInput::One(s) => s.len(),
            EmbeddingInput::Many(v) => v.iter().map(String::len).sum(),
            EmbeddingInput::Tokens(v) => v.len() * 4,
            EmbeddingInput::ManyTokens(v) => v.iter().map(Vec::len).sum::<usize>() * 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmbeddingsResponse {
    #[serde(default = "list_object")]
    pub object: String,
    pub data: Vec<Embedding>,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub usage: EmbeddingsUsage,
}

fn list_object() -> String {
    "list".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Embedding {
    #[serde(default = "embedding_object")]
    pub object: String,
    #[serde(default)]
    pub index: u32,
    /// A float array, or a base64 string when `encoding_format = "base64"`.
    pub embedding: Value,
}

fn embedding_object() -> String {
    "embedding".to_owned()
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EmbeddingsUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}
