//! Cluster membership: each node's registry record in Redis, refreshed by
//! heartbeats with a TTL of about three heartbeats so a killed node
//! disappears by itself, plus a sorted-set index so readers need no SCAN.
//!
//! Keys (see docs/redis-keys.md): `<ns>:node:{<ns>}:<node_id>` (string, JSON
//! [`NodeRecord`], PX ttl) and `<ns>:nodes:{<ns>}` (zset: node id → last heartbeat ms).

use super::identity::NodeIdentity;
use crate::adapters::hash_tag::tag;
use crate::config::Namespace;
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `<ns>:queue-names` (set): the queues nodes consume, kept in the
/// coordination Redis so the inspector can find RabbitMQ queues (AMQP
/// cannot list them).
pub const QUEUE_CATALOGUE: &str = "queue-names";

/// `<ns>:node:{<ns>}:<node_id>`: a node's record. The records and the
/// index of a namespace share the hash tag `{<ns>}`: the heartbeat and the
/// clean removal write a record and the index in one MULTI, so in a Redis
/// Cluster they all live in one slot.
pub fn record_key(ns: &Namespace, node_id: &str) -> String {
    ns.key(&format!("node:{}:{node_id}", tag(ns.name())))
}

/// `<ns>:nodes:{<ns>}`: the index of the records (zset).
pub fn index_key(ns: &Namespace) -> String {
    ns.key(&format!("nodes:{}", tag(ns.name())))
}

/// What a node says about itself, every heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Who the node is and its state (flattened: the record stays one flat
    /// JSON object).
    #[serde(flatten)]
    pub id: NodeIdentity,
    /// Unix ms of this heartbeat.
    pub heartbeat_at_ms: u64,
    /// The node's configuration fingerprint.
    pub config_fingerprint: String,
    /// Per-setting fingerprints, to name the setting that drifted.
    #[serde(default)]
    pub config_parts: BTreeMap<String, String>,
    /// `STORAGE_PATH` marker check: `Some(true)` shared, `Some(false)` not,
    /// `None` unknown (no storage configured or alone).
    #[serde(default)]
    pub storage_shared: Option<bool>,
    /// When `storage_shared` is false: which markers are missing.
    #[serde(default)]
    pub storage_reason: Option<String>,
    /// This node's clock against Redis `TIME`, measured with this
    /// heartbeat (`None`: not measured, or written by an older version).
    #[serde(default)]
    pub clock_offset: Option<super::clock::ClockOffset>,
    /// `WORKER_MODE`: what the node works on (records of older versions
    /// have none: they do everything).
    #[serde(default)]
    pub worker_mode: crate::config::WorkerMode,
    /// Under `CLUSTER_MODE`: which process of its host it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<super::supervisor::ProcessSlot>,
}

/// A registry entry as read back: a record, or a key that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RegistryEntry {
    /// A live node's record and the TTL left on it.
    Live {
        /// The record.
        record: Box<NodeRecord>,
        /// Milliseconds before it expires without a heartbeat.
        ttl_left_ms: i64,
    },
    /// A key holding something that is not a [`NodeRecord`].
    Unreadable {
        /// The key.
        key: String,
        /// Why it could not be read.
        reason: String,
    },
}

/// The registry of one cluster.
#[derive(Debug, Clone)]
pub struct Registry {
    ns: Namespace,
    ttl: Duration,
}

impl Registry {
    /// A registry under `ns` whose records live `ttl` without a heartbeat.
    pub fn new(ns: Namespace, ttl: Duration) -> Self {
        Self { ns, ttl }
    }

    /// `<ns>:node:{<ns>}:<node_id>` ([`record_key`]).
    pub fn record_key(&self, node_id: &str) -> String {
        record_key(&self.ns, node_id)
    }

    /// `<ns>:nodes:{<ns>}` ([`index_key`]).
    pub fn index_key(&self) -> String {
        index_key(&self.ns)
    }

