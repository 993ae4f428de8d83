//! Backend-independent suites for keys, tenants, the audit log and schema
//! upgrades. Each takes a fresh, empty database.

use std::sync::Arc;

use serde_json::json;
use switchyard_store::{ApiKeyRecord, AuditEvent, RequestRecord, Store, TenantRecord};

use super::Raw;

pub fn full_key(id: &str, created_ms: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: id.into(),
        key_hash: format!("{id:0>64}"),
        tenant: "acme".into(),
        name: "ci pipeline ✓".into(),
        role: "tenant_admin".into(),
        models: vec!["gpt-4o".into(), "small".into()],
        expires_ms: Some(1_900_000_000_000),
        rpm: Some(600),
        tpm: Some(i64::MAX as u64),
        max_concurrent: Some(8),
        budget_usd: Some(123.456),
        created_ms,
        revoked: false,
        revoked_ms: None,
        last_used_ms: None,
    }
}

pub async fn keys_suite(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    assert_eq!(store.get_api_key("k1").await.unwrap(), None);

    // Every field round-trips, through get and list alike.
    let k1 = full_key("k1", 10);
    let bare = ApiKeyRecord {
        key_id: "bare".into(),
        key_hash: "cd".repeat(32),
        tenant: "beta".into(),
        role: "user".into(),
        created_ms: 5,
        ..Default::default()
    };
    store.upsert_api_key(&k1).await.unwrap();
    store.upsert_api_key(&bare).await.unwrap();
    assert_eq!(store.get_api_key("k1").await.unwrap(), Some(k1.clone()));
    assert_eq!(store.get_api_key("bare").await.unwrap(), Some(bare.clone()));
    assert_eq!(
        store.list_api_keys().await.unwrap(),
        vec![bare.clone(), k1.clone()]
    );

    // Revocation happens once; the first time is kept.
    assert!(store.revoke_api_key("k1", 1_000).await.unwrap());
    assert!(!store.revoke_api_key("k1", 2_000).await.unwrap());
    assert!(!store.revoke_api_key("missing", 1_000).await.unwrap());
    let got = store.get_api_key("k1").await.unwrap().unwrap();
    assert!(got.revoked);
    assert_eq!(got.revoked_ms, Some(1_000));

    // Touch keeps the latest use, within a batch and across batches; unknown
    // keys and empty batches are harmless.
    store.touch_api_keys(&[]).await.unwrap();
    store
        .touch_api_keys(&[
            ("k1".into(), 100),
            ("missing".into(), 1),
            ("k1".into(), 50),
            ("bare".into(), 7),
        ])
        .await
        .unwrap();
    let last = |k: Option<ApiKeyRecord>| k.unwrap().last_used_ms;
    assert_eq!(last(store.get_api_key("k1").await.unwrap()), Some(100));
    assert_eq!(last(store.get_api_key("bare").await.unwrap()), Some(7));
    store.touch_api_keys(&[("k1".into(), 80)]).await.unwrap();
    assert_eq!(last(store.get_api_key("k1").await.unwrap()), Some(100));
    store.touch_api_keys(&[("k1".into(), 150)]).await.unwrap();
    assert_eq!(last(store.get_api_key("k1").await.unwrap()), Some(150));
    assert_eq!(store.get_api_key("missing").await.unwrap(), None);

    // A large batch is one call.
    let many: Vec<_> = (0..300).map(|i| full_key(&format!("m{i:03}"), i)).collect();
    for k in &many {
        store.upsert_api_key(k).await.unwrap();
    }
    let uses: Vec<_> = many.iter().map(|k| (k.key_id.clone(), 42)).collect();
    store.touch_api_keys(&uses).await.unwrap();
    assert!(store
        .list_api_keys()
        .await
        .unwrap()
        .iter()
        .filter(|k| k.key_id.starts_with('m'))
        .all(|k| k.last_used_ms == Some(42)));

    // Re-declaring a key (as the gateway does with config keys at each start)
    // overwrites everything, revocation included, but never last_used_ms.
    let redeclared = ApiKeyRecord {
        name: "renamed".into(),
        models: vec![],
        rpm: None,
        created_ms: 11,
        ..full_key("k1", 0)
    };
    store.upsert_api_key(&redeclared).await.unwrap();
    assert_eq!(
        store.get_api_key("k1").await.unwrap(),
        Some(ApiKeyRecord {
            last_used_ms: Some(150),
            ..redeclared.clone()
        })
    );
    // A record that carries an older use does not move it back; a newer one
    // moves it forward.
    for (sent, kept) in [(10, 150), (200, 200)] {
        let k = ApiKeyRecord {
            last_used_ms: Some(sent),
            ..redeclared.clone()
        };
        store.upsert_api_key(&k).await.unwrap();
        assert_eq!(last(store.get_api_key("k1").await.unwrap()), Some(kept));
    }
}

