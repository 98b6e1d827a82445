//! Session state machine driven in memory (tokio duplex), against a scripted backend.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

use super::*;
use crate::backend::Reply;
use crate::config::ListenerConfig;
use crate::error::RequestError;
use crate::protocol::VersionTable;

/// Answers Metadata with its correlation id as body after a delay that shrinks with later
/// requests (so a reordering session would show), and Produce with no response.
struct ScriptedBackend {
    versions: VersionTable,
}

#[async_trait]
impl Backend for ScriptedBackend {
    fn versions(&self) -> &VersionTable {
        &self.versions
    }

    fn connect(self: Arc<Self>, _ctx: &RequestContext) -> Box<dyn crate::backend::BackendConnection> {
        Box::new(crate::backend::InOrderConnection(self))
    }

    fn broker_ids(&self) -> tokio::sync::watch::Receiver<Vec<i32>> {
        tokio::sync::watch::channel(vec![0]).1
    }

    async fn shutdown(&self) {}
}

#[async_trait]
impl crate::backend::ServesInOrder for ScriptedBackend {
    async fn handle(
        &self,
        _ctx: &RequestContext,
        request: crate::protocol::RequestFrame,
    ) -> Result<Reply, RequestError> {
        match request.api_key {
            ApiKey::Produce => Ok(Reply::None),
            ApiKey::Metadata => {
                let id = request.correlation_id();
                // Correlation id 99 stands for a long poll that outlasts the test.
                let delay = if id == 99 {
                    30_000
                } else {
                    50u64.saturating_sub(id as u64 * 10)
                };
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let mut body = BytesMut::new();
                body.put_i32(id);
                Ok(Reply::Body(body))
            }
            other => Err(RequestError::Unsupported { api_key: other }),
        }
    }
}

fn start() -> (DuplexStream, tokio::task::JoinHandle<SessionEnd>, watch::Sender<bool>) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let backend = Arc::new(ScriptedBackend {
        versions: VersionTable::from_rows(&[
            (ApiKey::ApiVersions, 0, 3),
            (ApiKey::Metadata, 0, 12),
            (ApiKey::Produce, 3, 9),
        ]),
    });
    let ctx = RequestContext {
        connection_id: 1,
        listener: Arc::new(ListenerConfig::default()),
        client_addr: "127.0.0.1:5555".parse().unwrap(),
        principal: "User:ANONYMOUS".into(),
        target_node: None,
    };
    let (stop, stop_rx) = watch::channel(false);
    let settings = Arc::new(SessionSettings::new(
        &*backend,
        1024,
        Arc::new(plaintext_auth()),
        Arc::new(Vec::new()),
        None,
    ));
    let session = Session::new(server, ctx, backend, settings);
    (client, tokio::spawn(session.run(stop_rx)), stop)
}

fn plaintext_auth() -> AuthSettings {
    AuthSettings {
        listener: "PLAINTEXT".into(),
        protocol: crate::config::SecurityProtocol::Plaintext,
        mechanisms: Vec::new(),
        credentials: crate::security::credentials::CredentialStore::empty(),
        failed_authentication_delay: Duration::from_millis(100),
        max_receive_size: 524_288,
        max_reauth_ms: 0,
        gssapi: None,
    }
}

fn frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("t")));
    let header_version = ApiKey::try_from(api_key)
        .map(|k| k.request_header_version(version))
        .unwrap_or(1);
    let mut buf = BytesMut::new();
    header.encode(&mut buf, header_version).unwrap();
    buf.put_slice(body);
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

async fn read_response(client: &mut DuplexStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    client.read_exact(&mut size).await.ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    client.read_exact(&mut body).await.ok()?;
    Some(Bytes::from(body))
}

async fn expect_closed(client: &mut DuplexStream, task: tokio::task::JoinHandle<SessionEnd>) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "expected a close with no bytes, got {read:?} {rest:?}"
    );
    assert_eq!(task.await.unwrap(), SessionEnd::ProtocolViolation);
}

