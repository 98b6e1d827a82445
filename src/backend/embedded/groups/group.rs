//! In-memory model of one classic consumer group: members, state machine, protocol selection.
//!
//! Pure bookkeeping, no I/O and no timers: the coordinator drives it and owns the timers
//! (a [`Timer`] stored here is cancelled when dropped).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use tokio::sync::oneshot;

use super::codes;
use super::timer::Timer;

/// The protocol type used by Kafka consumers.
pub(super) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Classic group states, named exactly as Kafka reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// States from which a transition to `self` is legal (Kafka's `validPreviousStates`).
    fn valid_previous(self, prev: GroupState) -> bool {
        use GroupState::*;
        match self {
            PreparingRebalance => matches!(prev, Stable | CompletingRebalance | Empty),
            CompletingRebalance => prev == PreparingRebalance,
            Stable => prev == CompletingRebalance,
            Empty => prev == PreparingRebalance,
            Dead => true,
        }
    }
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the member list sent to the leader in a JoinGroup response.
#[derive(Debug, Clone)]
pub(super) struct JoinMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// Version-independent JoinGroup outcome; turned into a response by the coordinator.
#[derive(Debug, Clone)]
pub(super) struct JoinResult {
    pub error: i16,
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    pub fn error(member_id: impl Into<String>, error: i16) -> Self {
        JoinResult {
            error,
            member_id: member_id.into(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// Version-independent SyncGroup outcome.
#[derive(Debug, Clone)]
pub(super) struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: i16) -> Self {
        SyncResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

pub(super) type JoinTx = oneshot::Sender<JoinResult>;
pub(super) type SyncTx = oneshot::Sender<SyncResult>;

#[derive(Debug)]
pub(super) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<JoinTx>,
    pub awaiting_sync: Option<SyncTx>,
    /// Set until the member's first join completes: such members may expire while awaiting join.
    pub is_new: bool,
    /// Insertion order, used wherever Kafka's iteration order would matter (leader choice, lists).
    pub seq: u64,
    /// Session (heartbeat) expiration timer.
    pub heartbeat: Option<Timer>,
}

impl Member {
    pub fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    pub fn is_awaiting_sync(&self) -> bool {
        self.awaiting_sync.is_some()
    }

    /// Kafka's `hasSatisfiedHeartbeat`: members parked in a rebalance are alive by definition,
    /// except new members which may time out while waiting for their first join.
    pub fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.is_awaiting_join() || self.is_awaiting_sync())
    }

    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Same protocols, same order, same metadata.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    fn vote<'a>(&'a self, candidates: &HashSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Completes a parked JoinGroup, if any. Returns whether one was parked.
    pub fn complete_join(&mut self, result: JoinResult) -> bool {
        match self.awaiting_join.take() {
            Some(tx) => {
                // The client may have gone away; nothing to do then.
                let _ = tx.send(result);
                true
            }
            None => false,
        }
    }

    /// Completes a parked SyncGroup, if any. Returns whether one was parked.
    pub fn complete_sync(&mut self, result: SyncResult) -> bool {
        match self.awaiting_sync.take() {
            Some(tx) => {
                let _ = tx.send(result);
                true
            }
            None => false,
        }
    }
}

#[derive(Debug)]
pub(super) struct Group {
    pub id: String,
    pub state: GroupState,
    pub previous_state: GroupState,
    /// Wall-clock time (ms) of the last state transition (Kafka's currentStateTimestamp).
    pub state_timestamp_ms: i64,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: HashMap<String, Member>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiration timers.
    pub pending_members: HashMap<String, Option<Timer>>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub pending_sync: HashSet<String>,
    /// Topics subscribed by the members (consumer protocol only), computed per generation.
    pub subscribed_topics: Option<HashSet<String>>,
    /// A member was added during the initial (delayed) rebalance.
    pub new_member_added: bool,
    pub join_timer: Option<Timer>,
    pub sync_timer: Option<Timer>,
    next_seq: u64,
}

impl Group {
    pub fn new(id: String, now_ms: i64) -> Self {
        Group {
            id,
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: HashMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            subscribed_topics: None,
            new_member_added: false,
            join_timer: None,
            sync_timer: None,
            next_seq: 0,
        }
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub fn transition(&mut self, to: GroupState, now_ms: i64) {
        debug_assert!(
            to.valid_previous(self.state),
            "group {}: illegal transition {} -> {}",
            self.id,
            self.state,
            to
        );
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    /// PreparingRebalance can be entered from the current state.
    pub fn can_rebalance(&self) -> bool {
        GroupState::PreparingRebalance.valid_previous(self.state)
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    pub fn is_pending_member(&self, member_id: &str) -> bool {
        self.pending_members.contains_key(member_id)
    }

    /// Members in insertion order.
    pub fn members_in_order(&self) -> Vec<&Member> {
        let mut v: Vec<&Member> = self.members.values().collect();
        v.sort_by_key(|m| m.seq);
        v
    }

    pub fn member_ids_in_order(&self) -> Vec<String> {
        self.members_in_order().into_iter().map(|m| m.id.clone()).collect()
    }

    pub fn add_member(&mut self, mut member: Member) {
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), member.id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        member.seq = self.next_seq;
        self.next_seq += 1;
        self.pending_members.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member (or pending member); the returned member still holds its parked
    /// requests, which are answered with an error if dropped unanswered.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.remove(member_id);
        if let Some(m) = &removed {
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members_in_order().first().map(|m| m.id.clone());
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        removed
    }

    pub fn num_awaiting_join(&self) -> usize {
        self.members.values().filter(|m| m.is_awaiting_join()).count()
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    /// Max of the members' rebalance timeouts.
    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0)
    }

    fn protocol_counts(&self) -> HashMap<&str, usize> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            // A member listing a protocol twice still counts once.
            let names: HashSet<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
            for n in names {
                *counts.entry(n).or_default() += 1;
            }
        }
        counts
    }

