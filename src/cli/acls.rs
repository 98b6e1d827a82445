//! `kgate acls list|check`: read an ACL policy file (see [`crate::policy::acl_file`]) and list its bindings
//! the way `kafka-acls --list` prints them, or answer "may PRINCIPAL do OPERATION on RESOURCE from HOST" with
//! the decision Kafka's StandardAuthorizer makes and the binding (or default) that made it.
//!
//! [`run`] is what `main` calls; [`execute`] does the work and returns what to print, for tests.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::users::CliError;
use crate::policy::acl::{AclIndex, Decision, Reason, Requester, ResourceType, CLUSTER_NAME};
use crate::policy::acl_file::{self, check_principal, normalize_host, parse_operation};

const CHECK_LONG_ABOUT: &str = "\
Decide one action the way Kafka's StandardAuthorizer does, from an ACL policy
file, and say which binding (or which default) decided:

  super users          allowed, whatever the bindings say
  matching bindings    the resource's LITERAL name, LITERAL \"*\" and every
                       PREFIXED prefix of the name; a binding applies when its
                       principal is the one given or User:*, and its host is *
                       or exactly --host
  DENY wins            any applying DENY for the operation (or ALL) denies
  ALLOW                READ, WRITE, DELETE and ALTER imply DESCRIBE;
                       ALTER_CONFIGS implies DESCRIBE_CONFIGS; ALL implies all
  no binding at all    for the resource: --allow-everyone-if-no-acl-found
                       decides (Kafka's default: denied)

Exit status: 0 allowed; 1 denied; 64 bad usage or a broken policy file
(every problem is listed with its line).";

const CHECK_EXAMPLES: &str = "\
Examples:
  kgate acls check --acls-file policies/acls.toml --principal User:alice \\
      --operation Read --topic orders
  kgate acls check --acls-file policies/acls.toml --principal User:bob \\
      --operation Write --topic payments-eu --host 10.0.0.5 --super-user User:admin";

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum AclsCommand {
    /// List the bindings of an ACL policy file, grouped by resource, as kafka-acls --list prints them.
    List {
        /// The ACL policy file (TOML; see policies/acls.toml).
        #[arg(long, value_name = "FILE")]
        acls_file: PathBuf,
    },
    #[command(
        about = "Decide whether a principal may perform an operation on a resource",
        long_about = CHECK_LONG_ABOUT,
        after_help = CHECK_EXAMPLES
    )]
    Check {
        /// The ACL policy file (TOML; see policies/acls.toml).
        #[arg(long, value_name = "FILE")]
        acls_file: PathBuf,
        /// Who asks, as Type:name: User:alice.
        #[arg(long, value_name = "PRINCIPAL")]
        principal: String,
        /// Kafka's operation name, any case: Read, Write, Create, Delete, Alter, Describe, ClusterAction,
        /// DescribeConfigs, AlterConfigs, IdempotentWrite, CreateTokens, DescribeTokens.
        #[arg(long, value_name = "OPERATION")]
        operation: String,
        #[arg(long, value_name = "NAME", group = "resource")]
        topic: Option<String>,
        #[arg(long, value_name = "NAME", group = "resource")]
        group: Option<String>,
        #[arg(long, value_name = "ID", group = "resource")]
        transactional_id: Option<String>,
        #[arg(long, group = "resource")]
        cluster: bool,
        /// The client's IP address (default: 127.0.0.1).
        #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
        host: String,
        /// A super user (repeat for more), as [security] super_users.
        #[arg(long = "super-user", value_name = "PRINCIPAL")]
        super_users: Vec<String>,
        /// The server's configuration file: its [security] super_users are super users here too.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Allow an action on a resource no binding matches (Kafka's allow.everyone.if.no.acl.found).
        #[arg(long)]
        allow_everyone_if_no_acl_found: bool,
    },
}

pub fn run(cmd: AclsCommand) -> ExitCode {
    match execute(cmd) {
        Ok((code, output)) => {
            print!("{output}");
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("kgate: {}", e.message);
            ExitCode::from(e.exit_code)
        }
    }
}

fn usage(message: String) -> CliError {
    CliError { message, exit_code: 64 }
}

fn load(path: &Path) -> Result<Vec<crate::policy::acl::AclBinding>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    acl_file::parse(&text, &path.display().to_string()).map_err(|problems| {
        usage(format!(
            "{} is not a valid ACL policy:\n  {}",
            path.display(),
            problems.join("\n  ")
        ))
    })
}

