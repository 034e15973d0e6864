//! The node's listening sockets: its own address, and under `CLUSTER_MODE`
//! the host's shared address that every process of the host binds with
//! `SO_REUSEPORT` (the kernel spreads the load balancer's connections over
//! them, as PM2's cluster mode does with one port).

use super::runtime::NodeError;
use std::net::SocketAddr;

/// Bind `addr` on its own.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { addr, source })
}

/// Bind `addr` with `SO_REUSEPORT`, so the other processes of this host
/// (same user) bind it too.
pub fn bind_shared(addr: SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    let err = |source| NodeError::Listen { addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.set_reuseport(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

/// Serve `router` on every listener until `drain` turns true (each server
/// stops accepting, finishes its in-flight requests); the task ends when
/// all have, with the first error if any.
pub fn serve(
    listeners: Vec<tokio::net::TcpListener>,
    router: axum::Router,
    drain: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let servers = listeners.into_iter().map(|listener| {
        let mut drain = drain.clone();
        axum::serve(listener, router.clone())
            .with_graceful_shutdown(async move {
                let _ = drain.wait_for(|d| *d).await;
            })
            .into_future()
    });
    let servers: Vec<_> = servers.collect();
    tokio::spawn(async move {
        futures::future::join_all(servers)
            .await
            .into_iter()
            .collect::<std::io::Result<Vec<()>>>()
            .map(|_| ())
    })
}
