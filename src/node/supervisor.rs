//! `CLUSTER_MODE`: one supervisor process runs N node processes on this
//! host (each its own node: worker-ID lease, registry record, address),
//! restarts one that dies (with a growing delay, logged), gives up when one
//! keeps dying, and on SIGTERM/SIGINT stops them all and waits for their
//! drain. See docs/node.md ("Several processes per host").

use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Which process of its host's supervisor a node is (in its registry
/// record and status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSlot {
    /// 0-based index among the host's processes (part of the node id).
    pub index: u16,
    /// How many processes the supervisor runs (`CLUSTER_MODE`).
    pub count: u16,
    /// The address every process of the host shares (SO_REUSEPORT): the
    /// one the load balancer sends to.
    pub shared_addr: String,
}

/// The arguments of process `index` (0-based).
pub type ChildArgs = Box<dyn Fn(u16) -> Vec<OsString> + Send + Sync>;

/// How to supervise.
pub struct SupervisorOptions {
    /// The program every process runs (this binary).
    pub program: PathBuf,
    /// How many processes.
    pub count: u16,
    /// Each process's arguments.
    pub args: ChildArgs,
    /// Each process's node id, for the log lines.
    pub names: Vec<String>,
    /// First delay before a restart; doubled on each quick death in a row.
    pub first_delay: Duration,
    /// Longest delay before a restart.
    pub max_delay: Duration,
    /// A process that lived this long before dying starts its count again.
    pub stable_after: Duration,
    /// Give up (stop every process, fail) when one process died this many
    /// times in a row, each before `stable_after`.
    pub give_up_after: u32,
    /// How long the processes may take to stop after SIGTERM (their drain),
    /// before they are killed.
    pub stop_timeout: Duration,
}

impl SupervisorOptions {
    /// Defaults: restarts after 0.5 s, 1 s, 2 s … at most 30 s; a process
    /// that lived 10 s is stable; five quick deaths in a row give up.
    pub fn new(program: PathBuf, names: Vec<String>, args: ChildArgs) -> Self {
        Self {
            program,
            count: u16::try_from(names.len()).unwrap_or(u16::MAX),
            args,
            names,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            stable_after: Duration::from_secs(10),
            give_up_after: 5,
            stop_timeout: Duration::from_secs(30),
        }
    }

    /// The delay before the restart that follows `deaths` quick deaths in a
    /// row (1 = the first).
    pub fn restart_delay(&self, deaths: u32) -> Duration {
        let doublings = deaths.saturating_sub(1).min(16);
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

/// Why the supervisor stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A process could not be started at all.
    #[error("cannot start process {index} ({node_id}): {source}")]
    Spawn {
        /// Its index.
        index: u16,
        /// Its node id.
        node_id: String,
        /// Why.
        source: std::io::Error,
    },
    /// A process kept dying soon after each start.
    #[error(
        "process {index} ({node_id}) died {deaths} times in a row, each within {stable_s} s of its start \
         (last: {last}); stopped every process"
    )]
    KeepsDying {
        /// Its index.
        index: u16,
        /// Its node id.
        node_id: String,
        /// Deaths in a row.
        deaths: u32,
        /// Seconds a process must live to count as started.
        stable_s: u64,
        /// How it ended last.
        last: String,
    },
    /// A process refused its options or configuration (exit 2): a restart
    /// would fail the same way.
    #[error(
        "process {index} ({node_id}) refused to start (exit 2, its error is above); stopped every process"
    )]
    Refused {
        /// Its index.
        index: u16,
        /// Its node id.
        node_id: String,
    },
}

struct Slot {
    child: Option<tokio::process::Child>,
    started: Instant,
    deaths: u32,
    restart_at: Option<Instant>,
}

/// How a process ended, in words.
pub fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "ended".to_string(),
    }
}

impl SupervisorOptions {
    fn spawn(&self, index: u16) -> Result<tokio::process::Child, SupervisorError> {
        tokio::process::Command::new(&self.program)
            .args((self.args)(index))
            .stdin(Stdio::null())
            // Their own process group: a terminal's Ctrl-C reaches the
            // supervisor only, which stops them in order (a process
            // stopping on its own first would look like a death to restart).
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SupervisorError::Spawn {
                index,
                node_id: self.name(index),
                source,
            })
    }

    fn name(&self, index: u16) -> String {
        self.names
            .get(usize::from(index))
            .cloned()
            .unwrap_or_else(|| format!("process {index}"))
    }
}

