//! The node's PostgreSQL connection (`DB_URL`), opened again when it has
//! closed (PostgreSQL restarted, the backend was terminated, the network
//! dropped): the request that meets a closed connection reconnects before
//! it runs, so one outage does not leave the node failing until restarted.
//! A statement that was in flight when the connection died fails; it is
//! never re-sent, since it may have been committed.

use crate::config::SecretUrl;
use crate::config::pg_tls::{PgTlsError, SslMode, pg_connect_config};
use crate::config::tls_verify::rustls_error;
use parking_lot::Mutex;
use rustls::{CertificateError, ClientConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long connecting, the TLS handshake and the login may take together
/// when the URL has no (longer) `connect_timeout`.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(15);

/// Why `DB_URL` could not be connected to: one line naming the masked URL.
#[derive(Debug, thiserror::Error)]
pub enum PgConnectError {
    /// The TLS parameters or their files are wrong.
    #[error(transparent)]
    Config(#[from] PgTlsError),
    /// The server's certificate failed verification.
    #[error("DB_URL {url}: certificate not trusted ({reason}); {hint}")]
    Untrusted {
        /// Masked URL.
        url: String,
        /// What rustls found.
        reason: String,
        /// What to change.
        hint: String,
    },
    /// No answer in time.
    #[error(
        "DB_URL {url}: no answer within {secs} s (connect, TLS handshake and login); \
         check the host and port, and that a PostgreSQL server listens there"
    )]
    Timeout {
        /// Masked URL.
        url: String,
        /// The deadline.
        secs: u64,
    },
    /// Refused, unreachable, login failed, ….
    #[error("DB_URL {url}: {detail}")]
    Connect {
        /// Masked URL.
        url: String,
        /// The server's message, or the client's error and its cause.
        detail: String,
        /// The client's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// The server's message when there is one (tokio-postgres' `Display` says
/// only "db error"), else the error and its cause.
pub fn pg_error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Connect to `url` as libpq would with its `sslmode`, `sslrootcert`,
/// `sslcert` and `sslkey` (see [`crate::config::pg_tls`]); the
/// connection's task logs (with the masked URL) when the connection ends
/// with an error.
pub async fn connect(url: &SecretUrl) -> Result<Client, PgConnectError> {
    let cfg = pg_connect_config(url)?;
    let deadline = cfg.pg.get_connect_timeout().map_or(CONNECT_DEADLINE, |t| {
        t.saturating_add(Duration::from_secs(5))
            .max(CONNECT_DEADLINE)
    });
    let roots = cfg.roots_from.as_deref();
    match cfg.mode {
        SslMode::Allow => match once(url, &cfg.pg, None, deadline, roots).await {
            Ok(c) => Ok(c),
            Err(PgConnectError::Connect { .. }) => {
                let mut pg = cfg.pg.clone();
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                once(url, &pg, cfg.tls, deadline, roots).await
            }
            Err(e) => Err(e),
        },
        SslMode::Prefer => match once(url, &cfg.pg, cfg.tls, deadline, roots).await {
            // libpq: a failed TLS attempt falls back to plaintext.
            Err(PgConnectError::Connect { source, .. }) if rustls_error(&source).is_some() => {
                let mut pg = cfg.pg.clone();
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                once(url, &pg, None, deadline, roots).await
            }
            other => other,
        },
        _ => once(url, &cfg.pg, cfg.tls, deadline, roots).await,
    }
}

async fn once(
    url: &SecretUrl,
    pg: &tokio_postgres::Config,
    tls: Option<ClientConfig>,
    deadline: Duration,
    roots: Option<&str>,
) -> Result<Client, PgConnectError> {
    let masked = url.to_string();
    let attempt = async {
        match tls {
            None => pg.connect(NoTls).await.map(|(client, conn)| {
                watch(conn, masked.clone());
                client
            }),
            Some(tls) => pg
                .connect(MakeRustlsConnect::new(tls))
                .await
                .map(|(client, conn)| {
                    watch(conn, masked.clone());
                    client
                }),
        }
    };
    match tokio::time::timeout(deadline, attempt).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(source)) => Err(classify(masked.clone(), source, roots)),
        Err(_) => Err(PgConnectError::Timeout {
            url: masked.clone(),
            secs: deadline.as_secs(),
        }),
    }
}

fn watch<F>(connection: F, masked: String)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(db = %masked, "database connection lost: {e}");
        }
    });
}

fn classify(url: String, source: tokio_postgres::Error, roots: Option<&str>) -> PgConnectError {
    if let Some(rustls::Error::InvalidCertificate(why)) = rustls_error(&source) {
        let hint = match why {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "connect with a host name the certificate names, or use sslmode=verify-ca to \
                 verify the chain only"
                    .to_string()
            }
            _ => match roots {
                Some(from) => format!(
                    "the CA in sslrootcert={from} did not sign it: add sslrootcert=/path/to/ca.pem \
                     with the CA that did, or use sslmode=require to encrypt without verifying"
                ),
                None => "add sslrootcert=/path/to/ca.pem with the CA that signed it, or use \
                         sslmode=require to encrypt without verifying"
                    .to_string(),
            },
        };
        return PgConnectError::Untrusted {
            url,
            reason: format!("{why:?}"),
            hint,
        };
    }
    PgConnectError::Connect {
        url,
        detail: pg_error_text(&source),
        source,
    }
}

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
    pub async fn client(&self) -> Result<Arc<Client>, PgConnectError> {
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
