//! The `[executor]` section of the runbook configuration: which executor
//! stops and starts the nodes (`process`, `command`, `kubernetes`,
//! `manual`) and its settings.

use serde::Deserialize;
use std::path::PathBuf;

/// `[executor]`, chosen by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ExecutorConfig {
    /// Local `clusterops node` processes.
    Process(ProcessConfig),
    /// Shell command templates per node.
    Command(CommandConfig),
    /// A Deployment or StatefulSet.
    Kubernetes(KubernetesConfig),
    /// Instructions for a human.
    Manual(ManualConfig),
}

impl ExecutorConfig {
    /// `process`, `command`, `kubernetes` or `manual`.
    pub fn kind(&self) -> &'static str {
        match self {
            ExecutorConfig::Process(_) => "process",
            ExecutorConfig::Command(_) => "command",
            ExecutorConfig::Kubernetes(_) => "kubernetes",
            ExecutorConfig::Manual(_) => "manual",
        }
    }
}

/// `kind = "process"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// The `clusterops` binary (or any program taking the same flags).
    pub binary: PathBuf,
    /// Arguments before the flags the executor adds (default: `["node"]`).
    #[serde(default = "default_process_args")]
    pub args: Vec<String>,
    /// Seconds between SIGTERM and SIGKILL.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_s: u64,
}

fn default_process_args() -> Vec<String> {
    vec!["node".to_string()]
}

fn default_stop_timeout() -> u64 {
    20
}

/// `kind = "command"`: templates run with `sh -c`; only `{node}` and
/// `{version}` are substituted, both checked against [`SAFE_VALUE`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Stop one node.
    pub stop: String,
    /// Install or pull `{version}` on one node (optional).
    #[serde(default)]
    pub upgrade: Option<String>,
    /// Start one node on `{version}`.
    pub start: String,
    /// Seconds one command may take.
    #[serde(default = "default_command_timeout")]
    pub timeout_s: u64,
}

fn default_command_timeout() -> u64 {
    300
}

/// `kind = "kubernetes"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Kubernetes namespace.
    #[serde(default = "default_k8s_namespace")]
    pub namespace: String,
    /// `deployment` or `statefulset`.
    #[serde(default)]
    pub workload: WorkloadKind,
    /// Name of the Deployment or StatefulSet.
    pub name: String,
    /// Container whose image is changed.
    pub container: String,
    /// Image without its tag; the tag becomes the version.
    pub image: String,
    /// Replicas after the rollout (N).
    pub replicas: u32,
    /// API server URL; default: the kubeconfig or the in-cluster config.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Seconds to wait for pods to go (scale to 0) or become Ready.
    #[serde(default = "default_pod_wait")]
    pub pod_wait_s: u64,
}

fn default_pod_wait() -> u64 {
    300
}

fn default_k8s_namespace() -> String {
    "default".to_string()
}

/// `executor.workload`: the kind of Kubernetes workload that is the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WorkloadKind {
    /// `deployment` (the default).
    #[default]
    Deployment,
    /// `statefulset`.
    StatefulSet,
}

impl WorkloadKind {
    /// The word in the configuration file (`deployment`, `statefulset`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every refusal names the key: `executor.workload "daemonset": expected
/// deployment or statefulset`, and for a value of another type serde's
/// `invalid type: integer `3`, expected …` ends with the same key.
impl<'de> Deserialize<'de> for WorkloadKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Word;
        impl serde::de::Visitor<'_> for Word {
            type Value = WorkloadKind;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("deployment or statefulset for executor.workload")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<WorkloadKind, E> {
                match v {
                    "deployment" => Ok(WorkloadKind::Deployment),
                    "statefulset" => Ok(WorkloadKind::StatefulSet),
                    _ => Err(E::custom(format!(
                        "executor.workload {v:?}: expected deployment or statefulset"
                    ))),
                }
            }
        }
        d.deserialize_str(Word)
    }
}

/// `kind = "manual"`: instructions; `{node}` and `{version}` are substituted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualConfig {
    /// How to stop a node.
    #[serde(default = "default_manual_stop")]
    pub stop: String,
    /// How to upgrade and start a node.
    #[serde(default = "default_manual_start")]
    pub start: String,
}

fn default_manual_stop() -> String {
    "Stop the app on node {node}.".to_string()
}

fn default_manual_start() -> String {
    "Install version {version} on node {node} and start it.".to_string()
}
