//! Tables per api and version, built with the crate's builders: identity rewriting reproduces the bytes,
//! a real rewrite changes only address fields, bad bodies are errors.
use std::collections::BTreeMap;
use std::fmt::Debug;

use bytes::Bytes;
use kafka_protocol::messages::{
    describe_cluster_response::DescribeClusterBroker,
    describe_quorum_response::{Listener, Node, PartitionData as QuorumPartition, ReplicaState, TopicData},
    fetch_response::{self, FetchableTopicResponse, PartitionData as FetchPartition},
    find_coordinator_response::Coordinator,
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    produce_response::{self, PartitionProduceResponse, TopicProduceResponse},
    share_acknowledge_response, share_fetch_response, ApiKey, BrokerId, DescribeClusterResponse,
    DescribeQuorumResponse, FetchResponse, FindCoordinatorResponse, MetadataResponse, ProduceResponse,
    ShareAcknowledgeResponse, ShareFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};
use uuid::Uuid;

use super::*;

/// Upstream addresses as a broker would send them; also the identity-like mapping that reproduces them.
const UPSTREAM_PATTERN: &str = "b{id}.upstream.internal";
const UPSTREAM_PORT: i32 = 9092;
const IDS: [i32; 3] = [0, 1, 7];

fn upstream() -> BrokerAddressing {
    BrokerAddressing::Sni {
        pattern: UPSTREAM_PATTERN.into(),
        port: UPSTREAM_PORT,
    }
}

fn target() -> BrokerAddressing {
    BrokerAddressing::PortPerBroker {
        host: "kafka.example.com".into(),
        base_port: 9100,
        explicit: BTreeMap::from([(7, ("seven.example.com".to_owned(), 19_007))]),
    }
}

