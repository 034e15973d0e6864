//! A connection to one named node of a Redis Cluster
//! ([`SharedConn::node`]), for what each node answers for itself: its
//! `INFO`, `CLUSTER INFO` and the `SCAN` of its own keys (the inspector
//! reads every master this way, one connection each, so a master that does
//! not answer fails only its own read).

use super::{
    CONNECT_TIMEOUT, ConnectError, RESPONSE_TIMEOUT, Route, SharedConn, cluster, describe,
};
use redis::AsyncConnectionConfig;

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
}
