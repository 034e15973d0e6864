//! Worker IDs: the 32 lease slots as a grid (holder, TTL left; stale
//! holders, not live in the registry, marked), the selected slot in full
//! below. `F` asks to free the selected slot when its holder is dead.

use super::table::{self, matches_filter};
use super::{Ctx, View};
use crate::console::action::Action;
use crate::console::format;
use crate::console::ops::Operation;
use crate::inspect::{LeaseView, Snapshot};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

/// Slots per grid row.
const PER_ROW: usize = 8;

/// The Worker IDs view.
#[derive(Debug, Default)]
pub struct WorkerIds {
    selected: usize,
    filter: String,
}

impl WorkerIds {
    /// The selected slot (0..31).
    pub fn selected(&self) -> usize {
        self.selected
    }
}

impl View for WorkerIds {
    fn handle_key(&mut self, key: KeyEvent, snap: &Snapshot, ctx: &Ctx) -> Option<Action> {
        let leases = snap.leases.ok()?;
        let last = leases.len().saturating_sub(1);
        let sel = &mut self.selected;
        match key.code {
            KeyCode::Char('l') | KeyCode::Right => *sel = (*sel + 1).min(last),
            KeyCode::Char('h') | KeyCode::Left => *sel = sel.saturating_sub(1),
            KeyCode::Char('j') | KeyCode::Down => *sel = (*sel + PER_ROW).min(last),
            KeyCode::Char('k') | KeyCode::Up => *sel = sel.saturating_sub(PER_ROW),
            KeyCode::Char('g') | KeyCode::Home => *sel = 0,
            KeyCode::Char('G') | KeyCode::End => *sel = last,
            KeyCode::Char('F') if ctx.actions_enabled => {
                let l = leases.get(*sel)?;
                let holder = l.holder.clone()?;
                if l.holder_live {
                    return Some(Action::Status(format!(
                        "worker ID {} is held by live node {holder}: only a dead node's lease can be freed",
                        l.worker_id
                    )));
                }
                return Some(Action::Ask(Operation::FreeLease {
                    worker_id: l.worker_id,
                    holder,
                }));
            }
            _ => return None,
        }
        Some(Action::Render)
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, snap: &Snapshot, ctx: &Ctx) {
        let Some(leases) =
            table::data_or_message(frame, area, "Worker IDs", &snap.leases, ctx.theme)
        else {
            return;
        };
        let t = ctx.theme;
        self.selected = self.selected.min(leases.len().saturating_sub(1));
        let held = leases.iter().filter(|l| l.holder.is_some()).count();
        let stale: Vec<&LeaseView> = leases
            .iter()
            .filter(|l| l.holder.is_some() && !l.holder_live)
            .collect();
        let mut title = vec![
            Span::styled(" Worker IDs ", t.header),
            Span::styled(format!("{held}/{} held ", leases.len()), t.dim),
        ];
        if !stale.is_empty() {
            title.push(Span::styled(format!("{} stale ", stale.len()), t.bad));
        }
        if !self.filter.is_empty() {
            title.push(Span::styled(format!("/{} ", self.filter), t.accent));
        }
        let block = Block::bordered()
            .border_style(t.border)
            .title(Line::from(title));
        let inner = block.inner(area);
        frame.render_widget(block, area);

        let grid_rows = leases.len().div_ceil(PER_ROW) as u16;
        let cell_h: u16 = if inner.height >= grid_rows * 4 + 6 {
            4
        } else {
            3
        };
        let [grid, info] =
            Layout::vertical([Constraint::Length(grid_rows * cell_h), Constraint::Min(0)])
                .areas(inner);
        let cell_w = (grid.width / PER_ROW as u16).max(1);
        let buf = frame.buffer_mut();
        for (i, l) in leases.iter().enumerate() {
            let x = grid.x + (i % PER_ROW) as u16 * cell_w;
            let y = grid.y + (i / PER_ROW) as u16 * cell_h;
            if y + cell_h > grid.y + grid.height || x + cell_w > grid.x + grid.width {
                continue;
            }
            let holder = l.holder.as_deref().unwrap_or("");
            let matches = matches_filter(&self.filter, &[holder, &l.worker_id.to_string()]);
            let (status, style) = match (&l.holder, l.holder_live, &l.unreadable) {
                (_, _, Some(_)) => ("unreadable", t.bad),
                (None, _, _) => ("free", t.dim),
                (Some(_), true, _) => ("", t.ok),
                (Some(_), false, _) => ("stale", t.bad),
            };
            let mut style = if matches { style } else { t.dim };
            if i == self.selected {
                style = style.patch(t.selected);
                buf.set_style(
                    Rect::new(x, y, cell_w.saturating_sub(1), cell_h),
                    t.selected,
                );
            }
            let w = cell_w.saturating_sub(1) as usize;
            let ttl = l.ttl_left_ms.map(format::ttl).unwrap_or_default();
            let lines: [(String, Style); 3] = [
                (
                    format!(
                        "{:02} {}",
                        l.worker_id,
                        if status.is_empty() { "held" } else { status }
                    ),
                    style,
                ),
                (format::truncate(holder, w), style),
                (
                    if l.holder.is_some() {
                        format!("ttl {ttl}")
                    } else {
                        String::new()
                    },
                    style.patch(t.dim),
                ),
            ];
            for (row, (text, st)) in lines.iter().enumerate() {
                buf.set_stringn(x, y + row as u16, text, w, *st);
            }
        }

        let Some(l) = leases.get(self.selected) else {
            return;
        };
        let mut lines = vec![selected_line(l, ctx)];
        if !stale.is_empty() {
            let names: Vec<String> = stale
                .iter()
                .map(|l| format!("{} ({})", l.worker_id, l.holder.as_deref().unwrap_or("")))
                .collect();
            lines.push(Line::from(vec![
                Span::styled("stale holders, not live: ", t.bad),
                Span::raw(names.join(", ")),
            ]));
        }
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), info);
    }

    fn filter(&self) -> &str {
        &self.filter
    }

    fn set_filter(&mut self, filter: String) {
        self.filter = filter;
    }
}

fn selected_line<'a>(l: &LeaseView, ctx: &Ctx) -> Line<'a> {
    let t = ctx.theme;
    let mut spans = vec![Span::styled(
        format!("worker ID {:02}: ", l.worker_id),
        t.header,
    )];
    match (&l.holder, &l.unreadable) {
        (_, Some(why)) => spans.push(Span::styled(format!("unreadable: {why}"), t.bad)),
        (None, _) => spans.push(Span::styled("free".to_string(), t.dim)),
        (Some(h), _) => {
            spans.push(Span::raw(format!("held by {h} ")));
            if l.holder_live {
                spans.push(Span::styled("(live)".to_string(), t.ok));
            } else {
                spans.push(Span::styled("(NOT live: stale)".to_string(), t.bad));
            }
            if let Some(ttl) = l.ttl_left_ms {
                spans.push(Span::raw(format!(" · TTL {}", format::ttl(ttl))));
            }
            if let Some(at) = l.acquired_at_ms {
                spans.push(Span::raw(format!(" · since {}", format::clock(at))));
            }
        }
    }
    if let Some(ts) = l.last_ts {
        spans.push(Span::styled(format!(" · last ts {ts}"), t.dim));
    }
    Line::from(spans)
}
