//! The SASL state machine driven in memory through a whole session (tokio duplex), with the real
//! PLAIN and SCRAM mechanisms and credential store.
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, RequestHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

use super::auth::AuthSettings;
use super::*;
use crate::backend::Reply;
use crate::config::{ListenerConfig, SecurityProtocol};
use crate::error::RequestError;
use crate::protocol::VersionTable;
use crate::security::credentials::{CredentialStore, ScramMechanism};

/// Answers Metadata with the principal the session attached to the request.
struct PrincipalEcho {
    versions: VersionTable,
}

#[async_trait]
impl Backend for PrincipalEcho {
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
impl crate::backend::ServesInOrder for PrincipalEcho {
    async fn handle(
        &self,
        ctx: &RequestContext,
        request: crate::protocol::RequestFrame,
    ) -> Result<Reply, RequestError> {
        match request.api_key {
            ApiKey::Metadata => Ok(Reply::Body(BytesMut::from(ctx.principal.as_bytes()))),
            other => Err(RequestError::Unsupported { api_key: other }),
        }
    }
}

struct Harness {
    client: DuplexStream,
    task: tokio::task::JoinHandle<SessionEnd>,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
    store: Arc<CredentialStore>,
    next_id: i32,
}

const DELAY: Duration = Duration::from_millis(100);

fn start(protocol: SecurityProtocol, reauth_ms: i64) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = CredentialStore::open(&dir.path().join("users.toml")).unwrap();
    for user in ["alice", "bob"] {
        store
            .upsert_password(user, ScramMechanism::Sha256, 4096, &format!("{user}-secret"))
            .unwrap();
    }
    let auth = AuthSettings {
        listener: "SECURE".into(),
        protocol,
        mechanisms: vec!["PLAIN".into(), "SCRAM-SHA-256".into()],
        credentials: store.clone(),
        failed_authentication_delay: DELAY,
        max_receive_size: 4096,
        max_reauth_ms: reauth_ms,
        gssapi: None,
    };
    let backend = Arc::new(PrincipalEcho {
        versions: VersionTable::from_rows(&[(ApiKey::ApiVersions, 0, 3), (ApiKey::Metadata, 0, 12)]),
    });
    let settings = Arc::new(SessionSettings::new(
        &*backend,
        1 << 20,
        Arc::new(auth),
        Arc::new(vec!["User:alice".to_string()]),
        None,
    ));
    let (client, server) = tokio::io::duplex(1 << 20);
    let ctx = RequestContext {
        connection_id: 1,
        listener: Arc::new(ListenerConfig::default()),
        client_addr: "127.0.0.1:5555".parse().unwrap(),
        principal: "User:ANONYMOUS".into(),
        target_node: None,
    };
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(Session::new(server, ctx, backend, settings).run(stop_rx));
    Harness {
        client,
        task,
        _stop: stop,
        _dir: dir,
        store,
        next_id: 1,
    }
}

impl Harness {
    async fn send<M: Encodable>(&mut self, key: ApiKey, version: i16, body: &M) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, key.request_header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        self.send_raw(&buf).await;
        id
    }

    async fn send_raw(&mut self, payload: &[u8]) {
        let mut framed = (payload.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(payload);
        self.client.write_all(&framed).await.unwrap();
    }

    async fn receive_raw(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), self.client.read_exact(&mut size))
            .await
            .ok()?
            .ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.client.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    async fn receive<M: Decodable>(&mut self, key: ApiKey, version: i16, id: i32) -> M {
        let mut frame = self.receive_raw().await.expect("a response");
        assert_eq!(frame.get_i32(), id, "correlation id");
        if key.response_header_version(version) >= 1 {
            frame.advance(1);
        }
        M::decode(&mut frame, version).unwrap()
    }

    async fn call<Req: Encodable, Resp: Decodable>(&mut self, key: ApiKey, version: i16, body: &Req) -> Resp {
        let id = self.send(key, version, body).await;
        self.receive(key, version, id).await
    }

    async fn handshake(&mut self, mechanism: &str, version: i16) -> SaslHandshakeResponse {
        let req = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into()));
        self.call(ApiKey::SaslHandshake, version, &req).await
    }

    async fn authenticate(&mut self, token: &[u8], version: i16) -> SaslAuthenticateResponse {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
        self.call(ApiKey::SaslAuthenticate, version, &req).await
    }

    /// Metadata answered with the principal, or None when the connection closed instead.
    async fn whoami(&mut self) -> Option<String> {
        let id = self.send(ApiKey::Metadata, 1, &MetadataRequest::default()).await;
        let mut frame = self.receive_raw().await?;
        assert_eq!(frame.get_i32(), id);
        Some(String::from_utf8(frame.to_vec()).unwrap())
    }

    async fn expect_closed(mut self) -> SessionEnd {
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), self.client.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0, "expected a close without further bytes");
        self.task.await.unwrap()
    }
}

