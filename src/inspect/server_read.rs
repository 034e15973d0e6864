//! One Redis server's part of a snapshot, in two requests when its
//! database holds at most [`SCAN_COUNT`] keys: a pipeline of the fixed keys
//! (the 32 leases, `INFO`) with the first `SCAN` of the keys that must be
//! discovered (locks, streams, queues), then one pipeline of every per-key
//! read. A larger database costs one more `SCAN` per [`SCAN_COUNT`] keys.
//! The keys the caller's last read found go into the first pipeline too, so
//! the second one reads only what changed, and is not sent when nothing did.
//! The node registry and the maintenance flag are read by
//! [`read_registry`], two more requests, concurrently, so the nodes' health
//! checks overlap the big pipeline. The commands and the parsing are the
//! adapters' own read halves; only read commands are sent.

use super::servers;
use crate::adapters::lock::{LockInspection, LockReads};
use crate::adapters::pubsub::{StreamInfo, StreamReads};
use crate::adapters::queue::{QueueReads, QueueStats};
use crate::adapters::worker_id::{self, LeaseSlot};
use crate::config::Namespace;
use crate::node::maintenance::{self, MaintenanceRead};
use crate::node::registry::{Registry, RegistryEntry};
use redis::Value;
use redis::aio::ConnectionLike;
use std::collections::{BTreeSet, HashSet};
use std::ops::Range;
use std::time::Duration;

/// `COUNT` of each `SCAN`: a database of up to this many keys is scanned
/// in one request. It bounds how long one `SCAN` holds the server: Redis
/// 7.0 visits this many keys per call whatever the pattern (measured on a
/// loaded 2-core machine: 10–40 ms for 20,000 keys; see docs/redis-keys.md).
pub const SCAN_COUNT: u64 = 10_000;

/// What one server holds for this cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct Roles {
    /// The worker-ID leases.
    pub leases: bool,
    /// The Redis locks.
    pub locks: bool,
    /// The sync-signal streams.
    pub streams: bool,
    /// The Redis queues.
    pub queues: bool,
}

impl Roles {
    /// The key families found by SCAN (their first path segment).
    fn scanned(&self) -> Vec<&'static str> {
        [
            (self.locks, "lock:"),
            (self.streams, "signal:"),
            (self.queues, "queue:"),
        ]
        .into_iter()
        .filter_map(|(on, family)| on.then_some(family))
        .collect()
    }
}

/// One role's result: `None` when the server does not have that role.
pub type Part<T> = Option<Result<T, String>>;

/// What was read from one server.
#[derive(Debug, Default)]
pub struct ServerRead {
    /// The `INFO` text.
    pub info: Option<Result<String, String>>,
    /// The 32 worker-ID slots.
    pub leases: Part<Vec<LeaseSlot>>,
    /// Held locks and unreadable lock keys.
    pub locks: Part<LockInspection>,
    /// Sync-signal streams.
    pub streams: Part<Vec<StreamInfo>>,
    /// Redis queues.
    pub queues: Part<Vec<QueueStats>>,
    /// What the SCAN found (pass it as `known` to the next read).
    pub keys: Vec<Vec<u8>>,
}

/// The SCAN pattern covering `families` (`lock:`, `signal:`, `queue:`): one
/// character class per position over their first five characters, e.g.
/// `{ns}:[lqs][iou][ceg][knu][:ae]*` for all three, which leaves out
/// `{ns}:lock-fence:*` (one family alone: `{ns}:lock:*`). Keys it matches
/// outside the families are ignored by the reads.
fn scan_pattern(ns: &Namespace, families: &[&str]) -> String {
    if let [one] = families {
        return ns.pattern(&format!("{one}*"));
    }
    let mut glob = String::new();
    for i in 0..5 {
        let mut class: Vec<char> = families.iter().filter_map(|f| f.chars().nth(i)).collect();
        class.sort_unstable();
        class.dedup();
        match class.as_slice() {
            [one] => glob.push(*one),
            many => {
                glob.push('[');
                glob.extend(many);
                glob.push(']');
            }
        }
    }
    glob.push('*');
    ns.pattern(&glob)
}

fn add_scan(pipe: &mut redis::Pipeline, cursor: &[u8], pattern: &str) {
    pipe.cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
}

