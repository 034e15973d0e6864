//! Streams: one row per sync-signal channel (length, readers, worst lag in
//! entries and as time, the lag's trend over the last minute and the time
//! to drain it), and below it every reader of the selected channel with
//! its lag (entries, and the age of the oldest entry it has not handled);
//! lagging readers highlighted, readers of dead nodes dimmed.

use super::table::{self, Col, TableNav, TableSpec};
use super::{Ctx, View};
use crate::console::action::Action;
use crate::console::format;
use crate::console::verdict::is_lagging;
use crate::inspect::{Snapshot, StreamView};
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Cell;

/// The Streams view.
#[derive(Debug, Default)]
pub struct Streams {
    nav: TableNav,
    /// Scroll state of the readers table (never focused: it shows the
    /// readers most behind first).
    readers: TableNav,
}

const CHANNEL_COLS: [Col; 8] = [
    Col::fill("CHANNEL", 18, 0),
    Col::new("LENGTH", 9, 2),
    Col::new("READERS", 7, 3),
    Col::new("MAX LAG", 8, 0),
    Col::new("BEHIND", 7, 0),
    Col::new("TREND", 8, 1),
    Col::new("DRAIN", 7, 1),
    Col::new("LAST ID", 20, 4),
];

const READER_COLS: [Col; 6] = [
    Col::fill("NODE", 14, 0),
    Col::new("LIVE", 4, 0),
    Col::new("LAG", 8, 0),
    Col::new("BEHIND", 7, 0),
    Col::new("HANDLED", 8, 0),
    Col::new("LAST ID", 20, 1),
];

impl Streams {
    fn rows<'s>(&self, snap: &'s Snapshot) -> Vec<&'s StreamView> {
        let Some(streams) = snap.streams.ok() else {
            return vec![];
        };
        streams
            .iter()
            .filter(|s| {
                self.nav.matches(&[&s.channel])
                    || s.readers.iter().any(|r| self.nav.matches(&[&r.node_id]))
            })
            .collect()
    }
}

impl View for Streams {
    fn handle_key(&mut self, key: KeyEvent, snap: &Snapshot, _ctx: &Ctx) -> Option<Action> {
        let len = self.rows(snap).len();
        let before = self.nav.selected;
        let moved = self.nav.handle(&key, len, 5);
        if self.nav.selected != before {
            self.readers = TableNav::default();
        }
        moved.then_some(Action::Render)
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, snap: &Snapshot, ctx: &Ctx) {
        let Some(all) = table::data_or_message(frame, area, "Streams", &snap.streams, ctx.theme)
        else {
            return;
        };
        let rows = self.rows(snap);
        let t = ctx.theme;
        let top_h = (rows.len() as u16 + 3).clamp(4, (area.height / 2).max(4));
        let [top, bottom] =
            Layout::vertical([Constraint::Length(top_h), Constraint::Min(0)]).areas(area);
        let title = table::title("Streams", &self.nav, rows.len(), all.len(), t);
        let mut channel_cols = CHANNEL_COLS;
        channel_cols[0] =
            channel_cols[0].wanting(table::longest(rows.iter().map(|s| s.channel.as_str())));
        let spec = TableSpec::focused(title, &channel_cols, rows.len(), "no sync-signal stream");
        table::draw_table(frame, top, spec, &mut self.nav, t, |i| {
            let s = rows[i];
            let max_lag = s
                .readers
                .iter()
                .filter(|r| r.live)
                .map(|r| r.lag)
                .max()
                .unwrap_or(0);
            let lagging = s.readers.iter().any(|r| r.live && is_lagging(r));
            let behind = s
                .readers
                .iter()
                .filter(|r| r.live)
                .filter_map(|r| r.oldest_unhandled_age_ms)
                .max();
            let outlook = ctx.backlog.stream(&s.channel);
            let growing = outlook.trend == crate::console::backlog::Trend::Growing;
            let cells = vec![
                Cell::from(s.channel.clone()),
                Cell::from(format::count(s.length)),
                Cell::from(s.readers.len().to_string()),
                Cell::from(format::count(max_lag)).style(if lagging { t.warn } else { t.text }),
                Cell::from(format::opt_age(behind)),
                Cell::from(outlook.trend_label()).style(if growing { t.warn } else { t.text }),
                Cell::from(outlook.drain_label()),
                Cell::from(s.last_id.clone().unwrap_or_else(|| "-".into())),
            ];
            (cells, t.text)
        });
        let Some(s) = rows.get(self.nav.selected) else {
            return;
        };
        let mut readers: Vec<_> = s.readers.iter().collect();
        readers.sort_by(|a, b| {
            b.live
                .cmp(&a.live)
                .then(b.lag.cmp(&a.lag))
                .then_with(|| a.node_id.cmp(&b.node_id))
        });
        let title = Line::from(vec![
            Span::styled(format!(" Readers of {} ", s.channel), t.header),
            Span::styled(format!("{}, most behind first ", s.readers.len()), t.dim),
        ]);
        let mut reader_cols = READER_COLS;
        reader_cols[0] =
            reader_cols[0].wanting(table::longest(readers.iter().map(|r| r.node_id.as_str())));
        let spec = TableSpec {
            title,
            cols: &reader_cols,
            len: readers.len(),
            empty: "no node reads this channel",
            focused: false,
        };
        table::draw_table(frame, bottom, spec, &mut self.readers, t, |i| {
            let r = readers[i];
            let style = if !r.live {
                t.dim
            } else if is_lagging(r) {
                t.warn
            } else {
                t.text
            };
            let cells = vec![
                Cell::from(r.node_id.clone()),
                Cell::from(if r.live { "yes" } else { "no" }),
                Cell::from(format::count(r.lag)),
                Cell::from(format::opt_age(r.oldest_unhandled_age_ms)),
                Cell::from(format::opt_age(r.last_handled_age_ms)),
                Cell::from(r.last_id.clone()),
            ];
            (cells, style)
        });
    }

    fn nav(&self) -> Option<&TableNav> {
        Some(&self.nav)
    }

    fn nav_mut(&mut self) -> Option<&mut TableNav> {
        Some(&mut self.nav)
    }
}
