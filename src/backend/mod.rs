//! What the session talks to once a request is admitted. The embedded broker is one
//! implementation; an upstream cluster connection is the other. Backends never touch the
//! client socket: they take a decoded header plus body bytes and give back an encoded body.
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;

use crate::config::ListenerConfig;
use crate::error::RequestError;
use crate::protocol::{RequestFrame, VersionTable};

pub mod embedded;

/// Who is asking and through which door: travels with every request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub connection_id: u64,
    pub listener: Arc<ListenerConfig>,
    pub client_addr: SocketAddr,
    /// Kafka principal string, `User:ANONYMOUS` on PLAINTEXT listeners.
    pub principal: String,
}

/// What a backend answers.
#[derive(Debug)]
pub enum Reply {
    /// An encoded response body (no size prefix, no header).
    Body(BytesMut),
    /// No response at all (Produce with acks=0).
    None,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The api keys and versions this backend implements. ApiVersions itself is answered by the
    /// session from this table.
    fn versions(&self) -> &VersionTable;

    /// Serves one request. Requests of one connection arrive one at a time, in order.
    async fn handle(&self, ctx: &RequestContext, request: RequestFrame) -> Result<Reply, RequestError>;

    /// Flushes and releases everything; called once after the last connection is closed.
    async fn shutdown(&self);
}
