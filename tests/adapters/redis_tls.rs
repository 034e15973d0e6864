//! Redis over TLS with a private CA, against a real TLS-only redis-server
//! started by the test: the whole node (cache, sync signals, queue with its
//! blocking reads, locks, worker IDs) on `rediss://`, `status` and `check`
//! on it, the CA given per URL or in `SSL_CERT_FILE`, client certificates,
//! and every way a certificate can be refused, each as one clear line.

use crate::common;

use clusterops::adapters::redis_conn;
use clusterops::config::{SecretUrl, parse_redis_url};
use common::nodes::TestCluster;
use common::topology::{Pki, TlsRedis};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

const PASSWORD: &str = "tls-s3cret-pw";

fn url(server: &TlsRedis, host: &str, query: &str) -> String {
    format!(
        "rediss://:{PASSWORD}@{host}:{}/0{query}",
        server.server.port
    )
}

async fn connect(raw: &str) -> Result<redis_conn::SharedConn, redis_conn::ConnectError> {
    let url = parse_redis_url(raw).expect("a valid URL");
    redis_conn::connect(&url).await
}

/// The error's text, checked to be one line without the password.
fn one_line(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(!text.contains(PASSWORD), "no password: {text}");
    text
}

fn clusterops(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterops"));
    cmd.args(args)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the clusterops binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_runs_on_tls_redis_with_a_private_ca() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, false, Some(PASSWORD));
    let rediss = url(&server, "localhost", &format!("?ssl_ca_certs={}", pki.ca()));
    let c = TestCluster::new("tls-cluster");
    let env = c.env_on_redis("tls.env", &rediss);
    let nodes = [
        c.spawn_with_env("t1", "1", &env),
        c.spawn_with_env("t2", "1", &env),
    ];
    for n in &nodes {
        n.wait_for_status(Duration::from_secs(30)).await;
        let health = n.wait_for_health(200, Duration::from_secs(20)).await;
        assert!(health.starts_with("ok"), "{}: {health}", n.node_id);
    }
    // Records go through the Redis queue (blocking reads on their own TLS
    // connections) and are handled once. The Redis has just started: snowflake
    // IDs wait out its restart quarantine (start + ceil(lease TTL) + 1 s,
    // docs/snowflake.md), during which a create answers 503.
    for i in 0..10 {
        let n = &nodes[i % 2];
        let started = std::time::Instant::now();
        loop {
            let resp = n
                .http
                .post(n.url("/api/records"))
                .json(&json!({"name": format!("r{i}"), "value": "v"}))
                .send()
                .await
                .expect("POST /api/records");
            if resp.status() == 503 && started.elapsed() < Duration::from_secs(15) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            assert_eq!(resp.status(), 201);
            break;
        }
    }
    let handled = common::nodes::eventually(Duration::from_secs(15), || async {
        c.db.query("SELECT count(*) FROM record_events") == "10"
    })
    .await;
    assert!(handled, "10 events handled over TLS");

    // status and check read the cluster over TLS; no password anywhere.
    let env_arg = env.display().to_string();
    let (code, out, err) = clusterops(&["status", "--json", "--env-file", &env_arg], &[]);
    assert_eq!(code, 0, "status: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    let ids: Vec<&str> = v["nodes"]["data"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["node_id"].as_str())
        .collect();
    assert!(ids.contains(&"t1") && ids.contains(&"t2"), "{ids:?}");
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));
    let (code, out, _) = clusterops(&["check", "--env-file", &env_arg], &[]);
    assert!(code <= 1, "check: {out}");
    assert!(
        out.contains("tls-verification") && out.contains("verifying its server's certificate"),
        "{out}"
    );
    for n in &nodes {
        assert!(!n.log_text().contains(PASSWORD), "{} log", n.node_id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ca_in_ssl_cert_file_is_trusted_and_without_it_the_error_says_what_to_do() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, false, Some(PASSWORD));
    let dir = tempfile::tempdir().expect("tempdir");
    let env = dir.path().join("c.env");
    let rediss = url(&server, "localhost", "");
    std::fs::write(
        &env,
        format!("CLUSTER_NAME=t-tls-env\nREDIS_URL={rediss}\n"),
    )
    .expect("env file");
    let env_arg = env.display().to_string();

    let (code, out, err) = clusterops(&["status", "--json", "--env-file", &env_arg], &[]);
    let all = format!("{out}{err}");
    assert!(all.contains("certificate not trusted"), "{code}: {all}");
    assert!(
        all.contains("SSL_CERT_FILE") && all.contains("ssl_ca_certs"),
        "{all}"
    );
    assert!(!all.contains(PASSWORD), "{all}");

    let (code, out, err) = clusterops(
        &["status", "--json", "--env-file", &env_arg],
        &[("SSL_CERT_FILE", &pki.ca())],
    );
    assert_eq!(code, 0, "with SSL_CERT_FILE: {out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(v["nodes"]["status"], "ok", "{out}");
}

#[tokio::test]
async fn an_untrusted_certificate_is_one_clear_line_and_never_a_hang() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, false, Some(PASSWORD));
    let started = Instant::now();
    let err = connect(&url(
        &server,
        "localhost",
        &format!("?ssl_ca_certs={}", pki.other_ca()),
    ))
    .await
    .expect_err("a CA that signed nothing of ours is refused");
    let text = one_line(&err);
    assert!(started.elapsed() < Duration::from_secs(10), "bounded");
    assert!(text.contains("certificate not trusted"), "{text}");
    assert!(text.contains("rediss://:***@localhost"), "{text}");
    assert!(text.contains("ssl_ca_certs"), "{text}");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, false, Some(PASSWORD));
    // 127.0.0.2 reaches the same server; the certificate does not name it.
    let err = connect(&url(
        &server,
        "127.0.0.2",
        &format!("?ssl_ca_certs={}", pki.ca()),
    ))
    .await
    .expect_err("a host-name mismatch is refused");
    let text = one_line(&err);
    assert!(text.contains("does not name this host"), "{text}");
    let mut ok = connect(&url(
        &server,
        "127.0.0.1",
        &format!("?ssl_ca_certs={}", pki.ca()),
    ))
    .await
    .expect("the IP the certificate names");
    let pong: String = redis::cmd("PING").query_async(&mut ok).await.expect("PING");
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_verification_is_explicit_and_check_warns_loudly() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, false, Some(PASSWORD));
    let insecure = url(&server, "127.0.0.2", "?ssl_cert_reqs=none");
    let mut conn = connect(&insecure).await.expect("no verification connects");
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");

    let dir = tempfile::tempdir().expect("tempdir");
    let env = dir.path().join("c.env");
    std::fs::write(
        &env,
        format!("CLUSTER_NAME=t-tls-insecure\nREDIS_URL={insecure}\n"),
    )
    .expect("env file");
    let (code, out, _) = clusterops(&["check", "--env-file", &env.display().to_string()], &[]);
    assert!(code >= 1, "a warning at least: {out}");
    let line = out
        .lines()
        .find(|l| l.contains("tls-verification"))
        .unwrap_or_else(|| panic!("no tls-verification line: {out}"));
    assert!(
        line.contains("WARN") && line.contains("REDIS_URL") && line.contains("NOT checked"),
        "{line}"
    );
    assert!(!out.contains(PASSWORD));
}

