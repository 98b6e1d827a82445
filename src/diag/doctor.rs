//! `kgate doctor kerberos`: walk what a Java or librdkafka client does to authenticate to a Kafka
//! GSSAPI listener, one step at a time, and say in plain words what fails and how to fix it.
//!
//! Steps, in order (names as printed and in the JSON):
//! 1. `jaas` (only with `--jaas`): the KafkaClient section's Krb5LoginModule options.
//! 2. `krb5_conf`: which krb5.conf, default_realm, the bootstrap host's realm, canonicalisation settings.
//! 3. `spn`: the host the client puts into the service principal, and so the principal it requests.
//! 4. `kdc`: TCP connections to the KDCs of the realms involved.
//! 5. `credentials`: a TGT from the keytab or the ticket cache.
//! 6. `service_ticket`: a ticket for the service principal.
//! 7. `server_keytab` (only with `--server-keytab`): does the broker's keytab hold the ticket's key?
//! 8. `handshake`: ApiVersions, SaslHandshake v1 GSSAPI, SaslAuthenticate with real tokens and the
//!    RFC 4752 security-layer step, against the listener.
//!
//! Steps 5-8 need the earlier ones: when a step they depend on failed they are listed as not run.
//!
//! # Process-global environment
//! MIT krb5 takes its configuration from environment variables, so [`diagnose`] sets, for the whole
//! process and before its first Kerberos call: `KRB5_CONFIG` (the krb5.conf it reports on); with a
//! keytab login `KRB5_CLIENT_KTNAME=FILE:<keytab>` and `KRB5CCNAME=MEMORY:kgate-doctor-<pid>` (a
//! private in-memory ticket cache: the user's cache is neither read nor changed, as with Java's
//! `useKeyTab=true`); with a JAAS `ticketCache` option `KRB5CCNAME` to that file; with
//! `--server-keytab` `KRB5_KTNAME=FILE:<keytab>` and `KRB5RCACHETYPE=none` (the trial acceptance
//! must not write a replay cache). Run it in a process of its own (the CLI) or serialise callers.
//!
//! # Which principal is requested (`spn`)
//! By default the host is the bootstrap host as given, lower-cased: what librdkafka asks for when
//! krb5.conf has `rdns = false` and `dns_canonicalize_hostname = false`, and what Java asks for with
//! a host name and `client.dns.lookup=use_all_dns_ips`. `--client-dns-lookup
//! resolve_canonical_bootstrap_servers_only` models Java's KIP-235 mode (reverse DNS of each address,
//! verified by a forward lookup, as `InetAddress.getCanonicalHostName()`); `--dns-canonicalize` models
//! MIT krb5 / Cyrus SASL canonicalisation (librdkafka, kafka-python with MIT's defaults): the CNAME
//! target, then the reverse name of the first address. Whatever the mode, the step warns about the
//! principals other clients would request (IP literals, aliases, reverse DNS that names another host).
//! The realm is the host's `[domain_realm]` entry, else the default realm. The doctor then asks for
//! exactly that principal (a `GSS_KRB5_NT_PRINCIPAL_NAME`, so MIT does not canonicalise it again).
//! Lookups use /etc/hosts (file order, as glibc) and DNS through hickory-resolver.
//!
//! # Clock
//! The `kdc` step reads the KDC's clock from the KRB-ERROR it sends for an AS-REQ for the
//! non-existent principal `kgate-doctor-clock-check` (see [`kdc_clock`]; the KDC logs it as an
//! unknown client); `credentials` fails when the difference exceeds krb5.conf's `clockskew`.
//!
//! # KVNO comparison (`--server-keytab`)
//! The key version and enctype of the service ticket are read from the AP-REQ the client sends
//! (they travel in the clear, see [`super::apreq`]), so no `kvno` tool is needed. They are compared
//! with the keytab's entries for the principal, then the keytab is used to accept that very AP-REQ
//! in-process, which also catches a key that differs at the same kvno.
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use libgssapi::context::SecurityContext;
use libgssapi::credential::Cred;

use super::apreq::{parse_initial_token, TicketInfo};
use super::dns::{normalize, Dns, Forward, Lookup};
use super::gss::{self, codes, GssFailure};
use super::jaas::{self, Login};
use super::kafka_client::{self, KafkaConn, WireError};
use super::kdc_clock;
use super::krb5_conf::{self, ConfSource, Krb5Conf, RealmSource};
use super::report::{Report, Step};
use crate::security::gssapi::keytab_entries;

pub const STEP_JAAS: &str = "jaas";
pub const STEP_KRB5_CONF: &str = "krb5_conf";
pub const STEP_SPN: &str = "spn";
pub const STEP_KDC: &str = "kdc";
pub const STEP_CREDENTIALS: &str = "credentials";
pub const STEP_SERVICE_TICKET: &str = "service_ticket";
pub const STEP_SERVER_KEYTAB: &str = "server_keytab";
pub const STEP_HANDSHAKE: &str = "handshake";

/// Where the client's Kerberos identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginSource {
    Keytab {
        keytab: PathBuf,
        principal: String,
    },
    Jaas(PathBuf),
    /// `KRB5CCNAME` or the default cache.
    TicketCache,
}

/// Kafka's `client.dns.lookup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientDnsLookup {
    UseAllDnsIps,
    ResolveCanonicalBootstrapServersOnly,
}

#[derive(Debug, Clone)]
pub struct DoctorOptions {
    pub host: String,
    pub port: u16,
    pub service_name: String,
    pub krb5_conf: Option<PathBuf>,
    pub login: LoginSource,
    pub client_dns_lookup: ClientDnsLookup,
    /// Canonicalise the host like MIT krb5 with `dns_canonicalize_hostname` and `rdns` (librdkafka,
    /// Cyrus SASL): forward lookup, then the reverse name of the first address.
    pub dns_canonicalize: bool,
    pub server_keytab: Option<PathBuf>,
    /// Bound for each network operation (DNS query, TCP connect, Kafka response).
    pub timeout: Duration,
}

/// The client login once resolved (JAAS read).
#[derive(Debug, Clone)]
enum ClientLogin {
    Keytab { keytab: PathBuf, principal: String },
    Cache { ccache: Option<String> },
}

/// What the `spn` step found.
struct Spn {
    /// The host in the principal.
    host: String,
    realm: String,
    principal: String,
    /// Addresses to connect to.
    addrs: Vec<IpAddr>,
    /// Other host names DNS associates with the bootstrap host (reverse names, the canonical
    /// name): candidates for "the KDC does have ...".
    other_hosts: Vec<String>,
}

pub async fn diagnose(opts: &DoctorOptions) -> Report {
    let mut report = Report::new();
    let dns = Dns::system(opts.timeout);

    // 1. JAAS
    let login = match &opts.login {
        LoginSource::Keytab { keytab, principal } => Some(ClientLogin::Keytab {
            keytab: keytab.clone(),
            principal: principal.clone(),
        }),
        LoginSource::TicketCache => Some(ClientLogin::Cache { ccache: None }),
        LoginSource::Jaas(path) => jaas_step(path, &mut report),
    };

    // 2. krb5.conf
    let (conf_path, conf_source) = krb5_conf::locate(opts.krb5_conf.as_deref());
    let client_principal_realm = match &login {
        Some(ClientLogin::Keytab { principal, .. }) => principal.rsplit_once('@').map(|(_, r)| r.to_string()),
        _ => None,
    };
    let conf = krb5_conf_step(
        opts,
        &conf_path,
        &conf_source,
        client_principal_realm.as_deref(),
        &mut report,
    );

    // 3. the service principal
    let spn = match &conf {
        Some(conf) => spn_step(opts, conf, &dns, &mut report).await,
        None => None,
    };

    // 4. KDCs
    let client_realm = client_principal_realm
        .clone()
        .or_else(|| conf.as_ref().and_then(|c| c.default_realm().map(str::to_string)));
    let (kdc_ok, clock) = match &conf {
        Some(conf) => {
            kdc_step(
                opts,
                conf,
                &conf_path,
                client_realm.as_deref(),
                spn.as_ref(),
                &dns,
                &mut report,
            )
            .await
        }
        None => (false, None),
    };

    let chain = [
        STEP_CREDENTIALS,
        STEP_SERVICE_TICKET,
        STEP_SERVER_KEYTAB,
        STEP_HANDSHAKE,
    ];
    let chain: Vec<&str> = chain
        .into_iter()
        .filter(|s| *s != STEP_SERVER_KEYTAB || opts.server_keytab.is_some())
        .collect();
    let (login, conf, spn) = match (login, conf, spn) {
        (Some(login), Some(conf), Some(spn)) => (login, conf, spn),
        (login, conf, _) => {
            let reason = if login.is_none() {
                "the JAAS login is unusable"
            } else if conf.is_none() {
                "krb5.conf is unusable"
            } else {
                "the service principal is unknown"
            };
            report.skip(&chain, reason);
            return report;
        }
    };
    if !kdc_ok {
        report.skip(&chain, "no KDC is reachable");
        return report;
    }

    set_process_environment(&conf_path, &login, opts.server_keytab.as_deref());

    // 5. credentials
    let Some((cred, client_principal)) = credentials_step(&login, &conf, &conf_path, clock.as_ref(), &mut report)
    else {
        report.skip(&chain[1..], "no Kerberos credentials");
        return report;
    };

    // 6. service ticket
    let Some((token, ticket)) = service_ticket_step(opts, &cred, &spn, &conf, &client_principal, &mut report) else {
        report.skip(&chain[2..], "no service ticket");
        return report;
    };

    // 7. broker keytab
    if let Some(keytab) = &opts.server_keytab {
        server_keytab_step(keytab, &spn, &token, &ticket, &mut report);
    }

    // 8. handshake
    handshake_step(opts, &cred, &spn, &mut report).await;
    report
}

