//! The sliding-window-log script: one atomic Redis call that, for each request of a batch,
//! trims the window, counts, admits or refuses, and — only when it admits — records the
//! request in the window and adds the request's usage to the tenant's month. A lone request is
//! a batch of one; concurrent requests share a call (at most one round trip per request).
//!
//! The window is a sorted set scored by milliseconds (`rate_limit:{bank1}:payments`). Only
//! admitted requests are added: a client retrying against a full window does not push its own
//! reset further away. Members are `<ms>:<instance id>:<sequence>`, unique even when two
//! requests share a millisecond. Time is Redis' `TIME`, so instances with skewed clocks agree;
//! tests may inject a time instead.
//!
//! Usage goes to the month hash of Redis' clock. The caller passes the hashes of the month
//! before, the month of, and the month after its own clock (`usage:{bank1}:2026-11`…), all in
//! the tenant's slot, and the script picks the one its clock says — so a request at
//! 23:59:59.999 on the last day counts in that month whatever the API server's clock says.

/// `month_of(ms)`: the `YYYY-MM` of a Unix millisecond, UTC (civil-from-days, as
/// [`Period::of_millis`](super::Period::of_millis)). Prepended to the scripts that need it.
pub const MONTH_OF: &str = r#"
local function month_of(ms)
  local z = math.floor(ms / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d', y, m)
end

"#;

/// The Lua body (run after [`MONTH_OF`]): a *batch* of checks in one atomic call.
///
/// ARGV: [1] injected now ms or empty, [2..4] the names of the caller's previous, current and
/// next month, [5..7] their expiry (Unix seconds), [8..11] the first millisecond of each of the
/// three months and of the month after them, [12] the number of checks; then per check: the
/// number of its keys (1, or 4 with usage), limit, window ms, member suffix, the number of
/// usage fields, and that many field / increment pairs. KEYS: per check, its window and (with
/// usage) the three months' usage hashes. Returns `{now_ms, month, admitted₁, remaining₁,
/// reset_ms₁, admitted₂, …}`.
///
/// Each check is the sliding window log of one request: trim entries older than the window,
/// count, add a unique member only when admitted, refresh the TTL, report when a slot frees. It
/// is on the path of every API request, so it does as little as it can: the month is found by
/// comparing `now` with the caller's month boundaries once per batch (the calendar arithmetic of
/// [`MONTH_OF`] runs only when the clocks disagree by more than a month), and a usage hash's
/// expiry is set when a field is created, not on every increment.
pub const SOURCE: &str = r#"
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local slot = nil
for i = 1, 3 do
  if now >= tonumber(ARGV[7 + i]) and now < tonumber(ARGV[8 + i]) then
    slot = i
  end
end
local month = slot and ARGV[1 + slot] or month_of(now)
local out = {now, month}
local a = 13
local k = 1
for e = 1, tonumber(ARGV[12]) do
  local nkeys = tonumber(ARGV[a])
  local limit = tonumber(ARGV[a + 1])
  local window = tonumber(ARGV[a + 2])
  local member = ARGV[a + 3]
  local nfields = tonumber(ARGV[a + 4])
  a = a + 5
  local key = KEYS[k]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  local admitted = 0
  if count < limit then
    redis.call('ZADD', key, now, now .. ':' .. member)
    count = count + 1
    admitted = 1
  end
  redis.call('PEXPIRE', key, window)
  local reset = window
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if oldest[2] then
    reset = tonumber(oldest[2]) + window - now
  end
  if nkeys == 4 and slot and admitted == 1 then
    local usage = KEYS[k + slot]
    for f = 0, nfields - 1 do
      local increment = tonumber(ARGV[a + 2 * f + 1])
      if redis.call('HINCRBY', usage, ARGV[a + 2 * f], increment) == increment then
        redis.call('EXPIREAT', usage, ARGV[4 + slot])
      end
    end
  end
  a = a + 2 * nfields
  k = k + nkeys
  out[#out + 1] = admitted
  out[#out + 1] = limit - count
  out[#out + 1] = reset
end
return out
"#;

/// The whole script as the limiter loads it.
pub fn source() -> String {
    format!("{MONTH_OF}{SOURCE}")
}

/// One check of a batch.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The window key (prefixed).
    pub window_key: String,
    /// The usage hash key without its month (prefixed, e.g. `usage:{bank1}:`), when the check
    /// meters; the batch appends the three candidate months of its own clock.
    pub usage_base: Option<String>,
    /// Requests admitted per window.
    pub limit: u64,
    /// The window in milliseconds.
    pub window_ms: u64,
    /// Makes the window member unique.
    pub member: String,
    /// Usage field / increment pairs.
    pub usage: Vec<(String, i64)>,
}

/// One check's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Admitted.
    pub admitted: bool,
    /// Requests left in the window.
    pub remaining: i64,
    /// Milliseconds until a slot frees.
    pub reset_ms: i64,
}

/// The script's reply: its clock, its month, and one answer per check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Redis' (or the injected) time.
    pub now_ms: i64,
    /// `YYYY-MM` of `now_ms`.
    pub month: String,
    /// In the order of the entries.
    pub answers: Vec<Answer>,
}

fn int(v: Option<&redis::Value>) -> i64 {
    match v {
        Some(redis::Value::Int(n)) => *n,
        Some(redis::Value::BulkString(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// Builds the invocation for `entries`, as a caller whose own clock says `local` (and, in
/// tests, with an injected time).
pub fn invocation<'a>(
    script: &'a redis::Script,
    entries: &[Entry],
    local: super::Period,
    injected_now: Option<i64>,
    retention_days: u32,
) -> redis::ScriptInvocation<'a> {
    let months = [local.prev(), local, local.next()];
    let mut inv = script.prepare_invoke();
    inv.arg(injected_now.map(|ms| ms.to_string()).unwrap_or_default());
    for m in months {
        inv.arg(m.to_string());
    }
    for m in months {
        inv.arg(m.expire_at_secs(retention_days));
    }
    for m in months {
        inv.arg(m.start_millis());
    }
    inv.arg(local.next().end_millis());
    inv.arg(entries.len());
    for e in entries {
        inv.key(&e.window_key);
        if let Some(base) = &e.usage_base {
            for m in months {
                inv.key(format!("{base}{m}"));
            }
        }
        inv.arg(if e.usage_base.is_some() { 4 } else { 1 })
            .arg(e.limit)
            .arg(e.window_ms)
            .arg(&e.member)
            .arg(e.usage.len());
        for (field, n) in &e.usage {
            inv.arg(field).arg(*n);
        }
    }
    inv
}

/// Reads the script's reply.
pub fn parse(reply: &[redis::Value]) -> Reply {
    let month = match reply.get(1) {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let answers = reply
        .get(2..)
        .unwrap_or_default()
        .chunks(3)
        .map(|c| Answer {
            admitted: int(c.first()) == 1,
            remaining: int(c.get(1)),
            reset_ms: int(c.get(2)),
        })
        .collect();
    Reply {
        now_ms: int(reply.first()),
        month,
        answers,
    }
}
