//! Events: what changed between snapshots (nodes joining and leaving,
//! leases moving, locks changing hands or stolen) and the outcome of every
//! operator action, newest first.

use super::table::{self, Col, TableNav, TableSpec};
use super::{Ctx, View};
use crate::console::action::Action;
use crate::console::changes::{Event, Level};
use crate::console::format;
use crate::inspect::Snapshot;
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::widgets::Cell;

/// The Events view.
#[derive(Debug, Default)]
pub struct Events {
    nav: TableNav,
}

const COLS: [Col; 3] = [
    Col::new("TIME", 8, 0),
    Col::new("", 6, 0),
    Col::fill("EVENT", 30, 0),
];

impl Events {
    fn rows<'e>(&self, ctx: &'e Ctx) -> Vec<&'e Event> {
        ctx.events
            .iter()
            .filter(|e| self.nav.matches(&[&e.text, tag(e.level)]))
            .collect()
    }
}

/// The word shown before an event.
fn tag(level: Level) -> &'static str {
    match level {
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Bad => "bad",
        Level::Done => "done",
        Level::Failed => "FAILED",
    }
}

impl View for Events {
    fn handle_key(&mut self, key: KeyEvent, _snap: &Snapshot, ctx: &Ctx) -> Option<Action> {
        let len = self.rows(ctx).len();
        self.nav.handle(&key, len, 10).then_some(Action::Render)
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, _snap: &Snapshot, ctx: &Ctx) {
        let rows = self.rows(ctx);
        let t = ctx.theme;
        let title = table::title("Events", &self.nav, rows.len(), ctx.events.len(), t);
        let empty = "no change noticed yet (events appear as snapshots arrive and actions finish)";
        let spec = TableSpec::focused(title, &COLS, rows.len(), empty);
        table::draw_table(frame, area, spec, &mut self.nav, t, |i| {
            let e = rows[i];
            let style = match e.level {
                Level::Info => t.text,
                Level::Warn => t.warn,
                Level::Bad | Level::Failed => t.bad,
                Level::Done => t.ok,
            };
            let cells = vec![
                Cell::from(format::clock(e.at_ms)).style(t.dim),
                Cell::from(tag(e.level)).style(style),
                Cell::from(e.text.clone()),
            ];
            (cells, t.text)
        });
    }

    fn nav(&self) -> Option<&TableNav> {
        Some(&self.nav)
    }

    fn nav_mut(&mut self) -> Option<&mut TableNav> {
        Some(&mut self.nav)
    }
}
