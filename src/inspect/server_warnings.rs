//! What an operator should fix on each Redis or RabbitMQ server of a
//! snapshot, one line per warning: an eviction policy, a Redis without bloom
//! filters, a Sentinel set or Redis Cluster that is not whole. The console's
//! Servers view and the Prometheus exporter both list them.

use super::{ClusterView, ServerView, TopologyView};

/// What an operator should fix on one server, one line each.
pub fn server_warnings(s: &ServerView) -> Vec<String> {
    let mut out = s.topology.as_ref().map_or_else(Vec::new, topology_warnings);
    out.extend(s.cluster.as_ref().map_or_else(Vec::new, cluster_warnings));
    if s.kind != "redis" || s.error.is_some() {
        return out;
    }
    if let Some(policy) = &s.maxmemory_policy
        && policy != "noeviction"
    {
        out.push(format!(
            "maxmemory-policy is {policy}: keys can be evicted, set noeviction"
        ));
    }
    if let Some(v) = &s.version {
        let major: u32 = v
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let bloom = s
            .modules
            .iter()
            .any(|m| m.to_ascii_lowercase().contains("bf") || m.contains("bloom"));
        if major < 8 && !bloom {
            out.push(format!(
                "Redis {v} has no bloom filter module: use Redis 8 or load RedisBloom"
            ));
        }
    }
    out
}

/// What an operator should look at in a Redis Cluster: a state that is not
/// ok, a master that does not answer, slots no master serves, a master
/// without a replica up.
fn cluster_warnings(c: &ClusterView) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(state) = c.state.as_deref().filter(|s| *s != "ok") {
        out.push(format!("cluster_state is {state}"));
    }
    for s in &c.shards {
        if let Some(e) = &s.error {
            out.push(format!("master {} does not answer: {e}", s.master));
        }
    }
    let unassigned = super::cluster_view::SLOTS.saturating_sub(c.slots_covered);
    if unassigned > 0 && !c.shards.is_empty() {
        out.push(format!("{unassigned} slots served by no master"));
    }
    for s in c.unreplicated() {
        out.push(format!("master {} has no replica up", s.master));
    }
    out
}

/// What an operator should look at in a Sentinel topology: sentinels that
/// do not answer or name another master, a failed `CKQUORUM`, a master
/// with no replica online (shown under the master's name).
fn topology_warnings(t: &TopologyView) -> Vec<String> {
    let name = &t.master_name;
    let a = t.agreement();
    let mut out: Vec<String> = t
        .sentinels
        .iter()
        .filter(|s| !s.answered)
        .map(|s| {
            let why = s.error.as_deref().unwrap_or("no answer");
            format!("sentinel {} not answering: {why}", s.address)
        })
        .collect();
    out.extend(a.dissenting.iter().map(|(s, named)| match named {
        Some(m) => format!("sentinel {s} names another master, {m}"),
        None => format!("sentinel {s} knows no master {name}"),
    }));
    out.extend(a.ckquorum_failed.iter().map(|f| format!("CKQUORUM {f}")));
    if t.master_confirmed() && t.online_replicas().next().is_none() {
        out.push("no replica online: a failover has nowhere to go".to_string());
    }
    out
}