fn plain(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

#[tokio::test]
async fn plain_over_sasl_authenticate_sets_the_principal() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 0);
    let versions: ApiVersionsResponse = h
        .call(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        )
        .await;
    assert!(versions.api_keys.iter().any(|k| k.api_key == 36 && k.max_version == 2));
    let hs = h.handshake("PLAIN", 1).await;
    assert_eq!(hs.error_code, 0);
    let enabled: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(enabled, vec!["PLAIN", "SCRAM-SHA-256"]);
    let auth = h.authenticate(&plain("alice", "alice-secret"), 2).await;
    assert_eq!((auth.error_code, auth.session_lifetime_ms), (0, 0));
    assert_eq!(h.whoami().await.as_deref(), Some("User:alice"));
    // After authentication SASL requests are refused like KafkaApis does, and the connection stays.
    assert_eq!(h.handshake("PLAIN", 1).await.error_code, 34);
    assert_eq!(h.authenticate(b"x", 2).await.error_code, 34);
    assert_eq!(h.whoami().await.as_deref(), Some("User:alice"));
}

#[tokio::test]
async fn wrong_password_answers_after_the_delay_then_closes() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 0);
    assert_eq!(h.handshake("PLAIN", 1).await.error_code, 0);
    let started = Instant::now();
    let auth = h.authenticate(&plain("alice", "wrong"), 1).await;
    assert!(started.elapsed() >= DELAY, "the failure must be delayed");
    assert_eq!(auth.error_code, 58);
    assert_eq!(
        auth.error_message.as_ref().map(|m| m.as_str()),
        Some("Authentication failed: Invalid username or password")
    );
    assert_eq!(h.expect_closed().await, SessionEnd::AuthenticationFailed);
}

#[tokio::test]
async fn unknown_mechanism_lists_the_enabled_ones_and_closes() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 0);
    let started = Instant::now();
    let hs = h.handshake("GSSAPI", 1).await;
    assert!(started.elapsed() >= DELAY);
    assert_eq!(hs.error_code, 33);
    assert_eq!(hs.mechanisms.len(), 2);
    // Mechanism names are matched exactly, as Kafka does.
    let mut h2 = start(SecurityProtocol::SaslPlaintext, 0);
    assert_eq!(h2.handshake("plain", 1).await.error_code, 33);
    assert_eq!(h.expect_closed().await, SessionEnd::AuthenticationFailed);
}

#[tokio::test]
async fn requests_before_authentication_close_without_answer() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 0);
    let started = Instant::now();
    assert_eq!(h.whoami().await, None);
    assert!(started.elapsed() >= DELAY);
    assert_eq!(h.expect_closed().await, SessionEnd::AuthenticationFailed);
    // Also after the handshake, before the token exchange finished.
    let mut h = start(SecurityProtocol::SaslPlaintext, 0);
    assert_eq!(h.handshake("PLAIN", 1).await.error_code, 0);
    assert_eq!(h.whoami().await, None);
}

#[tokio::test]
async fn api_versions_only_once_but_retry_after_an_error_answer() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 0);
    let bad: ApiVersionsResponse = {
        // A version the codec cannot encode: header only (v2, as a client of a newer Kafka sends
        // for ApiVersions v3+), no body.
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(99)
            .with_correlation_id(77);
        let mut buf = BytesMut::new();
        header.encode(&mut buf, 2).unwrap();
        h.send_raw(&buf).await;
        h.receive(ApiKey::ApiVersions, 0, 77).await
    };
    assert_eq!(bad.error_code, 35);
    let ok: ApiVersionsResponse = h.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default()).await;
    assert_eq!(ok.error_code, 0);
    h.send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default()).await;
    assert_eq!(h.expect_closed().await, SessionEnd::ProtocolViolation);
}

#[tokio::test]
async fn legacy_v0_handshake_exchanges_raw_tokens() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 0);
    assert_eq!(h.handshake("PLAIN", 0).await.error_code, 0);
    h.send_raw(&plain("bob", "bob-secret")).await;
    // PLAIN's empty reply still goes out as a 4-byte zero length.
    assert_eq!(h.receive_raw().await.unwrap().len(), 0);
    assert_eq!(h.whoami().await.as_deref(), Some("User:bob"));
}

