//! The runbook configuration (TOML): the cluster, its nodes, the executor
//! that stops and starts them, the database to back up, the smoke checks
//! and the timeouts. See `assets/runbook.example.toml` for an annotated one.

pub use super::config_executor::{
    CommandConfig, ExecutorConfig, KubernetesConfig, ManualConfig, ProcessConfig, WorkloadKind,
};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The one pattern for every value substituted into a command, and for node
/// names and versions: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub const SAFE_VALUE: &str = "1 to 64 of A-Z a-z 0-9 . _ -";

/// Whether `value` matches [`SAFE_VALUE`].
pub fn is_safe_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A wrong runbook configuration: the file, and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the runbook configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or not the expected shape (one line, with line and column).
    #[error("runbook configuration {path}: {message}")]
    Parse {
        /// The file (or `<text>`).
        path: String,
        /// The TOML error, with line and column.
        message: String,
    },
    /// A value that is not accepted.
    #[error("runbook configuration: {0}")]
    Invalid(String),
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookConfig {
    /// The cluster.
    pub cluster: ClusterSection,
    /// How nodes are stopped and started.
    pub executor: ExecutorConfig,
    /// The nodes, in rollout order (the first is upgraded alone).
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
    /// The database backup.
    pub backup: BackupConfig,
    /// Checks of the first upgraded node.
    #[serde(default)]
    pub verify: VerifyConfig,
    /// How long each wait may take.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// What happens on a failure at steps 5-8.
    #[serde(default)]
    pub rollback: RollbackConfig,
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `CLUSTER_NAME`; also the journal's folder in the state directory.
    pub name: String,
    /// `host:port` of the load balancer, checked at step 8 (optional).
    #[serde(default)]
    pub load_balancer: Option<String>,
    /// Path checked through the load balancer.
    #[serde(default = "default_health_path")]
    pub health_path: String,
}

fn default_health_path() -> String {
    "/api/__health_check".to_string()
}

/// `[[nodes]]`: one node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Name; `{node}` in command templates; the node id for `process`.
    pub name: String,
    /// Node id in the registry when it differs from `name` (not for `process`).
    #[serde(default)]
    pub node_id: Option<String>,
    /// `process`: `--listen` address.
    #[serde(default)]
    pub listen: Option<String>,
    /// `process`: `--env-file`.
    #[serde(default)]
    pub env_file: Option<PathBuf>,
}

impl NodeConfig {
    /// The id this node registers under.
    pub fn registry_id(&self) -> &str {
        self.node_id.as_deref().unwrap_or(&self.name)
    }
}

/// `[backup]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// `postgres`, `mysql` (also MariaDB) or `none`.
    pub kind: String,
    /// Database URL (`postgres://user:pass@host:port/db`, `mysql://…`).
    #[serde(default)]
    pub url: Option<String>,
    /// Or: the environment variable holding the URL (e.g. `DB_URL`).
    #[serde(default)]
    pub url_env: Option<String>,
    /// Folder for dumps (default: `<state dir>/<cluster>/backups`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// `[verify]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Header sent with smoke checks; its value is the run id. A node may
    /// let such requests through its maintenance gate (see docs/runbook.md).
    #[serde(default = "default_bypass_header")]
    pub bypass_header: String,
    /// Smoke checks against the first upgraded node.
    #[serde(default)]
    pub smoke: Vec<SmokeCheck>,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            bypass_header: default_bypass_header(),
            smoke: Vec::new(),
        }
    }
}

fn default_bypass_header() -> String {
    "X-Clusterops-Runbook".to_string()
}

/// `[[verify.smoke]]`: one HTTP request and what must come back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeCheck {
    /// HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Path, starting with `/`.
    pub path: String,
    /// Expected status code.
    #[serde(default = "default_expect")]
    pub expect_status: u16,
    /// Substring the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
}

fn default_method() -> String {
    "GET".to_string()
}

fn default_expect() -> u16 {
    200
}

/// `[timeouts]`, in seconds (poll interval in ms). A value left out keeps
/// its default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Step 2: until every node reports maintenance.
    pub drain_s: u64,
    /// Step 3: until no node is alive and all leases are free.
    pub stop_s: u64,
    /// Step 5: until the first node has migrated and is healthy.
    pub first_node_s: u64,
    /// Step 7: per node.
    pub node_s: u64,
    /// Step 8: until the nodes run and the load balancer answers 200.
    pub restore_s: u64,
    /// Poll interval while waiting.
    pub poll_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            drain_s: 60,
            stop_s: 120,
            first_node_s: 600,
            node_s: 180,
            restore_s: 60,
            poll_ms: 500,
        }
    }
}

