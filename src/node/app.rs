//! The reference app's API, which exercises every adapter the way a
//! production app would: records in the database with snowflake keys, read
//! through a node-local cache in front of the shared cache, invalidated on
//! every node by a sync signal when a record changes; follow-up work handed
//! to the queue; one critical section serialised by the distributed lock.

use super::metrics::inc;
use super::shared::NodeShared;
use super::store::{Record, Store};
use crate::adapters::cache::{Cache, compute};
use crate::adapters::lock::LockBackend;
use crate::adapters::pubsub::{Payload, SyncSignals};
use crate::adapters::queue::MessageQueue;
use crate::adapters::snowflake::Snowflake;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Sync-signal channel announcing changed records.
pub const RECORDS_CHANNEL: &str = "records";
/// Queue of follow-up work after a record changes.
pub const RECORD_EVENTS_QUEUE: &str = "record-events";
/// How long a record stays in the caches.
pub const RECORD_TTL: Duration = Duration::from_secs(300);

/// Everything the app's handlers use.
pub struct App {
    /// Identity, state, counters.
    pub node: Arc<NodeShared>,
    /// Node-local cache in front of `cache` (invalidated by sync signals).
    pub local: Arc<dyn Cache>,
    /// The configured cache (memory or Redis).
    pub cache: Arc<dyn Cache>,
    /// Sync signals.
    pub signals: Arc<dyn SyncSignals>,
    /// Message queue.
    pub queue: Arc<dyn MessageQueue>,
    /// Distributed lock.
    pub locks: Arc<dyn LockBackend>,
    /// Snowflake ids.
    pub ids: Arc<Snowflake>,
    /// Database.
    pub store: Arc<Store>,
}

/// An API error: status and one line.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// `POST /api/records` body.
#[derive(Debug, Deserialize)]
pub struct NewRecord {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `PUT /api/records/{id}` body.
#[derive(Debug, Deserialize)]
pub struct UpdateRecord {
    /// New value.
    pub value: String,
}

/// What the queue carries about a changed record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordEvent {
    /// Unique per event (a snowflake id), to count redeliveries.
    pub event_id: String,
    /// The record.
    pub record_id: i64,
    /// Its revision after the change.
    pub revision: i32,
}

fn cache_key(id: i64) -> String {
    format!("record:{id}")
}

/// `POST /api/records`: create a record with a snowflake id.
pub async fn create_record(
    State(app): State<Arc<App>>,
    Json(body): Json<NewRecord>,
) -> Result<Response, ApiError> {
    let id = app.ids.next_id().await.map_err(internal)?;
    let id = i64::try_from(id).map_err(internal)?;
    let record = Record {
        id,
        name: body.name,
        value: body.value,
        revision: 1,
        created_by: app.node.node_id.clone(),
    };
    app.store.insert(&record).await.map_err(internal)?;
    app.announce(&record).await;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// `GET /api/records/{id}`: read through the local cache, then the shared
/// cache, then the database.
pub async fn get_record(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let key = cache_key(id);
    if let Ok(Some(bytes)) = app.local.get(&key).await {
        inc(&app.node.metrics.cache_hits);
        return Ok(json_bytes(bytes));
    }
    let store = app.store.clone();
    let missed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let missed_in = missed.clone();

    let bytes = app
        .cache
        .get_or_compute(
            &key,
            Some(RECORD_TTL),
            compute(move || async move {
                missed_in.store(true, Ordering::Relaxed);
                match store.get(id).await {
                    Ok(Some(r)) => serde_json::to_vec(&r).map_err(|e| e.to_string()),
                    Ok(None) => Err(format!("record {id} not found")),
                    Err(e) => Err(e.to_string()),
                }
            }),
        )
        .await;
    let bytes = match bytes {
        Ok(b) => b,
        // A failed compute may have been another caller's (single flight):
        // ask the store directly whether the record exists.
        Err(e) => {
            return match app.store.get(id).await {
                Ok(None) => Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("record {id} not found"),
                )),
                _ => Err(internal(e)),
            };
        }
    };
    if missed.load(Ordering::Relaxed) {
        inc(&app.node.metrics.cache_misses);
    } else {
        inc(&app.node.metrics.cache_hits);
    }
    let _ = app.local.set(&key, &bytes, Some(RECORD_TTL)).await;
    Ok(json_bytes(bytes))
}

