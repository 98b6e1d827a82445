//! Fetch: read whole batches from each requested partition, long-polling until `min_bytes` are
//! available or `max_wait_ms` passes. Fetch sessions (KIP-227) are declined: every response has
//! session id 0, so clients keep sending full fetch requests, which Kafka allows.
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};

use super::topics::{lock, TopicRegistry};

pub async fn handle_fetch(topics: &TopicRegistry, req: FetchRequest, version: i16) -> FetchResponse {
    if req.session_id != 0 || (req.session_epoch != 0 && req.session_epoch != -1) {
        // We never hand out a session id, so any incremental fetch refers to an unknown session.
        return FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let mut appends = topics.subscribe_appends();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // Kafka treats max_bytes <= 0 as "no limit" only for v0-2; from v3 on the client sends it.
    let max_bytes = if version >= 3 {
        req.max_bytes.max(0) as usize
    } else {
        i32::MAX as usize
    };
    // Nothing to wait for: Kafka answers a fetch without partitions at once (the Java consumer sends one
    // to close its fetch session when it closes; holding it max_wait_ms would slow every close).
    let no_partitions = req.topics.iter().all(|t| t.partitions.is_empty());
    loop {
        appends.borrow_and_update();
        let (response, bytes, failed) = read_once(topics, &req, max_bytes);
        let now = tokio::time::Instant::now();
        if failed || no_partitions || bytes >= req.min_bytes.max(0) as usize || now >= deadline {
            return response;
        }
        // Wait for any append, then read again; bounded by the request's max_wait_ms.
        if tokio::time::timeout_at(deadline, appends.changed()).await.is_err() {
            let (response, _, _) = read_once(topics, &req, max_bytes);
            return response;
        }
    }
}

/// One pass over the requested partitions: the response, the record bytes it carries, and
/// whether any partition had an error (errors are answered at once, as Kafka does).
fn read_once(topics: &TopicRegistry, req: &FetchRequest, max_bytes: usize) -> (FetchResponse, usize, bool) {
    let mut total = 0usize;
    let mut failed = false;
    let mut responses = Vec::with_capacity(req.topics.len());
    for fetch_topic in &req.topics {
        let topic = topics.get(fetch_topic.topic.as_str());
        let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
        for p in &fetch_topic.partitions {
            let data = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_aborted_transactions(Some(Vec::new()))
                .with_preferred_read_replica(BrokerId(-1));
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                failed = true;
                partitions.push(
                    data.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_records(Some(Bytes::new())),
                );
                continue;
            };
            let log = lock(&partition.log);
            let (start, end) = (log.log_start_offset(), log.log_end_offset());
            let data = data
                .with_high_watermark(end)
                .with_last_stable_offset(end)
                .with_log_start_offset(start);
            let room = max_bytes
                .saturating_sub(total)
                .min(p.partition_max_bytes.max(0) as usize);
            // Kafka returns at least one batch, even an oversized one, when nothing has been added
            // to the response yet, so a consumer always makes progress.
            match log.read(p.fetch_offset, room, total == 0) {
                Ok(records) => {
                    total += records.len();
                    partitions.push(data.with_records(Some(records)));
                }
                Err(e) => {
                    failed = true;
                    partitions.push(data.with_error_code(e.error_code()).with_records(Some(Bytes::new())));
                }
            }
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(fetch_topic.topic.clone())
                .with_topic_id(fetch_topic.topic_id)
                .with_partitions(partitions),
        );
    }
    (FetchResponse::default().with_responses(responses), total, failed)
}
