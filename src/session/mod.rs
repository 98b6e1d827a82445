//! One client connection: read a frame, decide, answer, in order.
//!
//! Kafka serves one request per connection at a time (the broker mutes a channel until its
//! response is sent), so requests here are handled strictly in sequence: responses leave in
//! request order by construction. Responses are flushed when no further complete request is
//! already buffered, which batches writes for pipelining clients.
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::backend::{Backend, Reply, RequestContext};
use crate::error::Culprit;
use crate::protocol::frame::holds_complete_frame;
use crate::protocol::{read_frame, response_prefix, FrameError, RequestFrame, VersionTable};

pub mod api_versions;
pub mod auth;
pub mod gateway_apis;

use auth::{AuthOutcome, AuthSettings, Authenticator};

/// Why a session ended; logged once per connection.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    ClientClosed,
    Shutdown,
    /// The client broke the protocol; the reason is already logged.
    ProtocolViolation,
    /// Authentication failed; the reason is already logged.
    AuthenticationFailed,
    /// kgate or its backend failed this connection.
    Failed,
}

/// What every session of one listener shares.
pub struct SessionSettings {
    /// ApiVersions' answer: the backend's apis plus the SASL apis the session serves itself.
    pub versions: VersionTable,
    /// socket.request.max.bytes
    pub max_request_bytes: usize,
    pub auth: Arc<AuthSettings>,
    /// super.users: principals allowed everything.
    pub super_users: Arc<Vec<String>>,
}

impl SessionSettings {
    pub fn new(
        backend: &dyn Backend,
        max_request_bytes: usize,
        auth: Arc<AuthSettings>,
        super_users: Arc<Vec<String>>,
    ) -> SessionSettings {
        let mut versions = backend.versions().clone();
        versions.extend(&auth::sasl_versions());
        versions.extend(&gateway_apis::versions());
        SessionSettings {
            versions,
            max_request_bytes,
            auth,
            super_users,
        }
    }
}

