//! PEM files named in connection URLs (CA bundles, client certificates and
//! keys) and the system's root certificates, read and checked with errors
//! that name the file and say what was expected.

use rustls::RootCertStore;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

fn pem_reason(path: &Path, e: pem::Error) -> String {
    match e {
        pem::Error::Io(io) => format!("cannot read {}: {io}", path.display()),
        pem::Error::NoItemsFound => format!("{} holds no PEM block", path.display()),
        other => format!("{} is not a valid PEM file ({other:?})", path.display()),
    }
}

/// The certificates of a PEM file (`-----BEGIN CERTIFICATE-----` blocks);
/// an error when the file cannot be read, is not PEM or holds none.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    // Read it first: a missing file is then "cannot read", not "no certificate".
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_reason(path, e))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// Root certificates from a PEM CA bundle; an error when none of them is a
/// usable certificate.
pub fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(read_certs(path)?);
    if added == 0 {
        return Err(format!(
            "{} holds no usable CA certificate (each block failed to parse)",
            path.display()
        ));
    }
    Ok(roots)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "{} holds no PEM private key (-----BEGIN PRIVATE KEY-----)",
            path.display()
        ),
        other => pem_reason(path, other),
    })
}

/// The system's root certificates (rustls-native-certs: the OS store, or
/// the bundle named by `SSL_CERT_FILE` / `SSL_CERT_DIR` when set).
pub fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!(
            "no system root certificate found{why}; set SSL_CERT_FILE to a CA bundle"
        ));
    }
    Ok(roots)
}