/// Run the processes until `shutdown` resolves (then stop them all and
/// wait for their drain) or one keeps dying (then stop the others and fail).
pub async fn run(
    opts: SupervisorOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), SupervisorError> {
    let mut slots = Vec::with_capacity(usize::from(opts.count));
    for index in 0..opts.count {
        let child = match opts.spawn(index) {
            Ok(child) => child,
            Err(e) => {
                stop_all(&mut slots, opts.stop_timeout).await;
                return Err(e);
            }
        };
        tracing::info!(process = index, node = %opts.name(index), pid = child.id(), "process started");
        slots.push(Slot {
            child: Some(child),
            started: Instant::now(),
            deaths: 0,
            restart_at: None,
        });
    }
    tracing::info!(processes = opts.count, "supervising (CLUSTER_MODE)");
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let failure = loop {
        tokio::select! {
            _ = &mut shutdown => break None,
            _ = tick.tick() => {}
        }
        if let Some(err) = watch_slots(&opts, &mut slots) {
            break Some(err);
        }
    };
    tracing::info!("stopping every process (SIGTERM), waiting for their drain");
    stop_all(&mut slots, opts.stop_timeout).await;
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Reap the processes that ended and restart the ones whose delay is
/// over; an error when one must not be restarted again.
fn watch_slots(opts: &SupervisorOptions, slots: &mut [Slot]) -> Option<SupervisorError> {
    for (i, slot) in slots.iter_mut().enumerate() {
        let index = u16::try_from(i).unwrap_or(u16::MAX);
        let node_id = opts.name(index);
        if let Some(child) = slot.child.as_mut() {
            let status = match child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(process = index, node = %node_id, "cannot read the process's state: {e}");
                    continue;
                }
            };
            slot.child = None;
            let lived = slot.started.elapsed();
            let last = describe_exit(&status);
            if status.code() == Some(2) {
                tracing::error!(process = index, node = %node_id, "process refused to start (exit 2)");
                return Some(SupervisorError::Refused { index, node_id });
            }
            slot.deaths = if lived >= opts.stable_after {
                1
            } else {
                slot.deaths + 1
            };
            if slot.deaths >= opts.give_up_after {
                tracing::error!(process = index, node = %node_id, deaths = slot.deaths, "{last}: process keeps dying, giving up");
                return Some(SupervisorError::KeepsDying {
                    index,
                    node_id,
                    deaths: slot.deaths,
                    stable_s: opts.stable_after.as_secs(),
                    last,
                });
            }
            let delay = opts.restart_delay(slot.deaths);
            tracing::warn!(
                process = index,
                node = %node_id,
                lived_ms = lived.as_millis() as u64,
                deaths_in_a_row = slot.deaths,
                restart_in_ms = delay.as_millis() as u64,
                "process died ({last}); restarting it"
            );
            slot.restart_at = Some(Instant::now() + delay);
        }
        if slot.child.is_none()
            && let Some(at) = slot.restart_at
            && Instant::now() >= at
        {
            match opts.spawn(index) {
                Ok(child) => {
                    tracing::info!(process = index, node = %node_id, pid = child.id(), "process restarted");
                    slot.child = Some(child);
                    slot.started = Instant::now();
                    slot.restart_at = None;
                }
                Err(e) => {
                    slot.deaths += 1;
                    if slot.deaths >= opts.give_up_after {
                        return Some(e);
                    }
                    let delay = opts.restart_delay(slot.deaths);
                    tracing::warn!(process = index, node = %node_id, "{e}; trying again in {} ms", delay.as_millis());
                    slot.restart_at = Some(Instant::now() + delay);
                }
            }
        }
    }
    None
}

/// SIGTERM every running process, wait up to `timeout` for all of them,
/// then SIGKILL the ones left.
async fn stop_all(slots: &mut [Slot], timeout: Duration) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for slot in slots.iter() {
        if let Some(pid) = slot.child.as_ref().and_then(|c| c.id())
            && let Ok(pid) = i32::try_from(pid)
            && let Err(e) = kill(Pid::from_raw(pid), Signal::SIGTERM)
        {
            tracing::warn!(pid, "cannot send SIGTERM: {e}");
        }
    }
    let waits = slots.iter_mut().enumerate().filter_map(|(i, slot)| {
        let mut child = slot.child.take()?;
        Some(async move {
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(Ok(status)) if status.success() => {
                    tracing::info!(process = i, "process stopped")
                }
                Ok(Ok(status)) => {
                    tracing::warn!(process = i, "process stopped: {}", describe_exit(&status))
                }
                Ok(Err(e)) => tracing::warn!(process = i, "cannot wait for the process: {e}"),
                Err(_) => {
                    tracing::warn!(
                        process = i,
                        "process still running {} s after SIGTERM: killed",
                        timeout.as_secs()
                    );
                    let _ = child.kill().await;
                }
            }
        })
    });
    futures::future::join_all(waits).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_wait_longer_after_each_quick_death_up_to_the_cap() {
        let opts = SupervisorOptions::new(PathBuf::from("x"), vec![], Box::new(|_| vec![]));
        let delays: Vec<u64> = (1..=8)
            .map(|d| opts.restart_delay(d).as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(opts.restart_delay(u32::MAX), Duration::from_secs(30));
    }
}
