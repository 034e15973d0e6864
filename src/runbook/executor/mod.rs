//! Executors: how nodes are stopped and started on one kind of platform.
//! `process` (local `clusterops node` processes), `command` (shell command
//! templates), `kubernetes` (a Deployment or StatefulSet) and `manual`
//! (instructions to a human). The engine only sees [`Executor`]; the three
//! that act on configured nodes one at a time share one implementation of
//! it, [`per_node::PerNode`], over their [`per_node::NodeActions`].

pub mod command;
pub mod kubernetes;
mod kubernetes_workload;
pub mod manual;
pub mod per_node;
pub mod process;

use super::config::{ExecutorConfig, RunbookConfig, SAFE_VALUE, is_safe_value};
use super::operator::{Decision, PromptKind};
use super::plan::StepKind;
use std::path::Path;
use std::sync::Arc;

/// One node position in rollout order. `node_id` is the id the node
/// registers under when the executor knows it (`None` for Kubernetes pods:
/// the engine then counts nodes instead of naming them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSlot {
    /// Position, from 0 (0 is upgraded alone).
    pub index: usize,
    /// Name from the configuration (`{node}`).
    pub name: String,
    /// Registry node id, when known.
    pub node_id: Option<String>,
}

/// What a step gives an executor: a place for output lines and a way to ask
/// the operator (answers are journaled by the engine).
#[async_trait::async_trait]
pub trait StepIo: Send + Sync {
    /// The step running.
    fn step(&self) -> StepKind;
    /// One output line (journaled and shown).
    fn line(&self, line: &str);
    /// Bytes written so far (shown, not journaled).
    fn bytes(&self, written: u64);
    /// Ask the operator.
    async fn ask(&self, kind: PromptKind, message: String, choices: Vec<Decision>) -> Decision;
}

/// An executor failed; the message says what was tried.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A value refused before anything ran.
    #[error("refusing to run: {what} {value:?} does not match {SAFE_VALUE}; nothing was run")]
    UnsafeValue {
        /// `node name` or `version`.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// A command failed.
    #[error("{node}: `{command}` failed ({status}): {output}")]
    Command {
        /// Node.
        node: String,
        /// The command run.
        command: String,
        /// Exit status.
        status: String,
        /// Its last output lines.
        output: String,
    },
    /// Something did not finish in time.
    #[error("{node}: {what} did not finish within {secs} s")]
    Timeout {
        /// Node.
        node: String,
        /// What.
        what: String,
        /// Seconds waited.
        secs: u64,
    },
    /// A process could not be managed.
    #[error("{node}: {message}")]
    Process {
        /// Node.
        node: String,
        /// What went wrong.
        message: String,
    },
    /// The Kubernetes API refused or failed.
    #[error("kubernetes: {0}")]
    Kubernetes(String),
    /// The operator did not confirm a manual action.
    #[error("the operator did not confirm: {0}")]
    Declined(String),
}

/// What an executor's action returns.
pub type ExecResult = Result<(), ExecError>;

/// Check a value substituted into commands or passed as a flag.
pub fn check_value(what: &'static str, value: &str) -> Result<(), ExecError> {
    if is_safe_value(value) {
        Ok(())
    } else {
        Err(ExecError::UnsafeValue {
            what,
            value: value.to_string(),
        })
    }
}

/// Stops and starts the nodes of one cluster. Both operations must be safe
/// to repeat: stopping stopped nodes and starting a node already running
/// the requested version succeed without doing anything.
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// `process`, `command`, `kubernetes` or `manual`.
    fn kind(&self) -> &'static str;

    /// The nodes in rollout order.
    fn slots(&self) -> Vec<NodeSlot>;

    /// What stopping every node will do (for the plan).
    fn describe_stop(&self) -> String;

    /// What starting `slot` on `version` will do (for the plan).
    fn describe_start(&self, slot: &NodeSlot, version: &str) -> String;

    /// Stop every node, returning once the platform says they are stopped.
    async fn stop_all(&self, io: &dyn StepIo) -> Result<(), ExecError>;

    /// Make `slot` run `version` (install or pull it first if needed) and
    /// start it. Returns once started; the engine then waits for health.
    async fn start(&self, slot: &NodeSlot, version: &str, io: &dyn StepIo)
    -> Result<(), ExecError>;
}

