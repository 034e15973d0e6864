//! Locks: every held lock, longest-held first (holder, age, TTL left,
//! fencing token, waiters); long-held locks and dead holders highlighted.
//! `X` asks to force-release the selected lock. The sorted, filtered row
//! order is kept until the next snapshot or filter, so a frame of a cluster
//! with 10,000 locks costs only its visible rows.

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
    rows: Option<Rows>,
}

/// The rows of one snapshot under one filter: indices into its locks,
/// longest-held first, and the longest name among them.
#[derive(Debug)]
struct Rows {
    seq: u64,
    filter: String,
    order: Vec<usize>,
    longest_name: usize,
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
    /// Matching locks (indices into the snapshot's locks), longest-held
    /// first; computed once per snapshot (`seq`) and filter.
    fn rows(&mut self, snap: &Snapshot, seq: u64) -> &Rows {
        let stale = self
            .rows
            .as_ref()
            .is_none_or(|r| r.seq != seq || r.filter != self.nav.filter);
        if stale {
            self.rows = None;
        }
        self.rows
            .get_or_insert_with(|| Self::compute(&self.nav, snap, seq))
    }

    fn compute(nav: &TableNav, snap: &Snapshot, seq: u64) -> Rows {
        let locks: &[LockView] = snap.locks.ok().map_or(&[], Vec::as_slice);
        let mut order: Vec<usize> = (0..locks.len())
            .filter(|&i| nav.matches(&[&locks[i].name, &locks[i].holder]))
            .collect();
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (&locks[a], &locks[b]);
            b.age_ms.cmp(&a.age_ms).then_with(|| a.name.cmp(&b.name))
        });
        let longest_name = table::longest(order.iter().map(|&i| locks[i].name.as_str()));
        Rows {
            seq,
            filter: nav.filter.clone(),
            order,
            longest_name,
        }
    }
}

impl View for Locks {
    fn handle_key(&mut self, key: KeyEvent, snap: &Snapshot, ctx: &Ctx) -> Option<Action> {
        let len = self.rows(snap, ctx.snapshot_seq).order.len();
        if key.code == KeyCode::Char('X') && ctx.actions_enabled {
            self.nav.clamp(len);
            let selected = self.nav.selected;
            let i = *self.rows(snap, ctx.snapshot_seq).order.get(selected)?;
            let l = snap.locks.ok()?.get(i)?;
            return Some(Action::Ask(Operation::ForceReleaseLock {
                name: l.name.clone(),
                holder: l.holder.clone(),
                holder_live: l.holder_live,
                fencing_token: l.fencing_token,
                age_ms: l.age_ms,
            }));
        }
        self.nav.handle(&key, len, 10).then_some(Action::Render)
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, snap: &Snapshot, ctx: &Ctx) {
        let Some(all) = table::data_or_message(frame, area, "Locks", &snap.locks, ctx.theme) else {
            return;
        };
        let seq = ctx.snapshot_seq;
        self.rows(snap, seq);
        let Some(rows) = self.rows.as_ref() else {
            return;
        };
        let t = ctx.theme;
        let title = table::title("Locks", &self.nav, rows.order.len(), all.len(), t);
        let mut cols = COLS;
        cols[0] = cols[0].wanting(rows.longest_name);
        let spec = TableSpec::focused(title, &cols, rows.order.len(), "no lock is held");
        table::draw_table(frame, area, spec, &mut self.nav, t, |i| {
            let l = &all[rows.order[i]];
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

    fn nav(&self) -> Option<&TableNav> {
        Some(&self.nav)
    }

    fn nav_mut(&mut self) -> Option<&mut TableNav> {
        Some(&mut self.nav)
    }
}
