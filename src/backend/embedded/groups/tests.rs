//! Unit tests: drive the coordinator directly, with tokio's paused clock for timeouts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::codes::*;
use super::journal::JOURNAL_FILE;
use super::*;

// ----- fixtures -----

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn gid(s: &str) -> GroupId {
    GroupId(sb(s))
}

fn tname(s: &str) -> TopicName {
    TopicName(sb(s))
}

struct Topics(HashMap<String, i32>);

impl TopicLookup for Topics {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.0.get(topic).copied()
    }
}

/// t1 has 3 partitions, t2 has 2, t3 has 16.
fn topics() -> Topics {
    Topics(HashMap::from([
        ("t1".to_string(), 3),
        ("t2".to_string(), 2),
        ("t3".to_string(), 16),
    ]))
}

fn config(initial_delay_ms: u64) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: initial_delay_ms,
        min_session_timeout_ms: 10,
        ..GroupConfig::default()
    }
}

fn open(dir: &Path) -> Arc<GroupCoordinator> {
    GroupCoordinator::open(dir, config(100)).expect("open coordinator")
}

/// A consumer protocol subscription (version prefix + v1 body).
fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| sb(t)).collect())
        .encode(&mut buf, 1)
        .expect("encode subscription");
    buf.freeze()
}

/// Encodes a response at `version`: fields set outside their versions make this fail.
fn enc<T: Encodable>(resp: &T, version: i16) {
    let mut buf = BytesMut::new();
    resp.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("response does not encode at v{version}: {e}"));
}

/// Lets spawned tasks run (time is paused: this also fires due timers, in order).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[derive(Clone)]
struct Join {
    group: String,
    member_id: String,
    instance: Option<String>,
    client_id: String,
    version: i16,
    session_ms: i32,
    rebalance_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    reason: Option<String>,
}

impl Join {
    fn new(group: &str, client_id: &str) -> Self {
        Join {
            group: group.to_string(),
            member_id: String::new(),
            instance: None,
            client_id: client_id.to_string(),
            version: 5,
            session_ms: 10_000,
            rebalance_ms: 30_000,
            protocol_type: "consumer".to_string(),
            protocols: vec![("range".to_string(), subscription(&["t1"]))],
            reason: None,
        }
    }
    fn member(mut self, id: &str) -> Self {
        self.member_id = id.to_string();
        self
    }
    fn instance(mut self, id: &str) -> Self {
        self.instance = Some(id.to_string());
        self
    }
    fn version(mut self, v: i16) -> Self {
        self.version = v;
        self
    }
    fn timeouts(mut self, session_ms: i32, rebalance_ms: i32) -> Self {
        self.session_ms = session_ms;
        self.rebalance_ms = rebalance_ms;
        self
    }
    fn protocols(mut self, protocols: &[(&str, Bytes)]) -> Self {
        self.protocols = protocols.iter().map(|(n, m)| (n.to_string(), m.clone())).collect();
        self
    }
    fn protocol_type(mut self, t: &str) -> Self {
        self.protocol_type = t.to_string();
        self
    }
    fn request(&self) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(gid(&self.group))
            .with_member_id(sb(&self.member_id))
            .with_group_instance_id(self.instance.as_deref().map(sb))
            .with_session_timeout_ms(self.session_ms)
            .with_rebalance_timeout_ms(self.rebalance_ms)
            .with_protocol_type(sb(&self.protocol_type))
            .with_protocols(
                self.protocols
                    .iter()
                    .map(|(n, m)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(sb(n))
                            .with_metadata(m.clone())
                    })
                    .collect(),
            )
            .with_reason(self.reason.as_deref().map(sb))
    }
    fn client(&self) -> ClientInfo {
        ClientInfo {
            client_id: self.client_id.clone(),
            client_host: "/127.0.0.1".to_string(),
        }
    }
}

/// One JoinGroup request.
async fn join_once(c: &Arc<GroupCoordinator>, j: &Join) -> JoinGroupResponse {
    let resp = c.join_group(j.request(), j.version, &j.client()).await;
    enc(&resp, j.version);
    resp
}

/// JoinGroup, repeating it with the assigned id after MEMBER_ID_REQUIRED.
async fn join(c: Arc<GroupCoordinator>, mut j: Join) -> JoinGroupResponse {
    let resp = join_once(&c, &j).await;
    if resp.error_code != MEMBER_ID_REQUIRED {
        return resp;
    }
    j.member_id = resp.member_id.to_string();
    join_once(&c, &j).await
}

fn spawn_join(c: &Arc<GroupCoordinator>, j: Join) -> JoinHandle<JoinGroupResponse> {
    tokio::spawn(join(c.clone(), j))
}

async fn sync(
    c: &Arc<GroupCoordinator>,
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, &str)],
) -> SyncGroupResponse {
    sync_protocol(c, group, generation, member, assignments, "consumer", "range").await
}

async fn sync_protocol(
    c: &Arc<GroupCoordinator>,
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, &str)],
    protocol_type: &str,
    protocol_name: &str,
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(sb(member))
        .with_protocol_type(Some(sb(protocol_type)))
        .with_protocol_name(Some(sb(protocol_name)))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(sb(m))
                        .with_assignment(Bytes::copy_from_slice(a.as_bytes()))
                })
                .collect(),
        );
    let resp = c.sync_group(req, 5).await;
    enc(&resp, 5);
    resp
}

fn spawn_sync(c: &Arc<GroupCoordinator>, group: &str, generation: i32, member: &str) -> JoinHandle<SyncGroupResponse> {
    spawn_sync_protocol(c, group, generation, member, "consumer", "range")
}

fn spawn_sync_protocol(
    c: &Arc<GroupCoordinator>,
    group: &str,
    generation: i32,
    member: &str,
    protocol_type: &str,
    protocol_name: &str,
) -> JoinHandle<SyncGroupResponse> {
    let (c, group, member) = (c.clone(), group.to_string(), member.to_string());
    let (pt, pn) = (protocol_type.to_string(), protocol_name.to_string());
    tokio::spawn(async move { sync_protocol(&c, &group, generation, &member, &[], &pt, &pn).await })
}

async fn heartbeat_inst(
    c: &Arc<GroupCoordinator>,
    group: &str,
    generation: i32,
    member: &str,
    instance: Option<&str>,
) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(sb(member))
        .with_group_instance_id(instance.map(sb));
    let resp = c.heartbeat(req, 4).await;
    enc(&resp, 4);
    resp.error_code
}

async fn heartbeat(c: &Arc<GroupCoordinator>, group: &str, generation: i32, member: &str) -> i16 {
    heartbeat_inst(c, group, generation, member, None).await
}

/// A Stable group: joins everyone concurrently (within the initial delay), then the leader
/// assigns "assignment-<member id>" to each member. Returns the join responses in order.
async fn stable_group(c: &Arc<GroupCoordinator>, joins: Vec<Join>) -> Vec<JoinGroupResponse> {
    let group = joins[0].group.clone();
    let protocol_type = joins[0].protocol_type.clone();
    let handles: Vec<_> = joins.into_iter().map(|j| spawn_join(c, j)).collect();
    let mut responses = Vec::new();
    for h in handles {
        responses.push(h.await.unwrap());
    }
    let generation = responses[0].generation_id;
    for r in &responses {
        assert_eq!(r.error_code, NONE, "join failed: {r:?}");
        assert_eq!(r.generation_id, generation);
    }
    let leader = responses[0].leader.to_string();
    let protocol_name = responses[0]
        .protocol_name
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let followers: Vec<_> = responses
        .iter()
        .filter(|r| r.member_id.as_str() != leader)
        .map(|r| {
            spawn_sync_protocol(
                c,
                &group,
                generation,
                r.member_id.as_str(),
                &protocol_type,
                &protocol_name,
            )
        })
        .collect();
    settle().await;
    let assignments: Vec<(String, String)> = responses
        .iter()
        .map(|r| (r.member_id.to_string(), format!("assignment-{}", r.member_id.as_str())))
        .collect();
    let refs: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (m.as_str(), a.as_str())).collect();
    let lr = sync_protocol(c, &group, generation, &leader, &refs, &protocol_type, &protocol_name).await;
    assert_eq!(lr.error_code, NONE);
    for f in followers {
        let r = f.await.unwrap();
        assert_eq!(r.error_code, NONE);
        assert!(r.assignment.starts_with(b"assignment-"));
    }
    assert_eq!(c.group_state(&group), Some(GroupState::Stable));
    responses
}