#[tokio::test]
async fn legacy_v0_failure_closes_without_an_error() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 0);
    assert_eq!(h.handshake("PLAIN", 0).await.error_code, 0);
    h.send_raw(&plain("bob", "nope")).await;
    assert_eq!(h.expect_closed().await, SessionEnd::AuthenticationFailed);
}

#[tokio::test]
async fn frames_above_the_sasl_receive_size_close_before_authentication() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 0);
    let started = Instant::now();
    h.client.write_all(&5000i32.to_be_bytes()).await.unwrap();
    // An authentication failure: closed after the failed-authentication delay, as Kafka does.
    assert_eq!(h.expect_closed().await, SessionEnd::AuthenticationFailed);
    assert!(started.elapsed() >= DELAY);
}

#[tokio::test]
async fn other_requests_mid_authentication_get_illegal_sasl_state_then_close() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 0);
    assert_eq!(h.handshake("PLAIN", 1).await.error_code, 0);
    let r: ApiVersionsResponse = h.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default()).await;
    assert_eq!((r.error_code, r.api_keys.len()), (34, 0));
    assert_eq!(h.expect_closed().await, SessionEnd::AuthenticationFailed);
}

#[tokio::test]
async fn sasl_requests_on_a_plaintext_listener_get_illegal_sasl_state() {
    let mut h = start(SecurityProtocol::Plaintext, 0);
    assert_eq!(h.handshake("PLAIN", 1).await.error_code, 34);
    assert_eq!(h.whoami().await.as_deref(), Some("User:ANONYMOUS"));
}

#[tokio::test]
async fn expired_sessions_are_closed_and_reauthentication_renews_them() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 1500);
    assert_eq!(h.handshake("PLAIN", 1).await.error_code, 0);
    let auth = h.authenticate(&plain("alice", "alice-secret"), 1).await;
    assert_eq!((auth.error_code, auth.session_lifetime_ms), (0, 1500));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Re-authenticate (same principal) before the end: the session is renewed.
    assert_eq!(h.handshake("PLAIN", 1).await.error_code, 0);
    let again = h.authenticate(&plain("alice", "alice-secret"), 1).await;
    assert_eq!((again.error_code, again.session_lifetime_ms), (0, 1500));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        h.whoami().await.as_deref(),
        Some("User:alice"),
        "renewed session still valid"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Past the renewed expiry: any request other than SaslHandshake closes the connection.
    assert_eq!(h.whoami().await, None);
    assert_eq!(h.expect_closed().await, SessionEnd::ProtocolViolation);
}

#[tokio::test]
async fn reauthentication_cannot_change_the_principal() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 60_000);
    assert_eq!(h.handshake("PLAIN", 1).await.error_code, 0);
    assert_eq!(h.authenticate(&plain("alice", "alice-secret"), 1).await.error_code, 0);
    assert_eq!(h.handshake("PLAIN", 1).await.error_code, 0);
    let auth = h.authenticate(&plain("bob", "bob-secret"), 1).await;
    assert_eq!(auth.error_code, 58);
    assert_eq!(
        auth.error_message.as_ref().map(|m| m.as_str()),
        Some("Cannot change principals during re-authentication from User.alice: User.bob")
    );
    assert_eq!(h.expect_closed().await, SessionEnd::AuthenticationFailed);
}

#[tokio::test]
async fn reauthentication_must_keep_the_mechanism() {
    let mut h = start(SecurityProtocol::SaslPlaintext, 60_000);
    assert_eq!(h.handshake("PLAIN", 1).await.error_code, 0);
    assert_eq!(h.authenticate(&plain("alice", "alice-secret"), 1).await.error_code, 0);
    assert_eq!(h.handshake("SCRAM-SHA-256", 1).await.error_code, 0);
    h.send(ApiKey::SaslAuthenticate, 1, &SaslAuthenticateRequest::default())
        .await;
    assert_eq!(h.expect_closed().await, SessionEnd::ProtocolViolation);
}

