//! Backend-independent suites for spend reports, retention (purge with
//! rollups) and end-user deletion. Each takes a fresh, empty database.

use std::sync::Arc;

use switchyard_store::{CostFilter, GroupBy, RequestRecord, SpendQuery, SpendRow, Store};

/// 2023-11-15T00:00:00Z and the next UTC midnight.
pub const DAY1: i64 = 1_700_006_400_000;
pub const DAY2: i64 = DAY1 + 86_400_000;
const HOUR: i64 = 3_600_000;

#[allow(clippy::too_many_arguments)]
fn spend_rec(
    id: &str,
    ts_ms: i64,
    tenant: &str,
    key_id: &str,
    model_used: Option<&str>,
    tags: &[&str],
    user: Option<&str>,
    tokens: (u64, u64),
    cost_usd: f64,
) -> RequestRecord {
    RequestRecord {
        request_id: id.into(),
        ts_ms,
        tenant: tenant.into(),
        key_id: key_id.into(),
        endpoint: "chat.completions".into(),
        model_requested: "small".into(),
        model_used: model_used.map(Into::into),
        status: 200,
        prompt_tokens: tokens.0,
        completion_tokens: tokens.1,
        cost_usd,
        attempts: 1,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        user: user.map(Into::into),
        ..Default::default()
    }
}

/// Costs are powers of two so every sum is exact in any order.
pub fn fixture() -> Vec<RequestRecord> {
    vec![
        spend_rec(
            "a1",
            DAY1 + HOUR,
            "acme",
            "k1",
            Some("gpt-4o"),
            &["prod"],
            Some("alice"),
            (10, 5),
            1.0,
        ),
        spend_rec(
            "a2",
            DAY1 + 2 * HOUR,
            "acme",
            "k1",
            None,
            &["prod", "batch"],
            Some("bob"),
            (20, 10),
            2.0,
        ),
        spend_rec(
            "a3",
            DAY2 + HOUR,
            "acme",
            "k2",
            Some("gpt-4o"),
            &[],
            Some("alice"),
            (30, 15),
            4.0,
        ),
        spend_rec(
            "b1",
            DAY1 + 3 * HOUR,
            "beta",
            "k3",
            Some("gpt-4o"),
            &["batch"],
            None,
            (40, 20),
            8.0,
        ),
        spend_rec(
            "b2",
            DAY2 + 5 * HOUR,
            "beta",
            "k3",
            Some("small"),
            &[],
            Some("carol"),
            (50, 25),
            16.0,
        ),
    ]
}

fn row(group: &str, requests: u64, prompt: u64, completion: u64, cost: f64) -> SpendRow {
    SpendRow {
        group: group.into(),
        requests,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cost_usd: cost,
    }
}

fn q(group_by: GroupBy) -> SpendQuery {
    SpendQuery {
        group_by,
        ..Default::default()
    }
}

async fn report(store: &Arc<dyn Store>, query: SpendQuery) -> Vec<SpendRow> {
    store.spend_report(&query).await.unwrap()
}

async fn cost(store: &Arc<dyn Store>, f: CostFilter) -> f64 {
    store.sum_cost(&f).await.unwrap()
}