pub async fn tenants_suite(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    assert!(store.list_tenants().await.unwrap().is_empty());
    assert_eq!(store.get_tenant("zeta").await.unwrap(), None);

    let zeta = TenantRecord {
        name: "zeta".into(),
        settings: json!({"rpm": 60, "models": ["small"], "nested": {"x": [1, null, "ü"]}}),
        created_ms: 1,
        updated_ms: 1,
    };
    let alpha = TenantRecord {
        name: "alpha".into(),
        settings: json!({}),
        created_ms: 2,
        updated_ms: 2,
    };
    store.upsert_tenant(&zeta).await.unwrap();
    store.upsert_tenant(&alpha).await.unwrap();
    assert_eq!(
        store.list_tenants().await.unwrap(),
        vec![alpha.clone(), zeta.clone()]
    );

    // An update replaces settings and updated_ms; creation time stays.
    let changed = TenantRecord {
        settings: json!({"rpm": 120}),
        created_ms: 99,
        updated_ms: 50,
        ..zeta.clone()
    };
    store.upsert_tenant(&changed).await.unwrap();
    assert_eq!(
        store.get_tenant("zeta").await.unwrap(),
        Some(TenantRecord {
            created_ms: 1,
            ..changed
        })
    );
    assert_eq!(store.list_tenants().await.unwrap().len(), 2);
}

fn event(id: &str, ts_ms: i64, actor_tenant: &str, details_tenant: Option<&str>) -> AuditEvent {
    let mut details = serde_json::Map::new();
    details.insert("reason".into(), json!("test"));
    if let Some(t) = details_tenant {
        details.insert("tenant".into(), json!(t));
    }
    AuditEvent {
        id: id.into(),
        ts_ms,
        actor: format!("key_{actor_tenant}"),
        actor_tenant: actor_tenant.into(),
        action: "key.create".into(),
        target: format!("target-{id}"),
        outcome: "ok".into(),
        details,
    }
}

