//! Queues: paused or not, waiting, in flight, the backlog as time (the age
//! of the oldest unhandled message, its trend over the last minute and the
//! time to drain it at that rate), dead letters, consumers and ack rate
//! per queue. Enter lists the selected queue's dead letters; `R` asks to
//! requeue them, `D` to purge them, `P` to pause or resume the consumers.

use super::popup;
use super::table::{self, Col, TableNav, TableSpec};
use super::{Ctx, View};
use crate::console::action::Action;
use crate::console::format;
use crate::console::ops::Operation;
use crate::inspect::{QueueView, Snapshot};
use crate::operate::DeadLetter;
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Cell;

/// Dead letters listed at most.
pub const DEAD_LETTER_LIMIT: usize = 50;

/// The dead-letter overlay of one queue.
#[derive(Debug, Clone, PartialEq)]
pub enum DeadLetters {
    /// Asked, not answered yet.
    Loading(String),
    /// The list.
    Loaded(String, Vec<DeadLetter>),
    /// Why there is no list.
    Unavailable(String, String),
}

/// The Queues view.
#[derive(Debug, Default)]
pub struct Queues {
    nav: TableNav,
    dead: Option<DeadLetters>,
}

const COLS: [Col; 12] = [
    Col::fill("QUEUE", 14, 0),
    Col::new("STATE", 6, 0),
    Col::new("BACKEND", 8, 4),
    Col::new("WAITING", 8, 0),
    Col::new("IN FLIGHT", 9, 1),
    Col::new("AGE", 7, 0),
    Col::new("TREND", 8, 2),
    Col::new("DRAIN", 7, 2),
    Col::new("OLDEST IN FLIGHT", 16, 5),
    Col::new("DEAD", 6, 0),
    Col::new("CONSUMERS", 9, 3),
    Col::new("ACK RATE", 8, 4),
];

impl Queues {
    fn rows<'s>(&self, snap: &'s Snapshot) -> Vec<&'s QueueView> {
        let Some(queues) = snap.queues.ok() else {
            return vec![];
        };
        queues
            .iter()
            .filter(|q| self.nav.matches(&[&q.name, &q.backend]))
            .collect()
    }

    /// The dead-letter overlay, when open.
    pub fn dead_letters(&self) -> Option<&DeadLetters> {
        self.dead.as_ref()
    }
}

impl View for Queues {
    fn handle_key(&mut self, key: KeyEvent, snap: &Snapshot, ctx: &Ctx) -> Option<Action> {
        if let Some(outcome) = table::close_overlay(&mut self.dead, &key) {
            return outcome;
        }
        let rows = self.rows(snap);
        self.nav.clamp(rows.len());
        let selected = rows.get(self.nav.selected);
        match key.code {
            KeyCode::Enter => {
                let q = selected?;
                if ctx.lookups_enabled {
                    self.dead = Some(DeadLetters::Loading(q.name.clone()));
                    Some(Action::ListDeadLetters(q.name.clone()))
                } else {
                    let why = "not available in read-only snapshot mode".to_string();
                    self.dead = Some(DeadLetters::Unavailable(q.name.clone(), why));
                    Some(Action::Render)
                }
            }
            KeyCode::Char(c @ ('R' | 'D')) if ctx.actions_enabled => {
                let q = selected?;
                if q.dead_letters == 0 {
                    return Some(Action::Status(format!(
                        "queue {} has no dead letters",
                        q.name
                    )));
                }
                let (queue, count) = (q.name.clone(), q.dead_letters);
                Some(Action::Ask(if c == 'R' {
                    Operation::RequeueDeadLetters { queue, count }
                } else {
                    Operation::PurgeDeadLetters { queue, count }
                }))
            }
            KeyCode::Char('P') if ctx.actions_enabled => {
                let q = selected?;
                let queue = q.name.clone();
                Some(Action::Ask(match &q.paused {
                    Some(f) => Operation::ResumeQueue {
                        queue,
                        by: f.by.clone(),
                        reason: f.reason.clone(),
                    },
                    None => Operation::PauseQueue {
                        queue,
                        reason: crate::console::ops::CONSOLE_PAUSE_REASON.into(),
                    },
                }))
            }
            _ => self
                .nav
                .handle(&key, rows.len(), 10)
                .then_some(Action::Render),
        }
    }

