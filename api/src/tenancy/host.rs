//! What the request's host names: a tenant subdomain of a configured base domain, a candidate
//! custom domain, or nothing.
//!
//! The host is the `Host` header (or the HTTP/2 authority), lowercased, without port or
//! trailing dot. `X-Forwarded-Host` replaces it only when the TCP peer is one of
//! `api.trusted_proxies`; from anyone else it is ignored, because any client can send it. When
//! a proxy appends to it, the last value is the one the trusted proxy itself saw.

use std::net::IpAddr;

use axum::http::{HeaderMap, Uri, header};
use tenantgate_proxy::registry::is_slug;

use crate::state::HostRules;

/// What a host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    /// No tenant: no host, an IP address, `localhost`, a base domain or its `www.`.
    Nothing,
    /// `bank1.financeops.com` (or `www.bank1.financeops.com`) → `bank1`.
    Subdomain(String),
    /// Any other DNS name: maybe a tenant's custom domain.
    Domain(String),
}

/// Lowercase, without port and trailing dot; `None` for IP literals and malformed hosts.
pub fn normalize(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.starts_with('[') {
        return None; // an IPv6 literal
    }
    let name = match raw.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => raw,
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty()
        || name.len() > 253
        || name.parse::<IpAddr>().is_ok()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    Some(name)
}

/// The host the client asked for, honouring `X-Forwarded-Host` from trusted peers only.
pub fn effective(
    headers: &HeaderMap,
    uri: &Uri,
    peer: Option<IpAddr>,
    rules: &HostRules,
) -> Option<String> {
    let trusted = peer.is_some_and(|ip| rules.trusted_proxies.iter().any(|c| c.contains(ip)));
    if trusted
        && let Some(forwarded) = headers
            .get_all("x-forwarded-host")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
    {
        return normalize(forwarded);
    }
    let raw = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))?;
    normalize(&raw)
}

/// What `host` (normalised) names under `base_domains`.
pub fn classify(host: Option<&str>, rules: &HostRules) -> HostName {
    let Some(host) = host else {
        return HostName::Nothing;
    };
    let mut bases: Vec<&String> = rules.base_domains.iter().collect();
    bases.sort_by_key(|b| std::cmp::Reverse(b.len()));
    for base in bases {
        if host == base.as_str() {
            return HostName::Nothing;
        }
        let Some(prefix) = host
            .strip_suffix(base.as_str())
            .and_then(|p| p.strip_suffix('.'))
        else {
            continue;
        };
        if prefix == "www" {
            return HostName::Nothing;
        }
        let label = prefix.strip_prefix("www.").unwrap_or(prefix);
        return if is_slug(label) {
            HostName::Subdomain(label.to_owned())
        } else {
            HostName::Nothing
        };
    }
    if host.contains('.') {
        HostName::Domain(host.to_owned())
    } else {
        HostName::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use tenantgate_proxy::net::Cidr;

    fn rules() -> HostRules {
        HostRules {
            base_domains: vec!["financeops.com".into(), "eu.financeops.com".into()],
            trusted_proxies: vec![Cidr::parse("10.0.0.0/8").expect("cidr")],
        }
    }

    fn name(host: &str) -> HostName {
        classify(normalize(host).as_deref(), &rules())
    }

    #[test]
    fn subdomains_name_tenants() {
        assert_eq!(
            name("bank1.financeops.com"),
            HostName::Subdomain("bank1".into())
        );
        assert_eq!(
            name("BANK1.FinanceOps.com:8443"),
            HostName::Subdomain("bank1".into())
        );
        assert_eq!(
            name("bank1.financeops.com."),
            HostName::Subdomain("bank1".into())
        );
        assert_eq!(
            name("www.bank1.financeops.com"),
            HostName::Subdomain("bank1".into())
        );
        assert_eq!(
            name("bank2.eu.financeops.com"),
            HostName::Subdomain("bank2".into()),
            "longest base wins"
        );
    }

    #[test]
    fn bare_and_www_base_domains_name_nothing() {
        assert_eq!(name("financeops.com"), HostName::Nothing);
        assert_eq!(name("www.financeops.com"), HostName::Nothing);
        assert_eq!(name("a.b.financeops.com"), HostName::Nothing);
        assert_eq!(name("localhost:8080"), HostName::Nothing);
        assert_eq!(name("127.0.0.1:8080"), HostName::Nothing);
        assert_eq!(name("[::1]:8080"), HostName::Nothing);
        assert_eq!(name("bad host"), HostName::Nothing);
    }

    #[test]
    fn other_names_are_candidate_custom_domains() {
        assert_eq!(
            name("Payments.TheirBank.com:443"),
            HostName::Domain("payments.theirbank.com".into())
        );
        assert_eq!(
            name("notfinanceops.com"),
            HostName::Domain("notfinanceops.com".into())
        );
    }

    #[test]
    fn forwarded_host_only_from_trusted_peers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("lb.internal"));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("evil.example, bank1.financeops.com"),
        );
        let uri = Uri::from_static("/v1/tenant");
        let trusted = Some("10.1.2.3".parse().expect("ip"));
        let untrusted = Some("192.0.2.1".parse().expect("ip"));
        assert_eq!(
            effective(&headers, &uri, trusted, &rules()).as_deref(),
            Some("bank1.financeops.com")
        );
        assert_eq!(
            effective(&headers, &uri, untrusted, &rules()).as_deref(),
            Some("lb.internal")
        );
        assert_eq!(
            effective(&headers, &uri, None, &rules()).as_deref(),
            Some("lb.internal")
        );
    }
}
