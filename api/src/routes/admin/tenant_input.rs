//! Validation of tenant bodies from the admin API, field by field, so a 422 names every field
//! at fault. `PATCH` bodies follow JSON merge-patch rules for `settings` and `limits`: a field
//! set to `null` is removed (back to the default), an absent field is left alone.

use bson::{Bson, Document, doc};
use serde_json::{Map, Value};
use tenantgate_proxy::registry::{
    LimitOverrides, RESERVED_SLUGS, Settings, Tenant, Tier, check_setting, is_slug,
    normalize_domain,
};

use crate::problem::{FieldError, Problem};

/// Custom domains per tenant.
pub const MAX_DOMAINS: usize = 20;

const SETTINGS: &[&str] = &[
    "displayName",
    "brandColor",
    "logoUrl",
    "timeZone",
    "currency",
];
const LIMITS: &[&str] = &[
    "requestsPerMinute",
    "transactionsPerMonth",
    "commandsPerSecond",
    "connections",
    "inFlight",
    "groups",
];

/// Collected field errors.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn finish<T>(self, value: T) -> Result<T, Problem> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(Problem::validation(self.0))
        }
    }
}

fn text(v: &Value, field: &str, max: usize, errors: &mut Errors) -> Option<String> {
    match v.as_str().map(str::trim) {
        Some(s)
            if !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control) =>
        {
            Some(s.to_owned())
        }
        _ => {
            errors.push(
                field,
                format!("must be a string of 1 to {max} printable characters"),
            );
            None
        }
    }
}

fn setting(key: &str, v: &Value, errors: &mut Errors) -> Option<String> {
    let field = format!("settings.{key}");
    if key == "displayName" {
        return text(v, &field, 100, errors);
    }
    match check_setting(key, v.as_str().unwrap_or_default()) {
        Ok(s) => Some(s),
        Err(why) => {
            errors.push(field, why);
            None
        }
    }
}

/// The largest value of a limit: the proxy's limits are 32-bit, the API's are not.
fn max_limit(key: &str) -> u64 {
    match key {
        "commandsPerSecond" | "connections" | "inFlight" => 10_000_000,
        _ => 1_000_000_000_000,
    }
}

fn limit(key: &str, v: &Value, errors: &mut Errors) -> Option<i64> {
    let max = max_limit(key);
    match v.as_u64() {
        Some(n) if (1..=max).contains(&n) => i64::try_from(n).ok(),
        _ => {
            errors.push(
                format!("limits.{key}"),
                format!("must be a whole number from 1 to {max}"),
            );
            None
        }
    }
}

/// `limits.groups`: endpoint group → requests per minute.
fn groups(v: &Value, errors: &mut Errors) -> Option<std::collections::BTreeMap<String, u64>> {
    let o = object(v, "limits.groups", errors)?;
    let mut out = std::collections::BTreeMap::new();
    for (name, n) in o {
        if !is_slug(name) {
            errors.push(
                format!("limits.groups.{name}"),
                "group names are the first path segment after /v1/ (lowercase)",
            );
        } else if let Some(n) = limit(&format!("groups.{name}"), n, errors) {
            out.insert(name.clone(), n as u64);
        }
    }
    Some(out)
}

fn object<'a>(v: &'a Value, field: &str, errors: &mut Errors) -> Option<&'a Map<String, Value>> {
    let o = v.as_object();
    if o.is_none() {
        errors.push(field, "must be an object");
    }
    o
}

fn domains(v: &Value, base_domains: &[String], errors: &mut Errors) -> Vec<String> {
    let Some(list) = v.as_array() else {
        errors.push("domains", "must be an array of domain names");
        return Vec::new();
    };
    if list.len() > MAX_DOMAINS {
        errors.push("domains", format!("at most {MAX_DOMAINS} domains"));
    }
    let mut out = Vec::new();
    for (i, d) in list.iter().enumerate() {
        if let Some(d) = domain(d, &format!("domains[{i}]"), base_domains, errors)
            && !out.contains(&d)
        {
            out.push(d);
        }
    }
    out
}

/// One custom domain, normalised; refused inside a base domain (its subdomains already name
/// tenants, so a custom domain there would be ambiguous).
pub fn domain(
    v: &Value,
    field: &str,
    base_domains: &[String],
    errors: &mut Errors,
) -> Option<String> {
    let Some(raw) = v.as_str() else {
        errors.push(field, "must be a domain name");
        return None;
    };
    match normalize_domain(raw) {
        Ok(d) => {
            if base_domains
                .iter()
                .any(|b| d == *b || d.ends_with(&format!(".{b}")))
            {
                errors.push(
                    field,
                    "is inside a base domain; its subdomains already name tenants",
                );
                None
            } else {
                Some(d)
            }
        }
        Err(e) => {
            errors.push(field, e.reason);
            None
        }
    }
}

