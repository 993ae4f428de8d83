//! `POST /v1/embeddings`: deterministic unit vectors derived from a hash of each input.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::{
    broken_body, encode_failed, estimate_tokens, invalid_json, invalid_request, json_response,
    read_body, Faults, MockState,
};

const DEFAULT_DIMENSIONS: usize = 8;
/// Large enough for any real embedding model, small enough that a typo cannot exhaust memory.
const MAX_DIMENSIONS: usize = 16_384;

#[derive(Deserialize)]
struct EmbeddingsRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    input: Input<'a>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default, borrow)]
    encoding_format: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

/// One embedding input, hashed by its text or by its token ids.
enum Item<'a> {
    Text(&'a str),
    Tokens(&'a [u32]),
}

impl Input<'_> {
    fn items(&self) -> Vec<Item<'_>> {
        match self {
            Input::One(text) => vec![Item::Text(text)],
            Input::Many(texts) => texts.iter().map(|t| Item::Text(t)).collect(),
            Input::Tokens(tokens) => vec![Item::Tokens(tokens)],
            Input::ManyTokens(lists) => lists.iter().map(|t| Item::Tokens(t)).collect(),
        }
    }
}

impl Item<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Item::Text(t) => t.is_empty(),
            Item::Tokens(t) => t.is_empty(),
        }
    }

    /// Token ids count as four characters each, matching the chars/4 token estimate.
    fn chars(&self) -> usize {
        match self {
            Item::Text(t) => t.chars().count(),
            Item::Tokens(t) => t.len() * 4,
        }
    }

    fn hash(&self) -> u64 {
        match self {
            Item::Text(t) => fnv1a(FNV_OFFSET, t.as_bytes()),
            Item::Tokens(ids) => ids.iter().fold(FNV_OFFSET ^ 0x5bd1_e995, |h, id| {
                fnv1a(h, &id.to_le_bytes())
            }),
        }
    }
}

#[derive(Serialize)]
struct EmbeddingsResponse<'a> {
    object: &'static str,
    data: Vec<EmbeddingOut>,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct EmbeddingOut {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}

pub(crate) async fn handle(State(state): State<MockState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request: EmbeddingsRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return invalid_json(&err),
    };
    let faults = Faults::for_request(&request.model, &parts.headers);
    let flaky_ordinal = state.record(&request.model, &body, faults.flaky.is_some());
    if let Some(response) = faults.intercept(flaky_ordinal).await {
        return response;
    }

    let items = request.input.items();
    if items.is_empty() || items.iter().any(Item::is_empty) {
        return invalid_request("'input' must not be empty");
    }
    let dimensions = request.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    if dimensions == 0 || dimensions > MAX_DIMENSIONS {
        return invalid_request(&format!(
            "'dimensions' must be between 1 and {MAX_DIMENSIONS}"
        ));
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return invalid_request(&format!("unsupported encoding_format '{other}'"));
        }
    };

    let chars: usize = items.iter().map(Item::chars).sum();
    let prompt_tokens = estimate_tokens(chars);
    let data = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let vector = unit_vector(item.hash(), dimensions);
            EmbeddingOut {
                object: "embedding",
                index,
                embedding: if base64 {
                    Vector::Base64(base64_f32(&vector))
                } else {
                    Vector::Floats(vector)
                },
            }
        })
        .collect();
    let response = EmbeddingsResponse {
        object: "list",
        data,
        model: &request.model,
        usage: (!faults.no_usage).then_some(Usage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        }),
    };
    if faults.malformed {
        return json_response(StatusCode::OK, "{\"object\": \"list\", \"data\": [");
    }
    let body = match serde_json::to_vec(&response) {
        Ok(body) => body,
        Err(err) => return encode_failed(&err),
    };
    if faults.broken_stream {
        let half = body.len() / 2;
        let truncated = Bytes::from(body).slice(..half);
        return json_response(StatusCode::OK, broken_body(vec![truncated], None));
    }
    json_response(StatusCode::OK, body)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Components drawn from splitmix64 seeded by the hash, then normalised to length 1.
fn unit_vector(seed: u64, dimensions: usize) -> Vec<f32> {
    let mut state = seed;
    let mut vector: Vec<f64> = (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // Top 53 bits as a float in [-1, 1).
            (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    } else {
        vector[0] = 1.0;
    }
    vector.into_iter().map(|x| x as f32).collect()
}

/// OpenAI's base64 format: the little-endian f32 array, standard alphabet with padding.
fn base64_f32(vector: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
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

    #[test]
    fn vectors_are_unit_and_deterministic() {
        let a = unit_vector(fnv1a(FNV_OFFSET, b"hello"), 8);
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(a, unit_vector(fnv1a(FNV_OFFSET, b"hello"), 8));
        assert_ne!(a, unit_vector(fnv1a(FNV_OFFSET, b"world"), 8));
    }

    #[test]
    fn base64_matches_rfc4648() {
        let one = 1.0f32; // bytes 00 00 80 3f
        assert_eq!(base64_f32(&[one]), "AACAPw==");
        assert_eq!(base64_f32(&[one, one]), "AACAPwAAgD8=");
        assert_eq!(base64_f32(&[one, one, one]), "AACAPwAAgD8AAIA/");
    }
}
