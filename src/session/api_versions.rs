//! The ApiVersions answer (KIP-511 rules), shared by the authentication phase and normal serving.
use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::Decodable;

use crate::protocol::{encode_response, encode_response_body, RequestFrame, VersionTable};

/// The session answers ApiVersions itself, whatever the backend: v0-3.
pub fn versions() -> VersionTable {
    VersionTable::from_rows(&[(ApiKey::ApiVersions, 0, 3)])
}

pub struct Answer {
    /// The whole response frame.
    pub frame: BytesMut,
    /// False when the answer is an error (unsupported version, invalid software name): a SASL
    /// client may then retry ApiVersions with a lower version.
    pub accepted: bool,
}

/// Answers an ApiVersions request from `table`. `Err` (the body does not parse) closes the
/// connection, as Kafka does.
pub fn answer(table: &VersionTable, request: &RequestFrame) -> Result<Answer, String> {
    let version = request.version;
    let (response, encode_version, accepted) = if !table.supports(ApiKey::ApiVersions, version) {
        // KIP-511: answer in v0 so that any client can read it and retry with a lower version.
        (table.unsupported_api_versions_response(), 0, false)
    } else {
        let mut body = request.body.clone();
        let req = ApiVersionsRequest::decode(&mut body, version)
            .map_err(|e| format!("malformed ApiVersions v{version}: {e}"))?;
        if version >= 3 && !valid_software_field(&req) {
            let invalid = table
                .unsupported_api_versions_response()
                .with_error_code(ResponseError::InvalidRequest.code());
            (invalid, version, false)
        } else {
            (table.api_versions_response(), version, true)
        }
    };
    let body = encode_response_body(&response, encode_version)
        .map_err(|e| format!("cannot encode ApiVersions v{encode_version}: {e}"))?;
    Ok(Answer {
        frame: encode_response(request.correlation_id(), ApiKey::ApiVersions, encode_version, &body),
        accepted,
    })
}

/// Kafka's rule for ClientSoftwareName/Version (KIP-511): `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn valid_software_field(req: &ApiVersionsRequest) -> bool {
    fn ok(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
    }
    ok(req.client_software_name.as_str()) && ok(req.client_software_version.as_str())
}
