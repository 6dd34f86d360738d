//! A tenant as the registry stores it, and the rules its identifying fields follow.
//!
//! The slug is the value stored in every document's tenant field, so it must never be
//! ambiguous: a lowercase DNS label, the same rule that makes `bank1.financeops.com` resolve to
//! `bank1`. Custom domains are normalised (case, trailing dot, no port) before they are stored or
//! looked up, so `Payments.TheirBank.com.` and `payments.theirbank.com` are one domain and the
//! unique index sees them as one.

use serde::{Deserialize, Serialize};

use crate::limits::{TierLimits, tier_limits};

/// A tenant's service tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The entry tier.
    Starter,
    /// The middle tier.
    Professional,
    /// The top tier.
    Enterprise,
}

impl Tier {
    /// Parses `starter`, `professional` or `enterprise`.
    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "starter" => Some(Tier::Starter),
            "professional" => Some(Tier::Professional),
            "enterprise" => Some(Tier::Enterprise),
            _ => None,
        }
    }

    /// The tier's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Starter => "starter",
            Tier::Professional => "professional",
            Tier::Enterprise => "enterprise",
        }
    }
}

/// Theming and locale, shown by the console and used as defaults by the payments API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Name shown to the tenant's users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_color: Option<String>,
    /// An `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// IANA time zone, e.g. `Europe/Zurich`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// ISO 4217 code, e.g. `EUR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// Checks one setting as the registry stores it (the admin API and config seeds hold
