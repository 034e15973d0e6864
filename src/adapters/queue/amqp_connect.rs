//! Opening an AMQP connection: `amqp://` or `amqps://` with the URL's
//! `cacertfile`, `certfile` and `keyfile` (see
//! [`crate::config::amqp_tls`]), bounded by [`CONNECT_DEADLINE`] so a
//! broker that never finishes the TLS handshake cannot hang the caller,
//! and a certificate that fails verification reported as one line. A URL
//! naming several brokers (`amqp://u:p@h1,h2/vhost`) is tried broker by
//! broker in the order given, each within [`CONNECT_DEADLINE`]: the first
//! that lets us in wins; when none does, the error is the last broker's.

use super::QueueError;
use crate::config::SecretUrl;
use crate::config::amqp_tls::{AmqpTarget, amqp_target};
use crate::config::tls_verify::rustls_error;
use lapin::{Connection, ConnectionProperties, ErrorKind};
use std::time::Duration;

/// How long the TCP connect, the TLS handshake and the AMQP login may take.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(15);

/// The rustls error behind a lapin error, if the TLS handshake failed.
fn tls_failure(e: &lapin::Error) -> Option<&rustls::Error> {
    if let ErrorKind::IOError(io) = e.kind() {
        let io: &std::io::Error = io;
        if let Some(r) = rustls_error(io) {
            return Some(r);
        }
    }
    rustls_error(e)
}

/// Connect to `url` (to the first of its brokers that answers) with `props`.
pub async fn connect_amqp(
    url: &SecretUrl,
    props: ConnectionProperties,
) -> Result<Connection, QueueError> {
    let target = amqp_target(url).map_err(QueueError::AmqpTls)?;
    let hosts = url.hosts();
    let mut last = None;
    for (uri, host) in target.uris.iter().zip(&hosts) {
        match connect_one(uri, host, &target, props.clone()).await {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                if hosts.len() > 1 {
                    tracing::debug!(error = %e, "RabbitMQ broker unreachable; trying the next one");
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| QueueError::AmqpTimeout {
        url: url.masked().to_string(),
        secs: 0,
    }))
}

/// Connect to one broker: `uri` (TLS parameters removed) of `host`.
async fn connect_one(
    uri: &str,
    host: &SecretUrl,
    target: &AmqpTarget,
    props: ConnectionProperties,
) -> Result<Connection, QueueError> {
    let masked = host.masked().to_string();
    let attempt = async {
        lapin::DefaultConnectionBuilder::new()?
            .with_uri_str(uri.to_string())
            .with_properties(props)
            .with_tls_config(target.tls.clone())
            .connect()
            .await
    };
    match tokio::time::timeout(CONNECT_DEADLINE, attempt).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => match tls_failure(&source) {
            Some(rustls::Error::InvalidCertificate(why)) => Err(QueueError::AmqpUntrusted {
                url: masked,
                reason: format!("{why:?}"),
                hint: match &target.cacertfile {
                    Some(ca) => format!(
                        "the CA in ?cacertfile={ca} did not sign it: name the CA that did, \
                         or set SSL_CERT_FILE to a bundle holding it"
                    ),
                    None => "add ?cacertfile=/path/to/ca.pem with the CA that signed it, or set \
                             SSL_CERT_FILE to a bundle holding it"
                        .to_string(),
                },
            }),
            _ => Err(QueueError::AmqpConnect {
                url: masked,
                source,
            }),
        },
        Err(_) => Err(QueueError::AmqpTimeout {
            url: masked,
            secs: CONNECT_DEADLINE.as_secs(),
        }),
    }
}
