//! A node's lifecycle state and the reason behind it, shared by the HTTP
//! handlers, the heartbeat loop and shutdown.

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a node is in its life. Only `Running` serves traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Connecting, migrating, acquiring a worker ID.
    Starting,
    /// Ready to serve.
    Running,
    /// The cluster-wide maintenance flag is set.
    Maintenance,
    /// Shutting down: finishing in-flight requests.
    Draining,
    /// Refusing to serve; the reason says why.
    Error,
}

impl NodeState {
    /// The lowercase name used in JSON and in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Starting => "starting",
            NodeState::Running => "running",
            NodeState::Maintenance => "maintenance",
            NodeState::Draining => "draining",
            NodeState::Error => "error",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state and its one-line reason, behind a lock held only briefly.
#[derive(Debug)]
pub struct StateCell {
    inner: RwLock<(NodeState, String)>,
}

impl Default for StateCell {
    fn default() -> Self {
        Self {
            inner: RwLock::new((NodeState::Starting, "starting".to_string())),
        }
    }
}

impl StateCell {
    /// The current state and reason.
    pub fn get(&self) -> (NodeState, String) {
        self.inner.read().clone()
    }

    /// Set state and reason. `Error` and `Draining` are sticky: only
    /// `force_set` leaves them, so a maintenance poll cannot hide an error.
    pub fn set(&self, state: NodeState, reason: impl Into<String>) {
        let mut guard = self.inner.write();
        if matches!(guard.0, NodeState::Error | NodeState::Draining) && state != NodeState::Draining
        {
            return;
        }
        *guard = (state, reason.into());
    }

    /// Set state and reason unconditionally.
    pub fn force_set(&self, state: NodeState, reason: impl Into<String>) {
        *self.inner.write() = (state, reason.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_sticky_but_draining_wins() {
        let cell = StateCell::default();
        cell.set(NodeState::Error, "schema is newer");
        cell.set(NodeState::Running, "ok");
        assert_eq!(cell.get().0, NodeState::Error);
        cell.set(NodeState::Draining, "SIGTERM");
        assert_eq!(cell.get().0, NodeState::Draining);
        cell.set(NodeState::Maintenance, "flag");
        assert_eq!(cell.get().0, NodeState::Draining);
    }
}
