//! The embedded broker core: a persistent single-node Kafka-compatible broker.
//!
//! Each api has its own module; this one decodes a request, hands it to its handler and encodes
//! the answer. Handlers never see sockets.
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kafka_protocol::messages::{ApiKey, ProduceRequest};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::task::JoinHandle;

use crate::backend::{Backend, BackendConnection, InOrderConnection, Reply, RequestContext, ServesInOrder};
use crate::config::Config;
use crate::error::{RequestError, StartupError};
use crate::protocol::{encode_response_body, RequestFrame, VersionTable};

pub mod admin;
pub mod fetch;
pub mod groups;
pub mod log;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producer_ids;
pub mod topic_config;
pub mod topics;
pub mod versions;

use groups::{ClientInfo, GroupConfig, GroupCoordinator, TopicLookup};
use metadata::ClusterIdentity;
use producer_ids::ProducerIdAllocator;
use topics::{lock, write_atomically, TopicRegistry};

pub struct EmbeddedBroker {
    identity: ClusterIdentity,
    topics: Arc<TopicRegistry>,
    groups: Arc<GroupCoordinator>,
    producer_ids: ProducerIdAllocator,
    versions: VersionTable,
    background: Mutex<Vec<JoinHandle<()>>>,
}

impl TopicLookup for TopicRegistry {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.get(topic).map(|t| t.partitions.len() as i32)
    }
}

impl EmbeddedBroker {
    /// Opens (and recovers) the data directory and starts the retention task.
    pub async fn open(config: &Config) -> Result<Arc<EmbeddedBroker>, StartupError> {
        let dir = config.data_dir.clone();
        let storage = |reason: String| StartupError::Storage {
            dir: dir.display().to_string(),
            reason,
        };
        let broker_config = config.broker.clone();
        let data_dir = dir.clone();
        // Recovery reads every partition's tail: keep it off the async workers.
        let opened = tokio::task::spawn_blocking(move || -> Result<_, String> {
            std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
            let topics = TopicRegistry::open(&data_dir, &broker_config).map_err(|e| e.to_string())?;
            let meta = data_dir.join("__kgate");
            let cluster_id = load_or_create_cluster_id(&meta).map_err(|e| e.to_string())?;
            let producer_ids = ProducerIdAllocator::open(&meta).map_err(|e| e.to_string())?;
            let groups = GroupCoordinator::open(&meta, group_config(&broker_config)).map_err(|e| e.to_string())?;
            Ok((topics, cluster_id, producer_ids, groups))
        })
        .await
        .map_err(|e| storage(e.to_string()))?
        .map_err(storage)?;
        let (topics, cluster_id, producer_ids, groups) = opened;
        let broker = Arc::new(EmbeddedBroker {
            identity: ClusterIdentity {
                node_id: config.broker.node_id,
                cluster_id,
            },
            topics: Arc::new(topics),
            groups,
            producer_ids,
            versions: versions::table(),
            background: Mutex::new(Vec::new()),
        });
        let retention = tokio::spawn(retention_task(
            broker.topics.clone(),
            Duration::from_millis(config.broker.log_retention_check_interval_ms),
        ));
        lock(&broker.background).push(retention);
        tracing::info!(
            data_dir = %config.data_dir.display(), topics = broker.topics.all().len(),
            cluster_id = %broker.identity.cluster_id, "embedded broker opened"
        );
        Ok(broker)
    }

    pub fn topics(&self) -> &TopicRegistry {
        &self.topics
    }
}

fn group_config(b: &crate::config::BrokerConfig) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: b.group_initial_rebalance_delay_ms,
        min_session_timeout_ms: b.group_min_session_timeout_ms,
        max_session_timeout_ms: b.group_max_session_timeout_ms,
        offsets_retention_ms: b.offsets_retention_minutes.saturating_mul(60_000),
        ..GroupConfig::default()
    }
}

fn load_or_create_cluster_id(meta: &Path) -> std::io::Result<String> {
    let file = meta.join("cluster_id");
    match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        Ok(_) => create_cluster_id(&file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_cluster_id(&file),
        Err(e) => Err(e),
    }
}

fn create_cluster_id(file: &Path) -> std::io::Result<String> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    write_atomically(file, id.as_bytes())?;
    Ok(id)
}

async fn retention_task(topics: Arc<TopicRegistry>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let registry = topics.clone();
        match tokio::task::spawn_blocking(move || registry.enforce_retention()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(segments = n, "retention deleted old segments"),
            Err(e) => tracing::error!("retention task failed: {e}"),
        }
    }
}

fn decode<T: Decodable>(request: &RequestFrame) -> Result<T, RequestError> {
    let mut body = request.body.clone();
    T::decode(&mut body, request.version).map_err(|e| RequestError::MalformedRequest {
        api_key: request.api_key,
        version: request.version,
        reason: e.to_string(),
    })
}

