//! Fixtures shared by the policy engine's integration tests: the issue's configuration, the four
//! kinds of principal, a fixed clock, and small builders for commands and sequences.
#![allow(dead_code)]

use std::sync::LazyLock;

use bson::{Bson, DateTime, Document, RawDocument, RawDocumentBuf};
use tenantgate_policy::{Context, Outcome, PolicyConfig, Principal, TenantId, decide_command};
use tenantgate_wire::{DocumentSequence, RawDoc};

/// The issue's configuration plus one collection per mode and option under test.
pub const CONFIG_TOML: &str = r#"
tenant_field = "tenantId"
soft_delete_field = "deletedAt"
databases = ["payments"]

[collections.currencies]
mode = "global"

[collections.tenantgate_secrets]
mode = "admin"

[collections.payment_summary]
mode = "view"

[collections.ledger]
soft_delete = false

[collections.invoices]
timestamps = true
"#;

/// The configuration, parsed and validated once.
pub static CONFIG: LazyLock<PolicyConfig> = LazyLock::new(|| {
    let cfg: PolicyConfig = toml::from_str(CONFIG_TOML).expect("the test config parses");
    cfg.validate().expect("the test config is valid");
    cfg
});

/// The engine's clock in every test.
pub const NOW: DateTime = DateTime::from_millis(1_700_000_000_000);

/// Who sends a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// A service principal bound to tenant `bank1`.
    Bank1,
    /// A service principal bound to tenant `bank2`.
    Bank2,
    /// `super_admin`, no tenant, no `actAs`.
    Admin,
    /// `super_admin` whose command carries `actAs` for the named tenant (the body must say so).
    AdminAs(&'static str),
    /// A principal with neither tenant nor role.
    Nobody,
}

impl Who {
    pub fn principal(self) -> Principal {
        match self {
            Who::Bank1 => Principal::tenant("svc-bank1", TenantId::new("bank1")),
            Who::Bank2 => Principal::tenant("svc-bank2", TenantId::new("bank2")),
            Who::Admin | Who::AdminAs(_) => Principal::super_admin("root"),
            Who::Nobody => Principal {
                name: "nobody".into(),
                tenant: None,
                roles: Vec::new(),
            },
        }
    }

    /// The principal name audit records must carry.
    pub fn name(self) -> &'static str {
        match self {
            Who::Bank1 => "svc-bank1",
            Who::Bank2 => "svc-bank2",
            Who::Admin | Who::AdminAs(_) => "root",
            Who::Nobody => "nobody",
        }
    }

    /// The tenant audit records must carry.
    pub fn tenant(self) -> Option<&'static str> {
        match self {
            Who::Bank1 => Some("bank1"),
            Who::Bank2 => Some("bank2"),
            Who::AdminAs(t) => Some(t),
            Who::Admin | Who::Nobody => None,
        }
    }

    /// Whether the command runs under the tenant rules.
    pub fn is_tenant(self) -> bool {
        self.tenant().is_some()
    }
}

/// Wraps a built document the way the wire codec hands it to the engine.
pub fn raw(body: RawDocumentBuf) -> RawDoc {
    RawDoc::from_buf(body).expect("test documents are valid BSON")
}

/// A kind-1 document sequence.
pub fn seq(identifier: &str, documents: Vec<RawDocumentBuf>) -> DocumentSequence {
    DocumentSequence {
        identifier: identifier.to_owned(),
        documents: documents.into_iter().map(raw).collect(),
    }
}

/// Runs the engine with the shared config and clock.
pub fn run_with(
    config: &PolicyConfig,
    who: Who,
    body: &RawDoc,
    sequences: &[DocumentSequence],
) -> Outcome {
    let principal = who.principal();
    let ctx = Context {
        principal: &principal,
        config,
        now: NOW,
    };
    decide_command(body, sequences, &ctx)
}

/// Runs the engine with the shared config and clock.
pub fn run(who: Who, body: RawDocumentBuf, sequences: &[DocumentSequence]) -> Outcome {
    run_with(&CONFIG, who, &raw(body), sequences)
}

/// Decodes a raw document for comparison with a `doc!` literal.
pub fn decode(d: &RawDocument) -> Document {
    Document::try_from(d).expect("engine output decodes")
}

/// Every string value anywhere in `value` (keys excluded).
pub fn strings(value: &Bson, out: &mut Vec<String>) {
    match value {
        Bson::String(s) => out.push(s.clone()),
        Bson::Document(d) => d.values().for_each(|v| strings(v, out)),
        Bson::Array(a) => a.iter().for_each(|v| strings(v, out)),
        _ => {}
    }
}
