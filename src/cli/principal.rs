//! `kgate principal map`: which short name (and so which Kafka principal, `User:<short name>`) a Kerberos
//! principal gets under `sasl.kerberos.principal.to.local.rules`, which rule gave it, and why the rules
//! before it did not apply. The mapping is [`crate::security::kerberos_name`], the one kgate uses.
//!
//! [`run`] is what `main` calls; [`execute`] does the work and returns what to print, for tests.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::cli::users::CliError;
use crate::security::kerberos_name::{KerberosName, KerberosShortNamer, RuleOutcome, RuleTrace};

const MAP_ABOUT: &str = "Map a Kerberos principal to its short name with sasl.kerberos.principal.to.local.rules";

// The help is wrapped by hand at 78 columns so clap leaves the layout alone on 80-column terminals.
const MAP_LONG_ABOUT: &str = "\
Map a Kerberos principal to its short name the way Kafka's
sasl.kerberos.principal.to.local.rules does, and show which rule decided and
why the rules before it did not apply. A client that authenticates with GSSAPI
as that principal becomes the Kafka principal User:<short name>, the name ACLs
use.

Rules are tried in order and the first that applies wins. Each --rule is one
rule:

  DEFAULT
      the first component, when the realm is the default realm:
      kafka/broker1.example.com@EXAMPLE.COM -> kafka, alice@EXAMPLE.COM -> alice
  RULE:[n:format](regex)s/pattern/replacement/[g] then optionally /L or /U
      n         the component count the rule is for: 1 (user@REALM) or
                2 (service/host@REALM)
      format    made of $0 (the realm), $1 and $2 (the components): $1@$0
      (regex)   optional: a Java regex the formatted string must match as a
                whole; it cannot contain ')'
      s/pattern/replacement/
                optional: replace the first match of pattern, every match
                with g; $1 in the replacement is a group of pattern; neither
                part can contain '/', not even as \\/
      /L or /U  optional: lowercase or uppercase the result

A result containing '/' or '@' is an error (Kafka: \"Non-simple name\"), and so
is a principal no rule applies to: Kafka then fails the authentication. A
principal without a realm is returned unchanged. Without --rule the rules are
Kafka's default, DEFAULT.

Exit status: 0 mapped; 1 no rule applies or the result is not a simple name;
64 invalid rule or principal.";

const MAP_EXAMPLES: &str = "\
Examples:
  kgate principal map alice@EXAMPLE.COM --default-realm EXAMPLE.COM
      -> alice (DEFAULT)
  kgate principal map kafka/broker1.example.com@EXAMPLE.COM \\
      --rule 'RULE:[2:$1@$0](.*@EXAMPLE.COM)s/@.*//'
      -> kafka
  kgate principal map Alice@PARTNER.ORG \\
      --rule 'RULE:[1:$1@$0](.*@PARTNER\\.ORG)s/@.*///L' \\
      --rule DEFAULT --default-realm EXAMPLE.COM
      -> alice
  kgate principal map etl/worker7@EXAMPLE.COM \\
      --rule 'RULE:[2:$1_$2](etl_.*)s/_.*/-svc/'
      -> etl-svc

Kafka's server.properties value RULE:...,DEFAULT is --rule 'RULE:...'
--rule DEFAULT here, and a list of strings in kgate's [kerberos]
principal_to_local_rules. Quote rules for the shell: they contain $, ( and ).";

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum PrincipalCommand {
    #[command(about = MAP_ABOUT, long_about = MAP_LONG_ABOUT, after_help = MAP_EXAMPLES)]
    Map {
        /// The Kerberos principal: user@REALM or service/host@REALM.
        #[arg(value_name = "PRINCIPAL")]
        principal: String,
        /// One rule; repeat for more (the first that applies wins). Default: DEFAULT.
        #[arg(long = "rule", value_name = "RULE")]
        rules: Vec<String>,
        /// The realm DEFAULT maps: kgate uses krb5.conf's default_realm. Without it, "" (like Kafka when it
        /// has none), so DEFAULT maps no principal that has a realm.
        #[arg(long, value_name = "REALM")]
        default_realm: Option<String>,
    },
}

/// Runs the command: output on stdout, errors on stderr, and the exit code.
pub fn run(cmd: PrincipalCommand) -> ExitCode {
    match execute(cmd) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kgate: {}", e.message);
            ExitCode::from(e.exit_code)
        }
    }
}

/// Runs the command and returns what to print on stdout. Errors: exit code 1 when no rule applies or the
/// result is not a simple name, 64 for an invalid rule or principal.
pub fn execute(cmd: PrincipalCommand) -> Result<String, CliError> {
    match cmd {
        PrincipalCommand::Map {
            principal,
            rules,
            default_realm,
        } => map(&principal, rules, default_realm.as_deref()),
    }
}

