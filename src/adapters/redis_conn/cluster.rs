//! Redis Cluster: telling a cluster node from a lone server, opening the
//! cluster connection, the shard map (`CLUSTER SLOTS`) and the clients of
//! its masters (what is split or walked across slots: `cluster_split.rs`).

use super::{ConnectError, Endpoint, describe};
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{RedisError, RedisResult, Value};
use std::collections::HashMap;

/// How many times the cluster client re-sends a command that met a moved
/// slot, a refused connection or a cluster that is down (with waits of up to
/// 1 s between attempts): enough to ride out a shard failover once the
/// cluster has promoted a replica.
pub(crate) const RETRIES: u32 = 6;

/// How long one command may take on a cluster, its retries included.
pub(crate) const OVERALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// One shard: its master, its replicas and the slot ranges it serves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    /// The master, `host:port`.
    pub master: String,
    /// The replicas, `host:port` each.
    pub replicas: Vec<String>,
    /// Slot ranges, inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl Shard {
    /// Whether this shard serves `slot`.
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }

    /// The number of slots served.
    pub fn slot_count(&self) -> u32 {
        self.slots
            .iter()
            .map(|&(a, b)| u32::from(b) - u32::from(a) + 1)
            .sum()
    }
}

/// The hash slot of `key` (`CLUSTER KEYSLOT`).
pub fn slot_of(key: &[u8]) -> u16 {
    crate::adapters::hash_tag::key_slot(key)
}

/// Whether the server behind `conn` runs in cluster mode (`INFO cluster`
/// says `cluster_enabled:1`).
pub(crate) async fn is_cluster<C: ConnectionLike + Send>(conn: &mut C) -> RedisResult<bool> {
    let info: Value = redis::cmd("INFO").arg("cluster").query_async(conn).await?;
    let text = match info {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::VerbatimString { text, .. } => text,
        Value::SimpleString(s) => s,
        _ => String::new(),
    };
    Ok(text.lines().any(|l| l.trim() == "cluster_enabled:1"))
}

/// Open the cluster connection of `ep` (a fixed server found to be a
/// cluster node).
pub(crate) async fn open(ep: &Endpoint) -> Result<ClusterConnection, ConnectError> {
    let client = ep.cluster_client()?;
    match tokio::time::timeout(super::CONNECT_TIMEOUT * 3, client.get_async_connection()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(ep.error(&e)),
        Err(_) => Err(ConnectError::new(
            ep.masked(),
            "connection to the cluster timed out",
        )),
    }
}

/// The shards as the node `conn` reaches says (`CLUSTER SLOTS`), one entry
/// per master, sorted by master address.
pub(crate) async fn shards(conn: &mut ClusterConnection) -> RedisResult<Vec<Shard>> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    let reply = conn
        .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
        .await?;
    parse_slots(&reply).map_err(|e| {
        RedisError::from((redis::ErrorKind::Parse, "unexpected CLUSTER SLOTS reply", e))
    })
}

pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn node_address(v: &Value) -> Option<String> {
    let Value::Array(parts) = v else { return None };
    let host = text(parts.first()?)?;
    let Value::Int(port) = parts.get(1)? else {
        return None;
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Some(format!("{host}:{port}"))
}

/// Parse a `CLUSTER SLOTS` reply into shards.
pub(crate) fn parse_slots(reply: &Value) -> Result<Vec<Shard>, String> {
    let Value::Array(ranges) = reply else {
        return Err("not an array".into());
    };
    let mut by_master: HashMap<String, Shard> = HashMap::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err("a range is not an array".into());
        };
        let (Some(Value::Int(a)), Some(Value::Int(b))) = (fields.first(), fields.get(1)) else {
            return Err("a range without its bounds".into());
        };
        let bound = |n: i64| u16::try_from(n).map_err(|_| format!("slot {n} out of range"));
        let (a, b) = (bound(*a)?, bound(*b)?);
        let master = fields
            .get(2)
            .and_then(node_address)
            .ok_or("a range without its master")?;
        let replicas: Vec<String> = fields.iter().skip(3).filter_map(node_address).collect();
        let shard = by_master.entry(master.clone()).or_insert_with(|| Shard {
            master,
            replicas: Vec::new(),
            slots: Vec::new(),
        });
        shard.slots.push((a, b));
        for r in replicas {
            if !shard.replicas.contains(&r) {
                shard.replicas.push(r);
            }
        }
    }
    let mut shards: Vec<Shard> = by_master.into_values().collect();
    for s in &mut shards {
        s.slots.sort_unstable();
        s.replicas.sort();
    }
    shards.sort_by(|a, b| a.master.cmp(&b.master));
    Ok(shards)
}

/// Split `host:port` (IPv6 in brackets).
pub(crate) fn split_address(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// Open a connection to each master of the cluster behind `conn`.
pub(crate) async fn master_clients(
    ep: &Endpoint,
    conn: &mut ClusterConnection,
) -> Result<Vec<(String, redis::Client)>, ConnectError> {
    let map = shards(conn)
        .await
        .map_err(|e| ConnectError::new(ep.masked(), describe(&e)))?;
    let mut out = Vec::new();
    for s in map {
        let (host, port) = split_address(&s.master).ok_or_else(|| {
            ConnectError::new(ep.masked(), format!("bad node address {}", s.master))
        })?;
        out.push((s.master.clone(), ep.cluster_node_client(&host, port)?));
    }
    Ok(out)
}

/// The client of the master that serves `key` now.
pub(crate) async fn owner_client(
    ep: &Endpoint,
    conn: &mut ClusterConnection,
    key: &[u8],
) -> Result<(String, redis::Client), ConnectError> {
    let slot = slot_of(key);
    let map = shards(conn)
        .await
        .map_err(|e| ConnectError::new(ep.masked(), describe(&e)))?;
    let shard = map.iter().find(|s| s.serves(slot)).ok_or_else(|| {
        ConnectError::new(
            ep.masked(),
            format!("no master serves slot {slot} (cluster down?)"),
        )
    })?;
    let (host, port) = split_address(&shard.master).ok_or_else(|| {
        ConnectError::new(ep.masked(), format!("bad node address {}", shard.master))
    })?;
    Ok((shard.master.clone(), ep.cluster_node_client(&host, port)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn slots_group_by_master() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7003),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("127.0.0.1", 7001),
            ]),
            Value::Array(vec![
                Value::Int(10923),
                Value::Int(16383),
                node("::1", 7000),
            ]),
        ]);
        let shards = parse_slots(&reply).expect("parses");
        assert_eq!(shards.len(), 3);
        assert_eq!(shards[0].master, "127.0.0.1:7000");
        assert_eq!(shards[0].replicas, vec!["127.0.0.1:7003".to_string()]);
        assert_eq!(shards[0].slot_count(), 5461);
        assert!(shards[1].serves(5461) && !shards[1].serves(5460));
        assert_eq!(shards[2].master, "[::1]:7000");
        assert_eq!(split_address("[::1]:7000"), Some(("::1".into(), 7000)));
        assert!(parse_slots(&Value::Int(1)).is_err());
        assert!(parse_slots(&Value::Array(vec![Value::Array(vec![Value::Int(0)])])).is_err());
    }
}
