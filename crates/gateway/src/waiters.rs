//! Requests waiting for their outcome: the handler of a send registers its
//! request id, the worker tells it what happened to each of its messages.
//!
//! A delivery comes with what the answer needs (TikTok's id, the transport), so
//! the common case answers without reading the store, and without waiting for the
//! delivery's own commit: the worker announces it as soon as TikTok acknowledged
//! the message and keeps it in [`Waiters::unrecorded`] until the store has it, so
//! every read of a request's status (`GET`, a repeat, a handler that must read)
//! applies those deliveries and never shows a delivered message as still sending.
//! Anything else (a failure, a retry) only says "read the store": the store stays
//! the source of truth, and the handler also reads it now and then
//! ([`next_poll`]) in case another process delivered the message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// A handler's first read of its own comes this long after it starts waiting.
pub const FIRST_POLL: Duration = Duration::from_millis(250);
/// The longest a handler goes between reads of its own (unless the budget
/// below asks for longer).
pub const LAST_POLL: Duration = Duration::from_secs(2);
/// Reads a second that all waiting handlers together stay within.
pub const POLL_BUDGET: u32 = 500;

/// How long a waiting handler sleeps before reading the store on its own: its
/// last sleep doubled (from [`FIRST_POLL`] up to [`LAST_POLL`]), and never less
/// than its share of [`POLL_BUDGET`] among `waiting` requests.
///
/// These reads only catch what no news announces (another process delivered),
/// so they can wait. At a fixed 250 ms they grew with the number of waiting
/// handlers: when arrivals outran deliveries, tens of thousands of handlers
/// read four times a second each, the reads took the CPU the deliveries
/// needed, and the backlog only grew (the load harness saw 35 reads per send
/// and answers after 30 s).
pub fn next_poll(previous: Option<Duration>, waiting: usize) -> Duration {
    let own = previous.map_or(FIRST_POLL, |p| {
        p.saturating_mul(2).clamp(FIRST_POLL, LAST_POLL)
    });
    let share = Duration::from_millis(
        u64::try_from(waiting)
            .unwrap_or(u64::MAX)
            .saturating_mul(1000)
            / u64::from(POLL_BUDGET),
    );
    own.max(share)
}

/// A message TikTok acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Its position in the request.
    pub position: i64,
    /// TikTok's message id.
    pub server_message_id: String,
    /// `ws` or `http`.
    pub transport: &'static str,
}

/// What one request's waiters share.
#[derive(Default)]
pub struct Waiter {
    notify: Notify,
    news: Mutex<News>,
}

#[derive(Default)]
struct News {
    /// Every delivery so far, in the order they were recorded (kept, not
    /// consumed, so concurrent waiters of one request each see all of them).
    delivered: Vec<Delivered>,
    /// Bumped by every other outcome: the store must be read.
    reads: u64,
}

/// What a waiter has already taken from [`Waiter::news`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    delivered: usize,
    reads: u64,
}

impl Waiter {
    /// Resolves at the next news. Arm it (`enable`) before looking at the news,
    /// so news arriving in between is not missed.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Deliveries since `seen`, and whether anything else happened since then
    /// (the store must be read); `seen` moves past both.
    pub fn news(&self, seen: &mut Seen) -> (Vec<Delivered>, bool) {
        let news = self.news.lock().unwrap_or_else(PoisonError::into_inner);
        let delivered = news
            .delivered
            .get(seen.delivered..)
            .unwrap_or_default()
            .to_vec();
        let read = news.reads != seen.reads;
        *seen = Seen {
            delivered: news.delivered.len(),
            reads: news.reads,
        };
        (delivered, read)
    }
}

/// Waiting handlers by request id, and deliveries not yet in the store.
#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Entry>>,
    unrecorded: Mutex<HashMap<String, Vec<Delivered>>>,
}

/// A request's waiter and how many handlers registered for it. Counted, not
/// read from the `Arc`'s strong count: a notification in flight holds a
/// clone, and two handlers leaving together each still see the other's, so
/// that count left entries behind for good.
struct Entry {
    waiter: Arc<Waiter>,
    registered: usize,
}

