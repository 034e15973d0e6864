//! The Redis lock's Lua scripts (acquire, renew, release, leave the wait
//! queue, force-release), each atomic on the keys of one lock name, which
//! share a hash tag. Key layout and the fairness rule: docs/redis-keys.md,
//! "Distributed lock".

use redis::Script;
use std::sync::LazyLock;

/// Shared by the scripts that hand the lock on: the server's clock, and
/// the first live waiter of a queue (`q`: ids by arrival, `u`: ids by
/// keep-alive deadline), after dropping the waiters whose keep-alive
/// passed (at most 100 per call; a head without a deadline is dropped too);
/// and the wake-up: publish a waiter's id on the channel of the instance it
/// waits on (`<prefix>:<instance>`, the instance being the id's part
/// before the first `.`).
const QUEUE_LUA: &str = r"
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function live_head(q, u, now_ms)
  local stale = redis.call('ZRANGEBYSCORE', u, '-inf', string.format('%.0f', now_ms), 'LIMIT', 0, 100)
  if #stale > 0 then
    redis.call('ZREM', u, unpack(stale))
    redis.call('ZREM', q, unpack(stale))
  end
  while true do
    local head = redis.call('ZRANGE', q, 0, 0)[1]
    if head == nil then return nil end
    if redis.call('ZSCORE', u, head) then return head end
    redis.call('ZREM', q, head)
  end
end
local function wake(prefix, waiter)
  local instance = string.match(waiter, '^(%x+)%.')
  if instance then redis.call('PUBLISH', prefix .. ':' .. instance, waiter) end
end
";

fn with_queue(body: &str) -> Script {
    Script::new(&format!("{QUEUE_LUA}{body}"))
}

/// KEYS: lock, fence, queue, until. ARGV: ttl ms, value suffix
/// `|{acquired_ms}|{guard_id}|{node_id}`, waiter id (empty: do not queue),
/// keep-alive ms.
///
/// Free, and nobody queued or the waiter first in line: sets the lock to
/// `{token}{suffix}`, removes the waiter from the queue, returns the token
/// (≥ 1). Otherwise returns `{pttl}` (a one-element array; -1: no expiry;
/// -3: free but another waiter's turn) after queueing the waiter at the
/// tail (or keeping its place) with its keep-alive deadline refreshed.
///
/// The token is the last one + 1, but never below the server's clock in
/// microseconds (`TIME`): a fencing counter lost with a master that failed
/// over before replicating it, or with a Redis restarted without
/// persistence, cannot restart below tokens already handed out, as long
/// as the servers' clocks agree to within the time the failover or restart
/// took (see docs/redis-keys.md, "Fencing tokens").
pub(super) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    with_queue(
        r"
local now = now_us()
local now_ms = math.floor(now / 1000)
local me = ARGV[3]
local pttl = redis.call('PTTL', KEYS[1])
local head = live_head(KEYS[3], KEYS[4], now_ms)
if pttl == -2 then
  if head == nil or head == me then
    local last = redis.call('GET', KEYS[2])
    local token = 1
    if last then
      token = tonumber(last)
      if token == nil then
        return redis.error_reply('fencing counter ' .. KEYS[2] .. ' is not a number')
      end
      token = token + 1
    end
    if token < now then token = now end
    local text = string.format('%.0f', token)
    redis.call('SET', KEYS[2], text)
    redis.call('SET', KEYS[1], text .. ARGV[2], 'PX', ARGV[1])
    if head then
      redis.call('ZREM', KEYS[3], me)
      redis.call('ZREM', KEYS[4], me)
    end
    return token
  end
  pttl = -3
end
if me ~= '' then
  if not redis.call('ZSCORE', KEYS[3], me) then
    local score = now
    local tail = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    if tail[2] and tonumber(tail[2]) >= score then score = tonumber(tail[2]) + 1 end
    redis.call('ZADD', KEYS[3], string.format('%.0f', score), me)
  end
  local keep = tonumber(ARGV[4])
  redis.call('ZADD', KEYS[4], string.format('%.0f', now_ms + keep), me)
  for i = 3, 4 do
    if redis.call('PTTL', KEYS[i]) < keep then redis.call('PEXPIRE', KEYS[i], keep) end
  end
end
return {pttl}
",
    )
});

/// KEYS: lock. ARGV: value, ttl ms. 1 if renewed, 0 if not ours.
pub(super) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// KEYS: lock, queue, until. ARGV: value, channel prefix. 1 if deleted
/// (and the first live waiter woken), 0 if not ours.
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    with_queue(
        r"
if redis.pcall('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  local head = live_head(KEYS[2], KEYS[3], math.floor(now_us() / 1000))
  if head then wake(ARGV[2], head) end
  return 1
end
return 0
",
    )
});

/// KEYS: lock, queue, until. ARGV: waiter id, channel prefix. Removes the
/// waiter; if it was first in line and the lock is free, wakes the next
/// live waiter. 1 if it was queued, 0 if not.
pub(super) static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    with_queue(
        r"
local now_ms = math.floor(now_us() / 1000)
local head = live_head(KEYS[2], KEYS[3], now_ms)
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if head == ARGV[1] and redis.call('EXISTS', KEYS[1]) == 0 then
  local next = live_head(KEYS[2], KEYS[3], now_ms)
  if next then wake(ARGV[2], next) end
end
return removed
",
    )
});

/// KEYS: lock, queue, until. ARGV: token, channel prefix.
/// 1 deleted (and the first live waiter woken), 0 absent, -1
/// other token (or unparseable), -2 not a string.
pub(super) static FORCE_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    with_queue(
        r"
local v = redis.pcall('GET', KEYS[1])
if v == false then return 0 end
if type(v) ~= 'string' then return -2 end
if string.match(v, '^(%d+)|') ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
local head = live_head(KEYS[2], KEYS[3], math.floor(now_us() / 1000))
if head then wake(ARGV[2], head) end
return 1
",
    )
});
