//! The `manual` executor: shows the operator what to do on each node and
//! waits for the confirmation that it is done. `{node}` and `{version}` in
//! the instructions are substituted (and checked like command values).

use super::command::render;
use super::{ExecError, Executor, NodeSlot, StepIo, slots_of};
use crate::runbook::config::{ManualConfig, NodeConfig};
use crate::runbook::operator::{Decision, PromptKind};

/// Instructions for a human.
#[derive(Debug, Clone)]
pub struct ManualExecutor {
    config: ManualConfig,
    nodes: Vec<NodeConfig>,
}

impl ManualExecutor {
    /// Instructions and nodes from the configuration.
    pub fn new(config: ManualConfig, nodes: Vec<NodeConfig>) -> Self {
        Self { config, nodes }
    }

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
impl Executor for ManualExecutor {
    fn kind(&self) -> &'static str {
        "manual"
    }

    fn slots(&self) -> Vec<NodeSlot> {
        slots_of(&self.nodes)
    }

    fn describe_stop(&self) -> String {
        format!("ask the operator, for each node: \"{}\"", self.config.stop)
    }

    fn describe_start(&self, slot: &NodeSlot, version: &str) -> String {
        let text = super::command::preview(&self.config.start, &slot.name, version);
        format!("ask the operator: \"{text}\"")
    }

    async fn stop_all(&self, io: &dyn StepIo) -> Result<(), ExecError> {
        for n in &self.nodes {
            let text = render(&self.config.stop, &n.name, None)?;
            self.instruct(&n.name, text, io).await?;
        }
        Ok(())
    }

    async fn start(
        &self,
        slot: &NodeSlot,
        version: &str,
        io: &dyn StepIo,
    ) -> Result<(), ExecError> {
        let text = render(&self.config.start, &slot.name, Some(version))?;
        self.instruct(&slot.name, text, io).await
    }
}
