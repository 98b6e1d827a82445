//! Per-api rewriting of decoded responses, and the decode → rewrite → encode driver.
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DescribeClusterResponse, DescribeQuorumResponse, FetchResponse, FindCoordinatorResponse, MetadataResponse,
    ProduceResponse, ShareAcknowledgeResponse, ShareFetchResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};

use super::{BrokerAddressing, RewriteError};

/// First Produce version with `node_endpoints` (KIP-951).
pub const PRODUCE_ENDPOINTS_SINCE: i16 = 10;
/// First Fetch version with `node_endpoints` (KIP-951).
pub const FETCH_ENDPOINTS_SINCE: i16 = 16;
/// First FindCoordinator version with the `coordinators` list (KIP-699).
pub const FIND_COORDINATOR_LIST_SINCE: i16 = 4;
/// First DescribeQuorum version with `nodes` (KIP-853).
pub const DESCRIBE_QUORUM_NODES_SINCE: i16 = 2;

/// Which responses carry broker addresses, at which versions: the one place that decides.
/// Versions newer than the crate knows count as carrying them (so they fail closed in [`rewrite_response`]).
pub fn carries_addresses(api_key: ApiKey, version: i16) -> bool {
    if version < 0 {
        return false;
    }
    match api_key {
        ApiKey::Metadata | ApiKey::FindCoordinator | ApiKey::DescribeCluster => true,
        ApiKey::ShareFetch | ApiKey::ShareAcknowledge => true,
        ApiKey::Produce => version >= PRODUCE_ENDPOINTS_SINCE,
        ApiKey::Fetch => version >= FETCH_ENDPOINTS_SINCE,
        ApiKey::DescribeQuorum => version >= DESCRIBE_QUORUM_NODES_SINCE,
        _ => false,
    }
}

/// Decodes an encoded response body (no size prefix, no header), rewrites every broker address, re-encodes.
/// `Ok(None)` when the caller forwards the bytes untouched: the api/version carries no address, or every
/// address in it already is the listener's (typical for Produce/Fetch, whose `node_endpoints` are usually
/// empty: no re-encoding on the hot path).
pub fn rewrite_response(
    api_key: ApiKey,
    version: i16,
    body: &[u8],
    addressing: &BrokerAddressing,
) -> Result<Option<BytesMut>, RewriteError> {
    if !carries_addresses(api_key, version) {
        return Ok(None);
    }
    rewrite(api_key, version, Bytes::copy_from_slice(body), addressing, false)
}

/// [`rewrite_response`] for a body already in a `Bytes` (record data is then sliced, not copied, while decoding).
pub fn rewrite_response_bytes(
    api_key: ApiKey,
    version: i16,
    body: Bytes,
    addressing: &BrokerAddressing,
) -> Result<Option<BytesMut>, RewriteError> {
    if !carries_addresses(api_key, version) {
        return Ok(None);
    }
    rewrite(api_key, version, body, addressing, false)
}

/// Decode → rewrite → encode even when nothing changed (the byte-identity tests use it).
#[cfg(test)]
pub(super) fn reencode(
    api_key: ApiKey,
    version: i16,
    body: &[u8],
    addressing: &BrokerAddressing,
) -> Result<BytesMut, RewriteError> {
    rewrite(api_key, version, Bytes::copy_from_slice(body), addressing, true)?
        .ok_or(RewriteError::UnsupportedVersion { api_key, version })
}

fn rewrite(
    api_key: ApiKey,
    version: i16,
    body: Bytes,
    addressing: &BrokerAddressing,
    always_encode: bool,
) -> Result<Option<BytesMut>, RewriteError> {
    let t = Transcode {
        api_key,
        version,
        body,
        always_encode,
    };
    match api_key {
        ApiKey::Metadata => t.run::<MetadataResponse>(|m| metadata(m, addressing)),
        ApiKey::FindCoordinator => t.run::<FindCoordinatorResponse>(|m| find_coordinator(m, version, addressing)),
        ApiKey::DescribeCluster => t.run::<DescribeClusterResponse>(|m| describe_cluster(m, addressing)),
        ApiKey::Produce => t.run::<ProduceResponse>(|m| produce(m, addressing)),
        ApiKey::Fetch => t.run::<FetchResponse>(|m| fetch(m, addressing)),
        ApiKey::ShareFetch => t.run::<ShareFetchResponse>(|m| share_fetch(m, addressing)),
        ApiKey::ShareAcknowledge => t.run::<ShareAcknowledgeResponse>(|m| share_acknowledge(m, addressing)),
        ApiKey::DescribeQuorum => t.run::<DescribeQuorumResponse>(|m| Ok(describe_quorum(m))),
        // carries_addresses() said yes to an api without a rewriter: a bug here, never a silent pass-through.
        _ => Err(RewriteError::UnsupportedVersion { api_key, version }),
    }
}

struct Transcode {
    api_key: ApiKey,
    version: i16,
    body: Bytes,
    always_encode: bool,
}

