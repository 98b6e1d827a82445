//! One client connection: read a frame, decide, answer, in order.
//!
//! Two halves with data flowing one way. The reading half reads frames, authenticates, answers
//! what the session serves itself and submits the rest to the backend connection; it queues, in
//! request order, either a finished frame or the backend's pending reply. The writing half
//! ([`writer`]) takes that queue in order, awaits each reply, rewrites broker addresses and writes.
//! Responses therefore leave in request order by construction, while an upstream backend can
//! already carry the next request (pipelining); the embedded backend does its work inside the
//! pending reply, so it still serves one request at a time, like Kafka.
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

use crate::backend::{Backend, BackendConnection, RequestContext};
use crate::protocol::{read_frame, FrameError, RequestFrame, VersionTable};
use crate::rewrite::BrokerAddressing;

pub mod api_versions;
pub mod auth;
pub mod gateway_apis;
mod writer;

use auth::{AuthOutcome, AuthSettings, Authenticator};
use writer::{Outgoing, ReplyTo};

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
    /// How brokers are shown to this listener's clients; `None` leaves addresses as the backend wrote them.
    pub addressing: Option<Arc<BrokerAddressing>>,
}

impl SessionSettings {
    pub fn new(
        backend: &dyn Backend,
        max_request_bytes: usize,
        auth: Arc<AuthSettings>,
        super_users: Arc<Vec<String>>,
        addressing: Option<Arc<BrokerAddressing>>,
    ) -> SessionSettings {
        let mut versions = backend.versions().clone();
        versions.extend(&api_versions::versions());
        versions.extend(&auth::sasl_versions());
        versions.extend(&gateway_apis::versions());
        SessionSettings {
            versions,
            max_request_bytes,
            auth,
            super_users,
            addressing,
        }
    }
}

pub struct Session<S> {
    reading: Reading<S>,
    writer: tokio::io::WriteHalf<S>,
}

/// The reading half: frames in, [`Outgoing`] queued in request order.
struct Reading<S> {
    reader: BufReader<tokio::io::ReadHalf<S>>,
    ctx: RequestContext,
    backend: Box<dyn BackendConnection>,
    settings: Arc<SessionSettings>,
    auth: Authenticator,
}

