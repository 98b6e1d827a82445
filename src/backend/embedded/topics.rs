//! The topic registry: which topics and partitions exist, their configs, and the partition logs.
//!
//! Layout under `data_dir`: one directory per partition, `<topic>-<partition>` (as Kafka), and
//! `__kgate/topics.json` with every topic's id, partition count and config overrides. The json file
//! is replaced atomically (write, fsync, rename), so a crash leaves the old or the new version.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use super::log::{LogConfig, PartitionLog};
use super::topic_config::{self, TopicConfigError};
use crate::config::BrokerConfig;

/// One partition: its log, and a signal that moves when records are appended (long-poll fetches
/// wait on the broker-wide signal in `Partitions`).
pub struct Partition {
    pub index: i32,
    pub log: Mutex<PartitionLog>,
}

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Only the configs set for this topic; defaults come from the broker config.
    pub overrides: BTreeMap<String, String>,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index).ok().and_then(|i| self.partitions.get(i))
    }
}

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("Number of partitions must be larger than 0.")]
    InvalidPartitions,
    #[error("{0}")]
    InvalidConfig(#[from] TopicConfigError),
    #[error("Topic currently has {current} partitions, which is higher than the requested {requested}.")]
    PartitionsNotIncreased { current: i32, requested: i32 },
    #[error("This server does not host this topic-partition.")]
    Unknown,
    #[error("storage error: {0}")]
    Storage(String),
}

impl TopicError {
    pub fn error_code(&self) -> i16 {
        use kafka_protocol::error::ResponseError as E;
        match self {
            TopicError::AlreadyExists(_) => E::TopicAlreadyExists.code(),
            TopicError::InvalidName(_) => E::InvalidTopicException.code(),
            TopicError::InvalidPartitions | TopicError::PartitionsNotIncreased { .. } => E::InvalidPartitions.code(),
            TopicError::InvalidConfig(_) => E::InvalidConfig.code(),
            TopicError::Unknown => E::UnknownTopicOrPartition.code(),
            TopicError::Storage(_) => E::KafkaStorageError.code(),
        }
    }
}

pub struct TopicRegistry {
    data_dir: PathBuf,
    meta_file: PathBuf,
    broker: BrokerConfig,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises changes (create, delete, add partitions) so the json file matches memory.
    changes: Mutex<()>,
    /// Bumped after every append; long-poll fetches wait for it to move.
    appended: watch::Sender<u64>,
}

