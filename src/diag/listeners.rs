//! `kgate doctor listeners`: what a client meets after bootstrapping. It connects to the bootstrap
//! server like a client (TLS, SASL), reads Metadata and the group coordinator, then checks every
//! advertised endpoint from here: the address itself (0.0.0.0, localhost, private ranges), DNS, TCP,
//! the TLS name and SASL. Each classic mistake is named with the setting to change.
//!
//! The failure this exists for: bootstrap works, then "Timed out waiting for a node assignment" or
//! "Connection to node 1 (internal-host/10.0.0.7:9092) could not be established", because the brokers
//! advertise addresses only reachable from inside their own network.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::dns::Lookup;
use super::report::{Report, Step};
use crate::backend::upstream::cluster::table_of;
use crate::backend::upstream::link::{Handshake, Link, LinkError};
use crate::backend::upstream::security::UpstreamSecurity;
use crate::config::split_host_port;

pub struct ListenersOptions {
    pub bootstrap: String,
    pub security: UpstreamSecurity,
    /// The consumer group whose coordinator is looked up.
    pub group: String,
    pub timeout: Duration,
}

const ADVERTISED_FIX: &str =
    "On Kafka: set advertised.listeners of that broker to a HOST:PORT clients can reach, and map \
     that listener to the protocol clients use in listener.security.protocol.map. Behind NAT or a load balancer: put \
     kgate in front and set [listeners.broker_addresses] (port_per_broker or sni) on the listener clients use. On \
     kgate: check the listener's advertised and broker_addresses.";

