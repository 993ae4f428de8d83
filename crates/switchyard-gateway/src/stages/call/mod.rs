//! Stage 4 — the provider call: per-attempt timeout, retries with backoff, a circuit breaker per
//! provider, fallbacks in order, and context-length escalation. Around every attempt it also
//! updates the deployment's load and health (`stats`), which `routing::balance` orders by.

mod backoff;
mod breaker;
mod executor;
mod stats;

pub use backoff::Backoff;
pub use breaker::{BreakerState, Breakers};
pub use executor::{CallError, CallErrorKind, CallOutcome, Caller};
pub use stats::{mono_ms, DeploymentStats, Health, InFlight};
