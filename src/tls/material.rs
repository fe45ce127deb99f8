//! Certificates, keys and CA bundles read from PEM files and turned into
//! rustls configurations: [`ServerFiles`] for the client-facing listener,
//! [`ClientFiles`] for connections to the cluster's nodes. Every error
//! names the file it is about.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::verify;

/// Whether the listener asks clients for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate asked for.
    None,
    /// Asked for; a client without one is served, one with a certificate
    /// the CA did not sign is refused.
    Optional,
    /// Required, signed by `ca_file`.
    Required,
}

/// How much of a node's certificate keyway checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Signed by the CA, valid now, and for the node's name.
    Full,
    /// Signed by the CA and valid now; any name.
    Ca,
    /// Nothing (tests only; logged as a warning at start).
    None,
}

/// The files of the client-facing listener (`[tls]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFiles {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519).
    pub key_file: PathBuf,
    /// CAs that sign client certificates.
    pub ca_file: Option<PathBuf>,
    /// Whether clients must present a certificate.
    pub client_auth: ClientAuth,
}

/// The files and checks of connections to nodes (`[cluster.tls]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFiles {
    /// CAs that sign the nodes' certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain, for nodes with `tls-auth-clients yes`.
    pub cert_file: Option<PathBuf>,
    /// Its private key.
    pub key_file: Option<PathBuf>,
    /// How much of a node's certificate is checked.
    pub verify: Verify,
}

/// A file that could not be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct TlsError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub why: String,
}

impl TlsError {
    fn new(path: &Path, why: impl fmt::Display) -> TlsError {
        TlsError {
            path: path.to_path_buf(),
            why: why.to_string(),
        }
    }
}

/// The crypto keyway uses: rustls' `ring` provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A listener configuration read from `files`, and its leaf certificate.
pub fn server_config(
    files: &ServerFiles,
) -> Result<(ServerConfig, CertificateDer<'static>), TlsError> {
    let provider = provider();
    let key = certified_key(&files.cert_file, &files.key_file, &provider)?;
    let leaf = key.cert[0].clone();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new(&files.cert_file, e))?;
    let builder = match (files.client_auth, &files.ca_file) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            let why = "tls.client_auth needs tls.ca_file, the CA that signs client certificates";
            return Err(TlsError::new(&files.cert_file, why));
        }
        (auth, Some(ca_file)) => {
            let roots = Arc::new(roots(ca_file)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = match auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier.build().map_err(|e| TlsError::new(ca_file, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let resolver = Arc::new(rustls::sign::SingleCertAndKey::from(key));
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols.clear();
    Ok((config, leaf))
}

/// A configuration for connections to nodes read from `files`, and the
/// leaf of its client certificate, if it has one.
pub fn client_config(
    files: &ClientFiles,
) -> Result<(ClientConfig, Option<CertificateDer<'static>>), TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new(files.ca_file.as_deref().unwrap_or(Path::new("")), e))?;
    let verifier = match (files.verify, &files.ca_file) {
        (Verify::None, _) => verify::accept_any(provider.clone()),
        (_, None) => {
            let why = "cluster.tls.ca_file is needed unless cluster.tls.verify = \"none\"";
            return Err(TlsError::new(Path::new("cluster.tls.ca_file"), why));
        }
        (mode, Some(ca_file)) => {
            let roots = Arc::new(roots(ca_file)?);
            verify::web_pki(roots, provider.clone(), mode == Verify::Ca)
                .map_err(|e| TlsError::new(ca_file, e))?
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&files.cert_file, &files.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let key = certified_key(cert_file, key_file, &provider)?;
            let leaf = key.cert[0].clone();
            let resolver = Arc::new(rustls::sign::SingleCertAndKey::from(key));
            Ok((builder.with_client_cert_resolver(resolver), Some(leaf)))
        }
        (None, None) => Ok((builder.with_no_client_auth(), None)),
        (Some(path), None) | (None, Some(path)) => Err(TlsError::new(
            path,
            "cluster.tls.cert_file and cluster.tls.key_file go together",
        )),
    }
}

/// A certificate chain and its private key, checked to belong together.
fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TlsError::new(key_file, format!("no private key: {}", pem_error(e))))?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        TlsError::new(
            key_file,
            format!("not the key of {}: {e}", cert_file.display()),
        )
    })?;
    Ok(key)
}

/// Every certificate in a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::new(path, pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(path, pem_error(e)))?;
    if chain.is_empty() {
        return Err(TlsError::new(path, "no certificate in the file"));
    }
    Ok(chain)
}

/// The CAs of a PEM bundle.
fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store
            .add(cert)
            .map_err(|e| TlsError::new(path, format!("not a CA certificate: {e}")))?;
    }
    Ok(store)
}

/// A PEM reader's error in words: the marker of a file cut short is
/// text, not the list of bytes the reader's own message shows.
fn pem_error(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::MissingSectionEnd { end_marker } => format!(
            "cut short: no \"-----END {}-----\" line (a file still being written?)",
            String::from_utf8_lossy(&end_marker)
        ),
        other => other.to_string(),
    }
}
