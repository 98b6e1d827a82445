//! TLS for listeners: certificate/key loading with actionable errors, TLS 1.2 and 1.3 only (rustls with
//! the *ring* provider), optional or mandatory client certificates (mTLS), hot reload of the PEM files,
//! and the client certificate's subject DN as Java prints it (the input of `ssl.principal.mapping.rules`).
//!
//! Wiring: build one [`TlsAcceptorHandle`] per listener at start-up ([`TlsAcceptorHandle::load`] errors
//! are start-up errors), call [`TlsAcceptorHandle::acceptor`] for every accepted connection (it is cheap:
//! an `Arc` clone) so new handshakes pick up reloaded files, and run
//! [`TlsAcceptorHandle::spawn_reloader`] (abort its handle at shutdown). After the handshake,
//! [`peer_subject_dn`] gives the DN to map with
//! [`SslPrincipalMapper`](crate::security::ssl_principal::SslPrincipalMapper) on SSL listeners
//! (`None`: no client certificate, Kafka's `User:ANONYMOUS`).
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use tracing::{info, warn};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::config::{ClientAuth, TlsConfig};

/// The shortest reload poll period (a zero period would make `tokio::time::interval` panic).
const MIN_RELOAD_PERIOD: Duration = Duration::from_millis(100);

/// Why a listener's TLS files cannot be used. Every message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} file {}: {source}. Check the path in the listener's tls section", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the TLS {what} file {} is not valid PEM: {detail}. Expected '-----BEGIN ...-----' / '-----END ...-----' blocks", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("no certificate in the TLS {what} file {}: expected PEM blocks '-----BEGIN CERTIFICATE-----'{hint}", path.display())]
    NoCertificate {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("certificate #{index} in the TLS {what} file {} is not a valid X.509 certificate: {detail}", path.display())]
    BadCertificate {
        what: &'static str,
        path: PathBuf,
        /// 1-based position in the file.
        index: usize,
        detail: String,
    },
    #[error("no private key in the TLS key file {}: {hint}", path.display())]
    NoPrivateKey { path: PathBuf, hint: String },
    #[error("unsupported private key in {}: {detail}. Supported: RSA (2048 to 4096 bits), ECDSA P-256 or P-384, and Ed25519, unencrypted, as PEM 'PRIVATE KEY' (PKCS#8), 'RSA PRIVATE KEY' or 'EC PRIVATE KEY'", path.display())]
    UnsupportedKey { path: PathBuf, detail: String },
    #[error("the private key {} does not match the certificate {} (the first certificate in the file must be the one issued for this key): use the key the certificate was issued for", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("client_auth = \"{mode}\" needs client_ca: set client_ca to a PEM file with the CA certificate(s) that issue the client certificates")]
    ClientCaMissing { mode: &'static str },
    #[error("the TLS client_ca file {}: {detail}", path.display())]
    BadClientCa { path: PathBuf, detail: String },
    #[error("TLS configuration from {} and {}: {detail}", cert.display(), key.display())]
    Rustls {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

/// A listener's TLS server configuration, replaceable while the listener runs. Clones share it.
#[derive(Clone)]
pub struct TlsAcceptorHandle {
    inner: Arc<Inner>,
}

struct Inner {
    config: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    /// The files' contents as last looked at (whether they loaded or not), to notice changes.
    seen: Mutex<Snapshot>,
}

impl fmt::Debug for TlsAcceptorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptorHandle")
            .field("cert", &self.inner.config.cert)
            .field("key", &self.inner.config.key)
            .field("client_ca", &self.inner.config.client_ca)
            .field("client_auth", &self.inner.config.client_auth)
            .finish()
    }
}

/// The bytes of the cert, key and client CA files, or why one could not be read.
#[derive(PartialEq)]
struct Snapshot(Vec<Result<Vec<u8>, io::ErrorKind>>);

/// What a successful load produced, for the log line.
struct Loaded {
    server_config: Arc<ServerConfig>,
    summary: String,
}

impl TlsAcceptorHandle {
    /// Loads the certificate chain and key (and the client CA bundle when client certificates are
    /// requested or required) and builds a TLS 1.2/1.3 server configuration.
    pub fn load(config: &TlsConfig) -> Result<TlsAcceptorHandle, TlsError> {
        let snapshot = read_files(config);
        let loaded = build_from_snapshot(config, &snapshot)?;
        if config.client_ca.is_some() && config.client_auth == ClientAuth::None {
            warn!(
                client_ca = %config.client_ca.as_deref().unwrap_or(Path::new("")).display(),
                "client_ca is set but client_auth is \"none\": client certificates are not requested"
            );
        }
        info!(cert = %config.cert.display(), "TLS certificate loaded: {}", loaded.summary);
        Ok(TlsAcceptorHandle {
            inner: Arc::new(Inner {
                config: config.clone(),
                current: RwLock::new(loaded.server_config),
                seen: Mutex::new(snapshot),
            }),
        })
    }

