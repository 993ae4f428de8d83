//! Backend-independent suite for feedback and experiment reports. Takes a fresh, empty database.

use std::sync::Arc;

use serde_json::json;
use switchyard_store::{
    ArmStats, ExperimentQuery, FeedbackRecord, ModelFeedback, RequestRecord, Store, StoreError,
};

/// A request of experiment `exp`, arm `arm`.
pub fn arm_request(id: &str, exp: &str, arm: &str, ts_ms: i64) -> RequestRecord {
    let mut r = super::record(id, ts_ms);
    r.metadata
        .insert("experiment".into(), json!({"name": exp, "arm": arm}));
    r
}

pub fn verdict(request_id: &str, score: f64, ts_ms: i64) -> FeedbackRecord {
    FeedbackRecord {
        request_id: request_id.into(),
        tenant: "acme".into(),
        model: "gpt-4o-2024-08-06".into(),
        score,
        comment: None,
        ts_ms,
    }
}

fn query(name: &str) -> ExperimentQuery {
    ExperimentQuery {
        name: name.into(),
        ..Default::default()
    }
}

fn arm<'a>(report: &'a [ArmStats], name: &str) -> &'a ArmStats {
    report
        .iter()
        .find(|a| a.arm == name)
        .unwrap_or_else(|| panic!("arm {name} missing from {report:?}"))
}

pub async fn feedback_suite(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.migrate().await.expect("migrate is idempotent");
    assert!(store.feedback_outcomes().await.unwrap().is_empty());
    assert!(store
        .experiment_report(&query("exp"))
        .await
        .unwrap()
        .is_empty());

    // Arm a: 10 requests, latencies 10..=100 ms, one of them failed, one a cache hit.
    // Arm b: 3 requests, latencies 7, 5, 9, all fine.
    let mut batch = Vec::new();
    for i in 1..=10 {
        let mut r = arm_request(&format!("a{i}"), "exp", "a", 1_000 + i);
        r.latency_ms = (i as u64) * 10;
        r.cost_usd = 0.5;
        if i == 10 {
            r.status = 502;
        }
        if i == 3 {
            r.cache = Some("hit-exact".into());
        }
        batch.push(r);
    }
    for (i, latency) in [7u64, 5, 9].into_iter().enumerate() {
        let mut r = arm_request(&format!("b{i}"), "exp", "b", 2_000 + i as i64);
        r.latency_ms = latency;
        r.cost_usd = 0.25;
        r.model_used = Some("claude-haiku".into());
        batch.push(r);
    }
    // Not part of the experiment: untagged, another experiment, an incomplete tag.
    batch.push(super::record("plain", 1_500));
    batch.push(arm_request("other", "other-exp", "a", 1_500));
    let mut half = super::record("half", 1_500);
    half.metadata
        .insert("experiment".into(), json!({"name": "exp"}));
    batch.push(half);
    store.insert_requests(&batch).await.unwrap();
    // The tag is derived, not a replacement for metadata: the record reads back unchanged.
    assert_eq!(
        store.get_request("a1").await.unwrap().as_ref(),
        Some(&batch[0])
    );

    // Feedback: one per request, a later verdict replaces the earlier and returns it.
    assert_eq!(store.get_feedback("a1").await.unwrap(), None);
    assert_eq!(
        store.put_feedback(&verdict("a1", -1.0, 5)).await.unwrap(),
        None
    );
    let mut better = verdict("a1", 1.0, 6);
    better.comment = Some("actually fine ü ✓".into());
    let replaced = store.put_feedback(&better).await.unwrap();
    assert_eq!(replaced, Some(verdict("a1", -1.0, 5)));
    assert_eq!(store.get_feedback("a1").await.unwrap(), Some(better));
    store.put_feedback(&verdict("a2", 0.5, 7)).await.unwrap();
    store.put_feedback(&verdict("a10", 0.0, 8)).await.unwrap();
    let mut b_verdict = verdict("b0", -0.5, 9);
    b_verdict.model = "claude-haiku".into();
    store.put_feedback(&b_verdict).await.unwrap();
    for bad in [1.5, -2.0, f64::NAN] {
        let err = store
            .put_feedback(&verdict("a3", bad, 1))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Encode(_)), "{bad}: {err}");
    }
    assert_eq!(store.get_feedback("a3").await.unwrap(), None);
    // NUL in a comment is tolerated (PostgreSQL refuses it raw).
    let mut nul = verdict("b1", 1.0, 10);
    nul.model = "claude-haiku".into();
    nul.comment = Some("a\0b".into());
    store.put_feedback(&nul).await.expect("NUL tolerated");

    let report = store.experiment_report(&query("exp")).await.unwrap();
    assert_eq!(
        report.iter().map(|a| a.arm.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let a = arm(&report, "a");
    assert_eq!((a.requests, a.errors, a.cache_hits), (10, 1, 1));
    assert!((a.cost_usd - 5.0).abs() < 1e-9, "{a:?}");
    // Successful latencies 10..=90: nearest-rank p50 is the 5th, p95 the 9th.
    assert_eq!((a.latency_p50_ms, a.latency_p95_ms), (Some(50), Some(90)));
    assert_eq!(a.feedback_count, 3);
    let mean = a.feedback_mean.unwrap();
    assert!((mean - 0.5).abs() < 1e-9, "{mean}");
    let b = arm(&report, "b");
    assert_eq!((b.requests, b.errors, b.cache_hits), (3, 0, 0));
    assert!((b.cost_usd - 0.75).abs() < 1e-9, "{b:?}");
    assert_eq!((b.latency_p50_ms, b.latency_p95_ms), (Some(7), Some(9)));
    assert_eq!(b.feedback_count, 2);
    assert!((b.feedback_mean.unwrap() - 0.25).abs() < 1e-9);
    let other = store.experiment_report(&query("other-exp")).await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].requests, 1);
    assert_eq!((other[0].feedback_count, other[0].feedback_mean), (0, None));

    // Time bounds: from inclusive, to exclusive.
    let window = ExperimentQuery {
        name: "exp".into(),
        from_ms: Some(1_005),
        to_ms: Some(2_001),
    };
    let report = store.experiment_report(&window).await.unwrap();
    assert_eq!(arm(&report, "a").requests, 6);
    assert_eq!(arm(&report, "b").requests, 1);
    let late = ExperimentQuery {
        name: "exp".into(),
        from_ms: Some(1_999),
        to_ms: None,
    };
    let report = store.experiment_report(&late).await.unwrap();
    assert_eq!(report.len(), 1, "{report:?}");
    // An arm whose only requests failed has no latency percentiles.
    store
        .insert_requests(&[RequestRecord {
            status: 500,
            ..arm_request("c0", "exp", "c", 3_000)
        }])
        .await
        .unwrap();
    let report = store.experiment_report(&query("exp")).await.unwrap();
    let c = arm(&report, "c");
    assert_eq!((c.requests, c.errors, c.latency_p50_ms), (1, 1, None));

    // Outcomes per answering model: score > 0 success, < 0 failure, 0 neutral.
    assert_eq!(
        store.feedback_outcomes().await.unwrap(),
        vec![
            ModelFeedback {
                model: "claude-haiku".into(),
                successes: 1,
                failures: 1,
                neutral: 0,
            },
            ModelFeedback {
                model: "gpt-4o-2024-08-06".into(),
                successes: 2,
                failures: 0,
                neutral: 1,
            },
        ]
    );
}

