//! `kgate certs`: certificates for development and tests (a throw-away CA, a server certificate and
//! client certificates), so TLS and mTLS listeners can be tried without an existing PKI.
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Subject of the client certificates: `CN=NAME,OU=kgate-dev,O=kgate` (RFC 2253 order).
const DEV_O: &str = "kgate";
const DEV_OU: &str = "kgate-dev";
const CA_CN: &str = "kgate development CA";

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum CertsCommand {
    /// Create a development CA, a server certificate and client certificates (not for production).
    #[command(
        long_about = "Create a throw-away certificate authority and certificates signed by it, for \
trying TLS (SSL, SASL_SSL) and mTLS listeners locally. Not for production: anyone holding ca.key can \
issue certificates that clients and kgate trust.\n\n\
Writes into --out:\n  \
ca.pem, ca.key           the CA certificate (give it to clients as their trust store) and its key\n  \
server.pem, server.key   the server certificate (SANs from --san) and its key\n  \
NAME.pem, NAME.key       per --client NAME: subject CN=NAME,OU=kgate-dev,O=kgate\n\n\
Keys are unencrypted PKCS#8 PEM (ECDSA P-256), written with mode 0600; certificates with mode 0644. \
Existing files are not replaced unless --force is given. Prints a listener configuration snippet \
and client settings at the end.\n\n\
Example: kgate certs dev --out ./certs --san localhost --san 127.0.0.1 --client alice"
    )]
    Dev {
        /// Directory to write the files into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A DNS name or IP address the server certificate is valid for. Repeat for several; giving any
        /// replaces the default (localhost and 127.0.0.1). The first one is also the subject CN.
        #[arg(
            long = "san",
            value_name = "NAME_OR_IP",
            default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()]
        )]
        san: Vec<String>,
        /// Also create a client certificate for mTLS with subject CN=NAME,OU=kgate-dev,O=kgate, written
        /// to NAME.pem and NAME.key. NAME: letters, digits, '.', '_' and '-'. Repeat for several.
        #[arg(long = "client", value_name = "NAME")]
        client: Vec<String>,
        /// How many days the certificates are valid (1 to 3650).
        #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        /// Replace files that already exist.
        #[arg(long)]
        force: bool,
    },
}

/// Runs a `kgate certs` command; prints what it did (stdout) or what went wrong (stderr).
pub fn run(cmd: CertsCommand) -> ExitCode {
    match cmd {
        CertsCommand::Dev {
            out,
            san,
            client,
            days,
            force,
        } => match dev(&out, &san, &client, days, force) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kgate certs dev: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// Bad arguments (exit code 64, EX_USAGE).
    #[error("{0}")]
    Usage(String),
    /// Files exist and --force was not given (exit code 73, EX_CANTCREAT).
    #[error("not replacing existing files (use --force to replace them): {}", list_paths(.0))]
    Exists(Vec<PathBuf>),
    /// Writing failed (exit code 74, EX_IOERR).
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Key or certificate generation failed (exit code 70, EX_SOFTWARE).
    #[error("cannot generate {what}: {detail}")]
    Generate { what: String, detail: String },
}

impl CertsError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CertsError::Usage(_) => 64,
            CertsError::Exists(_) => 73,
            CertsError::Io { .. } => 74,
            CertsError::Generate { .. } => 70,
        }
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One file to write.
struct Output {
    path: PathBuf,
    contents: String,
    secret: bool,
    description: String,
}

