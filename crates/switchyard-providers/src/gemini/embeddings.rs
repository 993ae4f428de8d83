//! OpenAI embeddings ↔ Gemini `batchEmbedContents`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_api::{Embedding, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage};

use crate::ProviderError;

#[derive(Debug, Serialize)]
pub(crate) struct BatchEmbedRequest {
    requests: Vec<EmbedRequest>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EmbedRequest {
    model: String,
    content: EmbedContent,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u32>,
}

#[derive(Debug, Serialize)]
struct EmbedContent {
    parts: Vec<TextPart>,
}

#[derive(Debug, Serialize)]
struct TextPart {
    text: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BatchEmbedResponse {
    #[serde(default)]
    embeddings: Vec<Values>,
}

#[derive(Debug, Deserialize)]
struct Values {
    #[serde(default)]
    values: Vec<f64>,
}

pub(crate) fn batch_request(
    req: &EmbeddingsRequest,
    model: &str,
) -> Result<BatchEmbedRequest, ProviderError> {
    let texts = req.input.texts().ok_or_else(|| {
        ProviderError::InvalidRequest(
            "Gemini embeds text only; token-id inputs are not supported".into(),
        )
    })?;
    if texts.is_empty() {
        return Err(ProviderError::InvalidRequest(
            "embedding input is empty".into(),
        ));
    }
    let requests = texts
        .into_iter()
        .map(|text| EmbedRequest {
            // Each request of a batch names its model again, in resource form.
            model: format!("models/{model}"),
            content: EmbedContent {
                parts: vec![TextPart {
                    text: text.to_owned(),
                }],
            },
            output_dimensionality: req.dimensions,
        })
        .collect();
    Ok(BatchEmbedRequest { requests })
}

/// Gemini reports no token usage for embeddings, so `usage` stays zero and the gateway's
/// estimate from the input applies.
pub(crate) fn to_openai(
    resp: BatchEmbedResponse,
    req: &EmbeddingsRequest,
    model: &str,
    expected: usize,
) -> Result<EmbeddingsResponse, ProviderError> {
    if resp.embeddings.len() != expected {
        return Err(ProviderError::Malformed(format!(
            "Gemini returned {} embeddings for {expected} inputs",
            resp.embeddings.len()
        )));
    }
    let base64 = req.encoding_format.as_deref() == Some("base64");
    let data = resp
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(i, e)| Embedding {
            object: "embedding".to_owned(),
            index: i as u32,
            embedding: if base64 {
                Value::String(encode_f32_base64(&e.values))
            } else {
                Value::from(e.values)
            },
        })
        .collect();
    Ok(EmbeddingsResponse {
        object: "list".to_owned(),
        data,
        model: model.to_owned(),
        usage: EmbeddingsUsage::default(),
    })
}

/// OpenAI's `encoding_format: "base64"`: little-endian f32s, standard base64 with padding.
/// OpenAI's own SDKs ask for it by default, so it must work on every provider.
fn encode_f32_base64(values: &[f64]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, s) in sextets.iter().enumerate() {
            // A chunk of k bytes yields k + 1 significant characters; the rest is padding.
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[*s as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_matches_reference_vectors() {
        // 1.0f32 = 00 00 80 3f; 2.0f32 = 00 00 00 40.
        assert_eq!(encode_f32_base64(&[1.0]), "AACAPw==");
        assert_eq!(encode_f32_base64(&[1.0, 2.0]), "AACAPwAAAEA=");
        assert_eq!(encode_f32_base64(&[]), "");
    }

    #[test]
    fn token_inputs_are_rejected() {
        let req: EmbeddingsRequest =
            serde_json::from_value(json!({"model": "m", "input": [1, 2, 3]})).unwrap();
        assert!(matches!(
            batch_request(&req, "text-embedding-004"),
            Err(ProviderError::InvalidRequest(_))
        ));
    }
}
