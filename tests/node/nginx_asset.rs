//! assets/nginx.conf on a real nginx (/usr/sbin/nginx) in front of two tiny
//! backends on loopback: both healthy -> 200; both answering 503 (the
//! cluster in maintenance) -> 503 with the maintenance page; one down -> the
//! other serves (failover, also after the 503s).

use crate::common;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::nginx::Nginx;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

async fn backend(
    State((name, status)): State<(&'static str, Arc<AtomicU16>)>,
) -> axum::response::Response {
    let code = status.load(Ordering::SeqCst);
    let code = StatusCode::from_u16(code).unwrap();
    if code == StatusCode::OK {
        (code, format!("ok from {name}\n")).into_response()
    } else {
        (code, format!("maintenance: {name}\n")).into_response()
    }
}

async fn start_backend(
    name: &'static str,
) -> (String, Arc<AtomicU16>, tokio::task::JoinHandle<()>) {
    let status = Arc::new(AtomicU16::new(200));
    let app = axum::Router::new()
        .fallback(backend)
        .with_state((name, status.clone()));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (addr, status, task)
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String, Option<String>) {
    let r = client.get(url).send().await.unwrap();
    let code = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_string());
    (code, r.text().await.unwrap(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_fails_over_and_shows_the_maintenance_page_when_no_node_serves() {
    let (a_addr, a_status, _a) = start_backend("A").await;
    let (b_addr, b_status, b_task) = start_backend("B").await;
    let nginx = Nginx::start(&[&a_addr, &b_addr], 5).await;
    let port = nginx.port;
    let url = format!("http://127.0.0.1:{port}/api/__health_check");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    // Both nodes healthy: 200 from either.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (code, body, _) = get(&client, &url).await;
        assert_eq!(code, 200, "{body}");
        seen.insert(body);
    }
    assert_eq!(seen.len(), 2, "round robin over both nodes: {seen:?}");

    // Maintenance: both answer 503 -> the client gets 503 and the page.
    a_status.store(503, Ordering::SeqCst);
    b_status.store(503, Ordering::SeqCst);
    for _ in 0..3 {
        let (code, body, retry) = get(&client, &url).await;
        assert_eq!(code, 503);
        assert!(body.contains("Down for maintenance"), "{body}");
        assert!(!body.contains("maintenance: A") && !body.contains("maintenance: B"));
        assert_eq!(retry.as_deref(), Some("30"));
    }

    // B is down, A serves again: failover to A (also right after A was
    // marked failed: nginx retries when every node has failed).
    b_task.abort();
    let _ = b_task.await;
    a_status.store(200, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body, _) = get(&client, &url).await;
        if code == 200 {
            assert_eq!(body, "ok from A\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A never served again: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..4 {
        let (code, body, _) = get(&client, &url).await;
        assert_eq!((code, body.as_str()), (200, "ok from A\n"));
    }

    // Nothing up at all: the maintenance page too.
    a_status.store(503, Ordering::SeqCst);
    let (code, body, _) = get(&client, &format!("http://127.0.0.1:{port}/some/app/route")).await;
    assert_eq!(code, 503);
    assert!(body.contains("Down for maintenance"));
}
