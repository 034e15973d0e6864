//! Keys while the console is not in its normal mode: typing a `/` filter,
//! a `:` view name, a maintenance reason or a version to upgrade to,
//! reading the help, answering a confirmation dialog or the runbook's
//! question.

use crate::console::action::Action;
use crate::console::app::{App, Mode};
use crate::console::ops::Operation;
use crate::console::runbook_driver::RunbookOp;
use crate::console::views::ViewId;
use crate::runbook::terminal::{choice_label, parse_answer};
use crossterm::event::{KeyCode, KeyEvent};

/// Longest text accepted in a line editor.
const MAX_INPUT: usize = 200;

/// Handle a key in any mode but [`Mode::Normal`].
pub(crate) fn mode_key(app: &mut App, key: KeyEvent) -> Option<Action> {
    match app.mode.clone() {
        Mode::Normal => None,
        Mode::Help => {
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Char('?' | 'q') | KeyCode::Enter
            ) {
                app.mode = Mode::Normal;
            }
            Some(Action::Render)
        }
        Mode::Filter => {
            let view = &mut app.views[app.view.index()];
            let mut filter = view.filter().to_string();
            match key.code {
                KeyCode::Enter => app.mode = Mode::Normal,
                KeyCode::Esc => {
                    view.set_filter(String::new());
                    app.mode = Mode::Normal;
                }
                _ => {
                    if edit(&mut filter, key) {
                        view.set_filter(filter);
                    }
                }
            }
            Some(Action::Render)
        }
        Mode::Command(mut text) => match key.code {
            KeyCode::Esc => {
                app.mode = Mode::Normal;
                Some(Action::Render)
            }
            KeyCode::Enter => {
                app.mode = Mode::Normal;
                let name = text.trim();
                if matches!(name, "q" | "quit" | "q!") {
                    Some(Action::Quit)
                } else if name == "ctx" || name.starts_with("ctx ") {
                    let wanted = name["ctx".len()..].trim();
                    Some(Action::SwitchContext(
                        (!wanted.is_empty()).then(|| wanted.to_string()),
                    ))
                } else if let Some(v) = ViewId::by_name(name) {
                    Some(Action::SwitchView(v))
                } else {
                    let names: Vec<&str> = ViewId::ALL.iter().map(|v| v.command_name()).collect();
                    Some(Action::Status(format!(
                        "no view named {name:?}: try {}",
                        names.join(", ")
                    )))
                }
            }
            _ => {
                edit(&mut text, key);
                app.mode = Mode::Command(text);
                Some(Action::Render)
            }
        },
        Mode::Prompt(mut reason) => match key.code {
            KeyCode::Esc => {
                app.mode = Mode::Normal;
                Some(Action::Status("maintenance not set".into()))
            }
            KeyCode::Enter if reason.trim().is_empty() => Some(Action::Status(
                "type why the cluster goes into maintenance (Esc cancels)".into(),
            )),
            KeyCode::Enter => {
                app.mode = Mode::Normal;
                Some(Action::Ask(Operation::SetMaintenance {
                    reason: reason.trim().to_string(),
                }))
            }
            _ => {
                edit(&mut reason, key);
                app.mode = Mode::Prompt(reason);
                Some(Action::Render)
            }
        },
        Mode::Confirm(op) => match key.code {
            KeyCode::Char('y' | 'Y') => {
                app.mode = Mode::Normal;
                app.run_operation(op);
                Some(Action::Render)
            }
            KeyCode::Char('n' | 'N' | 'q') | KeyCode::Esc => {
                app.mode = Mode::Normal;
                Some(Action::Status(format!("cancelled: {}", op.summary())))
            }
            _ => Some(Action::Render),
        },
        Mode::Version(mut text) => match key.code {
            KeyCode::Esc => {
                app.mode = Mode::Normal;
                Some(Action::Status("no upgrade started".into()))
            }
            KeyCode::Enter => {
                let target = text.trim().to_string();
                match crate::runbook::check_version(&target) {
                    Ok(()) => {
                        app.mode = Mode::Normal;
                        Some(Action::AskRunbook(RunbookOp::Start { target }))
                    }
                    Err(e) => Some(Action::Status(format!("{e} (Esc cancels)"))),
                }
            }
            _ => {
                edit(&mut text, key);
                app.mode = Mode::Version(text);
                Some(Action::Render)
            }
        },
        Mode::RunbookConfirm(op, _) => match key.code {
            KeyCode::Char('y' | 'Y') => {
                app.mode = Mode::Normal;
                app.run_runbook_op(op);
                Some(Action::Render)
            }
            KeyCode::Char('n' | 'N' | 'q') | KeyCode::Esc => {
                app.mode = Mode::Normal;
                Some(Action::Status(format!("cancelled: {}", op.title())))
            }
            _ => Some(Action::Render),
        },
        Mode::RunbookPrompt(prompt) => {
            // Modal: the runbook waits. Only its choices answer (one letter,
            // as in the terminal); Ctrl-C quits the console, which
            // interrupts the run at a safe point.
            let KeyCode::Char(c) = key.code else {
                return Some(Action::Render);
            };
            match parse_answer(&c.to_string(), &prompt.choices) {
                Some(d) => {
                    app.mode = Mode::Normal;
                    app.answer_runbook(d);
                    Some(Action::Render)
                }
                None => {
                    let labels: Vec<&str> =
                        prompt.choices.iter().map(|d| choice_label(*d).1).collect();
                    Some(Action::Status(format!("answer {}", labels.join(" / "))))
                }
            }
        }
    }
}

/// Apply a key to a one-line text; returns whether the text changed.
fn edit(text: &mut String, key: KeyEvent) -> bool {
    match key.code {
        KeyCode::Backspace => text.pop().is_some(),
        KeyCode::Char(c) if !c.is_control() && text.chars().count() < MAX_INPUT => {
            text.push(c);
            true
        }
        _ => false,
    }
}
