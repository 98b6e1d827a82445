//! Who the client is: Kafka's SaslServerAuthenticator state machine (see KAFKA_SEMANTICS.md §1),
//! without I/O. The session hands every frame to `on_frame` and acts on the outcome.
//!
//! Invariants that must stay true:
//! - On a SASL listener nothing but ApiVersions (once) and SaslHandshake/SaslAuthenticate is served
//!   before authentication completes; anything else closes the connection without a response.
//! - Failures that Kafka delays (`connection.failed.authentication.delay.ms`) are returned as
//!   `Fail`, which the session sleeps on in its own task, so no other connection waits.
//! - Nothing derived from a client token (passwords, proofs) is logged; mechanisms give a
//!   `log_reason` that is safe to log.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tracing::info;

use super::api_versions;
use crate::config::SecurityProtocol;
use crate::protocol::{decode_request_header, encode_response, encode_response_body, RequestFrame, VersionTable};
use crate::security::credentials::CredentialStore;
use crate::security::mechanism::{new_server, FailureKind, SaslFailure, SaslServer, SaslStep};

/// Per-listener authentication settings.
pub struct AuthSettings {
    pub listener: String,
    pub protocol: SecurityProtocol,
    /// sasl.enabled.mechanisms, matched exactly (case-sensitive) as Kafka does.
    pub mechanisms: Vec<String>,
    pub credentials: Arc<CredentialStore>,
    pub failed_authentication_delay: Duration,
    /// sasl.server.max.receive.size
    pub max_receive_size: usize,
    /// connections.max.reauth.ms (0: sessions do not expire)
    pub max_reauth_ms: i64,
    /// Makes GSSAPI servers for this listener (its acceptor principal and short-name rules);
    /// None when the listener does not enable GSSAPI.
    pub gssapi: Option<GssapiFactory>,
}

pub type GssapiFactory = Arc<dyn Fn() -> Box<dyn SaslServer> + Send + Sync>;

