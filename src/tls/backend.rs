//! TLS towards backends (a pool's `backend_tls`): `verify` checks the
//! backend's certificate against the CA file given, for the server name
//! given (else the backend's IP address); `insecure` accepts any
//! certificate and says so in its name. Built when the configuration is
//! read, so a bad CA file refuses the start or the reload.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendTlsMode {
    /// Check the certificate against `backend_ca`.
    Verify,
    /// Encrypt, check nothing.
    Insecure,
}

impl FromStr for BackendTlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<BackendTlsMode, String> {
        match s.trim() {
            "verify" => Ok(BackendTlsMode::Verify),
            "insecure" => Ok(BackendTlsMode::Insecure),
            _ => Err(format!("invalid backend_tls \"{s}\" (expected off, verify or insecure)")),
        }
    }
}

impl BackendTlsMode {
    pub fn name(self) -> &'static str {
        match self {
            BackendTlsMode::Verify => "verify",
            BackendTlsMode::Insecure => "insecure",
        }
    }
}

/// A pool's TLS towards its backends.
#[derive(Clone)]
pub struct BackendTls {
    pub mode: BackendTlsMode,
    pub ca: Option<PathBuf>,
    /// The name asked for (SNI) and checked; `None`: the backend's IP address.
    pub sni: Option<String>,
    pub client: Arc<ClientConfig>,
}

impl fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("BackendTls").field("mode", &self.mode).field("ca", &self.ca).field("sni", &self.sni).finish()
    }
}

impl PartialEq for BackendTls {
    fn eq(&self, o: &BackendTls) -> bool {
        (self.mode, &self.ca, &self.sni) == (o.mode, &o.ca, &o.sni)
    }
}

impl BackendTls {
    /// The name a connection to a backend at `ip` asks for.
    pub fn server_name(&self, ip: IpAddr) -> ServerName<'static> {
        self.sni.as_ref().and_then(|n| ServerName::try_from(n.clone()).ok()).unwrap_or(ServerName::IpAddress(ip.into()))
    }
}

/// Build the client configuration: TLS 1.2 and 1.3, ALPN `http/1.1`.
pub fn load(mode: BackendTlsMode, ca: Option<PathBuf>, sni: Option<String>) -> Result<BackendTls, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if let Some(name) = &sni {
        ServerName::try_from(name.clone()).map_err(|_| format!("invalid backend_sni \"{name}\""))?;
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut client = match mode {
        BackendTlsMode::Verify => {
            let path = ca.as_ref().ok_or("backend_tls = \"verify\" needs backend_ca (the CA file to check against)")?;
            let mut roots = RootCertStore::empty();
            let certs =
                CertificateDer::pem_file_iter(path).map_err(|e| format!("backend_ca {}: {e}", path.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("backend_ca {}: {e}", path.display()))?;
                roots.add(c).map_err(|e| format!("backend_ca {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("backend_ca {}: no certificate in it", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        BackendTlsMode::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
    };
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(BackendTls { mode, ca, sni, client: Arc::new(client) })
}

/// `insecure`: any certificate passes; signatures are still checked, so
/// the peer holds the key of the certificate it showed.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
