//! Cleaning up after dead nodes on the Redis queue (run by the node's
//! janitor, `node::janitor`): consumers that a killed node left in a queue's
//! group are deleted once they own nothing and have been idle long enough,
//! and each queue stream is trimmed below the oldest entry its groups still
//! need. Both are Lua scripts on the queue's one key (one slot of a Redis
//! Cluster), so the check and the write are atomic: an entry delivered to a
//! consumer between the read and the delete is never dropped.
//!
//! Which nodes are alive is the caller's business (the node registry): this
//! module only sees consumer names (`{node_id}-{n}`, see
//! [`consumer_node`]).

use super::QueueError;
use super::redis::redis_err;
use super::redis_entries::{GROUP, Keys};
use super::redis_stats::read_queue_stats;
use crate::config::Namespace;
use redis::Script;
use redis::aio::ConnectionLike;
use serde::Serialize;
use std::sync::LazyLock;
use std::time::Duration;

/// Delete consumer `ARGV[2]` of group `ARGV[1]` only if it has nothing
/// pending and has been idle at least `ARGV[3]` ms (both read here, in the
/// script): 1 deleted, 0 kept (pending, active again, or gone).
static DELETE_IDLE_CONSUMER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return 0 end
for _, c in ipairs(consumers) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1]
    elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1] end
  end
  if name == ARGV[2] then
    if pending == 0 and idle >= tonumber(ARGV[3]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
      return 1
    end
    return 0
  end
end
return 0
",
    )
});

/// Trim the queue stream below the oldest entry some group still needs:
/// for each group, its oldest pending entry, or else the first entry after
/// its last-delivered ID. Nothing is trimmed without a group (every entry
/// then waits for its first consumer). Returns the entries removed.
static TRIM_DELIVERED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('TYPE', KEYS[1])['ok'] ~= 'stream' then return 0 end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local best_ms, best_seq
local function consider(id)
  local m, s = string.match(id, '^(%d+)%-(%d+)$')
  if not m then return end
  m, s = tonumber(m), tonumber(s)
  if best_ms == nil or m < best_ms or (m == best_ms and s < best_seq) then
    best_ms, best_seq = m, s
  end
end
for _, g in ipairs(groups) do
  local name, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1]
    elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  if name == nil or last == nil then return 0 end
  local p = redis.call('XPENDING', KEYS[1], name)
  if p[1] > 0 and p[2] then consider(p[2]) end
  local m, s = string.match(last, '^(%d+)%-(%d+)$')
  if not m then return 0 end
  consider(m .. '-' .. (tonumber(s) + 1))
end
if best_ms == nil then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', best_ms, best_seq))
",
    )
});

/// The node a consumer belongs to: its name without the `-{n}` suffix
/// (`app-2-0` → `app-2`); a name without a numeric suffix is its own node.
pub fn consumer_node(consumer: &str) -> &str {
    match consumer.rsplit_once('-') {
        Some((node, n)) if !node.is_empty() && !n.is_empty() => {
            if n.bytes().all(|b| b.is_ascii_digit()) {
                node
            } else {
                consumer
            }
        }
        _ => consumer,
    }
}

/// A consumer the sweep deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedConsumer {
    /// The queue.
    pub queue: String,
    /// The consumer name.
    pub consumer: String,
    /// How long it had been idle when it was read.
    pub idle_ms: u64,
}

/// What one sweep of the queues did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueSweep {
    /// Queues looked at.
    pub queues: usize,
    /// Consumers deleted.
    pub removed: Vec<RemovedConsumer>,
    /// Consumers of dead nodes kept because they still own pending entries
    /// (reclaimed by live consumers after the visibility timeout, then
    /// deleted by a later sweep).
    pub kept_pending: usize,
    /// Stream entries trimmed (acknowledged entries left in a stream, e.g.
    /// by a consumer deleted with entries pending).
    pub trimmed: u64,
}

/// Sweep every queue under `ns`: delete the consumers whose node is not
/// alive (`alive(node_id)` false), that have nothing pending and that have
/// been idle at least `idle`; then trim each stream below the oldest entry
/// its groups need. A queue whose keys are unreadable is skipped.
pub async fn sweep_queues<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    alive: &(dyn Fn(&str) -> bool + Sync),
    idle: Duration,
) -> Result<QueueSweep, QueueError> {
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    let mut sweep = QueueSweep::default();
    for stats in read_queue_stats(conn, ns).await? {
        if stats.unreadable.is_some() {
            continue;
        }
        sweep.queues += 1;
        let keys = Keys::new(ns, &stats.queue);
        for c in &stats.consumer_details {
            if alive(consumer_node(&c.name)) || c.idle_ms < idle_ms {
                continue;
            }
            if c.pending > 0 {
                sweep.kept_pending += 1;
                continue;
            }
            let deleted: i64 = DELETE_IDLE_CONSUMER
                .key(&keys.stream)
                .arg(GROUP)
                .arg(&c.name)
                .arg(idle_ms)
                .invoke_async(conn)
                .await
                .map_err(redis_err("EVALSHA delete idle consumer", &keys.stream))?;
            if deleted == 1 {
                sweep.removed.push(RemovedConsumer {
                    queue: stats.queue.clone(),
                    consumer: c.name.clone(),
                    idle_ms: c.idle_ms,
                });
            }
        }
        let trimmed: u64 = TRIM_DELIVERED
            .key(&keys.stream)
            .invoke_async(conn)
            .await
            .map_err(redis_err("EVALSHA trim delivered", &keys.stream))?;
        sweep.trimmed += trimmed;
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::consumer_node;

    #[test]
    fn consumer_names_map_to_their_node() {
        assert_eq!(consumer_node("app-2-0"), "app-2");
        assert_eq!(consumer_node("n1-13"), "n1");
        assert_eq!(consumer_node("solo"), "solo");
        assert_eq!(consumer_node("web-a"), "web-a");
        assert_eq!(consumer_node("-3"), "-3");
        assert_eq!(consumer_node("x-"), "x-");
    }
}
