//! The node's HTTP surface that does not depend on the app: the health
//! check, the status report, Prometheus metrics, and the gate that turns app
//! routes into a 503 maintenance page unless the node is running (with the
//! runbook's bypass while in maintenance).

use super::metrics::inc;
use super::shared::NodeShared;
use super::state::NodeState;
use crate::config::Config;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use subtle::ConstantTimeEq;

/// Header that lets a request through the gate of a node in maintenance
/// when it carries [`runbook_bypass_token`].
pub const RUNBOOK_BYPASS_HEADER: &str = "x-clusterops-runbook";

/// The value of [`RUNBOOK_BYPASS_HEADER`] this cluster accepts: the first 32
/// hex digits of `sha256("clusterops-runbook:" + APP_KEY)`. Anyone holding
/// the cluster's env file can compute it; the status report's APP_KEY
/// fingerprint does not reveal it. `None` (no bypass) without an APP_KEY.
pub fn runbook_bypass_token(config: &Config) -> Option<String> {
    use sha2::{Digest, Sha256};
    let key = config.app_key.as_ref()?.expose();
    if key.is_empty() {
        return None;
    }
    let digest = Sha256::digest(format!("clusterops-runbook:{key}").as_bytes());
    let mut token = hex::encode(digest);
    token.truncate(32);
    Some(token)
}

/// Whether the request carries this cluster's runbook bypass token
/// (compared in constant time).
fn carries_bypass_token(config: &Config, headers: &HeaderMap) -> bool {
    let Some(expected) = runbook_bypass_token(config) else {
        return false;
    };
    let mut given = headers.get_all(RUNBOOK_BYPASS_HEADER).iter();
    let (Some(value), None) = (given.next(), given.next()) else {
        return false;
    };
    // subtle compares slices of different lengths as unequal at once; the
    // length is public (32 hex digits), only the digits are secret.
    bool::from(value.as_bytes().ct_eq(expected.as_bytes()))
}

/// What a running node with `WORKER_MODE=-` answers on its health check
/// and app routes (503): it serves no app requests, so the load balancer
/// leaves it out.
pub const IDLE_LINE: &str =
    "idle: WORKER_MODE=- (this node serves no app requests and handles no queue jobs)\n";

/// `GET /api/__health_check`: 200 `ok` when running (200 `degraded: …`
/// when running without its Redis or worker ID: the node still serves what
/// it can, and taking every node out at once would turn a Redis outage into
/// a full one); 503 and a one-line reason otherwise, also when running with
/// `WORKER_MODE=-` ([`IDLE_LINE`]).
pub async fn health(State(node): State<Arc<NodeShared>>) -> Response {
    let (state, reason) = node.state.get();
    if state == NodeState::Running && !node.config.worker_mode.serves_http() {
        inc(&node.metrics.http_unavailable);
        return unavailable(IDLE_LINE.to_string(), "text/plain; charset=utf-8");
    }
    if state == NodeState::Running {
        let degraded = node.degraded();
        if degraded.is_empty() {
            (StatusCode::OK, "ok\n").into_response()
        } else {
            (
                StatusCode::OK,
                format!("degraded: {}\n", degraded.join("; ")),
            )
                .into_response()
        }
    } else {
        inc(&node.metrics.http_unavailable);
        unavailable(
            format!("{state}: {}\n", one_line(&reason)),
            "text/plain; charset=utf-8",
        )
    }
}

/// `GET /api/status`: the status report as JSON (no secrets).
pub async fn status(State(node): State<Arc<NodeShared>>) -> Json<super::shared::StatusReport> {
    Json(node.status())
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(node): State<Arc<NodeShared>>) -> Response {
    let body = node
        .metrics
        .render(&node.node_id, node.worker_id_renewals());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Middleware counting every request and the ones in flight.
pub async fn count_requests(
    State(node): State<Arc<NodeShared>>,
    req: Request,
    next: Next,
) -> Response {
    inc(&node.metrics.http_requests);
    node.in_flight.fetch_add(1, Ordering::Relaxed);
    let resp = next.run(req).await;
    node.in_flight.fetch_sub(1, Ordering::Relaxed);
    resp
}

/// Middleware in front of app routes: unless the node is running (and its
/// `WORKER_MODE` serves requests), answer
/// 503 with the maintenance page (maintenance) or a one-line reason. In
/// maintenance only, a request with the runbook bypass token passes.
pub async fn gate_app_routes(
    State(node): State<Arc<NodeShared>>,
    req: Request,
    next: Next,
) -> Response {
    let (state, reason) = node.state.get();
    if state == NodeState::Running && !node.config.worker_mode.serves_http() {
        inc(&node.metrics.http_unavailable);
        return unavailable(IDLE_LINE.to_string(), "text/plain; charset=utf-8");
    }
    if state == NodeState::Running {
        return next.run(req).await;
    }
    if state == NodeState::Maintenance && carries_bypass_token(&node.config, req.headers()) {
        inc(&node.metrics.runbook_bypasses);
        return next.run(req).await;
    }
    inc(&node.metrics.http_unavailable);
    if state == NodeState::Maintenance {
        let flag = node.maintenance.read().clone();
        let (why, since) = match flag {
            Some(f) => (f.reason, f.since_ms),
            None => (reason, 0),
        };
        return unavailable(maintenance_page(&why, since), "text/html; charset=utf-8");
    }
    unavailable(
        format!("{state}: {}\n", one_line(&reason)),
        "text/plain; charset=utf-8",
    )
}

fn unavailable(body: String, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// A short HTML page for users while the cluster is in maintenance.
pub fn maintenance_page(reason: &str, since_ms: u64) -> String {
    let reason = html_escape(&one_line(reason));
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Maintenance</title></head>\n\
         <body><h1>Down for maintenance</h1><p>{reason}</p><p>We will be back shortly.</p>\n\
         <!-- maintenance since {since_ms} --></body></html>\n"
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bypass_token_comes_from_the_app_key_and_needs_one() {
        let mut config = Config::default();
        assert_eq!(runbook_bypass_token(&config), None);
        config.app_key = Some(crate::config::AppKey::new(""));
        assert_eq!(runbook_bypass_token(&config), None);
        config.app_key = Some(crate::config::AppKey::new("k1"));
        let t1 = runbook_bypass_token(&config).unwrap();
        assert_eq!(t1.len(), 32);
        assert!(t1.bytes().all(|b| b.is_ascii_hexdigit()));
        let fingerprint = config.app_key.as_ref().unwrap().fingerprint();
        assert!(
            !fingerprint.contains(&t1[..12]),
            "not the public fingerprint"
        );
        config.app_key = Some(crate::config::AppKey::new("k2"));
        assert_ne!(runbook_bypass_token(&config).unwrap(), t1);

        let mut headers = HeaderMap::new();
        assert!(!carries_bypass_token(&config, &headers));
        headers.insert(RUNBOOK_BYPASS_HEADER, HeaderValue::from_str(&t1).unwrap());
        assert!(!carries_bypass_token(&config, &headers), "k1's token");
        let t2 = runbook_bypass_token(&config).unwrap();
        headers.insert(RUNBOOK_BYPASS_HEADER, HeaderValue::from_str(&t2).unwrap());
        assert!(carries_bypass_token(&config, &headers));
        headers.append(RUNBOOK_BYPASS_HEADER, HeaderValue::from_static("x"));
        assert!(!carries_bypass_token(&config, &headers), "ambiguous");
    }

    #[test]
    fn maintenance_page_escapes_the_reason() {
        let page = maintenance_page("<script>x</script> upgrade\nsecond line", 5);
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("second line"));
    }
}
