//! The `process` executor: local `clusterops node` processes, for
//! development, the demo and the tests. Start spawns the binary detached
//! (own session, output appended to `<node>.log`) and writes `<node>.pid`
//! in the state directory, so a resumed runbook finds it; stop sends
//! SIGTERM to its process group, then SIGKILL after the timeout.
//! Linux only: liveness and pid reuse are checked through `/proc`.

use super::{ExecError, Executor, NodeSlot, StepIo, check_value, slots_of};
use crate::runbook::config::{NodeConfig, ProcessConfig};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What a pid file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidFile {
    /// OS pid (also its process group and session id).
    pub pid: i32,
    /// Version it was started with.
    pub version: String,
    /// Unix ms at start.
    pub started_at_ms: u64,
    /// Start time from `/proc/<pid>/stat` (clock ticks after boot), to tell
    /// our process from a later one that reused the pid.
    pub proc_start: Option<u64>,
}

/// Local processes.
#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    config: ProcessConfig,
    nodes: Vec<NodeConfig>,
    dir: PathBuf,
}

/// Start time of a process (field 22 of `/proc/<pid>/stat`), `None` if gone.
fn proc_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: split after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field 22 is index 19.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

impl ProcessExecutor {
    /// Nodes from the configuration; pid files and logs in `dir`.
    pub fn new(config: ProcessConfig, nodes: Vec<NodeConfig>, dir: PathBuf) -> Self {
        Self { config, nodes, dir }
    }

    /// `<dir>/<node>.pid`.
    pub fn pid_path(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.pid"))
    }

    /// `<dir>/<node>.log`.
    pub fn log_path(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.log"))
    }

