//! [`Listener`]: a session's events without gaps or repeats.
//!
//! Pushes come from the frontier socket as they arrive. Whenever something
//! may have been missed (the socket came back after a loss, the reader fell
//! behind the push buffer, or a poll tick for the `http` transport), the
//! listener catches up from the inbox listing (cmd 203) and each changed
//! conversation's history (cmd 301) since the newest message it has seen
//! there. Repeats (a message both pushed and listed) are dropped by their
//! dedupe key ([`Event::dedupe_key`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tiktok_dm_proto::events::{Event, created_at_ms, from_message};
use tiktok_dm_proto::schema::MessageBody;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::TransportMode;
use crate::conversations::{ConversationSummary, HISTORY_PAGE};
use crate::error::Result;
use crate::frontier::ConnectionState;
use crate::session::Session;

/// History pages read at most per conversation in one catch-up (50 messages
/// a page, 5,000 in all): a conversation that got more while we were away loses the oldest.
const MAX_CATCH_UP_PAGES: usize = 100;
/// Dedupe keys remembered (pushes and listings overlap only by a few).
const SEEN_KEYS: usize = 4096;
/// The shortest poll interval taken (a zero one would spin).
const MIN_POLL: Duration = Duration::from_millis(100);
/// The longest wait before a failed catch-up is tried again.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// Poll interval of the `http` transport, which gets no pushes.
pub const DEFAULT_HTTP_POLL: Duration = Duration::from_secs(30);

/// Where a listener starts.
#[derive(Clone, Debug, Default)]
pub struct ListenOptions {
    /// Per conversation id, the newest `index_in_conversation` already seen
    /// (kept by the caller from an earlier run): newer messages there are
    /// caught up at start.
    pub cursors: HashMap<String, i64>,
    /// For conversations with no cursor, messages created after this time
    /// (ms) are caught up; `None`: from when the listener starts.
    pub new_since_ms: Option<i64>,
    /// Catch up at start (a listener resuming an earlier run wants this).
    pub catch_up_at_start: bool,
    /// Also catch up at this interval (the web SDK polls every 30 s as a
    /// safety net). `None`: only after a loss; the `http` transport, which
    /// gets no pushes, polls every [`DEFAULT_HTTP_POLL`] then.
    pub poll_interval: Option<Duration>,
}

/// What a listener yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listened {
    /// An event, pushed or caught up, in order per conversation.
    Event(Box<Event>),
    /// A catch-up ran and found this many new events (already yielded).
    CaughtUp {
        /// New events found.
        events: usize,
        /// The conversations whose cursor moved, and where to: everything
        /// up to there has been yielded. Keep them to resume a later run
        /// ([`ListenOptions::cursors`]).
        cursors: BTreeMap<String, i64>,
        /// When this catch-up began (ms): every message created before then
        /// has been yielded, also in conversations without a cursor. Keep
        /// it to resume a later run ([`ListenOptions::new_since_ms`]).
        since_ms: i64,
    },
    /// A catch-up failed; the next loss or poll tries again.
    CatchUpFailed(String),
    /// TikTok refused the session (expired or logged out): the listener ends.
    SessionRejected {
        /// The handshake's HTTP status.
        status: u16,
    },
}

/// A running listener; dropping it stops it.
#[derive(Debug)]
pub struct Listener {
    events: mpsc::Receiver<Listened>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// The next event; `None` once the listener has ended (session closed
    /// or rejected).
    pub async fn next(&mut self) -> Option<Listened> {
        self.events.recv().await
    }
}

impl Session {
    /// Starts listening: pushed events, and what was missed after a loss.
    pub fn listen(&self, options: ListenOptions) -> Listener {
        let (tx, events) = mpsc::channel(256);
        let pushes = self.subscribe();
        // The state as it is now counts as seen: only later changes (a
        // reconnect) start a catch-up.
        let state = self.watch_state().map(|mut rx| {
            rx.borrow_and_update();
            rx
        });
        let poll = options.poll_interval.or_else(|| {
            (self.transport_mode() == TransportMode::Http).then_some(DEFAULT_HTTP_POLL)
        });
        let tracker = Tracker::new(&options);
        let task = tokio::spawn(run(
            self.clone(),
            Channels { tx, pushes, state },
            tracker,
            (options.catch_up_at_start, poll),
        ));
        Listener { events, task }
    }
}

