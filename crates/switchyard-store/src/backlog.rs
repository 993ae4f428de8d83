//! Bounds the memory held by records waiting in the request-log queue.
//!
//! The writer keeps up with the request rate as long as the store does. When the store slows
//! down (a disk busy with other writes stalls SQLite's checkpoint fsync for a second or two),
//! records queue in memory: measured with 32 KiB prompts under a concurrent
//! `dd ... conv=fsync`, the queue grew to 4,500 records and the gateway's resident memory by
//! 25 MiB; at 40k req/s a two-second stall queues 80,000 records. Two bounds keep it finite
//! without losing a request:
//! - **bodies**: past `max_body_bytes` of queued prompts and answers, a record keeps every
//!   column but its bodies, which become `{"omitted": "log_backlog"}`;
//! - **records**: past `max_records` queued, new requests wait before they are read
//!   ([`Backlog::wait_for_room`]) until the writer has taken records off the queue:
//!   backpressure on clients instead of unbounded memory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::RequestRecord;

/// Per JSON value, beside its text: the value itself and the string or container behind it.
const NODE_OVERHEAD: usize = 48;

#[derive(Debug)]
pub(crate) struct Backlog {
    body_bytes: AtomicUsize,
    max_body_bytes: usize,
    omitting_bodies: AtomicBool,
    records: AtomicUsize,
    max_records: usize,
    /// Wakes requests waiting for room once the writer has taken records.
    drained: Notify,
}

impl Backlog {
    pub(crate) fn new(max_body_bytes: usize, max_records: usize) -> Self {
        Self {
            body_bytes: AtomicUsize::new(0),
            max_body_bytes,
            omitting_bodies: AtomicBool::new(false),
            records: AtomicUsize::new(0),
            max_records: max_records.max(1),
            drained: Notify::new(),
        }
    }

    /// Returns at once unless `max_records` are queued; then once the writer has made room.
    pub(crate) async fn wait_for_room(&self) {
        if self.records.load(Ordering::Relaxed) < self.max_records {
            return;
        }
        metrics::counter!("switchyard_log_backpressure_waits_total").increment(1);
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a drain between the two is not missed.
            drained.as_mut().enable();
            if self.records.load(Ordering::Relaxed) < self.max_records {
                return;
            }
            drained.await;
        }
    }

    /// Called by the writer after taking a run of records off the queue.
    pub(crate) fn drained(&self) {
        if self.records.load(Ordering::Relaxed) < self.max_records {
            self.drained.notify_waiters();
        }
    }

    /// Charges the record's bodies to the queue, or omits them when they would take it past
    /// the bound. Returns the weight to [`Backlog::release`] once the writer has taken it.
    pub(crate) fn admit(&self, rec: &mut RequestRecord) -> usize {
        self.records.fetch_add(1, Ordering::Relaxed);
        let Some(bodies) = &rec.bodies else {
            return 0;
        };
        let weight = weight(bodies);
        let before = self.body_bytes.fetch_add(weight, Ordering::Relaxed);
        if before + weight <= self.max_body_bytes {
            return weight;
        }
        self.body_bytes.fetch_sub(weight, Ordering::Relaxed);
        rec.bodies = Some(json!({"omitted": "log_backlog"}));
        metrics::counter!("switchyard_log_bodies_omitted_total").increment(1);
        if !self.omitting_bodies.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max_bytes = self.max_body_bytes,
                "request log is behind the request rate; logging new records without bodies"
            );
        }
        0
    }

    pub(crate) fn release(&self, weight: usize) {
        self.records.fetch_sub(1, Ordering::Relaxed);
        if weight == 0 {
            return;
        }
        let before = self.body_bytes.fetch_sub(weight, Ordering::Relaxed);
        if before.saturating_sub(weight) < self.max_body_bytes / 2
            && self.omitting_bodies.swap(false, Ordering::Relaxed)
        {
            tracing::info!("request log caught up; logging bodies again");
        }
    }

    #[cfg(test)]
    fn body_bytes(&self) -> usize {
        self.body_bytes.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    fn records(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }
}

/// Approximately the heap a JSON value holds.
fn weight(v: &Value) -> usize {
    NODE_OVERHEAD
        + match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(weight).sum(),
            Value::Object(o) => o.iter().map(|(k, v)| k.len() + weight(v)).sum(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_prompt(bytes: usize) -> RequestRecord {
        RequestRecord {
            request_id: "r".into(),
            prompt_tokens: 7,
            bodies: Some(json!({"messages": [{"role": "user", "content": "x".repeat(bytes)}]})),
            ..Default::default()
        }
    }

    #[test]
    fn bodies_past_the_bound_are_omitted_and_released_weight_readmits() {
        let backlog = Backlog::new(10_000, 100);
        let mut first = with_prompt(4_000);
        let w1 = backlog.admit(&mut first);
        assert!(w1 > 4_000 && w1 < 4_400, "{w1}");
        let mut second = with_prompt(4_000);
        let w2 = backlog.admit(&mut second);
        assert_eq!(backlog.body_bytes(), w1 + w2);

        let mut third = with_prompt(4_000);
        assert_eq!(backlog.admit(&mut third), 0);
        assert_eq!(third.bodies, Some(json!({"omitted": "log_backlog"})));
        assert_eq!(third.prompt_tokens, 7, "only the bodies go");
        assert_eq!(
            backlog.body_bytes(),
            w1 + w2,
            "an omitted record charges nothing"
        );

        assert_eq!(backlog.records(), 3);
        backlog.release(w1);
        backlog.release(w2);
        backlog.release(0);
        assert_eq!((backlog.body_bytes(), backlog.records()), (0, 0));
        let mut fourth = with_prompt(4_000);
        assert!(backlog.admit(&mut fourth) > 0);
        assert!(fourth.bodies.as_ref().unwrap().get("messages").is_some());
    }

    #[test]
    fn records_without_bodies_are_free() {
        let backlog = Backlog::new(0, 100);
        let mut rec = RequestRecord::default();
        assert_eq!(backlog.admit(&mut rec), 0);
        assert!(rec.bodies.is_none());
    }

    #[tokio::test]
    async fn new_requests_wait_while_the_queue_is_full() {
        let backlog = std::sync::Arc::new(Backlog::new(1 << 20, 2));
        backlog.wait_for_room().await;
        let weights: Vec<usize> = (0..2)
            .map(|_| backlog.admit(&mut RequestRecord::default()))
            .collect();
        let waiter = tokio::spawn({
            let backlog = backlog.clone();
            async move { backlog.wait_for_room().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        assert!(!waiter.is_finished(), "2 of 2 queued: a new request waits");
        backlog.release(weights[0]);
        backlog.drained();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the writer's drain lets it in")
            .unwrap();
    }
}
