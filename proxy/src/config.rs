//! The `tenantgate.toml` configuration: typed, validated, with environment overrides.
//!
//! Every key can be overridden by an environment variable `TENANTGATE_<SECTION>__<KEY>` (double
//! underscore between levels, case-insensitive): `TENANTGATE_UPSTREAM__URI`,
//! `TENANTGATE_PROXY__LISTEN`, `TENANTGATE_POLICY__DATABASES='["payments"]'`. A value is read as
//! TOML when it parses as TOML (numbers, booleans, arrays) and as a string otherwise. The
//! environment is read through [`Env`], so tests inject values instead of mutating the process.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tenantgate_policy::PolicyConfig;

/// A configuration problem, naming the key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not match the schema.
    #[error("{0}")]
    Parse(String),
    /// A value is invalid.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, e.g. `proxy.listen`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Where environment overrides come from.
pub trait Env {
    /// All variables, as name/value pairs.
    fn vars(&self) -> Vec<(String, String)>;
    /// One variable.
    fn var(&self, name: &str) -> Option<String> {
        self.vars()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars().collect()
    }
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed set of variables (tests).
impl Env for BTreeMap<String, String> {
    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The real MongoDB.
    pub upstream: UpstreamConfig,
    /// The wire-protocol listener.
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// The HTTP API listener.
    #[serde(default)]
    pub api: ApiConfig,
    /// Redis, for shared caches and limits (optional).
    pub redis: Option<RedisConfig>,
    /// JWT verification (optional).
    pub jwt: Option<JwtConfig>,
    /// Tenant-isolation rules.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Tenants created in the registry at start-up when missing.
    #[serde(default)]
    pub tenants: Vec<TenantSeed>,
    /// Principals that may authenticate to the proxy.
    #[serde(default)]
    pub principals: Vec<PrincipalConfig>,
    /// The audit trail.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The tenant registry's caches.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// Rate limits and usage quotas.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `[upstream]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `mongodb://[user:password@]host:port/[?authSource=…]`; credentials authenticate the
    /// proxy's own pooled connections.
    pub uri: String,
    /// Pooled connections kept open to the upstream.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Timeout for connecting and for one round trip, in milliseconds.
    #[serde(default = "default_upstream_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_pool_size() -> usize {
    32
}
fn default_upstream_timeout_ms() -> u64 {
    30_000
}

/// `[proxy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Address to listen on.
    pub listen: String,
    /// PEM certificate chain; with `tls_key_file`, clients must use TLS.
    pub tls_cert_file: Option<String>,
    /// PEM private key.
    pub tls_key_file: Option<String>,
    /// Most client connections at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Close a client connection idle for this many seconds.
    pub idle_timeout_secs: u64,
    /// Close a client connection that leaves a frame half-sent for this many seconds.
    pub frame_timeout_secs: u64,
    /// Close a client connection that accepts none of a reply's bytes for this many seconds (a
    /// client that never reads would otherwise hold its task, its slot and the reply forever).
    pub write_timeout_secs: u64,
    /// Largest accepted message.
    pub max_message_size: usize,
    /// Accept `PLAIN` (a JWT as the password) without TLS. Development only.
    pub allow_plain_without_tls: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: "127.0.0.1:27018".into(),
            tls_cert_file: None,
            tls_key_file: None,
            max_connections: 10_000,
            idle_timeout_secs: 600,
            frame_timeout_secs: 30,
            write_timeout_secs: 30,
            max_message_size: tenantgate_wire::MAX_MESSAGE_SIZE_BYTES,
            allow_plain_without_tls: false,
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: String,
    /// Domains whose subdomains name tenants: with `financeops.com`, the host
    /// `bank1.financeops.com` (or `www.bank1.financeops.com`) resolves to `bank1`; the bare
    /// domain and `www.financeops.com` name no tenant.
    pub base_domains: Vec<String>,
    /// Peers (addresses or CIDR blocks) whose `X-Forwarded-Host` is believed; from anyone else
    /// the header is ignored and the `Host` header decides.
    pub trusted_proxies: Vec<String>,
    /// The database the API's tenant data lives in; defaults to the first of
    /// `policy.databases`.
    pub database: Option<String>,
    /// Development mode: the console offers a tenant chooser and `POST /v1/dev/token` mints
    /// HS256 tokens for any tenant and role. Anyone who can reach the API can then act as
    /// anyone, so it must stay off (the default) wherever real data lives.
    pub dev_mode: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            base_domains: Vec::new(),
            trusted_proxies: Vec::new(),
            database: None,
            dev_mode: false,
        }
    }
}

