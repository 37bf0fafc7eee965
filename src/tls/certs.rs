//! Certificates for a TLS frontend: PEM chains and keys read when the
//! configuration is read (so a bad file refuses the start or the reload,
//! naming the file), and a resolver that picks the chain whose names cover
//! the client's SNI, else the first one.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// One certificate chain and its key, as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A frontend's TLS: the files, and the rustls configuration built from
/// them. Equal when the files are (a reload reads them again anyway).
#[derive(Clone)]
pub struct TlsSettings {
    pub files: Vec<TlsFiles>,
    pub server: Arc<ServerConfig>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("TlsSettings").field("files", &self.files).finish_non_exhaustive()
    }
}

impl PartialEq for TlsSettings {
    fn eq(&self, other: &TlsSettings) -> bool {
        self.files == other.files
    }
}

/// Read every chain and key and build the server configuration: TLS 1.2
/// and 1.3 with rustls' default (modern, forward-secret, AEAD-only)
/// cipher suites, ALPN `http/1.1`.
pub fn load(files: &[TlsFiles]) -> Result<TlsSettings, String> {
    if files.is_empty() {
        return Err("no certificate given".into());
    }
    let mut keys = Vec::with_capacity(files.len());
    let provider = rustls::crypto::ring::default_provider();
    for f in files {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&f.cert)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| format!("certificate file {}: {e}", f.cert.display()))?;
        if chain.is_empty() {
            return Err(format!("certificate file {}: no certificate in it", f.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&f.key).map_err(|e| format!("key file {}: {e}", f.key.display()))?;
        let signing =
            provider.key_provider.load_private_key(key).map_err(|e| format!("key file {}: {e}", f.key.display()))?;
        let certified = CertifiedKey::new(chain, signing);
        certified
            .keys_match()
            .map_err(|e| format!("key file {} does not match {}: {e}", f.key.display(), f.cert.display()))?;
        keys.push(Arc::new(certified));
    }
    let mut server = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni { keys }));
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsSettings { files: files.to_vec(), server: Arc::new(server) })
}

/// The first chain whose certificate is valid for the client's SNI; the
/// first chain when there is no SNI or no chain matches.
#[derive(Debug)]
struct BySni {
    keys: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let wanted = hello.server_name().and_then(|n| ServerName::try_from(n.to_string()).ok());
        if let Some(name) = wanted {
            for k in &self.keys {
                let Some(der) = k.cert.first() else { continue };
                if let Ok(cert) = webpki::EndEntityCert::try_from(der)
                    && cert.verify_is_valid_for_subject_name(&name).is_ok()
                {
                    return Some(k.clone());
                }
            }
        }
        self.keys.first().cloned()
    }
}
