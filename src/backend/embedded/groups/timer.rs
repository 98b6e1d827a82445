//! One-shot coordinator timers: a tokio task that sleeps, then calls back into the coordinator.
//!
//! A [`Timer`] lives in the slot it belongs to (a member's session, a group's join or sync
//! phase). Dropping or replacing it aborts the task; a task that already woke up is told apart
//! by its id, which the coordinator compares with the id still in the slot.

use std::time::Duration;

use tokio::task::AbortHandle;

#[derive(Debug)]
pub(super) struct Timer {
    pub id: u64,
    abort: AbortHandle,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// What to do when a timer fires.
#[derive(Debug, Clone)]
pub(super) enum TimerAction {
    /// Session expiration of a member, or of a pending (MEMBER_ID_REQUIRED) member.
    Heartbeat { group: String, member: String },
    /// End of the join phase (Kafka's DelayedJoin).
    Join { group: String },
    /// Step of the initial delayed join (Kafka's InitialDelayedJoin).
    InitialJoin {
        group: String,
        delay_ms: u64,
        remaining_ms: u64,
    },
    /// Members that have not sent SyncGroup by now are removed (Kafka's DelayedSync).
    Sync { group: String, generation: i32 },
}

/// Spawns `f(id)` after `delay`, on the current tokio runtime. Returns `None` outside a runtime
/// (the caller then simply has no timer).
pub(super) fn spawn<F>(id: u64, delay: Duration, f: F) -> Option<Timer>
where
    F: FnOnce(u64) + Send + 'static,
{
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let task = handle.spawn(async move {
        tokio::time::sleep(delay).await;
        f(id);
    });
    Some(Timer {
        id,
        abort: task.abort_handle(),
    })
}
