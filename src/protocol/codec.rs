//! Request headers in, response frames out.
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// A request whose header has been decoded; the body stays as bytes until someone needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestFrame {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub version: i16,
    pub body: Bytes,
}

impl RequestFrame {
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }

    pub fn client_id(&self) -> &str {
        self.header.client_id.as_ref().map(|s| s.as_str()).unwrap_or("")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("request of {len} bytes is too short for a request header")]
    TooShort { len: usize },
    #[error("unknown api key {api_key}")]
    UnknownApiKey {
        api_key: i16,
        version: i16,
        correlation_id: Option<i32>,
    },
    #[error("malformed request header for {api_key:?} v{version}: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes the header of one request frame (the frame without its size prefix).
pub fn decode_request_header(frame: Bytes) -> Result<RequestFrame, HeaderError> {
    if frame.len() < 4 {
        return Err(HeaderError::TooShort { len: frame.len() });
    }
    let mut peek = &frame[..];
    let raw_key = peek.get_i16();
    let version = peek.get_i16();
    let Ok(api_key) = ApiKey::try_from(raw_key) else {
        let correlation_id = (peek.len() >= 4).then(|| peek.get_i32());
        return Err(HeaderError::UnknownApiKey {
            api_key: raw_key,
            version,
            correlation_id,
        });
    };
    let header_version = api_key.request_header_version(version);
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, header_version).map_err(|e| HeaderError::Malformed {
        api_key,
        version,
        reason: e.to_string(),
    })?;
    Ok(RequestFrame {
        header,
        api_key,
        version,
        body,
    })
}

/// Encodes a response body alone (what backends return).
pub fn encode_response_body<M: Encodable>(body: &M, version: i16) -> anyhow::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(body.compute_size(version)?);
    body.encode(&mut buf, version)?;
    Ok(buf)
}

/// The size prefix and response header for a body of `body_len` bytes. The header version comes
/// from the api key and version (ApiVersions always uses header v0).
pub fn response_prefix(correlation_id: i32, api_key: ApiKey, version: i16, body_len: usize) -> BytesMut {
    // Header v0 is the correlation id; v1 adds an empty tagged-field section (one zero byte).
    let flexible = api_key.response_header_version(version) >= 1;
    let header_len = if flexible { 5 } else { 4 };
    let mut out = BytesMut::with_capacity(4 + header_len);
    out.put_i32((header_len + body_len) as i32);
    out.put_i32(correlation_id);
    if flexible {
        out.put_u8(0);
    }
    out
}

/// A whole response frame: size prefix, response header, body.
pub fn encode_response(correlation_id: i32, api_key: ApiKey, version: i16, body: &[u8]) -> BytesMut {
    let mut out = response_prefix(correlation_id, api_key, version, body.len());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;
    use kafka_protocol::protocol::StrBytes;

    fn request_bytes(api_key: ApiKey, version: i16, correlation_id: i32) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        MetadataRequest::default().encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_flexible_and_classic_headers() {
        for version in [1, 9, 12] {
            let frame = decode_request_header(request_bytes(ApiKey::Metadata, version, 42)).unwrap();
            assert_eq!(frame.api_key, ApiKey::Metadata);
            assert_eq!(frame.version, version);
            assert_eq!(frame.correlation_id(), 42);
            assert_eq!(frame.client_id(), "test");
            let req = MetadataRequest::decode(&mut frame.body.clone(), version).unwrap();
            assert_eq!(req, MetadataRequest::default());
        }
    }

    #[test]
    fn unknown_api_key_and_short_frames_are_errors() {
        let mut raw = BytesMut::new();
        raw.put_i16(9999);
        raw.put_i16(0);
        raw.put_i32(7);
        assert_eq!(
            decode_request_header(raw.freeze()),
            Err(HeaderError::UnknownApiKey {
                api_key: 9999,
                version: 0,
                correlation_id: Some(7)
            })
        );
        assert_eq!(
            decode_request_header(Bytes::from_static(&[0, 3])),
            Err(HeaderError::TooShort { len: 2 })
        );
        // A header cut in the middle of the client id.
        let mut raw = BytesMut::new();
        raw.put_i16(3);
        raw.put_i16(1);
        raw.put_i32(7);
        raw.put_i16(10);
        raw.put_slice(b"ab");
        assert!(matches!(
            decode_request_header(raw.freeze()),
            Err(HeaderError::Malformed { .. })
        ));
    }

    #[test]
    fn response_prefix_matches_the_codec_header() {
        use kafka_protocol::messages::ResponseHeader;
        for (key, version) in [
            (ApiKey::Metadata, 9),
            (ApiKey::Metadata, 8),
            (ApiKey::ApiVersions, 3),
            (ApiKey::Fetch, 12),
        ] {
            let mut expected = BytesMut::new();
            let header_version = key.response_header_version(version);
            ResponseHeader::default()
                .with_correlation_id(77)
                .encode(&mut expected, header_version)
                .unwrap();
            let prefix = response_prefix(77, key, version, 10);
            assert_eq!(&prefix[4..], &expected[..], "{key:?} v{version}");
            assert_eq!(
                i32::from_be_bytes(prefix[..4].try_into().unwrap()) as usize,
                expected.len() + 10
            );
        }
    }

    #[test]
    fn response_frames_carry_size_and_header() {
        let out = encode_response(5, ApiKey::Metadata, 9, &[1, 2]);
        assert_eq!(&out[..], &[0, 0, 0, 7, 0, 0, 0, 5, 0, 1, 2]);
        let out = encode_response(5, ApiKey::ApiVersions, 3, &[1]);
        assert_eq!(&out[..], &[0, 0, 0, 5, 0, 0, 0, 5, 1]);
    }
}
