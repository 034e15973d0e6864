//! Every `clusterops …` and `cargo run … -- …` command line in README.md and
//! docs/*.md is accepted by the CLI definition itself (clap's
//! `try_parse_from` on the binary's `Cli`), so the docs cannot name a
//! subcommand, a flag or a value that does not exist. A command shown
//! without its required arguments (`clusterops upgrade`, naming the
//! command) is fine; an unknown flag, subcommand or bad value is not.

use crate::commands;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use std::path::{Path, PathBuf};

/// README.md and every docs/*.md.
fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Where a command was found, and its arguments after `clusterops`.
#[derive(Debug)]
struct Found {
    at: String,
    args: Vec<String>,
}

/// Shell-like words: quotes group, a word that starts an operator, a
/// redirection or a comment ends the command.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut has = false;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                has = true;
            }
            None if c.is_whitespace() => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                has = false;
            }
            None => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    let mut args = Vec::new();
    for w in out {
        let stop = w.starts_with('#')
            || w.starts_with('(')
            || w.starts_with('|')
            || w.starts_with(';')
            || w.starts_with('&')
            || w.starts_with('>')
            || w.starts_with('<') && !w.ends_with('>')
            || w.starts_with("2>")
            || w == ")"
            || w == "\\";
        if stop {
            break;
        }
        // `cmd;` `cmd)` end the command after this word.
        if let Some(last) = w
            .strip_suffix(';')
            .or_else(|| (w.ends_with(')') && !w.contains('(')).then(|| &w[..w.len() - 1]))
        {
            if !last.is_empty() {
                args.push(last.to_string());
            }
            break;
        }
        // Optional parts written as `[--yes]` or `[--config runbook.toml]`;
        // alternatives as `redis|rabbitmq` (the first one is checked).
        let w = w.trim_start_matches('[').trim_end_matches(']');
        let w = w.split('|').next().unwrap_or_default();
        if !w.is_empty() {
            args.push(w.to_string());
        }
    }
    args
}

/// The arguments of every command in one line of shell, if any.
fn commands_in(line: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("clusterops ").or_else(|| rest.find("cargo run")) {
        let before = rest[..i].chars().last();
        let is_cargo = rest[i..].starts_with("cargo run");
        let tail = &rest[i..];
        // `clusterops` as a program: at the start, after a space, a quote,
        // `(`, or a path (`./clusterops`, `/usr/local/bin/clusterops`).
        let program = is_cargo || before.is_none_or(|c| c.is_whitespace() || "`'\"(/$".contains(c));
        if program {
            let args = if is_cargo {
                match tail.find(" -- ") {
                    Some(j) => words(&tail[j + 4..]),
                    None => Vec::new(),
                }
            } else {
                words(&tail["clusterops ".len()..])
            };
            if !args.is_empty() {
                found.push(args);
            }
        }
        rest = &rest[i + 1..];
    }
    found
}

fn extract(path: &Path) -> Vec<Found> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    let mut pending = String::new();
    // Prose is read a paragraph at a time: a code span may wrap lines.
    let mut para = String::new();
    let mut para_at = String::new();
    let flush = |para: &mut String, at: &str, out: &mut Vec<Found>| {
        for (i, span) in para.split('`').enumerate() {
            let command = span.starts_with("clusterops ") || span.starts_with("cargo run");
            if i % 2 == 1 && command {
                for args in commands_in(span) {
                    out.push(Found {
                        at: at.to_string(),
                        args,
                    });
                }
            }
        }
        para.clear();
    };
    for (n, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", n + 1);
        // The bad-input table shows refused commands on purpose (its rows
        // are checked by tests/cli/bad_input_table.rs).
        if name == "bad-input.md" && line.starts_with("| ") {
            continue;
        }
        if fence.is_none() && !line.trim().is_empty() && !line.trim_start().starts_with("```") {
            if para.is_empty() {
                para_at = at.clone();
            }
            para.push_str(line);
            para.push(' ');
            continue;
        }
        flush(&mut para, &para_at, &mut out);
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(lang.trim().to_string()),
            };
            continue;
        }
        // Shell blocks (and unit files): whole lines, with `\` joins.
        // Output, TOML, text are not commands; in prose this was a blank line.
        if let Some("sh" | "bash" | "shell" | "console" | "ini") = fence.as_deref() {
            if let Some(start) = line.strip_suffix('\\') {
                pending.push_str(start);
                pending.push(' ');
                continue;
            }
            let joined = format!("{pending}{line}");
            pending.clear();
            for args in commands_in(&joined) {
                out.push(Found {
                    at: at.clone(),
                    args,
                });
            }
        }
    }
    flush(&mut para, &para_at, &mut out);
    out
}

/// A value written as a placeholder (`N`, `DIR`, `$port`, `<id>`, `{ns}`,
/// `…`): the docs mean "your value here", clap cannot check it.
fn is_placeholder(value: &str) -> bool {
    let upper = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        && value.starts_with(|c: char| c.is_ascii_uppercase());
    upper || value.contains(['$', '<', '{', '…'])
}

