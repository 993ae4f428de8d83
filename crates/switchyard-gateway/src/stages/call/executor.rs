use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_providers::{ErrorClass, ProviderError};

use super::{Backoff, Breakers};
use crate::metrics;
use crate::stages::routing::{ModelEntry, ModelTable};

/// What a successful call produced, and how it got there.
pub struct CallOutcome<T> {
    pub value: T,
    pub model: Arc<ModelEntry>,
    pub attempts: u32,
}

/// Why every candidate failed: the last failure decides the status the client sees.
#[derive(Debug)]
pub struct CallError {
    pub kind: CallErrorKind,
    pub message: String,
    pub attempts: u32,
    pub last_model: Option<Arc<ModelEntry>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallErrorKind {
    Upstream(ErrorClass),
    CircuitOpen,
    DeadlineExceeded,
}

impl CallErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallErrorKind::Upstream(c) => c.as_str(),
            CallErrorKind::CircuitOpen => "circuit_open",
            CallErrorKind::DeadlineExceeded => "deadline_exceeded",
        }
    }
}

impl std::fmt::Debug for ModelEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelEntry")
            .field("name", &self.name)
            .field("provider", &self.provider_name())
            .finish_non_exhaustive()
    }
}

/// Runs an upstream operation over a routing plan with the gateway's fault handling.
pub struct Caller {
    pub breakers: Breakers,
    pub backoff: Backoff,
    pub deadline: Duration,
    pub max_retry_after: Duration,
}

impl Caller {
    /// Tries `plan` in order. Each model gets `1 + max_retries` attempts, each bounded by the
    /// model's timeout and the overall deadline. Client errors stop at once (no other model will
    /// accept a malformed request); context-length errors jump to a larger-context model.
    pub async fn call<T, F, Fut>(
        &self,
        table: &ModelTable,
        plan: Vec<Arc<ModelEntry>>,
        mut op: F,
    ) -> Result<CallOutcome<T>, CallError>
    where
        F: FnMut(Arc<ModelEntry>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let deadline = Instant::now() + self.deadline;
        let mut queue: VecDeque<Arc<ModelEntry>> = plan.into();
        let mut tried: HashSet<String> = HashSet::new();
        let mut attempts = 0u32;
        let mut last: Option<CallError> = None;

        while let Some(model) = queue.pop_front() {
            if !tried.insert(model.name.clone()) {
                continue;
            }
            if let Some(prev) = &last {
                if let Some(from) = &prev.last_model {
                    metrics::fallback(&from.name, &model.name);
                }
            }
            for attempt in 0..=model.max_retries {
                let now = Instant::now();
                if now >= deadline {
                    return Err(CallError {
                        kind: CallErrorKind::DeadlineExceeded,
                        message: format!(
                            "no answer within the {} ms deadline",
                            self.deadline.as_millis()
                        ),
                        attempts,
                        last_model: Some(model),
                    });
                }
                if !self.breakers.allow(&model.breaker_key) {
                    metrics::upstream_error(
                        model.provider_name(),
                        CallErrorKind::CircuitOpen.as_str(),
                    );
                    last = Some(CallError {
                        kind: CallErrorKind::CircuitOpen,
                        message: format!(
                            "circuit breaker for model {} on provider {} is open",
                            model.name,
                            model.provider_name()
                        ),
                        attempts,
                        last_model: Some(model.clone()),
                    });
                    break;
                }
                attempts += 1;
                let budget = model.timeout.min(deadline - now);
                // Balancing reads these counts. A streamed call is in flight only until its
                // first event (when `op` returns); the relay that follows is not seen here.
                let in_flight = model.stats.begin();
                let result = tokio::time::timeout(budget, op(model.clone()))
                    .await
                    .unwrap_or(Err(ProviderError::Timeout));
                drop(in_flight);
                let err = match result {
                    Ok(value) => {
                        model.stats.record_success(now.elapsed());
                        self.breakers.record_success(&model.breaker_key);
                        return Ok(CallOutcome {
                            value,
                            model,
                            attempts,
                        });
                    }
                    Err(err) => err,
                };
                let class = err.class();
                metrics::upstream_error(model.provider_name(), class.as_str());
                if cools_down(class) {
                    model.stats.record_failure();
                }
                if class.is_provider_fault() {
                    if self.breakers.record_failure(&model.breaker_key) {
                        model.stats.breaker_opened(self.breakers.cooldown());
                        tracing::warn!(model = %model.name, provider = model.provider_name(), "circuit breaker opened");
                    }
                } else {
                    self.breakers.record_neutral(&model.breaker_key);
                }
                tracing::debug!(model = %model.name, attempt, error = %err, "upstream attempt failed");
                let retry_after = err.retry_after();
                last = Some(CallError {
                    kind: CallErrorKind::Upstream(class),
                    message: err.to_string(),
                    attempts,
                    last_model: Some(model.clone()),
                });
                match class {
                    // A request the upstream calls malformed is malformed everywhere.
                    ErrorClass::BadRequest | ErrorClass::Unsupported => {
                        return Err(last_error(last))
                    }
                    ErrorClass::ContextLength => match table.context_fallback(&model) {
                        Some(bigger) if !tried.contains(&bigger.name) => {
                            queue.push_front(bigger);
                            break;
                        }
                        _ => return Err(last_error(last)),
                    },
                    ErrorClass::UpstreamConfig => break,
                    _ if attempt == model.max_retries => break,
                    _ => {
                        let wait = self.backoff.delay(attempt, retry_after);
                        if wait > self.max_retry_after || Instant::now() + wait >= deadline {
                            break;
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Err(last_error(last))
    }
}

/// Failures that put a deployment behind its healthy peers for a group's `cooldown_ms`.
///
/// This is not a second breaker: the breaker refuses calls, and only after `failure_threshold`
/// faults in a row. The cool-down reorders after a single failure and refuses nothing, so a
/// group's next requests lead with a healthy member while the failed one stays a fallback.
/// It also counts 429s and credential/model-not-found answers, which say nothing about the
/// provider's health (no breaker) but a lot about where the next request should go first.
fn cools_down(class: ErrorClass) -> bool {
    class.is_provider_fault()
        || matches!(class, ErrorClass::RateLimited | ErrorClass::UpstreamConfig)
}

fn last_error(last: Option<CallError>) -> CallError {
    last.unwrap_or(CallError {
        kind: CallErrorKind::CircuitOpen,
        message: "no model could be tried".to_owned(),
        attempts: 0,
        last_model: None,
    })
}