impl Timeouts {
    /// Poll interval.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(10))
    }
}

/// `[rollback]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackConfig {
    /// With `--yes` (no one to ask): roll back on a failure at steps 5-8
    /// instead of stopping there.
    #[serde(default)]
    pub automatic: bool,
}

/// A TOML error in one line, `line L, column C: what` (toml's own message
/// draws the line with a caret, over several lines).
fn toml_error_line(text: &str, e: &toml::de::Error) -> String {
    let what: Vec<&str> = (e.message().lines().map(str::trim))
        .filter(|l| !l.is_empty())
        .collect();
    let what = what.join("; ");
    let Some(span) = e.span() else { return what };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: {what}")
}

impl RunbookConfig {
    /// Read and validate a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse and validate TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: RunbookConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: toml_error_line(text, &e),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if crate::config::Namespace::validate(&self.cluster.name).is_err() {
            return bad(format!(
                "cluster.name {:?}: expected the CLUSTER_NAME, {SAFE_VALUE} starting with a letter or digit",
                self.cluster.name
            ));
        }
        let mut seen = HashSet::new();
        for n in &self.nodes {
            if !is_safe_value(&n.name) {
                return bad(format!("node name {:?}: expected {SAFE_VALUE}", n.name));
            }
            if !is_safe_value(n.registry_id()) {
                return bad(format!(
                    "node {}: node_id {:?}: expected {SAFE_VALUE}",
                    n.name,
                    n.registry_id()
                ));
            }
            if !seen.insert(n.name.clone()) {
                return bad(format!("node name {:?} appears twice", n.name));
            }
        }
        match &self.executor {
            ExecutorConfig::Kubernetes(k) => {
                if k.replicas == 0 {
                    return bad("executor.replicas: at least 1".to_string());
                }
                if !self.nodes.is_empty() {
                    return bad(
                        "kubernetes executor: remove [[nodes]], the replicas are the nodes"
                            .to_string(),
                    );
                }
            }
            other => {
                if self.nodes.is_empty() {
                    return bad(format!(
                        "the {} executor needs at least one [[nodes]] entry",
                        other.kind()
                    ));
                }
            }
        }
        if let ExecutorConfig::Process(_) = &self.executor {
            for n in &self.nodes {
                if n.listen.is_none() {
                    return bad(format!(
                        "node {}: the process executor needs listen = \"host:port\"",
                        n.name
                    ));
                }
                if n.node_id.is_some() {
                    return bad(format!(
                        "node {}: the process executor uses the name as node id; remove node_id",
                        n.name
                    ));
                }
            }
        }
        if let ExecutorConfig::Command(c) = &self.executor {
            for (field, t) in [
                ("stop", Some(&c.stop)),
                ("start", Some(&c.start)),
                ("upgrade", c.upgrade.as_ref()),
            ] {
                if let Some(t) = t
                    && let Err(e) = super::executor::command::check_template(t)
                {
                    return bad(format!("executor.{field}: {e}"));
                }
            }
        }
        match self.backup.kind.as_str() {
            "none" => {}
            "postgres" | "mysql" => {
                if self.backup.url.is_none() == self.backup.url_env.is_none() {
                    return bad("backup: give exactly one of url or url_env".to_string());
                }
            }
            other => {
                return bad(format!(
                    "backup.kind {other:?}: expected postgres, mysql or none"
                ));
            }
        }
        for s in &self.verify.smoke {
            if !s.path.starts_with('/') {
                return bad(format!("verify.smoke path {:?}: must start with /", s.path));
            }
            if reqwest::Method::from_bytes(s.method.as_bytes()).is_err() {
                return bad(format!(
                    "verify.smoke method {:?} is not an HTTP method",
                    s.method
                ));
            }
        }
        if reqwest::header::HeaderName::from_bytes(self.verify.bypass_header.as_bytes()).is_err() {
            return bad(format!(
                "verify.bypass_header {:?} is not a header name",
                self.verify.bypass_header
            ));
        }
        super::config_ranges::check(self)
    }

    /// Node names in rollout order (`replica-1..N` for Kubernetes).
    pub fn node_names(&self) -> Vec<String> {
        match &self.executor {
            ExecutorConfig::Kubernetes(k) => {
                (1..=k.replicas).map(|i| format!("replica-{i}")).collect()
            }
            _ => self.nodes.iter().map(|n| n.name.clone()).collect(),
        }
    }
}
