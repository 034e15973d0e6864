//! Following a Sentinel-managed master across failovers.
//!
//! redis-rs' [`ConnectionManager`] reconnects to the address it was given;
//! after a failover that address is a replica (`READONLY`) or gone. So the
//! shared connection keeps the manager of the current master with a
//! generation number, and a command that fails the way a failover makes
//! commands fail asks the sentinels again ([`Failover::retry_on`]):
//! - they name another master: a manager is opened there (checked with
//!   `ROLE`), swapped in, and the command is sent there once;
//! - they name the same one: a dropped connection is retried once on it
//!   (as for one server, see `SharedConn`); any other error is returned.
//!
//! One refresh runs at a time; commands that failed on an older
//! generation use the manager a concurrent refresh installed. While the
//! master is down and the sentinels have not yet agreed on a new one,
//! the sentinels are asked at most every [`MIN_ASK_INTERVAL`].
//!
//! A command sent once to the old master and once to the new one may run
//! twice; that is the same "at most one repeat" the one-server connection
//! already has, and every command clusterops sends tolerates it.

use super::endpoint::Endpoint;
use super::{manager, open_master};
use parking_lot::Mutex;
use redis::RedisError;
use redis::aio::ConnectionManager;
use std::time::{Duration, Instant};

/// Least time between two questions to the sentinels after failures.
pub const MIN_ASK_INTERVAL: Duration = Duration::from_millis(250);

struct Current {
    generation: u64,
    conn: ConnectionManager,
    address: String,
}

/// The current master's connection, and how to find the next one.
pub(super) struct Failover {
    endpoint: Endpoint,
    current: Mutex<Current>,
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl Failover {
    pub(super) fn new(endpoint: Endpoint, conn: ConnectionManager, address: String) -> Self {
        Self {
            endpoint,
            current: Mutex::new(Current {
                generation: 0,
                conn,
                address,
            }),
            refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// The current generation and its manager.
    pub(super) fn current(&self) -> (u64, ConnectionManager) {
        let c = self.current.lock();
        (c.generation, c.conn.clone())
    }

    /// The current master's address.
    pub(super) fn address(&self) -> String {
        self.current.lock().address.clone()
    }

    pub(super) fn db(&self) -> i64 {
        self.endpoint.target().db
    }

    /// After `error` on generation `seen`: the connection to send the
    /// command again on, or `None` to return the error.
    pub(super) async fn retry_on(
        &self,
        seen: u64,
        error: &RedisError,
    ) -> Option<ConnectionManager> {
        let mut last_ask = self.refresh.lock().await;
        {
            let c = self.current.lock();
            if c.generation != seen {
                // Another command moved to a new master meanwhile.
                return Some(c.conn.clone());
            }
        }
        let same_master_retry = || {
            (error.is_connection_dropped() && !error.is_connection_refusal())
                .then(|| self.current.lock().conn.clone())
        };
        if last_ask.is_some_and(|t| t.elapsed() < MIN_ASK_INTERVAL) {
            return same_master_retry();
        }
        *last_ask = Some(Instant::now());
        let (_, named) = match self.endpoint.master().await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(url = %self.endpoint.masked(), error = %e.reason, "cannot ask the sentinels for the master");
                return same_master_retry();
            }
        };
        if named == self.address() {
            return same_master_retry();
        }
        match open_master(&self.endpoint, manager).await {
            Ok((conn, address)) => {
                let mut c = self.current.lock();
                tracing::warn!(
                    url = %self.endpoint.masked(),
                    from = %c.address,
                    to = %address,
                    "Redis master changed (Sentinel failover); following it"
                );
                c.generation += 1;
                c.conn = conn.clone();
                c.address = address;
                Some(conn)
            }
            Err(e) => {
                tracing::warn!(url = %self.endpoint.masked(), error = %e.reason, "the new master is not reachable yet");
                None
            }
        }
    }
}
