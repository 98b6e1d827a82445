//! Forward and reverse DNS the way Kafka clients see it, with hickory-resolver reading the system
//! configuration (`/etc/resolv.conf` and `/etc/hosts`, like glibc's `files dns`). `localhost`, the
//! 127.0.0.0/8 and ::1 reverse zones and names under `.invalid` are answered locally (RFC 6761),
//! without asking a name server.
//!
//! Every query is bounded by the doctor's timeout.
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

/// The lookups the doctor and the start-up checks make ([`Dns`] in production; tests use a table).
#[async_trait]
pub trait Lookup: Send + Sync {
    /// Addresses of `host` and its canonical name (an IP literal is returned as is).
    async fn forward(&self, host: &str) -> Result<Forward, String>;
    /// Names of `ip`, the canonical one first (lower case, no trailing dot).
    async fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, String>;
    /// SRV targets (host, port) of `name`, by priority.
    async fn srv(&self, name: &str) -> Result<Vec<(String, u16)>, String>;

    /// Java's `InetAddress.getCanonicalHostName()`: the reverse name if it resolves back to `ip`,
    /// otherwise the address as text.
    async fn java_canonical(&self, ip: IpAddr) -> String {
        if let Ok(names) = self.reverse(ip).await {
            for name in names {
                if let Ok(fwd) = self.forward(&name).await {
                    if fwd.addrs.contains(&ip) {
                        return name;
                    }
                }
            }
        }
        ip.to_string()
    }
}

/// The addresses of a name and its canonical name (the end of a CNAME chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub addrs: Vec<IpAddr>,
    /// Lower case, without the trailing dot; the name itself when there is no CNAME.
    pub canonical: String,
}

pub struct Dns {
    resolver: Option<TokioResolver>,
    /// Why there is no resolver (then forward lookups use the system's getaddrinfo).
    unavailable: Option<String>,
    timeout: Duration,
}

impl Dns {
    /// A resolver from the system configuration. Must be called inside a tokio runtime.
    pub fn system(timeout: Duration) -> Dns {
        let built = TokioResolver::builder_tokio().and_then(|mut builder| {
            builder.options_mut().timeout = timeout.min(Duration::from_secs(5));
            builder.options_mut().attempts = 1;
            builder.build()
        });
        match built {
            Ok(resolver) => Dns {
                resolver: Some(resolver),
                unavailable: None,
                timeout,
            },
            Err(e) => Dns {
                resolver: None,
                unavailable: Some(format!("cannot read the system DNS configuration: {e}")),
                timeout,
            },
        }
    }
}

#[async_trait]
impl Lookup for Dns {
    /// Addresses of `host` (an IP literal is returned as is).
    async fn forward(&self, host: &str) -> Result<Forward, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Forward {
                addrs: vec![ip],
                canonical: host.to_string(),
            });
        }
        let Some(resolver) = &self.resolver else {
            let lookup = tokio::net::lookup_host((host, 0));
            let addrs = tokio::time::timeout(self.timeout, lookup)
                .await
                .map_err(|_| format!("no answer within {:?}", self.timeout))?
                .map_err(|e| e.to_string())?;
            return Ok(Forward {
                addrs: dedup(addrs.map(|a| a.ip()).collect()),
                canonical: normalize(host),
            });
        };
        let fqdn = if host.ends_with('.') {
            host.to_string()
        } else {
            format!("{host}.")
        };
        let lookup = tokio::time::timeout(self.timeout, resolver.lookup_ip(fqdn.as_str()))
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
            .map_err(|e| describe(&e))?;
        let mut canonical = normalize(host);
        for record in lookup.as_lookup().answers() {
            if matches!(record.data, RData::A(_) | RData::AAAA(_)) {
                canonical = normalize(&record.name.to_utf8());
                break;
            }
        }
        let addrs = dedup(lookup.iter().collect());
        if addrs.is_empty() {
            return Err("no A or AAAA records".into());
        }
        Ok(Forward { addrs, canonical })
    }

    /// PTR names of `ip` (lower case, without the trailing dot), the canonical one first. Like
    /// glibc's `files dns`: the first `/etc/hosts` line with the address wins (hickory's own hosts
    /// table does not keep the file order), then DNS.
    async fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, String> {
        if let Some(names) = hosts_file_names(HOSTS_FILE, ip) {
            return Ok(names);
        }
        let Some(resolver) = &self.resolver else {
            return Err(self.unavailable.clone().unwrap_or_else(|| "no resolver".into()));
        };
        let lookup = tokio::time::timeout(self.timeout, resolver.reverse_lookup(ip))
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
            .map_err(|e| describe(&e))?;
        let names: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::PTR(ptr) => Some(normalize(&ptr.0.to_utf8())),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return Err("no PTR record".into());
        }
        Ok(names)
    }

    /// SRV targets (host, port) of `name`, by priority.
    async fn srv(&self, name: &str) -> Result<Vec<(String, u16)>, String> {
        let Some(resolver) = &self.resolver else {
            return Err(self.unavailable.clone().unwrap_or_else(|| "no resolver".into()));
        };
        let lookup = tokio::time::timeout(self.timeout, resolver.srv_lookup(name))
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
            .map_err(|e| describe(&e))?;
        let mut records: Vec<(u16, String, u16)> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some((srv.priority, normalize(&srv.target.to_utf8()), srv.port)),
                _ => None,
            })
            .collect();
        records.sort();
        Ok(records.into_iter().map(|(_, h, p)| (h, p)).collect())
    }
}

