//! Overview: the verdict with its problems worst first, counts of every
//! part of the cluster, and sparklines of queue depth and stream lag over
//! the snapshots received. `M` sets or clears maintenance.

use super::{Ctx, View};
use crate::console::action::Action;
use crate::console::format;
use crate::console::ops::Operation;
use crate::console::theme::Theme;
use crate::console::verdict::{LONG_HELD_LOCK_MS, is_lagging, server_warnings};
use crate::inspect::{CheckStatus, Snapshot, Source, Verdict};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};

/// The Overview view.
#[derive(Debug, Default)]
pub struct Overview;

/// The word and style of a verdict.
pub fn verdict_word(v: Verdict, t: &Theme) -> (&'static str, Style) {
    match v {
        Verdict::Healthy => ("HEALTHY", t.ok),
        Verdict::Degraded => ("DEGRADED", t.warn),
        Verdict::Down => ("DOWN", t.bad),
    }
}

impl View for Overview {
    fn handle_key(&mut self, key: KeyEvent, snap: &Snapshot, ctx: &Ctx) -> Option<Action> {
        if key.code != KeyCode::Char('M') || !ctx.actions_enabled {
            return None;
        }
        Some(match &snap.maintenance {
            Source::Ok(Some(m)) => Action::Ask(Operation::ClearMaintenance {
                by: m.by.clone(),
                reason: m.reason.clone(),
            }),
            Source::Ok(None) => Action::PromptMaintenanceReason,
            _ => Action::Status("the maintenance flag is unreadable: nothing to change".into()),
        })
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, snap: &Snapshot, ctx: &Ctx) {
        let problems = ctx.assessment.problems.len() as u16;
        let verdict_h = (problems + 3).clamp(4, area.height.saturating_sub(12).max(4));
        // Verdict first, then the counts; the sparklines take what is left.
        let [verdict, counts, sparks] = Layout::vertical([
            Constraint::Length(verdict_h),
            Constraint::Length(7),
            Constraint::Min(0),
        ])
        .areas(area);
        draw_verdict(frame, verdict, ctx);
        draw_counts(frame, counts, snap, ctx);
        draw_sparklines(frame, sparks, ctx);
    }

    fn filterable(&self) -> bool {
        false
    }
}

fn draw_verdict(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = ctx.theme;
    let a = ctx.assessment;
    let (word, style) = verdict_word(a.verdict, t);
    let fails = a
        .problems
        .iter()
        .filter(|p| p.status == CheckStatus::Fail)
        .count();
    let warns = a.problems.len() - fails;
    let mut lines = vec![Line::from(vec![
        Span::styled(word, style),
        Span::styled(
            match a.problems.len() {
                0 => "  every check passes".to_string(),
                _ => format!("  {fails} failing, {warns} to look at"),
            },
            t.dim,
        ),
    ])];
    let room = area.height.saturating_sub(3) as usize;
    let shown = if a.problems.len() > room {
        room.saturating_sub(1)
    } else {
        a.problems.len()
    };
    for p in &a.problems[..shown] {
        let (tag, st) = match p.status {
            CheckStatus::Fail => ("FAIL ", t.bad),
            _ => ("warn ", t.warn),
        };
        lines.push(Line::from(vec![
            Span::styled(tag, st),
            Span::styled(format!("{:<11} ", p.area), t.dim),
            Span::raw(p.text.clone()),
        ]));
    }
    if shown < a.problems.len() {
        lines.push(Line::from(Span::styled(
            format!("… {} more: see the other views", a.problems.len() - shown),
            t.dim,
        )));
    }
    let block = Block::bordered()
        .border_style(t.border)
        .title(Span::styled(" Verdict ", t.header));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn unreadable<T>(s: &Source<T>) -> Option<&'static str> {
    match s {
        Source::Ok(_) => None,
        Source::Unavailable { .. } => Some("unreadable"),
        Source::NotConfigured => Some("not configured"),
    }
}

