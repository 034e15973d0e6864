//! The executors that act on the configured `[[nodes]]` one at a time
//! (`process`, `command`, `manual`). What they share is this one
//! [`Executor`], [`PerNode`]: the slots in rollout order, finding a slot's
//! node, refusing an unsafe node name or version before anything runs,
//! checking every node before stopping any, and stopping one after another
//! (or all at once). What differs is their [`NodeActions`].

use super::{ExecError, ExecResult, Executor, NodeSlot, StepIo, check_value, slots_of};
use crate::runbook::config::NodeConfig;

/// How one kind of executor stops and starts a single node.
#[async_trait::async_trait]
pub trait NodeActions: Send + Sync {
    /// `process`, `command` or `manual`.
    const KIND: &'static str;
    /// Stop every node at once (`true`) or one after another.
    const STOP_TOGETHER: bool = false;

    /// What stopping every node will do (for the plan).
    fn describe_stop(&self) -> String;

    /// What starting `node` on `version` will do (for the plan).
    fn describe_start(&self, node: &NodeConfig, version: &str) -> String;

    /// Refuse stopping `node` before any node is stopped (a command that
    /// cannot be rendered fails the whole step, not half of it).
    fn check_stop(&self, _node: &NodeConfig) -> Result<(), ExecError> {
        Ok(())
    }

    /// Stop `node` (nothing to do if it is stopped).
    async fn stop(&self, node: &NodeConfig, io: &dyn StepIo) -> ExecResult;

    /// Make `node` run `version` and start it (nothing to do if it does).
    async fn start(&self, node: &NodeConfig, version: &str, io: &dyn StepIo) -> ExecResult;
}

/// An [`Executor`] over the configured nodes, acting through `A`. It
/// dereferences to `A`, so an executor's own methods (e.g.
/// `ProcessExecutor::running`) are called on it directly.
#[derive(Debug, Clone)]
pub struct PerNode<A> {
    actions: A,
    nodes: Vec<NodeConfig>,
}

impl<A> PerNode<A> {
    /// `actions` on `nodes`, in rollout order.
    pub fn with_actions(actions: A, nodes: Vec<NodeConfig>) -> Self {
        Self { actions, nodes }
    }

    /// The nodes, in rollout order.
    pub fn nodes(&self) -> &[NodeConfig] {
        &self.nodes
    }

    fn node(&self, name: &str) -> Result<&NodeConfig, ExecError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| ExecError::Process {
                node: name.to_string(),
                message: "not in the runbook configuration".to_string(),
            })
    }
}

impl<A> std::ops::Deref for PerNode<A> {
    type Target = A;

    fn deref(&self) -> &A {
        &self.actions
    }
}

#[async_trait::async_trait]
impl<A: NodeActions> Executor for PerNode<A> {
    fn kind(&self) -> &'static str {
        A::KIND
    }

    fn slots(&self) -> Vec<NodeSlot> {
        slots_of(&self.nodes)
    }

    fn describe_stop(&self) -> String {
        self.actions.describe_stop()
    }

    fn describe_start(&self, slot: &NodeSlot, version: &str) -> String {
        match self.node(&slot.name) {
            Ok(node) => self.actions.describe_start(node, version),
            Err(e) => e.to_string(),
        }
    }

    async fn stop_all(&self, io: &dyn StepIo) -> Result<(), ExecError> {
        for node in &self.nodes {
            check_value("node name", &node.name)?;
            self.actions.check_stop(node)?;
        }
        if A::STOP_TOGETHER {
            let stops = self.nodes.iter().map(|n| self.actions.stop(n, io));
            futures::future::join_all(stops)
                .await
                .into_iter()
                .collect::<Result<Vec<()>, _>>()?;
        } else {
            for node in &self.nodes {
                self.actions.stop(node, io).await?;
            }
        }
        Ok(())
    }

    async fn start(
        &self,
        slot: &NodeSlot,
        version: &str,
        io: &dyn StepIo,
    ) -> Result<(), ExecError> {
        check_value("node name", &slot.name)?;
        check_value("version", version)?;
        let node = self.node(&slot.name)?;
        self.actions.start(node, version, io).await
    }
}
