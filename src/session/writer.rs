//! The writing half of a session: answers leave in the order their requests arrived.
//!
//! Takes the queue the reading half fills, awaits each pending backend reply in turn, shows the
//! client the listener's broker addresses (never the backend's), and writes. Writes are flushed
//! when the queue runs dry, which batches responses for pipelining clients.
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::SessionEnd;
use crate::backend::{PendingReply, Reply};
use crate::error::{Culprit, RequestError};
use crate::protocol::response_prefix;
use crate::rewrite::{rewrite_response_bytes, BrokerAddressing};

/// One answer to come, in request order.
pub enum Outgoing {
    /// A complete response frame the session built itself (ApiVersions, SASL, gateway apis).
    Frame(BytesMut),
    /// A backend reply still to be awaited, and whom it answers.
    Reply { pending: PendingReply, to: ReplyTo },
}

/// The request a backend reply answers.
pub struct ReplyTo {
    pub correlation_id: i32,
    pub api_key: ApiKey,
    pub version: i16,
}

/// Writes answers until the queue closes (then flushes and closes the connection) or a write or
/// a reply fails (then returns why, which also stops the reading half).
pub async fn run<W: AsyncWrite + Unpin>(
    half: W,
    mut queue: mpsc::Receiver<Outgoing>,
    client: SocketAddr,
    addressing: Option<Arc<BrokerAddressing>>,
) -> SessionEnd {
    let mut out = BufWriter::with_capacity(64 * 1024, half);
    let end = loop {
        let next = match queue.try_recv() {
            Ok(next) => next,
            Err(_) => {
                if let Err(e) = out.flush().await {
                    debug!(error = %e, "write failed; client gone");
                    break SessionEnd::ClientClosed;
                }
                match queue.recv().await {
                    Some(next) => next,
                    None => break SessionEnd::ClientClosed,
                }
            }
        };
        let written = match next {
            Outgoing::Frame(frame) => out.write_all(&frame).await,
            Outgoing::Reply { mut pending, to } => {
                // A reply still on its way (an upstream broker's): what is already written must reach
                // the client now, not after this reply, or a pipelining client's window stalls.
                let reply = tokio::select! {
                    biased;
                    reply = &mut pending => reply,
                    _ = std::future::ready(()) => {
                        if let Err(e) = out.flush().await {
                            debug!(error = %e, "write failed; client gone");
                            break SessionEnd::ClientClosed;
                        }
                        pending.await
                    }
                };
                let body = match reply {
                    Ok(Reply::Body(body)) => body,
                    Ok(Reply::None) => continue,
                    Err(e) => break log_failure(&e, client),
                };
                let body = match &addressing {
                    Some(addressing) => match with_listener_addresses(&to, body, addressing) {
                        Ok(body) => body,
                        Err(reason) => {
                            // Forwarding it would hand the client an address it may not reach, or leak an
                            // upstream one: fail closed, the client retries on a new connection.
                            warn!(%client, "closing connection: {reason}");
                            break SessionEnd::Failed;
                        }
                    },
                    None => body,
                };
                // Header and body go out separately: large fetch bodies are not copied again.
                let prefix = response_prefix(to.correlation_id, to.api_key, to.version, body.len());
                match out.write_all(&prefix).await {
                    Ok(()) => out.write_all(&body).await,
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = written {
            debug!(error = %e, "write failed; client gone");
            break SessionEnd::ClientClosed;
        }
    };
    // Whatever was answered before the end still goes out.
    let _ = out.flush().await;
    let _ = out.shutdown().await;
    end
}

/// The body with every broker address replaced by this listener's (unchanged when it holds none).
fn with_listener_addresses(to: &ReplyTo, body: BytesMut, addressing: &BrokerAddressing) -> Result<BytesMut, String> {
    if !crate::rewrite::carries_addresses(to.api_key, to.version) {
        return Ok(body);
    }
    let original = body.freeze();
    match rewrite_response_bytes(to.api_key, to.version, original.clone(), addressing) {
        Ok(Some(rewritten)) => Ok(rewritten),
        // Nothing to change: the original bytes, without a copy when nobody else holds them.
        Ok(None) => Ok(original
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]))),
        Err(e) => Err(format!(
            "cannot show {:?} v{} to the client: {e}",
            to.api_key, to.version
        )),
    }
}

/// Logs a failed request by who caused it, and says how the session ends.
pub fn log_failure(e: &RequestError, client: SocketAddr) -> SessionEnd {
    match e.culprit() {
        Culprit::Client => {
            info!(%client, "closing connection: {e}");
            SessionEnd::ProtocolViolation
        }
        Culprit::Backend => {
            warn!(%client, "closing connection: {e}");
            SessionEnd::Failed
        }
        Culprit::Internal => {
            error!(%client, "closing connection: {e}");
            SessionEnd::Failed
        }
    }
}