/// A `POST /v1/admin/tenants` body → the tenant to create.
pub fn create(body: &Map<String, Value>, base_domains: &[String]) -> Result<Tenant, Problem> {
    let mut errors = Errors::default();
    for key in body.keys() {
        if !matches!(
            key.as_str(),
            "slug" | "name" | "tier" | "domains" | "settings" | "limits" | "isActive"
        ) {
            errors.push(key.as_str(), "is not a tenant field");
        }
    }
    let slug = match body.get("slug").and_then(Value::as_str) {
        Some(s) if is_slug(s) && !RESERVED_SLUGS.contains(&s) => s.to_owned(),
        Some(s) if RESERVED_SLUGS.contains(&s) => {
            errors.push("slug", "is reserved");
            String::new()
        }
        _ => {
            errors.push("slug", "is required: 1 to 63 lowercase letters, digits or hyphens, not starting or ending with a hyphen");
            String::new()
        }
    };
    if !slug.is_empty()
        && base_domains
            .iter()
            .any(|b| base_domains.contains(&format!("{slug}.{b}")))
    {
        errors.push(
            "slug",
            "is the first label of a base domain, so its subdomain is not a tenant host",
        );
    }
    let name = match body.get("name") {
        Some(v) => text(v, "name", 200, &mut errors).unwrap_or_default(),
        None => {
            errors.push("name", "is required");
            String::new()
        }
    };
    let tier = match body.get("tier") {
        None => Tier::Starter,
        Some(v) => v.as_str().and_then(Tier::parse).unwrap_or_else(|| {
            errors.push("tier", "must be starter, professional or enterprise");
            Tier::Starter
        }),
    };
    let domains = body
        .get("domains")
        .map(|v| domains(v, base_domains, &mut errors))
        .unwrap_or_default();
    let mut settings = Settings::default();
    if let Some(s) = body
        .get("settings")
        .and_then(|v| object(v, "settings", &mut errors))
    {
        for (k, v) in s {
            if !SETTINGS.contains(&k.as_str()) {
                errors.push(format!("settings.{k}"), "is not a setting");
                continue;
            }
            let value = setting(k, v, &mut errors);
            match k.as_str() {
                "displayName" => settings.display_name = value,
                "brandColor" => settings.brand_color = value,
                "logoUrl" => settings.logo_url = value,
                "timeZone" => settings.time_zone = value,
                _ => settings.currency = value,
            }
        }
    }
    let mut limits = LimitOverrides::default();
    if let Some(l) = body
        .get("limits")
        .and_then(|v| object(v, "limits", &mut errors))
    {
        for (k, v) in l {
            if !LIMITS.contains(&k.as_str()) {
                errors.push(format!("limits.{k}"), "is not a limit");
                continue;
            }
            if k == "groups" {
                limits.groups = groups(v, &mut errors).unwrap_or_default();
                continue;
            }
            let n = limit(k, v, &mut errors);
            let small = n.and_then(|n| u32::try_from(n).ok());
            match k.as_str() {
                "requestsPerMinute" => limits.requests_per_minute = n.map(|n| n as u64),
                "transactionsPerMonth" => limits.transactions_per_month = n.map(|n| n as u64),
                "commandsPerSecond" => limits.commands_per_second = small,
                "connections" => limits.connections = small,
                _ => limits.in_flight = small,
            }
        }
    }
    let is_active = match body.get("isActive") {
        None => true,
        Some(v) => v.as_bool().unwrap_or_else(|| {
            errors.push("isActive", "must be true or false");
            true
        }),
    };
    let now = bson::DateTime::now();
    errors.finish(Tenant {
        slug,
        name,
        tier,
        domains,
        settings,
        limits,
        is_active,
        created_at: Some(now),
        updated_at: Some(now),
    })
}

/// A validated `PATCH`: the update document and the domains it claims.
#[derive(Debug)]
pub struct Patch {
    /// `$set` / `$unset` over the tenant's fields.
    pub update: Document,
    /// Domains the patch gives the tenant (checked free before writing).
    pub claimed_domains: Vec<String>,
}

fn merge(
    section: &str,
    keys: &[&str],
    v: &Value,
    set: &mut Document,
    unset: &mut Document,
    errors: &mut Errors,
    check: &mut dyn FnMut(&str, &Value, &mut Errors) -> Option<Bson>,
) {
    if v.is_null() {
        set.insert(section, Document::new());
        return;
    }
    let Some(o) = object(v, section, errors) else {
        return;
    };
    for (k, v) in o {
        if !keys.contains(&k.as_str()) {
            errors.push(format!("{section}.{k}"), "is not known");
        } else if v.is_null() {
            unset.insert(format!("{section}.{k}"), "");
        } else if let Some(value) = check(k, v, errors) {
            set.insert(format!("{section}.{k}"), value);
        }
    }
}