fn json_bytes(bytes: Vec<u8>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}

/// `PUT /api/records/{id}`: update, invalidate every node's cache, enqueue
/// the follow-up work.
pub async fn update_record(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
    Json(body): Json<UpdateRecord>,
) -> Result<Response, ApiError> {
    let Some(revision) = app.store.update(id, &body.value).await.map_err(internal)? else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("record {id} not found"),
        ));
    };
    let key = cache_key(id);
    let _ = app.local.delete(&key).await;
    if let Err(e) = app.cache.delete(&key).await {
        tracing::warn!(record = id, "cache invalidation failed: {e}");
    }
    let record = app
        .store
        .get(id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("record {id} not found")))?;
    debug_assert_eq!(record.revision, revision);
    app.announce(&record).await;
    Ok(Json(record).into_response())
}

impl App {
    /// Tell the other nodes (sync signal) and the workers (queue).
    async fn announce(&self, record: &Record) {
        let signal = serde_json::json!({ "record_id": record.id, "revision": record.revision });
        if let Err(e) = self
            .signals
            .publish(RECORDS_CHANNEL, Payload::Json(signal))
            .await
        {
            tracing::warn!(record = record.id, "sync signal not sent: {e}");
        }
        let event_id = self
            .ids
            .next_id()
            .await
            .map(|i| i.to_string())
            .unwrap_or_else(|_| format!("{}-{}", record.id, record.revision));
        let event = RecordEvent {
            event_id,
            record_id: record.id,
            revision: record.revision,
        };
        match serde_json::to_vec(&event) {
            Ok(bytes) => {
                if let Err(e) = self.queue.publish(RECORD_EVENTS_QUEUE, &bytes).await {
                    tracing::warn!(record = record.id, "follow-up work not queued: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot encode a record event: {e}"),
        }
    }

    /// Handle a sync signal from another node: drop the record from the
    /// node-local cache.
    pub async fn on_record_signal(&self, payload: &Payload) {
        inc(&self.node.metrics.signals_received);
        if let Payload::Json(v) = payload
            && let Some(id) = v.get("record_id").and_then(serde_json::Value::as_i64)
        {
            let _ = self.local.delete(&cache_key(id)).await;
        }
    }

    /// Handle a queued record event: record it (idempotently) in the database.
    pub async fn on_record_event(&self, message_id: &str, bytes: &[u8]) -> Result<(), String> {
        let event: RecordEvent =
            serde_json::from_slice(bytes).map_err(|e| format!("not a record event: {e}"))?;
        let key = if event.event_id.is_empty() {
            message_id.to_string()
        } else {
            event.event_id.clone()
        };
        let deliveries = self
            .store
            .record_event(&key, event.record_id, event.revision, &self.node.node_id)
            .await
            .map_err(|e| e.to_string())?;
        if deliveries > 1 {
            tracing::info!(event = %key, deliveries, "record event redelivered");
        }
        Ok(())
    }
}

/// `POST /api/counters/{name}/increment`: read-modify-write under the
/// distributed lock; the write carries the lock's fencing token.
pub async fn increment_counter(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "counter names are 1 to 64 of A-Z a-z 0-9 - _".into(),
        ));
    }
    let started = Instant::now();
    let guard = app
        .locks
        .acquire(
            &format!("counter.{name}"),
            Duration::from_secs(10),
            Duration::from_secs(10),
        )
        .await
        .map_err(internal)?;
    app.node
        .metrics
        .lock_wait_us
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    inc(&app.node.metrics.lock_acquisitions);
    let result = async {
        let value = app.store.read_counter(&name).await.map_err(internal)? + 1;
        guard.check().map_err(internal)?;
        let token = i64::try_from(guard.fencing_token()).map_err(internal)?;
        app.store
            .write_counter(&name, value, token)
            .await
            .map_err(internal)?;
        Ok::<_, ApiError>(value)
    }
    .await;
    if let Err(e) = guard.release().await {
        tracing::warn!(counter = %name, "lock release failed: {e}");
    }
    let value = result?;
    Ok(Json(serde_json::json!({ "name": name, "value": value })).into_response())
}

/// `GET /api/counters/{name}`.
pub async fn read_counter(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let value = app.store.read_counter(&name).await.map_err(internal)?;
    Ok(Json(serde_json::json!({ "name": name, "value": value })).into_response())
}
