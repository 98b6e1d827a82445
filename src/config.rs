//! Configuration: a TOML tree with Kafka's vocabulary, defaults that need no file, and
//! `validate()` that reports every problem at once before any port is bound.
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::StartupError;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where topics, committed offsets and broker metadata live.
    pub data_dir: PathBuf,
    pub listeners: Vec<ListenerConfig>,
    pub broker: BrokerConfig,
    pub network: NetworkConfig,
    pub security: SecurityConfig,
    /// GSSAPI (Kerberos) settings; required when a listener enables GSSAPI.
    pub kerberos: Option<KerberosConfig>,
    /// Where requests go: the embedded broker (default) or an existing Kafka cluster.
    pub backend: BackendConfig,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The persistent single-node broker inside kgate (`data_dir`, `[broker]`).
    #[default]
    Embedded,
    /// An existing Kafka cluster reached through `bootstrap`.
    Upstream,
}

/// `[backend]`: kgate's side of the connection to an upstream cluster.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    pub kind: BackendKind,
    /// Upstream brokers to discover the cluster from, `HOST:PORT` each (bootstrap.servers).
    pub bootstrap: Vec<String>,
    /// kgate's own SASL identity upstream.
    pub sasl: Option<UpstreamSaslConfig>,
    /// TLS to the upstream brokers.
    pub tls: Option<UpstreamTlsConfig>,
    /// How often kgate re-reads the upstream's broker list (brokers that join get their port).
    pub metadata_refresh_ms: u64,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            kind: BackendKind::Embedded,
            bootstrap: Vec::new(),
            sasl: None,
            tls: None,
            metadata_refresh_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSaslConfig {
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or GSSAPI.
    pub mechanism: String,
    /// PLAIN and SCRAM: the user name.
    #[serde(default)]
    pub username: Option<String>,
    /// PLAIN and SCRAM: a file holding the password (one trailing newline is ignored); keep it 0600.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// GSSAPI: kgate's Kerberos principal, e.g. "kgate@EXAMPLE.COM".
    #[serde(default)]
    pub principal: Option<String>,
    /// GSSAPI: the keytab holding `principal` (default: the ticket cache in KRB5CCNAME).
    #[serde(default)]
    pub keytab: Option<PathBuf>,
    /// GSSAPI: sasl.kerberos.service.name of the upstream brokers.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM CA bundle the upstream brokers' certificates must chain to; their names are checked.
    pub ca: PathBuf,
    /// Client certificate chain and key, when the upstream requires mTLS.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AddressScheme {
    /// Broker N is `host:(base_port + N)`; kgate listens on each of those ports.
    PortPerBroker,
    /// Broker N is `pattern` with `{id}` replaced, on the listener's own TLS port; kgate routes by SNI.
    Sni,
}

/// `[listeners.broker_addresses]`: how the brokers behind kgate are shown to this listener's clients.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BrokerAddressesConfig {
    pub scheme: AddressScheme,
    /// port_per_broker: the host clients reach kgate at; defaults to the advertised host.
    #[serde(default)]
    pub host: Option<String>,
    /// port_per_broker: broker N is advertised (and served) on base_port + N.
    #[serde(default)]
    pub base_port: Option<u16>,
    /// sni: e.g. "broker-{id}.kafka.example.com".
    #[serde(default)]
    pub pattern: Option<String>,
    /// port_per_broker: explicit addresses that replace base_port + N, e.g. { "1" = "kafka.example.com:9201" }.
    #[serde(default)]
    pub brokers: std::collections::BTreeMap<String, String>,
}

