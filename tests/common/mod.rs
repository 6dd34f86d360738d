//! Shared helpers for the root package's integration tests.
//!
//! Include with `mod common;`. The services come from `scripts/test`, which
//! starts a MongoDB-compatible upstream and Redis and exports `MONGODB_URI` and
//! `REDIS_URL`. A test that needs a service and finds no address panics: it
//! never skips, so a misconfigured run cannot pass by testing nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// MongoDB limits database names to 63 bytes; staying well below leaves room
/// for whatever a test (or, later, the proxy's tenant prefixing) adds to it.
const MAX_DB_NAME_LEN: usize = 38;

fn required_env(name: &str, what: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "\n\n*** {name} is not set: run the tests through scripts/test, which starts the {what} ***\n\n"
        ),
    }
}

/// The upstream MongoDB URI (`MONGODB_URI`). Panics if it is not set.
#[allow(dead_code)]
pub fn mongodb_uri() -> String {
    required_env("MONGODB_URI", "upstream")
}

/// The Redis URL (`REDIS_URL`). Panics if it is not set.
#[allow(dead_code)]
pub fn redis_url() -> String {
    required_env("REDIS_URL", "Redis server")
}

/// A database name no other test, process or run will use: the sanitized
/// `prefix`, the process id, a per-process counter and a short time-based
/// suffix. At most 38 characters, only `[a-z0-9_]`.
#[allow(dead_code)]
pub fn fresh_db_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // 36^6 values: about two seconds' worth of nanoseconds before it wraps, which
    // is plenty given the pid and counter already separate concurrent callers.
    let stamp = base36(nanos % 36u128.pow(6), 6);
    let suffix = format!("_{}_{n}_{stamp}", std::process::id());

    let mut head: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    if head.is_empty() {
        head.push('t');
    }
    head.truncate(MAX_DB_NAME_LEN.saturating_sub(suffix.len()).max(1));
    let mut name = head + &suffix;
    name.truncate(MAX_DB_NAME_LEN);
    name
}

fn base36(mut value: u128, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value % 36) as usize];
        value /= 36;
    }
    out.into_iter().map(char::from).collect()
}

/// A client of the official driver connected to [`mongodb_uri`].
#[allow(dead_code)]
pub async fn mongo_client() -> mongodb::Client {
    let uri = mongodb_uri();
    let mut options = mongodb::options::ClientOptions::parse(&uri)
        .await
        .unwrap_or_else(|e| panic!("MONGODB_URI={uri} is not a valid MongoDB URI: {e}"));
    options.app_name = Some("tenantgate-tests".to_owned());
    options.server_selection_timeout = Some(Duration::from_secs(10));
    mongodb::Client::with_options(options)
        .unwrap_or_else(|e| panic!("cannot build a MongoDB client for {uri}: {e}"))
}

/// A multiplexed async connection to [`redis_url`].
#[allow(dead_code)]
pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    let url = redis_url();
    let client = redis::Client::open(url.as_str())
        .unwrap_or_else(|e| panic!("REDIS_URL={url} is not a valid Redis URL: {e}"));
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to Redis at {url}: {e}"))
}
