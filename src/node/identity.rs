//! Who a node is and where it stands, as it says itself: the part that its
//! registry record, its `/api/status`, the inspector's [`NodeView`] and the
//! runbook's reads of the registry and of `/api/status` all share.
//!
//! [`NodeView`]: crate::inspect::NodeView

use super::state::NodeState;
use serde::{Deserialize, Serialize};

/// A node's identity and state. Embedded (flattened, so the JSON keeps its
/// flat shape) in [`super::registry::NodeRecord`],
/// [`super::shared::StatusReport`] and [`crate::inspect::NodeView`]; read on
/// its own by the runbook. `host`, `pid`, `state_reason` and
/// `started_at_ms` read as empty or 0 when a writer leaves them out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Unique node id.
    pub node_id: String,
    /// Host name of the machine.
    #[serde(default)]
    pub host: String,
    /// `host:port` the node's HTTP server listens on.
    pub http_addr: String,
    /// OS process id.
    #[serde(default)]
    pub pid: u32,
    /// Version of the app binary.
    pub app_version: String,
    /// Schema version found in the database (`None` without a database).
    #[serde(default)]
    pub schema_version: Option<String>,
    /// Worker ID held, if any.
    #[serde(default)]
    pub worker_id: Option<u16>,
    /// Lifecycle state.
    pub state: NodeState,
    /// One-line reason for the state.
    #[serde(default)]
    pub state_reason: String,
    /// Unix ms when the node started.
    #[serde(default)]
    pub started_at_ms: u64,
}

impl NodeIdentity {
    /// One line: `id: state S, app A, schema S, worker ID W`.
    pub fn summary(&self) -> String {
        format!(
            "{}: state {}, app {}, schema {}, worker ID {}",
            self.node_id,
            self.state,
            self.app_version,
            self.schema_version.as_deref().unwrap_or("none"),
            self.worker_id
                .map(|w| w.to_string())
                .unwrap_or_else(|| "none".to_string())
        )
    }
}
