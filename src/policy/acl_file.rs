//! The ACL policy file: readable TOML that expands one-to-one into Kafka AclBindings. Parsing only (the
//! text comes in, bindings or every problem with its line go out); reading and watching the file live with
//! the caller.
//!
//! ```toml
//! [[allow]]                                  # or [[deny]]
//! principals = ["User:alice", "User:bob"]    # "User:*" is every principal
//! hosts = ["10.0.0.5"]                       # default ["*"]; IP addresses only, as in Kafka
//! operations = ["Read", "Describe"]          # Kafka's names, any case: READ, IdempotentWrite...
//! topics = ["orders"]                        # LITERAL names; "*" is every topic
//! topic_prefixes = ["payments-"]             # PREFIXED
//! # groups, group_prefixes, transactional_ids, transactional_id_prefixes, cluster = true
//!
//! [[producer]]                               # kafka-acls --producer [--idempotent] [--transactional-id]
//! principals = ["User:alice"]
//! topics = ["orders"]                        # WRITE, DESCRIBE, CREATE on each topic
//! idempotent = true                          # IDEMPOTENT_WRITE on the cluster
//! transactional_ids = ["orders-tx"]          # WRITE, DESCRIBE on each
//!
//! [[consumer]]                               # kafka-acls --consumer --group
//! principals = ["User:bob"]
//! topics = ["orders"]                        # READ, DESCRIBE on each topic
//! groups = ["billing"]                       # READ on each group
//! ```
//!
//! A host written as an IP address is kept in Java's form (`::1` becomes `0:0:0:0:0:0:0:1`), the only form
//! Kafka's exact string comparison can ever match.
use std::net::IpAddr;

use serde::Deserialize;
use toml::Spanned;

