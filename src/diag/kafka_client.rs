//! The client side of Kafka's SASL exchange over plain TCP, one request at a time: ApiVersions,
//! SaslHandshake, SaslAuthenticate (KAFKA_SEMANTICS.md §1), with the messages of the kafka-protocol
//! crate. Every read and write is bounded by a timeout; a response larger than 1 MiB is refused.
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_RESPONSE: usize = 1 << 20;
const CLIENT_ID: &str = "kgate-doctor";
/// Kafka's UNSUPPORTED_VERSION.
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const ILLEGAL_SASL_STATE: i16 = 34;
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The peer closed the connection (EOF) before or while answering.
    Closed,
    Timeout(&'static str),
    Io(String),
    /// The answer is not a Kafka response (a TLS listener, another protocol).
    Garbled(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Closed => write!(f, "the listener closed the connection without an answer"),
            WireError::Timeout(what) => write!(f, "no answer to {what} in time"),
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Garbled(e) => write!(f, "the answer is not a Kafka response: {e}"),
        }
    }
}

pub struct KafkaConn {
    stream: TcpStream,
    next_id: i32,
    timeout: Duration,
}

/// (api key, min version, max version)
pub type ApiRange = (i16, i16, i16);

impl KafkaConn {
    /// Connects to the first address that accepts.
    pub async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<(KafkaConn, SocketAddr), String> {
        let mut errors = Vec::new();
        for addr in addrs {
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok((
                        KafkaConn {
                            stream,
                            next_id: 1,
                            timeout,
                        },
                        *addr,
                    ));
                }
                Ok(Err(e)) => errors.push(format!("{addr}: {e}")),
                Err(_) => errors.push(format!("{addr}: no answer within {timeout:?}")),
            }
        }
        Err(errors.join("; "))
    }

    /// ApiVersions at v3 (what current clients send), falling back to v0 when the broker answers
    /// UNSUPPORTED_VERSION. Returns the supported ranges.
    pub async fn api_versions(&mut self) -> Result<Vec<ApiRange>, WireError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kgate-doctor"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        self.send(&request, 3).await?;
        let mut body = self.receive_body("ApiVersions").await?;
        // An unsupported ApiVersions version is answered in v0 format (KIP-511): peek the error code.
        let version = if body.len() >= 6 && i16::from_be_bytes([body[4], body[5]]) == UNSUPPORTED_VERSION {
            0
        } else {
            3
        };
        let response: ApiVersionsResponse = decode::<ApiVersionsRequest>(&mut body, version)?;
        let response = if version == 0 {
            self.send(&ApiVersionsRequest::default(), 0).await?;
            let mut body = self.receive_body("ApiVersions").await?;
            decode::<ApiVersionsRequest>(&mut body, 0)?
        } else {
            response
        };
        if response.error_code != 0 {
            return Err(WireError::Garbled(format!(
                "ApiVersions error code {}",
                response.error_code
            )));
        }
        Ok(response
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect())
    }

    /// SaslHandshake: (error code, the enabled mechanisms the broker lists).
    pub async fn sasl_handshake(&mut self, version: i16, mechanism: &str) -> Result<(i16, Vec<String>), WireError> {
        let request = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.to_string()));
        self.send(&request, version).await?;
        let mut body = self.receive_body("SaslHandshake").await?;
        let response: SaslHandshakeResponse = decode::<SaslHandshakeRequest>(&mut body, version)?;
        Ok((
            response.error_code,
            response.mechanisms.iter().map(|m| m.to_string()).collect(),
        ))
    }

    /// SaslAuthenticate: (error code, error message, auth bytes).
    pub async fn sasl_authenticate(
        &mut self,
        version: i16,
        token: &[u8],
    ) -> Result<(i16, Option<String>, Vec<u8>), WireError> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
        self.send(&request, version).await?;
        let mut body = self.receive_body("SaslAuthenticate").await?;
        let response: SaslAuthenticateResponse = decode::<SaslAuthenticateRequest>(&mut body, version)?;
        Ok((
            response.error_code,
            response.error_message.map(|m| m.to_string()),
            response.auth_bytes.to_vec(),
        ))
    }

    async fn send<Req: Encodable + Request>(&mut self, request: &Req, version: i16) -> Result<(), WireError> {
        let key = ApiKey::try_from(Req::KEY).map_err(|_| WireError::Io("unknown api key".into()))?;
        let header = RequestHeader::default()
            .with_request_api_key(Req::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.next_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        self.next_id += 1;
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| WireError::Io(format!("encode header: {e}")))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| WireError::Io(format!("encode {key:?}: {e}")))?;
        let mut framed = BytesMut::with_capacity(buf.len() + 4);
        framed.put_i32(buf.len() as i32);
        framed.put_slice(&buf);
        match tokio::time::timeout(self.timeout, self.stream.write_all(&framed)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if is_closed(&e) => Err(WireError::Closed),
            Ok(Err(e)) => Err(WireError::Io(e.to_string())),
            Err(_) => Err(WireError::Timeout("the request write")),
        }
    }

    /// One response frame, without the correlation id check (one request in flight), header
    /// left in place for `decode`.
    async fn receive_body(&mut self, what: &'static str) -> Result<Bytes, WireError> {
        let read = async {
            let mut size = [0u8; 4];
            self.stream.read_exact(&mut size).await?;
            let size = i32::from_be_bytes(size);
            if size < 4 || size as usize > MAX_RESPONSE {
                return Ok(Err(WireError::Garbled(format!(
                    "response size {size} (first bytes {:02x?})",
                    size.to_be_bytes()
                ))));
            }
            let mut body = vec![0u8; size as usize];
            self.stream.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(Ok(Bytes::from(body)))
        };
        match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) if is_closed(&e) => Err(WireError::Closed),
            Ok(Err(e)) => Err(WireError::Io(e.to_string())),
            Err(_) => Err(WireError::Timeout(what)),
        }
    }
}