fn encode<T: Encodable>(response: &T, version: i16) -> Result<Reply, RequestError> {
    encode_response_body(response, version).map(Reply::Body).map_err(|e| {
        RequestError::Internal(format!(
            "cannot encode a v{version} {} : {e}",
            std::any::type_name::<T>()
        ))
    })
}

#[async_trait]
impl ServesInOrder for EmbeddedBroker {
    async fn handle(&self, ctx: &RequestContext, request: RequestFrame) -> Result<Reply, RequestError> {
        let v = request.version;
        let topics = &*self.topics;
        let node = self.identity.node_id;
        match request.api_key {
            ApiKey::Produce => {
                let req: ProduceRequest = decode(&request)?;
                let acks = req.acks;
                let response = produce::handle_produce(topics, req);
                if acks == 0 {
                    return Ok(Reply::None);
                }
                encode(&response, v)
            }
            ApiKey::Fetch => encode(&fetch::handle_fetch(topics, decode(&request)?, v).await, v),
            ApiKey::ListOffsets => encode(&offsets::handle_list_offsets(topics, decode(&request)?, v), v),
            ApiKey::OffsetForLeaderEpoch => {
                encode(&offsets::handle_offset_for_leader_epoch(topics, decode(&request)?), v)
            }
            ApiKey::Metadata => encode(
                &metadata::handle_metadata(&self.identity, topics, ctx, decode(&request)?, v),
                v,
            ),
            ApiKey::DescribeCluster => encode(
                &metadata::handle_describe_cluster(&self.identity, ctx, decode(&request)?),
                v,
            ),
            ApiKey::FindCoordinator => encode(
                &metadata::handle_find_coordinator(&self.identity, ctx, decode(&request)?, v),
                v,
            ),
            ApiKey::CreateTopics => encode(&admin::handle_create_topics(topics, node, decode(&request)?), v),
            ApiKey::DeleteTopics => encode(
                &admin::handle_delete_topics(topics, &self.groups, decode(&request)?, v),
                v,
            ),
            ApiKey::CreatePartitions => encode(&admin::handle_create_partitions(topics, node, decode(&request)?), v),
            ApiKey::DescribeConfigs => encode(&admin::handle_describe_configs(topics, node, decode(&request)?, v), v),
            ApiKey::InitProducerId => encode(&self.producer_ids.init_producer_id(&decode(&request)?), v),
            ApiKey::JoinGroup => {
                let client = ClientInfo {
                    client_id: request.client_id().to_string(),
                    client_host: format!("/{}", ctx.client_addr.ip()),
                };
                encode(&self.groups.join_group(decode(&request)?, v, &client).await, v)
            }
            ApiKey::SyncGroup => encode(&self.groups.sync_group(decode(&request)?, v).await, v),
            ApiKey::Heartbeat => encode(&self.groups.heartbeat(decode(&request)?, v).await, v),
            ApiKey::LeaveGroup => encode(&self.groups.leave_group(decode(&request)?, v).await, v),
            ApiKey::DescribeGroups => encode(&self.groups.describe_groups(decode(&request)?, v), v),
            ApiKey::ListGroups => encode(&self.groups.list_groups(decode(&request)?, v), v),
            ApiKey::DeleteGroups => encode(&self.groups.delete_groups(decode(&request)?, v), v),
            ApiKey::OffsetCommit => encode(&self.groups.offset_commit(decode(&request)?, v, topics), v),
            ApiKey::OffsetFetch => encode(&self.groups.offset_fetch(decode(&request)?, v, topics), v),
            ApiKey::OffsetDelete => encode(&self.groups.offset_delete(decode(&request)?, v, topics), v),
            other => Err(RequestError::Unsupported { api_key: other }),
        }
    }
}

#[async_trait]
impl Backend for EmbeddedBroker {
    fn versions(&self) -> &VersionTable {
        &self.versions
    }

    fn connect(self: Arc<Self>, _ctx: &RequestContext) -> Box<dyn BackendConnection> {
        Box::new(InOrderConnection(self))
    }

    /// One node, for good.
    fn broker_ids(&self) -> tokio::sync::watch::Receiver<Vec<i32>> {
        tokio::sync::watch::channel(vec![self.identity.node_id]).1
    }

    async fn shutdown(&self) {
        for task in lock(&self.background).drain(..) {
            task.abort();
        }
        self.groups.shutdown();
        let topics = self.topics.clone();
        let groups = self.groups.clone();
        let flushed = tokio::task::spawn_blocking(move || {
            topics.flush_all();
            groups.flush()
        })
        .await;
        match flushed {
            Ok(Ok(())) => tracing::info!("embedded broker flushed"),
            Ok(Err(e)) => tracing::warn!("flushing committed offsets failed: {e}"),
            Err(e) => tracing::error!("flush task failed: {e}"),
        }
    }
}
