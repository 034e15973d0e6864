//! HTTP checks of the nodes the runbook starts: `/api/status` (state,
//! versions, worker ID), the health check, the configured smoke checks, and
//! the health check through the load balancer.

use super::config::SmokeCheck;
use crate::node::identity::NodeIdentity;
use std::time::Duration;

/// Timeout of one request.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// An HTTP client for the checks (no proxy, short timeouts).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Whether two versions are the same: `v2`, `2` and `2.0.0` are.
pub fn same_version(a: &str, b: &str) -> bool {
    fn norm(v: &str) -> String {
        let v = v.trim();
        let v = v.strip_prefix('v').unwrap_or(v);
        let mut parts: Vec<&str> = v.split('.').collect();
        while parts.len() > 1 && parts.last() == Some(&"0") {
            parts.pop();
        }
        parts.join(".")
    }
    norm(a) == norm(b)
}

/// `GET http://{addr}/api/status`: the node's identity and state (the
/// report's other fields are not read).
pub async fn status(client: &reqwest::Client, addr: &str) -> Result<NodeIdentity, String> {
    let url = format!("http://{addr}/api/status");
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let code = resp.status();
    let body = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !code.is_success() {
        return Err(format!("GET {url}: {code}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("GET {url}: not a node status ({e})"))
}

/// One smoke check against `addr`, with `header: value` (the maintenance
/// bypass). Returns a one-line result, or why it failed.
pub async fn smoke(
    client: &reqwest::Client,
    addr: &str,
    check: &SmokeCheck,
    header: &str,
    value: &str,
) -> Result<String, String> {
    let method = reqwest::Method::from_bytes(check.method.as_bytes()).map_err(|e| e.to_string())?;
    let url = format!("http://{addr}{}", check.path);
    let what = format!("{} {}", check.method, check.path);
    let resp = client
        .request(method, &url)
        .header(header, value)
        .send()
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let code = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if code != check.expect_status {
        let first = body
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(120)
            .collect::<String>();
        return Err(format!(
            "{what}: {code}, expected {} ({first})",
            check.expect_status
        ));
    }
    if let Some(needle) = &check.body_contains
        && !body.contains(needle.as_str())
    {
        return Err(format!(
            "{what}: {code}, but the body does not contain {needle:?}"
        ));
    }
    Ok(format!("{what}: {code} as expected"))
}

/// `GET http://{addr}{path}`: the status code, or why there is none.
pub async fn get_status(client: &reqwest::Client, addr: &str, path: &str) -> Result<u16, String> {
    let url = format!("http://{addr}{path}");
    client
        .get(&url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("GET {url}: {e}"))
}