fn commit_req(group: &str, generation: i32, member: &str, offsets: &[(&str, i32, i64, &str)]) -> OffsetCommitRequest {
    let mut by_topic: Vec<(String, Vec<OffsetCommitRequestPartition>)> = Vec::new();
    for (t, p, o, m) in offsets {
        let part = OffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*o)
            .with_committed_metadata(Some(sb(m)));
        match by_topic.iter_mut().find(|(name, _)| name == t) {
            Some((_, parts)) => parts.push(part),
            None => by_topic.push((t.to_string(), vec![part])),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, parts)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(tname(&t))
                        .with_partitions(parts)
                })
                .collect(),
        )
}

/// Commits and returns the error codes per (topic, partition), in request order.
fn commit(c: &GroupCoordinator, version: i16, req: OffsetCommitRequest) -> Vec<(String, i32, i16)> {
    let resp = c.offset_commit(req, version, &topics());
    enc(&resp, version);
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

fn simple_commit(c: &GroupCoordinator, group: &str, offsets: &[(&str, i32, i64, &str)]) {
    for (t, p, e) in commit(c, 8, commit_req(group, -1, "", offsets)) {
        assert_eq!(e, NONE, "commit of {t}-{p} failed");
    }
}

/// (topic, partition, offset, metadata, error)
type FetchedOffset = (String, i32, i64, String, i16);

/// Fetches with OffsetFetch v8 and returns (topic, partition) -> (offset, metadata, error).
fn fetch(c: &GroupCoordinator, group: &str, partitions: Option<&[(&str, i32)]>) -> (i16, Vec<FetchedOffset>) {
    let topics_req = partitions.map(|ps| {
        let mut v: Vec<OffsetFetchRequestTopics> = Vec::new();
        for (t, p) in ps {
            match v.iter_mut().find(|x| x.name.as_str() == *t) {
                Some(x) => x.partition_indexes.push(*p),
                None => v.push(
                    OffsetFetchRequestTopics::default()
                        .with_name(tname(t))
                        .with_partition_indexes(vec![*p]),
                ),
            }
        }
        v
    });
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(gid(group))
        .with_topics(topics_req)]);
    let resp = c.offset_fetch(req, 8, &topics());
    enc(&resp, 8);
    assert_eq!(resp.groups.len(), 1);
    let g = &resp.groups[0];
    let parts = g
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                    p.error_code,
                )
            })
        })
        .collect();
    (g.error_code, parts)
}

fn fetch_one(c: &GroupCoordinator, group: &str, topic: &str, partition: i32) -> i64 {
    let (err, parts) = fetch(c, group, Some(&[(topic, partition)]));
    assert_eq!(err, NONE);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].4, NONE);
    parts[0].2
}

fn describe(c: &GroupCoordinator, group: &str, version: i16) -> DescribedGroup {
    let resp = c.describe_groups(DescribeGroupsRequest::default().with_groups(vec![gid(group)]), version);
    enc(&resp, version);
    resp.groups.into_iter().next().expect("one group described")
}

fn list(c: &GroupCoordinator, version: i16, states: &[&str]) -> Vec<(String, String)> {
    let resp = c.list_groups(
        ListGroupsRequest::default().with_states_filter(states.iter().map(|s| sb(s)).collect()),
        version,
    );
    enc(&resp, version);
    assert_eq!(resp.error_code, NONE);
    resp.groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
        .collect()
}

async fn leave(
    c: &GroupCoordinator,
    group: &str,
    members: &[(&str, Option<&str>)],
    version: i16,
) -> LeaveGroupResponse {
    let mut req = LeaveGroupRequest::default().with_group_id(gid(group));
    if version >= 3 {
        req = req.with_members(
            members
                .iter()
                .map(|(m, i)| {
                    MemberIdentity::default()
                        .with_member_id(sb(m))
                        .with_group_instance_id(i.map(sb))
                })
                .collect(),
        );
    } else {
        req = req.with_member_id(sb(members[0].0));
    }
    let resp = c.leave_group(req, version).await;
    enc(&resp, version);
    resp
}

// ----- tests: membership -----

#[test]
fn error_codes_match_kafka() {
    use kafka_protocol::error::ResponseError as E;
    for (ours, theirs) in [
        (UNKNOWN_TOPIC_OR_PARTITION, E::UnknownTopicOrPartition),
        (OFFSET_METADATA_TOO_LARGE, E::OffsetMetadataTooLarge),
        (COORDINATOR_NOT_AVAILABLE, E::CoordinatorNotAvailable),
        (NOT_COORDINATOR, E::NotCoordinator),
        (ILLEGAL_GENERATION, E::IllegalGeneration),
        (INCONSISTENT_GROUP_PROTOCOL, E::InconsistentGroupProtocol),
        (INVALID_GROUP_ID, E::InvalidGroupId),
        (UNKNOWN_MEMBER_ID, E::UnknownMemberId),
        (INVALID_SESSION_TIMEOUT, E::InvalidSessionTimeout),
        (REBALANCE_IN_PROGRESS, E::RebalanceInProgress),
        (NON_EMPTY_GROUP, E::NonEmptyGroup),
        (GROUP_ID_NOT_FOUND, E::GroupIdNotFound),
        (MEMBER_ID_REQUIRED, E::MemberIdRequired),
        (GROUP_MAX_SIZE_REACHED, E::GroupMaxSizeReached),
        (FENCED_INSTANCE_ID, E::FencedInstanceId),
        (GROUP_SUBSCRIBED_TO_TOPIC, E::GroupSubscribedToTopic),
    ] {
        assert_eq!(ours, theirs.code(), "{theirs:?}");
    }
}