/// `kgate certs dev`: validates everything, refuses to overwrite unless `force`, generates, writes,
/// and returns the text to print.
pub fn dev(out: &Path, sans: &[String], clients: &[String], days: u32, force: bool) -> Result<String, CertsError> {
    let sans = parse_sans(sans)?;
    let clients = check_client_names(clients)?;
    if !(1..=3650).contains(&days) {
        return Err(CertsError::Usage(format!("--days {days}: must be 1 to 3650")));
    }
    let out = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());

    let mut names = vec![
        "ca.pem".to_string(),
        "ca.key".into(),
        "server.pem".into(),
        "server.key".into(),
    ];
    for c in &clients {
        names.push(format!("{c}.pem"));
        names.push(format!("{c}.key"));
    }
    if !force {
        let existing: Vec<PathBuf> = names
            .iter()
            .map(|n| out.join(n))
            .filter(|p| p.symlink_metadata().is_ok())
            .collect();
        if !existing.is_empty() {
            return Err(CertsError::Exists(existing));
        }
    }

    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks that are behind.
    let not_before = now - time::Duration::minutes(5);
    let not_after = now + time::Duration::days(i64::from(days));
    let generate = |what: &str| {
        let what = what.to_string();
        move |e: rcgen::Error| CertsError::Generate {
            what,
            detail: e.to_string(),
        }
    };

    // The CA.
    let ca_key = KeyPair::generate().map_err(generate("the CA key"))?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = dev_dn(CA_CN);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(generate("the CA certificate"))?;
    let mut outputs = vec![
        Output {
            path: out.join("ca.pem"),
            contents: ca_cert.pem(),
            secret: false,
            description: format!("CA certificate, subject CN={CA_CN},OU={DEV_OU},O={DEV_O}: clients trust this"),
        },
        Output {
            path: out.join("ca.key"),
            contents: ca_key.serialize_pem(),
            secret: true,
            description: "CA private key: signs certificates; keep it away from clients".into(),
        },
    ];
    let issuer = Issuer::new(ca_params, ca_key);

    // The server.
    let server_key = KeyPair::generate().map_err(generate("the server key"))?;
    let mut params = CertificateParams::default();
    let server_cn = match &sans[0] {
        SanType::IpAddress(ip) => ip.to_string(),
        SanType::DnsName(name) => name.as_str().to_string(),
        _ => String::new(),
    };
    params.distinguished_name = dev_dn(&server_cn);
    params.subject_alt_names = sans.clone();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .map_err(generate("the server certificate"))?;
    outputs.push(Output {
        path: out.join("server.pem"),
        contents: server_cert.pem(),
        secret: false,
        description: format!("server certificate for {}", describe_sans(&sans)),
    });
    outputs.push(Output {
        path: out.join("server.key"),
        contents: server_key.serialize_pem(),
        secret: true,
        description: "server private key".into(),
    });

    // The clients.
    for name in &clients {
        let key = KeyPair::generate().map_err(generate(&format!("the key for client {name}")))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dev_dn(name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(generate(&format!("the certificate for client {name}")))?;
        outputs.push(Output {
            path: out.join(format!("{name}.pem")),
            contents: cert.pem(),
            secret: false,
            description: format!("client certificate, subject CN={name},OU={DEV_OU},O={DEV_O}"),
        });
        outputs.push(Output {
            path: out.join(format!("{name}.key")),
            contents: key.serialize_pem(),
            secret: true,
            description: format!("private key for client {name}"),
        });
    }

    std::fs::create_dir_all(&out).map_err(|source| CertsError::Io {
        path: out.clone(),
        source,
    })?;
    for o in &outputs {
        write_file(&o.path, o.contents.as_bytes(), o.secret).map_err(|source| CertsError::Io {
            path: o.path.clone(),
            source,
        })?;
    }
    Ok(report(&out, &outputs, &clients, days))
}

/// `CN=cn,OU=kgate-dev,O=kgate`: encoded O, OU, CN (RFC 2253 prints the last RDN first).
fn dev_dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, DEV_O);
    dn.push(DnType::OrganizationalUnitName, DEV_OU);
    dn.push(DnType::CommonName, cn);
    dn
}

fn parse_sans(sans: &[String]) -> Result<Vec<SanType>, CertsError> {
    if sans.is_empty() {
        return Err(CertsError::Usage("give at least one --san".into()));
    }
    let mut out: Vec<SanType> = Vec::new();
    for s in sans {
        let san = if let Ok(ip) = s.parse::<IpAddr>() {
            SanType::IpAddress(ip)
        } else if is_dns_name(s) {
            let name = s
                .to_ascii_lowercase()
                .try_into()
                .map_err(|e: rcgen::Error| CertsError::Usage(format!("--san {s:?}: {e}")))?;
            SanType::DnsName(name)
        } else {
            return Err(CertsError::Usage(format!(
                "--san {s:?} is neither an IP address nor a DNS name (letters, digits and '-' in dot-separated \
                 labels, optionally starting with \"*.\")"
            )));
        };
        if !out.contains(&san) {
            out.push(san);
        }
    }
    Ok(out)
}