/// `(next cursor, keys)` of a SCAN reply; the cursor is kept as the bytes
/// Redis sent (it is only ever sent back).
fn parse_scan(reply: &Value) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let Value::Array(parts) = reply else {
        return Err(match reply {
            Value::ServerError(e) => {
                format!("SCAN failed: {} {}", e.code(), e.details().unwrap_or(""))
            }
            other => format!("SCAN: unexpected reply {other:?}"),
        });
    };
    let (Some(Value::BulkString(cursor)), Some(Value::Array(keys))) = (parts.first(), parts.get(1))
    else {
        return Err("SCAN: reply is not [cursor, keys]".to_string());
    };
    let keys = keys
        .iter()
        .filter_map(|k| match k {
            Value::BulkString(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    Ok((cursor.clone(), keys))
}

/// `server_time_usec` of an `INFO` text, in milliseconds.
fn server_time_ms(info: &str) -> Option<u64> {
    servers::parse_info(info)
        .get("server_time_usec")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|us| us / 1000)
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

/// Append with `add` and return the range of replies it will take.
fn slot(pipe: &mut redis::Pipeline, add: impl FnOnce(&mut redis::Pipeline)) -> Range<usize> {
    let start = pipe.len();
    add(pipe);
    start..pipe.len()
}

/// Read everything `roles` says this server holds, for namespace `ns`.
/// `Err` only when the server cannot be read at all (down, timeout); a
/// failing command or a garbage key is kept to its own role or entry.
pub async fn read<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    roles: Roles,
    known: &[Vec<u8>],
) -> Result<ServerRead, String> {
    let families = roles.scanned();
    let pattern = scan_pattern(ns, &families);

    // Request 1: the fixed keys, INFO and the first SCAN.
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let info_at = slot(&mut pipe, |p| {
        p.cmd("INFO");
    });
    let leases_at = roles
        .leases
        .then(|| slot(&mut pipe, |p| worker_id::add_lease_reads(p, ns)));
    let scan_at = (!families.is_empty()).then(|| slot(&mut pipe, |p| add_scan(p, b"0", &pattern)));
    // The keys the last snapshot found, read now beside the SCAN: when the
    // SCAN finds the same keys, no second request is needed for them.
    let known_slices = || known.iter().map(Vec::as_slice);
    let pre_locks = roles
        .locks
        .then(|| LockReads::from_keys(ns, known_slices()));
    let pre_locks_at = pre_locks.as_ref().map(|r| slot(&mut pipe, |p| r.add_to(p)));
    let pre_streams = roles
        .streams
        .then(|| StreamReads::from_keys(ns, known_slices()));
    let pre_streams_at = pre_streams
        .as_ref()
        .map(|r| slot(&mut pipe, |p| r.add_to(p)));
    let pre_queues = roles
        .queues
        .then(|| QueueReads::from_keys(ns, known_slices()));
    let pre_queues_at = pre_queues
        .as_ref()
        .map(|r| slot(&mut pipe, |p| r.add_to(p)));
    let first = run(conn, &pipe).await?;

    let mut out = ServerRead::default();
    let info = match &first[info_at.start] {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::VerbatimString { text, .. } => Ok(text.clone()),
        Value::ServerError(e) => Err(format!("{} {}", e.code(), e.details().unwrap_or(""))),
        other => Err(format!("INFO: unexpected reply {other:?}")),
    };
    let now_ms = info.as_deref().ok().and_then(server_time_ms);
    out.info = Some(info);
    if let Some(r) = leases_at {
        out.leases = Some(worker_id::parse_leases(ns, &first[r]).map_err(|e| e.to_string()));
    }

    // More SCAN only when the database holds more than SCAN_COUNT keys.
    let keys: Option<Result<Vec<Vec<u8>>, String>> = match scan_at {
        None => None,
        Some(r) => Some(match parse_scan(&first[r.start]) {
            Err(e) => Err(e),
            Ok((mut cursor, mut keys)) => {
                let mut failed = None;
                while cursor.as_slice() != b"0" {
                    let mut pipe = redis::pipe();
                    pipe.ignore_errors();
                    add_scan(&mut pipe, &cursor, &pattern);
                    match run(conn, &pipe).await.and_then(|r| parse_scan(&r[0])) {
                        Ok((next, more)) => {
                            cursor = next;
                            keys.extend(more);
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => Err(e),
                    None => Ok(keys),
                }
            }
        }),
    };

    // Request 2: the per-key reads of the keys the SCAN found and the
    // prefetch did not cover (none when nothing changed).
    let keys = match keys {
        None => return Ok(out),
        Some(Ok(keys)) => keys,
        Some(Err(e)) => {
            out.locks = roles.locks.then(|| Err(e.clone()));
            out.streams = roles.streams.then(|| Err(e.clone()));
            out.queues = roles.queues.then_some(Err(e));
            return Ok(out);
        }
    };
    let same = |family: &str| {
        let prefix = ns.key(family);
        let pick = |ks: &[Vec<u8>]| -> BTreeSet<Vec<u8>> {
            ks.iter()
                .filter(|k| k.starts_with(prefix.as_bytes()))
                .cloned()
                .collect()
        };
        pick(&keys) == pick(known)
    };
    let slices = || keys.iter().map(Vec::as_slice);
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    // Locks: only the new keys; the prefetched ones still there are kept.
    let lock_reads = pre_locks.map(|pre| {
        let now = LockReads::from_keys(ns, slices());
        if now.keys() == pre.keys() {
            // The usual case: the same locks as last time, all read already.
            return (pre, None);
        }
        let before: HashSet<&[u8]> = pre.keys().iter().map(Vec::as_slice).collect();
        let new = now.only(|k| !before.contains(k));
        let at = slot(&mut pipe, |p| new.add_to(p));
        let still: HashSet<String> = now
            .keys()
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        (pre, Some((new, at, still)))
    });
    let stream_reads = pre_streams.map(|pre| {
        if same("signal:") {
            (pre, None)
        } else {
            let now = StreamReads::from_keys(ns, slices());
            let at = slot(&mut pipe, |p| now.add_to(p));
            (now, Some(at))
        }
    });
    let queue_reads = pre_queues.map(|pre| {
        if same("queue:") {
            (pre, None)
        } else {
            let now = QueueReads::from_keys(ns, slices());
            let at = slot(&mut pipe, |p| now.add_to(p));
            (now, Some(at))
        }
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
    let pre_part = |at: &Option<Range<usize>>| -> &[Value] {
        at.as_ref()
            .and_then(|r| first.get(r.clone()))
            .unwrap_or(&[])
    };
    out.locks = lock_reads.map(|(pre, changed)| {
        let mut found = pre.parse(pre_part(&pre_locks_at));
        let Some((new, at, still)) = changed else {
            return Ok(found);
        };
        let prefix = ns.key("lock:");
        found
            .holders
            .retain(|h| still.contains(&format!("{prefix}{}", h.name)));
        found.unreadable.retain(|u| still.contains(&u.key));
        let added = new.parse(part(&at)?);
        found.holders.extend(added.holders);
        found.unreadable.extend(added.unreadable);
        found.holders.sort_by(|a, b| a.name.cmp(&b.name));
        found.unreadable.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    });
    let clock = crate::node::shared::now_ms();
    out.streams = stream_reads.map(|(reads, at)| match at {
        None => Ok(reads.parse(pre_part(&pre_streams_at), clock)),
        Some(at) => Ok(reads.parse(part(&at)?, clock)),
    });
    out.queues = queue_reads.map(|(reads, at)| match at {
        None => Ok(reads.parse(pre_part(&pre_queues_at), now_ms)),
        Some(at) => Ok(reads.parse(part(&at)?, now_ms)),
    });
    out.keys = keys;
    Ok(out)
}

/// The node registry and the maintenance flag, on their own so the nodes'
/// health checks can start while the other reads are still running: one
/// pipeline (`ZRANGE {ns}:nodes`, `GET {ns}:maintenance`, and `GET` +
/// `PTTL` of the records of `known_ids`, the nodes of the last snapshot),
/// then, only when the index names other nodes, one of their records.
/// `Err` only when the server cannot be read.
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
    // The records of the nodes the last snapshot saw, read now: when the
    // index names the same nodes, no second request is needed.
    registry.add_record_reads(&mut pipe, known_ids);
    let first = run(conn, &pipe).await?;
    let flag = maintenance::parse(&maintenance::key(ns), &first[1]);
    let ids = match registry.parse_index(&first[0]) {
        Ok(ids) => ids,
        Err(e) => return Ok((Err(format!("registry index {e}")), flag, Vec::new())),
    };
    if ids.as_slice() == known_ids {
        let entries = registry.parse_records(&ids, &first[2..]);
        return Ok((Ok(entries), flag, ids));
    }
    if ids.is_empty() {
        return Ok((Ok(Vec::new()), flag, ids));
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    registry.add_record_reads(&mut pipe, &ids);
    let replies = run(conn, &pipe).await?;
    Ok((Ok(registry.parse_records(&ids, &replies)), flag, ids))
}

/// What [`read_registry`] found: the entries (`Err`: a bad index), the
/// maintenance flag, and the node ids (pass them to the next read).
pub type RegistryRead = (
    Result<Vec<RegistryEntry>, String>,
    MaintenanceRead,
    Vec<String>,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_pattern_covers_exactly_the_families_on_the_server() {
        let ns = Namespace::new("c1").unwrap();
        assert_eq!(scan_pattern(&ns, &["lock:"]), "c1:lock:*");
        assert_eq!(scan_pattern(&ns, &["signal:"]), "c1:signal:*");
        assert_eq!(
            scan_pattern(&ns, &["lock:", "queue:"]),
            "c1:[lq][ou][ce][ku][:e]*"
        );
        assert_eq!(
            scan_pattern(&ns, &["lock:", "signal:", "queue:"]),
            "c1:[lqs][iou][ceg][knu][:ae]*"
        );
    }

    #[test]
    fn a_scan_reply_that_is_not_cursor_and_keys_is_an_error_not_a_panic() {
        let ok = Value::Array(vec![
            Value::BulkString(b"17".to_vec()),
            Value::Array(vec![Value::BulkString(b"c1:lock:a".to_vec())]),
        ]);
        assert_eq!(
            parse_scan(&ok).unwrap(),
            (b"17".to_vec(), vec![b"c1:lock:a".to_vec()])
        );
        let denied = redis::parse_redis_value(b"-NOPERM no permissions\r\n").unwrap();
        assert!(parse_scan(&denied).unwrap_err().contains("NOPERM"));
        assert!(parse_scan(&Value::Nil).is_err());
        assert!(parse_scan(&Value::Array(vec![Value::Int(0)])).is_err());
    }

    #[test]
    fn the_server_clock_comes_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nserver_time_usec:1700000000123456\r\n";
        assert_eq!(server_time_ms(info), Some(1_700_000_000_123));
        assert_eq!(server_time_ms("redis_version:7.0.15\r\n"), None);
    }
}
