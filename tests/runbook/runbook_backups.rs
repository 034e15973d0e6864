//! `clusterops backup list|verify|prune|restore` through the real binary,
//! and the backup actions in `clusterops audit`. The backups are made
//! by real runbook runs (the engine's backup step: a real `pg_dump -Fc` of
//! a throw-away PostgreSQL database), paused after the backup and then
//! aborted or left unfinished.

use crate::common;
use crate::runbook_support;

use clusterops::inspect::CheckResult;
use clusterops::runbook::config::ProcessConfig;
use clusterops::runbook::executor::process::ProcessExecutor;
use clusterops::runbook::*;
use common::TestNs;
use parking_lot::Mutex;
use runbook_support::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

const BIN: &str = env!("CARGO_BIN_EXE_clusterops");

struct Setup {
    ns: TestNs,
    db: TestDb,
    dir: tempfile::TempDir,
    cluster: Arc<TestCluster>,
    config: RunbookConfig,
    state_dir: PathBuf,
    config_file: PathBuf,
    env_file: PathBuf,
}

/// What the binary did.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn setup(label: &str) -> Setup {
    let ns = TestNs::new(label);
    let db = TestDb::create(label);
    db.exec("CREATE TABLE items (id int primary key, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g");
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    // A password the tests' PostgreSQL ignores (trust): it must never be shown.
    let url = format!(
        "postgres://postgres:hunter2secret@127.0.0.1:5432/{}",
        db.name
    );
    let toml = format!(
        "[cluster]\nname = \"{}\"\n\n[executor]\nkind = \"process\"\nbinary = \"/bin/true\"\n\n\
         [[nodes]]\nname = \"app1\"\nlisten = \"127.0.0.1:1\"\n\n[backup]\nkind = \"postgres\"\nurl_env = \"DB_URL\"\n\n\
         [timeouts]\ndrain_s = 5\nstop_s = 5\npoll_ms = 50\n",
        ns.name
    );
    let config_file = dir.path().join("runbook.toml");
    std::fs::write(&config_file, &toml).unwrap();
    let env_file = dir.path().join("cluster.env");
    std::fs::write(
        &env_file,
        format!(
            "CLUSTER_NAME={}\nREDIS_URL={}\nDB_URL={url}\n",
            ns.name, ns.url
        ),
    )
    .unwrap();
    let mut config = RunbookConfig::parse(&toml, "test").unwrap();
    config.backup.url = Some(url);
    config.backup.url_env = None;
    let procs = ProcessExecutor::new(
        ProcessConfig {
            binary: "/bin/true".into(),
            args: Vec::new(),
            stop_timeout_s: 5,
        },
        config.nodes.clone(),
        state_dir.join(&ns.name).join("nodes"),
    );
    let client = redis::Client::open(ns.url.as_str()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    // No node runs: drain and stop are done at once, the backup is real.
    let cluster = Arc::new(TestCluster {
        ns: ns.namespace(),
        conn,
        procs,
        version_dir: dir.path().to_path_buf(),
        db: Some(db.name.clone()),
        nodes: Vec::new(),
        preflight: Mutex::new(Vec::<CheckResult>::new()),
        fail_preflight: AtomicU32::new(0),
        lock_ttl_ms: 30_000,
    });
    Setup {
        ns,
        db,
        dir,
        cluster,
        config,
        state_dir,
        config_file,
        env_file,
    }
}

impl Setup {
    async fn runbook(&self) -> Runbook {
        Runbook::new(
            self.config.clone(),
            self.cluster.clone(),
            Arc::new(AutoOperator::new(false, false)),
            self.state_dir.clone(),
        )
        .await
        .unwrap()
    }

    /// A real run paused after its backup (unfinished); returns its id and
    /// the backup file.
    async fn run_to_backup(&self) -> (String, PathBuf) {
        let rb = self.runbook().await;
        let outcome = rb.run_until("2", Some(StepKind::Backup)).await.unwrap();
        let RunOutcome::Paused { run_id, .. } = outcome else {
            panic!("expected a pause after the backup, got {outcome:?}");
        };
        let file = self
            .state_dir
            .join(&self.ns.name)
            .join("backups")
            .join(format!("{}-{run_id}.dump", self.ns.name));
        assert!(file.is_file(), "{} written", file.display());
        (run_id, file)
    }

