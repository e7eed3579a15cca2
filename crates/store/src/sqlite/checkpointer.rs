//! Background checkpoints. SQLite copies WAL frames back into the database file
//! in a checkpoint, which by default the writer runs itself every 1,000 frames:
//! a stall of several milliseconds (copying the pages, then an fsync of the
//! database file) in the middle of the commit path, once every hundred sends or
//! so, which is the p99 of a send's latency. This thread runs a PASSIVE
//! checkpoint after the writer's commits instead, on its own connection; PASSIVE
//! never waits for (or blocks) the writer or readers. The writer's own
//! automatic checkpoint stays on: by the time it is due, nearly every frame has
//! already been copied, so it only copies the last few and lets the WAL start
//! over from its beginning (which only a checkpoint in the writer can arrange
//! while writes keep coming).

use std::sync::mpsc;

use rusqlite::Connection;

use crate::error::{Error, Result};

/// The handle the writer holds; dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    poke: mpsc::SyncSender<()>,
}

impl Checkpointer {
    /// Opens a connection to `path` and starts the checkpoint thread.
    pub(crate) fn start(path: &std::path::Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        // A checkpoint that finds the lock taken (the writer's own) is skipped,
        // not waited for.
        conn.busy_timeout(std::time::Duration::ZERO)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (poke, pokes) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || run(&conn, &pokes))
            .map_err(|e| Error::Commit(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self { poke })
    }

    /// Asks for a checkpoint soon (at most one is queued).
    pub(crate) fn poke(&self) {
        let _ = self.poke.try_send(());
    }
}

/// The least time between two background checkpoints: each ends with an fsync
/// of the database file, which competes with the writer's fsyncs for the disk.
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

fn run(conn: &Connection, pokes: &mpsc::Receiver<()>) {
    while pokes.recv().is_ok() {
        std::thread::sleep(MIN_INTERVAL);
        // Pokes that came while sleeping are served by this checkpoint.
        while pokes.try_recv().is_ok() {}
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        match done {
            Ok((_busy, frames, copied)) => {
                tracing::trace!(frames, copied, "store: checkpoint");
            }
            Err(e) => tracing::debug!(error = %e, "store: checkpoint skipped"),
        }
    }
}
