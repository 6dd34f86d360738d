//! The policy configuration: which field carries the tenant, which databases exist for tenants,
//! and how each collection is treated.
//!
//! It is deserialised from the `[policy]` table of `tenantgate.toml` and validated once; the
//! engine then trusts it. Every field has a default, and anything not listed is denied: an empty
//! `databases` list lets tenants reach no database at all.

use std::collections::BTreeMap;

use serde::Deserialize;

/// How a collection is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CollectionMode {
    /// Scoped to the caller's tenant and soft-deleted (the default).
    #[default]
    Tenant,
    /// Readable by every tenant (reference data such as currencies); writable only by
    /// `super_admin`.
    Global,
    /// Reachable only by `super_admin`.
    Admin,
    /// A view: its pipeline runs with the view owner's reach, so tenants may not read it.
    View,
}

/// The treatment of one collection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectionPolicy {
    /// How the collection is shared.
    pub mode: CollectionMode,
    /// Deletes become soft deletes and deleted documents are hidden from reads.
    pub soft_delete: bool,
    /// Stamp `created_at_field` / `updated_at_field` on writes.
    pub timestamps: bool,
}

impl Default for CollectionPolicy {
    fn default() -> Self {
        CollectionPolicy {
            mode: CollectionMode::Tenant,
            soft_delete: true,
            timestamps: false,
        }
    }
}

/// The `[policy]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The top-level field holding the tenant id in every tenant-scoped document.
    pub tenant_field: String,
    /// The field a soft delete sets to the deletion time; `null` or absent means live.
    pub soft_delete_field: String,
    /// Field stamped with the insert time when a collection has `timestamps = true`.
    pub created_at_field: String,
    /// Field stamped with the last write time when a collection has `timestamps = true`.
    pub updated_at_field: String,
    /// Databases tenants may use. Empty: none.
    pub databases: Vec<String>,
    /// tenantgate's own database (tenants, principals, audit): never reachable by a tenant.
    pub internal_database: String,
    /// Per-collection treatment; collections not listed get `default_collection`.
    pub collections: BTreeMap<String, CollectionPolicy>,
    /// Treatment of collections not listed in `collections`.
    pub default_collection: CollectionPolicy,
    /// Keep literal values in audit shapes. Off in production: payment data must not reach logs.
    pub audit_values: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            tenant_field: "tenantId".into(),
            soft_delete_field: "deletedAt".into(),
            created_at_field: "createdAt".into(),
            updated_at_field: "updatedAt".into(),
            databases: Vec::new(),
            internal_database: "tenantgate".into(),
            collections: BTreeMap::new(),
            default_collection: CollectionPolicy::default(),
            audit_values: false,
        }
    }
}

/// A configuration value that cannot work, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy.{key}: {reason}")]
pub struct ConfigError {
    /// The offending key, e.g. `tenant_field` or `collections.payments`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// A field name the engine writes into documents and filters: top-level, no operators, no NUL.
fn check_field(key: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(err(key, "must not be empty"));
    }
    if name.starts_with('$') || name.contains('.') || name.contains('\0') {
        return Err(err(
            key,
            format!("{name:?} must be a top-level field name (no '$', '.' or NUL)"),
        ));
    }
    Ok(())
}

/// A database name MongoDB accepts.
pub(crate) fn valid_database_name(name: &str) -> bool {
    !name.is_empty() && name.len() < 64 && !name.contains(['/', '\\', '.', ' ', '"', '$', '\0'])
}

impl PolicyConfig {
    /// Checks the configuration; run once after loading.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_field("tenant_field", &self.tenant_field)?;
        check_field("soft_delete_field", &self.soft_delete_field)?;
        check_field("created_at_field", &self.created_at_field)?;
        check_field("updated_at_field", &self.updated_at_field)?;
        let names = [
            &self.tenant_field,
            &self.soft_delete_field,
            &self.created_at_field,
            &self.updated_at_field,
        ];
        for (i, a) in names.iter().enumerate() {
            if names[i + 1..].contains(a) {
                return Err(err(
                    "tenant_field",
                    format!("the field {a:?} is configured for two purposes"),
                ));
            }
        }
        if self.tenant_field == "_id" {
            return Err(err("tenant_field", "must not be _id"));
        }
        for db in &self.databases {
            if !valid_database_name(db) {
                return Err(err(
                    "databases",
                    format!("{db:?} is not a valid database name"),
                ));
            }
            if db == &self.internal_database || matches!(db.as_str(), "admin" | "local" | "config")
            {
                return Err(err(
                    "databases",
                    format!("{db:?} is reserved and cannot be opened to tenants"),
                ));
            }
        }
        if !valid_database_name(&self.internal_database) {
            return Err(err("internal_database", "is not a valid database name"));
        }
        for name in self.collections.keys() {
            if name.is_empty() || name.starts_with("system.") || name.contains(['$', '\0']) {
                return Err(err(
                    format!("collections.{name}"),
                    "is not a collection name tenants can use",
                ));
            }
        }
        Ok(())
    }

    /// The treatment of `collection`.
    pub fn collection(&self, collection: &str) -> &CollectionPolicy {
        self.collections
            .get(collection)
            .unwrap_or(&self.default_collection)
    }

    /// Whether tenants may use `database`.
    pub fn tenant_database(&self, database: &str) -> bool {
        self.databases.iter().any(|d| d == database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_parses_and_validates() {
        let cfg: PolicyConfig = toml::from_str(
            r#"
            tenant_field = "tenantId"
            soft_delete_field = "deletedAt"
            databases = ["payments"]
            [collections.currencies]
            mode = "global"
            "#,
        )
        .expect("parses");
        cfg.validate().expect("valid");
        assert_eq!(cfg.collection("currencies").mode, CollectionMode::Global);
        assert_eq!(cfg.collection("payments").mode, CollectionMode::Tenant);
        assert!(cfg.collection("payments").soft_delete);
        assert!(cfg.tenant_database("payments"));
        assert!(!cfg.tenant_database("admin"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let unknown = toml::from_str::<PolicyConfig>("tenant_feild = \"x\"");
        assert!(unknown.is_err(), "unknown keys are refused");
        for (toml_src, key) in [
            ("tenant_field = \"\"", "tenant_field"),
            ("tenant_field = \"meta.tenantId\"", "tenant_field"),
            ("tenant_field = \"$t\"", "tenant_field"),
            ("soft_delete_field = \"tenantId\"", "tenant_field"),
            ("databases = [\"admin\"]", "databases"),
            ("databases = [\"tenantgate\"]", "databases"),
            ("databases = [\"a.b\"]", "databases"),
            (
                "[collections.\"system.views\"]\nmode = \"tenant\"",
                "collections.system.views",
            ),
        ] {
            let cfg: PolicyConfig = toml::from_str(toml_src).expect("parses");
            let e = cfg.validate().expect_err(toml_src);
            assert_eq!(e.key, key, "{toml_src}");
        }
    }
}
