//! OffsetCommit, OffsetFetch, OffsetDelete, topic deletion and offset expiration.

use std::collections::{HashMap, HashSet};

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use tracing::{debug, info, warn};

use super::codes::*;
use super::group::{Group, GroupState, CONSUMER_PROTOCOL_TYPE};
use super::journal::{OffsetEntry, OffsetStore};
use super::membership::sb;
use super::{now_ms, GroupCoordinator, TopicLookup, OFFSET_METADATA_MAX_BYTES};

/// Per-partition outcome of a fetch, before it is shaped for a version.
struct FetchedPartition {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error: i16,
}

/// One group's fetch outcome: group-level error and topics in response order.
struct FetchedGroup {
    error: i16,
    topics: Vec<(String, Vec<FetchedPartition>)>,
}

/// Error for a partition the broker does not know, if any.
fn check_partition(topics: &dyn TopicLookup, topic: &str, partition: i32) -> Option<i16> {
    match topics.partition_count(topic) {
        Some(n) if partition >= 0 && partition < n => None,
        _ => Some(UNKNOWN_TOPIC_OR_PARTITION),
    }
}

/// Kafka compares the metadata's `String.length()`, i.e. UTF-16 code units.
fn metadata_too_large(metadata: &str) -> bool {
    metadata.len() > OFFSET_METADATA_MAX_BYTES && metadata.encode_utf16().count() > OFFSET_METADATA_MAX_BYTES
}

