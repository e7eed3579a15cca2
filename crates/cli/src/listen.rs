//! `tiktok-dm listen` and `tiktok-dm conversations`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tiktok_dm_client::{Event, ListenOptions, Listened, Session};

use crate::args::{ConnectionArgs, ConversationsArgs, ListenArgs};
use crate::connect::connection_config;

/// Most messages `conversations --history` prints.
const MAX_HISTORY: u32 = 1000;

async fn open(a: &ConnectionArgs) -> Result<Session, ExitCode> {
    let config = match connection_config(a).and_then(|b| b.build().map_err(|e| e.to_string())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(2));
        }
    };
    Session::connect(config).await.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(1)
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Prints one JSON line per event until interrupted or the session is refused.
pub async fn listen(a: ListenArgs) -> anyhow::Result<ExitCode> {
    let session = match open(&a.connection).await {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let since = a.since.map(|s| {
        let back = i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        now_ms().saturating_sub(back)
    });
    let mut listener = session.listen(ListenOptions {
        new_since_ms: since,
        catch_up_at_start: since.is_some(),
        poll_interval: a.poll.map(|s| Duration::from_secs(s.max(1))),
        ..ListenOptions::default()
    });
    eprintln!(
        "listening as uid {} (Ctrl-C to stop)",
        session.identity().uid
    );
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut out = std::io::stdout().lock();
    loop {
        let item = tokio::select! {
            item = listener.next() => item,
            _ = &mut interrupted => break,
        };
        match item {
            Some(Listened::Event(e)) => {
                if a.no_typing && matches!(*e, Event::Typing(_)) {
                    continue;
                }
                serde_json::to_writer(&mut out, &e)?;
                out.write_all(b"\n")?;
                out.flush()?;
            }
            Some(Listened::CaughtUp { events, .. }) => {
                tracing::info!(events, "caught up");
            }
            Some(Listened::CatchUpFailed(reason)) => {
                eprintln!(
                    "warning: catching up failed ({reason}); retrying at the next reconnect or poll"
                );
            }
            Some(Listened::SessionRejected { status }) => {
                eprintln!("error: TikTok refused the session (HTTP {status}); log in again");
                return Ok(ExitCode::from(1));
            }
            None => {
                eprintln!("error: the connection closed");
                return Ok(ExitCode::from(1));
            }
        }
    }
    session.close();
    Ok(ExitCode::SUCCESS)
}

/// Prints the conversations, or one conversation's history, as JSON.
pub async fn conversations(a: ConversationsArgs) -> anyhow::Result<ExitCode> {
    if a.limit == 0 || a.limit > MAX_HISTORY {
        eprintln!(
            "error: --limit must be between 1 and {MAX_HISTORY}, got {}",
            a.limit
        );
        return Ok(ExitCode::from(2));
    }
    let session = match open(&a.connection).await {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let printed = match &a.history {
        None => session
            .conversations()
            .await
            .map(|list| serde_json::to_string_pretty(&list)),
        Some(id) => history(&session, id, a.limit)
            .await
            .map(|events| serde_json::to_string_pretty(&events)),
    };
    session.close();
    match printed {
        Ok(json) => {
            println!("{}", json?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn history(session: &Session, id: &str, limit: u32) -> tiktok_dm_client::Result<Vec<Event>> {
    let mut events = Vec::new();
    let mut before = None;
    while events.len() < limit as usize {
        let want = i32::try_from(limit as usize - events.len())
            .unwrap_or(100)
            .min(100);
        let page = session.history(id, None, before, want).await?;
        events.extend(page.events);
        match page.next_cursor {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    events.truncate(limit as usize);
    Ok(events)
}
