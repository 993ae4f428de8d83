//! Sentence embeddings in-process: a BERT-family encoder (all-MiniLM-L6-v2 by default) run with
//! candle, mean-pooled over real tokens and L2-normalized, as sentence-transformers does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::LocalError;

/// Tokens per input; MiniLM was trained on 256 word pieces and truncates beyond that.
const MAX_TOKENS: usize = 256;

pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dimensions: usize,
    dir: PathBuf,
}

/// Vectors in input order, plus the number of tokens they consumed.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: u64,
}

impl Embedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Arc<Self>, LocalError> {
        let file = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(LocalError::Load(format!(
                    "embedding model file {} not found (run `make setup` to fetch it)",
                    path.display()
                )))
            }
        };
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            LocalError::Load(format!("embedding model in {}: {what}: {e}", dir.display()))
        };
        let config_text =
            std::fs::read_to_string(file("config.json")?).map_err(|e| bad("config.json", &e))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| bad("config.json", &e))?;
        let mut tokenizer =
            Tokenizer::from_file(file("tokenizer.json")?).map_err(|e| bad("tokenizer.json", &e))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                ..TruncationParams::default()
            }))
            .map_err(|e| bad("tokenizer.json", &e))?;
        let weights =
            std::fs::read(file("model.safetensors")?).map_err(|e| bad("model.safetensors", &e))?;
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| bad("model.safetensors", &e))?;
        let model = BertModel::load(vb, &config).map_err(|e| bad("weights", &e))?;
        tracing::info!(model = %dir.display(), dimensions = config.hidden_size, "local embedding model loaded");
        Ok(Arc::new(Self {
            model,
            tokenizer,
            device,
            dimensions: config.hidden_size,
            dir: dir.to_owned(),
        }))
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Embeds a batch of texts. CPU-bound: call it from a blocking thread.
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings, LocalError> {
        if texts.is_empty() {
            return Ok(Embeddings {
                vectors: Vec::new(),
                tokens: 0,
            });
        }
        let fail = |e: &dyn std::fmt::Display| LocalError::Inference(format!("embedding: {e}"));
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| fail(&e))?;
        let tokens: u64 = encodings
            .iter()
            .map(|e| e.get_attention_mask().iter().filter(|&&m| m == 1).count() as u64)
            .sum();
        let rows = |f: fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, LocalError> {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(f(e), &self.device))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(&e))?;
            Tensor::stack(&rows, 0).map_err(|e| fail(&e))
        };
        let ids = rows(tokenizers::Encoding::get_ids)?;
        let type_ids = rows(tokenizers::Encoding::get_type_ids)?;
        let mask = rows(tokenizers::Encoding::get_attention_mask)?;
        let pooled = (|| {
            let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
            // Mean over real tokens only: padding must not dilute short inputs.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            mean.broadcast_div(&norms)?.to_vec2::<f32>()
        })()
        .map_err(|e: candle_core::Error| fail(&e))?;
        Ok(Embeddings {
            vectors: pooled,
            tokens,
        })
    }
}