impl AuthSettings {
    pub fn is_sasl(&self) -> bool {
        matches!(
            self.protocol,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// A server for an enabled mechanism (exact, case-sensitive match as in Kafka).
    fn new_server(&self, mechanism: &str) -> Option<Box<dyn SaslServer>> {
        if !self.mechanisms.iter().any(|m| m == mechanism) {
            return None;
        }
        if mechanism == "GSSAPI" {
            return self.gssapi.as_ref().map(|make| make());
        }
        new_server(mechanism, self.credentials.clone())
    }
}

/// What the session must do with a frame.
pub enum AuthOutcome {
    /// An ordinary request from an authenticated client: serve it.
    Forward(RequestFrame),
    /// Send this (complete) response frame and carry on.
    Reply(BytesMut),
    /// Authentication failed: wait the failed-authentication delay, send `reply` if any, close.
    Fail { reply: Option<BytesMut>, reason: String },
    /// Close at once, without a response.
    Close(String),
}

enum State {
    /// Not a SASL listener: the principal was fixed when the connection was accepted.
    Open,
    /// SASL: ApiVersions (once) or SaslHandshake.
    HandshakeOrVersions,
    /// SASL: ApiVersions answered; SaslHandshake next.
    Handshake,
    /// Tokens arrive raw (SaslHandshake v0) or wrapped in SaslAuthenticate (v1).
    Authenticate {
        server: Box<dyn SaslServer>,
        raw: bool,
    },
    Complete,
    /// KIP-368 re-authentication in progress; `server` is None when the client asked for another
    /// mechanism, which fails on the next token.
    Reauthenticate {
        server: Option<Box<dyn SaslServer>>,
        requested: String,
    },
}

pub struct Authenticator {
    settings: Arc<AuthSettings>,
    client: SocketAddr,
    state: State,
    principal: String,
    mechanism: String,
    session_expiry: Option<Instant>,
    reauth_started: Option<Instant>,
    /// The legacy GSSAPI framing is recognised on the very first packet only.
    first_packet: bool,
}

const REAUTH_MIN_INTERVAL: Duration = Duration::from_secs(1);

impl Authenticator {
    /// `fixed_principal` is the principal of non-SASL listeners (ANONYMOUS, or the mapped
    /// certificate name on SSL) and the placeholder while a SASL client authenticates.
    pub fn new(settings: Arc<AuthSettings>, client: SocketAddr, fixed_principal: String) -> Authenticator {
        let state = if settings.is_sasl() {
            State::HandshakeOrVersions
        } else {
            State::Open
        };
        Authenticator {
            settings,
            client,
            state,
            principal: fixed_principal,
            mechanism: String::new(),
            session_expiry: None,
            reauth_started: None,
            first_packet: true,
        }
    }

    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// True while a SASL exchange is under way: its steps may burn CPU (PBKDF2 for PLAIN), so the
    /// session runs them on the blocking pool.
    pub fn is_exchanging(&self) -> bool {
        matches!(self.state, State::Authenticate { .. } | State::Reauthenticate { .. })
    }

    /// True until a SASL client's first authentication completes.
    pub fn is_authenticating(&self) -> bool {
        matches!(
            self.state,
            State::HandshakeOrVersions | State::Handshake | State::Authenticate { .. }
        )
    }

    /// The largest frame accepted now: sasl.server.max.receive.size until the first
    /// authentication completes.
    pub fn max_frame_size(&self, normal: usize) -> usize {
        if self.is_authenticating() {
            self.settings.max_receive_size.min(normal)
        } else {
            normal
        }
    }

    pub fn on_frame(&mut self, frame: Bytes, versions: &VersionTable, now: Instant) -> AuthOutcome {
        if let State::Authenticate { raw: true, .. } = self.state {
            return self.raw_token(&frame);
        }
        let first_packet = std::mem::replace(&mut self.first_packet, false);
        let request = match decode_request_header(frame.clone()) {
            Ok(r) => r,
            Err(e) if first_packet && matches!(self.state, State::HandshakeOrVersions) => {
                // Kafka 0.9 clients start GSSAPI with a raw token, no Kafka header (SaslServerAuthenticator's
                // INITIAL_REQUEST state).
                return match self.settings.new_server("GSSAPI") {
                    Some(server) => {
                        self.state = State::Authenticate { server, raw: true };
                        self.raw_token(&frame)
                    }
                    None => AuthOutcome::Close(format!(
                        "Exception handling first SASL packet from client, GSSAPI is not supported by server ({e})"
                    )),
                };
            }
            Err(e) => return AuthOutcome::Close(e.to_string()),
        };
        match std::mem::replace(&mut self.state, State::Complete) {
            State::Open => {
                self.state = State::Open;
                self.after_authentication(request, now)
            }
            State::Complete => self.after_authentication(request, now),
            s @ (State::HandshakeOrVersions | State::Handshake) => self.handshake_phase(s, request, versions),
            State::Authenticate { server, raw } => self.authenticate(server, raw, request, versions, now),
            State::Reauthenticate { server, requested } => {
                self.reauthenticate(server, requested, request, versions, now)
            }
        }
    }

    fn handshake_phase(&mut self, state: State, request: RequestFrame, versions: &VersionTable) -> AuthOutcome {
        match request.api_key {
            ApiKey::ApiVersions => {
                if matches!(state, State::Handshake) {
                    return AuthOutcome::Close("ApiVersions sent twice during SASL authentication".into());
                }
                match api_versions::answer(versions, &request) {
                    Ok(a) => {
                        // After an error answer the client may retry with a lower version.
                        self.state = if a.accepted {
                            State::Handshake
                        } else {
                            State::HandshakeOrVersions
                        };
                        AuthOutcome::Reply(a.frame)
                    }
                    Err(e) => AuthOutcome::Close(e),
                }
            }
            ApiKey::SaslHandshake => {
                let Some(req) = decode_versioned::<SaslHandshakeRequest>(&request, versions) else {
                    return AuthOutcome::Close(format!("unsupported or malformed SaslHandshake v{}", request.version));
                };
                let mechanism = req.mechanism.as_str();
                match self.start_mechanism(mechanism) {
                    Some(server) => {
                        self.state = State::Authenticate {
                            server,
                            raw: request.version == 0,
                        };
                        self.reply(&request, &self.handshake_response(0))
                    }
                    None => AuthOutcome::Fail {
                        reply: Some(self.encode(
                            &request,
                            &self.handshake_response(ResponseError::UnsupportedSaslMechanism.code()),
                        )),
                        reason: format!(
                            "Unsupported SASL mechanism {mechanism}: the listener enables {:?}",
                            self.settings.mechanisms
                        ),
                    },
                }
            }
            other => AuthOutcome::Fail {
                reply: None,
                reason: format!("Unexpected Kafka request of type {other:?} during SASL handshake."),
            },
        }
    }

    fn start_mechanism(&self, mechanism: &str) -> Option<Box<dyn SaslServer>> {
        self.settings.new_server(mechanism)
    }

    fn handshake_response(&self, error_code: i16) -> SaslHandshakeResponse {
        let mechanisms = self
            .settings
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        SaslHandshakeResponse::default()
            .with_error_code(error_code)
            .with_mechanisms(mechanisms)
    }

    fn raw_token(&mut self, token: &[u8]) -> AuthOutcome {
        let State::Authenticate { mut server, .. } = std::mem::replace(&mut self.state, State::Complete) else {
            return AuthOutcome::Close("internal: raw token outside authentication".into());
        };
        match server.step(token) {
            Ok(SaslStep::Challenge(reply)) => {
                self.state = State::Authenticate { server, raw: true };
                AuthOutcome::Reply(raw_frame(&reply))
            }
            Ok(SaslStep::Complete { reply, user }) => {
                // Legacy clients cannot re-authenticate; the session still expires (Kafka records it too).
                self.complete(&*server, user, Instant::now(), false);
                // Kafka sends a raw reply whenever the SASL server returns one: PLAIN returns an
                // empty one (a zero length goes out), GSSAPI's last step returns none (nothing goes out).
                if reply.is_empty() && server.mechanism() == "GSSAPI" {
                    AuthOutcome::Reply(BytesMut::new())
                } else {
                    AuthOutcome::Reply(raw_frame(&reply))
                }
            }
            // v0 framing has no error field: the connection is just closed.
            Err(f) => AuthOutcome::Fail {
                reply: None,
                reason: failure_reason(&f),
            },
        }
    }

    fn authenticate(
        &mut self,
        mut server: Box<dyn SaslServer>,
        raw: bool,
        request: RequestFrame,
        versions: &VersionTable,
        now: Instant,
    ) -> AuthOutcome {
        if request.api_key != ApiKey::SaslAuthenticate {
            // Kafka answers with that request's own error response (ILLEGAL_SASL_STATE), then closes.
            let illegal = ResponseError::IllegalSaslState.code();
            let reply = match request.api_key {
                ApiKey::SaslHandshake => Some(self.encode(&request, &self.handshake_response(illegal))),
                ApiKey::ApiVersions if versions.supports(ApiKey::ApiVersions, request.version) => Some(self.encode(
                    &request,
                    &kafka_protocol::messages::ApiVersionsResponse::default().with_error_code(illegal),
                )),
                _ => None,
            };
            return AuthOutcome::Fail {
                reply,
                reason: format!(
                    "Unexpected Kafka request of type {:?} during SASL authentication",
                    request.api_key
                ),
            };
        }
        let Some(req) = decode_versioned::<SaslAuthenticateRequest>(&request, versions) else {
            return AuthOutcome::Close(format!(
                "unsupported or malformed SaslAuthenticate v{}",
                request.version
            ));
        };
        match server.step(&req.auth_bytes) {
            Ok(SaslStep::Challenge(token)) => {
                self.state = State::Authenticate { server, raw };
                self.reply(
                    &request,
                    &SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(token)),
                )
            }
            Ok(SaslStep::Complete { reply, user }) => {
                let lifetime = self.complete(&*server, user, now, false);
                let response = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(reply));
                self.reply(&request, &with_lifetime(response, lifetime, request.version))
            }
            Err(f) => self.failed(&request, f, false),
        }
    }