fn up_host(id: i32) -> StrBytes {
    StrBytes::from_string(upstream().address_of(id).unwrap().0)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// Unknown tagged fields for flexible versions (they must survive untouched).
fn unknown(flexible: bool) -> BTreeMap<i32, Bytes> {
    if flexible {
        BTreeMap::from([
            (97, Bytes::from_static(b"\x01\x02")),
            (120, Bytes::from_static(b"kept")),
        ])
    } else {
        BTreeMap::new()
    }
}

fn encode<M: Encodable>(m: &M, version: i16) -> Bytes {
    let mut out = bytes::BytesMut::new();
    m.encode(&mut out, version).unwrap();
    out.freeze()
}

fn decode<M: Decodable>(body: &[u8], version: i16) -> M {
    let mut b = Bytes::copy_from_slice(body);
    M::decode(&mut b, version).unwrap()
}

/// Per api: the address fields of a decoded response, and how to blank them for comparison.
trait Addressed: Message + Encodable + Decodable + PartialEq + Debug + Clone {
    const API: ApiKey;
    /// The api's addresses are removed rather than rewritten (so identity mapping does not reproduce them).
    const HIDES: bool = false;
    /// (node id, host, port) of every address field (error coordinators included).
    fn addresses(&self, version: i16) -> Vec<(i32, String, i32)>;
    fn blank(&mut self, version: i16);
}

/// The whole check for one api/version: byte identity, only-addresses-differ, bad bodies are errors.
fn check<M: Addressed>(version: i16, message: M) {
    let api = M::API;
    let ctx = format!("{api:?} v{version}");
    assert!(carries_addresses(api, version), "{ctx}");
    let body = encode(&message, version);
    assert_eq!(
        decode::<M>(&body, version),
        message,
        "{ctx}: test message does not round-trip"
    );

    // Identity-like mapping: byte for byte (unknown tagged fields included).
    let same = responses::reencode(api, version, &body, &upstream()).unwrap();
    if !M::HIDES {
        assert_eq!(&same[..], &body[..], "{ctx}: identity rewrite changed bytes");
        // Nothing to change: the caller is told to forward the original bytes.
        assert!(
            rewrite_response(api, version, &body, &upstream()).unwrap().is_none(),
            "{ctx}"
        );
    }
    let zero_copy = rewrite_response_bytes(api, version, body.clone(), &target()).unwrap();

    // Real rewrite: every address is the listener's, and nothing else changed.
    let out = responses::reencode(api, version, &body, &target()).unwrap();
    // Some exactly when the bytes change, and then the same bytes whichever entry point was used.
    assert_eq!(zero_copy.is_some(), out[..] != body[..], "{ctx}");
    if let Some(z) = zero_copy {
        assert_eq!(z, out, "{ctx}");
    }
    let mut rewritten: M = decode(&out, version);
    let addresses = rewritten.addresses(version);
    for (id, host, port) in &addresses {
        if *port == -1 {
            assert_eq!(host.as_str(), "", "{ctx}: error coordinator {id}");
        } else {
            assert_eq!(
                (host.clone(), *port),
                target().address_of(*id).unwrap(),
                "{ctx}: broker {id}"
            );
        }
    }
    if addresses.iter().any(|(_, _, p)| *p != -1) {
        assert_ne!(&out[..], &body[..], "{ctx}: nothing was rewritten");
    }
    let mut original = message.clone();
    original.blank(version);
    rewritten.blank(version);
    assert_eq!(rewritten, original, "{ctx}: a non-address field changed");

    // Every truncation is an error, never a panic or a silent success; trailing bytes pass through.
    for cut in 0..body.len() {
        let r = rewrite_response(api, version, &body[..cut], &target());
        assert!(
            matches!(r, Err(RewriteError::Malformed { .. })),
            "{ctx}: cut at {cut}: {r:?}"
        );
    }
    let mut longer = body.to_vec();
    longer.push(0x5a);
    let rewritten_longer = responses::reencode(api, version, &longer, &target()).expect("trailing bytes are kept");
    assert_eq!(
        rewritten_longer.last(),
        Some(&0x5a),
        "{ctx}: the trailing byte was dropped"
    );
    assert_eq!(
        rewritten_longer.len(),
        out.len() + 1,
        "{ctx}: trailing byte handling changed the body"
    );
}

fn all_versions<M: Message>(from: i16) -> std::ops::RangeInclusive<i16> {
    from.max(M::VERSIONS.min)..=M::VERSIONS.max
}

// ---------------------------------------------------------------- Metadata

impl Addressed for MetadataResponse {
    const API: ApiKey = ApiKey::Metadata;
    fn addresses(&self, _: i16) -> Vec<(i32, String, i32)> {
        self.brokers
            .iter()
            .map(|b| (b.node_id.0, b.host.to_string(), b.port))
            .collect()
    }
    fn blank(&mut self, _: i16) {
        for b in &mut self.brokers {
            (b.host, b.port) = (StrBytes::default(), 0);
        }
    }
}

fn metadata(v: i16, ids: &[i32]) -> MetadataResponse {
    let flex = v >= 9;
    let brokers = ids
        .iter()
        .map(|&id| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(up_host(id))
                .with_port(UPSTREAM_PORT)
                .with_rack(if v >= 1 { Some(s("rack-a")) } else { None })
                .with_unknown_tagged_fields(unknown(flex))
        })
        .collect();
    let partition = MetadataResponsePartition::default()
        .with_partition_index(3)
        .with_leader_id(BrokerId(1))
        .with_leader_epoch(if v >= 7 { 5 } else { -1 })
        .with_replica_nodes(vec![BrokerId(0), BrokerId(1)])
        .with_isr_nodes(vec![BrokerId(1)])
        .with_offline_replicas(if v >= 5 { vec![BrokerId(0)] } else { vec![] })
        .with_unknown_tagged_fields(unknown(flex));
    let topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(s("orders"))))
        .with_topic_id(if v >= 10 { Uuid::from_u128(0x1234) } else { Uuid::nil() })
        .with_is_internal(false)
        .with_partitions(vec![partition])
        .with_topic_authorized_operations(if v >= 8 { 0x0ff8 } else { i32::MIN });
    let mut m = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(vec![topic])
        .with_unknown_tagged_fields(unknown(flex));
    if v >= 1 {
        m = m.with_controller_id(BrokerId(1));
    }
    if v >= 2 {
        m = m.with_cluster_id(Some(s("cluster-xyz")));
    }
    if v >= 3 {
        m = m.with_throttle_time_ms(12);
    }
    if (8..=10).contains(&v) {
        m = m.with_cluster_authorized_operations(0x0f);
    }
    m
}

