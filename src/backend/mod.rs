//! What the session talks to once a request is admitted. The embedded broker is one
//! implementation; an upstream cluster is the other. Backends never touch the client socket:
//! they take a decoded header plus body bytes and give back an encoded body.
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;

use crate::config::ListenerConfig;
use crate::error::RequestError;
use crate::protocol::{RequestFrame, VersionTable};

pub mod embedded;
pub mod upstream;

/// Who is asking and through which door: travels with every request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub connection_id: u64,
    pub listener: Arc<ListenerConfig>,
    pub client_addr: SocketAddr,
    /// Kafka principal string, `User:ANONYMOUS` on PLAINTEXT listeners.
    pub principal: String,
    /// The broker this connection was opened for: `Some(id)` when the client dialled broker `id`'s
    /// advertised address (its own port, or its SNI name); `None` for the listener's bootstrap address.
    pub target_node: Option<i32>,
}

/// What a backend answers.
#[derive(Debug)]
pub enum Reply {
    /// An encoded response body (no size prefix, no header).
    Body(BytesMut),
    /// No response at all (Produce with acks=0).
    None,
}

/// The reply to one submitted request, still to come.
pub type PendingReply = Pin<Box<dyn Future<Output = Result<Reply, RequestError>> + Send>>;

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The api keys and versions this backend serves. ApiVersions itself is answered by the
    /// session from this table.
    fn versions(&self) -> &VersionTable;

    /// This client connection's own path to the backend (an upstream connection is opened per
    /// client connection, so that each keeps Kafka's one-request-at-a-time order).
    fn connect(self: Arc<Self>, ctx: &RequestContext) -> Box<dyn BackendConnection>;

    /// The broker ids behind this backend, kept current (a listener with a port per broker binds
    /// one for each, including brokers that join later).
    fn broker_ids(&self) -> tokio::sync::watch::Receiver<Vec<i32>>;

    /// Flushes and releases everything; called once after the last connection is closed.
    async fn shutdown(&self);
}

/// One client connection's view of the backend.
#[async_trait]
pub trait BackendConnection: Send {
    /// Starts serving `request`. The session awaits the returned replies strictly in submission
    /// order, so a backend may start the next request before the last one is answered (an
    /// upstream pipelines them), or do all the work inside the returned future (one at a time).
    async fn submit(&mut self, ctx: &RequestContext, request: RequestFrame) -> Result<PendingReply, RequestError>;

    /// How many submitted requests may wait for their replies at once.
    fn max_in_flight(&self) -> usize;
}

/// A backend that serves each request start to finish, one at a time per connection, like a
/// Kafka broker does (the embedded broker).
#[async_trait]
pub trait ServesInOrder: Send + Sync + 'static {
    async fn handle(&self, ctx: &RequestContext, request: RequestFrame) -> Result<Reply, RequestError>;
}

/// The connection of a [`ServesInOrder`] backend: all the work happens inside the reply future,
/// which the session awaits in order, so requests never overlap.
pub struct InOrderConnection<B>(pub Arc<B>);

#[async_trait]
impl<B: ServesInOrder> BackendConnection for InOrderConnection<B> {
    async fn submit(&mut self, ctx: &RequestContext, request: RequestFrame) -> Result<PendingReply, RequestError> {
        let (backend, ctx) = (self.0.clone(), ctx.clone());
        Ok(Box::pin(async move { backend.handle(&ctx, request).await }))
    }

    fn max_in_flight(&self) -> usize {
        1
    }
}
