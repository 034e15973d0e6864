//! Servers: the Redis and RabbitMQ servers the cluster uses (version, role,
//! memory, eviction policy, clients), the selected one in full (with its
//! Sentinel topology: master, sentinels, replicas; or its Redis Cluster
//! shards), and what an operator should fix (eviction allowed, no bloom
//! filter module, unreachable, a silent sentinel, no replica online, a
//! cluster state that is not ok).

use super::table::{self, Col, TableNav, TableSpec};
use super::{Ctx, View};
use crate::console::action::Action;
use crate::console::format;
use crate::console::verdict::server_warnings;
use crate::inspect::{ServerView, Snapshot};
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

const COLS: [Col; 7] = [
    Col::new("KIND", 8, 0),
    Col::fill("URL", 24, 0),
    Col::new("VERSION", 8, 0),
    Col::new("ROLE", 6, 2),
    Col::new("MEMORY", 19, 1),
    Col::new("POLICY", 12, 0),
    Col::new("CLIENTS", 7, 3),
];

impl Servers {
    fn rows<'s>(&self, snap: &'s Snapshot) -> Vec<&'s ServerView> {
        snap.servers
            .iter()
            .filter(|s| {
                let used_by = s.used_by.join(" ");
                self.nav.matches(&[&s.kind, &s.url, &used_by])
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
        let title = table::title("Servers", &self.nav, rows.len(), snap.servers.len(), t);
        let mut cols = COLS;
        cols[1] = cols[1].wanting(table::longest(rows.iter().map(|s| s.url.as_str())));
        let spec = TableSpec {
            title,
            cols: &cols,
            len: rows.len(),
            empty: "no shared server (memory/local adapters only)",
            focused: true,
        };
        table::draw_table(frame, top, spec, &mut self.nav, t, |i| {
            let s = rows[i];
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
                    Cell::from(s.url.clone()),
                    Cell::from(s.version.clone().unwrap_or_else(dash)),
                    Cell::from(s.role.clone().unwrap_or_else(dash)),
                    Cell::from(memory),
                    Cell::from(s.maxmemory_policy.clone().unwrap_or_else(dash))
                        .style(if policy_ok { t.text } else { t.warn }),
                    Cell::from(s.connected_clients.map_or_else(dash, |c| c.to_string())),
                ];
            (cells, if s.error.is_some() { t.bad } else { t.text })
        });

        let mut lines = Vec::new();
        if let Some(s) = rows.get(self.nav.selected) {
            lines.push(Line::from(vec![
                Span::styled(format!("{} ", s.kind), t.header),
                Span::raw(s.url.clone()),
            ]));
            lines.push(Line::from(vec![
                Span::styled("used by   ", t.dim),
                Span::raw(s.used_by.join(", ")),
            ]));
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
            if let Some(e) = &s.error {
                lines.push(Line::from(vec![
                    Span::styled("error     ", t.dim),
                    Span::styled(e.clone(), t.bad),
                ]));
            }
            lines.push(Line::from(""));
        }
        let warnings: Vec<(String, String)> = snap
            .servers
            .iter()
            .flat_map(|s| {
                // A Sentinel URL is long: its master's name says which.
                let label = s
                    .topology
                    .as_ref()
                    .map_or_else(|| s.url.clone(), |t| t.master_name.clone());
                server_warnings(s)
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

    fn filter(&self) -> &str {
        &self.nav.filter
    }

    fn set_filter(&mut self, filter: String) {
        self.nav.filter = filter;
        self.nav.selected = 0;
    }
}
