//! Worker processes of the fault suite seen from the scenario: a child role
//! started with its stdout read line by line (the child's report channel),
//! kill -9, resume after a pause, and the small `key=value` argument format
//! the roles take.

#![allow(dead_code)] // each scenario uses the parts it needs

use crate::harness::child_command;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One child process of this binary running a role; killed on drop.
pub struct ChildProc {
    pub label: String,
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
    pid: u32,
    lines: mpsc::Receiver<String>,
}

impl ChildProc {
    /// Start `role` with `args`; `label` names it in messages.
    pub fn spawn(role: &str, args: &[String], label: &str) -> Result<Self, String> {
        Self::spawn_with_env(role, args, label, &[])
    }

    /// [`ChildProc::spawn`] with variables set in the child's environment.
    pub fn spawn_with_env(
        role: &str,
        args: &[String],
        label: &str,
        env: &[(&str, String)],
    ) -> Result<Self, String> {
        let mut child = child_command(role)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start child {label} ({role}): {e}"))?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Self {
            label: label.to_string(),
            child: Some(child),
            stdin,
            pid,
            lines,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The lines the child printed since the last call.
    pub fn new_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// After the child exited or was killed: the lines it printed that were
    /// not read yet (waits at most 200 ms for the pipe to drain).
    pub fn remaining_lines(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut out = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(line);
        }
        out
    }

    /// Wait up to `within` for a line starting with `prefix`; every line
    /// read meanwhile (that one included) is returned.
    pub fn wait_for_line(&self, prefix: &str, within: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with(prefix);
                    seen.push(line);
                    if done {
                        return Ok(seen);
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "child {} did not print {prefix:?} within {within:?} (printed {seen:?})",
                        self.label
                    ));
                }
            }
        }
    }

    /// Ask the child to finish what it is doing and exit: close its stdin
    /// (the role watches it with [`stop_flag`]).
    pub fn ask_to_stop(&mut self) {
        self.stdin = None;
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send SIGCONT (resume a child that stopped itself).
    pub fn resume(&self) {
        if self.child.is_some() {
            signal(self.pid, nix::sys::signal::Signal::SIGCONT);
        }
    }

    /// The exit status once the child has exited by itself.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Wait up to `within` for the child to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if self.child.is_none() || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Send `sig` to the process `pid` (one of ours).
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// A role's `key=value` arguments.
pub struct Args(HashMap<String, String>);

impl Args {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for a in args {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| format!("child argument {a:?} is not key=value"))?;
            map.insert(k.to_string(), v.to_string());
        }
        Ok(Self(map))
    }

    pub fn str(&self, key: &str) -> Result<&str, String> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("child argument {key}= is missing"))
    }

    pub fn num<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        self.str(key)?
            .parse()
            .map_err(|_| format!("child argument {key}= is not a number"))
    }
}

/// `key=value` arguments from pairs.
pub fn args(pairs: &[(&str, String)]) -> Vec<String> {
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Print one report line to the parent and flush it at once (the child may
/// be killed right after).
pub fn report_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A multi-threaded tokio runtime for a scenario or a child role.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
}

/// A connection to the PostgreSQL database at `url`, its driver task spawned
/// on the current runtime.
pub async fn pg(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL {url}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Run a scenario body, turning a panic (a failed setup assertion in a
/// shared helper) into the scenario's error instead of ending the suite.
pub fn no_panic(body: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .map_or_else(|| "panicked".to_string(), |m| format!("panicked: {m}"))),
    }
}

/// In a child role: a flag that turns true when the parent closes our stdin
/// (it asks us to stop, or it died).
pub fn stop_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::io::Read;
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let set = flag.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        set.store(true, std::sync::atomic::Ordering::Release);
    });
    flag
}