#[test]
fn metadata_every_version() {
    for v in all_versions::<MetadataResponse>(0) {
        check(v, metadata(v, &IDS));
        // An empty brokers list is rewritten to the same bytes.
        let empty = encode(&metadata(v, &[]), v);
        assert!(
            rewrite_response(ApiKey::Metadata, v, &empty, &target())
                .unwrap()
                .is_none(),
            "v{v}"
        );
        let out = responses::reencode(ApiKey::Metadata, v, &empty, &target()).unwrap();
        assert_eq!(&out[..], &empty[..], "v{v}");
    }
}

// ---------------------------------------------------------------- FindCoordinator

impl Addressed for FindCoordinatorResponse {
    const API: ApiKey = ApiKey::FindCoordinator;
    fn addresses(&self, v: i16) -> Vec<(i32, String, i32)> {
        if v < 4 {
            vec![(self.node_id.0, self.host.to_string(), self.port)]
        } else {
            self.coordinators
                .iter()
                .map(|c| (c.node_id.0, c.host.to_string(), c.port))
                .collect()
        }
    }
    fn blank(&mut self, v: i16) {
        if v < 4 {
            (self.host, self.port) = (StrBytes::default(), 0);
        }
        for c in &mut self.coordinators {
            (c.host, c.port) = (StrBytes::default(), 0);
        }
    }
}

fn coordinator(v: i16, key: &str, id: i32, error: i16) -> Coordinator {
    let ok = error == 0;
    Coordinator::default()
        .with_key(s(key))
        .with_node_id(BrokerId(if ok { id } else { -1 }))
        .with_host(if ok { up_host(id) } else { StrBytes::default() })
        .with_port(if ok { UPSTREAM_PORT } else { -1 })
        .with_error_code(error)
        .with_error_message(if ok {
            None
        } else {
            Some(s("The coordinator is not available."))
        })
        .with_unknown_tagged_fields(unknown(v >= 3))
}

fn find_coordinator(v: i16, id: i32, error: i16) -> FindCoordinatorResponse {
    let mut m = FindCoordinatorResponse::default().with_unknown_tagged_fields(unknown(v >= 3));
    if v >= 1 {
        m = m.with_throttle_time_ms(3);
    }
    if v < 4 {
        let c = coordinator(v, "", id, error);
        m = m
            .with_error_code(c.error_code)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port);
        if v >= 1 {
            m = m.with_error_message(c.error_message);
        }
    } else {
        m = m.with_coordinators(vec![
            coordinator(v, "group-a", id, 0),
            coordinator(v, "group-b", 0, 15),
            coordinator(v, "txn-c", 1, 0),
        ]);
    }
    m
}

#[test]
fn find_coordinator_every_version() {
    for v in all_versions::<FindCoordinatorResponse>(0) {
        check(v, find_coordinator(v, 7, 0));
        // COORDINATOR_NOT_AVAILABLE: -1 / "" / -1 is left as it is.
        let mut err = find_coordinator(v, 7, 15);
        if v >= 4 {
            err.coordinators = vec![coordinator(v, "group-b", 0, 15)];
        }
        check(v, err.clone());
        let body = encode(&err, v);
        assert!(
            rewrite_response(ApiKey::FindCoordinator, v, &body, &target())
                .unwrap()
                .is_none(),
            "v{v}"
        );
    }
}

#[test]
fn find_coordinator_error_never_leaks_an_upstream_address() {
    // A sloppy upstream that sends an address along with an error: the address is removed.
    let m = FindCoordinatorResponse::default()
        .with_error_code(15)
        .with_node_id(BrokerId(2))
        .with_host(up_host(2))
        .with_port(UPSTREAM_PORT);
    let out = rewrite_response(ApiKey::FindCoordinator, 0, &encode(&m, 0), &target())
        .unwrap()
        .unwrap();
    let got: FindCoordinatorResponse = decode(&out, 0);
    assert_eq!(
        (got.error_code, got.node_id.0, got.host.as_str(), got.port),
        (15, 2, "", -1)
    );
}

