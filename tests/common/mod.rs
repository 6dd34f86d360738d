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

/// How long a helper waits for the proxy before a test fails instead of hanging.
#[allow(dead_code)]
pub const PROXY_TIMEOUT: Duration = Duration::from_secs(20);

/// A `tenantgate.toml` for the two-bank scenario: `db` is the one tenant database, `currencies`
/// is global, and the principals are `svc-bank1`/`bank1-secret` (bank1), `svc-bank2`/
/// `bank2-secret` (bank2) and `platform-admin`/`admin-secret` (`super_admin`). The proxy and the
/// API listen on port 0 and the upstream is [`mongodb_uri`].
#[allow(dead_code)]
pub fn two_bank_config(db: &str) -> String {
    format!(
        r#"
[upstream]
uri = "{uri}"
timeout_ms = 10000

[proxy]
listen = "127.0.0.1:0"

[api]
listen = "127.0.0.1:0"

[policy]
databases = ["{db}"]

[policy.collections.currencies]
mode = "global"

[[tenants]]
slug = "bank1"
name = "First National Bank"

[[tenants]]
slug = "bank2"
name = "Second Savings"

[[principals]]
username = "svc-bank1"
password = "bank1-secret"
tenant = "bank1"

[[principals]]
username = "svc-bank2"
password = "bank2-secret"
tenant = "bank2"

[[principals]]
username = "platform-admin"
password = "admin-secret"
roles = ["super_admin"]
"#,
        uri = mongodb_uri(),
    )
}

