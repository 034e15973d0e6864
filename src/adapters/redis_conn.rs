//! Redis connections for the adapters: a shared, self-reconnecting
//! connection for ordinary commands ([`SharedConn`]), and dedicated
//! connections with the response timeout disabled for blocking reads
//! (XREAD/XREADGROUP BLOCK).

use crate::config::SecretUrl;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, Value};
use std::time::Duration;

/// Timeout of one connection attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Response timeout of ordinary (non-blocking) commands.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis connection failure, with the URL masked.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis at {url}: {source}")]
pub struct ConnectError {
    /// The URL, password masked.
    pub url: String,
    /// The client's error.
    #[source]
    pub source: RedisError,
}

fn client(url: &SecretUrl) -> Result<Client, ConnectError> {
    Client::open(url.expose()).map_err(|source| ConnectError {
        url: url.masked().to_string(),
        source,
    })
}

/// A shared connection for ordinary commands: a [`ConnectionManager`] (it
/// reconnects by itself after the server drops it; commands sent while the
/// server is down fail fast) that sends a command once more when the first
/// attempt found the connection dropped.
///
/// Without that second attempt, a connection left idle while Redis
/// restarted failed the first command sent after Redis was back (`broken
/// pipe`: the manager only notices a dead connection when a command fails
/// on it), so a node lost the first sync signal, cache invalidation or
/// queued message after every Redis restart (found by the fault suite's
/// `redis_down`). A command whose connection broke after it reached the
/// server may run twice; every command clusterops sends is harmless when
/// repeated (SET, DEL, renewals and releases are idempotent; a repeated
/// XADD is a duplicate signal, message or journal line, which readers
/// already tolerate; a repeated lock or worker-ID acquire finds its own
/// first grant taken and waits, or takes another ID, until the first one's
/// TTL ends).
#[derive(Clone)]
pub struct SharedConn {
    inner: ConnectionManager,
}

impl std::fmt::Debug for SharedConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedConn")
    }
}

/// Whether `e` says the connection was dropped (worth one more attempt on
/// the reconnected one). A refused reconnection is not: the server is still
/// down, and a second attempt would only double the time to fail.
fn dropped(e: &RedisError) -> bool {
    e.is_connection_dropped() && !e.is_connection_refusal()
}

impl ConnectionLike for SharedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.inner.req_packed_command(cmd).await {
                Err(e) if dropped(&e) => self.inner.req_packed_command(cmd).await,
                done => done,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match self
                .inner
                .req_packed_commands(pipeline, offset, count)
                .await
            {
                Err(e) if dropped(&e) => {
                    self.inner
                        .req_packed_commands(pipeline, offset, count)
                        .await
                }
                done => done,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

/// Open a [`SharedConn`] to `url`.
pub async fn connect(url: &SecretUrl) -> Result<SharedConn, ConnectError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    let client = client(url)?;
    let inner = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|source| ConnectError {
            url: url.masked().to_string(),
            source,
        })?;
    Ok(SharedConn { inner })
}

/// A dedicated connection with no response timeout, for blocking reads.
/// Do not share it: a blocking command holds the whole connection.
pub async fn connect_blocking(url: &SecretUrl) -> Result<MultiplexedConnection, ConnectError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None);
    let client = client(url)?;
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|source| ConnectError {
            url: url.masked().to_string(),
            source,
        })
}
