//! A RabbitMQ cluster of private nodes ([`RabbitNode`]) on loopback: nodes
//! `ct-a-{pid}@localhost`, `ct-b-{pid}@localhost`… sharing one Erlang
//! cookie (one `HOME`), booted in parallel, then joined to the first with
//! `rabbitmqctl stop_app; join_cluster; start_app`. It measures how long
//! the boot and the joins took, gives multi-host AMQP URLs in any broker
//! order, and tells where a quorum queue's leader and members are. Every
//! node is stopped on drop (in parallel) and the temp dir deleted.

use super::rabbit_node::{RabbitNode, write_cookie};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running cluster.
pub struct RabbitCluster {
    /// The nodes; the first is the one the others joined.
    pub nodes: Vec<RabbitNode>,
    /// From spawning the nodes to every AMQP port open.
    pub boot: Duration,
    /// The joins, until every node runs in the cluster.
    pub join: Duration,
    /// HOME (the cookie) and one data dir per node; dropped after the nodes.
    dir: tempfile::TempDir,
}

/// Where a quorum queue lives.
#[derive(Debug, Clone)]
pub struct QuorumPlace {
    pub leader: String,
    pub members: Vec<String>,
    pub online: Vec<String>,
}

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

impl RabbitCluster {
    /// Start `count` nodes and join them, all within `within`.
    pub fn start(count: usize, within: Duration) -> Result<Self, String> {
        let seq = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        write_cookie(
            dir.path(),
            &format!("CLUSTEROPSCT{pid}X{seq}X{:08X}", rand::random::<u32>()),
        )?;
        let started = Instant::now();
        let mut me = Self {
            nodes: Vec::new(),
            boot: Duration::ZERO,
            join: Duration::ZERO,
            dir,
        };
        for i in 0..count {
            let letter = char::from(b'a' + u8::try_from(i % 26).unwrap_or(0));
            let name = match seq {
                0 => format!("ct-{letter}-{pid}"),
                n => format!("ct-{letter}-{pid}-{n}"),
            };
            let data = me.dir.path().join(format!("node-{letter}"));
            let node = RabbitNode::spawn(&name, me.dir.path(), &data, "")?;
            me.nodes.push(node);
        }
        for n in &me.nodes {
            let left = within.saturating_sub(started.elapsed());
            n.wait_for_port(n.amqp_port, left)?;
        }
        me.boot = started.elapsed();
        let joined = Instant::now();
        let first = me.nodes[0].node.clone();
        for n in &me.nodes[1..] {
            n.ctl(&["stop_app"])?;
            n.ctl(&["join_cluster", &first])?;
            n.ctl(&["start_app"])?;
        }
        let running = me.running_nodes(0)?;
        if running.len() != count {
            return Err(format!(
                "the cluster runs {} nodes, not {count}: {running:?}",
                running.len()
            ));
        }
        me.join = joined.elapsed();
        Ok(me)
    }

    /// The running nodes as node `i` sees them (`cluster_status`).
    pub fn running_nodes(&self, i: usize) -> Result<Vec<String>, String> {
        let out = self.nodes[i].ctl(&["cluster_status", "--formatter", "json"])?;
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("cluster_status: {e}: {out}"))?;
        Ok(strings(&v["running_nodes"]))
    }

    /// `amqp://guest:guest@h1,h2,…/%2f` naming the brokers `order`, in that
    /// order.
    pub fn url(&self, order: &[usize]) -> String {
        let hosts: Vec<String> = order.iter().map(|&i| self.nodes[i].host()).collect();
        format!("amqp://guest:guest@{}/%2f", hosts.join(","))
    }

    /// The index of the node named `node`.
    pub fn index_of(&self, node: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.node == node)
    }

    /// Leader, members and online members of quorum queue `queue`, as node
    /// `via` (a running one) sees them.
    pub fn quorum_place(&self, via: usize, queue: &str) -> Result<QuorumPlace, String> {
        let out = self.nodes[via].ctl(&[
            "list_queues",
            "-q",
            "name",
            "type",
            "leader",
            "members",
            "online",
            "--formatter",
            "json",
        ])?;
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("list_queues: {e}: {out}"))?;
        let q = v
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["name"] == queue))
            .ok_or_else(|| format!("no queue {queue} on {}", self.nodes[via].node))?;
        if q["type"] != "quorum" {
            return Err(format!("queue {queue} is {}, not quorum", q["type"]));
        }
        Ok(QuorumPlace {
            leader: q["leader"].as_str().unwrap_or("").to_string(),
            members: strings(&q["members"]),
            online: strings(&q["online"]),
        })
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        // In parallel: each graceful stop takes a few seconds.
        std::thread::scope(|s| {
            for n in self.nodes.iter_mut() {
                s.spawn(move || n.stop());
            }
        });
    }
}
