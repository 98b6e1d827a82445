//! Metadata, DescribeCluster and FindCoordinator: everything that tells a client where the
//! broker is. Addresses are always those of the listener the request came in on.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::topics::{Topic, TopicRegistry};
use crate::backend::RequestContext;

/// Bit sets of authorized operations (AclOperation codes) until ACLs exist: everything a topic or
/// the cluster offers. Kafka sends i32::MIN when the client did not ask.
const NOT_REQUESTED: i32 = i32::MIN;
const ALL_TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
const ALL_CLUSTER_OPERATIONS: i32 =
    (1 << 4) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13);

pub struct ClusterIdentity {
    pub node_id: i32,
    pub cluster_id: String,
}

fn advertised(ctx: &RequestContext) -> (StrBytes, i32) {
    let (host, port) = ctx.listener.advertised_host_port();
    (StrBytes::from_string(host), port)
}

pub fn handle_metadata(
    id: &ClusterIdentity,
    topics: &TopicRegistry,
    ctx: &RequestContext,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let (host, port) = advertised(ctx);
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(id.node_id))
        .with_host(host)
        .with_port(port);
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested = match req.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(list),
    };
    // Auto-creation is on by default before v4, which has no flag.
    let may_create = version < 4 || req.allow_auto_topic_creation;
    let ops = |asked: bool, all: i32| if asked { all } else { NOT_REQUESTED };
    let topic_ops = ops(req.include_topic_authorized_operations, ALL_TOPIC_OPERATIONS);
    let results = match requested {
        None => topics
            .all()
            .iter()
            .map(|t| describe_topic(t, id.node_id, topic_ops))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|entry| match entry.name {
                Some(name) => match topics.get_or_auto_create(name.as_str(), may_create) {
                    Ok(t) => describe_topic(&t, id.node_id, topic_ops),
                    Err(e) => failed_topic(Some(name), Uuid::nil(), e.error_code()),
                },
                None => match topics.get_by_id(entry.topic_id) {
                    Some(t) => describe_topic(&t, id.node_id, topic_ops),
                    None => failed_topic(None, entry.topic_id, ResponseError::UnknownTopicId.code()),
                },
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_string(id.cluster_id.clone())))
        .with_controller_id(BrokerId(id.node_id))
        .with_topics(results)
        .with_cluster_authorized_operations(ops(req.include_cluster_authorized_operations, ALL_CLUSTER_OPERATIONS))
}

fn describe_topic(topic: &Topic, node_id: i32, topic_ops: i32) -> MetadataResponseTopic {
    let node = BrokerId(node_id);
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(topic_ops)
}

fn failed_topic(name: Option<TopicName>, id: Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_topic_id(id)
        .with_error_code(code)
}

pub fn handle_describe_cluster(
    id: &ClusterIdentity,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(id.cluster_id.clone()))
        .with_controller_id(BrokerId(id.node_id))
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            ALL_CLUSTER_OPERATIONS
        } else {
            NOT_REQUESTED
        });
    // EndpointType 2 asks for controllers (KIP-919); kgate is a broker endpoint.
    if req.endpoint_type == 2 {
        return response
            .with_error_code(ResponseError::MismatchedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
            )));
    }
    let (host, port) = advertised(ctx);
    response.with_brokers(vec![DescribeClusterBroker::default()
        .with_broker_id(BrokerId(id.node_id))
        .with_host(host)
        .with_port(port)])
}

/// Key types of FindCoordinator (FindCoordinatorRequest.CoordinatorType).
const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub fn handle_find_coordinator(
    id: &ClusterIdentity,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (host, port) = advertised(ctx);
    let refused = req.key_type != GROUP;
    // Transactions are refused with a non-retriable error, so a transactional producer fails at
    // once ("not authorized for this transactional id") instead of retrying until its timeout.
    let code = match req.key_type {
        GROUP => 0,
        TRANSACTION => ResponseError::TransactionalIdAuthorizationFailed.code(),
        _ => ResponseError::CoordinatorNotAvailable.code(),
    };
    let message = refused
        .then(|| StrBytes::from_static_str("kgate's embedded broker does not support transactions or share groups"));
    if version < 4 {
        let response = FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message(message);
        return if refused {
            response
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::default())
                .with_port(-1)
        } else {
            response
                .with_node_id(BrokerId(id.node_id))
                .with_host(host)
                .with_port(port)
        };
    }
    let coordinators = req
        .coordinator_keys
        .into_iter()
        .map(|key| {
            let c = Coordinator::default()
                .with_key(key)
                .with_error_code(code)
                .with_error_message(message.clone());
            if refused {
                c.with_node_id(BrokerId(-1))
                    .with_host(StrBytes::default())
                    .with_port(-1)
            } else {
                c.with_node_id(BrokerId(id.node_id))
                    .with_host(host.clone())
                    .with_port(port)
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
