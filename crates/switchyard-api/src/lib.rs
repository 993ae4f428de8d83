//! OpenAI wire types: the one shape every Switchyard stage speaks.
//!
//! Provider adapters translate to and from these types; nothing else in the gateway knows any other
//! provider's format. Unknown fields are kept in `extra` maps so that parameters we do not model
//! (new OpenAI features, vendor extensions such as vLLM's `guided_json`) still reach the upstream.

pub mod chat;
pub mod embeddings;
pub mod error;
pub mod models;

pub use chat::*;
pub use embeddings::*;
pub use error::*;
pub use models::*;
