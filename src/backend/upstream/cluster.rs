//! What kgate knows of the upstream cluster: where its brokers are, and which versions it speaks.
//!
//! Learned at start-up from the bootstrap list (ApiVersions, then Metadata with no topics) and
//! refreshed whenever a client asks for a broker id kgate has not seen (a broker added later).
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, MetadataRequest, MetadataResponse};

use super::link::{Handshake, Link, LinkError};
use super::security::UpstreamSecurity;
use crate::protocol::VersionTable;

/// Metadata versions kgate asks with: v1+ (an empty topic list means "no topics" only from v1).
const METADATA_MAX: i16 = 12;

pub struct Cluster {
    bootstrap: Vec<String>,
    security: UpstreamSecurity,
    sasl_authenticate_version: i16,
    metadata_version: i16,
    /// node id → "host:port" as the upstream advertises it (never shown to clients).
    brokers: RwLock<BTreeMap<i32, String>>,
    cluster_id: Option<String>,
    /// Bootstrap connections rotate over the list, so one dead entry does not stop new clients.
    next_bootstrap: AtomicUsize,
    /// The broker ids, for whoever serves a port per broker.
    ids: watch::Sender<Vec<i32>>,
}

/// What discovery found.
pub struct Discovered {
    pub cluster: Cluster,
    /// The upstream's own ApiVersions table.
    pub versions: VersionTable,
}

impl Cluster {
    /// Contacts the bootstrap brokers in order until one answers ApiVersions and Metadata.
    /// The error names every address tried and why it failed.
    pub async fn discover(bootstrap: Vec<String>, security: UpstreamSecurity) -> Result<Discovered, String> {
        let mut failures = Vec::new();
        for addr in &bootstrap {
            let (mut link, versions) = match Link::open_discovering(addr, &security).await {
                Ok(found) => found,
                // Wrong credentials, trust or a broker kgate cannot front: another bootstrap
                // address of the same cluster would say the same.
                Err(e @ (LinkError::Protocol { .. } | LinkError::Sasl { .. } | LinkError::Tls { .. })) => {
                    return Err(e.to_string())
                }
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            let versions = table_of(&versions);
            let Some(metadata_version) = versions
                .range(ApiKey::Metadata)
                .map(|r| r.max.min(METADATA_MAX))
                .filter(|v| *v >= 1)
            else {
                return Err(format!("upstream broker {addr} does not offer Metadata v1 or newer"));
            };
            let sasl_authenticate_version = versions
                .range(ApiKey::SaslAuthenticate)
                .map(|r| r.max.min(1))
                .unwrap_or(0);
            let metadata = match fetch_metadata(&mut link, metadata_version).await {
                Ok(m) => m,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            let brokers = brokers_of(&metadata);
            let (ids, _) = watch::channel(brokers.keys().copied().collect());
            let cluster = Cluster {
                bootstrap: bootstrap.clone(),
                security,
                sasl_authenticate_version,
                metadata_version,
                ids,
                brokers: RwLock::new(brokers),
                cluster_id: metadata.cluster_id.as_ref().map(|c| c.to_string()),
                next_bootstrap: AtomicUsize::new(0),
            };
            return Ok(Discovered { cluster, versions });
        }
        Err(format!(
            "no bootstrap broker answered: {}. Check backend.bootstrap and that the cluster is up",
            failures.join("; ")
        ))
    }

    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    pub fn brokers(&self) -> BTreeMap<i32, String> {
        self.brokers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn handshake(&self) -> Handshake<'_> {
        Handshake {
            security: &self.security,
            sasl_authenticate_version: self.sasl_authenticate_version,
        }
    }

    /// An authenticated connection to broker `target`, or to any bootstrap broker for `None`.
    pub async fn open(&self, target: Option<i32>) -> Result<Link, LinkError> {
        match target {
            Some(id) => {
                let addr = match self.address_of(id) {
                    Some(addr) => addr,
                    None => {
                        self.refresh().await?;
                        self.address_of(id).ok_or_else(|| LinkError::Connect {
                            addr: format!("broker {id}"),
                            reason: "the upstream cluster's metadata has no broker with this id".into(),
                        })?
                    }
                };
                Link::open(&addr, &self.handshake()).await
            }
            None => self.open_any().await,
        }
    }

    fn address_of(&self, id: i32) -> Option<String> {
        self.brokers.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Tries each bootstrap address once, starting with the next in turn.
    async fn open_any(&self) -> Result<Link, LinkError> {
        let start = self.next_bootstrap.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.bootstrap.len() {
            let addr = &self.bootstrap[(start + i) % self.bootstrap.len()];
            match Link::open(addr, &self.handshake()).await {
                Ok(link) => return Ok(link),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(LinkError::Connect {
            addr: "backend.bootstrap".into(),
            reason: "the list is empty".into(),
        }))
    }

    /// Re-reads the broker list from any bootstrap broker.
    pub async fn refresh(&self) -> Result<(), LinkError> {
        let mut link = self.open_any().await?;
        let metadata = fetch_metadata(&mut link, self.metadata_version).await?;
        let brokers = brokers_of(&metadata);
        let ids: Vec<i32> = brokers.keys().copied().collect();
        *self.brokers.write().unwrap_or_else(|p| p.into_inner()) = brokers;
        self.ids.send_if_modified(|known| {
            // Ids are only added: a broker missing from one answer (restarting) keeps its port.
            let new: Vec<i32> = ids.into_iter().filter(|id| !known.contains(id)).collect();
            known.extend(&new);
            known.sort_unstable();
            !new.is_empty()
        });
        Ok(())
    }

    /// The broker ids seen so far; changes when a broker joins.
    pub fn watch_broker_ids(&self) -> watch::Receiver<Vec<i32>> {
        self.ids.subscribe()
    }

    /// Refreshes the broker list every `every` until aborted.
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Err(e) = cluster.refresh().await {
                    tracing::warn!("cannot refresh the upstream broker list: {e}");
                }
            }
        })
    }
}

async fn fetch_metadata(link: &mut Link, version: i16) -> Result<MetadataResponse, LinkError> {
    let request = MetadataRequest::default()
        .with_topics(Some(Vec::new()))
        .with_allow_auto_topic_creation(false);
    link.call(ApiKey::Metadata, version, &request).await
}

fn brokers_of(metadata: &MetadataResponse) -> BTreeMap<i32, String> {
    metadata
        .brokers
        .iter()
        .map(|b| {
            let host = b.host.as_str();
            // IPv6 literals need brackets in HOST:PORT form.
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            (b.node_id.0, format!("{host}:{}", b.port))
        })
        .collect()
}

/// The upstream's ApiVersions answer as a table.
pub fn table_of(response: &ApiVersionsResponse) -> VersionTable {
    let rows: Vec<(ApiKey, i16, i16)> = response
        .api_keys
        .iter()
        .filter_map(|k| Some((ApiKey::try_from(k.api_key).ok()?, k.min_version, k.max_version)))
        .collect();
    VersionTable::from_rows(&rows)
}
