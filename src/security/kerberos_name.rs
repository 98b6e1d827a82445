//! Kafka's `sasl.kerberos.principal.to.local.rules`: from a Kerberos principal (`primary[/instance]@REALM`)
//! to the short name that becomes the Kafka principal `User:<short name>`.
//!
//! Same grammar and results as Kafka's `KerberosName`, `KerberosShortNamer` and `KerberosRule`
//! (apache/kafka `clients/.../security/kerberos/`, with KIP-203 `/L` and KIP-309 `/U`):
//! - a principal is parsed with `([^/@]*)(/([^/@]*))?@([^/@]*)`; a string without `@` that does not match is
//!   a bare name (no realm), one with `@` is malformed. A bare name is returned unchanged, no rule consulted.
//! - each list entry is one rule, `DEFAULT` or `RULE:[n:format](regex)s/pattern/replacement/[g]` with the
//!   `(regex)` and `s///` parts optional and an optional `L` or `U` (lowercase or uppercase the result),
//!   usually written `/L` or `/U`. The whole entry must match Kafka's rule regex: nothing may follow, and
//!   `(regex)` ends at its first `)`, the `s///` parts cannot contain `/` (not even as `\/`) and the format
//!   cannot contain `]`. Kafka has no way to put two rules in one entry (its property splits on commas).
//! - `$0` is the realm, `$1` and `$2` the components. A rule applies only to names with exactly `n`
//!   components; `format` with the `$k` substituted must match `regex` as a whole (`Matcher.matches()`); the
//!   result is then `replaceFirst(pattern, replacement)`, or `replaceAll` with `g` (Java replacement syntax:
//!   `$1`, `${name}`, `\$`).
//! - `DEFAULT` applies when the realm is the default realm and gives the first component.
//! - the first rule that applies wins; none: `No rules apply to <principal>, rules [..]`. A result with `/`
//!   or `@` (checked before `/L`/`/U`) is an error too: `Non-simple name <result> after auth_to_local rule
//!   <rule>`. Kafka throws `NoMatchingRule` for both, and the authentication fails.
//!
//! Differences, all for rules Kafka cannot use either, or outside ASCII:
//! - rules that Kafka accepts but that fail every authentication they are used for are rejected here when
//!   parsed: a `$` in the format not followed by a number, `$k` with `k > n` (Kafka's `BadFormatString`),
//!   and replacements Java's `appendReplacement` refuses (`$` at the end, `$x`, a group the pattern lacks,
//!   a trailing `\`). Kafka also reports a missing or too large `n` only as a `NumberFormatException`.
//! - regexes are Java syntax compiled with the `regex` crate: look-around, back-references, possessive
//!   quantifiers, atomic groups, `\G`, `\Z`, `\R` are rejected with a clear error. `\d \w \s \h \v`, the POSIX
//!   `\p{Lower}`-style classes and `.` are translated to their (ASCII) Java meanings, as are `\Q..\E`, `\e`,
//!   `\cX` and octal escapes; `\b`, `(?i)` and `$` keep the `regex` crate's Unicode meanings (Java: ASCII
//!   unless flagged, and `$` also matches before a final line terminator). Principals are ASCII in practice.
//! - `/L` and `/U` use Rust's Unicode case mapping (Java: `Locale.ENGLISH`), equal for ASCII.
//! - no default realm given: `""`, which is what Kafka uses when it cannot find the krb5.conf default realm.
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::java_regex::{self, Piece};

/// Kafka's RULE_PARSER, anchored at the start (`Matcher.lookingAt()`). Same groups: 2 = DEFAULT, 5 = n,
/// 6 = format, 8 = regex, 9 = the `s///` part, 10 = pattern, 11 = replacement, 12 = g, 13 = L or U.
static RULE_PARSER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\A((DEFAULT)|((RULE:\[([0-9]*):([^\]]*)\](\(([^)]*)\))?(s/([^/]*)/([^/]*)/(g)?)?/?(L|U)?)))")
        .expect("the rule parser is a valid regex")
});

/// The forms a rule can take, for error messages.
const RULE_SYNTAX: &str = "a rule is DEFAULT or RULE:[n:format](regex)s/pattern/replacement/[g] where (regex) and \
the s/// part are optional, followed by an optional /L (lowercase) or /U (uppercase)";

/// A Kerberos principal split like Kafka's `KerberosName`: `service_name[/host_name][@realm]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosName {
    /// The first component (`kafka` in `kafka/broker1@EXAMPLE.COM`, `alice` in `alice@EXAMPLE.COM`).
    pub service_name: String,
    /// The second component, if any.
    pub host_name: Option<String>,
    /// The realm; `None` only for a bare name without `@`.
    pub realm: Option<String>,
}

impl KerberosName {
    /// Kafka's `KerberosName.parse`: `primary[/instance]@REALM` (no `/` or `@` inside a part). A string
    /// without `@` that is not of that form is a bare name (kept whole, even with `/`); one with `@` is an
    /// error, `Malformed Kerberos name: <principal>`.
    pub fn parse(principal: &str) -> Result<KerberosName, String> {
        let Some((name, realm)) = principal.split_once('@') else {
            return Ok(KerberosName {
                service_name: principal.to_string(),
                host_name: None,
                realm: None,
            });
        };
        if realm.contains(['@', '/']) {
            return Err(malformed(principal));
        }
        let (service, host) = match name.split_once('/') {
            Some((service, host)) => (service, Some(host)),
            None => (name, None),
        };
        if host.is_some_and(|h| h.contains('/')) {
            return Err(malformed(principal));
        }
        Ok(KerberosName {
            service_name: service.to_string(),
            host_name: host.map(str::to_string),
            realm: Some(realm.to_string()),
        })
    }

    /// Kafka's rule parameters: `[realm, first component, second component]`.
    fn params(&self) -> Vec<&str> {
        let mut params = vec![self.realm.as_deref().unwrap_or(""), self.service_name.as_str()];
        if let Some(host) = &self.host_name {
            params.push(host);
        }
        params
    }
}

fn malformed(principal: &str) -> String {
    format!(
        "Malformed Kerberos name: {principal} (a principal is primary[/instance]@REALM: at most one '/', \
         and '@' only before the realm)"
    )
}

impl fmt::Display for KerberosName {
    /// Kafka's `toString`: the parts put back together.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.service_name)?;
        if let Some(host) = &self.host_name {
            write!(f, "/{host}")?;
        }
        if let Some(realm) = &self.realm {
            write!(f, "@{realm}")?;
        }
        Ok(())
    }
}

/// Maps Kerberos principals to short names with Kafka's `sasl.kerberos.principal.to.local.rules`.
#[derive(Debug, Clone)]
pub struct KerberosShortNamer {
    rules: Vec<Rule>,
    default_realm: String,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Rewrite(Box<Rewrite>),
}

#[derive(Debug, Clone)]
struct Rewrite {
    components: usize,
    format_source: String,
    format: Vec<FormatPiece>,
    /// The `(regex)` as written and `\A(?:regex)\z` (Java's `matches()`).
    matcher: Option<(String, Regex)>,
    substitution: Option<Substitution>,
    case: Case,
}