#[tokio::test]
async fn many_failed_logins_do_not_delay_another_client() {
    let mut failing = Vec::new();
    for _ in 0..20 {
        let mut h = start(SecurityProtocol::SaslPlaintext, 0);
        failing.push(tokio::spawn(async move {
            h.handshake("PLAIN", 1).await;
            h.authenticate(&plain("alice", "guess"), 1).await.error_code
        }));
    }
    let mut good = start(SecurityProtocol::SaslPlaintext, 0);
    let started = Instant::now();
    assert_eq!(good.handshake("PLAIN", 1).await.error_code, 0);
    assert_eq!(
        good.authenticate(&plain("alice", "alice-secret"), 1).await.error_code,
        0
    );
    assert_eq!(good.whoami().await.as_deref(), Some("User:alice"));
    assert!(
        started.elapsed() < DELAY * 3,
        "a good login waited {:?}",
        started.elapsed()
    );
    for f in failing {
        assert_eq!(f.await.unwrap(), 58);
    }
}

/// SCRAM-SHA-256 end to end through the session, with the client side computed here from RFC 5802.
#[tokio::test]
async fn scram_sha_256_exchange_through_the_session() {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let mut h = start(SecurityProtocol::SaslPlaintext, 0);
    assert_eq!(h.handshake("SCRAM-SHA-256", 1).await.error_code, 0);
    let client_first_bare = "n=alice,r=clientnonce123";
    let first = h.authenticate(format!("n,,{client_first_bare}").as_bytes(), 1).await;
    assert_eq!(first.error_code, 0);
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    let field = |name: &str| {
        server_first
            .split(',')
            .find_map(|f| f.strip_prefix(name))
            .unwrap()
            .to_string()
    };
    let (nonce, salt, iterations) = (field("r="), field("s="), field("i=").parse::<u32>().unwrap());
    assert!(nonce.starts_with("clientnonce123") && nonce.len() > "clientnonce123".len());
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(b"alice-secret", &b64.decode(salt).unwrap(), iterations, &mut salted);
    let hmac = |key: &[u8], data: &[u8]| {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(signature).map(|(a, b)| a ^ b).collect();
    let final_msg = format!("{without_proof},p={}", b64.encode(proof));
    let done = h.authenticate(final_msg.as_bytes(), 1).await;
    assert_eq!(done.error_code, 0, "{:?}", done.error_message);
    let server_key = hmac(&salted, b"Server Key");
    let expected = format!("v={}", b64.encode(hmac(&server_key, auth_message.as_bytes())));
    assert_eq!(String::from_utf8(done.auth_bytes.to_vec()).unwrap(), expected);
    assert_eq!(h.whoami().await.as_deref(), Some("User:alice"));
}

/// Describe/AlterUserScramCredentials: super users (alice here) manage users; others are refused.
#[tokio::test]
async fn scram_credentials_admin_is_for_super_users() {
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use kafka_protocol::messages::{
        AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
        DescribeUserScramCredentialsResponse,
    };
    let describe = DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
        UserName::default().with_name(StrBytes::from_static_str("bob"))
    ]));
    let salted = {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"carol-secret", b"0123456789abcdef", 4096, &mut out);
        out
    };
    let alter = AlterUserScramCredentialsRequest::default().with_upsertions(vec![ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_static_str("carol"))
        .with_mechanism(1)
        .with_iterations(4096)
        .with_salt(Bytes::from_static(b"0123456789abcdef"))
        .with_salted_password(Bytes::copy_from_slice(&salted))]);

    let mut bob = start(SecurityProtocol::SaslPlaintext, 0);
    bob.handshake("PLAIN", 1).await;
    assert_eq!(bob.authenticate(&plain("bob", "bob-secret"), 1).await.error_code, 0);
    let r: DescribeUserScramCredentialsResponse = bob.call(ApiKey::DescribeUserScramCredentials, 0, &describe).await;
    assert_eq!(r.error_code, 31, "CLUSTER_AUTHORIZATION_FAILED");
    let r: AlterUserScramCredentialsResponse = bob.call(ApiKey::AlterUserScramCredentials, 0, &alter).await;
    assert_eq!(r.results[0].error_code, 31);

    let mut alice = start(SecurityProtocol::SaslPlaintext, 0);
    alice.handshake("PLAIN", 1).await;
    assert_eq!(
        alice.authenticate(&plain("alice", "alice-secret"), 1).await.error_code,
        0
    );
    let r: DescribeUserScramCredentialsResponse = alice.call(ApiKey::DescribeUserScramCredentials, 0, &describe).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.results[0].credential_infos[0].iterations, 4096);
    let r: AlterUserScramCredentialsResponse = alice.call(ApiKey::AlterUserScramCredentials, 0, &alter).await;
    assert_eq!(r.results[0].error_code, 0);
    // The credential reached the store: carol can now log in with her password.
    assert!(alice.store.verify_password("carol", "carol-secret"));
    assert!(!bob.store.verify_password("carol", "carol-secret"));
}
