//! ListOffsets (earliest, latest, max timestamp, by timestamp) and OffsetForLeaderEpoch.
//!
//! A single node never changes leader, so the leader epoch is always 0.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use super::topics::{lock, TopicRegistry};

/// ListOffsetsRequest special timestamps (ListOffsetsRequest.java).
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub fn handle_list_offsets(topics: &TopicRegistry, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    // leader_epoch exists from v4 on; the codec refuses to encode it set in older versions.
    let epoch = if version >= 4 { 0 } else { -1 };
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = topics.get(t.name.as_str());
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let response = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1)
                    .with_leader_epoch(epoch);
                let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index)) else {
                    return response.with_error_code(ResponseError::UnknownTopicOrPartition.code()).with_leader_epoch(-1);
                };
                let log = lock(&partition.log);
                match p.timestamp {
                    LATEST => response.with_offset(log.log_end_offset()),
                    EARLIEST => response.with_offset(log.log_start_offset()),
                    MAX_TIMESTAMP => match log.max_timestamp() {
                        Some((offset, ts)) => response.with_offset(offset).with_timestamp(ts),
                        None => response,
                    },
                    ts if ts >= 0 => match log.offset_for_timestamp(ts) {
                        Ok(Some((offset, found_ts))) => response.with_offset(offset).with_timestamp(found_ts),
                        Ok(None) => response,
                        Err(e) => {
                            tracing::warn!(topic = %t.name.as_str(), partition = p.partition_index, "offset lookup failed: {e}");
                            response.with_error_code(ResponseError::KafkaStorageError.code())
                        }
                    },
                    // -4, -5 (tiered storage specs) are not served below v8; anything else is invalid.
                    _ => response.with_error_code(ResponseError::UnsupportedVersion.code()),
                }
            })
            .collect();
        results.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(results)
}

pub fn handle_offset_for_leader_epoch(
    topics: &TopicRegistry,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = topics.get(t.topic.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let response = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                        return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if p.current_leader_epoch > 0 {
                        // The client knows an epoch this broker never had.
                        return response.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    if p.leader_epoch < 0 {
                        return response;
                    }
                    // Epoch 0 is the only epoch; it ends at the log end.
                    response
                        .with_leader_epoch(0)
                        .with_end_offset(lock(&partition.log).log_end_offset())
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(results)
}
