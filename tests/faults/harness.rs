//! The fault suite's own small harness: option parsing (`--soak MINUTES`, a
//! name filter, `--list`, `--exact`), running scenarios, printing their
//! figures, and dispatching `--child` roles.

#![allow(dead_code)] // parts are used by some scenarios only

use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What a scenario measured: named figures printed after it passes or fails.
#[derive(Debug, Default)]
pub struct Report {
    pub figures: Vec<(String, String)>,
}

impl Report {
    pub fn figure(&mut self, name: &str, value: impl std::fmt::Display) {
        self.figures.push((name.to_string(), value.to_string()));
    }
}

/// How long and how hard a scenario should run.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// `Some` in a soak run: the suite repeats until this instant.
    pub soak_until: Option<Instant>,
    /// 1 in the default (CI) run; larger multipliers in a soak run's later
    /// rounds are up to the scenario (most repeat at the default size).
    pub round: u32,
}

impl Budget {
    pub fn is_soak(&self) -> bool {
        self.soak_until.is_some()
    }
}

/// One scenario: a name and a function that returns its figures, or an error
/// that says which promise was broken (with the figures so far in the text).
pub struct Scenario {
    pub name: &'static str,
    pub run: fn(&Budget, &mut Report) -> Result<(), String>,
}

/// A role run in a child process: `faults --child NAME ARGS…`.
pub struct Child {
    pub name: &'static str,
    pub run: fn(&[String]) -> ExitCode,
}

/// A command that starts this same binary as the child role `role`.
pub fn child_command(role: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("the fault suite knows its own path");
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--child").arg(role);
    cmd
}

struct Options {
    soak: Option<Duration>,
    filters: Vec<String>,
    /// `--skip NAME`: leave out the scenarios whose name contains it (as
    /// libtest does); `scripts/test` runs the longest scenario in a lane
    /// of its own this way.
    skips: Vec<String>,
    exact: bool,
    list: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        soak: None,
        filters: Vec::new(),
        skips: Vec::new(),
        exact: false,
        list: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--soak" => {
                let minutes = it
                    .next()
                    .ok_or("--soak needs a number of minutes")?
                    .parse::<f64>()
                    .map_err(|_| "--soak takes a number of minutes, such as 30")?;
                if !(minutes > 0.0 && minutes.is_finite()) {
                    return Err("--soak takes a positive number of minutes".into());
                }
                opts.soak = Some(Duration::from_secs_f64(minutes * 60.0));
            }
            "--list" => opts.list = true,
            "--exact" => opts.exact = true,
            // Options cargo test and nextest may pass to every test binary.
            "--nocapture" | "--quiet" | "-q" | "--ignored" | "--include-ignored"
            | "--show-output" => {}
            "--skip" => {
                let name = it.next().ok_or("--skip needs a scenario name")?;
                opts.skips.push(name.clone());
            }
            "--format" | "--test-threads" | "--color" | "--logfile" => {
                it.next();
            }
            a if a.starts_with("--") => {}
            a => opts.filters.push(a.to_string()),
        }
    }
    Ok(opts)
}

/// The suite's entry point: run a child role, list, or run the scenarios.
pub fn main(scenarios: &[Scenario], children: &[Child]) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let Some(role) = args.get(1) else {
            eprintln!("faults: --child needs a role");
            return ExitCode::from(2);
        };
        return match children.iter().find(|c| c.name == role) {
            Some(child) => (child.run)(&args[2..]),
            None => {
                eprintln!("faults: no child role {role}");
                ExitCode::from(2)
            }
        };
    }
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("faults: {e}");
            return ExitCode::from(2);
        }
    };
    let chosen: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| !opts.skips.iter().any(|k| s.name.contains(k.as_str())))
        .filter(|s| {
            opts.filters.is_empty()
                || opts.filters.iter().any(|f| {
                    if opts.exact {
                        s.name == f
                    } else {
                        s.name.contains(f.as_str())
                    }
                })
        })
        .collect();
    if opts.list {
        for s in &chosen {
            println!("{}: test", s.name);
        }
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    let soak_until = opts.soak.map(|d| started + d);
    println!("running {} fault scenarios", chosen.len());
    let mut failed = 0usize;
    let mut round = 1u32;
    loop {
        for s in &chosen {
            let budget = Budget { soak_until, round };
            let t0 = Instant::now();
            let mut report = Report::default();
            let result = (s.run)(&budget, &mut report);
            let figures = report
                .figures
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let secs = t0.elapsed().as_secs_f64();
            match result {
                Ok(()) => println!("fault {} ... ok ({secs:.1}s) {figures}", s.name),
                Err(e) => {
                    failed += 1;
                    println!("fault {} ... FAILED ({secs:.1}s) {figures}\n  {e}", s.name);
                }
            }
        }
        match soak_until {
            Some(until) if Instant::now() < until && failed == 0 => round += 1,
            _ => break,
        }
    }
    println!(
        "\nfault suite: {} scenarios, {} rounds, {failed} failed, {:.1}s",
        chosen.len(),
        round,
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
