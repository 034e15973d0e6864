//! The node's PostgreSQL connection (`DB_URL`), opened again when it has
//! closed (PostgreSQL restarted, the backend was terminated, the network
//! dropped): the request that meets a closed connection reconnects before
//! it runs, so one outage does not leave the node failing until restarted.
//! A statement that was in flight when the connection died fails; it is
//! never re-sent, since it may have been committed.

use crate::config::SecretUrl;
use parking_lot::Mutex;
use std::sync::Arc;
use tokio_postgres::{Client, NoTls};

/// A reconnecting PostgreSQL client.
pub struct PgConn {
    url: SecretUrl,
    current: Mutex<Arc<Client>>,
    /// Held while reconnecting, so concurrent requests open one connection.
    reconnecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgConn({})", self.url)
    }
}

/// Connect to `url`; the connection's task logs (with the masked URL) when
/// the connection ends with an error.
pub async fn connect(url: &SecretUrl) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url.expose(), NoTls).await?;
    let masked = url.to_string();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(db = %masked, "database connection lost: {e}");
        }
    });
    Ok(client)
}

impl PgConn {
    /// Wrap `client`, connected to `url` (see [`connect`]).
    pub fn new(url: SecretUrl, client: Client) -> Self {
        Self {
            url,
            current: Mutex::new(Arc::new(client)),
            reconnecting: tokio::sync::Mutex::new(()),
        }
    }

    /// The client, connected again first if its connection has closed.
    pub async fn client(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        let client = self.current.lock().clone();
        if !client.is_closed() {
            return Ok(client);
        }
        let _one_at_a_time = self.reconnecting.lock().await;
        let client = self.current.lock().clone();
        if !client.is_closed() {
            // Another request reconnected meanwhile.
            return Ok(client);
        }
        let fresh = Arc::new(connect(&self.url).await?);
        tracing::info!(db = %self.url, "database connection opened again");
        *self.current.lock() = fresh.clone();
        Ok(fresh)
    }
}
