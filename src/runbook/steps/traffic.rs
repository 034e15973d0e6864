//! The steps around the nodes: preflight, drain, stop, restore traffic.

use super::{StepResult, e2s};
use crate::inspect::CheckStatus;
use crate::node::state::NodeState;
use crate::runbook::config_ranges::deadline_in;
use crate::runbook::engine::{Engine, EngineIo, Flow};
use crate::runbook::executor::StepIo;
use crate::runbook::operator::{Decision, PromptKind};
use crate::runbook::probe;
use std::time::Instant;

impl Engine<'_> {
    pub(super) async fn preflight(&self, io: &EngineIo<'_, '_>) -> StepResult {
        let results = self.rb.cluster.preflight().await.map_err(e2s)?;
        for r in &results {
            let tag = match r.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Warn => "WARN",
                CheckStatus::Fail => "FAIL",
            };
            io.line(&format!("{tag} {}: {}", r.id, r.reason));
        }
        let ids = |s: CheckStatus| {
            results
                .iter()
                .filter(|r| r.status == s)
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
        };
        let fails = ids(CheckStatus::Fail);
        if !fails.is_empty() {
            return Err(format!(
                "{} preflight check(s) failed: {}; fix them (see `clusterops check`) and retry",
                fails.len(),
                fails.join(", ")
            ));
        }
        let warns = ids(CheckStatus::Warn);
        if !warns.is_empty() {
            let msg = format!(
                "{} preflight warning(s): {}. Continue the upgrade?",
                warns.len(),
                warns.join(", ")
            );
            if io
                .ask(
                    PromptKind::Warnings,
                    msg,
                    vec![Decision::Confirm, Decision::Abort],
                )
                .await
                != Decision::Confirm
            {
                return Ok(Flow::Abort(
                    "the operator declined the preflight warnings".to_string(),
                ));
            }
        }
        Ok(Flow::Done)
    }

    pub(super) async fn drain(&self, io: &EngineIo<'_, '_>) -> StepResult {
        // The deadline first: a timeout the clock cannot hold is refused
        // before the maintenance flag is set.
        let deadline = deadline_in(self.timeouts().drain_s, "timeouts.drain_s")?;
        let reason = format!("upgrade to {}", self.target);
        self.rb
            .cluster
            .set_maintenance(&self.by(), &reason)
            .await
            .map_err(e2s)?;
        io.line(&format!("maintenance flag set by {}: {reason}", self.by()));
        let mut last = String::new();
        loop {
            let nodes = self.rb.cluster.node_states().await.map_err(e2s)?;
            let waiting: Vec<String> = nodes
                .iter()
                .filter(|n| !matches!(n.state, NodeState::Maintenance | NodeState::Draining))
                .map(|n| format!("{} ({})", n.node_id, n.state))
                .collect();
            let summary = format!(
                "{} of {} live node(s) in maintenance{}",
                nodes.len() - waiting.len(),
                nodes.len(),
                if waiting.is_empty() {
                    String::new()
                } else {
                    format!("; waiting for {}", waiting.join(", "))
                }
            );
            if summary != last {
                io.line(&summary);
                last = summary;
            }
            if waiting.is_empty() {
                return Ok(Flow::Done);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "after {} s these nodes still do not report maintenance: {}",
                    self.timeouts().drain_s,
                    waiting.join(", ")
                ));
            }
            tokio::time::sleep(self.timeouts().poll()).await;
        }
    }

    pub(super) async fn stop_nodes(&self, io: &EngineIo<'_, '_>) -> StepResult {
        // Checked before any node is stopped.
        deadline_in(self.timeouts().stop_s, "timeouts.stop_s")?;
        self.rb.executor.stop_all(io).await.map_err(e2s)?;
        let deadline = deadline_in(self.timeouts().stop_s, "timeouts.stop_s")?;
        let mut last = String::new();
        loop {
            let nodes = self.rb.cluster.node_states().await.map_err(e2s)?;
            let leases = self.rb.cluster.leases_held().await.map_err(e2s)?;
            if nodes.is_empty() && leases.is_empty() {
                io.line("no live node in the registry; every worker-ID lease is free");
                return Ok(Flow::Done);
            }
            let summary = format!(
                "still alive: [{}]; leases held: [{}]",
                nodes
                    .iter()
                    .map(|n| n.node_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                leases
                    .iter()
                    .map(|l| format!("{} by {}", l.worker_id, l.holder))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if summary != last {
                io.line(&summary);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "after {} s: {summary}; a node may still be running outside the executor's control",
                    self.timeouts().stop_s
                ));
            }
            last = summary;
            tokio::time::sleep(self.timeouts().poll()).await;
        }
    }
    pub(super) async fn restore_traffic(&self, version: &str, io: &EngineIo<'_, '_>) -> StepResult {
        deadline_in(self.timeouts().restore_s, "timeouts.restore_s")?;
        let was_set = self.rb.cluster.clear_maintenance().await.map_err(e2s)?;
        io.line(if was_set {
            "maintenance flag cleared"
        } else {
            "maintenance flag was already clear"
        });
        let want = self.slots().len();
        let deadline = deadline_in(self.timeouts().restore_s, "timeouts.restore_s")?;
        let mut last = String::new();
        loop {
            let nodes = self.rb.cluster.node_states().await.map_err(e2s)?;
            let running = nodes
                .iter()
                .filter(|n| {
                    n.state == NodeState::Running
                        && (version.is_empty() || probe::same_version(&n.app_version, version))
                })
                .count();
            let summary = format!("{running} of {want} node(s) running");
            if summary != last {
                io.line(&summary);
                last = summary.clone();
            }
            if running >= want {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("after {} s: {summary}", self.timeouts().restore_s));
            }
            tokio::time::sleep(self.timeouts().poll()).await;
        }
        let Some(lb) = &self.rb.config.cluster.load_balancer else {
            return Ok(Flow::Done);
        };
        let path = &self.rb.config.cluster.health_path;
        let http = probe::client();
        let mut last = String::new();
        loop {
            let seen = match probe::get_status(&http, lb, path).await {
                Ok(200) => {
                    io.line(&format!("load balancer {lb}{path}: 200"));
                    return Ok(Flow::Done);
                }
                Ok(code) => format!("load balancer {lb}{path}: {code}"),
                Err(e) => e,
            };
            if seen != last {
                io.line(&seen);
                last = seen.clone();
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{seen}, expected 200 within {} s",
                    self.timeouts().restore_s
                ));
            }
            tokio::time::sleep(self.timeouts().poll()).await;
        }
    }
}