/// Whether clap accepts `args`; `Err` names why not.
fn accepted(args: &[String]) -> Result<(), String> {
    // `clusterops <command> --help`, `clusterops {ns} {node id}`: not a
    // command line but a placeholder or a name format.
    if args[0].starts_with(['<', '{']) {
        return Ok(());
    }
    let argv = std::iter::once("clusterops".to_string()).chain(args.iter().cloned());
    match commands::Cli::try_parse_from(argv) {
        Ok(_) => Ok(()),
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            | ErrorKind::MissingRequiredArgument
            | ErrorKind::MissingSubcommand => Ok(()),
            // A flag named in prose without its value (`console --runbook`):
            // clap knows the flag, it only misses the value.
            ErrorKind::InvalidValue
                if args.last().is_some_and(|a| a.starts_with("--"))
                    && e.to_string().contains("but none was supplied") =>
            {
                Ok(())
            }
            ErrorKind::InvalidValue | ErrorKind::ValueValidation
                if matches!(
                    e.get(ContextKind::InvalidValue),
                    Some(ContextValue::String(v)) if is_placeholder(v)
                ) =>
            {
                Ok(())
            }
            _ => Err(e.to_string()),
        },
    }
}

#[test]
fn every_command_in_the_docs_is_accepted_by_the_cli() {
    let mut count = 0;
    let mut bad = Vec::new();
    for file in doc_files() {
        for f in extract(&file) {
            count += 1;
            if let Err(why) = accepted(&f.args) {
                bad.push(format!("{}: clusterops {}\n{why}", f.at, f.args.join(" ")));
            }
        }
    }
    assert!(
        count > 50,
        "only {count} commands found: is the extraction broken?"
    );
    assert!(
        bad.is_empty(),
        "{} command(s) the CLI refuses:\n\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn the_extraction_reads_shell_the_way_the_docs_write_it() {
    assert_eq!(
        commands_in("cargo run --release -- status --env-file c.env   # nodes (--json)"),
        vec![vec!["status", "--env-file", "c.env"]]
    );
    assert_eq!(
        commands_in("out=$(clusterops check --env-file /etc/r.env 2>&1); rc=$?"),
        vec![vec!["check", "--env-file", "/etc/r.env"]]
    );
    assert_eq!(
        commands_in("ExecStart=/usr/local/bin/clusterops node --node-id 'web 1' | tee"),
        vec![vec!["node", "--node-id", "web 1"]]
    );
    assert_eq!(
        commands_in("clusterops upgrade --resume [--repair-journal] [--config …]"),
        vec![vec![
            "upgrade",
            "--resume",
            "--repair-journal",
            "--config",
            "…"
        ]]
    );
    assert!(commands_in("the clusterops_http_requests_total counter").is_empty());
    assert_eq!(
        commands_in("clusterops upgrade --resume (or --rollback to 1, or --abort)"),
        vec![vec!["upgrade", "--resume"]]
    );
    assert!(accepted(&["console".into(), "--runbook".into()]).is_ok());
    assert!(accepted(&["console".into(), "--runbok".into()]).is_err());
    // And a wrong flag is caught.
    assert!(accepted(&["status".into(), "--jsn".into()]).is_err());
    assert!(accepted(&["statsu".into()]).is_err());
    assert!(accepted(&["upgrade".into()]).is_ok());
    assert!(accepted(&["status".into(), "--watch".into(), "SECONDS".into()]).is_ok());
    assert!(accepted(&["status".into(), "--watch".into(), "0".into()]).is_err());
}

/// For humans: `cargo test --test cli docs_commands:: -- --ignored --nocapture`
/// lists every command found.
#[test]
#[ignore = "a listing for a person to read: cargo test --test cli docs_commands:: -- --ignored --nocapture"]
fn list_the_commands_found() {
    for file in doc_files() {
        for f in extract(&file) {
            println!("{:30} clusterops {}", f.at, f.args.join(" "));
        }
    }
}

/// The operator guide says how many checks `clusterops check` runs, in
/// words; it must be the number the binary knows.
#[test]
fn the_operator_guide_counts_the_checks_there_are() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/operator-guide.md")).unwrap();
    let flat = guide.split_whitespace().collect::<Vec<_>>().join(" ");
    let marker = "the deployment guide's preflight: ";
    let at = flat.find(marker).expect("the check command's paragraph") + marker.len();
    let said = flat[at..].split(" checks").next().unwrap();
    let units = [
        "", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let number = |n: usize| match n {
        10..=19 => [
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ][n - 10]
            .to_string(),
        20..=29 if n.is_multiple_of(10) => "twenty".to_string(),
        20..=29 => format!("twenty-{}", units[n % 10]),
        30..=39 if n.is_multiple_of(10) => "thirty".to_string(),
        30..=39 => format!("thirty-{}", units[n % 10]),
        n => n.to_string(),
    };
    let known = clusterops::inspect::check_allow::CHECK_IDS.len();
    assert_eq!(
        said,
        number(known),
        "docs/operator-guide.md says {said} checks; the binary has {known}"
    );
}
