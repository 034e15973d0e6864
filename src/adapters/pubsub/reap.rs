//! Removing the cursors of dead readers (run by the node's janitor,
//! `node::janitor`). A cursor pins its channel's stream: the publish script
//! never trims past the slowest cursor (see `redis.rs`), so a node that
//! died for good would keep every later message in Redis for ever. A cursor
//! is removed when its node is not alive (the caller's registry says so)
//! and it has not been written for at least the idle threshold (`seen_ms`:
//! a live node rewrites even an unchanged cursor every
//! [`CURSOR_REFRESH`](super::redis::CURSOR_REFRESH)). The delete is a
//! compare-and-delete script on the one `:cursors` key (one slot of a
//! Redis Cluster): a cursor rewritten since it was read is kept.

use super::PubsubError;
use super::envelope::decode_cursor_seen;
use super::keys::{Role, cursors_pattern, parse_key};
use super::reply;
use crate::clock::now_ms;
use crate::config::Namespace;
use ::redis::aio::ConnectionLike;
use ::redis::{Script, Value};
use serde::Serialize;
use std::sync::LazyLock;
use std::time::Duration;

/// `HDEL KEYS[1] ARGV[1]` only if the field still holds `ARGV[2]`.
static DELETE_UNCHANGED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
",
    )
});

/// A cursor the sweep removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedCursor {
    /// The channel.
    pub channel: String,
    /// The node whose cursor it was.
    pub node: String,
    /// Milliseconds since the node last wrote it.
    pub unseen_ms: u64,
}

/// What one sweep of the cursors did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CursorSweep {
    /// `:cursors` hashes looked at.
    pub channels: usize,
    /// Cursors removed.
    pub removed: Vec<RemovedCursor>,
}

/// Remove, in every channel under `ns`, the cursors of nodes that are not
/// alive (`alive(node_id)` false) and that were last written at least
/// `idle` ago. Unreadable cursor values are left alone (the inspector
/// reports them).
pub async fn sweep_cursors<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    alive: &(dyn Fn(&str) -> bool + Sync),
    idle: Duration,
) -> Result<CursorSweep, PubsubError> {
    let pattern = cursors_pattern(ns);
    let keys = super::inspect::scan(conn, &pattern).await?;
    let mut sweep = CursorSweep::default();
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    for raw_key in keys {
        let key = String::from_utf8_lossy(&raw_key).into_owned();
        let Ok((channel, Role::Cursors)) = parse_key(ns, &key) else {
            continue;
        };
        let value: Value = ::redis::cmd("HGETALL")
            .arg(&key)
            .query_async(conn)
            .await
            .map_err(|source| PubsubError::Redis {
                key: key.clone(),
                source,
            })?;
        let Some(fields) = reply::pairs(&value) else {
            continue;
        };
        sweep.channels += 1;
        let now = now_ms();
        for (field, raw) in fields {
            let node = String::from_utf8_lossy(field).into_owned();
            let Ok((_, _, seen)) = decode_cursor_seen(raw) else {
                continue;
            };
            let unseen_ms = now.saturating_sub(seen);
            if alive(&node) || unseen_ms < idle_ms {
                continue;
            }
            let removed: i64 = DELETE_UNCHANGED
                .key(&key)
                .arg(field)
                .arg(raw)
                .invoke_async(conn)
                .await
                .map_err(|source| PubsubError::Redis {
                    key: key.clone(),
                    source,
                })?;
            if removed == 1 {
                sweep.removed.push(RemovedCursor {
                    channel: channel.to_string(),
                    node,
                    unseen_ms,
                });
            }
        }
    }
    Ok(sweep)
}