#[test]
fn supported_versions_fit_the_crate() {
    for (api, min, max) in SUPPORTED_VERSIONS {
        let range = api.valid_versions();
        assert!(
            range.min <= *min && *max <= range.max,
            "{api:?} {min}-{max} outside {range:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn member_id_required_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let j = Join::new("g", "client-a");
    let first = join_once(&c, &j).await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let assigned = first.member_id.to_string();
    assert!(assigned.starts_with("client-a-"), "{assigned}");
    assert_eq!(assigned.len(), "client-a-".len() + 36, "client id + uuid");
    // The pending member is not a member yet.
    assert!(describe(&c, "g", 5).members.is_empty());

    let second = join_once(&c, &j.clone().member(&assigned)).await;
    assert_eq!(second.error_code, NONE);
    assert_eq!(second.member_id.as_str(), assigned);
    assert_eq!(second.generation_id, 1);
    assert_eq!(second.leader.as_str(), assigned);
    assert_eq!(second.protocol_name.as_ref().map(|s| s.as_str()), Some("range"));
    assert_eq!(second.members.len(), 1);

    // A pending id that is not used within the session timeout expires.
    let other = join_once(&c, &Join::new("g", "client-b")).await;
    assert_eq!(other.error_code, MEMBER_ID_REQUIRED);
    tokio::time::sleep(Duration::from_millis(10_001)).await;
    let late = join_once(&c, &Join::new("g", "client-b").member(other.member_id.as_str())).await;
    assert_eq!(late.error_code, UNKNOWN_MEMBER_ID);

    // Before v4 no member id is required.
    let v3 = join_once(&c, &Join::new("g3", "old-client").version(3)).await;
    assert_eq!(v3.error_code, NONE);
    assert!(v3.member_id.starts_with("old-client-"));
}

#[tokio::test(start_paused = true)]
async fn single_member_join_sync_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let r = join(c.clone(), Join::new("g", "c1")).await;
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.generation_id, 1);
    let me = r.member_id.to_string();
    assert_eq!(r.leader.as_str(), me);
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, subscription(&["t1"]));
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(heartbeat(&c, "g", 1, &me).await, NONE);

    let s = sync(&c, "g", 1, &me, &[(&me, "mine")]).await;
    assert_eq!(s.error_code, NONE);
    assert_eq!(&s.assignment[..], b"mine");
    assert_eq!(s.protocol_name.as_ref().map(|s| s.as_str()), Some("range"));
    assert_eq!(s.protocol_type.as_ref().map(|s| s.as_str()), Some("consumer"));
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));

    assert_eq!(heartbeat(&c, "g", 1, &me).await, NONE);
    assert_eq!(heartbeat(&c, "g", 0, &me).await, ILLEGAL_GENERATION);
    assert_eq!(heartbeat(&c, "g", 1, "stranger").await, UNKNOWN_MEMBER_ID);
    assert_eq!(heartbeat(&c, "nope", 1, &me).await, UNKNOWN_MEMBER_ID);
    assert_eq!(heartbeat(&c, "", 1, &me).await, INVALID_GROUP_ID);
    // Heartbeats keep the session alive well past the session timeout.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(heartbeat(&c, "g", 1, &me).await, NONE);
    }
    // A sync in Stable returns the current assignment.
    let again = sync(&c, "g", 1, &me, &[]).await;
    assert_eq!(&again.assignment[..], b"mine");
    // A follower-style rejoin with the same metadata by the leader forces a rebalance.
    let rejoin = join(c.clone(), Join::new("g", "c1").member(&me)).await;
    assert_eq!(rejoin.generation_id, 2);
}

#[tokio::test(start_paused = true)]
async fn join_validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let r = join_once(&c, &Join::new("", "c")).await;
    assert_eq!(r.error_code, INVALID_GROUP_ID);
    let r = join_once(&c, &Join::new("g", "c").timeouts(5, 1000)).await;
    assert_eq!(r.error_code, INVALID_SESSION_TIMEOUT);
    let r = join_once(&c, &Join::new("g", "c").timeouts(1_800_001, 1000)).await;
    assert_eq!(r.error_code, INVALID_SESSION_TIMEOUT);
    // A member id for a group that does not exist.
    let r = join_once(&c, &Join::new("g", "c").member("ghost")).await;
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(r.member_id.as_str(), "ghost");
    // No protocol.
    let r = join_once(&c, &Join::new("g", "c").protocols(&[])).await;
    assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL);
    // Sync / leave for unknown groups.
    assert_eq!(sync(&c, "zz", 1, "m", &[]).await.error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(leave(&c, "zz", &[("m", None)], 3).await.error_code, UNKNOWN_MEMBER_ID);
}

#[tokio::test(start_paused = true)]
async fn third_member_triggers_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let first = stable_group(&c, vec![Join::new("g", "a"), Join::new("g", "b")]).await;
    assert_eq!(first[0].generation_id, 1);
    assert_eq!(first[0].members.len(), 2, "leader sees both members");
    assert!(first[1].members.is_empty(), "followers see no members");
    let a = first[0].member_id.to_string();
    let b = first[1].member_id.to_string();

    let third = spawn_join(&c, Join::new("g", "c"));
    settle().await;
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert!(!third.is_finished(), "join is parked until the others rejoin");
    assert_eq!(heartbeat(&c, "g", 1, &a).await, REBALANCE_IN_PROGRESS);
    assert_eq!(heartbeat(&c, "g", 1, &b).await, REBALANCE_IN_PROGRESS);
    // Sync and commits during PreparingRebalance.
    assert_eq!(sync(&c, "g", 1, &b, &[]).await.error_code, REBALANCE_IN_PROGRESS);

    let ra = spawn_join(&c, Join::new("g", "a").member(&a));
    settle().await;
    assert!(!ra.is_finished());
    let rb = spawn_join(&c, Join::new("g", "b").member(&b));
    let (ra, rb, rc) = (ra.await.unwrap(), rb.await.unwrap(), third.await.unwrap());
    for r in [&ra, &rb, &rc] {
        assert_eq!(r.error_code, NONE);
        assert_eq!(r.generation_id, 2);
        assert_eq!(r.leader.as_str(), a, "the leader kept its role");
    }
    assert_eq!(ra.members.len(), 3, "the leader sees all three members");
    assert!(rb.members.is_empty() && rc.members.is_empty());
    let mut ids: Vec<String> = ra.members.iter().map(|m| m.member_id.to_string()).collect();
    ids.sort();
    let mut expected = vec![a.clone(), b.clone(), rc.member_id.to_string()];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
    // Old generation is now illegal.
    assert_eq!(heartbeat(&c, "g", 1, &a).await, ILLEGAL_GENERATION);

    // A member that missed its JoinGroup response rejoins with the same metadata: it gets
    // the current generation back without a new rebalance (the leader gets the members).
    let again = join(c.clone(), Join::new("g", "b").member(&b)).await;
    assert_eq!((again.error_code, again.generation_id), (NONE, 2));
    assert!(again.members.is_empty());
    let again = join(c.clone(), Join::new("g", "a").member(&a)).await;
    assert_eq!((again.generation_id, again.members.len()), (2, 3));
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));

    // Everyone syncs; then a follower rejoining unchanged in Stable changes nothing either.
    let c_id = rc.member_id.to_string();
    let sb_ = spawn_sync(&c, "g", 2, &b);
    let sc_ = spawn_sync(&c, "g", 2, &c_id);
    settle().await;
    let sa = sync(&c, "g", 2, &a, &[(&a, "A"), (&b, "B")]).await;
    assert_eq!(&sa.assignment[..], b"A");
    assert_eq!(&sb_.await.unwrap().assignment[..], b"B");
    let sc = sc_.await.unwrap();
    assert_eq!(sc.error_code, NONE);
    assert!(sc.assignment.is_empty(), "members left out by the leader get nothing");
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    let same = join(c.clone(), Join::new("g", "c").member(&c_id)).await;
    assert_eq!((same.error_code, same.generation_id), (NONE, 2));
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    // With new metadata it triggers a rebalance.
    let changed = spawn_join(
        &c,
        Join::new("g", "c")
            .member(&c_id)
            .protocols(&[("range", subscription(&["t1", "t2"]))]),
    );
    settle().await;
    assert!(!changed.is_finished());
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
}

