//! The steps that start nodes and check them: upgrade one node, verify,
//! roll out, and start the previous version in a rollback.

use super::{StepResult, e2s};
use crate::node::identity::NodeIdentity;
use crate::node::state::NodeState;
use crate::runbook::config_ranges::deadline_in;
use crate::runbook::engine::{Engine, EngineIo, Flow};
use crate::runbook::executor::{NodeSlot, StepIo};
use crate::runbook::operator::{Decision, PromptKind};
use crate::runbook::probe;
use std::time::Instant;

impl Engine<'_> {
    /// Poll until `want` nodes run `version` (and `slot`'s node is among
    /// them when its id is known), as their `/api/status` says.
    async fn wait_ready(
        &self,
        io: &dyn StepIo,
        version: &str,
        slot: &NodeSlot,
        schema: bool,
        worker_id: bool,
        (timeout_key, timeout_s): (&str, u64),
    ) -> Result<NodeIdentity, String> {
        let http = probe::client();
        let want = slot.index + 1;
        let deadline = deadline_in(timeout_s, timeout_key)?;
        let mut last = String::new();
        loop {
            let nodes = self.rb.cluster.node_states().await.map_err(e2s)?;
            let mut ready: Vec<NodeIdentity> = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            for n in &nodes {
                match probe::status(&http, &n.http_addr).await {
                    Ok(st) => {
                        if st.state == NodeState::Error
                            && slot.node_id.as_deref() == Some(st.node_id.as_str())
                        {
                            return Err(format!(
                                "{} reports error: {}",
                                st.node_id, st.state_reason
                            ));
                        }
                        let ok = st.state.is_up()
                            && probe::same_version(&st.app_version, version)
                            && (!schema
                                || st
                                    .schema_version
                                    .as_deref()
                                    .is_some_and(|s| probe::same_version(s, version)))
                            && (!worker_id || st.worker_id.is_some());
                        seen.push(st.summary());
                        if ok {
                            ready.push(st);
                        }
                    }
                    Err(e) => seen.push(format!("{}: {e}", n.node_id)),
                }
            }
            let mine = match &slot.node_id {
                Some(id) => ready.iter().find(|s| &s.node_id == id).cloned(),
                None => ready.last().cloned(),
            };
            let summary = format!(
                "{} of {want} node(s) ready on {version}; {}",
                ready.len(),
                if seen.is_empty() {
                    "no live node yet".to_string()
                } else {
                    seen.join("; ")
                }
            );
            if summary != last {
                io.line(&summary);
                last = summary.clone();
            }
            if let Some(st) = mine
                && ready.len() >= want
            {
                return Ok(st);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not become ready on {version} within {timeout_s} s: {summary}",
                    slot.name
                ));
            }
            tokio::time::sleep(self.timeouts().poll()).await;
        }
    }

    /// Check first, so a step repeated on resume does not run a node's
    /// start again: `slot`'s node (by registry id) already runs `version`,
    /// up (and migrated to it when `schema`), as its `/api/status` says.
    async fn already_up(
        &self,
        slot: &NodeSlot,
        version: &str,
        schema: bool,
    ) -> Option<NodeIdentity> {
        let id = slot.node_id.as_deref()?;
        let nodes = self.rb.cluster.node_states().await.ok()?;
        let node = nodes.iter().find(|n| n.node_id == id)?;
        let st = probe::status(&probe::client(), &node.http_addr)
            .await
            .ok()?;
        let up = st.node_id == id
            && st.state.is_up()
            && probe::same_version(&st.app_version, version)
            && (!schema
                || st
                    .schema_version
                    .as_deref()
                    .is_some_and(|s| probe::same_version(s, version)));
        up.then_some(st)
    }

    /// Start `slot` on `version`, unless [`Self::already_up`] (then one
    /// line says so, journaled with the step's output).
    async fn start_unless_up(
        &self,
        slot: &NodeSlot,
        version: &str,
        schema: bool,
        io: &dyn StepIo,
    ) -> Result<(), String> {
        if let Some(st) = self.already_up(slot, version, schema).await {
            io.line(&format!(
                "{} already runs {version} and is up ({}): not started again",
                slot.name,
                st.summary()
            ));
            return Ok(());
        }
        self.rb.executor.start(slot, version, io).await.map_err(e2s)
    }

    pub(super) fn slots(&self) -> Vec<NodeSlot> {
        self.rb.executor.slots()
    }

    pub(super) async fn upgrade_first(&self, io: &EngineIo<'_, '_>) -> StepResult {
        let Some(first) = self.slots().into_iter().next() else {
            return Err("the executor has no node".to_string());
        };
        self.start_unless_up(&first, &self.target, true, io).await?;
        let st = self
            .wait_ready(
                io,
                &self.target,
                &first,
                true,
                false,
                ("timeouts.first_node_s", self.timeouts().first_node_s),
            )
            .await?;
        io.line(&format!("migrated and up: {}", st.summary()));
        Ok(Flow::Done)
    }

    pub(super) async fn verify(&self, io: &EngineIo<'_, '_>) -> StepResult {
        let Some(first) = self.slots().into_iter().next() else {
            return Err("the executor has no node".to_string());
        };
        let nodes = self.rb.cluster.node_states().await.map_err(e2s)?;
        let node = nodes
            .iter()
            .find(|n| match &first.node_id {
                Some(id) => &n.node_id == id,
                None => probe::same_version(&n.app_version, &self.target),
            })
            .ok_or_else(|| format!("{} is not in the registry", first.name))?;
        let http = probe::client();
        let health = crate::inspect::health::check(&http, &node.http_addr).await;
        let maintenance = self.rb.cluster.maintenance_set().await.map_err(e2s)?;
        let health_ok =
            health.is_healthy() || (maintenance && health.refused_in(&NodeState::Maintenance));
        io.line(&format!(
            "health check of {} ({}): {} {}",
            node.node_id,
            node.http_addr,
            health
                .http_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "no answer".to_string()),
            health.detail
        ));
        if !health_ok {
            return Err(format!(
                "the health check of {} is not healthy: {}",
                node.node_id, health.detail
            ));
        }
        let st = probe::status(&http, &node.http_addr).await?;
        io.line(&format!("status: {}", st.summary()));
        if !st.state.is_up() || !probe::same_version(&st.app_version, &self.target) {
            return Err(format!("unexpected status: {}", st.summary()));
        }
        let cfg = &self.rb.config.verify;
        let bypass = self
            .rb
            .cluster
            .bypass_token()
            .unwrap_or_else(|| self.run_id.clone());
        let mut failed = Vec::new();
        for check in &cfg.smoke {
            match probe::smoke(&http, &node.http_addr, check, &cfg.bypass_header, &bypass).await {
                Ok(line) => io.line(&format!("smoke: {line}")),
                Err(e) => {
                    io.line(&format!("smoke FAILED: {e}"));
                    failed.push(e);
                }
            }
        }
        if !failed.is_empty() {
            return Err(format!(
                "{} smoke check(s) failed: {}",
                failed.len(),
                failed.join("; ")
            ));
        }
        let msg = format!(
            "{} runs {} (schema {}) and passed the health check, its status and {} smoke check(s).\nRoll out to the other nodes?",
            st.node_id,
            st.app_version,
            st.schema_version.as_deref().unwrap_or("none"),
            cfg.smoke.len()
        );
        match io
            .ask(
                PromptKind::Verify,
                msg,
                vec![Decision::Confirm, Decision::Rollback, Decision::Abort],
            )
            .await
        {
            Decision::Confirm => Ok(Flow::Done),
            Decision::Rollback => Ok(Flow::Rollback(format!(
                "{} chose to roll back after verifying",
                self.actor()
            ))),
            _ => Ok(Flow::Abort(format!(
                "{} aborted after verifying",
                self.actor()
            ))),
        }
    }

    pub(super) async fn rollout(&self, io: &EngineIo<'_, '_>) -> StepResult {
        for slot in self.slots().into_iter().skip(1) {
            self.start_unless_up(&slot, &self.target, true, io).await?;
            let st = self
                .wait_ready(
                    io,
                    &self.target,
                    &slot,
                    true,
                    true,
                    ("timeouts.node_s", self.timeouts().node_s),
                )
                .await?;
            io.line(&format!("{} up: {}", slot.name, st.summary()));
        }
        Ok(Flow::Done)
    }

    pub(super) async fn start_previous(&self, io: &EngineIo<'_, '_>) -> StepResult {
        let Some(previous) = self.previous.clone() else {
            return Err("the previous version is unknown (no node was alive when the run started): start the nodes by hand, then skip this step".to_string());
        };
        for slot in self.slots() {
            self.start_unless_up(&slot, &previous, false, io).await?;
            let st = self
                .wait_ready(
                    io,
                    &previous,
                    &slot,
                    false,
                    false,
                    ("timeouts.node_s", self.timeouts().node_s),
                )
                .await?;
            io.line(&format!("{} up: {}", slot.name, st.summary()));
        }
        Ok(Flow::Done)
    }
}
