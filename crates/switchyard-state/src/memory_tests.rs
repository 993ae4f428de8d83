//! Time is tokio's paused clock: `advance` moves it exactly, so these tests neither sleep nor
//! flake on a loaded machine.

use super::*;
use tokio::time::advance;

const PERIOD: Duration = Duration::from_millis(200);

async fn acquire(state: &MemoryState, key: &str, limit: u64, cost: u64) -> RateDecision {
    match state.rate_acquire(key, limit, PERIOD, cost).await {
        Ok(decision) => decision,
        Err(err) => panic!("rate_acquire failed: {err}"),
    }
}

#[tokio::test(start_paused = true)]
async fn burst_up_to_limit_then_refusal() {
    let state = MemoryState::new();
    for i in 0..5 {
        let d = acquire(&state, "k", 5, 1).await;
        assert!(d.allowed, "request {i} refused");
        assert_eq!(d.limit, 5);
        assert_eq!(d.remaining, 4 - i);
        assert_eq!(d.retry_after, Duration::ZERO);
    }
    let refused = acquire(&state, "k", 5, 1).await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // One unit frees up every 200 ms / 5 = 40 ms.
    assert_eq!(refused.retry_after, Duration::from_millis(40));
    assert_eq!(refused.reset_after, PERIOD);
}

#[tokio::test(start_paused = true)]
async fn refills_over_time_and_retry_after_is_exact() {
    let state = MemoryState::new();
    for _ in 0..5 {
        assert!(acquire(&state, "k", 5, 1).await.allowed);
    }
    let refused = acquire(&state, "k", 5, 1).await;
    advance(refused.retry_after - Duration::from_millis(2)).await;
    assert!(!acquire(&state, "k", 5, 1).await.allowed, "admitted early");
    advance(Duration::from_millis(2)).await;
    let d = acquire(&state, "k", 5, 1).await;
    assert!(d.allowed, "not admitted after retry_after");
    assert_eq!(d.remaining, 0);

    // A full period later the whole burst is available again.
    advance(PERIOD).await;
    for _ in 0..5 {
        assert!(acquire(&state, "k", 5, 1).await.allowed);
    }
    assert!(!acquire(&state, "k", 5, 1).await.allowed);
}

#[tokio::test(start_paused = true)]
async fn all_or_nothing_and_oversized_cost() {
    let state = MemoryState::new();
    assert!(acquire(&state, "k", 10, 7).await.allowed);
    let refused = acquire(&state, "k", 10, 4).await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 3, "a refused request consumed units");
    // 4 units need one more unit of room: 20 ms at 10 per 200 ms.
    assert_eq!(refused.retry_after, Duration::from_millis(20));
    let d = acquire(&state, "k", 10, 3).await;
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);

    let fresh = acquire(&state, "other", 10, 11).await;
    assert!(!fresh.allowed, "cost above limit admitted");
    assert_eq!(fresh.remaining, 10);
    assert_eq!(fresh.retry_after, PERIOD);
}

#[tokio::test(start_paused = true)]
async fn keys_are_independent() {
    let state = MemoryState::new();
    assert!(acquire(&state, "a", 1, 1).await.allowed);
    assert!(!acquire(&state, "a", 1, 1).await.allowed);
    assert!(acquire(&state, "b", 1, 1).await.allowed);
}

#[tokio::test(start_paused = true)]
async fn adjust_pushes_into_debt_without_refusing() {
    let state = MemoryState::new();
    assert!(acquire(&state, "k", 10, 5).await.allowed);
    // The real usage was 15 more than estimated: 20 of 10, i.e. 10 units (one period) in debt.
    assert!(state.rate_adjust("k", 10, PERIOD, 15).await.is_ok());
    let refused = acquire(&state, "k", 10, 1).await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert_eq!(refused.reset_after, Duration::from_millis(400));
    assert_eq!(refused.retry_after, Duration::from_millis(220));
    advance(Duration::from_millis(220)).await;
    assert!(acquire(&state, "k", 10, 1).await.allowed);
}

#[tokio::test(start_paused = true)]
async fn adjust_refunds_but_never_below_empty() {
    let state = MemoryState::new();
    assert!(acquire(&state, "k", 10, 10).await.allowed);
    assert!(!acquire(&state, "k", 10, 1).await.allowed);
    assert!(state.rate_adjust("k", 10, PERIOD, -4).await.is_ok());
    assert_eq!(acquire(&state, "k", 10, 4).await.remaining, 0);
    assert!(!acquire(&state, "k", 10, 1).await.allowed);

    // A refund larger than what was consumed leaves a plain full bucket, not extra credit.
    assert!(state.rate_adjust("fresh", 10, PERIOD, -100).await.is_ok());
    let d = acquire(&state, "fresh", 10, 10).await;
    assert!(d.allowed);
    assert!(!acquire(&state, "fresh", 10, 1).await.allowed);
}

