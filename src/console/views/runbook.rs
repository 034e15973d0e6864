//! Runbook: the current or last upgrade run, followed live from the journal
//! mirror and the local journal (read on the background task, see
//! `console::run_feed`): target version, who and where, every step with its
//! state, attempts, times and what it does, the selected step's output
//! tail, how the run ended and what to do next.

use super::table::{self, Col, TableNav, TableSpec};
use super::{Ctx, View};
use crate::console::action::Action;
use crate::console::format;
use crate::console::run_feed::RunPane;
use crate::console::runbook_driver::RunbookOp;
use crate::console::theme::Theme;
use crate::inspect::Snapshot;
use crate::runbook::journal::StepResult;
use crate::runbook::view::{RunStatus, RunView, StepState, StepView};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Wrap};

/// The Runbook view.
#[derive(Debug)]
pub struct Runbook {
    nav: TableNav,
    /// Keep the running (or last active) step selected.
    follow: bool,
}

impl Default for Runbook {
    fn default() -> Self {
        Self {
            nav: TableNav::default(),
            follow: true,
        }
    }
}

const COLS: [Col; 8] = [
    Col::new("#", 2, 0),
    Col::fill("STEP", 16, 0),
    Col::new("STATE", 11, 0),
    Col::new("TRY", 3, 3),
    Col::new("START", 8, 0),
    Col::new("END", 8, 2),
    Col::new("TOOK", 6, 0),
    Col::fill("WHAT IT DOES", 30, 4),
];

/// Rows of the summary block (4 lines and the border).
const SUMMARY_H: u16 = 6;

fn state_style(state: StepState, t: &Theme) -> Style {
    match state {
        StepState::Succeeded => t.ok,
        StepState::Failed => t.bad,
        StepState::Skipped | StepState::Interrupted | StepState::Stopped | StepState::NotEnded => {
            t.warn
        }
        StepState::Running => t.accent,
        StepState::Pending => t.dim,
    }
}

/// The run's status word and its style.
pub fn status_word(status: RunStatus, t: &Theme) -> (&'static str, Style) {
    let style = match status {
        RunStatus::Running => t.accent,
        RunStatus::Completed => t.ok,
        RunStatus::RolledBack | RunStatus::Interrupted | RunStatus::Paused => t.warn,
        RunStatus::Aborted => t.bad,
    };
    let word = match status {
        RunStatus::Running => "RUNNING",
        RunStatus::Interrupted => "INTERRUPTED",
        RunStatus::Paused => "PAUSED",
        RunStatus::Completed => "COMPLETED",
        RunStatus::RolledBack => "ROLLED BACK",
        RunStatus::Aborted => "ABORTED",
    };
    (word, style)
}

/// The step to show when following: the running one, else the interrupted
/// one, else the last one started.
fn focus(run: &RunView) -> usize {
    let by_kind = |k| run.steps.iter().position(|s| s.kind == k);
    run.running
        .and_then(by_kind)
        .or_else(|| {
            run.interrupted
                .as_ref()
                .and_then(|i| i.step)
                .and_then(by_kind)
        })
        .or_else(|| {
            run.steps
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.started_at_ms.map(|at| (at, i)))
                .max()
                .map(|(_, i)| i)
        })
        .unwrap_or(0)
}

fn took(step: &StepView, now_ms: u64, running: bool) -> String {
    match (step.started_at_ms, step.ended_at_ms) {
        (Some(a), Some(b)) => format::age(b.saturating_sub(a)),
        (Some(a), None) if running => format::age(now_ms.saturating_sub(a)),
        _ => String::new(),
    }
}

fn opt_clock(ms: Option<u64>) -> String {
    ms.map(format::clock).unwrap_or_default()
}

