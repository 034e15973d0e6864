//! [`TerminalOperator`]: the runbook on a terminal. Progress goes to stderr
//! (each step's full description before it runs, then its output lines);
//! questions are asked on stderr and answered on stdin with one letter:
//! `[y]es / [r]etry / [s]kip / [a]bort / roll[b]ack` (only the choices the
//! prompt allows). End of input answers abort.

use super::operator::{Decision, Operator, Progress, Prompt, format_progress, say};
use std::io::{BufRead, Write};

/// Asks on stderr, reads answers from stdin.
#[derive(Debug, Clone, Default)]
pub struct TerminalOperator;

impl TerminalOperator {
    /// A new terminal operator.
    pub fn new() -> Self {
        Self
    }
}

/// The letter and label of a choice (`y` → `[y]es`).
pub fn choice_label(d: Decision) -> (&'static str, &'static str) {
    match d {
        Decision::Confirm => ("y", "[y]es"),
        Decision::Retry => ("r", "[r]etry"),
        Decision::Skip => ("s", "[s]kip"),
        Decision::Abort => ("a", "[a]bort"),
        Decision::Rollback => ("b", "roll[b]ack"),
    }
}

/// Parse one answer among `choices` (a letter or the whole word).
pub fn parse_answer(input: &str, choices: &[Decision]) -> Option<Decision> {
    let t = input.trim().to_ascii_lowercase();
    choices.iter().copied().find(|d| {
        let (letter, _) = choice_label(*d);
        t == letter
            || t == d.as_str()
            || (*d == Decision::Confirm && t == "yes")
            || (*d == Decision::Rollback && t == "roll back")
    })
}

fn read_line() -> Option<String> {
    let mut s = String::new();
    match std::io::stdin().lock().read_line(&mut s) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(s),
    }
}

#[async_trait::async_trait]
impl Operator for TerminalOperator {
    async fn confirm(&self, prompt: &Prompt) -> Decision {
        let labels: Vec<&str> = prompt.choices.iter().map(|d| choice_label(*d).1).collect();
        loop {
            {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err);
                for line in prompt.message.lines() {
                    let _ = writeln!(err, "? {line}");
                }
                let _ = write!(err, "  {} > ", labels.join(" / "));
                let _ = err.flush();
            }
            let line = tokio::task::spawn_blocking(read_line).await.ok().flatten();
            let Some(line) = line else {
                say(format_args!("(end of input: abort)"));
                return Decision::Abort;
            };
            if let Some(d) = parse_answer(&line, &prompt.choices) {
                return d;
            }
            say(format_args!("  answer one of: {}", labels.join(" / ")));
        }
    }

    fn progress(&self, event: &Progress) {
        match event {
            Progress::StepStarted(start) => {
                say("");
                say(format_args!("{}", format_progress(event)));
                for line in start.description.lines().skip(1) {
                    say(format_args!("   {line}"));
                }
            }
            other => say(format_args!("{}", format_progress(other))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_letters_or_words_among_the_choices_only() {
        let c = [Decision::Retry, Decision::Skip, Decision::Abort];
        assert_eq!(parse_answer("r\n", &c), Some(Decision::Retry));
        assert_eq!(parse_answer(" Skip ", &c), Some(Decision::Skip));
        assert_eq!(parse_answer("y", &c), None);
        assert_eq!(parse_answer("b", &c), None);
        let c = [Decision::Confirm, Decision::Rollback, Decision::Abort];
        assert_eq!(parse_answer("yes", &c), Some(Decision::Confirm));
        assert_eq!(parse_answer("b", &c), Some(Decision::Rollback));
        assert_eq!(parse_answer("", &c), None);
    }
}
