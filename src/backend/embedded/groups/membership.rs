//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup and the rebalance state machine.
//!
//! Mirrors Kafka's classic group handling (`GroupMetadataManager.classicGroup*`):
//! - Empty -> PreparingRebalance on the first join; the initial join phase waits
//!   `initial_rebalance_delay_ms`, extended while new members keep arriving, capped by the
//!   rebalance timeout.
//! - PreparingRebalance -> CompletingRebalance when every known member has rejoined, or when
//!   the rebalance timeout expires (dynamic members that did not rejoin are dropped). The new
//!   generation's JoinGroup responses go out; the leader gets everyone's metadata.
//! - CompletingRebalance -> Stable when the leader's SyncGroup brings the assignment; members
//!   that do not sync within the rebalance timeout are dropped and a new rebalance starts.
//! - Any membership change in Stable or CompletingRebalance -> PreparingRebalance; the last
//!   member leaving ends the rebalance in Empty.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use super::codes::*;
use super::group::{Group, GroupState, JoinResult, JoinTx, Member, SyncResult, SyncTx};
use super::journal::GroupMeta;
use super::timer::{self, Timer, TimerAction};
use super::{now_ms, ClientInfo, GroupCoordinator, NEW_MEMBER_JOIN_TIMEOUT_MS};

pub(super) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A validated JoinGroup request.
struct JoinParams {
    group_id: String,
    member_id: String,
    instance_id: Option<String>,
    /// v4+: a dynamic member must first obtain its member id (MEMBER_ID_REQUIRED).
    require_known_member_id: bool,
    /// v9+: a static leader rejoining a Stable group may skip the assignment.
    support_skip_assignment: bool,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    reason: String,
}

fn instance_label(instance: &Option<String>) -> &str {
    instance.as_deref().unwrap_or("None")
}

impl GroupCoordinator {
    pub async fn join_group(&self, req: JoinGroupRequest, version: i16, client: &ClientInfo) -> JoinGroupResponse {
        self.ensure_housekeeping();
        let member_id = req.member_id.to_string();
        let (tx, rx) = oneshot::channel();
        match self.join_params(req, version, client) {
            Ok(params) => self.join_locked(params, tx),
            Err(code) => {
                let _ = tx.send(JoinResult::error(member_id.clone(), code));
            }
        }
        // A dropped sender means the member was removed without an explicit answer.
        let result = rx
            .await
            .unwrap_or_else(|_| JoinResult::error(member_id, UNKNOWN_MEMBER_ID));
        join_response(result, version)
    }

    fn join_params(&self, req: JoinGroupRequest, version: i16, client: &ClientInfo) -> Result<JoinParams, i16> {
        if !self.is_active() {
            return Err(COORDINATOR_NOT_AVAILABLE);
        }
        if req.group_id.is_empty() {
            return Err(INVALID_GROUP_ID);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Err(INVALID_SESSION_TIMEOUT);
        }
        let instance_id = if version >= 5 {
            req.group_instance_id.map(|s| s.to_string())
        } else {
            None
        };
        let reason = if version >= 8 {
            req.reason.map(|s| s.to_string())
        } else {
            None
        };
        Ok(JoinParams {
            group_id: req.group_id.to_string(),
            member_id: req.member_id.to_string(),
            require_known_member_id: version >= 4 && instance_id.is_none(),
            support_skip_assignment: version >= 9,
            instance_id,
            client_id: client.client_id.clone(),
            client_host: client.client_host.clone(),
            // v0 has no rebalance timeout: Kafka uses the session timeout.
            rebalance_timeout_ms: if version == 0 {
                req.session_timeout_ms
            } else {
                req.rebalance_timeout_ms
            },
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            reason: reason.unwrap_or_else(|| "not provided".to_string()),
        })
    }

    fn join_locked(&self, p: JoinParams, tx: JoinTx) {
        let mut st = self.lock_state();
        // Checked again under the lock: shutdown drains parked requests under it.
        if !self.is_active() {
            let _ = tx.send(JoinResult::error(p.member_id, COORDINATOR_NOT_AVAILABLE));
            return;
        }
        let is_unknown_member = p.member_id.is_empty();
        if !st.groups.contains_key(&p.group_id) {
            if !is_unknown_member {
                let _ = tx.send(JoinResult::error(p.member_id, UNKNOWN_MEMBER_ID));
                return;
            }
            st.groups
                .insert(p.group_id.clone(), Group::new(p.group_id.clone(), now_ms()));
        }
        let Some(group) = st.groups.get_mut(&p.group_id) else {
            return;
        };
        if !self.accept_joining_member(group, &p.member_id) {
            group.remove_member(&p.member_id);
            let _ = tx.send(JoinResult::error("", GROUP_MAX_SIZE_REACHED));
            self.maybe_complete_join_phase(group);
        } else if is_unknown_member {
            self.join_new_member(group, p, tx);
        } else {
            self.join_existing_member(group, p, tx);
        }
    }

