//! TLS test fixtures: a private certificate authority made with `openssl`
//! (server certificates with SAN `DNS:localhost,IP:127.0.0.1`, client
//! certificates), and private PostgreSQL and RabbitMQ servers that use
//! them on free loopback ports, stopped on drop. Shared by the TLS tests
//! and meant for later fault tests.
#![allow(dead_code)]

pub mod postgres;
pub mod rabbitmq;

pub use crate::common::tls_ca::{Issued, TestCa, chown, is_root};

/// Wait until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}