// ---------------------------------------------------------------- DescribeCluster

impl Addressed for DescribeClusterResponse {
    const API: ApiKey = ApiKey::DescribeCluster;
    fn addresses(&self, _: i16) -> Vec<(i32, String, i32)> {
        self.brokers
            .iter()
            .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
            .collect()
    }
    fn blank(&mut self, _: i16) {
        for b in &mut self.brokers {
            (b.host, b.port) = (StrBytes::default(), 0);
        }
    }
}

fn describe_cluster(v: i16, ids: &[i32]) -> DescribeClusterResponse {
    let brokers = ids
        .iter()
        .map(|&id| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(up_host(id))
                .with_port(UPSTREAM_PORT)
                .with_rack(Some(s("rack-b")))
                .with_is_fenced(v >= 2 && id == 7)
                .with_unknown_tagged_fields(unknown(true))
        })
        .collect();
    let mut m = DescribeClusterResponse::default()
        .with_throttle_time_ms(1)
        .with_cluster_id(s("cluster-xyz"))
        .with_controller_id(BrokerId(1))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(0x0f)
        .with_unknown_tagged_fields(unknown(true));
    if v >= 1 {
        m = m.with_endpoint_type(2);
    }
    m
}

#[test]
fn describe_cluster_every_version() {
    for v in all_versions::<DescribeClusterResponse>(0) {
        check(v, describe_cluster(v, &IDS));
        check(v, describe_cluster(v, &[]));
    }
}

// ---------------------------------------------------------------- Produce v10+

impl Addressed for ProduceResponse {
    const API: ApiKey = ApiKey::Produce;
    fn addresses(&self, _: i16) -> Vec<(i32, String, i32)> {
        self.node_endpoints
            .iter()
            .map(|e| (e.node_id.0, e.host.to_string(), e.port))
            .collect()
    }
    fn blank(&mut self, _: i16) {
        for e in &mut self.node_endpoints {
            (e.host, e.port) = (StrBytes::default(), 0);
        }
    }
}

fn produce(v: i16) -> ProduceResponse {
    let partition = PartitionProduceResponse::default()
        .with_index(0)
        .with_error_code(6)
        .with_base_offset(-1)
        .with_error_message(Some(s("This server is not the leader for that topic-partition.")))
        .with_current_leader(
            produce_response::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(7))
                .with_leader_epoch(9),
        )
        .with_unknown_tagged_fields(unknown(true));
    let mut topic = TopicProduceResponse::default()
        .with_partition_responses(vec![partition])
        .with_unknown_tagged_fields(unknown(true));
    topic = if v >= 13 {
        topic.with_topic_id(Uuid::from_u128(0xabcd))
    } else {
        topic.with_name(TopicName(s("orders")))
    };
    let endpoints = IDS
        .iter()
        .map(|&id| {
            produce_response::NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(up_host(id))
                .with_port(UPSTREAM_PORT)
                .with_rack(Some(s("rack-c")))
                .with_unknown_tagged_fields(unknown(true))
        })
        .collect();
    ProduceResponse::default()
        .with_responses(vec![topic])
        .with_throttle_time_ms(2)
        .with_node_endpoints(endpoints)
        .with_unknown_tagged_fields(unknown(true))
}

#[test]
fn produce_v10_and_later() {
    for v in all_versions::<ProduceResponse>(10) {
        check(v, produce(v));
    }
}

// ---------------------------------------------------------------- Fetch v16+

impl Addressed for FetchResponse {
    const API: ApiKey = ApiKey::Fetch;
    fn addresses(&self, _: i16) -> Vec<(i32, String, i32)> {
        self.node_endpoints
            .iter()
            .map(|e| (e.node_id.0, e.host.to_string(), e.port))
            .collect()
    }
    fn blank(&mut self, _: i16) {
        for e in &mut self.node_endpoints {
            (e.host, e.port) = (StrBytes::default(), 0);
        }
    }
}

