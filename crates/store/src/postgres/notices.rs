//! What other processes on the database say, heard on one connection of
//! this store's own (`LISTEN`): key changes ([`KEYS`], from migration 12's
//! triggers), which empty the key cache, and requests whose messages ended
//! ([`OUTCOMES`], notified by the writes that end a message, with the
//! request ids, comma-separated), passed on to [`Notices::outcomes`]'s
//! subscribers so that a gateway waiting to answer a send another gateway
//! delivered hears of it at once instead of at its next read; and lanes
//! with a message accepted by a process not holding them ([`LANES`]), passed
//! on to [`Notices::lanes`]'s subscribers. The
//! connection is made again a second after it is lost; while it is down
//! keys are read each time and waiting handlers fall back to their reads.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::{broadcast, oneshot};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::key_cache::KeyCache;

/// The channel key changes are notified on.
const KEYS: &str = "tiktok_dm_api_keys";
/// The channel ended messages' request ids are notified on (the writes in
/// `writes.rs` and `sent.rs` name it too).
pub(super) const OUTCOMES: &str = "tiktok_dm_outcomes";
/// The channel lanes wanted are notified on, one lane a notification
/// (`PostgresStore::want_lane`), after its schema and a tab: every schema's
/// listeners on the database hear it, and only its own take it (a lane is
/// taken on hearing, so another schema's would be a stray lease).
pub(super) const LANES: &str = "tiktok_dm_lanes";
/// Lanes a slow subscriber may fall behind by before it misses some.
const LANES_BUFFER: usize = 1_024;
/// The wait before listening again after the connection was lost, doubled
/// at each failure up to [`RECONNECT_MAX`].
const RECONNECT: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// TCP keepalive idle time on the listening connection.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Request ids a slow subscriber may fall behind by before it misses some.
const OUTCOMES_BUFFER: usize = 8_192;

/// The listener every clone of the store shares; it ends with the last.
#[derive(Clone)]
pub(super) struct Notices {
    /// Where the listener puts what it hears (it has a clone).
    heard: Heard,
    _stop: Arc<oneshot::Sender<()>>,
}

impl Notices {
    /// Starts listening on a connection of its own, made with `config` and
    /// `tls`.
    pub(super) fn start(config: tokio_postgres::Config, tls: MakeRustlsConnect) -> Self {
        // Told apart from the pool's connections (`pg_stat_activity`), and
        // a peer gone silent is noticed within a minute or so, not hours.
        let mut config = config;
        let name = config.get_application_name().unwrap_or("tiktok-dm");
        let name = format!("{name} (listen)");
        config.application_name(&name).keepalives_idle(KEEPALIVE);
        let heard = Heard {
            keys: KeyCache::default(),
            outcomes: broadcast::channel(OUTCOMES_BUFFER).0,
            lanes: broadcast::channel(LANES_BUFFER).0,
        };
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(listen(heard.clone(), config, tls, stopped));
        Self {
            heard,
            _stop: Arc::new(stop),
        }
    }

    /// The API keys kept while their changes are heard.
    pub(super) fn keys(&self) -> &KeyCache {
        &self.heard.keys
    }

    /// Request ids whose messages ended, in any process, from now on.
    pub(super) fn outcomes(&self) -> broadcast::Receiver<String> {
        self.heard.outcomes.subscribe()
    }

    /// Lanes wanted, by any process, from now on.
    pub(super) fn lanes(&self) -> broadcast::Receiver<String> {
        self.heard.lanes.subscribe()
    }
}

/// Where what is heard goes.
#[derive(Clone)]
struct Heard {
    keys: KeyCache,
    outcomes: broadcast::Sender<String>,
    lanes: broadcast::Sender<String>,
}

/// Listens until the store is gone, connecting again after a loss.
async fn listen(
    heard: Heard,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut wait = RECONNECT;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            ended = listen_once(&heard, &config, tls.clone(), &mut failing) => {
                heard.keys.hearing(false);
                if !failing {
                    // It was heard until now: the waits start over.
                    failing = true;
                    wait = RECONNECT;
                    let why = ended.err().map(|e| crate::Error::from(e).to_string()).unwrap_or_default();
                    tracing::warn!(error = %why, "store: changes by other processes are not heard; API keys are read each time and waiting sends read the store until heard again");
                }
            }
        }
        tokio::select! {
            _ = &mut stopped => break,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(RECONNECT_MAX);
    }
    heard.keys.hearing(false);
}

/// One connection's listening: ends when it is lost.
async fn listen_once(
    heard: &Heard,
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    failing: &mut bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement =
        format!("LISTEN {KEYS}; LISTEN {OUTCOMES}; LISTEN {LANES}; SELECT current_schema()");
    let subscribe = client.simple_query(&statement);
    // Lanes of this schema come after its name and a tab (lanes have none);
    // without a schema, none.
    let mut schema = None;
    tokio::pin!(subscribe);
    let mut subscribed = false;
    loop {
        tokio::select! {
            done = &mut subscribe, if !subscribed => {
                schema = done?.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                });
                subscribed = true;
                heard.keys.hearing(true);
                if std::mem::take(failing) {
                    tracing::info!("store: changes by other processes are heard again");
                }
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == OUTCOMES => {
                    for id in n.payload().split(',').filter(|id| !id.is_empty()) {
                        // Nobody subscribed is not an error.
                        let _ = heard.outcomes.send(id.to_owned());
                    }
                }
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == LANES => {
                    match n.payload().rsplit_once('\t') {
                        Some((of, lane)) if Some(of) == schema.as_deref() => {
                            let _ = heard.lanes.send(lane.to_owned());
                        }
                        _ => {}
                    }
                }
                Some(Ok(AsyncMessage::Notification(_))) => heard.keys.changed(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
}
