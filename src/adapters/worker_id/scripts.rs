//! The worker-ID keys and the Lua scripts that acquire, renew, release and
//! force-free leases, each in one round trip.

use super::WORKER_IDS;
use crate::config::Namespace;
use redis::Script;
use std::sync::LazyLock;

/// `{ns}:worker:{id}`: the lease (string, JSON holder, PX ttl).
pub fn lease_key(ns: &Namespace, id: u8) -> String {
    ns.key(&format!("worker:{id}"))
}

/// `{ns}:worker:{id}:last_ts`: the highest unix second any holder of the ID
/// may have issued (string, decimal, no TTL).
pub fn last_ts_key(ns: &Namespace, id: u8) -> String {
    ns.key(&format!("worker:{id}:last_ts"))
}

/// All lease keys then all `last_ts` keys, IDs 0..31: the acquire script's
/// KEYS.
pub(crate) fn all_keys(ns: &Namespace) -> Vec<String> {
    let ids = 0..WORKER_IDS;
    ids.clone()
        .map(|id| lease_key(ns, id))
        .chain(ids.map(|id| last_ts_key(ns, id)))
        .collect()
}

/// Pick the free ID whose `last_ts` is oldest (never used first, then least
/// recently used, then lowest ID) so that a new holder rarely has to wait
/// for its clock to pass `last_ts`. A free ID whose `last_ts` is not a
/// number is skipped (its history is unknown).
///
/// KEYS: n lease keys, then their n `last_ts` keys.
/// ARGV: holder value, ttl ms, cap (unix s) this holder wants persisted.
/// Reply: `{id, last_ts before, last_ts now}`, or `{-1, v_0 … v_n-1}` with
/// each lease key's value (`""` when free, `"!wrongtype"` when unreadable).
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = #KEYS / 2
local best, best_ts = -1, nil
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local raw = redis.pcall('GET', KEYS[n + i])
    local ts = nil
    if raw == false then
      ts = 0
    elseif type(raw) == 'string' and #raw <= 15 and string.match(raw, '^%d+$') then
      ts = tonumber(raw)
    end
    if ts ~= nil and (best_ts == nil or ts < best_ts) then
      best, best_ts = i, ts
    end
  end
end
if best == -1 then
  local out = {-1}
  for i = 1, n do
    local v = redis.pcall('GET', KEYS[i])
    if v == false then
      out[i + 1] = ''
    elseif type(v) == 'string' then
      out[i + 1] = v
    else
      out[i + 1] = '!wrongtype'
    end
  end
  return out
end
redis.call('SET', KEYS[best], ARGV[1], 'PX', ARGV[2])
local cap = tonumber(ARGV[3])
if best_ts > cap then cap = best_ts end
redis.call('SET', KEYS[n + best], string.format('%d', cap))
return {best - 1, best_ts, cap}
"#,
    )
});

/// Compare-and-pexpire, and raise `last_ts` to the new cap (never lower).
///
/// KEYS: lease key, `last_ts` key. ARGV: holder value, ttl ms, cap (unix s).
/// Reply: `{1, last_ts now}` when renewed, `{0}` when the lease is not ours.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then
  return {0}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local cap = tonumber(ARGV[3])
local raw = redis.pcall('GET', KEYS[2])
if type(raw) == 'string' and #raw <= 15 and string.match(raw, '^%d+$')
    and tonumber(raw) > cap then
  cap = tonumber(raw)
end
redis.call('SET', KEYS[2], string.format('%d', cap))
return {1, cap}
"#,
    )
});

/// Compare-and-delete the lease after writing the final `last_ts` (the
/// highest second this holder, or any before it, issued).
///
/// KEYS: lease key, `last_ts` key. ARGV: holder value, final `last_ts`.
/// Reply: 1 when released, 0 when the lease was not ours any more.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return 1
"#,
    )
});

/// Compare-and-delete a lease for an operator (`last_ts` untouched: the
/// next holder still waits past what the freed holder may have issued).
///
/// KEYS: lease key. ARGV: expected holder value. Reply: 1 freed, 0 not.
pub(crate) static FORCE_FREE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
"#,
    )
});