    /// Kafka's `acceptJoiningMember` (group.max.size).
    fn accept_joining_member(&self, group: &Group, member_id: &str) -> bool {
        let max = self.config.max_size;
        match group.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                group
                    .members
                    .get(member_id)
                    .map(Member::is_awaiting_join)
                    .unwrap_or(false)
                    || group.num_awaiting_join() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                group.has_member(member_id) || group.members.len() < max
            }
        }
    }

    fn join_new_member(&self, group: &mut Group, p: JoinParams, tx: JoinTx) {
        if group.is(GroupState::Dead) {
            let _ = tx.send(JoinResult::error("", COORDINATOR_NOT_AVAILABLE));
            return;
        }
        if !group.supports_protocols(&p.protocol_type, &p.protocols) {
            let _ = tx.send(JoinResult::error("", INCONSISTENT_GROUP_PROTOCOL));
            return;
        }
        let prefix = p.instance_id.as_deref().unwrap_or(&p.client_id);
        let new_member_id = format!("{prefix}-{}", Uuid::new_v4());
        if let Some(instance) = p.instance_id.clone() {
            if let Some(old_member_id) = group.static_members.get(&instance).cloned() {
                info!(
                    "Static member with groupInstanceId={} and unknown member id joins group {} in \
                     {} state. Replacing previously mapped member {} with this groupInstanceId.",
                    instance, group.id, group.state, old_member_id
                );
                self.update_static_member_and_rebalance(group, &instance, &old_member_id, &new_member_id, p, tx);
            } else {
                info!(
                    "Static member with groupInstanceId={} and unknown member id joins group {} in \
                     {} state. Created a new member id {} for this member and added to the group.",
                    instance, group.id, group.state, new_member_id
                );
                self.add_member_and_rebalance(group, new_member_id, p, tx);
            }
        } else if p.require_known_member_id {
            info!(
                "Dynamic member with unknown member id joins group {} in {} state. Created a new \
                 member id {} and requesting the member to rejoin with this id.",
                group.id, group.state, new_member_id
            );
            let timer = self.schedule(
                p.session_timeout_ms.max(0) as u64,
                TimerAction::Heartbeat {
                    group: group.id.clone(),
                    member: new_member_id.clone(),
                },
            );
            group.pending_members.insert(new_member_id.clone(), timer);
            let _ = tx.send(JoinResult::error(new_member_id, MEMBER_ID_REQUIRED));
        } else {
            info!(
                "Dynamic member with unknown member id joins group {} in state {}. Created a new \
                 member id {} and added the member to the group.",
                group.id, group.state, new_member_id
            );
            self.add_member_and_rebalance(group, new_member_id, p, tx);
        }
    }

    fn join_existing_member(&self, group: &mut Group, p: JoinParams, tx: JoinTx) {
        let member_id = p.member_id.clone();
        if group.is(GroupState::Dead) {
            let _ = tx.send(JoinResult::error(member_id, COORDINATOR_NOT_AVAILABLE));
            return;
        }
        if !group.supports_protocols(&p.protocol_type, &p.protocols) {
            let _ = tx.send(JoinResult::error(member_id, INCONSISTENT_GROUP_PROTOCOL));
            return;
        }
        if group.is_pending_member(&member_id) {
            if p.instance_id.is_some() {
                // Kafka treats this as an internal error: pending members are never static.
                let _ = tx.send(JoinResult::error(member_id, UNKNOWN_MEMBER_ID));
                return;
            }
            info!(
                "Pending dynamic member with id {} joins group {} in {} state. Adding to the \
                 group now.",
                member_id, group.id, group.state
            );
            self.add_member_and_rebalance(group, member_id, p, tx);
            return;
        }
        if let Err(code) = group.validate_member(&member_id, p.instance_id.as_deref()) {
            let _ = tx.send(JoinResult::error(member_id, code));
            return;
        }
        let Some(member) = group.members.get(&member_id) else {
            return;
        };
        let matches = member.matches(&p.protocols);
        match group.state {
            GroupState::PreparingRebalance => {
                let reason = format!(
                    "Member {} is joining group during {}; client reason: {}",
                    member_id, group.state, p.reason
                );
                self.update_member_and_rebalance(group, &member_id, p, tx, reason);
            }
            GroupState::CompletingRebalance => {
                if matches {
                    // Same metadata (it probably missed the JoinGroup response): resend the
                    // current generation.
                    let members = if group.is_leader(&member_id) {
                        group.current_member_metadata()
                    } else {
                        Vec::new()
                    };
                    let _ = tx.send(current_generation_result(group, member_id, members));
                } else {
                    let reason = format!(
                        "Updating metadata for member {} during {}; client reason: {}",
                        member_id, group.state, p.reason
                    );
                    self.update_member_and_rebalance(group, &member_id, p, tx, reason);
                }
            }
            GroupState::Stable => {
                if group.is_leader(&member_id) {
                    // The leader rejoining forces a rebalance (e.g. topic metadata changed).
                    let reason = format!(
                        "Leader {} re-joining group during {}; client reason: {}",
                        member_id, group.state, p.reason
                    );
                    self.update_member_and_rebalance(group, &member_id, p, tx, reason);
                } else if !matches {
                    let reason = format!(
                        "Updating metadata for member {} during {}; client reason: {}",
                        member_id, group.state, p.reason
                    );
                    self.update_member_and_rebalance(group, &member_id, p, tx, reason);
                } else {
                    let _ = tx.send(current_generation_result(group, member_id, Vec::new()));
                }
            }
            GroupState::Empty | GroupState::Dead => {
                warn!(
                    "Attempt to add rejoining member {} of group {} in unexpected group state {}",
                    member_id, group.id, group.state
                );
                let _ = tx.send(JoinResult::error(member_id, UNKNOWN_MEMBER_ID));
            }
        }
    }

    fn add_member_and_rebalance(&self, group: &mut Group, member_id: String, p: JoinParams, tx: JoinTx) {
        let reason = format!(
            "Adding new member {} with group instance id {}; client reason: {}",
            member_id,
            instance_label(&p.instance_id),
            p.reason
        );
        let member = Member {
            id: member_id.clone(),
            instance_id: p.instance_id,
            client_id: p.client_id,
            client_host: p.client_host,
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            session_timeout_ms: p.session_timeout_ms,
            protocol_type: p.protocol_type,
            protocols: p.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            is_new: true,
            seq: 0,
            heartbeat: None,
        };
        // A member arriving during the initial delayed join extends the delay.
        if group.is(GroupState::PreparingRebalance) && group.previous_state == GroupState::Empty {
            group.new_member_added = true;
        }
        group.add_member(member);
        // New members cannot heartbeat yet; their JoinGroup is bounded by this instead.
        self.reschedule_heartbeat(group, &member_id, NEW_MEMBER_JOIN_TIMEOUT_MS);
        self.maybe_prepare_rebalance_or_complete_join(group, &reason);
    }

    fn update_member_and_rebalance(
        &self,
        group: &mut Group,
        member_id: &str,
        p: JoinParams,
        tx: JoinTx,
        reason: String,
    ) {
        if let Some(m) = group.members.get_mut(member_id) {
            m.protocols = p.protocols;
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
            m.session_timeout_ms = p.session_timeout_ms;
            m.awaiting_join = Some(tx);
        }
        self.maybe_prepare_rebalance_or_complete_join(group, &reason);
    }

    fn update_static_member_and_rebalance(
        &self,
        group: &mut Group,
        instance_id: &str,
        old_member_id: &str,
        new_member_id: &str,
        p: JoinParams,
        tx: JoinTx,
    ) {
        let current_leader = group.leader.clone().unwrap_or_default();
        if !group.replace_static_member(instance_id, old_member_id, new_member_id) {
            let _ = tx.send(JoinResult::error("", UNKNOWN_MEMBER_ID));
            return;
        }
        let session_timeout = group
            .members
            .get(new_member_id)
            .map(|m| m.session_timeout_ms)
            .unwrap_or(p.session_timeout_ms);
        self.reschedule_heartbeat(group, new_member_id, session_timeout.max(0) as u64);
        if let Some(m) = group.members.get_mut(new_member_id) {
            m.protocols = p.protocols;
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
            m.session_timeout_ms = p.session_timeout_ms;
            m.awaiting_join = Some(tx);
        }
        match group.state {
            GroupState::Stable => {
                let selected = group.select_protocol();
                if selected.is_some() && selected == group.protocol_name {
                    info!(
                        "Static member which joins during Stable stage and doesn't affect the \
                         selected protocol will not trigger a rebalance (group {}).",
                        group.id
                    );
                    let result = if p.support_skip_assignment {
                        let is_leader = group.is_leader(new_member_id);
                        let members = if is_leader {
                            group.current_member_metadata()
                        } else {
                            Vec::new()
                        };
                        let mut r = current_generation_result(group, new_member_id.to_string(), members);
                        r.skip_assignment = is_leader;
                        r
                    } else {
                        // Older clients must not believe they lead (they would compute an
                        // assignment a Stable group ignores): report the previous leader id.
                        let mut r = current_generation_result(group, new_member_id.to_string(), Vec::new());
                        r.leader = current_leader;
                        r
                    };
                    if let Some(m) = group.members.get_mut(new_member_id) {
                        m.complete_join(result);
                    }
                } else {
                    let reason = format!(
                        "Group's selectedProtocol will change because static member {} with \
                         instance id {} joined with change of protocol; client reason: {}",
                        new_member_id, instance_id, p.reason
                    );
                    self.maybe_prepare_rebalance_or_complete_join(group, &reason);
                }
            }
            GroupState::CompletingRebalance => {
                // The leader may already be assigning with the old member id: start over.
                let reason = format!(
                    "Updating metadata for static member {} with instance id {}; client reason: {}",
                    new_member_id, instance_id, p.reason
                );
                self.prepare_rebalance(group, &reason);
            }
            _ => self.maybe_complete_join_phase(group),
        }
    }

    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        self.ensure_housekeeping();
        let (tx, rx) = oneshot::channel();
        self.sync_locked(req, version, tx);
        let result = rx.await.unwrap_or_else(|_| SyncResult::error(UNKNOWN_MEMBER_ID));
        sync_response(result, version)
    }

    fn sync_locked(&self, req: SyncGroupRequest, version: i16, tx: SyncTx) {
        macro_rules! reply {
            ($code:expr) => {{
                let _ = tx.send(SyncResult::error($code));
                return;
            }};
        }
        if !self.is_active() {
            reply!(COORDINATOR_NOT_AVAILABLE)
        }
        if req.group_id.is_empty() {
            reply!(INVALID_GROUP_ID)
        }
        // From v5 the protocol type and name are mandatory.
        if version >= 5 && (req.protocol_type.is_none() || req.protocol_name.is_none()) {
            reply!(INCONSISTENT_GROUP_PROTOCOL)
        }
        let member_id = req.member_id.to_string();
        let instance_id = if version >= 3 {
            req.group_instance_id.as_ref().map(|s| s.to_string())
        } else {
            None
        };
        let mut st = self.lock_state();
        if !self.is_active() {
            reply!(COORDINATOR_NOT_AVAILABLE)
        }
        let Some(group) = st.groups.get_mut(req.group_id.as_str()) else {
            reply!(UNKNOWN_MEMBER_ID)
        };
        if group.is(GroupState::Empty) {
            reply!(UNKNOWN_MEMBER_ID)
        }
        if group.is(GroupState::Dead) {
            reply!(COORDINATOR_NOT_AVAILABLE)
        }
        if let Err(code) = group.validate_member(&member_id, instance_id.as_deref()) {
            reply!(code)
        }
        if req.generation_id != group.generation {
            reply!(ILLEGAL_GENERATION)
        }
        let inconsistent = |asked: &Option<StrBytes>, current: &Option<String>| match (asked, current) {
            (Some(a), Some(c)) => a.as_str() != c,
            _ => false,
        };
        if inconsistent(&req.protocol_type, &group.protocol_type)
            || inconsistent(&req.protocol_name, &group.protocol_name)
        {
            reply!(INCONSISTENT_GROUP_PROTOCOL)
        }
        match group.state {
            GroupState::PreparingRebalance => reply!(REBALANCE_IN_PROGRESS),
            GroupState::CompletingRebalance => {
                if let Some(m) = group.members.get_mut(&member_id) {
                    m.awaiting_sync = Some(tx);
                }
                self.remove_pending_sync_member(group, &member_id);
                if group.is_leader(&member_id) {
                    info!(
                        "Assignment received from leader {} for group {} for generation {}. The \
                         group has {} members, {} of which are static.",
                        member_id,
                        group.id,
                        group.generation,
                        group.members.len(),
                        group.static_members.len()
                    );
                    let mut assignment: HashMap<String, Bytes> = req
                        .assignments
                        .into_iter()
                        .map(|a| (a.member_id.to_string(), a.assignment))
                        .collect();
                    let missing: Vec<String> = group
                        .member_ids_in_order()
                        .into_iter()
                        .filter(|id| !assignment.contains_key(id))
                        .collect();
                    if !missing.is_empty() {
                        warn!(
                            "Setting empty assignments for members {:?} of {} for generation {}.",
                            missing, group.id, group.generation
                        );
                    }
                    for m in group.members.values_mut() {
                        m.assignment = assignment.remove(&m.id).unwrap_or_default();
                    }
                    self.propagate_assignment(group, NONE);
                    group.transition(GroupState::Stable, now_ms());
                }
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(group, &member_id);
                let Some(m) = group.members.get(&member_id) else {
                    reply!(UNKNOWN_MEMBER_ID)
                };
                let session_timeout = m.session_timeout_ms.max(0) as u64;
                let _ = tx.send(SyncResult {
                    error: NONE,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                });
                self.reschedule_heartbeat(group, &member_id, session_timeout);
            }
            GroupState::Empty | GroupState::Dead => reply!(UNKNOWN_MEMBER_ID),
        }
    }

    pub async fn heartbeat(&self, req: HeartbeatRequest, version: i16) -> HeartbeatResponse {
        self.ensure_housekeeping();
        let code = self.heartbeat_locked(req, version);
        HeartbeatResponse::default().with_error_code(code)
    }

    fn heartbeat_locked(&self, req: HeartbeatRequest, version: i16) -> i16 {
        if !self.is_active() {
            return COORDINATOR_NOT_AVAILABLE;
        }
        if req.group_id.is_empty() {
            return INVALID_GROUP_ID;
        }
        let instance_id = if version >= 3 {
            req.group_instance_id.as_ref().map(|s| s.to_string())
        } else {
            None
        };
        let member_id = req.member_id.as_str();
        let mut st = self.lock_state();
        let Some(group) = st.groups.get_mut(req.group_id.as_str()) else {
            return UNKNOWN_MEMBER_ID;
        };
        if group.is(GroupState::Dead) {
            return COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(code) = group.validate_member(member_id, instance_id.as_deref()) {
            return code;
        }
        if req.generation_id != group.generation {
            return ILLEGAL_GENERATION;
        }
        let session_timeout = group
            .members
            .get(member_id)
            .map(|m| m.session_timeout_ms.max(0) as u64)
            .unwrap_or_default();
        match group.state {
            GroupState::Empty | GroupState::Dead => UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => {
                self.reschedule_heartbeat(group, member_id, session_timeout);
                REBALANCE_IN_PROGRESS
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.reschedule_heartbeat(group, member_id, session_timeout);
                NONE
            }
        }
    }

    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        self.ensure_housekeeping();
        let (top, members) = self.leave_locked(req, version);
        let mut resp = LeaveGroupResponse::default();
        if version >= 3 {
            resp = resp.with_error_code(top).with_members(members);
        } else {
            // Older versions only have the top-level error: report the single member's.
            let code = if top != NONE {
                top
            } else {
                members.first().map(|m| m.error_code).unwrap_or(NONE)
            };
            resp = resp.with_error_code(code);
        }
        resp
    }

    fn leave_locked(&self, req: LeaveGroupRequest, version: i16) -> (i16, Vec<MemberResponse>) {
        if !self.is_active() {
            return (COORDINATOR_NOT_AVAILABLE, Vec::new());
        }
        if req.group_id.is_empty() {
            return (INVALID_GROUP_ID, Vec::new());
        }
        // (member id, group instance id, reason)
        let leaving: Vec<(String, Option<String>, String)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                        m.reason
                            .as_ref()
                            .filter(|_| version >= 5)
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "not provided".to_string()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None, "not provided".to_string())]
        };
        let mut st = self.lock_state();
        let Some(group) = st.groups.get_mut(req.group_id.as_str()) else {
            return (UNKNOWN_MEMBER_ID, Vec::new());
        };
        if group.is(GroupState::Dead) {
            return (COORDINATOR_NOT_AVAILABLE, Vec::new());
        }
        let mut responses = Vec::with_capacity(leaving.len());
        let mut left = Vec::new();
        for (member_id, instance_id, reason) in leaving {
            let code = if member_id.is_empty() {
                // Administrative removal by group instance id.
                match instance_id.as_ref().and_then(|i| group.static_members.get(i)).cloned() {
                    Some(current) => {
                        self.remove_current_member(group, &current, &reason);
                        left.push(current);
                        NONE
                    }
                    None => UNKNOWN_MEMBER_ID,
                }
            } else if group.is_pending_member(&member_id) {
                group.remove_member(&member_id);
                info!(
                    "[Group {}] Pending member {} has left group through explicit `LeaveGroup` \
                     request; client reason: {}",
                    group.id, member_id, reason
                );
                left.push(member_id.clone());
                NONE
            } else {
                match group.validate_member(&member_id, instance_id.as_deref()) {
                    Ok(()) => {
                        self.remove_current_member(group, &member_id, &reason);
                        left.push(member_id.clone());
                        NONE
                    }
                    Err(code) => code,
                }
            };
            responses.push(
                MemberResponse::default()
                    .with_member_id(sb(member_id))
                    .with_group_instance_id(instance_id.map(sb))
                    .with_error_code(code),
            );
        }
        if !left.is_empty() {
            let reason = format!("explicit `LeaveGroup` request for ({}) members.", left.join(", "));
            match group.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(group, &reason)
                }
                GroupState::PreparingRebalance => self.maybe_complete_join_phase(group),
                _ => {}
            }
        }
        (NONE, responses)
    }

    fn remove_current_member(&self, group: &mut Group, member_id: &str, reason: &str) {
        info!(
            "[Group {}] Member {} has left group through explicit `LeaveGroup` request; client \
             reason: {}",
            group.id, member_id, reason
        );
        if let Some(mut m) = group.remove_member(member_id) {
            m.complete_join(JoinResult::error("", UNKNOWN_MEMBER_ID));
            m.complete_sync(SyncResult::error(UNKNOWN_MEMBER_ID));
        }
    }

    // ----- rebalance machinery -----

    fn schedule(&self, delay_ms: u64, action: TimerAction) -> Option<Timer> {
        let weak = self.weak_self.clone();
        timer::spawn(self.next_timer_id(), Duration::from_millis(delay_ms), move |id| {
            if let Some(c) = weak.upgrade() {
                c.on_timer(id, action);
            }
        })
    }

    pub(super) fn reschedule_heartbeat(&self, group: &mut Group, member_id: &str, timeout_ms: u64) {
        if !group.has_member(member_id) {
            return;
        }
        let timer = self.schedule(
            timeout_ms,
            TimerAction::Heartbeat {
                group: group.id.clone(),
                member: member_id.to_string(),
            },
        );
        // Without a runtime (no timer could be started) the previous deadline stays in force.
        if let (Some(m), Some(timer)) = (group.members.get_mut(member_id), timer) {
            m.heartbeat = Some(timer);
        }
    }

    fn on_timer(&self, id: u64, action: TimerAction) {
        let mut st = self.lock_state();
        if !self.is_active() {
            return;
        }
        let fired = |slot: &mut Option<Timer>| -> bool {
            if slot.as_ref().map(|t| t.id) == Some(id) {
                // Dropping our own timer only aborts a task that is already finishing.
                *slot = None;
                true
            } else {
                false
            }
        };
        match action {
            TimerAction::Heartbeat { group, member } => {
                let Some(g) = st.groups.get_mut(&group) else {
                    return;
                };
                if let Some(slot) = g.pending_members.get_mut(&member) {
                    if fired(slot) {
                        info!(
                            "Pending member {} in group {} has been removed after session timeout \
                             expiration.",
                            member, group
                        );
                        g.remove_member(&member);
                        if g.is(GroupState::PreparingRebalance) && g.has_all_members_joined() {
                            self.complete_join(g);
                        }
                    }
                    return;
                }
                let Some(m) = g.members.get_mut(&member) else {
                    return;
                };
                if !fired(&mut m.heartbeat) {
                    return;
                }
                if !m.has_satisfied_heartbeat() {
                    info!(
                        "Member {} in group {} has failed, removing it from the group",
                        member, group
                    );
                    let reason = format!("removing member {member} on heartbeat expiration");
                    self.remove_member_and_update_group(g, &member, &reason);
                }
            }
            TimerAction::Join { group } => {
                if let Some(g) = st.groups.get_mut(&group) {
                    if fired(&mut g.join_timer) {
                        self.complete_join(g);
                    }
                }
            }
            TimerAction::InitialJoin {
                group,
                delay_ms,
                remaining_ms,
            } => {
                if let Some(g) = st.groups.get_mut(&group) {
                    if fired(&mut g.join_timer) {
                        self.try_complete_initial_rebalance(g, delay_ms, remaining_ms);
                    }
                }
            }
            TimerAction::Sync { group, generation } => {
                if let Some(g) = st.groups.get_mut(&group) {
                    if fired(&mut g.sync_timer) {
                        self.expire_pending_sync(g, generation);
                    }
                }
            }
        }
    }

    /// Kafka's `removeMemberAndUpdateClassicGroup` (session expiry).
    fn remove_member_and_update_group(&self, group: &mut Group, member_id: &str, reason: &str) {
        if let Some(mut m) = group.remove_member(member_id) {
            // A new member may expire while its JoinGroup is parked: let it retry.
            m.complete_join(JoinResult::error("", UNKNOWN_MEMBER_ID));
            m.complete_sync(SyncResult::error(UNKNOWN_MEMBER_ID));
        }
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(group, reason)
            }
            GroupState::PreparingRebalance if group.has_all_members_joined() => self.complete_join(group),
            _ => {}
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(&self, group: &mut Group, reason: &str) {
        if group.can_rebalance() {
            self.prepare_rebalance(group, reason);
        } else {
            self.maybe_complete_join_phase(group);
        }
    }

    /// Completes the join phase if everyone has joined, except during the initial delayed join.
    fn maybe_complete_join_phase(&self, group: &mut Group) {
        if !group.is(GroupState::PreparingRebalance) {
            return;
        }
        if group.previous_state == GroupState::Empty {
            debug!(
                "Cannot complete join phase of group {} because this is an initial rebalance.",
                group.id
            );
            return;
        }
        if !group.has_all_members_joined() {
            return;
        }
        self.complete_join(group);
    }

    fn prepare_rebalance(&self, group: &mut Group, reason: &str) {
        // Members awaiting sync must rejoin.
        if group.is(GroupState::CompletingRebalance) {
            self.reset_and_propagate_assignment_error(group, REBALANCE_IN_PROGRESS);
        }
        group.pending_sync.clear();
        group.sync_timer = None;
        let initial = group.is(GroupState::Empty);
        if initial {
            let delay = self.config.initial_rebalance_delay_ms;
            let remaining = (group.rebalance_timeout_ms().max(0) as u64).saturating_sub(delay);
            group.join_timer = self.schedule(
                delay,
                TimerAction::InitialJoin {
                    group: group.id.clone(),
                    delay_ms: delay,
                    remaining_ms: remaining,
                },
            );
        }
        group.transition(GroupState::PreparingRebalance, now_ms());
        info!(
            "Preparing to rebalance group {} in state {} with old generation {} (reason: {})",
            group.id, group.state, group.generation, reason
        );
        if !initial {
            if group.has_all_members_joined() {
                self.complete_join(group);
            } else {
                group.join_timer = self.schedule(
                    group.rebalance_timeout_ms().max(0) as u64,
                    TimerAction::Join {
                        group: group.id.clone(),
                    },
                );
            }
        }
    }

    /// Kafka's InitialDelayedJoin: extend while new members keep arriving and time remains.
    fn try_complete_initial_rebalance(&self, group: &mut Group, delay_ms: u64, remaining_ms: u64) {
        if group.new_member_added && remaining_ms != 0 {
            group.new_member_added = false;
            let new_delay = self.config.initial_rebalance_delay_ms.min(remaining_ms);
            let new_remaining = remaining_ms.saturating_sub(delay_ms);
            group.join_timer = self.schedule(
                new_delay,
                TimerAction::InitialJoin {
                    group: group.id.clone(),
                    delay_ms: new_delay,
                    remaining_ms: new_remaining,
                },
            );
        } else {
            self.complete_join(group);
        }
    }

    /// End of the join phase: drop dynamic members that did not rejoin, start the next
    /// generation and answer every parked JoinGroup.
    fn complete_join(&self, group: &mut Group) {
        group.join_timer = None;
        let not_rejoined: Vec<String> = group
            .members_in_order()
            .into_iter()
            .filter(|m| !m.is_awaiting_join() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        if !not_rejoined.is_empty() {
            for id in &not_rejoined {
                group.remove_member(id);
            }
            info!(
                "Group {} removed dynamic members who haven't joined: {:?}",
                group.id, not_rejoined
            );
        }
        if group.is(GroupState::Dead) {
            info!("Group {} is dead, skipping rebalance stage.", group.id);
            return;
        }
        if !group.maybe_elect_new_joined_leader() && !group.members.is_empty() {
            // Nobody rejoined: wait again until session timeouts remove the silent members.
            error!(
                "Group {} could not complete rebalance because no members rejoined.",
                group.id
            );
            group.join_timer = self.schedule(
                group.rebalance_timeout_ms().max(0) as u64,
                TimerAction::Join {
                    group: group.id.clone(),
                },
            );
            return;
        }
        group.init_next_generation(now_ms());
        self.persist_group_meta(group);
        if group.is(GroupState::Empty) {
            info!("Group {} with generation {} is now empty.", group.id, group.generation);
            return;
        }
        info!(
            "Stabilized group {} generation {} with {} members",
            group.id,
            group.generation,
            group.members.len()
        );
        let leader_view = group.current_member_metadata();
        for id in group.member_ids_in_order() {
            let members = if group.is_leader(&id) {
                leader_view.clone()
            } else {
                Vec::new()
            };
            let result = current_generation_result(group, id.clone(), members);
            let Some(m) = group.members.get_mut(&id) else {
                continue;
            };
            m.complete_join(result);
            m.is_new = false;
            let session_timeout = m.session_timeout_ms.max(0) as u64;
            self.reschedule_heartbeat(group, &id, session_timeout);
            group.pending_sync.insert(id);
        }
        group.sync_timer = self.schedule(
            group.rebalance_timeout_ms().max(0) as u64,
            TimerAction::Sync {
                group: group.id.clone(),
                generation: group.generation,
            },
        );
    }

    fn remove_pending_sync_member(&self, group: &mut Group, member_id: &str) {
        group.pending_sync.remove(member_id);
        match group.state {
            GroupState::CompletingRebalance | GroupState::Stable => {
                if group.pending_sync.is_empty() {
                    group.sync_timer = None;
                }
            }
            _ => group.sync_timer = None,
        }
    }

    /// Kafka's DelayedSync expiration: members that never sent SyncGroup are removed.
    fn expire_pending_sync(&self, group: &mut Group, generation: i32) {
        if generation != group.generation {
            error!(
                "Received unexpected notification of sync expiration for {} with an old \
                 generation {} while the group has {}.",
                group.id, generation, group.generation
            );
            return;
        }
        if !matches!(group.state, GroupState::CompletingRebalance | GroupState::Stable) || group.pending_sync.is_empty()
        {
            return;
        }
        let mut pending: Vec<String> = group.pending_sync.iter().cloned().collect();
        pending.sort();
        for id in &pending {
            if let Some(mut m) = group.remove_member(id) {
                m.complete_sync(SyncResult::error(UNKNOWN_MEMBER_ID));
            }
        }
        debug!(
            "Group {} removed members who haven't sent their sync requests: {:?}",
            group.id, pending
        );
        let reason = format!("Removing {pending:?} on pending sync request expiration");
        self.prepare_rebalance(group, &reason);
    }

    fn reset_and_propagate_assignment_error(&self, group: &mut Group, error: i16) {
        for m in group.members.values_mut() {
            m.assignment = Bytes::new();
        }
        self.propagate_assignment(group, error);
    }

    fn propagate_assignment(&self, group: &mut Group, error: i16) {
        let (protocol_type, protocol_name) = if error == NONE {
            (group.protocol_type.clone(), group.protocol_name.clone())
        } else {
            (None, None)
        };
        for id in group.member_ids_in_order() {
            let Some(m) = group.members.get_mut(&id) else {
                continue;
            };
            if m.assignment.is_empty() && error == NONE {
                warn!(
                    "Sending empty assignment to member {} of {} for generation {} with no errors",
                    id, group.id, group.generation
                );
            }
            let session_timeout = m.session_timeout_ms.max(0) as u64;
            let result = SyncResult {
                error,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                assignment: m.assignment.clone(),
            };
            if m.complete_sync(result) {
                // Sessions that expired while parked were ignored: restart the clock.
                self.reschedule_heartbeat(group, &id, session_timeout);
            }
        }
    }

    /// Journals the group's generation and protocol type (they survive restarts, like Kafka's
    /// group metadata record; members do not).
    fn persist_group_meta(&self, group: &Group) {
        let meta = GroupMeta {
            generation: group.generation,
            protocol_type: group.protocol_type.clone(),
            state_ts: group.state_timestamp_ms,
            empty: group.is(GroupState::Empty),
        };
        if let Err(e) = self.lock_store().set_meta(&group.id, meta) {
            warn!("Failed to write metadata for group {}: {e}", group.id);
        }
    }
}

