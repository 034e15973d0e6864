//! The node's HTTP routes: health, status and metrics always answer; app
//! routes sit behind the maintenance gate.

use super::app::{self, App};
use super::http;
use super::shared::NodeShared;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

/// The node's routes: health, status and metrics always answer; app routes
/// sit behind the maintenance gate.
pub fn router(node: Arc<NodeShared>, app: Arc<App>) -> Router {
    let app_routes = Router::new()
        .route("/api/records", post(app::create_record))
        .route(
            "/api/records/{id}",
            get(app::get_record).put(app::update_record),
        )
        .route("/api/counters/{name}", get(app::read_counter))
        .route(
            "/api/counters/{name}/increment",
            post(app::increment_counter),
        )
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            http::gate_app_routes,
        ));
    Router::new()
        .route("/api/__health_check", get(http::health))
        .route("/api/status", get(http::status))
        .route("/metrics", get(http::metrics))
        .with_state(node.clone())
        .merge(app_routes)
        .layer(axum::middleware::from_fn_with_state(
            node,
            http::count_requests,
        ))
}