pub async fn spend_suite(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    assert!(report(&store, q(GroupBy::Tenant)).await.is_empty());
    assert_eq!(cost(&store, CostFilter::default()).await, 0.0);
    store.insert_requests(&fixture()).await.unwrap();

    assert_eq!(
        report(&store, q(GroupBy::Tenant)).await,
        [row("beta", 2, 90, 45, 24.0), row("acme", 3, 60, 30, 7.0)]
    );
    assert_eq!(
        report(&store, q(GroupBy::Key)).await,
        [
            row("k3", 2, 90, 45, 24.0),
            row("k2", 1, 30, 15, 4.0),
            row("k1", 2, 30, 15, 3.0)
        ]
    );
    // model_used, falling back to model_requested ("small" for a2).
    assert_eq!(
        report(&store, q(GroupBy::Model)).await,
        [
            row("small", 2, 70, 35, 18.0),
            row("gpt-4o", 3, 80, 40, 13.0)
        ]
    );
    // A request counts under each of its tags; untagged ones under none.
    assert_eq!(
        report(&store, q(GroupBy::Tag)).await,
        [row("batch", 2, 60, 30, 10.0), row("prod", 2, 30, 15, 3.0)]
    );
    assert_eq!(
        report(&store, q(GroupBy::Day)).await,
        [
            row("2023-11-16", 2, 80, 40, 20.0),
            row("2023-11-15", 3, 70, 35, 11.0)
        ]
    );
    assert_eq!(
        report(&store, q(GroupBy::User)).await,
        [
            row("carol", 1, 50, 25, 16.0),
            row("", 1, 40, 20, 8.0),
            row("alice", 2, 40, 20, 5.0),
            row("bob", 1, 20, 10, 2.0),
        ]
    );

    // Time range: from inclusive, to exclusive.
    let range = |group_by, from_ms, to_ms, tenant: Option<&str>| SpendQuery {
        group_by,
        from_ms,
        to_ms,
        tenant: tenant.map(Into::into),
    };
    assert_eq!(
        report(&store, range(GroupBy::Tenant, Some(DAY2), None, None)).await,
        [row("beta", 1, 50, 25, 16.0), row("acme", 1, 30, 15, 4.0)]
    );
    assert_eq!(
        report(&store, range(GroupBy::Tenant, None, Some(DAY2), None)).await,
        [row("beta", 1, 40, 20, 8.0), row("acme", 2, 30, 15, 3.0)]
    );
    assert_eq!(
        report(
            &store,
            range(
                GroupBy::Tenant,
                Some(DAY1 + HOUR),
                Some(DAY1 + 2 * HOUR),
                None
            )
        )
        .await,
        [row("acme", 1, 10, 5, 1.0)]
    );
    // Tenant filter, alone and with a range, for every grouping.
    assert_eq!(
        report(&store, range(GroupBy::Key, None, None, Some("acme"))).await,
        [row("k2", 1, 30, 15, 4.0), row("k1", 2, 30, 15, 3.0)]
    );
    assert_eq!(
        report(
            &store,
            range(
                GroupBy::Key,
                Some(DAY1 + 90 * 60_000),
                Some(DAY2),
                Some("acme")
            )
        )
        .await,
        [row("k1", 1, 20, 10, 2.0)]
    );
    assert_eq!(
        report(&store, range(GroupBy::Tag, None, None, Some("acme"))).await,
        [row("prod", 2, 30, 15, 3.0), row("batch", 1, 20, 10, 2.0)]
    );
    assert_eq!(
        report(
            &store,
            range(GroupBy::Day, Some(DAY1), Some(DAY2), Some("beta"))
        )
        .await,
        [row("2023-11-15", 1, 40, 20, 8.0)]
    );
    assert_eq!(
        report(&store, range(GroupBy::User, Some(DAY2), None, Some("acme"))).await,
        [row("alice", 1, 30, 15, 4.0)]
    );
    assert_eq!(
        report(&store, range(GroupBy::Model, None, None, Some("beta"))).await,
        [row("small", 1, 50, 25, 16.0), row("gpt-4o", 1, 40, 20, 8.0)]
    );
    assert!(
        report(&store, range(GroupBy::Tenant, None, None, Some("none")))
            .await
            .is_empty()
    );

    // sum_cost with each filter and their combinations.
    let f = |tenant: Option<&str>, key_id: Option<&str>, tag: Option<&str>, from_ms| CostFilter {
        tenant: tenant.map(Into::into),
        key_id: key_id.map(Into::into),
        tag: tag.map(Into::into),
        from_ms,
    };
    assert_eq!(cost(&store, f(None, None, None, 0)).await, 31.0);
    assert_eq!(cost(&store, f(Some("acme"), None, None, 0)).await, 7.0);
    assert_eq!(cost(&store, f(None, Some("k3"), None, 0)).await, 24.0);
    assert_eq!(cost(&store, f(None, None, Some("batch"), 0)).await, 10.0);
    assert_eq!(
        cost(&store, f(Some("acme"), None, Some("batch"), 0)).await,
        2.0
    );
    assert_eq!(
        cost(&store, f(Some("acme"), Some("k1"), Some("prod"), 0)).await,
        3.0
    );
    assert_eq!(
        cost(&store, f(None, Some("k1"), None, DAY1 + 90 * 60_000)).await,
        2.0
    );
    assert_eq!(cost(&store, f(None, None, None, DAY2)).await, 20.0);
    assert_eq!(cost(&store, f(None, None, Some("nope"), 0)).await, 0.0);
    // A tag that is a prefix or JSON fragment of a real tag does not match.
    assert_eq!(cost(&store, f(None, None, Some("pro"), 0)).await, 0.0);
    assert_eq!(cost(&store, f(None, None, Some("\"prod\""), 0)).await, 0.0);

    // A tag repeated within one request counts once, in reports and totals.
    let dup = spend_rec(
        "d1",
        DAY1,
        "delta",
        "k9",
        None,
        &["dup", "x", "dup"],
        None,
        (1, 2),
        64.0,
    );
    store.insert_requests(&[dup]).await.unwrap();
    assert_eq!(
        report(&store, range(GroupBy::Tag, None, None, Some("delta"))).await,
        [row("dup", 1, 1, 2, 64.0), row("x", 1, 1, 2, 64.0)]
    );
    assert_eq!(cost(&store, f(None, None, Some("dup"), 0)).await, 64.0);
}