fn usage(message: String) -> CliError {
    CliError { message, exit_code: 64 }
}

fn map(principal: &str, rules: Vec<String>, default_realm: Option<&str>) -> Result<String, CliError> {
    let defaulted = rules.is_empty();
    let rules = if defaulted { vec!["DEFAULT".to_string()] } else { rules };
    let namer = KerberosShortNamer::parse(&rules, default_realm).map_err(|e| {
        let comma = rules.iter().any(|r| r.contains(',') && e.contains(r.as_str()));
        let mut message = e;
        if comma {
            message.push_str(
                "\nEach --rule takes one rule; Kafka's comma-separated value RULE:...,DEFAULT is --rule 'RULE:...' \
                 --rule DEFAULT.",
            );
        }
        message.push_str("\nSee `kgate principal map --help` for the rule syntax.");
        usage(message)
    })?;
    let name = KerberosName::parse(principal).map_err(usage)?;
    let trace = namer.trace(&name);

    let Some(tried) = trace.rules else {
        // Kafka returns a name without realm (and host) as it is.
        let short = trace.result.map_err(usage)?;
        return Ok(format!(
            "short name:      {short}\nKafka principal: User:{short}\nrule:            none: {principal:?} has no \
             realm, and Kafka returns such a name unchanged without trying the rules\n"
        ));
    };
    let mut details = String::new();
    let _ = writeln!(
        details,
        "Rules tried for {name} ({}; default realm {}):",
        params(&name),
        realm_text(namer.default_realm(), default_realm.is_none())
    );
    for t in &tried {
        let _ = writeln!(details, "  {}. {}", t.index + 1, t.rule);
        let _ = writeln!(details, "     {}", describe(t, default_realm.is_none()));
    }
    let untried = rules.len().saturating_sub(tried.len());
    if trace.result.is_ok() && untried > 0 {
        let _ = writeln!(
            details,
            "  ({untried} later rule(s) not tried: the first rule that applies wins)"
        );
    }
    if defaulted {
        details.push_str("No --rule given: Kafka's default rules, [DEFAULT].\n");
    }

    match trace.result {
        Ok(short) => {
            let decided = tried.last().map_or(String::new(), |t| {
                format!("{} of {}, {}", t.index + 1, rules.len(), t.rule)
            });
            Ok(format!(
                "short name:      {short}\nKafka principal: User:{short}\nrule:            {decided}\n\n{details}"
            ))
        }
        Err(e) => Err(CliError {
            message: format!(
                "{e}\n{details}Kafka fails the authentication of {name} (\"Failed to set name for '{name}' based on \
                 Kerberos authentication rules.\")."
            ),
            exit_code: 1,
        }),
    }
}

/// `$0 = EXAMPLE.COM, $1 = kafka, $2 = host`.
fn params(name: &KerberosName) -> String {
    let mut out = format!(
        "$0 = {}, $1 = {}",
        name.realm.as_deref().unwrap_or(""),
        name.service_name
    );
    if let Some(host) = &name.host_name {
        let _ = write!(out, ", $2 = {host}");
    }
    out
}

fn realm_text(realm: &str, missing: bool) -> String {
    if missing {
        "\"\" (no --default-realm)".to_string()
    } else {
        realm.to_string()
    }
}