/// Runs every check; the report fails when any endpoint a client would use does not work.
pub async fn diagnose_listeners(opts: &ListenersOptions, dns: &dyn Lookup) -> Report {
    let mut report = Report::new();
    let Some((bootstrap_host, _)) = split_host_port(&opts.bootstrap) else {
        report.push(Step::fail(
            "bootstrap",
            format!("{:?} is not HOST:PORT", opts.bootstrap),
            "a bootstrap server is a host and a port",
            "pass --bootstrap HOST:PORT, e.g. kafka.example.com:9093",
        ));
        return report;
    };
    let bootstrap_host = bootstrap_host.to_string();
    let client = Client { opts, dns };

    // 1. Bootstrap: DNS, TCP, TLS, SASL, ApiVersions.
    let (mut link, versions) = match client.resolve("bootstrap", &bootstrap_host).await {
        Err(step) => {
            report.push(step);
            report.skip(
                &["metadata", "brokers", "coordinator"],
                "the bootstrap server is not usable",
            );
            return report;
        }
        Ok(addrs) => match client.open_discovering(&opts.bootstrap).await {
            Ok((link, versions)) => {
                report.push(Step::ok(
                    "bootstrap",
                    format!(
                        "{} ({}) answered ApiVersions{}",
                        opts.bootstrap,
                        addrs,
                        client.security_summary()
                    ),
                ));
                (link, versions)
            }
            Err(e) => {
                report.push(connection_failure("bootstrap", &opts.bootstrap, &e, true));
                report.skip(
                    &["metadata", "brokers", "coordinator"],
                    "the bootstrap server is not usable",
                );
                return report;
            }
        },
    };
    let table = table_of(&versions);

    // 2. Metadata: the brokers every client is told about.
    let metadata_version = table.range(ApiKey::Metadata).map(|r| r.max.min(12)).unwrap_or(0);
    let request = MetadataRequest::default()
        .with_topics(if metadata_version >= 1 { Some(Vec::new()) } else { None })
        .with_allow_auto_topic_creation(false);
    let metadata: MetadataResponse = match link.call(ApiKey::Metadata, metadata_version, &request).await {
        Ok(m) => m,
        Err(e) => {
            report.push(Step::fail(
                "metadata",
                format!("Metadata v{metadata_version} failed: {e}"),
                "clients learn the brokers' addresses from Metadata; without it nothing works",
                "check the broker's log for this request",
            ));
            return report;
        }
    };
    let brokers: BTreeMap<i32, (String, i32)> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id.0, (b.host.to_string(), b.port)))
        .collect();
    let listing: Vec<String> = brokers.iter().map(|(id, (h, p))| format!("{id}={h}:{p}")).collect();
    if brokers.is_empty() {
        report.push(Step::fail(
            "metadata",
            "Metadata lists no brokers",
            "clients have no broker to send requests to",
            "check that the brokers registered with the cluster",
        ));
        return report;
    }
    report.push(Step::ok(
        "metadata",
        format!(
            "cluster {} advertises {} broker(s): {}",
            metadata.cluster_id.as_ref().map(|c| c.as_str()).unwrap_or("?"),
            brokers.len(),
            listing.join(", ")
        ),
    ));

    // 3. Every advertised endpoint, from here.
    let mut endpoint_ok = BTreeMap::new();
    for (id, (host, port)) in &brokers {
        let step = client
            .check_endpoint(&format!("broker {id}"), host, *port, &bootstrap_host)
            .await;
        endpoint_ok.insert((host.clone(), *port), step.status != super::report::Status::Fail);
        report.push(step);
    }

    // 4. The group coordinator (consumer groups fail without it).
    let find_version = table.range(ApiKey::FindCoordinator).map(|r| r.max.min(3)).unwrap_or(0);
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(opts.group.clone()))
        .with_key_type(0);
    match link.call::<_, FindCoordinatorResponse>(ApiKey::FindCoordinator, find_version, &request).await {
        Err(e) => report.push(Step::fail(
            "coordinator",
            format!("FindCoordinator for group {:?} failed: {e}", opts.group),
            "consumers cannot join a group without its coordinator",
            "check the broker's log",
        )),
        Ok(found) if found.error_code != 0 => report.push(Step::fail(
            "coordinator",
            format!(
                "FindCoordinator for group {:?} answered error {} ({})",
                opts.group,
                found.error_code,
                found.error_message.as_ref().map(|m| m.as_str()).unwrap_or("")
            ),
            "consumers will retry and report COORDINATOR_NOT_AVAILABLE until it is found",
            "on Kafka, check that __consumer_offsets exists and offsets.topic.replication.factor <= the number of brokers",
        )),
        Ok(found) => {
            let (host, port) = (found.host.to_string(), found.port);
            let who = format!("group {:?} -> broker {} at {host}:{port}", opts.group, found.node_id.0);
            let reachable = match endpoint_ok.get(&(host.clone(), port)) {
                Some(ok) => *ok,
                None => {
                    let step = client.check_endpoint("coordinator endpoint", &host, port, &bootstrap_host).await;
                    step.status != super::report::Status::Fail
                }
            };
            if reachable {
                report.push(Step::ok("coordinator", who));
            } else {
                report.push(Step::fail(
                    "coordinator",
                    format!("{who}, which is not reachable from here"),
                    "consumers in this group will find the coordinator and then fail to reach it: endless \
                     'Timed out waiting for a node assignment' / rebalances that never complete",
                    ADVERTISED_FIX,
                ));
            }
        }
    }
    report
}

struct Client<'a> {
    opts: &'a ListenersOptions,
    dns: &'a dyn Lookup,
}

