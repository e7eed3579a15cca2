//! Requests waiting for their outcome: the handler of a send registers its
//! request id, the worker wakes it when one of the request's messages is
//! recorded. The store stays the source of truth (the handler re-reads the
//! status when woken, and every 250 ms in case another process delivered it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Waiting handlers by request id.
#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Waiters {
    /// The wake-up for `request_id` (shared by concurrent waiters of one request).
    pub fn register(&self, request_id: &str) -> Arc<Notify> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(request_id.to_owned()).or_default())
    }

    /// Done waiting; the entry goes when its last waiter does.
    pub fn unregister(&self, request_id: &str, notify: Arc<Notify>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's reference and ours: nobody else waits.
        if Arc::strong_count(&notify) <= 2 {
            map.remove(request_id);
        }
    }

    /// Wakes whoever waits for `request_id`.
    pub fn wake(&self, request_id: &str) {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get(request_id) {
            n.notify_waiters();
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

    #[tokio::test]
    async fn a_wake_reaches_every_waiter_of_the_request_and_entries_go_with_the_last() {
        let waiters = Waiters::default();
        let a = waiters.register("req_1");
        let b = waiters.register("req_1");
        let other = waiters.register("req_2");
        {
            let (wa, wb, wo) = (a.notified(), b.notified(), other.notified());
            tokio::pin!(wa, wb, wo);
            wa.as_mut().enable();
            wb.as_mut().enable();
            wo.as_mut().enable();
            waiters.wake("req_1");
            wa.await;
            wb.await;
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(20), wo)
                    .await
                    .is_err(),
                "another request's waiter sleeps on"
            );
        }
        waiters.unregister("req_1", a);
        assert_eq!(waiters.len(), 2, "b still waits for req_1");
        waiters.unregister("req_1", b);
        waiters.unregister("req_2", other);
        assert!(waiters.is_empty());
    }
}
