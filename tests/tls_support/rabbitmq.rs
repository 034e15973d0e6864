//! A private RabbitMQ node with a TLS listener, beside the shared broker: a
//! [`RabbitNode`] (own node name `tls{port}@localhost`, ports, data, logs
//! and Erlang cookie in a temp dir, no plugins) whose config adds an amqps
//! listener with a certificate signed by a [`TestCa`]. Stopped on drop.

use super::{Issued, TestCa};
use crate::common::rabbit_node::{RabbitNode, write_cookie};
use std::time::Duration;

pub struct PrivateRabbit {
    /// The TLS (amqps) port.
    pub port: u16,
    pub node: String,
    server: RabbitNode,
    /// Dropped after `server`: the node is stopped before its files go.
    _dir: tempfile::TempDir,
}

impl PrivateRabbit {
    /// Start a node serving amqps with `cert` (signed by `ca`) and wait up
    /// to `boot` for its TLS port.
    pub fn start(ca: &TestCa, cert: &Issued, boot: Duration) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::common::free_port();
        write_cookie(dir.path(), &format!("CLUSTEROPSTLS{port}")).expect("cookie");
        let tls = format!(
            "listeners.ssl.default = 127.0.0.1:{port}\n\
             ssl_options.cacertfile = {ca}\n\
             ssl_options.certfile = {crt}\n\
             ssl_options.keyfile = {key}\n\
             ssl_options.verify = verify_none\n\
             ssl_options.fail_if_no_peer_cert = false\n",
            ca = ca.cert.display(),
            crt = cert.cert.display(),
            key = cert.key.display(),
        );
        let server = RabbitNode::spawn(
            &format!("tls{port}"),
            dir.path(),
            &dir.path().join("node"),
            &tls,
        )
        .expect("rabbitmq-server starts");
        if let Err(e) = server.wait_for_port(port, boot) {
            drop(server);
            panic!("private RabbitMQ with TLS: {e}");
        }
        Self {
            port,
            node: server.node.clone(),
            server,
            _dir: dir,
        }
    }

    /// The console output and the node's log.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Stop the node (`rabbitmqctl stop`, killed if it lingers).
    pub fn stop(&mut self) {
        self.server.stop();
    }
}
