//! Accept loops, connection tracking and graceful shutdown.
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use crate::backend::{Backend, RequestContext};
use crate::config::ListenerConfig;
use crate::error::StartupError;
use crate::session::{Session, SessionSettings};

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
        socket,
    })
}

/// Accepts connections until `shutdown` turns true; each connection runs its own session task.
pub async fn accept_loop(
    listener: BoundListener,
    backend: Arc<dyn Backend>,
    tracker: Arc<ConnectionTracker>,
    settings: Arc<SessionSettings>,
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
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (connection_id, guard) = tracker.open();
        let ctx = RequestContext {
            connection_id,
            listener: listener.config.clone(),
            client_addr,
            principal: "User:ANONYMOUS".to_string(),
        };
        let session = Session::new(stream, ctx, backend.clone(), settings.clone());
        let stop = shutdown.clone();
        let listener_name = name.clone();
        tokio::spawn(async move {
            debug!(listener = %listener_name, client = %client_addr, connection_id, "connection opened");
            let end = session.run(stop).await;
            debug!(listener = %listener_name, client = %client_addr, connection_id, ?end, "connection closed");
            drop(guard);
        });
    }
    info!(listener = %name, "stopped accepting connections");
}
