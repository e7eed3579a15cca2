#![doc = include_str!("../README.md")]

mod error;
pub mod faults;
mod http;
mod im;
mod inbound;
mod push;
pub mod seed;
mod state;
mod ticket_guard;
mod tls;
mod upload;
mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use axum::{Extension, Router};
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::ids::Uid;
use tokio::net::TcpListener;

pub use error::Error;
pub use faults::{Fault, ScriptedFault};
pub use seed::{Account, Conversation, Seed};
pub use state::{ReceivedImage, ReceivedMessage, Transport};
pub use tls::TlsConfig;

/// Largest storage-node request body: a 20 MB image in one request, with room.
const UPLOAD_BODY_LIMIT: usize = 64 * 1024 * 1024;

use state::Shared;

/// The sandbox server: build it from a [`Seed`], keep a [`SandboxHandle`] to script
/// and inspect it, then [`Sandbox::run`] it on a listener you bound (or
/// [`Sandbox::run_tls`] for `https://` and `wss://`).
pub struct Sandbox {
    shared: Arc<Shared>,
}

impl Sandbox {
    /// A sandbox with the given seed data.
    ///
    /// # Errors
    /// [`Error::Seed`] when the seed is inconsistent.
    pub fn new(seed: Seed) -> Result<Self, Error> {
        seed.validate()?;
        Ok(Self {
            shared: Arc::new(Shared::new(seed)),
        })
    }