impl Runbook {
    fn draw_message(&self, frame: &mut Frame, area: Rect, lines: Vec<Line>, t: &Theme) {
        let block = Block::bordered()
            .border_style(t.border)
            .title(Span::styled(" Runbook ", t.header));
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(block),
            area,
        );
    }

    fn summary<'a>(run: &RunView, pane: &RunPane, ctx: &Ctx) -> Vec<Line<'a>> {
        let t = ctx.theme;
        let (word, style) = status_word(run.status(), t);
        let prev = run.head.previous_version.as_deref().unwrap_or("?");
        let l1 = Line::from(vec![
            Span::styled("upgrade ", t.dim),
            Span::styled(format!("{prev} → {}", run.head.target_version), t.header),
            Span::styled("  cluster ", t.dim),
            Span::raw(run.head.cluster.clone()),
            Span::styled("  executor ", t.dim),
            Span::raw(run.head.executor.clone()),
            Span::raw("  "),
            Span::styled(
                format!(" {word} "),
                style.add_modifier(ratatui::style::Modifier::REVERSED),
            ),
        ]);
        let mut l2 = vec![
            Span::styled("started ", t.dim),
            Span::raw(format::clock(run.head.started_at_ms)),
            Span::styled(" by ", t.dim),
            Span::raw(run.head.started_by.to_string()),
        ];
        if let Some((by, at)) = &run.resumed {
            l2.push(Span::styled(" · resumed ", t.dim));
            l2.push(Span::raw(format::clock(*at)));
            l2.push(Span::styled(" by ", t.dim));
            l2.push(Span::raw(by.to_string()));
        }
        l2.push(Span::styled(
            format!(
                " · last event {} ago",
                format::age(ctx.now_ms.saturating_sub(run.last_at_ms))
            ),
            t.dim,
        ));
        if let Some(unknown) = run.unknown_line() {
            l2.push(Span::styled(format!(" · {unknown}"), t.warn));
        }
        let l3 = if let Some(i) = &run.interrupted {
            Line::from(vec![
                Span::styled("interrupted ", t.warn),
                Span::raw(format!(
                    "{} ({}) by {}{}",
                    format::clock(i.at_ms),
                    i.reason,
                    i.by,
                    i.step
                        .map(|s| format!(" during {}", s.title()))
                        .unwrap_or_default()
                )),
            ])
        } else if let Some((by, at)) = &run.finished_by {
            let mut spans = vec![
                Span::styled("ended ", t.dim),
                Span::raw(format!("{} by {by}", format::clock(*at))),
            ];
            if let Some(reason) = &run.rollback {
                spans.push(Span::styled(" · rollback: ", t.dim));
                spans.push(Span::raw(reason.clone()));
            }
            Line::from(spans)
        } else if let Some(reason) = &run.rollback {
            Line::from(vec![
                Span::styled("rolling back: ", t.warn),
                Span::raw(reason.clone()),
            ])
        } else if let Some(d) = &run.last_decision {
            Line::from(vec![
                Span::styled("last decision ", t.dim),
                Span::raw(format!(
                    "{} at {} by {} ({})",
                    d.decision.as_str(),
                    d.step.title(),
                    d.by,
                    format::clock(d.at_ms)
                )),
            ])
        } else {
            Line::from(Span::styled(format!("read from {}", pane.from), t.dim))
        };
        let next = match run.status() {
            RunStatus::Interrupted | RunStatus::Paused if ctx.runbook_enabled => {
                "C continues it, B rolls it back, A aborts it".to_string()
            }
            _ => run.next(),
        };
        let l4 = Line::from(vec![Span::styled("next: ", t.accent), Span::raw(next)]);
        vec![l1, Line::from(l2), l3, l4]
    }

    fn draw_detail(&self, frame: &mut Frame, area: Rect, run: &RunView, pane: &RunPane, ctx: &Ctx) {
        let t = ctx.theme;
        let Some(step) = run.steps.get(self.nav.selected) else {
            return;
        };
        let mut title = vec![Span::styled(format!(" {} ", step.kind.title()), t.header)];
        if step.attempts > 1 {
            title.push(Span::styled(format!("attempt {} ", step.attempts), t.dim));
        }
        let mut block = Block::bordered()
            .border_style(t.border)
            .title(Line::from(title));
        if let Some(e) = &pane.error {
            block = block.title_bottom(
                Line::from(Span::styled(
                    format!(" ⚠ {} ", format::truncate(e, 100)),
                    t.bad,
                ))
                .right_aligned(),
            );
        } else if !pane.from.is_empty() {
            block = block.title_bottom(
                Line::from(Span::styled(format!(" {} ", pane.from), t.dim)).right_aligned(),
            );
        }
        let inner_h = block.inner(area).height as usize;
        let mut lines: Vec<Line> = Vec::new();
        if let Some(StepResult::Failed { error }) = &step.result {
            lines.push(Line::from(vec![
                Span::styled("failed: ", t.bad),
                Span::raw(error.clone()),
            ]));
        }
        if step.started_at_ms.is_none() {
            lines.push(Line::from(Span::styled("not started in this run", t.dim)));
        } else if let Some(first) = step.description.lines().next() {
            lines.push(Line::from(Span::styled(first.to_string(), t.dim)));
        }
        if let Some(b) = run
            .backup
            .as_ref()
            .filter(|_| step.kind == crate::runbook::StepKind::Backup)
        {
            lines.push(Line::from(Span::styled(
                format!(
                    "backup {} ({}, sha256 {})",
                    b.file.display(),
                    format::bytes(b.bytes),
                    format::short_fingerprint(&b.sha256)
                ),
                t.text,
            )));
        }
        let room = inner_h.saturating_sub(lines.len());
        let tail = &step.output[step.output.len().saturating_sub(room)..];
        lines.extend(tail.iter().map(|l| Line::from(format!("  {l}"))));
        frame.render_widget(Paragraph::new(lines).block(block), area);
    }
}

