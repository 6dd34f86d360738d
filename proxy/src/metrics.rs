//! Prometheus metrics, rendered in the text exposition format by `GET /metrics` on the API
//! listener (keep that listener off the public network).
//!
//! Labels come from closed sets only — command names from the policy allowlists (anything else
//! is `other`), outcomes, rule names — so a client cannot create series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tenantgate_policy::Rule;
use tenantgate_policy::admin::{SUPER_ADMIN_EXTRA, TENANT_COMMANDS};

/// Latency buckets, in microseconds.
const BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000, 10_000_000,
];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        // One increment on the hot path (the smallest bucket that holds it); `render` makes the
        // counts cumulative, as Prometheus expects.
        if let Some(i) = BUCKETS_US.iter().position(|bound| us <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            let le = *bound as f64 / 1e6;
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Command names with a label of their own, in the order of the counter table; anything else
/// counts as `other` (the last row).
fn labels() -> impl Iterator<Item = &'static str> {
    TENANT_COMMANDS
        .iter()
        .chain(SUPER_ADMIN_EXTRA.iter())
        .chain(HANDSHAKE.iter())
        .copied()
        .chain(std::iter::once("other"))
}

const HANDSHAKE: [&str; 4] = ["hello", "isMaster", "saslStart", "saslContinue"];
const LABELS: usize = TENANT_COMMANDS.len() + SUPER_ADMIN_EXTRA.len() + HANDSHAKE.len() + 1;

/// How a command ended, for `tenantgate_commands_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Rewritten and sent upstream.
    Forwarded,
    /// Refused by the policy.
    Rejected,
    /// Answered by the proxy itself.
    Local,
}

impl CommandOutcome {
    const ALL: [CommandOutcome; 3] = [Self::Forwarded, Self::Rejected, Self::Local];

    fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::Rejected => "rejected",
            Self::Local => "local",
        }
    }
}

/// Commands by label and outcome: one atomic per cell, so counting a command takes no lock
/// (it happens on every command of every connection).
#[derive(Debug)]
struct CommandCounts(Box<[AtomicU64]>);

