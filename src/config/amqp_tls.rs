//! `amqps://` URLs: the CA bundle and client certificate named by the query
//! parameters of RabbitMQ's URI spec (`cacertfile`, `certfile`, `keyfile`),
//! read, checked and removed before lapin sees the URI. The server is
//! always verified (chain and host name) against the system roots (which
//! honour `SSL_CERT_FILE`) plus `cacertfile`. A URL naming several brokers
//! (see [`super::amqp_hosts`]) gives one URI per broker, with the same TLS
//! settings.

use super::SecretUrl;
use super::tls_files::{read_certs, read_key};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};

const PARAMS: &[&str] = &["cacertfile", "certfile", "keyfile"];

/// What to connect to: the URI for lapin (parameters above removed) and
/// its TLS settings.
pub struct AmqpTarget {
    /// One URI per broker, in the order given, without `cacertfile`,
    /// `certfile` and `keyfile`; they carry the password: never show them.
    pub uris: Vec<String>,
    /// Extra roots and client identity.
    pub tls: OwnedTLSConfig,
    /// The `cacertfile` given, for hints.
    pub cacertfile: Option<String>,
    /// `amqps://`.
    pub tls_scheme: bool,
}

/// A TLS parameter of an AMQP URL is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RabbitMQ URL {url}: {problem}")]
pub struct AmqpTlsError {
    /// The URL, password masked.
    pub url: String,
    /// What is wrong, without the URL.
    pub problem: String,
}

/// Read `url`'s TLS parameters and their files.
pub fn amqp_target(url: &SecretUrl) -> Result<AmqpTarget, AmqpTlsError> {
    build(url).map_err(|problem| AmqpTlsError {
        url: url.masked().to_string(),
        problem,
    })
}

/// `raw` without the TLS parameters, and those parameters.
fn strip_params(raw: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut parsed = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    let (tls, rest): (Vec<_>, Vec<_>) = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .partition(|(k, _)| PARAMS.contains(&k.as_str()));
    if tls.is_empty() {
        return Ok((raw.to_string(), tls));
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    Ok((parsed.to_string(), tls))
}

fn build(url: &SecretUrl) -> Result<AmqpTarget, String> {
    let mut uris = Vec::new();
    let mut tls = Vec::new();
    for host in url.hosts() {
        // Every host shares the query, so the parameters are the same.
        let (uri, params) = strip_params(host.expose())?;
        uris.push(uri);
        tls = params;
    }
    let tls_scheme = url
        .expose()
        .split_once("://")
        .is_some_and(|(s, _)| s.eq_ignore_ascii_case("amqps"));
    let param = |name: &str| {
        tls.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if !tls.is_empty() && !tls_scheme {
        return Err("cacertfile, certfile and keyfile need amqps:// (TLS)".to_string());
    }
    const CA_HINT: &str = "give the PEM file of the CA that signed the broker's certificate";
    let cacertfile = param("cacertfile");
    let cert_chain = match &cacertfile {
        Some(path) => {
            read_certs(path.as_ref()).map_err(|e| format!("cacertfile: {e}; {CA_HINT}"))?;
            Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cacertfile: cannot read {path}: {e}; {CA_HINT}"))?,
            )
        }
        None => None,
    };
    const CLIENT_HINT: &str = "give the client's certificate and its private key as PEM files";
    let identity = match (param("certfile"), param("keyfile")) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            read_certs(cert.as_ref()).map_err(|e| format!("certfile: {e}; {CLIENT_HINT}"))?;
            read_key(key.as_ref()).map_err(|e| format!("keyfile: {e}; {CLIENT_HINT}"))?;
            let pem = std::fs::read(&cert).map_err(|e| format!("certfile: {cert}: {e}"))?;
            let key = std::fs::read(&key).map_err(|e| format!("keyfile: {key}: {e}"))?;
            Some(OwnedIdentity::PKCS8 { pem, key })
        }
        _ => return Err(format!("certfile and keyfile go together; {CLIENT_HINT}")),
    };
    Ok(AmqpTarget {
        uris,
        tls: OwnedTLSConfig {
            identity,
            cert_chain,
        },
        cacertfile,
        tls_scheme,
    })
}
