//! Following a Sentinel-managed master across failovers.
//!
//! redis-rs' `MultiplexedConnection` reconnects by itself to the address it was
//! given; after a failover that address is a replica, and a replica answers
//! reads from its (possibly stale, or mid-resync empty) copy without any
//! error: a lock renewal there finds its key gone. So a Sentinel route
//! keeps a plain multiplexed connection that never reconnects by itself,
//! opened only to a server that reported `ROLE` master, with a generation
//! number. A command that fails the way a failover makes commands fail
//! (Sentinel also disconnects every client of a demoted master) opens a
//! new connection to the master the sentinels name now, again checked
//! with `ROLE` ([`Failover::retry_on`]), and is sent there once.
//!
//! One reconnection runs at a time; commands that failed on an older
//! generation use the connection a concurrent one installed. While the
//! master is down and the sentinels have not yet agreed on a new one,
//! they are asked at most every [`MIN_ASK_INTERVAL`]; a command that
//! failed before the last question waits for its turn and asks again, one
//! that failed after it fails at once (the master is still down).
//!
//! A command sent once to the old master and once to the new one may run
//! twice; that is the same "at most one repeat" the one-server connection
//! already has, and every command clusterops sends tolerates it.

use super::endpoint::Endpoint;
use super::open_master;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};
use std::time::{Duration, Instant};

/// Least time between two questions to the sentinels after failures.
pub const MIN_ASK_INTERVAL: Duration = Duration::from_millis(250);

struct Current {
    generation: u64,
    conn: MultiplexedConnection,
    address: String,
}

/// The current master's connection, and how to find the next one.
pub(super) struct Failover {
    endpoint: Endpoint,
    current: Mutex<Current>,
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl Failover {
    pub(super) fn new(endpoint: Endpoint, conn: MultiplexedConnection, address: String) -> Self {
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
    pub(super) fn current(&self) -> (u64, MultiplexedConnection) {
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

    pub(super) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// After `error` on generation `seen`: the connection to send the
    /// command again on, or `None` to return the error.
    pub(super) async fn retry_on(
        &self,
        seen: u64,
        error: &RedisError,
    ) -> Option<MultiplexedConnection> {
        let failed_at = Instant::now();
        let mut last_ask = self.refresh.lock().await;
        {
            let c = self.current.lock();
            if c.generation != seen {
                // Another command reconnected meanwhile.
                return Some(c.conn.clone());
            }
        }
        if let Some(t) = *last_ask {
            if t >= failed_at {
                // Someone asked after this command failed and found no
                // other master: it is still down; fail now.
                return None;
            }
            // Asked before this failure: ask again, once the interval is
            // over, rather than failing this command without a try.
            tokio::time::sleep(MIN_ASK_INTERVAL.saturating_sub(t.elapsed())).await;
        }
        *last_ask = Some(Instant::now());
        let done = self.reconnect(&error.to_string()).await;
        drop(last_ask);
        done
    }

    /// The sentinels announced a new master: move to it now.
    pub(super) async fn follow(&self, why: &str) {
        let mut last_ask = self.refresh.lock().await;
        *last_ask = Some(Instant::now());
        self.reconnect(why).await;
    }

    /// Ask a sentinel where the master is; move there if it moved.
    pub(super) async fn check_master(&self) {
        if let Ok((_, named)) = self.endpoint.master().await
            && named != self.address()
        {
            self.follow("the sentinels name another master").await;
        }
    }

    /// Open a connection to the master the sentinels name now (checked
    /// with `ROLE`) and install it as a new generation.
    async fn reconnect(&self, why: &str) -> Option<MultiplexedConnection> {
        match open_master(&self.endpoint, connection).await {
            Ok((conn, address)) => {
                let mut c = self.current.lock();
                if c.address != address {
                    tracing::warn!(
                        url = %self.endpoint.masked(),
                        from = %c.address,
                        to = %address,
                        %why,
                        "Redis master changed (Sentinel failover); following it"
                    );
                }
                c.generation += 1;
                c.conn = conn.clone();
                c.address = address;
                Some(conn)
            }
            Err(e) => {
                tracing::warn!(url = %self.endpoint.masked(), error = %e.reason, %why, "no Redis master to reconnect to yet");
                None
            }
        }
    }
}

/// A multiplexed connection with the shared connection's timeouts.
pub(super) async fn connection(client: Client) -> Result<MultiplexedConnection, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(super::CONNECT_TIMEOUT))
        .set_response_timeout(Some(super::RESPONSE_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}
