//! The one place that wires modules together: config → backend → listeners → sessions.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::backend::embedded::EmbeddedBroker;
use crate::backend::Backend;
use crate::config::Config;
use crate::error::StartupError;
use crate::listener::{accept_loop, bind, ConnectionTracker};
use crate::security::credentials::CredentialStore;
use crate::session::auth::AuthSettings;
use crate::session::SessionSettings;

/// A started kgate: listeners bound and accepting.
pub struct Running {
    /// `(listener name, bound address)` in config order.
    pub listeners: Vec<(String, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    accept_tasks: Vec<JoinHandle<()>>,
    /// Tasks that run until stop (file reloaders); aborted there.
    background: Vec<JoinHandle<()>>,
    tracker: Arc<ConnectionTracker>,
    backend: Arc<dyn Backend>,
    shutdown_timeout: Duration,
}

/// Opens the backend and binds every listener; nothing is served until all of them succeed.
pub async fn start(config: Config) -> Result<Running, StartupError> {
    config.validate()?;
    let backend: Arc<dyn Backend> = EmbeddedBroker::open(&config).await?;
    let mut bound = Vec::new();
    for listener in &config.listeners {
        match bind(listener).await {
            Ok(b) => bound.push(b),
            Err(e) => {
                backend.shutdown().await;
                return Err(e);
            }
        }
    }
    let credentials = match &config.security.users_file {
        Some(path) => match CredentialStore::open(path) {
            Ok(store) => store,
            Err(e) => {
                backend.shutdown().await;
                return Err(StartupError::InvalidConfig(vec![format!(
                    "security.users_file {}: {e}",
                    path.display()
                )]));
            }
        },
        None => CredentialStore::empty(),
    };
    // The users file is re-read when it changes (kgate users add/remove, or an edit).
    let mut background = Vec::new();
    if config.security.users_file.is_some() {
        background.push(credentials.spawn_reloader(Duration::from_secs(2)));
    }
    let super_users = Arc::new(config.security.super_users.clone());
    let (shutdown, stop_rx) = watch::channel(false);
    let tracker = Arc::new(ConnectionTracker::default());
    let mut listeners = Vec::new();
    let mut accept_tasks = Vec::new();
    for b in bound {
        let (host, port) = b.config.advertised_host_port();
        info!(
            listener = %b.config.name, bind = %b.local_addr, advertised = %format!("{host}:{port}"),
            security_protocol = b.config.security_protocol.as_str(), "listening"
        );
        listeners.push((b.config.name.clone(), b.local_addr));
        let auth = Arc::new(AuthSettings {
            listener: b.config.name.clone(),
            protocol: b.config.security_protocol,
            mechanisms: b.config.sasl_enabled_mechanisms.clone(),
            credentials: credentials.clone(),
            failed_authentication_delay: Duration::from_millis(config.security.failed_authentication_delay_ms),
            max_receive_size: config.security.sasl_server_max_receive_size,
            max_reauth_ms: config.security.connections_max_reauth_ms,
        });
        let settings = Arc::new(SessionSettings::new(
            &*backend,
            config.network.socket_request_max_bytes,
            auth,
            super_users.clone(),
        ));
        accept_tasks.push(tokio::spawn(accept_loop(
            b,
            backend.clone(),
            tracker.clone(),
            settings,
            stop_rx.clone(),
        )));
    }
    Ok(Running {
        listeners,
        shutdown,
        accept_tasks,
        background,
        tracker,
        backend,
        shutdown_timeout: Duration::from_millis(config.network.shutdown_timeout_ms),
    })
}

impl Running {
    /// The first listener's bound address (handy for tests).
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0].1
    }

    /// Graceful stop: stop accepting, let every connection finish the request it is serving,
    /// then flush and close the backend.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.accept_tasks {
            let _ = task.await;
        }
        if tokio::time::timeout(self.shutdown_timeout, self.tracker.drained())
            .await
            .is_err()
        {
            warn!(
                open = self.tracker.open_connections(),
                "connections still busy after network.shutdown_timeout_ms; closing the backend anyway"
            );
        }
        for task in self.background {
            task.abort();
        }
        self.backend.shutdown().await;
        info!("stopped");
    }
}

/// Runs until SIGTERM or Ctrl-C, then stops gracefully.
pub async fn serve(config: Config) -> Result<(), StartupError> {
    let running = start(config).await?;
    info!("kgate ready");
    wait_for_stop_signal().await;
    info!("stop signal received: finishing in-flight requests");
    running.stop().await;
    Ok(())
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops kgate");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
