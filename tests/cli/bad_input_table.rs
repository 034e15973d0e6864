//! docs/bad-input.md is a table of bad inputs and what the user sees. This
//! test reads that table, produces each input for real (the `clusterops`
//! binary, Redis keys under a test namespace, a running node) and asserts
//! the output contains the row's "what the user sees" cell. A row without a
//! case here, or a case without a row, fails: the page cannot drift.

use crate::common;

use clusterops::adapters::{lock, pubsub, queue, worker_id};
use clusterops::node::registry;
use common::TestNs;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_clusterops");
const DOC: &str = include_str!("../../docs/bad-input.md");

/// Every row this test can produce; the doc must have exactly these.
const CASES: &[&str] = &[
    "env-cluster-name",
    "env-cluster-name-dash",
    "env-cache-store",
    "env-redis-url-fallback",
    "env-url-scheme",
    "env-url-no-scheme",
    "env-url-password-masked",
    "env-url-relative",
    "env-queue-adapter",
    "env-rabbitmq-missing",
    "env-rabbitmq-scheme",
    "env-rabbitmq-cacertfile",
    "env-rabbitmq-cacertfile-amqp",
    "env-rabbitmq-hosts-empty",
    "env-rabbitmq-queue-type",
    "env-rabbitmq-management-url",
    "env-url-empty-host",
    "env-lock-adapter",
    "env-lock-url-scheme",
    "env-url-port",
    "env-url-database",
    "env-db-port",
    "env-cluster-mode-zero",
    "env-cluster-mode-too-many",
    "env-worker-mode",
    "env-db-database-missing",
    "env-redis-sentinel-no-master",
    "env-redis-sentinel-secret-masked",
    "env-redis-tls-option-plain",
    "env-redis-ca-missing",
    "env-redis-unknown-parameter",
    "env-db-url-scheme",
    "env-db-sslmode",
    "env-db-sslrootcert-missing",
    "env-db-sslrootcert-garbage",
    "env-db-verify-no-root",
    "env-db-sslcert-alone",
    "env-db-sslrootcert-system",
    "env-redis-database-range",
    "env-redis-unreachable",
    "envfile-no-equals",
    "envfile-double-quote",
    "envfile-single-quote",
    "envfile-after-quote",
    "envfile-escaped-quote",
    "envfile-digit-name",
    "envfile-dash-name",
    "envfile-empty-name",
    "envfile-missing",
    "envfile-wrong-value",
    "redis-node-record",
    "redis-lease",
    "redis-last-ts",
    "redis-lock-value",
    "redis-cursor",
    "redis-queue-type",
    "redis-old-layout",
    "redis-check",
    "node-envelope",
    "node-envelope-no-seq",
    "node-queue-entry",
    "node-maintenance",
    "journal-cut-audit",
    "journal-cut-resume",
    "journal-garbage",
    "toml-syntax",
    "toml-unknown-field",
    "toml-unknown-executor",
    "toml-cluster-name",
    "toml-node-name",
    "toml-node-twice",
    "toml-placeholder",
    "toml-backup-url",
    "toml-backup-kind",
    "toml-replicas",
    "toml-kube-nodes",
    "toml-smoke-path",
    "toml-process-listen",
    "toml-timeout-range",
    "toml-poll-range",
    "toml-executor-timeout-range",
    "toml-missing",
    "runbook-db-url",
    "runbook-no-redis",
    "runbook-wrong-cluster",
    "cli-subcommand-typo",
    "cli-flag-typo",
    "cli-watch-zero",
    "cli-refresh-unit",
    "cli-refresh-range",
    "cli-theme",
    "cli-heartbeat",
    "cli-lease-ttl",
    "cli-listen",
    "cli-exporter-listen",
    "cli-exporter-cache",
    "cli-node-id",
    "cli-app-version",
    "cli-id-text",
    "cli-id-big",
    "cli-shell",
    "cli-upgrade-mode",
    "cli-upgrade-conflict",
    "cli-upgrade-version",
    "snapshot-not-json",
    "snapshot-missing",
];

