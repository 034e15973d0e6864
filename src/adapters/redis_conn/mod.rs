//! Redis connections for the adapters: a shared, self-reconnecting
//! connection for ordinary commands ([`SharedConn`]), dedicated connections
//! with the response timeout disabled for blocking reads (XREAD/XREADGROUP
//! BLOCK), and pub/sub connections. Every URL form works the same way: one
//! server, with or without TLS, the master the sentinels name, found
//! again by itself after a failover ([`failover`]), or a Redis Cluster
//! found through any of its nodes ([`cluster`]).

pub mod cluster;
mod cluster_replicas;
mod cluster_split;
mod endpoint;
mod failover;
mod node;
pub mod sentinel;
mod watch;

pub use endpoint::Endpoint;

use crate::config::SecretUrl;
use failover::Failover;
use redis::ServerErrorKind;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection, PubSub,
};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value,
};
use std::sync::Arc;
use std::time::Duration;

/// Timeout of one connection attempt (TLS handshake included).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Response timeout of ordinary (non-blocking) commands.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a new connection waits for the server the sentinels name to
/// report itself master (during a failover it may still be a replica).
pub const MASTER_WAIT: Duration = Duration::from_secs(5);

/// A Redis connection failure: the URL (masked) and one line saying why,
/// with what to do when the cause is known (an untrusted certificate).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot connect to Redis at {url}: {reason}")]
pub struct ConnectError {
    /// The URL, password masked.
    pub url: String,
    /// Why, in one line, never with a password.
    pub reason: String,
}

impl ConnectError {
    /// An error for the masked URL `url`.
    pub fn new(url: &str, reason: impl std::fmt::Display) -> Self {
        Self {
            url: url.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// One page of `SCAN cursor MATCH pattern COUNT count`: the next cursor (0
/// when the scan is done) and this page's keys.
pub async fn scan_page(
    conn: &mut impl redis::aio::ConnectionLike,
    cursor: u64,
    pattern: &str,
    count: usize,
) -> redis::RedisResult<(u64, Vec<String>)> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
}

/// One line for a client error, with a hint for TLS certificate problems.
pub fn describe(e: &RedisError) -> String {
    let text = e.to_string().replace('\n', " ");
    let lower = text.to_ascii_lowercase();
    if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        format!(
            "{text}: the server's certificate does not name this host; connect by a name \
             the certificate lists"
        )
    } else if lower.contains("invalid peer certificate") || lower.contains("unknownissuer") {
        format!(
            "certificate not trusted ({text}); give the CA bundle with ?ssl_ca_certs=/path/ca.pem \
             on the URL, or in SSL_CERT_FILE"
        )
    } else if lower.contains("received corrupt message") || lower.contains("invalidcontenttype") {
        format!("{text}: is this a TLS port? rediss:// needs the server's tls-port")
    } else {
        text
    }
}

/// Whether `e` is the kind of failure after which the sentinels may name
/// another master: the connection is gone or refused, the server timed out,
/// or it answers as a replica (`READONLY`) or a master without its
/// replicas (`MASTERDOWN`).
pub fn wants_new_master(e: &RedisError) -> bool {
    e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_io_error()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

/// Whether `e` may go away by itself (worth trying again after a pause):
/// the server is unreachable, slow, loading, or moving (a failover, a
/// moved or migrating cluster slot, a cluster that is down for now). Other
/// errors (a script error, a wrong type, a missing permission, keys in
/// different slots) come back the same on every attempt.
pub fn is_transient(e: &RedisError) -> bool {
    wants_new_master(e)
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::Moved
                    | ServerErrorKind::Ask
                    | ServerErrorKind::ClusterDown
            )
        )
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
///
/// With a Sentinel URL the connection also follows the master: after a
/// failure that may mean a failover ([`wants_new_master`]), it asks the
/// sentinels again, moves to the new master when they name one, and sends
/// the command there once (see [`failover`]).
#[derive(Clone)]
pub struct SharedConn {
    route: Route,
    ep: Endpoint,
}

#[derive(Clone)]
enum Route {
    Direct(ConnectionManager),
    Sentinel(Arc<Failover>),
    /// A Redis Cluster: commands go to the master of their key's slot.
    Cluster(Box<ClusterRoute>),
    /// One master of a cluster, for what must be asked of each in turn
    /// (SCAN); see [`SharedConn::masters`].
    Node(MultiplexedConnection, String),
}

#[derive(Clone)]
struct ClusterRoute {
    conn: ClusterConnection,
    /// The cluster had replicas when the connection was opened
    /// ([`SharedConn::is_replicated`]).
    replicated: bool,
    /// The masters a cluster-wide SCAN walks, in order (read again each
    /// time a scan starts).
    scan_masters: Arc<parking_lot::Mutex<Vec<String>>>,
    /// The shard map split pipelines are grouped by.
    slot_map: Arc<cluster_split::SlotMap>,
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

impl SharedConn {
    /// Whether this connection follows a master through Sentinel: its
    /// writes can be lost in a failover unless a replica has them (the
    /// worker-ID leases wait for one: see `docs/snowflake.md`).
    ///
    /// A Redis Cluster counts as replicated when it is set up with
    /// replicas (`CLUSTER NODES` lists one, online or not, when the
    /// connection is opened): then a shard whose replica is down, or whose
    /// replica was just promoted, confirms nothing until one is back, as a
    /// Sentinel master without its replica. A cluster without any replica
    /// loses a shard's writes with its master whatever clusterops waits for
    /// (`check` warns). (Deciding by every shard having a replica online
    /// made a connection opened during a shard's failover skip `WAIT`, and
    /// the worker-ID quarantine, for its whole life.)
    pub fn is_replicated(&self) -> bool {
        match &self.route {
            Route::Sentinel(_) => true,
            Route::Cluster(c) => c.replicated,
            Route::Direct(_) | Route::Node(..) => false,
        }
    }