impl Client<'_> {
    fn security_summary(&self) -> String {
        let s = &self.opts.security;
        let mut out = format!(" over {}", s.protocol_name());
        if let Some(sasl) = &s.sasl {
            out.push_str(&format!(
                ", SASL {} as {:?} accepted",
                sasl.mechanism(),
                sasl.identity()
            ));
        }
        out
    }

    /// Resolves `host`; the error is a finished step named `name`.
    async fn resolve(&self, name: &str, host: &str) -> Result<String, Step> {
        let invalid = host.eq_ignore_ascii_case("invalid") || host.to_ascii_lowercase().ends_with(".invalid");
        let result = if invalid {
            Err("names under .invalid never resolve (RFC 6761)".to_string())
        } else {
            self.dns
                .forward(host)
                .await
                .map(|f| f.addrs.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", "))
        };
        result.map_err(|e| {
            Step::fail(
                name,
                format!("{host} does not resolve from here: {e}"),
                "a client that cannot resolve the name cannot connect",
                if name == "bootstrap" {
                    "check the name in bootstrap.servers and the DNS (or /etc/hosts) this client uses".to_string()
                } else {
                    format!("make {host} resolvable where clients run (DNS or /etc/hosts), or advertise a name that is. {ADVERTISED_FIX}")
                },
            )
        })
    }

    async fn open_discovering(
        &self,
        addr: &str,
    ) -> Result<(Link, kafka_protocol::messages::ApiVersionsResponse), LinkError> {
        match tokio::time::timeout(self.opts.timeout, Link::open_discovering(addr, &self.opts.security)).await {
            Ok(result) => result,
            Err(_) => Err(LinkError::Connect {
                addr: addr.to_string(),
                reason: format!("no answer within {:?}", self.opts.timeout),
            }),
        }
    }

    /// Address sanity, DNS, then a full client connection (TCP, TLS name, SASL).
    async fn check_endpoint(&self, name: &str, host: &str, port: i32, bootstrap_host: &str) -> Step {
        let endpoint = format_endpoint(host, port);
        if let Some(step) = address_mistake(name, host, port, bootstrap_host) {
            return step;
        }
        let addrs = match self.resolve(name, host).await {
            Ok(a) => a,
            Err(step) => return step,
        };
        let handshake = Handshake {
            security: &self.opts.security,
            sasl_authenticate_version: 1,
        };
        let opened = tokio::time::timeout(self.opts.timeout, Link::open(&endpoint, &handshake)).await;
        let opened = opened.unwrap_or_else(|_| {
            Err(LinkError::Connect {
                addr: endpoint.clone(),
                reason: format!("no answer within {:?}", self.opts.timeout),
            })
        });
        match opened {
            Ok(_) => Step::ok(
                name,
                format!("{endpoint} ({addrs}) reachable{}", self.security_summary()),
            ),
            Err(e) => connection_failure(name, &endpoint, &e, false),
        }
    }
}

fn format_endpoint(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) || v4.is_link_local()
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The classic advertised-address mistakes, recognisable without any network access.
pub fn address_mistake(name: &str, host: &str, port: i32, bootstrap_host: &str) -> Option<Step> {
    let endpoint = format_endpoint(host, port);
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    if host.is_empty() || ip.is_some_and(|ip| ip.is_unspecified()) {
        return Some(Step::fail(
            name,
            format!("advertised as {endpoint}: the wildcard address"),
            "0.0.0.0 (or ::) means 'every interface' to a server but 'this machine' to a client: every client \
             connects to itself. It usually comes from listeners=PLAINTEXT://0.0.0.0:9092 without advertised.listeners",
            format!("keep 0.0.0.0 in listeners, but set advertised.listeners to a real host name. {ADVERTISED_FIX}"),
        ));
    }
    if !(1..=65535).contains(&port) {
        return Some(Step::fail(
            name,
            format!("advertised with port {port}"),
            "no client can connect to a port outside 1..65535",
            ADVERTISED_FIX,
        ));
    }
    if is_loopback_name(host) && !is_loopback_name(bootstrap_host) {
        return Some(Step::fail(
            name,
            format!("advertised as {endpoint}, a loopback address, while you bootstrapped via {bootstrap_host}"),
            "localhost means the client's own machine: only clients on the broker's host can use it. This is \
             Kafka's default when advertised.listeners is not set and the host name resolves to 127.0.0.1",
            ADVERTISED_FIX,
        ));
    }
    let bootstrap_ip = bootstrap_host.parse::<IpAddr>().ok();
    if let (Some(ip), Some(bip)) = (ip, bootstrap_ip) {
        if is_private(ip) && !is_private(bip) && !bip.is_loopback() {
            return Some(Step::fail(
                name,
                format!("advertised as {endpoint}, a private address, while you bootstrapped via the public {bip}"),
                "private addresses are only reachable inside the broker's own network: clients outside (NAT, \
                 another VPC, the internet) bootstrap fine and then cannot reach the broker",
                ADVERTISED_FIX,
            ));
        }
    }
    None
}

