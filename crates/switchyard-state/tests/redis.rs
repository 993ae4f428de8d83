//! Against the real Redis at 127.0.0.1:6379. Each test works under its own random key prefix and
//! deletes its keys at the end.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::{cleanup, get, pttl, unique_prefix, Proxy, TestRecorder, REDIS};
use switchyard_state::{
    connect_with_prefix, RateDecision, RedisOptions, RedisState, ResilientState, StateBackend,
    StateError,
};

const MINUTE: Duration = Duration::from_secs(60);

fn options(prefix: &str) -> RedisOptions {
    RedisOptions {
        prefix: prefix.to_owned(),
        ..RedisOptions::default()
    }
}

async fn redis(prefix: &str) -> RedisState {
    RedisState::connect_with_options(REDIS, options(prefix))
        .await
        .expect("redis at 127.0.0.1:6379 must be running for these tests")
}

async fn acquire(
    state: &dyn StateBackend,
    key: &str,
    limit: u64,
    period: Duration,
    cost: u64,
) -> RateDecision {
    state
        .rate_acquire(key, limit, period, cost)
        .await
        .expect("rate_acquire")
}

#[tokio::test]
async fn burst_refusal_and_refill() {
    let prefix = unique_prefix();
    let state = redis(&prefix).await;
    // Short enough to watch a refill, long enough (one unit per 200 ms) that a slow, loaded
    // machine still finishes the burst before a unit comes back.
    let period = Duration::from_secs(1);
    for i in 0..5 {
        let d = acquire(&state, "k", 5, period, 1).await;
        assert!(d.allowed, "request {i} refused");
        assert_eq!(d.remaining, 4 - i);
    }
    let refused = acquire(&state, "k", 5, period, 1).await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // One unit per 200 ms, less whatever has passed since the burst.
    assert!(refused.retry_after > Duration::ZERO, "{refused:?}");
    assert!(
        refused.retry_after <= Duration::from_millis(200),
        "{refused:?}"
    );
    assert!(refused.reset_after <= period);

    // The state is one TAT value with an expiry of at most one period.
    let tat: f64 = get(&format!("{prefix}rate:k"))
        .await
        .expect("tat key")
        .parse()
        .expect("tat is a number of ms");
    assert!(tat > 1.6e12, "TAT should be Unix time in ms, got {tat}");
    let ttl = pttl(&format!("{prefix}rate:k")).await;
    assert!((1..=1000).contains(&ttl), "pttl {ttl}");

    tokio::time::sleep(refused.retry_after + Duration::from_millis(5)).await;
    assert!(acquire(&state, "k", 5, period, 1).await.allowed);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn all_or_nothing_and_oversized_cost() {
    let prefix = unique_prefix();
    let state = redis(&prefix).await;
    assert!(acquire(&state, "k", 10, MINUTE, 7).await.allowed);
    let refused = acquire(&state, "k", 10, MINUTE, 4).await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 3, "a refused request consumed units");
    let wait = refused.retry_after;
    assert!(
        wait > Duration::from_secs(5) && wait <= Duration::from_secs(6),
        "{wait:?}"
    );
    assert_eq!(acquire(&state, "k", 10, MINUTE, 3).await.remaining, 0);

    let never = acquire(&state, "fresh", 10, MINUTE, 11).await;
    assert!(!never.allowed);
    assert_eq!(never.remaining, 10);
    assert_eq!(never.retry_after, MINUTE);
    assert_eq!(get(&format!("{prefix}rate:fresh")).await, None);

    let zero = acquire(&state, "zero", 0, MINUTE, 1).await;
    assert!(!zero.allowed);
    assert!(matches!(
        state.rate_acquire("k", 1, Duration::ZERO, 1).await,
        Err(StateError::InvalidArgument(_))
    ));
    cleanup(&prefix).await;
}