#[tokio::test(start_paused = true)]
async fn member_leave_triggers_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let rs = stable_group(&c, vec![Join::new("g", "a"), Join::new("g", "b")]).await;
    let (a, b) = (rs[0].member_id.to_string(), rs[1].member_id.to_string());

    let resp = leave(&c, "g", &[(&b, None), ("nobody", None)], 3).await;
    assert_eq!(resp.error_code, NONE);
    let codes: Vec<(String, i16)> = resp
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![(b.clone(), NONE), ("nobody".to_string(), UNKNOWN_MEMBER_ID)]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(heartbeat(&c, "g", 1, &a).await, REBALANCE_IN_PROGRESS);
    assert_eq!(heartbeat(&c, "g", 1, &b).await, UNKNOWN_MEMBER_ID);
    let r = join(c.clone(), Join::new("g", "a").member(&a)).await;
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.members.len(), 1);

    // v0-2: single member, error at the top level.
    let old = leave(&c, "g", &[("nobody", None)], 1).await;
    assert_eq!(old.error_code, UNKNOWN_MEMBER_ID);
    assert!(old.members.is_empty());
    let old = leave(&c, "g", &[(&a, None)], 0).await;
    assert_eq!(old.error_code, NONE);
    // The last member left: the rebalance ends with an empty group.
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(describe(&c, "g", 5).group_state.as_str(), "Empty");
}

#[tokio::test(start_paused = true)]
async fn session_expiry_removes_silent_member() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let rs = stable_group(
        &c,
        vec![
            Join::new("g", "a").timeouts(10_000, 30_000),
            Join::new("g", "b").timeouts(10_000, 30_000),
        ],
    )
    .await;
    let (a, b) = (rs[0].member_id.to_string(), rs[1].member_id.to_string());
    let start = Instant::now();
    // a heartbeats every 3 s, b stays silent.
    let mut code = NONE;
    while code == NONE {
        tokio::time::sleep(Duration::from_secs(3)).await;
        code = heartbeat(&c, "g", 1, &a).await;
        assert!(start.elapsed() < Duration::from_secs(20), "b never expired");
    }
    assert_eq!(code, REBALANCE_IN_PROGRESS);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(10) && elapsed <= Duration::from_secs(13),
        "{elapsed:?}"
    );
    assert_eq!(heartbeat(&c, "g", 1, &b).await, UNKNOWN_MEMBER_ID);
    let r = join(c.clone(), Join::new("g", "a").member(&a)).await;
    assert_eq!((r.error_code, r.generation_id, r.members.len()), (NONE, 2, 1));

    // The last member going silent empties the group.
    let s = sync(&c, "g", 2, &a, &[(&a, "x")]).await;
    assert_eq!(s.error_code, NONE);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(describe(&c, "g", 5).members.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn rebalance_timeout_drops_member_that_does_not_rejoin() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let rs = stable_group(
        &c,
        vec![
            Join::new("g", "a").timeouts(60_000, 20_000),
            Join::new("g", "b").timeouts(60_000, 20_000),
        ],
    )
    .await;
    let (a, b) = (rs[0].member_id.to_string(), rs[1].member_id.to_string());
    let start = Instant::now();
    // The leader rejoins: that forces a rebalance.
    let ra = spawn_join(&c, Join::new("g", "a").member(&a).timeouts(60_000, 20_000));
    settle().await;
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    // b keeps heartbeating but never rejoins.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(heartbeat(&c, "g", 1, &b).await, REBALANCE_IN_PROGRESS);
        assert!(!ra.is_finished());
    }
    let r = ra.await.unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(20) && elapsed < Duration::from_secs(21),
        "{elapsed:?}"
    );
    assert_eq!((r.error_code, r.generation_id), (NONE, 2));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].member_id.as_str(), a);
    assert_eq!(heartbeat(&c, "g", 2, &b).await, UNKNOWN_MEMBER_ID);
}

#[tokio::test(start_paused = true)]
async fn leader_that_never_syncs_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let handles = vec![
        spawn_join(&c, Join::new("g", "a").timeouts(60_000, 20_000)),
        spawn_join(&c, Join::new("g", "b").timeouts(60_000, 20_000)),
    ];
    let mut rs = Vec::new();
    for h in handles {
        rs.push(h.await.unwrap());
    }
    let leader = rs[0].leader.to_string();
    let follower = rs
        .iter()
        .find(|r| r.member_id.as_str() != leader)
        .unwrap()
        .member_id
        .to_string();
    let parked = spawn_sync(&c, "g", 1, &follower);
    tokio::time::sleep(Duration::from_secs(21)).await;
    let s = parked.await.unwrap();
    assert_eq!(s.error_code, REBALANCE_IN_PROGRESS);
    assert_eq!(heartbeat(&c, "g", 1, &leader).await, UNKNOWN_MEMBER_ID);
    let r = join(c.clone(), Join::new("g", "b").member(&follower)).await;
    assert_eq!((r.error_code, r.generation_id), (NONE, 2));
    assert_eq!(r.leader.as_str(), follower);
}

#[tokio::test(start_paused = true)]
async fn static_member_restart_keeps_assignment_and_fences_old_id() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let rs = stable_group(
        &c,
        vec![Join::new("g", "a").instance("i1"), Join::new("g", "b").instance("i2")],
    )
    .await;
    let (old1, id2) = (rs[0].member_id.to_string(), rs[1].member_id.to_string());
    assert!(old1.starts_with("i1-"), "static ids derive from the instance id");
    assert_eq!(rs[0].leader.as_str(), old1);

    // i1 restarts: unknown member id, same instance id, same protocols.
    let restarted = join_once(&c, &Join::new("g", "a").instance("i1")).await;
    assert_eq!(restarted.error_code, NONE);
    let new1 = restarted.member_id.to_string();
    assert_ne!(new1, old1);
    assert_eq!(restarted.generation_id, 1, "no new generation");
    // Before v9 the old leader id is returned, so the restarted leader does not assign.
    assert_eq!(restarted.leader.as_str(), old1);
    assert!(restarted.members.is_empty());
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));

    let s = sync(&c, "g", 1, &new1, &[]).await;
    assert_eq!(s.error_code, NONE);
    assert_eq!(s.assignment, Bytes::from(format!("assignment-{old1}")));
    assert_eq!(heartbeat_inst(&c, "g", 1, &old1, Some("i1")).await, FENCED_INSTANCE_ID);
    assert_eq!(heartbeat(&c, "g", 1, &old1).await, UNKNOWN_MEMBER_ID);
    assert_eq!(heartbeat_inst(&c, "g", 1, &new1, Some("i1")).await, NONE);
    assert_eq!(heartbeat_inst(&c, "g", 1, &id2, Some("i2")).await, NONE);
    let d = describe(&c, "g", 5);
    assert_eq!(d.group_state.as_str(), "Stable");
    let mut instances: Vec<String> = d
        .members
        .iter()
        .map(|m| m.group_instance_id.as_ref().unwrap().to_string())
        .collect();
    instances.sort();
    assert_eq!(instances, vec!["i1", "i2"]);

    // v9: the restarted leader learns it leads but may skip the assignment.
    let again = join_once(&c, &Join::new("g", "a").instance("i1").version(9)).await;
    assert_eq!(again.error_code, NONE);
    assert!(again.skip_assignment);
    assert_eq!(again.leader, again.member_id);
    assert_eq!(again.members.len(), 2);
    assert_eq!(again.protocol_type.as_ref().map(|s| s.as_str()), Some("consumer"));
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));

    // Like Kafka, a static member restarting with another subscription but the same selected
    // protocol does not trigger a rebalance (the v9 leader is expected to notice).
    let two_topics = subscription(&["t1", "t2"]);
    let r2 = join_once(
        &c,
        &Join::new("g", "b")
            .instance("i2")
            .protocols(&[("range", two_topics.clone())]),
    )
    .await;
    assert_eq!((r2.error_code, r2.generation_id), (NONE, 1));
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    let id2 = r2.member_id.to_string();
    // The same member rejoining with its current id and new metadata does rebalance.
    let changed = spawn_join(
        &c,
        Join::new("g", "b")
            .instance("i2")
            .member(&id2)
            .protocols(&[("range", subscription(&["t2"]))]),
    );
    settle().await;
    assert!(!changed.is_finished());
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    // Leave by instance id only (administrative removal): the rebalance can complete.
    let l = leave(&c, "g", &[("", Some("i1"))], 4).await;
    assert_eq!(l.members[0].error_code, NONE);
    let r = changed.await.unwrap();
    assert_eq!((r.error_code, r.generation_id), (NONE, 2));
    assert_eq!(r.members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn inconsistent_protocols_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let rs = stable_group(&c, vec![Join::new("g", "a")]).await;
    let a = rs[0].member_id.to_string();
    let other = join(
        c.clone(),
        Join::new("g", "b").protocols(&[("roundrobin", subscription(&["t1"]))]),
    )
    .await;
    assert_eq!(other.error_code, INCONSISTENT_GROUP_PROTOCOL);
    let other = join(c.clone(), Join::new("g", "b").protocol_type("connect")).await;
    assert_eq!(other.error_code, INCONSISTENT_GROUP_PROTOCOL);
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));

    // SyncGroup v5 checks the protocol type and name.
    let req = |t: Option<&str>, n: Option<&str>| {
        SyncGroupRequest::default()
            .with_group_id(gid("g"))
            .with_generation_id(1)
            .with_member_id(sb(&a))
            .with_protocol_type(t.map(sb))
            .with_protocol_name(n.map(sb))
    };
    let r = c.sync_group(req(Some("consumer"), Some("roundrobin")), 5).await;
    assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL);
    let r = c.sync_group(req(Some("connect"), Some("range")), 5).await;
    assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL);
    let r = c.sync_group(req(None, Some("range")), 5).await;
    assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL, "mandatory from v5");
    let r = c.sync_group(req(None, None), 4).await;
    assert_eq!(r.error_code, NONE);

    // Selection: most votes among the protocols everyone supports.
    let dir2 = tempfile::tempdir().unwrap();
    let c2 = open(dir2.path());
    let m = subscription(&["t1"]);
    let rs = stable_group(
        &c2,
        vec![
            Join::new("h", "a").protocols(&[("rr", m.clone()), ("range", m.clone()), ("x", m.clone())]),
            Join::new("h", "b").protocols(&[("range", m.clone()), ("rr", m.clone())]),
            Join::new("h", "c").protocols(&[("sticky", m.clone()), ("range", m.clone()), ("rr", m.clone())]),
        ],
    )
    .await;
    assert_eq!(rs[0].protocol_name.as_ref().map(|s| s.as_str()), Some("range"));
}

