//! The connections a [`SharedConn`] opens beside itself, which on a Redis
//! Cluster depend on where keys live: one named node ([`SharedConn::node`])
//! or each master, for what each node answers for itself (its `INFO`,
//! `CLUSTER INFO` and the `SCAN` of its own keys: the inspector reads every
//! master this way, one connection each, so a master that does not answer
//! fails only its own read); a command sent to the server of a key; a
//! dedicated blocking connection on the master of a key's slot; a pub/sub
//! connection.

use super::{
    CONNECT_TIMEOUT, ConnectError, RESPONSE_TIMEOUT, Route, SharedConn, blocking_config,
    blocking_on, cluster, describe, pubsub_on,
};
use redis::aio::{ConnectionLike, MultiplexedConnection, PubSub};
use redis::cluster_routing::{self, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncConnectionConfig, Cmd, RedisError, Value};

impl SharedConn {
    /// A connection to the node at `address` (`host:port`, as
    /// [`SharedConn::shards`] names it) of this cluster, with the URL's
    /// credentials and TLS. It does not reconnect: after an error, open
    /// another. Refused for any other topology.
    pub async fn node(&self, address: &str) -> Result<SharedConn, ConnectError> {
        if !matches!(self.route, Route::Cluster(_)) {
            return Err(ConnectError::new(self.ep.masked(), "not a Redis Cluster"));
        }
        let (host, port) = cluster::split_address(address).ok_or_else(|| {
            ConnectError::new(self.ep.masked(), format!("bad node address {address}"))
        })?;
        let client = self.ep.cluster_node_client(&host, port)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| ConnectError::new(self.ep.masked(), describe(&e)))?;
        Ok(SharedConn {
            route: Route::Node(conn, address.to_string()),
            ep: self.ep.clone(),
        })
    }

    /// Send `cmd` to the server that holds `key`: on a cluster, the master
    /// of its slot (for commands without a key of their own, such as `INFO
    /// replication` about the server a key lives on); elsewhere, as usual.
    pub async fn query_at_key(&mut self, cmd: &Cmd, key: &str) -> Result<Value, RedisError> {
        match &mut self.route {
            Route::Cluster(c) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    cluster_routing::Route::new(cluster::slot_of(key.as_bytes()), SlotAddr::Master),
                ));
                c.conn.route_command(cmd.clone(), route).await
            }
            _ => self.req_packed_command(cmd).await,
        }
    }

    /// A connection per master, for commands that each master answers for
    /// its own keys only (`SCAN`): on a cluster, one per shard's master;
    /// elsewhere this connection alone.
    pub async fn masters(&self) -> Result<Vec<SharedConn>, ConnectError> {
        if !matches!(self.route, Route::Cluster(_)) {
            return Ok(vec![self.clone()]);
        }
        let shards = self
            .shards()
            .await
            .map_err(|e| ConnectError::new(self.ep.masked(), describe(&e)))?;
        let mut out = Vec::new();
        for s in shards {
            out.push(self.node(&s.master).await?);
        }
        Ok(out)
    }

    /// The shards of a Redis Cluster (`CLUSTER SLOTS`); empty for any
    /// other topology.
    pub async fn shards(&self) -> Result<Vec<cluster::Shard>, RedisError> {
        match &self.route {
            Route::Cluster(c) => cluster::shards(&mut c.conn.clone()).await,
            _ => Ok(Vec::new()),
        }
    }

    /// A dedicated connection with no response timeout for a blocking read
    /// of `key` (XREAD/XREADGROUP BLOCK): to the server, the master of the
    /// moment (Sentinel), or the master that serves `key`'s slot now
    /// (cluster). Do not share it; after an error, ask for a new one.
    pub async fn blocking(&self, key: &str) -> Result<MultiplexedConnection, ConnectError> {
        let client = match &self.route {
            Route::Cluster(c) => {
                cluster::owner_client(&self.ep, &mut c.conn.clone(), key.as_bytes())
                    .await?
                    .1
            }
            Route::Node(_, address) => {
                let (host, port) = cluster::split_address(address).ok_or_else(|| {
                    ConnectError::new(self.ep.masked(), format!("bad node address {address}"))
                })?;
                self.ep.cluster_node_client(&host, port)?
            }
            Route::Direct(_) | Route::Sentinel(_) => return blocking_on(&self.ep).await,
        };
        client
            .get_multiplexed_async_connection_with_config(&blocking_config())
            .await
            .map_err(|e| self.ep.error(&e))
    }

    /// A pub/sub connection: to the server, the master of the moment
    /// (Sentinel), or the first master that answers (cluster: a PUBLISH
    /// reaches every node).
    pub async fn pubsub(&self) -> Result<PubSub, ConnectError> {
        let Route::Cluster(c) = &self.route else {
            return pubsub_on(&self.ep).await;
        };
        let mut last = ConnectError::new(self.ep.masked(), "the cluster has no master");
        for (_, client) in cluster::master_clients(&self.ep, &mut c.conn.clone()).await? {
            match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
                Ok(Ok(p)) => return Ok(p),
                Ok(Err(e)) => last = self.ep.error(&e),
                Err(_) => last = ConnectError::new(self.ep.masked(), "connection timed out"),
            }
        }
        Err(last)
    }
}