    async fn abort(&self) {
        self.runbook().await.abort("test: done").await.unwrap();
    }

    /// A finished run's backup.
    async fn finished_run(&self) -> (String, PathBuf) {
        let r = self.run_to_backup().await;
        self.abort().await;
        // Distinct modification times, in order.
        std::thread::sleep(std::time::Duration::from_millis(20));
        r
    }

    fn cli(&self, args: &[&str], stdin: &str) -> Out {
        let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let sub = args.first().copied().unwrap_or_default();
        if sub == "backup" {
            full.extend([
                "--config".to_string(),
                self.config_file.display().to_string(),
            ]);
            if args.get(1) == Some(&"restore") {
                full.extend([
                    "--env-file".to_string(),
                    self.env_file.display().to_string(),
                ]);
            }
        }
        full.extend([
            "--state-dir".to_string(),
            self.state_dir.display().to_string(),
        ]);
        let mut child = Command::new(BIN)
            .args(&full)
            .env_remove("DB_URL")
            .env_remove("REDIS_URL")
            .env_remove("CLUSTER_NAME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !out.stdout.contains("hunter2secret") && !out.stderr.contains("hunter2secret"),
            "a password was shown: {}{}",
            out.stdout,
            out.stderr
        );
        out
    }
}

fn touch_days_ago(file: &Path, days: u32) {
    let ok = Command::new("touch")
        .arg("-d")
        .arg(format!("{days} days ago"))
        .arg(file)
        .status()
        .unwrap();
    assert!(ok.success());
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[tokio::test]
async fn list_shows_the_backups_of_real_runs_and_verify_catches_a_changed_byte() {
    let s = setup("bklist").await;
    let (r1, f1) = s.finished_run().await;
    let (r2, f2) = s.finished_run().await;
    let (r3, f3) = s.run_to_backup().await;
    let backups = f1.parent().unwrap().to_path_buf();
    // A dump no journal knows, older than the runs', and a partial one.
    let stray = backups.join("by-hand.dump");
    std::fs::write(&stray, b"not a run's dump").unwrap();
    touch_days_ago(&stray, 1);
    std::fs::write(backups.join("x.dump.part"), b"half").unwrap();

    let out = s.cli(&["backup", "list", "--json"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    let files: Vec<String> = list
        .iter()
        .map(|b| name(Path::new(b["file"].as_str().unwrap())))
        .collect();
    assert_eq!(
        files,
        [name(&f3), name(&f2), name(&f1), name(&stray)],
        "newest first, no .part"
    );
    let runs: Vec<Option<&str>> = list.iter().map(|b| b["run_id"].as_str()).collect();
    assert_eq!(runs, [Some(&*r3), Some(&*r2), Some(&*r1), None]);
    let unfinished: Vec<bool> = list
        .iter()
        .map(|b| b["run_unfinished"].as_bool().unwrap())
        .collect();
    assert_eq!(unfinished, [true, false, false, false]);
    assert_eq!(list[0]["target_version"], "2");
    assert_eq!(
        list[1]["bytes"].as_u64().unwrap(),
        std::fs::metadata(&f2).unwrap().len()
    );
    assert!(list[0]["record"]["sha256"].is_string() && list[3]["record"].is_null());

    let text = s.cli(&["backup", "list"], "").stdout;
    assert!(
        text.contains(&format!("run {r3} (? -> 2), UNFINISHED")),
        "{text}"
    );
    assert!(text.contains("sha256 recorded") && text.contains("no checksum recorded"));

    // verify: ok for the runs' dumps, no record for the stray one (exit 1).
    let out = s.cli(&["backup", "verify", "--all"], "");
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(out.stdout.matches("ok ").count(), 3, "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("no record  {}", stray.display()))
    );
    let out = s.cli(&["backup", "verify", &name(&f2)], "");
    assert_eq!(
        (out.code, out.stdout.starts_with("ok")),
        (0, true),
        "{}",
        out.stdout
    );

    // One byte changed in the middle of a dump: a mismatch, exit 2.
    let mut bytes = std::fs::read(&f2).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&f2, &bytes).unwrap();
    let out = s.cli(&["backup", "verify", f2.to_str().unwrap()], "");
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stdout.starts_with("MISMATCH"), "{}", out.stdout);
    assert_eq!(s.cli(&["backup", "verify", "--all"], "").code, 2);
    // An unreadable (missing) file is bad input.
    let out = s.cli(&["backup", "verify", "gone.dump"], "");
    assert_eq!(out.code, 2, "{}", out.stderr);
    s.abort().await;
}

#[tokio::test]
async fn prune_keeps_n_never_the_newest_nor_the_backup_of_an_unfinished_run() {
    let s = setup("bkprune").await;
    let (r1, f1) = s.finished_run().await;
    let (_r2, f2) = s.finished_run().await;
    let (r3, f3) = s.run_to_backup().await;
    // The unfinished run's dump is the oldest; r2's the newest.
    touch_days_ago(&f3, 10);
    touch_days_ago(&f1, 5);

    let out = s.cli(&["backup", "prune", "--keep", "1", "--dry-run"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("would delete {}", f1.display())),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout
            .contains(&format!("would delete {}", f3.display()))
    );
    assert!(
        out.stdout
            .contains(&format!("keeping {}: run {r3} is unfinished", f3.display()))
    );
    assert!(f1.exists(), "a dry run deletes nothing");

    // No confirmation: nothing deleted.
    let out = s.cli(&["backup", "prune", "--keep", "1"], "n\n");
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(f1.exists() && out.stdout.contains("nothing deleted"));

    let out = s.cli(&["backup", "prune", "--keep", "1"], "y\n");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!f1.exists() && f2.exists() && f3.exists(), "{}", out.stdout);

    // --keep 0 still keeps the newest, and the unfinished run's.
    let out = s.cli(&["backup", "prune", "--keep", "0", "--yes"], "");
    assert_eq!(out.code, 0);
    assert!(f2.exists() && f3.exists(), "{}", out.stdout);

    // Once that run is finished its old dump can go by age.
    s.abort().await;
    let out = s.cli(&["backup", "prune", "--older-than", "7d", "--yes"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!f3.exists() && f2.exists(), "{}", out.stdout);
    assert_eq!(
        s.cli(&["backup", "prune", "--older-than", "7x"], "").code,
        2
    );

    // Every deletion is in the audit, with who did it and the run of the dump.
    let audit = s.cli(&["audit", "--json"], "");
    let audit: serde_json::Value = serde_json::from_str(&audit.stdout).unwrap();
    let actions = audit["backup_actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0]["action"], "deleted");
    assert_eq!(actions[0]["run_id"].as_str(), Some(&*r1));
    assert_eq!(actions[0]["detail"], "backup prune --keep 1");
    assert!(actions[1]["by"]["user"].is_string());
    let text = s.cli(&["audit", "--run", &r1], "").stdout;
    assert!(
        text.contains("backup deleted") && text.contains(&name(&f1)),
        "{text}"
    );
    assert!(!text.contains(&name(&f3)), "only run {r1}: {text}");
}

#[tokio::test]
async fn restore_brings_back_a_dropped_table_and_refuses_without_confirmation() {
    let s = setup("bkrestore").await;
    let (run, file) = s.run_to_backup().await;
    let arg = file.to_str().unwrap();

    // While the run is unfinished its --rollback decides: refused.
    let out = s.cli(&["backup", "restore", arg, "--yes"], "");
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!("run {run} of cluster")),
        "{}",
        out.stderr
    );
    s.abort().await;

    s.db.exec("DROP TABLE items");
    // A node is up (a live registry record): refused, as the runbook's
    // stop step would not be done.
    let record = serde_json::json!({
        "node_id": "app1", "host": "h", "http_addr": "127.0.0.1:1", "pid": 1,
        "app_version": "1", "schema_version": null, "worker_id": null,
        "state": "running", "state_reason": "", "started_at_ms": 1,
        "heartbeat_at_ms": 1, "config_fingerprint": "x"
    });
    let mut c = redis::Client::open(s.ns.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let key = clusterops::node::registry::record_key(&s.ns.namespace(), "app1");
    let index = clusterops::node::registry::index_key(&s.ns.namespace());
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(record.to_string())
        .arg("PX")
        .arg(60_000)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(&index)
        .arg(clusterops::clock::now_ms())
        .arg("app1")
        .query(&mut c)
        .unwrap();
    let out = s.cli(&["backup", "restore", arg, "--yes"], "");
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr.contains("node(s) are up (app1)"),
        "{}",
        out.stderr
    );
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .arg(&index)
        .query(&mut c)
        .unwrap();
    // The wrong name, or none: nothing restored.
    for answer in ["", "yes\n", "postgres\n"] {
        let out = s.cli(&["backup", "restore", arg], answer);
        assert_eq!(out.code, 1, "{answer:?}: {}", out.stderr);
        assert!(out.stderr.contains("not confirmed"), "{}", out.stderr);
    }
    assert_eq!(
        s.db.exec("SELECT count(*) FROM pg_tables WHERE tablename = 'items'"),
        "0"
    );

    let out = s.cli(&["backup", "restore", arg], &format!("{}\n", s.db.name));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("size and sha256 match the journal"));
    assert_eq!(s.db.exec("SELECT count(*) FROM items"), "100");

    // A changed dump is refused before anything is touched.
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    s.db.exec("DROP TABLE items");
    let out = s.cli(&["backup", "restore", arg, "--yes"], "");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("does not match the journal"),
        "{}",
        out.stderr
    );

    let audit = s.cli(&["audit", "--cluster", &s.ns.name], "").stdout;
    assert!(
        audit.contains("backup RESTORED") && audit.contains(&name(&file)),
        "{audit}"
    );
    let _ = &s.dir;
}

