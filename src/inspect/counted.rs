//! A Redis connection that counts the requests it sends (one per command
//! or pipeline) and how many were in flight at once, so a snapshot can
//! report its round trips honestly.

use crate::adapters::redis_conn::cluster::Shard;
use crate::adapters::redis_conn::{ConnectError, SharedConn};
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Requests sent through [`Counted`] connections sharing one counter.
#[derive(Debug, Default)]
pub struct Requests {
    sent: AtomicU32,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
}

impl Requests {
    /// Requests sent (a pipeline is one).
    pub fn sent(&self) -> u32 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The most requests that were waiting for their reply at one time.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight.load(Ordering::Relaxed)
    }

    /// Count a request sent; it is in flight until the guard is dropped
    /// (its reply arrived, or the caller gave up on it).
    pub(super) fn start(self: &Arc<Self>) -> InFlight {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request in flight; dropping it counts its reply as arrived.
pub(super) struct InFlight(Arc<Requests>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A shared connection plus a request counter.
#[derive(Clone)]
pub struct Counted {
    inner: SharedConn,
    requests: Arc<Requests>,
}

impl Counted {
    /// Wrap `inner`, counting into `requests`.
    pub fn new(inner: SharedConn, requests: Arc<Requests>) -> Self {
        Self { inner, requests }
    }

    /// The server commands go to now (`host:port`; empty for a fixed
    /// server's URL, which names it).
    pub fn server(&self) -> String {
        self.inner.server()
    }

    /// The same connection, counting into `requests`.
    pub fn with_requests(&self, requests: &Arc<Requests>) -> Self {
        Self::new(self.inner.clone(), requests.clone())
    }

    /// Whether it reaches a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.is_cluster()
    }

    /// The cluster's shards (`CLUSTER SLOTS`, one request counted).
    pub async fn shards(&self) -> Result<Vec<Shard>, redis::RedisError> {
        let _in_flight = self.requests.start();
        self.inner.shards().await
    }

    /// A connection to one node of the cluster, counting into the same
    /// requests ([`SharedConn::node`]).
    pub async fn node(&self, address: &str) -> Result<Counted, ConnectError> {
        let node = self.inner.node(address).await?;
        Ok(Self::new(node, self.requests.clone()))
    }
}

impl ConnectionLike for Counted {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let in_flight = self.requests.start();
        let reply = self.inner.req_packed_command(cmd);
        Box::pin(async move {
            let r = reply.await;
            drop(in_flight);
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let in_flight = self.requests.start();
        let replies = self.inner.req_packed_commands(pipeline, offset, count);
        Box::pin(async move {
            let r = replies.await;
            drop(in_flight);
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
