//! The one place that decides which api versions the embedded broker serves. Each range is what the
//! handlers in this module implement; the session refuses anything outside it.
use kafka_protocol::messages::ApiKey;

use crate::protocol::VersionTable;

pub fn table() -> VersionTable {
    use ApiKey::*;
    VersionTable::from_rows(&[
        // v3 is the first with magic-v2 record batches; v10+ adds KIP-951 leader hints we don't need.
        (Produce, 3, 9),
        // v13+ addresses topics by id only.
        (Fetch, 4, 12),
        // v8+ adds tiered-storage offset specs.
        (ListOffsets, 1, 7),
        (Metadata, 0, 12),
        (OffsetCommit, 2, 8),
        (OffsetFetch, 1, 8),
        (FindCoordinator, 0, 4),
        (JoinGroup, 0, 9),
        (Heartbeat, 0, 4),
        (LeaveGroup, 0, 5),
        (SyncGroup, 0, 5),
        (DescribeGroups, 0, 5),
        (ListGroups, 0, 4),
        (ApiVersions, 0, 3),
        (CreateTopics, 0, 7),
        (DeleteTopics, 0, 6),
        (InitProducerId, 0, 4),
        (OffsetForLeaderEpoch, 0, 4),
        (DescribeConfigs, 0, 4),
        (CreatePartitions, 0, 3),
        (DeleteGroups, 0, 2),
        (OffsetDelete, 0, 0),
        (DescribeCluster, 0, 1),
    ])
}
