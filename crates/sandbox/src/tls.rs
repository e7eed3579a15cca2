//! Serving over TLS: a certificate (self-signed at start, or the caller's
//! PEM) and a listener that completes each rustls handshake before axum sees
//! the connection, so the same router answers `https://` and `wss://`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use base64::Engine as _;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::Error;

/// How long a client has to complete its handshake: a silent client is
/// dropped after this, and never holds up the others.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; past this, accepting waits for one to end.
const MAX_HANDSHAKES: usize = 1024;

/// Names every self-signed certificate covers.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A server certificate with its key, for [`crate::Sandbox::run_tls`], and
/// the certificate as PEM for clients to trust. `Debug` shows neither.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
    certificate_pem: String,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// A fresh self-signed certificate (ECDSA P-256, no CA) whose subject
    /// alternative names are `localhost`, `127.0.0.1`, `::1` and `names`
    /// (DNS names or IP addresses), e.g. `im-api-sg.tiktok.com` for a client
    /// whose hosts are mapped to the sandbox.
    ///
    /// # Errors
    /// [`Error::TlsCertificate`] when a name is neither a DNS name nor an IP
    /// address, or the certificate cannot be made.
    pub fn self_signed<S: AsRef<str>>(names: &[S]) -> Result<Self, Error> {
        let mut sans: Vec<String> = LOOPBACK_NAMES.iter().map(|n| (*n).to_owned()).collect();
        for name in names.iter().map(AsRef::as_ref) {
            if ServerName::try_from(name).is_err() {
                return Err(Error::TlsCertificate(format!(
                    "{name:?} is neither a DNS name nor an IP address"
                )));
            }
            if !sans.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                sans.push(name.to_owned());
            }
        }
        let generated = rcgen::generate_simple_self_signed(sans)
            .map_err(|e| Error::TlsCertificate(e.to_string()))?;
        let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
        let server = server_config(vec![generated.cert.der().clone()], key)?;
        Ok(Self {
            server,
            certificate_pem: generated.cert.pem(),
        })
    }

    /// The caller's certificate chain (PEM, leaf first) and private key (PEM:
    /// PKCS #8, PKCS #1 or SEC 1).
    ///
    /// # Errors
    /// [`Error::TlsCertificate`] when `certificate_pem` holds no certificate
    /// or bad PEM; [`Error::TlsKey`] when `key_pem` holds no private key or
    /// bad PEM (the message never quotes the file); [`Error::Tls`] when rustls
    /// refuses the pair, e.g. the key is not the certificate's.
    pub fn from_pem(certificate_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        let chain = CertificateDer::pem_slice_iter(certificate_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::TlsCertificate(format!("not valid PEM: {e}")))?;
        if chain.is_empty() {
            return Err(Error::TlsCertificate(
                "no PEM CERTIFICATE section found".to_owned(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            Error::TlsKey(match e {
                pem::Error::NoItemsFound => {
                    "no PEM private key found (PKCS #8, PKCS #1 or SEC 1)".to_owned()
                }
                // Other PEM errors may quote a line of the file: say only
                // what kind of problem it is.
                _ => "not valid PEM".to_owned(),
            })
        })?;
        let certificate_pem = chain.iter().map(|c| pem_block(c)).collect();
        Ok(Self {
            server: server_config(chain, key)?,
            certificate_pem,
        })
    }

    /// The certificate chain as PEM: what a client should trust (for a
    /// self-signed certificate, the certificate itself).
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }
}

/// A rustls server configuration on the ring provider (never the process
/// default, which could be another), speaking HTTP/1.1 as the router does.
fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// One DER certificate as a PEM block, 64 base64 characters a line.
fn pem_block(der: &CertificateDer<'_>) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A TCP listener whose connections axum gets only once their TLS handshake
/// has completed. Handshakes run concurrently, each bounded by
/// [`HANDSHAKE_TIMEOUT`]; a failed one is logged at debug and skipped.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, tls: &TlsConfig) -> Self {
        Self {
            tcp,
            acceptor: TlsAcceptor::from(Arc::clone(&tls.server)),
            handshakes: JoinSet::new(),
        }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    // Cancel-safe, as axum needs at shutdown: both awaited futures are, and a
    // handshake in progress stays in the set for the next call.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // At least one branch is enabled: a full set is not empty.
            let room = self.handshakes.len() < MAX_HANDSHAKES;
            let pending = !self.handshakes.is_empty();
            tokio::select! {
                // axum's own accept logs and retries accept errors.
                (tcp, addr) = Listener::accept(&mut self.tcp), if room => {
                    // Replies are small and latency-bound: no Nagle delay.
                    let _ = tcp.set_nodelay(true);
                    self.handshakes.spawn(handshake(self.acceptor.clone(), tcp, addr));
                }
                Some(done) = self.handshakes.join_next(), if pending => {
                    match done {
                        Ok(Some(connection)) => return connection,
                        Ok(None) => {}
                        Err(error) => tracing::debug!(%error, "TLS handshake task ended"),
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    addr: SocketAddr,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some((tls, addr)),
        Ok(Err(error)) => {
            tracing::debug!(%addr, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%addr, "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_refuses_a_name_that_is_not_a_host() {
        let err = TlsConfig::self_signed(&["not a host!"]).unwrap_err();
        assert!(matches!(err, Error::TlsCertificate(_)), "{err}");
    }

    #[test]
    fn a_self_signed_certificate_reads_back_through_from_pem_s_chain() {
        let tls = TlsConfig::self_signed(&["im-api-sg.tiktok.com"]).unwrap();
        let chain: Vec<_> = CertificateDer::pem_slice_iter(tls.certificate_pem().as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(chain.len(), 1);
        assert_eq!(
            pem_block(&chain[0]),
            tls.certificate_pem().replace("\r\n", "\n")
        );
    }

    #[test]
    fn a_key_file_without_a_key_is_a_key_error_that_quotes_nothing() {
        let tls = TlsConfig::self_signed::<&str>(&[]).unwrap();
        let cert = tls.certificate_pem().as_bytes();
        let err =
            TlsConfig::from_pem(cert, b"-----BEGIN PRIVATE KEY-----\nsecret!!\n").unwrap_err();
        assert!(matches!(err, Error::TlsKey(_)), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        let err = TlsConfig::from_pem(cert, cert).unwrap_err();
        assert!(matches!(err, Error::TlsKey(_)), "{err}");
        let err = TlsConfig::from_pem(b"", cert).unwrap_err();
        assert!(matches!(err, Error::TlsCertificate(_)), "{err}");
    }

    #[test]
    fn a_key_that_is_not_the_certificate_s_is_refused_by_rustls() {
        let tls = TlsConfig::self_signed::<&str>(&[]).unwrap();
        let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let err =
            TlsConfig::from_pem(tls.certificate_pem().as_bytes(), other.as_bytes()).unwrap_err();
        assert!(matches!(err, Error::Tls(_)), "{err}");
    }

    #[test]
    fn the_caller_s_certificate_and_key_are_served_and_only_the_certificate_is_shown() {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = generated.signing_key.serialize_pem();
        let mut both = key.clone();
        both.push_str(&generated.cert.pem());
        let tls = TlsConfig::from_pem(both.as_bytes(), key.as_bytes()).unwrap();
        assert!(!tls.certificate_pem().contains("PRIVATE KEY"));
        assert_eq!(
            tls.certificate_pem(),
            generated.cert.pem().replace("\r\n", "\n")
        );
        assert_eq!(format!("{tls:?}"), "TlsConfig { .. }");
    }
}
