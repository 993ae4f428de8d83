//! The request pipeline, one module a stage, in the order a request meets them:
//! `auth → admission → guardrails → cache → routing → call (retry, timeout, breaker, fallback, stream)`,
//! with the request log and metrics recorded off the hot path by `requestlog`.

pub mod admission;
pub mod auth;
pub mod cache;
pub mod call;
pub mod experiment;
pub mod guardrails;
pub mod routing;
