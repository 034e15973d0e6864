//! The `command` executor: per-node shell command templates (`ssh app1
//! docker compose stop app`, `systemctl …`). The only substituted values
//! are `{node}` (a node name from the configuration file) and `{version}`
//! (the version asked for), both checked against the safe-value pattern
//! before anything runs; nothing read from Redis is ever put in a command.
//! Commands run with `sh -c` in their own process group, output captured
//! into the step output, killed after the timeout.

use super::per_node::{NodeActions, PerNode};
use super::{ExecError, ExecResult, StepIo, check_value};
use crate::runbook::config::{CommandConfig, NodeConfig};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Placeholders a template may use.
pub const PLACEHOLDERS: [&str; 2] = ["node", "version"];

/// Check a template: every `{word}` (not `${word}`, which is the shell's)
/// must be `{node}` or `{version}`.
pub fn check_template(template: &str) -> Result<(), String> {
    for name in placeholders(template) {
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} in {template:?}; only {{node}} and {{version}} are substituted"
            ));
        }
    }
    Ok(())
}

fn placeholders(template: &str) -> Vec<&str> {
    let bytes = template.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' && (i == 0 || bytes[i - 1] != b'$') {
            let rest = &template[i + 1..];
            let word_len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            if word_len > 0 && rest.as_bytes().get(word_len) == Some(&b'}') {
                out.push(&rest[..word_len]);
                i += word_len + 2;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Substitute `{node}` and `{version}` after checking both values.
pub fn render(template: &str, node: &str, version: Option<&str>) -> Result<String, ExecError> {
    check_value("node name", node)?;
    if let Some(v) = version {
        check_value("version", v)?;
    }
    check_template(template).map_err(|e| ExecError::Process {
        node: node.to_string(),
        message: e,
    })?;
    let mut out = template.replace("{node}", node);
    if let Some(v) = version {
        out = out.replace("{version}", v);
    } else if out.contains("{version}") {
        return Err(ExecError::Process {
            node: node.to_string(),
            message: format!("{template:?} uses {{version}} where no version applies"),
        });
    }
    Ok(out)
}

/// A template with `{node}` and `{version}` filled in for a plan's
/// description only, never to run: the version may be a placeholder such as
/// `<previous>` that [`render`] would refuse.
pub fn preview(template: &str, node: &str, version: &str) -> String {
    template
        .replace("{node}", node)
        .replace("{version}", version)
}

/// Shell command templates, per node.
pub type CommandExecutor = PerNode<Commands>;

impl CommandExecutor {
    /// Templates and nodes from the configuration.
    pub fn new(config: CommandConfig, nodes: Vec<NodeConfig>) -> Self {
        PerNode::with_actions(Commands { config }, nodes)
    }
}

/// The templates: what the `command` executor runs for one node.
#[derive(Debug, Clone)]
pub struct Commands {
    config: CommandConfig,
}

impl Commands {
    /// Run one rendered command with `sh -c`, output lines to `io`.
    pub async fn run(&self, node: &str, command: &str, io: &dyn StepIo) -> Result<(), ExecError> {
        // Before anything runs: a timeout the clock cannot hold (a
        // configuration built in code; a loaded file is range-checked).
        let deadline = tokio::time::Instant::now()
            .checked_add(Duration::from_secs(self.config.timeout_s))
            .ok_or_else(|| ExecError::Process {
                node: node.to_string(),
                message: format!(
                    "executor.timeout_s = {} s is beyond what the clock can wait",
                    self.config.timeout_s
                ),
            })?;
        io.line(&format!("{node}: $ {command}"));
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ExecError::Process {
                node: node.to_string(),
                message: format!("cannot run sh: {e}"),
            })?;
        let pid = child.id();
        // Dropped before the command ended (the run was interrupted): the
        // whole group gets SIGTERM, not only `sh`.
        let mut group = GroupOnDrop(pid);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let _ = tx.send(l);
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let _ = tx.send(l);
                }
            });
        }
        drop(tx);
        let mut captured: Vec<String> = Vec::new();
        let status = loop {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(l) => {
                        io.line(&format!("{node}: {l}"));
                        captured.push(l);
                    }
                    None => {
                        // Both pipes closed; wait for the exit (bounded by the deadline).
                        match tokio::time::timeout_at(deadline, child.wait()).await {
                            Ok(s) => break s,
                            Err(_) => break Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
                        }
                    }
                },
                s = child.wait() => {
                    // Lines still in the pipes (bounded: a background child
                    // may keep them open).
                    while let Ok(Some(l)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
                        io.line(&format!("{node}: {l}"));
                        captured.push(l);
                    }
                    break s;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    break Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
                }
            }
        };
        // Ended (or timed out: killed below before any await).
        group.0 = None;
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(ExecError::Command {
                node: node.to_string(),
                command: command.to_string(),
                status: s.to_string(),
                output: captured[captured.len().saturating_sub(5)..].join(" | "),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.wait().await;
                Err(ExecError::Timeout {
                    node: node.to_string(),
                    what: format!("`{command}`"),
                    secs: self.config.timeout_s,
                })
            }
            Err(e) => Err(ExecError::Process {
                node: node.to_string(),
                message: format!("waiting for `{command}`: {e}"),
            }),
        }
    }
}

/// SIGTERM to a command's process group when dropped while armed.
struct GroupOnDrop(Option<u32>);

impl Drop for GroupOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

#[async_trait::async_trait]
impl NodeActions for Commands {
    const KIND: &'static str = "command";

    fn describe_stop(&self) -> String {
        format!(
            "run `{}` for each node (timeout {} s)",
            self.config.stop, self.config.timeout_s
        )
    }

    fn describe_start(&self, node: &NodeConfig, version: &str) -> String {
        let show = |t: &str| preview(t, &node.name, version);
        match &self.config.upgrade {
            Some(u) => format!("run `{}` then `{}`", show(u), show(&self.config.start)),
            None => format!("run `{}`", show(&self.config.start)),
        }
    }

    fn check_stop(&self, node: &NodeConfig) -> Result<(), ExecError> {
        render(&self.config.stop, &node.name, None).map(|_| ())
    }

    async fn stop(&self, node: &NodeConfig, io: &dyn StepIo) -> ExecResult {
        let command = render(&self.config.stop, &node.name, None)?;
        self.run(&node.name, &command, io).await
    }

    async fn start(&self, node: &NodeConfig, version: &str, io: &dyn StepIo) -> ExecResult {
        // Both rendered before either runs.
        let upgrade = match &self.config.upgrade {
            Some(t) => Some(render(t, &node.name, Some(version))?),
            None => None,
        };
        let start = render(&self.config.start, &node.name, Some(version))?;
        if let Some(command) = upgrade {
            self.run(&node.name, &command, io).await?;
        }
        self.run(&node.name, &start, io).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_shows_the_rollback_command_with_its_placeholder_version() {
        let shown = preview("ssh {node} deploy {version}", "app1", "<previous>");
        assert_eq!(shown, "ssh app1 deploy <previous>");
        // Running it is still refused.
        assert!(render("ssh {node} deploy {version}", "app1", Some("<previous>")).is_err());
    }
}
