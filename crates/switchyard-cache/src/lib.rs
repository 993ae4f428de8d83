//! Response caching for the gateway.
//!
//! - [`key`]: what makes two requests the same request, and which requests are cacheable.
//! - [`exact`]: the exact layer, in-process (moka) or in Redis for replicas to share.
//! - [`semantic`]: the semantic layer, an HNSW index of question embeddings per scope.
//! - [`verify`]: whether a cached question's answer may be served for a similar new question;
//!   embeddings find candidates, the verifier rejects near-misses (other numbers, names,
//!   directions, negations).
//! - [`entry`]: what is stored, and selectors for invalidation by tenant, model, tag or document.

pub mod entry;
pub mod exact;
pub mod key;
pub mod semantic;
pub mod verify;

pub use entry::{parse_documents, CachedEntry, Selector};
pub use exact::{CacheError, ExactStore};
pub use key::{exact_key, is_deterministic, semantic_parts, CacheKey};
pub use semantic::{SemanticIndex, SemanticLookup};
pub use verify::{Verdict, DEFAULT_MIN_SIMILARITY};