/// Every report and total a purge must not change (ranges on day bounds).
async fn snapshot(store: &Arc<dyn Store>) -> Vec<String> {
    let mut out = Vec::new();
    for group_by in [
        GroupBy::Tenant,
        GroupBy::Key,
        GroupBy::Model,
        GroupBy::Tag,
        GroupBy::Day,
    ] {
        for (from_ms, to_ms) in [(None, None), (Some(DAY1), Some(DAY2)), (Some(DAY2), None)] {
            for tenant in [None, Some("acme"), Some("beta")] {
                let query = SpendQuery {
                    group_by,
                    from_ms,
                    to_ms,
                    tenant: tenant.map(Into::into),
                };
                out.push(format!(
                    "{query:?} => {:?}",
                    report(store, query.clone()).await
                ));
            }
        }
    }
    for tenant in [None, Some("acme")] {
        for key_id in [None, Some("k1")] {
            for tag in [None, Some("prod"), Some("batch")] {
                for from_ms in [0, DAY1, DAY2] {
                    let filter = CostFilter {
                        tenant: tenant.map(Into::into),
                        key_id: key_id.map(Into::into),
                        tag: tag.map(Into::into),
                        from_ms,
                    };
                    out.push(format!(
                        "{filter:?} => {}",
                        cost(store, filter.clone()).await
                    ));
                }
            }
        }
    }
    out
}

pub async fn retention_suite(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.insert_requests(&fixture()).await.unwrap();
    let before = snapshot(&store).await;

    // acme before DAY2: a1 and a2 go; a3 and beta's rows stay.
    assert_eq!(store.purge_requests("acme", DAY2).await.unwrap(), 2);
    assert_eq!(store.count_requests().await.unwrap(), 3);
    assert_eq!(store.get_request("a1").await.unwrap(), None);
    assert_eq!(store.get_request("a2").await.unwrap(), None);
    assert!(store.get_request("a3").await.unwrap().is_some());
    assert!(store.get_request("b1").await.unwrap().is_some());
    assert_eq!(snapshot(&store).await, before);
    // Rollups keep no end user: alice's and bob's purged requests leave the
    // user report, which covers live rows only.
    assert_eq!(
        report(&store, q(GroupBy::User)).await,
        [
            row("carol", 1, 50, 25, 16.0),
            row("", 1, 40, 20, 8.0),
            row("alice", 1, 30, 15, 4.0)
        ]
    );

    // Repeating is a no-op.
    assert_eq!(store.purge_requests("acme", DAY2).await.unwrap(), 0);
    assert_eq!(snapshot(&store).await, before);

    // A late row (e.g. a spool replay) for an already rolled-up group merges
    // into the existing rollup row.
    let late = spend_rec(
        "a4",
        DAY1 + 4 * HOUR,
        "acme",
        "k1",
        Some("gpt-4o"),
        &["prod"],
        Some("dave"),
        (1, 1),
        32.0,
    );
    store.insert_requests(&[late]).await.unwrap();
    let with_late = snapshot(&store).await;
    assert_ne!(with_late, before);
    assert_eq!(store.purge_requests("acme", DAY2).await.unwrap(), 1);
    assert_eq!(snapshot(&store).await, with_late);
    let acme_day1 = SpendQuery {
        group_by: GroupBy::Model,
        to_ms: Some(DAY2),
        tenant: Some("acme".into()),
        ..Default::default()
    };
    assert_eq!(
        report(&store, acme_day1).await,
        [row("gpt-4o", 2, 11, 6, 33.0), row("small", 1, 20, 10, 2.0)]
    );

    // Purging everything of every tenant keeps every total.
    assert_eq!(store.purge_requests("beta", i64::MAX).await.unwrap(), 2);
    assert_eq!(store.purge_requests("acme", i64::MAX).await.unwrap(), 1);
    assert_eq!(store.count_requests().await.unwrap(), 0);
    assert_eq!(snapshot(&store).await, with_late);
    assert!(report(&store, q(GroupBy::User)).await.is_empty());
    assert_eq!(
        report(&store, q(GroupBy::Tenant)).await,
        [row("acme", 4, 61, 31, 39.0), row("beta", 2, 90, 45, 24.0)]
    );

    // Deleting an end user's requests cannot touch rollups.
    assert_eq!(store.delete_user_requests("alice").await.unwrap(), 0);
    assert_eq!(snapshot(&store).await, with_late);
}

pub async fn delete_user_suite(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.insert_requests(&fixture()).await.unwrap();
    let mut unrelated = super::record("x1", 5);
    unrelated.user = Some("alice-smith".into());
    store.insert_requests(&[unrelated]).await.unwrap();

    assert_eq!(store.delete_user_requests("alice").await.unwrap(), 2);
    assert_eq!(store.get_request("a1").await.unwrap(), None);
    assert_eq!(store.get_request("a3").await.unwrap(), None);
    for id in ["a2", "b1", "b2", "x1"] {
        assert!(store.get_request(id).await.unwrap().is_some(), "{id} lost");
    }
    assert_eq!(store.count_requests().await.unwrap(), 4);
    assert_eq!(store.delete_user_requests("alice").await.unwrap(), 0);
    assert_eq!(store.delete_user_requests("nobody").await.unwrap(), 0);
    // Requests without a user are not matched by an empty name.
    assert_eq!(store.delete_user_requests("").await.unwrap(), 0);
    assert!(report(&store, q(GroupBy::User))
        .await
        .iter()
        .all(|r| r.group != "alice"));
}