    /// Write a heartbeat: the record with a fresh TTL, its index entry, and
    /// prune index entries whose records must have expired. One round trip.
    /// The index is scored with the writer's clock (`heartbeat_at_ms`); a
    /// node that knows its offset from Redis uses [`Registry::heartbeat_at`].
    pub async fn heartbeat<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        record: &NodeRecord,
    ) -> redis::RedisResult<()> {
        self.heartbeat_at(conn, record, record.heartbeat_at_ms)
            .await
    }

    /// [`Registry::heartbeat`] with the index scored and pruned at
    /// `redis_now_ms`, the writer's estimate of Redis's clock (its own plus
    /// its measured offset): every writer then prunes on one clock, so a
    /// node whose clock is ahead by more than three TTLs does not drop the
    /// others from the index, nor one behind get dropped by them.
    pub async fn heartbeat_at<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        record: &NodeRecord,
        redis_now_ms: u64,
    ) -> redis::RedisResult<()> {
        let json = serde_json::to_string(record).map_err(|e| {
            redis::RedisError::from((
                redis::ErrorKind::Client,
                "cannot encode the registry record",
                e.to_string(),
            ))
        })?;
        let ttl_ms = self.ttl.as_millis() as u64;
        let stale_before = redis_now_ms.saturating_sub(ttl_ms * 3);
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.record_key(&record.id.node_id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("ZADD")
            .arg(self.index_key())
            .arg(redis_now_ms)
            .arg(&record.id.node_id)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(self.index_key())
            .arg("-inf")
            .arg(format!("({stale_before}"))
            .ignore()
            .query_async(conn)
            .await
    }

    /// Remove a node's record and index entry (clean shutdown).
    pub async fn remove<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        node_id: &str,
    ) -> redis::RedisResult<()> {
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(self.record_key(node_id))
            .ignore()
            .cmd("ZREM")
            .arg(self.index_key())
            .arg(node_id)
            .ignore()
            .query_async(conn)
            .await
    }

    /// Read one node's record (`GET` and `PTTL`, read commands only):
    /// `None` when there is none (or it has just expired).
    pub async fn read_one<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        node_id: &str,
    ) -> redis::RedisResult<Option<RegistryEntry>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        self.add_record_reads(&mut pipe, &[node_id.to_string()]);
        let replies: Vec<redis::Value> = pipe.query_async(conn).await?;
        Ok(self
            .parse_records(&[node_id.to_string()], &replies)
            .into_iter()
            .next())
    }

    /// Read every live record: two round trips (index, then a pipeline of
    /// GET and PTTL), read commands only. Index entries whose record has
    /// expired are left out; garbage is reported as unreadable.
    pub async fn read_all<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
    ) -> redis::RedisResult<Vec<RegistryEntry>> {
        let mut pipe = redis::pipe();
        self.add_index_read(&mut pipe);
        let mut index: Vec<redis::Value> = pipe.query_async(conn).await?;
        let ids = self
            .parse_index(&index.pop().unwrap_or(redis::Value::Nil))
            .map_err(|why| {
                redis::RedisError::from((redis::ErrorKind::Parse, "registry index", why))
            })?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        self.add_record_reads(&mut pipe, &ids);
        let replies: Vec<redis::Value> = pipe.query_async(conn).await?;
        Ok(self.parse_records(&ids, &replies))
    }

    /// Append the read of the index (`ZRANGE <ns>:nodes:{<ns>} 0 -1`, one command).
    pub fn add_index_read(&self, pipe: &mut redis::Pipeline) {
        pipe.cmd("ZRANGE").arg(self.index_key()).arg(0).arg(-1);
    }

    /// The node ids of the index reply; an error (naming the key) when the
    /// reply is not a list of ids (e.g. the key is not a sorted set).
    pub fn parse_index(&self, reply: &redis::Value) -> Result<Vec<String>, String> {
        let key = self.index_key();
        let items = match reply {
            redis::Value::Array(items) | redis::Value::Set(items) => items,
            redis::Value::Nil => return Ok(Vec::new()),
            redis::Value::ServerError(e) => {
                return Err(format!("{key}: {} {}", e.code(), e.details().unwrap_or("")));
            }
            other => return Err(format!("{key}: unexpected reply {other:?}")),
        };
        items
            .iter()
            .map(|item| match item {
                redis::Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                redis::Value::SimpleString(s) => Ok(s.clone()),
                other => Err(format!("{key}: unexpected member {other:?}")),
            })
            .collect()
    }

    /// Append `GET` and `PTTL` of each node's record (two commands per id).
    pub fn add_record_reads(&self, pipe: &mut redis::Pipeline, ids: &[String]) {
        for id in ids {
            let key = self.record_key(id);
            pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        }
    }

    /// The entries of the replies of [`Registry::add_record_reads`]; expired
    /// records are left out, garbage (or a missing reply) is unreadable.
    pub fn parse_records(&self, ids: &[String], replies: &[redis::Value]) -> Vec<RegistryEntry> {
        let mut out = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let key = self.record_key(id);
            match (replies.get(2 * i), replies.get(2 * i + 1)) {
                (Some(value), Some(ttl)) => out.extend(parse_entry(&key, value, ttl)),
                _ => out.push(RegistryEntry::Unreadable {
                    key,
                    reason: "no reply from Redis".to_string(),
                }),
            }
        }
        out
    }
}