    /// A handle for faults and inspection; it stays valid after `run` starts.
    pub fn handle(&self) -> SandboxHandle {
        SandboxHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The router serving every endpoint (also usable without a socket).
    pub fn router(&self) -> Router {
        let shared = Arc::clone(&self.shared);
        let mut router: Router = Router::new()
            .route("/ws/v2", get(ws::upgrade))
            .route("/messages", get(http::messages_page))
            .route("/_sandbox/messages", get(http::list_messages))
            .route(
                "/_sandbox/faults",
                get(http::list_faults)
                    .post(http::add_faults)
                    .delete(http::clear_faults),
            )
            .route("/_sandbox/seed", get(http::seed))
            .route("/_sandbox/objects/{*oid}", get(upload::object))
            .route(
                "/_sandbox/inbound",
                post(inbound::inbound).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
            )
            .route("/im/media/{*path}", get(upload::media))
            .route("/", get(upload::action).post(upload::action))
            .route(
                "/upload/v1/{*store_uri}",
                post(upload::storage).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
            )
            .with_state(Arc::clone(&shared));
        let routes = [
            cmd::SEND_MESSAGE,
            cmd::GET_MESSAGES_BY_USER_INIT_V2,
            cmd::GET_MESSAGES_BY_CONVERSATION,
            cmd::GET_CONVERSATION_INFO_V2,
            cmd::GET_CONVERSATION_INFO_LIST_V2,
            cmd::MEDIA_UPLOAD_CONFIG,
        ]
        .into_iter()
        .filter_map(|c| cmd::route(c).map(|r| (c, r)));
        for (command, route) in routes {
            let im = Router::new()
                .route(
                    &format!("/{route}"),
                    post(http::im_route).options(http::preflight),
                )
                .with_state((Arc::clone(&shared), command));
            router = router.merge(im);
        }
        router
    }

    /// Serves on `listener` until `shutdown` completes.
    ///
    /// # Errors
    /// I/O errors from the listener.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let router = self.router();
        // Replies are small and latency-bound: do not let Nagle hold them back.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }

    /// Serves over TLS on `listener` until `shutdown` completes: the same
    /// endpoints as [`Sandbox::run`], as `https://` and `wss://`, and every
    /// URL the sandbox hands out (pushed media) says `https`. Connections
    /// whose handshake fails or takes over 10 s are dropped (logged at debug).
    ///
    /// # Errors
    /// I/O errors from the listener.
    pub async fn run_tls(
        self,
        listener: TcpListener,
        tls: &TlsConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let router = self.router().layer(Extension(http::ServedOverTls));
        axum::serve(tls::TlsListener::new(listener, tls), router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// Scripts faults into a running sandbox and inspects what it received. Each
/// fault helper takes how many times the fault fires.
#[derive(Clone)]
pub struct SandboxHandle {
    shared: Arc<Shared>,
}

impl SandboxHandle {
    /// Adds a fault that fires `times` times (`None`: until cleared).
    pub fn inject(&self, fault: Fault, times: Option<u32>) {
        self.shared
            .lock()
            .faults
            .add(ScriptedFault { fault, times });
    }

    /// The next `n` WS IM requests are ignored (never processed or answered).
    pub fn ws_unanswered(&self, n: u32) {
        self.inject(Fault::WsUnanswered, Some(n));
    }

    /// The next `n` sends are stored but their replies are lost.
    pub fn drop_acks(&self, n: u32) {
        self.inject(Fault::DropAcks, Some(n));
    }

    /// The next `n` send replies are delayed by `delay`.
    pub fn delay_acks(&self, delay: Duration, n: u32) {
        self.inject(
            Fault::DelayAcks {
                delay_ms: delay.as_millis() as u64,
            },
            Some(n),
        );
    }

    /// The next `n` sends (cmd 100) are taken (stamped, stored, answered)
    /// only after `delay`: a slow uplink.
    pub fn delay_sends(&self, delay: Duration, n: u32) {
        self.inject(
            Fault::DelaySends {
                delay_ms: delay.as_millis() as u64,
            },
            Some(n),
        );
    }

    /// The socket is closed when each of the next `n` WS IM requests arrives.
    pub fn close_socket_on_request(&self, n: u32) {
        self.inject(Fault::CloseSocket, Some(n));
    }

    /// The next `n` `"hi"` heartbeats go unanswered.
    pub fn mute_heartbeats(&self, n: u32) {
        self.inject(Fault::MuteHeartbeats, Some(n));
    }

    /// How many `"hi"` heartbeats the sandbox has received.
    pub fn heartbeats(&self) -> u64 {
        self.shared.lock().heartbeats
    }

    /// The next `n` WebSocket handshakes are refused with 503.
    pub fn refuse_handshake(&self, n: u32) {
        self.inject(Fault::RefuseHandshake, Some(n));
    }

    /// Handshakes and IM requests are treated as an invalid session, `n` times.
    pub fn invalid_session(&self, n: u32) {
        self.inject(Fault::InvalidSession, Some(n));
    }

    /// From now on (or no longer), an HTTP send without a valid ticket guard
    /// (the five `tt-ticket-guard-*` entries and a `ztca-dpop` proof signed by
    /// their key) gets the gateway rejection 200001, naming what is wrong.
    /// Off by default: whether TikTok checks them is unknown.
    pub fn require_ticket_guard(&self, on: bool) {
        self.shared
            .require_ticket_guard
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The next `n` IM requests get the gateway rejection 200001.
    pub fn gateway_rejection(&self, n: u32) {
        self.inject(Fault::GatewayRejection, Some(n));
    }

    /// The next `n` sends get business code 7193 (message request limit).
    pub fn message_request_limit(&self, n: u32) {
        self.inject(Fault::MessageRequestLimit, Some(n));
    }

    /// The next `n` sends get business code 7180 (sending too fast).
    pub fn rate_limit(&self, n: u32) {
        self.inject(Fault::RateLimit, Some(n));
    }

    /// The next `n` IM requests get status_code 6 (SERVER_ERR).
    pub fn server_error(&self, n: u32) {
        self.inject(Fault::ServerError, Some(n));
    }

    /// The next `n` upload credential calls (cmd 2059) are refused.
    pub fn reject_credentials(&self, n: u32) {
        self.inject(Fault::RejectCredentials, Some(n));
    }

    /// The storage node reports a CRC-32 mismatch for the next `n` uploads.
    pub fn crc_mismatch(&self, n: u32) {
        self.inject(Fault::CrcMismatch, Some(n));
    }

    /// The storage node answers 503 to the next `n` requests.
    pub fn storage_down(&self, n: u32) {
        self.inject(Fault::StorageDown, Some(n));
    }

    /// The next `n` commits fail with 500.
    pub fn commit_failure(&self, n: u32) {
        self.inject(Fault::CommitFailure, Some(n));
    }

    /// The next `n` signed upload-API calls get 403 SignatureDoesNotMatch.
    pub fn signature_mismatch(&self, n: u32) {
        self.inject(Fault::SignatureMismatch, Some(n));
    }

    /// The next `n` ImageX Applies name `host` (a bare host or a URL) as the
    /// upload host instead of the sandbox.
    pub fn name_upload_host(&self, host: &str, n: u32) {
        self.inject(Fault::UploadHost { host: host.into() }, Some(n));
    }

    /// The next `n` ImageX Applies name a store URI, and their part uploads
    /// an upload id, with characters a URL must escape.
    pub fn odd_upload_names(&self, n: u32) {
        self.inject(Fault::OddUploadNames, Some(n));
    }

    /// The next `n` ImageX Applies answer `bytes` bytes (padded JSON).
    pub fn large_upload_answer(&self, bytes: u64, n: u32) {
        self.inject(Fault::LargeUploadAnswer { bytes }, Some(n));
    }

    /// Every upload credential issued so far expires now: the next ImageX call
    /// made with one is answered `ExpiredToken`.
    pub fn expire_upload_credentials(&self) {
        self.shared.lock().upload.expire_all_credentials();
    }

    /// The plain bytes of a committed image (decrypted when it was committed
    /// with `cipher_v2`), by its path.
    pub fn object(&self, oid: &str) -> Option<Vec<u8>> {
        let object = self.shared.lock().upload.objects.get(oid).cloned();
        object.and_then(|o| o.plain())
    }

    /// A committed image as stored and downloaded by receivers: nonce ‖
    /// AES-256-GCM ciphertext ‖ tag for a `cipher_v2` commit, else the plain
    /// bytes.
    pub fn encrypted_object(&self, oid: &str) -> Option<Vec<u8>> {
        let object = self.shared.lock().upload.objects.get(oid).cloned();
        object.map(|o| o.blob.as_ref().clone())
    }

    /// The next `n` pushes (cmd 500, 501, 510, 705) to the seeded account
    /// named `account` are not sent to any of its sockets; messages are still
    /// stored, so history and the inbox have them (a client's catch-up path).
    pub fn drop_pushes(&self, account: &str, n: u32) {
        let fault = Fault::DropPushes {
            account: account.into(),
        };
        self.inject(fault, Some(n));
    }

    /// The next `n` HTTP IM requests get a bare HTTP `status`.
    pub fn http_status(&self, status: u16, n: u32) {
        self.inject(Fault::HttpStatus { status }, Some(n));
    }

    /// The faults still in force, with how many more times each fires.
    pub fn faults(&self) -> Vec<ScriptedFault> {
        self.shared.lock().faults.list()
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        let state = self.shared.lock();
        state.messages.iter().map(|m| m.received.clone()).collect()
    }

    /// The seed data.
    pub fn seed(&self) -> &Seed {
        &self.shared.seed
    }

    /// How many WebSockets `uid` has open.
    pub fn open_sockets(&self, uid: Uid) -> usize {
        self.shared.lock().sockets.get(&uid).map_or(0, Vec::len)
    }

    /// How many WebSocket handshakes succeeded so far.
    pub fn handshakes(&self) -> u64 {
        self.shared.lock().handshakes
    }

    /// The seeded account named `name`.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.shared.seed.accounts.iter().find(|a| a.name == name)
    }

    /// An account by uid.
    pub fn account_by_uid(&self, uid: Uid) -> Option<&Account> {
        self.shared.account_by_uid(uid)
    }
}
