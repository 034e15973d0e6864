//! HTTP checks of the nodes the runbook starts: `/api/status` (state,
//! versions, worker ID), the health check, the configured smoke checks, and
//! the health check through the load balancer.

use super::config::SmokeCheck;
use serde::Deserialize;
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

/// The fields of a node's `/api/status` the runbook reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeStatus {
    /// Node id.
    pub node_id: String,
    /// App version.
    pub app_version: String,
    /// Schema version in the database.
    #[serde(default)]
    pub schema_version: Option<String>,
    /// Worker ID held.
    #[serde(default)]
    pub worker_id: Option<u16>,
    /// `starting`, `running`, `maintenance`, `draining` or `error`.
    pub state: String,
    /// Why.
    #[serde(default)]
    pub state_reason: String,
}

impl NodeStatus {
    /// Serving, or ready to serve once maintenance is cleared.
    pub fn is_up(&self) -> bool {
        matches!(self.state.as_str(), "running" | "maintenance")
    }

    /// One line.
    pub fn summary(&self) -> String {
        format!(
            "{}: state {}, app {}, schema {}, worker ID {}",
            self.node_id,
            self.state,
            self.app_version,
            self.schema_version.as_deref().unwrap_or("none"),
            self.worker_id
                .map(|w| w.to_string())
                .unwrap_or_else(|| "none".to_string())
        )
    }
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

/// `GET http://{addr}/api/status`.
pub async fn status(client: &reqwest::Client, addr: &str) -> Result<NodeStatus, String> {
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