/// Why the reading half stopped queueing.
enum Stop {
    End(SessionEnd),
    /// The writing half is gone (client closed, or a reply failed): it knows why.
    WriterGone,
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Session<S> {
    /// `ctx.principal` is the principal until SASL (if any) says otherwise.
    pub fn new(stream: S, ctx: RequestContext, backend: Arc<dyn Backend>, settings: Arc<SessionSettings>) -> Self {
        let (r, w) = tokio::io::split(stream);
        let auth = Authenticator::new(settings.auth.clone(), ctx.client_addr, ctx.principal.clone());
        let backend = backend.connect(&ctx);
        Session {
            reading: Reading {
                reader: BufReader::with_capacity(64 * 1024, r),
                ctx,
                backend,
                settings,
                auth,
            },
            writer: w,
        }
    }

    /// Runs until the client leaves, breaks the protocol, or `shutdown` turns true. On shutdown
    /// every request already read is finished and answered first.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> SessionEnd {
        let Session { mut reading, writer } = self;
        let (tx, rx) = mpsc::channel(reading.backend.max_in_flight().max(1));
        let client = reading.ctx.client_addr;
        let writer = tokio::spawn(writer::run(writer, rx, client, reading.settings.addressing.clone()));
        // read_loop consumes the queue's sender: once it returns, the writer finishes what is
        // queued and closes the connection.
        let stop = reading.read_loop(tx, shutdown).await;
        let written = writer.await;
        match (stop, written) {
            (Stop::End(end), _) => end,
            (Stop::WriterGone, Ok(end)) => end,
            (Stop::WriterGone, Err(e)) => {
                error!(%client, "writer task failed: {e}");
                SessionEnd::Failed
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Reading<S> {
    async fn read_loop(&mut self, tx: mpsc::Sender<Outgoing>, mut shutdown: watch::Receiver<bool>) -> Stop {
        loop {
            let limit = self.auth.max_frame_size(self.settings.max_request_bytes);
            let frame = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return Stop::End(SessionEnd::Shutdown),
                _ = tx.closed() => return Stop::WriterGone,
                frame = read_frame(&mut self.reader, limit) => frame,
            };
            let frame = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => return Stop::End(SessionEnd::ClientClosed),
                Err(FrameError::Io(e)) => {
                    tracing::debug!(error = %e, "read failed; client gone");
                    return Stop::End(SessionEnd::ClientClosed);
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
                    return Stop::End(SessionEnd::AuthenticationFailed);
                }
                Err(e) => {
                    info!(client = %self.ctx.client_addr, listener = %self.ctx.listener.name, "closing connection: {e}");
                    return Stop::End(SessionEnd::ProtocolViolation);
                }
            };
            let outcome = if self.auth.is_exchanging() {
                match self.exchange_off_the_runtime(frame).await {
                    Some(outcome) => outcome,
                    None => return Stop::End(SessionEnd::Failed),
                }
            } else {
                self.auth.on_frame(frame, &self.settings.versions, Instant::now())
            };
            let next = match outcome {
                AuthOutcome::Forward(request) => {
                    if self.ctx.principal != self.auth.principal() {
                        self.ctx.principal = self.auth.principal().to_string();
                    }
                    match self.serve(request).await {
                        Ok(outgoing) => outgoing,
                        Err(end) => return Stop::End(end),
                    }
                }
                AuthOutcome::Reply(frame) => Outgoing::Frame(frame),
                AuthOutcome::Fail { reply, reason } => {
                    info!(
                        client = %self.ctx.client_addr, listener = %self.ctx.listener.name,
                        "Failed authentication with {} ({reason})", self.ctx.client_addr.ip()
                    );
                    // Kafka sends the error (and closes) only after the delay, which slows
                    // password guessing; this task sleeps, nobody else waits.
                    tokio::time::sleep(self.settings.auth.failed_authentication_delay).await;
                    if let Some(reply) = reply {
                        let _ = tx.send(Outgoing::Frame(reply)).await;
                    }
                    return Stop::End(SessionEnd::AuthenticationFailed);
                }
                AuthOutcome::Close(reason) => {
                    info!(client = %self.ctx.client_addr, listener = %self.ctx.listener.name, "closing connection: {reason}");
                    return Stop::End(SessionEnd::ProtocolViolation);
                }
            };
            if tx.send(next).await.is_err() {
                return Stop::WriterGone;
            }
        }
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

    /// Decides what answers one request of an authenticated client; `Err` ends the session.
    async fn serve(&mut self, request: RequestFrame) -> Result<Outgoing, SessionEnd> {
        let (key, version, correlation_id) = (request.api_key, request.version, request.correlation_id());
        if key == ApiKey::ApiVersions {
            return match api_versions::answer(&self.settings.versions, &request) {
                Ok(answer) => Ok(Outgoing::Frame(answer.frame)),
                Err(e) => {
                    info!(client = %self.ctx.client_addr, "closing connection: {e}");
                    Err(SessionEnd::ProtocolViolation)
                }
            };
        }
        if gateway_apis::serves(key) && self.settings.versions.supports(key, version) {
            let credentials = &self.settings.auth.credentials;
            return match gateway_apis::answer(&request, &self.ctx.principal, &self.settings.super_users, credentials) {
                Ok(frame) => Ok(Outgoing::Frame(frame)),
                Err(e) => {
                    info!(client = %self.ctx.client_addr, "closing connection: {e}");
                    Err(SessionEnd::ProtocolViolation)
                }
            };
        }
        if !self.settings.versions.supports(key, version) {
            info!(
                client = %self.ctx.client_addr, client_id = request.client_id(),
                "closing connection: {key:?} v{version} is not supported (see ApiVersions)"
            );
            return Err(SessionEnd::ProtocolViolation);
        }
        match self.backend.submit(&self.ctx, request).await {
            Ok(pending) => Ok(Outgoing::Reply {
                pending,
                to: ReplyTo {
                    correlation_id,
                    api_key: key,
                    version,
                },
            }),
            Err(e) => Err(writer::log_failure(&e, self.ctx.client_addr)),
        }
    }
}

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod tests;
