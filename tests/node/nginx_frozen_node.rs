//! assets/nginx.conf on a real nginx in front of two real nodes, one of them
//! frozen with SIGSTOP (a hung process: the connection is accepted, no
//! answer comes). A GET that lands on it is retried on the other node after
//! `proxy_read_timeout`; a POST is not retried (nginx never resends a
//! non-idempotent request) and gets the 503 maintenance page. Prints the
//! figures measured.

use crate::common;

use common::nginx::{ASSET, Nginx};
use common::nodes::{NodeProc, TestCluster};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// `proxy_read_timeout` in the asset, in seconds.
fn read_timeout_s() -> u64 {
    let line = ASSET
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("proxy_read_timeout "))
        .expect("assets/nginx.conf sets proxy_read_timeout");
    line.trim_start_matches("proxy_read_timeout ")
        .trim_end_matches(';')
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// SIGCONT on drop, so a failing assertion never leaves a stopped process.
struct Frozen(i32);

impl Frozen {
    fn freeze(node: &NodeProc) -> Self {
        let pid = node.pid() as i32;
        kill(Pid::from_raw(pid), Signal::SIGSTOP).expect("SIGSTOP");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_costs_one_read_timeout_then_another_node_serves() {
    let read_timeout = read_timeout_s();
    let bound = Duration::from_secs(2 * read_timeout + 2);
    let c = TestCluster::new("frozen");
    let mut app1 = c.start("app1", "2").await;
    let mut app2 = c.start("app2", "2").await;
    app1.wait_for_health(200, Duration::from_secs(20)).await;
    app2.wait_for_health(200, Duration::from_secs(20)).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let backends = [app1.addr.as_str(), app2.addr.as_str()];

    let frozen = Frozen::freeze(&app1);

    // GETs: the first one nginx sends to app1 waits the read timeout, then
    // goes to app2; app1 is then left out for fail_timeout.
    let nginx = Nginx::start(&backends, 5).await;
    let mut latencies = Vec::new();
    for _ in 0..4 {
        let t = Instant::now();
        let r = client.get(nginx.url("/api/status")).send().await.unwrap();
        let code = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        latencies.push(t.elapsed());
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["node_id"], "app2", "{body}");
    }
    let worst = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "frozen node, GET: proxy_read_timeout {read_timeout} s; latencies {:?} ms; the request \
         sent to the frozen node was served by app2 after {} ms",
        latencies.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        worst.as_millis()
    );
    assert!(
        worst >= Duration::from_secs(read_timeout) - Duration::from_millis(500),
        "no request landed on the frozen node: {latencies:?}"
    );
    assert!(worst < bound, "{worst:?} >= {bound:?}");
    drop(nginx);

    // POSTs: one that lands on the frozen node is not retried; after the
    // read timeout the client gets 503 and the maintenance page.
    let nginx = Nginx::start(&backends, 5).await;
    let mut refused = None;
    for i in 0..3 {
        let t = Instant::now();
        let r = client
            .post(nginx.url("/api/records"))
            .json(&serde_json::json!({"name": format!("frozen-{i}"), "value": "x"}))
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        if code == 503 {
            assert!(body.contains("Down for maintenance"), "{body}");
            refused = Some(t.elapsed());
            break;
        }
        assert_eq!(code, 201, "{body}");
    }
    let refused = refused.expect("no POST landed on the frozen node");
    println!(
        "frozen node, POST: not retried, 503 maintenance page after {} ms",
        refused.as_millis()
    );
    assert!(refused < bound, "{refused:?} >= {bound:?}");
    drop(nginx);

    // Thaw it: app1 serves again, and both stop cleanly.
    drop(frozen);
    app1.wait_for_health(200, Duration::from_secs(20)).await;
    assert_eq!(app1.terminate(), Some(0));
    assert_eq!(app2.terminate(), Some(0));
}
