//! One Redis server's part of a snapshot, in two requests when its
//! database holds at most [`SCAN_COUNT`] keys: a pipeline of the fixed keys
//! (the 32 leases, `INFO`) with the first `SCAN` of the keys that must be
//! discovered (locks, streams, queues), then one pipeline of every per-key
//! read. A larger database costs one more `SCAN` per [`SCAN_COUNT`] keys.
//! The keys the caller's last read found go into the first pipeline too, so
//! the second one reads only what changed, and is not sent when nothing did;
//! that first pipeline is kept between reads ([`Prepared`]) and rebuilt only
//! when the keys change.
//! The node registry and the maintenance flag are read by
//! [`read_registry`], two more requests, concurrently, so the nodes' health
//! checks overlap the big pipeline. The commands and the parsing are the
//! adapters' own read halves; only read commands are sent.

use super::plan::{Prepared, add_scan, parse_scan, slot};
use crate::adapters::lock::{self, LockInspection, LockReads};
use crate::adapters::pubsub::keys::SIGNAL_FAMILY;
use crate::adapters::pubsub::{StreamInfo, StreamReads};
use crate::adapters::queue::{QUEUE_FAMILY, QueueReads, QueueStats};
use crate::adapters::worker_id::{self, LeaseSlot};
use crate::config::Namespace;
use crate::node::clock::ClockOffset;
use crate::node::maintenance::{self, MaintenanceRead};
use crate::node::registry::{Registry, RegistryEntry};
use redis::Value;
use redis::aio::ConnectionLike;
use std::collections::{BTreeSet, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

pub use super::plan::Roles;

/// `COUNT` of each `SCAN`: a database of up to this many keys is scanned
/// in one request. It bounds how long one `SCAN` holds the server: Redis
/// 7.0 visits this many keys per call whatever the pattern (measured on a
/// loaded 2-core machine: 10–40 ms for 20,000 keys; see docs/redis-keys.md).
pub const SCAN_COUNT: u64 = 10_000;

/// One role's result: `None` when the server does not have that role.
pub type Part<T> = Option<Result<T, String>>;

/// What was read from one server.
#[derive(Debug, Default)]
pub struct ServerRead {
    /// The `INFO` text.
    pub info: Option<Result<String, String>>,
    /// The RDB save points (`CONFIG GET save`), on a server that holds the
    /// locks or the worker-ID leases; `Err` when refused or renamed.
    pub config_save: Option<Result<String, String>>,
    /// The 32 worker-ID slots.
    pub leases: Part<Vec<LeaseSlot>>,
    /// Held locks and unreadable lock keys.
    pub locks: Part<LockInspection>,
    /// Sync-signal streams.
    pub streams: Part<Vec<StreamInfo>>,
    /// Redis queues.
    pub queues: Part<Vec<QueueStats>>,
    /// The first request for the next read (pass it to [`read`]); `None`
    /// when the SCAN failed, so the next read starts afresh.
    pub next: Option<Arc<Prepared>>,
    /// The `CLUSTER INFO` text, on a master of a Redis Cluster
    /// ([`Target::cluster_node`]).
    pub cluster_info: Option<Result<String, String>>,
}

/// `server_time_usec` of an `INFO` text, in milliseconds.
fn server_time_ms(info: &str) -> Option<u64> {
    server_time_us(info).map(|us| us / 1000)
}

/// `server_time_usec` of an `INFO` text.
fn server_time_us(info: &str) -> Option<u64> {
    info.lines()
        .find_map(|line| line.strip_prefix("server_time_usec:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
}

async fn run<C: ConnectionLike + Send>(
    conn: &mut C,
    pipe: &redis::Pipeline,
) -> Result<Vec<Value>, String> {
    let replies: Vec<Value> = pipe.query_async(conn).await.map_err(|e| e.to_string())?;
    if replies.len() != pipe.len() {
        return Err(format!(
            "Redis answered {} replies to {} commands",
            replies.len(),
            pipe.len()
        ));
    }
    Ok(replies)
}

/// The keys of a first SCAN reply and of the SCANs that follow it (one per
/// [`SCAN_COUNT`] keys beyond the first).
async fn scan_rest<C: ConnectionLike + Send>(
    conn: &mut C,
    first: &Value,
    pattern: &str,
) -> Result<Vec<Vec<u8>>, String> {
    let (mut cursor, mut keys) = parse_scan(first)?;
    while cursor.as_slice() != b"0" {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        add_scan(&mut pipe, &cursor, pattern);
        let (next, more) = run(conn, &pipe).await.and_then(|r| parse_scan(&r[0]))?;
        cursor = next;
        keys.extend(more);
    }
    Ok(keys)
}

/// Which server a read is for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The cluster's namespace.
    pub ns: &'a Namespace,
    /// What this server holds.
    pub roles: Roles,
    /// One master of a Redis Cluster, over a connection to that node
    /// alone: its SCAN finds its own keys, which are read there; the first
    /// request also asks `CLUSTER INFO` ([`ServerRead::cluster_info`]).
    pub cluster_node: bool,
}

/// A text reply (`INFO`, `CLUSTER INFO`), or why not.
fn text_reply(what: &str, reply: &Value) -> Result<String, String> {
    match reply {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::VerbatimString { text, .. } => Ok(text.clone()),
        Value::ServerError(e) => Err(format!("{} {}", e.code(), e.details().unwrap_or(""))),
        other => Err(format!("{what}: unexpected reply {other:?}")),
    }
}

/// Read everything `target` says this server holds, starting with
/// `prepared` (the last read's [`ServerRead::next`]; `None` on a first
/// read). `Err` only when the server cannot be read at all (down, timeout);
/// a failing command or a garbage key is kept to its own role or entry.
pub async fn read<C: ConnectionLike + Send>(
    conn: &mut C,
    target: Target<'_>,
    prepared: Option<Arc<Prepared>>,
) -> Result<ServerRead, String> {
    let mut out = read_parts(conn, target, prepared).await?;
    // A lagging reader's lag as time: one more request, only when one lags.
    if let Some(Ok(streams)) = &mut out.streams {
        let now = (out.info.as_ref())
            .and_then(|i| i.as_deref().ok())
            .and_then(server_time_ms)
            .unwrap_or_else(crate::clock::now_ms);
        crate::adapters::pubsub::add_oldest_unhandled(conn, streams, now).await;
    }
    Ok(out)
}

async fn read_parts<C: ConnectionLike + Send>(
    conn: &mut C,
    target: Target<'_>,
    prepared: Option<Arc<Prepared>>,
) -> Result<ServerRead, String> {
    let Target {
        ns,
        roles,
        cluster_node,
    } = target;
    let fresh = |keys: Vec<Vec<u8>>| {
        let plan = Prepared::new(ns, roles, keys);
        if cluster_node {
            plan.with_cluster_info()
        } else {
            plan
        }
    };
    let plan = match prepared {
        Some(plan) if plan.fits(ns, roles) && plan.cluster_info_at.is_some() == cluster_node => {
            plan
        }
        _ => Arc::new(fresh(Vec::new())),
    };
    // Request 1: the fixed keys, INFO, the first SCAN and the known keys.
    let first = run(conn, &plan.pipe).await?;
    let mut out = ServerRead::default();
    let info = text_reply("INFO", &first[plan.info_at]);
    let now_ms = info.as_deref().ok().and_then(server_time_ms);
    out.info = Some(info);
    out.config_save = plan
        .config_save_at
        .map(|at| super::persistence::parse_config_save(&first[at]));
    out.cluster_info = plan
        .cluster_info_at
        .map(|at| text_reply("CLUSTER INFO", &first[at]));
    if let Some(r) = &plan.leases_at {
        out.leases =
            Some(worker_id::parse_leases(ns, &first[r.clone()]).map_err(|e| e.to_string()));
    }
    let Some(scan_at) = plan.scan_at else {
        out.next = Some(plan);
        return Ok(out);
    };
    let keys = match scan_rest(conn, &first[scan_at], &plan.pattern).await {
        Ok(keys) => keys,
        Err(e) => {
            out.locks = roles.locks.then(|| Err(e.clone()));
            out.streams = roles.streams.then(|| Err(e.clone()));
            out.queues = roles.queues.then_some(Err(e));
            return Ok(out);
        }
    };
    let clock = crate::clock::now_ms();
    let pre = |at: &Range<usize>| -> &[Value] { first.get(at.clone()).unwrap_or(&[]) };
    if keys == plan.keys {
        // The usual case: the same keys as last time, all read already.
        out.locks = plan.locks.as_ref().map(|l| Ok(l.reads.parse(pre(&l.at))));
        out.streams = (plan.streams.as_ref()).map(|s| Ok(s.reads.parse(pre(&s.at), clock)));
        out.queues = (plan.queues.as_ref()).map(|q| Ok(q.reads.parse(pre(&q.at), now_ms)));
        out.next = Some(plan);
        return Ok(out);
    }

    // Request 2: the per-key reads of the keys the SCAN found and the
    // first request did not cover.
    let same = |family: &str| {
        let prefix = ns.key(family);
        let pick = |ks: &[Vec<u8>]| -> BTreeSet<Vec<u8>> {
            ks.iter()
                .filter(|k| k.starts_with(prefix.as_bytes()))
                .cloned()
                .collect()
        };
        pick(&keys) == pick(&plan.keys)
    };
    let slices = || keys.iter().map(Vec::as_slice);
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    // Locks: only the new keys; the ones read in request 1 still there are kept.
    let new_locks = plan.locks.as_ref().map(|pre| {
        let now = LockReads::from_keys(ns, slices());
        if now.keys() == pre.reads.keys() {
            return None;
        }
        let before: HashSet<&[u8]> = pre.reads.keys().iter().map(Vec::as_slice).collect();
        let new = now.only(|k| !before.contains(k));
        let at = slot(&mut pipe, |p| new.add_to(p));
        let still: HashSet<String> = now
            .keys()
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        Some((new, at, still))
    });
    let new_streams = plan.streams.as_ref().map(|_| {
        (!same(SIGNAL_FAMILY)).then(|| {
            let now = StreamReads::from_keys(ns, slices());
            let at = slot(&mut pipe, |p| now.add_to(p));
            (now, at)
        })
    });
    let new_queues = plan.queues.as_ref().map(|_| {
        (!same(QUEUE_FAMILY)).then(|| {
            let now = QueueReads::from_keys(ns, slices());
            let at = slot(&mut pipe, |p| now.add_to(p));
            (now, at)
        })
    });
    let second = if pipe.is_empty() {
        Ok(Vec::new())
    } else {
        run(conn, &pipe).await
    };
    let part = |at: &Range<usize>| -> Result<&[Value], String> {
        match &second {
            Ok(replies) => Ok(replies.get(at.clone()).unwrap_or(&[])),
            Err(e) => Err(e.clone()),
        }
    };
    out.locks = plan
        .locks
        .as_ref()
        .zip(new_locks)
        .map(|(pre_locks, changed)| {
            let mut found = pre_locks.reads.parse(pre(&pre_locks.at));
            let Some((new, at, still)) = changed else {
                return Ok(found);
            };
            found
                .holders
                .retain(|h| still.contains(&lock::lock_key(ns, &h.name)));
            found.unreadable.retain(|u| still.contains(&u.key));
            let added = new.parse(part(&at)?);
            found.holders.extend(added.holders);
            found.unreadable.extend(added.unreadable);
            found.holders.sort_by(|a, b| a.name.cmp(&b.name));
            found.unreadable.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(found)
        });
    out.streams = plan
        .streams
        .as_ref()
        .zip(new_streams)
        .map(|(s, changed)| match changed {
            None => Ok(s.reads.parse(pre(&s.at), clock)),
            Some((now, at)) => Ok(now.parse(part(&at)?, clock)),
        });
    out.queues = plan
        .queues
        .as_ref()
        .zip(new_queues)
        .map(|(q, changed)| match changed {
            None => Ok(q.reads.parse(pre(&q.at), now_ms)),
            Some((now, at)) => Ok(now.parse(part(&at)?, now_ms)),
        });
    out.next = Some(Arc::new(fresh(keys)));
    Ok(out)
}

/// The node registry and the maintenance flag, on their own so the nodes'
/// health checks can start while the other reads are still running: one
/// pipeline (`ZRANGE <ns>:nodes:{<ns>}`, `GET <ns>:maintenance`, `INFO
/// server` for this host's clock against the server's, and `GET` + `PTTL`
/// of the records of `known_ids`, the nodes of the last snapshot), then,
/// only when the index names other nodes, one of their records. `Err` only
/// when the server cannot be read.
pub async fn read_registry<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    known_ids: &[String],
) -> Result<RegistryRead, String> {
    // The registry's TTL only matters to writers; readers take it from PTTL.
    let registry = Registry::new(ns.clone(), Duration::from_secs(6));
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    registry.add_index_read(&mut pipe);
    maintenance::add_read(&mut pipe, ns);
    // `INFO server` rather than `TIME`: a read-only ACL user (+@read +info)
    // may send it.
    pipe.cmd("INFO").arg("server");
    // The records of the nodes the last snapshot saw, read now: when the
    // index names the same nodes, no second request is needed.
    registry.add_record_reads(&mut pipe, known_ids);
    let sent = crate::clock::now_us();
    let started = std::time::Instant::now();
    let first = run(conn, &pipe).await?;
    let rtt = started.elapsed();
    let clock = text_reply("INFO", &first[2])
        .ok()
        .as_deref()
        .and_then(server_time_us)
        .map(|server| ClockOffset::from_round_trip(sent, rtt, server as i64));
    let flag = maintenance::parse(&maintenance::key(ns), &first[1]);
    let ids = match registry.parse_index(&first[0]) {
        Ok(ids) => ids,
        Err(e) => return Ok((Err(format!("registry index {e}")), flag, Vec::new(), clock)),
    };
    if ids.as_slice() == known_ids {
        let entries = registry.parse_records(&ids, &first[3..]);
        return Ok((Ok(entries), flag, ids, clock));
    }
    if ids.is_empty() {
        return Ok((Ok(Vec::new()), flag, ids, clock));
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    registry.add_record_reads(&mut pipe, &ids);
    let replies = run(conn, &pipe).await?;
    Ok((Ok(registry.parse_records(&ids, &replies)), flag, ids, clock))
}

/// What [`read_registry`] found: the entries (`Err`: a bad index), the
/// maintenance flag, the node ids (pass them to the next read), and this
/// host's clock against the server's (`None` when `INFO` did not say).
pub type RegistryRead = (
    Result<Vec<RegistryEntry>, String>,
    MaintenanceRead,
    Vec<String>,
    Option<ClockOffset>,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_clock_comes_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nserver_time_usec:1700000000123456\r\n";
        assert_eq!(server_time_ms(info), Some(1_700_000_000_123));
        assert_eq!(server_time_ms("redis_version:7.0.15\r\n"), None);
    }
}
