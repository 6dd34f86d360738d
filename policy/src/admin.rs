//! Allowlists per role, and the commands the proxy answers itself.
//!
//! Tenants get CRUD, aggregation, cursors, sessions and transactions, and read-only catalogue
//! commands. Index and collection management, user and role commands, `applyOps`, `eval`, server
//! administration and diagnostics are not on their list. `super_admin` gets tenants' list plus
//! collection and index management, statistics and `bulkWrite`; server administration (shutdown,
//! replication, users and roles, `applyOps`, `fsync`, parameters) is not reachable through the
//! proxy for anyone.

use bson::{RawArrayBuf, RawDocumentBuf, rawdoc};

use crate::engine::{Context, Request};

/// Commands on the tenant allowlist, handled in [`crate::rewrite`].
pub const TENANT_COMMANDS: [&str; 20] = [
    "find",
    "count",
    "distinct",
    "aggregate",
    "insert",
    "update",
    "delete",
    "findAndModify",
    "explain",
    "getMore",
    "killCursors",
    "listCollections",
    "listIndexes",
    "listDatabases",
    "endSessions",
    "refreshSessions",
    "commitTransaction",
    "abortTransaction",
    "buildInfo",
    "ping",
];

/// Commands `super_admin` may run besides the tenant list.
pub const SUPER_ADMIN_EXTRA: [&str; 14] = [
    "create",
    "drop",
    "createIndexes",
    "dropIndexes",
    "collMod",
    "renameCollection",
    "dropDatabase",
    "dbStats",
    "collStats",
    "validate",
    "bulkWrite",
    "serverStatus",
    "currentOp",
    "killOp",
];

/// Session and diagnostic commands whose bypass is not worth an audit record: they reach no
/// tenant data (a cursor's `getMore` belongs to a command that was audited when it opened).
const UNAUDITED: [&str; 9] = [
    "endSessions",
    "refreshSessions",
    "commitTransaction",
    "abortTransaction",
    "buildInfo",
    "ping",
    "getMore",
    "killCursors",
    "listDatabases",
];

/// Whether `super_admin` may run `name`.
pub(crate) fn super_admin_allows(name: &str) -> bool {
    TENANT_COMMANDS.contains(&name) || SUPER_ADMIN_EXTRA.contains(&name) || name == "findandmodify"
}

/// Whether a `super_admin` bypass of `name` gets an audit record.
pub(crate) fn audited_bypass(name: &str) -> bool {
    !UNAUDITED.contains(&name)
}

/// Commands answered without the upstream: `ping`, `connectionStatus`, and `listDatabases` for
/// a tenant (the databases open to it, not the server's list).
pub(crate) fn local_reply(
    req: &Request<'_>,
    ctx: &Context<'_>,
    acting: Option<&str>,
) -> Option<RawDocumentBuf> {
    match req.name {
        "ping" => Some(rawdoc! { "ok": 1.0 }),
        "connectionStatus" => {
            let mut roles = RawArrayBuf::new();
            for role in &ctx.principal.roles {
                roles.push(rawdoc! { "role": role.name(), "db": "admin" });
            }
            let mut users = RawArrayBuf::new();
            users.push(rawdoc! { "user": ctx.principal.name.as_str(), "db": "admin" });
            Some(rawdoc! {
                "authInfo": { "authenticatedUsers": users, "authenticatedUserRoles": roles },
                "ok": 1.0,
            })
        }
        "listDatabases" if acting.is_some() => {
            let name_only = matches!(crate::raw::get(req.body, "nameOnly"), Ok(Some(e)) if crate::raw::truthy(e.value()));
            let mut dbs = RawArrayBuf::new();
            for db in &ctx.config.databases {
                if name_only {
                    dbs.push(rawdoc! { "name": db.as_str() });
                } else {
                    dbs.push(rawdoc! { "name": db.as_str(), "sizeOnDisk": 0_i64, "empty": false });
                }
            }
            Some(if name_only {
                rawdoc! { "databases": dbs, "ok": 1.0 }
            } else {
                rawdoc! { "databases": dbs, "totalSize": 0_i64, "totalSizeMb": 0_i64, "ok": 1.0 }
            })
        }
        _ => None,
    }
}