    /// Kafka's `supportsProtocols`: an Empty group accepts any non-empty protocol list; otherwise
    /// the type must match and one protocol must be supported by every current member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.is(GroupState::Empty) {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            let counts = self.protocol_counts();
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols
                    .iter()
                    .any(|(n, _)| counts.get(n.as_str()).copied() == Some(self.members.len()))
        }
    }

    /// Chooses the protocol supported by all members that gets the most votes, each member
    /// voting for its most preferred candidate. Ties go to the candidate listed first by the
    /// leader (Kafka breaks ties by hash order).
    pub fn select_protocol(&self) -> Option<String> {
        if self.members.is_empty() {
            return None;
        }
        let n = self.members.len();
        let counts = self.protocol_counts();
        let candidates: HashSet<&str> = counts.iter().filter(|(_, c)| **c == n).map(|(name, _)| *name).collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some(p) = m.vote(&candidates) {
                *votes.entry(p).or_default() += 1;
            }
        }
        let max = votes.values().copied().max()?;
        let reference = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members_in_order().into_iter().next())?;
        reference
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| votes.get(name).copied() == Some(max))
            .or_else(|| votes.iter().filter(|(_, v)| **v == max).map(|(name, _)| *name).min())
            .map(str::to_string)
    }

    /// Kafka's `computeSubscribedTopics`: only known for the consumer protocol.
    pub fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(HashSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            match decode_subscription_topics(&m.metadata(protocol)) {
                Some(t) => topics.extend(t),
                None => {
                    tracing::warn!(
                        "Failed to parse Consumer Protocol {}:{} of group {}. Consumer group \
                         coordinator is not aware of the subscribed topics.",
                        CONSUMER_PROTOCOL_TYPE,
                        protocol,
                        self.id
                    );
                    return None;
                }
            }
        }
        Some(topics)
    }

    /// Whether OffsetDelete must refuse the topic: unknown subscriptions count as subscribed
    /// when the group uses the consumer protocol.
    pub fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE),
        }
    }

    pub fn init_next_generation(&mut self, now_ms: i64) {
        self.generation += 1;
        if !self.members.is_empty() {
            self.protocol_name = self.select_protocol();
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::CompletingRebalance, now_ms);
        } else {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::Empty, now_ms);
        }
        self.pending_sync.clear();
    }

    /// Member list for the leader's JoinGroup response.
    pub fn current_member_metadata(&self) -> Vec<JoinMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members_in_order()
            .into_iter()
            .map(|m| JoinMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect()
    }

    /// If the leader has not rejoined, elects the first member that has. Returns false when
    /// the group has no leader or nobody rejoined.
    pub fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader_id) = self.leader.clone() else {
            return false;
        };
        let leader_joined = self
            .members
            .get(&leader_id)
            .map(Member::is_awaiting_join)
            .unwrap_or(false);
        if leader_joined {
            return true;
        }
        let next = self
            .members_in_order()
            .into_iter()
            .find(|m| m.is_awaiting_join())
            .map(|m| m.id.clone());
        match next {
            Some(new_leader) => {
                tracing::info!(
                    "Group leader [memberId: {}] failed to join before the rebalance timeout. \
                     Member {} was elected as the new leader of group {}.",
                    leader_id,
                    new_leader,
                    self.id
                );
                self.leader = Some(new_leader);
                true
            }
            None => {
                tracing::info!(
                    "Group leader [memberId: {}] failed to join before the rebalance timeout and \
                     group {} couldn't proceed to the next generation because no member joined.",
                    leader_id,
                    self.id
                );
                false
            }
        }
    }

    /// Static membership: moves the member known under `old_id` to `new_id`, fencing any request
    /// the old incarnation still has parked. Returns false if `old_id` is unknown.
    pub fn replace_static_member(&mut self, instance_id: &str, old_id: &str, new_id: &str) -> bool {
        let Some(mut member) = self.members.remove(old_id) else {
            return false;
        };
        member.complete_join(JoinResult::error(old_id, codes::FENCED_INSTANCE_ID));
        member.complete_sync(SyncResult::error(codes::FENCED_INSTANCE_ID));
        member.heartbeat = None;
        member.id = new_id.to_string();
        self.members.insert(new_id.to_string(), member);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_string());
        }
        self.pending_sync.remove(old_id);
        self.static_members.insert(instance_id.to_string(), new_id.to_string());
        true
    }

    /// Kafka's `validateMember`: the instance id (if any) must map to `member_id`, and the
    /// member must exist.
    pub fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                None => return Err(codes::UNKNOWN_MEMBER_ID),
                Some(existing) if existing != member_id => {
                    tracing::info!(
                        "Request memberId={} for static member with groupInstanceId={} is fenced \
                         by existing memberId={} in group {}",
                        member_id,
                        instance,
                        existing,
                        self.id
                    );
                    return Err(codes::FENCED_INSTANCE_ID);
                }
                Some(_) => {}
            }
        }
        if !self.has_member(member_id) {
            return Err(codes::UNKNOWN_MEMBER_ID);
        }
        Ok(())
    }
}

/// Decodes the topics of a consumer protocol subscription (version prefix, then the v0 layout,
/// which every later version extends), as Kafka's coordinator does.
pub(super) fn decode_subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    if metadata.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([metadata[0], metadata[1]]);
    if version < 0 {
        return None;
    }
    let mut buf = metadata.slice(2..);
    let sub = ConsumerProtocolSubscription::decode(&mut buf, 0).ok()?;
    Some(sub.topics.into_iter().map(|t| t.to_string()).collect())
}