/// A proxy serving on `127.0.0.1:<free port>` inside the test's runtime. Dropping it signals
/// shutdown; [`TestProxy::stop`] also waits for `run` to return.
#[allow(dead_code)]
#[derive(Debug)]
pub struct TestProxy {
    /// Where clients connect.
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[allow(dead_code)]
impl TestProxy {
    /// Parses `config_toml` (no environment overrides), binds and spawns `run`.
    pub async fn start(config_toml: &str) -> TestProxy {
        let env = std::collections::BTreeMap::<String, String>::new();
        let config = tenantgate_proxy::Config::from_toml(config_toml, &env)
            .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{config_toml}"));
        let proxy =
            tokio::time::timeout(PROXY_TIMEOUT, tenantgate_proxy::Proxy::bind(config, &env))
                .await
                .expect("the proxy binds within the timeout")
                .unwrap_or_else(|e| panic!("the proxy cannot start: {e}"));
        let addr = proxy.local_addr().expect("a bound listener has an address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(2),
        ));
        TestProxy {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `mongodb://user:password@addr/?authSource=admin` plus `&options` when not empty.
    pub fn uri(&self, user: &str, password: &str, options: &str) -> String {
        let mut uri = format!(
            "mongodb://{user}:{password}@{}/?authSource=admin",
            self.addr
        );
        if !options.is_empty() {
            uri.push('&');
            uri.push_str(options);
        }
        uri
    }

    /// A driver client for `user`, with short timeouts so a broken proxy fails fast.
    pub async fn client(&self, user: &str, password: &str) -> mongodb::Client {
        driver_client(&self.uri(user, password, "")).await
    }

    /// Signals shutdown and asserts that `run` returns within the grace period (plus slack).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the proxy stops within its grace period")
                .expect("the proxy task does not panic");
        }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A driver client for `uri` with short server-selection and connect timeouts.
#[allow(dead_code)]
pub async fn driver_client(uri: &str) -> mongodb::Client {
    let mut options = mongodb::options::ClientOptions::parse(uri)
        .await
        .unwrap_or_else(|e| panic!("{uri} is not a valid MongoDB URI: {e}"));
    options.app_name = Some("tenantgate-tests".to_owned());
    options.server_selection_timeout = Some(Duration::from_secs(10));
    options.connect_timeout = Some(Duration::from_secs(5));
    mongodb::Client::with_options(options)
        .unwrap_or_else(|e| panic!("cannot build a MongoDB client for {uri}: {e}"))
}

/// Writes a fresh self-signed certificate for `names` and its key as PEM files in a new
/// temporary directory; returns `(dir, cert, key)`. The caller removes `dir`.
#[allow(dead_code)]
pub fn self_signed(
    prefix: &str,
    names: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("tenantgate-{prefix}-{}", fresh_db_name("c")));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cert = rcgen::generate_simple_self_signed(
        names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
    )
    .expect("self-signed certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    (dir, cert_path, key_path)
}

/// `config` with TLS turned on for the proxy listener.
#[allow(dead_code)]
pub fn with_tls(config: &str, cert: &std::path::Path, key: &std::path::Path) -> String {
    let out = config.replace(
        "[proxy]\nlisten = \"127.0.0.1:0\"",
        &format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
            cert.display(),
            key.display()
        ),
    );
    assert!(
        out.contains("tls_cert_file"),
        "the config has a [proxy] listen line to extend"
    );
    out
}

/// The HS256 secret of [`api_config`].
#[allow(dead_code)]
pub const JWT_SECRET: &str = "test-secret-for-api-tests";

/// A `tenantgate.toml` for API tests: [`two_bank_config`] with its own registry database
/// (`<db>_tg`, so tests that create, update or deactivate tenants never touch each other's),
/// `[api] base_domains = ["financeops.com"]`, `trusted_proxies = ["10.0.0.0/8"]`, a `[jwt]`
/// section signed with [`JWT_SECRET`] (issuer `https://idp.test`), and Redis at [`redis_url`]
/// with `key_prefix = "<db>:"` (so rate-limit windows and usage counters are the test's own).
/// bank1 has the custom domain `payments.firstnational.example` and tier professional.
#[allow(dead_code)]
pub fn api_config(db: &str) -> String {
    let base = two_bank_config(db)
        .replace(
            "[policy]\ndatabases",
            &format!("[policy]\ninternal_database = \"{db}_tg\"\ndatabases"),
        )
        .replace(
            "[api]\nlisten = \"127.0.0.1:0\"",
            "[api]\nlisten = \"127.0.0.1:0\"\nbase_domains = [\"financeops.com\"]\ntrusted_proxies = [\"10.0.0.0/8\"]",
        )
        .replace(
            "slug = \"bank1\"\nname = \"First National Bank\"",
            "slug = \"bank1\"\nname = \"First National Bank\"\ntier = \"professional\"\ndomains = [\"payments.firstnational.example\"]",
        );
    assert!(
        base.contains("internal_database")
            && base.contains("base_domains")
            && base.contains("domains = [")
    );
    format!(
        "{base}\n[jwt]\nhs256_secret = \"{JWT_SECRET}\"\nissuer = \"https://idp.test\"\n\n[redis]\nurl = \"{}\"\nkey_prefix = \"{db}:\"\n",
        redis_url()
    )
}

/// A signed HS256 token for [`api_config`]: `claims` plus `iss` and (unless given) an `exp`
/// ten minutes ahead.
#[allow(dead_code)]
pub fn jwt(claims: serde_json::Value) -> String {
    let mut claims = claims;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Some(map) = claims.as_object_mut() {
        map.entry("iss")
            .or_insert_with(|| "https://idp.test".into());
        map.entry("exp").or_insert_with(|| (now + 600).into());
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("a token encodes")
}

/// A proxy and the HTTP API over it, both on `127.0.0.1:<free port>` inside the test's
/// runtime, sharing one set of services as `tenantgate serve` does. The API is served with
/// connect info, so `trusted_proxies` sees the real peer (127.0.0.1).
#[allow(dead_code)]
pub struct TestApi {
    /// The proxy listener.
    pub proxy_addr: std::net::SocketAddr,
    /// The API listener.
    pub api_addr: std::net::SocketAddr,
    /// The shared services (registry, engine, audit…).
    pub services: tenantgate_proxy::Services,
    stop: Option<tokio::sync::watch::Sender<bool>>,
}

#[allow(dead_code)]
impl TestApi {
    /// Starts the proxy and the API from `config_toml`.
    pub async fn start(config_toml: &str) -> TestApi {
        Self::start_with(config_toml, axum::Router::new()).await
    }

    /// Like [`TestApi::start`], with `extra` mounted among the tenant routes.
    pub async fn start_with(
        config_toml: &str,
        extra: axum::Router<tenantgate_api::ApiState>,
    ) -> TestApi {
        let env = std::collections::BTreeMap::<String, String>::new();
        let config = tenantgate_proxy::Config::from_toml(config_toml, &env)
            .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{config_toml}"));
        let proxy =
            tokio::time::timeout(PROXY_TIMEOUT, tenantgate_proxy::Proxy::bind(config, &env))
                .await
                .expect("the proxy binds within the timeout")
                .unwrap_or_else(|e| panic!("the proxy cannot start: {e}"));
        let proxy_addr = proxy.local_addr().expect("a bound listener has an address");
        let services = proxy.services();
        let metrics: tenantgate_api::MetricsRenderer =
            std::sync::Arc::new(proxy.metrics_renderer());
        let state = tenantgate_api::ApiState::new(services.clone(), metrics);
        let app = tenantgate_api::app_with_tenant_routes(state, extra);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the API");
        let api_addr = listener.local_addr().expect("API address");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut proxy_stop = stopped.clone();
        let mut api_stop = stopped;
        tokio::spawn(proxy.run(
            async move {
                let _ = proxy_stop.changed().await;
            },
            Duration::from_secs(2),
        ));
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = api_stop.changed().await;
            })
            .await;
        });
        TestApi {
            proxy_addr,
            api_addr,
            services,
            stop: Some(stop),
        }
    }

    /// `http://<api>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api_addr)
    }

    /// A driver client to the proxy for `user`.
    pub async fn proxy_client(&self, user: &str, password: &str) -> mongodb::Client {
        driver_client(&format!(
            "mongodb://{user}:{password}@{}/?authSource=admin",
            self.proxy_addr
        ))
        .await
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}