impl GroupCoordinator {
    pub fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
        topics: &dyn TopicLookup,
    ) -> OffsetCommitResponse {
        self.ensure_housekeeping();
        // errors[i][j]: outcome of partition j of topic i; None = to be committed.
        let mut errors: Vec<Vec<Option<i16>>> = req
            .topics
            .iter()
            .map(|t| {
                t.partitions
                    .iter()
                    .map(|p| check_partition(topics, t.name.as_str(), p.partition_index))
                    .collect()
            })
            .collect();
        let has_valid = errors.iter().flatten().any(Option::is_none);
        if has_valid {
            let outcome = self.commit_locked(&req, version, &errors);
            for (i, t) in errors.iter_mut().enumerate() {
                for (j, e) in t.iter_mut().enumerate() {
                    if e.is_none() {
                        *e = Some(match &outcome {
                            Err(code) => *code,
                            Ok(per_partition) => per_partition.get(&(i, j)).copied().unwrap_or(NONE),
                        });
                    }
                }
            }
        }
        let response_topics = req
            .topics
            .iter()
            .zip(errors)
            .map(|(t, errs)| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .zip(errs)
                            .map(|(p, e)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(e.unwrap_or(NONE))
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetCommitResponse::default().with_topics(response_topics)
    }

    /// Validates and stores the commit of the partitions not already rejected in `pre`.
    /// Returns a group-level error, or the errors of individual (topic, partition) indexes.
    fn commit_locked(
        &self,
        req: &OffsetCommitRequest,
        version: i16,
        pre: &[Vec<Option<i16>>],
    ) -> Result<HashMap<(usize, usize), i16>, i16> {
        let mut per_partition: HashMap<(usize, usize), i16> = HashMap::new();
        {
            if !self.is_active() {
                return Err(COORDINATOR_NOT_AVAILABLE);
            }
            let group_id = req.group_id.as_str();
            let member_id = req.member_id.as_str();
            let generation = req.generation_id_or_member_epoch;
            let instance_id = if version >= 7 {
                req.group_instance_id.as_ref().map(|s| s.as_str())
            } else {
                None
            };
            let mut st = self.lock_state();
            if !self.is_active() {
                return Err(COORDINATOR_NOT_AVAILABLE);
            }
            if !st.groups.contains_key(group_id) {
                if generation < 0 {
                    // A "simple" group: Kafka is only used to store its offsets.
                    info!("Creating simple consumer group {group_id} via manual offset commit.");
                    st.groups
                        .insert(group_id.to_string(), Group::new(group_id.to_string(), now_ms()));
                } else if version >= 9 {
                    return Err(GROUP_ID_NOT_FOUND);
                } else {
                    return Err(ILLEGAL_GENERATION);
                }
            }
            let Some(group) = st.groups.get_mut(group_id) else {
                return Err(COORDINATOR_NOT_AVAILABLE);
            };
            validate_offset_commit(group, member_id, instance_id, generation)?;
            if matches!(group.state, GroupState::Stable | GroupState::PreparingRebalance) {
                // A commit keeps the member's session alive.
                if let Some(timeout) = group.members.get(member_id).map(|m| m.session_timeout_ms.max(0) as u64) {
                    self.reschedule_heartbeat(group, member_id, timeout);
                }
            }
            let now = now_ms();
            // Kafka's v2-v4 retention time gives these offsets an explicit expiration.
            let expire_ts =
                (version <= 4 && req.retention_time_ms != -1).then(|| now.saturating_add(req.retention_time_ms));
            let mut entries = Vec::new();
            let mut committed = Vec::new();
            for (i, t) in req.topics.iter().enumerate() {
                for (j, p) in t.partitions.iter().enumerate() {
                    if pre[i][j].is_some() {
                        continue;
                    }
                    let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
                    if metadata_too_large(&metadata) {
                        per_partition.insert((i, j), OFFSET_METADATA_TOO_LARGE);
                        continue;
                    }
                    committed.push((i, j));
                    entries.push((
                        t.name.to_string(),
                        p.partition_index,
                        OffsetEntry {
                            offset: p.committed_offset,
                            leader_epoch: if version >= 6 { p.committed_leader_epoch } else { -1 },
                            metadata,
                            commit_ts: now,
                            expire_ts,
                        },
                    ));
                }
            }
            if let Err(e) = self.lock_store().commit(group_id, entries) {
                warn!("Failed to journal offsets committed by group {group_id}: {e}");
                for k in committed {
                    per_partition.insert(k, NOT_COORDINATOR);
                }
            }
            debug!("Group {group_id}: committed offsets (member {member_id}, generation {generation})");
        }
        Ok(per_partition)
    }

    pub fn offset_fetch(
        &self,
        req: OffsetFetchRequest,
        version: i16,
        _topics: &dyn TopicLookup,
    ) -> OffsetFetchResponse {
        self.ensure_housekeeping();
        if version >= 8 {
            let groups = req
                .groups
                .iter()
                .map(|g| {
                    let requested = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                            .collect::<Vec<_>>()
                    });
                    let fetched = self.fetch_group(g.group_id.as_str(), requested);
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(fetched.error)
                        .with_topics(
                            fetched
                                .topics
                                .into_iter()
                                .map(|(name, parts)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(TopicName(sb(name)))
                                        .with_partitions(
                                            parts
                                                .into_iter()
                                                .map(|p| {
                                                    OffsetFetchResponsePartitions::default()
                                                        .with_partition_index(p.partition)
                                                        .with_committed_offset(p.offset)
                                                        .with_committed_leader_epoch(p.leader_epoch)
                                                        .with_metadata(Some(sb(p.metadata)))
                                                        .with_error_code(p.error)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        // v1 cannot ask for all partitions.
        let requested = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect::<Vec<_>>()
        });
        let fetched = self.fetch_group(req.group_id.as_str(), requested.clone());
        let mut topics = fetched.topics;
        if version < 2 && fetched.error != NONE {
            // No top-level error before v2: report it on every requested partition.
            topics = requested
                .unwrap_or_default()
                .into_iter()
                .map(|(name, parts)| {
                    let parts = parts
                        .into_iter()
                        .map(|partition| FetchedPartition {
                            partition,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: String::new(),
                            error: fetched.error,
                        })
                        .collect();
                    (name, parts)
                })
                .collect();
        }
        let resp = OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(name, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(sb(name)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p.partition)
                                        .with_committed_offset(p.offset)
                                        .with_committed_leader_epoch(if version >= 5 { p.leader_epoch } else { -1 })
                                        .with_metadata(Some(sb(p.metadata)))
                                        .with_error_code(p.error)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        if version >= 2 {
            resp.with_error_code(fetched.error)
        } else {
            resp
        }
    }

    /// Committed offsets of one group: the requested partitions, or all of them (`None`).
    fn fetch_group(&self, group_id: &str, requested: Option<Vec<(String, Vec<i32>)>>) -> FetchedGroup {
        if !self.is_active() {
            return FetchedGroup {
                error: COORDINATOR_NOT_AVAILABLE,
                topics: Vec::new(),
            };
        }
        let store = self.lock_store();
        let stored = store.group(group_id);
        let fetched = |topic: &str, partition: i32| match stored.and_then(|g| g.get(topic, partition)) {
            Some(e) => FetchedPartition {
                partition,
                offset: e.offset,
                leader_epoch: e.leader_epoch,
                metadata: e.metadata.clone(),
                error: NONE,
            },
            None => FetchedPartition {
                partition,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
                error: NONE,
            },
        };
        let topics = match requested {
            Some(requested) => requested
                .into_iter()
                .map(|(name, parts)| {
                    let parts = parts.into_iter().map(|p| fetched(&name, p)).collect();
                    (name, parts)
                })
                .collect(),
            None => stored
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(name, parts)| (name.clone(), parts.keys().map(|p| fetched(name, *p)).collect()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        FetchedGroup { error: NONE, topics }
    }

    pub fn offset_delete(
        &self,
        req: OffsetDeleteRequest,
        _version: i16,
        topics: &dyn TopicLookup,
    ) -> OffsetDeleteResponse {
        self.ensure_housekeeping();
        let group_error = |code| OffsetDeleteResponse::default().with_error_code(code);
        if !self.is_active() {
            return group_error(COORDINATOR_NOT_AVAILABLE);
        }
        if req.group_id.is_empty() {
            return group_error(INVALID_GROUP_ID);
        }
        let group_id = req.group_id.as_str();
        let mut st = self.lock_state();
        let Some(group) = st.groups.get(group_id) else {
            return group_error(GROUP_ID_NOT_FOUND);
        };
        match group.state {
            GroupState::Dead => return group_error(GROUP_ID_NOT_FOUND),
            GroupState::Empty => {}
            _ if group.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) => return group_error(NON_EMPTY_GROUP),
            _ => {}
        }
        let mut to_delete = Vec::new();
        let mut response_topics = Vec::new();
        for t in &req.topics {
            let name = t.name.as_str();
            let subscribed = !group.is(GroupState::Empty) && group.is_subscribed_to_topic(name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if let Some(code) = check_partition(topics, name, p.partition_index) {
                        code
                    } else if subscribed {
                        GROUP_SUBSCRIBED_TO_TOPIC
                    } else {
                        to_delete.push((name.to_string(), p.partition_index));
                        NONE
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            response_topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        if !to_delete.is_empty() {
            let mut store = self.lock_store();
            match store.delete_offsets(group_id, &to_delete) {
                Ok(n) => info!(
                    "The following offsets of the group {group_id} were deleted: {:?}. A total of \
                     {n} offsets were removed.",
                    to_delete
                ),
                Err(e) => {
                    warn!("Failed to journal the deletion of offsets of group {group_id}: {e}");
                    return group_error(NOT_COORDINATOR);
                }
            }
            remove_group_if_dead(&mut st.groups, &mut store, group_id);
        }
        OffsetDeleteResponse::default().with_topics(response_topics)
    }

    /// Called when a topic is deleted: drop its committed offsets.
    pub fn topic_deleted(&self, topic: &str) {
        let mut st = self.lock_state();
        let mut store = self.lock_store();
        match store.delete_topic(topic) {
            Ok(groups) => {
                if !groups.is_empty() {
                    info!(
                        "Removed offsets of deleted topic {topic} from {} group(s).",
                        groups.len()
                    );
                }
                for g in groups {
                    remove_group_if_dead(&mut st.groups, &mut store, &g);
                }
            }
            Err(e) => warn!("Failed to journal the offsets removal of deleted topic {topic}: {e}"),
        }
    }

    /// Kafka's periodic offset expiration (`offsets.retention.minutes`); Empty groups left
    /// without offsets are then removed. Returns the number of offsets removed.
    pub(super) fn expire_offsets(&self, now: i64) -> usize {
        let retention = self.config.offsets_retention_ms;
        let mut st = self.lock_state();
        let mut store = self.lock_store();
        let mut removed = 0;
        let mut ids: Vec<String> = st.groups.keys().cloned().collect();
        ids.sort();
        for id in ids {
            let Some(group) = st.groups.get(&id) else {
                continue;
            };
            let expired = expired_offsets(group, &store, now, retention);
            if !expired.is_empty() {
                match store.delete_offsets(&id, &expired) {
                    Ok(n) => {
                        removed += n;
                        debug!("Expired offsets from group '{id}': {expired:?}");
                    }
                    Err(e) => {
                        warn!("Failed to journal expired offsets of group {id}: {e}");
                        continue;
                    }
                }
            }
            remove_group_if_dead(&mut st.groups, &mut store, &id);
        }
        if removed > 0 {
            info!("Removed {removed} expired offsets.");
        }
        removed
    }
}

/// Kafka's `ClassicGroup.validateOffsetCommit` (non-transactional).
fn validate_offset_commit(
    group: &Group,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> Result<(), i16> {
    if group.is(GroupState::Dead) {
        return Err(COORDINATOR_NOT_AVAILABLE);
    }
    if generation < 0 && group.is(GroupState::Empty) {
        // Admin client or a consumer not using group management.
        return Ok(());
    }
    if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
        group.validate_member(member_id, instance_id)?;
        if generation != group.generation {
            return Err(ILLEGAL_GENERATION);
        }
    } else if !group.is(GroupState::Empty) {
        // Only members may commit while the group has members.
        return Err(UNKNOWN_MEMBER_ID);
    }
    if group.is(GroupState::CompletingRebalance) {
        // The member knows the new generation but has no assignment yet.
        return Err(REBALANCE_IN_PROGRESS);
    }
    Ok(())
}

/// Offsets of `group` past retention, per Kafka's `offsetExpirationCondition`.
fn expired_offsets(group: &Group, store: &OffsetStore, now: i64, retention: i64) -> Vec<(String, i32)> {
    let Some(stored) = store.group(&group.id) else {
        return Vec::new();
    };
    /// What an offset's retention is counted from.
    enum Base<'a> {
        /// When the (Empty) group entered its state.
        StateChange(i64),
        /// The commit, for topics the (Stable consumer) group no longer subscribes to.
        CommitIfUnsubscribed(&'a HashSet<String>),
        /// The commit (simple groups).
        Commit,
    }
    let base = match group.protocol_type.as_deref() {
        Some(_) if group.is(GroupState::Empty) => Base::StateChange(group.state_timestamp_ms),
        Some(CONSUMER_PROTOCOL_TYPE) if group.is(GroupState::Stable) => match &group.subscribed_topics {
            Some(subscribed) => Base::CommitIfUnsubscribed(subscribed),
            None => return Vec::new(),
        },
        None => Base::Commit,
        _ => return Vec::new(),
    };
    let mut expired = Vec::new();
    for (topic, parts) in &stored.offsets {
        for (partition, e) in parts {
            let base_ts = match &base {
                Base::StateChange(ts) => *ts,
                Base::CommitIfUnsubscribed(subscribed) if subscribed.contains(topic) => continue,
                Base::CommitIfUnsubscribed(_) | Base::Commit => e.commit_ts,
            };
            // Offsets committed with an explicit retention (v2-v4) expire on their own clock.
            let is_expired = match e.expire_ts {
                Some(expire) => now >= expire,
                None => now.saturating_sub(base_ts) >= retention,
            };
            if is_expired {
                expired.push((topic.clone(), *partition));
            }
        }
    }
    expired
}

/// Kafka's cleanup: an Empty group without offsets becomes Dead and is forgotten.
pub(super) fn remove_group_if_dead(groups: &mut HashMap<String, Group>, store: &mut OffsetStore, group_id: &str) {
    let Some(group) = groups.get(group_id) else {
        return;
    };
    // Members still obtaining their id (MEMBER_ID_REQUIRED) keep the group.
    if !group.is(GroupState::Empty) || store.has_offsets(group_id) || !group.pending_members.is_empty() {
        return;
    }
    info!(
        "Group {} transitioned to Dead in generation {}",
        group_id, group.generation
    );
    groups.remove(group_id);
    if store.group(group_id).is_some() {
        if let Err(e) = store.delete_group(group_id) {
            warn!("Failed to journal the removal of group {group_id}: {e}");
        }
    }
}