/// The executor the configuration asks for. `state_dir` is the root state
/// directory (pid files and logs go under `<state dir>/<cluster>/nodes`).
pub async fn from_config(
    config: &RunbookConfig,
    state_dir: &Path,
) -> Result<Arc<dyn Executor>, ExecError> {
    let cluster_dir = state_dir.join(&config.cluster.name);
    Ok(match &config.executor {
        ExecutorConfig::Process(p) => Arc::new(process::ProcessExecutor::new(
            p.clone(),
            config.nodes.clone(),
            cluster_dir.join("nodes"),
        )),
        ExecutorConfig::Command(c) => Arc::new(command::CommandExecutor::new(
            c.clone(),
            config.nodes.clone(),
        )),
        ExecutorConfig::Kubernetes(k) => {
            Arc::new(kubernetes::KubernetesExecutor::connect(k.clone()).await?)
        }
        ExecutorConfig::Manual(m) => {
            Arc::new(manual::ManualExecutor::new(m.clone(), config.nodes.clone()))
        }
    })
}

/// Slots of configured nodes (registry id known).
pub(crate) fn slots_of(nodes: &[super::config::NodeConfig]) -> Vec<NodeSlot> {
    nodes
        .iter()
        .enumerate()
        .map(|(index, n)| NodeSlot {
            index,
            name: n.name.clone(),
            node_id: Some(n.registry_id().to_string()),
        })
        .collect()
}

/// The executor's wording for a plan, from the configuration alone (no
/// connection is made, not even to Kubernetes).
pub struct Describer {
    inner: DescriberKind,
}

enum DescriberKind {
    Local(Box<dyn Executor>),
    Kubernetes(super::config::KubernetesConfig),
}

impl Describer {
    /// For `config`, with pid files under `state_dir`.
    pub fn new(config: &RunbookConfig, state_dir: &Path) -> Self {
        let nodes = config.nodes.clone();
        let inner = match &config.executor {
            ExecutorConfig::Process(p) => {
                DescriberKind::Local(Box::new(process::ProcessExecutor::new(
                    p.clone(),
                    nodes,
                    state_dir.join(&config.cluster.name).join("nodes"),
                )))
            }
            ExecutorConfig::Command(c) => {
                DescriberKind::Local(Box::new(command::CommandExecutor::new(c.clone(), nodes)))
            }
            ExecutorConfig::Manual(m) => {
                DescriberKind::Local(Box::new(manual::ManualExecutor::new(m.clone(), nodes)))
            }
            ExecutorConfig::Kubernetes(k) => DescriberKind::Kubernetes(k.clone()),
        };
        Self { inner }
    }

    /// The nodes in rollout order.
    pub fn slots(&self) -> Vec<NodeSlot> {
        match &self.inner {
            DescriberKind::Local(e) => e.slots(),
            DescriberKind::Kubernetes(k) => kubernetes::slots(k),
        }
    }

    /// See [`Executor::describe_stop`].
    pub fn stop(&self, _step: StepKind) -> String {
        match &self.inner {
            DescriberKind::Local(e) => e.describe_stop(),
            DescriberKind::Kubernetes(k) => kubernetes::describe_stop(k),
        }
    }

    /// See [`Executor::describe_start`].
    pub fn start(&self, slot: &NodeSlot, version: &str) -> String {
        match &self.inner {
            DescriberKind::Local(e) => e.describe_start(slot, version),
            DescriberKind::Kubernetes(k) => kubernetes::describe_start(k, slot, version),
        }
    }
}
