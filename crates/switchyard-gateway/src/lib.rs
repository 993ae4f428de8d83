//! Switchyard's gateway: the request pipeline and the HTTP server around it.
//!
//! `stages/` holds the pipeline in request order; `server/` the HTTP surface that drives it;
//! `requestlog` and `metrics` record each request off the hot path.

pub mod config;
pub mod logbodies;
pub mod metrics;
pub mod replay;
pub mod requestlog;
pub mod server;
pub mod stages;
mod startup;

pub use config::{Config, ConfigError};
pub use server::{serve, AppState};
pub use startup::{build, build_from, reload, AdminKeySource, Gateway, StartError};
