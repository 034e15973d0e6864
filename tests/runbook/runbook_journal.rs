//! The runbook journal: appended with fsync and read back, the resume point,
//! clear errors for a truncated or garbage line (and the repair), the Redis
//! mirror, and the audit read from it (and filtered by `clusterops audit
//! --cluster/--run/--last`).

use crate::common;

use clusterops::runbook::audit;
use clusterops::runbook::backup::{BackupRecord, DbKind};
use clusterops::runbook::journal::{
    self, Event, Journal, JournalError, RunEnd, RunState, StepResult,
};
use clusterops::runbook::{Actor, Decision, PromptKind, StepKind};
use common::TestNs;

fn alice() -> Actor {
    Actor {
        user: "alice".to_string(),
        host: "ops1".to_string(),
    }
}

fn started(target: &str) -> Event {
    Event::RunStarted {
        cluster: "shop".to_string(),
        target_version: target.to_string(),
        previous_version: Some("1".to_string()),
        executor: "process".to_string(),
        by: alice(),
    }
}

fn finished(step: StepKind) -> Event {
    Event::StepFinished {
        step,
        result: StepResult::Succeeded,
    }
}

#[test]
fn appended_events_read_back_in_order_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal::journal_path(dir.path(), "shop");
    let (j, entries) = Journal::open(&path).unwrap();
    assert!(entries.is_empty());
    j.append("r1", started("2")).unwrap();
    j.append(
        "r1",
        Event::StepStarted {
            step: StepKind::Preflight,
            attempt: 1,
            description: "checks".to_string(),
        },
    )
    .unwrap();
    j.append("r1", finished(StepKind::Preflight)).unwrap();
    drop(j);

    let (j, entries) = Journal::open(&path).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(entries[2].event, finished(StepKind::Preflight));
    // Sequence numbers continue after reopening.
    let (e, line) = j.append("r1", finished(StepKind::Drain)).unwrap();
    assert_eq!(e.seq, 4);
    assert!(
        line.contains("\"event\":\"step_finished\"") && line.contains("\"step\":\"drain\""),
        "{line}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
}

#[test]
fn the_resume_point_is_the_first_step_not_done_and_follows_the_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    let (j, _) = Journal::open(&path).unwrap();
    // An older finished run, then the current one.
    j.append("old", started("1")).unwrap();
    j.append(
        "old",
        Event::RunFinished {
            outcome: RunEnd::Completed,
            by: alice(),
        },
    )
    .unwrap();
    j.append("r2", started("2")).unwrap();
    for s in [StepKind::Preflight, StepKind::Drain, StepKind::StopNodes] {
        j.append("r2", finished(s)).unwrap();
    }
    j.append(
        "r2",
        Event::StepStarted {
            step: StepKind::Backup,
            attempt: 1,
            description: String::new(),
        },
    )
    .unwrap();
    let st = RunState::last(&journal::read(&path).unwrap()).unwrap();
    assert_eq!(st.run_id, "r2");
    assert_eq!(
        st.next_step(),
        Some(StepKind::Backup),
        "a step that started but did not finish runs again"
    );

    // A failed step is not done; a skipped one is.
    j.append(
        "r2",
        Event::StepFinished {
            step: StepKind::Backup,
            result: StepResult::Failed {
                error: "x".to_string(),
            },
        },
    )
    .unwrap();
    assert_eq!(
        RunState::last(&journal::read(&path).unwrap())
            .unwrap()
            .next_step(),
        Some(StepKind::Backup)
    );
    j.append(
        "r2",
        Event::StepFinished {
            step: StepKind::Backup,
            result: StepResult::Skipped,
        },
    )
    .unwrap();
    assert_eq!(
        RunState::last(&journal::read(&path).unwrap())
            .unwrap()
            .next_step(),
        Some(StepKind::UpgradeFirst)
    );

    // Once the rollback started, resuming continues the rollback.
    j.append(
        "r2",
        Event::RollbackStarted {
            reason: "step 5 failed".to_string(),
        },
    )
    .unwrap();
    j.append("r2", finished(StepKind::RollbackStop)).unwrap();
    let st = RunState::last(&journal::read(&path).unwrap()).unwrap();
    assert_eq!(st.next_step(), Some(StepKind::RollbackRestore));
    j.append(
        "r2",
        Event::RunFinished {
            outcome: RunEnd::RolledBack,
            by: alice(),
        },
    )
    .unwrap();
    assert_eq!(
        RunState::last(&journal::read(&path).unwrap())
            .unwrap()
            .next_step(),
        None
    );
}