fn current_generation_result(group: &Group, member_id: String, members: Vec<super::group::JoinMember>) -> JoinResult {
    JoinResult {
        error: NONE,
        member_id,
        generation_id: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader: group.leader.clone().unwrap_or_default(),
        skip_assignment: false,
        members,
    }
}

fn join_response(r: JoinResult, version: i16) -> JoinGroupResponse {
    // Before v7 the protocol name is not nullable; from v7 an empty name is sent as null.
    let protocol_name = if version < 7 {
        Some(r.protocol_name.unwrap_or_default())
    } else {
        r.protocol_name.filter(|n| !n.is_empty())
    };
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(sb(m.member_id))
                .with_group_instance_id(if version >= 5 { m.instance_id.map(sb) } else { None })
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_protocol_type(if version >= 7 { r.protocol_type.map(sb) } else { None })
        .with_protocol_name(protocol_name.map(sb))
        .with_leader(sb(r.leader))
        .with_skip_assignment(version >= 9 && r.skip_assignment)
        .with_member_id(sb(r.member_id))
        .with_members(members)
}

fn sync_response(r: SyncResult, version: i16) -> SyncGroupResponse {
    let resp = SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_assignment(r.assignment);
    if version >= 5 {
        resp.with_protocol_type(r.protocol_type.map(sb))
            .with_protocol_name(r.protocol_name.map(sb))
    } else {
        resp
    }
}