#[tokio::test]
async fn a_client_certificate_is_sent_when_the_server_requires_one() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, true, None);
    let base = format!(
        "rediss://localhost:{}/0?ssl_ca_certs={}",
        server.server.port,
        pki.ca()
    );
    assert!(
        connect(&base).await.is_err(),
        "no client certificate: refused"
    );
    let with_cert = format!(
        "{base}&ssl_certfile={}&ssl_keyfile={}",
        pki.client_cert(),
        pki.client_key()
    );
    let mut conn = connect(&with_cert)
        .await
        .expect("with a client certificate");
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn the_wrong_scheme_for_the_port_is_one_line_within_the_timeout() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, false, Some(PASSWORD));
    let plain = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", server.server.port);
    let started = Instant::now();
    let err = connect(&plain)
        .await
        .expect_err("plaintext to a TLS port fails");
    one_line(&err);
    assert!(started.elapsed() < Duration::from_secs(10), "bounded");

    let tls_to_plain = "rediss://127.0.0.1:6379/0";
    let err = connect(tls_to_plain)
        .await
        .expect_err("TLS to a plaintext port fails");
    let text = one_line(&err);
    assert!(text.contains("TLS port"), "{text}");
}

#[test]
fn tls_options_are_checked_when_the_configuration_loads() {
    let err = parse_redis_url("rediss://h/0?ssl_ca_certs=/nonexistent/ca.pem").unwrap_err();
    assert!(
        err.contains("ssl_ca_certs=/nonexistent/ca.pem: cannot read"),
        "{err}"
    );
    let err = parse_redis_url("redis://h/0?ssl_ca_certs=/etc/hostname").unwrap_err();
    assert!(err.contains("need a TLS scheme"), "{err}");
    let not_pem = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(not_pem.path(), "hello").expect("write");
    let err = parse_redis_url(&format!(
        "rediss://h/0?ssl_ca_certs={}",
        not_pem.path().display()
    ))
    .unwrap_err();
    assert!(err.contains("not a PEM file"), "{err}");
    assert!(SecretUrl::parse("rediss://h/0", &["rediss"]).is_ok());
}

#[test]
fn the_build_has_one_crypto_provider() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
        .expect("Cargo.lock");
    assert!(lock.contains("name = \"ring\""), "ring is the provider");
    assert!(
        !lock.contains("name = \"aws-lc-rs\"") && !lock.contains("name = \"aws-lc-sys\""),
        "a second crypto provider (aws-lc-rs) is in Cargo.lock: rustls could no longer pick one"
    );
    assert!(!lock.contains("name = \"native-tls\"") && !lock.contains("name = \"openssl-sys\""));
}
