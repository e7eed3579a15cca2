//! The `tiktok-dm` command. `main` only maps the outcome to an exit code.

mod args;
mod bounded;
mod connect;
mod decode;
mod demo;
mod listen;
mod manage;
mod output;
mod sandbox;
mod send;
mod serve;
mod webhooks;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc instead of the system allocator: under the gateway's load glibc's
/// malloc took a tenth of the gateway's CPU (docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: args::Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            args::Command::Send(a) => send::run(*a).await,
            args::Command::Listen(a) => listen::listen(a).await,
            args::Command::Conversations(a) => listen::conversations(a).await,
            args::Command::Sandbox(a) => sandbox::run(a).await,
            args::Command::Decode(a) => decode::run(a),
            args::Command::Demo => demo::run().await,
            args::Command::Serve(a) => serve::run(a).await,
            args::Command::Keys(k) => manage::keys(k).await,
            args::Command::Accounts(a) => manage::accounts(a).await,
            args::Command::Webhooks(w) => webhooks::run(w).await,
        }
    })
}

/// Logs go to stderr, at `warn` unless `TIKTOK_DM_LOG` says otherwise. Nothing
/// logged anywhere contains a session or key.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIKTOK_DM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
