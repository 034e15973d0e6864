//! Nodes: one row per registered node (state, health, heartbeat, clock
//! offset from Redis `TIME`, worker ID, version, configuration fingerprint
//! with drift highlighted, `WORKER_MODE`, address); Enter shows every field
//! of the selected node.

use super::popup::{self, field};
use super::table::{self, Col, TableNav, TableSpec};
use super::{Ctx, View};
use crate::console::action::Action;
use crate::console::format;
use crate::console::theme::Theme;
use crate::inspect::checks_clock::{CLOCK_WARN, MAX_CLOCK_WAIT};
use crate::inspect::{ClockOffset, NodeState, NodeView, Snapshot};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Cell;

/// The Nodes view.
#[derive(Debug, Default)]
pub struct Nodes {
    nav: TableNav,
    detail: Option<String>,
}

const COLS: [Col; 12] = [
    Col::fill("NODE", 12, 0),
    Col::new("STATE", 9, 0),
    Col::new("HEALTH", 8, 0),
    Col::new("BEAT", 6, 1),
    Col::new("CLOCK", 6, 2),
    Col::new("WID", 3, 1),
    Col::new("VERSION", 8, 2),
    Col::new("CONFIG", 8, 1),
    Col::new("MODE", 6, 3),
    Col::fill("ADDRESS", 16, 3),
    Col::new("HOST", 12, 4),
    Col::new("LATENCY", 7, 5),
];

impl Nodes {
    fn rows<'s>(&self, snap: &'s Snapshot) -> Vec<&'s NodeView> {
        let Some(nodes) = snap.nodes.ok() else {
            return vec![];
        };
        nodes
            .iter()
            .filter(|n| {
                let id = &n.id;
                self.nav.matches(&[
                    &id.node_id,
                    &id.host,
                    &id.http_addr,
                    id.state.as_str(),
                    &id.app_version,
                    n.worker_mode.short(),
                ])
            })
            .collect()
    }

    /// The node whose details are open.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl View for Nodes {
    fn handle_key(&mut self, key: KeyEvent, snap: &Snapshot, _ctx: &Ctx) -> Option<Action> {
        if let Some(outcome) = table::close_overlay(&mut self.detail, &key) {
            return outcome;
        }
        let rows = self.rows(snap);
        if key.code == KeyCode::Enter {
            self.nav.clamp(rows.len());
            self.detail = rows.get(self.nav.selected).map(|n| n.id.node_id.clone());
            return self.detail.as_ref().map(|_| Action::Render);
        }
        self.nav
            .handle(&key, rows.len(), 10)
            .then_some(Action::Render)
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, snap: &Snapshot, ctx: &Ctx) {
        let Some(all) = table::data_or_message(frame, area, "Nodes", &snap.nodes, ctx.theme) else {
            return;
        };
        let rows = self.rows(snap);
        let t = ctx.theme;
        let title = table::title("Nodes", &self.nav, rows.len(), all.len(), t);
        let mut cols = COLS;
        cols[0] = cols[0].wanting(table::longest(rows.iter().map(|n| n.id.node_id.as_str())));
        cols[9] = cols[9].wanting(table::longest(rows.iter().map(|n| n.id.http_addr.as_str())));
        let spec = TableSpec::focused(title, &cols, rows.len(), "no node is registered");
        table::draw_table(frame, area, spec, &mut self.nav, t, |i| {
            let n = rows[i];
            let drift =
                snap.drift.fingerprint.contains(&n.id.node_id) || !n.config_drift.is_empty();
            let version_drift = snap.drift.version.contains(&n.id.node_id);
            let health = match n.health.http_status {
                Some(200) => Cell::from("200 ok").style(t.ok),
                Some(s) => Cell::from(s.to_string()).style(t.bad),
                None => Cell::from("no answer").style(t.bad),
            };
            let beat_style = if n.ttl_left_ms <= 0 { t.bad } else { t.text };
            let config = if drift {
                Cell::from(format!("≠{}", fp6(&n.config_fingerprint))).style(t.bad)
            } else {
                Cell::from(format!(" {}", fp6(&n.config_fingerprint))).style(t.dim)
            };
            let cells = vec![
                Cell::from(n.id.node_id.clone()),
                Cell::from(n.id.state.to_string()).style(if n.id.state == NodeState::Running {
                    t.text
                } else {
                    t.warn
                }),
                health,
                Cell::from(format::age(n.heartbeat_age_ms)).style(beat_style),
                match n.clock_offset {
                    Some(c) => Cell::from(format::offset(c.offset_us)).style(clock_style(&c, t)),
                    None => Cell::from("?").style(t.dim),
                },
                Cell::from(n.id.worker_id.map_or("-".into(), |w| w.to_string())),
                Cell::from(n.id.app_version.clone()).style(if version_drift {
                    t.warn
                } else {
                    t.text
                }),
                config,
                Cell::from(n.worker_mode.short()).style(if n.worker_mode.is_all() {
                    t.dim
                } else {
                    t.text
                }),
                Cell::from(n.id.http_addr.clone()),
                Cell::from(n.id.host.clone()),
                Cell::from(format!("{}ms", n.health.latency_ms)),
            ];
            (cells, t.text)
        });
        if let Some(id) = &self.detail
            && let Some(n) = all.iter().find(|n| &n.id.node_id == id)
        {
            let lines = details(n, snap, ctx);
            popup::draw_lines(
                frame,
                area,
                &format!("Node {}", n.id.node_id),
                "Esc close",
                lines,
                100,
                ctx.theme,
            );
        }
    }

    fn nav(&self) -> Option<&TableNav> {
        Some(&self.nav)
    }

    fn nav_mut(&mut self) -> Option<&mut TableNav> {
        Some(&mut self.nav)
    }

    fn overlay_open(&self) -> bool {
        self.detail.is_some()
    }
}