/// Kafka's topic name rule (Topic.validate): 1-249 chars of [a-zA-Z0-9._-], not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::InvalidName(
            "Topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(TopicError::InvalidName("Topic name cannot be \".\" or \"..\"".into()));
    }
    if name.len() > 249 {
        return Err(TopicError::InvalidName(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        )));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
    {
        return Err(TopicError::InvalidName(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

impl TopicRegistry {
    /// Loads every topic listed in the metadata file and opens (recovers) its partition logs.
    pub fn open(data_dir: &Path, broker: &BrokerConfig) -> Result<TopicRegistry, TopicError> {
        let meta_dir = data_dir.join("__kgate");
        std::fs::create_dir_all(&meta_dir).map_err(|e| TopicError::Storage(format!("{}: {e}", meta_dir.display())))?;
        let meta_file = meta_dir.join("topics.json");
        let records: Vec<TopicRecord> = match std::fs::read(&meta_file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| TopicError::Storage(format!("{} is not valid: {e}", meta_file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(TopicError::Storage(format!("{}: {e}", meta_file.display()))),
        };
        let registry = TopicRegistry {
            data_dir: data_dir.to_path_buf(),
            meta_file,
            broker: broker.clone(),
            topics: RwLock::new(HashMap::new()),
            changes: Mutex::new(()),
            appended: watch::Sender::new(0),
        };
        let now = now_ms();
        let mut topics = HashMap::new();
        for r in records {
            let log_config = topic_config::log_config(broker, &r.configs)?;
            let partitions = (0..r.partitions)
                .map(|p| registry.open_partition(&r.name, p, log_config.clone(), now))
                .collect::<Result<Vec<_>, _>>()?;
            let topic = Topic {
                name: r.name.clone(),
                id: r.id,
                overrides: r.configs,
                partitions,
            };
            topics.insert(r.name, Arc::new(topic));
        }
        *write(&registry.topics) = topics;
        Ok(registry)
    }

    fn open_partition(
        &self,
        topic: &str,
        index: i32,
        config: LogConfig,
        now: i64,
    ) -> Result<Arc<Partition>, TopicError> {
        let dir = self.data_dir.join(format!("{topic}-{index}"));
        let log = PartitionLog::open(&dir, config, now)
            .map_err(|e| TopicError::Storage(format!("{}: {e}", dir.display())))?;
        Ok(Arc::new(Partition {
            index,
            log: Mutex::new(log),
        }))
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        read(&self.topics).get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        read(&self.topics).values().find(|t| t.id == id).cloned()
    }

    /// All topics, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = read(&self.topics).values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn broker_config(&self) -> &BrokerConfig {
        &self.broker
    }

    /// Checks everything CreateTopics checks, without creating anything.
    pub fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        validate_topic_name(name)?;
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions);
        }
        topic_config::log_config(&self.broker, configs)?;
        if self.get(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        Ok(())
    }

    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let _change = lock(&self.changes);
        self.validate_new_topic(name, partitions, &configs)?;
        let log_config = topic_config::log_config(&self.broker, &configs)?;
        let now = now_ms();
        let parts = (0..partitions)
            .map(|p| self.open_partition(name, p, log_config.clone(), now))
            .collect::<Result<Vec<_>, _>>()?;
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            overrides: configs,
            partitions: parts,
        });
        let mut next = read(&self.topics).clone();
        next.insert(name.to_string(), topic.clone());
        self.persist(&next)?;
        *write(&self.topics) = next;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Returns the topic, creating it with the broker defaults when auto-creation is on.
    pub fn get_or_auto_create(&self, name: &str, allowed: bool) -> Result<Arc<Topic>, TopicError> {
        if let Some(t) = self.get(name) {
            return Ok(t);
        }
        if !(allowed && self.broker.auto_create_topics) {
            return Err(TopicError::Unknown);
        }
        match self.create(name, self.broker.num_partitions, BTreeMap::new()) {
            Err(TopicError::AlreadyExists(_)) => self.get(name).ok_or(TopicError::Unknown),
            other => other,
        }
    }

    pub fn delete(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        let _change = lock(&self.changes);
        let mut next = read(&self.topics).clone();
        let topic = next.remove(name).ok_or(TopicError::Unknown)?;
        self.persist(&next)?;
        *write(&self.topics) = next;
        for p in &topic.partitions {
            let dir = self.data_dir.join(format!("{}-{}", topic.name, p.index));
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), "could not remove a deleted partition's files: {e}");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic)
    }

    pub fn add_partitions(&self, name: &str, count: i32) -> Result<(), TopicError> {
        let _change = lock(&self.changes);
        let topic = self.get(name).ok_or(TopicError::Unknown)?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(TopicError::PartitionsNotIncreased {
                current,
                requested: count,
            });
        }
        let log_config = topic_config::log_config(&self.broker, &topic.overrides)?;
        let now = now_ms();
        let mut partitions = topic.partitions.clone();
        for p in current..count {
            partitions.push(self.open_partition(name, p, log_config.clone(), now)?);
        }
        let grown = Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            overrides: topic.overrides.clone(),
            partitions,
        });
        let mut next = read(&self.topics).clone();
        next.insert(name.to_string(), grown);
        self.persist(&next)?;
        *write(&self.topics) = next;
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    fn persist(&self, topics: &HashMap<String, Arc<Topic>>) -> Result<(), TopicError> {
        let mut records: Vec<TopicRecord> = topics
            .values()
            .map(|t| TopicRecord {
                name: t.name.clone(),
                id: t.id,
                partitions: t.partitions.len() as i32,
                configs: t.overrides.clone(),
            })
            .collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let json = serde_json::to_vec_pretty(&records).map_err(|e| TopicError::Storage(e.to_string()))?;
        write_atomically(&self.meta_file, &json)
            .map_err(|e| TopicError::Storage(format!("{}: {e}", self.meta_file.display())))
    }

    /// Wakes long-poll fetches after an append.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Applies retention to every partition; returns the number of segments deleted.
    pub fn enforce_retention(&self) -> usize {
        let now = now_ms();
        let mut deleted = 0;
        for topic in self.all() {
            for p in &topic.partitions {
                match lock(&p.log).enforce_retention(now) {
                    Ok(n) => deleted += n,
                    Err(e) => {
                        tracing::warn!(topic = %topic.name, partition = p.index, "retention failed: {e}")
                    }
                }
            }
        }
        deleted
    }

    /// fsyncs every partition log.
    pub fn flush_all(&self) {
        for topic in self.all() {
            for p in &topic.partitions {
                if let Err(e) = lock(&p.log).flush() {
                    tracing::warn!(topic = %topic.name, partition = p.index, "flush failed: {e}");
                }
            }
        }
    }
}

/// Writes `bytes` to `path` so that readers see the old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Locks a mutex, recovering from poisoning: a panic elsewhere must not take every partition down.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
