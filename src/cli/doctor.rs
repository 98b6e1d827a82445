//! `kgate doctor kerberos`: a client-side diagnosis of Kerberos (SASL/GSSAPI) against a Kafka listener.
//! See [`crate::diag::doctor`] for the steps. [`run`] is what `main` calls; [`execute`] returns the exit
//! code and the text, for tests.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::diag::{diagnose, ClientDnsLookup, DoctorOptions, LoginSource};

const KERBEROS_ABOUT: &str = "Diagnose Kerberos (SASL/GSSAPI) from the client side, ending with a real handshake";

const KERBEROS_LONG_ABOUT: &str = "\
Walk what a Java or librdkafka client does to authenticate to a Kafka GSSAPI
listener and report each step as ok, warn or fail, with why and how to fix it:

  jaas            the KafkaClient section of a JAAS file (--jaas)
  krb5_conf       which krb5.conf, default_realm, the host's realm
  spn             the host the client puts into the service principal
  kdc             TCP connections to the realm's KDCs
  credentials     a TGT from the keytab or the ticket cache
  service_ticket  a ticket for <service-name>/<host>@REALM
  server_keytab   does the broker's keytab decrypt it (--server-keytab)
  handshake       ApiVersions, SaslHandshake, SaslAuthenticate with the
                  listener (SASL_PLAINTEXT)

No running kgate is needed until the last step. The identity comes from
--keytab with --principal, from --jaas (or the sasl.jaas.config of
--client-config), or from the ticket cache (KRB5CCNAME, after kinit). With
a keytab the doctor uses a private in-memory ticket cache.

Exit status: 0 every step passed (warnings allowed); 1 a step failed;
64 bad usage.";

const KERBEROS_EXAMPLES: &str = "\
Examples:
  kgate doctor kerberos --bootstrap broker1.example.com:9093 \\
      --keytab /etc/kafka/client.keytab --principal client@EXAMPLE.COM
  kgate doctor kerberos --bootstrap broker1.example.com:9093 --jaas kafka_client_jaas.conf \\
      --server-keytab /etc/kgate/kafka.keytab --json
  kinit alice@EXAMPLE.COM && kgate doctor kerberos --bootstrap 10.0.0.5:9093 --dns-canonicalize
  # the files a Java client (Flink, Spark, kafka-console-*) runs with: its properties,
  # -Djava.security.auth.login.config and -Djava.security.krb5.conf
  kgate doctor kerberos --client-config client.properties --jaas kafka_client_jaas.conf \\
      --krb5-conf /etc/krb5.conf";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DnsLookupArg {
    #[value(name = "use_all_dns_ips")]
    UseAllDnsIps,
    #[value(name = "resolve_canonical_bootstrap_servers_only")]
    ResolveCanonicalBootstrapServersOnly,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum DoctorCommand {
    #[command(about = KERBEROS_ABOUT, long_about = KERBEROS_LONG_ABOUT, after_help = KERBEROS_EXAMPLES)]
    Kerberos {
        /// The bootstrap server, HOST:PORT ([IPv6]:PORT), of a SASL_PLAINTEXT listener with GSSAPI.
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: Option<String>,
        /// sasl.kerberos.service.name: the first component of the broker's principal (default: kafka).
        #[arg(long, value_name = "NAME")]
        service_name: Option<String>,
        /// The Java client's own properties file (client.properties, consumer.properties...): its
        /// bootstrap.servers, sasl.kerberos.service.name, client.dns.lookup and sasl.jaas.config are used
        /// where no option gives them. Its sasl.jaas.config wins over --jaas, as in the Java client.
        #[arg(long, value_name = "FILE")]
        client_config: Option<PathBuf>,
        /// krb5.conf to use (default: KRB5_CONFIG, then /etc/krb5.conf).
        #[arg(long, value_name = "FILE")]
        krb5_conf: Option<PathBuf>,
        /// Log in from this keytab (needs --principal).
        #[arg(long, value_name = "FILE")]
        keytab: Option<PathBuf>,
        /// The client principal in --keytab, e.g. client@EXAMPLE.COM.
        #[arg(long, value_name = "NAME")]
        principal: Option<String>,
        /// The client's JAAS file (KafkaClient section) or sasl.jaas.config value / properties file.
        #[arg(long, value_name = "FILE")]
        jaas: Option<PathBuf>,
        /// Kafka's client.dns.lookup: how a Java client turns the bootstrap host into the principal's host
        /// (default: use_all_dns_ips).
        #[arg(long, value_enum, value_name = "MODE")]
        client_dns_lookup: Option<DnsLookupArg>,
        /// Canonicalise the host like MIT krb5 / Cyrus SASL with rdns (librdkafka): forward, then reverse DNS.
        #[arg(long)]
        dns_canonicalize: bool,
        /// The broker's keytab: compare its kvno and enctypes with the service ticket and try to decrypt it.
        #[arg(long, value_name = "FILE")]
        server_keytab: Option<PathBuf>,
        /// Seconds to wait for each network operation (DNS, TCP connect, a Kafka response).
        #[arg(long, value_name = "SECONDS", default_value_t = 5)]
        timeout: u64,
        /// Print {"ok", "steps": [{"name", "status", "detail", "why", "fix"}]} instead of text.
        #[arg(long)]
        json: bool,
    },
    #[command(about = LISTENERS_ABOUT, long_about = LISTENERS_LONG_ABOUT, after_help = LISTENERS_EXAMPLES)]
    Listeners(ListenersArgs),
}