impl View for Runbook {
    fn handle_key(&mut self, key: KeyEvent, _snap: &Snapshot, ctx: &Ctx) -> Option<Action> {
        let len = ctx
            .run
            .and_then(|p| p.run.as_ref())
            .map_or(0, |r| r.steps.len());
        if key.code == KeyCode::Char('f') {
            self.follow = true;
            return Some(Action::Render);
        }
        if ctx.runbook_enabled {
            let op = match key.code {
                KeyCode::Char('U') => return Some(Action::PromptRunbookVersion),
                KeyCode::Char('C') => Some(RunbookOp::Resume),
                KeyCode::Char('B') => Some(RunbookOp::Rollback),
                KeyCode::Char('A') => Some(RunbookOp::Abort),
                KeyCode::Char('I') => Some(RunbookOp::Interrupt),
                _ => None,
            };
            if let Some(op) = op {
                return Some(Action::AskRunbook(op));
            }
        }
        if self.nav.handle(&key, len, 4) {
            self.follow = false;
            return Some(Action::Render);
        }
        None
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, _snap: &Snapshot, ctx: &Ctx) {
        let t = ctx.theme;
        let Some(pane) = ctx.run else {
            let mut lines = vec![
                Line::from(Span::styled("no runbook journal to follow", t.dim)),
                Line::from(""),
                Line::from(
                    "The Runbook view follows upgrade runs in live mode (clusterops console \
                     --env-file F): it reads the journal mirror in Redis and the local journal.",
                ),
            ];
            if let Some(hint) = ctx.runbook_hint {
                lines.push(Line::from(""));
                lines.push(Line::from(Span::styled(hint.to_string(), t.accent)));
            }
            self.draw_message(frame, area, lines, t);
            return;
        };
        let Some(run) = &pane.run else {
            let mut lines = vec![
                Line::from(Span::styled("no upgrade run recorded yet", t.dim)),
                Line::from(""),
            ];
            for place in &pane.looked_at {
                lines.push(Line::from(vec![
                    Span::styled("looked at  ", t.dim),
                    Span::raw(place.clone()),
                ]));
            }
            if let Some(e) = &pane.error {
                lines.push(Line::from(Span::styled(format!("⚠ {e}"), t.bad)));
            }
            lines.push(Line::from(""));
            lines.push(match ctx.runbook_hint {
                Some(hint) => Line::from(Span::styled(hint.to_string(), t.accent)),
                None => Line::from(Span::styled(
                    if ctx.runbook_enabled {
                        "U starts an upgrade to a version; or run `clusterops upgrade --to VERSION`"
                    } else {
                        "start one with `clusterops upgrade --to VERSION` (docs/runbook.md)"
                    },
                    t.dim,
                )),
            });
            self.draw_message(frame, area, lines, t);
            return;
        };
        if self.follow {
            self.nav.selected = focus(run);
        }
        let steps_want = run.steps.len() as u16 + 3;
        let rest = area.height.saturating_sub(SUMMARY_H);
        let detail_h = rest.saturating_sub(steps_want).max(4).min(rest);
        let steps_h = rest - detail_h;
        let summary_area = Rect::new(area.x, area.y, area.width, SUMMARY_H.min(area.height));
        let steps_area = Rect::new(area.x, area.y + summary_area.height, area.width, steps_h);
        let detail_area = Rect::new(area.x, steps_area.y + steps_h, area.width, detail_h);

        let title = Line::from(vec![
            Span::styled(" Runbook ", t.header),
            Span::styled(format!("run {} ", run.head.run_id), t.dim),
        ]);
        let mut summary_block = Block::bordered().border_style(t.border).title(title);
        if let Some(hint) = ctx.runbook_hint.filter(|_| run.finished.is_some()) {
            let room = (area.width as usize).saturating_sub(6);
            summary_block = summary_block.title_bottom(
                Line::from(Span::styled(
                    format!(" {} ", format::truncate(hint, room)),
                    t.dim,
                ))
                .right_aligned(),
            );
        }
        frame.render_widget(
            Paragraph::new(Self::summary(run, pane, ctx)).block(summary_block),
            summary_area,
        );

        let longest = table::longest(run.steps.iter().map(|s| s.kind.title()));
        let cols = [
            COLS[0],
            COLS[1].wanting(longest),
            COLS[2],
            COLS[3],
            COLS[4],
            COLS[5],
            COLS[6],
            COLS[7],
        ];
        let steps_title = table::title("Steps", &self.nav, run.steps.len(), run.steps.len(), t);
        let spec = TableSpec::focused(steps_title, &cols, run.steps.len(), "no step");
        let now = ctx.now_ms;
        table::draw_table(frame, steps_area, spec, &mut self.nav, t, |i| {
            let s = &run.steps[i];
            let state = run.step_state(s);
            let number = if s.kind.is_rollback() {
                format!("R{}", i + 1 - crate::runbook::StepKind::UPGRADE.len())
            } else {
                format!("{}", i + 1)
            };
            let cells = vec![
                Cell::from(number).style(t.dim),
                Cell::from(s.kind.title()),
                Cell::from(state.as_str()).style(state_style(state, t)),
                Cell::from(if s.attempts == 0 {
                    String::new()
                } else {
                    s.attempts.to_string()
                }),
                Cell::from(opt_clock(s.started_at_ms)).style(t.dim),
                Cell::from(opt_clock(s.ended_at_ms)).style(t.dim),
                Cell::from(took(s, now, state == StepState::Running)),
                Cell::from(s.description.lines().next().unwrap_or("").to_string()).style(t.dim),
            ];
            (cells, t.text)
        });
        if detail_h > 0 {
            self.draw_detail(frame, detail_area, run, pane, ctx);
        }
    }

    fn filterable(&self) -> bool {
        false
    }
}
