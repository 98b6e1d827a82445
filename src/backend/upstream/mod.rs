//! Upstream mode: kgate in front of an existing Kafka cluster.
//!
//! Each client connection gets its own authenticated connection to the broker it dialled (a
//! broker's own advertised address leads to that broker; the listener's bootstrap address to any
//! bootstrap broker). Requests are forwarded as they arrive, so a pipelining client keeps its
//! pipeline; responses come back in request order because Kafka answers a connection in order
//! and the session writes them in order. Broker addresses in responses are replaced by the
//! session's writer (src/rewrite/), so no upstream address ever reaches a client.
//!
//! Failure rule: when an upstream connection dies with requests in flight, their answers are
//! lost, so the client connection is closed (clients treat that as retriable and retry or
//! refresh metadata). An upstream connection that closed while idle is reopened transparently.
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tracing::info;

use crate::backend::{Backend, BackendConnection, PendingReply, Reply, RequestContext};
use crate::config::BackendConfig;
use crate::error::{RequestError, StartupError};
use crate::protocol::{RequestFrame, VersionTable};

pub mod cluster;
pub mod gssapi;
pub mod link;
pub mod security;

use cluster::Cluster;
use link::{Link, LinkError};
use security::UpstreamSecurity;

/// How many requests of one client connection may be on their way upstream at once. librdkafka
/// sends up to 5 produce requests per connection; Java clients max.in.flight.requests 5 too.
const MAX_IN_FLIGHT: usize = 16;

pub struct UpstreamBackend {
    cluster: Arc<Cluster>,
    versions: VersionTable,
    refresher: tokio::task::JoinHandle<()>,
}

impl UpstreamBackend {
    /// Discovers the cluster; fails start-up when no bootstrap broker can be used.
    pub async fn open(
        config: &BackendConfig,
        security: UpstreamSecurity,
    ) -> Result<Arc<UpstreamBackend>, StartupError> {
        let discovered = Cluster::discover(config.bootstrap.clone(), security.clone())
            .await
            .map_err(StartupError::Upstream)?;
        let versions = forwardable().intersect(&discovered.versions);
        let cluster = discovered.cluster;
        info!(
            cluster_id = cluster.cluster_id().unwrap_or("?"),
            brokers = ?cluster.brokers(),
            security_protocol = security.protocol_name(),
            "upstream cluster discovered"
        );
        let cluster = Arc::new(cluster);
        let refresher = cluster.spawn_refresher(std::time::Duration::from_millis(config.metadata_refresh_ms));
        Ok(Arc::new(UpstreamBackend {
            cluster,
            versions,
            refresher,
        }))
    }
}

/// What kgate can forward: every api the codec knows, minus what the session serves itself
/// (ApiVersions, SASL, kgate's own SCRAM user admin) and the cluster-internal apis no client
/// sends (controller, raft and broker-registration traffic).
///
/// Produce stops at v9 and Fetch at v15: from v10/v16 (KIP-951) responses may carry broker
/// endpoints, which would oblige kgate to decode every produce and fetch answer to rewrite them.
/// Clients then learn new leaders from Metadata, which they do anyway on NOT_LEADER_OR_FOLLOWER.
pub fn forwardable() -> VersionTable {
    const SERVED_BY_KGATE_OR_INTERNAL: &[ApiKey] = &[
        ApiKey::ApiVersions,
        ApiKey::SaslHandshake,
        ApiKey::SaslAuthenticate,
        ApiKey::DescribeUserScramCredentials,
        ApiKey::AlterUserScramCredentials,
        ApiKey::WriteTxnMarkers,
        ApiKey::Vote,
        ApiKey::BeginQuorumEpoch,
        ApiKey::EndQuorumEpoch,
        ApiKey::AlterPartition,
        ApiKey::Envelope,
        ApiKey::FetchSnapshot,
        ApiKey::BrokerRegistration,
        ApiKey::BrokerHeartbeat,
        ApiKey::UnregisterBroker,
        ApiKey::AllocateProducerIds,
        ApiKey::ControllerRegistration,
        ApiKey::AssignReplicasToDirs,
        ApiKey::AddRaftVoter,
        ApiKey::RemoveRaftVoter,
        ApiKey::UpdateRaftVoter,
    ];
    let rows: Vec<(ApiKey, i16, i16)> = ApiKey::iter()
        .filter(|k| !SERVED_BY_KGATE_OR_INTERNAL.contains(k))
        .map(|k| {
            let r = k.valid_versions();
            let max = match k {
                ApiKey::Produce => r.max.min(9),
                ApiKey::Fetch => r.max.min(15),
                _ => r.max,
            };
            (k, r.min, max)
        })
        .collect();
    VersionTable::from_rows(&rows)
}

#[async_trait]
impl Backend for UpstreamBackend {
    fn versions(&self) -> &VersionTable {
        &self.versions
    }

    fn connect(self: Arc<Self>, ctx: &RequestContext) -> Box<dyn BackendConnection> {
        Box::new(UpstreamConnection {
            cluster: self.cluster.clone(),
            target: ctx.target_node,
            link: None,
        })
    }