const LISTENERS_ABOUT: &str = "Check every broker address a client is told about, from this machine";

const LISTENERS_LONG_ABOUT: &str = "\
Connect to a bootstrap server like a Kafka client (TLS and SASL as given),
read Metadata and the coordinator of a consumer group, then check every
advertised endpoint from here:

  bootstrap     DNS, TCP, TLS, SASL and ApiVersions of --bootstrap
  metadata      the brokers and addresses the cluster advertises
  broker N      the address itself (0.0.0.0, localhost, a private address
                seen from a public bootstrap), DNS, TCP, the TLS name, SASL
  coordinator   the group coordinator (--group) and whether it is reachable

Each failure names the classic mistake and the setting to change: Kafka's
advertised.listeners / listener.security.protocol.map, or kgate's listener
advertised / [listeners.broker_addresses]. Run it where the clients run.

Exit status: 0 every endpoint a client would use works (warnings allowed);
1 something fails; 64 bad usage.";

const LISTENERS_EXAMPLES: &str = "\
Examples:
  kgate doctor listeners --bootstrap kafka.example.com:9092
  kgate doctor listeners --bootstrap kafka.example.com:9093 --security-protocol SASL_SSL \\
      --sasl-mechanism SCRAM-SHA-512 --username alice --password-file alice.pass --ca ca.pem
  kgate doctor listeners --bootstrap 127.0.0.1:9092 --group payments --json";

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ListenersArgs {
    /// The bootstrap server clients use, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: String,
    /// security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long, value_name = "PROTOCOL", default_value = "PLAINTEXT")]
    pub security_protocol: String,
    /// sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols).
    #[arg(long, value_name = "MECHANISM")]
    pub sasl_mechanism: Option<String>,
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// A file holding the password (one trailing newline ignored); never a command-line argument.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// CA bundle (PEM) the brokers' certificates must chain to (SSL, SASL_SSL); names are verified.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for listeners that require mTLS.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// The consumer group whose coordinator is checked.
    #[arg(long, value_name = "GROUP", default_value = "kgate-doctor")]
    pub group: String,
    /// Seconds to wait for each network operation.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub timeout: u64,
    /// Print {"ok", "steps": [{"name", "status", "detail", "why", "fix"}]} instead of text.
    #[arg(long)]
    pub json: bool,
}