/// A failed connection, described by what failed (TCP, TLS, SASL, protocol).
fn connection_failure(name: &str, endpoint: &str, e: &LinkError, is_bootstrap: bool) -> Step {
    match e {
        LinkError::Connect { reason, .. } => {
            let (why, fix) = if is_bootstrap {
                (
                    "nothing accepts connections there from this machine".to_string(),
                    "check the port in bootstrap.servers, that the broker listens on it (listeners=...) and that no \
                     firewall drops it"
                        .to_string(),
                )
            } else {
                (
                    "the bootstrap server answered, but this advertised listener does not: clients bootstrap, then \
                     fail with 'Connection to node ... could not be established' / 'Timed out waiting for a node \
                     assignment'"
                        .to_string(),
                    ADVERTISED_FIX.to_string(),
                )
            };
            Step::fail(name, format!("cannot connect to {endpoint}: {reason}"), why, fix)
        }
        LinkError::Tls { reason, .. } => Step::fail(
            name,
            format!("TLS with {endpoint} failed: {reason}"),
            "clients verify that the certificate names the host they dialled (ssl.endpoint.identification.algorithm=https)",
            format!(
                "give the broker a certificate whose subjectAltName holds {} (or use a host name it already holds), \
                 and pass --ca with the CA that signed it. A client dialling the wrong protocol: check \
                 listener.security.protocol.map for this listener",
                endpoint.rsplit_once(':').map(|(h, _)| h).unwrap_or(endpoint)
            ),
        ),
        LinkError::Sasl { reason, .. } => Step::fail(
            name,
            format!("SASL with {endpoint} failed: {reason}"),
            "the listener refused the credentials or the mechanism",
            "check --sasl-mechanism, --username and --password-file, and sasl.enabled.mechanisms of this listener",
        ),
        LinkError::Closed { reason, .. } | LinkError::Protocol { reason, .. } => Step::fail(
            name,
            format!("{endpoint} did not speak the expected protocol: {reason}"),
            "a TLS listener spoken to in plaintext (or the reverse) closes the connection or answers garbage",
            "check --security-protocol against listener.security.protocol.map of this listener",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::report::Status;

    #[test]
    fn classic_address_mistakes_are_named() {
        let wildcard = address_mistake("broker 1", "0.0.0.0", 9092, "kafka.example.com").unwrap();
        assert_eq!(wildcard.status, Status::Fail);
        assert!(wildcard.detail.contains("wildcard"));
        assert!(address_mistake("broker 1", "::", 9092, "kafka.example.com").is_some());
        let local = address_mistake("broker 1", "localhost", 9092, "kafka.example.com").unwrap();
        assert!(local.detail.contains("loopback"), "{}", local.detail);
        assert!(address_mistake("broker 1", "127.0.0.1", 9092, "10.1.2.3").is_some());
        // Bootstrapping on loopback too: loopback brokers are fine.
        assert!(address_mistake("broker 1", "localhost", 9092, "127.0.0.1").is_none());
        let private = address_mistake("broker 1", "10.0.0.7", 9092, "203.0.113.9").unwrap();
        assert!(private.detail.contains("private"), "{}", private.detail);
        assert!(address_mistake("broker 1", "10.0.0.7", 9092, "10.0.0.1").is_none());
        assert!(address_mistake("broker 1", "kafka-1.example.com", 0, "x").is_some());
        assert!(address_mistake("broker 1", "kafka-1.example.com", 9092, "kafka.example.com").is_none());
        assert!(private
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("advertised.listeners")));
    }
}