fn fetch(_v: i16) -> FetchResponse {
    let partition = FetchPartition::default()
        .with_partition_index(1)
        .with_error_code(6)
        .with_high_watermark(100)
        .with_last_stable_offset(90)
        .with_log_start_offset(0)
        .with_current_leader(
            fetch_response::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(1))
                .with_leader_epoch(4),
        )
        .with_records(Some(Bytes::from_static(b"opaque record bytes")))
        .with_unknown_tagged_fields(unknown(true));
    let topic = FetchableTopicResponse::default()
        .with_topic_id(Uuid::from_u128(0xfeed))
        .with_partitions(vec![partition])
        .with_unknown_tagged_fields(unknown(true));
    let endpoints = IDS
        .iter()
        .map(|&id| {
            fetch_response::NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(up_host(id))
                .with_port(UPSTREAM_PORT)
                .with_rack(None)
                .with_unknown_tagged_fields(unknown(true))
        })
        .collect();
    FetchResponse::default()
        .with_throttle_time_ms(4)
        .with_session_id(0)
        .with_responses(vec![topic])
        .with_node_endpoints(endpoints)
        .with_unknown_tagged_fields(unknown(true))
}

#[test]
fn fetch_v16_and_later() {
    for v in all_versions::<FetchResponse>(16) {
        check(v, fetch(v));
    }
}

// ---------------------------------------------------------------- ShareFetch, ShareAcknowledge

impl Addressed for ShareFetchResponse {
    const API: ApiKey = ApiKey::ShareFetch;
    fn addresses(&self, _: i16) -> Vec<(i32, String, i32)> {
        self.node_endpoints
            .iter()
            .map(|e| (e.node_id.0, e.host.to_string(), e.port))
            .collect()
    }
    fn blank(&mut self, _: i16) {
        for e in &mut self.node_endpoints {
            (e.host, e.port) = (StrBytes::default(), 0);
        }
    }
}

impl Addressed for ShareAcknowledgeResponse {
    const API: ApiKey = ApiKey::ShareAcknowledge;
    fn addresses(&self, _: i16) -> Vec<(i32, String, i32)> {
        self.node_endpoints
            .iter()
            .map(|e| (e.node_id.0, e.host.to_string(), e.port))
            .collect()
    }
    fn blank(&mut self, _: i16) {
        for e in &mut self.node_endpoints {
            (e.host, e.port) = (StrBytes::default(), 0);
        }
    }
}

#[test]
fn share_fetch_and_acknowledge_every_version() {
    for v in all_versions::<ShareFetchResponse>(0) {
        let endpoints = IDS
            .iter()
            .map(|&id| {
                share_fetch_response::NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(up_host(id))
                    .with_port(UPSTREAM_PORT)
                    .with_rack(Some(s("r")))
                    .with_unknown_tagged_fields(unknown(true))
            })
            .collect();
        let m = ShareFetchResponse::default()
            .with_throttle_time_ms(5)
            .with_acquisition_lock_timeout_ms(30_000)
            .with_node_endpoints(endpoints)
            .with_unknown_tagged_fields(unknown(true));
        check(v, m);
    }
    for v in all_versions::<ShareAcknowledgeResponse>(0) {
        let endpoints = IDS
            .iter()
            .map(|&id| {
                share_acknowledge_response::NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(up_host(id))
                    .with_port(UPSTREAM_PORT)
                    .with_unknown_tagged_fields(unknown(true))
            })
            .collect();
        let m = ShareAcknowledgeResponse::default()
            .with_throttle_time_ms(5)
            .with_node_endpoints(endpoints)
            .with_unknown_tagged_fields(unknown(true));
        check(v, m);
    }
}

// ---------------------------------------------------------------- DescribeQuorum v2+: listeners hidden

impl Addressed for DescribeQuorumResponse {
    const API: ApiKey = ApiKey::DescribeQuorum;
    const HIDES: bool = true;
    fn addresses(&self, _: i16) -> Vec<(i32, String, i32)> {
        // Nothing is rewritten; any listener left would be a leak (checked in the test).
        Vec::new()
    }
    fn blank(&mut self, _: i16) {
        for n in &mut self.nodes {
            n.listeners.clear();
        }
    }
}