/// One line saying what a rule did.
fn describe(t: &RuleTrace, no_default_realm: bool) -> String {
    let formatted = t.formatted.as_deref().map(|f| format!("the format gives {f:?}, "));
    let formatted = formatted.as_deref().unwrap_or("");
    match &t.outcome {
        RuleOutcome::Applied(short) => format!("applies: {formatted}short name {short:?}"),
        RuleOutcome::NonSimple(result) => format!(
            "applies, but the result {result:?} contains '/' or '@', which a short name cannot: Kafka stops here \
             with an error (remove the realm or host, e.g. with s/@.*//)"
        ),
        RuleOutcome::ComponentCount { needed, actual } => {
            let note = if (1..=2).contains(needed) {
                ""
            } else {
                " (Kerberos principals have 1 or 2, so this rule never applies)"
            };
            format!("skipped: the rule is for {needed}-component names, this one has {actual}{note}")
        }
        RuleOutcome::NoMatch { formatted, regex } => {
            format!("skipped: the format gives {formatted:?}, which does not match ({regex}) as a whole")
        }
        RuleOutcome::OtherRealm { realm, default_realm } => {
            let hint = if no_default_realm {
                "; pass --default-realm (kgate uses krb5.conf's default_realm)"
            } else {
                ""
            };
            format!("skipped: the realm {realm:?} is not the default realm {default_realm:?}{hint}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(name = "kgate")]
    struct Cli {
        #[command(subcommand)]
        principal: PrincipalCommand,
    }

    fn map_cmd(principal: &str, rules: &[&str], default_realm: Option<&str>) -> Result<String, CliError> {
        execute(PrincipalCommand::Map {
            principal: principal.to_string(),
            rules: rules.iter().map(|r| r.to_string()).collect(),
            default_realm: default_realm.map(str::to_string),
        })
    }

    fn args(line: &[&str]) -> PrincipalCommand {
        let mut argv = vec!["kgate"];
        argv.extend_from_slice(line);
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.principal,
            Err(e) => panic!("{line:?}: {e}"),
        }
    }

    #[test]
    fn prints_the_short_name_and_the_rule() {
        let out = map_cmd(
            "alice@EXAMPLE.COM",
            &[
                "RULE:[2:$1@$0](.*@EXAMPLE.COM)s/@.*//",
                "RULE:[1:$1@$0](.*@EXAMPLE.COM)s/@.*//",
                "DEFAULT",
            ],
            Some("EXAMPLE.COM"),
        )
        .unwrap();
        assert!(
            out.starts_with("short name:      alice\nKafka principal: User:alice\n"),
            "{out}"
        );
        assert!(
            out.contains("rule:            2 of 3, RULE:[1:$1@$0](.*@EXAMPLE.COM)s/@.*//\n"),
            "{out}"
        );
        assert!(
            out.contains("$0 = EXAMPLE.COM, $1 = alice; default realm EXAMPLE.COM"),
            "{out}"
        );
        assert!(
            out.contains("skipped: the rule is for 2-component names, this one has 1"),
            "{out}"
        );
        assert!(
            out.contains("applies: the format gives \"alice@EXAMPLE.COM\", short name \"alice\""),
            "{out}"
        );
        assert!(out.contains("1 later rule(s) not tried"), "{out}");
    }

    #[test]
    fn defaults_to_kafkas_default_rule() {
        let out = map_cmd("kafka/broker1.example.com@EXAMPLE.COM", &[], Some("EXAMPLE.COM")).unwrap();
        assert!(out.starts_with("short name:      kafka\n"), "{out}");
        assert!(out.contains("rule:            1 of 1, DEFAULT"), "{out}");
        assert!(out.contains("$2 = broker1.example.com"), "{out}");
        assert!(out.contains("No --rule given"), "{out}");
    }

    #[test]
    fn explains_why_no_rule_applies() {
        let e = map_cmd(
            "alice@OTHER.COM",
            &["RULE:[2:$1]", "RULE:[1:$1@$0](.*@EXAMPLE.COM)s/@.*//", "DEFAULT"],
            Some("EXAMPLE.COM"),
        )
        .unwrap_err();
        assert_eq!(e.exit_code, 1);
        let m = &e.message;
        assert!(
            m.starts_with(
                "No rules apply to alice@OTHER.COM, rules [RULE:[2:$1], RULE:[1:$1@$0](.*@EXAMPLE.COM)s/@.*//, DEFAULT]"
            ),
            "{m}"
        );
        assert!(
            m.contains("skipped: the rule is for 2-component names, this one has 1"),
            "{m}"
        );
        assert!(
            m.contains("\"alice@OTHER.COM\", which does not match (.*@EXAMPLE.COM) as a whole"),
            "{m}"
        );
        assert!(
            m.contains("the realm \"OTHER.COM\" is not the default realm \"EXAMPLE.COM\""),
            "{m}"
        );
        assert!(m.contains("Kafka fails the authentication"), "{m}");
        assert!(!m.contains("--default-realm"), "{m}");
    }

    #[test]
    fn no_default_realm_is_pointed_out() {
        let e = map_cmd("alice@EXAMPLE.COM", &[], None).unwrap_err();
        assert_eq!(e.exit_code, 1);
        assert!(
            e.message.contains("default realm \"\" (no --default-realm)"),
            "{}",
            e.message
        );
        assert!(e.message.contains("pass --default-realm"), "{}", e.message);
    }

    #[test]
    fn a_non_simple_result_fails() {
        let e = map_cmd("alice@EXAMPLE.COM", &["RULE:[1:$1@$0]", "DEFAULT"], Some("EXAMPLE.COM")).unwrap_err();
        assert_eq!(e.exit_code, 1);
        assert!(
            e.message
                .starts_with("Non-simple name alice@EXAMPLE.COM after auth_to_local rule RULE:[1:$1@$0]"),
            "{}",
            e.message
        );
        assert!(e.message.contains("contains '/' or '@'"), "{}", e.message);
        assert!(!e.message.contains("2. DEFAULT"), "DEFAULT is not tried: {}", e.message);
    }

    #[test]
    fn invalid_rules_exit_64_and_say_why() {
        let e = map_cmd(
            "alice@EXAMPLE.COM",
            &["DEFAULT", "RULE:[1:$1]/L/U", "rule:[1:$1]"],
            None,
        )
        .unwrap_err();
        assert_eq!(e.exit_code, 64);
        assert!(
            e.message
                .contains("Invalid rule: `RULE:[1:$1]/L/U`, unmatched substring: `/U`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("Invalid rule: rule:[1:$1] ("), "{}", e.message);
        assert!(e.message.contains("kgate principal map --help"), "{}", e.message);

        let e = map_cmd("alice@EXAMPLE.COM", &["RULE:[1:$1@$0](.*@A.COM)s/@.*//,DEFAULT"], None).unwrap_err();
        assert_eq!(e.exit_code, 64);
        assert!(e.message.contains("--rule 'RULE:...' --rule DEFAULT"), "{}", e.message);

        let e = map_cmd("alice@EXAMPLE.COM", &["RULE:[1:$1](a(b)"], None).unwrap_err();
        assert_eq!(e.exit_code, 64);
        assert!(e.message.contains("not a usable regular expression"), "{}", e.message);
    }

    #[test]
    fn malformed_principal_exits_64() {
        let e = map_cmd("kafka/host/x@EXAMPLE.COM", &[], None).unwrap_err();
        assert_eq!(e.exit_code, 64);
        assert!(
            e.message
                .starts_with("Malformed Kerberos name: kafka/host/x@EXAMPLE.COM"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_name_without_realm_is_unchanged() {
        let out = map_cmd("alice", &["RULE:[1:$1]s/.*/x/"], None).unwrap();
        assert!(
            out.starts_with("short name:      alice\nKafka principal: User:alice\n"),
            "{out}"
        );
        assert!(out.contains("has no realm"), "{out}");
    }

    #[test]
    fn arguments_parse_in_order() {
        let cmd = args(&[
            "map",
            "p@R",
            "--rule",
            "RULE:[1:$1]",
            "--rule",
            "DEFAULT",
            "--default-realm",
            "R",
        ]);
        assert_eq!(
            cmd,
            PrincipalCommand::Map {
                principal: "p@R".into(),
                rules: vec!["RULE:[1:$1]".into(), "DEFAULT".into()],
                default_realm: Some("R".into()),
            }
        );
        let cmd = args(&["map", "p@R"]);
        assert_eq!(
            cmd,
            PrincipalCommand::Map {
                principal: "p@R".into(),
                rules: vec![],
                default_realm: None
            }
        );
        assert!(
            Cli::try_parse_from(["kgate", "map"]).is_err(),
            "the principal is required"
        );
    }

    #[test]
    fn help_explains_the_syntax_with_examples() {
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("map")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        for needle in [
            "sasl.kerberos.principal.to.local.rules",
            "RULE:[n:format](regex)s/pattern/replacement/[g]",
            "not even as \\/",
            "$0 (the realm)",
            "User:<short name>",
            "Exit status: 0 mapped; 1 no rule applies",
            "Examples:",
            "--rule <RULE>",
            "--default-realm <REALM>",
        ] {
            assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
        }
    }

    #[test]
    fn help_examples_give_what_they_say() {
        let short = |line: &[&str]| {
            let out = execute(args(line)).unwrap();
            out.lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("short name:")
                .trim()
                .to_string()
        };
        assert_eq!(
            short(&["map", "alice@EXAMPLE.COM", "--default-realm", "EXAMPLE.COM"]),
            "alice"
        );
        assert_eq!(
            short(&[
                "map",
                "kafka/broker1.example.com@EXAMPLE.COM",
                "--rule",
                "RULE:[2:$1@$0](.*@EXAMPLE.COM)s/@.*//"
            ]),
            "kafka"
        );
        assert_eq!(
            short(&[
                "map",
                "Alice@PARTNER.ORG",
                "--rule",
                r"RULE:[1:$1@$0](.*@PARTNER\.ORG)s/@.*///L",
                "--rule",
                "DEFAULT",
                "--default-realm",
                "EXAMPLE.COM"
            ]),
            "alice"
        );
        assert_eq!(
            short(&[
                "map",
                "etl/worker7@EXAMPLE.COM",
                "--rule",
                "RULE:[2:$1_$2](etl_.*)s/_.*/-svc/"
            ]),
            "etl-svc"
        );
        // The examples above are the ones in the help text.
        for rule in [
            "'RULE:[2:$1@$0](.*@EXAMPLE.COM)s/@.*//'",
            r"'RULE:[1:$1@$0](.*@PARTNER\.ORG)s/@.*///L'",
            "'RULE:[2:$1_$2](etl_.*)s/_.*/-svc/'",
        ] {
            assert!(MAP_EXAMPLES.contains(rule), "{rule}");
        }
    }
}
