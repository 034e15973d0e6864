//! The first request of one Redis server's read, prepared once for the keys
//! the last SCAN found and re-sent unchanged while the SCAN keeps finding
//! the same keys: `INFO`, the 32 worker-ID leases, the first `SCAN` of the
//! discovered families (locks, streams, queues), and the per-key reads of
//! the known keys. Keeping it between snapshots means a steady cluster is
//! read without re-sorting the keys or re-encoding some 2,000 commands each
//! time. Also the SCAN helpers ([`scan_pattern`], [`add_scan`],
//! [`parse_scan`]).

use super::server_read::SCAN_COUNT;
use crate::adapters::lock::{LOCK_FAMILY, LockReads};
use crate::adapters::pubsub::StreamReads;
use crate::adapters::pubsub::keys::SIGNAL_FAMILY;
use crate::adapters::queue::{QUEUE_FAMILY, QueueReads};
use crate::adapters::worker_id;
use crate::config::Namespace;
use redis::Value;
use std::ops::Range;

/// What one server holds for this cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    pub(crate) fn scanned(&self) -> Vec<&'static str> {
        [
            (self.locks, LOCK_FAMILY),
            (self.streams, SIGNAL_FAMILY),
            (self.queues, QUEUE_FAMILY),
        ]
        .into_iter()
        .filter_map(|(on, family)| on.then_some(family))
        .collect()
    }
}

/// Per-key reads of one family, and where their replies are in the
/// prepared pipeline.
#[derive(Debug)]
pub struct Placed<R> {
    /// The reads.
    pub reads: R,
    /// Their replies' range in the first request.
    pub at: Range<usize>,
}

/// The first request of a server read, for one namespace, one set of roles
/// and one list of known keys ([`Prepared::new`]); see the module doc.
#[derive(Debug)]
pub struct Prepared {
    namespace: String,
    roles: Roles,
    /// The SCAN pattern of the roles' families.
    pub pattern: String,
    /// The keys it reads, as the SCAN returned them.
    pub keys: Vec<Vec<u8>>,
    /// The pipeline (run it with `ignore_errors`, as built).
    pub pipe: redis::Pipeline,
    /// The `INFO` reply's index.
    pub info_at: usize,
    /// `CONFIG GET save`'s reply index, on a server that holds the locks
    /// or the worker-ID leases ([`super::persistence`]).
    pub config_save_at: Option<usize>,
    /// The lease replies, when the server holds the leases.
    pub leases_at: Option<Range<usize>>,
    /// The first SCAN's reply index, when a family is scanned.
    pub scan_at: Option<usize>,
    /// The known lock keys' reads.
    pub locks: Option<Placed<LockReads>>,
    /// The known stream keys' reads.
    pub streams: Option<Placed<StreamReads>>,
    /// The known queue keys' reads.
    pub queues: Option<Placed<QueueReads>>,
    /// `CLUSTER INFO`'s reply index, on a master of a Redis Cluster
    /// ([`Prepared::with_cluster_info`]).
    pub cluster_info_at: Option<usize>,
}

/// Append with `add` and return the range of replies it will take.
pub(crate) fn slot(
    pipe: &mut redis::Pipeline,
    add: impl FnOnce(&mut redis::Pipeline),
) -> Range<usize> {
    let start = pipe.len();
    add(pipe);
    start..pipe.len()
}

impl Prepared {
    /// The first request for `roles` under `ns`, reading `keys` (what a
    /// SCAN found; empty on a first read) beside the SCAN.
    pub fn new(ns: &Namespace, roles: Roles, keys: Vec<Vec<u8>>) -> Self {
        let families = roles.scanned();
        let pattern = scan_pattern(ns, &families);
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let info_at = slot(&mut pipe, |p| {
            p.cmd("INFO");
        })
        .start;
        let config_save_at = (roles.leases || roles.locks)
            .then(|| slot(&mut pipe, super::persistence::add_config_save).start);
        let leases_at = roles
            .leases
            .then(|| slot(&mut pipe, |p| worker_id::add_lease_reads(p, ns)));
        let scan_at =
            (!families.is_empty()).then(|| slot(&mut pipe, |p| add_scan(p, b"0", &pattern)).start);
        let slices = || keys.iter().map(Vec::as_slice);
        let locks = roles.locks.then(|| LockReads::from_keys(ns, slices()));
        let streams = roles.streams.then(|| StreamReads::from_keys(ns, slices()));
        let queues = roles.queues.then(|| QueueReads::from_keys(ns, slices()));
        let locks = locks.map(|reads| {
            let at = slot(&mut pipe, |p| reads.add_to(p));
            Placed { reads, at }
        });
        let streams = streams.map(|reads| {
            let at = slot(&mut pipe, |p| reads.add_to(p));
            Placed { reads, at }
        });
        let queues = queues.map(|reads| {
            let at = slot(&mut pipe, |p| reads.add_to(p));
            Placed { reads, at }
        });
        Self {
            namespace: ns.name().to_string(),
            roles,
            pattern,
            keys,
            pipe,
            info_at,
            config_save_at,
            leases_at,
            scan_at,
            locks,
            streams,
            queues,
            cluster_info_at: None,
        }
    }

