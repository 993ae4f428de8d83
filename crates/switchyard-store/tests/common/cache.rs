//! Backend-independent suite for persisted semantic-cache entries. Takes a fresh, empty
//! database.

use std::sync::Arc;

use serde_json::json;
use switchyard_store::{CacheEntryFilter, CacheEntryRecord, Store};

pub fn entry(key: &str, tenant: &str, model: &str, created_ms: i64) -> CacheEntryRecord {
    CacheEntryRecord {
        key: format!("{key:0>64}"),
        scope: format!("{tenant:0>64}"),
        tenant: tenant.into(),
        model: model.into(),
        tags: Vec::new(),
        documents: Vec::new(),
        entry: json!({"response": {"id": key}, "question": format!("question {key} ü?")}),
        embedding: vec![0.6, -0.8, 0.0, 1.0e-30, -0.0, f32::MIN_POSITIVE],
        created_ms,
        expires_ms: 1_000_000,
    }
}

fn keys(v: &[CacheEntryRecord]) -> Vec<String> {
    v.iter()
        .map(|e| e.key.trim_start_matches('0').to_owned())
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

async fn load_all(store: &Arc<dyn Store>) -> Vec<String> {
    keys(&store.load_cache_entries(0, 1_000).await.unwrap())
}

pub async fn cache_suite(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.migrate().await.expect("migrate is idempotent");
    assert!(store.load_cache_entries(0, 10).await.unwrap().is_empty());
    store
        .put_cache_entries(&[])
        .await
        .expect("empty batch is a no-op");

    let mut a = entry("a", "acme", "small", 100);
    a.tags = vec!["faq".into(), "ünïcode ✓".into()];
    a.documents = vec![("handbook".into(), 3)];
    let mut b = entry("b", "acme", "large", 200);
    b.tags = vec!["news".into()];
    let mut c = entry("c", "beta", "small", 300);
    c.tags = vec!["faq".into()];
    c.documents = vec![("handbook".into(), 5), ("prices".into(), u64::MAX)];
    c.expires_ms = 500;
    store.put_cache_entries(&[a.clone()]).await.unwrap();
    store
        .put_cache_entries(&[b.clone(), c.clone()])
        .await
        .unwrap();

    // Newest first; every field round-trips, the embedding bit for bit.
    let all = store.load_cache_entries(0, 10).await.unwrap();
    assert_eq!(keys(&all), ["c", "b", "a"]);
    assert_eq!(all[2], a);
    assert_eq!(all[0], c);
    assert_eq!(bits(&all[2].embedding), bits(&a.embedding));
    assert_eq!(
        keys(&store.load_cache_entries(0, 2).await.unwrap()),
        ["c", "b"]
    );
    // Expired entries are not loaded (expires_ms is exclusive).
    assert_eq!(
        keys(&store.load_cache_entries(500, 10).await.unwrap()),
        ["b", "a"]
    );

    // A newer answer under the same key replaces the older one; in one batch the last wins.
    let mut a2 = a.clone();
    a2.created_ms = 400;
    a2.entry = json!({"response": {"id": "a2"}});
    let mut a3 = a2.clone();
    a3.entry = json!({"response": {"id": "a3"}});
    store.put_cache_entries(&[a2, a3.clone()]).await.unwrap();
    let all = store.load_cache_entries(0, 10).await.unwrap();
    assert_eq!(keys(&all), ["a", "c", "b"]);
    assert_eq!(all[0], a3);

    // Deletion by each selector field; every field given must match.
    let none = CacheEntryFilter::default();
    let tenant = |t: &str| CacheEntryFilter {
        tenant: Some(t.into()),
        ..none.clone()
    };
    let sel = CacheEntryFilter {
        tag: Some("faq".into()),
        model: Some("large".into()),
        ..none.clone()
    };
    assert_eq!(store.delete_cache_entries(&sel).await.unwrap(), 0);
    assert_eq!(
        store.delete_cache_entries(&tenant("nobody")).await.unwrap(),
        0
    );
    let older_handbook = CacheEntryFilter {
        document: Some("handbook".into()),
        below_version: Some(4),
        ..none.clone()
    };
    assert_eq!(
        store.delete_cache_entries(&older_handbook).await.unwrap(),
        1
    );
    assert_eq!(load_all(&store).await, ["c", "b"]);
    let prices = CacheEntryFilter {
        document: Some("prices".into()),
        ..none.clone()
    };
    assert_eq!(store.delete_cache_entries(&prices).await.unwrap(), 1);
    assert_eq!(load_all(&store).await, ["b"]);

    store
        .put_cache_entries(&[a.clone(), c.clone()])
        .await
        .unwrap();
    let faq = CacheEntryFilter {
        tag: Some("ünïcode ✓".into()),
        ..none.clone()
    };
    assert_eq!(store.delete_cache_entries(&faq).await.unwrap(), 1);
    let large = CacheEntryFilter {
        model: Some("large".into()),
        tenant: Some("acme".into()),
        ..none.clone()
    };
    assert_eq!(store.delete_cache_entries(&large).await.unwrap(), 1);
    assert_eq!(
        store.delete_cache_entries(&tenant("beta")).await.unwrap(),
        1
    );
    assert!(load_all(&store).await.is_empty());

    // An empty filter removes everything.
    store
        .put_cache_entries(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    assert_eq!(store.delete_cache_entries(&none).await.unwrap(), 3);

    // Purging drops exactly the expired entries.
    store
        .put_cache_entries(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    assert_eq!(store.purge_expired_cache_entries(499).await.unwrap(), 0);
    assert_eq!(store.purge_expired_cache_entries(500).await.unwrap(), 1);
    assert_eq!(load_all(&store).await, ["b", "a"]);
    store.delete_cache_entries(&none).await.unwrap();

    // More rows than one statement holds, with a repeated key; NUL in text is tolerated
    // (PostgreSQL rejects it raw) and a filter written with it still matches.
    let mut many: Vec<_> = (0..150)
        .map(|i| entry(&format!("bulk{i:03}"), "acme", "small", 1_000 + i))
        .collect();
    many.push(entry("bulk007", "acme", "small", 5_000));
    store.put_cache_entries(&many).await.unwrap();
    let loaded = store.load_cache_entries(0, 1_000).await.unwrap();
    assert_eq!(loaded.len(), 150);
    assert_eq!(keys(&loaded[..1]), ["bulk007"]);
    let nul = entry("nul", "te\0nant", "small", 1);
    store
        .put_cache_entries(&[nul])
        .await
        .expect("NUL tolerated");
    assert_eq!(
        store
            .delete_cache_entries(&tenant("te\0nant"))
            .await
            .unwrap(),
        1
    );
}
