//! The `manual` executor: shows the operator what to do on each node and
//! waits for the confirmation that it is done. `{node}` and `{version}` in
//! the instructions are substituted (and checked like command values).

use super::command::{preview, render};
use super::per_node::{NodeActions, PerNode};
use super::{ExecError, ExecResult, StepIo};
use crate::runbook::config::{ManualConfig, NodeConfig};
use crate::runbook::operator::{Decision, PromptKind};

/// Instructions for a human, per node.
pub type ManualExecutor = PerNode<Instructions>;

impl ManualExecutor {
    /// Instructions and nodes from the configuration.
    pub fn new(config: ManualConfig, nodes: Vec<NodeConfig>) -> Self {
        PerNode::with_actions(Instructions { config }, nodes)
    }
}

/// The instructions: what the `manual` executor asks for one node.
#[derive(Debug, Clone)]
pub struct Instructions {
    config: ManualConfig,
}

impl Instructions {
    async fn instruct(&self, node: &str, text: String, io: &dyn StepIo) -> Result<(), ExecError> {
        io.line(&format!("{node}: {text}"));
        let decision = io
            .ask(
                PromptKind::ManualAction,
                format!("{text}\nConfirm when done."),
                vec![Decision::Confirm, Decision::Abort],
            )
            .await;
        if decision == Decision::Confirm {
            io.line(&format!("{node}: done (confirmed by the operator)"));
            Ok(())
        } else {
            Err(ExecError::Declined(text))
        }
    }
}

#[async_trait::async_trait]
impl NodeActions for Instructions {
    const KIND: &'static str = "manual";

    fn describe_stop(&self) -> String {
        format!("ask the operator, for each node: \"{}\"", self.config.stop)
    }

    fn describe_start(&self, node: &NodeConfig, version: &str) -> String {
        let text = preview(&self.config.start, &node.name, version);
        format!("ask the operator: \"{text}\"")
    }

    fn check_stop(&self, node: &NodeConfig) -> Result<(), ExecError> {
        render(&self.config.stop, &node.name, None).map(|_| ())
    }

    async fn stop(&self, node: &NodeConfig, io: &dyn StepIo) -> ExecResult {
        let text = render(&self.config.stop, &node.name, None)?;
        self.instruct(&node.name, text, io).await
    }

    async fn start(&self, node: &NodeConfig, version: &str, io: &dyn StepIo) -> ExecResult {
        let text = render(&self.config.start, &node.name, Some(version))?;
        self.instruct(&node.name, text, io).await
    }
}