/// The broker side of Kerberos, named after Kafka's sasl.kerberos.* settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KerberosConfig {
    /// Keytab holding `service_name/<advertised host>@REALM` for every GSSAPI listener.
    pub keytab: PathBuf,
    /// sasl.kerberos.service.name: the first component of the service principal clients ask for.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// krb5.conf to use; otherwise the usual KRB5_CONFIG / /etc/krb5.conf lookup.
    #[serde(default)]
    pub krb5_conf: Option<PathBuf>,
    /// sasl.kerberos.principal.to.local.rules, first match wins.
    #[serde(default = "default_principal_to_local_rules")]
    pub principal_to_local_rules: Vec<String>,
    /// Start even when an advertised host has no `service/<host>@REALM` in the keytab (the start-up
    /// check otherwise refuses, because every client of that listener would fail).
    #[serde(default)]
    pub skip_startup_checks: bool,
}

fn default_service_name() -> String {
    "kafka".into()
}

fn default_principal_to_local_rules() -> Vec<String> {
    vec!["DEFAULT".into()]
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            listeners: vec![ListenerConfig::default()],
            broker: BrokerConfig::default(),
            network: NetworkConfig::default(),
            security: SecurityConfig::default(),
            kerberos: None,
            backend: BackendConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum SecurityProtocol {
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    #[serde(rename = "SSL")]
    Ssl,
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Kafka's listener name, e.g. PLAINTEXT or EXTERNAL.
    pub name: String,
    /// The local address to listen on, `IP:PORT`.
    pub bind: String,
    /// `HOST:PORT` given to clients in Metadata and FindCoordinator. Defaults to `bind`.
    #[serde(default)]
    pub advertised: Option<String>,
    #[serde(default = "default_security_protocol")]
    pub security_protocol: SecurityProtocol,
    /// sasl.enabled.mechanisms for this listener: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (GSSAPI later).
    #[serde(default)]
    pub sasl_enabled_mechanisms: Vec<String>,
    /// Required for SSL and SASL_SSL listeners.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// How brokers are advertised to this listener's clients (required in upstream mode).
    #[serde(default)]
    pub broker_addresses: Option<BrokerAddressesConfig>,
}

/// ssl.client.auth
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    None,
    Requested,
    Required,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, server certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA bundle that client certificates must chain to (mTLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// Who may connect and as whom; shared by every listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// SCRAM credentials (salted and hashed, never passwords); managed with `kgate users`.
    pub users_file: Option<PathBuf>,
    /// super.users: principals allowed everything, e.g. "User:admin".
    pub super_users: Vec<String>,
    /// ssl.principal.mapping.rules, applied to the client certificate's subject DN.
    pub ssl_principal_mapping_rules: Vec<String>,
    /// connections.max.reauth.ms: 0 = sessions never expire (KIP-368).
    pub connections_max_reauth_ms: i64,
    /// connection.failed.authentication.delay.ms
    pub failed_authentication_delay_ms: u64,
    /// sasl.server.max.receive.size: the largest frame accepted before authentication completes.
    pub sasl_server_max_receive_size: usize,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            users_file: None,
            super_users: Vec::new(),
            ssl_principal_mapping_rules: vec!["DEFAULT".into()],
            connections_max_reauth_ms: 0,
            failed_authentication_delay_ms: 100,
            sasl_server_max_receive_size: 524_288,
        }
    }
}

fn default_security_protocol() -> SecurityProtocol {
    SecurityProtocol::Plaintext
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            name: "PLAINTEXT".into(),
            bind: "127.0.0.1:9092".into(),
            advertised: None,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_enabled_mechanisms: Vec::new(),
            tls: None,
            broker_addresses: None,
        }
    }
}