#[tokio::test(start_paused = true)]
async fn new_member_join_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let rs = stable_group(&c, vec![Join::new("g", "a").timeouts(10_000, 600_000)]).await;
    let a = rs[0].member_id.to_string();
    let b = spawn_join(&c, Join::new("g", "b").timeouts(10_000, 600_000));
    settle().await;
    let start = Instant::now();
    // a stays alive but does not rejoin: the rebalance would last 10 minutes, but the new
    // member's JoinGroup gives up after 5.
    while !b.is_finished() {
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(heartbeat(&c, "g", 1, &a).await, REBALANCE_IN_PROGRESS);
        assert!(start.elapsed() < Duration::from_secs(400));
    }
    assert!(start.elapsed() >= Duration::from_millis(NEW_MEMBER_JOIN_TIMEOUT_MS));
    assert_eq!(b.await.unwrap().error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(describe(&c, "g", 5).members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn initial_rebalance_delay_collects_members() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), config(3000)).unwrap();
    let start = Instant::now();
    let first = spawn_join(&c, Join::new("g", "a"));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(!first.is_finished());
    let second = spawn_join(&c, Join::new("g", "b"));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    // The delay was extended once because b arrived during it.
    assert!(!first.is_finished());
    let third = spawn_join(&c, Join::new("g", "c"));
    let (r1, r2, r3) = (first.await.unwrap(), second.await.unwrap(), third.await.unwrap());
    let elapsed = start.elapsed();
    assert_eq!(elapsed, Duration::from_millis(9000), "3 s, extended twice");
    for r in [&r1, &r2, &r3] {
        assert_eq!((r.error_code, r.generation_id), (NONE, 1));
    }
    assert_eq!(r1.members.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn group_max_size_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(
        dir.path(),
        GroupConfig {
            max_size: 1,
            ..config(0)
        },
    )
    .unwrap();
    let rs = stable_group(&c, vec![Join::new("g", "a")]).await;
    let r = join(c.clone(), Join::new("g", "b")).await;
    assert_eq!(r.error_code, GROUP_MAX_SIZE_REACHED);
    assert_eq!(describe(&c, "g", 5).members.len(), 1);
    assert_eq!(
        heartbeat(&c, "g", 1, rs[0].member_id.as_str()).await,
        NONE,
        "no rebalance was triggered"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_fails_pending_requests() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let rs = stable_group(&c, vec![Join::new("g", "a"), Join::new("g", "b")]).await;
    let a = rs[0].member_id.to_string();
    let parked = spawn_join(&c, Join::new("g", "a").member(&a));
    settle().await;
    assert!(!parked.is_finished());
    c.shutdown();
    let r = parked.await.unwrap();
    assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE);
    assert_eq!(heartbeat(&c, "g", 1, &a).await, COORDINATOR_NOT_AVAILABLE);
    let r = join_once(&c, &Join::new("g", "z")).await;
    assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE);
    let codes = commit(&c, 8, commit_req("g", -1, "", &[("t1", 0, 1, "")]));
    assert_eq!(codes[0].2, COORDINATOR_NOT_AVAILABLE);
    assert_eq!(fetch(&c, "g", None).0, COORDINATOR_NOT_AVAILABLE);
    let l = c.list_groups(ListGroupsRequest::default(), 4);
    assert_eq!(l.error_code, COORDINATOR_NOT_AVAILABLE);
    // Nothing fires after shutdown.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
}

// ----- tests: offsets -----

