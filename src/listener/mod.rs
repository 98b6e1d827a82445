//! Accept loops, connection tracking and graceful shutdown.
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use crate::backend::{Backend, RequestContext};
use crate::config::ListenerConfig;
use crate::error::StartupError;
use crate::rewrite::BrokerAddressing;
use crate::security::ssl_principal::SslPrincipalMapper;
use crate::session::{Session, SessionEnd, SessionSettings};

/// Counts open connections so shutdown can wait for them to drain.
#[derive(Default)]
pub struct ConnectionTracker {
    open: AtomicUsize,
    next_id: AtomicU64,
    drained: Notify,
}

impl ConnectionTracker {
    fn open(self: &Arc<Self>) -> (u64, ConnectionGuard) {
        self.open.fetch_add(1, Ordering::SeqCst);
        (
            self.next_id.fetch_add(1, Ordering::Relaxed),
            ConnectionGuard(self.clone()),
        )
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Resolves when no connection is open.
    pub async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.open_connections() == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct ConnectionGuard(Arc<ConnectionTracker>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// A bound listener, ready to accept.
pub struct BoundListener {
    pub config: Arc<ListenerConfig>,
    pub local_addr: SocketAddr,
    /// `Some(id)` for a port that stands for broker `id` (port-per-broker addressing).
    pub target_node: Option<i32>,
    socket: TcpListener,
}

/// Binds the listener's address. When `advertised` is not set it becomes the bound address
/// (so `bind = "127.0.0.1:0"` advertises the port actually chosen).
pub async fn bind(config: &ListenerConfig) -> Result<BoundListener, StartupError> {
    let socket = TcpListener::bind(&config.bind)
        .await
        .map_err(|source| StartupError::Bind {
            listener: config.name.clone(),
            addr: config.bind.clone(),
            source,
        })?;
    let local_addr = socket.local_addr().map_err(|source| StartupError::Bind {
        listener: config.name.clone(),
        addr: config.bind.clone(),
        source,
    })?;
    let mut config = config.clone();
    if config.advertised.is_none() {
        config.advertised = Some(local_addr.to_string());
    }
    Ok(BoundListener {
        config: Arc::new(config),
        local_addr,
        target_node: None,
        socket,
    })
}

/// Binds the port that stands for broker `node_id` on the listener's IP (port-per-broker
/// addressing: clients told `host:port` for that broker reach kgate there).
pub async fn bind_broker_port(
    config: &Arc<ListenerConfig>,
    ip: std::net::IpAddr,
    node_id: i32,
    port: u16,
) -> Result<BoundListener, StartupError> {
    let addr = SocketAddr::new(ip, port);
    let bind_error = |source| StartupError::Bind {
        listener: format!("{} (broker {node_id})", config.name),
        addr: addr.to_string(),
        source,
    };
    let socket = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local_addr = socket.local_addr().map_err(bind_error)?;
    Ok(BoundListener {
        config: config.clone(),
        local_addr,
        target_node: Some(node_id),
        socket,
    })
}

/// What a listener needs to secure a connection before its session starts.
pub struct ListenerSecurity {
    /// Present on SSL and SASL_SSL listeners.
    pub tls: Option<tls::TlsAcceptorHandle>,
    /// ssl.principal.mapping.rules, for client certificates on SSL listeners.
    pub principal_mapper: Arc<SslPrincipalMapper>,
    /// SASL listeners take the principal from SASL, not from the certificate.
    pub sasl: bool,
    /// A client that stalls the TLS handshake is dropped after this long.
    pub handshake_timeout: Duration,
    /// SNI addressing: the TLS server name the client asked for says which broker it wants.
    pub sni_routing: Option<Arc<BrokerAddressing>>,
}

/// Accepts connections until `shutdown` turns true; each connection runs its own task (TLS
/// handshake, then the session), so a slow client never holds up the accept loop.
pub async fn accept_loop(
    listener: BoundListener,
    backend: Arc<dyn Backend>,
    tracker: Arc<ConnectionTracker>,
    settings: Arc<SessionSettings>,
    security: Arc<ListenerSecurity>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = listener.config.name.clone();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.socket.accept() => accepted,
        };
        let (stream, client_addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                warn!(listener = %name, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (connection_id, guard) = tracker.open();
        let ctx = RequestContext {
            connection_id,
            listener: listener.config.clone(),
            client_addr,
            principal: ANONYMOUS.to_string(),
            target_node: listener.target_node,
        };
        let (backend, settings, security, stop) =
            (backend.clone(), settings.clone(), security.clone(), shutdown.clone());
        tokio::spawn(async move {
            debug!(listener = %ctx.listener.name, client = %client_addr, connection_id, "connection opened");
            let end = serve_connection(stream, ctx, backend, settings, &security, stop).await;
            debug!(client = %client_addr, connection_id, ?end, "connection closed");
            drop(guard);
        });
    }
    info!(listener = %name, "stopped accepting connections");
}

const ANONYMOUS: &str = "User:ANONYMOUS";

async fn serve_connection(
    stream: TcpStream,
    mut ctx: RequestContext,
    backend: Arc<dyn Backend>,
    settings: Arc<SessionSettings>,
    security: &ListenerSecurity,
    stop: watch::Receiver<bool>,
) -> Option<SessionEnd> {
    let Some(tls) = &security.tls else {
        return Some(Session::new(stream, ctx, backend, settings).run(stop).await);
    };
    let client = ctx.client_addr;
    let listener = ctx.listener.name.clone();
    let stream = match tokio::time::timeout(security.handshake_timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            // Plaintext Kafka bytes on a TLS port end here too ("corrupt message" / "not a handshake").
            info!(%client, %listener, "TLS handshake failed: {e}");
            return None;
        }
        Err(_) => {
            info!(%client, %listener, "TLS handshake did not finish within {:?}; closing", security.handshake_timeout);
            return None;
        }
    };
    if let Some(routing) = &security.sni_routing {
        // No SNI, or a name that is no broker's (the bootstrap name): any broker will do.
        ctx.target_node = stream
            .get_ref()
            .1
            .server_name()
            .and_then(|name| routing.node_for_sni(name));
        debug!(%client, %listener, target_node = ?ctx.target_node, "routed by SNI");
    }
    if !security.sasl {
        // SSL listener: the principal comes from the client certificate (Kafka's
        // DefaultKafkaPrincipalBuilder): none sent → ANONYMOUS; no mapping rule applies → refused.
        if let Some(dn) = tls::peer_subject_dn(stream.get_ref().1) {
            match security.principal_mapper.map(&dn) {
                Ok(name) => {
                    ctx.principal = format!("User:{name}");
                    info!(principal = %ctx.principal, %client, %listener, "authenticated with a client certificate");
                }
                Err(e) => {
                    info!(%client, %listener, "Failed authentication with {} ({e})", client.ip());
                    return Some(SessionEnd::AuthenticationFailed);
                }
            }
        }
    }
    Some(Session::new(stream, ctx, backend, settings).run(stop).await)
}