#[derive(Debug, Clone)]
struct Substitution {
    pattern_source: String,
    replacement_source: String,
    pattern: Regex,
    replacement: Vec<Piece>,
    all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// A piece of a rule's `[n:format]`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FormatPiece {
    Literal(String),
    Param(usize),
}

/// What one rule did with a principal, as reported by [`KerberosShortNamer::trace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOutcome {
    /// The rule applies and gives this short name.
    Applied(String),
    /// The rule applies but its result contains `/` or `@`: the mapping fails (Kafka: `NoMatchingRule`).
    NonSimple(String),
    /// `RULE:[n:..]` with `n` different from the principal's component count.
    ComponentCount { needed: usize, actual: usize },
    /// The formatted string does not match the rule's `(regex)` as a whole.
    NoMatch { formatted: String, regex: String },
    /// `DEFAULT` and a realm other than the default realm.
    OtherRealm { realm: String, default_realm: String },
}

/// One rule that was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    /// Position in the rule list, from 0.
    pub index: usize,
    /// The rule as Kafka prints it.
    pub rule: String,
    /// For a `RULE`, the format with the parameters substituted (when the component count fits).
    pub formatted: Option<String>,
    pub outcome: RuleOutcome,
}

/// Every rule tried for a principal, in order, up to the one that decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// `None` for a bare name (no realm, no instance), which Kafka returns unchanged without rules.
    pub rules: Option<Vec<RuleTrace>>,
    pub result: Result<String, String>,
}

/// `explain`'s rule index for a bare name, which is returned unchanged without consulting any rule.
pub const NO_RULE_CONSULTED: usize = usize::MAX;

impl KerberosShortNamer {
    /// Parses the rules (Kafka's `KerberosShortNamer.fromUnparsedRules`); list order is precedence. Each
    /// entry is one rule. An invalid rule is an error naming it and saying what is wrong (every invalid
    /// rule is reported, one per line). `default_realm` is the krb5.conf default realm; `None` means `""`,
    /// as in Kafka when it has none. An empty list maps no principal with a realm (Kafka's default list
    /// is `["DEFAULT"]`).
    pub fn parse(rules: &[String], default_realm: Option<&str>) -> Result<KerberosShortNamer, String> {
        let mut parsed = Vec::with_capacity(rules.len());
        let mut errors = Vec::new();
        for rule in rules {
            match parse_rule(rule) {
                Ok(r) => parsed.push(r),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        Ok(KerberosShortNamer {
            rules: parsed,
            default_realm: default_realm.unwrap_or("").to_string(),
        })
    }

    /// The short name (Kafka's `shortName`), or Kafka's error: `No rules apply to <principal>, rules
    /// [<rules>]`, or `Non-simple name <result> after auth_to_local rule <rule>`.
    pub fn short_name(&self, name: &KerberosName) -> Result<String, String> {
        self.trace(name).result
    }

    /// The short name with the index (from 0) and text of the rule that gave it. A bare name is returned
    /// unchanged with index [`NO_RULE_CONSULTED`] and an empty rule text.
    pub fn explain(&self, name: &KerberosName) -> Result<(String, usize, String), String> {
        let trace = self.trace(name);
        let short = trace.result?;
        match trace.rules.as_deref().and_then(<[RuleTrace]>::last) {
            Some(last) => Ok((short, last.index, last.rule.clone())),
            None => Ok((short, NO_RULE_CONSULTED, String::new())),
        }
    }

    /// Every rule tried, in order, and the result: what `kgate principal map` prints.
    pub fn trace(&self, name: &KerberosName) -> Trace {
        if name.host_name.is_none() && name.realm.is_none() {
            return Trace {
                rules: None,
                result: Ok(name.service_name.clone()),
            };
        }
        let params = name.params();
        let mut tried = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let (formatted, outcome) = rule.apply(&params, &self.default_realm);
            let decided = match &outcome {
                RuleOutcome::Applied(short) => Some(Ok(short.clone())),
                RuleOutcome::NonSimple(result) => {
                    Some(Err(format!("Non-simple name {result} after auth_to_local rule {rule}")))
                }
                _ => None,
            };
            tried.push(RuleTrace {
                index,
                rule: rule.to_string(),
                formatted,
                outcome,
            });
            if let Some(result) = decided {
                return Trace {
                    rules: Some(tried),
                    result,
                };
            }
        }
        Trace {
            rules: Some(tried),
            result: Err(format!("No rules apply to {name}, rules {}", self.rules_list())),
        }
    }

    /// The rules as Kafka prints them.
    pub fn rules(&self) -> Vec<String> {
        self.rules.iter().map(ToString::to_string).collect()
    }

    /// The default realm `DEFAULT` compares with (`""` when none was given).
    pub fn default_realm(&self) -> &str {
        &self.default_realm
    }

    /// Java's `List.toString()` of the rules: `[RULE:..., DEFAULT]`.
    fn rules_list(&self) -> String {
        format!("[{}]", self.rules().join(", "))
    }
}

impl fmt::Display for KerberosShortNamer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KerberosShortNamer(principalToLocalRules = {})", self.rules_list())
    }
}

impl fmt::Display for Rule {
    /// Kafka's `KerberosRule.toString()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = match self {
            Rule::Default => return f.write_str("DEFAULT"),
            Rule::Rewrite(r) => r,
        };
        write!(f, "RULE:[{}:{}]", r.components, r.format_source)?;
        if let Some((regex, _)) = &r.matcher {
            write!(f, "({regex})")?;
        }
        if let Some(s) = &r.substitution {
            write!(f, "s/{}/{}/", s.pattern_source, s.replacement_source)?;
            if s.all {
                f.write_str("g")?;
            }
        }
        match r.case {
            Case::Keep => Ok(()),
            Case::Lower => f.write_str("/L"),
            Case::Upper => f.write_str("/U"),
        }
    }
}

impl Rule {
    /// Kafka's `KerberosRule.apply`; `params` is `[realm, component 1, (component 2)]`. Returns the
    /// formatted string (for a `RULE` whose component count fits) and what happened.
    fn apply(&self, params: &[&str], default_realm: &str) -> (Option<String>, RuleOutcome) {
        let (formatted, result) = match self {
            Rule::Default => {
                let realm = params.first().copied().unwrap_or("");
                if realm != default_realm {
                    let outcome = RuleOutcome::OtherRealm {
                        realm: realm.to_string(),
                        default_realm: default_realm.to_string(),
                    };
                    return (None, outcome);
                }
                (None, params.get(1).copied().unwrap_or("").to_string())
            }
            Rule::Rewrite(r) => {
                let actual = params.len().saturating_sub(1);
                if actual != r.components {
                    let outcome = RuleOutcome::ComponentCount {
                        needed: r.components,
                        actual,
                    };
                    return (None, outcome);
                }
                let base = render_format(&r.format, params);
                if let Some((regex, whole)) = &r.matcher {
                    if !whole.is_match(&base) {
                        let outcome = RuleOutcome::NoMatch {
                            formatted: base.clone(),
                            regex: regex.clone(),
                        };
                        return (Some(base), outcome);
                    }
                }
                let result = match &r.substitution {
                    None => base.clone(),
                    Some(s) => java_regex::replace(&s.pattern, &base, &s.replacement, s.all),
                };
                (Some(base), result)
            }
        };
        if result.contains(['/', '@']) {
            return (formatted, RuleOutcome::NonSimple(result));
        }
        let case = match self {
            Rule::Default => Case::Keep,
            Rule::Rewrite(r) => r.case,
        };
        let result = match case {
            Case::Keep => result,
            Case::Lower => result.to_lowercase(),
            Case::Upper => result.to_uppercase(),
        };
        (formatted, RuleOutcome::Applied(result))
    }
}

