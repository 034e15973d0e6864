//! Pausing a queue's consumers: the flag `<ns>:queue:{<queue>}:paused` (a
//! JSON [`PauseFlag`], in the queue's hash-tag family, no TTL) that every
//! node's Redis consumers read with their read loop, at most once per poll
//! interval ([`PauseWatch`]). While it is set no consumer takes a new
//! message (handlers already running finish and are acknowledged); once it
//! is deleted they resume. The memory backend keeps the flag in-process.

use super::keys::stream_key;
use crate::config::Namespace;
use redis::Value;
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Who paused a queue, why and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseFlag {
    /// `user@host` of the operator.
    pub by: String,
    /// One line.
    pub reason: String,
    /// Unix ms when set.
    pub since_ms: u64,
}

/// `<ns>:queue:{<queue>}:paused`.
pub fn pause_key(ns: &Namespace, queue: &str) -> String {
    format!("{}:paused", stream_key(ns, queue))
}

/// The flag of a `GET` reply: `Ok(None)` when absent; `Err` names what is
/// wrong (the consumers then treat the queue as paused: an operator's
/// intent they cannot read is not ignored).
pub fn parse(reply: &Value) -> Result<Option<PauseFlag>, String> {
    let bytes = match reply {
        Value::Nil => return Ok(None),
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.as_bytes(),
        Value::ServerError(e) => {
            return Err(format!("{} {}", e.code(), e.details().unwrap_or("")));
        }
        other => return Err(format!("unexpected reply {other:?}")),
    };
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| format!("not a pause flag: {e}"))
}

/// Read the flag of `queue`.
pub async fn read<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    queue: &str,
) -> Result<Option<PauseFlag>, String> {
    let reply: Value = redis::cmd("GET")
        .arg(pause_key(ns, queue))
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    parse(&reply)
}

/// Set the flag of `queue` (replacing one that is set).
pub async fn set<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    queue: &str,
    flag: &PauseFlag,
) -> Result<(), String> {
    let json = serde_json::to_string(flag).map_err(|e| e.to_string())?;
    redis::cmd("SET")
        .arg(pause_key(ns, queue))
        .arg(json)
        .query_async::<()>(conn)
        .await
        .map_err(|e| e.to_string())
}

/// Delete the flag of `queue`; false when it was not set.
pub async fn clear<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    queue: &str,
) -> Result<bool, String> {
    let n: i64 = redis::cmd("DEL")
        .arg(pause_key(ns, queue))
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(n > 0)
}

/// Whether a subscription's consumers are paused now, as they last saw
/// the flag ([`super::Subscription::pause_state`]): what a node reports
/// in its status.
#[derive(Debug, Clone, Default)]
pub struct PauseState(Arc<AtomicBool>);

impl PauseState {
    /// Whether the consumers hold off now.
    pub fn is_paused(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, paused: bool) {
        self.0.store(paused, Ordering::Relaxed);
    }
}

/// One consumer's view of its queue's flag: read again when older than
/// `every` (the consumer's poll interval), so a pause costs one `GET` per
/// consumer per poll interval, and takes effect within one.
#[derive(Debug)]
pub(crate) struct PauseWatch {
    every: Duration,
    checked: Option<Instant>,
    paused: bool,
}

impl PauseWatch {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every: every.max(Duration::from_millis(50)),
            checked: None,
            paused: false,
        }
    }

    /// Whether the flag is due to be read again.
    pub(crate) fn due(&self) -> bool {
        self.checked.is_none_or(|at| at.elapsed() >= self.every)
    }

    /// Record what was read (`Err`: unreadable, counts as paused; a read
    /// that failed on the connection keeps the last answer).
    pub(crate) fn record(&mut self, read: Result<bool, ()>) {
        self.checked = Some(Instant::now());
        if let Ok(p) = read {
            self.paused = p;
        }
    }

    /// Read the flag at `key` and record it; returns whether paused now
    /// (a change is logged).
    pub(crate) async fn read<C: ConnectionLike + Send>(&mut self, conn: &mut C, key: &str) -> bool {
        let read: Result<Value, redis::RedisError> =
            redis::cmd("GET").arg(key).query_async(conn).await;
        let was = self.paused;
        self.record(match read {
            Ok(reply) => Ok(parse(&reply).map_or(true, |f| f.is_some())),
            Err(_) => Err(()),
        });
        if self.paused != was {
            tracing::info!(
                key,
                paused = self.paused,
                "queue consumer paused state changed"
            );
        }
        self.paused
    }

    /// The last answer.
    pub(crate) fn paused(&self) -> bool {
        self.paused
    }

    /// How long to wait before looking again while paused.
    pub(crate) fn every(&self) -> Duration {
        self.every
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_lives_in_the_queues_hash_tag_family() {
        let ns = Namespace::new("c").unwrap();
        assert_eq!(pause_key(&ns, "mail"), "c:queue:{mail}:paused");
        let flag = PauseFlag {
            by: "ann@h".into(),
            reason: "SMTP down".into(),
            since_ms: 7,
        };
        let json = serde_json::to_vec(&flag).unwrap();
        assert_eq!(parse(&Value::BulkString(json)), Ok(Some(flag)));
        assert_eq!(parse(&Value::Nil), Ok(None));
        assert!(parse(&Value::BulkString(b"yes".to_vec())).is_err());
    }
}
