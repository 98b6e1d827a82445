//! Apis about kgate itself rather than the backend: the users kgate authenticates
//! (DescribeUserScramCredentials / AlterUserScramCredentials), so operators can manage SASL/SCRAM
//! users from AdminClient the way they do with Kafka.
//!
//! Authorization: Kafka requires DESCRIBE (resp. ALTER) on the CLUSTER resource. Until ACLs exist,
//! only `security.super_users` hold those rights.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::protocol::{encode_response, encode_response_body, RequestFrame, VersionTable};
use crate::security::{alter_user_scram_credentials, describe_user_scram_credentials, CredentialStore};

pub fn versions() -> VersionTable {
    VersionTable::from_rows(&[
        (ApiKey::DescribeUserScramCredentials, 0, 0),
        (ApiKey::AlterUserScramCredentials, 0, 0),
    ])
}

pub fn serves(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::DescribeUserScramCredentials | ApiKey::AlterUserScramCredentials
    )
}

/// Answers one gateway api request; `Err` (malformed body) closes the connection.
pub fn answer(
    request: &RequestFrame,
    principal: &str,
    super_users: &[String],
    credentials: &CredentialStore,
) -> Result<bytes::BytesMut, String> {
    let authorized = super_users.iter().any(|s| s == principal);
    let denied = ResponseError::ClusterAuthorizationFailed;
    let mut body = request.body.clone();
    let malformed = |e: anyhow::Error| format!("malformed {:?} v{}: {e}", request.api_key, request.version);
    let encoded = match request.api_key {
        ApiKey::DescribeUserScramCredentials => {
            let req = DescribeUserScramCredentialsRequest::decode(&mut body, request.version).map_err(malformed)?;
            let response = if authorized {
                describe_user_scram_credentials(credentials, req)
            } else {
                tracing::info!(principal, "DescribeUserScramCredentials refused: not a super user");
                // As KafkaApis (DescribeUserScramCredentialsRequest.getErrorResponse): CLUSTER_AUTHORIZATION_FAILED
                // with a null message at the top and for each user asked about, user names left empty.
                let results = req
                    .users
                    .iter()
                    .flatten()
                    .map(|_| {
                        DescribeUserScramCredentialsResult::default()
                            .with_error_code(denied.code())
                            .with_error_message(None)
                    })
                    .collect();
                DescribeUserScramCredentialsResponse::default()
                    .with_error_code(denied.code())
                    .with_error_message(None)
                    .with_results(results)
            };
            encode_response_body(&response, request.version)
        }
        ApiKey::AlterUserScramCredentials => {
            // Never log this request: it carries salted passwords.
            let req = AlterUserScramCredentialsRequest::decode(&mut body, request.version).map_err(malformed)?;
            let response = if authorized {
                let response = alter_user_scram_credentials(credentials, req);
                tracing::info!(
                    principal,
                    users = response.results.len(),
                    "AlterUserScramCredentials applied"
                );
                response
            } else {
                tracing::info!(principal, "AlterUserScramCredentials refused: not a super user");
                let names = req
                    .upsertions
                    .iter()
                    .map(|u| u.name.clone())
                    .chain(req.deletions.iter().map(|d| d.name.clone()));
                let results = names
                    .map(|user| {
                        AlterUserScramCredentialsResult::default()
                            .with_user(user)
                            .with_error_code(denied.code())
                            .with_error_message(Some(StrBytes::from_static_str("Cluster authorization failed.")))
                    })
                    .collect();
                AlterUserScramCredentialsResponse::default().with_results(results)
            };
            encode_response_body(&response, request.version)
        }
        other => return Err(format!("{other:?} is not a gateway api")),
    };
    let body = encoded.map_err(|e| format!("cannot encode {:?}: {e}", request.api_key))?;
    Ok(encode_response(
        request.correlation_id(),
        request.api_key,
        request.version,
        &body,
    ))
}