fn describe_quorum(listeners: bool) -> DescribeQuorumResponse {
    let voter = ReplicaState::default()
        .with_replica_id(BrokerId(3000))
        .with_replica_directory_id(Uuid::from_u128(7))
        .with_log_end_offset(42)
        .with_unknown_tagged_fields(unknown(true));
    let partition = QuorumPartition::default()
        .with_leader_id(BrokerId(3000))
        .with_leader_epoch(2)
        .with_high_watermark(42)
        .with_current_voters(vec![voter])
        .with_unknown_tagged_fields(unknown(true));
    let topic = TopicData::default()
        .with_topic_name(TopicName(s("__cluster_metadata")))
        .with_partitions(vec![partition]);
    let listener = Listener::default()
        .with_name(s("CONTROLLER"))
        .with_host(s("controller-0.internal"))
        .with_port(9093)
        .with_unknown_tagged_fields(unknown(true));
    let node = Node::default()
        .with_node_id(BrokerId(3000))
        .with_listeners(if listeners { vec![listener] } else { vec![] })
        .with_unknown_tagged_fields(unknown(true));
    DescribeQuorumResponse::default()
        .with_topics(vec![topic])
        .with_nodes(vec![node])
        .with_unknown_tagged_fields(unknown(true))
}

#[test]
fn describe_quorum_hides_controller_listeners() {
    for v in all_versions::<DescribeQuorumResponse>(2) {
        check(v, describe_quorum(true));
        let body = encode(&describe_quorum(true), v);
        let out = rewrite_response(ApiKey::DescribeQuorum, v, &body, &target())
            .unwrap()
            .unwrap();
        let got: DescribeQuorumResponse = decode(&out, v);
        assert!(got.nodes.iter().all(|n| n.listeners.is_empty()), "v{v}");
        assert!(
            !out.windows(b"controller-0".len()).any(|w| w == b"controller-0"),
            "v{v}"
        );
        // Without listeners the bytes are unchanged.
        let bare = encode(&describe_quorum(false), v);
        assert!(rewrite_response(ApiKey::DescribeQuorum, v, &bare, &target())
            .unwrap()
            .is_none());
        let same = responses::reencode(ApiKey::DescribeQuorum, v, &bare, &target()).unwrap();
        assert_eq!(&same[..], &bare[..]);
    }
    assert!(!carries_addresses(ApiKey::DescribeQuorum, 1));
}

// ---------------------------------------------------------------- scope, errors

#[test]
fn scope_table() {
    let cases = [
        (ApiKey::Metadata, 0, true),
        (ApiKey::Metadata, 13, true),
        (ApiKey::FindCoordinator, 0, true),
        (ApiKey::FindCoordinator, 6, true),
        (ApiKey::DescribeCluster, 0, true),
        (ApiKey::Produce, 9, false),
        (ApiKey::Produce, 10, true),
        (ApiKey::Fetch, 15, false),
        (ApiKey::Fetch, 16, true),
        (ApiKey::ShareFetch, 1, true),
        (ApiKey::ShareAcknowledge, 1, true),
        (ApiKey::DescribeQuorum, 1, false),
        (ApiKey::DescribeQuorum, 2, true),
        (ApiKey::ApiVersions, 3, false),
        (ApiKey::CreateAcls, 3, false),
        (ApiKey::DescribeAcls, 3, false),
        (ApiKey::OffsetCommit, 9, false),
        (ApiKey::Metadata, -1, false),
    ];
    for (api, v, expected) in cases {
        assert_eq!(carries_addresses(api, v), expected, "{api:?} v{v}");
    }
    // Out of scope: untouched (Ok(None)), whatever the bytes.
    for (api, v) in [
        (ApiKey::Produce, 9),
        (ApiKey::Fetch, 15),
        (ApiKey::ApiVersions, 3),
        (ApiKey::DescribeQuorum, 1),
    ] {
        assert!(rewrite_response(api, v, b"\xff\xff garbage", &target())
            .unwrap()
            .is_none());
    }
}