#[tokio::test]
async fn commit_fetch_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let big = "x".repeat(OFFSET_METADATA_MAX_BYTES + 1);
    let mut req = commit_req(
        "g",
        -1,
        "",
        &[
            ("t1", 0, 10, "m0"),
            ("t1", 1, 20, ""),
            ("t1", 7, 1, ""),
            ("nope", 0, 1, ""),
            ("t2", 0, 5, "five"),
            ("t2", 1, 6, &big),
        ],
    );
    req.topics[2].partitions[0].committed_leader_epoch = 3;
    let codes = commit(&c, 8, req);
    assert_eq!(
        codes,
        vec![
            ("t1".to_string(), 0, NONE),
            ("t1".to_string(), 1, NONE),
            ("t1".to_string(), 7, UNKNOWN_TOPIC_OR_PARTITION),
            ("nope".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
            ("t2".to_string(), 0, NONE),
            ("t2".to_string(), 1, OFFSET_METADATA_TOO_LARGE),
        ]
    );
    // Exactly at the limit is fine.
    let at_limit = "y".repeat(OFFSET_METADATA_MAX_BYTES);
    simple_commit(&c, "g", &[("t2", 1, 7, &at_limit)]);

    let (err, parts) = fetch(&c, "g", Some(&[("t1", 0), ("t1", 2), ("t2", 0), ("zz", 0)]));
    assert_eq!(err, NONE);
    assert_eq!(
        parts,
        vec![
            ("t1".to_string(), 0, 10, "m0".to_string(), NONE),
            ("t1".to_string(), 2, -1, String::new(), NONE),
            ("t2".to_string(), 0, 5, "five".to_string(), NONE),
            ("zz".to_string(), 0, -1, String::new(), NONE),
        ]
    );
    // All partitions (null topics).
    let (_, all) = fetch(&c, "g", None);
    let all: Vec<(String, i32, i64)> = all.into_iter().map(|p| (p.0, p.1, p.2)).collect();
    assert_eq!(
        all,
        vec![
            ("t1".to_string(), 0, 10),
            ("t1".to_string(), 1, 20),
            ("t2".to_string(), 0, 5),
            ("t2".to_string(), 1, 7),
        ]
    );
    // Unknown group: -1 everywhere, no error; all partitions: nothing.
    assert_eq!(fetch_one(&c, "other", "t1", 0), -1);
    assert!(fetch(&c, "other", None).1.is_empty());

    // Single-group versions.
    for version in 1..=7 {
        let req = OffsetFetchRequest::default()
            .with_group_id(gid("g"))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(tname("t2"))
                .with_partition_indexes(vec![0])]));
        let resp = c.offset_fetch(req, version, &topics());
        enc(&resp, version);
        let p = &resp.topics[0].partitions[0];
        assert_eq!((p.committed_offset, p.error_code), (5, NONE));
        let epoch = if version >= 5 { 3 } else { -1 };
        assert_eq!(p.committed_leader_epoch, epoch, "v{version}");
        if version >= 2 {
            let all = c.offset_fetch(
                OffsetFetchRequest::default().with_group_id(gid("g")).with_topics(None),
                version,
                &topics(),
            );
            enc(&all, version);
            assert_eq!(all.topics.len(), 2, "v{version}");
        }
    }
    // Multi-group form.
    let req = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(gid("g"))
            .with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(gid("other"))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(tname("t1"))
                .with_partition_indexes(vec![0])])),
    ]);
    let resp = c.offset_fetch(req, 8, &topics());
    enc(&resp, 8);
    assert_eq!(resp.groups.len(), 2);
    assert_eq!(resp.groups[0].topics.len(), 2);
    assert_eq!(resp.groups[1].topics[0].partitions[0].committed_offset, -1);
    // Listed as an Empty group without protocol type (a "simple" group).
    let l = c.list_groups(ListGroupsRequest::default(), 4);
    assert_eq!(l.groups.len(), 1);
    assert_eq!(l.groups[0].group_state.as_str(), "Empty");
    assert_eq!(l.groups[0].protocol_type.as_str(), "");
}

#[tokio::test(start_paused = true)]
async fn member_commits_validate_generation() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let rs = stable_group(&c, vec![Join::new("g", "a")]).await;
    let a = rs[0].member_id.to_string();
    let codes = |v, r| commit(&c, v, r).into_iter().map(|x| x.2).collect::<Vec<_>>();
    assert_eq!(codes(8, commit_req("g", 1, &a, &[("t1", 0, 5, "")])), vec![NONE]);
    assert_eq!(fetch_one(&c, "g", "t1", 0), 5);
    assert_eq!(
        codes(8, commit_req("g", 0, &a, &[("t1", 0, 6, "")])),
        vec![ILLEGAL_GENERATION]
    );
    assert_eq!(
        codes(8, commit_req("g", 1, "bogus", &[("t1", 0, 6, "")])),
        vec![UNKNOWN_MEMBER_ID]
    );
    assert_eq!(
        codes(8, commit_req("g", -1, "", &[("t1", 0, 6, "")])),
        vec![UNKNOWN_MEMBER_ID],
        "simple commits are refused while the group has members"
    );
    assert_eq!(
        codes(8, commit_req("nogroup", 3, "m", &[("t1", 0, 6, "")])),
        vec![ILLEGAL_GENERATION]
    );
    assert_eq!(
        codes(9, commit_req("nogroup", 3, "m", &[("t1", 0, 6, "")])),
        vec![GROUP_ID_NOT_FOUND]
    );
    assert_eq!(fetch_one(&c, "g", "t1", 0), 5, "rejected commits changed nothing");

    // During CompletingRebalance a current member gets REBALANCE_IN_PROGRESS.
    let b = spawn_join(&c, Join::new("g", "b"));
    settle().await;
    let ra = join(c.clone(), Join::new("g", "a").member(&a)).await;
    assert_eq!(ra.generation_id, 2);
    b.await.unwrap();
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(
        codes(8, commit_req("g", 2, &a, &[("t1", 0, 7, "")])),
        vec![REBALANCE_IN_PROGRESS]
    );
    assert_eq!(
        codes(8, commit_req("g", 1, &a, &[("t1", 0, 7, "")])),
        vec![ILLEGAL_GENERATION]
    );

    // Commits keep the session alive (Stable and PreparingRebalance).
    let dir2 = tempfile::tempdir().unwrap();
    let c2 = open(dir2.path());
    let rs = stable_group(&c2, vec![Join::new("s", "a").timeouts(10_000, 30_000)]).await;
    let m = rs[0].member_id.to_string();
    for i in 0..6 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let r = commit(&c2, 8, commit_req("s", 1, &m, &[("t1", 0, i, "")]));
        assert_eq!(r[0].2, NONE);
    }
    assert_eq!(c2.group_state("s"), Some(GroupState::Stable));
}

#[tokio::test]
async fn offsets_survive_reopen_and_torn_journal_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = open(dir.path());
        simple_commit(&c, "g", &[("t1", 0, 42, "meta"), ("t2", 1, 7, "")]);
        simple_commit(&c, "g", &[("t1", 0, 43, "meta2")]);
        simple_commit(&c, "h", &[("t1", 2, 9, "")]);
        // Durable without flush or shutdown: what a kill -9 would leave behind.
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(dir.path().join(JOURNAL_FILE), copy.path().join(JOURNAL_FILE)).unwrap();
        let c2 = open(copy.path());
        assert_eq!(fetch_one(&c2, "g", "t1", 0), 43);
        assert_eq!(fetch_one(&c2, "h", "t1", 2), 9);
        c.flush().unwrap();
        c.shutdown();
    }
    // A torn last record (crash in the middle of a write) is ignored.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL_FILE))
            .unwrap();
        f.write_all(b"1234abcd {\"t\":\"c\",\"g\":\"g\",\"o\":[[\"t1\",0,99")
            .unwrap();
    }
    let c = open(dir.path());
    assert!(c.lock_store().load_stats.torn_tail);
    let (err, parts) = fetch(&c, "g", Some(&[("t1", 0), ("t2", 1)]));
    assert_eq!(err, NONE);
    assert_eq!(parts[0].2, 43);
    assert_eq!(parts[0].3, "meta2");
    assert_eq!(parts[1].2, 7);
    assert_eq!(fetch_one(&c, "h", "t1", 2), 9);
    // The groups came back (Empty, with their offsets).
    assert_eq!(list(&c, 4, &[]).len(), 2);
    // Commits after a recovery are journaled normally.
    simple_commit(&c, "g", &[("t1", 0, 44, "")]);
    drop(c);
    let c = open(dir.path());
    assert!(!c.lock_store().load_stats.torn_tail, "compacted at open");
    assert_eq!(fetch_one(&c, "g", "t1", 0), 44);

    // A damaged record in the middle is skipped, the others are kept.
    drop(c);
    let path = dir.path().join(JOURNAL_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let h_line = lines.iter().position(|l| l.contains("\"g\":\"h\"")).unwrap();
    lines[h_line] = lines[h_line].replace("\"t1\",2,9", "\"t1\",2,8");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let c = open(dir.path());
    assert_eq!(c.lock_store().load_stats.skipped, 1);
    assert_eq!(fetch_one(&c, "g", "t1", 0), 44);
    assert_eq!(fetch_one(&c, "h", "t1", 2), -1);
}

