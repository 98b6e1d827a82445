//! The one place that wires modules together: config → backend → listeners → sessions.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::backend::embedded::EmbeddedBroker;
use crate::backend::upstream::security::UpstreamSecurity;
use crate::backend::upstream::UpstreamBackend;
use crate::backend::Backend;
use crate::config::BackendKind;
use crate::config::Config;
use crate::config::{KerberosConfig, ListenerConfig};
use crate::error::StartupError;
use crate::listener::tls::TlsAcceptorHandle;
use crate::listener::{accept_loop, bind, ConnectionTracker, ListenerSecurity};
use crate::listener::{bind_broker_port, BoundListener};
use crate::rewrite::BrokerAddressing;
use crate::security::credentials::CredentialStore;
use crate::security::gssapi::{GssapiAcceptor, GssapiServer, ShortNamer};
use crate::security::kerberos_name::{KerberosName, KerberosShortNamer};
use crate::security::mechanism::SaslServer;
use crate::security::ssl_principal::SslPrincipalMapper;
use crate::session::auth::AuthSettings;
use crate::session::auth::GssapiFactory;
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

/// Files the config points at (certificates, keys, the users file), loaded before anything else
/// so that every problem is reported at once and no port is bound when one exists.
struct SecurityMaterial {
    credentials: Arc<CredentialStore>,
    /// One entry per listener, in config order.
    tls: Vec<Option<TlsAcceptorHandle>>,
    principal_mapper: Arc<SslPrincipalMapper>,
    /// One entry per listener: GSSAPI servers for its advertised host, when it enables GSSAPI.
    gssapi: Vec<Option<GssapiFactory>>,
    /// kgate's own TLS/SASL identity towards an upstream cluster (`[backend.tls]`, `[backend.sasl]`).
    upstream: UpstreamSecurity,
}

fn load_security_material(config: &Config) -> Result<SecurityMaterial, StartupError> {
    let mut problems = Vec::new();
    let credentials = match &config.security.users_file {
        Some(path) => CredentialStore::open(path).unwrap_or_else(|e| {
            problems.push(format!("security.users_file {}: {e}", path.display()));
            CredentialStore::empty()
        }),
        None => CredentialStore::empty(),
    };
    let tls = config
        .listeners
        .iter()
        .map(|l| {
            let t = l.tls.as_ref()?;
            TlsAcceptorHandle::load(t)
                .map_err(|e| problems.push(format!("listener {:?}: {e}", l.name)))
                .ok()
        })
        .collect();
    let principal_mapper = SslPrincipalMapper::parse(&config.security.ssl_principal_mapping_rules)
        .map_err(|e| problems.push(format!("security.ssl_principal_mapping_rules: {e}")))
        .ok();
    let gssapi = config
        .listeners
        .iter()
        .map(|l| {
            let kerberos = config
                .kerberos
                .as_ref()
                .filter(|_| l.sasl_enabled_mechanisms.iter().any(|m| m == "GSSAPI"))?;
            gssapi_factory(kerberos, l)
                .map_err(|e| problems.push(format!("listener {:?}: {e}", l.name)))
                .ok()
        })
        .collect();
    let upstream = match config.backend.kind {
        BackendKind::Upstream => UpstreamSecurity::load(
            config.backend.tls.as_ref(),
            config.backend.sasl.as_ref(),
            config.kerberos.as_ref().and_then(|k| k.krb5_conf.as_deref()),
        )
        .unwrap_or_else(|upstream_problems| {
            problems.extend(upstream_problems);
            UpstreamSecurity::default()
        }),
        BackendKind::Embedded => UpstreamSecurity::default(),
    };
    match principal_mapper {
        Some(mapper) if problems.is_empty() => Ok(SecurityMaterial {
            credentials,
            tls,
            principal_mapper: Arc::new(mapper),
            gssapi,
            upstream,
        }),
        _ => Err(StartupError::InvalidConfig(problems)),
    }
}

/// The GSSAPI acceptor of a listener: clients ask the KDC for `<service_name>/<the host they dialled>`,
/// which is the advertised host, so that is the principal the keytab must hold.
fn gssapi_factory(kerberos: &KerberosConfig, listener: &ListenerConfig) -> Result<GssapiFactory, String> {
    let (host, _) = listener.advertised_host_port();
    let service_principal = format!("{}/{host}", kerberos.service_name);
    let acceptor = Arc::new(GssapiAcceptor::new(kerberos, &service_principal)?);
    // Short names follow sasl.kerberos.principal.to.local.rules; DEFAULT uses the realm of the
    // service principal as the default realm.
    let realm = acceptor.principal().rsplit_once('@').map(|(_, r)| r.to_string());
    let namer = KerberosShortNamer::parse(&kerberos.principal_to_local_rules, realm.as_deref())
        .map_err(|e| format!("kerberos.principal_to_local_rules: {e}"))?;
    let namer = Arc::new(namer);
    let short_namer: ShortNamer = Arc::new(move |principal: &str| {
        let name = KerberosName::parse(principal)?;
        namer.short_name(&name)
    });
    tracing::info!(listener = %listener.name, principal = %acceptor.principal(), "GSSAPI acceptor ready");
    Ok(Arc::new(move || {
        Box::new(GssapiServer::new(acceptor.clone(), short_namer.clone())) as Box<dyn SaslServer>
    }))
}

