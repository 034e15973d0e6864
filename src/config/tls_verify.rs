//! The two weaker server-certificate checks libpq offers and rustls does
//! not, in one verifier ([`LibpqVerifier`]): none at all (`sslmode=require`,
//! `prefer`) and the chain without the host name (`sslmode=verify-ca`).
//! Both still check the handshake signatures with the ring provider's
//! algorithms.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// The ring provider, the one crypto provider of this build.
pub fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server-certificate check of libpq's weaker modes: with no roots,
/// any certificate is accepted (`sslmode=require` without a root
/// certificate: the connection is encrypted, not authenticated); with
/// roots, the chain is checked but not the host name (`sslmode=verify-ca`:
/// the WebPKI verifier, with only a name mismatch forgiven). The handshake
/// signatures are checked with `provider`'s algorithms either way.
#[derive(Debug)]
pub struct LibpqVerifier {
    provider: Arc<CryptoProvider>,
    /// `None`: any certificate is accepted.
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl LibpqVerifier {
    /// Accept any certificate, with the signature algorithms of `provider`.
    pub fn accept_any(provider: Arc<CryptoProvider>) -> Self {
        Self {
            provider,
            chain: None,
        }
    }

    /// Verify the chain against `roots` with `provider`'s algorithms, not
    /// the host name.
    pub fn chain_only(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let chain = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
        Ok(Self {
            provider,
            chain: Some(chain),
        })
    }
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // The chain was verified before the name was looked at.
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls error inside an error chain (a TLS handshake failure wrapped
/// in `io::Error` and the client's own error), if any.
pub fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<Error>() {
            return Some(r);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<Error>())
        {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

/// Whether `err` is the server's certificate failing verification.
pub fn is_untrusted(err: &Error) -> bool {
    matches!(err, Error::InvalidCertificate(_))
}