/// Red beyond the snowflake tolerance, yellow above 1 s (as `clock-skew`).
fn clock_style(c: &ClockOffset, t: &Theme) -> Style {
    if c.magnitude() > MAX_CLOCK_WAIT {
        t.bad
    } else if c.magnitude() > CLOCK_WARN {
        t.warn
    } else {
        t.text
    }
}

fn fp6(fp: &str) -> String {
    fp.chars().take(6).collect()
}

fn details<'a>(n: &NodeView, snap: &Snapshot, ctx: &Ctx) -> Vec<Line<'a>> {
    let t = ctx.theme;
    let w = 16;
    let drifted = snap.drift.fingerprint.contains(&n.id.node_id) || !n.config_drift.is_empty();
    let mut lines = vec![
        field("host", w, n.id.host.clone(), t),
        field("address", w, n.id.http_addr.clone(), t),
        field(
            "pid",
            w,
            match &n.process {
                Some(p) => format!(
                    "{} (process #{} of {} on {}, CLUSTER_MODE)",
                    n.id.pid, p.index, p.count, p.shared_addr
                ),
                None => n.id.pid.to_string(),
            },
            t,
        ),
        field(
            "version",
            w,
            format!(
                "{} (schema {})",
                n.id.app_version,
                n.id.schema_version.as_deref().unwrap_or("-")
            ),
            t,
        ),
        field(
            "worker ID",
            w,
            n.id.worker_id.map_or("none".into(), |w| w.to_string()),
            t,
        ),
        field(
            "state",
            w,
            format!("{}: {}", n.id.state, n.id.state_reason),
            t,
        ),
        field("mode", w, n.worker_mode.describe(), t),
        field(
            "started",
            w,
            format!(
                "{} (up {})",
                crate::clock::datetime(n.id.started_at_ms),
                format::age(snap.taken_at_ms.saturating_sub(n.id.started_at_ms))
            ),
            t,
        ),
        field(
            "heartbeat",
            w,
            format!(
                "{} ago, record expires in {}",
                format::age(n.heartbeat_age_ms),
                format::ttl(n.ttl_left_ms)
            ),
            t,
        ),
        field(
            "health",
            w,
            Span::styled(
                format!(
                    "{} {} ({} ms)",
                    n.health
                        .http_status
                        .map_or("no answer".into(), |s| format!("HTTP {s}")),
                    n.health.detail,
                    n.health.latency_ms
                ),
                if n.health.is_degraded() {
                    t.warn
                } else if n.health.is_healthy() {
                    t.ok
                } else {
                    t.bad
                },
            ),
            t,
        ),
        field(
            "fingerprint",
            w,
            Span::styled(
                n.config_fingerprint.clone(),
                if drifted { t.bad } else { t.text },
            ),
            t,
        ),
    ];
    if drifted {
        let majority = snap.drift.majority_fingerprint.as_deref().unwrap_or("?");
        lines.push(field("majority", w, majority.to_string(), t));
        let settings = if n.config_drift.is_empty() {
            "(not named)".to_string()
        } else {
            n.config_drift.join(", ")
        };
        lines.push(field("differs in", w, Span::styled(settings, t.bad), t));
    }
    let storage = match (n.storage_shared, &n.storage_reason) {
        (Some(true), _) => Span::styled("shared".to_string(), t.ok),
        (Some(false), r) => {
            Span::styled(format!("NOT shared: {}", r.as_deref().unwrap_or("")), t.bad)
        }
        (None, r) => Span::styled(format!("unknown {}", r.as_deref().unwrap_or("")), t.dim),
    };
    lines.push(field("storage", w, storage, t));
    let clock = match n.clock_offset {
        Some(c) => Span::styled(c.describe(), clock_style(&c, t)),
        None => Span::styled("not reported (an older version?)".to_string(), t.dim),
    };
    lines.push(field("clock", w, clock, t));
    lines
}
