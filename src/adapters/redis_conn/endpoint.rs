//! One Redis URL turned into clients: the client of a fixed server, or of
//! the master the sentinels name right now, with the URL's TLS settings
//! (private CA, client certificate, or the explicit no-verification
//! option) applied to every connection, first or reconnected.

use super::ConnectError;
use super::sentinel;
use crate::config::SecretUrl;
use crate::config::redis_url::{RedisTarget, TlsSettings, Topology};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{
    Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    RedisConnectionInfo, TlsCertificates,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A parsed Redis URL that can open clients.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

struct Inner {
    masked: String,
    target: RedisTarget,
    /// The client of a fixed server, built once.
    direct: Option<Client>,
    /// The sentinel that answered last, asked first next time.
    last_good_sentinel: AtomicUsize,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({})", self.inner.masked)
    }
}

impl Endpoint {
    /// Parse `url` and, for a fixed server, build its client (reading the
    /// TLS files once).
    pub fn new(url: &SecretUrl) -> Result<Self, ConnectError> {
        let masked = url.masked().to_string();
        let target = RedisTarget::parse(url.expose()).map_err(|e| ConnectError::new(&masked, e))?;
        let direct = match &target.topology {
            Topology::Direct { host, port } => Some(
                data_client(&target, host, *port, target.db)
                    .map_err(|e| ConnectError::new(&masked, e))?,
            ),
            Topology::Sentinel { .. } => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                masked,
                target,
                direct,
                last_good_sentinel: AtomicUsize::new(0),
            }),
        })
    }

    /// The URL, password masked.
    pub fn masked(&self) -> &str {
        &self.inner.masked
    }

    /// What the URL says.
    pub fn target(&self) -> &RedisTarget {
        &self.inner.target
    }

    /// Whether the master is found through Sentinel (and so can move).
    pub fn is_sentinel(&self) -> bool {
        matches!(self.inner.target.topology, Topology::Sentinel { .. })
    }

    /// A client for the server that takes writes now: the fixed server, or
    /// the master the sentinels name (checked with `ROLE`). Also returns
    /// its address, `host:port`.
    pub async fn master(&self) -> Result<(Client, String), ConnectError> {
        if let Some(client) = &self.inner.direct {
            return Ok((client.clone(), self.inner.target.server_name()));
        }
        let start = self.inner.last_good_sentinel.load(Ordering::Relaxed);
        let (found, answered) = sentinel::find_master(self, start).await?;
        self.inner
            .last_good_sentinel
            .store(answered, Ordering::Relaxed);
        Ok(found)
    }

    /// A connection error on this endpoint, with a hint when a TLS URL
    /// meets a server that never answers the handshake (a plaintext port).
    pub fn error(&self, e: &redis::RedisError) -> ConnectError {
        let mut reason = super::describe(e);
        if self.inner.target.tls.is_some() && e.is_timeout() {
            reason.push_str(
                "; is this a TLS port? rediss:// needs the server's tls-port, redis:// its plain port",
            );
        }
        ConnectError::new(self.masked(), reason)
    }

    /// A client for a data node at `host:port` (a master or replica the
    /// sentinels named), with the URL's credentials, database and TLS.
    pub fn data_client(&self, host: &str, port: u16) -> Result<Client, ConnectError> {
        data_client(&self.inner.target, host, port, self.inner.target.db)
            .map_err(|e| ConnectError::new(self.masked(), e))
    }

    /// A client for the Redis Cluster this fixed server belongs to, seeded
    /// with it, with the URL's credentials and TLS (database 0: the only
    /// one a cluster has).
    pub fn cluster_client(&self) -> Result<ClusterClient, ConnectError> {
        let target = &self.inner.target;
        let Topology::Direct { host, port } = &target.topology else {
            return Err(ConnectError::new(
                self.masked(),
                "a Sentinel URL cannot name a Redis Cluster",
            ));
        };
        let fail = |e: String| ConnectError::new(self.masked(), e);
        let seed =
            connection_info(&target.tls, Server::data(target, host, *port, 0)).map_err(fail)?;
        let mut builder = ClusterClientBuilder::new(vec![seed])
            .connection_timeout(super::CONNECT_TIMEOUT)
            .response_timeout(super::RESPONSE_TIMEOUT)
            // The whole request, retries included: by default it follows
            // the response timeout, which would leave no time to ride out
            // a failover.
            .overall_response_timeout(Some(super::cluster::OVERALL_TIMEOUT))
            .retries(super::cluster::RETRIES)
            .max_retry_wait(1000);
        if let Some(t) = &target.tls {
            builder = builder.danger_accept_invalid_hostnames(!t.verify);
            if let Some(certs) = tls_certificates(t).map_err(fail)? {
                builder = builder.certs(certs);
            }
        }
        builder.build().map_err(|e| fail(super::describe(&e)))
    }

    /// A client for the node at `host:port` of a Redis Cluster (database
    /// 0), with the URL's credentials and TLS.
    pub fn cluster_node_client(&self, host: &str, port: u16) -> Result<Client, ConnectError> {
        data_client(&self.inner.target, host, port, 0)
            .map_err(|e| ConnectError::new(self.masked(), e))
    }

    /// A client for the sentinel at `host:port`, with the sentinels'
    /// credentials and the URL's TLS.
    pub fn sentinel_client(&self, host: &str, port: u16) -> Result<Client, ConnectError> {
        let (username, password) = match &self.inner.target.topology {
            Topology::Sentinel {
                username, password, ..
            } => (username.clone(), password.as_ref().map(|p| p.0.clone())),
            Topology::Direct { .. } => (None, None),
        };
        let sentinel = Server {
            host,
            port,
            db: 0,
            username,
            password,
        };
        build(&self.inner.target.tls, sentinel).map_err(|e| ConnectError::new(self.masked(), e))
    }
}