fn decode<Req: Request>(body: &mut Bytes, version: i16) -> Result<Req::Response, WireError>
where
    Req::Response: Decodable,
{
    let key = ApiKey::try_from(Req::KEY).map_err(|_| WireError::Garbled("unknown api key".into()))?;
    ResponseHeader::decode(body, key.response_header_version(version))
        .map_err(|e| WireError::Garbled(format!("{key:?} response header: {e}")))?;
    let response =
        Req::Response::decode(body, version).map_err(|e| WireError::Garbled(format!("{key:?} v{version}: {e}")))?;
    if body.has_remaining() {
        return Err(WireError::Garbled(format!(
            "{} trailing bytes after {key:?}",
            body.remaining()
        )));
    }
    Ok(response)
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionAborted
    )
}

/// The highest version both sides support, if any.
pub fn negotiate(ranges: &[ApiRange], key: ApiKey, ours: (i16, i16)) -> Option<i16> {
    let (_, min, max) = ranges.iter().find(|(k, _, _)| *k == key as i16)?;
    let high = (*max).min(ours.1);
    (high >= (*min).max(ours.0)).then_some(high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A fake broker answering one ApiVersions v3 and one SaslHandshake v1 that refuses GSSAPI.
    async fn fake_broker(listener: TcpListener) {
        let (mut s, _) = listener.accept().await.expect("accept");
        for _ in 0..2 {
            let mut size = [0u8; 4];
            s.read_exact(&mut size).await.expect("size");
            let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
            s.read_exact(&mut body).await.expect("body");
            let mut b = Bytes::from(body);
            let key = i16::from_be_bytes([b[0], b[1]]);
            let version = i16::from_be_bytes([b[2], b[3]]);
            let api = ApiKey::try_from(key).expect("key");
            let header = RequestHeader::decode(&mut b, api.request_header_version(version)).expect("header");
            let mut out = BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut out, api.response_header_version(version))
                .expect("encode");
            if api == ApiKey::ApiVersions {
                let keys = [(18, 0, 3), (17, 0, 1), (36, 0, 2)]
                    .iter()
                    .map(|(k, lo, hi)| {
                        kafka_protocol::messages::api_versions_response::ApiVersion::default()
                            .with_api_key(*k)
                            .with_min_version(*lo)
                            .with_max_version(*hi)
                    })
                    .collect();
                ApiVersionsResponse::default()
                    .with_api_keys(keys)
                    .encode(&mut out, version)
                    .expect("encode");
            } else {
                SaslHandshakeResponse::default()
                    .with_error_code(UNSUPPORTED_SASL_MECHANISM)
                    .with_mechanisms(vec![StrBytes::from_static_str("SCRAM-SHA-512")])
                    .encode(&mut out, version)
                    .expect("encode");
            }
            let mut framed = BytesMut::new();
            framed.put_i32(out.len() as i32);
            framed.put_slice(&out);
            s.write_all(&framed).await.expect("write");
        }
    }

    #[tokio::test]
    async fn api_versions_and_a_refused_mechanism() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(fake_broker(listener));
        let (mut conn, used) = KafkaConn::connect(&[addr], Duration::from_secs(5))
            .await
            .expect("connect");
        assert_eq!(used, addr);
        let ranges = conn.api_versions().await.expect("api versions");
        assert_eq!(negotiate(&ranges, ApiKey::SaslHandshake, (1, 1)), Some(1));
        assert_eq!(negotiate(&ranges, ApiKey::SaslAuthenticate, (0, 2)), Some(2));
        assert_eq!(negotiate(&ranges, ApiKey::Produce, (0, 9)), None);
        let (code, mechanisms) = conn.sasl_handshake(1, "GSSAPI").await.expect("handshake");
        assert_eq!(code, UNSUPPORTED_SASL_MECHANISM);
        assert_eq!(mechanisms, vec!["SCRAM-SHA-512".to_string()]);
        server.await.expect("server");
        assert_eq!(conn.sasl_authenticate(2, b"x").await, Err(WireError::Closed));
    }

    #[tokio::test]
    async fn closed_port_and_non_kafka_answers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let e = KafkaConn::connect(&[addr], Duration::from_secs(2))
            .await
            .err()
            .expect("refused");
        assert!(e.contains(&addr.to_string()), "{e}");

        // Something that answers with a TLS alert-like blob.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50]).await;
        });
        let (mut conn, _) = KafkaConn::connect(&[addr], Duration::from_secs(2))
            .await
            .expect("connect");
        let e = conn.api_versions().await.expect_err("garbage");
        assert!(matches!(e, WireError::Garbled(_)), "{e:?}");
    }
}