    /// Whether this is a Redis Cluster (or one of its masters).
    pub fn is_cluster(&self) -> bool {
        matches!(self.route, Route::Cluster(_) | Route::Node(..))
    }

    /// Bumped each time a Sentinel route moves to a (new) master; always 0
    /// for one server. A dedicated blocking connection opened at another
    /// generation may be on a demoted master: open a new one.
    pub fn generation(&self) -> u64 {
        match &self.route {
            Route::Sentinel(f) => f.current().0,
            Route::Direct(_) | Route::Cluster(_) | Route::Node(..) => 0,
        }
    }

    /// Ask the sentinels for the master again and move there when they name
    /// another server (nothing for a one-server URL). For callers that find
    /// the server answering as a replica in a reply that did not fail the
    /// request itself (a pipeline run with `ignore_errors`, an `INFO`
    /// saying `role:slave`): only a failed request moves the connection by
    /// itself, and a restarted old master that came back as a replica at
    /// the same address fails none.
    pub async fn follow_master(&self) {
        if let Route::Sentinel(f) = &self.route {
            f.check_master().await;
        }
    }

    /// The address of the server commands go to now (`host:port`).
    pub fn server(&self) -> String {
        match &self.route {
            Route::Direct(_) | Route::Cluster(_) => String::new(),
            Route::Sentinel(f) => f.address(),
            Route::Node(_, address) => address.clone(),
        }
    }

    /// The URL, password masked.
    pub fn masked_url(&self) -> &str {
        self.ep.masked()
    }
}

impl ConnectionLike for SharedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match &mut self.route {
                Route::Direct(inner) => match inner.req_packed_command(cmd).await {
                    Err(e) if dropped(&e) => inner.req_packed_command(cmd).await,
                    done => done,
                },
                Route::Sentinel(f) => {
                    let (generation, mut conn) = f.current();
                    match conn.req_packed_command(cmd).await {
                        Err(e) if wants_new_master(&e) => match f.retry_on(generation, &e).await {
                            Some(mut conn) => conn.req_packed_command(cmd).await,
                            None => Err(e),
                        },
                        done => done,
                    }
                }
                Route::Cluster(c) if cluster_split::is_scan(cmd) => {
                    cluster_split::scan(&mut c.conn, &c.scan_masters, cmd).await
                }
                Route::Cluster(c) => c.conn.req_packed_command(cmd).await,
                Route::Node(conn, _) => conn.req_packed_command(cmd).await,
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
            match &mut self.route {
                Route::Direct(inner) => {
                    match inner.req_packed_commands(pipeline, offset, count).await {
                        Err(e) if dropped(&e) => {
                            inner.req_packed_commands(pipeline, offset, count).await
                        }
                        done => done,
                    }
                }
                Route::Sentinel(f) => {
                    let (generation, mut conn) = f.current();
                    match conn.req_packed_commands(pipeline, offset, count).await {
                        Err(e) if wants_new_master(&e) => match f.retry_on(generation, &e).await {
                            Some(mut conn) => {
                                conn.req_packed_commands(pipeline, offset, count).await
                            }
                            None => Err(e),
                        },
                        done => done,
                    }
                }
                Route::Cluster(c) => {
                    cluster_split::send_pipeline(&mut c.conn, &c.slot_map, pipeline, offset, count)
                        .await
                }
                Route::Node(conn, _) => conn.req_packed_commands(pipeline, offset, count).await,
            }
        })
    }

    fn get_db(&self) -> i64 {
        match &self.route {
            Route::Direct(inner) => inner.get_db(),
            Route::Sentinel(f) => f.db(),
            Route::Cluster(_) | Route::Node(..) => 0,
        }
    }
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2))
}