#[tokio::test]
async fn api_versions_lists_the_backend_table() {
    let (mut client, _task, _stop) = start();
    let mut body = BytesMut::new();
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("kgate-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
        .encode(&mut body, 3)
        .unwrap();
    client.write_all(&frame(18, 3, 7, &body)).await.unwrap();
    let mut resp = read_response(&mut client).await.unwrap();
    assert_eq!(resp.get_i32(), 7); // v0 response header even for v3
    let r = ApiVersionsResponse::decode(&mut resp, 3).unwrap();
    assert_eq!(r.error_code, 0);
    let keys: Vec<(i16, i16, i16)> = r
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    // The backend's apis plus what the session serves itself: SaslHandshake (17) and
    // SaslAuthenticate (36), which Kafka lists on every listener, and Describe/AlterUserScramCredentials (50, 51).
    assert_eq!(
        keys,
        vec![
            (0, 3, 9),
            (3, 0, 12),
            (17, 0, 1),
            (18, 0, 3),
            (36, 0, 2),
            (50, 0, 0),
            (51, 0, 0)
        ]
    );
}

#[tokio::test]
async fn api_versions_with_a_bad_software_name_is_invalid_request() {
    let (mut client, _task, _stop) = start();
    let mut body = BytesMut::new();
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("-bad name"))
        .with_client_software_version(StrBytes::from_static_str("1"))
        .encode(&mut body, 3)
        .unwrap();
    client.write_all(&frame(18, 3, 1, &body)).await.unwrap();
    let mut resp = read_response(&mut client).await.unwrap();
    resp.advance(4);
    assert_eq!(ApiVersionsResponse::decode(&mut resp, 3).unwrap().error_code, 42);
}

#[tokio::test]
async fn unsupported_api_versions_version_gets_a_v0_error_answer() {
    let (mut client, _task, _stop) = start();
    client.write_all(&frame(18, 99, 9, &[])).await.unwrap();
    let mut resp = read_response(&mut client).await.unwrap();
    assert_eq!(resp.get_i32(), 9);
    let r = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert_eq!(r.api_keys.len(), 1);
    assert_eq!(
        (
            r.api_keys[0].api_key,
            r.api_keys[0].min_version,
            r.api_keys[0].max_version
        ),
        (18, 0, 3)
    );
    assert!(!resp.has_remaining());
}

#[tokio::test]
async fn unknown_api_key_closes_without_answer() {
    let (mut client, task, _stop) = start();
    client.write_all(&frame(9999, 0, 1, &[])).await.unwrap();
    expect_closed(&mut client, task).await;
}

#[tokio::test]
async fn unsupported_version_of_another_api_closes() {
    let (mut client, task, _stop) = start();
    client.write_all(&frame(3, 99, 1, &[])).await.unwrap();
    expect_closed(&mut client, task).await;
}

#[tokio::test]
async fn api_not_served_by_the_backend_closes() {
    let (mut client, task, _stop) = start();
    client
        .write_all(&frame(ApiKey::Fetch as i16, 4, 1, &[0; 20]))
        .await
        .unwrap();
    expect_closed(&mut client, task).await;
}

#[tokio::test]
async fn negative_and_oversized_frames_close() {
    let (mut client, task, _stop) = start();
    client.write_all(&(-5i32).to_be_bytes()).await.unwrap();
    expect_closed(&mut client, task).await;
    let (mut client, task, _stop) = start();
    client.write_all(&2048i32.to_be_bytes()).await.unwrap();
    expect_closed(&mut client, task).await;
}

#[tokio::test]
async fn pipelined_responses_keep_request_order_and_skip_no_response_requests() {
    let (mut client, _task, _stop) = start();
    let mut all = Vec::new();
    for id in 0..5 {
        all.extend(frame(3, 1, id, &[0, 0, 0, 0]));
        if id == 2 {
            all.extend(frame(0, 3, 100, &[]));
        }
    }
    client.write_all(&all).await.unwrap();
    for id in 0..5 {
        let mut resp = read_response(&mut client).await.unwrap();
        assert_eq!(resp.get_i32(), id, "header correlation id");
        assert_eq!(resp.get_i32(), id, "body");
    }
}

#[tokio::test]
async fn shutdown_ends_an_idle_session() {
    let (_client, task, stop) = start();
    stop.send(true).unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap(),
        SessionEnd::Shutdown
    );
}

#[tokio::test]
async fn an_answer_is_flushed_while_the_next_one_is_still_pending() {
    // A pipelining client must not wait for answer 1 until answer 2 (a long poll) is ready.
    let (mut client, _task, _stop) = start();
    let mut both = frame(3, 1, 5, &[0, 0, 0, 0]);
    both.extend(frame(3, 1, 99, &[0, 0, 0, 0]));
    client.write_all(&both).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), read_response(&mut client))
        .await
        .expect("answer 1 held back behind the pending answer 2");
    let mut first = first.unwrap();
    assert_eq!(first.get_i32(), 5);
}
