//! Per-tenant limits from the tenant's tier, so one noisy tenant cannot starve the others.
//!
//! Three limits per tenant: client connections, commands in flight, and commands per second
//! (a token bucket with a one-second burst). Excess gets MongoDB's own retryable overload error
//! (`IngressRequestRateLimitExceeded`, 462, labelled `SystemOverloadedError` and
//! `RetryableError`) at once — never a hang. Connections and commands in flight are counted
//! here, per process: with several proxy instances each enforces the whole limit. Commands per
//! second are counted in one window per tenant shared by every instance when `[redis]` answers
//! (`crate::ratelimit`, group `proxy_commands`), and by this token bucket otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Limits of one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierLimits {
    /// Client connections at once.
    pub connections: usize,
    /// Commands in flight at once.
    pub in_flight: usize,
    /// Commands per second (sustained; the burst is one second's worth).
    pub commands_per_second: u32,
}

/// The defaults per tier.
pub fn tier_limits(tier: &str) -> TierLimits {
    match tier {
        "enterprise" => TierLimits {
            connections: 2_000,
            in_flight: 1_000,
            commands_per_second: 20_000,
        },
        "professional" => TierLimits {
            connections: 500,
            in_flight: 200,
            commands_per_second: 5_000,
        },
        _ => TierLimits {
            connections: 100,
            in_flight: 50,
            commands_per_second: 1_000,
        },
    }
}

#[derive(Debug)]
struct TenantState {
    /// The map's own key, so one lookup both finds the state and names the tenant in a permit.
    key: Arc<str>,
    limits: TierLimits,
    connections: usize,
    in_flight: usize,
    tokens: f64,
    refilled: Instant,
}

/// Why a tenant was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// Too many connections.
    Connections,
    /// Too many commands in flight.
    InFlight,
    /// Too many commands per second.
    Rate,
}

impl Exceeded {
    /// For messages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Exceeded::Connections => "connections",
            Exceeded::InFlight => "in_flight",
            Exceeded::Rate => "commands_per_second",
        }
    }
}

/// The limiter shared by all connections.
#[derive(Debug, Default)]
pub struct Limiter {
    /// Keyed by `Arc<str>` so a permit names its tenant with a reference count, not a copy.
    tenants: Mutex<HashMap<Arc<str>, TenantState>>,
}

/// A held connection slot, released on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    limiter: Arc<Limiter>,
    tenant: Arc<str>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.limiter.tenants.lock()
            && let Some(s) = m.get_mut(&*self.tenant)
        {
            s.connections = s.connections.saturating_sub(1);
        }
    }
}

/// A command in flight, released on drop.
#[derive(Debug)]
pub struct CommandPermit {
    limiter: Arc<Limiter>,
    tenant: Arc<str>,
}

impl Drop for CommandPermit {
    fn drop(&mut self) {
        if let Ok(mut m) = self.limiter.tenants.lock()
            && let Some(s) = m.get_mut(&*self.tenant)
        {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }
}

impl Limiter {
    /// `(tenant, connections, in_flight)` for every tenant seen, for metrics.
    pub fn snapshot(&self) -> Vec<(String, usize, usize)> {
        self.tenants
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(t, s)| (t.to_string(), s.connections, s.in_flight))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs `f` on `tenant`'s state (created on first use) and returns its result with the
    /// shared key. Every command passes here: a known tenant costs one hash lookup (three, with
    /// `contains_key` and `get_key_value` first, were 2 % of a proxied `find`'s instructions;
    /// scripts/bench-proxy-instructions).
    fn with<T>(
        &self,
        tenant: &str,
        limits: TierLimits,
        f: impl FnOnce(&mut TenantState) -> T,
    ) -> Option<(T, Arc<str>)> {
        let mut m = self.tenants.lock().ok()?;
        let s = match m.get_mut(tenant) {
            Some(s) => s,
            None => {
                let key: Arc<str> = Arc::from(tenant);
                m.entry(key.clone()).or_insert(TenantState {
                    key,
                    limits,
                    connections: 0,
                    in_flight: 0,
                    tokens: f64::from(limits.commands_per_second),
                    refilled: Instant::now(),
                })
            }
        };
        s.limits = limits;
        let key = s.key.clone();
        Some((f(s), key))
    }

    /// Takes a connection slot for `tenant`.
    pub fn connect(
        self: &Arc<Self>,
        tenant: &str,
        limits: TierLimits,
    ) -> Result<ConnectionSlot, Exceeded> {
        match self.with(tenant, limits, |s| {
            if s.connections >= s.limits.connections {
                false
            } else {
                s.connections += 1;
                true
            }
        }) {
            Some((true, tenant)) => Ok(ConnectionSlot {
                limiter: self.clone(),
                tenant,
            }),
            _ => Err(Exceeded::Connections),
        }
    }

    /// Admits one command for `tenant`.
    pub fn command(
        self: &Arc<Self>,
        tenant: &str,
        limits: TierLimits,
    ) -> Result<CommandPermit, Exceeded> {
        self.admit(tenant, limits, true)
    }

    /// Admits one command whose rate a shared (Redis) limiter already accepted: only the
    /// in-flight limit is checked here.
    pub fn command_rate_checked(
        self: &Arc<Self>,
        tenant: &str,
        limits: TierLimits,
    ) -> Result<CommandPermit, Exceeded> {
        self.admit(tenant, limits, false)
    }

    fn admit(
        self: &Arc<Self>,
        tenant: &str,
        limits: TierLimits,
        check_rate: bool,
    ) -> Result<CommandPermit, Exceeded> {
        let (outcome, tenant) = self
            .with(tenant, limits, |s| {
                let now = Instant::now();
                let rate = f64::from(s.limits.commands_per_second);
                s.tokens =
                    (s.tokens + now.duration_since(s.refilled).as_secs_f64() * rate).min(rate);
                s.refilled = now;
                if s.in_flight >= s.limits.in_flight {
                    Err(Exceeded::InFlight)
                } else if !check_rate {
                    s.in_flight += 1;
                    Ok(())
                } else if s.tokens < 1.0 {
                    Err(Exceeded::Rate)
                } else {
                    s.tokens -= 1.0;
                    s.in_flight += 1;
                    Ok(())
                }
            })
            .ok_or(Exceeded::Rate)?;
        outcome.map(|()| CommandPermit {
            limiter: self.clone(),
            tenant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: TierLimits = TierLimits {
        connections: 2,
        in_flight: 1,
        commands_per_second: 3,
    };

    #[test]
    fn connections_and_in_flight_are_capped_and_released() {
        let l = Arc::new(Limiter::default());
        let a = l.connect("t", TINY).expect("first");
        let _b = l.connect("t", TINY).expect("second");
        assert_eq!(l.connect("t", TINY).err(), Some(Exceeded::Connections));
        assert!(l.connect("other", TINY).is_ok(), "limits are per tenant");
        drop(a);
        assert!(l.connect("t", TINY).is_ok());
        let p = l.command("t", TINY).expect("one in flight");
        assert_eq!(l.command("t", TINY).err(), Some(Exceeded::InFlight));
        drop(p);
    }

    #[test]
    fn the_rate_is_a_token_bucket() {
        let l = Arc::new(Limiter::default());
        let wide = TierLimits {
            in_flight: 100,
            ..TINY
        };
        let mut admitted = 0;
        for _ in 0..10 {
            if l.command("t", wide).is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 3, "a burst of one second's worth");
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(l.command("t", wide).is_ok(), "tokens refill");
        assert_eq!(tier_limits("enterprise").connections, 2_000);
        assert_eq!(tier_limits("unknown"), tier_limits("starter"));
    }
}
