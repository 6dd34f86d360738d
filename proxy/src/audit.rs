//! The audit trail: rejections, authentication failures and `super_admin` bypasses.
//!
//! Every event is a structured `tracing` event on the target `tenantgate::audit` (JSON lines
//! when the binary logs JSON). Values inside commands never appear: the policy engine redacts
//! them into the command's shape before an event exists.

use std::net::SocketAddr;

use tenantgate_policy::AuditRecord;

/// Emits a policy audit record.
pub fn record(r: &AuditRecord, peer: SocketAddr, connection: i64) {
    let shape =
        serde_json::to_string(&bson::Bson::Document(r.shape.clone()).into_relaxed_extjson())
            .unwrap_or_default();
    tracing::warn!(
        target: "tenantgate::audit",
        kind = r.kind.as_str(),
        rule = r.rule.as_str(),
        principal = %r.principal,
        tenant = r.tenant.as_deref().unwrap_or(""),
        database = r.database.as_deref().unwrap_or(""),
        collection = r.collection.as_deref().unwrap_or(""),
        command = %r.command,
        message = %r.message,
        shape = %shape,
        peer = %peer,
        connection,
        "audit"
    );
}

/// Emits an authentication failure.
pub fn auth_failure(
    username: &str,
    mechanism: &str,
    reason: &str,
    peer: SocketAddr,
    connection: i64,
) {
    tracing::warn!(
        target: "tenantgate::audit",
        kind = "auth_failure",
        rule = "authentication",
        principal = %crate::clip(username),
        mechanism,
        message = reason,
        peer = %peer,
        connection,
        "audit"
    );
}