impl Default for CommandCounts {
    fn default() -> Self {
        CommandCounts(
            (0..LABELS * CommandOutcome::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }
}

/// State the metrics render but do not own.
#[derive(Debug, Default)]
pub struct Extra {
    /// Audit events dropped from the database copy.
    pub audit_dropped: u64,
    /// Cursors tracked for ownership.
    pub cursors_open: usize,
    /// `(tenant, connections, in_flight)`.
    pub tenants: Vec<(String, usize, usize)>,
    /// Idle pooled upstream connections.
    pub pool_idle: usize,
    /// Busy pooled upstream connections.
    pub pool_busy: usize,
}

/// Every metric of the proxy.
#[derive(Debug, Default)]
pub struct Metrics {
    commands: CommandCounts,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    per_tenant_connections: Mutex<BTreeMap<String, i64>>,
    /// Client connections open now.
    pub connections_active: AtomicI64,
    /// Client connections accepted since start.
    pub connections_total: AtomicU64,
    /// Failed authentications.
    pub auth_failures: AtomicU64,
    /// Upstream round trips that failed.
    pub upstream_errors: AtomicU64,
    /// Time in the policy engine per command.
    pub rewrite_latency: Histogram,
    /// Upstream round-trip time per command.
    pub upstream_latency: Histogram,
}

/// The closed label for a command name.
pub fn command_label(name: &str) -> &'static str {
    labels().nth(label_index(name)).unwrap_or("other")
}

/// The row of `name` in the counter table (`other`, the last, for unlisted names).
fn label_index(name: &str) -> usize {
    labels()
        .take(LABELS - 1)
        .position(|c| c == name)
        .unwrap_or(LABELS - 1)
}

impl Metrics {
    /// Counts a command by name and outcome (`forwarded`, `rejected`, `local`, `error`, `limited`).
    pub fn command(&self, name: &str, outcome: CommandOutcome) {
        let cell = label_index(name) * CommandOutcome::ALL.len() + outcome as usize;
        if let Some(n) = self.commands.0.get(cell) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a rejection by rule.
    pub fn rejection(&self, rule: Rule) {
        if let Ok(mut m) = self.rejections.lock() {
            *m.entry(rule.as_str()).or_default() += 1;
        }
    }

    /// A tenant's connection count changes by `delta`.
    pub fn tenant_connections(&self, tenant: &str, delta: i64) {
        if let Ok(mut m) = self.per_tenant_connections.lock() {
            *m.entry(tenant.to_owned()).or_default() += delta;
        }
    }

    /// The text exposition, with state owned elsewhere supplied by the caller.
    pub fn render(&self, extra: &Extra) -> String {
        let (audit_dropped, cursors_open) = (extra.audit_dropped, extra.cursors_open);
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP tenantgate_tenant_in_flight Commands in flight per tenant.\n# TYPE tenantgate_tenant_in_flight gauge\n");
        for (t, _, in_flight) in &extra.tenants {
            let _ = writeln!(
                out,
                "tenantgate_tenant_in_flight{{tenant=\"{t}\"}} {in_flight}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tenantgate_upstream_pool Pooled upstream connections by state.\n# TYPE tenantgate_upstream_pool gauge\ntenantgate_upstream_pool{{state=\"idle\"}} {}\ntenantgate_upstream_pool{{state=\"busy\"}} {}",
            extra.pool_idle, extra.pool_busy
        );
        out.push_str("# HELP tenantgate_commands_total Commands by name and outcome.\n# TYPE tenantgate_commands_total counter\n");
        let mut rows: Vec<(&str, &str, u64)> = labels()
            .flat_map(|c| CommandOutcome::ALL.iter().map(move |o| (c, *o)))
            .zip(self.commands.0.iter())
            .map(|((c, o), n)| (c, o.as_str(), n.load(Ordering::Relaxed)))
            .filter(|(_, _, n)| *n > 0)
            .collect();
        rows.sort_unstable();
        for (c, o, n) in rows {
            let _ = writeln!(
                out,
                "tenantgate_commands_total{{command=\"{c}\",outcome=\"{o}\"}} {n}"
            );
        }
        out.push_str("# HELP tenantgate_rejections_total Policy rejections by rule.\n# TYPE tenantgate_rejections_total counter\n");
        if let Ok(m) = self.rejections.lock() {
            for (r, n) in m.iter() {
                let _ = writeln!(out, "tenantgate_rejections_total{{rule=\"{r}\"}} {n}");
            }
        }
        out.push_str("# HELP tenantgate_tenant_connections Authenticated client connections per tenant.\n# TYPE tenantgate_tenant_connections gauge\n");
        if let Ok(m) = self.per_tenant_connections.lock() {
            for (t, n) in m.iter() {
                let _ = writeln!(out, "tenantgate_tenant_connections{{tenant=\"{t}\"}} {n}");
            }
        }
        let gauges: [(&str, &str, &str, i128); 6] = [
            (
                "tenantgate_connections_active",
                "gauge",
                "Client connections open.",
                self.connections_active.load(Ordering::Relaxed).into(),
            ),
            (
                "tenantgate_connections_total",
                "counter",
                "Client connections accepted.",
                self.connections_total.load(Ordering::Relaxed).into(),
            ),
            (
                "tenantgate_auth_failures_total",
                "counter",
                "Failed authentications.",
                self.auth_failures.load(Ordering::Relaxed).into(),
            ),
            (
                "tenantgate_upstream_errors_total",
                "counter",
                "Failed upstream round trips.",
                self.upstream_errors.load(Ordering::Relaxed).into(),
            ),
            (
                "tenantgate_audit_dropped_total",
                "counter",
                "Audit events dropped from the database copy.",
                audit_dropped.into(),
            ),
            (
                "tenantgate_cursors_open",
                "gauge",
                "Upstream cursors tracked for ownership.",
                cursors_open as i128,
            ),
        ];
        for (name, kind, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        self.rewrite_latency.render(
            &mut out,
            "tenantgate_rewrite_seconds",
            "Time in the policy engine per command.",
        );
        self.upstream_latency.render(
            &mut out,
            "tenantgate_upstream_seconds",
            "Upstream round-trip time per command.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_closed_labels_and_histograms() {
        let m = Metrics::default();
        m.command("find", CommandOutcome::Forwarded);
        m.command("$evil\"label", CommandOutcome::Rejected);
        m.command("saslContinue", CommandOutcome::Local);
        m.command("other", CommandOutcome::Local);
        assert_eq!(command_label("getMore"), "getMore");
        assert_eq!(command_label("$evil"), "other");
        m.rejection(Rule::TenantOverride);
        m.upstream_latency.observe(Duration::from_micros(300));
        let text = m.render(&Extra {
            audit_dropped: 2,
            cursors_open: 1,
            tenants: vec![("bank1".into(), 3, 1)],
            pool_idle: 4,
            pool_busy: 1,
        });
        assert!(text.contains("tenantgate_tenant_in_flight{tenant=\"bank1\"} 1"));
        assert!(text.contains("tenantgate_upstream_pool{state=\"idle\"} 4"));
        assert!(
            text.contains("tenantgate_commands_total{command=\"find\",outcome=\"forwarded\"} 1")
        );
        assert!(
            text.contains("tenantgate_commands_total{command=\"other\",outcome=\"rejected\"} 1")
        );
        assert!(!text.contains("evil"));
        assert!(
            text.contains(
                "tenantgate_commands_total{command=\"saslContinue\",outcome=\"local\"} 1"
            )
        );
        assert!(text.contains("tenantgate_commands_total{command=\"other\",outcome=\"local\"} 1"));
        assert!(!text.contains("outcome=\"forwarded\"} 0"));
        assert!(text.contains("tenantgate_rejections_total{rule=\"tenant_override\"} 1"));
        assert!(text.contains("tenantgate_upstream_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("tenantgate_upstream_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("tenantgate_audit_dropped_total 2"));
    }
}