#[test]
fn versions_the_crate_does_not_know_fail_closed() {
    for (api, v) in [
        (ApiKey::Metadata, 14),
        (ApiKey::FindCoordinator, 7),
        (ApiKey::DescribeCluster, 3),
        (ApiKey::Produce, 14),
        (ApiKey::Fetch, 19),
        (ApiKey::ShareFetch, 0),
        (ApiKey::DescribeQuorum, 3),
    ] {
        let r = rewrite_response(api, v, b"", &target());
        assert!(
            matches!(r, Err(RewriteError::UnsupportedVersion { .. })),
            "{api:?} v{v}: {r:?}"
        );
    }
}

#[test]
fn garbage_bodies_are_errors() {
    let scope = [
        (ApiKey::Metadata, all_versions::<MetadataResponse>(0)),
        (ApiKey::FindCoordinator, all_versions::<FindCoordinatorResponse>(0)),
        (ApiKey::DescribeCluster, all_versions::<DescribeClusterResponse>(0)),
        (ApiKey::Produce, all_versions::<ProduceResponse>(10)),
        (ApiKey::Fetch, all_versions::<FetchResponse>(16)),
        (ApiKey::ShareFetch, all_versions::<ShareFetchResponse>(0)),
        (ApiKey::ShareAcknowledge, all_versions::<ShareAcknowledgeResponse>(0)),
        (ApiKey::DescribeQuorum, all_versions::<DescribeQuorumResponse>(2)),
    ];
    // Short garbage only: the crate sizes a Vec from an array length before reading elements (see mod docs).
    for (api, versions) in scope {
        for v in versions {
            for body in [&b""[..], b"\xff", b"\xff\xff\xff", b"\x00\x00\x80"] {
                let r = rewrite_response(api, v, body, &target());
                assert!(
                    matches!(r, Err(RewriteError::Malformed { .. })),
                    "{api:?} v{v} {body:?}: {r:?}"
                );
            }
        }
    }
    // Invalid UTF-8 in a broker host.
    let mut body = encode(&metadata(0, &[1]), 0).to_vec();
    let at = body.windows(2).position(|w| w == b"b1").unwrap();
    body[at] = 0xff;
    assert!(matches!(
        rewrite_response(ApiKey::Metadata, 0, &body, &target()),
        Err(RewriteError::Malformed { .. })
    ));
}

#[test]
fn unmappable_broker_fails_the_whole_response() {
    let narrow = BrokerAddressing::PortPerBroker {
        host: "kafka.example.com".into(),
        base_port: 65_535,
        explicit: BTreeMap::new(),
    };
    let body = encode(&metadata(12, &[0, 1]), 12);
    let r = rewrite_response(ApiKey::Metadata, 12, &body, &narrow);
    assert!(
        matches!(
            r,
            Err(RewriteError::PortOutOfRange {
                node_id: 1,
                port: 65_536
            })
        ),
        "{r:?}"
    );
    let mut negative = metadata(12, &[]);
    negative.brokers.push(
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(-5))
            .with_host(s("x")),
    );
    let body = encode(&negative, 12);
    assert!(matches!(
        rewrite_response(ApiKey::Metadata, 12, &body, &target()),
        Err(RewriteError::NegativeNodeId(-5))
    ));
}

#[test]
fn sni_scheme_end_to_end() {
    let sni = BrokerAddressing::Sni {
        pattern: "broker-{id}.kafka.example.com".into(),
        port: 9093,
    };
    let body = encode(&metadata(12, &IDS), 12);
    let out = rewrite_response(ApiKey::Metadata, 12, &body, &sni).unwrap().unwrap();
    let got: MetadataResponse = decode(&out, 12);
    let seen: Vec<_> = got.brokers.iter().map(|b| (b.host.to_string(), b.port)).collect();
    assert_eq!(
        seen,
        [
            ("broker-0.kafka.example.com".to_owned(), 9093),
            ("broker-1.kafka.example.com".to_owned(), 9093),
            ("broker-7.kafka.example.com".to_owned(), 9093)
        ]
    );
    for b in &got.brokers {
        assert_eq!(sni.node_for_sni(&b.host), Some(b.node_id.0));
    }
}
