//! Per-api rewriting of decoded responses, and the decode → rewrite → encode driver.
use bytes::{Buf, Bytes, BytesMut};
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
/// `Ok(None)` when the api/version carries no address (the caller forwards the bytes untouched).
pub fn rewrite_response(
    api_key: ApiKey,
    version: i16,
    body: &[u8],
    addressing: &BrokerAddressing,
) -> Result<Option<BytesMut>, RewriteError> {
    if !carries_addresses(api_key, version) {
        return Ok(None);
    }
    let out = match api_key {
        ApiKey::Metadata => transcode::<MetadataResponse>(api_key, version, body, |m| metadata(m, addressing)),
        ApiKey::FindCoordinator => {
            transcode::<FindCoordinatorResponse>(api_key, version, body, |m| find_coordinator(m, version, addressing))
        }
        ApiKey::DescribeCluster => {
            transcode::<DescribeClusterResponse>(api_key, version, body, |m| describe_cluster(m, addressing))
        }
        ApiKey::Produce => transcode::<ProduceResponse>(api_key, version, body, |m| produce(m, addressing)),
        ApiKey::Fetch => transcode::<FetchResponse>(api_key, version, body, |m| fetch(m, addressing)),
        ApiKey::ShareFetch => transcode::<ShareFetchResponse>(api_key, version, body, |m| share_fetch(m, addressing)),
        ApiKey::ShareAcknowledge => {
            transcode::<ShareAcknowledgeResponse>(api_key, version, body, |m| share_acknowledge(m, addressing))
        }
        ApiKey::DescribeQuorum => transcode::<DescribeQuorumResponse>(api_key, version, body, |m| {
            describe_quorum(m);
            Ok(())
        }),
        // carries_addresses() said yes to an api without a rewriter: a bug here, never a silent pass-through.
        _ => Err(RewriteError::UnsupportedVersion { api_key, version }),
    }?;
    Ok(Some(out))
}

fn transcode<M: Message + Decodable + Encodable>(
    api_key: ApiKey,
    version: i16,
    body: &[u8],
    rewrite: impl FnOnce(&mut M) -> Result<(), RewriteError>,
) -> Result<BytesMut, RewriteError> {
    if version < M::VERSIONS.min || version > M::VERSIONS.max {
        return Err(RewriteError::UnsupportedVersion { api_key, version });
    }
    let malformed = |reason: String| RewriteError::Malformed {
        api_key,
        version,
        reason,
    };
    let mut buf = Bytes::copy_from_slice(body);
    let mut message = M::decode(&mut buf, version).map_err(|e| malformed(format!("{e:#}")))?;
    if buf.has_remaining() {
        return Err(malformed(format!("{} trailing bytes", buf.remaining())));
    }
    rewrite(&mut message)?;
    let encode_err = |e: anyhow::Error| RewriteError::Encode {
        api_key,
        version,
        reason: format!("{e:#}"),
    };
    let mut out = BytesMut::with_capacity(message.compute_size(version).map_err(encode_err)?);
    message.encode(&mut out, version).map_err(encode_err)?;
    Ok(out)
}

/// Sets `host`/`port` to the listener's address of `node_id`.
fn set_address(
    node_id: i32,
    host: &mut StrBytes,
    port: &mut i32,
    addressing: &BrokerAddressing,
) -> Result<(), RewriteError> {
    let (h, p) = addressing.address_of(node_id)?;
    if host.as_str() != h {
        *host = StrBytes::from_string(h);
    }
    *port = p;
    Ok(())
}

/// A coordinator entry: an error or node -1 gets Kafka's "no coordinator" address (host "", port -1), whatever
/// the upstream put there; otherwise the listener's address.
fn set_coordinator(
    error_code: i16,
    node_id: i32,
    host: &mut StrBytes,
    port: &mut i32,
    addressing: &BrokerAddressing,
) -> Result<(), RewriteError> {
    if error_code != 0 || node_id < 0 {
        if !host.is_empty() {
            *host = StrBytes::default();
        }
        *port = -1;
        Ok(())
    } else {
        set_address(node_id, host, port, addressing)
    }
}

fn metadata(m: &mut MetadataResponse, a: &BrokerAddressing) -> Result<(), RewriteError> {
    for b in &mut m.brokers {
        set_address(b.node_id.0, &mut b.host, &mut b.port, a)?;
    }
    Ok(())
}

fn find_coordinator(m: &mut FindCoordinatorResponse, version: i16, a: &BrokerAddressing) -> Result<(), RewriteError> {
    if version < FIND_COORDINATOR_LIST_SINCE {
        set_coordinator(m.error_code, m.node_id.0, &mut m.host, &mut m.port, a)
    } else {
        for c in &mut m.coordinators {
            set_coordinator(c.error_code, c.node_id.0, &mut c.host, &mut c.port, a)?;
        }
        Ok(())
    }
}

fn describe_cluster(m: &mut DescribeClusterResponse, a: &BrokerAddressing) -> Result<(), RewriteError> {
    for b in &mut m.brokers {
        set_address(b.broker_id.0, &mut b.host, &mut b.port, a)?;
    }
    Ok(())
}

fn produce(m: &mut ProduceResponse, a: &BrokerAddressing) -> Result<(), RewriteError> {
    for e in &mut m.node_endpoints {
        set_address(e.node_id.0, &mut e.host, &mut e.port, a)?;
    }
    Ok(())
}

fn fetch(m: &mut FetchResponse, a: &BrokerAddressing) -> Result<(), RewriteError> {
    for e in &mut m.node_endpoints {
        set_address(e.node_id.0, &mut e.host, &mut e.port, a)?;
    }
    Ok(())
}

fn share_fetch(m: &mut ShareFetchResponse, a: &BrokerAddressing) -> Result<(), RewriteError> {
    for e in &mut m.node_endpoints {
        set_address(e.node_id.0, &mut e.host, &mut e.port, a)?;
    }
    Ok(())
}

fn share_acknowledge(m: &mut ShareAcknowledgeResponse, a: &BrokerAddressing) -> Result<(), RewriteError> {
    for e in &mut m.node_endpoints {
        set_address(e.node_id.0, &mut e.host, &mut e.port, a)?;
    }
    Ok(())
}

/// Controller listeners are hidden (see the module documentation).
fn describe_quorum(m: &mut DescribeQuorumResponse) {
    for n in &mut m.nodes {
        n.listeners.clear();
    }
}