/// Kafka's `parseRules` for one entry.
fn parse_rule(rule: &str) -> Result<Rule, String> {
    let Some(caps) = RULE_PARSER.captures(rule) else {
        return Err(format!("Invalid rule: {rule} ({RULE_SYNTAX}{})", start_hint(rule)));
    };
    let end = caps.get(0).map_or(0, |m| m.end());
    if end != rule.len() {
        let rest = &rule[end..];
        return Err(format!(
            "Invalid rule: `{rule}`, unmatched substring: `{rest}` ({})",
            unmatched_hint(&caps, rest)
        ));
    }
    if caps.get(2).is_some() {
        return Ok(Rule::Default);
    }
    let invalid = |what: String| format!("Invalid rule: `{rule}`: {what}");
    let count = caps.get(5).map_or("", |m| m.as_str());
    if count.is_empty() {
        return Err(invalid(
            "the component count n in [n:format] is missing (1 for user@REALM, 2 for service/host@REALM)".into(),
        ));
    }
    let components = count
        .parse::<i32>()
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid(format!("the component count {count} is too large")))?;
    let format_source = caps.get(6).map_or("", |m| m.as_str());
    let format = parse_format(format_source, components.saturating_add(1)).map_err(invalid)?;

    let matcher = match caps.get(8).map(|m| m.as_str()) {
        None => None,
        Some(source) => {
            let whole = translate_java_regex(source)
                .and_then(|t| Regex::new(&format!(r"\A(?:{t})\z")).map_err(|e| e.to_string()))
                .map_err(|e| invalid(bad_regex("(regex)", source, &e)))?;
            Some((source.to_string(), whole))
        }
    };
    let substitution = match (caps.get(10), caps.get(11)) {
        (Some(pattern), Some(replacement)) => {
            let pattern_source = pattern.as_str();
            let replacement_source = replacement.as_str();
            let pattern = translate_java_regex(pattern_source)
                .and_then(|t| Regex::new(&t).map_err(|e| e.to_string()))
                .map_err(|e| invalid(bad_regex("s/// pattern", pattern_source, &e)))?;
            let replacement_pieces =
                java_regex::parse_replacement(&replacement_source.chars().collect::<Vec<char>>(), &pattern).map_err(
                    |e| {
                        let slash = if replacement_source.ends_with('\\') {
                            " A '/' cannot be escaped inside s///."
                        } else {
                            ""
                        };
                        invalid(format!(
                            "the replacement `{replacement_source}` cannot be used: {e} (Kafka fails every \
                     authentication this rule applies to). Use $1..$9 for the pattern's groups and \\$ for '$'.{slash}"
                        ))
                    },
                )?;
            Some(Substitution {
                pattern_source: pattern_source.to_string(),
                replacement_source: replacement_source.to_string(),
                pattern,
                replacement: replacement_pieces,
                all: caps.get(12).is_some(),
            })
        }
        _ => None,
    };
    let case = match caps.get(13).map(|m| m.as_str()) {
        Some("L") => Case::Lower,
        Some("U") => Case::Upper,
        _ => Case::Keep,
    };
    Ok(Rule::Rewrite(Box::new(Rewrite {
        components,
        format_source: format_source.to_string(),
        format,
        matcher,
        substitution,
        case,
    })))
}

fn bad_regex(part: &str, source: &str, err: &str) -> String {
    let slash = if source.ends_with('\\') {
        " A '/' cannot be escaped inside s///."
    } else {
        ""
    };
    format!(
        "the {part} `{source}` is not a usable regular expression ({err}). Java syntax is accepted except \
         look-around, back-references, possessive quantifiers and atomic groups.{slash}"
    )
}

/// Why an entry does not even start like a rule.
fn start_hint(rule: &str) -> &'static str {
    let trimmed = rule.trim_start();
    let upper = trimmed.to_ascii_uppercase();
    let keyword = upper.starts_with("RULE") || upper.starts_with("DEFAULT");
    if rule.is_empty() {
        "; the rule is empty"
    } else if keyword && trimmed.len() != rule.len() {
        "; remove the leading whitespace"
    } else if keyword && !(trimmed.starts_with("RULE") || trimmed.starts_with("DEFAULT")) {
        "; RULE and DEFAULT are upper case"
    } else if trimmed.starts_with("RULE:[") {
        "; the [n:format] part needs its closing ']'"
    } else if trimmed.starts_with("RULE") {
        "; RULE must be followed by :[n:format]"
    } else {
        ""
    }
}

/// Why the rest of an entry was not accepted.
fn unmatched_hint(caps: &regex::Captures<'_>, rest: &str) -> String {
    let trimmed = rest.trim_start();
    if trimmed.starts_with("RULE:") || trimmed.starts_with("DEFAULT") || trimmed.starts_with(',') {
        return "one rule per entry: give each rule its own --rule or list entry".into();
    }
    if caps.get(2).is_some() {
        return "DEFAULT takes no options".into();
    }
    let sed = caps.get(9).map(|m| m.as_str());
    if sed.is_some_and(|s| s.contains("\\/")) || (sed.is_none() && rest.starts_with("s/") && rest.contains("\\/")) {
        return "the s/pattern/replacement/ parts cannot contain '/', not even as \\/".into();
    }
    if caps.get(8).is_some() && rest.contains(')') {
        return "the (regex) ends at its first ')', so it cannot contain ')' or groups".into();
    }
    if rest.starts_with("/g") || rest.starts_with('g') {
        return "g comes right after the s/pattern/replacement/ part, before /L or /U".into();
    }
    if rest == "l" || rest == "u" {
        return "L and U are upper case".into();
    }
    if caps.get(13).is_some() {
        return "only one of /L and /U, at the very end".into();
    }
    if caps.get(7).is_none() && caps.get(9).is_none() && rest.contains(']') {
        return "the format in [n:format] cannot contain ']'".into();
    }
    format!(
        "after RULE:[n:format] may come, in this order: (regex), s/pattern/replacement/ and g, /L or /U; {RULE_SYNTAX}"
    )
}

/// Kafka's `replaceParameters` syntax (`([^$]*)(\$(\d*))?`, repeatedly): text, and `$` followed by a
/// number below `params_len` (the realm and the rule's `n` components). Checked when the rule is parsed,
/// where Kafka throws `BadFormatString` each time the rule is applied; the messages start like Kafka's.
fn parse_format(format: &str, params_len: usize) -> Result<Vec<FormatPiece>, String> {
    let components = params_len.saturating_sub(1);
    let meaning = format!("$0 is the realm, $1..${components} the components of a {components}-component name");
    let mut pieces = Vec::new();
    let mut rest = format;
    while !rest.is_empty() {
        let (literal, after) = match rest.split_once('$') {
            Some((literal, after)) => (literal, Some(after)),
            None => (rest, None),
        };
        if !literal.is_empty() {
            pieces.push(FormatPiece::Literal(literal.to_string()));
        }
        let Some(after) = after else {
            break;
        };
        let digits_len = after.bytes().take_while(u8::is_ascii_digit).count();
        let digits = &after[..digits_len];
        let num = digits.parse::<i32>().map_err(|_| {
            let why = if digits.is_empty() {
                "'$' must be followed by a number"
            } else {
                "the number is too large"
            };
            format!("bad format in username mapping in {digits}: in the format `{format}`, {why} ({meaning})")
        })?;
        let num = usize::try_from(num).unwrap_or(usize::MAX);
        if num >= params_len {
            let last = i64::try_from(params_len).unwrap_or(i64::MAX) - 1;
            return Err(format!(
                "index {num} from {format} is outside of the valid range 0 to {last} ({meaning})"
            ));
        }
        pieces.push(FormatPiece::Param(num));
        rest = &after[digits_len..];
    }
    Ok(pieces)
}