    /// An authenticated connection: ordinary requests go through; SASL requests are refused as
    /// KafkaApis refuses them, except a SaslHandshake that starts a KIP-368 re-authentication.
    fn after_authentication(&mut self, request: RequestFrame, now: Instant) -> AuthOutcome {
        let expired = self.session_expiry.is_some_and(|e| now >= e);
        match request.api_key {
            ApiKey::SaslHandshake if self.can_reauthenticate(now) => {
                let Some(req) = decode_versioned::<SaslHandshakeRequest>(&request, &sasl_versions()) else {
                    return AuthOutcome::Close(format!("unsupported or malformed SaslHandshake v{}", request.version));
                };
                let requested = req.mechanism.as_str().to_string();
                if !self.settings.mechanisms.contains(&requested) {
                    return AuthOutcome::Fail {
                        reply: Some(self.encode(&request, &self.handshake_response(ResponseError::UnsupportedSaslMechanism.code()))),
                        reason: format!("Unsupported SASL mechanism {requested} for re-authentication"),
                    };
                }
                let server = (requested == self.mechanism).then(|| self.settings.new_server(&requested)).flatten();
                self.reauth_started = Some(now);
                self.state = State::Reauthenticate { server, requested };
                self.reply(&request, &self.handshake_response(0))
            }
            _ if expired => AuthOutcome::Close(format!(
                "Disconnecting expired channel: the session of {} ended (connections_max_reauth_ms) and the client did not re-authenticate",
                self.principal
            )),
            ApiKey::SaslHandshake => self.reply(&request, &self.handshake_response(ResponseError::IllegalSaslState.code())),
            ApiKey::SaslAuthenticate => self.reply(
                &request,
                &SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate request received after successful authentication",
                    ))),
            ),
            _ => AuthOutcome::Forward(request),
        }
    }

    fn can_reauthenticate(&self, now: Instant) -> bool {
        self.session_expiry.is_some()
            && self
                .reauth_started
                .is_none_or(|t| now.duration_since(t) >= REAUTH_MIN_INTERVAL)
    }

    fn reauthenticate(
        &mut self,
        server: Option<Box<dyn SaslServer>>,
        requested: String,
        request: RequestFrame,
        versions: &VersionTable,
        now: Instant,
    ) -> AuthOutcome {
        if request.api_key != ApiKey::SaslAuthenticate {
            return AuthOutcome::Close(format!(
                "Unexpected Kafka request of type {:?} during re-authentication",
                request.api_key
            ));
        }
        let Some(mut server) = server else {
            return AuthOutcome::Close(format!(
                "SASL mechanism '{requested}' requested by client is not supported for re-authentication of mechanism '{}'",
                self.mechanism
            ));
        };
        let Some(req) = decode_versioned::<SaslAuthenticateRequest>(&request, versions) else {
            return AuthOutcome::Close(format!(
                "unsupported or malformed SaslAuthenticate v{}",
                request.version
            ));
        };
        match server.step(&req.auth_bytes) {
            Ok(SaslStep::Challenge(token)) => {
                self.state = State::Reauthenticate {
                    server: Some(server),
                    requested,
                };
                self.reply(
                    &request,
                    &SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(token)),
                )
            }
            Ok(SaslStep::Complete { reply, user }) => {
                let principal = format!("User:{user}");
                if principal != self.principal {
                    // Kafka prints the principals as type.name here (SaslServerAuthenticator).
                    let message = format!(
                        "Cannot change principals during re-authentication from {}: {}",
                        self.principal.replacen(':', ".", 1),
                        principal.replacen(':', ".", 1)
                    );
                    let reply = self.encode(&request, &authentication_failed(&message));
                    return AuthOutcome::Fail {
                        reply: Some(reply),
                        reason: message,
                    };
                }
                let lifetime = self.complete(&*server, user, now, true);
                let response = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(reply));
                self.reply(&request, &with_lifetime(response, lifetime, request.version))
            }
            Err(f) => self.failed(&request, f, true),
        }
    }

    /// Records a completed authentication; returns the session lifetime (0: none).
    fn complete(&mut self, server: &dyn SaslServer, user: String, now: Instant, reauth: bool) -> i64 {
        let mechanism = server.mechanism();
        self.principal = format!("User:{user}");
        self.mechanism = mechanism.to_string();
        self.state = State::Complete;
        let lifetime = self.settings.max_reauth_ms.max(0);
        self.session_expiry = (lifetime > 0).then(|| now + Duration::from_millis(lifetime as u64));
        match server.authenticated_identity() {
            Some(identity) => info!(
                principal = %self.principal, %identity, mechanism, listener = %self.settings.listener,
                client = %self.client, reauthentication = reauth, session_lifetime_ms = lifetime, "authenticated"
            ),
            None => info!(
                principal = %self.principal, mechanism, listener = %self.settings.listener, client = %self.client,
                reauthentication = reauth, session_lifetime_ms = lifetime, "authenticated"
            ),
        }
        lifetime
    }

    /// A failed SaslAuthenticate: Kafka's SASL_AUTHENTICATION_FAILED with the message Kafka would
    /// send, or no response where Kafka closes without one.
    fn failed(&self, request: &RequestFrame, f: SaslFailure, reauthenticating: bool) -> AuthOutcome {
        let reply = (f.kind != FailureKind::NoResponse)
            .then(|| self.encode(request, &authentication_failed(&f.client_message_for(reauthenticating))));
        AuthOutcome::Fail {
            reply,
            reason: failure_reason(&f),
        }
    }

    fn reply<M: Encodable>(&self, request: &RequestFrame, response: &M) -> AuthOutcome {
        AuthOutcome::Reply(self.encode(request, response))
    }

    fn encode<M: Encodable>(&self, request: &RequestFrame, response: &M) -> BytesMut {
        match encode_response_body(response, request.version) {
            Ok(body) => encode_response(request.correlation_id(), request.api_key, request.version, &body),
            // Only a bug can get here (a field set that the version lacks): fail loudly in logs,
            // and the client sees a closed connection.
            Err(e) => {
                tracing::error!("cannot encode {:?} v{}: {e}", request.api_key, request.version);
                BytesMut::new()
            }
        }
    }
}

/// The SASL apis and versions the session itself serves, on every listener (as Kafka lists them).
pub fn sasl_versions() -> VersionTable {
    VersionTable::from_rows(&[(ApiKey::SaslHandshake, 0, 1), (ApiKey::SaslAuthenticate, 0, 2)])
}

fn failure_reason(f: &SaslFailure) -> String {
    format!("mechanism {}: {}", f.mechanism, f.log_reason)
}

fn decode_versioned<M: Decodable>(request: &RequestFrame, versions: &VersionTable) -> Option<M> {
    if !versions.supports(request.api_key, request.version) {
        return None;
    }
    M::decode(&mut request.body.clone(), request.version).ok()
}

fn authentication_failed(message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

fn with_lifetime(response: SaslAuthenticateResponse, lifetime_ms: i64, version: i16) -> SaslAuthenticateResponse {
    // SessionLifetimeMs exists from v1 on.
    if version >= 1 {
        response.with_session_lifetime_ms(lifetime_ms)
    } else {
        response
    }
}

/// A raw (SaslHandshake v0) token: a size prefix and the bytes, no Kafka header.
fn raw_frame(token: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(4 + token.len());
    out.put_i32(token.len() as i32);
    out.put_slice(token);
    out
}
