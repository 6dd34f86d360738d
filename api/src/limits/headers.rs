//! The rate-limit response fields: the de-facto `X-RateLimit-*` trio and the IETF
//! `RateLimit-Policy` / `RateLimit` structured fields (draft-ietf-httpapi-ratelimit-headers),
//! all with reset as delta seconds.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use tenantgate_proxy::ratelimit::Verdict;

/// Whole seconds, rounded up (a client that waits this long finds a free slot).
pub fn seconds(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

/// Sets the fields for `verdict` on `headers`.
pub fn apply(headers: &mut HeaderMap, verdict: &Verdict, group: &str) {
    let reset = seconds(verdict.reset);
    let window = verdict.window.as_secs();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("x-ratelimit-limit", verdict.limit.to_string());
    set("x-ratelimit-remaining", verdict.remaining.to_string());
    set("x-ratelimit-reset", reset.to_string());
    set(
        "ratelimit-policy",
        format!("\"{group}\";q={};w={window}", verdict.limit),
    );
    set(
        "ratelimit",
        format!("\"{group}\";r={};t={reset}", verdict.remaining),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        assert_eq!(seconds(Duration::from_millis(0)), 0);
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::from_millis(1000)), 1);
        assert_eq!(seconds(Duration::from_millis(59_001)), 60);
    }
}
