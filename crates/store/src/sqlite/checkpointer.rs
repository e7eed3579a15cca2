//! Background checkpoints. SQLite copies WAL frames back into the database file
//! in a checkpoint, which by default the writer runs itself every 1,000 frames:
//! a stall of several milliseconds (copying the pages, then an fsync of the
//! database file) in the middle of the commit path, once every hundred sends or
//! so, which is the p99 of a send's latency. This thread runs a PASSIVE
//! checkpoint after the writer's commits instead, on its own connection; PASSIVE
//! never waits for (or blocks) the writer or readers. It copies most frames,
//! but the WAL can only start over from its beginning when a checkpoint has
//! copied every frame and no commit came in between, which while writes keep
//! coming only a checkpoint by the writer itself arranges: the writer runs one
//! when this thread reports the WAL long enough (`frames`), after it has
//! answered its callers and, unless the WAL has grown much longer, only when no
//! operation is waiting (see `writer.rs`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, mpsc};

use rusqlite::Connection;

use crate::error::{Error, Result};

/// The handle the writer holds; dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    poke: mpsc::SyncSender<()>,
    frames: Arc<AtomicI64>,
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
        let frames = Arc::new(AtomicI64::new(0));
        let seen = Arc::clone(&frames);
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || run(&conn, &pokes, &seen))
            .map_err(|e| Error::Commit(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self { poke, frames })
    }

    /// Asks for a checkpoint soon (at most one is queued).
    pub(crate) fn poke(&self) {
        let _ = self.poke.try_send(());
    }

    /// Frames in the WAL as of the last checkpoint (this thread's or the
    /// writer's): at most one checkpoint interval old.
    pub(crate) fn frames(&self) -> i64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Records what a checkpoint by the writer found: `frames` in the WAL, of
    /// which `copied` are in the database file now. When every frame was
    /// copied, the writer's next commit starts the WAL over.
    pub(crate) fn checkpointed(&self, frames: i64, copied: i64) {
        let left = if copied >= frames { 0 } else { frames };
        self.frames.store(left, Ordering::Relaxed);
    }
}

/// Runs a PASSIVE checkpoint on `conn`: (frames in the WAL, frames copied), or
/// `None` when another checkpoint was running (PASSIVE never waits for it).
pub(crate) fn passive(conn: &Connection) -> rusqlite::Result<Option<(i64, i64)>> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        let busy: i64 = r.get(0)?;
        Ok((busy == 0).then_some((r.get(1)?, r.get(2)?)))
    })
}

/// The least time between two background checkpoints: each ends with an fsync
/// of the database file, which competes with the writer's fsyncs for the disk.
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

fn run(conn: &Connection, pokes: &mpsc::Receiver<()>, seen: &AtomicI64) {
    while pokes.recv().is_ok() {
        std::thread::sleep(MIN_INTERVAL);
        // Pokes that came while sleeping are served by this checkpoint.
        while pokes.try_recv().is_ok() {}
        match passive(conn) {
            Ok(Some((frames, copied))) => {
                seen.store(frames, Ordering::Relaxed);
                tracing::trace!(frames, copied, "store: checkpoint");
            }
            Ok(None) => tracing::trace!("store: checkpoint skipped, another was running"),
            Err(e) => tracing::debug!(error = %e, "store: checkpoint skipped"),
        }
    }
}
