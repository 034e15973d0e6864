//! The runbook configuration and the plan: the annotated example parses,
//! mistakes are named, the plan says what each step will do, and `--yes`
//! answers as documented.

use clusterops::runbook::config::{ExecutorConfig, RunbookConfig, WorkloadKind};
use clusterops::runbook::*;
use std::path::Path;

fn example() -> RunbookConfig {
    RunbookConfig::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/runbook.example.toml"
    )))
    .unwrap()
}

#[test]
fn the_annotated_example_parses() {
    let c = example();
    assert_eq!(c.cluster.name, "shop");
    assert!(matches!(c.executor, ExecutorConfig::Process(_)));
    assert_eq!(c.node_names(), vec!["app1", "app2"]);
    assert_eq!(c.verify.smoke.len(), 2);
    assert_eq!(c.backup.url_env.as_deref(), Some("DB_URL"));
}

#[test]
fn the_commented_executors_of_the_example_parse_too() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/runbook.example.toml"
    ))
    .unwrap();
    let base: String = text.split("\n[executor]\n").next().unwrap().to_string() + "\n";
    let tail = &text[text.find("# Nodes, in rollout order").unwrap()..];
    for kind in ["command", "kubernetes", "manual"] {
        let start = text.find(&format!("# kind = \"{kind}\"")).unwrap();
        let block: Vec<&str> = text[start..]
            .lines()
            .take_while(|l| l.starts_with("# ") && !l.starts_with("# (") && !l.starts_with("# ---"))
            .collect();
        let block: String = block
            .iter()
            .map(|l| l.trim_start_matches("# ").to_string() + "\n")
            .collect();
        let mut doc = format!("{base}[executor]\n{block}\n");
        if kind != "kubernetes" {
            doc.push_str(
                &tail
                    .replace("listen = \"127.0.0.1:13001\"", "")
                    .replace("listen = \"127.0.0.1:13002\"", ""),
            );
        } else {
            doc.push_str(&tail[tail.find("[backup]").unwrap()..]);
        }
        let c = RunbookConfig::parse(&doc, kind).unwrap_or_else(|e| panic!("{kind}: {e}\n{doc}"));
        assert_eq!(c.executor.kind(), kind);
    }
}

fn with(edit: &dyn Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/runbook.example.toml"
    ))
    .unwrap();
    match RunbookConfig::parse(&edit(text), "edited.toml") {
        Ok(_) => "accepted".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn mistakes_are_named() {
    let err = with(&|t| t.replace("name = \"app2\"", "name = \"app2; rm -rf /\""));
    assert!(err.contains("node name \"app2; rm -rf /\""), "{err}");
    let err = with(&|t| t.replace("name = \"app2\"", "name = \"app1\""));
    assert!(err.contains("appears twice"), "{err}");
    let err = with(&|t| t.replace("listen = \"127.0.0.1:13002\"", ""));
    assert!(err.contains("app2") && err.contains("listen"), "{err}");
    let err = with(&|t| t.replace("kind = \"postgres\"", "kind = \"oracle\""));
    assert!(err.contains("oracle"), "{err}");
    let err = with(&|t| t.replace("stop_timeout_s = 20", "stop_timeout = 20"));
    assert!(
        err.contains("edited.toml") && err.contains("stop_timeout"),
        "{err}"
    );
    let err = with(&|t| t.replace("path = \"/metrics\"", "path = \"metrics\""));
    assert!(err.contains("must start with /"), "{err}");
    let err = with(&|t| {
        // Swap the process executor block for a command executor whose
        // template names a placeholder that does not exist.
        let start = t
            .find("kind = \"process\"")
            .expect("the example has a process executor");
        let end = start
            + t[start..]
                .find("stop_timeout_s = 20\n")
                .expect("and its stop timeout")
            + "stop_timeout_s = 20\n".len();
        format!(
            "{}kind = \"command\"\nstop = \"ssh {{host}} stop\"\nstart = \"ssh {{node}} start\"\n{}",
            &t[..start],
            &t[end..]
        )
    });
    assert!(err.contains("{host}"), "{err}");
}

#[test]
fn a_toml_mistake_is_one_line_with_its_line_and_column() {
    let err = with(&|t| t.replacen("stop_timeout_s = 20", "stop_timeout_s = ", 1));
    assert_eq!(err.lines().count(), 1, "{err}");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/runbook.example.toml"
    ))
    .unwrap();
    let line = 1 + example
        .lines()
        .position(|l| l.contains("stop_timeout_s = 20"))
        .unwrap();
    assert!(
        err.starts_with(&format!(
            "runbook configuration edited.toml: line {line}, column "
        )),
        "{err}"
    );
    // An unknown field: toml points at the table that holds it.
    let err = with(&|t| t.replacen("stop_timeout_s = 20", "stop_timeout = 20", 1));
    assert_eq!(err.lines().count(), 1, "{err}");
    let table = 1 + example.lines().position(|l| l == "[executor]").unwrap();
    assert!(
        err.contains(&format!(
            "line {table}, column 1: unknown field `stop_timeout`"
        )),
        "{err}"
    );
}

