//! Broker id ↔ client-visible address, for one kgate listener.
use std::collections::BTreeMap;

use super::RewriteError;

/// The placeholder an SNI pattern must contain exactly once.
pub const ID_PLACEHOLDER: &str = "{id}";

/// How the brokers behind one kgate listener are advertised to its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerAddressing {
    /// Broker N is advertised as host:(base_port + N), unless `explicit` names it (then `explicit[N]`).
    PortPerBroker {
        host: String,
        base_port: i32,
        explicit: BTreeMap<i32, (String, i32)>,
    },
    /// One TLS port; broker N is `pattern` with `{id}` replaced by N (kgate routes by SNI).
    Sni { pattern: String, port: i32 },
}

fn checked_port(node_id: i32, port: i64) -> Result<i32, RewriteError> {
    if (1..=i64::from(u16::MAX)).contains(&port) {
        // In range 1..=65535, so the conversion cannot fail; map instead of unwrap anyway.
        i32::try_from(port).map_err(|_| RewriteError::PortOutOfRange { node_id, port })
    } else {
        Err(RewriteError::PortOutOfRange { node_id, port })
    }
}

/// Splits an SNI pattern into the text before and after `{id}`.
fn split_pattern(pattern: &str) -> Result<(&str, &str), RewriteError> {
    let bad = |why: &str| RewriteError::BadPattern {
        pattern: pattern.to_owned(),
        reason: why.to_owned(),
    };
    let (prefix, suffix) = pattern
        .split_once(ID_PLACEHOLDER)
        .ok_or_else(|| bad("it must contain {id}"))?;
    if suffix.contains(ID_PLACEHOLDER) {
        return Err(bad("{id} may appear only once"));
    }
    if prefix.contains(['{', '}']) || suffix.contains(['{', '}']) {
        return Err(bad("only the {id} placeholder is supported"));
    }
    let is_host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if !prefix.chars().chain(suffix.chars()).all(is_host_char) {
        return Err(bad("a host name holds only letters, digits, '-' and '.'"));
    }
    Ok((prefix, suffix))
}

impl BrokerAddressing {
    /// Checks the configuration once (pattern shape, port ranges of the explicit entries), for config validation.
    /// `address_of` re-checks what applies to each id, so skipping this is safe, only less early.
    pub fn validate(&self) -> Result<(), RewriteError> {
        match self {
            BrokerAddressing::PortPerBroker {
                host,
                base_port,
                explicit,
            } => {
                if host.is_empty() {
                    return Err(RewriteError::EmptyHost { node_id: None });
                }
                // Broker 0's port: the base itself must be usable.
                checked_port(0, i64::from(*base_port))?;
                for (&id, (h, p)) in explicit {
                    if id < 0 {
                        return Err(RewriteError::NegativeNodeId(id));
                    }
                    if h.is_empty() {
                        return Err(RewriteError::EmptyHost { node_id: Some(id) });
                    }
                    checked_port(id, i64::from(*p))?;
                }
                Ok(())
            }
            BrokerAddressing::Sni { pattern, port } => {
                split_pattern(pattern)?;
                checked_port(-1, i64::from(*port)).map(|_| ())
            }
        }
    }

    /// The address clients are told for broker `node_id`. Errors on a negative id, a port outside 1..=65535
    /// (base_port + id overflowing included) or an SNI pattern without exactly one `{id}`.
    pub fn address_of(&self, node_id: i32) -> Result<(String, i32), RewriteError> {
        if node_id < 0 {
            return Err(RewriteError::NegativeNodeId(node_id));
        }
        match self {
            BrokerAddressing::PortPerBroker {
                host,
                base_port,
                explicit,
            } => {
                if let Some((h, p)) = explicit.get(&node_id) {
                    return Ok((h.clone(), checked_port(node_id, i64::from(*p))?));
                }
                let port = checked_port(node_id, i64::from(*base_port) + i64::from(node_id))?;
                if let Some((&owner, _)) = explicit.iter().find(|(_, (_, p))| *p == port) {
                    // The port routes to the explicit broker (see node_for_port): no second broker on it.
                    return Err(RewriteError::PortTaken { node_id, port, owner });
                }
                Ok((host.clone(), port))
            }
            BrokerAddressing::Sni { pattern, port } => {
                let (prefix, suffix) = split_pattern(pattern)?;
                Ok((
                    format!("{prefix}{node_id}{suffix}"),
                    checked_port(node_id, i64::from(*port))?,
                ))
            }
        }
    }

