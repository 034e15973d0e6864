//! The frame around the views: header (cluster, verdict, snapshot age,
//! mode), tab bar, the stale-data banner, the status line, and the help,
//! prompt and confirmation overlays.

use crate::console::app::{App, Mode};
use crate::console::format;
use crate::console::keys;
use crate::console::views::ViewId;
use crate::console::views::overview::verdict_word;
use crate::console::views::popup;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

/// Draw the whole screen.
pub(crate) fn draw(app: &mut App, frame: &mut Frame) {
    let area = frame.area();
    let banner_text = match (&app.fetch_error, &app.snapshot) {
        (Some((reason, at)), Some(snap)) => Some(format!(
            " ⚠ showing data {} old · fetch failed {}, retrying: {reason}",
            format::age(app.now_ms.saturating_sub(snap.taken_at_ms)),
            format::clock(*at),
        )),
        _ => None,
    };
    let banner_h = match &banner_text {
        Some(text) if text.chars().count() > area.width as usize => 2,
        Some(_) => 1,
        None => 0,
    };
    let [header, tabs, banner, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(banner_h),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(app, frame, header);
    draw_tabs(app, frame, tabs);
    draw_footer(app, frame, footer);

    let t = &app.options.theme;
    if app.snapshot.is_none() {
        let lines = match &app.fetch_error {
            Some((reason, at)) => vec![
                Line::from(Span::styled("cannot read a snapshot", t.bad)),
                Line::from(format!("{} at {}", reason, format::clock(*at))),
                Line::from(Span::styled(
                    "retrying by itself; r retries now, q quits",
                    t.dim,
                )),
            ],
            None => vec![Line::from(Span::styled(
                format!(
                    "waiting for the first snapshot from {}…",
                    app.options.source_label
                ),
                t.dim,
            ))],
        };
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(Block::bordered().border_style(t.border)),
            body,
        );
        draw_overlay(app, frame, body);
        return;
    }
    if let Some(text) = banner_text {
        let banner_widget = Paragraph::new(text)
            .style(t.banner)
            .wrap(Wrap { trim: false });
        frame.render_widget(banner_widget, banner);
    }
    app.with_view(|view, snap, ctx| view.draw(frame, body, snap, ctx));
    if app.fetch_error.is_some() {
        frame.buffer_mut().set_style(body, app.options.theme.stale);
    }
    draw_overlay(app, frame, body);
}

fn draw_header(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.options.theme;
    let mut spans = vec![Span::styled(" clusterops ", t.accent)];
    if let Some(name) = app.context_name() {
        spans.push(Span::styled(format!("[{name}] "), t.accent));
    }
    if let Some(snap) = &app.snapshot {
        spans.push(Span::styled(format!("{} ", snap.cluster), t.header));
        let (word, style) = verdict_word(app.assessment.verdict, t);
        spans.push(Span::styled(
            format!(" {word} "),
            style.add_modifier(Modifier::REVERSED),
        ));
    }
    if !app.actions_enabled() && !app.runbook_enabled() {
        spans.push(Span::styled(" read-only", t.accent));
    }
    if let Some(snap) = &app.snapshot {
        let age_ms = app.now_ms.saturating_sub(snap.taken_at_ms);
        let at = if age_ms >= 86_400_000 {
            crate::clock::datetime(snap.taken_at_ms)
        } else {
            format::clock(snap.taken_at_ms)
        };
        spans.push(Span::styled(
            format!("  {at} ({} ago)", format::age(age_ms)),
            t.dim,
        ));
    }
    let left_w: usize = spans.iter().map(|s| s.width()).sum();
    let room = (area.width as usize).saturating_sub(left_w + 2);
    if room >= 8 {
        let label = format::truncate(&format!("{} ", app.options.source_label), room);
        spans.push(Span::raw(" ".repeat(room - label.chars().count() + 2)));
        spans.push(Span::styled(label, t.dim));
    }
    frame.render_widget(Line::from(spans), area);
}

fn draw_tabs(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.options.theme;
    let full: usize = ViewId::ALL
        .iter()
        .map(|v| v.title().len() + 3)
        .sum::<usize>();
    let mut spans = vec![Span::raw(" ")];
    for (i, v) in ViewId::ALL.iter().enumerate() {
        // Narrow: four letters each, the view shown in full.
        let title = if full < area.width as usize || *v == app.view {
            v.title()
        } else {
            &v.title()[..v.title().len().min(4)]
        };
        let style = if *v == app.view { t.selected } else { t.dim };
        spans.push(Span::styled(format!("{} {title}", i + 1), style));
        spans.push(Span::raw(" "));
    }
    frame.render_widget(Line::from(spans), area);
}

