//! Placeholder replaced by the verifier (see the module docs in lib.rs).