    /// An acceptor for one new connection, using the newest configuration that loaded.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server_config())
    }

    /// The newest rustls configuration that loaded.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Checks the files every `every` (at least 100 ms) and reloads them when their contents changed.
    /// A change that does not load is logged with `warn!` and the previous configuration stays in use
    /// (it is retried when the files change again). Connections already open keep the configuration
    /// they were accepted with; only new handshakes use a new one. Runs until the handle is aborted.
    pub fn spawn_reloader(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let handle = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every.max(MIN_RELOAD_PERIOD));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await; // the first tick is immediate; the files were just loaded
            loop {
                ticker.tick().await;
                let step = handle.clone();
                match tokio::task::spawn_blocking(move || step.reload_if_changed()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => warn!(
                        cert = %handle.inner.config.cert.display(),
                        "TLS files changed but cannot be used; new connections keep using the previous certificate: {e}"
                    ),
                    Err(e) => warn!("TLS reload check did not finish: {e}"),
                }
            }
        })
    }

    /// One reload step: reads the files; when their contents differ from the last look, builds a new
    /// configuration and swaps it in. `Ok(true)`: swapped; `Ok(false)`: nothing changed; `Err`: the
    /// new files cannot be used and the previous configuration is kept (the same broken contents are
    /// not reported twice). Blocking file I/O: call from a blocking context.
    ///
    /// Contents rather than mtime/size are compared: a same-size rewrite within the file system's
    /// timestamp granularity (e.g. a renewed certificate) would otherwise go unnoticed.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let mut seen = self.inner.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let snapshot = read_files(&self.inner.config);
        if snapshot == *seen {
            return Ok(false);
        }
        let built = build_from_snapshot(&self.inner.config, &snapshot);
        *seen = snapshot;
        let loaded = built?;
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = loaded.server_config;
        info!(
            cert = %self.inner.config.cert.display(),
            "TLS files reloaded, new connections use them: {}", loaded.summary
        );
        Ok(true)
    }
}

/// After the handshake: the client certificate's subject DN as Java's `X500Principal.getName()`
/// (RFC 2253) prints it, e.g. `CN=alice,OU=Engineering,O=Example Corp,C=US`; `None` when the client
/// sent no certificate. Certificates whose subject cannot be read are refused during the handshake,
/// so a connection with a verified client certificate always has a DN.
pub fn peer_subject_dn(conn: &rustls::ServerConnection) -> Option<String> {
    let leaf = conn.peer_certificates()?.first()?;
    match subject_dn_rfc2253(leaf) {
        Ok(dn) => Some(dn),
        Err(e) => {
            warn!("client certificate subject cannot be read: {e}");
            None
        }
    }
}

/// The subject DN of a DER certificate in Java's RFC 2253 form (see [`peer_subject_dn`]).
pub fn subject_dn_rfc2253(cert_der: &[u8]) -> Result<String, String> {
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
    Ok(name_rfc2253(cert.subject()))
}

/// `X500Name.getRFC2253Name()`: RDNs last to first, joined with ','; the attributes of a multi-valued
/// RDN in their encoded order, joined with '+'.
fn name_rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| rdn.iter().map(ava_rfc2253).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// `AVA.toRFC2253String()`: `KEYWORD=value` for the RFC 2253 keywords with a string value, otherwise
/// `KEYWORD-or-OID=#hex-of-the-DER-value` (always the hex form for dotted OIDs).
fn ava_rfc2253(ava: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    let oid = ava.attr_type().to_id_string();
    let keyword = match oid.as_str() {
        "2.5.4.3" => Some("CN"),
        "2.5.4.6" => Some("C"),
        "2.5.4.7" => Some("L"),
        "2.5.4.8" => Some("ST"),
        "2.5.4.9" => Some("STREET"),
        "2.5.4.10" => Some("O"),
        "2.5.4.11" => Some("OU"),
        "0.9.2342.19200300.100.1.1" => Some("UID"),
        "0.9.2342.19200300.100.1.25" => Some("DC"),
        _ => None,
    };
    let value = ava.attr_value();
    let header = &value.header;
    // Java's isDerString(value, false): PrintableString, T61String, IA5String, GeneralString,
    // BMPString and UTF8String, universal and primitive.
    let is_string = header.class() == x509_parser::der_parser::asn1_rs::Class::Universal
        && !header.is_constructed()
        && matches!(header.tag().0, 0x13 | 0x14 | 0x16 | 0x1b | 0x1e | 0x0c);
    match keyword {
        // Java decodes the content bytes as UTF-8 whatever the string type (a BMPString's UTF-16
        // bytes included), replacing malformed sequences.
        Some(keyword) if is_string => format!(
            "{keyword}={}",
            escape_rfc2253_value(&String::from_utf8_lossy(value.data))
        ),
        _ => {
            let mut out = format!("{}=#", keyword.unwrap_or(&oid));
            let der = der_reencode(
                header.class() as u8,
                header.is_constructed(),
                header.tag().0,
                value.data,
            );
            for b in der {
                out.push_str(&format!("{b:02x}"));
            }
            out
        }
    }
}