fn draw_footer(app: &App, frame: &mut Frame, area: Rect) {
    let t = &app.options.theme;
    let line = match &app.mode {
        Mode::Filter => Line::from(vec![
            Span::styled("/", t.accent),
            Span::raw(app.views[app.view.index()].filter().to_string()),
            Span::styled("█", t.accent),
            Span::styled("  Enter keep · Esc clear", t.dim),
        ]),
        Mode::Command(text) => Line::from(vec![
            Span::styled(":", t.accent),
            Span::raw(text.clone()),
            Span::styled("█", t.accent),
            Span::styled("  view name, Enter jump · Esc cancel", t.dim),
        ]),
        Mode::Prompt(_) => Line::from(Span::styled(
            "type the reason · Enter next · Esc cancel",
            t.dim,
        )),
        Mode::Confirm(_) | Mode::RunbookConfirm(..) => {
            Line::from(Span::styled(" y confirm · n / Esc cancel", t.accent))
        }
        Mode::Version(_) => Line::from(Span::styled(
            "type the version · Enter next · Esc cancel",
            t.dim,
        )),
        Mode::RunbookPrompt(p) => Line::from(Span::styled(
            format!(
                " the runbook waits: {}",
                p.choices
                    .iter()
                    .map(|d| crate::runbook::terminal::choice_label(*d).1)
                    .collect::<Vec<_>>()
                    .join(" / ")
            ),
            t.accent,
        )),
        Mode::Help => Line::from(Span::styled(" Esc close help", t.dim)),
        Mode::Normal => match &app.status {
            Some(s) => Line::from(Span::styled(format!(" {s}"), t.warn)),
            None => {
                let filter = app.views[app.view.index()].filter();
                let mut spans = vec![];
                if !filter.is_empty() {
                    spans.push(Span::styled(format!(" /{filter} "), t.accent));
                    spans.push(Span::styled("(Esc clears) ", t.dim));
                }
                spans.push(Span::styled(
                    format!(" {}", keys::hint(app.view, app.view_actions_enabled())),
                    t.dim,
                ));
                Line::from(spans)
            }
        },
    };
    frame.render_widget(line, area);
}

fn draw_overlay(app: &App, frame: &mut Frame, body: Rect) {
    let t = &app.options.theme;
    match &app.mode {
        Mode::Help => {
            let keys = keys::help(app.view, app.view_actions_enabled());
            let width = keys
                .iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(0)
                + 2;
            let mut lines: Vec<Line> = keys
                .iter()
                .map(|(k, what)| {
                    Line::from(vec![
                        Span::styled(format!("{k:<width$}"), t.accent),
                        Span::raw(*what),
                    ])
                })
                .collect();
            if !app.view_actions_enabled() {
                lines.push(Line::from(Span::styled(
                    "read-only: no action is offered",
                    t.dim,
                )));
            }
            let title = format!("Keys: {}", app.view.title());
            popup::draw_lines(frame, body, &title, "Esc close", lines, body.width, t);
        }
        Mode::Prompt(reason) => text_input(
            frame,
            body,
            "Set maintenance",
            "Why does the cluster go into maintenance?",
            "reason: ",
            reason,
            t,
        ),
        Mode::Confirm(op) => {
            let lines: Vec<Line> = op.describe().into_iter().map(Line::from).collect();
            confirm(frame, body, op.title(), lines, t);
        }
        Mode::Version(text) => text_input(
            frame,
            body,
            "Start the upgrade",
            "Upgrade every node to which version?",
            "version: ",
            text,
            t,
        ),
        Mode::RunbookConfirm(op, describe) => {
            let lines: Vec<Line> = describe
                .iter()
                .flat_map(|l| wrap(l, DIALOG_TEXT))
                .map(Line::from)
                .collect();
            confirm(frame, body, op.title(), lines, t);
        }
        Mode::RunbookPrompt(p) => {
            let mut lines: Vec<Line> = p
                .message
                .lines()
                .flat_map(|l| wrap(l, DIALOG_TEXT))
                .map(Line::from)
                .collect();
            lines.push(Line::from(""));
            let mut answers = Vec::new();
            for d in &p.choices {
                let (letter, label) = crate::runbook::terminal::choice_label(*d);
                answers.push(Span::styled(letter.to_string(), t.accent));
                answers.push(Span::raw(format!(" {}    ", label.replace(['[', ']'], ""))));
            }
            lines.push(Line::from(answers));
            let title = format!("Runbook: {}", p.step.title());
            popup::draw_lines(
                frame,
                body,
                &title,
                "the runbook waits for your answer",
                lines,
                76,
                t,
            );
        }
        _ => {}
    }
}

/// Text width inside the runbook's dialogs (76 wide with border and margin).
const DIALOG_TEXT: usize = 70;

/// A confirmation dialog: `lines`, then the keys that answer it.
fn confirm(
    frame: &mut Frame,
    body: Rect,
    title: &str,
    mut lines: Vec<Line>,
    t: &crate::console::theme::Theme,
) {
    lines.push(Line::from(""));
    lines.push(Line::from(vec![
        Span::styled("y", t.accent),
        Span::raw(" do it    "),
        Span::styled("n / Esc", t.accent),
        Span::raw(" cancel"),
    ]));
    popup::draw_lines(frame, body, title, "confirm", lines, 76, t);
}

/// A one-line text input in a popup: the question, then `label` and the text
/// typed so far with a cursor block.
fn text_input(
    frame: &mut Frame,
    body: Rect,
    title: &str,
    question: &str,
    label: &str,
    text: &str,
    t: &crate::console::theme::Theme,
) {
    let lines = vec![
        Line::from(question.to_string()),
        Line::from(vec![
            Span::styled(label.to_string(), t.dim),
            Span::raw(text.to_string()),
            Span::styled("█", t.accent),
        ]),
    ];
    popup::draw_lines(frame, body, title, "Enter next · Esc cancel", lines, 72, t);
}

/// Break `text` into lines of at most `width` characters at spaces (a
/// longer word is cut), so a dialog's height counts every line it shows.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        while word.chars().count() > width {
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            out.push(head);
        }
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn dialog_text_wraps_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("abcdefgh ij", 3), ["abc", "def", "gh", "ij"]);
        assert_eq!(wrap("", 5), [""]);
    }
}
