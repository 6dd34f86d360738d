//! The tenant-isolation rewrite and decision engine.
//!
//! Given one command (body and document sequences, from `tenantgate-wire`) and the [`Context`]
//! of the principal that sent it, [`decide`] says exactly what may reach MongoDB: forward a
//! rewritten command, reject it with a MongoDB-style error, or answer it locally. It performs no
//! I/O and has no tokio dependency, so the proxy and the HTTP API share one engine and one set of
//! rules. Default deny throughout: a command, field, operator or stage that no rule understands
//! is rejected, never forwarded unrewritten.
//!
//! The rules are described for the security team in `docs/security-model.md`; the modules are:
//! [`engine`] (entry point and order of checks), `hygiene` (duplicate keys, JavaScript),
//! `options` (per-command options in `comment`), `scope` and `filter` (scoped filters and
//! override detection), `update` (update documents), `rewrite/*` (one file per command family),
//! [`admin`] (allowlists and local replies), [`audit`] (redacted audit records) and [`reply`]
//! (reply reshaping for rewritten deletes).
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod config;
pub mod decision;
pub mod engine;
mod filter;
mod hygiene;
mod options;
mod principal;
mod raw;
pub mod reply;
mod rewrite;
mod scope;
mod update;

pub use audit::{AuditKind, AuditRecord};
pub use config::{CollectionMode, CollectionPolicy, ConfigError, PolicyConfig};
pub use decision::{Decision, Forward, Outcome, Rejection, ReplyShape, Rule, UNAUTHORIZED_CODE};
pub use engine::{Context, decide, decide_command};
pub use principal::{Principal, Role, TenantId};