/// The DER encoding of a value from its identifier and content (`DerValue.toByteArray()`; lengths in
/// their shortest form).
fn der_reencode(class: u8, constructed: bool, tag: u32, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 8);
    let first = (class << 6) | if constructed { 0x20 } else { 0 };
    if tag < 31 {
        out.push(first | tag as u8);
    } else {
        out.push(first | 0x1f);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().enumerate().rev() {
            out.push(if i == 0 { *g } else { g | 0x80 });
        }
    }
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Java's RFC 2253 value escaping: `,=+<>#;"\` get a backslash anywhere, NUL becomes `\00`, leading
/// and trailing spaces and carriage returns get a backslash; everything else is kept as is.
fn escape_rfc2253_value(value: &str) -> String {
    let mut escaped: Vec<char> = Vec::with_capacity(value.len() + 4);
    for c in value.chars() {
        match c {
            ',' | '=' | '+' | '<' | '>' | '#' | ';' | '"' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '\0' => escaped.extend(['\\', '0', '0']),
            c => escaped.push(c),
        }
    }
    let is_space = |c: &char| *c == ' ' || *c == '\r';
    let lead = escaped.iter().take_while(|c| is_space(c)).count();
    let trail = escaped.len() - escaped.iter().rev().take_while(|c| is_space(c)).count();
    let mut out = String::with_capacity(escaped.len() + 2);
    for (i, c) in escaped.into_iter().enumerate() {
        if i < lead || i >= trail {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn read_files(config: &TlsConfig) -> Snapshot {
    let read = |p: &Path| std::fs::read(p).map_err(|e| e.kind());
    let mut files = vec![read(&config.cert), read(&config.key)];
    if config.client_auth != ClientAuth::None {
        if let Some(ca) = &config.client_ca {
            files.push(read(ca));
        }
    }
    Snapshot(files)
}

fn build_from_snapshot(config: &TlsConfig, snapshot: &Snapshot) -> Result<Loaded, TlsError> {
    let file = |i: usize, what: &'static str, path: &Path| -> Result<Vec<u8>, TlsError> {
        match snapshot.0.get(i) {
            Some(Ok(bytes)) => Ok(bytes.clone()),
            // Read again for the full error text (the snapshot only keeps the kind).
            Some(Err(kind)) => Err(TlsError::Read {
                what,
                path: path.to_path_buf(),
                source: std::fs::read(path).err().unwrap_or_else(|| io::Error::from(*kind)),
            }),
            None => Err(TlsError::Read {
                what,
                path: path.to_path_buf(),
                source: io::Error::from(io::ErrorKind::NotFound),
            }),
        }
    };
    let cert_pem = file(0, "certificate", &config.cert)?;
    let key_pem = file(1, "key", &config.key)?;
    let client_ca_pem = match (config.client_auth, &config.client_ca) {
        (ClientAuth::None, _) => None,
        (mode, None) => {
            return Err(TlsError::ClientCaMissing {
                mode: if mode == ClientAuth::Required {
                    "required"
                } else {
                    "requested"
                },
            })
        }
        (_, Some(path)) => Some((path.as_path(), file(2, "client_ca", path)?)),
    };
    build(config, &cert_pem, &key_pem, client_ca_pem)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(
    config: &TlsConfig,
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca: Option<(&Path, Vec<u8>)>,
) -> Result<Loaded, TlsError> {
    let provider = provider();
    let chain = parse_certificates("certificate", &config.cert, cert_pem, CERT_HINT)?;
    let summary = check_leaf(&config.cert, &chain)?;
    let key = parse_private_key(&config.key, key_pem)?;

    let signing_key =
        provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| TlsError::UnsupportedKey {
                path: config.key.clone(),
                detail: e.to_string(),
            })?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                cert: config.cert.clone(),
                key: config.key.clone(),
            })
        }
        Err(e) => {
            return Err(TlsError::BadCertificate {
                what: "certificate",
                path: config.cert.clone(),
                index: 1,
                detail: e.to_string(),
            })
        }
    }

    let rustls_error = |e: rustls::Error| TlsError::Rustls {
        cert: config.cert.clone(),
        key: config.key.clone(),
        detail: e.to_string(),
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(rustls_error)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some((path, pem)) => {
            let verifier = client_verifier(path, &pem, config.client_auth, provider)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server_config = builder.with_single_cert(chain, key).map_err(rustls_error)?;
    Ok(Loaded {
        server_config: Arc::new(server_config),
        summary,
    })
}

pub(crate) const CERT_HINT: &str = " (the server certificate first, then any intermediate CA certificates)";

pub(crate) fn parse_certificates(
    what: &'static str,
    path: &Path,
    pem: &[u8],
    hint: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut certs = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        match item {
            Ok((SectionKind::Certificate, der)) => certs.push(CertificateDer::from(der)),
            Ok(_) => {}
            Err(e) => {
                return Err(TlsError::Pem {
                    what,
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })
            }
        }
    }
    if certs.is_empty() {
        let hint = if looks_like_key(pem) {
            " (this file holds a private key: are cert and key swapped?)"
        } else {
            hint
        };
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
            hint,
        });
    }
    for (i, der) in certs.iter().enumerate() {
        if let Err(e) = X509Certificate::from_der(der) {
            return Err(TlsError::BadCertificate {
                what,
                path: path.to_path_buf(),
                index: i + 1,
                detail: e.to_string(),
            });
        }
    }
    Ok(certs)
}