use super::acl::{
    java_host_address, AclBinding, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME, WILDCARD_HOST,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AclFile {
    #[serde(default)]
    allow: Vec<Spanned<Rule>>,
    #[serde(default)]
    deny: Vec<Spanned<Rule>>,
    #[serde(default)]
    producer: Vec<Spanned<Producer>>,
    #[serde(default)]
    consumer: Vec<Spanned<Consumer>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    principals: Vec<String>,
    #[serde(default)]
    hosts: Option<Vec<String>>,
    operations: Vec<String>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    topic_prefixes: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    group_prefixes: Vec<String>,
    #[serde(default)]
    transactional_ids: Vec<String>,
    #[serde(default)]
    transactional_id_prefixes: Vec<String>,
    #[serde(default)]
    cluster: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Producer {
    principals: Vec<String>,
    #[serde(default)]
    hosts: Option<Vec<String>>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    topic_prefixes: Vec<String>,
    #[serde(default)]
    idempotent: bool,
    #[serde(default)]
    transactional_ids: Vec<String>,
    #[serde(default)]
    transactional_id_prefixes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Consumer {
    principals: Vec<String>,
    #[serde(default)]
    hosts: Option<Vec<String>>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    topic_prefixes: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    group_prefixes: Vec<String>,
}

/// Every binding the file describes, or every problem in it as `FILE:LINE: message`.
pub fn parse(text: &str, file: &str) -> Result<Vec<AclBinding>, Vec<String>> {
    let doc: AclFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        vec![format!("{file}:{line}: {}", e.message())]
    })?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut report = |at: usize, table: &str, message: String| {
        problems.push(format!("{file}:{}: [[{table}]]: {message}", line_of(text, at)));
    };
    for (permission, table, rules) in [
        (Permission::Allow, "allow", &doc.allow),
        (Permission::Deny, "deny", &doc.deny),
    ] {
        for rule in rules {
            let at = rule.span().start;
            let r = rule.get_ref();
            let ops: Vec<Operation> = r
                .operations
                .iter()
                .filter_map(|o| parse_operation(o).map_err(|m| report(at, table, m)).ok())
                .collect();
            if r.operations.is_empty() {
                report(
                    at,
                    table,
                    "operations is empty: name at least one (e.g. \"Read\")".into(),
                );
            }
            let resources = resources(r);
            if resources.is_empty() {
                report(at, table, "no resource: give topics, topic_prefixes, groups, group_prefixes, transactional_ids, transactional_id_prefixes or cluster = true".into());
            }
            for (rt, _, _) in &resources {
                for op in &ops {
                    if *op != Operation::All && !rt.supported_operations().contains(op) {
                        report(
                            at,
                            table,
                            format!(
                                "{op} does not apply to {rt} (Kafka allows {})",
                                names(rt.supported_operations())
                            ),
                        );
                    }
                }
            }
            let who = who(&r.principals, r.hosts.as_deref(), &mut |m| report(at, table, m));
            expand(&mut out, &who, &resources, &ops, permission);
        }
    }
    for producer in &doc.producer {
        let at = producer.span().start;
        let p = producer.get_ref();
        let who = who(&p.principals, p.hosts.as_deref(), &mut |m| report(at, "producer", m));
        let topics = patterns(ResourceType::Topic, &p.topics, &p.topic_prefixes);
        let txn = patterns(
            ResourceType::TransactionalId,
            &p.transactional_ids,
            &p.transactional_id_prefixes,
        );
        if topics.is_empty() {
            report(
                at,
                "producer",
                "topics or topic_prefixes is required (as kafka-acls --producer --topic)".into(),
            );
        }
        use Operation::*;
        expand(&mut out, &who, &topics, &[Write, Describe, Create], Permission::Allow);
        expand(&mut out, &who, &txn, &[Write, Describe], Permission::Allow);
        if p.idempotent {
            let cluster = [(ResourceType::Cluster, PatternType::Literal, CLUSTER_NAME.to_string())];
            expand(&mut out, &who, &cluster, &[IdempotentWrite], Permission::Allow);
        }
    }
    for consumer in &doc.consumer {
        let at = consumer.span().start;
        let c = consumer.get_ref();
        let who = who(&c.principals, c.hosts.as_deref(), &mut |m| report(at, "consumer", m));
        let topics = patterns(ResourceType::Topic, &c.topics, &c.topic_prefixes);
        let groups = patterns(ResourceType::Group, &c.groups, &c.group_prefixes);
        if topics.is_empty() || groups.is_empty() {
            report(at, "consumer", "topics (or topic_prefixes) and groups (or group_prefixes) are required, as kafka-acls --consumer --topic --group".into());
        }
        expand(
            &mut out,
            &who,
            &topics,
            &[Operation::Read, Operation::Describe],
            Permission::Allow,
        );
        expand(&mut out, &who, &groups, &[Operation::Read], Permission::Allow);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

type Pattern = (ResourceType, PatternType, String);

fn patterns(rt: ResourceType, literal: &[String], prefixed: &[String]) -> Vec<Pattern> {
    let literal = literal.iter().map(|n| (rt, PatternType::Literal, n.clone()));
    literal
        .chain(prefixed.iter().map(|n| (rt, PatternType::Prefixed, n.clone())))
        .collect()
}

fn resources(r: &Rule) -> Vec<Pattern> {
    let mut out = patterns(ResourceType::Topic, &r.topics, &r.topic_prefixes);
    out.extend(patterns(ResourceType::Group, &r.groups, &r.group_prefixes));
    out.extend(patterns(
        ResourceType::TransactionalId,
        &r.transactional_ids,
        &r.transactional_id_prefixes,
    ));
    if r.cluster {
        out.push((ResourceType::Cluster, PatternType::Literal, CLUSTER_NAME.to_string()));
    }
    out
}

/// The (principal, host) pairs of a table, checked.
fn who(principals: &[String], hosts: Option<&[String]>, report: &mut dyn FnMut(String)) -> Vec<(String, String)> {
    if principals.is_empty() {
        report("principals is empty: name at least one (e.g. \"User:alice\", or \"User:*\" for everyone)".into());
    }
    for p in principals {
        if let Err(m) = check_principal(p) {
            report(m);
        }
    }
    let hosts: Vec<String> = match hosts {
        None => vec![WILDCARD_HOST.to_string()],
        Some([]) => {
            report("hosts is empty: leave it out for every host (\"*\")".into());
            Vec::new()
        }
        Some(hosts) => hosts
            .iter()
            .filter_map(|h| normalize_host(h).map_err(&mut *report).ok())
            .collect(),
    };
    principals
        .iter()
        .flat_map(|p| hosts.iter().map(move |h| (p.clone(), h.clone())))
        .collect()
}

fn expand(
    out: &mut Vec<AclBinding>,
    who: &[(String, String)],
    resources: &[Pattern],
    ops: &[Operation],
    permission: Permission,
) {
    for (principal, host) in who {
        for (rt, pt, name) in resources {
            for op in ops {
                out.push(AclBinding {
                    resource_type: *rt,
                    pattern_type: *pt,
                    resource_name: name.clone(),
                    principal: principal.clone(),
                    host: host.clone(),
                    operation: *op,
                    permission,
                });
            }
        }
    }
}

/// Kafka's operation names in any case, with or without underscores (`IdempotentWrite`, `IDEMPOTENT_WRITE`).
pub fn parse_operation(text: &str) -> Result<Operation, String> {
    use Operation::*;
    let key: String = text
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    Ok(match key.as_str() {
        "ALL" => All,
        "READ" => Read,
        "WRITE" => Write,
        "CREATE" => Create,
        "DELETE" => Delete,
        "ALTER" => Alter,
        "DESCRIBE" => Describe,
        "CLUSTERACTION" => ClusterAction,
        "DESCRIBECONFIGS" => DescribeConfigs,
        "ALTERCONFIGS" => AlterConfigs,
        "IDEMPOTENTWRITE" => IdempotentWrite,
        "CREATETOKENS" => CreateTokens,
        "DESCRIBETOKENS" => DescribeTokens,
        _ => {
            return Err(format!(
                "unknown operation {text:?} (Kafka's operations: ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, \
                 CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, CREATE_TOKENS, DESCRIBE_TOKENS)"
            ))
        }
    })
}

/// `Type:name` with both parts present, as KafkaPrincipal parses it.
pub fn check_principal(p: &str) -> Result<(), String> {
    match p.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(format!("principal {p:?} is not Type:name (e.g. \"User:alice\")")),
    }
}

/// `*`, or an IP address put in Java's form. Kafka compares hosts as strings and never resolves names.
pub fn normalize_host(h: &str) -> Result<String, String> {
    if h == WILDCARD_HOST {
        return Ok(h.to_string());
    }
    h.parse::<IpAddr>().map(java_host_address).map_err(|_| {
        format!("host {h:?} is not \"*\" or an IP address (Kafka matches client addresses exactly, never host names)")
    })
}

fn names(ops: &[Operation]) -> String {
    ops.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ")
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops_of(bindings: &[AclBinding], rt: ResourceType, name: &str) -> Vec<String> {
        let mut ops: Vec<String> = bindings
            .iter()
            .filter(|b| b.resource_type == rt && b.resource_name == name)
            .map(|b| b.operation.to_string())
            .collect();
        ops.sort();
        ops
    }

    #[test]
    fn tables_expand_one_to_one_into_bindings() {
        let text = r#"
[[allow]]
principals = ["User:alice", "User:bob"]
hosts = ["10.0.0.5", "::1"]
operations = ["Read", "describe"]
topics = ["orders"]
group_prefixes = ["billing-"]

[[deny]]
principals = ["User:*"]
operations = ["ALL"]
topic_prefixes = ["secret"]
"#;
        let b = parse(text, "acls.toml").expect("valid");
        // 2 principals x 2 hosts x (1 topic + 1 group prefix) x 2 operations, plus one DENY.
        assert_eq!(b.len(), 2 * 2 * 2 * 2 + 1);
        assert!(b.iter().any(|x| x.host == "0:0:0:0:0:0:0:1"
            && x.principal == "User:bob"
            && x.resource_type == ResourceType::Group
            && x.pattern_type == PatternType::Prefixed
            && x.operation == Operation::Describe));
        let deny: Vec<_> = b.iter().filter(|x| x.permission == Permission::Deny).collect();
        assert_eq!(deny.len(), 1);
        assert_eq!(
            deny[0].to_string(),
            "(principal=User:*, host=*, operation=ALL, permissionType=DENY) on Topic:PREFIXED:secret"
        );
    }

    #[test]
    fn shortcuts_add_what_kafka_acls_adds() {
        let text = r#"
[[producer]]
principals = ["User:p"]
topics = ["t"]
idempotent = true
transactional_ids = ["tx"]

[[consumer]]
principals = ["User:c"]
topics = ["t"]
groups = ["g"]
"#;
        let b = parse(text, "acls.toml").expect("valid");
        let mine = |p: &str| b.iter().filter(|x| x.principal == p).cloned().collect::<Vec<_>>();
        let p = mine("User:p");
        assert_eq!(ops_of(&p, ResourceType::Topic, "t"), ["CREATE", "DESCRIBE", "WRITE"]);
        assert_eq!(ops_of(&p, ResourceType::TransactionalId, "tx"), ["DESCRIBE", "WRITE"]);
        assert_eq!(ops_of(&p, ResourceType::Cluster, CLUSTER_NAME), ["IDEMPOTENT_WRITE"]);
        let c = mine("User:c");
        assert_eq!(ops_of(&c, ResourceType::Topic, "t"), ["DESCRIBE", "READ"]);
        assert_eq!(ops_of(&c, ResourceType::Group, "g"), ["READ"]);
        assert!(b.iter().all(|x| x.permission == Permission::Allow && x.host == "*"));
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"[[allow]]
principals = ["alice"]
operations = ["Read", "Fly"]
topics = ["t"]

[[deny]]
principals = ["User:x"]
hosts = ["broker1.example.com"]
operations = ["IdempotentWrite"]
groups = ["g"]

[[consumer]]
principals = ["User:c"]
topics = ["t"]
"#;
        let problems = parse(text, "acls.toml").expect_err("invalid");
        let all = problems.join("\n");
        for want in [
            "acls.toml:1: [[allow]]: principal \"alice\" is not Type:name",
            "acls.toml:1: [[allow]]: unknown operation \"Fly\"",
            "acls.toml:6: [[deny]]: host \"broker1.example.com\" is not \"*\" or an IP address",
            "acls.toml:6: [[deny]]: IDEMPOTENT_WRITE does not apply to Group",
            "acls.toml:12: [[consumer]]: topics (or topic_prefixes) and groups",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        assert_eq!(problems.len(), 5, "{all}");
    }

    #[test]
    fn syntax_errors_and_unknown_keys_name_the_line() {
        let problems = parse(
            "[[allow]]\nprincipals = [\"User:a\"]\noperations = [\"Read\"]\ntopicz = [\"t\"]\n",
            "p.toml",
        )
        .expect_err("unknown key");
        assert!(
            problems[0].starts_with("p.toml:") && problems[0].contains("topicz"),
            "{problems:?}"
        );
        let problems = parse("[[allow]\n", "p.toml").expect_err("syntax");
        assert!(problems[0].starts_with("p.toml:1:"), "{problems:?}");
        assert_eq!(
            parse("", "p.toml").expect("an empty file is an empty policy"),
            Vec::new()
        );
    }

    #[test]
    fn the_example_policy_in_the_repository_is_valid() {
        let bindings = parse(include_str!("../../policies/acls.toml"), "policies/acls.toml").expect("valid");
        assert!(bindings
            .iter()
            .any(|b| b.permission == Permission::Deny && b.resource_name == "secret"));
        assert!(bindings
            .iter()
            .any(|b| b.operation == Operation::IdempotentWrite && b.principal == "User:alice"));
    }

    #[test]
    fn operation_names_in_any_case() {
        for (text, op) in [
            ("IdempotentWrite", Operation::IdempotentWrite),
            ("cluster_action", Operation::ClusterAction),
            ("ALL", Operation::All),
        ] {
            assert_eq!(parse_operation(text), Ok(op));
        }
        assert!(parse_operation("ANY").is_err(), "ANY is a filter, not an operation");
    }
}