    fn broker_ids(&self) -> tokio::sync::watch::Receiver<Vec<i32>> {
        self.cluster.watch_broker_ids()
    }

    async fn shutdown(&self) {
        self.refresher.abort();
    }
}

struct UpstreamConnection {
    cluster: Arc<Cluster>,
    target: Option<i32>,
    link: Option<Link>,
}

impl UpstreamConnection {
    async fn link(&mut self) -> Result<&mut Link, LinkError> {
        let reusable = match &self.link {
            Some(link) => !link.is_closed(),
            None => false,
        };
        if !reusable {
            if let Some(link) = &self.link {
                if link.lost_requests() {
                    // Answers were lost: reconnecting now could run later requests before the lost
                    // ones are retried (reordering a producer's records). The client must reconnect.
                    return Err(link.closed_reason());
                }
            }
            self.link = Some(self.cluster.open(self.target).await?);
        }
        self.link.as_mut().ok_or_else(|| LinkError::Closed {
            addr: "upstream".into(),
            reason: "no connection".into(),
        })
    }
}

fn upstream_error(e: LinkError) -> RequestError {
    RequestError::Upstream(e.to_string())
}

#[async_trait]
impl BackendConnection for UpstreamConnection {
    async fn submit(&mut self, _ctx: &RequestContext, request: RequestFrame) -> Result<PendingReply, RequestError> {
        let expect_reply =
            !(request.api_key == ApiKey::Produce && produce_acks(request.version, &request.body) == Some(0));
        let link = self.link().await.map_err(upstream_error)?;
        match link.forward(&request, expect_reply).await.map_err(upstream_error)? {
            None => Ok(Box::pin(async { Ok(Reply::None) })),
            Some(response) => Ok(Box::pin(async move {
                match response.await {
                    Ok(Ok(body)) => Ok(Reply::Body(into_mut(body))),
                    Ok(Err(e)) => Err(upstream_error(e)),
                    Err(_) => Err(RequestError::Upstream("the upstream connection was dropped".into())),
                }
            })),
        }
    }

    fn max_in_flight(&self) -> usize {
        MAX_IN_FLIGHT
    }
}

/// The body as `BytesMut`, without a copy when nobody else holds it.
fn into_mut(body: Bytes) -> BytesMut {
    body.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]))
}

/// The acks field of a Produce request body (v3+: after the nullable transactional id), or `None`
/// when the body is too short to say (then a response is expected, which is the safe side).
pub fn produce_acks(version: i16, body: &[u8]) -> Option<i16> {
    let mut rest = body;
    if version >= 9 {
        // Compact nullable string: unsigned varint of length + 1 (0 = null).
        let mut length_plus_one: u64 = 0;
        let mut shift = 0;
        loop {
            if !rest.has_remaining() || shift > 28 {
                return None;
            }
            let byte = rest.get_u8();
            length_plus_one |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let skip = usize::try_from(length_plus_one.saturating_sub(1)).ok()?;
        if rest.remaining() < skip {
            return None;
        }
        rest.advance(skip);
    } else if version >= 3 {
        if rest.remaining() < 2 {
            return None;
        }
        let length = rest.get_i16();
        let skip = usize::try_from(length.max(0)).ok()?;
        if rest.remaining() < skip {
            return None;
        }
        rest.advance(skip);
    }
    (rest.remaining() >= 2).then(|| rest.get_i16())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ProduceRequest;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn produce_acks_is_read_for_every_version() {
        for version in 3..=9 {
            for (txn, acks) in [(None, 0), (Some("tx-1"), 0), (None, -1), (Some(""), 1)] {
                let request = ProduceRequest::default()
                    .with_transactional_id(
                        txn.map(|t| kafka_protocol::messages::TransactionalId(StrBytes::from_static_str(t))),
                    )
                    .with_acks(acks)
                    .with_timeout_ms(1000);
                let mut body = BytesMut::new();
                request.encode(&mut body, version).unwrap();
                assert_eq!(produce_acks(version, &body), Some(acks), "v{version} txn {txn:?}");
            }
        }
        assert_eq!(produce_acks(9, &[0x85]), None);
        assert_eq!(produce_acks(3, &[0, 10, 1]), None);
        assert_eq!(produce_acks(3, &[]), None);
    }

    #[test]
    fn internal_and_kgate_served_apis_are_never_forwarded() {
        let table = forwardable();
        for key in [
            ApiKey::SaslHandshake,
            ApiKey::ApiVersions,
            ApiKey::BrokerHeartbeat,
            ApiKey::Vote,
            ApiKey::Envelope,
        ] {
            assert!(table.range(key).is_none(), "{key:?}");
        }
        assert_eq!(table.range(ApiKey::Produce).map(|r| r.max), Some(9));
        assert_eq!(table.range(ApiKey::Fetch).map(|r| r.max), Some(15));
        assert!(table.supports(ApiKey::JoinGroup, 5));
        assert!(table.supports(ApiKey::Metadata, 12));
    }
}
