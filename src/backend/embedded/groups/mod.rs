//! Consumer group coordinator and committed offsets.
//!
//! Implements Kafka's classic group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup),
//! the group admin APIs (DescribeGroups, ListGroups, DeleteGroups) and committed offsets
//! (OffsetCommit, OffsetFetch, OffsetDelete), following Kafka's classic group coordinator
//! (`GroupMetadataManager` / `ClassicGroup`).
//!
//! Design:
//! - All group state sits behind one `std::sync::Mutex`, never held across an `.await`.
//!   JoinGroup and SyncGroup park a `oneshot` sender in the member and await the receiver after
//!   releasing the lock; whatever completes the phase (another request or a timer) sends the
//!   response through it.
//! - Timers (session expiry, join phase, initial delayed join, sync phase) are tokio tasks that
//!   sleep and then call back into the coordinator through a `Weak` reference (module `timer`).
//! - Committed offsets live in a `journal::OffsetStore` behind a second mutex (lock order:
//!   group state, then store), journaled to a file before any commit is acknowledged.
//!
//! Supported versions: JoinGroup 0-9, SyncGroup 0-5, Heartbeat 0-4, LeaveGroup 0-5,
//! DescribeGroups 0-5, ListGroups 0-5, DeleteGroups 0-2, OffsetCommit 2-9, OffsetFetch 1-9,
//! OffsetDelete 0 (see [`SUPPORTED_VERSIONS`]).

mod admin;
mod group;
mod journal;
mod membership;
mod offsets;
mod timer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::ApiKey;

use group::Group;
pub use group::GroupState;
use journal::OffsetStore;

/// Error codes (Kafka's `Errors.java`).
pub(crate) mod codes {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
}

/// API versions handled by this module, as (api, min, max). The broker should advertise
/// these (or a subset).
pub const SUPPORTED_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
];

/// Kafka's `offset.metadata.max.bytes` (compared, like Kafka, with the string's UTF-16 length).
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// Kafka's `offsets.retention.check.interval.ms`.
pub const OFFSETS_RETENTION_CHECK_INTERVAL_MS: u64 = 600_000;
/// Kafka's `group.classic.new.member.join.timeout.ms`: a new member's JoinGroup is dropped
/// after this long without the rebalance completing.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: u64 = 300_000;

#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// group.initial.rebalance.delay.ms, Kafka default 3000 (tests use 0).
    pub initial_rebalance_delay_ms: u64,
    /// group.min.session.timeout.ms, default 6000.
    pub min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms, default 1800000.
    pub max_session_timeout_ms: i32,
    /// group.max.size, default i32::MAX.
    pub max_size: usize,
    /// offsets.retention.minutes * 60000 (7 days): offsets of Empty groups expire after this.
    pub offsets_retention_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
        }
    }
}

/// Who sent a JoinGroup (shown by DescribeGroups).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub client_id: String,
    /// Like Kafka: "/127.0.0.1".
    pub client_host: String,
}

/// What the coordinator needs to know about topics (implemented by the broker).
pub trait TopicLookup: Send + Sync {
    fn partition_count(&self, topic: &str) -> Option<i32>;
}

pub(super) struct State {
    groups: HashMap<String, Group>,
}