fn draw_counts(frame: &mut Frame, area: Rect, snap: &Snapshot, ctx: &Ctx) {
    let t = ctx.theme;
    let or_unreadable =
        |s: Option<&'static str>, f: &dyn Fn() -> String| s.map_or_else(f, str::to_string);
    let nodes = or_unreadable(unreadable(&snap.nodes), &|| {
        let n = snap.nodes.ok().map_or(&[][..], |v| v.as_slice());
        let healthy = n.iter().filter(|n| n.health.is_healthy()).count();
        let drift = snap.drift.fingerprint.len() + snap.drift.version.len();
        let drift = if drift > 0 {
            format!(" · {drift} drift")
        } else {
            String::new()
        };
        format!("{} · {healthy} healthy{drift}", n.len())
    });
    let leases = or_unreadable(unreadable(&snap.leases), &|| {
        let l = snap.leases.ok().map_or(&[][..], |v| v.as_slice());
        let held = l.iter().filter(|l| l.holder.is_some()).count();
        let stale = l
            .iter()
            .filter(|l| l.holder.is_some() && !l.holder_live)
            .count();
        let stale = if stale > 0 {
            format!(" · {stale} stale")
        } else {
            String::new()
        };
        format!("{held}/{} held{stale}", l.len())
    });
    let locks = or_unreadable(unreadable(&snap.locks), &|| {
        let l = snap.locks.ok().map_or(&[][..], |v| v.as_slice());
        let long = l
            .iter()
            .filter(|l| l.holder_live && l.age_ms >= LONG_HELD_LOCK_MS)
            .count();
        let dead = l.iter().filter(|l| !l.holder_live).count();
        let mut s = format!("{} held", format::count(l.len() as u64));
        if long > 0 {
            s += &format!(" · {long} long");
        }
        if dead > 0 {
            s += &format!(" · {dead} orphan");
        }
        s
    });
    let maintenance = match &snap.maintenance {
        Source::Ok(None) => "off".to_string(),
        Source::Ok(Some(m)) => format!("ON by {}: {}", m.by, m.reason),
        other => unreadable(other).unwrap_or_default().to_string(),
    };
    let streams = or_unreadable(unreadable(&snap.streams), &|| {
        let s = snap.streams.ok().map_or(&[][..], |v| v.as_slice());
        let lagging = s
            .iter()
            .flat_map(|s| &s.readers)
            .filter(|r| r.live && is_lagging(r))
            .count();
        let lagging = if lagging > 0 {
            format!(" · {lagging} lagging")
        } else {
            String::new()
        };
        format!("{} channels{lagging}", s.len())
    });
    let queues_of = || snap.queues.ok().map_or(&[][..], |v| v.as_slice());
    let queues = or_unreadable(unreadable(&snap.queues), &|| {
        let q = queues_of();
        let waiting: u64 = q.iter().map(|q| q.waiting).sum();
        let in_flight: u64 = q.iter().map(|q| q.in_flight).sum();
        format!(
            "{} waiting · {} in flight",
            format::count(waiting),
            format::count(in_flight)
        )
    });
    let dead = or_unreadable(unreadable(&snap.queues), &|| {
        let q = queues_of();
        let total: u64 = q.iter().map(|q| q.dead_letters).sum();
        let with = q.iter().filter(|q| q.dead_letters > 0).count();
        match total {
            0 => "none".to_string(),
            _ => format!(
                "{} in {with} queue{}",
                format::count(total),
                if with == 1 { "" } else { "s" }
            ),
        }
    });
    // Per server instance: one Redis behind five databases is one server.
    let instances = crate::inspect::instances::group(&snap.servers);
    let warnings: usize = instances
        .iter()
        .map(|i| {
            server_warnings(i.facts()).len() + i.uses.iter().filter(|u| u.error.is_some()).count()
        })
        .sum();
    let plural = if warnings == 1 { "" } else { "s" };
    let servers = format!("{} · {warnings} warning{plural}", instances.len());
    let took = format!("took {} ms · {} trips", snap.took_ms, snap.round_trips);
    let line = |label: &str, value: String, alarm: bool| {
        let style = if value == "unreadable" || alarm {
            t.warn
        } else {
            t.text
        };
        Line::from(vec![
            Span::styled(format!("{label:<13}"), t.dim),
            Span::styled(value, style),
        ])
    };
    let maintenance_on = matches!(snap.maintenance, Source::Ok(Some(_)));
    let dead_alarm = dead != "none";
    let left = vec![
        line("Nodes", nodes, false),
        line("Worker IDs", leases, false),
        line("Locks", locks, false),
        line("Maintenance", maintenance, maintenance_on),
        line("Servers", servers, false),
    ];
    let right = vec![
        line("Streams", streams, false),
        line("Queues", queues, false),
        line("Dead letters", dead, dead_alarm),
        line("Snapshot", took, false),
    ];
    let block = Block::bordered()
        .border_style(t.border)
        .title(Span::styled(" Cluster ", t.header));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
        .spacing(1)
        .areas(inner);
    frame.render_widget(Paragraph::new(left), l);
    frame.render_widget(Paragraph::new(right), r);
}

fn draw_sparklines(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    if area.height < 3 {
        return;
    }
    let t = ctx.theme;
    let [l, r] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let span = ctx.history.span_ms();
    let n = ctx.history.samples().len();
    let over = if n < 2 {
        format!("{n} snapshot")
    } else {
        format!("last {}", format::age(span))
    };
    for (rect, name, series) in [
        (
            l,
            "Queue depth",
            ctx.history
                .last(l.width.saturating_sub(2) as usize, |s| s.queue_depth),
        ),
        (
            r,
            "Stream lag",
            ctx.history
                .last(r.width.saturating_sub(2) as usize, |s| s.stream_lag),
        ),
    ] {
        let now = series.last().copied().unwrap_or(0);
        let title = Line::from(vec![
            Span::styled(format!(" {name} "), t.header),
            Span::styled(format!("{} ", format::count(now)), t.text),
            Span::styled(format!("({over}) "), t.dim),
        ]);
        let max = series.iter().copied().max().unwrap_or(0).max(1);
        let spark = Sparkline::default()
            .block(Block::bordered().border_style(t.border).title(title))
            .data(&series)
            .max(max)
            .style(t.accent);
        frame.render_widget(spark, rect);
    }
}
