//! Stage 1 — who is calling. API keys are held only as SHA-256 digests; the admin key is compared
//! in constant time. A request's key comes from `Authorization: Bearer`, `x-api-key` or `api-key`.
//!
//! The ring is shared by every request and changed by the admin API (create, revoke) and by the
//! periodic sync with the store (keys made on other replicas). Its lock is a std `RwLock` held
//! only for a map lookup or swap, never across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchyard_store::ApiKeyRecord;

pub const ADMIN_TENANT: &str = "_admin";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Calls the model API only.
    User,
    /// Reads its tenant's keys, spend and audit trail.
    Viewer,
    /// Also creates and revokes its own tenant's keys.
    TenantAdmin,
    /// Everything, across tenants.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "viewer" => Some(Role::Viewer),
            "tenant_admin" => Some(Role::TenantAdmin),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Viewer => "viewer",
            Role::TenantAdmin => "tenant_admin",
            Role::Admin => "admin",
        }
    }
}

/// Limits that ride on a key, on top of its tenant's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyLimits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub budget_usd: Option<f64>,
}

#[derive(Debug)]
pub struct KeyEntry {
    pub tenant: Arc<str>,
    pub key_id: Arc<str>,
    pub role: Role,
    /// Models this key may use; empty means all.
    pub models: Vec<String>,
    pub expires_ms: Option<i64>,
    pub limits: KeyLimits,
    last_used_ms: AtomicI64,
    flushed_ms: AtomicI64,
}