/// The consumer group coordinator of the embedded broker.
pub struct GroupCoordinator {
    config: GroupConfig,
    /// Handed to timer tasks so that they never keep the coordinator alive.
    weak_self: Weak<GroupCoordinator>,
    active: AtomicBool,
    state: Mutex<State>,
    /// Lock order: `state` first, then `store`.
    store: Mutex<OffsetStore>,
    timer_ids: AtomicU64,
    housekeeping_started: AtomicBool,
    housekeeping: Mutex<Option<tokio::task::AbortHandle>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GroupCoordinator {
    /// `dir` is the broker's metadata directory; committed offsets persist in a file there and
    /// are loaded here.
    pub fn open(dir: &Path, config: GroupConfig) -> std::io::Result<Arc<GroupCoordinator>> {
        let store = OffsetStore::open(dir)?;
        let now = now_ms();
        let mut groups = HashMap::new();
        for id in store.group_ids() {
            let mut group = Group::new(id.clone(), now);
            if let Some(meta) = store.group(&id).and_then(|g| g.meta.as_ref()) {
                group.generation = meta.generation;
                group.protocol_type = meta.protocol_type.clone();
                if meta.empty {
                    group.state_timestamp_ms = meta.state_ts;
                }
            }
            group.subscribed_topics = group.compute_subscribed_topics();
            groups.insert(id, group);
        }
        tracing::info!(
            "Loaded {} consumer group(s) from {} ({} records)",
            groups.len(),
            dir.join(journal::JOURNAL_FILE).display(),
            store.load_stats.records
        );
        let coordinator = Arc::new_cyclic(|weak| GroupCoordinator {
            config,
            weak_self: weak.clone(),
            active: AtomicBool::new(true),
            state: Mutex::new(State { groups }),
            store: Mutex::new(store),
            timer_ids: AtomicU64::new(0),
            housekeeping_started: AtomicBool::new(false),
            housekeeping: Mutex::new(None),
        });
        coordinator.ensure_housekeeping();
        Ok(coordinator)
    }

    /// fsync the offsets journal.
    pub fn flush(&self) -> std::io::Result<()> {
        // Sync a duplicate handle so that commits are not blocked behind the fsync.
        let file = lock(&self.store).file_handle()?;
        file.sync_data()
    }

    /// Stops timers; parked JoinGroup/SyncGroup requests complete with
    /// COORDINATOR_NOT_AVAILABLE, and so does every later request.
    pub fn shutdown(&self) {
        if !self.active.swap(false, Ordering::SeqCst) {
            return;
        }
        tracing::info!("Shutting down the group coordinator.");
        if let Some(h) = lock(&self.housekeeping).take() {
            h.abort();
        }
        {
            let mut st = lock(&self.state);
            for group in st.groups.values_mut() {
                group.join_timer = None;
                group.sync_timer = None;
                group.pending_members.clear();
                for m in group.members.values_mut() {
                    m.heartbeat = None;
                    m.complete_join(group::JoinResult::error(m.id.clone(), codes::COORDINATOR_NOT_AVAILABLE));
                    m.complete_sync(group::SyncResult::error(codes::COORDINATOR_NOT_AVAILABLE));
                }
            }
        }
        if let Err(e) = self.flush() {
            tracing::warn!("Failed to sync the offsets journal at shutdown: {e}");
        }
    }

    fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn lock_store(&self) -> MutexGuard<'_, OffsetStore> {
        lock(&self.store)
    }

    /// Starts the periodic offset expiration task once a tokio runtime is available.
    fn ensure_housekeeping(&self) {
        if self.housekeeping_started.load(Ordering::Relaxed) || !self.is_active() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.housekeeping_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = self.weak_self.clone();
        let task = handle.spawn(async move {
            let period = Duration::from_millis(OFFSETS_RETENTION_CHECK_INTERVAL_MS);
            loop {
                tokio::time::sleep(period).await;
                let Some(c) = weak.upgrade() else { break };
                if !c.is_active() {
                    break;
                }
                c.expire_offsets(now_ms());
            }
        });
        *lock(&self.housekeeping) = Some(task.abort_handle());
    }

    fn next_timer_id(&self) -> u64 {
        self.timer_ids.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Drop for GroupCoordinator {
    fn drop(&mut self) {
        if let Some(h) = lock(&self.housekeeping).take() {
            h.abort();
        }
    }
}

impl GroupCoordinator {
    /// The current state of a group, if it exists (for the broker's diagnostics and tests).
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.lock_state().groups.get(group_id).map(|g| g.state)
    }
}
