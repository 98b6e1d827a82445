//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs.
use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::groups::GroupCoordinator;
use super::topic_config::{self, ConfigType};
use super::topics::{validate_topic_name, TopicError, TopicRegistry};
use crate::config::BrokerConfig;

/// ConfigSource values of DescribeConfigs / CreateTopics (DescribeConfigsResponse.json).
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

fn message(text: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(text.into()))
}

pub fn handle_create_topics(topics: &TopicRegistry, node_id: i32, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let defaults = topics.broker_config().num_partitions;
    let mut results = Vec::with_capacity(req.topics.len());
    let mut seen = std::collections::HashSet::new();
    for t in req.topics {
        let name = t.name.as_str().to_string();
        let result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if !seen.insert(name.clone()) {
            results.push(
                result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(message(format!(
                        "Create topics request from client contains duplicate topic {name}"
                    ))),
            );
            continue;
        }
        let configs: BTreeMap<String, String> = t
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.as_str().to_string(), v.as_str().to_string()))
            })
            .collect();
        let partitions = if !t.assignments.is_empty() {
            if let Some(bad) = t
                .assignments
                .iter()
                .find(|a| a.broker_ids.iter().any(|b| b.0 != node_id) || a.broker_ids.len() != 1)
            {
                results.push(
                    result
                        .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                        .with_error_message(message(format!(
                    "Partition {} is assigned to brokers {:?}; this single-node broker has only broker {node_id}",
                    bad.partition_index,
                    bad.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>()
                ))),
                );
                continue;
            }
            t.assignments.len() as i32
        } else if t.num_partitions == -1 {
            defaults
        } else {
            t.num_partitions
        };
        if t.replication_factor > 1 {
            results.push(result.with_error_code(ResponseError::InvalidReplicationFactor.code()).with_error_message(message(format!(
                "Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only 1 broker(s) are registered.",
                t.replication_factor, t.replication_factor
            ))));
            continue;
        }
        if t.replication_factor == 0 || t.replication_factor < -1 {
            results.push(
                result
                    .with_error_code(ResponseError::InvalidReplicationFactor.code())
                    .with_error_message(message(
                        "Replication factor must be larger than 0, or -1 to use the default value.",
                    )),
            );
            continue;
        }
        let outcome = if req.validate_only {
            topics
                .validate_new_topic(&name, partitions, &configs)
                .map(|()| Uuid::nil())
        } else {
            topics.create(&name, partitions, configs.clone()).map(|t| t.id)
        };
        match outcome {
            Ok(id) => {
                let described = topic_config::effective(topics.broker_config(), &configs)
                    .into_iter()
                    .map(|(n, v, set)| {
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_static_str(n))
                            .with_value(Some(StrBytes::from_string(v)))
                            .with_config_source(if set { SOURCE_TOPIC } else { SOURCE_DEFAULT })
                    })
                    .collect();
                results.push(
                    result
                        .with_topic_id(id)
                        .with_num_partitions(partitions)
                        .with_replication_factor(1)
                        .with_configs(Some(described)),
                );
            }
            Err(e) => results.push(
                result
                    .with_error_code(e.error_code())
                    .with_error_message(message(e.to_string())),
            ),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub fn handle_delete_topics(
    topics: &TopicRegistry,
    groups: &GroupCoordinator,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // v6 names topics by name or id; earlier versions by name only.
    let targets: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        req.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        req.topic_names.into_iter().map(|n| (Some(n), Uuid::nil())).collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let topic = match &name {
                Some(n) => topics.get(n.as_str()),
                None => topics.get_by_id(id),
            };
            let result = DeletableTopicResult::default()
                .with_name(name.clone())
                .with_topic_id(id);
            let Some(topic) = topic else {
                let code = if name.is_some() {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::UnknownTopicId
                };
                return result
                    .with_error_code(code.code())
                    .with_error_message(message(code.to_string()));
            };
            match topics.delete(&topic.name) {
                Ok(deleted) => {
                    groups.topic_deleted(&deleted.name);
                    result
                        .with_name(Some(TopicName(StrBytes::from_string(deleted.name.clone()))))
                        .with_topic_id(deleted.id)
                }
                Err(e) => result
                    .with_error_code(e.error_code())
                    .with_error_message(message(e.to_string())),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub fn handle_create_partitions(
    topics: &TopicRegistry,
    node_id: i32,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let name = t.name.as_str();
            let Some(topic) = topics.get(name) else {
                return result
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_error_message(message(format!("The topic '{name}' does not exist.")));
            };
            let current = topic.partitions.len() as i32;
            if let Some(assignments) = &t.assignments {
                let added = (t.count - current).max(0) as usize;
                let single_node = assignments
                    .iter()
                    .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node_id);
                if assignments.len() != added || !single_node {
                    return result
                        .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                        .with_error_message(message(format!(
                            "Each of the {added} new partitions must be assigned to broker {node_id}, the only broker"
                        )));
                }
            }
            let outcome = if t.count <= current {
                Err(TopicError::PartitionsNotIncreased {
                    current,
                    requested: t.count,
                })
            } else if req.validate_only {
                Ok(())
            } else {
                topics.add_partitions(name, t.count)
            };
            match outcome {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.error_code())
                    .with_error_message(message(e.to_string())),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

pub fn handle_describe_configs(
    topics: &TopicRegistry,
    node_id: i32,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            let entries: Vec<(String, String, i8, ConfigType)> = match r.resource_type {
                RESOURCE_TOPIC => {
                    let name = r.resource_name.as_str();
                    if let Err(e) = validate_topic_name(name) {
                        return result
                            .with_error_code(e.error_code())
                            .with_error_message(message(e.to_string()));
                    }
                    let Some(topic) = topics.get(name) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(message(format!("Topic '{name}' does not exist.")));
                    };
                    topic_config::effective(topics.broker_config(), &topic.overrides)
                        .into_iter()
                        .map(|(n, v, set)| {
                            let kind = topic_config::config_type(n).unwrap_or(ConfigType::List);
                            (n.to_string(), v, if set { SOURCE_TOPIC } else { SOURCE_DEFAULT }, kind)
                        })
                        .collect()
                }
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if !name.is_empty() && name != node_id.to_string() {
                        return result
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(message(format!(
                                "Unexpected broker id, expected {node_id} or empty string, but received {name}"
                            )));
                    }
                    broker_configs(topics.broker_config(), node_id)
                }
                other => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(message(format!("Unsupported resource type {other} in DescribeConfigs")));
                }
            };
            let configs = entries
                .into_iter()
                .filter(|(n, ..)| wanted(n))
                .map(|(n, v, source, kind)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_string(n))
                        .with_value(Some(StrBytes::from_string(v)))
                        .with_read_only(r.resource_type == RESOURCE_BROKER)
                        .with_config_source(if version == 0 { -1 } else { source })
                        .with_config_type(kind as i8)
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn broker_configs(b: &BrokerConfig, node_id: i32) -> Vec<(String, String, i8, ConfigType)> {
    let s = SOURCE_STATIC_BROKER;
    vec![
        (
            "auto.create.topics.enable".into(),
            b.auto_create_topics.to_string(),
            s,
            ConfigType::Boolean,
        ),
        ("broker.id".into(), node_id.to_string(), s, ConfigType::Int),
        (
            "group.initial.rebalance.delay.ms".into(),
            b.group_initial_rebalance_delay_ms.to_string(),
            s,
            ConfigType::Int,
        ),
        (
            "group.max.session.timeout.ms".into(),
            b.group_max_session_timeout_ms.to_string(),
            s,
            ConfigType::Int,
        ),
        (
            "group.min.session.timeout.ms".into(),
            b.group_min_session_timeout_ms.to_string(),
            s,
            ConfigType::Int,
        ),
        (
            "log.retention.bytes".into(),
            b.log_retention_bytes.to_string(),
            s,
            ConfigType::Long,
        ),
        (
            "log.retention.ms".into(),
            b.log_retention_ms.to_string(),
            s,
            ConfigType::Long,
        ),
        ("log.roll.ms".into(), b.log_roll_ms.to_string(), s, ConfigType::Long),
        (
            "log.segment.bytes".into(),
            b.log_segment_bytes.to_string(),
            s,
            ConfigType::Int,
        ),
        (
            "message.max.bytes".into(),
            b.message_max_bytes.to_string(),
            s,
            ConfigType::Int,
        ),
        (
            "num.partitions".into(),
            b.num_partitions.to_string(),
            s,
            ConfigType::Int,
        ),
        (
            "offsets.retention.minutes".into(),
            b.offsets_retention_minutes.to_string(),
            s,
            ConfigType::Int,
        ),
    ]
}
