//! Command-line arguments (clap), before validation.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Send TikTok direct messages from scripts and automations.
#[derive(Debug, Parser)]
#[command(name = "tiktok-dm", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a text and/or image DM into an existing conversation; prints one JSON object.
    Send(Box<SendArgs>),
    /// Print one JSON line per event of an account (messages in and out,
    /// reads, typing, reactions, deletions) until interrupted.
    Listen(ListenArgs),
    /// List an account's conversations (with short ids), or one's history.
    Conversations(ConversationsArgs),
    /// Run the TikTok sandbox (an emulator of TikTok's IM servers) until interrupted.
    Sandbox(SandboxArgs),
    /// Decode TikTok wire bytes (base64 or raw) to JSON, or re-encode them.
    Decode(DecodeArgs),
    /// Start a sandbox in-process, send a DM through the real client, show the result.
    Demo,
    /// Run the HTTP gateway (API keys, quota, durable outbox).
    Serve(ServeArgs),
    /// Create, list or revoke the gateway's API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Store, list, check or remove TikTok accounts (sessions are encrypted at
    /// rest), or switch listening for one on or off.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Add, list or remove an API key's webhooks (events posted, signed, to a URL).
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
}

/// `--database`, shared by every `keys` and `accounts` command. (`serve` has its
/// own: there it is optional, since a config file or the environment may give it.)
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL or SQLite file path.
    #[arg(
        long,
        default_value = "tiktok-dm.sqlite",
        env = "TIKTOK_DM_DATABASE",
        hide_env_values = true
    )]
    pub database: String,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Store an account's session (encrypted with the master key).
    Add {
        /// A unique name for the account.
        #[arg(long)]
        name: String,
        /// The session: `@FILE` or `-` (a value on the command line is refused,
        /// since other users of the machine can see it).
        #[arg(long)]
        session: String,
        /// Do not listen for the account's DMs (without it, a new account is
        /// listened to and a replaced one keeps its switch).
        #[arg(long)]
        no_listen: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List stored accounts (never their sessions).
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Ask TikTok whether a stored account's session is accepted now. Prints one
    /// JSON object; exits 0 when accepted, 1 when rejected, 2 when TikTok could
    /// not be reached.
    Check {
        /// The account's name.
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
        /// Ask a sandbox at this base URL instead of TikTok.
        #[arg(long)]
        sandbox_url: Option<String>,
    },
    /// Switch listening for a stored account's DMs on or off. A running
    /// gateway follows within 2 s; switched back on, it catches up what came
    /// meanwhile.
    Listen {
        /// The account's name.
        name: String,
        /// `on` or `off`.
        #[arg(value_enum)]
        switch: Switch,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Remove a stored account.
    Remove {
        /// The account's name.
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Add a webhook to an API key; prints it with its signing secret, once.
    Add {
        /// The API key's name.
        #[arg(long)]
        key: String,
        /// Where events are posted (absolute http or https).
        #[arg(long)]
        url: String,
        /// An event type to receive (repeatable; `*` for all).
        #[arg(long = "event", value_name = "TYPE", required = true)]
        events: Vec<String>,
        /// Allow a URL reaching a loopback, private or reserved address (the
        /// gateway also needs allow_private_webhooks to post to it).
        #[arg(long)]
        allow_private: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List webhooks (never their secrets), of one key or all.
    List {
        /// Only this API key's.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Remove a webhook of an API key, with its queued deliveries.
    Remove {
        /// The API key's name.
        #[arg(long)]
        key: String,
        /// The webhook's id (`wh_...`).
        id: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML config file; `TIKTOK_DM_*` variables override it and flags
    /// override both (the README lists every setting).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8787].
    #[arg(long)]
    pub listen: Option<String>,
    /// Database URL or SQLite file path [default: tiktok-dm.sqlite].
    #[arg(long)]
    pub database: Option<String>,
    /// Also run the sandbox in-process, point the gateway at it, create an API key,
    /// an admin key and a stored account, and print them as one JSON line when ready.
    #[arg(long, conflicts_with = "sandbox_url")]
    pub sandbox: bool,
    /// Send to a sandbox already running at this base URL instead of TikTok.
    #[arg(long)]
    pub sandbox_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once.
    Create {
        /// A unique name for the key.
        #[arg(long)]
        name: String,
        /// Messages per UTC day.
        #[arg(long)]
        daily_limit: Option<u32>,
        /// Messages per UTC month.
        #[arg(long)]
        monthly_limit: Option<u32>,
        /// A stored account this key may send as; repeat for more. The first
        /// is the one it sends as when a request names none.
        #[arg(long = "account", value_name = "NAME")]
        accounts: Vec<String>,
        /// May send as any stored account (without it, a key sends only as
        /// the accounts given with --account).
        #[arg(long)]
        any_account: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List keys (never the keys themselves).
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke a key by name.
    Revoke {
        /// The key's name.
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Who sends, and how TikTok is reached.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The conversation id, e.g. `0:1:UID:UID`.
    #[arg(long)]
    pub conversation_id: Option<String>,
    /// The conversation's short id (a number).
    #[arg(long)]
    pub conversation_short_id: Option<String>,
    /// The text to send (may be left out when an image is sent).
    #[arg(long)]
    pub text: Option<String>,
    /// An image file to send (JPEG, PNG, GIF or WebP); `-` reads standard input.
    #[arg(long, conflicts_with = "image_base64")]
    pub image: Option<String>,
    /// An image as base64 or a data URI; `@FILE` reads it from a file.
    #[arg(long)]
    pub image_base64: Option<String>,
    /// The largest image accepted, in bytes.
    #[arg(long, default_value_t = tiktok_dm_client::image::DEFAULT_IMAGE_LIMIT)]
    pub image_limit: u64,
}

/// The session and the way to TikTok (or a sandbox), shared by `send`,
/// `listen` and `conversations`.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// The TikTok session: a sessionid, a Cookie header, or a cookie export (JSON);
    /// `@FILE` reads it from a file, `-` from standard input.
    #[arg(long, env = "TIKTOK_DM_SESSION", hide_env_values = true)]
    pub session: Option<String>,
    /// auto (WebSocket, then HTTP), ws or http.
    #[arg(long, default_value = "auto")]
    pub transport: String,
    /// Use a sandbox at this base URL instead of TikTok.
    #[arg(long, conflicts_with_all = ["ws_url", "api_url", "web_url", "tiktok_hosts"])]
    pub sandbox: Option<String>,
    /// TikTok's IM hosts: global (`im-api` / `im-ws`) or sg (`im-api-sg` /
    /// `im-ws-sg`).
    #[arg(long, default_value = "global")]
    pub tiktok_hosts: String,
    /// Frontier WebSocket URL (default `wss://im-ws.tiktok.com/ws/v2`).
    #[arg(long)]
    pub ws_url: Option<String>,
    /// im-api base URL (default `https://im-api.tiktok.com`).
    #[arg(long)]
    pub api_url: Option<String>,
    /// Web base URL, for the messages page (default `https://www.tiktok.com`).
    #[arg(long)]
    pub web_url: Option<String>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

/// `tiktok-dm listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Who listens, and how TikTok is reached.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Also print what came in the last SECONDS before starting (read from
    /// the history).
    #[arg(long, value_name = "SECONDS")]
    pub since: Option<u64>,
    /// Also catch up every SECONDS (pushes can be lost; the http transport
    /// gets none and polls every 30 s by default).
    #[arg(long, value_name = "SECONDS")]
    pub poll: Option<u64>,
    /// Leave out typing indicators.
    #[arg(long)]
    pub no_typing: bool,
}

/// `tiktok-dm conversations`.
#[derive(Debug, Args)]
pub struct ConversationsArgs {
    /// Whose conversations, and how TikTok is reached.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print this conversation's history (newest first) instead of the list.
    #[arg(long, value_name = "CONVERSATION_ID")]
    pub history: Option<String>,
    /// With --history: how many messages (at most 1000).
    #[arg(long, default_value_t = 50, requires = "history")]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8790")]
    pub listen: String,
    /// A JSON seed file with `accounts` and `conversations` (default: alice, bob, carol).
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// Refuse HTTP sends without a valid ticket guard (the `tt-ticket-guard-*`
    /// entries and a `ztca-dpop` proof), as a strict TikTok would.
    #[arg(long)]
    pub require_ticket_guard: bool,
    /// Serve HTTPS and WSS only, with a certificate made at start for
    /// localhost, 127.0.0.1, ::1 and every --tls-name. The ready line's
    /// `ca_file` is the certificate to trust (e.g. `SSL_CERT_FILE` for Go).
    #[arg(long)]
    pub tls: bool,
    /// Another name the generated certificate covers, such as a TikTok host
    /// mapped to this machine in /etc/hosts (repeatable).
    #[arg(long = "tls-name", value_name = "NAME", requires = "tls")]
    pub tls_names: Vec<String>,
    /// Where to write the generated certificate (PEM); default: a temporary
    /// file, removed when the sandbox stops.
    #[arg(long, value_name = "PATH", requires = "tls")]
    pub tls_cert_out: Option<PathBuf>,
    /// Serve HTTPS and WSS with this certificate chain (PEM) instead of a
    /// generated one; needs --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with_all = ["tls_names", "tls_cert_out"]
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DecodeAs {
    Frame,
    Request,
    Response,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// What the bytes are.
    #[arg(long = "as", value_enum)]
    pub kind: DecodeAs,
    /// Print the re-encoded bytes as base64 instead of JSON.
    #[arg(long)]
    pub reencode: bool,
    /// A file with base64 text or raw bytes; `-` for standard input.
    pub input: String,
}