    /// The same request with `CLUSTER INFO` last, for a master of a Redis
    /// Cluster (the other replies keep their places).
    pub fn with_cluster_info(mut self) -> Self {
        let at = slot(&mut self.pipe, |p| {
            p.cmd("CLUSTER").arg("INFO");
        });
        self.cluster_info_at = Some(at.start);
        self
    }

    /// Whether it was prepared for `ns` and `roles`.
    pub fn fits(&self, ns: &Namespace, roles: Roles) -> bool {
        self.namespace == ns.name() && self.roles == roles
    }

    /// Commands in the pipeline.
    pub fn commands(&self) -> usize {
        self.pipe.len()
    }
}

/// The SCAN pattern covering `families` (`lock:`, `signal:`, `queue:`): one
/// character class per position over their first five characters, e.g.
/// `<ns>:[lqs][iou][ceg][knu][:ae]*` for all three, which leaves out
/// `<ns>:lock-fence:*` (one family alone: `<ns>:lock:*`). Keys it matches
/// outside the families are ignored by the reads.
pub fn scan_pattern(ns: &Namespace, families: &[&str]) -> String {
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

/// Append `SCAN cursor MATCH pattern COUNT` [`SCAN_COUNT`].
pub fn add_scan(pipe: &mut redis::Pipeline, cursor: &[u8], pattern: &str) {
    pipe.cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
}

/// `(next cursor, keys)` of a SCAN reply; the cursor is kept as the bytes
/// Redis sent (it is only ever sent back).
pub fn parse_scan(reply: &Value) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
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
            Value::Array(vec![Value::BulkString(b"c1:lock:{a}".to_vec())]),
        ]);
        assert_eq!(
            parse_scan(&ok).unwrap(),
            (b"17".to_vec(), vec![b"c1:lock:{a}".to_vec()])
        );
        let denied = redis::parse_redis_value(b"-NOPERM no permissions\r\n").unwrap();
        assert!(parse_scan(&denied).unwrap_err().contains("NOPERM"));
        assert!(parse_scan(&Value::Nil).is_err());
        assert!(parse_scan(&Value::Array(vec![Value::Int(0)])).is_err());
    }

    #[test]
    fn a_plan_fits_only_its_namespace_and_roles() {
        let ns = Namespace::new("c1").unwrap();
        let all = Roles {
            leases: true,
            locks: true,
            streams: true,
            queues: true,
        };
        let keys = vec![
            crate::adapters::lock::lock_key(&ns, "a").into_bytes(),
            crate::adapters::queue::stream_key(&ns, "q").into_bytes(),
        ];
        let plan = Prepared::new(&ns, all, keys);
        assert!(plan.fits(&ns, all));
        assert!(!plan.fits(&Namespace::new("c2").unwrap(), all));
        assert!(!plan.fits(
            &ns,
            Roles {
                locks: false,
                ..all
            }
        ));
        // INFO, CONFIG GET save, 96 lease reads, SCAN, 3 lock reads, no
        // stream, 9 queue reads.
        assert_eq!(plan.commands(), 1 + 1 + 96 + 1 + 3 + 9);
        assert_eq!(plan.config_save_at, Some(1));
        assert_eq!(plan.locks.as_ref().map(|l| l.at.clone()), Some(99..102));
        assert_eq!(plan.queues.as_ref().map(|q| q.at.clone()), Some(102..111));
        // A server with neither locks nor leases is not asked.
        let queues_only = Roles {
            queues: true,
            ..Roles::default()
        };
        assert_eq!(Prepared::new(&ns, queues_only, vec![]).config_save_at, None);
    }
}