/// `[registry]`: how long tenant lookups are cached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// In-process cache of a found tenant, in milliseconds.
    pub cache_ttl_ms: u64,
    /// In-process cache of an unknown slug or domain, in milliseconds.
    pub negative_ttl_ms: u64,
    /// Redis cache of a found tenant, in seconds.
    pub redis_ttl_secs: u64,
    /// Redis cache of an unknown slug or domain, in seconds.
    pub redis_negative_ttl_secs: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            cache_ttl_ms: 10_000,
            negative_ttl_ms: 5_000,
            redis_ttl_secs: 300,
            redis_negative_ttl_secs: 30,
        }
    }
}

/// `[redis]`: one server (`url`) or a Redis Cluster (`cluster_nodes`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/` of a single server.
    pub url: Option<String>,
    /// Seed nodes of a Redis Cluster (`redis://host:port`); the rest are discovered.
    #[serde(default)]
    pub cluster_nodes: Vec<String>,
    /// Prepended to every rate-limit and usage key (`rate_limit:{bank1}:payments`,
    /// `usage:{bank1}:2026-11`), for deployments sharing one Redis. Empty by default.
    #[serde(default)]
    pub key_prefix: String,
}

impl RedisConfig {
    /// The link this section describes.
    pub fn link(&self) -> Result<crate::redis_link::RedisLink, ConfigError> {
        if self.key_prefix.contains(['{', '}']) || self.key_prefix.len() > 64 {
            return Err(invalid(
                "redis.key_prefix",
                "at most 64 characters, without braces (they would change the hash slot)",
            ));
        }
        let link = match (&self.url, self.cluster_nodes.is_empty()) {
            (Some(url), true) => crate::redis_link::RedisLink::open(url)
                .map_err(|reason| invalid("redis.url", reason)),
            (None, false) => crate::redis_link::RedisLink::open_cluster(&self.cluster_nodes)
                .map_err(|reason| invalid("redis.cluster_nodes", reason)),
            _ => Err(invalid(
                "redis.url",
                "set exactly one of url and cluster_nodes",
            )),
        }?;
        Ok(link.with_prefix(&self.key_prefix))
    }
}

/// What a limiter does while Redis is down or slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Decide with the in-process limiter (each instance enforces the limit on its own share).
    Open,
    /// Refuse the request (503) — for money-moving endpoints that must never exceed a limit.
    Closed,
}

/// One tier's quotas; unset fields take the built-in default of the tier.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierQuota {
    /// API requests per minute (endpoint groups without their own limit).
    pub requests_per_minute: Option<u64>,
    /// Payments per UTC month.
    pub transactions_per_month: Option<u64>,
}

/// `[limits.tiers]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierQuotas {
    /// `starter`.
    pub starter: TierQuota,
    /// `professional`.
    pub professional: TierQuota,
    /// `enterprise`.
    pub enterprise: TierQuota,
}

/// `[limits.groups.<name>]`: an endpoint group with its own per-minute window.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupLimits {
    /// Requests per minute for `starter` tenants.
    pub starter: Option<u64>,
    /// Requests per minute for `professional` tenants.
    pub professional: Option<u64>,
    /// Requests per minute for `enterprise` tenants.
    pub enterprise: Option<u64>,
    /// Overrides `limits.failure_mode` for this group.
    pub failure_mode: Option<FailureMode>,
}

/// `[limits]`: per-tenant request limits and usage quotas of the HTTP API, and how every
/// limiter behaves when Redis fails.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Rate limiting and usage metering of the HTTP API (`false` turns both off: for
    /// benchmarks and for deployments that meter elsewhere). The proxy's own limits stay on.
    pub enabled: bool,
    /// While Redis is down or slow: `open` (default) or `closed`.
    pub failure_mode: FailureMode,
    /// How long a limiter waits for Redis, in milliseconds.
    pub redis_timeout_ms: u64,
    /// Consecutive Redis failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker skips Redis before trying again, in milliseconds.
    pub breaker_cooldown_ms: u64,
    /// Quotas per tier.
    pub tiers: TierQuotas,
    /// Endpoint groups with their own limits, by the first path segment after `/v1/`.
    pub groups: BTreeMap<String, GroupLimits>,
    /// Days a month's usage is kept in Redis after the month ends.
    pub usage_retention_days: u32,
    /// Seconds after a month ends before its totals are snapshotted to MongoDB.
    pub snapshot_grace_secs: u64,
    /// Seconds between refreshes of each tenant's `storage_bytes` gauge.
    pub storage_refresh_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            enabled: true,
            failure_mode: FailureMode::Open,
            redis_timeout_ms: 50,
            breaker_failures: 3,
            breaker_cooldown_ms: 5_000,
            tiers: TierQuotas::default(),
            groups: BTreeMap::new(),
            usage_retention_days: 90,
            snapshot_grace_secs: 3_600,
            storage_refresh_secs: 300,
        }
    }
}

