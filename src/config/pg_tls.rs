//! libpq's TLS parameters in `DB_URL` (`sslmode`, `sslrootcert`, `sslcert`,
//! `sslkey`), which tokio-postgres does not know: read and removed from
//! the URL, their files loaded, and turned into the tokio-postgres
//! configuration plus the rustls client configuration that behave as libpq
//! does. Modes and defaults: docs/configuration.md, "TLS".

use super::SecretUrl;
use super::tls_files::{read_certs, read_key, read_roots, system_roots};
use super::tls_verify::{LibpqVerifier, ring_provider};
use rustls::{ClientConfig, RootCertStore};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first, TLS (unverified) if the server insists.
    Allow,
    /// TLS (unverified) when the server offers it, else plaintext; the default.
    Prefer,
    /// TLS; the certificate is verified only when a root certificate is
    /// given (then as `verify-ca`).
    Require,
    /// TLS; the chain is verified against the root certificate, not the name.
    VerifyCa,
    /// TLS; the chain and the host name are verified.
    VerifyFull,
}

impl SslMode {
    /// Every accepted value, for messages.
    pub const ACCEPTED: &'static str = "disable, allow, prefer, require, verify-ca or verify-full";

    /// Parse libpq's spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

/// What is wrong with `DB_URL`'s TLS settings (without the URL: see
/// [`PgTlsError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgTlsProblem {
    /// An `sslmode` libpq does not know.
    #[error("sslmode={0:?} is not one of {accepted}", accepted = SslMode::ACCEPTED)]
    SslMode(String),
    /// A file named by a parameter is missing or not what it should be.
    #[error("{param}: {reason}; {hint}")]
    File {
        /// `sslrootcert`, `sslcert` or `sslkey`.
        param: &'static str,
        /// What is wrong with the file.
        reason: String,
        /// What to give instead.
        hint: &'static str,
    },
    /// A verifying mode with no root certificate to verify with.
    #[error(
        "sslmode={mode} verifies the server's certificate, but there is no root certificate \
         ({default} does not exist); add sslrootcert=/path/to/ca.pem (or sslrootcert=system) \
         to the URL, or use sslmode=require to encrypt without verifying"
    )]
    NoRootCert {
        /// The mode.
        mode: &'static str,
        /// libpq's default root file.
        default: String,
    },
    /// libpq refuses the system roots with a mode that does not check the name.
    #[error(
        "sslrootcert=system needs sslmode=verify-full (was {0}): a public CA vouches for names, \
         so the name must be checked"
    )]
    SystemNeedsVerifyFull(&'static str),
    /// Only one of `sslcert` and `sslkey`.
    #[error("sslcert and sslkey go together; give both the client certificate and its key")]
    ClientPair,
    /// The rest of the URL is not something tokio-postgres accepts.
    #[error("{0}")]
    Url(String),
}

/// `DB_URL`'s TLS settings are wrong: one line naming the masked URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DB_URL {url}: {problem}")]
pub struct PgTlsError {
    /// The URL, password masked.
    pub url: String,
    /// What is wrong.
    pub problem: PgTlsProblem,
}

/// How to connect to `DB_URL`: the tokio-postgres configuration (TLS
/// parameters removed, its own `ssl_mode` set) and the rustls configuration
/// (`None` for `sslmode=disable`).
pub struct PgConnectConfig {
    /// For tokio-postgres.
    pub pg: tokio_postgres::Config,
    /// The libpq mode asked for.
    pub mode: SslMode,
    /// Whether the server's certificate is verified (chain, and name for
    /// `verify-full`).
    pub verified: bool,
    /// Where the root certificates came from (`/path`, `system`), if any.
    pub roots_from: Option<String>,
    /// The TLS client configuration, unless the mode is `disable`.
    pub tls: Option<ClientConfig>,
}

const PARAMS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// libpq's default root certificate file, `~/.postgresql/root.crt`.
pub fn default_root_cert() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
}

/// Split `url` into its libpq TLS parameters and the URL without them.
fn split(url: &SecretUrl) -> Result<(Vec<(String, String)>, String), PgTlsProblem> {
    let mut parsed = url::Url::parse(url.expose()).map_err(|e| PgTlsProblem::Url(e.to_string()))?;
    let (tls, rest): (Vec<_>, Vec<_>) = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .partition(|(k, _)| PARAMS.contains(&k.as_str()));
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    Ok((tls, parsed.to_string()))
}

