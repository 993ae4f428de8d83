//! The append-only audit log: who did what to which target, and how it ended.
//!
//! Both backends enforce append-only in the database itself (triggers that
//! abort any `UPDATE` or `DELETE` of `audit_log`), so not even a bug in the
//! gateway, or an operator with the gateway's credentials using `psql`
//! carelessly, can rewrite history without first dropping the triggers.

use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::StoreError;

/// One administrative action (or attempt at one).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    /// Unique; appending an id that already exists is a no-op, so a retried
    /// append never records the event twice.
    pub id: String,
    pub ts_ms: i64,
    /// `key_id` of the key that acted (or `"admin"`).
    pub actor: String,
    pub actor_tenant: String,
    /// e.g. `"key.create"`, `"tenant.update"`, `"user.delete"`.
    pub action: String,
    pub target: String,
    /// `"ok"`, `"denied"` or `"error"`.
    pub outcome: String,
    /// Free-form; a `"tenant"` entry makes the event visible to that tenant
    /// in `Store::list_audit` even when the actor belongs elsewhere.
    #[serde(default)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

pub(crate) const AUDIT_COLUMNS: &str =
    "id, ts_ms, actor, actor_tenant, action, target, outcome, details";

/// Trigger message; also how callers (and tests) recognise the refusal.
pub(crate) const APPEND_ONLY_MESSAGE: &str = "audit_log is append-only";

/// The event as bindable text, with NUL replaced (PostgreSQL rejects it and
/// targets can echo client input).
pub(crate) struct AuditRow {
    pub id: String,
    pub ts_ms: i64,
    pub actor: String,
    pub actor_tenant: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub details: String,
}

fn clean(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

impl AuditRow {
    pub(crate) fn from_event(ev: &AuditEvent) -> Result<Self, StoreError> {
        let details = serde_json::to_string(&ev.details)
            .map_err(|e| StoreError::Encode(format!("details of audit event {}: {e}", ev.id)))?;
        Ok(Self {
            id: clean(&ev.id),
            ts_ms: ev.ts_ms,
            actor: clean(&ev.actor),
            actor_tenant: clean(&ev.actor_tenant),
            action: clean(&ev.action),
            target: clean(&ev.target),
            outcome: clean(&ev.outcome),
            details,
        })
    }
}

pub(crate) fn decode_audit<R>(backend: &'static str, row: &R) -> Result<AuditEvent, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let read = || -> Result<(AuditEvent, String), sqlx::Error> {
        Ok((
            AuditEvent {
                id: row.try_get("id")?,
                ts_ms: row.try_get("ts_ms")?,
                actor: row.try_get("actor")?,
                actor_tenant: row.try_get("actor_tenant")?,
                action: row.try_get("action")?,
                target: row.try_get("target")?,
                outcome: row.try_get("outcome")?,
                details: serde_json::Map::new(),
            },
            row.try_get("details")?,
        ))
    };
    let (mut ev, details) = read().map_err(StoreError::db(backend))?;
    ev.details = serde_json::from_str(&details)
        .map_err(|e| StoreError::Corrupt(format!("audit event {}: column details: {e}", ev.id)))?;
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_replaced_and_details_are_json() {
        let mut details = serde_json::Map::new();
        details.insert("tenant".into(), serde_json::json!("acme"));
        let ev = AuditEvent {
            id: "a1".into(),
            target: "model\0x".into(),
            details,
            ..Default::default()
        };
        let row = AuditRow::from_event(&ev).unwrap();
        assert_eq!(row.target, "model\u{FFFD}x");
        assert_eq!(row.details, r#"{"tenant":"acme"}"#);
    }
}