fn listeners_options(args: &ListenersArgs) -> Result<crate::diag::listeners::ListenersOptions, String> {
    use crate::config::{UpstreamSaslConfig, UpstreamTlsConfig};
    if crate::config::split_host_port(&args.bootstrap).is_none_or(|(_, p)| p == 0) {
        return Err(format!(
            "--bootstrap {:?} is not HOST:PORT (e.g. kafka.example.com:9092)",
            args.bootstrap
        ));
    }
    let (tls, sasl) = match args.security_protocol.as_str() {
        "PLAINTEXT" => (false, false),
        "SSL" => (true, false),
        "SASL_PLAINTEXT" => (false, true),
        "SASL_SSL" => (true, true),
        other => {
            return Err(format!(
                "--security-protocol {other:?}: use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            ))
        }
    };
    let tls_config = match (tls, &args.ca) {
        (true, Some(ca)) => Some(UpstreamTlsConfig {
            ca: ca.clone(),
            cert: args.cert.clone(),
            key: args.key.clone(),
        }),
        (true, None) => {
            return Err(format!(
                "--security-protocol {} needs --ca FILE",
                args.security_protocol
            ))
        }
        (false, Some(_)) => return Err("--ca applies to SSL and SASL_SSL".into()),
        (false, None) => None,
    };
    let sasl_config = match (sasl, &args.sasl_mechanism, &args.username, &args.password_file) {
        (true, Some(mechanism), Some(username), Some(password_file)) => Some(UpstreamSaslConfig {
            mechanism: mechanism.clone(),
            username: Some(username.clone()),
            password_file: Some(password_file.clone()),
            principal: None,
            keytab: None,
            service_name: "kafka".into(),
        }),
        (true, _, _, _) => {
            return Err(format!(
                "--security-protocol {} needs --sasl-mechanism, --username and --password-file",
                args.security_protocol
            ))
        }
        (false, None, None, None) => None,
        (false, _, _, _) => return Err("--sasl-mechanism/--username/--password-file apply to SASL_* protocols".into()),
    };
    if args.timeout == 0 || args.timeout > 600 {
        return Err("--timeout must be 1-600 seconds".into());
    }
    let security =
        crate::backend::upstream::security::UpstreamSecurity::load(tls_config.as_ref(), sasl_config.as_ref(), None)
            .map_err(|problems| problems.join("; "))?;
    Ok(crate::diag::listeners::ListenersOptions {
        bootstrap: args.bootstrap.clone(),
        security,
        group: args.group.clone(),
        timeout: Duration::from_secs(args.timeout),
    })
}

fn execute_listeners(args: &ListenersArgs) -> (u8, String) {
    let opts = match listeners_options(args) {
        Ok(o) => o,
        Err(e) => return (64, format!("kgate doctor listeners: {e}\n")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            return (
                70,
                format!("kgate doctor listeners: cannot start the async runtime: {e}\n"),
            )
        }
    };
    let report = runtime.block_on(async {
        let dns = crate::diag::dns::Dns::system(opts.timeout);
        crate::diag::listeners::diagnose_listeners(&opts, &dns).await
    });
    let text = if args.json {
        format!("{}\n", report.json())
    } else {
        report.human()
    };
    (report.exit_code(), text)
}

/// Runs the command, prints its output, returns the exit code (0 ok, 1 a step failed, 64 bad usage).
pub fn run(cmd: DoctorCommand) -> ExitCode {
    let (code, out) = execute(cmd);
    if code == 64 {
        eprint!("{out}");
    } else {
        print!("{out}");
    }
    ExitCode::from(code)
}

/// The exit code and what to print.
pub fn execute(cmd: DoctorCommand) -> (u8, String) {
    if let DoctorCommand::Listeners(args) = &cmd {
        return execute_listeners(args);
    }
    let (opts, json) = match options(cmd) {
        Ok(o) => o,
        Err(e) => return (64, format!("kgate doctor kerberos: {e}\n")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            return (
                70,
                format!("kgate doctor kerberos: cannot start the async runtime: {e}\n"),
            )
        }
    };
    let report = runtime.block_on(diagnose(&opts));
    let text = if json {
        format!("{}\n", report.json())
    } else {
        report.human()
    };
    (report.exit_code(), text)
}

/// A Java client's properties file, read for the few settings that decide a Kerberos login.
struct JavaClientConfig {
    path: PathBuf,
    text: String,
}

impl JavaClientConfig {
    fn read(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--client-config {}: cannot read it: {e}", path.display()))?;
        Ok(JavaClientConfig {
            path: path.to_path_buf(),
            text,
        })
    }

    fn get(&self, key: &str) -> Option<String> {
        crate::diag::jaas::properties_value(&self.text, key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// This doctor walks a GSSAPI login: a file that configures another mechanism is a usage mistake.
    fn check_gssapi(&self) -> Result<(), String> {
        let file = self.path.display();
        if let Some(mechanism) = self.get("sasl.mechanism") {
            if mechanism != "GSSAPI" {
                return Err(format!(
                    "--client-config {file}: sasl.mechanism={mechanism}; this doctor checks GSSAPI (Kerberos) logins"
                ));
            }
        }
        match self.get("security.protocol").as_deref() {
            None | Some("SASL_PLAINTEXT") | Some("SASL_SSL") => Ok(()),
            Some(other) => Err(format!(
                "--client-config {file}: security.protocol={other} does not use SASL; Kerberos needs \
                 SASL_PLAINTEXT or SASL_SSL"
            )),
        }
    }
}

fn options(cmd: DoctorCommand) -> Result<(DoctorOptions, bool), String> {
    let DoctorCommand::Kerberos {
        bootstrap,
        service_name,
        client_config,
        krb5_conf,
        keytab,
        principal,
        jaas,
        client_dns_lookup,
        dns_canonicalize,
        server_keytab,
        timeout,
        json,
    } = cmd
    else {
        return Err("not a kerberos command".into());
    };
    let client = match &client_config {
        Some(path) => Some(JavaClientConfig::read(path)?),
        None => None,
    };
    let from_client = |key: &str| client.as_ref().and_then(|c| c.get(key));
    let bootstrap = bootstrap
        .or_else(|| from_client("bootstrap.servers"))
        .ok_or("--bootstrap HOST:PORT is required (or bootstrap.servers in --client-config)")?;
    let service_name = service_name
        .or_else(|| from_client("sasl.kerberos.service.name"))
        .unwrap_or_else(|| "kafka".into());
    let client_dns_lookup = match (client_dns_lookup, from_client("client.dns.lookup")) {
        (Some(arg), _) => arg,
        (None, Some(value)) => match value.as_str() {
            "use_all_dns_ips" => DnsLookupArg::UseAllDnsIps,
            "resolve_canonical_bootstrap_servers_only" => DnsLookupArg::ResolveCanonicalBootstrapServersOnly,
            other => {
                return Err(format!(
                    "--client-config: client.dns.lookup={other:?} is not a value Kafka clients accept \
                     (use_all_dns_ips, resolve_canonical_bootstrap_servers_only)"
                ))
            }
        },
        (None, None) => DnsLookupArg::UseAllDnsIps,
    };
    // The Java client prefers the sasl.jaas.config property to the JVM-wide JAAS file.
    let jaas = match (&client_config, from_client("sasl.jaas.config")) {
        (Some(path), Some(_)) if keytab.is_none() && principal.is_none() => Some(path.clone()),
        _ => jaas,
    };
    let first = bootstrap.split(',').next().unwrap_or("").trim();
    let (host, port) = crate::config::split_host_port(first)
        .ok_or_else(|| format!("--bootstrap {bootstrap:?} is not HOST:PORT (e.g. broker1.example.com:9093)"))?;
    if port == 0 {
        return Err("--bootstrap: port 0 is not a listener port".into());
    }
    if service_name.is_empty() || service_name.contains('/') || service_name.contains('@') {
        return Err(format!(
            "--service-name {service_name:?}: expected a name such as kafka"
        ));
    }
    if let Some(client) = &client {
        client.check_gssapi()?;
    }
    let login = match (keytab, principal, jaas) {
        (Some(keytab), Some(principal), None) => LoginSource::Keytab { keytab, principal },
        (Some(_), None, None) => return Err("--keytab needs --principal (the client principal in the keytab)".into()),
        (None, Some(_), None) => return Err("--principal needs --keytab (for a ticket cache, give neither)".into()),
        (None, None, Some(jaas)) => LoginSource::Jaas(jaas),
        (None, None, None) => LoginSource::TicketCache,
        (_, _, Some(_)) => return Err("give either --jaas or --keytab/--principal, not both".into()),
    };
    if timeout == 0 || timeout > 600 {
        return Err("--timeout must be 1-600 seconds".into());
    }
    Ok((
        DoctorOptions {
            host: host.to_string(),
            port,
            service_name,
            krb5_conf,
            login,
            client_dns_lookup: match client_dns_lookup {
                DnsLookupArg::UseAllDnsIps => ClientDnsLookup::UseAllDnsIps,
                DnsLookupArg::ResolveCanonicalBootstrapServersOnly => {
                    ClientDnsLookup::ResolveCanonicalBootstrapServersOnly
                }
            },
            dns_canonicalize,
            server_keytab,
            timeout: Duration::from_secs(timeout),
        },
        json,
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: DoctorCommand,
    }

    fn parse(args: &[&str]) -> DoctorCommand {
        Cli::try_parse_from([&["kgate", "kerberos"], args].concat())
            .expect("parses")
            .cmd
    }

    #[test]
    fn bad_usage_is_64() {
        for (args, message) in [
            (&[][..], "--bootstrap HOST:PORT is required"),
            (&["--bootstrap", "nohost"][..], "is not HOST:PORT"),
            (
                &["--bootstrap", "h:1", "--keytab", "k"][..],
                "--keytab needs --principal",
            ),
            (
                &["--bootstrap", "h:1", "--principal", "p"][..],
                "--principal needs --keytab",
            ),
            (
                &["--bootstrap", "h:1", "--jaas", "j", "--keytab", "k", "--principal", "p"][..],
                "not both",
            ),
            (
                &["--bootstrap", "h:1", "--service-name", "kafka/x"][..],
                "--service-name",
            ),
        ] {
            let (code, out) = execute(parse(args));
            assert_eq!(code, 64, "{args:?}: {out}");
            assert!(out.contains(message), "{args:?}: {out}");
        }
    }

    #[test]
    fn java_client_properties_fill_what_options_do_not_give() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("client.properties");
        std::fs::write(
            &file,
            "# as a Flink job has it\nbootstrap.servers=broker1.example.com:9093, broker2:9093\n\
             security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\nsasl.kerberos.service.name=kafkaa\n\
             client.dns.lookup=resolve_canonical_bootstrap_servers_only\n\
             sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required \\\n  useKeyTab=true keyTab=\"/k\" principal=\"c@R\";\n",
        )
        .expect("write");
        let path = file.to_str().expect("utf-8");
        let (opts, _) = options(parse(&["--client-config", path, "--jaas", "jvm_jaas.conf"])).expect("valid");
        assert_eq!((opts.host.as_str(), opts.port), ("broker1.example.com", 9093));
        assert_eq!(opts.service_name, "kafkaa");
        assert_eq!(
            opts.client_dns_lookup,
            ClientDnsLookup::ResolveCanonicalBootstrapServersOnly
        );
        // sasl.jaas.config in the properties wins over the JVM's JAAS file, as in the Java client.
        assert_eq!(opts.login, LoginSource::Jaas(file.clone()));
        // Options win over the file.
        let (opts, _) = options(parse(&[
            "--client-config",
            path,
            "--bootstrap",
            "other:1",
            "--service-name",
            "kafka",
        ]))
        .expect("valid");
        assert_eq!(
            (opts.host.as_str(), opts.port, opts.service_name.as_str()),
            ("other", 1, "kafka")
        );

        for (text, message) in [
            ("bootstrap.servers=h:1\nsasl.mechanism=PLAIN\n", "sasl.mechanism=PLAIN"),
            (
                "bootstrap.servers=h:1\nsecurity.protocol=SSL\n",
                "security.protocol=SSL",
            ),
            (
                "bootstrap.servers=h:1\nclient.dns.lookup=default\n",
                "client.dns.lookup=\"default\"",
            ),
            (
                "security.protocol=SASL_PLAINTEXT\n",
                "bootstrap.servers in --client-config",
            ),
        ] {
            std::fs::write(&file, text).expect("write");
            let (code, out) = execute(parse(&["--client-config", path]));
            assert_eq!(code, 64, "{text:?}: {out}");
            assert!(out.contains(message), "{text:?}: {out}");
        }
        let (code, out) = execute(parse(&["--client-config", "/nonexistent/client.properties"]));
        assert!(code == 64 && out.contains("cannot read it"), "{out}");
    }

    #[test]
    fn options_are_mapped() {
        let (opts, json) = options(parse(&[
            "--bootstrap",
            "[::1]:9093,other:1",
            "--keytab",
            "c.keytab",
            "--principal",
            "client",
            "--client-dns-lookup",
            "resolve_canonical_bootstrap_servers_only",
            "--dns-canonicalize",
            "--json",
        ]))
        .expect("valid");
        assert!(json && opts.dns_canonicalize);
        assert_eq!((opts.host.as_str(), opts.port), ("::1", 9093));
        assert_eq!(
            opts.client_dns_lookup,
            ClientDnsLookup::ResolveCanonicalBootstrapServersOnly
        );
        assert_eq!(
            opts.login,
            LoginSource::Keytab {
                keytab: "c.keytab".into(),
                principal: "client".into()
            }
        );
        assert_eq!(opts.service_name, "kafka");
    }
}
