//! Stage 1 — who is calling. API keys are held only as SHA-256 digests; the admin key is compared
//! in constant time. A request's key comes from `Authorization: Bearer`, `x-api-key` or `api-key`.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: Arc<str>,
    pub key_id: Arc<str>,
    pub is_admin: bool,
}

pub const ADMIN_TENANT: &str = "_admin";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send it as `Authorization: Bearer <key>`")]
    Missing,
    #[error("invalid API key")]
    Invalid,
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

pub struct KeyRing {
    admin: KeyDigest,
    admin_principal: Principal,
    tenants: HashMap<KeyDigest, Principal>,
}

impl KeyRing {
    pub fn new(admin_key: &str) -> Self {
        let admin = digest(admin_key);
        Self {
            admin,
            admin_principal: Principal {
                tenant: Arc::from(ADMIN_TENANT),
                key_id: Arc::from(key_id(&admin).as_str()),
                is_admin: true,
            },
            tenants: HashMap::new(),
        }
    }

    /// Adds a tenant key given by its digest (keys loaded from the store are never seen in clear).
    pub fn insert_digest(&mut self, digest: KeyDigest, tenant: &str) {
        self.tenants.insert(
            digest,
            Principal {
                tenant: Arc::from(tenant),
                key_id: Arc::from(key_id(&digest).as_str()),
                is_admin: false,
            },
        );
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let key = presented_key(headers).ok_or(AuthError::Missing)?;
        let d = digest(key);
        if bool::from(d.ct_eq(&self.admin)) {
            return Ok(self.admin_principal.clone());
        }
        // Looking up the digest rather than the key keeps the secret itself out of any
        // data-dependent comparison.
        self.tenants.get(&d).cloned().ok_or(AuthError::Invalid)
    }

    pub fn authenticate_admin(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let p = self.authenticate(headers)?;
        if p.is_admin {
            Ok(p)
        } else {
            Err(AuthError::NotAdmin)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        let mut r = KeyRing::new("sk-admin-0123456789abcdef");
        r.insert_digest(digest("sk-acme-1"), "acme");
        r
    }

    fn bearer(k: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {k}").parse().unwrap());
        h
    }

    #[test]
    fn tenant_key_maps_to_tenant() {
        let p = ring().authenticate(&bearer("sk-acme-1")).unwrap();
        assert_eq!(&*p.tenant, "acme");
        assert!(!p.is_admin);
        assert!(p.key_id.starts_with("key_") && !p.key_id.contains("acme"));
    }

    #[test]
    fn admin_and_errors() {
        let r = ring();
        assert!(r
            .authenticate_admin(&bearer("sk-admin-0123456789abcdef"))
            .is_ok());
        assert_eq!(
            r.authenticate_admin(&bearer("sk-acme-1")).unwrap_err(),
            AuthError::NotAdmin
        );
        assert_eq!(
            r.authenticate(&bearer("sk-nope")).unwrap_err(),
            AuthError::Invalid
        );
        assert_eq!(
            r.authenticate(&HeaderMap::new()).unwrap_err(),
            AuthError::Missing
        );
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "sk-acme-1".parse().unwrap());
        assert!(r.authenticate(&h).is_ok());
    }
}