fn looks_like_key(pem: &[u8]) -> bool {
    pem.windows(b"PRIVATE KEY-----".len()).any(|w| w == b"PRIVATE KEY-----")
}

/// Checks the leaf certificate's validity period (an expired one is loaded, with a warning: clients
/// will refuse it) and returns a one-line summary for the logs.
fn check_leaf(path: &Path, chain: &[CertificateDer<'static>]) -> Result<String, TlsError> {
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            what: "certificate",
            path: path.to_path_buf(),
            hint: CERT_HINT,
        });
    };
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| TlsError::BadCertificate {
        what: "certificate",
        path: path.to_path_buf(),
        index: 1,
        detail: e.to_string(),
    })?;
    let validity = cert.validity();
    if !validity.is_valid() {
        warn!(
            cert = %path.display(),
            not_before = %validity.not_before,
            not_after = %validity.not_after,
            "the TLS certificate is not valid now; clients will reject it"
        );
    }
    Ok(format!(
        "subject \"{}\", serial {}, valid until {}",
        name_rfc2253(cert.subject()),
        cert.raw_serial_as_string(),
        validity.not_after
    ))
}

pub(crate) fn parse_private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        match item {
            Ok((SectionKind::PrivateKey, der)) => return Ok(PrivateKeyDer::Pkcs8(der.into())),
            Ok((SectionKind::RsaPrivateKey, der)) => return Ok(PrivateKeyDer::Pkcs1(der.into())),
            Ok((SectionKind::EcPrivateKey, der)) => return Ok(PrivateKeyDer::Sec1(der.into())),
            Ok(_) => {}
            Err(e) => {
                return Err(TlsError::Pem {
                    what: "key",
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })
            }
        }
    }
    let text = String::from_utf8_lossy(pem);
    let hint = if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        "the key is encrypted, which is not supported; decrypt it (e.g. `openssl pkey -in KEY -out PLAIN_KEY`) and keep the file readable only by kgate".to_string()
    } else if text.contains("-----BEGIN CERTIFICATE-----") {
        "this file holds a certificate, not a key: are cert and key swapped?".to_string()
    } else {
        "expected a PEM block '-----BEGIN PRIVATE KEY-----', '-----BEGIN RSA PRIVATE KEY-----' or '-----BEGIN EC PRIVATE KEY-----'".to_string()
    };
    Err(TlsError::NoPrivateKey {
        path: path.to_path_buf(),
        hint,
    })
}

fn client_verifier(
    path: &Path,
    pem: &[u8],
    mode: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let cas = parse_certificates(
        "client_ca",
        path,
        pem,
        " (the CA certificate(s) that issue client certificates)",
    )?;
    let mut roots = RootCertStore::empty();
    for (i, ca) in cas.into_iter().enumerate() {
        roots.add(ca).map_err(|e| TlsError::BadClientCa {
            path: path.to_path_buf(),
            detail: format!("certificate #{} cannot be used as a trust anchor: {e}", i + 1),
        })?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if mode == ClientAuth::Requested {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    let inner = builder.build().map_err(|e| TlsError::BadClientCa {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok(Arc::new(SubjectCheckingVerifier { inner }))
}

/// WebPKI client certificate verification, plus: the subject DN must be readable, so that
/// [`peer_subject_dn`] never answers `None` (anonymous) for a client that did present a certificate.
#[derive(Debug)]
struct SubjectCheckingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for SubjectCheckingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        subject_dn_rfc2253(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests;
