//! Response caching for the gateway.
//!
//! - [`key`]: what makes two requests the same request (exact layer).
//! - [`verify`]: whether a cached prompt's answer may be served for a similar new prompt
//!   (semantic layer); embeddings find candidates, the verifier rejects near-misses.

pub mod verify;