    /// The pid file of a node whose process is still the one we started.
    pub fn running(&self, node: &str) -> Option<PidFile> {
        let text = std::fs::read_to_string(self.pid_path(node)).ok()?;
        let pf: PidFile = serde_json::from_str(&text).ok()?;
        let now = proc_start(pf.pid)?;
        (pf.proc_start.is_none_or(|s| s == now)).then_some(pf)
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

    async fn stop_one(&self, node: &str, io: &dyn StepIo) -> Result<(), ExecError> {
        let path = self.pid_path(node);
        let Some(pf) = self.running(node) else {
            if path.exists() {
                let _ = std::fs::remove_file(&path);
                io.line(&format!("{node}: not running (stale pid file removed)"));
            } else {
                io.line(&format!("{node}: not running"));
            }
            return Ok(());
        };
        let pid = Pid::from_raw(pf.pid);
        let signal_all = |sig: Signal| killpg(pid, sig).or_else(|_| kill(pid, sig));
        if let Err(e) = signal_all(Signal::SIGTERM) {
            return Err(ExecError::Process {
                node: node.to_string(),
                message: format!("cannot send SIGTERM to pid {}: {e}", pf.pid),
            });
        }
        io.line(&format!("{node}: SIGTERM sent to pid {}", pf.pid));
        let started = Instant::now();
        let timeout = Duration::from_secs(self.config.stop_timeout_s);
        while started.elapsed() < timeout {
            if proc_start(pf.pid).is_none() {
                let _ = std::fs::remove_file(&path);
                io.line(&format!(
                    "{node}: exited after {} ms",
                    started.elapsed().as_millis()
                ));
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = signal_all(Signal::SIGKILL);
        io.line(&format!(
            "{node}: still running after {} s: SIGKILL sent to pid {}",
            self.config.stop_timeout_s, pf.pid
        ));
        let killed = Instant::now();
        while killed.elapsed() < Duration::from_secs(5) {
            if proc_start(pf.pid).is_none() {
                let _ = std::fs::remove_file(&path);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(ExecError::Timeout {
            node: node.to_string(),
            what: format!("SIGKILL of pid {}", pf.pid),
            secs: self.config.stop_timeout_s + 5,
        })
    }

    fn spawn(&self, node: &NodeConfig, version: &str) -> Result<PidFile, ExecError> {
        let fail = |message: String| ExecError::Process {
            node: node.name.clone(),
            message,
        };
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", self.dir.display())))?;
        let log_path = self.log_path(&node.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| fail(format!("cannot open {}: {e}", log_path.display())))?;
        let log2 = log.try_clone().map_err(|e| fail(e.to_string()))?;
        let mut cmd = std::process::Command::new(&self.config.binary);
        cmd.args(&self.config.args);
        if let Some(listen) = &node.listen {
            cmd.args(["--listen", listen]);
        }
        if let Some(env_file) = &node.env_file {
            cmd.arg("--env-file").arg(env_file);
        }
        cmd.args(["--app-version", version, "--node-id", &node.name])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        // SAFETY: setsid is async-signal-safe and touches no memory of the
        // parent; it detaches the node from our session and terminal so it
        // outlives the runbook and gets its own process group. The one unsafe
        // block of the crate: std's safe `process_group` would keep the node
        // in our session (and terminal), which is what this must not do.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = tokio::process::Command::from(cmd).spawn().map_err(|e| {
            fail(format!(
                "cannot start {}: {e}",
                self.config.binary.display()
            ))
        })?;
        let pid = child
            .id()
            .map(|p| p as i32)
            .ok_or_else(|| fail("exited at once".to_string()))?;
        // Reap it when it exits so it never lingers as a zombie while we run.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        let pf = PidFile {
            pid,
            version: version.to_string(),
            started_at_ms: crate::runbook::journal::now_ms(),
            proc_start: proc_start(pid),
        };
        let json = serde_json::to_string(&pf).map_err(|e| fail(e.to_string()))?;
        write_atomic(&self.pid_path(&node.name), json.as_bytes())
            .map_err(|e| fail(format!("cannot write its pid file: {e}")))?;
        Ok(pf)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("pid.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

#[async_trait::async_trait]
impl Executor for ProcessExecutor {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn slots(&self) -> Vec<NodeSlot> {
        slots_of(&self.nodes)
    }

    fn describe_stop(&self) -> String {
        format!(
            "SIGTERM to each node's process group (pid files in {}), SIGKILL after {} s",
            self.dir.display(),
            self.config.stop_timeout_s
        )
    }

    fn describe_start(&self, slot: &NodeSlot, version: &str) -> String {
        let listen = self
            .nodes
            .get(slot.index)
            .and_then(|n| n.listen.clone())
            .unwrap_or_default();
        format!(
            "spawn `{} {} --listen {listen} --app-version {version} --node-id {}` detached, log in {}",
            self.config.binary.display(),
            self.config.args.join(" "),
            slot.name,
            self.log_path(&slot.name).display()
        )
    }

    async fn stop_all(&self, io: &dyn StepIo) -> Result<(), ExecError> {
        let results =
            futures::future::join_all(self.nodes.iter().map(|n| self.stop_one(&n.name, io))).await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
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
        if let Some(pf) = self.running(&node.name) {
            if pf.version == version {
                io.line(&format!(
                    "{}: already running version {version} (pid {})",
                    node.name, pf.pid
                ));
                return Ok(());
            }
            io.line(&format!(
                "{}: running version {} (pid {}): stopping it first",
                node.name, pf.version, pf.pid
            ));
            self.stop_one(&node.name, io).await?;
        }
        let pf = self.spawn(node, version)?;
        io.line(&format!(
            "{}: started version {version} as pid {} (log {})",
            node.name,
            pf.pid,
            self.log_path(&node.name).display()
        ));
        // A node that cannot start usually exits at once: say so now, with
        // its last log lines, instead of after the health timeout.
        tokio::time::sleep(Duration::from_millis(150)).await;
        if proc_start(pf.pid).is_none() {
            let _ = std::fs::remove_file(self.pid_path(&node.name));
            return Err(ExecError::Process {
                node: node.name.clone(),
                message: format!(
                    "exited right after starting; log: {}",
                    log_tail(&self.log_path(&node.name))
                ),
            });
        }
        Ok(())
    }
}