#[tokio::test(start_paused = true)]
async fn degenerate_limits() {
    let state = MemoryState::new();
    let d = acquire(&state, "k", 0, 1).await;
    assert!(!d.allowed);
    assert_eq!((d.limit, d.remaining), (0, 0));
    assert!(state.rate_acquire("k", 5, Duration::ZERO, 1).await.is_err());
    assert!(state.rate_adjust("k", 5, Duration::ZERO, 1).await.is_err());
    // Cost zero peeks without consuming.
    assert_eq!(acquire(&state, "k", 5, 0).await.remaining, 5);
    assert_eq!(acquire(&state, "k", 5, 1).await.remaining, 4);
}

#[tokio::test(start_paused = true)]
async fn concurrency_counts_in_flight() -> Result<(), StateError> {
    let state = MemoryState::new();
    assert!(state.concurrency_acquire("c", 2).await?);
    assert!(state.concurrency_acquire("c", 2).await?);
    assert!(!state.concurrency_acquire("c", 2).await?);
    assert_eq!(
        state.in_flight("c"),
        2,
        "a refused acquire changed the count"
    );
    state.concurrency_release("c").await?;
    assert!(state.concurrency_acquire("c", 2).await?);
    state.concurrency_release("c").await?;
    state.concurrency_release("c").await?;
    state.concurrency_release("c").await?; // one too many: stays at zero
    assert_eq!(state.in_flight("c"), 0);
    assert!(state.concurrency_acquire("c", 1).await?);
    assert!(!state.concurrency_acquire("c", 1).await?);
    assert!(!state.concurrency_acquire("zero", 0).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_exact_under_contention() {
    let state = std::sync::Arc::new(MemoryState::new());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move { state.concurrency_acquire("c", 10).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        if matches!(task.await, Ok(Ok(true))) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
}

#[tokio::test(start_paused = true)]
async fn spend_accumulates_and_expires() -> Result<(), StateError> {
    let state = MemoryState::new();
    let ttl = Duration::from_millis(100);
    assert_eq!(state.spend_get("s").await?, 0.0);
    assert_eq!(state.spend_add("s", 0.25, ttl).await?, 0.25);
    assert_eq!(state.spend_add("s", 0.5, ttl).await?, 0.75);
    assert_eq!(state.spend_get("s").await?, 0.75);

    // Later additions do not extend the window set when the counter was created.
    advance(Duration::from_millis(60)).await;
    assert_eq!(state.spend_add("s", 1.0, ttl).await?, 1.75);
    advance(Duration::from_millis(41)).await;
    assert_eq!(state.spend_get("s").await?, 0.0);
    assert_eq!(
        state.spend_add("s", 2.0, ttl).await?,
        2.0,
        "expired total leaked"
    );

    assert!(state.spend_add("s", f64::NAN, ttl).await.is_err());
    assert!(state.spend_add("s", 1.0, Duration::ZERO).await.is_err());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn seed_only_when_absent() -> Result<(), StateError> {
    let state = MemoryState::new();
    let ttl = Duration::from_millis(100);
    state.spend_seed("s", 5.0, ttl).await?;
    state.spend_seed("s", 9.0, ttl).await?;
    assert_eq!(state.spend_get("s").await?, 5.0);
    assert_eq!(state.spend_add("s", 1.0, ttl).await?, 6.0);
    state.spend_seed("s", 0.0, ttl).await?;
    assert_eq!(state.spend_get("s").await?, 6.0);
    advance(Duration::from_millis(100)).await;
    state.spend_seed("s", 3.0, ttl).await?;
    assert_eq!(
        state.spend_get("s").await?,
        3.0,
        "an expired counter blocks seeding"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn expired_entries_are_pruned_lazily() {
    let state = MemoryState::new();
    let ttl = Duration::from_millis(50);
    for i in 0..2000 {
        let key = format!("k{i}");
        assert!(acquire(&state, &key, 10, 1).await.allowed);
        assert!(state.spend_add(&key, 1.0, ttl).await.is_ok());
    }
    let total = |state: &MemoryState| -> usize {
        state
            .shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    };
    assert_eq!(total(&state), 4000);
    advance(PERIOD).await;
    // Enough operations on fresh keys that every shard passes its sweep threshold.
    for i in 0..(SHARDS * SWEEP_MIN_OPS * 2) {
        let _ = state.spend_get(&format!("probe{i}")).await;
    }
    assert_eq!(total(&state), 0);
}