#[test]
fn unknown_journal_format_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    std::fs::write(&path, "# kgate consumer group offsets journal v2\nwhatever\n").unwrap();
    let err = GroupCoordinator::open(dir.path(), config(0)).err().expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(std::fs::read_to_string(&path).unwrap().contains("whatever"));
    // An empty file is a fresh journal.
    std::fs::write(&path, "").unwrap();
    assert!(GroupCoordinator::open(dir.path(), config(0)).is_ok());
}

#[tokio::test]
async fn journal_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    for i in 0..300 {
        simple_commit(&c, "g", &[("t1", 0, i, "some metadata"), ("t1", 1, i, "")]);
    }
    let grown = std::fs::metadata(dir.path().join(JOURNAL_FILE)).unwrap().len();
    drop(c);
    let c = open(dir.path());
    let compacted = std::fs::metadata(dir.path().join(JOURNAL_FILE)).unwrap().len();
    assert!(compacted * 50 < grown, "{compacted} vs {grown}");
    assert_eq!(fetch_one(&c, "g", "t1", 0), 299);
    // Growth-triggered compaction.
    c.lock_store().set_compact_min_bytes(2000);
    for i in 0..300 {
        simple_commit(&c, "g", &[("t1", 0, 1000 + i, "some metadata")]);
        assert!(c.lock_store().file_len() < 2 * compacted + 2000 + 200);
    }
    let on_disk = std::fs::metadata(dir.path().join(JOURNAL_FILE)).unwrap().len();
    assert_eq!(on_disk, c.lock_store().file_len());
    drop(c);
    let c = open(dir.path());
    assert_eq!(fetch_one(&c, "g", "t1", 0), 1299);
    assert_eq!(fetch_one(&c, "g", "t1", 1), 299);
}

#[tokio::test(start_paused = true)]
async fn group_metadata_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = open(dir.path());
        let rs = stable_group(&c, vec![Join::new("g", "a")]).await;
        let a = rs[0].member_id.to_string();
        commit(&c, 8, commit_req("g", 1, &a, &[("t1", 0, 11, "")]));
        c.shutdown();
    }
    let c = open(dir.path());
    let d = describe(&c, "g", 5);
    assert_eq!(d.group_state.as_str(), "Empty");
    assert_eq!(d.protocol_type.as_str(), "consumer");
    assert_eq!(fetch_one(&c, "g", "t1", 0), 11);
    // The generation continues where it was.
    let r = join(c.clone(), Join::new("g", "b")).await;
    assert_eq!(r.generation_id, 2);
}

#[tokio::test(start_paused = true)]
async fn delete_groups() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    simple_commit(&c, "empty", &[("t1", 0, 1, "")]);
    stable_group(&c, vec![Join::new("busy", "a")]).await;
    let req =
        DeleteGroupsRequest::default().with_groups_names(vec![gid("empty"), gid("busy"), gid("unknown"), gid("empty")]);
    let resp = c.delete_groups(req, 2);
    enc(&resp, 2);
    let results: Vec<(String, i16)> = resp
        .results
        .iter()
        .map(|r| (r.group_id.to_string(), r.error_code))
        .collect();
    assert_eq!(
        results,
        vec![
            ("empty".to_string(), NONE),
            ("busy".to_string(), NON_EMPTY_GROUP),
            ("unknown".to_string(), GROUP_ID_NOT_FOUND),
        ]
    );
    assert_eq!(fetch_one(&c, "empty", "t1", 0), -1);
    assert_eq!(describe(&c, "empty", 5).group_state.as_str(), "Dead");
    assert_eq!(list(&c, 4, &[]), vec![("busy".to_string(), "Stable".to_string())]);
    c.shutdown();
    drop(c);
    let c = open(dir.path());
    assert_eq!(fetch_one(&c, "empty", "t1", 0), -1, "deletion is durable");
    assert!(list(&c, 4, &[]).iter().all(|(g, _)| g != "empty"));
}

#[tokio::test(start_paused = true)]
async fn offset_delete() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let rs = stable_group(&c, vec![Join::new("g", "a")]).await; // subscribed to t1
    let a = rs[0].member_id.to_string();
    let r = commit(&c, 8, commit_req("g", 1, &a, &[("t1", 0, 1, ""), ("t2", 0, 2, "")]));
    assert!(r.iter().all(|x| x.2 == NONE));

    let req = |group: &str, parts: &[(&str, i32)]| {
        OffsetDeleteRequest::default().with_group_id(gid(group)).with_topics(
            parts
                .iter()
                .map(|(t, p)| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(tname(t))
                        .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(*p)])
                })
                .collect(),
        )
    };
    let resp = c.offset_delete(req("g", &[("t1", 0), ("t2", 0), ("nope", 0)]), 0, &topics());
    enc(&resp, 0);
    assert_eq!(resp.error_code, NONE);
    let codes: Vec<(String, i16)> = resp
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions[0].error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("t1".to_string(), GROUP_SUBSCRIBED_TO_TOPIC),
            ("t2".to_string(), NONE),
            ("nope".to_string(), UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    assert_eq!(fetch_one(&c, "g", "t1", 0), 1);
    assert_eq!(fetch_one(&c, "g", "t2", 0), -1);
    assert_eq!(
        c.offset_delete(req("unknown", &[("t1", 0)]), 0, &topics()).error_code,
        GROUP_ID_NOT_FOUND
    );
    assert_eq!(
        c.offset_delete(req("", &[("t1", 0)]), 0, &topics()).error_code,
        INVALID_GROUP_ID
    );

    // A non-consumer group with members refuses entirely.
    stable_group(&c, vec![Join::new("connect", "w").protocol_type("connect")]).await;
    let resp = c.offset_delete(req("connect", &[("t1", 0)]), 0, &topics());
    assert_eq!(resp.error_code, NON_EMPTY_GROUP);
    assert!(resp.topics.is_empty());

    // Empty group: anything goes; deleting its last offset removes the group.
    simple_commit(&c, "simple", &[("t1", 0, 1, "")]);
    let resp = c.offset_delete(req("simple", &[("t1", 0)]), 0, &topics());
    assert_eq!(resp.topics[0].partitions[0].error_code, NONE);
    assert_eq!(describe(&c, "simple", 5).group_state.as_str(), "Dead");
}