/// Everything `start` checks before touching the data directory or binding a port: the config
/// itself, the advertised hosts of GSSAPI listeners and the files the config points at
/// (`kgate check-config`).
pub async fn check(config: &Config) -> Result<(), StartupError> {
    config.validate()?;
    check_kerberos_hosts(config).await?;
    load_security_material(config).map(|_| ())
}

/// GSSAPI clients ask for `service/<the host they dialled>`: every advertised host needs that
/// principal in the keytab (hard error unless `kerberos.skip_startup_checks`), and DNS that
/// disagrees with it is worth a warning naming the clients that will fail.
async fn check_kerberos_hosts(config: &Config) -> Result<(), StartupError> {
    let report = crate::diag::check_gssapi_listeners(config).await;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    let skip = config.kerberos.as_ref().is_some_and(|k| k.skip_startup_checks);
    if report.errors.is_empty() {
        return Ok(());
    }
    if skip {
        for e in &report.errors {
            tracing::warn!("{e} (starting anyway: kerberos.skip_startup_checks = true)");
        }
        return Ok(());
    }
    Err(StartupError::InvalidConfig(report.errors))
}

/// Loads and checks everything, opens the backend and binds every listener; nothing is served
/// until all of them succeed.
pub async fn start(config: Config) -> Result<Running, StartupError> {
    config.validate()?;
    check_kerberos_hosts(&config).await?;
    let security = load_security_material(&config)?;
    let backend = open_backend(&config, security.upstream.clone()).await?;
    let broker_ids = backend.broker_ids().borrow().clone();
    let mut bound = Vec::new();
    for listener in &config.listeners {
        match bind_listener(listener, &broker_ids).await {
            Ok(b) => bound.push(b),
            Err(e) => {
                backend.shutdown().await;
                return Err(e);
            }
        }
    }
    let credentials = security.credentials;
    // Files are re-read when they change: the users file (kgate users add/remove, AdminClient),
    // certificates and keys (renewals), without dropping open connections.
    let mut background = Vec::new();
    if config.security.users_file.is_some() {
        background.push(credentials.spawn_reloader(Duration::from_secs(2)));
    }
    for handle in security.tls.iter().flatten() {
        background.push(handle.spawn_reloader(Duration::from_secs(10)));
    }
    let super_users = Arc::new(config.security.super_users.clone());
    let (shutdown, stop_rx) = watch::channel(false);
    let tracker = Arc::new(ConnectionTracker::default());
    let mut listeners = Vec::new();
    let mut accept_tasks = Vec::new();
    for (((b, broker_ports, addressing), tls), gssapi) in bound.into_iter().zip(security.tls).zip(security.gssapi) {
        let (host, port) = b.config.advertised_host_port();
        info!(
            listener = %b.config.name, bind = %b.local_addr, advertised = %format!("{host}:{port}"),
            security_protocol = b.config.security_protocol.as_str(),
            sasl_mechanisms = ?b.config.sasl_enabled_mechanisms, "listening"
        );
        for p in &broker_ports {
            info!(listener = %b.config.name, bind = %p.local_addr, broker = ?p.target_node, "listening for one broker");
        }
        listeners.push((b.config.name.clone(), b.local_addr));
        let auth = Arc::new(AuthSettings {
            listener: b.config.name.clone(),
            protocol: b.config.security_protocol,
            mechanisms: b.config.sasl_enabled_mechanisms.clone(),
            credentials: credentials.clone(),
            failed_authentication_delay: Duration::from_millis(config.security.failed_authentication_delay_ms),
            max_receive_size: config.security.sasl_server_max_receive_size,
            max_reauth_ms: config.security.connections_max_reauth_ms,
            gssapi,
        });
        let listener_security = Arc::new(ListenerSecurity {
            tls,
            principal_mapper: security.principal_mapper.clone(),
            sasl: auth.is_sasl(),
            handshake_timeout: Duration::from_secs(10),
            sni_routing: addressing
                .clone()
                .filter(|a| matches!(**a, BrokerAddressing::Sni { .. })),
        });
        let port_per_broker = addressing
            .clone()
            .filter(|a| matches!(**a, BrokerAddressing::PortPerBroker { .. }));
        let settings = Arc::new(SessionSettings::new(
            &*backend,
            config.network.socket_request_max_bytes,
            auth,
            super_users.clone(),
            addressing,
        ));
        if let Some(addressing) = port_per_broker {
            let parts = AcceptParts {
                backend: backend.clone(),
                tracker: tracker.clone(),
                settings: settings.clone(),
                security: listener_security.clone(),
                stop: stop_rx.clone(),
            };
            let already: Vec<i32> = broker_ports.iter().filter_map(|p| p.target_node).collect();
            background.push(spawn_port_binder(&b, addressing, already, parts));
        }
        for b in std::iter::once(b).chain(broker_ports) {
            accept_tasks.push(tokio::spawn(accept_loop(
                b,
                backend.clone(),
                tracker.clone(),
                settings.clone(),
                listener_security.clone(),
                stop_rx.clone(),
            )));
        }
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

/// The embedded broker, or the upstream cluster (discovered before any port is bound), and the
/// broker ids behind it.
async fn open_backend(config: &Config, upstream_security: UpstreamSecurity) -> Result<Arc<dyn Backend>, StartupError> {
    Ok(match config.backend.kind {
        BackendKind::Embedded => EmbeddedBroker::open(config).await?,
        BackendKind::Upstream => UpstreamBackend::open(&config.backend, upstream_security).await?,
    })
}

/// Binds a port (and starts its accept loop) for every broker that joins later, under port-per-broker
/// addressing. Runs until aborted at stop.
fn spawn_port_binder(
    main: &BoundListener,
    addressing: Arc<BrokerAddressing>,
    bound: Vec<i32>,
    accept: AcceptParts,
) -> JoinHandle<()> {
    let (config, ip) = (main.config.clone(), main.local_addr.ip());
    let mut ids = accept.backend.broker_ids();
    tokio::spawn(async move {
        let mut bound: std::collections::HashSet<i32> = bound.into_iter().collect();
        while ids.changed().await.is_ok() {
            let current = ids.borrow_and_update().clone();
            let joined: Vec<i32> = current.into_iter().filter(|id| !bound.contains(id)).collect();
            for id in joined {
                let port = match addressing.address_of(id) {
                    Ok((_, port)) => u16::try_from(port).unwrap_or(0),
                    Err(e) => {
                        warn!(listener = %config.name, "broker {id} joined but has no address: {e}");
                        continue;
                    }
                };
                match bind_broker_port(&config, ip, id, port).await {
                    Ok(b) => {
                        bound.insert(id);
                        info!(listener = %config.name, bind = %b.local_addr, broker = id, "broker joined: listening for it");
                        tokio::spawn(accept_loop(
                            b,
                            accept.backend.clone(),
                            accept.tracker.clone(),
                            accept.settings.clone(),
                            accept.security.clone(),
                            accept.stop.clone(),
                        ));
                    }
                    // Retried at the next change of the broker list.
                    Err(e) => warn!("broker {id} joined, but {e}"),
                }
            }
        }
    })
}

/// What an accept loop needs besides its socket.
struct AcceptParts {
    backend: Arc<dyn Backend>,
    tracker: Arc<ConnectionTracker>,
    settings: Arc<SessionSettings>,
    security: Arc<ListenerSecurity>,
    stop: watch::Receiver<bool>,
}

/// A listener's bootstrap port, plus one port per broker under port-per-broker addressing.
async fn bind_listener(
    listener: &ListenerConfig,
    broker_ids: &[i32],
) -> Result<(BoundListener, Vec<BoundListener>, Option<Arc<BrokerAddressing>>), StartupError> {
    let addressing = listener
        .broker_addressing()
        .map_err(|e| StartupError::InvalidConfig(vec![format!("listener {:?}: broker_addresses: {e}", listener.name)]))?
        .map(Arc::new);
    let main = bind(listener).await?;
    let mut broker_ports = Vec::new();
    if let Some(addressing) = addressing
        .as_deref()
        .filter(|a| matches!(a, BrokerAddressing::PortPerBroker { .. }))
    {
        for &id in broker_ids {
            let (_, port) = addressing.address_of(id).map_err(|e| {
                StartupError::InvalidConfig(vec![format!("listener {:?}: broker_addresses: {e}", listener.name)])
            })?;
            let port = u16::try_from(port).unwrap_or(0);
            broker_ports.push(bind_broker_port(&main.config, main.local_addr.ip(), id, port).await?);
        }
    }
    Ok((main, broker_ports, addressing))
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
