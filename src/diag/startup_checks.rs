//! Start-up checks for GSSAPI listeners: what clients will ask the KDC for when they connect to each
//! advertised host, compared with what kgate can accept.
//!
//! * **Errors** (kgate should refuse to start unless the operator overrides): the keytab cannot be
//!   read, or it holds no key for `<service_name>/<advertised host>@REALM`, the principal clients
//!   request after Metadata. The message names the principal to create and the hosts the keytab
//!   does have keys for.
//! * **Warnings** (clients of some kinds will fail): the advertised host is an IP address, does not
//!   resolve, is a DNS alias, or its addresses reverse-resolve to another name; upper-case host
//!   names; a `[domain_realm]` mapping that puts the host in another realm than the one kgate's
//!   principal is in. Each says which clients fail and which principal they would request.
//!
//! The realm of kgate's principal is krb5.conf's default realm (that is how the acceptor names
//! itself); the krb5.conf read is `[kerberos] krb5_conf`, else `KRB5_CONFIG`, else `/etc/krb5.conf`.
//! DNS queries are bounded (3 s each); nothing here sets environment variables or calls krb5.
use std::net::IpAddr;
use std::time::Duration;

use super::dns::{normalize, Dns, Lookup};
use super::krb5_conf::{self, Krb5Conf, RealmSource};
use crate::config::Config;
use crate::security::gssapi::keytab_entries;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartupReport {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

const DNS_TIMEOUT: Duration = Duration::from_secs(3);

/// Check every listener that enables GSSAPI. Never fails itself: problems are in the report.
pub async fn check_gssapi_listeners(config: &Config) -> StartupReport {
    check_with(config, &Dns::system(DNS_TIMEOUT)).await
}

async fn check_with(config: &Config, dns: &dyn Lookup) -> StartupReport {
    let mut report = StartupReport::default();
    let listeners: Vec<_> = config
        .listeners
        .iter()
        .filter(|l| l.sasl_enabled_mechanisms.iter().any(|m| m == "GSSAPI"))
        .collect();
    if listeners.is_empty() {
        return report;
    }
    let Some(kerberos) = &config.kerberos else {
        report
            .errors
            .push("GSSAPI listeners need a [kerberos] section with the keytab".into());
        return report;
    };
    let (conf_path, _) = krb5_conf::locate(kerberos.krb5_conf.as_deref());
    let conf = match Krb5Conf::load(&conf_path) {
        Ok(c) => Some(c),
        Err(e) => {
            report.warnings.push(format!(
                "krb5.conf: {e}; the realm of the service principals and the clients' realm mapping cannot be checked"
            ));
            None
        }
    };
    let entries = match keytab_entries(&kerberos.keytab) {
        Ok(e) => Some(e),
        Err(e) => {
            report.errors.push(format!(
                "[kerberos] keytab: {e}; GSSAPI listeners cannot accept any client without it"
            ));
            None
        }
    };
    let service = &kerberos.service_name;
    for listener in listeners {
        let who = format!("listener {:?}", listener.name);
        let (host, port) = listener.advertised_host_port();
        let lower = normalize(&host);
        let default_realm = conf.as_ref().and_then(|c| c.default_realm().map(str::to_string));
        let client_realm = conf.as_ref().and_then(|c| c.host_realm(&lower));

        // The keytab must hold the principal the acceptor is created for.
        if let (Some(entries), Some(realm)) = (&entries, &default_realm) {
            let principal = format!("{service}/{host}@{realm}");
            if !entries.iter().any(|(p, _, _)| *p == principal) {
                let hosts: Vec<String> = entries
                    .iter()
                    .filter_map(|(p, _, _)| {
                        let (name, r) = p.rsplit_once('@')?;
                        let (svc, h) = name.split_once('/')?;
                        (svc == service && r == realm).then(|| h.to_string())
                    })
                    .collect();
                // A keytab holds one entry per key version: name each principal once.
                let mut held: Vec<&str> = Vec::new();
                for (p, _, _) in entries {
                    if !held.contains(&p.as_str()) {
                        held.push(p);
                    }
                }
                let mut hosts = hosts;
                hosts.sort();
                hosts.dedup();
                let keytab = kerberos.keytab.display();
                let mut message =
                    format!(
                    "{who}: the keytab {keytab} has no key for {principal}, the principal clients ask for when they \
                     connect to the advertised host {host}:{port} (it holds {}). Create it: \
                     kadmin -q \"addprinc -randkey {principal}\" and kadmin -q \"ktadd -k {keytab} {principal}\" (if \
                     the principal exists already, export its current key without changing it: kadmin.local -q \
                     \"ktadd -norandkey -k {keytab} {principal}\")",
                    if held.is_empty() { "nothing".to_string() } else { held.join(", ") }
                );
                if !hosts.is_empty() {
                    message.push_str(&format!(
                        ", or advertise a host the keytab has a key for: {}",
                        hosts.join(", ")
                    ));
                }
                if hosts.is_empty()
                    && entries
                        .iter()
                        .any(|(p, _, _)| p.starts_with(&format!("{service}/{host}@")))
                {
                    message.push_str(&format!(
                        "; the keytab has {service}/{host} in another realm: fix default_realm in krb5.conf"
                    ));
                }
                message.push_str(" (to start anyway: [kerberos] skip_startup_checks = true)");
                report.errors.push(message);
            }
        } else if entries.is_some() && default_realm.is_none() && conf.is_some() {
            report.errors.push(format!(
                "{who}: krb5.conf {} has no default_realm, so the realm of {service}/{host} is unknown; set \
                 default_realm in [libdefaults]",
                conf_path.display()
            ));
        }

        if host != lower && host.parse::<IpAddr>().is_err() {
            report.warnings.push(format!(
                "{who}: the advertised host {host} has upper-case letters; Kerberos clients lower-case it and ask for \
                 {service}/{lower}, but kgate accepts only {service}/{host}: advertise {lower}"
            ));
        }
        if let (Some((mapped, RealmSource::DomainRealm(key))), Some(realm)) = (&client_realm, &default_realm) {
            if mapped != realm {
                report.warnings.push(format!(
                    "{who}: [domain_realm] {key} = {mapped} puts {lower} in {mapped}: clients ask for \
                     {service}/{lower}@{mapped} (through a cross-realm ticket), but kgate's principal is \
                     {service}/{host}@{realm} (the default realm); fix the [domain_realm] entry"
                ));
            }
        }
        let realm = client_realm
            .map(|(r, _)| r)
            .or(default_realm.clone())
            .unwrap_or_else(|| "REALM".into());
        dns_warnings(dns, &who, &host, service, &realm, &mut report.warnings).await;
    }
    report
}

async fn dns_warnings(dns: &dyn Lookup, who: &str, host: &str, service: &str, realm: &str, warnings: &mut Vec<String>) {
    let lower = normalize(host);
    if let Ok(ip) = lower.parse::<IpAddr>() {
        let java = dns.java_canonical(ip).await;
        let java_text = if java != lower {
            format!("Java clients reverse-resolve an IP literal and ask for {service}/{java}@{realm}")
        } else {
            format!("Java clients find no reverse name and ask for {service}/{lower}@{realm} too")
        };
        warnings.push(format!(
            "{who}: the advertised host is the IP address {lower}: clients that use it as given (librdkafka with \
             rdns=false, kafka-python) ask for {service}/{lower}@{realm}, a principal that rarely exists; {java_text}; \
             librdkafka with rdns=true asks for {service}/<reverse name>@{realm}. Advertise the host name of the \
             service principal instead"
        ));
        return;
    }
    let forward = match dns.forward(&lower).await {
        Ok(f) => f,
        Err(e) => {
            warnings.push(format!(
                "{who}: the advertised host {lower} does not resolve here ({e}): clients cannot connect to it unless \
                 their DNS knows it"
            ));
            return;
        }
    };
    if forward.canonical != lower {
        warnings.push(format!(
            "{who}: {lower} is an alias (CNAME) of {}: clients whose krb5.conf has dns_canonicalize_hostname=true \
             (MIT's default: librdkafka, kafka-python) ask for {service}/{}@{realm}, which kgate does not accept; \
             advertise {} or have clients set dns_canonicalize_hostname=false",
            forward.canonical, forward.canonical, forward.canonical
        ));
    }
    for ip in &forward.addrs {
        match dns.reverse(*ip).await {
            Ok(names) => {
                if !names.contains(&lower) {
                    let ptr = &names[0];
                    warnings.push(format!(
                        "{who}: reverse DNS of {ip} (an address of {lower}) gives {ptr}: librdkafka and other MIT-krb5 \
                         clients with rdns=true (the default) and Java clients with \
                         client.dns.lookup=resolve_canonical_bootstrap_servers_only (for bootstrap connections) ask \
                         for {service}/{ptr}@{realm}, which kgate does not accept (it accepts {service}/{lower}); fix \
                         the PTR record or have clients set rdns=false"
                    ));
                }
            }
            Err(e) => warnings.push(format!(
                "{who}: no reverse DNS for {ip} (an address of {lower}: {e}): Java clients with \
                 client.dns.lookup=resolve_canonical_bootstrap_servers_only ask for {service}/{ip}@{realm} on \
                 bootstrap connections"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// An MIT keytab (format 0x0502) with one aes256 entry per principal, kvno 1.
    fn write_keytab(path: &Path, principals: &[&str]) {
        let mut file = vec![0x05, 0x02];
        for principal in principals {
            let (name, realm) = principal.rsplit_once('@').expect("realm");
            let components: Vec<&str> = name.split('/').collect();
            let mut e = Vec::new();
            let data = |e: &mut Vec<u8>, b: &[u8]| {
                e.extend_from_slice(&(b.len() as u16).to_be_bytes());
                e.extend_from_slice(b);
            };
            e.extend_from_slice(&(components.len() as u16).to_be_bytes());
            data(&mut e, realm.as_bytes());
            for c in &components {
                data(&mut e, c.as_bytes());
            }
            e.extend_from_slice(&1u32.to_be_bytes());
            e.extend_from_slice(&1_700_000_000u32.to_be_bytes());
            e.push(1);
            e.extend_from_slice(&18u16.to_be_bytes());
            data(&mut e, &[0x42; 32]);
            e.extend_from_slice(&1u32.to_be_bytes());
            file.extend_from_slice(&(e.len() as i32).to_be_bytes());
            file.extend(e);
        }
        std::fs::write(path, file).expect("write keytab");
    }

    struct Setup {
        dir: tempfile::TempDir,
    }

    impl Setup {
        fn new(principals: &[&str], domain_realm: &str) -> Setup {
            let dir = tempfile::tempdir().expect("tempdir");
            write_keytab(&dir.path().join("kafka.keytab"), principals);
            std::fs::write(
                dir.path().join("krb5.conf"),
                format!(
                    "[libdefaults]\n default_realm = EXAMPLE.COM\n[realms]\n EXAMPLE.COM = {{\n  kdc = 127.0.0.1:1\n }}\n[domain_realm]\n{domain_realm}\n"
                ),
            )
            .expect("krb5.conf");
            Setup { dir }
        }

        fn config(&self, listeners: &[(&str, &str)], service: &str) -> Config {
            let mut text = String::new();
            for (i, (advertised, mechanisms)) in listeners.iter().enumerate() {
                text.push_str(&format!(
                    "[[listeners]]\nname = \"L{i}\"\nbind = \"127.0.0.1:{}\"\nadvertised = \"{advertised}\"\n\
                     security_protocol = \"SASL_PLAINTEXT\"\nsasl_enabled_mechanisms = [{mechanisms}]\n",
                    19000 + i
                ));
            }
            text.push_str(&format!(
                "[security]\nusers_file = \"{d}/users.toml\"\n[kerberos]\nkeytab = \"{d}/kafka.keytab\"\nkrb5_conf = \"{d}/krb5.conf\"\nservice_name = \"{service}\"\n",
                d = self.dir.path().display()
            ));
            Config::parse(&text).expect("valid config")
        }
    }

    #[tokio::test]
    async fn matching_keytab_and_localhost_pass() {
        let s = Setup::new(&["kafka/localhost@EXAMPLE.COM"], "");
        let r = check_gssapi_listeners(&s.config(&[("localhost:9093", "\"GSSAPI\"")], "kafka")).await;
        assert_eq!(r, StartupReport::default());
        // Listeners without GSSAPI are not checked.
        let r = check_gssapi_listeners(&s.config(&[("nohost.invalid:9093", "\"PLAIN\"")], "kafka")).await;
        assert_eq!(r, StartupReport::default());
    }

    #[tokio::test]
    async fn advertised_ip_address() {
        let s = Setup::new(&["kafka/localhost@EXAMPLE.COM"], "");
        let r = check_gssapi_listeners(&s.config(&[("127.0.0.1:9093", "\"GSSAPI\", \"PLAIN\"")], "kafka")).await;
        assert_eq!(r.errors.len(), 1, "{r:#?}");
        let e = &r.errors[0];
        assert!(e.contains("has no key for kafka/127.0.0.1@EXAMPLE.COM"), "{e}");
        assert!(e.contains("addprinc -randkey kafka/127.0.0.1@EXAMPLE.COM"), "{e}");
        assert!(
            e.contains("advertise a host the keytab has a key for: localhost"),
            "{e}"
        );
        assert!(e.contains("skip_startup_checks"), "{e}");
        assert_eq!(r.warnings.len(), 1, "{r:#?}");
        let w = &r.warnings[0];
        assert!(
            w.contains("IP address 127.0.0.1") && w.contains("kafka/127.0.0.1@EXAMPLE.COM"),
            "{w}"
        );
        let java = format!(
            "Java clients reverse-resolve an IP literal and ask for kafka/{}@EXAMPLE.COM",
            crate::diag::dns::loopback_name()
        );
        assert!(w.contains(&java), "{w}");
    }

    #[tokio::test]
    async fn keytab_without_the_advertised_host_and_unresolvable_host() {
        let s = Setup::new(&["kafka/localhost@EXAMPLE.COM", "client@EXAMPLE.COM"], "");
        let r = check_gssapi_listeners(&s.config(
            &[("localhost:9093", "\"GSSAPI\""), ("broker1.invalid:9094", "\"GSSAPI\"")],
            "kafka",
        ))
        .await;
        assert_eq!(r.errors.len(), 1, "{r:#?}");
        let e = &r.errors[0];
        assert!(e.starts_with("listener \"L1\": "), "{e}");
        assert!(e.contains("no key for kafka/broker1.invalid@EXAMPLE.COM"), "{e}");
        assert!(
            e.contains("it holds kafka/localhost@EXAMPLE.COM, client@EXAMPLE.COM"),
            "{e}"
        );
        assert_eq!(r.warnings.len(), 1, "{r:#?}");
        assert!(
            r.warnings[0].contains("broker1.invalid does not resolve"),
            "{:?}",
            r.warnings
        );
    }

    #[tokio::test]
    async fn service_name_case_and_realm_mapping() {
        let s = Setup::new(&["kafka/localhost@EXAMPLE.COM"], " localhost = OTHER.COM");
        let r = check_gssapi_listeners(&s.config(&[("localhost:9093", "\"GSSAPI\"")], "kafak")).await;
        assert_eq!(r.errors.len(), 1, "{r:#?}");
        assert!(
            r.errors[0].contains("no key for kafak/localhost@EXAMPLE.COM"),
            "{:?}",
            r.errors
        );
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("[domain_realm] localhost = OTHER.COM") && w.contains("kafak/localhost@OTHER.COM")),
            "{:?}",
            r.warnings
        );

        let s = Setup::new(&["kafka/localhost@EXAMPLE.COM"], "");
        let r = check_gssapi_listeners(&s.config(&[("LocalHost:9093", "\"GSSAPI\"")], "kafka")).await;
        assert!(r.errors[0].contains("no key for kafka/LocalHost@EXAMPLE.COM"), "{r:#?}");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("upper-case") && w.contains("advertise localhost")),
            "{r:#?}"
        );
    }

    #[tokio::test]
    async fn reverse_dns_alias_and_missing_ptr() {
        use crate::diag::dns::FakeDns;
        let s = Setup::new(
            &[
                "kafka/broker1.example.com@EXAMPLE.COM",
                "kafka/kafka.example.com@EXAMPLE.COM",
                "kafka/broker3.example.com@EXAMPLE.COM",
            ],
            " .example.com = EXAMPLE.COM",
        );
        let dns = FakeDns::default()
            .name("broker1.example.com", "broker1.example.com", &["10.0.0.5"])
            .ptr("10.0.0.5", &["ip-10-0-0-5.ec2.internal"])
            .name("kafka.example.com", "broker1.example.com", &["10.0.0.5"])
            .name("broker3.example.com", "broker3.example.com", &["10.0.0.7"]);
        let config = s.config(
            &[
                ("broker1.example.com:9093", "\"GSSAPI\""),
                ("kafka.example.com:9094", "\"GSSAPI\""),
                ("broker3.example.com:9095", "\"GSSAPI\""),
            ],
            "kafka",
        );
        let r = check_with(&config, &dns).await;
        assert!(r.errors.is_empty(), "{r:#?}");
        let find = |listener: &str, needle: &str| {
            r.warnings
                .iter()
                .any(|w| w.starts_with(&format!("listener \"{listener}\"")) && w.contains(needle))
        };
        assert!(
            find(
                "L0",
                "reverse DNS of 10.0.0.5 (an address of broker1.example.com) gives ip-10-0-0-5.ec2.internal"
            ),
            "{r:#?}"
        );
        assert!(
            find("L0", "ask for kafka/ip-10-0-0-5.ec2.internal@EXAMPLE.COM"),
            "{r:#?}"
        );
        assert!(find("L0", "rdns=true"), "{r:#?}");
        assert!(
            find("L1", "kafka.example.com is an alias (CNAME) of broker1.example.com"),
            "{r:#?}"
        );
        assert!(find("L1", "ask for kafka/broker1.example.com@EXAMPLE.COM"), "{r:#?}");
        assert!(find("L2", "no reverse DNS for 10.0.0.7"), "{r:#?}");
        assert!(
            find(
                "L2",
                "resolve_canonical_bootstrap_servers_only ask for kafka/10.0.0.7@EXAMPLE.COM"
            ),
            "{r:#?}"
        );
        assert_eq!(r.warnings.len(), 4, "{r:#?}");
    }

    #[tokio::test]
    async fn unreadable_keytab() {
        let s = Setup::new(&[], "");
        std::fs::remove_file(s.dir.path().join("kafka.keytab")).expect("rm");
        let r = check_gssapi_listeners(&s.config(&[("localhost:9093", "\"GSSAPI\"")], "kafka")).await;
        assert_eq!(r.errors.len(), 1, "{r:#?}");
        assert!(r.errors[0].contains("kafka.keytab cannot be read"), "{:?}", r.errors);
    }
}
