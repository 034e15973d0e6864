//! Live health checks: `GET /api/__health_check` on every node at once,
//! with a short timeout, so one hung node cannot stall a snapshot.

use super::types::Health;
use std::time::{Duration, Instant};

/// Timeout of one health check.
pub const HEALTH_TIMEOUT: Duration = Duration::from_millis(1500);

/// An HTTP client for health checks (no proxy, short timeouts).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HEALTH_TIMEOUT)
        .connect_timeout(HEALTH_TIMEOUT)
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Check one node at `http_addr` (`host:port`).
pub async fn check(client: &reqwest::Client, http_addr: &str) -> Health {
    let started = Instant::now();
    let url = format!("http://{http_addr}/api/__health_check");
    let result = client.get(&url).send().await;
    let latency_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            let line: String = body
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            Health::read(Some(status), line, latency_ms)
        }
        Err(e) => Health::read(
            None,
            if e.is_timeout() {
                format!("no answer within {} ms", HEALTH_TIMEOUT.as_millis())
            } else if e.is_connect() {
                "connection refused or unreachable".to_string()
            } else {
                e.to_string()
            },
            latency_ms,
        ),
    }
}

/// Check every address concurrently, each check its own task (so they
/// spread over the runtime's threads while the caller does other work);
/// results in the same order.
pub async fn check_each(client: &reqwest::Client, addrs: &[String]) -> Vec<Health> {
    let tasks = addrs.iter().map(|addr| {
        let (client, addr) = (client.clone(), addr.clone());
        tokio::spawn(async move { check(&client, &addr).await })
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|done| {
            done.unwrap_or_else(|e| {
                Health::read(None, format!("health check did not finish: {e}"), 0)
            })
        })
        .collect()
}

/// Check every address concurrently with a new client; results in the
/// same order.
pub async fn check_all(addrs: &[String]) -> Vec<Health> {
    check_each(&client(), addrs).await
}
