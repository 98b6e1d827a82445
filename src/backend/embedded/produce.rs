//! Produce: validate and append record batches, answer with the assigned offsets.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::topics::{lock, now_ms, TopicRegistry};

pub fn handle_produce(topics: &TopicRegistry, req: ProduceRequest) -> ProduceResponse {
    if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        // Transactions are not offered in ApiVersions; a client that tries anyway is refused.
        return refuse_all(req, ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !(req.acks == -1 || req.acks == 0 || req.acks == 1) {
        return refuse_all(req, ResponseError::InvalidRequiredAcks.code());
    }
    let now = now_ms();
    let mut appended = false;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic_data in req.topic_data {
        let topic = topics.get(topic_data.name.as_str());
        let mut partition_responses = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let response = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(data.index)) else {
                partition_responses.push(response.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let Some(records) = data.records.filter(|r| !r.is_empty()) else {
                partition_responses.push(
                    response
                        .with_error_code(ResponseError::InvalidRecord.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "Produce request with no record batches",
                        ))),
                );
                continue;
            };
            if !holds_exactly_one_batch(&records) {
                partition_responses.push(
                    response
                        .with_error_code(ResponseError::InvalidRecord.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                        "Produce requests with version 3 or greater must have exactly one record batch per partition",
                    ))),
                );
                continue;
            }
            let outcome = lock(&partition.log).append(&records, now);
            match outcome {
                Ok(o) => {
                    appended |= !o.duplicate;
                    partition_responses.push(
                        response
                            .with_base_offset(o.base_offset)
                            .with_log_start_offset(o.log_start_offset),
                    );
                }
                Err(e) => {
                    tracing::debug!(topic = %topic_data.name.as_str(), partition = data.index, "produce refused: {e}");
                    partition_responses.push(
                        response
                            .with_error_code(e.error_code())
                            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                    );
                }
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses),
        );
    }
    if appended {
        topics.notify_appended();
    }
    ProduceResponse::default().with_responses(responses)
}

/// Kafka's rule for Produce v3+ (ProduceRequest.validateRecords): one batch per partition. Only the
/// framing is looked at here; the log validates the batch itself.
fn holds_exactly_one_batch(records: &[u8]) -> bool {
    match records.get(8..12) {
        Some(len) => {
            let batch_length = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            batch_length >= 0 && 12 + batch_length as usize == records.len()
        }
        // Too short to hold a batch: the log reports it as corrupt.
        None => true,
    }
}

fn refuse_all(req: ProduceRequest, code: i16) -> ProduceResponse {
    let responses = req
        .topic_data
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