impl KeyEntry {
    pub fn from_record(r: &ApiKeyRecord) -> Self {
        Self {
            tenant: Arc::from(r.tenant.as_str()),
            key_id: Arc::from(r.key_id.as_str()),
            role: Role::parse(&r.role).unwrap_or(Role::User),
            models: r.models.clone(),
            expires_ms: r.expires_ms,
            limits: KeyLimits {
                rpm: r.rpm,
                tpm: r.tpm,
                max_concurrent: r.max_concurrent,
                budget_usd: r.budget_usd,
            },
            last_used_ms: AtomicI64::new(r.last_used_ms.unwrap_or(0)),
            flushed_ms: AtomicI64::new(r.last_used_ms.unwrap_or(0)),
        }
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: Arc<str>,
    pub key_id: Arc<str>,
    pub role: Role,
    /// The key's own scopes and limits; None for the configured admin key.
    pub key: Option<Arc<KeyEntry>>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this caller may read or manage data of `tenant`.
    pub fn can_see_tenant(&self, tenant: &str) -> bool {
        self.is_admin() || &*self.tenant == tenant
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send it as `Authorization: Bearer <key>`")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("this API key has expired")]
    Expired,
    #[error("this key may not use the admin API")]
    NotAdmin,
}

pub type KeyDigest = [u8; 32];

pub fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// A short, non-secret identifier for a key: the first 12 hex digits of its digest.
pub fn key_id(digest: &KeyDigest) -> String {
    format!("key_{}", hex::encode(&digest[..6]))
}

pub fn digest_from_hex(hash: &str) -> Option<KeyDigest> {
    let bytes = hex::decode(hash).ok()?;
    bytes.try_into().ok()
}

pub struct KeyRing {
    admin: KeyDigest,
    admin_principal: Principal,
    keys: RwLock<HashMap<KeyDigest, Arc<KeyEntry>>>,
}

impl KeyRing {
    pub fn new(admin_key: &str) -> Self {
        let admin = digest(admin_key);
        Self {
            admin,
            admin_principal: Principal {
                tenant: Arc::from(ADMIN_TENANT),
                key_id: Arc::from(key_id(&admin).as_str()),
                role: Role::Admin,
                key: None,
            },
            keys: RwLock::new(HashMap::new()),
        }
    }

    pub fn insert(&self, digest: KeyDigest, entry: KeyEntry) {
        self.write().insert(digest, Arc::new(entry));
    }

    /// Removes a key at once (revocation); true if it was present.
    pub fn remove(&self, key_id: &str) -> bool {
        let mut keys = self.write();
        let before = keys.len();
        keys.retain(|_, e| &*e.key_id != key_id);
        keys.len() != before
    }

    /// Replaces the whole ring with the store's view, keeping the newest last-used times.
    pub fn replace_all(&self, records: &[ApiKeyRecord], now_ms: i64) {
        let mut fresh = HashMap::with_capacity(records.len());
        for r in records {
            if r.revoked || r.expires_ms.is_some_and(|e| e <= now_ms) {
                continue;
            }
            if let Some(d) = digest_from_hex(&r.key_hash) {
                fresh.insert(d, Arc::new(KeyEntry::from_record(r)));
            }
        }
        let mut keys = self.write();
        for (d, old) in keys.iter() {
            if let Some(new) = fresh.get(d) {
                new.last_used_ms
                    .fetch_max(old.last_used_ms.load(Ordering::Relaxed), Ordering::Relaxed);
                new.flushed_ms
                    .fetch_max(old.flushed_ms.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        *keys = fresh;
    }

    /// Last-used times not yet written to the store.
    pub fn take_last_used(&self) -> Vec<(String, i64)> {
        let keys = self.read();
        keys.values()
            .filter_map(|e| {
                let used = e.last_used_ms.load(Ordering::Relaxed);
                let flushed = e.flushed_ms.swap(used, Ordering::Relaxed);
                (used > flushed).then(|| (e.key_id.to_string(), used))
            })
            .collect()
    }

    pub fn authenticate(&self, headers: &HeaderMap, now_ms: i64) -> Result<Principal, AuthError> {
        let key = presented_key(headers).ok_or(AuthError::Missing)?;
        let d = digest(key);
        if bool::from(d.ct_eq(&self.admin)) {
            return Ok(self.admin_principal.clone());
        }
        // Looking up the digest rather than the key keeps the secret itself out of any
        // data-dependent comparison.
        let entry = self.read().get(&d).cloned().ok_or(AuthError::Invalid)?;
        if entry.expires_ms.is_some_and(|e| e <= now_ms) {
            return Err(AuthError::Expired);
        }
        entry.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
        Ok(Principal {
            tenant: entry.tenant.clone(),
            key_id: entry.key_id.clone(),
            role: entry.role,
            key: Some(entry),
        })
    }

    /// Admin API callers: admins, tenant admins and viewers. Handlers check finer permissions.
    pub fn authenticate_admin(
        &self,
        headers: &HeaderMap,
        now_ms: i64,
    ) -> Result<Principal, AuthError> {
        let p = self.authenticate(headers, now_ms)?;
        if p.role >= Role::Viewer {
            Ok(p)
        } else {
            Err(AuthError::NotAdmin)
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<KeyDigest, Arc<KeyEntry>>> {
        // Poisoning only means a panic elsewhere mid-swap of a plain map; the map is still whole.
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<KeyDigest, Arc<KeyEntry>>> {
        self.keys.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v)
            .trim();
        return (!token.is_empty()).then_some(token);
    }
    ["x-api-key", "api-key"]
        .iter()
        .find_map(|h| headers.get(*h))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// The name configured keys carry in the store, which tells them from keys made through the API.
pub const CONFIG_KEY_NAME: &str = "config";

/// The record a configured tenant key is stored as.
pub fn config_key_record(key: &str, tenant: &str, now_ms: i64) -> ApiKeyRecord {
    let d = digest(key);
    ApiKeyRecord {
        key_id: key_id(&d),
        key_hash: hex::encode(d),
        tenant: tenant.to_owned(),
        name: CONFIG_KEY_NAME.to_owned(),
        role: Role::User.as_str().to_owned(),
        created_ms: now_ms,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        let r = KeyRing::new("sk-admin-0123456789abcdef");
        r.replace_all(&[config_key_record("sk-acme-1", "acme", 0)], 0);
        r
    }

    fn bearer(k: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {k}").parse().unwrap());
        h
    }

    #[test]
    fn tenant_key_maps_to_tenant() {
        let p = ring().authenticate(&bearer("sk-acme-1"), 1).unwrap();
        assert_eq!(&*p.tenant, "acme");
        assert!(!p.is_admin());
        assert!(p.key_id.starts_with("key_") && !p.key_id.contains("acme"));
    }

    #[test]
    fn admin_and_errors() {
        let r = ring();
        assert!(r
            .authenticate_admin(&bearer("sk-admin-0123456789abcdef"), 1)
            .is_ok());
        assert_eq!(
            r.authenticate_admin(&bearer("sk-acme-1"), 1).unwrap_err(),
            AuthError::NotAdmin
        );
        assert_eq!(
            r.authenticate(&bearer("sk-nope"), 1).unwrap_err(),
            AuthError::Invalid
        );
        assert_eq!(
            r.authenticate(&HeaderMap::new(), 1).unwrap_err(),
            AuthError::Missing
        );
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "sk-acme-1".parse().unwrap());
        assert!(r.authenticate(&h, 1).is_ok());
    }

    #[test]
    fn revoked_expired_and_last_used() {
        let r = ring();
        let mut rec = config_key_record("sk-temp-1", "acme", 0);
        rec.expires_ms = Some(100);
        r.replace_all(&[config_key_record("sk-acme-1", "acme", 0), rec], 50);
        assert!(r.authenticate(&bearer("sk-temp-1"), 60).is_ok());
        assert_eq!(
            r.authenticate(&bearer("sk-temp-1"), 100).unwrap_err(),
            AuthError::Expired
        );
        let used = r.take_last_used();
        assert_eq!(used.len(), 1);
        assert_eq!(used[0].1, 60);
        assert!(r.take_last_used().is_empty(), "flushed once");
        let id = key_id(&digest("sk-acme-1"));
        assert!(r.remove(&id));
        assert_eq!(
            r.authenticate(&bearer("sk-acme-1"), 1).unwrap_err(),
            AuthError::Invalid
        );
    }
}
