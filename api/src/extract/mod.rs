//! Typed extractors: a handler states what it needs in its signature (an authenticated caller,
//! a `super_admin`, the resolved tenant, a tenant-scoped database) and cannot run without it.

pub mod caller;
pub mod db;
pub mod json;
pub mod tenant;

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use tenantgate_proxy::audit::Origin;

use crate::request_id::RequestId;

pub use caller::{Authenticated, Caller, SuperAdmin};
pub use db::{BypassDb, TenantDb};
pub use json::Json;
pub use tenant::{CurrentTenant, ResolvedBy};

/// The TCP peer, when the server was started with connect info.
pub fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The client's address as the audit trail records it (a request extension set by
/// authentication): the TCP peer, or — when the peer is a trusted proxy — the nearest
/// untrusted address in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Works out the [`ClientIp`]: walks `X-Forwarded-For` from the right (the entry our trusted
/// peer added) past trusted proxies; anything left of the first untrusted hop could be forged.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &axum::http::HeaderMap,
    rules: &crate::state::HostRules,
) -> Option<IpAddr> {
    let peer = peer?;
    let trusted = |ip: IpAddr| rules.trusted_proxies.iter().any(|c| c.contains(ip));
    if !trusted(peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // From the right: skip our trusted proxies; the first other hop is the client. A hop that
    // does not parse ends the walk (everything left of it is unverifiable): the last trusted
    // address is then the best we know.
    let mut last = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return Some(last);
        };
        if !trusted(ip) {
            return Some(ip);
        }
        last = ip;
    }
    Some(last)
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    None
}

/// The audit origin of a request.
pub fn origin(parts: &Parts) -> Origin {
    origin_of(&parts.extensions)
}

/// The audit origin from request extensions.
pub fn origin_of(extensions: &axum::http::Extensions) -> Origin {
    Origin::Api {
        peer: extensions
            .get::<ClientIp>()
            .map(|c| c.0)
            .or_else(|| peer(extensions)),
        request_id: extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::HostRules;
    use axum::http::{HeaderMap, HeaderValue};
    use tenantgate_proxy::net::Cidr;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let rules = HostRules {
            base_domains: vec![],
            trusted_proxies: vec![Cidr::parse("10.0.0.0/8").expect("cidr")],
        };
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.0.0.7"),
        );
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(client_ip(ip("10.1.1.1"), &h, &rules), ip("203.0.113.9"));
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, garbage, 203.0.113.9:4711, 10.0.0.7"),
        );
        assert_eq!(
            client_ip(ip("10.1.1.1"), &h, &rules),
            ip("203.0.113.9"),
            "ip:port"
        );
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, garbage, 10.0.0.7"),
        );
        assert_eq!(
            client_ip(ip("10.1.1.1"), &h, &rules),
            ip("10.0.0.7"),
            "nothing left of an unparsable hop is believed"
        );
        assert_eq!(client_ip(ip("192.0.2.5"), &h, &rules), ip("192.0.2.5"));
        assert_eq!(client_ip(None, &h, &rules), None);
    }
}