fn is_dns_name(s: &str) -> bool {
    let s = s.strip_prefix("*.").unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn check_client_names(names: &[String]) -> Result<Vec<String>, CertsError> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let ok_chars = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if name.is_empty() || name.len() > 64 || !ok_chars || name.starts_with('.') {
            return Err(CertsError::Usage(format!(
                "--client {name:?}: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' (it is \
                 the certificate's CN and the file name)"
            )));
        }
        let lower = name.to_ascii_lowercase();
        if lower == "ca" || lower == "server" {
            return Err(CertsError::Usage(format!(
                "--client {name:?}: the name is taken by {lower}.pem/{lower}.key; choose another"
            )));
        }
        if out.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(CertsError::Usage(format!("--client {name:?} is given twice")));
        }
        out.push(name.clone());
    }
    Ok(out)
}

fn describe_sans(sans: &[SanType]) -> String {
    sans.iter()
        .map(|s| match s {
            SanType::IpAddress(ip) => format!("IP:{ip}"),
            SanType::DnsName(n) => format!("DNS:{}", n.as_str()),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes through a temporary file in the same directory and renames it into place, so a reader
/// (kgate's reloader) never sees half a file; private keys get mode 0600 from the start.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn toml_string(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

fn report(out: &Path, outputs: &[Output], clients: &[String], days: u32) -> String {
    let mut r = String::new();
    let plural = if days == 1 { "" } else { "s" };
    let _ = writeln!(r, "Wrote (valid for {days} day{plural}; for development only):");
    let width = outputs
        .iter()
        .map(|o| o.path.display().to_string().len())
        .max()
        .unwrap_or(0);
    for o in outputs {
        let mode = if o.secret { " (mode 0600)" } else { "" };
        let _ = writeln!(r, "  {:width$}  {}{mode}", o.path.display().to_string(), o.description);
    }
    let ca = out.join("ca.pem");
    let _ = writeln!(r, "\nA SASL_SSL listener using them (kgate.toml):\n");
    let _ = writeln!(r, "[[listeners]]");
    let _ = writeln!(r, "name = \"SASL_SSL\"");
    let _ = writeln!(r, "bind = \"127.0.0.1:9093\"");
    let _ = writeln!(r, "security_protocol = \"SASL_SSL\"");
    let _ = writeln!(r, "sasl_enabled_mechanisms = [\"SCRAM-SHA-256\", \"SCRAM-SHA-512\"]");
    let _ = writeln!(r, "[listeners.tls]");
    let _ = writeln!(r, "cert = {}", toml_string(&out.join("server.pem")));
    let _ = writeln!(r, "key = {}", toml_string(&out.join("server.key")));
    if clients.is_empty() {
        let _ = writeln!(
            r,
            "# for client certificates (mTLS): create some with --client NAME, then set\n\
             # client_ca = {} and client_auth = \"required\"",
            toml_string(&ca)
        );
    } else {
        let _ = writeln!(r, "client_ca = {}", toml_string(&ca));
        let _ = writeln!(
            r,
            "client_auth = \"required\"   # or \"requested\": certificates optional; \"none\": not asked for"
        );
    }
    let _ = writeln!(r, "\nClient settings (Java client / librdkafka):\n");
    let _ = writeln!(r, "security.protocol=SASL_SSL");
    let _ = writeln!(r, "ssl.truststore.type=PEM");
    let _ = writeln!(r, "ssl.truststore.location={}", ca.display());
    let _ = writeln!(r, "# librdkafka: ssl.ca.location={}", ca.display());
    if let Some(name) = clients.first() {
        let _ = writeln!(
            r,
            "# client certificate, librdkafka: ssl.certificate.location={} ssl.key.location={}",
            out.join(format!("{name}.pem")).display(),
            out.join(format!("{name}.key")).display()
        );
        let _ = writeln!(
            r,
            "# (Java clients: ssl.keystore.type=PEM with ssl.keystore.certificate.chain and ssl.keystore.key \
             set to the contents of those files)"
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientAuth, TlsConfig};
    use crate::listener::tls::{peer_subject_dn, TlsAcceptorHandle};
    use clap::{CommandFactory, Parser};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: CertsCommand,
    }

    fn parse(args: &[&str]) -> Result<CertsCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("certs").chain(args.iter().copied())).map(|c| c.cmd)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn cert_der(path: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).unwrap()
    }

    #[test]
    fn command_line() {
        Cli::command().debug_assert();
        assert_eq!(
            parse(&["dev", "--out", "d"]).unwrap(),
            CertsCommand::Dev {
                out: "d".into(),
                san: strings(&["localhost", "127.0.0.1"]),
                client: vec![],
                days: 365,
                force: false,
            }
        );
        assert_eq!(
            parse(&[
                "dev",
                "--out",
                "d",
                "--san",
                "kafka.local",
                "--san",
                "::1",
                "--client",
                "alice",
                "--client",
                "bob",
                "--days",
                "30",
                "--force",
            ])
            .unwrap(),
            CertsCommand::Dev {
                out: "d".into(),
                san: strings(&["kafka.local", "::1"]),
                client: strings(&["alice", "bob"]),
                days: 30,
                force: true,
            }
        );
        assert!(parse(&["dev"]).is_err(), "--out is required");
        assert!(parse(&["dev", "--out", "d", "--days", "0"]).is_err());
        let help = Cli::command()
            .find_subcommand_mut("dev")
            .unwrap()
            .render_long_help()
            .to_string();
        for text in [
            "--out",
            "--san",
            "--client",
            "--days",
            "--force",
            "0600",
            "CN=NAME,OU=kgate-dev,O=kgate",
        ] {
            assert!(help.contains(text), "help lacks {text}:\n{help}");
        }
    }

    /// The written files work: a kgate TLS listener loads them, a client trusting ca.pem connects by
    /// every SAN, and the client certificate is accepted with the expected DN.
    #[tokio::test]
    async fn dev_files_are_a_working_pki() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        let report = dev(
            &out,
            &strings(&["localhost", "127.0.0.1", "Kafka.Example", "::1"]),
            &strings(&["alice", "svc-orders"]),
            30,
            false,
        )
        .unwrap();
        for name in [
            "ca.pem",
            "ca.key",
            "server.pem",
            "server.key",
            "alice.pem",
            "alice.key",
            "svc-orders.pem",
        ] {
            assert!(report.contains(&out.join(name).display().to_string()), "{report}");
        }
        assert!(report.contains("security_protocol = \"SASL_SSL\""), "{report}");
        assert!(report.contains("client_auth = \"required\""), "{report}");

        // SANs, subjects, validity.
        let server = cert_der(&out.join("server.pem"));
        let (_, parsed) = X509Certificate::from_der(&server).unwrap();
        let sans: Vec<String> = parsed
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(ip) => format!("IP:{ip:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            sans,
            vec![
                "DNS:localhost",
                "IP:[127, 0, 0, 1]",
                "DNS:kafka.example",
                "IP:[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]",
            ]
        );
        let days = (parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp()) / 86_400;
        assert_eq!(days, 30);
        let ca = cert_der(&out.join("ca.pem"));
        let client = cert_der(&out.join("alice.pem"));
        assert_eq!(
            crate::listener::tls::subject_dn_rfc2253(&ca).unwrap(),
            "CN=kgate development CA,OU=kgate-dev,O=kgate"
        );
        assert_eq!(
            crate::listener::tls::subject_dn_rfc2253(&server).unwrap(),
            "CN=localhost,OU=kgate-dev,O=kgate"
        );
        assert_eq!(
            crate::listener::tls::subject_dn_rfc2253(&client).unwrap(),
            "CN=alice,OU=kgate-dev,O=kgate"
        );

        // Handshakes with mTLS required.
        let handle = TlsAcceptorHandle::load(&TlsConfig {
            cert: out.join("server.pem"),
            key: out.join("server.key"),
            client_ca: Some(out.join("ca.pem")),
            client_auth: ClientAuth::Required,
        })
        .unwrap();
        for name in ["localhost", "127.0.0.1", "kafka.example", "::1"] {
            for user in ["alice", "svc-orders"] {
                let dn = connect(&handle, &out, name, user).await;
                assert_eq!(dn, format!("CN={user},OU=kgate-dev,O=kgate"));
            }
        }
    }

    async fn connect(handle: &TlsAcceptorHandle, out: &Path, server_name: &str, user: &str) -> String {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert_der(&out.join("ca.pem"))).unwrap();
        let key = PrivateKeyDer::from_pem_file(out.join(format!("{user}.key"))).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![cert_der(&out.join(format!("{user}.pem")))], key)
            .unwrap();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let name = ServerName::try_from(server_name.to_string()).unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let (s, c) = tokio::join!(handle.acceptor().accept(server_io), connector.connect(name, client_io));
        let (mut s, mut c) = (s.unwrap(), c.unwrap());
        c.write_all(b"x").await.unwrap();
        c.flush().await.unwrap();
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).await.unwrap();
        peer_subject_dn(s.get_ref().1).unwrap()
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        dev(dir.path(), &strings(&["localhost"]), &strings(&["alice"]), 1, false).unwrap();
        let mode = |n: &str| std::fs::metadata(dir.path().join(n)).unwrap().permissions().mode() & 0o777;
        for key in ["ca.key", "server.key", "alice.key"] {
            assert_eq!(mode(key), 0o600, "{key}");
        }
        for cert in ["ca.pem", "server.pem", "alice.pem"] {
            // 0644 before the umask.
            assert_eq!(mode(cert) & !0o644, 0, "{cert}");
            assert_eq!(mode(cert) & 0o600, 0o600, "{cert}");
        }
        // No temporary files left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 6, "{names:?}");
    }

    #[test]
    fn existing_files_need_force() {
        let dir = tempfile::tempdir().unwrap();
        let sans = strings(&["localhost"]);
        dev(dir.path(), &sans, &[], 1, false).unwrap();
        let before = std::fs::read(dir.path().join("ca.key")).unwrap();

        let err = dev(dir.path(), &sans, &[], 1, false).unwrap_err();
        assert!(matches!(&err, CertsError::Exists(paths) if paths.len() == 4), "{err}");
        assert_eq!(err.exit_code(), 73);
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("ca.key")).unwrap(), before);

        // Only one of the files existing is enough to refuse, and nothing else is written.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("alice.pem"), "mine").unwrap();
        let err = dev(other.path(), &sans, &strings(&["alice"]), 1, false).unwrap_err();
        assert!(matches!(&err, CertsError::Exists(paths) if paths.len() == 1), "{err}");
        assert!(!other.path().join("ca.pem").exists());
        assert_eq!(std::fs::read_to_string(other.path().join("alice.pem")).unwrap(), "mine");

        // With --force everything is replaced (a new CA key), keys still private.
        dev(dir.path(), &sans, &[], 1, true).unwrap();
        let after = std::fs::read(dir.path().join("ca.key")).unwrap();
        assert_ne!(after, before);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // run() maps the refusal to exit code 73 and success to 0.
        let cmd = |force| CertsCommand::Dev {
            out: dir.path().to_path_buf(),
            san: sans.clone(),
            client: vec![],
            days: 1,
            force,
        };
        assert_eq!(run(cmd(false)), ExitCode::from(73));
        assert_eq!(run(cmd(true)), ExitCode::SUCCESS);
    }

    #[test]
    fn bad_arguments_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ok = strings(&["localhost"]);
        for (sans, clients, days) in [
            (strings(&["bad name!"]), vec![], 1),
            (strings(&[""]), vec![], 1),
            (strings(&["-x.example"]), vec![], 1),
            (vec![], vec![], 1),
            (ok.clone(), strings(&["../evil"]), 1),
            (ok.clone(), strings(&[""]), 1),
            (ok.clone(), strings(&[".hidden"]), 1),
            (ok.clone(), strings(&["CA"]), 1),
            (ok.clone(), strings(&["server"]), 1),
            (ok.clone(), strings(&["alice", "Alice"]), 1),
            (ok.clone(), vec![], 0),
        ] {
            let err = dev(dir.path(), &sans, &clients, days, false).unwrap_err();
            assert_eq!(err.exit_code(), 64, "{sans:?} {clients:?} {days}: {err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(dev(dir.path(), &strings(&["broker."]), &[], 1, false).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Wildcard names are accepted.
        assert!(dev(dir.path(), &strings(&["*.kafka.local"]), &[], 1, false).is_ok());
    }
}
