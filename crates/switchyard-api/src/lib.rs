//! OpenAI wire types: the one shape every Switchyard stage speaks.
//!
//! Provider adapters translate to and from these types; nothing else in the gateway knows any other
//! provider's format. Unknown fields are kept in `extra` maps so that parameters we do not model
//! (new OpenAI features, vendor extensions such as vLLM's `guided_json`) still reach the upstream.

pub mod chat;
pub mod embeddings;
pub mod error;
pub mod models;

/// The expected size of a JSON body carrying `text_bytes` of text in `items` strings: the text, a
/// margin for escapes, and the keys and punctuation around each item and the whole body. A body
/// serialized into a buffer of this capacity is not regrown on the way (`serde_json::to_vec`
/// starts at 128 bytes and doubles: about ten reallocations and copies for a 32 KiB prompt).
pub fn json_size_hint(text_bytes: usize, items: usize) -> usize {
    text_bytes + text_bytes / 8 + 64 * items + 256
}

pub use chat::*;
pub use embeddings::*;
pub use error::*;
pub use models::*;
