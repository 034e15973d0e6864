//! The cluster-wide maintenance flag: who set it, why, since when. While it
//! is set every node answers 503 on app routes and on its health check, so
//! the load balancer takes them out and serves its maintenance page.
//!
//! Key: `<ns>:maintenance` (string, JSON [`MaintenanceFlag`], no TTL).

use crate::config::Namespace;
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};

/// The flag's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceFlag {
    /// Who set it (`user@host`, or a runbook id).
    pub by: String,
    /// Why, in one line; shown on the 503 page.
    pub reason: String,
    /// Unix ms when it was set.
    pub since_ms: u64,
}

/// What reading the flag found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MaintenanceRead {
    /// Not set: serve.
    Clear,
    /// Set.
    Set(MaintenanceFlag),
    /// The key holds something else. Nodes treat this as set (fail safe:
    /// someone wrote the key on purpose) and say so in the reason.
    Unreadable {
        /// The key.
        key: String,
        /// Why it could not be read.
        reason: String,
    },
}

/// `<ns>:maintenance`.
pub fn key(ns: &Namespace) -> String {
    ns.key("maintenance")
}

/// Read the flag (one GET).
pub async fn read<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
) -> redis::RedisResult<MaintenanceRead> {
    // A pipeline that keeps server errors as values, so a key of the wrong
    // type reads as unreadable instead of failing the call.
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    add_read(&mut pipe, ns);
    let mut replies: Vec<redis::Value> = pipe.query_async(conn).await?;
    let value = replies.pop().unwrap_or(redis::Value::Nil);
    Ok(parse(&key(ns), &value))
}

/// Append the flag's read (`GET <ns>:maintenance`, one command) to a
/// pipeline; [`parse`] reads its reply.
pub fn add_read(pipe: &mut redis::Pipeline, ns: &Namespace) {
    pipe.cmd("GET").arg(key(ns));
}

/// Decode a GET reply of the flag key.
pub fn parse(key: &str, value: &redis::Value) -> MaintenanceRead {
    match value {
        redis::Value::Nil => MaintenanceRead::Clear,
        redis::Value::BulkString(bytes) => match serde_json::from_slice(bytes) {
            Ok(flag) => MaintenanceRead::Set(flag),
            Err(e) => MaintenanceRead::Unreadable {
                key: key.to_string(),
                reason: format!("not a maintenance flag: {e}"),
            },
        },
        other => MaintenanceRead::Unreadable {
            key: key.to_string(),
            reason: format!("unexpected reply {other:?}"),
        },
    }
}

/// Set the flag (overwrites an existing one).
pub async fn set<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    flag: &MaintenanceFlag,
) -> redis::RedisResult<()> {
    let json = serde_json::to_string(flag).map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::Client,
            "cannot encode the flag",
            e.to_string(),
        ))
    })?;
    redis::cmd("SET")
        .arg(key(ns))
        .arg(json)
        .query_async(conn)
        .await
}

/// Clear the flag. Returns whether it was set.
pub async fn clear<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
) -> redis::RedisResult<bool> {
    let removed: i64 = redis::cmd("DEL").arg(key(ns)).query_async(conn).await?;
    Ok(removed > 0)
}
