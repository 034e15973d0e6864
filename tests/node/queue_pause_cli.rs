//! `clusterops queue pause | resume | status` against two real nodes: each
//! node's /api/status lists the queue as paused within a poll interval and
//! not once resumed, `queue status` says who paused it and why, every
//! change lands in the audit file, and a RabbitMQ configuration gets one
//! line saying that pausing needs the Redis queue.

use crate::common;

use common::nodes::{TestCluster, eventually};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn queue_cmd(args: &[&str], env_file: &Path, audit: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterops"));
    cmd.arg("queue").args(args);
    cmd.arg("--env-file").arg(env_file);
    if let Some(a) = audit {
        cmd.arg("--audit-file").arg(a);
    }
    cmd.output().expect("the clusterops binary runs")
}

fn stdout(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn paused_on(status: &Option<Value>) -> Vec<String> {
    status
        .as_ref()
        .and_then(|s| s["paused_queues"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_pause_shows_on_every_node_and_resume_clears_it_with_an_audit_trail() {
    let cluster = TestCluster::new("qpause-cli");
    let a = cluster.start("qa", "1.0.0").await;
    let b = cluster.start("qb", "1.0.0").await;
    let env = &cluster.env_file;
    let audit = cluster.dir.path().join("audit.jsonl");
    assert!(paused_on(&a.status().await).is_empty());

    let out = queue_cmd(
        &["pause", "record-events", "--reason", "search index rebuild"],
        env,
        Some(&audit),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("queue record-events paused by"),
        "{}",
        stdout(&out)
    );
    for node in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(10), || async {
                paused_on(&node.status().await) == ["record-events"]
            })
            .await,
            "/api/status of {} lists the pause",
            node.addr
        );
    }
    let out = queue_cmd(&["status", "record-events"], env, None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("queue record-events: paused since") && text.contains("search index rebuild"),
        "{text}"
    );

    let out = queue_cmd(&["resume", "record-events"], env, Some(&audit));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("queue record-events resumed"),
        "{}",
        stdout(&out)
    );
    for node in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(10), || async {
                paused_on(&node.status().await).is_empty()
            })
            .await
        );
    }
    let out = queue_cmd(&["resume", "record-events"], env, Some(&audit));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("it was not paused"),
        "{}",
        stdout(&out)
    );

    let actions: Vec<(String, String)> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| {
            (
                v["action"].as_str().unwrap_or("").to_string(),
                v["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("pause-queue".to_string(), "ok".to_string()),
            ("resume-queue".to_string(), "ok".to_string())
        ]
    );

    let rabbit = cluster.env_variant(
        "rabbit.env",
        &[
            ("QUEUE_ADAPTER", "rabbitmq"),
            (
                "QUEUE_ADAPTER_RABBITMQ_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            ),
        ],
    );
    let out = queue_cmd(&["pause", "record-events", "--reason", "x"], &rabbit, None);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("pausing needs the Redis queue"), "{text}");
}