#[tokio::test]
async fn adjust_debt_and_refund() {
    let prefix = unique_prefix();
    let state = redis(&prefix).await;
    // 10 per minute: one unit every 6 s, so nothing refills during the test.
    assert!(acquire(&state, "k", 10, MINUTE, 5).await.allowed);
    state
        .rate_adjust("k", 10, MINUTE, 15)
        .await
        .expect("adjust");
    let refused = acquire(&state, "k", 10, MINUTE, 1).await;
    assert!(!refused.allowed);
    assert!(
        refused.reset_after > Duration::from_secs(119),
        "{refused:?}"
    );
    assert!(refused.retry_after > Duration::from_secs(65), "{refused:?}");
    assert!(
        refused.retry_after <= Duration::from_secs(66),
        "{refused:?}"
    );
    assert!(pttl(&format!("{prefix}rate:k")).await > 119_000);

    // Refund everything and more: the bucket is empty again, with no extra credit.
    state
        .rate_adjust("k", 10, MINUTE, -25)
        .await
        .expect("refund");
    assert_eq!(get(&format!("{prefix}rate:k")).await, None);
    assert!(acquire(&state, "k", 10, MINUTE, 10).await.allowed);
    assert!(!acquire(&state, "k", 10, MINUTE, 1).await.allowed);

    state
        .rate_adjust("k", 10, MINUTE, -4)
        .await
        .expect("refund");
    assert!(acquire(&state, "k", 10, MINUTE, 4).await.allowed);
    assert!(!acquire(&state, "k", 10, MINUTE, 1).await.allowed);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn concurrency_counts_with_expiry() -> Result<(), StateError> {
    let prefix = unique_prefix();
    let state = redis(&prefix).await;
    let key = format!("{prefix}conc:c");
    assert!(state.concurrency_acquire("c", 2).await?);
    assert!(state.concurrency_acquire("c", 2).await?);
    assert!(!state.concurrency_acquire("c", 2).await?);
    assert_eq!(get(&key).await.as_deref(), Some("2"));
    let ttl = pttl(&key).await;
    assert!(ttl > 590_000 && ttl <= 600_000, "pttl {ttl}");
    state.concurrency_release("c").await?;
    assert_eq!(get(&key).await.as_deref(), Some("1"));
    assert!(pttl(&key).await > 0, "release dropped the expiry");
    state.concurrency_release("c").await?;
    state.concurrency_release("c").await?;
    assert_eq!(get(&key).await, None, "count went below zero or lingered");
    assert!(state.concurrency_acquire("c", 1).await?);
    assert!(!state.concurrency_acquire("zero", 0).await?);
    cleanup(&prefix).await;
    Ok(())
}

#[tokio::test]
async fn spend_add_get_seed_and_expiry() -> Result<(), StateError> {
    let prefix = unique_prefix();
    let state = redis(&prefix).await;
    assert_eq!(state.spend_get("s").await?, 0.0);
    assert_eq!(state.spend_add("s", 0.25, MINUTE).await?, 0.25);
    assert_eq!(state.spend_add("s", 0.5, MINUTE).await?, 0.75);
    assert_eq!(state.spend_get("s").await?, 0.75);
    assert!(pttl(&format!("{prefix}spend:s")).await > 59_000);

    state.spend_seed("seeded", 5.0, MINUTE).await?;
    state.spend_seed("seeded", 9.0, MINUTE).await?;
    assert_eq!(state.spend_get("seeded").await?, 5.0);
    assert_eq!(state.spend_add("seeded", 1.5, MINUTE).await?, 6.5);

    // The window is set at creation and not stretched by later additions.
    state.spend_add("s", 1.0, 2 * MINUTE).await?;
    assert!(pttl(&format!("{prefix}spend:s")).await <= 60_000);

    let short = Duration::from_millis(100);
    state.spend_add("short", 1.0, short).await?;
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(state.spend_get("short").await?, 0.0);
    assert_eq!(state.spend_add("short", 2.0, short).await?, 2.0);

    assert!(state.spend_add("s", f64::INFINITY, MINUTE).await.is_err());
    cleanup(&prefix).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_limit() {
    let prefix = unique_prefix();
    let replicas = [
        Arc::new(redis(&prefix).await),
        Arc::new(redis(&prefix).await),
    ];
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let replica = replicas[i % 2].clone();
            tokio::spawn(async move { replica.rate_acquire("tenant", 10, MINUTE, 1).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        if task.await.expect("task").expect("rate_acquire").allowed {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
    cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_atomic_under_concurrency() {
    let prefix = unique_prefix();
    let replicas = [
        Arc::new(redis(&prefix).await),
        Arc::new(redis(&prefix).await),
    ];

    let acquired: Vec<_> = (0..200)
        .map(|i| {
            let replica = replicas[i % 2].clone();
            tokio::spawn(async move { replica.concurrency_acquire("c", 25).await })
        })
        .collect();
    let mut admitted = 0;
    for task in acquired {
        if task.await.expect("task").expect("acquire") {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 25);

    let spent: Vec<_> = (0..200)
        .map(|i| {
            let replica = replicas[i % 2].clone();
            tokio::spawn(async move { replica.spend_add("s", 0.5, MINUTE).await })
        })
        .collect();
    for task in spent {
        task.await.expect("task").expect("spend_add");
    }
    assert_eq!(replicas[0].spend_get("s").await.expect("get"), 100.0);

    let released: Vec<_> = (0..40)
        .map(|i| {
            let replica = replicas[i % 2].clone();
            tokio::spawn(async move { replica.concurrency_release("c").await })
        })
        .collect();
    for task in released {
        task.await.expect("task").expect("release");
    }
    assert_eq!(get(&format!("{prefix}conc:c")).await, None);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn connect_picks_backends_and_rejects_bad_urls() {
    let memory = connect_with_prefix(None, "x:").await.expect("memory");
    assert_eq!(memory.backend(), "memory");

    let prefix = unique_prefix();
    let shared = connect_with_prefix(Some(REDIS), &prefix)
        .await
        .expect("redis");
    assert_eq!(shared.backend(), "redis");
    assert!(shared.ping().await.is_ok());
    assert_eq!(shared.spend_add("s", 1.0, MINUTE).await.expect("add"), 1.0);
    assert_eq!(get(&format!("{prefix}spend:s")).await.as_deref(), Some("1"));

    for bad in [
        "http://cache:6379",
        "cache:6379",
        "redis://user:hunter2-secret@[::1",
    ] {
        let err = match connect_with_prefix(Some(bad), &prefix).await {
            Ok(_) => panic!("{bad} accepted"),
            Err(err) => err,
        };
        assert!(matches!(err, StateError::InvalidUrl { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("hunter2-secret"),
            "password leaked: {shown}"
        );
    }
    cleanup(&prefix).await;
}

#[tokio::test]
async fn unreachable_redis_answers_from_memory() {
    let recorder = TestRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);

    // Start-up with Redis down still yields a working backend.
    let state = connect_with_prefix(Some("redis://127.0.0.1:1"), "x:")
        .await
        .expect("an unreachable redis is not a start-up error");
    assert_eq!(state.backend(), "redis");
    for _ in 0..3 {
        assert!(acquire(&*state, "k", 3, MINUTE, 1).await.allowed);
    }
    assert!(!acquire(&*state, "k", 3, MINUTE, 1).await.allowed);
    assert!(state.concurrency_acquire("c", 1).await.expect("acquire"));
    assert!(!state.concurrency_acquire("c", 1).await.expect("acquire"));
    state.concurrency_release("c").await.expect("release");
    assert!(state.concurrency_acquire("c", 1).await.expect("acquire"));
    assert_eq!(state.spend_add("s", 1.5, MINUTE).await.expect("add"), 1.5);
    assert_eq!(state.spend_get("s").await.expect("get"), 1.5);
    assert!(state.ping().await.is_ok(), "resilient ping fails closed");

    assert_eq!(
        recorder.counter("switchyard_state_fallback_total,op=rate_acquire"),
        4
    );
    assert_eq!(
        recorder.counter("switchyard_state_fallback_total,op=spend_add"),
        1
    );
    assert_eq!(recorder.gauge("switchyard_state_redis_up"), Some(0.0));

    // Caller errors are not outages: refused before Redis, not counted as fallbacks.
    assert!(state.rate_acquire("k", 1, Duration::ZERO, 1).await.is_err());
    assert_eq!(
        recorder.counter("switchyard_state_fallback_total,op=rate_acquire"),
        4
    );
}

#[tokio::test]
async fn outage_spend_is_replayed_after_recovery() {
    let recorder = TestRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let prefix = unique_prefix();
    let proxy = Proxy::start().await;
    let state = ResilientState::open(&proxy.url(), options(&prefix))
        .expect("url")
        .with_retry_interval(Duration::from_millis(20));

    assert_eq!(state.spend_add("s", 1.0, MINUTE).await.expect("add"), 1.0);
    assert!(state.concurrency_acquire("c", 5).await.expect("acquire"));
    assert!(state.is_redis_up());
    assert_eq!(recorder.gauge("switchyard_state_redis_up"), Some(1.0));

    proxy.cut();
    // Answered locally, continuing from the last total Redis reported.
    assert_eq!(state.spend_add("s", 2.0, MINUTE).await.expect("add"), 3.0);
    assert!(!state.is_redis_up());
    assert_eq!(recorder.gauge("switchyard_state_redis_up"), Some(0.0));
    assert_eq!(
        recorder.counter("switchyard_state_fallback_total,op=spend_add"),
        1
    );
    state.concurrency_release("c").await.expect("release");
    assert!(state
        .concurrency_acquire("local", 1)
        .await
        .expect("acquire"));
    state.spend_seed("seeded", 5.0, MINUTE).await.expect("seed");
    assert_eq!(get(&format!("{prefix}spend:s")).await.as_deref(), Some("1"));
    assert_eq!(get(&format!("{prefix}conc:c")).await.as_deref(), Some("1"));
    assert_eq!(get(&format!("{prefix}spend:seeded")).await, None);

    proxy.restore();
    // The manager may first hand out a connection it opened while the proxy was cut; the next
    // probe after that reconnects. Bounded: 100 × 20 ms.
    for _ in 0..100 {
        if state.is_redis_up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        state.ping().await.expect("ping");
    }
    assert!(state.is_redis_up(), "never reconnected");
    assert_eq!(get(&format!("{prefix}spend:s")).await.as_deref(), Some("3"));
    assert_eq!(get(&format!("{prefix}conc:c")).await, None);
    let seeded = get(&format!("{prefix}spend:seeded")).await;
    assert_eq!(seeded.and_then(|v| v.parse::<f64>().ok()), Some(5.0));
    assert_eq!(state.spend_add("s", 0.5, MINUTE).await.expect("add"), 3.5);

    // A slot handed out locally during the outage is given back locally, not to Redis (where it
    // would free a slot some other replica holds).
    assert!(state.concurrency_acquire("c", 5).await.expect("acquire"));
    state.concurrency_release("local").await.expect("release");
    assert_eq!(get(&format!("{prefix}conc:local")).await, None);
    assert_eq!(get(&format!("{prefix}conc:c")).await.as_deref(), Some("1"));
    assert!(state
        .concurrency_acquire("local", 1)
        .await
        .expect("acquire"));
    assert_eq!(recorder.gauge("switchyard_state_redis_up"), Some(1.0));
    cleanup(&prefix).await;
}
