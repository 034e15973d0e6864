//! The `process` executor: local `clusterops node` processes, for
//! development, the demo and the tests. Start spawns the binary detached
//! (own session, output appended to `<node>.log`) and writes `<node>.pid`
//! in the state directory, so a resumed runbook finds it; stop sends
//! SIGTERM to its process group, then SIGKILL after the timeout.
//! Linux only: liveness and pid reuse are checked through `/proc`.

use super::per_node::{NodeActions, PerNode};
use super::{ExecError, ExecResult, StepIo};
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

/// Local processes, one per node.
pub type ProcessExecutor = PerNode<Processes>;

impl ProcessExecutor {
    /// Nodes from the configuration; pid files and logs in `dir`.
    pub fn new(config: ProcessConfig, nodes: Vec<NodeConfig>, dir: PathBuf) -> Self {
        PerNode::with_actions(Processes { config, dir }, nodes)
    }
}

/// How the `process` executor starts and stops one node: the binary, and
/// the folder of pid files and logs.
#[derive(Debug, Clone)]
pub struct Processes {
    config: ProcessConfig,
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

impl Processes {
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

    async fn stop_one(&self, node: &str, io: &dyn StepIo) -> Result<(), ExecError> {
        let path = self.pid_path(node);
        let Some(pf) = self.running(node) else {
            if tokio::fs::remove_file(&path).await.is_ok() {
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
                let _ = tokio::fs::remove_file(&path).await;
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
                let _ = tokio::fs::remove_file(&path).await;
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

    async fn spawn(&self, node: &NodeConfig, version: &str) -> Result<PidFile, ExecError> {
        let fail = |message: String| ExecError::Process {
            node: node.name.clone(),
            message,
        };
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| fail(format!("cannot create {}: {e}", self.dir.display())))?;
        let log_path = self.log_path(&node.name);
        let log = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .await
            .map_err(|e| fail(format!("cannot open {}: {e}", log_path.display())))?
            .into_std()
            .await;
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
            started_at_ms: crate::clock::now_ms(),
            proc_start: proc_start(pid),
        };
        let json = serde_json::to_string(&pf).map_err(|e| fail(e.to_string()))?;
        let path = self.pid_path(&node.name);
        // The write and its fsync on a blocking thread, not the runtime's.
        tokio::task::spawn_blocking(move || write_atomic(&path, json.as_bytes()))
            .await
            .map_err(std::io::Error::other)
            .and_then(|written| written)
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

/// The last `n` lines of a log, joined by ` | `, read backwards from its
/// end in blocks (a node's log may be large; its tail is all we show). An
/// unreadable log is empty.
pub fn log_tail(path: &Path, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: u64 = 8 * 1024;
    /// Enough for five long lines; a longer tail is cut at its start.
    const MAX: u64 = 64 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let Ok(len) = file.seek(SeekFrom::End(0)) else {
        return String::new();
    };
    let mut start = len;
    let mut tail: Vec<u8> = Vec::new();
    // Stop once the tail holds n line ends besides a final one (then the
    // first of the n lines is whole), at the file's start, or at MAX.
    while start > 0 && len - start < MAX {
        let newlines = tail
            .iter()
            .take(tail.len().saturating_sub(1))
            .filter(|b| **b == b'\n')
            .count();
        if newlines >= n {
            break;
        }
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0; (start - from) as usize];
        if file.seek(SeekFrom::Start(from)).is_err() || file.read_exact(&mut block).is_err() {
            return String::new();
        }
        block.extend_from_slice(&tail);
        tail = block;
        start = from;
    }
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[async_trait::async_trait]
impl NodeActions for Processes {
    const KIND: &'static str = "process";
    const STOP_TOGETHER: bool = true;

    fn describe_stop(&self) -> String {
        format!(
            "SIGTERM to each node's process group (pid files in {}), SIGKILL after {} s",
            self.dir.display(),
            self.config.stop_timeout_s
        )
    }

    fn describe_start(&self, node: &NodeConfig, version: &str) -> String {
        format!(
            "spawn `{} {} --listen {} --app-version {version} --node-id {}` detached, log in {}",
            self.config.binary.display(),
            self.config.args.join(" "),
            node.listen.as_deref().unwrap_or_default(),
            node.name,
            self.log_path(&node.name).display()
        )
    }

    async fn stop(&self, node: &NodeConfig, io: &dyn StepIo) -> ExecResult {
        self.stop_one(&node.name, io).await
    }

    async fn start(&self, node: &NodeConfig, version: &str, io: &dyn StepIo) -> ExecResult {
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
        let pf = self.spawn(node, version).await?;
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
            let _ = tokio::fs::remove_file(self.pid_path(&node.name)).await;
            let log = self.log_path(&node.name);
            let tail = tokio::task::spawn_blocking(move || log_tail(&log, 5))
                .await
                .unwrap_or_default();
            return Err(ExecError::Process {
                node: node.name.clone(),
                message: format!("exited right after starting; log: {tail}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_tail_is_read_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app1.log");
        assert_eq!(log_tail(&path, 5), "", "a missing log is empty");
        // Far more than one block, with a long line among the last five.
        let mut text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let long = "x".repeat(10_000);
        text.push_str(&format!("{long}\nfatal: cannot bind\n"));
        std::fs::write(&path, &text).unwrap();
        assert_eq!(
            log_tail(&path, 5),
            format!("line 19997 | line 19998 | line 19999 | {long} | fatal: cannot bind")
        );
        // Without a final newline, and shorter than asked.
        std::fs::write(&path, "one\ntwo").unwrap();
        assert_eq!(log_tail(&path, 5), "one | two");
        std::fs::write(&path, "").unwrap();
        assert_eq!(log_tail(&path, 5), "");
    }
}