#[test]
fn a_truncated_last_line_is_a_clear_error_and_repair_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let (j, _) = Journal::open(&path).unwrap();
    j.append("r1", started("2")).unwrap();
    j.append("r1", finished(StepKind::Preflight)).unwrap();
    drop(j);
    // Killed while writing the third line.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":3,\"at_ms\":1,\"run_id\":\"r1\",\"eve");
    std::fs::write(&path, &text).unwrap();

    let err = Journal::open(&path).unwrap_err();
    assert!(
        matches!(err, JournalError::Truncated { line: 3, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("line 3"),
        "{msg}"
    );
    assert!(
        msg.contains("--repair-journal") && msg.contains("--abort"),
        "{msg}"
    );

    assert_eq!(journal::repair(&path).unwrap(), Some(3));
    let (_, entries) = Journal::open(&path).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        journal::repair(&path).unwrap(),
        None,
        "nothing left to repair"
    );
}

#[test]
fn a_garbage_line_names_the_file_and_line_and_is_not_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let (j, _) = Journal::open(&path).unwrap();
    j.append("r1", started("2")).unwrap();
    drop(j);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("hello, I edited this\n");
    text.push_str(&std::fs::read_to_string(&path).unwrap());
    std::fs::write(&path, &text).unwrap();

    let err = journal::read(&path).unwrap_err();
    assert!(
        matches!(err, JournalError::Garbage { line: 2, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("{} line 2", path.display())),
        "{err}"
    );
    assert!(
        journal::repair(&path).is_err(),
        "repair only drops a truncated last line"
    );
    assert!(
        audit::read(dir.path()).is_ok(),
        "the audit reads only <cluster>/journal.jsonl files"
    );
}

#[test]
fn a_complete_last_line_without_its_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let (j, _) = Journal::open(&path).unwrap();
    j.append("r1", started("2")).unwrap();
    drop(j);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.trim_end()).unwrap();
    let (j, entries) = Journal::open(&path).unwrap();
    assert_eq!(entries.len(), 1);
    j.append("r1", finished(StepKind::Preflight)).unwrap();
    assert_eq!(journal::read(&path).unwrap().len(), 2);
}

