//! Servers: the Redis and RabbitMQ servers the cluster uses, one row per
//! server instance (one Redis reached through five databases is one row
//! with five uses; [`crate::inspect::instances`]): version, role, memory,
//! eviction policy, clients; the selected one in full (its uses, its
//! Sentinel topology: master, sentinels, replicas; or its Redis Cluster
//! shards), and what an operator should fix (eviction allowed, no bloom
//! filter module, unreachable, a silent sentinel, no replica online, a
//! cluster state that is not ok).

use super::table::{self, Col, TableNav, TableSpec};
use super::{Ctx, View};
use crate::console::action::Action;
use crate::console::format;
use crate::console::verdict::server_warnings;
use crate::inspect::Snapshot;
use crate::inspect::instances::{self, Instance};
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Wrap};

/// The Servers view.
#[derive(Debug, Default)]
pub struct Servers {
    nav: TableNav,
}

const COLS: [Col; 8] = [
    Col::new("KIND", 8, 0),
    Col::fill("SERVER", 16, 0),
    Col::new("USES", 9, 1),
    Col::new("VERSION", 8, 0),
    Col::new("ROLE", 6, 2),
    Col::new("MEMORY", 19, 1),
    Col::new("POLICY", 12, 0),
    Col::new("CLIENTS", 7, 3),
];

impl Servers {
    fn rows<'s>(&self, snap: &'s Snapshot) -> Vec<Instance<'s>> {
        instances::group(&snap.servers)
            .into_iter()
            .filter(|i| {
                let used_by = i.used_by().join(" ");
                let urls: Vec<&str> = i.uses.iter().map(|s| s.url.as_str()).collect();
                self.nav
                    .matches(&[i.kind, &i.address, &used_by, &urls.join(" ")])
            })
            .collect()
    }
}

impl View for Servers {
    fn handle_key(&mut self, key: KeyEvent, snap: &Snapshot, _ctx: &Ctx) -> Option<Action> {
        let len = self.rows(snap).len();
        self.nav.handle(&key, len, 5).then_some(Action::Render)
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, snap: &Snapshot, ctx: &Ctx) {
        let t = ctx.theme;
        let rows = self.rows(snap);
        let top_h = (rows.len() as u16 + 3).clamp(4, (area.height / 2).max(4));
        let [top, bottom] =
            Layout::vertical([Constraint::Length(top_h), Constraint::Min(0)]).areas(area);
        let total = instances::group(&snap.servers).len();
        let title = table::title("Servers", &self.nav, rows.len(), total, t);
        let mut cols = COLS;
        cols[1] = cols[1].wanting(table::longest(rows.iter().map(|i| i.address.as_str())));
        let spec = TableSpec::focused(
            title,
            &cols,
            rows.len(),
            "no shared server (memory/local adapters only)",
        );
        table::draw_table(frame, top, spec, &mut self.nav, t, |i| {
            let inst = &rows[i];
            let s = inst.facts();
            let dash = || "-".to_string();
            let memory = match (s.used_memory, s.maxmemory) {
                (Some(u), Some(0)) => format!("{} / no max", format::bytes(u)),
                (Some(u), Some(m)) => format!("{} / {}", format::bytes(u), format::bytes(m)),
                (Some(u), None) => format::bytes(u),
                _ => dash(),
            };
            let policy_ok = s
                .maxmemory_policy
                .as_deref()
                .is_none_or(|p| p == "noeviction");
            let cells =
                vec![
                    Cell::from(s.kind.clone()),
                    Cell::from(inst.address.clone()),
                    Cell::from(inst.uses_label()),
                    Cell::from(s.version.clone().unwrap_or_else(dash)),
                    Cell::from(s.role.clone().unwrap_or_else(dash)),
                    Cell::from(memory),
                    Cell::from(s.maxmemory_policy.clone().unwrap_or_else(dash))
                        .style(if policy_ok { t.text } else { t.warn }),
                    Cell::from(s.connected_clients.map_or_else(dash, |c| c.to_string())),
                ];
            let style = if inst.unreachable() {
                t.bad
            } else if inst.uses.iter().any(|u| u.error.is_some()) {
                t.warn
            } else {
                t.text
            };
            (cells, style)
        });

        let mut lines = Vec::new();
        if let Some(inst) = rows.get(self.nav.selected) {
            let s = inst.facts();
            lines.push(Line::from(vec![
                Span::styled(format!("{} ", s.kind), t.header),
                Span::raw(inst.address.clone()),
                Span::styled(
                    inst.run_id.map_or_else(String::new, |r| {
                        format!("  run_id {}", format::truncate(r, 12))
                    }),
                    t.dim,
                ),
            ]));
            // Every URL that reaches it, with the variables naming it.
            for u in &inst.uses {
                let mut spans = vec![
                    Span::styled("use       ", t.dim),
                    Span::raw(format!("{}  {}", u.url, u.used_by.join(", "))),
                ];
                if let Some(e) = &u.error {
                    spans.push(Span::styled(format!("  {e}"), t.bad));
                }
                lines.push(Line::from(spans));
            }
            if s.kind == "redis" {
                let modules = if s.modules.is_empty() {
                    "none".to_string()
                } else {
                    s.modules.join(", ")
                };
                lines.push(Line::from(vec![
                    Span::styled("modules   ", t.dim),
                    Span::raw(modules),
                ]));
            }
            if let Some(topo) = &s.topology {
                lines.extend(super::servers_topology::lines(topo, t));
            }
            if let Some(cluster) = &s.cluster {
                lines.extend(super::servers_cluster::lines(cluster, t));
            }
            if let Some(m) = &s.management {
                let style = if m == "ok" { t.text } else { t.warn };
                lines.push(Line::from(vec![
                    Span::styled("mgmt API  ", t.dim),
                    Span::styled(m.clone(), style),
                ]));
            }
            lines.push(Line::from(""));
        }
        // Each instance's warnings once, however many uses it has (a
        // Sentinel URL is long: its master's name says which).
        let warnings: Vec<(String, String)> = instances::group(&snap.servers)
            .iter()
            .flat_map(|i| {
                let label = i.label();
                server_warnings(i.facts())
                    .into_iter()
                    .map(move |w| (label.clone(), w))
            })
            .collect();
        if warnings.is_empty() {
            lines.push(Line::from(Span::styled("no warning", t.ok)));
        } else {
            lines.push(Line::from(Span::styled("Warnings", t.header)));
            for (url, w) in warnings {
                lines.push(Line::from(vec![
                    Span::styled("! ", t.warn),
                    Span::raw(format!("{url}: ")),
                    Span::styled(w, t.warn),
                ]));
            }
        }
        let block = Block::bordered()
            .border_style(t.border)
            .title(Span::styled(" Details ", t.header));
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(block),
            bottom,
        );
    }

    fn nav(&self) -> Option<&TableNav> {
        Some(&self.nav)
    }

    fn nav_mut(&mut self) -> Option<&mut TableNav> {
        Some(&mut self.nav)
    }
}
