//! The sandbox served over TLS (`Sandbox::run_tls`) with a self-signed
//! certificate, reached by clients that trust only that certificate:
//! `https://` pages and IM routes, the `wss://` frontier, and a client that
//! does not trust it or does not speak TLS getting nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::SinkExt as _;
use tiktok_dm_sandbox::{Sandbox, SandboxHandle, Seed, TlsConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::websocket::{Ws, exchange, next_binary, working_client_query};
use crate::{new_id, send_request_to};

/// A running sandbox as a client reaches it: over plain HTTP and WS, or over
/// TLS with clients that trust only its certificate.
#[derive(Clone)]
pub struct Server {
    pub handle: SandboxHandle,
    pub addr: SocketAddr,
    /// `None`: plain HTTP and WS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    certificate_pem: Option<String>,
}

impl From<&tiktok_dm_test_support::TestSandbox> for Server {
    fn from(sandbox: &tiktok_dm_test_support::TestSandbox) -> Self {
        Self {
            handle: sandbox.handle.clone(),
            addr: sandbox.addr,
            tls: None,
            certificate_pem: None,
        }
    }
}

impl Server {
    /// `https` over TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    pub fn ws_url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}/ws/v2", self.addr)
    }

    /// An HTTP client that, over TLS, trusts the sandbox's certificate only.
    pub fn http(&self) -> reqwest::Client {
        let client = crate::http();
        match &self.certificate_pem {
            None => client,
            Some(pem) => reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
                .build()
                .unwrap(),
        }
    }

    /// Opens the frontier socket with `request` (over TLS trusting only the
    /// sandbox's certificate).
    pub async fn connect_ws(
        &self,
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<(Ws, http::HeaderMap), WsError> {
        let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        let (ws, response) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
                .await?;
        Ok((ws, response.headers().clone()))
    }
}

/// A sandbox served over TLS on `127.0.0.1:0`; dropping it stops the server.
pub struct TlsSandbox {
    pub server: Server,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsSandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

/// A rustls client configuration (ring) whose only root is `certificate_pem`.
pub fn trusting_only(certificate_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(certificate_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Starts a default-seed sandbox over TLS with a fresh self-signed certificate.
pub async fn spawn_tls() -> TlsSandbox {
    tiktok_dm_test_support::init_test_tracing();
    let sandbox = Sandbox::new(Seed::default_seed().unwrap()).unwrap();
    let tls = TlsConfig::self_signed(&["im-api-sg.tiktok.com"]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server {
        handle: sandbox.handle(),
        addr: listener.local_addr().unwrap(),
        tls: Some(trusting_only(tls.certificate_pem())),
        certificate_pem: Some(tls.certificate_pem().to_owned()),
    };
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = rx.await;
        };
        sandbox.run_tls(listener, &tls, stop).await.unwrap();
    });
    TlsSandbox {
        server,
        shutdown: Some(tx),
        task,
    }
}

#[tokio::test]
async fn a_tls_sandbox_serves_the_messages_page_over_https_to_a_client_trusting_only_its_certificate()
 {
    let tls = spawn_tls().await;
    let server = &tls.server;
    let alice = server.handle.account("alice").unwrap().clone();
    let page = server
        .http()
        .get(format!("{}/messages", server.base_url()))
        .header("cookie", format!("sessionid={}", alice.session))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.version(), reqwest::Version::HTTP_11);
    let html = page.text().await.unwrap();
    assert!(html.contains(&alice.uid.to_string()), "{html}");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_or_speaks_plain_http_gets_nothing_and_the_sandbox_goes_on()
 {
    let tls = spawn_tls().await;
    let server = &tls.server;
    let url = format!("{}/messages", server.base_url());
    let untrusting = reqwest::Client::builder()
        .tls_certs_only(std::iter::empty())
        .build()
        .unwrap();
    assert!(untrusting.get(&url).send().await.is_err());
    let plain = crate::http()
        .get(format!("http://{}/messages", server.addr))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    // A client that connects and says nothing does not hold up the others.
    let _silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let page = server.http().get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn a_wss_frontier_handshake_without_a_subprotocol_succeeds_and_an_im_request_gets_its_lz4_reply()
 {
    let tls = spawn_tls().await;
    let server = &tls.server;
    let alice = server.handle.account("alice").unwrap().clone();
    let query = working_client_query(&alice, Some(9));
    let mut request = format!("{}?{query}", server.ws_url())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "cookie",
        format!("sessionid={}", alice.session).parse().unwrap(),
    );
    let (mut ws, headers) = server.connect_ws(request).await.unwrap();
    assert!(headers.get("sec-websocket-protocol").is_none());
    assert_eq!(headers["handshake-status"], "0");

    ws.send(WsMessage::Text("hi".into())).await.unwrap();
    let c = &server.handle.seed().conversations[0];
    let send = send_request_to(
        &alice,
        &c.conversation_id,
        c.conversation_short_id,
        10009,
        &new_id(31),
        r#"{"aweType":0,"text":"over wss"}"#,
    );
    let (reply, response) = exchange(&mut ws, &send).await;
    assert_eq!(reply.payload_encoding.as_deref(), Some("__lz4"));
    assert_eq!(response.status_code, Some(0));
    let push = next_binary(&mut ws).await;
    assert_eq!(push.service, Some(20032));
    assert_eq!(server.handle.messages()[0].content["text"], "over wss");
}