/// settings to the same rules) and returns its normal form (a brand colour in lower case).
/// `displayName` is checked by its caller (free text, 1 to 100 characters).
pub fn check_setting(key: &str, value: &str) -> Result<String, &'static str> {
    let s = value.trim();
    let ok = match key {
        "displayName" => {
            !s.is_empty() && s.chars().count() <= 100 && !s.chars().any(char::is_control)
        }
        "brandColor" => {
            s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
        }
        "logoUrl" => {
            s.len() <= 2048
                && s.strip_prefix("https://").is_some_and(|rest| {
                    !rest.is_empty()
                        && !rest.starts_with('/')
                        && rest.bytes().all(|b| {
                            b.is_ascii_graphic()
                                && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`')
                        })
                })
        }
        "timeZone" => {
            (1..=64).contains(&s.len())
                && (s == "UTC"
                    || (s.contains('/')
                        && !s.starts_with('/')
                        && !s.ends_with('/')
                        && !s.contains("..")
                        && s.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+')
                        })))
        }
        "currency" => super::currency::is_currency(s),
        _ => return Err("is not a known setting"),
    };
    if ok {
        Ok(if key == "brandColor" {
            s.to_ascii_lowercase()
        } else {
            s.to_owned()
        })
    } else {
        Err(match key {
            "displayName" => "must be a string of 1 to 100 printable characters",
            "brandColor" => "must be a colour as #rrggbb",
            "logoUrl" => "must be an https:// URL of at most 2048 characters",
            "timeZone" => "must be an IANA time zone such as Europe/Zurich, or UTC",
            _ => "must be an ISO 4217 currency code such as EUR",
        })
    }
}

impl Settings {
    /// Checks every setting ([`check_setting`]) and returns the normal form, or the first
    /// bad key (camelCase, as stored) and why.
    pub fn checked(&self) -> Result<Settings, (&'static str, &'static str)> {
        let one = |key: &'static str,
                   v: &Option<String>|
         -> Result<Option<String>, (&'static str, &'static str)> {
            v.as_deref()
                .map(|s| check_setting(key, s).map_err(|why| (key, why)))
                .transpose()
        };
        Ok(Settings {
            display_name: one("displayName", &self.display_name)?,
            brand_color: one("brandColor", &self.brand_color)?,
            logo_url: one("logoUrl", &self.logo_url)?,
            time_zone: one("timeZone", &self.time_zone)?,
            currency: one("currency", &self.currency)?,
        })
    }
}

/// Per-tenant overrides of the tier's limits; an absent field means "the tier's default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitOverrides {
    /// API requests per minute (all endpoint groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Payments per UTC month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions_per_month: Option<u64>,
    /// Proxy commands per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands_per_second: Option<u32>,
    /// Proxy client connections at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// Proxy commands in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<u32>,
    /// API requests per minute of single endpoint groups (`{"payments": 120}`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub groups: std::collections::BTreeMap<String, u64>,
}

/// One document of the `tenants` collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// The value stored in the tenant field.
    pub slug: String,
    /// Legal or display name.
    pub name: String,
    /// Service tier.
    pub tier: Tier,
    /// Normalised custom domains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Theming and locale.
    #[serde(default)]
    pub settings: Settings,
    /// Overrides of the tier's limits.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Inactive tenants are refused everywhere.
    #[serde(default)]
    pub is_active: bool,
    /// When it was created.
    pub created_at: Option<bson::DateTime>,
    /// When it last changed.
    pub updated_at: Option<bson::DateTime>,
}

impl Tenant {
    /// The proxy limits in force: the tier's defaults with this tenant's overrides.
    pub fn proxy_limits(&self) -> TierLimits {
        let mut l = tier_limits(self.tier.as_str());
        if let Some(n) = self.limits.connections {
            l.connections = n as usize;
        }
        if let Some(n) = self.limits.in_flight {
            l.in_flight = n as usize;
        }
        if let Some(n) = self.limits.commands_per_second {
            l.commands_per_second = n;
        }
        l
    }
}

/// Slugs that cannot be tenants: `www.<base>` names no tenant, and the others are the
/// platform's own hosts (`api.financeops.com`), which a tenant must never capture.
pub const RESERVED_SLUGS: &[&str] = &[
    "www", "api", "admin", "app", "console", "docs", "static", "assets", "status", "mail",
];

/// A lowercase DNS label: 1–63 of `a-z0-9-`, not starting or ending with `-`.
pub fn is_slug(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Why a domain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{domain:?} is not a valid domain: {reason}")]
pub struct DomainError {
    /// The domain as given (clipped).
    pub domain: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Normalises a custom domain: trimmed, lowercase, without a trailing dot. It must be a DNS
/// name of at least two labels (punycode for internationalised names), not an IP address and
/// without a port.
pub fn normalize_domain(raw: &str) -> Result<String, DomainError> {
    let fail = |reason| DomainError {
        domain: crate::clip(raw).into_owned(),
        reason,
    };
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() || d.len() > 253 {
        return Err(fail("must be 1 to 253 characters"));
    }
    if !d.is_ascii() {
        return Err(fail(
            "use the punycode (xn--) form of internationalised names",
        ));
    }
    if d.contains(':') {
        return Err(fail("no port or IPv6 address"));
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return Err(fail("needs at least two labels"));
    }
    if labels.iter().any(|l| !is_slug(l)) {
        return Err(fail(
            "each label is 1 to 63 letters, digits or hyphens, not starting or ending with a hyphen",
        ));
    }
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(fail("an IP address is not a domain"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_dns_labels() {
        for ok in ["bank1", "a", "first-national", "0bank"] {
            assert!(is_slug(ok), "{ok}");
        }
        for bad in [
            "",
            "Bank1",
            "-bank",
            "bank-",
            "bank_1",
            "bank.1",
            &"a".repeat(64),
        ] {
            assert!(!is_slug(bad), "{bad}");
        }
    }

    #[test]
    fn domains_are_normalised() {
        assert_eq!(
            normalize_domain(" Payments.TheirBank.COM. ").as_deref(),
            Ok("payments.theirbank.com")
        );
        for bad in [
            "localhost",
            "10.0.0.1",
            "bank.com:8080",
            "b\u{fc}nk.de",
            "-x.com",
            "a..com",
            "",
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad}");
        }
        assert!(normalize_domain("xn--bnk-hoa.de").is_ok());
    }

    #[test]
    fn overrides_apply_over_the_tier() {
        let mut t = Tenant {
            slug: "bank1".into(),
            name: "Bank".into(),
            tier: Tier::Starter,
            domains: vec![],
            settings: Settings::default(),
            limits: LimitOverrides::default(),
            is_active: true,
            created_at: None,
            updated_at: None,
        };
        assert_eq!(t.proxy_limits(), tier_limits("starter"));
        t.limits.commands_per_second = Some(7);
        assert_eq!(t.proxy_limits().commands_per_second, 7);
    }
}