    fn on_action(&mut self, action: &Action) {
        if let Action::DeadLettersListed { queue, result } = action
            && matches!(&self.dead, Some(DeadLetters::Loading(q)) if q == queue)
        {
            self.dead = Some(match result {
                Ok(list) => DeadLetters::Loaded(queue.clone(), list.clone()),
                Err(e) => DeadLetters::Unavailable(queue.clone(), e.clone()),
            });
        }
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, snap: &Snapshot, ctx: &Ctx) {
        let Some(all) = table::data_or_message(frame, area, "Queues", &snap.queues, ctx.theme)
        else {
            return;
        };
        let rows = self.rows(snap);
        let t = ctx.theme;
        let title = table::title("Queues", &self.nav, rows.len(), all.len(), t);
        let mut cols = COLS;
        cols[0] = cols[0].wanting(table::longest(rows.iter().map(|q| q.name.as_str())));
        let spec = TableSpec::focused(title, &cols, rows.len(), "no queue");
        table::draw_table(frame, area, spec, &mut self.nav, t, |i| {
            let q = rows[i];
            let starving = q.consumers == 0 && q.waiting > 0;
            let outlook = ctx.backlog.queue(&q.name);
            let growing = outlook.trend == crate::console::backlog::Trend::Growing;
            let (state, state_style) = match &q.paused {
                Some(_) => ("paused", t.warn),
                None => ("active", t.text),
            };
            let cells = vec![
                Cell::from(q.name.clone()),
                Cell::from(state).style(state_style),
                Cell::from(q.backend.clone()),
                Cell::from(format::count(q.waiting)),
                Cell::from(format::count(q.in_flight)),
                Cell::from(format::opt_age(q.oldest_age_ms)),
                Cell::from(outlook.trend_label()).style(if growing { t.warn } else { t.text }),
                Cell::from(outlook.drain_label()),
                Cell::from(format::opt_age(q.oldest_in_flight_age_ms)),
                Cell::from(format::count(q.dead_letters)).style(if q.dead_letters > 0 {
                    t.bad
                } else {
                    t.text
                }),
                Cell::from(q.consumers.to_string()).style(if starving { t.bad } else { t.text }),
                Cell::from(format::rate(q.ack_rate)),
            ];
            (cells, t.text)
        });
        let Some(dead) = &self.dead else { return };
        let (queue, lines) = match dead {
            DeadLetters::Loading(q) => (q, vec![Line::from(Span::styled("loading…", t.dim))]),
            DeadLetters::Unavailable(q, why) => {
                (q, vec![Line::from(Span::styled(why.clone(), t.warn))])
            }
            DeadLetters::Loaded(q, list) if list.is_empty() => {
                (q, vec![Line::from(Span::styled("no dead letters", t.dim))])
            }
            DeadLetters::Loaded(q, list) => {
                let room = area.height.saturating_sub(4) as usize;
                let mut lines: Vec<Line> = vec![Line::from(Span::styled(
                    format!("{:<24} {:>8} {:>8}  REASON", "ID", "AGE", "ATTEMPTS"),
                    t.header,
                ))];
                for d in list.iter().take(room.saturating_sub(1)) {
                    lines.push(Line::from(format!(
                        "{:<24} {:>8} {:>8}  {}",
                        format::truncate(&d.id, 24),
                        format::opt_age(d.age_ms),
                        d.attempts.map_or("-".into(), |a| a.to_string()),
                        d.reason
                    )));
                }
                if list.len() > room.saturating_sub(1) {
                    lines.push(Line::from(Span::styled(
                        format!("… {} more", list.len() + 1 - room),
                        t.dim,
                    )));
                }
                (q, lines)
            }
        };
        let title = format!("Dead letters of {queue}");
        popup::draw_lines(
            frame,
            area,
            &title,
            "Esc close",
            lines,
            area.width.saturating_sub(4),
            t,
        );
    }

    fn nav(&self) -> Option<&TableNav> {
        Some(&self.nav)
    }

    fn nav_mut(&mut self) -> Option<&mut TableNav> {
        Some(&mut self.nav)
    }

    fn overlay_open(&self) -> bool {
        self.dead.is_some()
    }
}