#[test]
fn ages_are_parsed_and_prune_never_picks_the_newest() {
    use clusterops::runbook::backups::{BackupFile, parse_age, prune_plan};
    assert_eq!(parse_age("30d"), Ok(30 * 86_400_000));
    assert_eq!(parse_age("12h"), Ok(12 * 3_600_000));
    assert!(parse_age("30").is_err() && parse_age("d").is_err() && parse_age("").is_err());
    let day = 86_400_000;
    let now = 100 * day;
    let b = |n: u64, unfinished: bool| BackupFile {
        file: format!("/b/{n}.dump").into(),
        bytes: 1,
        modified_ms: now - n * day,
        run_id: None,
        target_version: None,
        previous_version: None,
        run_unfinished: unfinished,
        record: None,
    };
    // Newest first: 0, 1, 2 (unfinished), 3 days old.
    let list = [b(0, false), b(1, false), b(2, true), b(3, false)];
    let names = |v: Vec<BackupFile>| -> Vec<String> {
        v.iter().map(|x| x.file.display().to_string()).collect()
    };
    assert_eq!(
        names(prune_plan(&list, Some(1), None, now)),
        ["/b/1.dump", "/b/3.dump"]
    );
    assert_eq!(
        names(prune_plan(&list, Some(0), None, now)),
        ["/b/1.dump", "/b/3.dump"]
    );
    assert_eq!(
        names(prune_plan(&list, None, Some(2 * day), now)),
        ["/b/3.dump"]
    );
    assert_eq!(
        names(prune_plan(&list, Some(3), Some(day), now)),
        ["/b/3.dump"]
    );
    assert!(prune_plan(&list, None, None, now).is_empty());
    let old_newest = [b(50, false)];
    assert!(prune_plan(&old_newest, Some(0), Some(day), now).is_empty());
}
