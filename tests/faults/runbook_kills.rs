//! Scenario `runbook_kills`: one upgrade of a three-node cluster with data
//! in PostgreSQL, its `clusterops upgrade` process killed with SIGKILL at
//! every step boundary (just after a step's end is journaled, before the
//! next step starts) and resumed with `--resume` each time, until it is
//! done; then the same over the rollback path (the verification fails, the
//! rollback is killed at each of its boundaries). The cluster must end on
//! one version with its data, the journal and the audit must show every
//! step once, and the runbook lock must be free.

#[path = "../upgrade_support/mod.rs"]
mod upgrade_support;

use crate::harness::{Budget, Report};
use clusterops::adapters::lock;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};
use upgrade_support::Rig;

/// How long one runbook process may take to reach a boundary or to end.
const BOUND: Duration = Duration::from_secs(90);

pub fn run(_budget: &Budget, report: &mut Report) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let t0 = Instant::now();
            let up = upgrade_path(report).await;
            report.figure("upgrade_s", format!("{:.1}", t0.elapsed().as_secs_f64()));
            up?;
            let t1 = Instant::now();
            let back = rollback_path(report).await;
            report.figure("rollback_s", format!("{:.1}", t1.elapsed().as_secs_f64()));
            back
        })
    }))
    .unwrap_or_else(|p| Err(format!("panicked: {}", crate::redis_down::panic_text(&p))))
}

/// A point of the journal to kill at: the first event after the spawn that
/// matches.
struct Boundary {
    name: &'static str,
    at: fn(&serde_json::Value) -> bool,
}

fn finished(e: &serde_json::Value, step: &str) -> bool {
    e["event"] == "step_finished" && e["step"] == step
}

/// The upgrade's boundaries: after the run started, and after each step.
const UPGRADE: &[Boundary] = &[
    Boundary {
        name: "run_started",
        at: |e| e["event"] == "run_started",
    },
    Boundary {
        name: "preflight",
        at: |e| finished(e, "preflight"),
    },
    Boundary {
        name: "drain",
        at: |e| finished(e, "drain"),
    },
    Boundary {
        name: "stop_nodes",
        at: |e| finished(e, "stop_nodes"),
    },
    Boundary {
        name: "backup",
        at: |e| finished(e, "backup"),
    },
    Boundary {
        name: "upgrade_first",
        at: |e| finished(e, "upgrade_first"),
    },
    Boundary {
        name: "verify",
        at: |e| finished(e, "verify"),
    },
    Boundary {
        name: "rollout",
        at: |e| finished(e, "rollout"),
    },
    Boundary {
        name: "restore_traffic",
        at: |e| finished(e, "restore_traffic"),
    },
];

/// The rollback's boundaries: after the failed verification, after the
/// rollback started, and after each rollback step.
const ROLLBACK: &[Boundary] = &[
    Boundary {
        name: "verify_failed",
        at: |e| finished(e, "verify"),
    },
    Boundary {
        name: "rollback_started",
        at: |e| e["event"] == "rollback_started",
    },
    Boundary {
        name: "rollback_stop",
        at: |e| finished(e, "rollback_stop"),
    },
    Boundary {
        name: "rollback_restore",
        at: |e| finished(e, "rollback_restore"),
    },
    Boundary {
        name: "rollback_start",
        at: |e| finished(e, "rollback_start"),
    },
    Boundary {
        name: "rollback_restore_traffic",
        at: |e| finished(e, "rollback_restore_traffic"),
    },
];

/// How long each journal fsync of the runbook is made to last (see
/// [`SLOW_FSYNC_C`]).
const SLOW_FSYNC_MS: u64 = 25;