struct Channels {
    tx: mpsc::Sender<Listened>,
    pushes: broadcast::Receiver<Event>,
    state: Option<watch::Receiver<ConnectionState>>,
}

async fn state_change(
    state: &mut Option<watch::Receiver<ConnectionState>>,
) -> Option<ConnectionState> {
    match state {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => Some(ConnectionState::Closed),
        },
        None => std::future::pending().await,
    }
}

async fn run(
    session: Session,
    mut ch: Channels,
    mut tracker: Tracker,
    (start, poll): (bool, Option<Duration>),
) {
    let mut retry = Retry::default();
    if start && !retry.after(catch_up(&session, &mut tracker, &ch.tx).await) {
        return;
    }
    let mut ticker = poll.map(|p| {
        let p = p.max(MIN_POLL);
        // The first tick somewhere in the first interval: listeners started
        // together (a gateway's, at its start) do not poll together.
        let first = p.mul_f64(rand::random_range(0.5..=1.0));
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + first, p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let caught = tokio::select! {
            pushed = ch.pushes.recv() => match pushed {
                Ok(event) => {
                    if forward(&mut tracker, event, &ch.tx).await { continue } else { return }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "listener fell behind the pushes; catching up");
                    catch_up(&session, &mut tracker, &ch.tx).await
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = state_change(&mut ch.state) => match changed {
                // A (re)connect: the watch keeps only the latest state, so a
                // loss may not have been seen; catch up on every one.
                Some(ConnectionState::Active) => catch_up(&session, &mut tracker, &ch.tx).await,
                Some(ConnectionState::FatallyClosed { status }) => {
                    let _ = ch.tx.send(Listened::SessionRejected { status }).await;
                    return;
                }
                Some(ConnectionState::Closed) | None => return,
                Some(_) => continue,
            },
            () = tick(&mut ticker) => catch_up(&session, &mut tracker, &ch.tx).await,
            () = retry.due() => catch_up(&session, &mut tracker, &ch.tx).await,
            () = ch.tx.closed() => return,
        };
        if !retry.after(caught) {
            return;
        }
    }
}

/// How a catch-up ended.
enum Caught {
    Done,
    /// It failed; it is tried again after a backoff.
    Failed,
    /// Nobody reads any more, or the session was refused.
    Stop,
}

/// When a failed catch-up is tried again: 1 s doubling to 5 min, jittered.
#[derive(Default)]
struct Retry {
    failures: u32,
    at: Option<tokio::time::Instant>,
}

impl Retry {
    /// Records how a catch-up ended; false when the listener stops.
    fn after(&mut self, caught: Caught) -> bool {
        match caught {
            Caught::Done => {
                *self = Self::default();
                true
            }
            Caught::Failed => {
                self.failures = self.failures.saturating_add(1);
                let wait = crate::backoff::full_jitter(
                    self.failures,
                    Duration::from_secs(1),
                    MAX_RETRY,
                    rand::random(),
                )
                .max(Duration::from_millis(100));
                self.at = Some(tokio::time::Instant::now() + wait);
                true
            }
            Caught::Stop => false,
        }
    }

    async fn due(&self) {
        match self.at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Yields `event` unless it was seen; false once nobody reads. A push does
/// not move the conversation's cursor: pushes before it may have been lost,
/// and only a catch-up, which reads the history, knows there is no gap.
async fn forward(tracker: &mut Tracker, event: Event, tx: &mpsc::Sender<Listened>) -> bool {
    if !tracker.first_sight(&event) {
        return true;
    }
    tx.send(Listened::Event(Box::new(event))).await.is_ok()
}

/// Runs one catch-up, yielding what it finds conversation by conversation.
/// A conversation's cursor moves only past messages already yielded, so a
/// catch-up that fails partway keeps what it did and loses nothing.
async fn catch_up(session: &Session, tracker: &mut Tracker, tx: &mpsc::Sender<Listened>) -> Caught {
    let since_ms = now_ms();
    let mut yielded = 0;
    match yield_missed(session, tracker, tx, &mut yielded).await {
        Ok(true) => {}
        Ok(false) => return Caught::Stop,
        Err(e @ crate::Error::InvalidSession(_)) => {
            tracing::debug!(error = %e, "catch-up: the session was refused");
            let _ = tx.send(Listened::SessionRejected { status: 401 }).await;
            return Caught::Stop;
        }
        Err(e) => {
            tracing::debug!(error = %e, "catch-up failed");
            let sent = tx.send(Listened::CatchUpFailed(e.to_string())).await;
            return if sent.is_ok() {
                Caught::Failed
            } else {
                Caught::Stop
            };
        }
    }
    let cursors = std::mem::take(&mut tracker.advanced);
    let sent = tx
        .send(Listened::CaughtUp {
            events: yielded,
            cursors,
            since_ms,
        })
        .await;
    if sent.is_ok() {
        Caught::Done
    } else {
        Caught::Stop
    }
}

/// Yields every conversation's events newer than what the tracker has seen,
/// oldest first per conversation, advancing its cursor as they go. `Ok(false)`
/// once nobody reads.
async fn yield_missed(
    session: &Session,
    tracker: &mut Tracker,
    tx: &mpsc::Sender<Listened>,
    yielded: &mut usize,
) -> Result<bool> {
    let own = Some(session.identity().uid);
    for c in session.conversations().await? {
        let newest = c
            .last_message
            .as_ref()
            .and_then(|m| m.index_in_conversation);
        let cursor = tracker.cursors.get(&c.conversation_id).copied();
        // A conversation first seen now whose newest message is older than
        // the start: nothing to catch up, and its cursor starts there.
        if let (None, Some(m), Some(newest)) = (cursor, &c.last_message, newest) {
            if m.created_at_ms < tracker.new_since_ms {
                tracker.advance(&c.conversation_id, newest);
                continue;
            }
        }
        if let (Some(cursor), Some(newest)) = (cursor, newest) {
            if newest <= cursor {
                continue;
            }
        }
        let bodies = newer_messages(session, &c, cursor, tracker.new_since_ms).await?;
        for body in bodies.iter().rev() {
            if let Some(event) = from_message(body, &c.conversation_id, own) {
                if tracker.first_sight(&event) {
                    *yielded += 1;
                    if tx.send(Listened::Event(Box::new(event))).await.is_err() {
                        return Ok(false);
                    }
                }
            }
            if let Some(index) = body.index_in_conversation {
                tracker.advance(&c.conversation_id, index);
            }
        }
    }
    Ok(true)
}

/// History of `c` newer than `cursor` (or, with none, created after
/// `since_ms`), newest first.
async fn newer_messages(
    session: &Session,
    c: &ConversationSummary,
    cursor: Option<i64>,
    since_ms: i64,
) -> Result<Vec<MessageBody>> {
    let is_new = |m: &MessageBody| match cursor {
        Some(cursor) => m.index_in_conversation.unwrap_or_default() > cursor,
        None => created_at_ms(m) >= since_ms,
    };
    let mut out = Vec::new();
    let mut before = None;
    for page_number in 1..=MAX_CATCH_UP_PAGES {
        let (page, next) = session
            .history_page(
                &c.conversation_id,
                c.conversation_short_id,
                before,
                HISTORY_PAGE,
            )
            .await?;
        let complete = page.iter().any(|m| !is_new(m));
        out.extend(page.into_iter().filter(|m| is_new(m)));
        match next {
            Some(next) if !complete => before = Some(next),
            _ => break,
        }
        if page_number == MAX_CATCH_UP_PAGES {
            tracing::warn!(
                conversation = %c.conversation_id,
                read = out.len(),
                "catch-up read its most pages; older missed messages of this conversation are skipped"
            );
        }
    }
    Ok(out)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What the listener has seen: per-conversation cursors and recent keys.
struct Tracker {
    cursors: HashMap<String, i64>,
    /// Cursors moved since the last catch-up report.
    advanced: BTreeMap<String, i64>,
    new_since_ms: i64,
    seen: HashSet<String>,
    order: VecDeque<String>,
}

impl Tracker {
    fn new(options: &ListenOptions) -> Self {
        Self {
            cursors: options.cursors.clone(),
            advanced: BTreeMap::new(),
            new_since_ms: options.new_since_ms.unwrap_or_else(now_ms),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    fn advance(&mut self, conversation: &str, index: i64) {
        let cursor = self
            .cursors
            .entry(conversation.to_owned())
            .or_insert(i64::MIN);
        if index > *cursor {
            *cursor = index;
            self.advanced.insert(conversation.to_owned(), index);
        }
    }

    /// True the first time an event is seen (always for typing).
    fn first_sight(&mut self, event: &Event) -> bool {
        let Some(key) = event.dedupe_key() else {
            return true;
        };
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > SEEN_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}
