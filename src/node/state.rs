//! A node's lifecycle state and the reason behind it, shared by the HTTP
//! handlers, the heartbeat loop and shutdown.

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a node is in its life. Only `Running` serves traffic.
///
/// On the wire (the registry record, `/api/status`, the snapshot's JSON, the
/// health check's `{state}: {reason}`) it is the lowercase word of
/// [`NodeState::as_str`]; a word this version does not know (a record
/// written by another version) reads as [`NodeState::Unknown`] and is
/// written back and shown as it was.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
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
    /// A state this version does not know, as the node wrote it.
    Unknown(String),
}

impl NodeState {
    /// Every state this version knows.
    pub const KNOWN: [NodeState; 5] = [
        NodeState::Starting,
        NodeState::Running,
        NodeState::Maintenance,
        NodeState::Draining,
        NodeState::Error,
    ];

    /// The lowercase name used in JSON and in the registry (for
    /// [`NodeState::Unknown`], the word as it was read).
    pub fn as_str(&self) -> &str {
        match self {
            NodeState::Starting => "starting",
            NodeState::Running => "running",
            NodeState::Maintenance => "maintenance",
            NodeState::Draining => "draining",
            NodeState::Error => "error",
            NodeState::Unknown(word) => word,
        }
    }

    /// The state a word names; any other word is [`NodeState::Unknown`].
    pub fn parse(word: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|known| known.as_str() == word)
            .unwrap_or_else(|| NodeState::Unknown(word.to_string()))
    }

    /// Serving (`running`), or ready to serve once maintenance is cleared
    /// (`maintenance`).
    pub fn is_up(&self) -> bool {
        matches!(self, NodeState::Running | NodeState::Maintenance)
    }
}

impl From<String> for NodeState {
    fn from(word: String) -> Self {
        match NodeState::parse(&word) {
            NodeState::Unknown(_) => NodeState::Unknown(word),
            known => known,
        }
    }
}

impl From<NodeState> for String {
    fn from(state: NodeState) -> Self {
        match state {
            NodeState::Unknown(word) => word,
            known => known.as_str().to_string(),
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
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

    #[test]
    fn every_state_keeps_its_word_on_the_wire() {
        for (state, word) in [
            (NodeState::Starting, "\"starting\""),
            (NodeState::Running, "\"running\""),
            (NodeState::Maintenance, "\"maintenance\""),
            (NodeState::Draining, "\"draining\""),
            (NodeState::Error, "\"error\""),
        ] {
            assert_eq!(serde_json::to_string(&state).unwrap(), word);
            assert_eq!(serde_json::from_str::<NodeState>(word).unwrap(), state);
        }
    }

    #[test]
    fn a_state_of_another_version_reads_and_is_written_back_as_it_was() {
        let state: NodeState = serde_json::from_str("\"warming_up\"").unwrap();
        assert_eq!(state, NodeState::Unknown("warming_up".into()));
        assert_eq!(state.to_string(), "warming_up");
        assert!(!state.is_up());
        assert_eq!(serde_json::to_string(&state).unwrap(), "\"warming_up\"");
    }

    #[test]
    fn a_state_pads_like_its_word_in_a_table() {
        assert_eq!(format!("[{:<9}]", NodeState::Running), "[running  ]");
        assert_eq!(
            format!("[{:<6}]", NodeState::Unknown("odd".into())),
            "[odd   ]"
        );
    }
}
