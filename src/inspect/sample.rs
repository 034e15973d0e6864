//! A synthetic cluster state written into a namespace, in the formats the
//! adapters and nodes write: by default ([`SampleSize::DEFAULT`]) [`NODES`]
//! registered nodes holding a worker ID each, [`LOCKS`] held locks,
//! [`STREAMS`] sync-signal streams of 20 entries with a cursor per node, and
//! [`QUEUES`] Redis queues of 20 waiting messages; other sizes for the
//! curve of `clusterops bench status`. The bench times snapshots of it, and
//! the request-count tests read it.

use crate::adapters::lock::{fence_key, lock_key};
use crate::adapters::pubsub::keys::{cursors_key, seq_key, stream_key};
use crate::adapters::queue::{MessageQueue, QueueError, QueueOptions, RedisQueue};
use crate::adapters::worker_id::lease_key;
use crate::clock::now_ms;
use crate::config::{Namespace, SecretUrl};
use crate::node::registry::{NodeRecord, Registry};
use redis::aio::ConnectionLike;
use std::time::Duration;

/// Registered nodes, each with a worker-ID lease (its health check goes to
/// 127.0.0.1:9, closed on loopback, so it fails fast).
pub const NODES: usize = 32;
/// Held locks, each with its fencing counter.
pub const LOCKS: usize = 1000;
/// Sync-signal streams.
pub const STREAMS: usize = 10;
/// Redis queues (`queue-0` ...).
pub const QUEUES: usize = 10;

/// How much state [`write_sample_sized`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSize {
    /// Registered nodes; the first 32 hold a worker ID each.
    pub nodes: usize,
    /// Held locks.
    pub locks: usize,
    /// Sync-signal streams (20 entries, a cursor per node).
    pub streams: usize,
    /// Redis queues (20 waiting messages).
    pub queues: usize,
}

impl SampleSize {
    /// [`NODES`], [`LOCKS`], [`STREAMS`], [`QUEUES`].
    pub const DEFAULT: Self = Self {
        nodes: NODES,
        locks: LOCKS,
        streams: STREAMS,
        queues: QUEUES,
    };

    /// Nodes that hold a worker-ID lease (at most one per worker ID).
    pub fn leases(&self) -> usize {
        self.nodes
            .min(usize::from(crate::adapters::worker_id::WORKER_IDS))
    }
}

/// The id of sample node `i`.
pub fn node_id(i: usize) -> String {
    format!("node-{i:02}")
}

/// The name of sample lock `i`.
pub fn lock_name(i: usize) -> String {
    format!("job-{i}")
}

/// The name of sample channel `s`.
pub fn channel_name(s: usize) -> String {
    format!("channel-{s}")
}

/// The name of sample queue `q`.
pub fn queue_name(q: usize) -> String {
    format!("queue-{q}")
}

/// Writing the sample state failed.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// A Redis command failed.
    #[error("writing the sample state: {0}")]
    Redis(#[from] redis::RedisError),
    /// Publishing the queues' messages failed.
    #[error("publishing the sample queue messages: {0}")]
    Queue(#[from] QueueError),
}

/// Write the default sample state ([`SampleSize::DEFAULT`]) under `ns` (its
/// keys live 10 minutes, or until the namespace is cleaned), through `conn`
/// and a queue connection to `url`.
pub async fn write_sample<C: ConnectionLike + Send>(
    url: &SecretUrl,
    ns: &Namespace,
    conn: &mut C,
) -> Result<(), SampleError> {
    write_sample_sized(url, ns, conn, SampleSize::DEFAULT).await
}

/// Write a sample state of `size` under `ns`, as [`write_sample`] does.
pub async fn write_sample_sized<C: ConnectionLike + Send>(
    url: &SecretUrl,
    ns: &Namespace,
    conn: &mut C,
    size: SampleSize,
) -> Result<(), SampleError> {
    let now = now_ms();
    let registry = Registry::new(ns.clone(), Duration::from_secs(600));
    let mut pipe = redis::pipe();
    for i in 0..size.nodes {
        let node = node_id(i);
        let leased = i < size.leases();
        let record = NodeRecord {
            node_id: node.clone(),
            host: "bench".into(),
            // Port 9 (discard) is closed on loopback: health checks fail fast.
            http_addr: "127.0.0.1:9".into(),
            pid: 1,
            app_version: "2".into(),
            schema_version: Some("2".into()),
            worker_id: leased.then_some(i as u16),
            state: "running".into(),
            state_reason: "ready".into(),
            started_at_ms: now,
            heartbeat_at_ms: now,
            config_fingerprint: "bench".into(),
            config_parts: Default::default(),
            storage_shared: None,
            storage_reason: None,
            clock_offset: None,
            worker_mode: Default::default(),
            process: None,
        };
        registry.heartbeat(conn, &record).await?;
        if !leased {
            continue;
        }
        pipe.cmd("SET")
            .arg(lease_key(ns, i as u8))
            .arg(format!(r#"{{"node":"{node}","pid":1,"host":"bench","acquired_at_ms":{now},"token":"t{i}"}}"#))
            .arg("PX")
            .arg(600_000)
            .ignore();
    }
    for i in 0..size.locks {
        pipe.cmd("SET")
            .arg(lock_key(ns, &lock_name(i)))
            .arg(format!(
                "{}|{now}|{:016x}|{}",
                i + 1,
                i,
                node_id(i % size.nodes.max(1))
            ))
            .arg("PX")
            .arg(600_000)
            .ignore();
        pipe.cmd("SET")
            .arg(fence_key(ns, &lock_name(i)))
            .arg(i + 1)
            .ignore();
    }
    for s in 0..size.streams {
        let key = stream_key(ns, &channel_name(s));
        for m in 0..20 {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("seq")
                .arg(m + 1)
                .arg("envelope")
                .arg(format!(
                    r#"{{"v":1,"sender":"node-00","ts_ms":{now},"kind":"json","payload":{m}}}"#
                ))
                .ignore();
        }
        pipe.cmd("SET")
            .arg(seq_key(ns, &channel_name(s)))
            .arg(20)
            .ignore();
        for n in 0..size.nodes {
            pipe.cmd("HSET")
                .arg(cursors_key(ns, &channel_name(s)))
                .arg(node_id(n))
                .arg(format!(r#"{{"id":"0-1","seq":{},"at_ms":{now}}}"#, n % 20))
                .ignore();
        }
    }
    pipe.query_async::<()>(conn).await?;
    let queue = RedisQueue::connect(url, ns.clone(), "bench", QueueOptions::default()).await?;
    for q in 0..size.queues {
        for m in 0..20 {
            queue
                .publish(&queue_name(q), format!("{m}").as_bytes())
                .await?;
        }
    }
    Ok(())
}
