//! DescribeGroups, ListGroups, DeleteGroups.

use std::collections::HashSet;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse,
};
use tracing::{info, warn};

use super::codes::*;
use super::group::GroupState;
use super::membership::sb;
use super::GroupCoordinator;

/// Operations on a group resource (READ, DELETE, DESCRIBE) as Kafka's authorized-operations
/// bitfield; without an authorizer everything is allowed.
const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);
/// Type reported by ListGroups v5 for classic groups.
const CLASSIC_GROUP_TYPE: &str = "classic";

impl GroupCoordinator {
    pub fn describe_groups(&self, req: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
        let include_ops = version >= 3 && req.include_authorized_operations;
        let st = self.lock_state();
        let groups = req
            .groups
            .into_iter()
            .map(|group_id| {
                let described = DescribedGroup::default().with_group_id(group_id.clone());
                if !self.is_active() {
                    return described
                        .with_error_code(COORDINATOR_NOT_AVAILABLE)
                        .with_group_state(sb(""));
                }
                let Some(group) = st.groups.get(group_id.as_str()) else {
                    // Kafka: an unknown group is described as Dead, without error.
                    return described.with_group_state(sb(GroupState::Dead.as_str()));
                };
                // Member metadata is only meaningful once a protocol is chosen and stable.
                let stable_protocol = group
                    .is(GroupState::Stable)
                    .then(|| group.protocol_name.clone().unwrap_or_default());
                let members = group
                    .members_in_order()
                    .into_iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(sb(m.id.clone()))
                            .with_group_instance_id(if version >= 4 {
                                m.instance_id.clone().map(sb)
                            } else {
                                None
                            })
                            .with_client_id(sb(m.client_id.clone()))
                            .with_client_host(sb(m.client_host.clone()))
                            .with_member_metadata(stable_protocol.as_deref().map(|p| m.metadata(p)).unwrap_or_default())
                            .with_member_assignment(m.assignment.clone())
                    })
                    .collect();
                let described = described
                    .with_group_state(sb(group.state.as_str()))
                    .with_protocol_type(sb(group.protocol_type.clone().unwrap_or_default()))
                    .with_protocol_data(sb(stable_protocol.unwrap_or_default()))
                    .with_members(members);
                if include_ops {
                    described.with_authorized_operations(GROUP_AUTHORIZED_OPERATIONS)
                } else {
                    described
                }
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    pub fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        if !self.is_active() {
            return ListGroupsResponse::default().with_error_code(COORDINATOR_NOT_AVAILABLE);
        }
        // Filters are case-insensitive, like Kafka's.
        let states: HashSet<String> = if version >= 4 {
            req.states_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            HashSet::new()
        };
        let types: HashSet<String> = if version >= 5 {
            req.types_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            HashSet::new()
        };
        if !types.is_empty() && !types.contains(CLASSIC_GROUP_TYPE) {
            return ListGroupsResponse::default();
        }
        let st = self.lock_state();
        let mut groups: Vec<_> = st
            .groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .filter(|g| states.is_empty() || states.contains(&g.state.as_str().to_lowercase()))
            .collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        let listed = groups
            .into_iter()
            .map(|g| {
                let mut l = ListedGroup::default()
                    .with_group_id(GroupId(sb(g.id.clone())))
                    .with_protocol_type(sb(g.protocol_type.clone().unwrap_or_default()));
                if version >= 4 {
                    l = l.with_group_state(sb(g.state.as_str()));
                }
                if version >= 5 {
                    l = l.with_group_type(sb(CLASSIC_GROUP_TYPE));
                }
                l
            })
            .collect();
        ListGroupsResponse::default().with_groups(listed)
    }

    pub fn delete_groups(&self, req: DeleteGroupsRequest, _version: i16) -> DeleteGroupsResponse {
        let mut seen = HashSet::new();
        let mut results = Vec::new();
        let mut deleted = Vec::new();
        let mut removed_offsets = 0;
        {
            let mut st = self.lock_state();
            for group_id in req.groups_names {
                if !seen.insert(group_id.clone()) {
                    continue;
                }
                let id = group_id.to_string();
                let code = if !self.is_active() {
                    COORDINATOR_NOT_AVAILABLE
                } else {
                    match st.groups.get(&id).map(|g| g.state) {
                        None | Some(GroupState::Dead) => GROUP_ID_NOT_FOUND,
                        Some(GroupState::Empty) => {
                            let mut store = self.lock_store();
                            match store.delete_group(&id) {
                                Ok(n) => {
                                    removed_offsets += n;
                                    st.groups.remove(&id);
                                    deleted.push(id);
                                    NONE
                                }
                                Err(e) => {
                                    warn!("Failed to journal the deletion of group {id}: {e}");
                                    NOT_COORDINATOR
                                }
                            }
                        }
                        Some(_) => NON_EMPTY_GROUP,
                    }
                };
                results.push(
                    DeletableGroupResult::default()
                        .with_group_id(group_id)
                        .with_error_code(code),
                );
            }
        }
        if !deleted.is_empty() {
            info!(
                "The following groups were deleted: {}. A total of {} offsets were removed.",
                deleted.join(", "),
                removed_offsets
            );
        }
        DeleteGroupsResponse::default().with_results(results)
    }
}