/// Read `url`'s TLS parameters and files; every problem is one line.
pub fn pg_connect_config(url: &SecretUrl) -> Result<PgConnectConfig, PgTlsError> {
    build(url).map_err(|problem| PgTlsError {
        url: url.masked().to_string(),
        problem,
    })
}

fn build(url: &SecretUrl) -> Result<PgConnectConfig, PgTlsProblem> {
    let (params, rest) = split(url)?;
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut pg = tokio_postgres::Config::from_str(&rest).map_err(|e| {
        let why = std::error::Error::source(&e)
            .map(|c| format!("{e}: {c}"))
            .unwrap_or_else(|| e.to_string());
        PgTlsProblem::Url(why)
    })?;
    let root_param = param("sslrootcert");
    let mode = match param("sslmode") {
        Some(m) => SslMode::parse(&m).ok_or(PgTlsProblem::SslMode(m))?,
        // libpq: the system roots make verify-full the default.
        None if root_param.as_deref() == Some("system") => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    pg.ssl_mode(match mode {
        SslMode::Disable | SslMode::Allow => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let file_err = |param: &'static str, hint: &'static str| {
        move |reason: String| PgTlsProblem::File {
            param,
            reason,
            hint,
        }
    };
    const ROOT_HINT: &str = "give the PEM file of the CA that signed the server's certificate, \
                             or sslrootcert=system";
    let default_root = default_root_cert();
    // Roots: an explicit file or `system`; else libpq's default file, if it exists.
    let (roots, roots_from): (Option<RootCertStore>, Option<String>) = match &root_param {
        Some(s) if s == "system" => {
            if mode != SslMode::VerifyFull && mode != SslMode::Disable {
                return Err(PgTlsProblem::SystemNeedsVerifyFull(mode.as_str()));
            }
            let roots = system_roots().map_err(file_err("sslrootcert", ROOT_HINT))?;
            (Some(roots), Some("system".to_string()))
        }
        Some(path) => {
            let roots = read_roots(path.as_ref()).map_err(file_err("sslrootcert", ROOT_HINT))?;
            (Some(roots), Some(path.clone()))
        }
        None => match default_root.as_ref().filter(|p| p.exists()) {
            Some(p) => {
                let roots = read_roots(p).map_err(file_err("sslrootcert", ROOT_HINT))?;
                (Some(roots), Some(p.display().to_string()))
            }
            None if mode.verifies() => {
                return Err(PgTlsProblem::NoRootCert {
                    mode: mode.as_str(),
                    default: default_root
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "~/.postgresql/root.crt".to_string()),
                });
            }
            None => (None, None),
        },
    };
    const CLIENT_HINT: &str = "give the client's certificate and its private key as PEM files";
    let client = match (param("sslcert"), param("sslkey")) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some((
            read_certs(cert.as_ref()).map_err(file_err("sslcert", CLIENT_HINT))?,
            read_key(key.as_ref()).map_err(file_err("sslkey", CLIENT_HINT))?,
        )),
        _ => return Err(PgTlsProblem::ClientPair),
    };
    if mode == SslMode::Disable {
        return Ok(PgConnectConfig {
            pg,
            mode,
            verified: false,
            roots_from: None,
            tls: None,
        });
    }
    let provider = ring_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PgTlsProblem::Url(format!("TLS: {e}")))?;
    // libpq: require/prefer/allow verify like verify-ca when a root file is there.
    let verified = roots.is_some() && !matches!(mode, SslMode::Prefer | SslMode::Allow);
    let builder = match roots {
        Some(roots) if mode == SslMode::VerifyFull => builder.with_root_certificates(roots),
        Some(roots) if verified => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(
                LibpqVerifier::chain_only(Arc::new(roots), provider).map_err(PgTlsProblem::Url)?,
            )),
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LibpqVerifier::accept_any(provider))),
    };
    let tls = match client {
        Some((certs, key)) => {
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| PgTlsProblem::File {
                    param: "sslkey",
                    reason: format!("does not fit sslcert: {e}"),
                    hint: CLIENT_HINT,
                })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(PgConnectConfig {
        pg,
        mode,
        verified,
        roots_from: if verified { roots_from } else { None },
        tls: Some(tls),
    })
}