impl ListenerConfig {
    /// The broker addressing of `[listeners.broker_addresses]`, or `None` when the section is absent.
    pub fn broker_addressing(&self) -> Result<Option<crate::rewrite::BrokerAddressing>, String> {
        use crate::rewrite::BrokerAddressing;
        let Some(b) = &self.broker_addresses else {
            return Ok(None);
        };
        let (advertised_host, advertised_port) = self.advertised_host_port();
        let addressing = match b.scheme {
            AddressScheme::PortPerBroker => {
                let base_port = b
                    .base_port
                    .ok_or("scheme \"port_per_broker\" needs base_port (broker N is served on base_port + N)")?;
                let mut explicit = std::collections::BTreeMap::new();
                for (id, addr) in &b.brokers {
                    let id: i32 = id
                        .parse()
                        .map_err(|_| format!("brokers: key {id:?} is not a broker id (use \"0\", \"1\", ...)"))?;
                    let (h, p) =
                        split_host_port(addr).ok_or_else(|| format!("brokers.{id}: {addr:?} is not HOST:PORT"))?;
                    explicit.insert(id, (h.to_string(), i32::from(p)));
                }
                if b.pattern.is_some() {
                    return Err("pattern belongs to scheme \"sni\"; remove it or change the scheme".into());
                }
                BrokerAddressing::PortPerBroker {
                    host: b.host.clone().unwrap_or(advertised_host),
                    base_port: i32::from(base_port),
                    explicit,
                }
            }
            AddressScheme::Sni => {
                if !matches!(
                    self.security_protocol,
                    SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
                ) {
                    return Err(format!(
                        "scheme \"sni\" routes by the TLS server name, but security_protocol is {}; use SSL or SASL_SSL",
                        self.security_protocol.as_str()
                    ));
                }
                if b.base_port.is_some() || b.host.is_some() || !b.brokers.is_empty() {
                    return Err(
                        "host, base_port and brokers belong to scheme \"port_per_broker\"; sni uses pattern".into(),
                    );
                }
                let pattern = b
                    .pattern
                    .clone()
                    .ok_or("scheme \"sni\" needs pattern, e.g. \"broker-{id}.kafka.example.com\"")?;
                BrokerAddressing::Sni {
                    pattern,
                    port: advertised_port,
                }
            }
        };
        addressing.validate().map_err(|e| e.to_string())?;
        Ok(Some(addressing))
    }

    /// The advertised `(host, port)`; only meaningful after `validate()` succeeded.
    pub fn advertised_host_port(&self) -> (String, i32) {
        let text = self.advertised.as_deref().unwrap_or(&self.bind);
        split_host_port(text)
            .map(|(h, p)| (h.to_string(), i32::from(p)))
            .unwrap_or_default()
    }
}

/// The embedded broker's settings, named after Kafka's broker configs (dots become underscores).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// broker.id / node.id.
    pub node_id: i32,
    /// auto.create.topics.enable: Metadata and Produce create unknown topics.
    pub auto_create_topics: bool,
    /// num.partitions: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// log.segment.bytes
    pub log_segment_bytes: u64,
    /// log.roll.ms
    pub log_roll_ms: i64,
    /// log.retention.ms (-1: keep forever)
    pub log_retention_ms: i64,
    /// log.retention.bytes per partition (-1: no limit)
    pub log_retention_bytes: i64,
    /// log.retention.check.interval.ms
    pub log_retention_check_interval_ms: u64,
    /// message.max.bytes: the largest record batch accepted.
    pub message_max_bytes: usize,
    /// group.initial.rebalance.delay.ms
    pub group_initial_rebalance_delay_ms: u64,
    /// group.min.session.timeout.ms
    pub group_min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms
    pub group_max_session_timeout_ms: i32,
    /// offsets.retention.minutes
    pub offsets_retention_minutes: i64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 0,
            auto_create_topics: true,
            num_partitions: 1,
            log_segment_bytes: 1 << 30,
            log_roll_ms: 7 * 24 * 3600 * 1000,
            log_retention_ms: 7 * 24 * 3600 * 1000,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            message_max_bytes: 1_048_588,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_retention_minutes: 7 * 24 * 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// socket.request.max.bytes: a larger frame closes the connection.
    pub socket_request_max_bytes: usize,
    /// How long SIGTERM waits for in-flight requests before closing connections.
    pub shutdown_timeout_ms: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            socket_request_max_bytes: 104_857_600,
            shutdown_timeout_ms: 30_000,
        }
    }
}

