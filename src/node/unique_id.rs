//! One live node per node id: a node refuses to start while the registry
//! holds a live record with its id, unless that record is provably a dead
//! process's (same host, and its pid is gone or is this very process).

use super::registry::{NodeRecord, Registry, RegistryEntry};
use super::runtime::NodeError;
use redis::aio::ConnectionLike;

/// The live node that holds a node id (shown as one line, exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--node-id {node_id:?} is already in use by a live node: {http_addr} (pid {pid} on host {host}, \
     state {state}, last heartbeat {age_ms} ms ago); stop that node or choose another --node-id \
     (a killed node's record expires within {ttl_left_ms} ms)"
)]
pub struct DuplicateId {
    /// The id asked for.
    pub node_id: String,
    /// The holder's HTTP address.
    pub http_addr: String,
    /// The holder's pid.
    pub pid: u32,
    /// The holder's host.
    pub host: String,
    /// The holder's state.
    pub state: String,
    /// Milliseconds since the holder's last heartbeat (by this host's clock).
    pub age_ms: u64,
    /// Milliseconds before the holder's record expires without a heartbeat.
    pub ttl_left_ms: i64,
}

/// Whether a record left on this host belongs to a process that is gone
/// (or to this very process, e.g. a container restarted with the same pid).
fn dead_local_process(record: &NodeRecord, host: &str) -> bool {
    if record.host != host {
        return false;
    }
    if record.pid == std::process::id() {
        return true;
    }
    let proc_root = std::path::Path::new("/proc");
    proc_root.is_dir() && !proc_root.join(record.pid.to_string()).exists()
}

/// Refuse `node_id` when a live node holds it. A registry that cannot be
/// read is not a refusal (the node's heartbeat retries, and start-up
/// fails later if Redis is really gone); an unreadable record is not
/// either (the inspector reports it).
pub async fn ensure_unique<C: ConnectionLike + Send>(
    conn: &mut C,
    registry: &Registry,
    node_id: &str,
    host: &str,
) -> Result<(), NodeError> {
    let entry = match registry.read_one(conn, node_id).await {
        Ok(entry) => entry,
        Err(e) => {
            tracing::warn!("cannot read the registry to check the node id: {e}");
            return Ok(());
        }
    };
    let Some(RegistryEntry::Live {
        record,
        ttl_left_ms,
    }) = entry
    else {
        return Ok(());
    };
    if dead_local_process(&record, host) {
        tracing::warn!(
            node = %node_id,
            pid = record.pid,
            "a registry record of a process that is gone holds this node id: taking it over"
        );
        return Ok(());
    }
    let now_ms = crate::clock::now_ms();
    Err(NodeError::DuplicateId(DuplicateId {
        node_id: node_id.to_string(),
        http_addr: record.http_addr.clone(),
        pid: record.pid,
        host: record.host.clone(),
        state: record.state.clone(),
        age_ms: now_ms.saturating_sub(record.heartbeat_at_ms),
        ttl_left_ms,
    }))
}
