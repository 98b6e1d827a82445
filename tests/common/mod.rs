//! A minimal Kafka client for in-process tests: one request at a time over a real TCP socket,
//! messages from the kafka-protocol crate.
#![allow(dead_code)]
use std::net::SocketAddr;
use std::path::Path;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use kgate::config::{Config, ListenerConfig};

pub struct Client {
    stream: TcpStream,
    next_id: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.expect("connect"),
            next_id: 1,
        }
    }

    /// Sends one request and returns the decoded response.
    pub async fn call<Req: Encodable + Request>(&mut self, req: &Req, version: i16) -> Req::Response
    where
        Req::Response: Decodable,
    {
        self.send(req, version).await;
        self.receive::<Req>(version).await
    }

    pub async fn send<Req: Encodable + Request>(&mut self, req: &Req, version: i16) {
        let key = ApiKey::try_from(Req::KEY).expect("api key");
        let header = RequestHeader::default()
            .with_request_api_key(Req::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.next_id)
            .with_client_id(Some(StrBytes::from_static_str("kgate-it")));
        self.next_id += 1;
        let mut buf = BytesMut::new();
        header.encode(&mut buf, key.request_header_version(version)).unwrap();
        req.encode(&mut buf, version).unwrap();
        let mut framed = BytesMut::new();
        framed.put_i32(buf.len() as i32);
        framed.put_slice(&buf);
        self.stream.write_all(&framed).await.expect("write");
    }

    pub async fn receive<Req: Request>(&mut self, version: i16) -> Req::Response
    where
        Req::Response: Decodable,
    {
        let key = ApiKey::try_from(Req::KEY).expect("api key");
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await.expect("response size");
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).await.expect("response body");
        let mut body = Bytes::from(body);
        ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
        let response = Req::Response::decode(&mut body, version).expect("decode response");
        assert!(!body.has_remaining(), "trailing bytes in the response");
        response
    }
}

pub fn config(data_dir: &Path) -> Config {
    let mut c = Config {
        data_dir: data_dir.to_path_buf(),
        listeners: vec![ListenerConfig {
            bind: "127.0.0.1:0".into(),
            ..ListenerConfig::default()
        }],
        ..Config::default()
    };
    c.broker.group_initial_rebalance_delay_ms = 0;
    c
}

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// One magic-v2 batch holding `values` with keys "k<i>".
pub fn batch(values: &[&str], compression: Compression) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            delete_horizon: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder splits a batch where offset - sequence changes; keep it constant.
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

pub async fn create_topic(client: &mut Client, topic: &str, partitions: i32, configs: &[(&str, &str)]) -> i16 {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(configs)]);
    let resp = client.call(&req, 5).await;
    resp.topics[0].error_code
}

/// Produces one batch with acks=-1; returns (error code, base offset).
pub async fn produce(client: &mut Client, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let resp = client.call(&req, 9).await;
    let p = &resp.responses[0].partition_responses[0];
    if p.error_code != 0 {
        eprintln!("produce error {}: {:?}", p.error_code, p.error_message);
    }
    (p.error_code, p.base_offset)
}

/// Fetches from `offset` and returns (error, high watermark, decoded (offset, value) pairs).
pub async fn fetch(
    client: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> (i16, i64, Vec<(i64, String)>) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let req = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(
            vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)],
        )]);
    let resp = client.call(&req, 12).await;
    let p = &resp.responses[0].partitions[0];
    let mut out = Vec::new();
    if let Some(records) = &p.records {
        let mut buf = records.clone();
        for set in kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).unwrap() {
            for r in set.records {
                out.push((
                    r.offset,
                    String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap(),
                ));
            }
        }
    }
    (p.error_code, p.high_watermark, out)
}

pub async fn list_offset(client: &mut Client, topic: &str, partition: i32, timestamp: i64) -> (i16, i64, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    let resp = client.call(&req, 7).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}