/// A runbook with the kubernetes executor, `workload = <workload>`.
fn kubernetes_runbook(workload: &str) -> String {
    format!(
        "[cluster]\nname = \"shop\"\n\n[executor]\nkind = \"kubernetes\"\nworkload = {workload}\n\
         name = \"shop\"\ncontainer = \"app\"\nimage = \"r/shop\"\nreplicas = 2\n\n\
         [backup]\nkind = \"none\"\n"
    )
}

#[test]
fn the_workload_kind_is_one_of_two_and_a_third_is_named_in_one_line() {
    for (word, kind) in [
        ("deployment", WorkloadKind::Deployment),
        ("statefulset", WorkloadKind::StatefulSet),
    ] {
        let c = RunbookConfig::parse(&kubernetes_runbook(&format!("{word:?}")), "k.toml").unwrap();
        let ExecutorConfig::Kubernetes(k) = c.executor else {
            panic!("not the kubernetes executor")
        };
        assert_eq!(k.workload, kind);
        assert_eq!(k.workload.to_string(), word);
    }
    for wrong in ["\"daemonset\"", "\"StatefulSet\"", "3"] {
        let err = RunbookConfig::parse(&kubernetes_runbook(wrong), "k.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("runbook configuration k.toml: ") && err.contains("workload"),
            "{err}"
        );
    }
    let err = RunbookConfig::parse(&kubernetes_runbook("\"daemonset\""), "k.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("executor.workload \"daemonset\": expected deployment or statefulset"),
        "{err}"
    );
}

#[test]
fn the_plan_says_what_each_step_will_do() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Runbook::plan(&example(), dir.path(), "2.1").unwrap();
    assert_eq!(
        plan.steps.iter().map(|s| s.kind).collect::<Vec<_>>(),
        StepKind::UPGRADE.to_vec()
    );
    assert_eq!(
        plan.rollback.iter().map(|s| s.kind).collect::<Vec<_>>(),
        StepKind::ROLLBACK.to_vec()
    );
    let text = plan.to_string();
    for needle in [
        "Upgrade of cluster shop to version 2.1 (executor: process)",
        "1. Preflight",
        "8. Restore traffic",
        "R2. Rollback: restore the backup",
        "pg_dump -Fc",
        "--app-version 2.1 --node-id app1",
        "app2: spawn",
        "SIGTERM",
        "GET /api/status -> 200",
        "http://127.0.0.1:8080/api/__health_check",
        "pg_restore --clean --if-exists",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
    assert!(matches!(
        Runbook::plan(&example(), dir.path(), "2;reboot"),
        Err(RunbookError::InvalidVersion(_))
    ));
}

#[tokio::test]
async fn yes_confirms_and_rolls_back_only_when_configured() {
    let prompt = |kind, choices: Vec<Decision>| Prompt {
        kind,
        step: StepKind::Rollout,
        message: "?".to_string(),
        choices,
    };
    let failure = prompt(
        PromptKind::Failure,
        vec![
            Decision::Retry,
            Decision::Skip,
            Decision::Rollback,
            Decision::Abort,
        ],
    );
    let early_failure = prompt(
        PromptKind::Failure,
        vec![Decision::Retry, Decision::Skip, Decision::Abort],
    );
    let auto = AutoOperator::new(true, false);
    assert_eq!(
        auto.confirm(&prompt(PromptKind::Warnings, vec![])).await,
        Decision::Confirm
    );
    assert_eq!(
        auto.confirm(&prompt(PromptKind::Verify, vec![])).await,
        Decision::Confirm
    );
    assert_eq!(auto.confirm(&failure).await, Decision::Rollback);
    assert_eq!(auto.confirm(&early_failure).await, Decision::Abort);
    assert_eq!(
        auto.confirm(&prompt(PromptKind::ManualAction, vec![]))
            .await,
        Decision::Abort
    );
    assert_eq!(
        AutoOperator::new(false, false).confirm(&failure).await,
        Decision::Abort
    );
}

#[test]
fn a_timeout_left_out_keeps_its_default() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/runbook.example.toml"
    ))
    .unwrap();
    assert!(text.contains("drain_s = 60 ") && text.contains("poll_ms = 500"));
    let text = text
        .replace("drain_s = 60 ", "# drain_s = 60 ")
        .replace("poll_ms = 500", "poll_ms = 250");
    let c = RunbookConfig::parse(&text, "partial.toml").unwrap();
    assert_eq!(c.timeouts.drain_s, 60);
    assert_eq!(c.timeouts.poll_ms, 250);
    assert_eq!(c.timeouts.first_node_s, 600);
}
