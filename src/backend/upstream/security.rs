//! kgate's own identity towards the upstream cluster: TLS trust (and an optional client
//! certificate) and SASL credentials, loaded once at start-up from `[backend.tls]` and
//! `[backend.sasl]`. Separate from how clients authenticate to kgate.
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::gssapi::GssapiInitiator;
use crate::config::{UpstreamSaslConfig, UpstreamTlsConfig};
use crate::listener::tls::{parse_certificates, parse_private_key, CERT_HINT};
use crate::security::sasl_client::{ClientMechanism, SaslClientConfig};

/// Everything a new upstream connection needs to secure itself.
#[derive(Debug, Clone, Default)]
pub struct UpstreamSecurity {
    pub tls: Option<Arc<ClientConfig>>,
    pub sasl: Option<UpstreamSasl>,
}

/// kgate's SASL identity upstream.
#[derive(Debug, Clone)]
pub enum UpstreamSasl {
    /// PLAIN or SCRAM with a user name and password.
    Password(Arc<SaslClientConfig>),
    Gssapi(Arc<GssapiInitiator>),
}

impl UpstreamSasl {
    pub fn mechanism(&self) -> &'static str {
        match self {
            UpstreamSasl::Password(c) => c.mechanism.name(),
            UpstreamSasl::Gssapi(_) => "GSSAPI",
        }
    }

    /// The identity kgate authenticates as (user name or Kerberos principal).
    pub fn identity(&self) -> &str {
        match self {
            UpstreamSasl::Password(c) => &c.username,
            UpstreamSasl::Gssapi(g) => g.principal(),
        }
    }
}

impl UpstreamSecurity {
    /// Loads the files; every problem is returned (for the start-up report).
    /// `krb5_conf`: `[kerberos] krb5_conf`, for GSSAPI.
    pub fn load(
        tls: Option<&UpstreamTlsConfig>,
        sasl: Option<&UpstreamSaslConfig>,
        krb5_conf: Option<&Path>,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let tls = tls.and_then(|t| load_tls(t).map_err(|e| problems.push(format!("backend.tls: {e}"))).ok());
        let sasl = sasl.and_then(|s| {
            load_sasl(s, krb5_conf)
                .map_err(|e| problems.push(format!("backend.sasl: {e}")))
                .ok()
        });
        if problems.is_empty() {
            Ok(UpstreamSecurity { tls, sasl })
        } else {
            Err(problems)
        }
    }

    pub fn protocol_name(&self) -> &'static str {
        match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

fn load_tls(config: &UpstreamTlsConfig) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca_pem = read(&config.ca, "ca")?;
    for cert in parse_certificates(
        "CA certificate",
        &config.ca,
        &ca_pem,
        " (the CA that signed the upstream brokers' certificates)",
    )
    .map_err(|e| e.to_string())?
    {
        roots
            .add(cert)
            .map_err(|e| format!("ca {}: unusable CA certificate: {e}", config.ca.display()))?;
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let client_config = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => {
            let chain =
                parse_certificates("certificate", cert, &read(cert, "cert")?, CERT_HINT).map_err(|e| e.to_string())?;
            let key = parse_private_key(key, &read(key, "key")?).map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("cert and key go together: set both or neither".into()),
    };
    Ok(Arc::new(client_config))
}

fn load_sasl(config: &UpstreamSaslConfig, krb5_conf: Option<&Path>) -> Result<UpstreamSasl, String> {
    if config.mechanism == "GSSAPI" {
        let principal = config.principal.as_deref().ok_or("GSSAPI needs principal")?;
        let initiator = GssapiInitiator::new(principal, config.keytab.as_deref(), &config.service_name, krb5_conf)?;
        return Ok(UpstreamSasl::Gssapi(Arc::new(initiator)));
    }
    let mechanism = ClientMechanism::from_name(&config.mechanism).ok_or_else(|| {
        format!(
            "mechanism {:?} is not supported upstream; use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or GSSAPI",
            config.mechanism
        )
    })?;
    let (Some(username), Some(password_file)) = (&config.username, &config.password_file) else {
        return Err(format!("{} needs username and password_file", config.mechanism));
    };
    let text = std::fs::read_to_string(password_file)
        .map_err(|e| format!("cannot read password_file {}: {e}", password_file.display()))?;
    // One trailing newline is what `echo pw > file` leaves; anything else is part of the password.
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(format!("password_file {} is empty", password_file.display()));
    }
    Ok(UpstreamSasl::Password(Arc::new(SaslClientConfig::new(
        mechanism,
        username.clone(),
        password.to_string(),
    ))))
}

/// The name a TLS connection to `host` verifies: a DNS name or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))
}