/// One row: id -> expected text (placeholders still in).
fn rows() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in DOC.lines() {
        let Some(rest) = line.strip_prefix("| ") else {
            continue;
        };
        let cells = split_cells(rest);
        if cells.len() != 3 {
            continue;
        }
        let id = cells[0].trim();
        // Row ids are `area-what`; other tables (headers like `target`) are not rows.
        let is_id = id.starts_with(|c: char| c.is_ascii_lowercase())
            && id.contains('-')
            && id.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        if id == "id" || !is_id {
            continue;
        }
        let prev = out.insert(id.to_string(), code_span(cells[2].trim()));
        assert!(
            prev.is_none(),
            "row {id} appears twice in docs/bad-input.md"
        );
    }
    out
}

/// Split a table row on `|` not escaped as `\|`; unescape.
fn split_cells(row: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().unwrap().push('|');
            }
            '|' => cells.push(String::new()),
            _ => cells.last_mut().unwrap().push(c),
        }
    }
    if cells.last().is_some_and(|c| c.trim().is_empty()) {
        cells.pop();
    }
    cells
}

/// The text of a `` `…` `` or ``` `` … `` ``` code span.
fn code_span(cell: &str) -> String {
    if let Some(inner) = cell.strip_prefix("``").and_then(|c| c.strip_suffix("``")) {
        return inner.trim().to_string();
    }
    let inner = cell.strip_prefix('`').and_then(|c| c.strip_suffix('`'));
    inner
        .unwrap_or_else(|| panic!("expected a code span, got {cell}"))
        .to_string()
}

/// Everything a case needs: a temp dir, a namespace on the shared Redis.
struct Ctx {
    dir: tempfile::TempDir,
    ns: TestNs,
}

