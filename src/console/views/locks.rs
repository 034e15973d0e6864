//! Locks: every held lock, longest-held first (holder, age, TTL left,
//! fencing token, waiters); long-held locks and dead holders highlighted.
//! `X` asks to force-release the selected lock.

use super::table::{self, Col, TableNav, TableSpec};
use super::{Ctx, View};
use crate::console::action::Action;
use crate::console::format;
use crate::console::ops::Operation;
use crate::console::verdict::LONG_HELD_LOCK_MS;
use crate::inspect::{LockView, Snapshot};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::widgets::Cell;

/// The Locks view.
#[derive(Debug, Default)]
pub struct Locks {
    nav: TableNav,
}

const COLS: [Col; 6] = [
    Col::fill("LOCK", 20, 0),
    Col::new("HOLDER", 16, 0),
    Col::new("AGE", 7, 0),
    Col::new("TTL", 7, 1),
    Col::new("TOKEN", 10, 0),
    Col::new("WAITERS", 7, 2),
];

impl Locks {
    /// Matching locks, longest-held first.
    fn rows<'s>(&self, snap: &'s Snapshot) -> Vec<&'s LockView> {
        let Some(locks) = snap.locks.ok() else {
            return vec![];
        };
        let mut rows: Vec<&LockView> = locks
            .iter()
            .filter(|l| self.nav.matches(&[&l.name, &l.holder]))
            .collect();
        rows.sort_by(|a, b| b.age_ms.cmp(&a.age_ms).then_with(|| a.name.cmp(&b.name)));
        rows
    }
}

impl View for Locks {
    fn handle_key(&mut self, key: KeyEvent, snap: &Snapshot, ctx: &Ctx) -> Option<Action> {
        let rows = self.rows(snap);
        if key.code == KeyCode::Char('X') && ctx.actions_enabled {
            self.nav.clamp(rows.len());
            let l = rows.get(self.nav.selected)?;
            return Some(Action::Ask(Operation::ForceReleaseLock {
                name: l.name.clone(),
                holder: l.holder.clone(),
                holder_live: l.holder_live,
                fencing_token: l.fencing_token,
                age_ms: l.age_ms,
            }));
        }
        self.nav
            .handle(&key, rows.len(), 10)
            .then_some(Action::Render)
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, snap: &Snapshot, ctx: &Ctx) {
        let Some(all) = table::data_or_message(frame, area, "Locks", &snap.locks, ctx.theme) else {
            return;
        };
        let rows = self.rows(snap);
        let t = ctx.theme;
        let title = table::title("Locks", &self.nav, rows.len(), all.len(), t);
        let mut cols = COLS;
        cols[0] = cols[0].wanting(table::longest(rows.iter().map(|l| l.name.as_str())));
        let spec = TableSpec {
            title,
            cols: &cols,
            len: rows.len(),
            empty: "no lock is held",
            focused: true,
        };
        table::draw_table(frame, area, spec, &mut self.nav, t, |i| {
            let l = rows[i];
            let long = l.age_ms >= LONG_HELD_LOCK_MS;
            let holder = if l.holder_live {
                Cell::from(l.holder.clone())
            } else {
                Cell::from(format!("{} (dead)", l.holder)).style(t.bad)
            };
            let cells = vec![
                Cell::from(l.name.clone()),
                holder,
                Cell::from(format::age(l.age_ms)).style(if long { t.warn } else { t.text }),
                Cell::from(format::ttl(l.ttl_left_ms)).style(if l.ttl_left_ms <= 0 {
                    t.bad
                } else {
                    t.text
                }),
                Cell::from(l.fencing_token.to_string()),
                Cell::from(l.waiters.map_or("-".into(), |w| w.to_string())),
            ];
            (cells, if long { t.warn } else { t.text })
        });
    }

    fn filter(&self) -> &str {
        &self.nav.filter
    }

    fn set_filter(&mut self, filter: String) {
        self.nav.filter = filter;
        self.nav.selected = 0;
    }
}
