//! Stage 2 — may this request proceed: body size (refused from `Content-Length` before a byte of
//! the body is read) and per-tenant request rate (in-process GCRA via `governor`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::HeaderMap;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdmissionError {
    #[error("request body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("rate limit of {rpm} requests per minute exceeded for tenant {tenant}")]
    RateLimited {
        tenant: String,
        rpm: u32,
        retry_after: Duration,
    },
}

pub struct Admission {
    max_body_bytes: u64,
    limiters: HashMap<String, (u32, DefaultDirectRateLimiter)>,
}

impl Admission {
    pub fn new(max_body_bytes: u64, tenant_rpm: impl IntoIterator<Item = (String, u32)>) -> Self {
        let limiters = tenant_rpm
            .into_iter()
            .filter_map(|(tenant, rpm)| {
                let quota = Quota::per_minute(NonZeroU32::new(rpm)?);
                Some((tenant, (rpm, RateLimiter::direct(quota))))
            })
            .collect();
        Self {
            max_body_bytes,
            limiters,
        }
    }

    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    /// Refuses a declared body over the limit. Bodies without `Content-Length` (chunked) are
    /// capped while they are read instead.
    pub fn check_declared_size(&self, headers: &HeaderMap) -> Result<(), AdmissionError> {
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(size) if size > self.max_body_bytes => Err(AdmissionError::TooLarge {
                size,
                limit: self.max_body_bytes,
            }),
            _ => Ok(()),
        }
    }

    pub fn check_rate(&self, tenant: &str) -> Result<(), AdmissionError> {
        let Some((rpm, limiter)) = self.limiters.get(tenant) else {
            return Ok(());
        };
        limiter
            .check()
            .map_err(|not_until| AdmissionError::RateLimited {
                tenant: tenant.to_owned(),
                rpm: *rpm,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_size_over_limit_is_refused() {
        let a = Admission::new(100, []);
        let mut h = HeaderMap::new();
        h.insert("content-length", "101".parse().unwrap());
        assert!(matches!(
            a.check_declared_size(&h),
            Err(AdmissionError::TooLarge {
                size: 101,
                limit: 100
            })
        ));
        h.insert("content-length", "100".parse().unwrap());
        assert!(a.check_declared_size(&h).is_ok());
    }

    #[test]
    fn tenant_rate_limit() {
        let a = Admission::new(100, [("acme".to_owned(), 2)]);
        assert!(a.check_rate("acme").is_ok());
        assert!(a.check_rate("acme").is_ok());
        assert!(matches!(
            a.check_rate("acme"),
            Err(AdmissionError::RateLimited { rpm: 2, .. })
        ));
        assert!(a.check_rate("other").is_ok());
    }
}
