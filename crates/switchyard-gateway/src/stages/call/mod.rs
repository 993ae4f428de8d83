//! Stage 4 — the provider call: per-attempt timeout, retries with backoff, a circuit breaker per
//! provider, fallbacks in order, and context-length escalation.

mod backoff;
mod breaker;
mod executor;

pub use backoff::Backoff;
pub use breaker::{BreakerState, Breakers};
pub use executor::{CallError, CallErrorKind, CallOutcome, Caller};
