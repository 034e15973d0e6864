//! The binary's small commands: config validation, completions, man page.

use std::process::Command;

fn clusterops() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterops"));
    for var in clusterops::config::VARIABLES {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn a_wrong_configuration_gives_one_line_per_variable_and_exit_2() {
    let out = clusterops()
        .args(["config"])
        .env("CACHE_DEFAULT_STORE", "memcached")
        .env("QUEUE_ADAPTER", "redis")
        .env("QUEUE_ADAPTER_REDIS_URL", "redis://:hunter2@:bad")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("error: CACHE_DEFAULT_STORE:")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("error: QUEUE_ADAPTER_REDIS_URL:")),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn config_shows_the_fingerprint_and_masks_secrets() {
    let out = clusterops()
        .args(["config", "--json"])
        .env("LOCK_ADAPTER_DEFAULT", "redis")
        .env(
            "LOCK_ADAPTER_REDIS_URL",
            "redis://app:hunter2@127.0.0.1:6379/2",
        )
        .env("APP_KEY", "the-app-key")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["fingerprint"].as_str().map(str::len), Some(12));
    assert!(
        !text.contains("hunter2") && !text.contains("the-app-key"),
        "{text}"
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let out = clusterops().args(["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        for sub in ["status", "check", "console", "node"] {
            assert!(text.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let out = clusterops().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = clusterops().arg("man").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(".TH clusterops 1") && text.contains("status"),
        "{text}"
    );
}

#[test]
fn a_printer_whose_reader_goes_away_stops_quietly_instead_of_panicking() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    // `clusterops status --watch 1 | head -c 100`: the reader closes the
    // pipe while the command goes on printing.
    let mut child = clusterops()
        .args(["status", "--watch", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.signal() == Some(13), "{:?} {err}", out.status);
}

#[test]
fn config_prints_each_adapter_as_an_operator_reads_it() {
    let out = clusterops()
        .args(["config"])
        .env("CACHE_DEFAULT_STORE", "redis")
        .env("CACHE_REDIS_URL", "redis://:pw@127.0.0.1:6379/1")
        .env("DB_URL", "postgres://app:dbpw@127.0.0.1/shop")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cache         redis redis://:***@127.0.0.1:6379/1"),
        "{text}"
    );
    assert!(
        text.contains("queue         memory (this node only)"),
        "{text}"
    );
    assert!(
        text.contains("database      postgres://app:***@127.0.0.1/shop"),
        "{text}"
    );
    assert!(
        !text.contains("SecretUrl") && !text.contains("pw@"),
        "{text}"
    );
}

#[test]
fn demo_with_a_wrong_redis_url_says_so_once_and_masks_the_password() {
    for (url, why) in [
        ("http://u:hunter2@x", "scheme \"http\""),
        (
            "redis://u:hunter2@x/abc",
            "the database after the host must be a number",
        ),
    ] {
        let out = clusterops()
            .args(["demo", "--redis", url])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: --redis ") && err.contains(why),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[test]
fn a_wrong_node_option_is_a_usage_error_exit_2() {
    for args in [
        ["node", "--node-id", "a b"],
        ["node", "--app-version", "v2;"],
    ] {
        let out = clusterops().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(&format!("error: {}", args[1])), "{err}");
    }
}

#[test]
fn config_shows_the_processes_and_the_worker_mode() {
    let out = clusterops()
        .args(["config"])
        .env("CLUSTER_MODE", "3")
        .env("WORKER_MODE", "record-events, mail")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("processes     3 per host (CLUSTER_MODE=3)"),
        "{text}"
    );
    assert!(
        text.contains("worker mode   HTTP and queue topics record-events, mail"),
        "{text}"
    );
    let out = clusterops()
        .args(["config", "--json"])
        .env("CLUSTER_MODE", "max")
        .env("WORKER_MODE", "!")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["cluster_mode"], "max");
    assert_eq!(json["worker_mode"], "!");
}

#[test]
fn cluster_mode_needs_a_fixed_listen_port_and_room_for_the_process_ports() {
    for (listen, extra, says) in [
        ("127.0.0.1:0", None, "needs a fixed port"),
        ("127.0.0.1:65535", None, "own ports"),
        (
            "127.0.0.1:14000",
            Some("13999"),
            "other than --listen's 14000",
        ),
    ] {
        let mut cmd = clusterops();
        cmd.args(["node", "--listen", listen])
            .env("CLUSTER_MODE", "2");
        if let Some(base) = extra {
            cmd.args(["--process-port-base", base]);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{listen}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(says), "{err}");
    }
}
