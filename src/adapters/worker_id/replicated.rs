//! Lease writes that count only once a replica has them (Sentinel mode).
//!
//! Redis replicates asynchronously: a write the master acknowledged can be
//! lost when a replica is promoted. So with a Sentinel URL every acquire and
//! renew script is sent in one pipeline with `WAIT 1 <timeout>` after it, on
//! one connection: the WAIT then counts the replicas that have this very
//! write (a WAIT sent separately could land on a reconnected connection,
//! whose write offset is 0, and count replicas that have nothing of ours).
//! The caller uses the result only when at least one replica confirmed it.
//! An acquisition also reads the master's replication ID first and checks
//! it again in the same pipeline, for the quarantine in the acquire script.
//! The argument is in `docs/snowflake.md`.

use crate::adapters::redis_conn::SharedConn;
use redis::{RedisError, Script, ScriptInvocation, Value};
use std::time::Duration;

/// The longest a lease write waits for a replica's acknowledgement.
pub const MAX_REPLICA_WAIT: Duration = Duration::from_millis(500);
/// The shortest wait (very short TTLs).
const MIN_REPLICA_WAIT: Duration = Duration::from_millis(20);
/// Seconds added to the quarantine for clock differences between the nodes
/// and the Redis servers (the same allowance as elsewhere: clocks within 1 s).
pub const QUARANTINE_SKEW_SECS: u64 = 1;

/// How long a lease write waits for a replica: ttl/6, within 20..=500 ms,
/// well under the renewal interval (ttl/3).
pub fn replica_wait(ttl: Duration) -> Duration {
    (ttl / 6).clamp(MIN_REPLICA_WAIT, MAX_REPLICA_WAIT)
}

/// A script's reply and what the pipeline around it said.
#[derive(Debug)]
pub struct Confirmed {
    /// The script's reply.
    pub reply: Value,
    /// Replicas that acknowledged the write (`WAIT`'s reply).
    pub replicas: i64,
    /// The master's replication ID read in the same pipeline, just before
    /// the script (when asked for).
    pub replid: Option<String>,
}

/// `master_replid` of an `INFO replication` reply, when the server says it
/// is a master.
pub fn parse_master_replid(info: &str) -> Option<String> {
    let mut master = false;
    let mut replid = None;
    for line in info.lines() {
        let line = line.trim();
        if line == "role:master" {
            master = true;
        } else if let Some(id) = line.strip_prefix("master_replid:") {
            replid = Some(id.to_string());
        }
    }
    replid.filter(|id| master && !id.is_empty())
}

fn info_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The replication ID of the master that holds `key` now (`None` when the
/// server does not say it is a master). On a Redis Cluster, the master of
/// `key`'s slot (every worker-ID key shares one).
pub async fn master_replid(conn: &mut SharedConn, key: &str) -> Result<Option<String>, RedisError> {
    let mut info = redis::cmd("INFO");
    info.arg("replication");
    let info = conn.query_at_key(&info, key).await?;
    let replid = info_text(&info).and_then(|t| parse_master_replid(&t));
    if replid.is_none() {
        conn.follow_master().await;
        // On a Redis Cluster, INFO goes where the client's slot map says,
        // and a node that is no longer the slot's master (the old master,
        // back as a replica after a failover) answers it without a
        // redirection, so nothing would correct a stale map on this path. A
        // keyed read gets MOVED from such a node, which makes the client
        // read the map anew before the next acquisition asks again.
        let _: Result<Value, RedisError> = redis::cmd("EXISTS").arg(key).query_async(conn).await;
    }
    Ok(replid)
}

/// Run `invocation` of `script` followed by `WAIT 1 wait` in one pipeline
/// (preceded by `INFO replication` when `with_replid`); loads the script
/// and sends the pipeline once more if the server did not know it (a
/// promoted replica has an empty script cache).
pub async fn run_confirmed(
    conn: &mut SharedConn,
    script: &Script,
    invocation: &ScriptInvocation<'_>,
    wait: Duration,
    with_replid: bool,
) -> Result<Confirmed, RedisError> {
    let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    if with_replid {
        pipe.cmd("INFO").arg("replication");
    }
    pipe.invoke_script(invocation);
    pipe.cmd("WAIT").arg(1).arg(wait_ms);
    let first = usize::from(with_replid);
    for attempt in 0..2 {
        let mut replies: Vec<Value> = pipe.query_async(conn).await?;
        if replies.len() != first + 2 {
            return Err(RedisError::from((
                redis::ErrorKind::Client,
                "lease pipeline",
                format!("expected {} replies, got {}", first + 2, replies.len()),
            )));
        }
        let replicas = replies.pop().unwrap_or(Value::Nil);
        let reply = replies.pop().unwrap_or(Value::Nil);
        if let Value::ServerError(e) = &reply {
            if e.code() == "NOSCRIPT" && attempt == 0 {
                script.load_async(conn).await?;
                continue;
            }
            if matches!(e.code(), "READONLY" | "MASTERDOWN") {
                // A demoted master that kept the connection: find the new one
                // for the next attempt.
                conn.follow_master().await;
            }
            return Err(RedisError::from(e.clone()));
        }
        let replicas = match replicas {
            Value::Int(n) => n,
            // WAIT refused (an ACL without it, or a replica): no confirmation.
            _ => 0,
        };
        let replid = replies
            .first()
            .and_then(info_text)
            .and_then(|t| parse_master_replid(&t));
        return Ok(Confirmed {
            reply,
            replicas,
            replid,
        });
    }
    Err(RedisError::from((
        redis::ErrorKind::Client,
        "lease pipeline",
        "the server kept answering NOSCRIPT".to_string(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replid_is_read_only_from_a_master() {
        let master = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nmaster_replid:abc123\r\nmaster_replid2:000\r\n";
        assert_eq!(parse_master_replid(master).as_deref(), Some("abc123"));
        let replica = "# Replication\r\nrole:slave\r\nmaster_replid:abc123\r\n";
        assert_eq!(parse_master_replid(replica), None);
        assert_eq!(parse_master_replid("role:master\r\n"), None);
    }

    #[test]
    fn the_wait_is_a_sixth_of_the_ttl_within_bounds() {
        assert_eq!(
            replica_wait(Duration::from_millis(1500)),
            Duration::from_millis(250)
        );
        assert_eq!(replica_wait(Duration::from_secs(15)), MAX_REPLICA_WAIT);
        assert_eq!(replica_wait(Duration::from_millis(60)), MIN_REPLICA_WAIT);
    }
}