impl Config {
    /// Reads and validates a config file; every problem is reported at once.
    pub fn load(path: &Path) -> Result<Config, StartupError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartupError::InvalidConfig(vec![format!("cannot read {}: {e}", path.display())]))?;
        Config::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Config, StartupError> {
        let config: Config = toml::from_str(text).map_err(|e| StartupError::InvalidConfig(vec![e.to_string()]))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), StartupError> {
        let mut problems = Vec::new();
        if self.listeners.is_empty() {
            problems.push(
                "no [[listeners]]: add at least one, e.g. name = \"PLAINTEXT\", bind = \"127.0.0.1:9092\"".into(),
            );
        }
        let mut names = HashSet::new();
        let mut binds = HashSet::new();
        for l in &self.listeners {
            let who = format!("listener {:?}", l.name);
            if l.name.is_empty()
                || !l
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                problems.push(format!(
                    "{who}: the name must be letters, digits, '_' or '-' (like Kafka's listener names)"
                ));
            }
            if !names.insert(l.name.to_ascii_uppercase()) {
                problems.push(format!("{who}: the name is used twice; listener names must be unique"));
            }
            match l.bind.parse::<SocketAddr>() {
                Ok(addr) => {
                    if !binds.insert(addr) {
                        problems.push(format!("{who}: bind {} is used by another listener", l.bind));
                    }
                }
                Err(_) => problems.push(format!(
                    "{who}: bind {:?} is not IP:PORT (e.g. \"127.0.0.1:9092\" or \"0.0.0.0:9092\")",
                    l.bind
                )),
            }
            let advertised = l.advertised.as_deref().unwrap_or(&l.bind);
            match split_host_port(advertised) {
                Some((host, port)) => {
                    if host == "0.0.0.0" || host == "::" || host == "[::]" {
                        problems.push(format!(
                            "{who}: advertised host {host} is the non-routable meta-address; clients cannot connect to it. Set `advertised = \"HOST:PORT\"` to a name or address clients can reach"
                        ));
                    }
                    if port == 0 && l.advertised.is_some() {
                        problems.push(format!(
                            "{who}: advertised port 0 is not reachable; advertise the port clients connect to"
                        ));
                    }
                }
                None => problems.push(format!("{who}: advertised {advertised:?} is not HOST:PORT")),
            }
            let sasl = matches!(
                l.security_protocol,
                SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
            );
            let tls = matches!(l.security_protocol, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl);
            let protocol = l.security_protocol.as_str();
            match (&l.tls, tls) {
                (None, true) => problems.push(format!(
                    "{who}: security_protocol {protocol} needs a [listeners.tls] section with `cert` and `key` (kgate certs dev makes a dev set)"
                )),
                (Some(_), false) => problems.push(format!(
                    "{who}: [listeners.tls] is set but security_protocol is {protocol}; use SSL or SASL_SSL, or remove the tls section"
                )),
                (Some(t), true) => {
                    if t.client_auth != ClientAuth::None && t.client_ca.is_none() {
                        problems.push(format!(
                            "{who}: tls.client_auth = {:?} needs tls.client_ca, the CA bundle client certificates must chain to",
                            t.client_auth
                        ));
                    }
                }
                (None, false) => {}
            }
            if sasl && l.sasl_enabled_mechanisms.is_empty() {
                problems.push(format!(
                    "{who}: security_protocol {protocol} needs sasl_enabled_mechanisms, e.g. [\"SCRAM-SHA-512\", \"PLAIN\"]"
                ));
            }
            if !sasl && !l.sasl_enabled_mechanisms.is_empty() {
                problems.push(format!(
                    "{who}: sasl_enabled_mechanisms is set but security_protocol is {protocol}; use SASL_PLAINTEXT or SASL_SSL"
                ));
            }
            for m in &l.sasl_enabled_mechanisms {
                if m == "GSSAPI" {
                    if self.kerberos.is_none() {
                        problems.push(format!(
                            "{who}: GSSAPI needs a [kerberos] section with the keytab that holds kafka/<advertised host>@REALM"
                        ));
                    }
                } else if !crate::security::SUPPORTED_MECHANISMS.contains(&m.as_str()) {
                    problems.push(format!(
                        "{who}: SASL mechanism {m:?} is not supported; kgate supports GSSAPI and {:?} (names are case-sensitive, as in Kafka)",
                        crate::security::SUPPORTED_MECHANISMS
                    ));
                }
            }
            let needs_users = l.sasl_enabled_mechanisms.iter().any(|m| m != "GSSAPI");
            if needs_users && self.security.users_file.is_none() {
                problems.push(format!(
                    "{who}: PLAIN and SCRAM need security.users_file (create it with `kgate users add NAME --users-file FILE`)"
                ));
            }
        }
        for l in &self.listeners {
            if let Err(e) = l.broker_addressing() {
                problems.push(format!("listener {:?}: broker_addresses: {e}", l.name));
            }
        }
        self.validate_backend(&mut problems);
        let b = &self.broker;
        if b.node_id < 0 {
            problems.push(format!("broker.node_id {} must be >= 0", b.node_id));
        }
        if b.num_partitions < 1 {
            problems.push(format!("broker.num_partitions {} must be >= 1", b.num_partitions));
        }
        if b.log_segment_bytes < 14 {
            problems.push(format!(
                "broker.log_segment_bytes {} must be >= 14 (Kafka's minimum)",
                b.log_segment_bytes
            ));
        }
        if b.log_roll_ms < 1 {
            problems.push(format!("broker.log_roll_ms {} must be >= 1", b.log_roll_ms));
        }
        if b.log_retention_ms < -1 {
            problems.push(format!(
                "broker.log_retention_ms {} must be -1 (forever) or >= 0",
                b.log_retention_ms
            ));
        }
        if b.log_retention_bytes < -1 {
            problems.push(format!(
                "broker.log_retention_bytes {} must be -1 (no limit) or >= 0",
                b.log_retention_bytes
            ));
        }
        if b.log_retention_check_interval_ms < 1 {
            problems.push("broker.log_retention_check_interval_ms must be >= 1".into());
        }
        if b.message_max_bytes < 64 {
            problems.push(format!(
                "broker.message_max_bytes {} is too small for any record batch",
                b.message_max_bytes
            ));
        }
        if b.group_min_session_timeout_ms > b.group_max_session_timeout_ms {
            problems.push(format!(
                "broker.group_min_session_timeout_ms {} is above group_max_session_timeout_ms {}",
                b.group_min_session_timeout_ms, b.group_max_session_timeout_ms
            ));
        }
        if b.offsets_retention_minutes < 1 {
            problems.push("broker.offsets_retention_minutes must be >= 1".into());
        }
        if self.network.socket_request_max_bytes < 1024 || self.network.socket_request_max_bytes > i32::MAX as usize {
            problems.push(format!(
                "network.socket_request_max_bytes {} must be between 1024 and {}",
                self.network.socket_request_max_bytes,
                i32::MAX
            ));
        }
        if let Err(e) =
            crate::security::ssl_principal::SslPrincipalMapper::parse(&self.security.ssl_principal_mapping_rules)
        {
            problems.push(format!("security.ssl_principal_mapping_rules: {e}"));
        }
        if self.security.connections_max_reauth_ms < 0 {
            problems.push("security.connections_max_reauth_ms must be >= 0 (0: sessions never expire)".into());
        }
        if self.security.sasl_server_max_receive_size < 64 {
            problems.push("security.sasl_server_max_receive_size is too small for any SASL token".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StartupError::InvalidConfig(problems))
        }
    }
}

