//! Whether a Redis Cluster runs with replicas (`CLUSTER NODES`), which
//! decides whether lease writes and queue publishes wait for a replica
//! (`SharedConn::is_replicated`). A replica that is down for now, or a
//! shard whose replica was just promoted, does not make a cluster
//! unreplicated: only a cluster set up without any replica is.

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{RedisError, RedisResult, Value};

/// Whether the cluster is set up with replicas, as `CLUSTER NODES` (asked
/// of any node) says: see [`nodes_have_replicas`].
pub(crate) async fn has_replicas(conn: &mut ClusterConnection) -> RedisResult<bool> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("NODES");
    let reply = conn
        .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
        .await?;
    let text = match &reply {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    };
    let text = text.ok_or_else(|| {
        RedisError::from((
            redis::ErrorKind::Parse,
            "unexpected CLUSTER NODES reply",
            format!("{reply:?}"),
        ))
    })?;
    Ok(nodes_have_replicas(&text))
}

/// Whether a `CLUSTER NODES` listing has a replica, online or not, or a
/// failed master without slots (a master whose replica was promoted in its
/// place; it comes back as that one's replica). A replica that is down for
/// now, or a shard whose replica was just promoted, still means the
/// cluster runs with replicas: writes must wait for one (`WAIT 1`) and a
/// shard without one confirms nothing until it is back, as with Sentinel.
/// Only a cluster set up without any replica is not replicated.
pub(crate) fn nodes_have_replicas(nodes: &str) -> bool {
    nodes.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(flags) = fields.get(2) else {
            return false;
        };
        let flags: Vec<&str> = flags.split(',').collect();
        let has_slots = fields.len() > 8;
        flags.contains(&"slave")
            || flags.contains(&"replica")
            || (flags.contains(&"master") && flags.contains(&"fail") && !has_slots)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_has_replicas_while_one_is_down_or_was_promoted() {
        let id = |n: u8| format!("{n:040}");
        let master = |n: u8, flags: &str, slots: &str| {
            format!(
                "{} 127.0.0.1:700{n}@1700{n} {flags} - 0 1 {n} connected {slots}",
                id(n)
            )
        };
        let replica = |n: u8, of: u8, flags: &str| {
            format!(
                "{} 127.0.0.1:700{n}@1700{n} {flags} {} 0 1 {n} connected",
                id(n),
                id(of)
            )
        };
        let no_replicas = [
            master(0, "myself,master", "0-5460"),
            master(1, "master", "5461-10922"),
            master(2, "master", "10923-16383"),
        ]
        .join("\n");
        assert!(!nodes_have_replicas(&no_replicas));
        let healthy = [no_replicas.clone(), replica(3, 0, "slave")].join("\n");
        assert!(nodes_have_replicas(&healthy));
        let replica_down = [no_replicas.clone(), replica(3, 0, "slave,fail")].join("\n");
        assert!(nodes_have_replicas(&replica_down));
        // One master and one replica: the replica was promoted, the old
        // master is down without slots.
        let promoted = [
            master(0, "master,fail", ""),
            master(3, "myself,master", "0-16383"),
        ]
        .join("\n");
        assert!(nodes_have_replicas(&promoted));
        // A master that failed with its slots (no replica to promote) is
        // not a replica.
        let down = [
            master(0, "master,fail", "0-8000"),
            master(1, "myself,master", "8001-16383"),
        ]
        .join("\n");
        assert!(!nodes_have_replicas(&down));
        assert!(!nodes_have_replicas(""));
    }
}
