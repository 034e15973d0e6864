//! Opening an AMQP connection: `amqp://` or `amqps://` with the URL's
//! `cacertfile`, `certfile` and `keyfile` (see
//! [`crate::config::amqp_tls`]), bounded by [`CONNECT_DEADLINE`] so a
//! broker that never finishes the TLS handshake cannot hang the caller,
//! and a certificate that fails verification reported as one line.

use super::QueueError;
use crate::config::SecretUrl;
use crate::config::amqp_tls::amqp_target;
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

/// Connect to `url` with `props`.
pub async fn connect_amqp(
    url: &SecretUrl,
    props: ConnectionProperties,
) -> Result<Connection, QueueError> {
    let target = amqp_target(url).map_err(QueueError::AmqpTls)?;
    let masked = url.masked().to_string();
    let attempt = async {
        lapin::DefaultConnectionBuilder::new()?
            .with_uri_str(target.uri.clone())
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