#[tokio::test(start_paused = true)]
async fn describe_and_list_groups() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let unknown = describe(&c, "unknown", 5);
    assert_eq!(unknown.error_code, NONE);
    assert_eq!(unknown.group_state.as_str(), "Dead");
    assert!(unknown.members.is_empty());

    let rs = stable_group(&c, vec![Join::new("s", "client-a"), Join::new("s", "client-b")]).await;
    simple_commit(&c, "e", &[("t1", 0, 1, "")]);
    let d = describe(&c, "s", 5);
    assert_eq!(d.error_code, NONE);
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.protocol_type.as_str(), "consumer");
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.members.len(), 2);
    let m = &d.members[0];
    assert_eq!(m.member_id, rs[0].member_id);
    assert_eq!(m.client_id.as_str(), "client-a");
    assert_eq!(m.client_host.as_str(), "/127.0.0.1");
    assert_eq!(m.member_metadata, subscription(&["t1"]));
    assert_eq!(
        m.member_assignment,
        Bytes::from(format!("assignment-{}", rs[0].member_id.as_str()))
    );
    for v in 0..=5 {
        describe(&c, "s", v);
    }
    let with_ops = c.describe_groups(
        DescribeGroupsRequest::default()
            .with_groups(vec![gid("s")])
            .with_include_authorized_operations(true),
        3,
    );
    assert_ne!(with_ops.groups[0].authorized_operations, i32::MIN);

    // A rebalance in progress: no protocol, no member metadata.
    let j = spawn_join(&c, Join::new("s", "client-c"));
    settle().await;
    let d = describe(&c, "s", 5);
    assert_eq!(d.group_state.as_str(), "PreparingRebalance");
    assert_eq!(d.protocol_data.as_str(), "");
    assert!(d.members.iter().all(|m| m.member_metadata.is_empty()));

    let all = list(&c, 3, &[]);
    assert_eq!(
        all,
        vec![("e".to_string(), String::new()), ("s".to_string(), String::new()),]
    );
    assert_eq!(
        list(&c, 4, &["preparingrebalance"]),
        vec![("s".to_string(), "PreparingRebalance".to_string())]
    );
    assert_eq!(list(&c, 4, &["Empty"]), vec![("e".to_string(), "Empty".to_string())]);
    assert!(list(&c, 4, &["Stable"]).is_empty());
    for v in 0..=5 {
        list(&c, v, &[]);
    }
    let typed = c.list_groups(ListGroupsRequest::default().with_types_filter(vec![sb("consumer")]), 5);
    assert!(typed.groups.is_empty(), "classic groups only");

    // Finish the rebalance: CompletingRebalance is reported too.
    let a = rs[0].member_id.to_string();
    let b = rs[1].member_id.to_string();
    let ja = spawn_join(&c, Join::new("s", "client-a").member(&a));
    let jb = spawn_join(&c, Join::new("s", "client-b").member(&b));
    let (_, _, _) = (ja.await.unwrap(), jb.await.unwrap(), j.await.unwrap());
    assert_eq!(describe(&c, "s", 5).group_state.as_str(), "CompletingRebalance");
}

#[tokio::test(start_paused = true)]
async fn topic_deletion_and_offset_expiration() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    simple_commit(&c, "g", &[("t1", 0, 1, ""), ("t2", 0, 2, "")]);
    simple_commit(&c, "only-t2", &[("t2", 1, 3, "")]);
    c.topic_deleted("t2");
    assert_eq!(fetch_one(&c, "g", "t1", 0), 1);
    assert_eq!(fetch_one(&c, "g", "t2", 0), -1);
    assert_eq!(describe(&c, "only-t2", 5).group_state.as_str(), "Dead");

    // Empty consumer group: offsets expire once retention has passed since it became empty.
    let rs = stable_group(&c, vec![Join::new("cg", "a")]).await;
    let a = rs[0].member_id.to_string();
    commit(&c, 8, commit_req("cg", 1, &a, &[("t1", 1, 5, ""), ("t2", 0, 6, "")]));
    let retention = GroupConfig::default().offsets_retention_ms;
    let now = super::now_ms();
    assert_eq!(c.expire_offsets(now + retention - 1000), 0);
    // g's simple offset expires, and so does cg's offset of a topic it does not subscribe to.
    assert_eq!(c.expire_offsets(now + retention * 2), 2);
    assert_eq!(fetch_one(&c, "g", "t1", 0), -1);
    assert_eq!(fetch_one(&c, "cg", "t2", 0), -1);
    assert_eq!(
        fetch_one(&c, "cg", "t1", 1),
        5,
        "a stable group keeps subscribed offsets"
    );
    leave(&c, "cg", &[(&a, None)], 3).await;
    assert_eq!(c.group_state("cg"), Some(GroupState::Empty));
    assert_eq!(c.expire_offsets(now + retention - 1000), 0);
    assert_eq!(c.expire_offsets(now + retention + 1000), 1);
    assert_eq!(fetch_one(&c, "cg", "t1", 1), -1);
    assert_eq!(c.group_state("cg"), None, "an empty group without offsets is removed");
    assert!(list(&c, 4, &[]).is_empty());
}

#[tokio::test(start_paused = true)]
async fn responses_encode_at_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    for v in 0..=9i16 {
        let group = format!("g{v}");
        let r = join(c.clone(), Join::new(&group, "c").version(v).instance("i")).await;
        assert_eq!(r.error_code, NONE, "join v{v}");
        let member = r.member_id.to_string();
        let req = SyncGroupRequest::default()
            .with_group_id(gid(&group))
            .with_generation_id(r.generation_id)
            .with_member_id(sb(&member))
            .with_protocol_type(Some(sb("consumer")))
            .with_protocol_name(Some(sb("range")));
        let sv = v.min(5);
        let s = c.sync_group(req, sv).await;
        enc(&s, sv);
        assert_eq!(s.error_code, NONE, "sync v{sv}");
        let hv = v.min(4);
        let h = c
            .heartbeat(
                HeartbeatRequest::default()
                    .with_group_id(gid(&group))
                    .with_generation_id(r.generation_id)
                    .with_member_id(sb(&member)),
                hv,
            )
            .await;
        enc(&h, hv);
        if v >= 2 {
            let cv = v.min(9);
            commit(
                &c,
                cv,
                commit_req(&group, r.generation_id, &member, &[("t1", 0, 1, "")]),
            );
        }
        let lv = v.min(5);
        let l = leave(&c, &group, &[(&member, None)], lv).await;
        assert_eq!(l.error_code, NONE, "leave v{lv}");
        if v <= 2 {
            let d = c.delete_groups(DeleteGroupsRequest::default().with_groups_names(vec![gid(&group)]), v);
            enc(&d, v);
        }
    }
    for v in 0..=5 {
        describe(&c, "g9", v);
        list(&c, v, &[]);
    }
    for v in 1..=9 {
        let req = if v >= 8 {
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(gid("g9"))
                .with_topics(None)])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(gid("g9"))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(tname("t1"))
                    .with_partition_indexes(vec![0, 1])]))
        };
        enc(&c.offset_fetch(req, v, &topics()), v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_members_on_a_multi_threaded_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let c = GroupCoordinator::open(dir.path(), config(1000)).unwrap();
    let joins = (0..6).map(|i| Join::new("g", &format!("c{i}"))).collect();
    let rs = stable_group(&c, joins).await;
    // Which member leads depends on which join arrived first; the leader alone sees all six.
    let leader: Vec<_> = rs.iter().filter(|r| r.leader == r.member_id).collect();
    assert_eq!(leader.len(), 1);
    assert_eq!(leader[0].members.len(), 6);
    assert!(rs
        .iter()
        .filter(|r| r.leader != r.member_id)
        .all(|r| r.members.is_empty()));
    let members: Vec<String> = rs.iter().map(|r| r.member_id.to_string()).collect();
    let tasks: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (c, m) = (c.clone(), m.clone());
            tokio::spawn(async move {
                for offset in 0..50 {
                    let r = commit(&c, 8, commit_req("g", 1, &m, &[("t3", i as i32, offset, "")]));
                    assert_eq!(r[0].2, NONE);
                    if offset % 10 == 0 {
                        assert_eq!(heartbeat(&c, "g", 1, &m).await, NONE);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (_, all) = fetch(&c, "g", None);
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|p| p.2 == 49));
    let leaves: Vec<_> = members
        .iter()
        .map(|m| {
            let (c, m) = (c.clone(), m.clone());
            tokio::spawn(async move { leave(&c, "g", &[(&m, None)], 5).await })
        })
        .collect();
    for l in leaves {
        assert_eq!(l.await.unwrap().members[0].error_code, NONE);
    }
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    c.shutdown();
}