/// The format with `$k` replaced by `params[k]` (Kafka's `replaceParameters`, no recursion).
fn render_format(format: &[FormatPiece], params: &[&str]) -> String {
    let mut out = String::new();
    for piece in format {
        match piece {
            FormatPiece::Literal(s) => out.push_str(s),
            FormatPiece::Param(k) => out.push_str(params.get(*k).copied().unwrap_or("")),
        }
    }
    out
}

/// Java's `.` without DOTALL: anything but a line terminator.
const JAVA_DOT: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]";

/// Rewrites a Java regex so the `regex` crate gives it Java's meaning where the two differ in syntax they
/// share (ASCII `\d \w \s`, Java's `\h \v`, POSIX `\p{..}` classes, `.`) or where Java has an escape the
/// crate lacks (`\Q..\E`, `\e`, `\cX`, `\0` octal, `\` before punctuation). Possessive quantifiers (`a*+`,
/// which the crate would read as `(a*)+`) are an error. Anything else is passed on, so what the crate does
/// not support is reported by it.
fn translate_java_regex(pattern: &str) -> Result<String, String> {
    let dotall = has_dotall_flag(pattern);
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut class_depth = 0usize;
    let mut in_braces = false;
    let mut after_quantifier = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if class_depth == 0 {
            let previous = if i >= 2 { chars.get(i - 2).copied() } else { None };
            let quantifier = match c {
                '+' if after_quantifier => {
                    return Err(format!(
                        "possessive quantifier `{}+` at character {i}: not supported",
                        previous.unwrap_or('+')
                    ))
                }
                '?' if after_quantifier => false,
                '*' | '+' => true,
                '?' => previous != Some('('),
                '{' => {
                    in_braces = true;
                    false
                }
                '}' if in_braces => {
                    in_braces = false;
                    true
                }
                _ => false,
            };
            after_quantifier = quantifier;
        }
        match c {
            '\\' => {
                let Some(&e) = chars.get(i) else {
                    out.push('\\');
                    continue;
                };
                i += 1;
                match e {
                    'Q' => {
                        let mut literal = String::new();
                        while i < chars.len() && !(chars[i] == '\\' && chars.get(i + 1) == Some(&'E')) {
                            literal.push(chars[i]);
                            i += 1;
                        }
                        if i < chars.len() {
                            i += 2;
                        }
                        out.push_str(&regex::escape(&literal));
                    }
                    'd' => out.push_str("[0-9]"),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str("[a-zA-Z_0-9]"),
                    'W' => out.push_str("[^a-zA-Z_0-9]"),
                    's' => out.push_str(r"[\t\n\x0B\x0C\r ]"),
                    'S' => out.push_str(r"[^\t\n\x0B\x0C\r ]"),
                    'h' => out.push_str(r"[ \t\xA0\x{1680}\x{180e}\x{2000}-\x{200a}\x{202f}\x{205f}\x{3000}]"),
                    'H' => out.push_str(r"[^ \t\xA0\x{1680}\x{180e}\x{2000}-\x{200a}\x{202f}\x{205f}\x{3000}]"),
                    'v' => out.push_str(r"[\n\x0B\x0C\r\x{85}\x{2028}\x{2029}]"),
                    'V' => out.push_str(r"[^\n\x0B\x0C\r\x{85}\x{2028}\x{2029}]"),
                    'e' => out.push_str(r"\x1B"),
                    'c' => match chars.get(i) {
                        Some(&x) if x.is_ascii() => {
                            i += 1;
                            out.push_str(&format!(r"\x{{{:X}}}", u32::from(x) ^ 64));
                        }
                        _ => out.push_str(r"\c"),
                    },
                    '0' => {
                        // Java: \0n, \0nn, \0mnn with m <= 3.
                        let mut value = 0u32;
                        let mut digits = 0;
                        while digits < 3 {
                            let Some(d) = chars
                                .get(i)
                                .filter(|c| ('0'..='7').contains(*c))
                                .and_then(|c| c.to_digit(8))
                            else {
                                break;
                            };
                            if digits == 2 && value > 0o37 {
                                break;
                            }
                            value = value * 8 + d;
                            digits += 1;
                            i += 1;
                        }
                        if digits == 0 {
                            out.push_str(r"\0");
                        } else {
                            out.push_str(&format!(r"\x{{{value:X}}}"));
                        }
                    }
                    'p' | 'P' if chars.get(i) == Some(&'{') => {
                        let close = chars[i..].iter().position(|&c| c == '}').map(|p| i + p);
                        let name: Option<String> = close.map(|close| chars[i + 1..close].iter().collect());
                        match (close, name.as_deref().and_then(posix_class)) {
                            (Some(close), Some(class)) => {
                                let negate = if e == 'P' { "^" } else { "" };
                                out.push_str(&format!("[[:{negate}{class}:]]"));
                                i = close + 1;
                            }
                            _ => {
                                out.push('\\');
                                out.push(e);
                            }
                        }
                    }
                    e if e.is_ascii_alphanumeric() => {
                        out.push('\\');
                        out.push(e);
                    }
                    // Java: a backslash before a non-alphabetic character makes it literal.
                    e => out.push_str(&regex::escape(e.encode_utf8(&mut [0; 4]))),
                }
            }
            '[' => {
                class_depth += 1;
                out.push('[');
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // `[:alpha:]` is a POSIX class for the crate, a plain set for Java.
                if chars.get(i) == Some(&':') {
                    out.push_str(r"\:");
                    i += 1;
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(']');
            }
            '.' if class_depth == 0 && !dotall => out.push_str(JAVA_DOT),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Whether an inline flag group turns on DOTALL (`(?s)`, `(?is:`): then `.` is left to the crate, which
/// handles the flag the same way.
fn has_dotall_flag(pattern: &str) -> bool {
    pattern.match_indices("(?").any(|(at, _)| {
        pattern[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .any(|c| c == 's')
    })
}

/// Java's POSIX character classes (US-ASCII only) by their `\p{..}` name, as the crate's ASCII classes.
fn posix_class(name: &str) -> Option<&'static str> {
    Some(match name {
        "Lower" => "lower",
        "Upper" => "upper",
        "ASCII" => "ascii",
        "Alpha" => "alpha",
        "Digit" => "digit",
        "Alnum" => "alnum",
        "Punct" => "punct",
        "Graph" => "graph",
        "Print" => "print",
        "Blank" => "blank",
        "Cntrl" => "cntrl",
        "XDigit" => "xdigit",
        "Space" => "space",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namer(rules: &[&str], default_realm: Option<&str>) -> KerberosShortNamer {
        let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
        match KerberosShortNamer::parse(&rules, default_realm) {
            Ok(n) => n,
            Err(e) => panic!("rules {rules:?} should parse: {e}"),
        }
    }

    fn short(rules: &[&str], default_realm: Option<&str>, principal: &str) -> Result<String, String> {
        let name = KerberosName::parse(principal)?;
        namer(rules, default_realm).short_name(&name)
    }

    fn invalid(rule: &str) -> String {
        match KerberosShortNamer::parse(&[rule.to_string()], Some("REALM.COM")) {
            Ok(n) => panic!("rule {rule:?} should be rejected, got {n}"),
            Err(e) => e,
        }
    }

    /// `Ok` is the short name; `Err` a text the error must contain.
    type Expected = Result<&'static str, &'static str>;

    const KAFKA_PARSE_RULES: &[&str] = &[
        r"RULE:[1:$1](App\..*)s/App\.(.*)/$1/g",
        r"RULE:[2:$1](App\..*)s/App\.(.*)/$1/g",
        "DEFAULT",
    ];
    const KAFKA_LOWER_RULES: &[&str] = &[
        "RULE:[1:$1]/L",
        "RULE:[2:$1](Test.*)s/ABC///L",
        "RULE:[2:$1](ABC.*)s/ABC/XYZ/g/L",
        r"RULE:[2:$1](App\..*)s/App\.(.*)/$1/g/L",
        "RULE:[2:$1]/L",
        "DEFAULT",
    ];
    const KAFKA_UPPER_RULES: &[&str] = &[
        "RULE:[1:$1]/U",
        "RULE:[2:$1](Test.*)s/ABC///U",
        "RULE:[2:$1](ABC.*)s/ABC/XYZ/g/U",
        r"RULE:[2:$1](App\..*)s/App\.(.*)/$1/g/U",
        "RULE:[2:$1]/U",
        "DEFAULT",
    ];
    const DOCS_RULES: &[&str] = &["RULE:[1:$1@$0](.*@MYDOMAIN.COM)s/@.*//", "DEFAULT"];

    /// (rules, default realm, principal, expected). Sources: KerberosNameTest (testParse, testToLowerCase,
    /// testToUpperCase), docs/security.html "Customizing SASL User Name", and KerberosRule/KerberosShortNamer.
    #[allow(clippy::type_complexity)]
    const CASES: &[(&[&str], Option<&str>, &str, Expected)] = &[
        // KerberosNameTest.testParse
        (
            KAFKA_PARSE_RULES,
            Some("REALM.COM"),
            "App.service-name/example.com@REALM.COM",
            Ok("service-name"),
        ),
        (
            KAFKA_PARSE_RULES,
            Some("REALM.COM"),
            "App.service-name@REALM.COM",
            Ok("service-name"),
        ),
        (KAFKA_PARSE_RULES, Some("REALM.COM"), "user/host@REALM.COM", Ok("user")),
        // KerberosNameTest.testToLowerCase
        (KAFKA_LOWER_RULES, Some("REALM.COM"), "User@REALM.COM", Ok("user")),
        (KAFKA_LOWER_RULES, Some("REALM.COM"), "TestABC/host@FOO.COM", Ok("test")),
        (
            KAFKA_LOWER_RULES,
            Some("REALM.COM"),
            "ABC_User_ABC/host@FOO.COM",
            Ok("xyz_user_xyz"),
        ),
        (
            KAFKA_LOWER_RULES,
            Some("REALM.COM"),
            "App.SERVICE-name/example.com@REALM.COM",
            Ok("service-name"),
        ),
        (KAFKA_LOWER_RULES, Some("REALM.COM"), "User/root@REALM.COM", Ok("user")),
        // KerberosNameTest.testToUpperCase
        (KAFKA_UPPER_RULES, Some("REALM.COM"), "User@REALM.COM", Ok("USER")),
        (KAFKA_UPPER_RULES, Some("REALM.COM"), "TestABC/host@FOO.COM", Ok("TEST")),
        (
            KAFKA_UPPER_RULES,
            Some("REALM.COM"),
            "ABC_User_ABC/host@FOO.COM",
            Ok("XYZ_USER_XYZ"),
        ),
        (
            KAFKA_UPPER_RULES,
            Some("REALM.COM"),
            "App.SERVICE-name/example.com@REALM.COM",
            Ok("SERVICE-NAME"),
        ),
        (KAFKA_UPPER_RULES, Some("REALM.COM"), "User/root@REALM.COM", Ok("USER")),
        // The documented example, and DEFAULT behind it.
        (DOCS_RULES, Some("MYDOMAIN.COM"), "user@MYDOMAIN.COM", Ok("user")),
        (
            DOCS_RULES,
            Some("MYDOMAIN.COM"),
            "kafka/broker1.mydomain.com@MYDOMAIN.COM",
            Ok("kafka"),
        ),
        (
            DOCS_RULES,
            Some("MYDOMAIN.COM"),
            "user@OTHER.COM",
            Err("No rules apply to user@OTHER.COM, rules [RULE:[1:$1@$0](.*@MYDOMAIN.COM)s/@.*//, DEFAULT]"),
        ),
        // `.` in the regex is any character: Kafka maps this realm too.
        (DOCS_RULES, None, "user@MYDOMAINXCOM", Ok("user")),
        (
            &["RULE:[1:$1@$0](.*@EXAMPLE.COM)s/@.*//"],
            None,
            "alice@EXAMPLE.COM",
            Ok("alice"),
        ),
        (
            &["RULE:[2:$1@$0](.*@EXAMPLE.COM)s/@.*//"],
            None,
            "kafka/host@EXAMPLE.COM",
            Ok("kafka"),
        ),
        // [n:..] needs exactly n components.
        (
            &["RULE:[2:$1@$0](.*@EXAMPLE.COM)s/@.*//"],
            None,
            "alice@EXAMPLE.COM",
            Err("No rules apply to alice@EXAMPLE.COM, rules [RULE:[2:$1@$0](.*@EXAMPLE.COM)s/@.*//]"),
        ),
        (&["RULE:[1:$1]"], None, "kafka/host@EXAMPLE.COM", Err("No rules apply")),
        // The regex must match the whole formatted string (matches(), not find()).
        (
            &["RULE:[1:$1@$0](.*@EXAMPLE)s/@.*//"],
            None,
            "alice@EXAMPLE.COM",
            Err("No rules apply"),
        ),
        (&["RULE:[1:$1](a.*)"], None, "alice@R", Ok("alice")),
        (
            &["RULE:[1:$1](a.*)"],
            None,
            "bob@R",
            Err("No rules apply to bob@R, rules [RULE:[1:$1](a.*)]"),
        ),
        // $0 is the realm, $1 and $2 the components; no s/// keeps the formatted string.
        (&["RULE:[1:$0_$1]"], None, "alice@EXAMPLE.COM", Ok("EXAMPLE.COM_alice")),
        (
            &["RULE:[2:$2]"],
            None,
            "HTTP/web.example.com@EXAMPLE.COM",
            Ok("web.example.com"),
        ),
        (&["RULE:[2:$1-$2](kafka-.*)s/-.*//"], None, "kafka/b1@R", Ok("kafka")),
        // s/// replaces the first match; g every match.
        (&["RULE:[1:$1]s/a/x/"], None, "banana@R", Ok("bxnana")),
        (&["RULE:[1:$1]s/a/x/g"], None, "banana@R", Ok("bxnxnx")),
        // Java's replaceAll with empty matches.
        (&["RULE:[1:$1]s/x*/-/g"], None, "abc@R", Ok("-a-b-c-")),
        (&["RULE:[1:$1]s/x*/-/g"], None, "xab@R", Ok("--a-b-")),
        // Java replacement syntax: groups, $10 read as $1 then 0 with fewer than 10 groups, \$ for '$'.
        (&["RULE:[1:$1]s/(.)(.*)/$2$1/"], None, "alice@R", Ok("licea")),
        (&["RULE:[1:$1]s/(.*)/$10/"], None, "alice@R", Ok("alice0")),
        (&[r"RULE:[1:$1]s/^/\$/"], None, "alice@R", Ok("$alice")),
        (&["RULE:[1:$1]s/(?<first>.)/${first}_/"], None, "alice@R", Ok("a_lice")),
        // L and U, also without the '/' and after g; case is changed after the substitution.
        (&["RULE:[1:$1]L"], None, "Alice@R", Ok("alice")),
        (&["RULE:[1:$1]s/a/x/gU"], None, "banana@R", Ok("BXNXNX")),
        (&["RULE:[1:$1](a.*)/L"], None, "ALICE@R", Err("No rules apply")),
        // DEFAULT: the first component, only in the default realm.
        (&["DEFAULT"], Some("EXAMPLE.COM"), "alice@EXAMPLE.COM", Ok("alice")),
        (
            &["DEFAULT"],
            Some("EXAMPLE.COM"),
            "kafka/broker1@EXAMPLE.COM",
            Ok("kafka"),
        ),
        (
            &["DEFAULT"],
            Some("EXAMPLE.COM"),
            "alice@OTHER.COM",
            Err("No rules apply to alice@OTHER.COM, rules [DEFAULT]"),
        ),
        (
            &["DEFAULT"],
            Some("EXAMPLE.COM"),
            "alice@example.com",
            Err("No rules apply"),
        ),
        // No default realm: "" as in Kafka, so DEFAULT only takes an empty realm.
        (&["DEFAULT"], None, "alice@EXAMPLE.COM", Err("No rules apply")),
        (&["DEFAULT"], None, "alice@", Ok("alice")),
        // No rules at all.
        (
            &[],
            Some("EXAMPLE.COM"),
            "alice@EXAMPLE.COM",
            Err("No rules apply to alice@EXAMPLE.COM, rules []"),
        ),
        // First match wins.
        (&["DEFAULT", "RULE:[1:$1]s/.*/x/"], Some("R"), "alice@R", Ok("alice")),
        (&["RULE:[1:$1]s/.*/x/", "DEFAULT"], Some("R"), "alice@R", Ok("x")),
        (
            &["RULE:[1:$1](b.*)", "RULE:[1:$1](a.*)s/a/A/", "DEFAULT"],
            Some("R"),
            "alice@R",
            Ok("Alice"),
        ),
        // A result with '/' or '@' fails the mapping (checked before /L), even if a later rule would apply.
        (
            &["RULE:[1:$1@$0]", "DEFAULT"],
            Some("EXAMPLE.COM"),
            "alice@EXAMPLE.COM",
            Err("Non-simple name alice@EXAMPLE.COM after auth_to_local rule RULE:[1:$1@$0]"),
        ),
        (
            &["RULE:[2:$1/$2]/L"],
            None,
            "A/B@R",
            Err("Non-simple name A/B after auth_to_local rule RULE:[2:$1/$2]/L"),
        ),
        // A bare name (no realm) is returned unchanged, whatever the rules.
        (&[], None, "alice", Ok("alice")),
        (&["RULE:[1:$1]s/.*/x/"], None, "kafka/host", Ok("kafka/host")),
        // Java's regex classes are ASCII: \w does not match 'ö' (the regex crate's \w would).
        (&[r"RULE:[1:$1](\w+)"], None, "joerg@R", Ok("joerg")),
        (&[r"RULE:[1:$1](\w+)"], None, "jörg@R", Err("No rules apply")),
        (
            &[r"RULE:[1:$1@$0](.*\Q@EXAMPLE.COM\E)s/\Q@\E.*//"],
            None,
            "alice@EXAMPLE.COM",
            Ok("alice"),
        ),
        (
            &[r"RULE:[1:$1@$0](.*\Q@EXAMPLE.COM\E)s/\Q@\E.*//"],
            None,
            "alice@EXAMPLEXCOM",
            Err("No rules apply"),
        ),
        // Malformed principals.
        (&["DEFAULT"], None, "a/b/c@R", Err("Malformed Kerberos name: a/b/c@R")),
        (&["DEFAULT"], None, "a@b@R", Err("Malformed Kerberos name: a@b@R")),
    ];

    #[test]
    fn mapping_table() {
        let mut failures = Vec::new();
        for (i, &(rules, realm, principal, expected)) in CASES.iter().enumerate() {
            let got = short(rules, realm, principal);
            let ok = match (&got, expected) {
                (Ok(name), Ok(want)) => name == want,
                (Err(e), Err(want)) => e.contains(want),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "case {i}: {rules:?} realm {realm:?} {principal}: got {got:?}, want {expected:?}"
                ));
            }
        }
        assert!(CASES.len() >= 25);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn kafka_invalid_rules() {
        // KerberosNameTest.testInvalidRules
        for rule in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/g",
            "rule:[1:$1]",
            "rule:[1:$1]/L/U",
            "rule:[1:$1]/U/L",
            "rule:[1:$1]/LU",
            "RULE:[1:$1/L",
            "RULE:[1:$1]/l",
            "RULE:[2:$1](ABC.*)s/ABC/XYZ/L/g",
        ] {
            let e = invalid(rule);
            assert!(e.starts_with("Invalid rule: "), "{rule}: {e}");
            assert!(e.contains(rule), "the message names the rule: {e}");
        }
    }

    #[test]
    fn invalid_rule_messages_say_what_is_wrong() {
        let cases = [
            ("default", "Invalid rule: default (", "upper case"),
            ("", "Invalid rule:  (", "empty"),
            (" DEFAULT", "Invalid rule:  DEFAULT (", "leading whitespace"),
            ("RULE:[1:$1/L", "Invalid rule: RULE:[1:$1/L (", "closing ']'"),
            (
                "DEFAULT/L",
                "Invalid rule: `DEFAULT/L`, unmatched substring: `/L`",
                "DEFAULT takes no options",
            ),
            ("RULE:[1:$1]/L/U", "unmatched substring: `/U`", "only one of /L and /U"),
            (
                "RULE:[2:$1](ABC.*)s/ABC/XYZ/L/g",
                "unmatched substring: `/g`",
                "g comes right after",
            ),
            ("RULE:[1:$1]/l", "unmatched substring: `l`", "L and U are upper case"),
            // Several rules in one entry: Kafka has no separator inside an entry.
            (
                "RULE:[1:$1]\nDEFAULT",
                "unmatched substring: `\nDEFAULT`",
                "one rule per entry",
            ),
            (
                "RULE:[1:$1@$0](.*@A.COM)s/@.*// RULE:[2:$1]",
                "unmatched substring",
                "one rule per entry",
            ),
            (
                "RULE:[1:$1],DEFAULT",
                "unmatched substring: `,DEFAULT`",
                "one rule per entry",
            ),
            // '/' cannot be escaped in s///.
            (
                r"RULE:[1:$1](.*)s/a\/b/c/",
                r"unmatched substring: `c/`",
                "not even as \\/",
            ),
            // (regex) ends at the first ')'.
            (
                "RULE:[1:$1@$0]((a|b)@X.COM)",
                "unmatched substring: `@X.COM)`",
                "cannot contain ')'",
            ),
            ("RULE:[1:a]b]", "unmatched substring: `b]`", "cannot contain ']'"),
            // Checked after the syntax.
            (
                "RULE:[:$1]",
                "Invalid rule: `RULE:[:$1]`: the component count n",
                "missing",
            ),
            (
                "RULE:[99999999999:$1]",
                "Invalid rule: `RULE:[99999999999:$1]`",
                "too large",
            ),
            (
                "RULE:[1:$1](a(b)",
                "Invalid rule: `RULE:[1:$1](a(b)`: the (regex) `a(b`",
                "not a usable regular expression",
            ),
            ("RULE:[1:$1]s/a(?=b)//", "the s/// pattern `a(?=b)`", "look-around"),
            (r"RULE:[1:$1]s/(a)\1//", r"the s/// pattern `(a)\1`", "not a usable"),
            ("RULE:[1:$1]s/a*+//", "the s/// pattern `a*+`", "not a usable"),
            (r"RULE:[1:$1]s/a\/b/", r"the s/// pattern `a\`", "cannot be escaped"),
            (
                "RULE:[1:$1$2]",
                "index 2 from $1$2 is outside of the valid range 0 to 1",
                "$0 is the realm",
            ),
            (
                "RULE:[2:$1@$x]",
                "bad format in username mapping in ",
                "followed by a number",
            ),
            (
                "RULE:[1:$1$]",
                "bad format in username mapping in ",
                "followed by a number",
            ),
            (
                "RULE:[1:$1]s/a/$1/",
                "the replacement `$1` cannot be used",
                "no group 1",
            ),
            (
                "RULE:[1:$1]s/a/b$/",
                "the replacement `b$` cannot be used",
                "ends with '$'",
            ),
            ("RULE:[1:$1]s/a/$x/", "cannot be used", "illegal group reference"),
            (
                r"RULE:[1:$1]s/a/b\/",
                r"the replacement `b\` cannot be used",
                "cannot be escaped",
            ),
            (
                "RULE:[1:$1]s/(a)/${name}/",
                "cannot be used",
                "no group with name {name}",
            ),
        ];
        for (rule, start, why) in cases {
            let e = invalid(rule);
            assert!(e.contains(start), "{rule:?}: {e:?} lacks {start:?}");
            assert!(e.contains(why), "{rule:?}: {e:?} lacks {why:?}");
            if !rule.is_empty() {
                assert!(e.contains(rule), "{rule:?}: {e:?} does not name the rule");
            }
        }
    }

    #[test]
    fn every_invalid_rule_is_reported() {
        let rules = vec!["DEFAULT".to_string(), "default".to_string(), "RULE:[1:$2]".to_string()];
        let e = KerberosShortNamer::parse(&rules, None)
            .map(|n| n.to_string())
            .unwrap_err();
        assert_eq!(e.lines().count(), 2, "{e}");
        assert!(e.lines().next().is_some_and(|l| l.starts_with("Invalid rule: default")));
        assert!(e.contains("`RULE:[1:$2]`"));
    }

    #[test]
    fn kafka_replace_parameters() {
        // KerberosRuleTest.testReplaceParameters, through the same parser and renderer as the rules.
        fn replace(format: &str, params: &[&str]) -> Result<String, String> {
            parse_format(format, params.len()).map(|f| render_format(&f, params))
        }
        let many = ["too", "many", "parameters", "are", "ok"];
        assert_eq!(replace("", &[]), Ok(String::new()));
        assert_eq!(replace("hello", &[]), Ok("hello".into()));
        assert_eq!(replace("", &many), Ok(String::new()));
        assert_eq!(replace("hello", &many), Ok("hello".into()));
        assert_eq!(replace("hello $0", &many), Ok("hello too".into()));
        assert_eq!(
            replace("hello $0", &["no recursion $1"]),
            Ok("hello no recursion $1".into())
        );
        assert_eq!(replace("$4$04", &many), Ok("okok".into()));
        let e = replace("$0", &[]).unwrap_err();
        assert!(
            e.starts_with("index 0 from $0 is outside of the valid range 0 to -1"),
            "{e}"
        );
        let e = replace("hello $a", &["does not matter"]).unwrap_err();
        assert!(e.starts_with("bad format in username mapping in "), "{e}");
        // \d* is greedy: $10 is parameter 10, not $1 then 0.
        assert!(replace("$10", &many).is_err());
    }

    #[test]
    fn kerberos_name_parse_matches_kafka() {
        let parts = |p: &str| KerberosName::parse(p).map(|n| (n.service_name, n.host_name, n.realm));
        let s = |x: &str| Some(x.to_string());
        assert_eq!(parts("alice@EXAMPLE.COM"), Ok(("alice".into(), None, s("EXAMPLE.COM"))));
        assert_eq!(
            parts("kafka/b1.example.com@EXAMPLE.COM"),
            Ok(("kafka".into(), s("b1.example.com"), s("EXAMPLE.COM")))
        );
        assert_eq!(parts("alice"), Ok(("alice".into(), None, None)));
        assert_eq!(parts("kafka/host"), Ok(("kafka/host".into(), None, None)));
        assert_eq!(parts("@R"), Ok((String::new(), None, s("R"))));
        assert_eq!(parts("a@"), Ok(("a".into(), None, s(""))));
        assert_eq!(parts("a/@R"), Ok(("a".into(), s(""), s("R"))));
        assert_eq!(parts(""), Ok((String::new(), None, None)));
        for bad in ["a/b/c@R", "a@b@R", "a@R/x", "a/b@R@S", "@"] {
            if bad == "@" {
                assert_eq!(parts(bad), Ok((String::new(), None, s(""))));
                continue;
            }
            let e = parts(bad).unwrap_err();
            assert!(e.starts_with(&format!("Malformed Kerberos name: {bad}")), "{e}");
        }
        for p in ["alice@EXAMPLE.COM", "kafka/h@R", "alice", "a/@R", "kafka/host"] {
            assert_eq!(KerberosName::parse(p).map(|n| n.to_string()), Ok(p.to_string()));
        }
    }

    #[test]
    fn rules_print_like_kafka() {
        let n = namer(
            &[
                "DEFAULT",
                "RULE:[01:$1]L",
                "RULE:[1:$1](a.*)s/a/b/gU",
                "RULE:[2:$1]s/x//",
                "RULE:[1:x]/U",
            ],
            Some("R"),
        );
        assert_eq!(
            n.rules(),
            [
                "DEFAULT",
                "RULE:[1:$1]/L",
                "RULE:[1:$1](a.*)s/a/b/g/U",
                "RULE:[2:$1]s/x//",
                "RULE:[1:x]/U"
            ]
        );
        assert_eq!(
            n.to_string(),
            "KerberosShortNamer(principalToLocalRules = [DEFAULT, RULE:[1:$1]/L, RULE:[1:$1](a.*)s/a/b/g/U, \
             RULE:[2:$1]s/x//, RULE:[1:x]/U])"
        );
        assert_eq!(n.default_realm(), "R");
    }

    #[test]
    fn explain_names_the_rule() {
        let n = namer(
            &[
                "RULE:[2:$1@$0](.*@EXAMPLE.COM)s/@.*//",
                "RULE:[1:$1@$0](.*@EXAMPLE.COM)s/@.*//",
                "DEFAULT",
            ],
            Some("R"),
        );
        let explain = |p: &str| KerberosName::parse(p).and_then(|k| n.explain(&k));
        assert_eq!(
            explain("alice@EXAMPLE.COM"),
            Ok(("alice".into(), 1, "RULE:[1:$1@$0](.*@EXAMPLE.COM)s/@.*//".into()))
        );
        assert_eq!(
            explain("kafka/h@EXAMPLE.COM"),
            Ok(("kafka".into(), 0, "RULE:[2:$1@$0](.*@EXAMPLE.COM)s/@.*//".into()))
        );
        assert_eq!(explain("bob@R"), Ok(("bob".into(), 2, "DEFAULT".into())));
        assert_eq!(explain("bob"), Ok(("bob".into(), NO_RULE_CONSULTED, String::new())));
        assert!(explain("bob@X").is_err_and(|e| e.starts_with("No rules apply to bob@X")));
    }

    #[test]
    fn trace_says_why_each_rule_did_not_apply() {
        let n = namer(
            &["RULE:[2:$1]", "RULE:[1:$1@$0](.*@EXAMPLE.COM)s/@.*//", "DEFAULT"],
            Some("EXAMPLE.COM"),
        );
        let trace = n.trace(&KerberosName::parse("alice@OTHER.COM").unwrap());
        let outcomes: Vec<RuleOutcome> = trace.rules.unwrap().into_iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                RuleOutcome::ComponentCount { needed: 2, actual: 1 },
                RuleOutcome::NoMatch {
                    formatted: "alice@OTHER.COM".into(),
                    regex: ".*@EXAMPLE.COM".into()
                },
                RuleOutcome::OtherRealm {
                    realm: "OTHER.COM".into(),
                    default_realm: "EXAMPLE.COM".into()
                },
            ]
        );
        assert!(trace.result.is_err());
        // Tracing stops at the rule that decides.
        let trace = n.trace(&KerberosName::parse("alice@EXAMPLE.COM").unwrap());
        let rules = trace.rules.unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].formatted.as_deref(), Some("alice@EXAMPLE.COM"));
        assert_eq!(rules[1].outcome, RuleOutcome::Applied("alice".into()));
    }

    #[test]
    fn java_regex_translation() {
        let whole = |pattern: &str, text: &str| {
            translate_java_regex(pattern)
                .and_then(|t| Regex::new(&format!(r"\A(?:{t})\z")).map_err(|e| e.to_string()))
                .map(|r| r.is_match(text))
        };
        // ASCII classes.
        assert_eq!(whole(r"\d+", "123"), Ok(true));
        assert_eq!(whole(r"\d", "٣"), Ok(false));
        assert_eq!(whole(r"\w+", "jörg"), Ok(false));
        assert_eq!(whole(r"[\w.-]+", "a.b-c_d"), Ok(true));
        assert_eq!(whole(r"[^\d]+", "abc"), Ok(true));
        assert_eq!(whole(r"\s", "\u{a0}"), Ok(false));
        assert_eq!(whole(r"\h", "\u{a0}"), Ok(true));
        assert_eq!(whole(r"\p{Lower}+", "abc"), Ok(true));
        assert_eq!(whole(r"\p{Lower}", "é"), Ok(false));
        assert_eq!(whole(r"\P{Upper}", "a"), Ok(true));
        assert_eq!(whole(r"[\p{Alpha}_]+", "a_B"), Ok(true));
        // `[:alpha:]` is a plain set in Java.
        assert_eq!(whole("[[:alpha:]]", "a"), Ok(true));
        assert_eq!(whole("[[:alpha:]]", "b"), Ok(false));
        assert_eq!(whole("[:x]", ":"), Ok(true));
        // `.` is not a line terminator, unless DOTALL.
        assert_eq!(whole(".", "\r"), Ok(false));
        assert_eq!(whole("(?s).", "\r"), Ok(true));
        assert_eq!(whole("[.]", "."), Ok(true));
        assert_eq!(whole("[.]", "x"), Ok(false));
        // Escapes.
        assert_eq!(whole(r"\Qa.b\E", "a.b"), Ok(true));
        assert_eq!(whole(r"\Qa.b\E", "axb"), Ok(false));
        assert_eq!(whole(r"\Qa.b", "a.b"), Ok(true));
        assert_eq!(whole(r"\e\cA\0101\011", "\u{1b}\u{1}A\t"), Ok(true));
        assert_eq!(whole(r"\<\@\#", "<@#"), Ok(true));
        assert_eq!(whole(r"\x41\u0042\x{43}", "ABC"), Ok(true));
        // Quantifiers that are not possessive.
        assert_eq!(whole("a*?b+?c??", "aabc"), Ok(true));
        assert_eq!(whole(r"(?:ab)+[+]\+", "abab++"), Ok(true));
        assert_eq!(whole("a{1,2}b", "aab"), Ok(true));
        assert_eq!(whole("(?i)a+", "AA"), Ok(true));
        // What the regex crate cannot do is an error, not a different meaning.
        for unsupported in [
            r"(?=a)a", r"(a)\1", r"a*+", r"a++", r"a?+", r"a{2}+", r"(?>a)", r"\Ga", r"a\Z", r"\R",
        ] {
            assert!(whole(unsupported, "a").is_err(), "{unsupported}");
        }
    }

    #[test]
    fn java_replace_first_and_all() {
        let replace = |pattern: &str, text: &str, replacement: &str, all: bool| {
            let re = Regex::new(&translate_java_regex(pattern).unwrap()).unwrap();
            let pieces = java_regex::parse_replacement(&replacement.chars().collect::<Vec<char>>(), &re).unwrap();
            java_regex::replace(&re, text, &pieces, all)
        };
        assert_eq!(replace("a", "banana", "o", false), "bonana");
        assert_eq!(replace("a", "banana", "o", true), "bonono");
        assert_eq!(replace("z", "banana", "o", true), "banana");
        assert_eq!(replace("", "ab", "-", true), "-a-b-");
        assert_eq!(replace("", "ab", "-", false), "-ab");
        assert_eq!(replace("a*", "baaac", "-", true), "-b--c-");
        assert_eq!(replace("(a)(b)?", "ac", "[$2]", true), "[]c");
        assert_eq!(replace("(.)", "ab", r"\\$1\$", true), r"\a$\b$");
        // $12 with two groups is $1 then '2'.
        assert_eq!(replace("(a)(b)", "ab", "$12", false), "a2");
    }
}