impl LimitsConfig {
    /// The quota row of `tier`.
    fn tier(&self, tier: &str) -> &TierQuota {
        match tier {
            "enterprise" => &self.tiers.enterprise,
            "professional" => &self.tiers.professional,
            _ => &self.tiers.starter,
        }
    }

    /// Requests per minute of `tier` (config, else 60 / 600 / 6,000).
    pub fn requests_per_minute(&self, tier: &str) -> u64 {
        self.tier(tier).requests_per_minute.unwrap_or(match tier {
            "enterprise" => 6_000,
            "professional" => 600,
            _ => 60,
        })
    }

    /// Payments per UTC month of `tier` (config, else 1,000 / 50,000 / 1,000,000).
    pub fn transactions_per_month(&self, tier: &str) -> u64 {
        self.tier(tier)
            .transactions_per_month
            .unwrap_or(match tier {
                "enterprise" => 1_000_000,
                "professional" => 50_000,
                _ => 1_000,
            })
    }

    /// The configured per-minute limit of `group` for `tier`, if the group has its own.
    pub fn group_limit(&self, group: &str, tier: &str) -> Option<u64> {
        let g = self.groups.get(group)?;
        match tier {
            "enterprise" => g.enterprise,
            "professional" => g.professional,
            _ => g.starter,
        }
    }

    /// The failure mode of `group`.
    pub fn failure_mode(&self, group: &str) -> FailureMode {
        self.groups
            .get(group)
            .and_then(|g| g.failure_mode)
            .unwrap_or(self.failure_mode)
    }
}

/// `[jwt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Shared secret for HS256 tokens.
    pub hs256_secret: Option<String>,
    /// PEM public key for RS256 tokens.
    pub rs256_public_key_file: Option<String>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Days audit documents are kept (TTL index).
    pub retention_days: u32,
    /// Events buffered for the database writer; beyond this they are dropped and counted.
    pub buffer: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: 365,
            buffer: 10_000,
        }
    }
}

/// A `[[tenants]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSeed {
    /// The id stored in the tenant field (a lowercase DNS label).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// `starter`, `professional` or `enterprise`.
    #[serde(default = "default_tier")]
    pub tier: String,
    /// Custom domains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Whether the tenant may be used.
    #[serde(default = "yes")]
    pub active: bool,
    /// Theming and locale, with the keys the registry and API use: `displayName`,
    /// `brandColor` (`#rrggbb`), `logoUrl` (`https://…`), `timeZone`, `currency`.
    #[serde(default, deserialize_with = "seed_settings")]
    pub settings: crate::registry::Settings,
}

/// A seed's settings, read strictly: a misspelt key (`brandColour`) is an error here, where
/// the registry itself tolerates fields it does not know.
fn seed_settings<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<crate::registry::Settings, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Strict {
        display_name: Option<String>,
        brand_color: Option<String>,
        logo_url: Option<String>,
        time_zone: Option<String>,
        currency: Option<String>,
    }
    let s = Strict::deserialize(d)?;
    Ok(crate::registry::Settings {
        display_name: s.display_name,
        brand_color: s.brand_color,
        logo_url: s.logo_url,
        time_zone: s.time_zone,
        currency: s.currency,
    })
}

fn default_tier() -> String {
    "starter".into()
}
fn yes() -> bool {
    true
}

/// A `[[principals]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    /// The username drivers send.
    pub username: String,
    /// The password (development; prefer `password_env` or stored credentials).
    pub password: Option<String>,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// Stored SCRAM-SHA-256 credentials (no password on disk).
    pub scram_sha256: Option<StoredScram>,
    /// The tenant it is bound to.
    pub tenant: Option<String>,
    /// Roles (`super_admin`, `security_auditor`).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Stored SCRAM credentials, base64 fields as MongoDB stores them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredScram {
    /// Salt.
    pub salt: String,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `H(ClientKey)`.
    pub stored_key: String,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: String,
}

fn set_path(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
) -> Result<(), ConfigError> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(invalid(
                    path.join("."),
                    "cannot override inside a non-table value",
                ));
            }
        };
    }
    cur.insert(last.clone(), value);
    Ok(())
}

