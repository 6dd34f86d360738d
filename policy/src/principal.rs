//! Who sent a command: a principal bound to one tenant, or one holding roles.

use std::fmt;

/// A tenant id: the value stored in the tenant field (`bank1`). Kept distinct from other strings
/// so it cannot be swapped with a principal or database name by accident.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Wraps a tenant id. Validation of the slug format is the registry's job.
    pub fn new(id: impl Into<String>) -> Self {
        TenantId(id.into())
    }

    /// The id as stored in documents.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Roles the engine understands. Others may exist for the HTTP API; here they grant nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// Bypasses tenant scoping; every such command is audited.
    SuperAdmin,
    /// Reads the audit trail through the HTTP API; no database reach of its own.
    SecurityAuditor,
    /// Any other role name.
    Other(String),
}

impl Role {
    /// Parses a role name as used in config files and JWT claims.
    pub fn parse(name: &str) -> Role {
        match name {
            "super_admin" => Role::SuperAdmin,
            "security_auditor" => Role::SecurityAuditor,
            other => Role::Other(other.to_owned()),
        }
    }

    /// The role's name.
    pub fn name(&self) -> &str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::SecurityAuditor => "security_auditor",
            Role::Other(s) => s,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The name it authenticated as (a username, or a JWT subject).
    pub name: String,
    /// The tenant it is bound to, if any.
    pub tenant: Option<TenantId>,
    /// Roles it holds.
    pub roles: Vec<Role>,
}

impl Principal {
    /// A service principal bound to `tenant`.
    pub fn tenant(name: impl Into<String>, tenant: TenantId) -> Self {
        Principal {
            name: name.into(),
            tenant: Some(tenant),
            roles: Vec::new(),
        }
    }

    /// A `super_admin` principal with no tenant of its own.
    pub fn super_admin(name: impl Into<String>) -> Self {
        Principal {
            name: name.into(),
            tenant: None,
            roles: vec![Role::SuperAdmin],
        }
    }

    /// Whether it holds `super_admin`.
    pub fn is_super_admin(&self) -> bool {
        self.roles.contains(&Role::SuperAdmin)
    }
}