    /// Which broker a connection accepted on local `port` is for (port-per-broker routing).
    /// An explicit entry wins over the computed `base_port + id` (and `address_of` refuses a computed port that
    /// an explicit entry holds, so the two stay inverse). `None` for the SNI scheme (one port for all), for a port
    /// no broker uses, and when explicit brokers share the port (they need SNI routing: [`Self::node_for_sni`]).
    pub fn node_for_port(&self, port: u16) -> Option<i32> {
        let BrokerAddressing::PortPerBroker {
            base_port, explicit, ..
        } = self
        else {
            return None;
        };
        let port = i64::from(port);
        let mut found = explicit
            .iter()
            .filter(|(_, (_, p))| i64::from(*p) == port)
            .map(|(&id, _)| id);
        let computed = i32::try_from(port - i64::from(*base_port))
            .ok()
            .filter(|id| *id >= 0 && !explicit.contains_key(id));
        match (found.next(), found.next()) {
            (Some(id), None) => Some(id),
            (Some(_), Some(_)) => None,
            (None, _) => computed,
        }
    }

    /// Which broker a TLS connection is for, from its SNI server name (ASCII case-insensitive, a trailing dot
    /// ignored). For SNI the id must be written canonically (no sign, no leading zero), so that
    /// `address_of(node_for_sni(n)?)` gives back `n`. For port-per-broker only a unique explicit host matches.
    pub fn node_for_sni(&self, server_name: &str) -> Option<i32> {
        let name = server_name.strip_suffix('.').unwrap_or(server_name);
        match self {
            BrokerAddressing::Sni { pattern, .. } => {
                let (prefix, suffix) = split_pattern(pattern).ok()?;
                if name.len() < prefix.len() + suffix.len() || !name.is_char_boundary(prefix.len()) {
                    return None;
                }
                let (head, rest) = name.split_at(prefix.len());
                let split = rest.len().checked_sub(suffix.len())?;
                if !rest.is_char_boundary(split) {
                    return None;
                }
                let (digits, tail) = rest.split_at(split);
                if !head.eq_ignore_ascii_case(prefix) || !tail.eq_ignore_ascii_case(suffix) {
                    return None;
                }
                let canonical = !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && (digits == "0" || !digits.starts_with('0'));
                if !canonical {
                    return None;
                }
                digits.parse::<i32>().ok()
            }
            BrokerAddressing::PortPerBroker { explicit, .. } => {
                let mut found = explicit
                    .iter()
                    .filter(|(_, (h, _))| h.eq_ignore_ascii_case(name))
                    .map(|(&id, _)| id);
                match (found.next(), found.next()) {
                    (Some(id), None) => Some(id),
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ppb(base_port: i32, explicit: &[(i32, &str, i32)]) -> BrokerAddressing {
        BrokerAddressing::PortPerBroker {
            host: "kafka.example.com".into(),
            base_port,
            explicit: explicit.iter().map(|&(id, h, p)| (id, (h.to_owned(), p))).collect(),
        }
    }

    fn sni(pattern: &str) -> BrokerAddressing {
        BrokerAddressing::Sni {
            pattern: pattern.into(),
            port: 9093,
        }
    }

    #[test]
    fn port_per_broker_addresses_and_explicit_override() {
        let a = ppb(9100, &[(7, "seven.example.com", 19007)]);
        assert_eq!(a.address_of(0).unwrap(), ("kafka.example.com".into(), 9100));
        assert_eq!(a.address_of(3).unwrap(), ("kafka.example.com".into(), 9103));
        assert_eq!(a.address_of(7).unwrap(), ("seven.example.com".into(), 19007));
        assert!(a.validate().is_ok());
    }

    #[test]
    fn port_overflow_and_negative_ids_are_errors() {
        let a = ppb(65_000, &[]);
        assert_eq!(a.address_of(535).unwrap().1, 65_535);
        assert!(matches!(
            a.address_of(536),
            Err(RewriteError::PortOutOfRange {
                node_id: 536,
                port: 65_536
            })
        ));
        // i32 overflow of base_port + id is computed in i64, so it is an error, not a wrap.
        let big = ppb(i32::MAX, &[]);
        assert!(matches!(
            big.address_of(i32::MAX),
            Err(RewriteError::PortOutOfRange { .. })
        ));
        assert!(matches!(a.address_of(-1), Err(RewriteError::NegativeNodeId(-1))));
        let zero = ppb(0, &[]);
        assert!(matches!(
            zero.address_of(0),
            Err(RewriteError::PortOutOfRange { port: 0, .. })
        ));
        let bad_explicit = ppb(9100, &[(1, "h", 70_000)]);
        assert!(bad_explicit.address_of(1).is_err());
        assert!(bad_explicit.validate().is_err());
        assert!(ppb(9100, &[(2, "", 9000)]).validate().is_err());
        assert!(ppb(9100, &[(-2, "h", 9000)]).validate().is_err());
        assert!(ppb(0, &[]).validate().is_err());
        assert!(ppb(65_536, &[]).validate().is_err());
    }

    #[test]
    fn sni_pattern() {
        let a = sni("broker-{id}.kafka.example.com");
        assert_eq!(a.address_of(0).unwrap(), ("broker-0.kafka.example.com".into(), 9093));
        assert_eq!(a.address_of(42).unwrap(), ("broker-42.kafka.example.com".into(), 9093));
        assert!(a.validate().is_ok());
        for bad in [
            "broker.kafka.example.com",
            "b-{id}-{id}.x",
            "b-{id}.{cluster}.x",
            "b {id}.x",
            "b/{id}",
        ] {
            assert!(
                matches!(sni(bad).address_of(1), Err(RewriteError::BadPattern { .. })),
                "{bad}"
            );
            assert!(sni(bad).validate().is_err(), "{bad}");
        }
        let bad_port = BrokerAddressing::Sni {
            pattern: "b{id}.x".into(),
            port: 0,
        };
        assert!(bad_port.address_of(1).is_err());
        assert!(bad_port.validate().is_err());
    }

    #[test]
    fn inverse_port_lookup() {
        let a = ppb(
            9100,
            &[
                (7, "seven.example.com", 19007),
                (8, "a.example.com", 20000),
                (9, "b.example.com", 20000),
            ],
        );
        assert_eq!(a.node_for_port(9100), Some(0));
        assert_eq!(a.node_for_port(9105), Some(5));
        assert_eq!(a.node_for_port(19007), Some(7));
        // 9107 would be broker 7's computed port, but 7 is explicit elsewhere.
        assert_eq!(a.node_for_port(9107), None);
        assert_eq!(a.node_for_port(9099), None);
        // Two explicit brokers on one port: ambiguous, route by SNI instead.
        assert_eq!(a.node_for_port(20000), None);
        assert_eq!(a.node_for_sni("A.example.com."), Some(8));
        assert_eq!(a.node_for_sni("kafka.example.com"), None);
        // An explicit port equal to a computed one belongs to the explicit broker; the other broker has none.
        let clash = ppb(9100, &[(7, "x", 9102)]);
        assert_eq!(clash.node_for_port(9102), Some(7));
        assert!(matches!(
            clash.address_of(2),
            Err(RewriteError::PortTaken {
                node_id: 2,
                port: 9102,
                owner: 7
            })
        ));
        for id in [0, 1, 6, 100] {
            let (_, port) = a.address_of(id).unwrap();
            assert_eq!(a.node_for_port(u16::try_from(port).unwrap()), Some(id));
        }
        assert_eq!(sni("b{id}.x").node_for_port(9093), None);
    }

    #[test]
    fn inverse_sni_lookup() {
        let a = sni("broker-{id}.kafka.example.com");
        for id in [0, 1, 9, 10, 12345, i32::MAX] {
            let (host, _) = a.address_of(id).unwrap();
            assert_eq!(a.node_for_sni(&host), Some(id), "{host}");
        }
        assert_eq!(a.node_for_sni("BROKER-3.Kafka.Example.COM."), Some(3));
        for miss in [
            "broker-.kafka.example.com",
            "broker-03.kafka.example.com",
            "broker--3.kafka.example.com",
            "broker-+3.kafka.example.com",
            "broker-3x.kafka.example.com",
            "broker-3.kafka.example.org",
            "broker-2147483648.kafka.example.com",
            "kafka.example.com",
            "",
            "broker-é.kafka.example.com",
        ] {
            assert_eq!(a.node_for_sni(miss), None, "{miss}");
        }
        let at_start = sni("{id}.brokers.example.com");
        assert_eq!(at_start.node_for_sni("17.brokers.example.com"), Some(17));
        assert_eq!(sni("no-placeholder").node_for_sni("no-placeholder"), None);
    }
}