impl Transcode {
    /// Decodes the whole body, lets `rewrite` change it (it says whether it did), re-encodes if so.
    fn run<M: Message + Decodable + Encodable>(
        self,
        rewrite: impl FnOnce(&mut M) -> Result<bool, RewriteError>,
    ) -> Result<Option<BytesMut>, RewriteError> {
        let Transcode {
            api_key,
            version,
            body: mut buf,
            always_encode,
        } = self;
        if version < M::VERSIONS.min || version > M::VERSIONS.max {
            return Err(RewriteError::UnsupportedVersion { api_key, version });
        }
        let malformed = |reason: String| RewriteError::Malformed {
            api_key,
            version,
            reason,
        };
        let mut message = M::decode(&mut buf, version).map_err(|e| malformed(format!("{e:#}")))?;
        // Bytes after the message (librdkafka's mock cluster sends one after Metadata v13) would be
        // lost by re-encoding; they are passed on verbatim instead, so the client reads exactly
        // what the broker wrote apart from the addresses.
        let trailing = buf;
        if !rewrite(&mut message)? && !always_encode {
            return Ok(None);
        }
        let encode_err = |e: anyhow::Error| RewriteError::Encode {
            api_key,
            version,
            reason: format!("{e:#}"),
        };
        let mut out = BytesMut::with_capacity(message.compute_size(version).map_err(encode_err)? + trailing.len());
        message.encode(&mut out, version).map_err(encode_err)?;
        out.extend_from_slice(&trailing);
        Ok(Some(out))
    }
}

/// Sets `host`/`port` to the listener's address of `node_id`; true when that changed them.
fn set_address(
    node_id: i32,
    host: &mut StrBytes,
    port: &mut i32,
    addressing: &BrokerAddressing,
) -> Result<bool, RewriteError> {
    let (h, p) = addressing.address_of(node_id)?;
    Ok(replace(host, port, h, p))
}

fn replace(host: &mut StrBytes, port: &mut i32, new_host: String, new_port: i32) -> bool {
    let changed = host.as_str() != new_host || *port != new_port;
    if host.as_str() != new_host {
        *host = StrBytes::from_string(new_host);
    }
    *port = new_port;
    changed
}

/// `set_address` over a list; true when anything changed (every entry is visited either way).
fn set_all<T>(
    items: &mut [T],
    addressing: &BrokerAddressing,
    fields: impl Fn(&mut T) -> (i32, &mut StrBytes, &mut i32),
) -> Result<bool, RewriteError> {
    let mut changed = false;
    for item in items {
        let (id, host, port) = fields(item);
        changed |= set_address(id, host, port, addressing)?;
    }
    Ok(changed)
}

/// A coordinator entry: an error or node -1 gets Kafka's "no coordinator" address (host "", port -1), whatever
/// the upstream put there; otherwise the listener's address.
fn set_coordinator(
    error_code: i16,
    node_id: i32,
    host: &mut StrBytes,
    port: &mut i32,
    addressing: &BrokerAddressing,
) -> Result<bool, RewriteError> {
    if error_code != 0 || node_id < 0 {
        Ok(replace(host, port, String::new(), -1))
    } else {
        set_address(node_id, host, port, addressing)
    }
}

fn metadata(m: &mut MetadataResponse, a: &BrokerAddressing) -> Result<bool, RewriteError> {
    set_all(&mut m.brokers, a, |b| (b.node_id.0, &mut b.host, &mut b.port))
}

fn find_coordinator(m: &mut FindCoordinatorResponse, version: i16, a: &BrokerAddressing) -> Result<bool, RewriteError> {
    if version < FIND_COORDINATOR_LIST_SINCE {
        set_coordinator(m.error_code, m.node_id.0, &mut m.host, &mut m.port, a)
    } else {
        let mut changed = false;
        for c in &mut m.coordinators {
            changed |= set_coordinator(c.error_code, c.node_id.0, &mut c.host, &mut c.port, a)?;
        }
        Ok(changed)
    }
}

fn describe_cluster(m: &mut DescribeClusterResponse, a: &BrokerAddressing) -> Result<bool, RewriteError> {
    set_all(&mut m.brokers, a, |b| (b.broker_id.0, &mut b.host, &mut b.port))
}

fn produce(m: &mut ProduceResponse, a: &BrokerAddressing) -> Result<bool, RewriteError> {
    set_all(&mut m.node_endpoints, a, |e| (e.node_id.0, &mut e.host, &mut e.port))
}

fn fetch(m: &mut FetchResponse, a: &BrokerAddressing) -> Result<bool, RewriteError> {
    set_all(&mut m.node_endpoints, a, |e| (e.node_id.0, &mut e.host, &mut e.port))
}

fn share_fetch(m: &mut ShareFetchResponse, a: &BrokerAddressing) -> Result<bool, RewriteError> {
    set_all(&mut m.node_endpoints, a, |e| (e.node_id.0, &mut e.host, &mut e.port))
}

fn share_acknowledge(m: &mut ShareAcknowledgeResponse, a: &BrokerAddressing) -> Result<bool, RewriteError> {
    set_all(&mut m.node_endpoints, a, |e| (e.node_id.0, &mut e.host, &mut e.port))
}

/// Controller listeners are hidden (see the module documentation); true when there were any.
fn describe_quorum(m: &mut DescribeQuorumResponse) -> bool {
    let mut changed = false;
    for n in &mut m.nodes {
        changed |= !n.listeners.is_empty();
        n.listeners.clear();
    }
    changed
}
