//! The worker-ID keys and the Lua scripts that acquire, renew, release and
//! force-free leases, each in one round trip.

use super::WORKER_IDS;
use crate::adapters::hash_tag::tag;
use crate::config::Namespace;
use redis::Script;
use std::sync::LazyLock;

/// `<ns>:worker:{<ns>}:`: the prefix of every worker-ID key. The keys of
/// all 32 IDs share the hash tag `{<ns>}` because the acquire script reads
/// every lease and floor (and the epoch record) to pick a free ID: in a
/// Redis Cluster they all live in one slot.
fn prefix(ns: &Namespace) -> String {
    ns.key(&format!("worker:{}:", tag(ns.name())))
}

/// `<ns>:worker:{<ns>}:<id>`: the lease (string, JSON holder, PX ttl).
pub fn lease_key(ns: &Namespace, id: u8) -> String {
    format!("{}{id}", prefix(ns))
}

/// `<ns>:worker:{<ns>}:<id>:last_ts`: the highest unix second any holder of
/// the ID may have issued (string, decimal, no TTL).
pub fn last_ts_key(ns: &Namespace, id: u8) -> String {
    format!("{}{id}:last_ts", prefix(ns))
}

/// `<ns>:worker:{<ns>}:epoch`: which Redis master the leases were last
/// acquired on (hash: `replid`, `since`, `ttl_ms`); written only with a
/// Sentinel URL. See the quarantine in `docs/snowflake.md`.
pub fn epoch_key(ns: &Namespace) -> String {
    format!("{}epoch", prefix(ns))
}

/// `<ns>:worker:{<ns>}:*`: every worker-ID key, to name them all in a
/// message.
pub fn worker_keys_pattern(ns: &Namespace) -> String {
    format!("{}*", prefix(ns))
}

/// All lease keys, then all `last_ts` keys (IDs 0..31), then the epoch key:
/// the acquire script's KEYS.
pub(crate) fn all_keys(ns: &Namespace) -> Vec<String> {
    let ids = 0..WORKER_IDS;
    ids.clone()
        .map(|id| lease_key(ns, id))
        .chain(ids.map(|id| last_ts_key(ns, id)))
        .chain(std::iter::once(epoch_key(ns)))
        .collect()
}

/// Pick the free ID whose `last_ts` is oldest (never used first, then least
/// recently used, then lowest ID) so that a new holder rarely has to wait
/// for its clock to pass `last_ts`. A free ID whose `last_ts` is not a
/// number is skipped (its history is unknown).
///
/// Quarantine (only when ARGV[4], the master's replication ID as the client
/// read it, is not empty: Sentinel mode): the epoch key records the
/// replication ID, the Redis `TIME` second it was first seen (`since`) and
/// the largest lease TTL used on it. When the ID differs from the record (a
/// new master, or a Redis restarted empty) the record is started again at
/// the current second, keeping the largest TTL. The floor returned is then
/// at least `since + ceil(ttl_ms / 1000) + skew`: every holder that issued
/// under an older master has run past its cap by then.
///
/// Restart quarantine (one server or a Cluster without replicas, ARGV[4]
/// empty): a server restarted without its data has lost every floor, and
/// the holders of its previous run may still issue up to their caps, at
/// most `ceil(ttl)` seconds after their last renewal, which came before the
/// restart. So the floor is at least `start + ceil(ttl_ms / 1000) + skew`,
/// `start` = `TIME` second minus `uptime_in_seconds` (`INFO server`): a
/// server up for longer than that costs nothing (a user refused `INFO`
/// gets no restart quarantine).
///
/// KEYS: n lease keys, then their n `last_ts` keys, then the epoch key.
/// ARGV: holder value, ttl ms, cap (unix s) this holder wants persisted,
/// replication ID (`""`: the restart quarantine instead), skew allowance (s).
/// Reply: `{id, floor, last_ts now}` (the floor is `last_ts` before, raised
/// to the quarantine's end), or `{-1, v_0 … v_n-1}` with each lease key's
/// value (`""` when free, `"!wrongtype"` when unreadable).
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = (#KEYS - 1) / 2
local min_floor = 0
if ARGV[4] ~= nil and ARGV[4] ~= '' then
  local epoch = KEYS[#KEYS]
  local now = tonumber(redis.call('TIME')[1])
  local ttl_ms = tonumber(ARGV[2])
  local rec = redis.pcall('HMGET', epoch, 'replid', 'since', 'ttl_ms')
  local since = now
  if type(rec) == 'table' then
    local known = tonumber(rec[3])
    if known ~= nil and known > ttl_ms then ttl_ms = known end
    if rec[1] == ARGV[4] and tonumber(rec[2]) ~= nil then since = tonumber(rec[2]) end
  else
    redis.call('DEL', epoch)
  end
  redis.call('HSET', epoch, 'replid', ARGV[4], 'since', string.format('%d', since),
    'ttl_ms', string.format('%d', ttl_ms))
  min_floor = since + math.ceil(ttl_ms / 1000) + tonumber(ARGV[5])
else
  local info = redis.pcall('INFO', 'server')
  local up = nil
  if type(info) == 'string' then up = string.match(info, 'uptime_in_seconds:(%d+)') end
  if up ~= nil then
    local now = tonumber(redis.call('TIME')[1])
    min_floor = now - tonumber(up) + math.ceil(tonumber(ARGV[2]) / 1000) + tonumber(ARGV[5])
  end
end
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
local floor = best_ts
if min_floor > floor then floor = min_floor end
return {best - 1, floor, cap}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::hash_tag::key_slot;

    #[test]
    fn every_worker_id_key_of_a_namespace_is_in_one_slot() {
        let ns = Namespace::new("clusterops").unwrap();
        assert_eq!(lease_key(&ns, 7), "clusterops:worker:{clusterops}:7");
        assert_eq!(
            last_ts_key(&ns, 7),
            "clusterops:worker:{clusterops}:7:last_ts"
        );
        assert_eq!(epoch_key(&ns), "clusterops:worker:{clusterops}:epoch");
        assert_eq!(worker_keys_pattern(&ns), "clusterops:worker:{clusterops}:*");
        // The acquire script's KEYS.
        let keys = all_keys(&ns);
        assert_eq!(keys.len(), 2 * usize::from(WORKER_IDS) + 1);
        let slot = key_slot(b"clusterops");
        assert!(keys.iter().all(|k| key_slot(k.as_bytes()) == slot));
    }
}
