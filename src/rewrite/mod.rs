//! Upstream mode: rewriting every broker address in a response, so that clients only ever see addresses of
//! the kgate listener they came in on (never an upstream broker's own address).
//!
//! Pure: no I/O, no configuration parsing. [`BrokerAddressing`] maps a broker id to the listener's address
//! (and back, for routing a new connection); [`rewrite_response`] decodes a response body, replaces the
//! addresses, and re-encodes. [`carries_addresses`] is the one place that says which responses hold addresses.
//!
//! | Api (key) | Versions | Field | Rule |
//! |---|---|---|---|
//! | Metadata (3) | all | `brokers[]` | id → address |
//! | FindCoordinator (10) | 0–3 | top-level NodeId/Host/Port | id → address; on an error or node -1 host `""`, port -1 |
//! | FindCoordinator (10) | 4+ | `coordinators[]` | same, per coordinator |
//! | DescribeCluster (60) | all | `brokers[]` | id → address, for either endpoint type (see below) |
//! | Produce (0) | 10+ | tagged `node_endpoints[]` | id → address |
//! | Fetch (1) | 16+ | tagged `node_endpoints[]` | id → address |
//! | ShareFetch (78), ShareAcknowledge (79) | all | `node_endpoints[]` | id → address |
//! | DescribeQuorum (55) | 2+ | `nodes[].listeners[]` | **hidden**: emptied (see below) |
//!
//! Decisions:
//! * DescribeQuorum lists *controller* listeners (name, host, port) per voter. kgate forwards clients to brokers,
//!   not controllers, so no kgate address reaches them; a controller's address must not leak either. The
//!   listener lists are emptied (node ids, voters and offsets are kept): `kafka-metadata-quorum` still shows the
//!   quorum state, just without endpoints.
//! * DescribeCluster v1+ with EndpointType 2 (controllers, KIP-919) is rewritten with the same scheme as brokers
//!   (node ids are unique across brokers and controllers in KRaft): a client gets `bootstrap.controllers`-style
//!   addresses that lead back to kgate, never upstream addresses. Routing such an id is the caller's business.
//! * An address that cannot be built (negative id in a broker list, port outside 1..=65535) fails the whole
//!   response: forwarding it half-rewritten would leak an upstream address.
//! * Versions the crate cannot decode, of apis that carry addresses, are errors (fail closed), never forwarded.
//! * KRaft-internal responses with endpoints (Vote, Begin/EndQuorumEpoch, FetchSnapshot, raft Fetch) are
//!   controller-to-controller traffic; kgate must not forward those apis to clients, so they are not handled here.
//!
//! `Ok(None)` means "forward the original bytes": the api/version carries no address, or nothing needed changing
//! (Produce/Fetch with no `node_endpoints`, the common case, are decoded but not re-encoded).
//! Everything else survives: the crate keeps unknown tagged fields, and bytes after the message are passed on verbatim
//! (they would be dropped by re-encoding). Known limitation shared with all decoding in kgate (README): the crate
//! sizes a `Vec` from an array length read off the wire before reading its elements.
#![forbid(unsafe_code)]

mod addressing;
mod responses;
#[cfg(test)]
mod tests;

pub use addressing::{BrokerAddressing, ID_PLACEHOLDER};
pub use responses::{carries_addresses, rewrite_response, rewrite_response_bytes};

use kafka_protocol::messages::ApiKey;

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("broker {node_id}: port {port} is outside 1..=65535")]
    PortOutOfRange { node_id: i32, port: i64 },
    #[error("broker {node_id}: port {port} is the explicit address of broker {owner}")]
    PortTaken { node_id: i32, port: i32, owner: i32 },
    #[error("broker id {0} is negative and has no address")]
    NegativeNodeId(i32),
    #[error("empty advertised host{}", node_id.map(|id| format!(" for broker {id}")).unwrap_or_default())]
    EmptyHost { node_id: Option<i32> },
    #[error("bad SNI pattern {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("{api_key:?} v{version} responses cannot be rewritten (unknown version)")]
    UnsupportedVersion { api_key: ApiKey, version: i16 },
    #[error("malformed {api_key:?} v{version} response: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode the rewritten {api_key:?} v{version} response: {reason}")]
    Encode {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}