/// `raw` reaches the same database; `extra_refused` are further statements
/// the backend must refuse (e.g. TRUNCATE on PostgreSQL).
pub async fn audit_suite(store: Arc<dyn Store>, raw: Raw, extra_refused: &[&str]) {
    store.migrate().await.unwrap();
    assert!(store.list_audit(10, None).await.unwrap().is_empty());

    let e1 = event("e1", 100, "acme", None);
    let e2 = event("e2", 300, "root", Some("acme"));
    let e3 = event("e3", 200, "beta", None);
    let e4 = event("e4", 300, "beta", Some("gamma"));
    let mut e5 = event("e5", 50, "beta", None);
    e5.outcome = "denied".into();
    e5.details.clear();
    for e in [&e1, &e2, &e3, &e4, &e5] {
        store.append_audit(e).await.unwrap();
    }
    // Appending a known id again is a no-op, not an error or an overwrite.
    let mut dup = e1.clone();
    dup.outcome = "error".into();
    store.append_audit(&dup).await.unwrap();

    let ids = |v: Vec<AuditEvent>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    // Newest first; e2 and e4 share ts_ms, so append order breaks the tie.
    assert_eq!(
        ids(store.list_audit(10, None).await.unwrap()),
        ["e4", "e2", "e3", "e1", "e5"]
    );
    assert_eq!(ids(store.list_audit(2, None).await.unwrap()), ["e4", "e2"]);
    let all = store.list_audit(10, None).await.unwrap();
    assert_eq!(all[3], e1);
    assert_eq!(all[4], e5);

    // A tenant sees events it did and events about it.
    assert_eq!(
        ids(store.list_audit(10, Some("acme")).await.unwrap()),
        ["e2", "e1"]
    );
    assert_eq!(
        ids(store.list_audit(10, Some("beta")).await.unwrap()),
        ["e4", "e3", "e5"]
    );
    assert_eq!(
        ids(store.list_audit(10, Some("gamma")).await.unwrap()),
        ["e4"]
    );
    assert_eq!(
        ids(store.list_audit(1, Some("beta")).await.unwrap()),
        ["e4"]
    );
    assert!(store.list_audit(10, Some("none")).await.unwrap().is_empty());

    // The database itself refuses to rewrite history.
    let mut refused = vec![
        "UPDATE audit_log SET outcome = 'ok' WHERE id = 'e5'",
        "UPDATE audit_log SET details = '{}'",
        "DELETE FROM audit_log WHERE id = 'e1'",
        "DELETE FROM audit_log",
    ];
    refused.extend_from_slice(extra_refused);
    for sql in refused {
        let err = raw(sql.to_string()).await.expect_err(sql);
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(
        store.list_audit(10, None).await.unwrap(),
        vec![e4, e2, e3, e1, e5]
    );
    // Appending still works after the refusals.
    store
        .append_audit(&event("e6", 400, "acme", None))
        .await
        .unwrap();
    assert_eq!(store.list_audit(10, None).await.unwrap().len(), 6);
}

/// Checks after migrating a database that an old build created and filled
/// with one request (`old-req`, tenant `acme`, cost 0.5) and one key
/// (`old-key`).
pub async fn after_upgrade(store: Arc<dyn Store>) {
    store.migrate().await.expect("upgrade");
    store
        .migrate()
        .await
        .expect("migrate is idempotent after upgrade");

    let old = store.get_request("old-req").await.unwrap().unwrap();
    assert_eq!(old.user, None);
    assert_eq!(old.tags, ["prod"]);
    let key = store.get_api_key("old-key").await.unwrap().unwrap();
    assert_eq!(key.role, "user", "keys from before roles are tenant keys");
    assert!(key.models.is_empty() && key.name.is_empty());
    assert_eq!(
        (key.rpm, key.last_used_ms, key.revoked_ms),
        (None, None, None)
    );
    assert_eq!(key.created_ms, 7);

    // New records use the new columns.
    let new = RequestRecord {
        user: Some("u1".into()),
        ..super::record("new-req", 2_000)
    };
    store
        .insert_requests(std::slice::from_ref(&new))
        .await
        .unwrap();
    assert_eq!(store.get_request("new-req").await.unwrap(), Some(new));
    let k = full_key("new-key", 8);
    store.upsert_api_key(&k).await.unwrap();
    assert_eq!(store.get_api_key("new-key").await.unwrap(), Some(k));
    store
        .touch_api_keys(&[("old-key".into(), 9)])
        .await
        .unwrap();
    assert_eq!(
        store
            .get_api_key("old-key")
            .await
            .unwrap()
            .unwrap()
            .last_used_ms,
        Some(9)
    );
    assert_eq!(store.delete_user_requests("u1").await.unwrap(), 1);
    assert_eq!(store.count_requests().await.unwrap(), 1);

    // The new tables exist too.
    store
        .append_audit(&event("after-upgrade", 1, "acme", None))
        .await
        .unwrap();
    assert_eq!(store.list_audit(5, Some("acme")).await.unwrap().len(), 1);
    assert_eq!(store.purge_requests("acme", i64::MAX).await.unwrap(), 1);
    let total = store
        .sum_cost(&switchyard_store::CostFilter {
            tenant: Some("acme".into()),
            from_ms: 0,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 0.5);
    let cached = super::cache::entry("after-upgrade", "acme", "small", 1);
    store
        .put_cache_entries(std::slice::from_ref(&cached))
        .await
        .unwrap();
    assert_eq!(store.load_cache_entries(0, 5).await.unwrap(), vec![cached]);
    // Experiment rows fill the columns the upgrade added, and feedback has its table.
    let tagged = super::feedback::arm_request("exp-after-upgrade", "exp", "a", 3_000);
    store.insert_requests(&[tagged]).await.unwrap();
    store
        .put_feedback(&super::feedback::verdict("exp-after-upgrade", 1.0, 3_001))
        .await
        .unwrap();
    let report = store
        .experiment_report(&switchyard_store::ExperimentQuery {
            name: "exp".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!((report[0].requests, report[0].feedback_count), (1, 1));
}