/// A preload library that makes `fdatasync` take `FAULTS_SLOW_FSYNC_MS`
/// longer, as on a slow disk. The journal is written, then fsynced, and only
/// then does the next step start: the watcher sees the boundary's line at
/// the write and kills within the fsync, so the kill lands on the boundary
/// and not in the first instants of the next step (an fsync here takes
/// 0.2-1 ms otherwise: a busy machine made a third of the kills late). It
/// removes itself from the environment, so the nodes the runbook starts do
/// not inherit it.
const SLOW_FSYNC_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
static long delay_ms;
__attribute__((constructor)) static void init(void) {
    const char *v = getenv("FAULTS_SLOW_FSYNC_MS");
    delay_ms = v ? atol(v) : 0;
    unsetenv("FAULTS_SLOW_FSYNC_MS");
    unsetenv("LD_PRELOAD");
}
int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int r = real(fd);
    int saved = errno;
    struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
    while (delay_ms > 0 && nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
    errno = saved;
    return r;
}
"#;

/// Build the preload library in `dir` and have every runbook of `rig` use
/// it; without a C compiler the kills race the fsync (reported).
fn slow_down_fsync(rig: &mut Rig, report: &mut Report) {
    let dir = rig.state.path().to_path_buf();
    let src = dir.join("slow_fsync.c");
    let lib = dir.join("slow_fsync.so");
    let built = std::fs::write(&src, SLOW_FSYNC_C).is_ok()
        && std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&lib)
            .arg(&src)
            .arg("-ldl")
            .output()
            .is_ok_and(|o| o.status.success());
    if built {
        rig.runbook_env = vec![
            ("LD_PRELOAD".into(), lib.display().to_string()),
            ("FAULTS_SLOW_FSYNC_MS".into(), SLOW_FSYNC_MS.to_string()),
        ];
        report.figure("journal_fsync_ms", format!("+{SLOW_FSYNC_MS}"));
    } else {
        report.figure("journal_fsync_ms", "as is (no cc: kills may land late)");
    }
}

/// Where a kill landed.
struct Kill {
    /// Nothing was journaled after the boundary's event.
    exact: bool,
    /// The events journaled after it (when not exact).
    after: Vec<String>,
}