const HOSTS_FILE: &str = "/etc/hosts";

/// The names on the first line of a hosts file that lists `ip`: canonical name, then aliases.
fn hosts_file_names(path: &str, ip: IpAddr) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_hosts_reverse(&text, ip)
}

fn parse_hosts_reverse(text: &str, ip: IpAddr) -> Option<Vec<String>> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(addr) = fields.next().and_then(|a| a.parse::<IpAddr>().ok()) else {
            continue;
        };
        if addr == ip {
            let names: Vec<String> = fields.map(normalize).collect();
            if !names.is_empty() {
                return Some(names);
            }
        }
    }
    None
}

fn dedup(addrs: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for a in addrs {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Lower case, no trailing dot: how Kerberos clients put a host into a service principal.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn describe(e: &hickory_resolver::net::NetError) -> String {
    if e.is_nx_domain() {
        "the name does not exist (NXDOMAIN)".into()
    } else if e.is_no_records_found() {
        "no records of that type".into()
    } else {
        e.to_string()
    }
}

/// A DNS made of tables, for tests: `forward` maps a name to (canonical name, addresses), `reverse`
/// an address to its names. Unknown names are NXDOMAIN; IP literals resolve to themselves.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct FakeDns {
    pub forward: std::collections::HashMap<String, (String, Vec<IpAddr>)>,
    pub reverse: std::collections::HashMap<IpAddr, Vec<String>>,
}

#[cfg(test)]
impl FakeDns {
    pub fn name(mut self, name: &str, canonical: &str, addrs: &[&str]) -> FakeDns {
        let addrs = addrs.iter().map(|a| a.parse().expect("ip")).collect();
        self.forward.insert(name.to_string(), (canonical.to_string(), addrs));
        self
    }

    pub fn ptr(mut self, ip: &str, names: &[&str]) -> FakeDns {
        self.reverse
            .insert(ip.parse().expect("ip"), names.iter().map(|n| n.to_string()).collect());
        self
    }
}

#[cfg(test)]
#[async_trait]
impl Lookup for FakeDns {
    async fn forward(&self, host: &str) -> Result<Forward, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Forward {
                addrs: vec![ip],
                canonical: host.to_string(),
            });
        }
        match self.forward.get(&normalize(host)) {
            Some((canonical, addrs)) => Ok(Forward {
                addrs: addrs.clone(),
                canonical: canonical.clone(),
            }),
            None => Err("the name does not exist (NXDOMAIN)".into()),
        }
    }

    async fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, String> {
        self.reverse
            .get(&ip)
            .cloned()
            .ok_or_else(|| "no PTR record".to_string())
    }

    async fn srv(&self, _name: &str) -> Result<Vec<(String, u16)>, String> {
        Err("no SRV records".into())
    }
}

/// What 127.0.0.1 reverse-resolves to here (the first /etc/hosts name, else "localhost"): for tests.
#[cfg(test)]
pub(crate) fn loopback_name() -> String {
    hosts_file_names(HOSTS_FILE, IpAddr::from([127, 0, 0, 1]))
        .and_then(|n| n.into_iter().next())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_answers_without_a_name_server() {
        let dns = Dns::system(Duration::from_secs(2));
        let fwd = dns.forward("localhost").await.expect("localhost resolves");
        assert!(fwd.addrs.iter().any(|a| a.is_loopback()), "{fwd:?}");
        assert_eq!(fwd.canonical, "localhost");
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        assert_eq!(dns.forward("127.0.0.1").await.expect("literal").addrs, vec![ip]);
        if dns.resolver.is_some() {
            let expected = loopback_name();
            assert_eq!(dns.reverse(ip).await.expect("PTR of 127.0.0.1")[0], expected);
            assert_eq!(dns.java_canonical(ip).await, expected);
            let e = dns.forward("no-such-broker.invalid").await.expect_err(".invalid");
            assert!(e.contains("NXDOMAIN") || e.contains("no records"), "{e}");
        }
        assert_eq!(normalize("Broker1.Example.COM."), "broker1.example.com");
    }

    #[test]
    fn hosts_file_order_decides_the_canonical_name() {
        let text = "# comment\n127.0.0.1\tlocalhost\n127.0.0.1 vm runsc # alias\n::1 ip6-localhost ip6-loopback\n10.0.0.5 Broker1.Example.COM broker1\n";
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            parse_hosts_reverse(text, ip("127.0.0.1")),
            Some(vec!["localhost".to_string()])
        );
        assert_eq!(
            parse_hosts_reverse(text, ip("10.0.0.5")),
            Some(vec!["broker1.example.com".to_string(), "broker1".to_string()])
        );
        assert_eq!(parse_hosts_reverse(text, ip("::1")).expect("v6")[0], "ip6-localhost");
        assert_eq!(parse_hosts_reverse(text, ip("10.0.0.6")), None);
    }
}