/// A delivery between TikTok's acknowledgement and its commit; dropping it
/// (once the store's write has succeeded or failed) ends that.
#[must_use = "the delivery counts as unrecorded until this is dropped"]
pub struct Recording<'a> {
    waiters: &'a Waiters,
    request_id: String,
    position: i64,
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        let mut map = self
            .waiters
            .unrecorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = map.get_mut(&self.request_id) {
            list.retain(|d| d.position != self.position);
            if list.is_empty() {
                map.remove(&self.request_id);
            }
        }
    }
}

impl Waiters {
    /// The waiter for `request_id` (shared by concurrent waiters of one request).
    /// Pair it with one [`Self::unregister`].
    pub fn register(&self, request_id: &str) -> Arc<Waiter> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(request_id.to_owned()).or_insert_with(|| Entry {
            waiter: Arc::default(),
            registered: 0,
        });
        entry.registered += 1;
        Arc::clone(&entry.waiter)
    }

    /// Done waiting; the entry goes when the last registered waiter does.
    pub fn unregister(&self, request_id: &str, waiter: &Arc<Waiter>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = map.get_mut(request_id) else {
            return;
        };
        if !Arc::ptr_eq(&entry.waiter, waiter) {
            return;
        }
        entry.registered = entry.registered.saturating_sub(1);
        if entry.registered == 0 {
            map.remove(request_id);
        }
    }

    /// Tells whoever waits for `request_id` that TikTok acknowledged a message,
    /// and keeps the delivery in [`Self::unrecorded`] until the returned guard
    /// is dropped, which the caller does once the store's write has ended.
    pub fn delivered(&self, request_id: &str, delivered: Delivered) -> Recording<'_> {
        let position = delivered.position;
        self.unrecorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(request_id.to_owned())
            .or_default()
            .push(delivered.clone());
        self.tell(request_id, |news| {
            news.delivered.push(delivered);
            true
        });
        Recording {
            waiters: self,
            request_id: request_id.to_owned(),
            position,
        }
    }

    /// Deliveries of `request_id` whose commit has not ended. Take them before
    /// reading the store: a commit that ends in between is then either here or
    /// in what the read sees.
    pub fn unrecorded(&self, request_id: &str) -> Vec<Delivered> {
        self.unrecorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(request_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Tells whoever waits for `request_id` to read the store (any outcome
    /// other than a recorded delivery).
    pub fn wake(&self, request_id: &str) {
        self.tell(request_id, |news| {
            news.reads += 1;
            true
        });
    }

    /// Tells whoever waits for `request_id` that a process sharing the
    /// database ended one of its messages (the store heard it), so that they
    /// read the store now rather than at their next read of their own;
    /// unless this process delivered one of its messages (then its own news
    /// says what the store would).
    pub fn ended_elsewhere(&self, request_id: &str) {
        self.tell(request_id, |news| {
            let read = news.delivered.is_empty();
            news.reads += u64::from(read);
            read
        });
    }

    /// Applies `update` to the news of whoever waits for `request_id`, and
    /// wakes them when it says there is news.
    fn tell(&self, request_id: &str, update: impl FnOnce(&mut News) -> bool) {
        let waiter = {
            let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            map.get(request_id).map(|e| Arc::clone(&e.waiter))
        };
        if let Some(w) = waiter {
            let news = update(&mut w.news.lock().unwrap_or_else(PoisonError::into_inner));
            if news {
                w.notify.notify_waiters();
            }
        }
    }

    /// Requests being waited for.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_reads_back_off_to_a_ceiling_and_share_a_budget() {
        let ms = Duration::from_millis;
        let mut schedule = vec![next_poll(None, 1)];
        for _ in 0..5 {
            schedule.push(next_poll(schedule.last().copied(), 1));
        }
        assert_eq!(
            schedule,
            [ms(250), ms(500), ms(1000), ms(2000), ms(2000), ms(2000)]
        );
        // However many handlers wait, together they read at most the budget.
        for waiting in [1usize, 100, 1_000, 5_000, 20_000, 1_000_000] {
            for previous in [None, Some(ms(250)), Some(LAST_POLL)] {
                let each = next_poll(previous, waiting);
                let per_second = waiting as f64 / each.as_secs_f64();
                assert!(
                    per_second <= f64::from(POLL_BUDGET) + 1e-6,
                    "{waiting} waiting, {each:?} each"
                );
            }
        }
        assert_eq!(next_poll(None, 20_000), Duration::from_secs(40));
    }

    fn delivered(position: i64) -> Delivered {
        Delivered {
            position,
            server_message_id: format!("7{position}"),
            transport: "ws",
        }
    }

    #[test]
    fn an_end_heard_from_elsewhere_asks_for_a_read_unless_delivered_here() {
        let waiters = Waiters::default();
        let w = waiters.register("r");
        let mut seen = Seen::default();
        waiters.ended_elsewhere("r");
        assert_eq!(w.news(&mut seen), (Vec::new(), true));
        let _recording = waiters.delivered("r", delivered(0));
        assert_eq!(w.news(&mut seen), (vec![delivered(0)], false));
        waiters.ended_elsewhere("r");
        assert_eq!(w.news(&mut seen), (Vec::new(), false));
        // Nobody waits for another request: nothing happens.
        waiters.ended_elsewhere("other");
    }

    #[tokio::test]
    async fn news_reaches_every_waiter_of_the_request_and_entries_go_with_the_last() {
        let waiters = Waiters::default();
        let a = waiters.register("req_1");
        let b = waiters.register("req_1");
        let other = waiters.register("req_2");
        let (mut seen_a, mut seen_b, mut seen_other) =
            (Seen::default(), Seen::default(), Seen::default());
        {
            let (wa, wb, wo) = (a.notified(), b.notified(), other.notified());
            tokio::pin!(wa, wb, wo);
            wa.as_mut().enable();
            wb.as_mut().enable();
            wo.as_mut().enable();
            drop(waiters.delivered("req_1", delivered(0)));
            wa.await;
            wb.await;
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(20), wo)
                    .await
                    .is_err(),
                "another request's waiter sleeps on"
            );
        }
        waiters.wake("req_1");
        drop(waiters.delivered("req_1", delivered(1)));
        assert_eq!(
            a.news(&mut seen_a),
            (vec![delivered(0), delivered(1)], true)
        );
        assert_eq!(
            a.news(&mut seen_a),
            (vec![], false),
            "news is taken once per waiter"
        );
        assert_eq!(
            b.news(&mut seen_b),
            (vec![delivered(0), delivered(1)], true),
            "and by each waiter"
        );
        assert_eq!(other.news(&mut seen_other), (vec![], false));
        waiters.unregister("req_1", &a);
        drop(a);
        assert_eq!(waiters.len(), 2, "b still waits for req_1");
        waiters.unregister("req_1", &b);
        waiters.unregister("req_2", &other);
        assert!(waiters.is_empty());
        drop(waiters.delivered("req_1", delivered(2)));
    }

    #[test]
    fn entries_go_with_the_last_waiter_whatever_else_holds_them() {
        let waiters = Waiters::default();
        // Two handlers of one request leave together: each unregisters
        // before the other has let go of its waiter.
        let a = waiters.register("req_1");
        let b = waiters.register("req_1");
        waiters.unregister("req_1", &a);
        waiters.unregister("req_1", &b);
        drop((a, b));
        assert!(waiters.is_empty(), "two handlers leaving together");
        // A handler leaves while a notification holds its waiter.
        let c = waiters.register("req_2");
        let in_flight = Arc::clone(&c);
        waiters.unregister("req_2", &c);
        drop((c, in_flight));
        assert!(waiters.is_empty(), "a notification in flight");
        // A waiter of an entry that is gone does not touch a newer one.
        let old = waiters.register("req_3");
        waiters.unregister("req_3", &old);
        let new = waiters.register("req_3");
        waiters.unregister("req_3", &old);
        assert_eq!(waiters.len(), 1);
        waiters.unregister("req_3", &new);
        assert!(waiters.is_empty());
    }

    #[test]
    fn a_delivery_is_unrecorded_until_its_guard_goes() {
        let waiters = Waiters::default();
        let first = waiters.delivered("req_1", delivered(0));
        let second = waiters.delivered("req_1", delivered(1));
        assert_eq!(
            waiters.unrecorded("req_1"),
            vec![delivered(0), delivered(1)],
            "nobody waits, and the deliveries are still known"
        );
        assert!(waiters.unrecorded("req_2").is_empty());
        drop(first);
        assert_eq!(waiters.unrecorded("req_1"), vec![delivered(1)]);
        drop(second);
        assert!(waiters.unrecorded("req_1").is_empty());
        assert!(
            waiters.unrecorded.lock().unwrap().is_empty(),
            "no entry is left behind"
        );
    }
}