impl Config {
    /// Reads, overrides from the environment, parses and validates a file.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, env)
    }

    /// Parses TOML text, applies environment overrides and validates.
    pub fn from_toml(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut overrides: Vec<(String, String)> = env
            .vars()
            .into_iter()
            .filter(|(k, _)| k.starts_with("TENANTGATE_") && k.contains("__"))
            .collect();
        overrides.sort();
        for (name, raw) in overrides {
            let path: Vec<String> = name["TENANTGATE_".len()..]
                .split("__")
                .map(|p| p.to_ascii_lowercase())
                .collect();
            let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(raw));
            set_path(&mut table, &path, value)?;
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.validate(env)?;
        Ok(config)
    }

    fn validate(&self, env: &dyn Env) -> Result<(), ConfigError> {
        if !self.upstream.uri.starts_with("mongodb://") {
            return Err(invalid(
                "upstream.uri",
                "must be a mongodb:// URI (mongodb+srv is not supported yet)",
            ));
        }
        if self.upstream.pool_size == 0 {
            return Err(invalid("upstream.pool_size", "must be at least 1"));
        }
        self.proxy
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| invalid("proxy.listen", e.to_string()))?;
        self.api
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| invalid("api.listen", e.to_string()))?;
        if self.proxy.tls_cert_file.is_some() != self.proxy.tls_key_file.is_some() {
            return Err(invalid(
                "proxy.tls_cert_file",
                "tls_cert_file and tls_key_file go together",
            ));
        }
        for (i, d) in self.api.base_domains.iter().enumerate() {
            // `localhost` is a base domain for development: browsers resolve every
            // `*.localhost` name to the loopback address (RFC 6761), so
            // `http://bank1.localhost:8080/` reaches a local API as tenant `bank1`.
            if d == "localhost" {
                continue;
            }
            let normal = crate::registry::normalize_domain(d)
                .map_err(|e| invalid(format!("api.base_domains[{i}]"), e.to_string()))?;
            if &normal != d {
                return Err(invalid(
                    format!("api.base_domains[{i}]"),
                    format!("write it as {normal:?}"),
                ));
            }
        }
        if self.api.dev_mode && self.jwt.as_ref().is_none_or(|j| j.hs256_secret.is_none()) {
            return Err(invalid(
                "api.dev_mode",
                "dev mode mints HS256 tokens, so it needs jwt.hs256_secret",
            ));
        }
        for (i, t) in self.tenants.iter().enumerate() {
            if let Err((key, why)) = t.settings.checked() {
                return Err(invalid(format!("tenants[{i}].settings.{key}"), why));
            }
        }
        for (i, p) in self.api.trusted_proxies.iter().enumerate() {
            crate::net::Cidr::parse(p)
                .map_err(|e| invalid(format!("api.trusted_proxies[{i}]"), e))?;
        }
        if let Some(db) = &self.api.database
            && !self.policy.databases.contains(db)
        {
            return Err(invalid(
                "api.database",
                format!("{db:?} is not among policy.databases"),
            ));
        }
        if let Some(r) = &self.redis {
            r.link()?;
        }
        for (name, g) in &self.limits.groups {
            if !is_slug(name) {
                return Err(invalid(
                    format!("limits.groups.{name}"),
                    "group names are the first path segment after /v1/ (lowercase)",
                ));
            }
            if [g.starter, g.professional, g.enterprise].contains(&Some(0)) {
                return Err(invalid(
                    format!("limits.groups.{name}"),
                    "limits must be positive",
                ));
            }
        }
        for tier in ["starter", "professional", "enterprise"] {
            if self.limits.requests_per_minute(tier) == 0 {
                return Err(invalid(
                    format!("limits.tiers.{tier}.requests_per_minute"),
                    "must be positive",
                ));
            }
        }
        if u64::from(self.limits.usage_retention_days) * 86_400 <= self.limits.snapshot_grace_secs {
            return Err(invalid(
                "limits.usage_retention_days",
                "must outlast limits.snapshot_grace_secs, or a month's usage expires before its snapshot is taken",
            ));
        }
        if self.limits.redis_timeout_ms == 0 || self.limits.breaker_failures == 0 {
            return Err(invalid(
                "limits",
                "redis_timeout_ms and breaker_failures must be positive",
            ));
        }
        if self.registry.cache_ttl_ms == 0 || self.registry.redis_ttl_secs == 0 {
            return Err(invalid(
                "registry",
                "cache_ttl_ms and redis_ttl_secs must be positive",
            ));
        }
        self.policy
            .validate()
            .map_err(|e| invalid(format!("policy.{}", e.key), e.reason))?;
        let mut seen = std::collections::HashSet::new();
        for t in &self.tenants {
            if !is_slug(&t.slug) {
                return Err(invalid(
                    "tenants.slug",
                    format!("{:?} must be a lowercase DNS label", t.slug),
                ));
            }
            if crate::registry::RESERVED_SLUGS.contains(&t.slug.as_str()) {
                return Err(invalid(
                    "tenants.slug",
                    format!("{:?} is reserved for the platform's own hosts", t.slug),
                ));
            }
            if !seen.insert(&t.slug) {
                return Err(invalid(
                    "tenants.slug",
                    format!("{:?} appears twice", t.slug),
                ));
            }
            for d in &t.domains {
                crate::registry::normalize_domain(d)
                    .map_err(|e| invalid(format!("tenants.{}.domains", t.slug), e.to_string()))?;
            }
            if !matches!(t.tier.as_str(), "starter" | "professional" | "enterprise") {
                return Err(invalid(
                    "tenants.tier",
                    format!("{:?}: starter, professional or enterprise", t.tier),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.principals {
            let key = format!("principals.{}", p.username);
            if p.username.is_empty() || !names.insert(&p.username) {
                return Err(invalid(key, "usernames must be non-empty and unique"));
            }
            let sources = [
                p.password.is_some(),
                p.password_env.is_some(),
                p.scram_sha256.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(invalid(
                    key,
                    "exactly one of password, password_env, scram_sha256",
                ));
            }
            if let Some(var) = &p.password_env
                && env.var(var).is_none()
            {
                return Err(invalid(
                    key,
                    format!("environment variable {var} is not set"),
                ));
            }
            if p.tenant.is_none() && !p.roles.iter().any(|r| r == "super_admin") {
                return Err(invalid(
                    key,
                    "a principal needs a tenant or the super_admin role",
                ));
            }
            if let Some(t) = &p.tenant
                && !self.tenants.is_empty()
                && !self.tenants.iter().any(|s| &s.slug == t)
            {
                return Err(invalid(
                    key,
                    format!("tenant {t:?} is not among [[tenants]]"),
                ));
            }
        }
        Ok(())
    }
}

pub use crate::registry::is_slug;

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"
[upstream]
uri = "mongodb://127.0.0.1:27017/"

[proxy]
listen = "127.0.0.1:27018"

[api]
listen = "127.0.0.1:8080"

[redis]
url = "redis://127.0.0.1:6379"

[jwt]
hs256_secret = "change-me"

[policy]
tenant_field = "tenantId"
soft_delete_field = "deletedAt"
databases = ["payments"]

[policy.collections.currencies]
mode = "global"

[[tenants]]
slug = "bank1"
name = "First National Bank"
tier = "professional"
domains = ["payments.firstnational.example"]

[[tenants]]
slug = "bank2"
name = "Second Savings"
tier = "starter"

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
"#;

    #[test]
    fn the_issue_example_loads() {
        let c = Config::from_toml(EXAMPLE, &BTreeMap::new()).expect("valid");
        assert_eq!(c.principals.len(), 3);
        assert_eq!(c.policy.databases, ["payments"]);
        assert_eq!(c.tenants[0].domains, ["payments.firstnational.example"]);
    }

    #[test]
    fn environment_overrides_any_key() {
        let env: BTreeMap<String, String> = [
            ("TENANTGATE_UPSTREAM__URI", "mongodb://10.0.0.1:27017/"),
            ("TENANTGATE_PROXY__MAX_CONNECTIONS", "7"),
            ("TENANTGATE_POLICY__DATABASES", "[\"a\", \"b\"]"),
            ("TENANTGATE_VENV", "/ignored/no/double/underscore"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let c = Config::from_toml(EXAMPLE, &env).expect("valid");
        assert_eq!(c.upstream.uri, "mongodb://10.0.0.1:27017/");
        assert_eq!(c.proxy.max_connections, 7);
        assert_eq!(c.policy.databases, ["a", "b"]);
    }

    #[test]
    fn errors_name_the_key() {
        let bad = EXAMPLE.replace("listen = \"127.0.0.1:27018\"", "listen = \"nowhere\"");
        let e = Config::from_toml(&bad, &BTreeMap::new()).expect_err("invalid");
        assert!(e.to_string().starts_with("proxy.listen"), "{e}");
        let bad = EXAMPLE.replace("tenant = \"bank2\"", "tenant = \"bank9\"");
        let e = Config::from_toml(&bad, &BTreeMap::new()).expect_err("invalid");
        assert!(e.to_string().contains("svc-bank2"), "{e}");
        let e = Config::from_toml(&format!("{EXAMPLE}\n[proxy2]\nx=1"), &BTreeMap::new())
            .expect_err("unknown");
        assert!(e.to_string().contains("proxy2"), "{e}");
    }
}
