//! `tiktok-dm sandbox`: serve the emulator until SIGINT or SIGTERM, over
//! plain HTTP or, with `--tls` or `--tls-cert`, HTTPS and WSS only.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use tiktok_dm_sandbox::{Error, Sandbox, Seed, TlsConfig};
use tokio::net::TcpListener;

use crate::args::SandboxArgs;

/// The JSON line printed when the sandbox is ready. Ids are strings so that
/// JavaScript consumers keep every digit.
pub fn ready_line(base_url: &str, seed: &Seed) -> serde_json::Value {
    serde_json::json!({
        "base_url": base_url,
        "accounts": seed.accounts.iter().map(|a| serde_json::json!({
            "name": a.name,
            "uid": a.uid.to_string(),
            "session": a.session,
        })).collect::<Vec<_>>(),
        "conversations": seed.conversations.iter().map(|c| serde_json::json!({
            "conversation_id": c.conversation_id,
            "conversation_short_id": c.conversation_short_id.to_string(),
            "message_request": c.message_request,
        })).collect::<Vec<_>>(),
    })
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    // A handler that cannot be installed waits forever rather than stopping
    // the server at once.
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

pub async fn run(a: SandboxArgs) -> anyhow::Result<ExitCode> {
    let seed = match &a.seed {
        Some(path) => {
            let what = format!("seed file {}", path.display());
            let text = crate::bounded::read_file_text(path, crate::bounded::MAX_SEED_BYTES, &what)
                .map_err(anyhow::Error::msg)?;
            serde_json::from_str(&text)
                .with_context(|| format!("seed file {} is not a valid seed", path.display()))?
        }
        None => Seed::default_seed()?,
    };
    let sandbox = Sandbox::new(seed)?;
    sandbox
        .handle()
        .require_ticket_guard(a.require_ticket_guard);
    // Before binding: a bad certificate or key fails without taking the port.
    let tls = tls_setup(&a)?;
    let listener = TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut line = ready_line(&format!("{scheme}://{addr}"), sandbox.handle().seed());
    if let Some((_, ca_file)) = &tls {
        line["ca_file"] = ca_file.path().display().to_string().into();
    }
    crate::output::print_ready_line(line);
    match &tls {
        // `tls` (and a temporary certificate file) lives until the sandbox stops.
        Some((config, _)) => sandbox.run_tls(listener, config, shutdown_signal()).await?,
        None => sandbox.run(listener, shutdown_signal()).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The most a certificate or key file may be: PEM chains are a few KiB.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// The certificate file clients are told to trust.
enum CaFile {
    /// Generated, in a temporary file removed when this is dropped.
    Temporary(tempfile::TempPath),
    /// Written to, or given as, this path.
    Kept(PathBuf),
}

impl CaFile {
    fn path(&self) -> &Path {
        match self {
            Self::Temporary(path) => path,
            Self::Kept(path) => path,
        }
    }
}

/// The TLS configuration the flags ask for, if any, with the certificate
/// file to trust: the caller's `--tls-cert`, or the generated certificate
/// written out. Errors name the file at fault, never a key's content.
fn tls_setup(a: &SandboxArgs) -> anyhow::Result<Option<(TlsConfig, CaFile)>> {
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        let read = |path: &Path, what: &str| {
            let what = format!("{what} file {}", path.display());
            crate::bounded::read_file_text(path, MAX_PEM_BYTES, &what).map_err(anyhow::Error::msg)
        };
        let cert_pem = read(cert, "TLS certificate")?;
        let key_pem = read(key, "TLS key")?;
        let config =
            TlsConfig::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).map_err(|e| match e {
                Error::TlsCertificate(_) => anyhow!("TLS certificate file {}: {e}", cert.display()),
                Error::TlsKey(_) => anyhow!("TLS key file {}: {e}", key.display()),
                _ => anyhow!(
                    "TLS certificate file {} and key file {}: {e}",
                    cert.display(),
                    key.display()
                ),
            })?;
        return Ok(Some((config, CaFile::Kept(std::path::absolute(cert)?))));
    }
    if !a.tls {
        return Ok(None);
    }
    let config = TlsConfig::self_signed(&a.tls_names)?;
    let pem = config.certificate_pem();
    let ca_file = match &a.tls_cert_out {
        Some(path) => {
            std::fs::write(path, pem)
                .with_context(|| format!("cannot write the certificate to {}", path.display()))?;
            CaFile::Kept(std::path::absolute(path)?)
        }
        None => {
            let mut file = tempfile::Builder::new()
                .prefix("tiktok-dm-sandbox-")
                .suffix(".pem")
                .tempfile()
                .context("cannot create a temporary file for the certificate")?;
            file.write_all(pem.as_bytes())
                .context("cannot write the certificate to a temporary file")?;
            readable_by_all(file.path())?;
            CaFile::Temporary(file.into_temp_path())
        }
    };
    Ok(Some((config, ca_file)))
}

/// A certificate is public: let a client run as another user read it (a
/// temporary file starts readable by its owner only).
fn readable_by_all(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot make {} readable", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
