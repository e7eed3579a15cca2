//! A budget of memory shared by many holders: send bodies being read, images
//! being delivered. Counted in KiB permits of a semaphore, so a holder that
//! finds no room can wait for it, and the room taken can be shown.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A number of bytes, taken and given back in KiB.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    room: Arc<Semaphore>,
    total_kib: u32,
}

impl MemoryBudget {
    /// A budget of `bytes` (rounded up to a KiB).
    pub fn new(bytes: u64) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX))
            .max(1);
        Self {
            room: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// The permits for `bytes`: at least one, and never more than the whole
    /// budget (so a holder larger than the budget takes it all, and goes).
    fn permits(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib)
    }

    /// Room for `bytes` if there is some now.
    pub fn try_take(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.room)
            .try_acquire_many_owned(self.permits(bytes))
            .ok()
    }

    /// Room for `bytes`, once there is some (first come, first served).
    /// `None` only if the semaphore were closed, which it never is.
    pub async fn take(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.room)
            .acquire_many_owned(self.permits(bytes))
            .await
            .ok()
    }

    /// The bytes taken now.
    pub fn held_bytes(&self) -> u64 {
        let free = u64::try_from(self.room.available_permits()).unwrap_or(0);
        u64::from(self.total_kib).saturating_sub(free) * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_taken_in_kib_and_a_holder_larger_than_the_budget_takes_it_all() {
        let budget = MemoryBudget::new(10 * 1024);
        let a = budget.try_take(4 * 1024 + 1).unwrap();
        assert_eq!(budget.held_bytes(), 5 * 1024);
        assert!(budget.try_take(6 * 1024).is_none(), "only 5 KiB are left");
        let b = budget.try_take(0).unwrap();
        assert_eq!(budget.held_bytes(), 6 * 1024, "at least one KiB");
        drop((a, b));
        let all = budget.try_take(1 << 40).unwrap();
        assert_eq!(budget.held_bytes(), 10 * 1024);
        drop(all);
        assert_eq!(budget.held_bytes(), 0);
    }
}
