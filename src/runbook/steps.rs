//! What each step does (and says it will do). Every step is safe to run
//! again after a crash: draining a drained cluster, stopping stopped nodes,
//! starting a node already on the version, re-checking a recorded backup.

use super::backup::{self, Database};
use super::config::RunbookConfig;
use super::engine::{Engine, EngineIo, Flow};
use super::executor::{NodeSlot, StepIo};
use super::journal::Event;
use super::operator::{Decision, PromptKind};
use super::plan::{Plan, StepKind};
use super::probe::{self, NodeStatus};
use crate::inspect::CheckStatus;
use std::time::{Duration, Instant};

type StepResult = Result<Flow, String>;

/// Build the plan's wording.
pub(crate) fn plan(
    config: &RunbookConfig,
    target: &str,
    slots: &[NodeSlot],
    stop: &dyn Fn(StepKind) -> String,
    start: &dyn Fn(&NodeSlot, &str) -> String,
) -> Plan {
    let t = &config.timeouts;
    let first = slots.first();
    let first_name = first.map(|s| s.name.as_str()).unwrap_or("(no node)");
    let rest: Vec<String> = slots
        .iter()
        .skip(1)
        .map(|s| format!("{}: {}", s.name, start(s, target)))
        .collect();
    let smoke: Vec<String> = config
        .verify
        .smoke
        .iter()
        .map(|s| {
            let body = s
                .body_contains
                .as_ref()
                .map(|b| format!(", body contains {b:?}"))
                .unwrap_or_default();
            format!("{} {} -> {}{body}", s.method, s.path, s.expect_status)
        })
        .collect();
    let lb = match &config.cluster.load_balancer {
        Some(a) => format!(
            "expect 200 from http://{a}{} within {} s",
            config.cluster.health_path, t.restore_s
        ),
        None => "no load balancer configured: not checked through it".to_string(),
    };
    let backup = match config.backup.kind.as_str() {
        "postgres" => "pg_dump -Fc, verified with pg_restore --list".to_string(),
        "mysql" => {
            "mysqldump --single-transaction, verified by its \"Dump completed\" line".to_string()
        }
        _ => "none (backup.kind = none): a rollback cannot restore the database".to_string(),
    };
    let describe = |kind: StepKind| -> String {
        match kind {
            StepKind::Preflight => {
                "Run the `check` suite. A failing check stops the run; warnings ask for confirmation.".to_string()
            }
            StepKind::Drain => format!(
                "Set the maintenance flag of cluster {} (nodes answer 503, the load balancer takes them out)\n\
                 and wait up to {} s until every live node reports state maintenance.",
                config.cluster.name, t.drain_s
            ),
            StepKind::StopNodes => format!(
                "Stop every node: {}.\nWait up to {} s until the registry shows no live node and every worker-ID lease is free.",
                stop(kind),
                t.stop_s
            ),
            StepKind::Backup => format!(
                "Back up the database: {backup}.\nFile, size and sha256 go into the journal."
            ),
            StepKind::UpgradeFirst => format!(
                "Start {first_name} alone on version {target}: {}.\nWait up to {} s until its /api/status reports \
                 app and schema version {target} in state maintenance or running (it migrates the schema).",
                first.map(|s| start(s, target)).unwrap_or_default(),
                t.first_node_s
            ),
            StepKind::Verify => format!(
                "Check {first_name}: health check, /api/status, {} smoke check(s) sent with header {}{}.\nThen ask the operator to confirm the rollout.",
                smoke.len(),
                config.verify.bypass_header,
                if smoke.is_empty() { String::new() } else { format!(" ({})", smoke.join("; ")) }
            ),
            StepKind::Rollout => {
                if rest.is_empty() {
                    "No other node to start.".to_string()
                } else {
                    format!(
                        "Start the other nodes on {target}, one at a time, each healthy with a worker ID (up to {} s) before the next:\n{}",
                        t.node_s,
                        rest.join("\n")
                    )
                }
            }
            StepKind::RestoreTraffic => format!(
                "Clear the maintenance flag; wait until every node reports running; {lb}."
            ),
            StepKind::RollbackStop => format!(
                "Stop every node: {}; wait until none is alive and the leases are free.",
                stop(kind)
            ),
            StepKind::RollbackRestore => match config.backup.kind.as_str() {
                "postgres" => "Restore the backup with pg_restore --clean --if-exists --single-transaction (checksum checked first).".to_string(),
                "mysql" => "Restore the backup with mysql < dump (checksum checked first).".to_string(),
                _ => "No backup to restore (backup.kind = none): restore the database by hand, then skip this step.".to_string(),
            },
            StepKind::RollbackStart => format!(
                "Start every node on the version it ran before the upgrade, one at a time: {}.",
                slots.iter().map(|s| start(s, "<previous>")).collect::<Vec<_>>().join("; ")
            ),
            StepKind::RollbackRestoreTraffic => format!(
                "Clear the maintenance flag; wait until every node reports running; {lb}."
            ),
        }
    };
    Plan::build(config, target, &describe)
}

fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Engine<'_> {
    pub(crate) async fn execute(&self, step: StepKind, io: &EngineIo<'_, '_>) -> StepResult {
        match step {
            StepKind::Preflight => self.preflight(io).await,
            StepKind::Drain => self.drain(io).await,
            StepKind::StopNodes | StepKind::RollbackStop => self.stop_nodes(io).await,
            StepKind::Backup => self.backup_db(io).await,
            StepKind::UpgradeFirst => self.upgrade_first(io).await,
            StepKind::Verify => self.verify(io).await,
            StepKind::Rollout => self.rollout(io).await,
            StepKind::RestoreTraffic => {
                let target = self.target.clone();
                self.restore_traffic(&target, io).await
            }
            StepKind::RollbackRestore => self.restore_db(io).await,
            StepKind::RollbackStart => self.start_previous(io).await,
            StepKind::RollbackRestoreTraffic => {
                let previous = self.previous.clone().unwrap_or_default();
                self.restore_traffic(&previous, io).await
            }
        }
    }

    fn timeouts(&self) -> &super::config::Timeouts {
        &self.rb.config.timeouts
    }

    async fn preflight(&self, io: &EngineIo<'_, '_>) -> StepResult {
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

    async fn drain(&self, io: &EngineIo<'_, '_>) -> StepResult {
        let reason = format!("upgrade to {}", self.target);
        self.rb
            .cluster
            .set_maintenance(&self.by(), &reason)
            .await
            .map_err(e2s)?;
        io.line(&format!("maintenance flag set by {}: {reason}", self.by()));
        let deadline = Instant::now() + Duration::from_secs(self.timeouts().drain_s);
        let mut last = String::new();
        loop {
            let nodes = self.rb.cluster.node_states().await.map_err(e2s)?;
            let waiting: Vec<String> = nodes
                .iter()
                .filter(|n| !matches!(n.state.as_str(), "maintenance" | "draining"))
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

    async fn stop_nodes(&self, io: &EngineIo<'_, '_>) -> StepResult {
        self.rb.executor.stop_all(io).await.map_err(e2s)?;
        let deadline = Instant::now() + Duration::from_secs(self.timeouts().stop_s);
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

    fn database(&self) -> Result<Option<Database>, String> {
        let b = &self.rb.config.backup;
        if b.kind == "none" {
            return Ok(None);
        }
        let url = match (&b.url, &b.url_env) {
            (Some(u), _) => u.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                format!("backup.url_env: the environment variable {var} is not set")
            })?,
            (None, None) => return Err("backup: no url or url_env".to_string()),
        };
        Database::from_url(&url).map(Some).map_err(e2s)
    }

    async fn backup_db(&self, io: &EngineIo<'_, '_>) -> StepResult {
        let Some(db) = self.database()? else {
            io.line("backup.kind = none: no backup taken; a rollback cannot restore the database");
            return Ok(Flow::Done);
        };
        let existing = self.backup.lock().clone();
        if let Some(rec) = existing {
            match backup::check_record(&rec).await {
                Ok(()) => {
                    io.line(&format!(
                        "the backup of this run is intact: {} ({} bytes, sha256 {})",
                        rec.file.display(),
                        rec.bytes,
                        rec.sha256
                    ));
                    return Ok(Flow::Done);
                }
                Err(e) => io.line(&format!(
                    "the recorded backup is not usable ({e}); backing up again"
                )),
            }
        }
        let dir = self.rb.config.backup.dir.clone().unwrap_or_else(|| {
            self.rb
                .state_dir
                .join(&self.rb.config.cluster.name)
                .join("backups")
        });
        io.line(&format!("dumping {} into {}", db.describe(), dir.display()));
        let stem = format!("{}-{}", self.rb.config.cluster.name, self.run_id);
        let progress = |n: u64| io.bytes(n);
        let rec = backup::backup(&db, &dir, &stem, &progress)
            .await
            .map_err(e2s)?;
        io.line(&format!(
            "backup {}: {} bytes, sha256 {}, {}",
            rec.file.display(),
            rec.bytes,
            rec.sha256,
            rec.verified
        ));
        self.record(Event::Backup {
            record: rec.clone(),
        });
        *self.backup.lock() = Some(rec);
        Ok(Flow::Done)
    }

    async fn restore_db(&self, io: &EngineIo<'_, '_>) -> StepResult {
        let Some(db) = self.database()? else {
            return Err("backup.kind = none: there is no backup to restore; restore the database by hand, then skip this step".to_string());
        };
        let Some(rec) = self.backup.lock().clone() else {
            return Err("no backup was recorded in this run (the backup step was skipped); restore the database by hand, then skip this step".to_string());
        };
        io.line(&format!(
            "restoring {} into {}",
            rec.file.display(),
            db.describe()
        ));
        let out = |l: &str| io.line(l);
        backup::restore(&db, &rec, &out).await.map_err(e2s)?;
        io.line("restore finished");
        Ok(Flow::Done)
    }

    /// Poll until `want` nodes run `version` (and `slot`'s node is among
    /// them when its id is known), as their `/api/status` says.
    async fn wait_ready(
        &self,
        io: &dyn StepIo,
        version: &str,
        slot: &NodeSlot,
        schema: bool,
        worker_id: bool,
        timeout_s: u64,
    ) -> Result<NodeStatus, String> {
        let http = probe::client();
        let want = slot.index + 1;
        let deadline = Instant::now() + Duration::from_secs(timeout_s);
        let mut last = String::new();
        loop {
            let nodes = self.rb.cluster.node_states().await.map_err(e2s)?;
            let mut ready: Vec<NodeStatus> = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            for n in &nodes {
                match probe::status(&http, &n.http_addr).await {
                    Ok(st) => {
                        if st.state == "error"
                            && slot.node_id.as_deref() == Some(st.node_id.as_str())
                        {
                            return Err(format!(
                                "{} reports error: {}",
                                st.node_id, st.state_reason
                            ));
                        }
                        let ok = st.is_up()
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

    fn slots(&self) -> Vec<NodeSlot> {
        self.rb.executor.slots()
    }

    async fn upgrade_first(&self, io: &EngineIo<'_, '_>) -> StepResult {
        let Some(first) = self.slots().into_iter().next() else {
            return Err("the executor has no node".to_string());
        };
        self.rb
            .executor
            .start(&first, &self.target, io)
            .await
            .map_err(e2s)?;
        let st = self
            .wait_ready(
                io,
                &self.target,
                &first,
                true,
                false,
                self.timeouts().first_node_s,
            )
            .await?;
        io.line(&format!("migrated and up: {}", st.summary()));
        Ok(Flow::Done)
    }

    async fn verify(&self, io: &EngineIo<'_, '_>) -> StepResult {
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
        let health_ok = health.http_status == Some(200)
            || (maintenance
                && health.http_status == Some(503)
                && health.detail.starts_with("maintenance"));
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
        if !st.is_up() || !probe::same_version(&st.app_version, &self.target) {
            return Err(format!("unexpected status: {}", st.summary()));
        }
        let cfg = &self.rb.config.verify;
        let mut failed = Vec::new();
        for check in &cfg.smoke {
            match probe::smoke(
                &http,
                &node.http_addr,
                check,
                &cfg.bypass_header,
                &self.run_id,
            )
            .await
            {
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

    async fn rollout(&self, io: &EngineIo<'_, '_>) -> StepResult {
        for slot in self.slots().into_iter().skip(1) {
            self.rb
                .executor
                .start(&slot, &self.target, io)
                .await
                .map_err(e2s)?;
            let st = self
                .wait_ready(io, &self.target, &slot, true, true, self.timeouts().node_s)
                .await?;
            io.line(&format!("{} up: {}", slot.name, st.summary()));
        }
        Ok(Flow::Done)
    }

    async fn start_previous(&self, io: &EngineIo<'_, '_>) -> StepResult {
        let Some(previous) = self.previous.clone() else {
            return Err("the previous version is unknown (no node was alive when the run started): start the nodes by hand, then skip this step".to_string());
        };
        for slot in self.slots() {
            self.rb
                .executor
                .start(&slot, &previous, io)
                .await
                .map_err(e2s)?;
            let st = self
                .wait_ready(io, &previous, &slot, false, false, self.timeouts().node_s)
                .await?;
            io.line(&format!("{} up: {}", slot.name, st.summary()));
        }
        Ok(Flow::Done)
    }

    async fn restore_traffic(&self, version: &str, io: &EngineIo<'_, '_>) -> StepResult {
        let was_set = self.rb.cluster.clear_maintenance().await.map_err(e2s)?;
        io.line(if was_set {
            "maintenance flag cleared"
        } else {
            "maintenance flag was already clear"
        });
        let want = self.slots().len();
        let deadline = Instant::now() + Duration::from_secs(self.timeouts().restore_s);
        let mut last = String::new();
        loop {
            let nodes = self.rb.cluster.node_states().await.map_err(e2s)?;
            let running = nodes
                .iter()
                .filter(|n| {
                    n.state == "running"
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