/// A [`ConnectionManager`] on `client`, bounded by [`CONNECT_TIMEOUT`].
async fn manager(client: Client) -> Result<ConnectionManager, RedisError> {
    match tokio::time::timeout(
        CONNECT_TIMEOUT + Duration::from_millis(500),
        ConnectionManager::new_with_config(client, manager_config()),
    )
    .await
    {
        Ok(done) => done,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connection timed out",
        ))),
    }
}

/// Open a connection with `open` to the server that takes writes: for a
/// Sentinel URL, the master the sentinels name, once it reports itself
/// master (retried for up to [`MASTER_WAIT`] while a failover settles).
pub(crate) async fn open_master<T, F, Fut>(
    ep: &Endpoint,
    open: F,
) -> Result<(T, String), ConnectError>
where
    T: ConnectionLike + Send,
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, RedisError>>,
{
    let deadline = tokio::time::Instant::now() + MASTER_WAIT;
    loop {
        let (client, address) = ep.master().await?;
        let mut conn = open(client).await.map_err(|e| ep.error(&e))?;
        if !ep.is_sentinel() {
            return Ok((conn, address));
        }
        let why = match sentinel::is_master(&mut conn).await {
            Ok(true) => return Ok((conn, address)),
            Ok(false) => format!("the sentinels name {address}, which is not a master (yet)"),
            Err(e) => format!("{address}: {}", describe(&e)),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(ConnectError::new(ep.masked(), why));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Open a [`SharedConn`] to `url`. A `redis://` or `rediss://` URL that
/// names a node of a Redis Cluster opens a cluster connection (database 0
/// only: a URL naming another database is refused with a line saying so).
pub async fn connect(url: &SecretUrl) -> Result<SharedConn, ConnectError> {
    let ep = Endpoint::new(url)?;
    let route = if ep.is_sentinel() {
        let (conn, address) = open_master(&ep, failover::connection).await?;
        let route = Arc::new(Failover::new(ep.clone(), conn, address));
        watch::spawn(&route);
        Route::Sentinel(route)
    } else {
        let mut manager = match open_master(&ep, manager).await {
            Ok((m, _)) => m,
            Err(e) if e.reason.contains("not allowed in cluster mode") => {
                return Err(ConnectError::new(
                    ep.masked(),
                    format!(
                        "this is a Redis Cluster node, and a cluster has only database 0: \
                         remove /{} from the URL",
                        ep.target().db
                    ),
                ));
            }
            Err(e) => return Err(e),
        };
        if cluster::is_cluster(&mut manager)
            .await
            .map_err(|e| ep.error(&e))?
        {
            let mut conn = cluster::open(&ep).await?;
            let replicated = cluster_replicas::has_replicas(&mut conn)
                .await
                .map_err(|e| ep.error(&e))?;
            Route::Cluster(Box::new(ClusterRoute {
                conn,
                replicated,
                scan_masters: Arc::default(),
                slot_map: Arc::default(),
            }))
        } else {
            Route::Direct(manager)
        }
    };
    Ok(SharedConn { route, ep })
}

fn blocking_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None)
}

async fn blocking_on(ep: &Endpoint) -> Result<MultiplexedConnection, ConnectError> {
    let config = blocking_config();
    let (conn, _) = open_master(ep, |client: Client| {
        let config = config.clone();
        async move {
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
        }
    })
    .await?;
    Ok(conn)
}

/// A dedicated connection with no response timeout, for blocking reads on
/// one server or the master the sentinels name (on a cluster, use
/// [`SharedConn::blocking`], which finds the master of the key's slot).
/// Do not share it: a blocking command holds the whole connection. After an
/// error, open a new one (the sentinels are asked again).
pub async fn connect_blocking(url: &SecretUrl) -> Result<MultiplexedConnection, ConnectError> {
    blocking_on(&Endpoint::new(url)?).await
}

async fn pubsub_on(ep: &Endpoint) -> Result<PubSub, ConnectError> {
    let (client, _) = ep.master().await?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(ep.error(&e)),
        Err(_) => Err(ConnectError::new(ep.masked(), "connection timed out")),
    }
}

/// A pub/sub connection to `url` (the master of the moment with Sentinel;
/// Redis replicates PUBLISH to replicas, so a subscriber left on a demoted
/// master still hears new messages until Sentinel disconnects it). On a
/// cluster, prefer [`SharedConn::pubsub`].
pub async fn connect_pubsub(url: &SecretUrl) -> Result<PubSub, ConnectError> {
    pubsub_on(&Endpoint::new(url)?).await
}
