//! One client connection: read a frame, decide, answer, in order.
//!
//! Kafka serves one request per connection at a time (the broker mutes a channel until its
//! response is sent), so requests here are handled strictly in sequence: responses leave in
//! request order by construction. Responses are flushed when no further complete request is
//! already buffered, which batches writes for pipelining clients.
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::backend::{Backend, Reply, RequestContext};
use crate::error::Culprit;
use crate::protocol::frame::holds_complete_frame;
use crate::protocol::{
    decode_request_header, encode_response, encode_response_body, read_frame, response_prefix, FrameError, RequestFrame,
};

/// Why a session ended; logged once per connection.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    ClientClosed,
    Shutdown,
    /// The client broke the protocol; the reason is already logged.
    ProtocolViolation,
    /// kgate or its backend failed this connection.
    Failed,
}

pub struct Session<S> {
    reader: BufReader<tokio::io::ReadHalf<S>>,
    writer: BufWriter<tokio::io::WriteHalf<S>>,
    ctx: RequestContext,
    backend: Arc<dyn Backend>,
    max_request_bytes: usize,
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Session<S> {
    pub fn new(stream: S, ctx: RequestContext, backend: Arc<dyn Backend>, max_request_bytes: usize) -> Self {
        let (r, w) = tokio::io::split(stream);
        Session {
            reader: BufReader::with_capacity(64 * 1024, r),
            writer: BufWriter::with_capacity(64 * 1024, w),
            ctx,
            backend,
            max_request_bytes,
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
            let frame = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break SessionEnd::Shutdown,
                frame = read_frame(&mut self.reader, self.max_request_bytes) => frame,
            };
            let frame = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => break SessionEnd::ClientClosed,
                Err(FrameError::Io(e)) => {
                    debug!(error = %e, "read failed; client gone");
                    break SessionEnd::ClientClosed;
                }
                Err(e) => {
                    info!(client = %self.ctx.client_addr, "closing connection: {e}");
                    break SessionEnd::ProtocolViolation;
                }
            };
            let request = match decode_request_header(frame) {
                Ok(r) => r,
                Err(e) => {
                    info!(client = %self.ctx.client_addr, "closing connection: {e}");
                    break SessionEnd::ProtocolViolation;
                }
            };
            if let Some(end) = self.serve(request).await {
                break end;
            }
        };
        // Whatever was answered before the end still goes out.
        let _ = self.writer.flush().await;
        let _ = self.writer.shutdown().await;
        end
    }

    /// Serves one request; `Some` ends the session.
    async fn serve(&mut self, request: RequestFrame) -> Option<SessionEnd> {
        let (key, version, correlation_id) = (request.api_key, request.version, request.correlation_id());
        if key == ApiKey::ApiVersions {
            return self.serve_api_versions(request).await;
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
                    Culprit::Client => {
                        info!(client = %self.ctx.client_addr, "closing connection: {e}")
                    }
                    Culprit::Backend => {
                        warn!(client = %self.ctx.client_addr, "closing connection: {e}")
                    }
                    Culprit::Internal => {
                        error!(client = %self.ctx.client_addr, "closing connection: {e}")
                    }
                }
                Some(match e.culprit() {
                    Culprit::Client => SessionEnd::ProtocolViolation,
                    _ => SessionEnd::Failed,
                })
            }
        }
    }

    async fn serve_api_versions(&mut self, request: RequestFrame) -> Option<SessionEnd> {
        let table = self.backend.versions();
        let (version, correlation_id) = (request.version, request.correlation_id());
        let supported = table.supports(ApiKey::ApiVersions, version);
        let (response, encode_version) = if !supported {
            // KIP-511: answer in v0 so that any client can read it and retry with a lower version.
            (table.unsupported_api_versions_response(), 0)
        } else {
            let mut body = request.body.clone();
            match ApiVersionsRequest::decode(&mut body, version) {
                Ok(req) if version >= 3 && !valid_software_field(&req) => (
                    table
                        .unsupported_api_versions_response()
                        .with_error_code(ResponseError::InvalidRequest.code()),
                    version,
                ),
                Ok(_) => (table.api_versions_response(), version),
                Err(e) => {
                    info!(client = %self.ctx.client_addr, "closing connection: malformed ApiVersions v{version}: {e}");
                    return Some(SessionEnd::ProtocolViolation);
                }
            }
        };
        match encode_response_body(&response, encode_version) {
            Ok(body) => {
                self.write(&encode_response(
                    correlation_id,
                    ApiKey::ApiVersions,
                    encode_version,
                    &body,
                ))
                .await
            }
            Err(e) => {
                error!("cannot encode ApiVersions v{encode_version}: {e}");
                Some(SessionEnd::Failed)
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

#[cfg(test)]
mod tests;
