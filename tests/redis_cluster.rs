//! The rate limiter and the API over a real three-node Redis Cluster that each test starts
//! (and kills) itself.
//!
//! What this file proves: every key one limiter script touches — the tenant's window and its
//! three candidate usage months — hashes to one slot (the `{tenant}` hash tag, also behind a
//! key prefix), so the script runs on whichever node owns the tenant; tenants on different
//! nodes are each limited exactly, by two limiter instances at once, with usage metered in
//! `usage:{tenant}:<month>` on the owning node; a fresh node's empty script cache is no
//! problem; and `[redis] cluster_nodes` gives the API the same limits and headers as one
//! server does.

mod common;
mod redis_server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use reqwest::StatusCode;
use serde_json::json;
use tenantgate_proxy::config::LimitsConfig;
use tenantgate_proxy::ratelimit::{Check, FailureMode, RateLimiter, Source};
use tenantgate_proxy::redis_link::RedisLink;

use common::{TestApi, api_config, fresh_db_name, jwt};
use redis_server::{RedisServer, cli, free_cluster_port};

/// How long a new cluster may take to reach `cluster_state:ok`.
const CLUSTER_READY: Duration = Duration::from_secs(20);

/// Three masters, no replicas, in a temporary directory; killed and removed when dropped.
struct Cluster {
    dir: PathBuf,
    nodes: Vec<RedisServer>,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!("tenantgate-{}", fresh_db_name("cluster")));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 3 {
            let port = free_cluster_port();
            if !ports
                .iter()
                .any(|p| p.abs_diff(port) == 0 || p.abs_diff(port) == 10_000)
            {
                ports.push(port);
            }
        }
        let mut cluster = Cluster {
            dir: dir.clone(),
            nodes: Vec::new(),
        };
        for port in &ports {
            let conf = dir.join(format!("nodes-{port}.conf"));
            let args = [
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-config-file".to_owned(),
                conf.display().to_string(),
                "--cluster-node-timeout".to_owned(),
                "2000".to_owned(),
                "--dir".to_owned(),
                dir.display().to_string(),
            ];
            cluster.nodes.push(RedisServer::start_on(*port, &args));
        }
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is installed");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let started = Instant::now();
        while !ports
            .iter()
            .all(|p| cli(*p, &["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                started.elapsed() < CLUSTER_READY,
                "the cluster on {ports:?} never reached cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `redis://127.0.0.1:<port>` of each node.
    fn urls(&self) -> Vec<String> {
        self.ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// `CLUSTER KEYSLOT key`.
    fn slot(&self, key: &str) -> u16 {
        let out = cli(self.nodes[0].port, &["cluster", "keyslot", key]);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT {key}: {out:?}"))
    }

    /// The port of the master serving `slot`, from `CLUSTER NODES`.
    fn owner(&self, slot: u16) -> u16 {
        let nodes = cli(self.nodes[0].port, &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(port) = fields
                .get(1)
                .and_then(|a| a.split('@').next())
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
            else {
                continue;
            };
            for range in fields.iter().skip(8) {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(low), Ok(high)) = (low.parse::<u16>(), high.parse::<u16>())
                    && (low..=high).contains(&slot)
                {
                    return port;
                }
            }
        }
        panic!("no node serves slot {slot}:\n{nodes}");
    }

    /// A client that follows the cluster's slot map.
    async fn connection(&self) -> redis::cluster_async::ClusterConnection {
        redis::cluster::ClusterClient::new(self.urls())
            .expect("a cluster client")
            .get_async_connection()
            .await
            .expect("connect to the cluster")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Tenants whose keys live on each of the cluster's nodes (one per node), by port.
fn tenant_per_node(cluster: &Cluster) -> BTreeMap<u16, String> {
    let mut by_node = BTreeMap::new();
    for i in 0..1_000 {
        let tenant = format!("bank-{i}");
        by_node
            .entry(cluster.owner(cluster.slot(&tenant)))
            .or_insert(tenant);
        if by_node.len() == cluster.nodes.len() {
            return by_node;
        }
    }
    panic!("no tenant names for every node: {by_node:?}");
}

async fn query<T: redis::FromRedisValue>(conn: &mut impl ConnectionLike, cmd: &redis::Cmd) -> T {
    cmd.query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_on_every_node_are_limited_exactly_with_their_keys_in_one_slot() {
    let cluster = Cluster::start();
    let prefix = format!("{}:", fresh_db_name("cl"));
    let config = LimitsConfig {
        redis_timeout_ms: 2_000,
        ..LimitsConfig::default()
    };
    let instance = || {
        let link = RedisLink::open_cluster(&cluster.urls()).expect("cluster URLs");
        Arc::new(RateLimiter::new(
            Some(Arc::new(link.with_prefix(&prefix))),
            &config,
        ))
    };
    let (a, b) = (instance(), instance());
    let tenants = tenant_per_node(&cluster);

    let mut tasks = Vec::new();
    for tenant in tenants.values() {
        for i in 0..15 {
            let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
            let tenant = tenant.clone();
            tasks.push(tokio::spawn(async move {
                let verdict = limiter
                    .check(Check {
                        tenant: &tenant,
                        group: "payments",
                        limit: 5,
                        window: Duration::from_secs(60),
                        mode: FailureMode::Open,
                        usage: &[("api_calls", 1)],
                    })
                    .await;
                (tenant, verdict)
            }));
        }
    }
    let mut verdicts: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for task in tasks {
        let (tenant, verdict) = task.await.expect("a check task");
        verdicts.entry(tenant).or_default().push(verdict);
    }

    let mut conn = cluster.connection().await;
    for (port, tenant) in &tenants {
        let v = &verdicts[tenant];
        assert!(
            v.iter().all(|v| v.source == Source::Redis),
            "{tenant}: {v:?}"
        );
        let admitted: Vec<_> = v.iter().filter(|v| v.admitted).collect();
        assert_eq!(admitted.len(), 5, "{tenant} (node {port}): exactly 5 of 15");
        assert!(admitted.iter().all(|v| v.usage_recorded), "{tenant}");

        // The window and every usage month the script may touch share the tenant's slot.
        let period = admitted[0].period;
        let window = format!("{prefix}{}", RateLimiter::window_key(tenant, "payments"));
        let usage = format!("{prefix}{}", RateLimiter::usage_key(tenant, period));
        let slot = cluster.slot(tenant);
        for key in [
            window.clone(),
            usage.clone(),
            format!("{prefix}{}", RateLimiter::usage_key(tenant, period.prev())),
            format!("{prefix}{}", RateLimiter::usage_key(tenant, period.next())),
            format!(
                "{prefix}{}",
                RateLimiter::window_key(tenant, "proxy_commands")
            ),
        ] {
            assert_eq!(cluster.slot(&key), slot, "{key} hashes on {{{tenant}}}");
        }

        let logged: u64 = query(&mut conn, redis::cmd("ZCARD").arg(&window)).await;
        assert_eq!(logged, 5, "{window}");
        let calls: Option<i64> =
            query(&mut conn, redis::cmd("HGET").arg(&usage).arg("api_calls")).await;
        assert_eq!(calls, Some(5), "{usage}: admitted requests only");
        // Both keys are on the node that owns the slot (a plain connection there sees them).
        let mut node = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .expect("a node URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the node");
        let here: u64 = query(&mut node, redis::cmd("EXISTS").arg(&window).arg(&usage)).await;
        assert_eq!(here, 2, "{tenant}'s keys on node {port}");
    }
    let decided = [&a, &b]
        .iter()
        .map(|l| {
            l.stats()
                .redis_decisions
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum::<u64>();
    assert_eq!(decided, 45, "every check was decided by the cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_over_a_cluster_limits_and_meters_like_over_one_server() {
    let cluster = Cluster::start();
    let db = fresh_db_name("cl_api");
    let nodes = cluster
        .urls()
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let single = format!("url = \"{}\"", common::redis_url());
    let base = api_config(&db);
    assert!(base.contains(&single), "api_config has a [redis] url line");
    let config = format!(
        "{}\n[limits]\nredis_timeout_ms = 2000\n\n[limits.tiers.starter]\nrequests_per_minute = 3\n",
        base.replace(&single, &format!("cluster_nodes = [{nodes}]"))
    );
    let api = TestApi::start(&config).await;

    let mut statuses = Vec::new();
    for left in [2u64, 1, 0, 0] {
        let r = reqwest::Client::new()
            .get(api.url("/v1/tenant"))
            .bearer_auth(jwt(json!({ "sub": "alice", "tenantId": "bank2" })))
            .send()
            .await
            .expect("the API answers");
        let header = |name: &str| {
            let value = r.headers().get(name).and_then(|v| v.to_str().ok());
            value.unwrap_or("").to_owned()
        };
        assert_eq!(header("x-ratelimit-limit"), "3");
        assert_eq!(header("x-ratelimit-remaining"), left.to_string());
        assert_eq!(header("ratelimit-policy"), "\"default\";q=3;w=60");
        statuses.push(r.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let bank1 = reqwest::Client::new()
        .get(api.url("/v1/tenant"))
        .bearer_auth(jwt(json!({ "sub": "alice", "tenantId": "bank1" })))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(bank1.status(), StatusCode::OK, "bank1 has its own window");

    let stats = api.services.rate_limiter.stats();
    assert_eq!(
        stats
            .local_decisions
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the cluster decided every request"
    );
    let mut conn = cluster.connection().await;
    let window = format!("{db}:rate_limit:{{bank2}}:default");
    let logged: u64 = query(&mut conn, redis::cmd("ZCARD").arg(&window)).await;
    assert_eq!(logged, 3, "{window}");
    let period = tenantgate_proxy::ratelimit::Period::now();
    let usage = format!("{db}:usage:{{bank2}}:{period}");
    let calls: Option<i64> =
        query(&mut conn, redis::cmd("HGET").arg(&usage).arg("api_calls")).await;
    assert_eq!(calls, Some(3), "{usage}: the three admitted requests");
}
