//! The embedded broker in-process on 127.0.0.1:0, driven with raw Kafka requests.
mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_fetch_list_offsets_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = kgate::app::start(config(dir.path())).await.unwrap();
    let mut c = Client::connect(app.addr()).await;
    assert_eq!(
        create_topic(&mut c, "orders", 2, &[("retention.ms", "3600000")]).await,
        0
    );
    assert_eq!(create_topic(&mut c, "orders", 2, &[]).await, 36, "TOPIC_ALREADY_EXISTS");
    assert_eq!(
        produce(&mut c, "orders", 1, batch(&["a", "b", "c"], Compression::None)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut c, "orders", 1, batch(&["d", "e"], Compression::Gzip)).await,
        (0, 3)
    );
    assert_eq!(
        produce(&mut c, "orders", 7, batch(&["x"], Compression::None)).await.0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let (err, hw, records) = fetch(&mut c, "orders", 1, 0, 0).await;
    assert_eq!((err, hw), (0, 5));
    let expected: Vec<(i64, String)> = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.to_string()))
        .collect();
    assert_eq!(records, expected);
    assert_eq!(list_offset(&mut c, "orders", 1, -2).await, (0, 0, -1));
    assert_eq!(list_offset(&mut c, "orders", 1, -1).await, (0, 5, -1));
    assert_eq!(fetch(&mut c, "orders", 1, 6, 0).await.0, 1, "OFFSET_OUT_OF_RANGE");
    drop(c);
    app.stop().await;

    let app = kgate::app::start(config(dir.path())).await.unwrap();
    let mut c = Client::connect(app.addr()).await;
    let (err, hw, records) = fetch(&mut c, "orders", 1, 3, 0).await;
    assert_eq!((err, hw), (0, 5));
    assert_eq!(records, expected[3..].to_vec());
    assert_eq!(
        produce(&mut c, "orders", 1, batch(&["f"], Compression::None)).await,
        (0, 5)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_fetch_returns_when_records_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let app = kgate::app::start(config(dir.path())).await.unwrap();
    let mut consumer = Client::connect(app.addr()).await;
    assert_eq!(create_topic(&mut consumer, "events", 1, &[]).await, 0);
    let addr = app.addr();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut p = Client::connect(addr).await;
        produce(&mut p, "events", 0, batch(&["late"], Compression::None)).await
    });
    let started = std::time::Instant::now();
    let (err, _, records) = fetch(&mut consumer, "events", 0, 0, 10_000).await;
    let waited = started.elapsed();
    assert_eq!(err, 0);
    assert_eq!(records, vec![(0, "late".to_string())]);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    assert_eq!(producer.await.unwrap(), (0, 0));
    // With nothing new, the fetch waits max_wait_ms and comes back empty.
    let started = std::time::Instant::now();
    let (err, _, records) = fetch(&mut consumer, "events", 0, 1, 200).await;
    assert_eq!((err, records.len()), (0, 0));
    assert!(started.elapsed() >= Duration::from_millis(190));
    // A fetch without partitions has nothing to wait for: answered at once, as Kafka does.
    let started = std::time::Instant::now();
    let resp = consumer
        .call(
            &FetchRequest::default()
                .with_max_wait_ms(10_000)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1),
            12,
        )
        .await;
    assert_eq!((resp.error_code, resp.responses.len()), (0, 0));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_advertises_the_listener_and_auto_creates() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.listeners[0].advertised = Some("kafka.example.invalid:19093".into());
    let app = kgate::app::start(cfg).await.unwrap();
    let mut c = Client::connect(app.addr()).await;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(name("auto"))),
        ]))
        .with_allow_auto_topic_creation(true);
    let resp = c.call(&req, 12).await;
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(
        (resp.brokers[0].host.as_str(), resp.brokers[0].port),
        ("kafka.example.invalid", 19093)
    );
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[0].partitions.len(), 1);
    assert_ne!(resp.topics[0].topic_id, uuid::Uuid::nil());
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(name("nope"))),
        ]))
        .with_allow_auto_topic_creation(false);
    assert_eq!(c.call(&req, 12).await.topics[0].error_code, 3);
    let bad = MetadataRequest::default()
        .with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(name("bad name!"))),
        ]))
        .with_allow_auto_topic_creation(true);
    assert_eq!(
        c.call(&bad, 12).await.topics[0].error_code,
        17,
        "INVALID_TOPIC_EXCEPTION"
    );
    let fc = c
        .call(
            &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
            3,
        )
        .await;
    assert_eq!(
        (fc.error_code, fc.host.as_str(), fc.port),
        (0, "kafka.example.invalid", 19093)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_gets_no_response_but_is_stored() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let dir = tempfile::tempdir().unwrap();
    let app = kgate::app::start(config(dir.path())).await.unwrap();
    let mut c = Client::connect(app.addr()).await;
    assert_eq!(create_topic(&mut c, "fire", 1, &[]).await, 0);
    let req = ProduceRequest::default()
        .with_acks(0)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("fire"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(&["x"], Compression::None)))])]);
    c.send(&req, 9).await;
    // The next answer on this connection belongs to the next request.
    assert_eq!(list_offset(&mut c, "fire", 0, -1).await, (0, 1, -1));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_refuses_what_a_single_node_cannot_honour() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let dir = tempfile::tempdir().unwrap();
    let app = kgate::app::start(config(dir.path())).await.unwrap();
    let mut c = Client::connect(app.addr()).await;
    assert_eq!(
        create_topic(&mut c, "c1", 1, &[("cleanup.policy", "compact")]).await,
        40,
        "INVALID_CONFIG"
    );
    assert_eq!(create_topic(&mut c, "c2", 1, &[("no.such.config", "1")]).await, 40);
    assert_eq!(create_topic(&mut c, "c3", 0, &[]).await, 37, "INVALID_PARTITIONS");
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("c4"))
        .with_num_partitions(1)
        .with_replication_factor(3)]);
    let resp = c.call(&req, 5).await;
    assert_eq!(resp.topics[0].error_code, 38, "INVALID_REPLICATION_FACTOR");
    assert!(resp.topics[0].error_message.as_ref().unwrap().contains("only 1 broker"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_refuses_two_batches_and_corrupt_batches() {
    let dir = tempfile::tempdir().unwrap();
    let app = kgate::app::start(config(dir.path())).await.unwrap();
    let mut c = Client::connect(app.addr()).await;
    assert_eq!(create_topic(&mut c, "strict", 1, &[]).await, 0);
    let mut two = batch(&["a"], Compression::None).to_vec();
    two.extend_from_slice(&batch(&["b"], Compression::None));
    assert_eq!(produce(&mut c, "strict", 0, two.into()).await.0, 87, "INVALID_RECORD");
    let mut flipped = batch(&["a", "b"], Compression::None).to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    assert_eq!(
        produce(&mut c, "strict", 0, flipped.into()).await.0,
        2,
        "CORRUPT_MESSAGE"
    );
    assert_eq!(
        produce(&mut c, "strict", 0, bytes::Bytes::from_static(&[1, 2, 3]))
            .await
            .0,
        2
    );
    // Nothing of the refused batches was stored.
    assert_eq!(list_offset(&mut c, "strict", 0, -1).await, (0, 0, -1));
    assert_eq!(
        produce(&mut c, "strict", 0, batch(&["ok"], Compression::Lz4)).await,
        (0, 0)
    );
    app.stop().await;
}
