//! Finding the master through Sentinel: ask each sentinel in turn (the one
//! that answered last first) for the master's address, and check with
//! `ROLE` that the server there really is the master before using it.
//!
//! A sentinel that is down, does not know the name, or names a server that
//! is not (yet) the master is skipped; the error lists why each one was.

use super::endpoint::Endpoint;
use super::{ConnectError, describe};
use crate::config::redis_url::Topology;
use redis::aio::ConnectionLike;
use redis::{AsyncConnectionConfig, Client, RedisError};
use std::time::Duration;

/// Connect and response timeout of one question to one sentinel.
pub const SENTINEL_TIMEOUT: Duration = Duration::from_millis(1000);

/// The master's client and address, and the index of the sentinel that
/// named it.
pub(super) async fn find_master(
    ep: &Endpoint,
    start: usize,
) -> Result<((Client, String), usize), ConnectError> {
    let Topology::Sentinel {
        sentinels, master, ..
    } = &ep.target().topology
    else {
        return Err(ConnectError::new(ep.masked(), "not a Sentinel URL"));
    };
    let n = sentinels.len();
    let mut why = Vec::with_capacity(n);
    for k in 0..n {
        let i = (start + k) % n;
        let (host, port) = &sentinels[i];
        match ask(ep, host, *port, master).await {
            Ok(Some((mh, mp))) => {
                let client = ep.data_client(&mh, mp)?;
                return Ok(((client, format!("{mh}:{mp}")), i));
            }
            Ok(None) => why.push(format!("{host}:{port} knows no master named {master:?}")),
            Err(e) => why.push(format!("{host}:{port}: {e}")),
        }
    }
    Err(ConnectError::new(
        ep.masked(),
        format!(
            "no sentinel named the master {master:?} ({}); check the sentinels' addresses, \
             the name after # and sentinel_password",
            why.join("; ")
        ),
    ))
}

/// One sentinel's answer to `SENTINEL GET-MASTER-ADDR-BY-NAME`.
async fn ask(
    ep: &Endpoint,
    host: &str,
    port: u16,
    master: &str,
) -> Result<Option<(String, u16)>, String> {
    let client = ep.sentinel_client(host, port).map_err(|e| e.reason)?;
    let mut conn = open_sentinel(&client).await?;
    redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(master)
        .query_async(&mut conn)
        .await
        .map_err(|e| describe(&e))
}

/// A short-lived connection to one sentinel.
pub(crate) async fn open_sentinel(
    client: &Client,
) -> Result<redis::aio::MultiplexedConnection, String> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(SENTINEL_TIMEOUT))
        .set_response_timeout(Some(SENTINEL_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| describe(&e))
}

/// Whether the server behind `conn` says it is a master (`ROLE`).
pub(super) async fn is_master<C: ConnectionLike + Send>(conn: &mut C) -> Result<bool, RedisError> {
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(conn).await?;
    Ok(matches!(
        role.first(),
        Some(redis::Value::BulkString(b)) if b.as_slice() == b"master"
    ) || matches!(
        role.first(),
        Some(redis::Value::SimpleString(s)) if s == "master"
    ))
}