// ---------------------------------------------------------------------------------------------
// 1. JAAS

fn jaas_step(path: &Path, report: &mut Report) -> Option<ClientLogin> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.push(Step::fail(
                STEP_JAAS,
                format!("cannot read {}: {e}", path.display()),
                "Java reads the file named by -Djava.security.auth.login.config; without it the client has no Kerberos login.",
                "give the path of the JAAS file the client uses",
            ));
            return None;
        }
    };
    let login = match jaas::parse(&text).and_then(|s| Login::from_sections(&s)) {
        Ok(l) => l,
        Err(e) => {
            report.push(Step::fail(
                STEP_JAAS,
                format!("{}: {e}", path.display()),
                "Java refuses a JAAS file that does not parse (\"Configuration Error\") or uses the wrong section, and the client never logs in.",
                "use the shape KafkaClient { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true keyTab=\"/path/client.keytab\" principal=\"client@REALM\"; };",
            ));
            return None;
        }
    };
    let where_ = match &login.section {
        Some(s) => format!("{} section {s}", path.display()),
        None => format!("{} (sasl.jaas.config)", path.display()),
    };
    let mut warnings = login.warnings();

    if login.use_key_tab {
        let Some(principal) = login.principal.clone().filter(|p| !p.trim().is_empty()) else {
            report.push(Step::fail(
                STEP_JAAS,
                format!("{where_}: useKeyTab=true but no principal"),
                "Without principal, Krb5LoginModule asks for the principal name through a callback that Kafka does not \
                 provide: the client fails with \"Could not login: the client is being asked for a password, but the \
                 Kafka client code does not currently support obtaining a password from the user\".",
                "add principal=\"<the principal in the keytab>@REALM\" (klist -k <keytab> lists them)",
            ));
            return None;
        };
        let Some(raw) = login.key_tab.clone() else {
            report.push(Step::fail(
                STEP_JAAS,
                format!("{where_}: useKeyTab=true but no keyTab option"),
                "Krb5LoginModule then uses the default keytab (krb5.conf default_keytab_name, usually /etc/krb5.keytab), \
                 which rarely holds the client's key: \"Unable to obtain password from user\".",
                "add keyTab=\"/path/to/client.keytab\"",
            ));
            return None;
        };
        let trimmed = raw.trim().to_string();
        if trimmed != raw {
            let usable = Path::new(&trimmed).is_file();
            report.push(Step::fail(
                STEP_JAAS,
                format!("{where_}: keyTab={raw:?} has {} whitespace inside the quotes", whitespace_where(&raw)),
                format!(
                    "Java uses the value exactly as written, so it opens a file literally named {raw:?} (with the space), \
                     which does not exist; the login fails with \"Unable to obtain password from user\".{}",
                    if usable {
                        format!(" The doctor continues with {trimmed} to check the rest.")
                    } else {
                        String::new()
                    }
                ),
                format!("remove the whitespace:\n{}", login.fixed_line()),
            ));
            if !usable {
                return None;
            }
            return Some(ClientLogin::Keytab {
                keytab: PathBuf::from(trimmed),
                principal,
            });
        }
        let keytab = PathBuf::from(&raw);
        if let Err(e) = std::fs::File::open(&keytab) {
            report.push(Step::fail(
                STEP_JAAS,
                format!("{where_}: keyTab {raw} cannot be read: {e}"),
                "Krb5LoginModule cannot read the keytab and falls back to asking for a password, which Kafka cannot \
                 do: \"Unable to obtain password from user\".",
                "fix the keyTab path, or the file's permissions for the user the client runs as",
            ));
            return None;
        }
        if keytab.is_relative() {
            warnings.push(format!(
                "keyTab {raw} is relative: Java resolves it against the client's working directory"
            ));
        }
        let detail = format!("{where_}: Krb5LoginModule useKeyTab=true keyTab={raw} principal={principal}");
        push_with_warnings(report, STEP_JAAS, detail, warnings);
        return Some(ClientLogin::Keytab { keytab, principal });
    }
    if login.use_ticket_cache {
        let ccache = login.ticket_cache.clone();
        if let Ok(env) = std::env::var("KRB5CCNAME") {
            let kind = env
                .split_once(':')
                .map(|(k, _)| k.to_ascii_uppercase())
                .unwrap_or_default();
            if ccache.is_none() && !kind.is_empty() && kind != "FILE" {
                warnings.push(format!(
                    "KRB5CCNAME={env} is a {kind} cache: Java reads only FILE: caches, use ticketCache=\"/path\" with a FILE cache"
                ));
            }
        }
        let detail = format!(
            "{where_}: Krb5LoginModule useTicketCache=true{}",
            ccache
                .as_deref()
                .map(|c| format!(" ticketCache={c}"))
                .unwrap_or_default()
        );
        push_with_warnings(report, STEP_JAAS, detail, warnings);
        return Some(ClientLogin::Cache { ccache });
    }
    report.push(Step::fail(
        STEP_JAAS,
        format!("{where_}: neither useKeyTab=true nor useTicketCache=true"),
        "Krb5LoginModule then asks for a user name and password, which Kafka clients cannot supply: \"Could not \
         login: the client is being asked for a password\".",
        "add useKeyTab=true keyTab=\"/path/client.keytab\" principal=\"client@REALM\" (services), or useTicketCache=true \
         after kinit (people)",
    ));
    None
}

fn whitespace_where(raw: &str) -> &'static str {
    match (raw.starts_with(char::is_whitespace), raw.ends_with(char::is_whitespace)) {
        (true, true) => "leading and trailing",
        (true, false) => "leading",
        _ => "trailing",
    }
}