/// Deleting an end user's requests takes their feedback along; retention purges old feedback.
pub async fn feedback_lifecycle(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    let mut mine = arm_request("u-req", "exp", "a", 100);
    mine.user = Some("leaving-user".into());
    let mut theirs = arm_request("v-req", "exp", "a", 100);
    theirs.user = Some("staying-user".into());
    store.insert_requests(&[mine, theirs]).await.unwrap();
    store
        .put_feedback(&verdict("u-req", 1.0, 200))
        .await
        .unwrap();
    store
        .put_feedback(&verdict("v-req", 1.0, 200))
        .await
        .unwrap();
    assert_eq!(store.delete_user_requests("leaving-user").await.unwrap(), 1);
    assert_eq!(store.get_feedback("u-req").await.unwrap(), None);
    assert!(store.get_feedback("v-req").await.unwrap().is_some());

    // Retention: the tenant's feedback given before the cut goes, later feedback and other
    // tenants' stay.
    let mut other = verdict("w-req", -1.0, 150);
    other.tenant = "beta".into();
    store.put_feedback(&other).await.unwrap();
    store
        .put_feedback(&verdict("x-req", -1.0, 400))
        .await
        .unwrap();
    store.purge_requests("acme", 300).await.unwrap();
    assert_eq!(store.get_feedback("v-req").await.unwrap(), None);
    assert!(store.get_feedback("x-req").await.unwrap().is_some());
    assert!(store.get_feedback("w-req").await.unwrap().is_some());
}