impl Ctx {
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn redis(&self) -> redis::Connection {
        redis::Client::open(self.ns.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

/// Run the binary with only `env` set (plus PATH and a private HOME);
/// stdout and stderr together.
fn run(ctx: &Ctx, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", ctx.dir.path())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn config(ctx: &Ctx, env: &[(&str, &str)]) -> String {
    run(ctx, env, &["config"])
}

const RUNBOOK_OK: &str = "[cluster]\nname = \"shop\"\n[executor]\nkind = \"process\"\nbinary = \"x\"\n\
     [[nodes]]\nname = \"app1\"\nlisten = \"127.0.0.1:1\"\n[backup]\nkind = \"none\"\n";

fn plan(ctx: &Ctx, toml: &str) -> (String, String) {
    let f = ctx.file("runbook.toml", toml.as_bytes());
    let f = f.display().to_string();
    (
        run(
            ctx,
            &[],
            &["upgrade", "--to", "2", "--plan", "--config", &f],
        ),
        f,
    )
}

const JOURNAL_LINE: &str = r#"{"seq":1,"at_ms":1795508611293,"run_id":"20261124-082331-4656","event":"run_started","cluster":"shop","target_version":"3","previous_version":"2","executor":"process","by":{"user":"ops","host":"bastion"}}"#;

fn journal(ctx: &Ctx, text: &str) -> String {
    let dir = ctx.dir.path().join("state");
    std::fs::create_dir_all(dir.join("shop")).unwrap();
    std::fs::write(dir.join("shop/journal.jsonl"), text).unwrap();
    dir.display().to_string()
}

/// Produce the input of row `id`; return the output and the placeholders.
fn case(id: &str, ctx: &Ctx, node: &NodeRun, redis_out: &str) -> (String, Vec<(String, String)>) {
    let none = Vec::new;
    let ns = ctx.ns.name.clone();
    let out = match id {
        "env-cluster-name" => config(ctx, &[("CLUSTER_NAME", "a:b")]),
        "env-cluster-name-dash" => config(ctx, &[("CLUSTER_NAME", "-shop")]),
        "env-cache-store" => config(ctx, &[("CACHE_DEFAULT_STORE", "redi")]),
        "env-redis-url-fallback" => config(
            ctx,
            &[
                ("CACHE_DEFAULT_STORE", "redis"),
                ("QUEUE_ADAPTER", "redis"),
                ("REDIS_URL", "http://x"),
            ],
        ),
        "env-url-scheme" => config(
            ctx,
            &[
                ("CACHE_DEFAULT_STORE", "redis"),
                ("CACHE_REDIS_URL", "http://x"),
            ],
        ),
        "env-url-no-scheme" => config(
            ctx,
            &[
                ("CACHE_DEFAULT_STORE", "redis"),
                ("CACHE_REDIS_URL", "localhost:6379"),
            ],
        ),
        "env-url-password-masked" => {
            let out = config(
                ctx,
                &[
                    ("CACHE_DEFAULT_STORE", "redis"),
                    ("CACHE_REDIS_URL", "redis://:S3cret@"),
                ],
            );
            assert!(!out.contains("S3cret"), "{out}");
            out
        }
        "env-url-relative" => config(ctx, &[("PUBSUB_ADAPTER_REDIS_URL", "redis//x")]),
        "env-queue-adapter" => config(ctx, &[("QUEUE_ADAPTER", "kafka")]),
        "env-rabbitmq-missing" => config(ctx, &[("QUEUE_ADAPTER", "rabbitmq")]),
        "env-rabbitmq-queue-type" => {
            config(ctx, &[("QUEUE_ADAPTER_RABBITMQ_QUEUE_TYPE", "stream")])
        }
        "env-rabbitmq-management-url" => config(
            ctx,
            &[(
                "QUEUE_ADAPTER_RABBITMQ_MANAGEMENT_URL",
                "ftp://ops:S3cret@mq:15672",
            )],
        ),
        "env-rabbitmq-hosts-empty" => config(
            ctx,
            &[
                ("QUEUE_ADAPTER", "rabbitmq"),
                (
                    "QUEUE_ADAPTER_RABBITMQ_URL",
                    "amqp://app:S3cret@mq1,,mq3/%2f",
                ),
            ],
        ),
        "env-rabbitmq-scheme" => config(
            ctx,
            &[
                ("QUEUE_ADAPTER", "rabbitmq"),
                ("QUEUE_ADAPTER_RABBITMQ_URL", "redis://h"),
            ],
        ),
        "env-rabbitmq-cacertfile" | "env-rabbitmq-cacertfile-amqp" => {
            let url = if id == "env-rabbitmq-cacertfile" {
                "amqps://app:S3cret@mq:5671/%2f?cacertfile=/nonexistent/ca.pem"
            } else {
                "amqp://app:S3cret@mq/%2f?cacertfile=/x.pem"
            };
            let out = config(
                ctx,
                &[
                    ("QUEUE_ADAPTER", "rabbitmq"),
                    ("QUEUE_ADAPTER_RABBITMQ_URL", url),
                ],
            );
            assert!(!out.contains("S3cret"), "{out}");
            out
        }
        "env-url-empty-host" => config(
            ctx,
            &[
                ("QUEUE_ADAPTER", "redis"),
                ("QUEUE_ADAPTER_REDIS_URL", "redis://user:pw@:6379"),
            ],
        ),
        "env-lock-adapter" => config(ctx, &[("LOCK_ADAPTER_DEFAULT", "zookeeper")]),
        "env-lock-url-scheme" => config(
            ctx,
            &[
                ("LOCK_ADAPTER_DEFAULT", "redis"),
                ("LOCK_ADAPTER_REDIS_URL", "amqp://h"),
            ],
        ),
        "env-url-port" => {
            let out = config(ctx, &[("REDIS_URL", "redis://u:Secr3t@host:port/0")]);
            assert!(!out.contains("Secr3t"), "{out}");
            out
        }
        "env-url-database" => config(ctx, &[("REDIS_URL", "redis://127.0.0.1:6379/abc")]),
        "env-db-port" => config(
            ctx,
            &[
                ("DB_HOST", "10.0.0.7"),
                ("DB_PORT", "99999"),
                ("DB_DATABASE", "shop"),
                ("DB_PASSWORD", "S3cret"),
            ],
        ),
        "env-db-database-missing" => config(ctx, &[("DB_HOST", "10.0.0.7")]),
        "env-cluster-mode-zero" => config(ctx, &[("CLUSTER_MODE", "0")]),
        "env-cluster-mode-too-many" => config(ctx, &[("CLUSTER_MODE", "48")]),
        "env-worker-mode" => config(ctx, &[("WORKER_MODE", "jobs only")]),
        "env-redis-sentinel-no-master" => config(
            ctx,
            &[("REDIS_URL", "redis-sentinel://s1:26379,s2:26379/0")],
        ),
        "env-redis-sentinel-secret-masked" => {
            let out = config(
                ctx,
                &[(
                    "REDIS_URL",
                    "redis-sentinel://:Secr3t@s1,s2/0?sentinel_password=Sent1nel",
                )],
            );
            assert!(
                !out.contains("Secr3t") && !out.contains("Sent1nel"),
                "{out}"
            );
            out
        }
        "env-redis-tls-option-plain" => config(
            ctx,
            &[("REDIS_URL", "redis://h/0?ssl_ca_certs=/etc/ca.pem")],
        ),
        "env-redis-ca-missing" => config(
            ctx,
            &[("REDIS_URL", "rediss://h/0?ssl_ca_certs=/nonexistent/ca.pem")],
        ),
        "env-redis-unknown-parameter" => config(
            ctx,
            &[("REDIS_URL", "rediss://h/0?ssl_ca_cert=/etc/ca.pem")],
        ),
        "env-db-url-scheme" => config(ctx, &[("DB_URL", "mysql://root@h/db")]),
        "env-db-sslmode" => {
            let out = config(
                ctx,
                &[("DB_URL", "postgres://app:S3cret@h/db?sslmode=verify")],
            );
            assert!(!out.contains("S3cret"), "{out}");
            out
        }
        "env-db-sslrootcert-missing" => config(
            ctx,
            &[(
                "DB_URL",
                "postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            )],
        ),
        "env-db-sslrootcert-garbage" => {
            let f = ctx.file("garbage-ca.pem", b"not a certificate\n");
            let f = f.display().to_string();
            let url = format!("postgres://h/db?sslmode=verify-ca&sslrootcert={f}");
            return (config(ctx, &[("DB_URL", &url)]), vec![("<file>".into(), f)]);
        }
        "env-db-verify-no-root" => {
            let out = config(ctx, &[("DB_URL", "postgres://h/db?sslmode=verify-full")]);
            let home = ctx.dir.path().display().to_string();
            return (out, vec![("<home>".into(), home)]);
        }
        "env-db-sslcert-alone" => config(ctx, &[("DB_URL", "postgres://h/db?sslcert=/x.pem")]),
        "env-db-sslrootcert-system" => config(
            ctx,
            &[(
                "DB_URL",
                "postgres://h/db?sslmode=require&sslrootcert=system",
            )],
        ),
        "env-redis-database-range" => run(
            ctx,
            &[("REDIS_URL", "redis://127.0.0.1:6379/99")],
            &["status"],
        ),
        "env-redis-unreachable" => run(ctx, &[("REDIS_URL", "redis://127.0.0.1:1/0")], &["status"]),

        id if id.starts_with("envfile-") => {
            let bytes: &[u8] = match id {
                "envfile-no-equals" => b"A=1\nnonsense\n",
                "envfile-double-quote" => b"CACHE_REDIS_URL=\"redis://h\n",
                "envfile-single-quote" => b"APP_KEY='open\n",
                "envfile-after-quote" => b"APP_KEY='x' y\n",
                "envfile-escaped-quote" => b"APP_KEY=\"pa\\\"\n",
                "envfile-digit-name" => b"1A=x\n",
                "envfile-dash-name" => b"MY-VAR=x\n",
                "envfile-empty-name" => b"=value\n",
                "envfile-not-utf8" => b"\xff\xfe=1\n",
                "envfile-wrong-value" => b"QUEUE_ADAPTER=kafka\n",
                "envfile-missing" => b"",
                other => panic!("no case for row {other}"),
            };
            let path = if id == "envfile-missing" {
                ctx.dir.path().join("missing.env")
            } else {
                ctx.file("cluster.env", bytes)
            };
            let p = path.display().to_string();
            let out = run(ctx, &[], &["config", "--env-file", &p]);
            return (out, vec![("<file>".into(), p)]);
        }

        id if id.starts_with("redis-") => {
            return (redis_out.to_string(), vec![("<ns>".into(), ns)]);
        }

        id if id.starts_with("node-") => {
            return (node.log_and_health(), vec![("<ns>".into(), ns)]);
        }

        "journal-cut-audit" | "journal-cut-resume" => {
            let dir = journal(ctx, &format!("{JOURNAL_LINE}\n{{\"seq\":2,\"at"));
            let out = if id == "journal-cut-audit" {
                run(ctx, &[], &["audit", "--state-dir", &dir])
            } else {
                let f = ctx.file("shop.toml", RUNBOOK_OK.as_bytes());
                run(
                    ctx,
                    &[("CLUSTER_NAME", "shop"), ("REDIS_URL", &ctx.ns.url)],
                    &[
                        "upgrade",
                        "--resume",
                        "--config",
                        &f.display().to_string(),
                        "--state-dir",
                        &dir,
                    ],
                )
            };
            return (out, vec![("<dir>".into(), dir)]);
        }
        "journal-garbage" => {
            let dir = journal(ctx, &format!("hello\n{JOURNAL_LINE}\n"));
            return (
                run(ctx, &[], &["audit", "--state-dir", &dir]),
                vec![("<dir>".into(), dir)],
            );
        }

        id if id.starts_with("toml-") => {
            let text = match id {
                "toml-syntax" => "not toml [".to_string(),
                "toml-unknown-field" => format!("{RUNBOOK_OK}extra = 1\n"),
                "toml-unknown-executor" => RUNBOOK_OK.replace("\"process\"", "\"ansible\""),
                "toml-cluster-name" => RUNBOOK_OK.replace("\"shop\"", "\"a:b\""),
                "toml-node-name" => RUNBOOK_OK.replace("\"app1\"", "\"app 1\""),
                "toml-node-twice" => RUNBOOK_OK.replace(
                    "[backup]",
                    "[[nodes]]\nname = \"app1\"\nlisten = \"127.0.0.1:2\"\n[backup]",
                ),
                "toml-placeholder" => RUNBOOK_OK.replace(
                    "kind = \"process\"\nbinary = \"x\"",
                    "kind = \"command\"\nstop = \"ssh {host} stop\"\nstart = \"x\"",
                ),
                "toml-backup-url" => RUNBOOK_OK.replace("\"none\"", "\"postgres\""),
                "toml-backup-kind" => RUNBOOK_OK.replace("\"none\"", "\"oracle\""),
                "toml-replicas" | "toml-kube-nodes" => {
                    let kube = "kind = \"kubernetes\"\nname = \"shop\"\ncontainer = \"app\"\nimage = \"r/shop\"\n";
                    let (replicas, nodes) = if id == "toml-replicas" {
                        (0, "")
                    } else {
                        (3, "[[nodes]]\nname = \"app1\"\n")
                    };
                    format!(
                        "[cluster]\nname = \"shop\"\n[executor]\n{kube}replicas = {replicas}\n{nodes}[backup]\nkind = \"none\"\n"
                    )
                }
                "toml-smoke-path" => {
                    format!("{RUNBOOK_OK}[[verify.smoke]]\npath = \"api/status\"\n")
                }
                "toml-process-listen" => RUNBOOK_OK.replace("listen = \"127.0.0.1:1\"\n", ""),
                "toml-timeout-range" => {
                    format!("{RUNBOOK_OK}[timeouts]\ndrain_s = 9223372036854775807\n")
                }
                "toml-poll-range" => format!("{RUNBOOK_OK}[timeouts]\npoll_ms = 5\n"),
                "toml-executor-timeout-range" => {
                    RUNBOOK_OK.replace("binary = \"x\"", "binary = \"x\"\nstop_timeout_s = 0")
                }
                "toml-missing" => {
                    let p = ctx.dir.path().join("nope.toml").display().to_string();
                    let out = run(
                        ctx,
                        &[],
                        &["upgrade", "--to", "2", "--plan", "--config", &p],
                    );
                    return (out, vec![("<file>".into(), p)]);
                }
                other => panic!("no case for row {other}"),
            };
            let (out, f) = plan(ctx, &text);
            return (out, vec![("<file>".into(), f)]);
        }
        "runbook-db-url" | "runbook-no-redis" | "runbook-wrong-cluster" => {
            let toml = RUNBOOK_OK.replace(
                "kind = \"none\"",
                "kind = \"postgres\"\nurl_env = \"DB_URL\"",
            );
            let f = ctx.file("db.toml", toml.as_bytes()).display().to_string();
            let env: Vec<(&str, &str)> = match id {
                "runbook-db-url" => vec![
                    ("CLUSTER_NAME", "shop"),
                    ("REDIS_URL", "redis://127.0.0.1:1/0"),
                ],
                "runbook-no-redis" => {
                    vec![("CLUSTER_NAME", "shop"), ("DB_URL", "postgres://u@h/db")]
                }
                _ => vec![
                    ("CLUSTER_NAME", "shop2"),
                    ("REDIS_URL", "redis://127.0.0.1:1/0"),
                    ("DB_URL", "postgres://u@h/db"),
                ],
            };
            let state = ctx.dir.path().join("rb-state").display().to_string();
            run(
                ctx,
                &env,
                &[
                    "upgrade",
                    "--to",
                    "2",
                    "--config",
                    &f,
                    "--state-dir",
                    &state,
                ],
            )
        }

        "cli-subcommand-typo" => run(ctx, &[], &["statsu"]),
        "cli-flag-typo" => run(ctx, &[], &["status", "--jsn"]),
        "cli-watch-zero" => run(ctx, &[], &["status", "--watch", "0"]),
        "cli-refresh-unit" => run(ctx, &[], &["console", "--refresh", "5x"]),
        "cli-refresh-range" => run(ctx, &[], &["console", "--refresh", "10ms"]),
        "cli-theme" => run(
            ctx,
            &[],
            &["console", "--theme", "neon", "--snapshot", "x.json"],
        ),
        "cli-heartbeat" => run(ctx, &[], &["node", "--heartbeat-ms", "5"]),
        "cli-lease-ttl" => run(ctx, &[], &["node", "--lease-ttl-ms", "10"]),
        "cli-listen" => run(ctx, &[], &["node", "--listen", "nowhere"]),
        "cli-exporter-listen" => run(ctx, &[], &["exporter", "--listen", "127.0.0.1:6379"]),
        "cli-exporter-cache" => run(ctx, &[], &["exporter", "--cache-ms", "90000"]),
        "cli-node-id" => run(ctx, &[], &["node", "--node-id", "a b"]),
        "cli-app-version" => run(ctx, &[], &["node", "--app-version", "v2;"]),
        "cli-id-text" => run(ctx, &[], &["id", "decode", "abc"]),
        "cli-id-big" => run(ctx, &[], &["id", "decode", "99999999999999999999"]),
        "cli-shell" => run(ctx, &[], &["completions", "tcsh"]),
        "cli-upgrade-mode" => run(ctx, &[], &["upgrade", "--plan"]),
        "cli-upgrade-conflict" => run(ctx, &[], &["upgrade", "--resume", "--abort"]),
        "cli-upgrade-version" => {
            let (_, f) = plan(ctx, RUNBOOK_OK);
            run(
                ctx,
                &[],
                &["upgrade", "--to", "2;rm", "--plan", "--config", &f],
            )
        }
        "snapshot-not-json" | "snapshot-missing" => {
            let p = if id == "snapshot-not-json" {
                ctx.file("snap.json", b"not json")
            } else {
                ctx.dir.path().join("no-snap.json")
            };
            let p = p.display().to_string();
            return (
                run(ctx, &[], &["console", "--snapshot", &p]),
                vec![("<file>".into(), p)],
            );
        }
        other => {
            panic!("docs/bad-input.md row {other} has no case in tests/cli/bad_input_table.rs")
        }
    };
    (out, none())
}

/// Garbage keys under the namespace, then `status` and `check` on it.
fn redis_garbage(ctx: &Ctx) -> String {
    let ns = &ctx.ns.name;
    let n = ctx.ns.namespace();
    let mut c = ctx.redis();
    let cmds: Vec<Vec<String>> = vec![
        vec![
            "SET".into(),
            registry::record_key(&n, "ghost"),
            "not json".into(),
        ],
        vec![
            "ZADD".into(),
            registry::index_key(&n),
            "1".into(),
            "ghost".into(),
        ],
        vec![
            "SET".into(),
            worker_id::lease_key(&n, 7),
            "garbage-holder".into(),
        ],
        vec![
            "SET".into(),
            worker_id::last_ts_key(&n, 8),
            "yesterday".into(),
        ],
        vec![
            "SET".into(),
            lock::lock_key(&n, "orders"),
            "x".into(),
            "PX".into(),
            "600000".into(),
        ],
        // A lock of the layout before hash tags, with a good value.
        vec![
            "SET".into(),
            format!("{ns}:lock:nightly"),
            "3|1700000000000|0123456789abcdef|app1".into(),
            "PX".into(),
            "600000".into(),
        ],
        vec![
            "HSET".into(),
            pubsub::keys::cursors_key(&n, "records"),
            "app1".into(),
            "garbage".into(),
        ],
        vec![
            "SET".into(),
            queue::stream_key(&n, "record-events"),
            "a string".into(),
        ],
        vec![
            "SADD".into(),
            format!("{ns}:queue-names"),
            "record-events".into(),
        ],
    ];
    for cmd in cmds {
        let mut r = redis::cmd(&cmd[0]);
        for a in &cmd[1..] {
            r.arg(a);
        }
        r.query::<()>(&mut c).unwrap();
    }
    let env = cluster_env(ctx);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = format!(
        "{}{}",
        run(ctx, &env, &["status"]),
        run(ctx, &env, &["check"])
    );
    // Leave the namespace clean for the node.
    for k in ctx.ns.keys() {
        let _: () = redis::cmd("DEL").arg(&k).query(&mut c).unwrap();
    }
    out
}

fn cluster_env(ctx: &Ctx) -> Vec<(&'static str, String)> {
    let url = ctx.ns.url.clone();
    vec![
        ("CLUSTER_NAME", ctx.ns.name.clone()),
        ("REDIS_URL", url.clone()),
        ("PUBSUB_ADAPTER_REDIS_URL", url.clone()),
        ("QUEUE_ADAPTER", "redis".into()),
        ("QUEUE_ADAPTER_REDIS_URL", url.clone()),
        ("LOCK_ADAPTER_DEFAULT", "redis".into()),
        ("LOCK_ADAPTER_REDIS_URL", url.clone()),
        ("CACHE_DEFAULT_STORE", "redis".into()),
        ("CACHE_REDIS_URL", url),
    ]
}

/// A real node on the namespace that is fed bad stream entries and a bad
/// maintenance flag; its log and health answer are what the user sees.
struct NodeRun {
    child: Child,
    log: PathBuf,
    addr: String,
}

impl NodeRun {
    fn start(ctx: &Ctx) -> Self {
        let log = ctx.dir.path().join("node.log");
        let addr = format!("127.0.0.1:{}", common::free_port());
        let child = Command::new(BIN)
            .args([
                "node",
                "--listen",
                &addr,
                "--node-id",
                "bad1",
                "--heartbeat-ms",
                "300",
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", ctx.dir.path())
            .envs(cluster_env(ctx))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let run = Self { child, log, addr };
        let t = Instant::now();
        while run.health().0 != 200 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "node did not start: {}",
                run.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        run
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn health(&self) -> (u16, String) {
        let Ok(mut s) = std::net::TcpStream::connect(&self.addr) else {
            return (0, String::new());
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let req = format!(
            "GET /api/__health_check HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        if s.write_all(req.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (code, body)
    }

    /// Feed the bad input, wait for the node to react; log + health.
    fn feed(&self, ctx: &Ctx) {
        let ns = &ctx.ns.name;
        let n = ctx.ns.namespace();
        let mut c = ctx.redis();
        let stream = pubsub::keys::stream_key(&n, "records");
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("seq")
            .arg("1000")
            .arg("envelope")
            .arg("not-json")
            .query(&mut c)
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("envelope")
            .arg("{}")
            .query(&mut c)
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg(queue::stream_key(&n, "record-events"))
            .arg("*")
            .arg("garbage")
            .arg("1")
            .query(&mut c)
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg(format!("{ns}:maintenance"))
            .arg("on")
            .query(&mut c)
            .unwrap();
        let t = Instant::now();
        loop {
            let log = self.log_text();
            if log.contains("no `seq` field")
                && log.contains("moved to dead letters")
                && self.health().0 == 503
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the node did not react: {log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_and_health(&self) -> String {
        let (code, body) = self.health();
        format!("{}\n{code} {body}", self.log_text())
    }
}

impl Drop for NodeRun {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn substitute(text: &str, subs: &[(String, String)]) -> String {
    subs.iter()
        .fold(text.to_string(), |t, (k, v)| t.replace(k, v))
}

#[test]
fn every_row_of_docs_bad_input_is_what_the_user_sees() {
    let rows = rows();
    let doc_ids: Vec<&str> = rows.keys().map(String::as_str).collect();
    let mut cases = CASES.to_vec();
    cases.sort_unstable();
    assert_eq!(
        doc_ids, cases,
        "docs/bad-input.md rows and this test's cases differ"
    );
    let ctx = Ctx {
        dir: tempfile::tempdir().unwrap(),
        ns: TestNs::new("badtable"),
    };
    let redis_out = redis_garbage(&ctx);
    let node = NodeRun::start(&ctx);
    node.feed(&ctx);
    let mut failures = Vec::new();
    for (id, expected) in &rows {
        let (out, subs) = case(id, &ctx, &node, &redis_out);
        let expected = substitute(expected, &subs);
        if !out.contains(&expected) {
            failures.push(format!(
                "row {id}:\n  doc says: {expected}\n  program printed:\n{out}"
            ));
        }
        assert!(!out.contains("panicked"), "row {id} panicked:\n{out}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_table_parser_reads_escaped_pipes_and_double_backticks() {
    let cells = split_cells(r"a | b \| c | `x` |");
    assert_eq!(cells, vec!["a ", " b | c ", " `x` "]);
    assert_eq!(code_span("`` a `b` ``"), "a `b`");
    assert_eq!(code_span("`plain`"), "plain");
    assert!(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/bad-input.md")).exists());
}