/// The exit code (0 allowed or listed, 1 denied) and what to print.
pub fn execute(cmd: AclsCommand) -> Result<(u8, String), CliError> {
    match cmd {
        AclsCommand::List { acls_file } => {
            let bindings = load(&acls_file)?;
            let mut by_resource: BTreeMap<_, Vec<_>> = BTreeMap::new();
            for b in &bindings {
                by_resource
                    .entry((b.resource_type, b.resource_name.clone(), b.pattern_type))
                    .or_default()
                    .push(b);
            }
            let mut out = String::new();
            for ((rt, name, pt), mut entries) in by_resource {
                entries.sort();
                entries.dedup();
                let kind = rt
                    .to_string()
                    .to_uppercase()
                    .replace("TRANSACTIONALID", "TRANSACTIONAL_ID");
                let _ = writeln!(
                    out,
                    "Current ACLs for resource `ResourcePattern(resourceType={kind}, name={name}, patternType={pt})`:"
                );
                for b in entries {
                    let text = b.to_string();
                    let entry = text.split(" on ").next().unwrap_or(&text);
                    let _ = writeln!(out, " \t{entry} ");
                }
                out.push('\n');
            }
            Ok((0, out))
        }
        AclsCommand::Check {
            acls_file,
            principal,
            operation,
            topic,
            group,
            transactional_id,
            cluster,
            host,
            mut super_users,
            config,
            allow_everyone_if_no_acl_found,
        } => {
            if let Some(config) = config {
                let loaded =
                    crate::config::Config::load(&config).map_err(|e| usage(format!("{}: {e}", config.display())))?;
                super_users.extend(loaded.security.super_users);
            }
            let operation = parse_operation(&operation).map_err(usage)?;
            check_principal(&principal).map_err(usage)?;
            for p in &super_users {
                check_principal(p).map_err(usage)?;
            }
            let host = normalize_host(&host).map_err(usage)?;
            if host == "*" {
                return Err(usage("--host is a client's IP address, not \"*\"".into()));
            }
            let (resource_type, name) = match (topic, group, transactional_id, cluster) {
                (Some(t), None, None, false) => (ResourceType::Topic, t),
                (None, Some(g), None, false) => (ResourceType::Group, g),
                (None, None, Some(x), false) => (ResourceType::TransactionalId, x),
                (None, None, None, true) => (ResourceType::Cluster, CLUSTER_NAME.to_string()),
                _ => {
                    return Err(usage(
                        "give one resource: --topic, --group, --transactional-id or --cluster".into(),
                    ))
                }
            };
            let index = AclIndex::new(load(&acls_file)?, super_users, allow_everyone_if_no_acl_found);
            let who = Requester {
                principal: &principal,
                host: &host,
            };
            let decision = index.authorize(who, operation, resource_type, &name);
            let (code, word, reason) = match decision {
                Decision::Allowed(r) => (0, "ALLOWED", r),
                Decision::Denied(r) => (1, "DENIED", r),
            };
            let why = match reason {
                Reason::SuperUser => format!("{principal} is a super user"),
                Reason::Binding(b) => format!("binding {b}"),
                Reason::NoAclFound if code == 0 => {
                    "no binding matches the resource and allow_everyone_if_no_acl_found is on".to_string()
                }
                Reason::NoAclFound => {
                    "no binding matches the resource (allow_everyone_if_no_acl_found is off, Kafka's default)"
                        .to_string()
                }
                Reason::DefaultDeny => {
                    "bindings match the resource, but none allows this principal, host and operation".to_string()
                }
            };
            Ok((
                code,
                format!("{word}: {principal} {operation} on {resource_type}:{name} from {host}\n  because: {why}\n"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: AclsCommand,
    }

    fn run_args(args: &[&str]) -> Result<(u8, String), CliError> {
        execute(Cli::try_parse_from([&["kgate"], args].concat()).expect("parses").cmd)
    }

    fn policy(dir: &Path) -> String {
        let path = dir.join("acls.toml");
        std::fs::write(
            &path,
            "[[consumer]]\nprincipals = [\"User:alice\"]\ntopics = [\"orders\"]\ngroups = [\"billing\"]\n\n\
             [[deny]]\nprincipals = [\"User:*\"]\nhosts = [\"10.9.9.9\"]\noperations = [\"All\"]\ntopic_prefixes = [\"ord\"]\n",
        )
        .expect("write");
        path.display().to_string()
    }

    #[test]
    fn check_names_the_binding_or_default_that_decided() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = policy(dir.path());
        let base = ["check", "--acls-file", file.as_str(), "--principal"];
        let (code, out) =
            run_args(&[&base[..], &["User:alice", "--operation", "read", "--topic", "orders"]].concat()).expect("ok");
        assert_eq!(code, 0, "{out}");
        assert!(
            out.starts_with("ALLOWED: User:alice READ on Topic:orders from 127.0.0.1"),
            "{out}"
        );
        assert!(
            out.contains("operation=READ, permissionType=ALLOW) on Topic:LITERAL:orders"),
            "{out}"
        );
        let (code, out) = run_args(
            &[
                &base[..],
                &[
                    "User:alice",
                    "--operation",
                    "Read",
                    "--topic",
                    "orders",
                    "--host",
                    "10.9.9.9",
                ],
            ]
            .concat(),
        )
        .expect("ok");
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("permissionType=DENY) on Topic:PREFIXED:ord"), "{out}");
        let (code, out) =
            run_args(&[&base[..], &["User:bob", "--operation", "Read", "--topic", "orders"]].concat()).expect("ok");
        assert!(code == 1 && out.contains("none allows this principal"), "{out}");
        let (code, out) = run_args(
            &[
                &base[..],
                &[
                    "User:bob",
                    "--operation",
                    "Read",
                    "--topic",
                    "x",
                    "--allow-everyone-if-no-acl-found",
                ],
            ]
            .concat(),
        )
        .expect("ok");
        assert!(
            code == 0 && out.contains("allow_everyone_if_no_acl_found is on"),
            "{out}"
        );
        let (code, out) = run_args(
            &[
                &base[..],
                &[
                    "User:root",
                    "--operation",
                    "Alter",
                    "--cluster",
                    "--super-user",
                    "User:root",
                ],
            ]
            .concat(),
        )
        .expect("ok");
        assert!(code == 0 && out.contains("User:root is a super user"), "{out}");
    }

    #[test]
    fn bad_usage_and_broken_files_are_64_with_every_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = policy(dir.path());
        for (args, message) in [
            (
                vec!["--principal", "alice", "--operation", "Read", "--topic", "t"],
                "not Type:name",
            ),
            (
                vec!["--principal", "User:a", "--operation", "Fly", "--topic", "t"],
                "unknown operation",
            ),
            (
                vec!["--principal", "User:a", "--operation", "Read"],
                "give one resource",
            ),
            (
                vec![
                    "--principal",
                    "User:a",
                    "--operation",
                    "Read",
                    "--topic",
                    "t",
                    "--host",
                    "h.example.com",
                ],
                "not \"*\" or an IP",
            ),
        ] {
            let e = run_args(&[&["check", "--acls-file", file.as_str()][..], &args[..]].concat()).expect_err("usage");
            assert!(
                e.exit_code == 64 && e.message.contains(message),
                "{args:?}: {}",
                e.message
            );
        }
        let broken = dir.path().join("broken.toml");
        std::fs::write(
            &broken,
            "[[allow]]\nprincipals = [\"bob\"]\noperations = [\"Fly\"]\ntopics = [\"t\"]\n",
        )
        .expect("write");
        let e = run_args(&["list", "--acls-file", broken.to_str().expect("utf-8")]).expect_err("broken");
        assert_eq!(e.exit_code, 64);
        assert!(
            e.message.contains("broken.toml:1: [[allow]]: principal \"bob\"") && e.message.contains("\"Fly\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn list_groups_bindings_by_resource_like_kafka_acls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (code, out) = run_args(&["list", "--acls-file", &policy(dir.path())]).expect("ok");
        assert_eq!(code, 0);
        assert!(out.contains("Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:\n \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW) \n \t(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW) \n"), "{out}");
        assert!(
            out.contains("resourceType=GROUP, name=billing, patternType=LITERAL"),
            "{out}"
        );
        assert!(
            out.contains("(principal=User:*, host=10.9.9.9, operation=ALL, permissionType=DENY)"),
            "{out}"
        );
    }
}
