//! Requests per minute, tokens per minute and requests in flight, per scope (tenant, key).

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use switchyard_state::{RateDecision, StateBackend};

use super::{AdmissionError, Ticket};

const MINUTE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeLimits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_concurrent: Option<u64>,
}

impl ScopeLimits {
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.max_concurrent.is_none()
    }
}

/// OpenAI's `x-ratelimit-*` headers, from the tightest scope that applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateHeaders {
    requests: Option<RateDecision>,
    tokens: Option<RateDecision>,
}

impl RateHeaders {
    fn note(slot: &mut Option<RateDecision>, d: RateDecision) {
        if slot.is_none_or(|cur| d.remaining < cur.remaining) {
            *slot = Some(d);
        }
    }

    pub fn write(&self, headers: &mut HeaderMap) {
        // Names are constants so the hot path neither formats nor validates them (a `&str`
        // name is parsed again on every insert).
        const NAMES: [[HeaderName; 3]; 2] = [
            [
                HeaderName::from_static("x-ratelimit-limit-requests"),
                HeaderName::from_static("x-ratelimit-remaining-requests"),
                HeaderName::from_static("x-ratelimit-reset-requests"),
            ],
            [
                HeaderName::from_static("x-ratelimit-limit-tokens"),
                HeaderName::from_static("x-ratelimit-remaining-tokens"),
                HeaderName::from_static("x-ratelimit-reset-tokens"),
            ],
        ];
        for (names, d) in NAMES.iter().zip([self.requests, self.tokens]) {
            let Some(d) = d else { continue };
            headers.insert(&names[0], HeaderValue::from(d.limit));
            headers.insert(&names[1], HeaderValue::from(d.remaining));
            if let Ok(v) = HeaderValue::from_str(&format!("{:.3}s", d.reset_after.as_secs_f64())) {
                headers.insert(&names[2], v);
            }
        }
    }
}

fn refused(scope: &str, unit: &'static str, d: RateDecision) -> AdmissionError {
    AdmissionError::RateLimited {
        scope: scope
            .split_once(':')
            .map_or(scope, |(_, name)| name)
            .to_owned(),
        limit: d.limit,
        unit,
        retry_after: d.retry_after,
    }
}

/// State errors never refuse a request: the resilient backend already fell back to local
/// limits, so an error here means both failed, and we log and let the request through.
fn state_failed(op: &str, e: &dyn std::fmt::Display) {
    tracing::error!(op, error = %e, "limit state unavailable; request admitted unchecked");
    metrics::counter!("switchyard_admission_unchecked_total", "op" => op.to_owned()).increment(1);
}

pub(super) async fn admit_requests(
    state: &dyn StateBackend,
    scopes: &[(String, ScopeLimits)],
    ticket: &mut Ticket,
) -> Result<(), AdmissionError> {
    let mut charged: Vec<(String, u64)> = Vec::new();
    for (scope, limits) in scopes {
        if let Some(rpm) = limits.rpm {
            let key = format!("rpm:{scope}");
            match state.rate_acquire(&key, rpm, MINUTE, 1).await {
                Ok(d) => {
                    RateHeaders::note(&mut ticket.rate_headers.requests, d);
                    if !d.allowed {
                        refund(state, &charged).await;
                        return Err(refused(scope, "requests", d));
                    }
                    charged.push((key, rpm));
                }
                Err(e) => state_failed("rpm", &e),
            }
        }
    }
    for (scope, limits) in scopes {
        if let Some(max) = limits.max_concurrent {
            let key = format!("conc:{scope}");
            match state.concurrency_acquire(&key, max).await {
                Ok(true) => ticket.concurrency.push(key),
                Ok(false) => {
                    refund(state, &charged).await;
                    return Err(AdmissionError::TooManyConcurrent {
                        scope: scope
                            .split_once(':')
                            .map_or(scope.as_str(), |(_, n)| n)
                            .to_owned(),
                        max,
                    });
                }
                Err(e) => state_failed("concurrency", &e),
            }
        }
    }
    Ok(())
}

/// Gives back request units taken from earlier scopes when a later scope refuses.
async fn refund(state: &dyn StateBackend, charged: &[(String, u64)]) {
    for (key, limit) in charged {
        if let Err(e) = state.rate_adjust(key, *limit, MINUTE, -1).await {
            state_failed("rpm_refund", &e);
        }
    }
}

pub(super) async fn admit_tokens(
    state: &dyn StateBackend,
    scopes: &[(String, ScopeLimits)],
    prompt_tokens: u64,
    ticket: &mut Ticket,
) -> Result<(), AdmissionError> {
    for (scope, limits) in scopes {
        let Some(tpm) = limits.tpm else { continue };
        let key = format!("tpm:{scope}");
        // A prompt larger than the whole minute's allowance could never pass; charge what fits so
        // the error says "rate limited" only when waiting would help.
        let cost = prompt_tokens.min(tpm).max(1);
        match state.rate_acquire(&key, tpm, MINUTE, cost).await {
            Ok(d) => {
                RateHeaders::note(&mut ticket.rate_headers.tokens, d);
                if !d.allowed {
                    return Err(refused(scope, "tokens", d));
                }
                ticket.tpm_charged.push((key, tpm, cost));
            }
            Err(e) => state_failed("tpm", &e),
        }
    }
    Ok(())
}

pub(super) async fn settle(state: &dyn StateBackend, ticket: &Ticket, total_tokens: u64) {
    for (key, limit, charged) in &ticket.tpm_charged {
        let delta = total_tokens as i64 - *charged as i64;
        if delta != 0 {
            if let Err(e) = state.rate_adjust(key, *limit, MINUTE, delta).await {
                state_failed("tpm_settle", &e);
            }
        }
    }
    for key in &ticket.concurrency {
        if let Err(e) = state.concurrency_release(key).await {
            state_failed("concurrency_release", &e);
        }
    }
}