impl Config {
    fn validate_backend(&self, problems: &mut Vec<String>) {
        let backend = &self.backend;
        match backend.kind {
            BackendKind::Embedded => {
                if !backend.bootstrap.is_empty() || backend.sasl.is_some() || backend.tls.is_some() {
                    problems.push(
                        "backend: bootstrap, sasl and tls apply to kind = \"upstream\"; set it, or remove them".into(),
                    );
                }
            }
            BackendKind::Upstream => {
                if backend.metadata_refresh_ms < 100 {
                    problems.push("backend.metadata_refresh_ms must be >= 100".into());
                }
                if backend.bootstrap.is_empty() {
                    problems.push(
                        "backend.bootstrap is empty: list the upstream brokers, e.g. [\"kafka-1.internal:9092\"]"
                            .into(),
                    );
                }
                for addr in &backend.bootstrap {
                    if split_host_port(addr).is_none_or(|(_, port)| port == 0) {
                        problems.push(format!("backend.bootstrap: {addr:?} is not HOST:PORT"));
                    }
                }
                if let Some(sasl) = &backend.sasl {
                    let password = (sasl.username.is_some(), sasl.password_file.is_some());
                    let kerberos = sasl.principal.is_some() || sasl.keytab.is_some();
                    if sasl.mechanism == "GSSAPI" {
                        if sasl.principal.as_deref().is_none_or(str::is_empty) {
                            problems.push(
                                "backend.sasl: GSSAPI needs principal (kgate's Kerberos principal, e.g. \"kgate@EXAMPLE.COM\") and usually keytab".into(),
                            );
                        }
                        if password != (false, false) {
                            problems.push(
                                "backend.sasl: username and password_file belong to PLAIN and SCRAM, not GSSAPI".into(),
                            );
                        }
                    } else if crate::security::sasl_client::ClientMechanism::from_name(&sasl.mechanism).is_none() {
                        problems.push(format!(
                            "backend.sasl.mechanism {:?} is not supported upstream; use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or GSSAPI",
                            sasl.mechanism
                        ));
                    } else {
                        if password != (true, true) || sasl.username.as_deref().is_some_and(str::is_empty) {
                            problems.push(format!(
                                "backend.sasl: {} needs username and password_file",
                                sasl.mechanism
                            ));
                        }
                        if kerberos {
                            problems.push("backend.sasl: principal and keytab belong to GSSAPI".into());
                        }
                    }
                }
                for l in &self.listeners {
                    if l.broker_addresses.is_none() {
                        problems.push(format!(
                            "listener {:?}: upstream mode needs [listeners.broker_addresses] so that clients get addresses of kgate, not of the upstream brokers (e.g. scheme = \"port_per_broker\", base_port = 9100)",
                            l.name
                        ));
                    }
                }
            }
        }
    }
}

/// Splits `host:port`, `[v6]:port`; `None` when there is no valid port.
pub fn split_host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match Config::parse(text) {
            Err(StartupError::InvalidConfig(p)) => p,
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listeners[0].advertised_host_port(), ("127.0.0.1".to_string(), 9092));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let p = problems("[broker]\nnode_idd = 3\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("node_idd"), "{p:?}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems(
            r#"
            [[listeners]]
            name = "A"
            bind = "127.0.0.1:9"
            advertised = "0.0.0.0:9"
            [[listeners]]
            name = "a"
            bind = "nonsense"
            [broker]
            num_partitions = 0
            node_id = -1
            "#,
        );
        assert_eq!(p.len(), 6, "{p:#?}");
        assert!(p.iter().any(|x| x.contains("meta-address")));
        assert!(p.iter().any(|x| x.contains("used twice")));
        assert!(p.iter().any(|x| x.contains("not IP:PORT")));
    }

    #[test]
    fn host_port_split() {
        assert_eq!(
            split_host_port("kafka.example.com:9093"),
            Some(("kafka.example.com", 9093))
        );
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1", 9092)));
        assert_eq!(split_host_port("nohost"), None);
        assert_eq!(split_host_port(":9092"), None);
    }
}