#[tokio::test]
async fn the_mirror_appends_each_line_to_the_redis_stream() {
    let ns = TestNs::new("rbmirror");
    let client = redis::Client::open(ns.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(&dir.path().join("j.jsonl")).unwrap();
    let mut lines = Vec::new();
    for ev in [started("2"), finished(StepKind::Preflight)] {
        let (_, line) = j.append("r1", ev).unwrap();
        journal::mirror_to_redis(&mut conn, &ns.namespace(), &line)
            .await
            .unwrap();
        lines.push(line);
    }
    let key = journal::mirror_key(&ns.namespace());
    assert_eq!(key, format!("{}:runbook:journal", ns.name));
    let reply: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mirrored: Vec<String> = reply.into_iter().map(|(_, f)| f[0].1.clone()).collect();
    assert_eq!(mirrored, lines);
    let back: journal::Entry = serde_json::from_str(&mirrored[1]).unwrap();
    assert_eq!(back.event, finished(StepKind::Preflight));
}

#[test]
fn the_audit_lists_who_decided_what_and_how_each_run_ended() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(&journal::journal_path(dir.path(), "shop")).unwrap();
    j.append("r1", started("2")).unwrap();
    j.append(
        "r1",
        Event::Decision {
            step: StepKind::Preflight,
            prompt: PromptKind::Warnings,
            decision: Decision::Confirm,
            by: alice(),
        },
    )
    .unwrap();
    j.append(
        "r1",
        Event::Backup {
            record: BackupRecord {
                kind: DbKind::Postgres,
                file: "/b/shop-r1.dump".into(),
                bytes: 1234,
                sha256: "ab".repeat(32),
                verified: "pg_restore --list: 3 entries".to_string(),
            },
        },
    )
    .unwrap();
    j.append(
        "r1",
        Event::StepFinished {
            step: StepKind::Verify,
            result: StepResult::Skipped,
        },
    )
    .unwrap();
    j.append(
        "r1",
        Event::Decision {
            step: StepKind::Rollout,
            prompt: PromptKind::Failure,
            decision: Decision::Rollback,
            by: alice(),
        },
    )
    .unwrap();
    j.append(
        "r1",
        Event::RollbackStarted {
            reason: "rollout failed".to_string(),
        },
    )
    .unwrap();
    j.append(
        "r1",
        Event::RunFinished {
            outcome: RunEnd::RolledBack,
            by: alice(),
        },
    )
    .unwrap();
    j.append("r2", started("3")).unwrap();
    drop(j);

    let a = audit::read(dir.path()).unwrap();
    assert_eq!(a.runs.len(), 2);
    let r1 = &a.runs[0];
    assert_eq!(r1.outcome, Some(RunEnd::RolledBack));
    assert_eq!(
        r1.decisions.iter().map(|d| d.decision).collect::<Vec<_>>(),
        vec![Decision::Confirm, Decision::Rollback]
    );
    assert_eq!(r1.backup.as_ref().unwrap().bytes, 1234);
    assert_eq!(a.runs[1].outcome, None);
    let text = audit::format(&a);
    for needle in [
        "alice@ops1",
        "rolled back",
        "rollback at Roll out",
        "SKIPPED",
        "UNFINISHED",
        "1 -> 3",
        "shop-r1.dump",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
}

#[test]
fn dates_are_printed_in_utc() {
    assert_eq!(clusterops::clock::datetime(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(
        clusterops::clock::datetime(1_709_528_767_000),
        "2024-03-04 05:06:07 UTC"
    );
}

/// A completed run of `cluster` in a hand-written journal.
fn journal_run(state: &std::path::Path, cluster: &str, run: &str) {
    let (j, _) = Journal::open(&journal::journal_path(state, cluster)).unwrap();
    let by = Actor {
        user: "alice".into(),
        host: "ops-1".into(),
    };
    j.append(
        run,
        Event::RunStarted {
            cluster: cluster.to_string(),
            target_version: "2".into(),
            previous_version: Some("1".into()),
            executor: "manual".into(),
            by: by.clone(),
        },
    )
    .unwrap();
    j.append(
        run,
        Event::RunFinished {
            outcome: RunEnd::Completed,
            by,
        },
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
}

#[test]
fn audit_filters_by_cluster_run_and_last() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    for (cluster, run) in [
        ("shop", "r1"),
        ("blog", "b1"),
        ("shop", "r2"),
        ("shop", "r3"),
    ] {
        journal_run(state, cluster, run);
    }
    let audit = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterops"))
            .arg("audit")
            .args(args)
            .arg("--state-dir")
            .arg(state)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let runs = |args: &[&str]| -> Vec<String> {
        let mut a = args.to_vec();
        a.push("--json");
        let v: serde_json::Value = serde_json::from_str(&audit(&a)).unwrap();
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(runs(&[]), ["r1", "b1", "r2", "r3"]);
    assert_eq!(runs(&["--cluster", "shop"]), ["r1", "r2", "r3"]);
    assert_eq!(runs(&["--cluster", "blog"]), ["b1"]);
    assert_eq!(runs(&["--run", "r2"]), ["r2"]);
    assert_eq!(runs(&["--last", "2"]), ["r2", "r3"]);
    assert_eq!(runs(&["--cluster", "shop", "--last", "1"]), ["r3"]);
    assert_eq!(
        runs(&["--cluster", "blog", "--run", "r2"]),
        Vec::<String>::new()
    );
    let text = audit(&["--run", "r1"]);
    assert!(
        text.starts_with("run r1 on cluster shop: 1 -> 2: completed"),
        "{text}"
    );
    assert!(!text.contains("run r2"), "{text}");
    assert!(audit(&["--run", "nope"]).contains("match the filter"));
}
