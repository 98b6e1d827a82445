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