/// A `PATCH /v1/admin/tenants/{slug}` body → an update.
pub fn patch(body: &Map<String, Value>, base_domains: &[String]) -> Result<Patch, Problem> {
    let mut errors = Errors::default();
    let mut set = Document::new();
    let mut unset = Document::new();
    let mut claimed_domains = Vec::new();
    for (key, v) in body {
        match key.as_str() {
            "name" => {
                if let Some(n) = text(v, "name", 200, &mut errors) {
                    set.insert("name", n);
                }
            }
            "tier" => match v.as_str().and_then(Tier::parse) {
                Some(t) => {
                    set.insert("tier", t.as_str());
                }
                None => errors.push("tier", "must be starter, professional or enterprise"),
            },
            "isActive" => match v.as_bool() {
                Some(b) => {
                    set.insert("isActive", b);
                }
                None => errors.push("isActive", "must be true or false"),
            },
            "domains" => {
                claimed_domains = domains(v, base_domains, &mut errors);
                set.insert("domains", claimed_domains.clone());
            }
            "settings" => merge(
                "settings",
                SETTINGS,
                v,
                &mut set,
                &mut unset,
                &mut errors,
                &mut |k, v, e| setting(k, v, e).map(Bson::String),
            ),
            "limits" => merge(
                "limits",
                LIMITS,
                v,
                &mut set,
                &mut unset,
                &mut errors,
                &mut |k, v, e| {
                    if k == "groups" {
                        groups(v, e).map(|g| {
                            Bson::Document(
                                g.into_iter()
                                    .map(|(k, n)| (k, Bson::Int64(n as i64)))
                                    .collect(),
                            )
                        })
                    } else {
                        limit(k, v, e).map(Bson::Int64)
                    }
                },
            ),
            "slug" => errors.push(
                "slug",
                "cannot change: it is stored in every document of the tenant",
            ),
            "createdAt" | "updatedAt" | "id" => errors.push(key.as_str(), "is read-only"),
            other => errors.push(other, "is not a tenant field"),
        }
    }
    let mut update = doc! {};
    if !set.is_empty() {
        update.insert("$set", set);
    }
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    errors.finish(Patch {
        update,
        claimed_domains,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn fields(p: Problem) -> String {
        format!("{p}")
    }

    #[test]
    fn a_full_create_body_is_accepted() {
        let t = create(
            &map(json!({
                "slug": "bank3", "name": "Third Bank", "tier": "enterprise",
                "domains": ["Pay.ThirdBank.example.", "pay.thirdbank.example"],
                "settings": { "displayName": "Third", "brandColor": "#AABBCC", "logoUrl": "https://cdn.thirdbank.example/logo.svg", "timeZone": "Europe/Zurich", "currency": "CHF" },
                "limits": { "requestsPerMinute": 1200 },
            })),
            &["financeops.com".into()],
        )
        .expect("valid");
        assert_eq!(t.domains, ["pay.thirdbank.example"]);
        assert_eq!(t.settings.brand_color.as_deref(), Some("#aabbcc"));
        assert_eq!(t.limits.requests_per_minute, Some(1200));
        assert!(t.is_active);
    }

    #[test]
    fn every_bad_field_is_named() {
        let e = create(
            &map(json!({
                "slug": "Bank 3", "tier": "gold", "domains": ["x.financeops.com"],
                "settings": { "brandColor": "red", "logoUrl": "javascript:alert(1)", "currency": "EURO" },
                "limits": { "requestsPerMinute": 0 }, "colour": 1,
            })),
            &["financeops.com".into()],
        )
        .expect_err("invalid");
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        let text = format!("{:?}", e);
        for f in [
            "\"slug\"",
            "\"name\"",
            "\"tier\"",
            "domains[0]",
            "settings.brandColor",
            "settings.logoUrl",
            "settings.currency",
            "limits.requestsPerMinute",
            "\"colour\"",
        ] {
            assert!(text.contains(f), "{f} missing from {}", fields(e.clone()));
        }
    }

    #[test]
    fn patches_merge_settings_and_refuse_the_slug() {
        let p = patch(
            &map(json!({ "isActive": false, "settings": { "brandColor": "#000000", "logoUrl": null } })),
            &[],
        )
        .expect("valid");
        assert_eq!(
            p.update,
            doc! { "$set": { "isActive": false, "settings.brandColor": "#000000" }, "$unset": { "settings.logoUrl": "" } }
        );
        assert!(patch(&map(json!({ "slug": "x" })), &[]).is_err());
        assert!(patch(&map(json!({ "isActive": "no" })), &[]).is_err());
    }
}