/// Watch the journal from byte `from` until `boundary` shows, then SIGKILL
/// runbook `i` at once (polling every 0.5 ms: the next step's start comes
/// one fsync later).
fn kill_at(rig: &mut Rig, i: usize, from: u64, boundary: &Boundary) -> Result<Kill, String> {
    let path = rig.journal();
    let pid = nix::unistd::Pid::from_raw(rig.runbooks[i].id() as i32);
    let deadline = Instant::now() + BOUND;
    let mut offset = from;
    let mut pending = String::new();
    let hit_seq = 'watch: loop {
        for line in read_new(&path, &mut offset, &mut pending) {
            if let Ok(e) = serde_json::from_str::<serde_json::Value>(&line)
                && (boundary.at)(&e)
            {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                break 'watch e["seq"].as_u64().unwrap_or(0);
            }
        }
        if let Ok(Some(status)) = rig.runbooks[i].try_wait() {
            return Err(format!(
                "the runbook ended ({status}) before the boundary after {}:\n{}",
                boundary.name,
                rig.runbook_log(i)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the journal never showed the boundary after {} within {BOUND:?}:\n{}",
                boundary.name,
                rig.runbook_log(i)
            ));
        }
        std::thread::sleep(Duration::from_micros(500));
    };
    let _ = rig.runbooks[i].wait();
    let after: Vec<String> = rig
        .events()
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap_or(0) > hit_seq)
        .map(|e| {
            format!(
                "{}{}",
                e["event"].as_str().unwrap_or("?"),
                e["step"]
                    .as_str()
                    .map(|s| format!(" {s}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    Ok(Kill {
        exact: after.is_empty(),
        after,
    })
}

/// Complete lines appended to `path` since `offset`.
fn read_new(path: &Path, offset: &mut u64, pending: &mut String) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut buf = String::new();
    let Ok(n) = f.read_to_string(&mut buf) else {
        return Vec::new();
    };
    *offset += n as u64;
    pending.push_str(&buf);
    let mut out = Vec::new();
    while let Some(end) = pending.find('\n') {
        out.push(pending[..end].to_string());
        pending.drain(..=end);
    }
    out
}

fn journal_len(rig: &Rig) -> u64 {
    std::fs::metadata(rig.journal())
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Start `first`, then kill at each boundary and `--resume` for the next;
/// returns the kills and how many landed exactly on their boundary (the
/// others are listed in `misses`: they hit the first moments of the next step).
async fn kill_through(
    rig: &mut Rig,
    first: &[&str],
    boundaries: &[Boundary],
    misses: &mut Vec<String>,
) -> Result<(u32, u32), String> {
    let mut args = first.to_vec();
    let (mut kills, mut exact) = (0u32, 0u32);
    for b in boundaries {
        // A kill that landed late may have let this boundary pass already.
        if rig.events().iter().any(|e| (b.at)(e)) {
            misses.push(format!("{}: passed before its kill", b.name));
            continue;
        }
        let from = journal_len(rig);
        let i = rig.spawn_runbook(&args);
        let kill = tokio::task::block_in_place(|| kill_at(rig, i, from, b))?;
        kills += 1;
        if kill.exact {
            exact += 1;
        } else {
            misses.push(format!("{}: then {}", b.name, kill.after.join(", ")));
        }
        args = RESUME.to_vec();
    }
    Ok((kills, exact))
}

const RESUME: [&str; 3] = ["upgrade", "--resume", "--yes"];

/// Step results of the last run in the journal, in order: (step, result).
fn journaled_steps(rig: &Rig) -> Vec<(String, String)> {
    rig.events()
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| {
            let r = &e["result"];
            let result = r
                .as_str()
                .or_else(|| r["result"].as_str())
                .unwrap_or("?")
                .to_string();
            (e["step"].as_str().unwrap_or("?").to_string(), result)
        })
        .collect()
}

fn audit_steps(rig: &Rig) -> Vec<(String, String)> {
    upgrade_support::step_names(&rig.audit_json()["runs"][0])
}

/// Whether the runbook lock is free: its key is gone from the cluster.
fn lock_free(rig: &Rig) -> bool {
    let key = lock::lock_key(&rig.cluster.ns.namespace(), "runbook");
    !rig.cluster.ns.keys().contains(&key)
}

fn fencing_token(rig: &Rig) -> String {
    let key = lock::fence_key(&rig.cluster.ns.namespace(), "runbook");
    redis::Client::open(rig.cluster.ns.url.as_str())
        .and_then(|c| c.get_connection())
        .and_then(|mut c| redis::cmd("GET").arg(key).query::<Option<String>>(&mut c))
        .ok()
        .flatten()
        .unwrap_or_else(|| "none".into())
}

fn expect_steps(what: &str, got: &[(String, String)], want: &[(&str, &str)]) -> Result<(), String> {
    let got_ref: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    if got_ref != want {
        return Err(format!("{what}: steps {got_ref:?}, expected {want:?}"));
    }
    Ok(())
}

async fn upgrade_path(report: &mut Report) -> Result<(), String> {
    let mut rig = Rig::new("rk_up", "app_version").await;
    slow_down_fsync(&mut rig, report);
    rig.start_nodes("1").await;
    rig.write_records(5).await;
    let before = rig.records();
    let mut misses = Vec::new();
    let (kills, exact) = kill_through(
        &mut rig,
        &["upgrade", "--to", "2", "--yes"],
        UPGRADE,
        &mut misses,
    )
    .await?;
    let last = rig.spawn_runbook(&RESUME);
    report.figure("upgrade_kills", kills);
    report.figure("upgrade_kills_on_boundary", exact);
    let code = rig.wait_runbook(last, BOUND).await;
    if code != 0 {
        return Err(format!(
            "the last resume exited {code}:\n{}",
            rig.runbook_log(last)
        ));
    }
    rig.assert_all_on("2").await;
    if rig.records() != before {
        return Err(format!(
            "the records changed:\n{before}\n->\n{}",
            rig.records()
        ));
    }
    let want: Vec<(&str, &str)> = UPGRADE[1..].iter().map(|b| (b.name, "succeeded")).collect();
    check_the_end(&rig, &want, "completed", kills, &misses, "upgrade", report)
}

async fn rollback_path(report: &mut Report) -> Result<(), String> {
    let mut rig = Rig::new("rk_rb", "no-such-text-in-any-status").await;
    let mut scratch = Report::default();
    slow_down_fsync(&mut rig, &mut scratch);
    rig.start_nodes("1").await;
    rig.write_records(5).await;
    let before = rig.records();
    let mut misses = Vec::new();
    let (k1, e1) = kill_through(
        &mut rig,
        &["upgrade", "--to", "2", "--yes"],
        &ROLLBACK[..1],
        &mut misses,
    )
    .await?;
    // Meanwhile the new version damaged the data: the rollback restores
    // the backup.
    rig.cluster
        .db
        .query("DELETE FROM records WHERE name = 'rec0'; UPDATE records SET value = 'broken'");
    if rig.records() == before {
        return Err("the damage did not change the records".into());
    }
    let (k2, e2) = kill_through(&mut rig, &RESUME, &ROLLBACK[1..], &mut misses).await?;
    let (kills, exact) = (k1 + k2, e1 + e2);
    let last = rig.spawn_runbook(&RESUME);
    report.figure("rollback_kills", kills);
    report.figure("rollback_kills_on_boundary", exact);
    let code = rig.wait_runbook(last, BOUND).await;
    if code != 1 || !rig.runbook_log(last).contains("rolled back") {
        return Err(format!(
            "the last resume exited {code}, not 1 (rolled back):\n{}",
            rig.runbook_log(last)
        ));
    }
    rig.assert_all_on("1").await;
    if rig.records() != before {
        return Err(format!(
            "the records are not the backup's:\n{before}\n->\n{}",
            rig.records()
        ));
    }
    // The verification failed once before the kill at its boundary and
    // once more when the resume ran it again; every other step once.
    let want: Vec<(&str, &str)> = vec![
        ("preflight", "succeeded"),
        ("drain", "succeeded"),
        ("stop_nodes", "succeeded"),
        ("backup", "succeeded"),
        ("upgrade_first", "succeeded"),
        ("verify", "failed"),
        ("verify", "failed"),
        ("rollback_stop", "succeeded"),
        ("rollback_restore", "succeeded"),
        ("rollback_start", "succeeded"),
        ("rollback_restore_traffic", "succeeded"),
    ];
    check_the_end(
        &rig,
        &want,
        "rolled_back",
        kills,
        &misses,
        "rollback",
        report,
    )
}

/// How both paths end: every step once (as `want` says) in the journal and
/// in the audit, the audit's `outcome` after one resume per kill, the runbook
/// lock free; then the lock's fencing token and any late kills as figures
/// named after `path`.
fn check_the_end(
    rig: &Rig,
    want: &[(&str, &str)],
    outcome: &str,
    kills: u32,
    misses: &[String],
    path: &str,
    report: &mut Report,
) -> Result<(), String> {
    expect_steps("journal", &journaled_steps(rig), want)?;
    expect_steps("audit", &audit_steps(rig), want)?;
    let audit = rig.audit_json();
    let run = &audit["runs"][0];
    if run["outcome"] != outcome || run["resumed"].as_array().map(Vec::len) != Some(kills as usize)
    {
        return Err(format!(
            "audit: outcome {} after {} resumes, expected {outcome} after {kills}",
            run["outcome"], run["resumed"]
        ));
    }
    if !lock_free(rig) {
        return Err(format!(
            "the runbook lock is still held: {:?}",
            rig.cluster.ns.keys()
        ));
    }
    report.figure(&format!("{path}_fencing_token"), fencing_token(rig));
    if !misses.is_empty() {
        report.figure(&format!("{path}_late_kills"), misses.join(" | "));
    }
    Ok(())
}