fn push_with_warnings(report: &mut Report, name: &str, detail: String, warnings: Vec<String>) {
    if warnings.is_empty() {
        report.push(Step::ok(name, detail));
    } else {
        report.push(Step::warn(
            name,
            detail,
            warnings.join("\n"),
            "fix the options above; Java ignores what it does not recognise",
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. krb5.conf

fn krb5_conf_step(
    opts: &DoctorOptions,
    path: &Path,
    source: &ConfSource,
    client_realm: Option<&str>,
    report: &mut Report,
) -> Option<Krb5Conf> {
    let conf = match Krb5Conf::load(path) {
        Ok(c) => c,
        Err(e) => {
            report.push(Step::fail(
                STEP_KRB5_CONF,
                format!("{} ({}): {e}", path.display(), source.describe()),
                "Without a readable krb5.conf clients know no default realm and no KDC: Java fails with \"Cannot locate \
                 default realm\", MIT with \"Cannot find KDC for realm\".",
                "give the file with --krb5-conf (Java: -Djava.security.krb5.conf=FILE; librdkafka: KRB5_CONFIG=FILE)",
            ));
            return None;
        }
    };
    let host = normalize(&opts.host);
    let canon = |tag: &str| match conf.libdefault(tag) {
        Some(v) => v.to_string(),
        None => "unset (MIT default: true)".to_string(),
    };
    let mut detail = format!(
        "{} ({}); default_realm {}",
        path.display(),
        source.describe(),
        conf.default_realm().unwrap_or("(none)")
    );
    let host_realm = conf.host_realm(&host);
    match &host_realm {
        Some((realm, RealmSource::DomainRealm(key))) => {
            detail.push_str(&format!("; {host} is in {realm} ([domain_realm] {key} = {realm})"))
        }
        Some((realm, RealmSource::Default)) => detail.push_str(&format!(
            "; {host} is in {realm} (no [domain_realm] entry: the default realm)"
        )),
        None => {}
    }
    detail.push_str(&format!(
        "; dns_canonicalize_hostname={}, rdns={}",
        canon("dns_canonicalize_hostname"),
        canon("rdns")
    ));

    let Some((realm, realm_source)) = host_realm else {
        report.push(Step::fail(
            STEP_KRB5_CONF,
            detail,
            format!(
                "There is no default_realm and no [domain_realm] entry for {host}, so the realm of the broker's \
                 principal is unknown: Java fails with \"Cannot locate default realm\"."
            ),
            format!("set default_realm = YOUR.REALM in [libdefaults] of {}", path.display()),
        ));
        return None;
    };
    let home_realm = client_realm
        .map(str::to_string)
        .or_else(|| conf.default_realm().map(str::to_string));
    let dns_lookup_kdc = conf.libdefault_bool("dns_lookup_kdc");
    let realm_has_kdc = !conf.kdcs(&realm).is_empty();
    let mut problems = Vec::new();
    let mut fatal = false;
    if let (RealmSource::DomainRealm(key), Some(home)) = (&realm_source, &home_realm) {
        if realm != *home {
            let known = if realm_has_kdc {
                format!(
                    "[realms] has KDCs for {realm}, so this works only with a cross-realm trust krbtgt/{realm}@{home}"
                )
            } else {
                fatal = dns_lookup_kdc == Some(false);
                format!(
                    "{realm} has no kdc in [realms]{}",
                    if fatal {
                        " and dns_lookup_kdc = false"
                    } else {
                        "; only DNS SRV records could find one"
                    }
                )
            };
            let via = if *key == host {
                String::new()
            } else {
                format!(" (through {key})")
            };
            problems.push(format!(
                "[domain_realm] maps {host}{via} to {realm}, but the client's realm is {home}: clients ask for \
                 {}/{host}@{realm} and need a cross-realm ticket for it; {known}.",
                opts.service_name
            ));
        }
    } else if !realm_has_kdc && dns_lookup_kdc == Some(false) {
        fatal = true;
        problems.push(format!(
            "[realms] has no kdc for {realm} and dns_lookup_kdc = false: clients cannot find a KDC (\"Cannot find KDC for realm {realm}\")."
        ));
    }
    if conf.default_realm().is_none() {
        problems.push(
            "no default_realm: Java needs it for principals written without a realm (\"Cannot locate default realm\")."
                .into(),
        );
    }
    if *source == ConfSource::Env && matches!(opts.login, LoginSource::Jaas(_)) {
        problems.push(
            "KRB5_CONFIG is read by MIT krb5 (librdkafka, kafka-python), not by Java: a Java client reads \
             -Djava.security.krb5.conf or /etc/krb5.conf."
                .into(),
        );
    }
    if problems.is_empty() {
        report.push(Step::ok(STEP_KRB5_CONF, detail));
    } else if fatal {
        report.push(Step::fail(
            STEP_KRB5_CONF,
            detail,
            problems.join("\n"),
            format!(
                "fix [domain_realm] in {} so that {host} maps to the realm the broker's principal is in (e.g. `{host} = {}`), \
                 or add the realm's kdc to [realms]",
                path.display(),
                home_realm.as_deref().unwrap_or("YOUR.REALM")
            ),
        ));
    } else {
        report.push(Step::warn(
            STEP_KRB5_CONF,
            detail,
            problems.join("\n"),
            format!("check [libdefaults], [realms] and [domain_realm] in {}", path.display()),
        ));
    }
    Some(conf)
}

// ---------------------------------------------------------------------------------------------
// 3. host name canonicalisation and the service principal

async fn spn_step(opts: &DoctorOptions, conf: &Krb5Conf, dns: &dyn Lookup, report: &mut Report) -> Option<Spn> {
    let given = normalize(&opts.host);
    let is_ip = given.parse::<IpAddr>().is_ok();
    let forward: Forward = match dns.forward(&opts.host).await {
        Ok(f) => f,
        Err(e) => {
            report.push(Step::fail(
                STEP_SPN,
                format!("bootstrap host {} does not resolve: {e}", opts.host),
                "Clients cannot connect: Java says \"No resolvable bootstrap urls given in bootstrap.servers\", \
                 librdkafka \"Failed to resolve\".",
                "use a host name that resolves on the client (DNS or /etc/hosts)",
            ));
            return None;
        }
    };
    let mut reverse: Vec<(IpAddr, Result<Vec<String>, String>)> = Vec::new();
    for ip in &forward.addrs {
        reverse.push((*ip, dns.reverse(*ip).await));
    }
    let first_ptr = reverse
        .iter()
        .find_map(|(_, r)| r.as_ref().ok().and_then(|names| names.first().cloned()));
    let mut java_canonical = Vec::new();
    if opts.client_dns_lookup == ClientDnsLookup::ResolveCanonicalBootstrapServersOnly || is_ip {
        for ip in &forward.addrs {
            java_canonical.push(dns.java_canonical(*ip).await);
        }
    }

    let (host, how) = if opts.dns_canonicalize {
        let (h, how) = match &first_ptr {
            Some(ptr) => (
                ptr.clone(),
                format!(
                    "--dns-canonicalize: canonical name {}, reverse DNS of {} gives {ptr}",
                    forward.canonical, forward.addrs[0]
                ),
            ),
            None => (
                forward.canonical.clone(),
                format!(
                    "--dns-canonicalize: canonical name {} (no reverse DNS name)",
                    forward.canonical
                ),
            ),
        };
        (h, how)
    } else if opts.client_dns_lookup == ClientDnsLookup::ResolveCanonicalBootstrapServersOnly {
        let h = java_canonical.first().cloned().unwrap_or_else(|| given.clone());
        (
            h.clone(),
            format!(
                "client.dns.lookup=resolve_canonical_bootstrap_servers_only: canonical name of {} is {h}",
                forward.addrs[0]
            ),
        )
    } else {
        (given.clone(), "the bootstrap host as given".to_string())
    };
    let (realm, realm_source) = conf.host_realm(&host)?;
    let principal = format!("{}/{host}@{realm}", opts.service_name);
    let addrs_text: Vec<String> = forward.addrs.iter().map(|a| a.to_string()).collect();
    let realm_text = match realm_source {
        RealmSource::DomainRealm(key) => format!("realm from [domain_realm] {key}"),
        RealmSource::Default => "default realm".to_string(),
    };
    let detail = format!(
        "{principal} ({how}; {realm_text}; {} resolves to {})",
        opts.host,
        addrs_text.join(", ")
    );

    let mut other_hosts: Vec<String> = Vec::new();
    let mut add_other = |h: &str| {
        let h = normalize(h);
        if h != host && h.parse::<IpAddr>().is_err() && !other_hosts.contains(&h) {
            other_hosts.push(h);
        }
    };
    for (_, r) in &reverse {
        if let Ok(names) = r {
            names.iter().for_each(|n| add_other(n));
        }
    }
    add_other(&forward.canonical);
    if !is_ip {
        add_other(&given);
    }

    let mut warnings = Vec::new();
    let mut fixes = Vec::new();
    let rdns = conf
        .libdefault("rdns")
        .map(str::to_string)
        .unwrap_or_else(|| "unset (true)".into());
    let canonicalize = conf
        .libdefault("dns_canonicalize_hostname")
        .map(str::to_string)
        .unwrap_or_else(|| "unset (true)".into());
    if is_ip {
        let realm_of = |h: &str| conf.host_realm(h).map(|(r, _)| r).unwrap_or_else(|| realm.clone());
        let as_given = format!("{}/{given}@{}", opts.service_name, realm_of(&given));
        let java = java_canonical.first().cloned().unwrap_or_else(|| given.clone());
        let java_text = if java != given {
            format!(
                "Java clients do a reverse lookup of an IP literal and ask for {}/{java}@{}",
                opts.service_name,
                realm_of(&java)
            )
        } else {
            "Java finds no verified reverse name either".to_string()
        };
        warnings.push(format!(
            "The bootstrap server is an IP address: clients that use it as given ask the KDC for {as_given}, a \
             principal that rarely exists (librdkafka and other MIT-krb5 clients do so when krb5.conf has rdns=false \
             and dns_canonicalize_hostname=false; here rdns={rdns}, dns_canonicalize_hostname={canonicalize}). \
             {java_text}."
        ));
        let name = std::iter::once(&host)
            .chain(other_hosts.iter())
            .find(|h| h.parse::<IpAddr>().is_err())
            .cloned()
            .unwrap_or_else(|| "broker1.example.com".into());
        fixes.push(format!(
            "put the broker's host name (the host of its principal, e.g. {name}) in bootstrap.servers and in the \
             broker's advertised listener"
        ));
    }
    if !opts.dns_canonicalize && !is_ip {
        if let Some(ptr) = &first_ptr {
            if *ptr != host {
                warnings.push(format!(
                    "Reverse DNS of {} gives {ptr}, not {host}: librdkafka and other MIT-krb5 clients with rdns=true \
                     (here: rdns={rdns}, dns_canonicalize_hostname={canonicalize}) and Java with \
                     client.dns.lookup=resolve_canonical_bootstrap_servers_only ask for {}/{ptr}@{realm} instead.",
                    forward.addrs[0], opts.service_name
                ));
                fixes.push(format!(
                    "make the PTR record of {} name {host}, or set rdns = false and dns_canonicalize_hostname = false \
                     in the clients' krb5.conf",
                    forward.addrs[0]
                ));
            }
        }
        if forward.canonical != given && forward.canonical != host {
            warnings.push(format!(
                "{given} is an alias (CNAME) of {}: MIT-krb5 clients with dns_canonicalize_hostname=true (here: \
                 {canonicalize}) ask for {}/{}@{realm}.",
                forward.canonical, opts.service_name, forward.canonical
            ));
            fixes.push(format!(
                "use the canonical name {} in bootstrap.servers, or give the broker a principal for it too",
                forward.canonical
            ));
        }
    }
    if opts.host.chars().any(|c| c.is_ascii_uppercase()) {
        warnings.push(format!(
            "{} has upper-case letters: Kerberos clients lower-case the host, the principal must be {principal}.",
            opts.host
        ));
    }
    let distinct: Vec<&String> = {
        let mut d: Vec<&String> = Vec::new();
        for name in &java_canonical {
            if !d.contains(&name) {
                d.push(name);
            }
        }
        d
    };
    if opts.client_dns_lookup == ClientDnsLookup::ResolveCanonicalBootstrapServersOnly && distinct.len() > 1 {
        warnings.push(format!(
            "The addresses of {} have different canonical names ({}): a Java client asks for a different principal \
             depending on the address it connects to.",
            opts.host,
            distinct.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if warnings.is_empty() {
        report.push(Step::ok(STEP_SPN, detail));
    } else {
        report.push(Step::warn(STEP_SPN, detail, warnings.join("\n"), fixes.join("\n")));
    }
    Some(Spn {
        host,
        realm,
        principal,
        addrs: forward.addrs,
        other_hosts,
    })
}

// ---------------------------------------------------------------------------------------------
// 4. KDC reachability

async fn kdc_step(
    opts: &DoctorOptions,
    conf: &Krb5Conf,
    conf_path: &Path,
    client_realm: Option<&str>,
    spn: Option<&Spn>,
    dns: &dyn Lookup,
    report: &mut Report,
) -> (bool, Option<ClockOffset>) {
    let mut realms: Vec<String> = Vec::new();
    if let Some(r) = client_realm {
        realms.push(r.to_string());
    }
    if let Some(spn) = spn {
        if !realms.contains(&spn.realm) && (!conf.kdcs(&spn.realm).is_empty() || realms.is_empty()) {
            realms.push(spn.realm.clone());
        }
    }
    if realms.is_empty() {
        report.push(Step::fail(
            STEP_KDC,
            "no realm to look up KDCs for",
            "Neither the principal nor krb5.conf names a realm.",
            "set default_realm in krb5.conf or give the principal with @REALM",
        ));
        return (false, None);
    }
    let mut clock: Option<ClockOffset> = None;
    let connect_timeout = opts.timeout.min(Duration::from_secs(3));
    let mut parts = Vec::new();
    let mut unreachable = Vec::new();
    let mut any_realm_dead = false;
    for realm in &realms {
        let mut targets: Vec<(String, String, u16)> = conf
            .kdcs(realm)
            .into_iter()
            .filter(|k| {
                if k.udp_only {
                    parts.push(format!("{realm}: {} is UDP only (not checked)", k.entry));
                }
                !k.udp_only
            })
            .map(|k| (k.entry.clone(), k.host, k.port))
            .collect();
        if conf.kdcs(realm).is_empty() && conf.libdefault_bool("dns_lookup_kdc") != Some(false) {
            match dns.srv(&format!("_kerberos._tcp.{realm}.")).await {
                Ok(found) => {
                    targets = found
                        .into_iter()
                        .map(|(h, p)| (format!("{h}:{p} (SRV)"), h, p))
                        .collect()
                }
                Err(e) => unreachable.push(format!("{realm}: no kdc in krb5.conf and no SRV record ({e})")),
            }
        } else if conf.kdcs(realm).is_empty() {
            unreachable.push(format!("{realm}: no kdc in [realms] of {}", conf_path.display()));
        }
        let mut reachable = 0;
        for (entry, host, port) in &targets {
            match tcp_probe(dns, host, *port, connect_timeout).await {
                Ok(addr) => {
                    reachable += 1;
                    if clock.is_none() {
                        if let Ok(t) = kdc_clock::kdc_time(addr, realm, connect_timeout).await {
                            let seconds = kdc_clock::offset_seconds(t.time, std::time::SystemTime::now());
                            clock = Some(ClockOffset {
                                seconds,
                                kdc: entry.clone(),
                                kdc_time: t.time,
                            });
                        }
                    }
                    if host.parse::<IpAddr>().is_ok() {
                        parts.push(format!("{realm}: {entry} accepts TCP"));
                    } else {
                        parts.push(format!("{realm}: {entry} accepts TCP ({addr})"));
                    }
                }
                Err(e) => unreachable.push(format!("{realm}: {entry}: {e}")),
            }
        }
        if reachable == 0 {
            any_realm_dead = true;
        }
    }
    if any_realm_dead {
        report.push(Step::fail(
            STEP_KDC,
            format!("no KDC answers: {}", unreachable.join("; ")),
            "Clients cannot get any ticket. Java reports \"Cannot contact any KDC for realm\" or \"Receive timed out\"; \
             librdkafka/MIT \"Cannot contact any KDC for realm\". (Only TCP is checked: a KDC reachable over UDP alone \
             still fails for large tickets.)",
            format!(
                "check the kdc entries of [realms] in {}, that the KDC runs, and firewalls (port 88, TCP and UDP); \
                 udp_preference_limit = 1 in [libdefaults] makes clients use TCP",
                conf_path.display()
            ),
        ));
        return (false, clock);
    }
    if let Some(c) = &clock {
        parts.push(format!("this clock is {} the KDC's", describe_offset(c.seconds)));
        // MIT's default clockskew: beyond it the KDC and every broker refuse this host's tickets.
        if c.seconds.abs() > 300 {
            report.push(Step::warn(
                STEP_KDC,
                parts.join("; "),
                "Kerberos tolerates 5 minutes of clock difference (clockskew); beyond it logins fail with \"Clock skew too \
                 great\" (KRB_AP_ERR_SKEW), at the KDC or at the broker.",
                "synchronise the clocks of clients, brokers and KDCs (NTP/chrony)",
            ));
            return (true, clock);
        }
    }
    if unreachable.is_empty() {
        report.push(Step::ok(STEP_KDC, parts.join("; ")));
    } else {
        report.push(Step::warn(
            STEP_KDC,
            parts.join("; "),
            format!("some KDCs do not answer: {}", unreachable.join("; ")),
            "clients fall back to the next KDC after a timeout; fix or remove the dead entries",
        ));
    }
    (true, clock)
}

/// The first address of `host` that accepts a TCP connection; errors name the address only when
/// `host` is a name.
/// This machine's clock compared with a KDC's (see [`kdc_clock`]).
struct ClockOffset {
    /// Local minus KDC, seconds.
    seconds: i64,
    kdc: String,
    kdc_time: std::time::SystemTime,
}

fn describe_offset(seconds: i64) -> String {
    match seconds {
        0 => "within 1 s of".to_string(),
        s if s > 0 => format!("{s} s ahead of"),
        s => format!("{} s behind", -s),
    }
}

fn utc_text(t: std::time::SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!("{} {:02}:{:02}:{:02} UTC", t.date(), t.hour(), t.minute(), t.second())
}

async fn tcp_probe(dns: &dyn Lookup, host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, String> {
    let addrs = dns
        .forward(host)
        .await
        .map_err(|e| format!("does not resolve: {e}"))?
        .addrs;
    let literal = host.parse::<IpAddr>().is_ok();
    let mut errors = Vec::new();
    for ip in addrs {
        let addr = SocketAddr::new(ip, port);
        let error = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(addr),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {timeout:?}"),
        };
        errors.push(if literal { error } else { format!("{addr} {error}") });
    }
    Err(errors.join(", "))
}

// ---------------------------------------------------------------------------------------------
// environment

fn set_process_environment(conf_path: &Path, login: &ClientLogin, server_keytab: Option<&Path>) {
    std::env::set_var("KRB5_CONFIG", absolute(conf_path));
    match login {
        ClientLogin::Keytab { keytab, .. } => {
            std::env::set_var("KRB5_CLIENT_KTNAME", format!("FILE:{}", absolute(keytab).display()));
            std::env::set_var("KRB5CCNAME", format!("MEMORY:kgate-doctor-{}", std::process::id()));
        }
        ClientLogin::Cache { ccache: Some(cache) } => {
            let value = if cache.contains(':') {
                cache.clone()
            } else {
                format!("FILE:{cache}")
            };
            std::env::set_var("KRB5CCNAME", value);
        }
        ClientLogin::Cache { ccache: None } => {}
    }
    if let Some(keytab) = server_keytab {
        std::env::set_var("KRB5_KTNAME", format!("FILE:{}", absolute(keytab).display()));
        std::env::set_var("KRB5RCACHETYPE", "none");
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

// ---------------------------------------------------------------------------------------------
// 5. credentials

fn with_realm(principal: &str, conf: &Krb5Conf) -> String {
    if principal.contains('@') {
        return principal.to_string();
    }
    match conf.default_realm() {
        Some(realm) => format!("{principal}@{realm}"),
        None => principal.to_string(),
    }
}

fn credentials_step(
    login: &ClientLogin,
    conf: &Krb5Conf,
    conf_path: &Path,
    clock: Option<&ClockOffset>,
    report: &mut Report,
) -> Option<(Cred, String)> {
    // Clock skew first: MIT krb5 may hide it from itself (kdc_timesync), Java and brokers do not.
    if let Some(c) = clock {
        if c.seconds.unsigned_abs() > conf.clockskew() {
            let (why, fix) = clock_skew(conf, false);
            report.push(Step::fail(
                STEP_CREDENTIALS,
                format!(
                    "clock skew: this machine's clock ({}) is {} the KDC's ({}, {}); more than the {} s Kerberos allows",
                    utc_text(std::time::SystemTime::now()),
                    describe_offset(c.seconds),
                    c.kdc,
                    utc_text(c.kdc_time),
                    conf.clockskew()
                ),
                why,
                fix,
            ));
            return None;
        }
    }
    let (cred, source) = match login {
        ClientLogin::Keytab { keytab, principal } => {
            let principal = with_realm(principal, conf);
            let entries = match keytab_entries(keytab) {
                Ok(e) => e,
                Err(e) => {
                    report.push(Step::fail(
                        STEP_CREDENTIALS,
                        e,
                        "The client cannot read its keytab, so it cannot log in (Java: \"Unable to obtain password from user\").",
                        "fix the keytab path or its permissions for the user the client runs as",
                    ));
                    return None;
                }
            };
            let newest = entries
                .iter()
                .filter(|(p, _, _)| *p == principal)
                .max_by_key(|(_, kvno, _)| *kvno);
            let Some((_, kvno, enctypes)) = newest else {
                let held: Vec<String> = entries.iter().map(|(p, k, _)| format!("{p} (kvno {k})")).collect();
                report.push(Step::fail(
                    STEP_CREDENTIALS,
                    format!(
                        "keytab {} holds no key for {principal}; it holds {}",
                        keytab.display(),
                        if held.is_empty() { "nothing".to_string() } else { held.join(", ") }
                    ),
                    "The login principal must be in the keytab exactly (case and realm included); otherwise Java fails \
                     with \"Unable to obtain password from user\" and MIT with \"Keytab contains no suitable keys\".",
                    format!(
                        "use one of the principals listed, or export the key: kadmin -q \"ktadd -norandkey -k {} {principal}\"",
                        keytab.display()
                    ),
                ));
                return None;
            };
            let source = format!("keytab {} (kvno {kvno}: {enctypes})", keytab.display());
            match gss::acquire_initiator(Some(&principal)) {
                Ok(c) => (c, source),
                Err(e) => {
                    push_credentials_failure(report, &e, &source, conf, conf_path);
                    return None;
                }
            }
        }
        ClientLogin::Cache { .. } => {
            let source = match std::env::var("KRB5CCNAME") {
                Ok(cache) => format!("ticket cache {cache}"),
                Err(_) => "the default ticket cache (KRB5CCNAME is not set)".to_string(),
            };
            match gss::acquire_initiator(None) {
                Ok(c) => (c, source),
                Err(e) => {
                    push_credentials_failure(report, &e, &source, conf, conf_path);
                    return None;
                }
            }
        }
    };
    let principal = match gss::cred_principal(&cred) {
        Ok(p) => p,
        Err(e) => {
            push_credentials_failure(report, &e, &source, conf, conf_path);
            return None;
        }
    };
    // A context for the realm's own TGS principal makes MIT fetch (or check) the TGT now, so that
    // login problems show up here rather than as a service-ticket failure.
    let realm = principal
        .rsplit_once('@')
        .map(|(_, r)| r.to_string())
        .unwrap_or_default();
    if let Err(e) = gss::initiate(&cred, &format!("krbtgt/{realm}@{realm}")) {
        push_credentials_failure(report, &e, &source, conf, conf_path);
        return None;
    }
    let lifetime = match gss::cred_lifetime(&cred) {
        Ok(l) => l,
        Err(e) => {
            push_credentials_failure(report, &e, &source, conf, conf_path);
            return None;
        }
    };
    let detail = format!("{principal}: TGT from {source}, valid for {}", human_duration(lifetime));
    if lifetime.is_zero() {
        report.push(Step::fail(
            STEP_CREDENTIALS,
            format!("{principal}: the ticket in {source} has expired"),
            "Kerberos tickets have a lifetime (typically 10-24 h); once the TGT has expired the client cannot get \
             service tickets. Java reports \"No valid credentials provided (Mechanism level: Failed to find any \
             Kerberos tgt)\" or \"Ticket expired\".",
            "kinit again (kinit -R renews a renewable ticket), or use a keytab: useKeyTab=true, which Java renews itself",
        ));
        return None;
    }
    if lifetime < Duration::from_secs(600) {
        report.push(Step::warn(
            STEP_CREDENTIALS,
            detail,
            "The TGT expires in less than 10 minutes; connections made after that fail until it is renewed.",
            "kinit again or use a keytab (Java's Kafka login thread re-logs in from a keytab by itself)",
        ));
    } else {
        report.push(Step::ok(STEP_CREDENTIALS, detail));
    }
    Some((cred, principal))
}

fn push_credentials_failure(report: &mut Report, e: &GssFailure, source: &str, conf: &Krb5Conf, conf_path: &Path) {
    let text = &e.text;
    let (why, fix) = if e.code == Some(codes::SKEW) || text.contains("Clock skew too great") {
        clock_skew(conf, true)
    } else if e.code == Some(codes::TKT_EXPIRED)
        || text.contains("Ticket expired")
        || text.contains("credential has expired")
    {
        (
            "The ticket in the cache has expired: Kerberos tickets have a lifetime (typically 10-24 h) and the KDC \
             issues no service tickets for an expired TGT. Java reports \"Ticket expired (32)\" or \"Failed to find any Kerberos \
             tgt\"."
                .to_string(),
            "kinit again (or kinit -R if renewable); services should log in from a keytab instead".to_string(),
        )
    } else if text.contains("No Kerberos credentials available")
        || text.contains("No credentials cache found")
        || text.contains("No credentials were supplied")
        || text.contains("Matching credential not found")
    {
        (
            "There is no ticket to use: nobody ran kinit for this cache, or the client looks at another cache. Java \
             reports \"No valid credentials provided (Mechanism level: Failed to find any Kerberos tgt)\"."
                .to_string(),
            "kinit principal@REALM (or kinit -kt keytab principal), check KRB5CCNAME; or log in from a keytab with \
             --keytab/--principal (Java: useKeyTab=true)"
                .to_string(),
        )
    } else if e.code == Some(codes::C_PRINCIPAL_UNKNOWN) || text.contains("not found in Kerberos database") {
        (
            "The KDC does not know the client principal: misspelt, wrong realm, or deleted. Java: \"Client not found \
             in Kerberos database (6)\"."
                .to_string(),
            "check the principal name and realm (kadmin: getprinc NAME)".to_string(),
        )
    } else if e.code == Some(codes::PREAUTH_FAILED)
        || text.contains("Preauthentication failed")
        || text.contains("Pre-authentication")
        || e.code == Some(codes::BAD_INTEGRITY)
    {
        (
            "The KDC rejected the client's key: the password changed or the principal was re-keyed after the keytab \
             was exported (stale kvno). Java: \"Pre-authentication information was invalid (24)\"."
                .to_string(),
            "re-export the client keytab (kadmin: ktadd -norandkey -k FILE principal) or kinit with the current password"
                .to_string(),
        )
    } else if text.contains("Cannot contact any KDC") || text.contains("Cannot find KDC") {
        (
            "No KDC of the realm answered.".to_string(),
            format!("check [realms] in {} and that the KDC runs", conf_path.display()),
        )
    } else if text.contains("Keytab contains no suitable keys") || text.contains("Key table entry not found") {
        (
            "The keytab has no key of a usable enctype for the principal.".to_string(),
            "re-export the keytab with the enctypes the KDC uses (klist -ke shows them)".to_string(),
        )
    } else {
        (
            "MIT krb5 could not get a TGT; the message above is its reason.".to_string(),
            "run kinit by hand with KRB5_TRACE=/dev/stderr for a trace".to_string(),
        )
    };
    report.push(Step::fail(
        STEP_CREDENTIALS,
        format!("no TGT from {source}: {text}"),
        why,
        fix,
    ));
}

/// Why and fix for clock skew; `show_now` adds this machine's time (when the detail lacks it).
fn clock_skew(conf: &Krb5Conf, show_now: bool) -> (String, String) {
    let mut why = format!(
        "Kerberos refuses requests whose timestamps differ from the KDC's (or the broker's) clock by more than the \
         allowed skew: {} s here (clockskew, default 300 s = 5 minutes). Java reports \"Clock skew too great (37)\"; \
         MIT krb5 may correct its own requests to the KDC (kdc_timesync), but the broker still sees the skewed clock.",
        conf.clockskew()
    );
    if show_now {
        why.push_str(&format!(
            " This machine's clock says {}.",
            utc_text(std::time::SystemTime::now())
        ));
    }
    (
        why,
        "synchronise the clocks of clients, KDCs and brokers with NTP (chrony or ntpd; timedatectl set-ntp true); do \
         not raise clockskew"
            .to_string(),
    )
}

/// The trial acceptance saw a skewed authenticator: MIT stamped it with the KDC's time (kdc_timesync)
/// while this machine's clock differs.
fn clock_skew_acceptor() -> (String, String) {
    (
        "The keytab is fine as far as this check goes, but accepting the ticket here failed on time: MIT krb5 \
         stamped the request with the KDC's time while this machine's clock differs by more than the allowed skew \
         (default 300 s = 5 minutes). A broker on this machine would refuse such clients too."
            .to_string(),
        "synchronise the clocks with NTP (chrony or ntpd; timedatectl set-ntp true)".to_string(),
    )
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

// ---------------------------------------------------------------------------------------------
// 6. service ticket

fn service_ticket_step(
    opts: &DoctorOptions,
    cred: &Cred,
    spn: &Spn,
    conf: &Krb5Conf,
    client_principal: &str,
    report: &mut Report,
) -> Option<(Vec<u8>, TicketInfo)> {
    match gss::initiate(cred, &spn.principal) {
        Ok((_ctx, token)) => {
            let ticket = match parse_initial_token(&token) {
                Ok(t) => t,
                Err(e) => {
                    report.push(Step::fail(
                        STEP_SERVICE_TICKET,
                        format!("got a token for {} but cannot read it: {e}", spn.principal),
                        "The first GSSAPI token is not a Kerberos AP-REQ.",
                        "report this with KRB5_TRACE output",
                    ));
                    return None;
                }
            };
            report.push(Step::ok(
                STEP_SERVICE_TICKET,
                format!(
                    "{} for {client_principal}: kvno {}, {}",
                    ticket.service,
                    ticket.kvno.map(|k| k.to_string()).unwrap_or_else(|| "(none)".into()),
                    crate::diag::enctype_name(ticket.enctype)
                ),
            ));
            Some((token, ticket))
        }
        Err(e) => {
            let not_found =
                e.code == Some(codes::S_PRINCIPAL_UNKNOWN) || e.text.contains("not found in Kerberos database");
            if not_found {
                server_not_found(opts, cred, spn, conf, client_principal, &e, report);
            } else if e.code == Some(codes::SKEW) || e.text.contains("Clock skew too great") {
                let (why, fix) = clock_skew(conf, true);
                report.push(Step::fail(
                    STEP_SERVICE_TICKET,
                    format!("no ticket for {}: {}", spn.principal, e.text),
                    why,
                    fix,
                ));
            } else if e.code == Some(codes::TKT_EXPIRED) || e.text.contains("Ticket expired") {
                report.push(Step::fail(
                    STEP_SERVICE_TICKET,
                    format!("no ticket for {}: {}", spn.principal, e.text),
                    "The TGT expired: the KDC does not issue service tickets for it.",
                    "kinit again, or log in from a keytab",
                ));
            } else if e.code == Some(codes::ETYPE_NOSUPP) {
                report.push(Step::fail(
                    STEP_SERVICE_TICKET,
                    format!("no ticket for {}: {}", spn.principal, e.text),
                    "The KDC has no key for the service principal in an enctype the client accepts.",
                    "compare permitted_enctypes/default_tgs_enctypes in krb5.conf with the principal's keys (kadmin: getprinc)",
                ));
            } else {
                report.push(Step::fail(
                    STEP_SERVICE_TICKET,
                    format!("no ticket for {}: {}", spn.principal, e.text),
                    "The KDC did not issue a service ticket; the message above is MIT krb5's reason.",
                    "retry with KRB5_TRACE=/dev/stderr for a trace",
                ));
            }
            None
        }
    }
}

/// LOOKING_UP_SERVER: name the principal to create or the host to use, probing the KDC for likely
/// alternatives (another service name, the host's other DNS names, hosts in the broker keytab).
fn server_not_found(
    opts: &DoctorOptions,
    cred: &Cred,
    spn: &Spn,
    conf: &Krb5Conf,
    client_principal: &str,
    e: &GssFailure,
    report: &mut Report,
) {
    let exists = |principal: &str| gss::initiate(cred, principal).is_ok();
    let client_realm = client_principal.rsplit_once('@').map(|(_, r)| r).unwrap_or("");
    let detail = format!(
        "the KDC has no {} ({}; Java: \"Server not found in Kerberos database (7) - LOOKING_UP_SERVER\")",
        spn.principal, e.text
    );

    // Cross-realm: the client's KDC has no trust to the host's realm.
    if e.text.contains("krbtgt/") && spn.realm != client_realm {
        report.push(Step::fail(
            STEP_SERVICE_TICKET,
            format!(
                "no ticket for {}: the KDC of {client_realm} has no cross-realm principal krbtgt/{}@{client_realm} ({})",
                spn.principal, spn.realm, e.text
            ),
            format!(
                "The client ({client_realm}) asked its KDC for a cross-realm ticket to {} because krb5.conf puts \
                 {} in {}; {client_realm}'s KDC has no such trust. Usually the [domain_realm] mapping is wrong.",
                spn.realm, spn.host, spn.realm
            ),
            format!(
                "map the broker host to the broker's realm in [domain_realm] (e.g. `{} = {client_realm}`), or set up \
                 the cross-realm trust krbtgt/{}@{client_realm}",
                spn.host, spn.realm
            ),
        ));
        return;
    }

    // Wrong service name?
    if opts.service_name != "kafka" {
        let kafka = format!("kafka/{}@{}", spn.host, spn.realm);
        if exists(&kafka) {
            report.push(Step::fail(
                STEP_SERVICE_TICKET,
                detail,
                format!(
                    "The first part of the principal is the client's sasl.kerberos.service.name ({}). The KDC does \
                     have {kafka}: the service name is wrong, not the host.",
                    opts.service_name
                ),
                "set sasl.kerberos.service.name=kafka on the client (librdkafka and Java use the same property), the \
                 service name of the broker's principal (kgate: [kerberos] service_name)"
                    .to_string(),
            ));
            return;
        }
    }

    let mut candidates: Vec<String> = spn.other_hosts.clone();
    if let Some(keytab) = &opts.server_keytab {
        if let Ok(entries) = keytab_entries(keytab) {
            for (p, _, _) in entries {
                if let Some(host) = p
                    .strip_prefix(&format!("{}/", opts.service_name))
                    .and_then(|rest| rest.rsplit_once('@'))
                    .map(|(h, _)| h.to_string())
                {
                    if !candidates.contains(&host) && host != spn.host {
                        candidates.push(host);
                    }
                }
            }
        }
    }
    let found: Vec<String> = candidates
        .iter()
        .filter_map(|h| {
            let realm = conf.host_realm(h).map(|(r, _)| r).unwrap_or_else(|| spn.realm.clone());
            let p = format!("{}/{h}@{realm}", opts.service_name);
            exists(&p).then_some(p)
        })
        .collect();
    let mut why = format!(
        "A Kafka client asks the KDC for <sasl.kerberos.service.name>/<the broker host it connects to>@REALM, here \
         {}. The broker's principal must be named after that host (its FQDN as clients write it): an IP address, an \
         alias, a load balancer or gateway name or a short name gives a principal that does not exist.",
        spn.principal
    );
    if !found.is_empty() {
        why.push_str(&format!(" The KDC does have {}.", found.join(", ")));
    }
    let host_fix = match found.first() {
        Some(p) => {
            let host = p
                .split_once('/')
                .and_then(|(_, r)| r.rsplit_once('@'))
                .map(|(h, _)| h)
                .unwrap_or("");
            format!(
                "connect to and advertise the host the principal exists for: bootstrap.servers={host}:{}",
                opts.port
            )
        }
        None => "connect to and advertise a host name that has a principal".to_string(),
    };
    let fix = format!(
        "{host_fix}\nor create the principal and add it to the broker's keytab:\n  kadmin -q \"addprinc -randkey {p}\"\n  kadmin -q \"ktadd -k /path/to/broker.keytab {p}\"",
        p = spn.principal
    );
    report.push(Step::fail(STEP_SERVICE_TICKET, detail, why, fix));
}

// ---------------------------------------------------------------------------------------------
// 7. the broker's keytab

fn server_keytab_step(keytab: &Path, spn: &Spn, token: &[u8], ticket: &TicketInfo, report: &mut Report) {
    let entries = match keytab_entries(keytab) {
        Ok(e) => e,
        Err(e) => {
            report.push(Step::fail(
                STEP_SERVER_KEYTAB,
                e,
                "The broker cannot accept any ticket with a keytab it cannot read.",
                "give the broker's keytab file (readable by this user)",
            ));
            return;
        }
    };
    let service = &ticket.service;
    let ours: Vec<&(String, u32, String)> = entries.iter().filter(|(p, _, _)| p == service).collect();
    let export = format!("kadmin -q \"ktadd -norandkey -k {} {service}\"", keytab.display());
    let norandkey_note =
        "(-norandkey exports the current key, which needs kadmin.local or the extract-keys privilege; \
                          plain ktadd re-keys the principal and makes every other copy of the keytab stale)";
    if ours.is_empty() {
        let held: Vec<String> = entries.iter().map(|(p, k, _)| format!("{p} (kvno {k})")).collect();
        let same_service_hosts: Vec<String> = entries
            .iter()
            .filter_map(|(p, _, _)| {
                let (name, _) = p.rsplit_once('@')?;
                let (svc, host) = name.split_once('/')?;
                (Some(svc) == service.split_once('/').map(|(s, _)| s)).then(|| host.to_string())
            })
            .collect();
        report.push(Step::fail(
            STEP_SERVER_KEYTAB,
            format!(
                "{} holds no key for {service}; it holds {}",
                keytab.display(),
                if held.is_empty() { "nothing".into() } else { held.join(", ") }
            ),
            format!(
                "Clients get tickets for {service} (the host they connect to, {}), and a broker can only accept \
                 tickets for principals in its keytab. kgate refuses to start a GSSAPI listener whose advertised host \
                 has no key; Kafka fails every login with \"Checksum failed\" or \"Cannot find key of appropriate type\".",
                spn.host
            ),
            format!(
                "export the key into the broker's keytab: {export} {norandkey_note}{}",
                if same_service_hosts.is_empty() {
                    String::new()
                } else {
                    format!("\nor advertise a host the keytab has a key for: {}", same_service_hosts.join(", "))
                }
            ),
        ));
        return;
    }
    let ticket_enctype = crate::diag::enctype_name(ticket.enctype);
    let keytab_text: Vec<String> = ours.iter().map(|(_, k, e)| format!("kvno {k}: {e}")).collect();
    let keytab_text = keytab_text.join("; ");
    if let Some(kvno) = ticket.kvno {
        let max = ours.iter().map(|(_, k, _)| *k).max().unwrap_or(0);
        if !ours.iter().any(|(_, k, _)| *k == kvno) {
            let (detail, why) = if max < kvno {
                (
                    format!(
                        "the broker's keytab is older than the KDC's key: re-export it (ticket kvno {kvno}, keytab {keytab_text})"
                    ),
                    format!(
                        "{service} was re-keyed (kvno {kvno}) after {} was exported (kvno {max}): the broker cannot \
                         decrypt the tickets clients now get. Kafka logs \"Specified version of key is not available \
                         (44)\" or \"Checksum failed\"; clients see SASL_AUTHENTICATION_FAILED.",
                        keytab.display()
                    ),
                )
            } else {
                (
                    format!("the ticket is older than the keytab (ticket kvno {kvno}, keytab {keytab_text})"),
                    format!(
                        "The keytab holds a newer key (kvno {max}) than the ticket the client got (kvno {kvno}): the \
                         client holds a ticket issued before the principal was re-keyed, or the keytab comes from \
                         another KDC."
                    ),
                )
            };
            report.push(Step::fail(
                STEP_SERVER_KEYTAB,
                detail,
                why,
                format!(
                    "{export} {norandkey_note}, then restart the broker; clients holding old tickets need kdestroy/kinit"
                ),
            ));
            return;
        }
        let same = ours
            .iter()
            .find(|(_, k, _)| *k == kvno)
            .map(|(_, _, e)| e.clone())
            .unwrap_or_default();
        if !same.split(", ").any(|e| e == ticket_enctype) {
            report.push(Step::fail(
                STEP_SERVER_KEYTAB,
                format!("the keytab has kvno {kvno} but not in {ticket_enctype} (it has {same})"),
                format!(
                    "The KDC encrypted the ticket with {ticket_enctype}; the broker needs that key. Kafka: \"Cannot \
                     find key of appropriate type to decrypt AP REP - {ticket_enctype}\"."
                ),
                format!("{export} {norandkey_note}, with all the principal's enctypes"),
            ));
            return;
        }
    }
    match gss::accept(service, token) {
        Ok(client) => report.push(Step::ok(
            STEP_SERVER_KEYTAB,
            format!(
                "{} decrypts the ticket for {service} (ticket kvno {}, {ticket_enctype}; keytab {keytab_text}); client {client}",
                keytab.display(),
                ticket.kvno.map(|k| k.to_string()).unwrap_or_else(|| "(none)".into())
            ),
        )),
        Err(e) if e.code == Some(codes::SKEW) || e.text.contains("Clock skew") => {
            let (why, fix) = clock_skew_acceptor();
            report.push(Step::fail(
                STEP_SERVER_KEYTAB,
                format!("{} cannot accept the ticket for {service}: {}", keytab.display(), e.text),
                why,
                fix,
            ))
        }
        Err(e) => report.push(Step::fail(
            STEP_SERVER_KEYTAB,
            format!("{} cannot accept the ticket for {service}: {}", keytab.display(), e.text),
            "The keytab has the ticket's kvno and enctype but its key does not decrypt the ticket: it was exported \
             from another KDC or before a password was set twice at the same kvno."
                .to_string(),
            format!("{export} {norandkey_note}"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// 8. the handshake with the listener

async fn handshake_step(opts: &DoctorOptions, cred: &Cred, spn: &Spn, report: &mut Report) {
    let addrs: Vec<SocketAddr> = spn.addrs.iter().map(|ip| SocketAddr::new(*ip, opts.port)).collect();
    let target = format!("{}:{}", opts.host, opts.port);
    let keytab_failed = report.failed(STEP_SERVER_KEYTAB);
    let fail = |report: &mut Report, detail: String, why: String, fix: String| {
        report.push(Step::fail(STEP_HANDSHAKE, detail, why, fix));
    };
    let (mut conn, addr) = match KafkaConn::connect(&addrs, opts.timeout).await {
        Ok(c) => c,
        Err(e) => {
            fail(
                report,
                format!("cannot connect to {target}: {e}"),
                "Nothing accepts connections there: the listener is down, bound elsewhere, or a firewall drops the port."
                    .into(),
                "check the listener's bind and advertised addresses and that kgate runs".into(),
            );
            return;
        }
    };
    let wire_fail = |report: &mut Report, what: &str, e: WireError| {
        let why = match &e {
            WireError::Garbled(_) => {
                "The port does not speak plaintext Kafka: it may be a TLS listener (SASL_SSL or SSL; \
                                      the doctor speaks SASL_PLAINTEXT only) or another service."
                    .to_string()
            }
            WireError::Closed => "The listener closed the connection: Kafka and kgate close without an answer on \
                                  requests they do not allow at this point, and on retriable Kerberos errors (replay, \
                                  ticket not yet valid: clock differences)."
                .to_string(),
            _ => "The listener did not answer in time.".to_string(),
        };
        fail(
            report,
            format!("{what} at {addr}: {e}"),
            why,
            "check that the port is a SASL_PLAINTEXT listener with GSSAPI enabled; kgate's log says why it closed"
                .into(),
        );
    };
    let ranges = match conn.api_versions().await {
        Ok(r) => r,
        Err(e) => return wire_fail(report, "ApiVersions", e),
    };
    let Some(handshake_version) = kafka_client::negotiate(&ranges, ApiKey::SaslHandshake, (1, 1)) else {
        fail(
            report,
            format!("{addr} does not offer SaslHandshake v1"),
            "Brokers before Kafka 1.0 (or non-SASL listeners) cannot run the SaslAuthenticate exchange.".into(),
            "connect to a SASL_PLAINTEXT listener".into(),
        );
        return;
    };
    let (code, mechanisms) = match conn.sasl_handshake(handshake_version, "GSSAPI").await {
        Ok(r) => r,
        Err(e) => return wire_fail(report, "SaslHandshake", e),
    };
    match code {
        0 => {}
        kafka_client::UNSUPPORTED_SASL_MECHANISM => {
            fail(
                report,
                format!(
                    "UNSUPPORTED_SASL_MECHANISM: GSSAPI is not enabled on {target}; it enables [{}]",
                    mechanisms.join(", ")
                ),
                format!(
                    "Java reports \"Client SASL mechanism 'GSSAPI' not enabled in the server, enabled mechanisms are \
                     [{}]\". The mechanism must be enabled exactly (case-sensitive) on the listener.",
                    mechanisms.join(", ")
                ),
                "add \"GSSAPI\" to sasl_enabled_mechanisms of the kgate listener (Kafka: sasl.enabled.mechanisms), or \
                 use one of the listed mechanisms"
                    .into(),
            );
            return;
        }
        kafka_client::ILLEGAL_SASL_STATE => {
            fail(
                report,
                format!("ILLEGAL_SASL_STATE: {target} is not a SASL listener"),
                "A PLAINTEXT or SSL listener answers SaslHandshake with ILLEGAL_SASL_STATE.".into(),
                "connect to the SASL_PLAINTEXT listener's port".into(),
            );
            return;
        }
        other => {
            fail(
                report,
                format!("SaslHandshake error {other}"),
                "The broker refused the handshake.".into(),
                "see the broker's log".into(),
            );
            return;
        }
    }
    let Some(auth_version) = kafka_client::negotiate(&ranges, ApiKey::SaslAuthenticate, (0, 2)) else {
        fail(
            report,
            format!("{addr} does not offer SaslAuthenticate"),
            "SaslHandshake v1 requires SaslAuthenticate.".into(),
            "connect to a Kafka 1.0+ SASL listener".into(),
        );
        return;
    };
    let (mut ctx, mut token) = match gss::initiate(cred, &spn.principal) {
        Ok(r) => r,
        Err(e) => {
            fail(
                report,
                format!("cannot start GSSAPI for {}: {}", spn.principal, e.text),
                "The service ticket was available a moment ago.".into(),
                "retry".into(),
            );
            return;
        }
    };
    let refused = |report: &mut Report, code: i16, message: Option<String>| {
        let name = match code {
            kafka_client::SASL_AUTHENTICATION_FAILED => "SASL_AUTHENTICATION_FAILED".to_string(),
            kafka_client::ILLEGAL_SASL_STATE => "ILLEGAL_SASL_STATE".to_string(),
            other => format!("error {other}"),
        };
        let mut why = "Kafka and kgate answer GSSAPI failures with a generic message; the broker's log has the \
                       reason (kgate: \"Failed authentication with <client> (mechanism GSSAPI: ...)\"). Usual causes: \
                       the broker's keytab is stale or lacks the ticket's enctype, the broker accepts only another \
                       principal (kgate: <service_name>/<advertised host>), clock skew between client and broker, or \
                       principal.to.local rules that reject the client."
            .to_string();
        if keytab_failed {
            why.push_str(" The server_keytab step above found a likely cause.");
        }
        fail(
            report,
            format!(
                "the broker refused the authentication: {name}: {}",
                message.unwrap_or_else(|| "(no message)".into())
            ),
            why,
            "read the broker's log line for this connection; run with --server-keytab <the broker's keytab> to check its keys".into(),
        );
    };
    let mut layer_done = false;
    for _round in 0..8 {
        let (code, message, reply) = match conn.sasl_authenticate(auth_version, &token).await {
            Ok(r) => r,
            Err(e) => return wire_fail(report, "SaslAuthenticate", e),
        };
        if code != 0 {
            return refused(report, code, message);
        }
        if layer_done {
            let principal = gss::source_principal(&ctx).unwrap_or_else(|| "?".into());
            report.push(Step::ok(
                STEP_HANDSHAKE,
                format!(
                    "authenticated to {target} ({addr}) as {principal} with {} (SaslHandshake v{handshake_version}, \
                     SaslAuthenticate v{auth_version}, no security layer)",
                    spn.principal
                ),
            ));
            return;
        }
        if !ctx.is_complete() {
            match ctx.step(Some(&reply), None) {
                Ok(next) => token = next.map(|t| t.to_vec()).unwrap_or_default(),
                Err(e) => {
                    let f = gss::failure(&e);
                    fail(
                        report,
                        format!("the broker's GSSAPI reply does not verify: {}", f.text),
                        "The AP-REP (mutual authentication) failed: the broker is not who the ticket was for.".into(),
                        "check the broker's keytab and advertised host".into(),
                    );
                    return;
                }
            }
            continue;
        }
        // RFC 4752 §3.1: the context is established; the broker's wrapped offer of security layers.
        token = match gss::answer_security_layer(&mut ctx, &reply) {
            Ok(t) => t,
            Err(gss::LayerError::Unwrap(f)) => {
                fail(
                    report,
                    format!("cannot unwrap the broker's security-layer offer: {}", f.text),
                    "After the context is established the broker must send a wrapped 4-byte offer (RFC 4752).".into(),
                    "check the broker's log".into(),
                );
                return;
            }
            Err(gss::LayerError::NoPlainLayer(offer)) => {
                fail(
                    report,
                    format!("the broker's security-layer offer {offer:02x?} does not allow \"no security layer\""),
                    "Kafka clients support only the \"no security layer\" option (0x01).".into(),
                    "configure the broker to offer no security layer".into(),
                );
                return;
            }
            Err(gss::LayerError::Wrap(f)) => {
                fail(
                    report,
                    format!("cannot wrap the reply: {}", f.text),
                    String::new(),
                    String::new(),
                );
                return;
            }
        };
        layer_done = true;
    }
    fail(
        report,
        "the exchange did not finish in 8 rounds".into(),
        "A Kerberos GSSAPI exchange takes three SaslAuthenticate round trips.".into(),
        "check the broker's log".into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::dns::FakeDns;
    use crate::diag::report::Status;

    fn options(host: &str) -> DoctorOptions {
        DoctorOptions {
            host: host.into(),
            port: 9093,
            service_name: "kafka".into(),
            krb5_conf: None,
            login: LoginSource::TicketCache,
            client_dns_lookup: ClientDnsLookup::UseAllDnsIps,
            dns_canonicalize: false,
            server_keytab: None,
            timeout: Duration::from_secs(1),
        }
    }

    /// kafka.example.com is a CNAME of broker1.example.com (10.0.0.5), whose PTR is an EC2 name.
    fn dns() -> FakeDns {
        FakeDns::default()
            .name("kafka.example.com", "broker1.example.com", &["10.0.0.5"])
            .name("broker1.example.com", "broker1.example.com", &["10.0.0.5"])
            .name("ip-10-0-0-5.ec2.internal", "ip-10-0-0-5.ec2.internal", &["10.0.0.5"])
            .ptr("10.0.0.5", &["ip-10-0-0-5.ec2.internal"])
            .name("broker2.example.com", "broker2.example.com", &["10.0.0.6"])
            .ptr("10.0.0.6", &["broker2.example.com"])
    }

    fn conf() -> Krb5Conf {
        Krb5Conf::parse("[libdefaults]\n default_realm = EXAMPLE.COM\n[domain_realm]\n .example.com = EXAMPLE.COM\n")
            .expect("conf")
    }

    async fn run_spn(opts: &DoctorOptions) -> (Option<Spn>, Step) {
        let mut report = Report::new();
        let spn = spn_step(opts, &conf(), &dns(), &mut report).await;
        (spn, report.steps.pop().expect("one step"))
    }

    fn text(step: &Step) -> String {
        format!(
            "{}\n{}\n{}",
            step.detail,
            step.why.as_deref().unwrap_or(""),
            step.fix.as_deref().unwrap_or("")
        )
    }

    #[tokio::test]
    async fn alias_and_reverse_dns_that_disagree() {
        let (spn, step) = run_spn(&options("kafka.example.com")).await;
        let spn = spn.expect("spn");
        assert_eq!(spn.principal, "kafka/kafka.example.com@EXAMPLE.COM");
        assert_eq!(step.status, Status::Warn);
        let t = text(&step);
        assert!(
            t.contains("Reverse DNS of 10.0.0.5 gives ip-10-0-0-5.ec2.internal, not kafka.example.com"),
            "{t}"
        );
        assert!(
            t.contains("ask for kafka/ip-10-0-0-5.ec2.internal@EXAMPLE.COM instead"),
            "{t}"
        );
        assert!(t.contains("rdns=unset (true)"), "{t}");
        assert!(
            t.contains("kafka.example.com is an alias (CNAME) of broker1.example.com")
                && t.contains("kafka/broker1.example.com@EXAMPLE.COM"),
            "{t}"
        );
        assert_eq!(spn.other_hosts, vec!["ip-10-0-0-5.ec2.internal", "broker1.example.com"]);
    }

    #[tokio::test]
    async fn canonicalising_clients_ask_for_the_reverse_name() {
        let mut opts = options("kafka.example.com");
        opts.dns_canonicalize = true;
        let (spn, step) = run_spn(&opts).await;
        // No [domain_realm] entry for .internal: the default realm.
        assert_eq!(
            spn.expect("spn").principal,
            "kafka/ip-10-0-0-5.ec2.internal@EXAMPLE.COM"
        );
        assert!(
            step.detail
                .contains("--dns-canonicalize: canonical name broker1.example.com"),
            "{step:?}"
        );

        let mut opts = options("kafka.example.com");
        opts.client_dns_lookup = ClientDnsLookup::ResolveCanonicalBootstrapServersOnly;
        let (spn, step) = run_spn(&opts).await;
        assert_eq!(
            spn.expect("spn").principal,
            "kafka/ip-10-0-0-5.ec2.internal@EXAMPLE.COM"
        );
        assert!(
            step.detail.contains("resolve_canonical_bootstrap_servers_only"),
            "{step:?}"
        );
    }

    #[tokio::test]
    async fn consistent_dns_passes_and_problems_are_named() {
        let (spn, step) = run_spn(&options("broker2.example.com")).await;
        assert_eq!(step.status, Status::Ok, "{step:?}");
        assert_eq!(spn.expect("spn").addrs, vec!["10.0.0.6".parse::<IpAddr>().expect("ip")]);

        let (spn, step) = run_spn(&options("Broker2.Example.COM")).await;
        assert_eq!(spn.expect("spn").principal, "kafka/broker2.example.com@EXAMPLE.COM");
        assert!(text(&step).contains("upper-case"), "{step:?}");

        let (spn, step) = run_spn(&options("nohost.example.com")).await;
        assert!(spn.is_none());
        assert_eq!(step.status, Status::Fail);
        assert!(
            text(&step).contains("does not resolve") && text(&step).contains("NXDOMAIN"),
            "{step:?}"
        );

        // An IP address without any reverse name: Java cannot do better either.
        let (spn, step) = run_spn(&options("10.0.0.9")).await;
        assert_eq!(spn.expect("spn").principal, "kafka/10.0.0.9@EXAMPLE.COM");
        assert!(
            text(&step).contains("Java finds no verified reverse name either"),
            "{step:?}"
        );
    }
}