/// Decode one GET + PTTL pair. `None` when the key has expired.
pub fn parse_entry(key: &str, value: &redis::Value, ttl: &redis::Value) -> Option<RegistryEntry> {
    let ttl_left_ms = match ttl {
        redis::Value::Int(n) => *n,
        _ => -2,
    };
    let bytes = match value {
        redis::Value::Nil => return None,
        redis::Value::BulkString(b) => b,
        redis::Value::ServerError(e) => {
            return Some(RegistryEntry::Unreadable {
                key: key.to_string(),
                reason: format!("not a string key ({})", e.details().unwrap_or("wrong type")),
            });
        }
        other => {
            return Some(RegistryEntry::Unreadable {
                key: key.to_string(),
                reason: format!("unexpected reply {other:?}"),
            });
        }
    };
    Some(match serde_json::from_slice::<NodeRecord>(bytes) {
        Ok(record) => RegistryEntry::Live {
            record: Box::new(record),
            ttl_left_ms,
        },
        Err(e) => RegistryEntry::Unreadable {
            key: key.to_string(),
            reason: format!("not a node record: {e}"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::hash_tag::key_slot;

    #[test]
    fn a_record_of_an_older_version_reads_with_every_mode_and_no_process() {
        let old = r#"{"node_id":"a","host":"h","http_addr":"127.0.0.1:1","pid":1,
            "app_version":"1","schema_version":null,"worker_id":3,"state":"running",
            "state_reason":"ready","started_at_ms":1,"heartbeat_at_ms":2,
            "config_fingerprint":"f"}"#;
        let record: NodeRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record.worker_mode, crate::config::WorkerMode::All);
        assert_eq!(record.process, None);
        let mut newer = serde_json::to_value(&record).unwrap();
        newer["worker_mode"] = "jobs:*".into();
        let read: NodeRecord = serde_json::from_value(newer).unwrap();
        assert_eq!(
            read.worker_mode,
            crate::config::WorkerMode::Unknown("jobs:*".into())
        );
    }

    #[test]
    fn records_and_index_of_a_namespace_share_one_slot() {
        let ns = Namespace::new("clusterops").unwrap();
        assert_eq!(record_key(&ns, "a"), "clusterops:node:{clusterops}:a");
        assert_eq!(index_key(&ns), "clusterops:nodes:{clusterops}");
        let slot = key_slot(index_key(&ns).as_bytes());
        for node in ["a", "node-7", "web-1:8080", "odd{id}"] {
            assert_eq!(key_slot(record_key(&ns, node).as_bytes()), slot, "{node}");
        }
    }
}
