//! How keyway checks a node's certificate (`cluster.tls.verify`): the
//! full WebPKI check, the same without the name (`ca`: nodes announce IP
//! addresses that certificates often do not list), or nothing (`none`).
//! The handshake's signatures are checked in every mode: a peer must still
//! hold the key of the certificate it shows.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{VerifierBuilderError, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The WebPKI check against `roots`; with `any_name`, a certificate valid
/// for another name (or none) passes.
pub fn web_pki(
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    any_name: bool,
) -> Result<Arc<dyn ServerCertVerifier>, VerifierBuilderError> {
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build()?;
    Ok(if any_name {
        Arc::new(Lenient {
            chain: Some(inner),
            provider,
        })
    } else {
        inner
    })
}

/// Accepts any certificate (`verify = "none"`).
pub fn accept_any(provider: Arc<CryptoProvider>) -> Arc<dyn ServerCertVerifier> {
    Arc::new(Lenient {
        chain: None,
        provider,
    })
}

/// Less than the full check: the WebPKI check of `chain` minus the name,
/// or no certificate check at all without one; the handshake's signatures
/// are checked with the provider's algorithms, as the WebPKI verifier
/// does.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
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
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