pub struct Session<S> {
    reader: BufReader<tokio::io::ReadHalf<S>>,
    writer: BufWriter<tokio::io::WriteHalf<S>>,
    ctx: RequestContext,
    backend: Arc<dyn Backend>,
    settings: Arc<SessionSettings>,
    auth: Authenticator,
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Session<S> {
    /// `ctx.principal` is the principal until SASL (if any) says otherwise.
    pub fn new(stream: S, ctx: RequestContext, backend: Arc<dyn Backend>, settings: Arc<SessionSettings>) -> Self {
        let (r, w) = tokio::io::split(stream);
        let auth = Authenticator::new(settings.auth.clone(), ctx.client_addr, ctx.principal.clone());
        Session {
            reader: BufReader::with_capacity(64 * 1024, r),
            writer: BufWriter::with_capacity(64 * 1024, w),
            ctx,
            backend,
            settings,
            auth,
        }
    }

    /// Runs until the client leaves, breaks the protocol, or `shutdown` turns true. On shutdown
    /// the request being served is finished and answered first.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> SessionEnd {
        let end = loop {
            if !holds_complete_frame(self.reader.buffer()) {
                if let Err(e) = self.writer.flush().await {
                    debug!(error = %e, "write failed; client gone");
                    break SessionEnd::ClientClosed;
                }
            }
            let limit = self.auth.max_frame_size(self.settings.max_request_bytes);
            let frame = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break SessionEnd::Shutdown,
                frame = read_frame(&mut self.reader, limit) => frame,
            };
            let frame = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => break SessionEnd::ClientClosed,
                Err(FrameError::Io(e)) => {
                    debug!(error = %e, "read failed; client gone");
                    break SessionEnd::ClientClosed;
                }
                Err(e) if self.auth.is_authenticating() => {
                    // Kafka: "Failing SASL authentication due to invalid receive size", closed after the
                    // failed-authentication delay like any other authentication failure.
                    info!(
                        client = %self.ctx.client_addr, listener = %self.ctx.listener.name,
                        "Failed authentication with {} (invalid receive size during SASL authentication: {e})",
                        self.ctx.client_addr.ip()
                    );
                    tokio::time::sleep(self.settings.auth.failed_authentication_delay).await;
                    break SessionEnd::AuthenticationFailed;
                }
                Err(e) => {
                    info!(client = %self.ctx.client_addr, listener = %self.ctx.listener.name, "closing connection: {e}");
                    break SessionEnd::ProtocolViolation;
                }
            };
            let outcome = if self.auth.is_exchanging() {
                match self.exchange_off_the_runtime(frame).await {
                    Some(outcome) => outcome,
                    None => break SessionEnd::Failed,
                }
            } else {
                self.auth.on_frame(frame, &self.settings.versions, Instant::now())
            };
            match outcome {
                AuthOutcome::Forward(request) => {
                    if self.ctx.principal != self.auth.principal() {
                        self.ctx.principal = self.auth.principal().to_string();
                    }
                    if let Some(end) = self.serve(request).await {
                        break end;
                    }
                }
                AuthOutcome::Reply(frame) => {
                    if let Some(end) = self.write(&frame).await {
                        break end;
                    }
                }
                AuthOutcome::Fail { reply, reason } => {
                    info!(
                        client = %self.ctx.client_addr, listener = %self.ctx.listener.name,
                        "Failed authentication with {} ({reason})", self.ctx.client_addr.ip()
                    );
                    // Kafka sends the error (and closes) only after the delay, which slows
                    // password guessing; this task sleeps, nobody else waits.
                    tokio::time::sleep(self.settings.auth.failed_authentication_delay).await;
                    if let Some(reply) = reply {
                        let _ = self.write(&reply).await;
                    }
                    break SessionEnd::AuthenticationFailed;
                }
                AuthOutcome::Close(reason) => {
                    info!(client = %self.ctx.client_addr, listener = %self.ctx.listener.name, "closing connection: {reason}");
                    break SessionEnd::ProtocolViolation;
                }
            }
        };
        // Whatever was answered before the end still goes out.
        let _ = self.writer.flush().await;
        let _ = self.writer.shutdown().await;
        end
    }

    /// Runs one SASL step on the blocking pool (PLAIN and SCRAM derive keys with PBKDF2, which
    /// takes milliseconds of CPU that must not stall other connections on this worker).
    async fn exchange_off_the_runtime(&mut self, frame: bytes::Bytes) -> Option<AuthOutcome> {
        let placeholder = Authenticator::new(self.settings.auth.clone(), self.ctx.client_addr, String::new());
        let mut auth = std::mem::replace(&mut self.auth, placeholder);
        let settings = self.settings.clone();
        match tokio::task::spawn_blocking(move || {
            let outcome = auth.on_frame(frame, &settings.versions, Instant::now());
            (auth, outcome)
        })
        .await
        {
            Ok((auth, outcome)) => {
                self.auth = auth;
                Some(outcome)
            }
            Err(e) => {
                error!(client = %self.ctx.client_addr, "authentication step failed: {e}");
                None
            }
        }
    }

    /// Serves one request of an authenticated client; `Some` ends the session.
    async fn serve(&mut self, request: RequestFrame) -> Option<SessionEnd> {
        let (key, version, correlation_id) = (request.api_key, request.version, request.correlation_id());
        if key == ApiKey::ApiVersions {
            return match api_versions::answer(&self.settings.versions, &request) {
                Ok(answer) => self.write(&answer.frame).await,
                Err(e) => {
                    info!(client = %self.ctx.client_addr, "closing connection: {e}");
                    Some(SessionEnd::ProtocolViolation)
                }
            };
        }
        if gateway_apis::serves(key) && self.settings.versions.supports(key, version) {
            let credentials = &self.settings.auth.credentials;
            return match gateway_apis::answer(&request, &self.ctx.principal, &self.settings.super_users, credentials) {
                Ok(frame) => self.write(&frame).await,
                Err(e) => {
                    info!(client = %self.ctx.client_addr, "closing connection: {e}");
                    Some(SessionEnd::ProtocolViolation)
                }
            };
        }
        if !self.backend.versions().supports(key, version) {
            info!(
                client = %self.ctx.client_addr, client_id = request.client_id(),
                "closing connection: {key:?} v{version} is not supported (see ApiVersions)"
            );
            return Some(SessionEnd::ProtocolViolation);
        }
        match self.backend.handle(&self.ctx, request).await {
            Ok(Reply::Body(body)) => {
                // Header and body go out separately: large fetch bodies are not copied again.
                let prefix = response_prefix(correlation_id, key, version, body.len());
                match self.write(&prefix).await {
                    None => self.write(&body).await,
                    end => end,
                }
            }
            Ok(Reply::None) => None,
            Err(e) => {
                match e.culprit() {
                    Culprit::Client => info!(client = %self.ctx.client_addr, "closing connection: {e}"),
                    Culprit::Backend => warn!(client = %self.ctx.client_addr, "closing connection: {e}"),
                    Culprit::Internal => error!(client = %self.ctx.client_addr, "closing connection: {e}"),
                }
                Some(match e.culprit() {
                    Culprit::Client => SessionEnd::ProtocolViolation,
                    _ => SessionEnd::Failed,
                })
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Option<SessionEnd> {
        match self.writer.write_all(bytes).await {
            Ok(()) => None,
            Err(e) => {
                debug!(error = %e, "write failed; client gone");
                Some(SessionEnd::ClientClosed)
            }
        }
    }
}

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod tests;