/// A client for the data node `host:port` in database `db`, with the URL's
/// credentials and TLS.
fn data_client(target: &RedisTarget, host: &str, port: u16, db: i64) -> Result<Client, String> {
    build(&target.tls, Server::data(target, host, port, db))
}

/// One server to connect to: its address, database and credentials.
struct Server<'a> {
    host: &'a str,
    port: u16,
    db: i64,
    username: Option<String>,
    password: Option<String>,
}

impl<'a> Server<'a> {
    /// A data node of `target` (Redis itself, not a sentinel): the URL's
    /// credentials.
    fn data(target: &RedisTarget, host: &'a str, port: u16, db: i64) -> Self {
        Self {
            host,
            port,
            db,
            username: target.username.clone(),
            password: target.password.as_ref().map(|p| p.0.clone()),
        }
    }
}

fn build(tls: &Option<TlsSettings>, server: Server<'_>) -> Result<Client, String> {
    let info = connection_info(tls, server)?;
    match tls.as_ref().map(tls_certificates).transpose()?.flatten() {
        Some(certs) => Client::build_with_tls(info, certs).map_err(|e| e.to_string()),
        None => Client::open(info).map_err(|e| e.to_string()),
    }
}

/// The address, credentials and database of one server.
fn connection_info(
    tls: &Option<TlsSettings>,
    server: Server<'_>,
) -> Result<ConnectionInfo, String> {
    let Server {
        host,
        port,
        db,
        username,
        password,
    } = server;
    let addr = match tls {
        None => ConnectionAddr::Tcp(host.to_string(), port),
        Some(t) => ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: !t.verify,
            tls_params: None,
        },
    };
    let mut redis = RedisConnectionInfo::default().set_db(db);
    if let Some(u) = username {
        redis = redis.set_username(u);
    }
    if let Some(p) = password {
        redis = redis.set_password(p);
    }
    Ok(addr
        .into_connection_info()
        .map_err(|e| e.to_string())?
        .set_redis_settings(redis))
}

/// The private CA and client certificate of `t`, read from their files;
/// `None` when the URL names neither (the system's roots are used).
fn tls_certificates(t: &TlsSettings) -> Result<Option<TlsCertificates>, String> {
    if t.ca_file.is_none() && t.cert_file.is_none() {
        return Ok(None);
    }
    let read = |option: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("{option}={}: cannot read it: {e}", path.display()))
    };
    let root_cert = match &t.ca_file {
        Some(p) => Some(read("ssl_ca_certs", p)?),
        None => None,
    };
    let client_tls = match (&t.cert_file, &t.key_file) {
        (Some(c), Some(k)) => Some(ClientTlsConfig {
            client_cert: read("ssl_certfile", c)?,
            client_key: read("ssl_keyfile", k)?,
        }),
        _ => None,
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}
