//! The sliding-window-log script: one atomic Redis call per request that trims the window,
//! counts, admits or refuses, and — only when it admits — records the request in the window
//! and adds the request's usage to the tenant's month.
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

/// The Lua body (run after [`MONTH_OF`]). KEYS: [1] window; [2..4] usage hashes (previous,
/// current, next month; all three or none). ARGV: [1] limit, [2] window ms, [3] member suffix,
/// [4] injected now ms or empty, [5..7] the three months' names, [8..10] their expiry (Unix
/// seconds), [11..14] the first millisecond of each of the three months and of the month after
/// them, [15..] field / increment pairs. Returns `{admitted, remaining, reset_ms, now_ms, month}`.
///
/// It is on the path of every API request, so it does as little as it can: the month is found
/// by comparing `now` with the caller's month boundaries (the calendar arithmetic of
/// [`MONTH_OF`] runs only when the clocks disagree by more than a month), and a usage hash's
/// expiry is set when a field is created, not on every increment.
pub const SOURCE: &str = r#"
local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  count = count + 1
  admitted = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local reset = window
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end
local month = ''
if #KEYS >= 4 then
  local slot = nil
  for i = 1, 3 do
    if now >= tonumber(ARGV[10 + i]) and now < tonumber(ARGV[11 + i]) then
      slot = i
    end
  end
  if slot then
    month = ARGV[4 + slot]
    if admitted == 1 then
      local key = KEYS[1 + slot]
      for j = 15, #ARGV, 2 do
        local increment = tonumber(ARGV[j + 1])
        if redis.call('HINCRBY', key, ARGV[j], increment) == increment then
          redis.call('EXPIREAT', key, ARGV[7 + slot])
        end
      end
    end
  else
    month = month_of(now)
  end
end
return {admitted, limit - count, reset, now, month}
"#;

/// The whole script as the limiter loads it.
pub fn source() -> String {
    format!("{MONTH_OF}{SOURCE}")
}
