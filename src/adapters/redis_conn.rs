//! Redis connections for the adapters: a shared, self-reconnecting
//! connection for ordinary commands, and dedicated connections with the
//! response timeout disabled for blocking reads (XREAD/XREADGROUP BLOCK).

use crate::config::SecretUrl;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisError};
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

/// A shared connection for ordinary commands. It reconnects by itself after
/// the server drops it; commands sent while it is down fail fast.
pub async fn connect(url: &SecretUrl) -> Result<ConnectionManager, ConnectError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    let client = client(url)?;
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|source| ConnectError {
            url: url.masked().to_string(),
            source,
        })
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
