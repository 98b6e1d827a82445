//! Kafka's `ssl.principal.mapping.rules`: from a client certificate's subject DN to a principal name.
//!
//! Same grammar and results as Kafka's `SslPrincipalMapper`:
//! - rules are `DEFAULT` or `RULE:pattern/replacement/` with an optional `L` (lowercase) or `U`
//!   (uppercase) after the last `/`; several rules may share one string, separated by commas (a comma
//!   inside a pattern or replacement belongs to it; `\/` is a literal `/`). Empty entries are ignored.
//! - the first rule that applies wins; `DEFAULT` returns the DN unchanged;
//! - a `RULE` applies when its pattern matches the *whole* DN (`Matcher.matches()`); the name is then
//!   `dn.replaceAll(pattern, replacement)`, i.e. every non-overlapping match in the DN is replaced, with
//!   Java's replacement syntax (`$1`, `${name}`, `\$` for a literal `$`). Like Kafka, a `$N` whose first
//!   digit is beyond the pattern's group count is kept as literal text.
//! - no rule applies: an error, and Kafka fails the authentication (it does not fall back to ANONYMOUS).
//!
//! Differences, all for rules Kafka cannot use either:
//! - patterns are compiled with the `regex` crate: Java syntax without look-around, back-references and
//!   possessive quantifiers (such a rule is rejected with a clear error). `\w`, `\d`, `\s`, `\b` and `(?i)`
//!   are Unicode-aware (Java: ASCII), which only matters for non-ASCII DNs.
//! - a replacement that Java would reject while applying it (`$` at the end, `$x`, a group that does not
//!   exist, a trailing `\`, more than one out-of-range `$N`, which Kafka's escaping helper mangles) makes
//!   Kafka fail every connection the rule matches; here it is an error when the rules are parsed.
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::java_regex::{self, Piece};

/// Java's `\s` (`[ \t\n\x0B\f\r]`) and `.` (anything but a line terminator), spelled out for `regex`.
const JAVA_WS: &str = r"[ \t\n\x0B\x0C\r]";
const JAVA_DOT: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]";

/// Kafka's RULE_PATTERN: `(DEFAULT)|RULE:((\\.|[^\\/])*)/((\\.|[^\\/])*)/([LU]?).*?|(.*?)`.
fn rule_pattern() -> String {
    format!(r"(DEFAULT)|RULE:((\\{JAVA_DOT}|[^\\/])*)/((\\{JAVA_DOT}|[^\\/])*)/([LU]?){JAVA_DOT}*?|({JAVA_DOT}*?)")
}

/// Kafka's RULE_SPLITTER: `\s*(RULE_PATTERN)\s*(,\s*|$)`, applied with repeated `find()`.
static RULE_SPLITTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"{JAVA_WS}*({}){JAVA_WS}*(,{JAVA_WS}*|\z)", rule_pattern()))
        .expect("the rule splitter is a valid regex")
});

/// Kafka's RULE_PARSER, anchored at the start (`Matcher.lookingAt()`).
static RULE_PARSER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"\A(?:{})", rule_pattern())).expect("the rule parser is a valid regex"));

/// Maps certificate subject DNs to principal names with Kafka's `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace(Box<ReplaceRule>),
}

#[derive(Debug, Clone)]
struct ReplaceRule {
    /// The pattern and replacement exactly as written, for messages.
    source_pattern: String,
    source_replacement: String,
    /// Used for `replaceAll`: finds every match.
    pattern: Regex,
    /// `\A(?:pattern)\z`: Java's `matches()`.
    whole: Regex,
    replacement: Vec<Piece>,
    case: Case,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

impl SslPrincipalMapper {
    /// Parses the rules. Each entry may hold one rule or several separated by commas, as in Kafka's
    /// single-string property. An empty list (or only empty entries) gives a mapper with no rules,
    /// which, as in Kafka, maps nothing.
    pub fn parse(rules: &[String]) -> Result<SslPrincipalMapper, String> {
        let mut parsed = Vec::new();
        for entry in rules {
            for rule in split_rules(entry) {
                if let Some(rule) = parse_rule(&rule)? {
                    parsed.push(rule);
                }
            }
        }
        Ok(SslPrincipalMapper { rules: parsed })
    }

    /// The principal name for a subject DN (as [`crate::listener::tls::peer_subject_dn`] gives it).
    /// The first rule that applies wins. No rule applies: `Err`, like Kafka's `NoMatchingRule`; the
    /// connection's authentication must then fail.
    pub fn map(&self, dn: &str) -> Result<String, String> {
        for rule in &self.rules {
            if let Some(name) = rule.apply(dn) {
                return Ok(name);
            }
        }
        Err(format!("No rules apply to {dn}, rules {}", self.rules_list()))
    }

    /// `[RULE:..., DEFAULT]`, as Kafka prints its rule list.
    fn rules_list(&self) -> String {
        let rules: Vec<String> = self.rules.iter().map(ToString::to_string).collect();
        format!("[{}]", rules.join(", "))
    }
}

impl fmt::Display for SslPrincipalMapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SslPrincipalMapper(rules = {})", self.rules_list())
    }
}

impl fmt::Display for Rule {
    /// Kafka's `Rule.toString()`: `DEFAULT` or `RULE:pattern/replacement` plus `/L` or `/U`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Default => f.write_str("DEFAULT"),
            Rule::Replace(r) => {
                write!(f, "RULE:{}/{}", r.source_pattern, r.source_replacement)?;
                match r.case {
                    Case::Keep => Ok(()),
                    Case::Lower => f.write_str("/L"),
                    Case::Upper => f.write_str("/U"),
                }
            }
        }
    }
}

impl Rule {
    fn apply(&self, dn: &str) -> Option<String> {
        let r = match self {
            Rule::Default => return Some(dn.to_string()),
            Rule::Replace(r) => r,
        };
        if !r.whole.is_match(dn) {
            return None;
        }
        let name = java_regex::replace(&r.pattern, dn, &r.replacement, true);
        Some(match r.case {
            Case::Keep => name,
            Case::Lower => name.to_lowercase(),
            Case::Upper => name.to_uppercase(),
        })
    }
}

/// Kafka's `splitRules`: the rule strings found by repeatedly applying RULE_SPLITTER to the trimmed text.
fn split_rules(text: &str) -> Vec<String> {
    // Java's String.trim() removes every char <= ' '.
    let text = text.trim_matches(|c: char| c <= ' ');
    RULE_SPLITTER
        .captures_iter(text)
        .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
        .collect()
}

/// Kafka's `parseRules` for one rule string; `None` for an empty rule.
fn parse_rule(rule: &str) -> Result<Option<Rule>, String> {
    let caps = RULE_PARSER
        .captures(rule)
        .ok_or_else(|| format!("invalid ssl.principal.mapping.rules entry `{rule}`"))?;
    let end = caps.get(0).map_or(0, |m| m.end());
    if end != rule.len() {
        return Err(format!(
            "invalid ssl.principal.mapping.rules entry `{rule}`: unexpected `{}`. A rule is DEFAULT or \
             RULE:pattern/replacement/ with an optional L (lowercase) or U (uppercase) after the last '/'; \
             write a '/' inside the pattern or replacement as \\/",
            &rule[end..]
        ));
    }
    if caps.get(1).is_some() {
        return Ok(Some(Rule::Default));
    }
    let Some(source_pattern) = caps.get(2).map(|m| m.as_str()) else {
        // Only the empty rule gets here (the third alternative matched nothing).
        return Ok(None);
    };
    let source_replacement = caps.get(4).map_or("", |m| m.as_str());
    let case = match caps.get(6).map(|m| m.as_str()) {
        Some("L") => Case::Lower,
        Some("U") => Case::Upper,
        _ => Case::Keep,
    };
    let bad_pattern = |e: regex::Error| {
        format!(
            "ssl.principal.mapping.rules entry `{rule}`: the pattern `{source_pattern}` is not a usable regular \
             expression ({e}). Java syntax is accepted except look-around, back-references and possessive \
             quantifiers"
        )
    };
    let pattern = Regex::new(source_pattern).map_err(bad_pattern)?;
    let whole = Regex::new(&format!(r"\A(?:{source_pattern})\z")).map_err(bad_pattern)?;
    let replacement = java_regex::parse_replacement(
        &kafka_escape_back_references(source_replacement, pattern.captures_len().saturating_sub(1))?,
        &pattern,
    )
    .map_err(|e| {
        format!(
            "ssl.principal.mapping.rules entry `{rule}`: the replacement `{source_replacement}` cannot be \
             used: {e} (Kafka fails every connection this rule matches). Use $1..$9 for groups and \\$ for a \
             literal '$'"
        )
    })?;
    Ok(Some(Rule::Replace(Box::new(ReplaceRule {
        source_pattern: source_pattern.to_string(),
        source_replacement: source_replacement.to_string(),
        pattern,
        whole,
        replacement,
        case,
    }))))
}

/// Kafka's `escapeLiteralBackReferences`, reproduced exactly (including that it inserts each backslash
/// at the position the reference had in the *original* string): `$N` whose first digit exceeds the
/// group count is escaped so Java treats it as text. Returns an error where Kafka's
/// `Integer.parseInt` would throw.
fn kafka_escape_back_references(replacement: &str, groups: usize) -> Result<Vec<char>, String> {
    let original: Vec<char> = replacement.chars().collect();
    if groups == 0 {
        return Ok(original);
    }
    let mut value = original.clone();
    let mut i = 0;
    while i < original.len() {
        if original[i] != '$' || !original.get(i + 1).is_some_and(char::is_ascii_digit) {
            i += 1;
            continue;
        }
        let digits_start = i + 1;
        let mut digits_end = digits_start;
        while original.get(digits_end).is_some_and(char::is_ascii_digit) {
            digits_end += 1;
        }
        let digits: String = original[digits_start..digits_end].iter().collect();
        i = digits_end;
        if digits.starts_with('0') {
            continue;
        }
        let mut index: i64 = digits
            .parse::<i32>()
            .map_err(|_| format!("the group reference ${digits} is too large"))?
            .into();
        let groups = i64::try_from(groups).unwrap_or(i64::MAX);
        while index > groups && index >= 10 {
            index /= 10;
        }
        if index > groups {
            // Kafka: value.substring(0, groupStart - 1) + "\\" + value.substring(groupStart - 1), with
            // groupStart taken from the original string.
            let at = (digits_start - 1).min(value.len());
            value.insert(at, '\\');
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper(rules: &str) -> SslPrincipalMapper {
        match SslPrincipalMapper::parse(&[rules.to_string()]) {
            Ok(m) => m,
            Err(e) => panic!("rules {rules:?} should parse: {e}"),
        }
    }

    fn map(rules: &str, dn: &str) -> Result<String, String> {
        mapper(rules).map(dn)
    }

    /// Kafka's SslPrincipalMapperTest.testSslPrincipalMapper plus the docs' examples.
    #[test]
    fn kafka_mapping_table() {
        let kafka = [
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
            "DEFAULT",
        ]
        .join(", ");
        let cases: &[(&str, &str, &str)] = &[
            (kafka.as_str(), "CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke"),
            (kafka.as_str(), "CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"),
            (kafka.as_str(), "cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME"),
            (kafka.as_str(), "cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE"),
            (
                kafka.as_str(),
                "OU=JavaSoft,O=Sun Microsystems,C=US",
                "OU=JavaSoft,O=Sun Microsystems,C=US",
            ),
            // The brief's example and the docs' "Customizing SSL User Name" ones.
            ("RULE:^CN=(.*?),OU=(.*?)$/$1/", "CN=alice,OU=eng", "alice"),
            (
                "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
                "CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown",
                "serviceuser",
            ),
            (
                "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
                "CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown",
                "adminuser@admin",
            ),
            (
                "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
                "CN=Alice.Smith,OU=Engineering,O=Example Corp,C=US",
                "alice.smith",
            ),
            ("RULE:^CN=(.*?),OU=(.*?)$/$1/U", "CN=alice,OU=eng", "ALICE"),
            // Kafka's testCommaWithWhitespace: an escaped comma inside the CN.
            (
                "RULE:^CN=((\\\\, *|\\w)+)(,.*|$)/$1/,DEFAULT",
                "CN=Tkac\\, Adam,OU=ITZ,DC=geodis,DC=cz",
                "Tkac\\, Adam",
            ),
            // First matching rule wins; DEFAULT after a rule that does not apply.
            (
                "RULE:^CN=(.*?),OU=ops$/ops-$1/, RULE:^CN=(.*?),.*$/$1/",
                "CN=bob,OU=ops",
                "ops-bob",
            ),
            (
                "RULE:^CN=(.*?),OU=ops$/ops-$1/, DEFAULT",
                "CN=bob,OU=dev",
                "CN=bob,OU=dev",
            ),
            // Out-of-range $4 with 3 groups stays literal text (Kafka escapes it).
            ("RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$4/", "CN=a,OU=b,O=c", "a@$4"),
            // Java reads $12 as group 1 followed by "2" when there is no group 12.
            ("RULE:^CN=(.*?),OU=(.*?)$/$12/", "CN=a,OU=b", "a2"),
            // Escapes and named groups in the replacement.
            (
                "RULE:^CN=(?<user>[^,]*),.*$/\\$${user}\\/x/",
                "CN=carol,O=x",
                "$carol/x",
            ),
            // replaceAll replaces every match, not only the first: an unanchored pattern that matches the
            // whole DN lazily leaves the rest of the DN after the first replacement.
            ("RULE:CN=(.*?),OU=(.*?)/$1/", "CN=alice,OU=eng", "aliceeng"),
            // ...and Java also replaces the empty match at the end after a whole-string match.
            ("RULE:.*/x/", "CN=a", "xx"),
            // $0 is the whole match.
            ("RULE:^CN=([^,]*)$/<$0>/", "CN=dave", "<CN=dave>"),
        ];
        for (rules, dn, want) in cases {
            assert_eq!(map(rules, dn).as_deref(), Ok(*want), "rules {rules:?}, dn {dn:?}");
        }
    }

    #[test]
    fn no_rule_applies_is_an_error_like_kafka() {
        let err = map("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L", "CN=bob,OU=Other").unwrap_err();
        assert_eq!(
            err,
            "No rules apply to CN=bob,OU=Other, rules [RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L]"
        );
        // Pattern must match the whole DN (Matcher.matches), not only a part of it.
        assert!(map("RULE:CN=([a-z]+)/$1/", "CN=bob,OU=x").is_err());
        // No rules at all (Kafka's empty property): nothing maps.
        let none = SslPrincipalMapper::parse(&[]).unwrap();
        assert_eq!(none.map("CN=x").unwrap_err(), "No rules apply to CN=x, rules []");
    }

    /// Kafka's SslPrincipalMapperTest.testValidRules / testInvalidRules.
    #[test]
    fn valid_and_invalid_rule_syntax() {
        for rules in [
            "DEFAULT",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
            "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
            "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
        ] {
            assert!(SslPrincipalMapper::parse(&[rules.to_string()]).is_ok(), "{rules}");
        }
        for rules in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
        ] {
            assert!(SslPrincipalMapper::parse(&[rules.to_string()]).is_err(), "{rules}");
        }
        let err = SslPrincipalMapper::parse(&["RULE:^CN=(.*)$/$1/LU".into()]).unwrap_err();
        assert!(err.contains("unexpected `U`"), "{err}");
    }

    #[test]
    fn unusable_patterns_and_replacements_are_rejected_when_parsed() {
        for (rule, expect) in [
            ("RULE:^CN=(.*$/$1/", "not a usable regular expression"),
            ("RULE:^CN=(?=x)(.*)$/$1/", "not a usable regular expression"),
            ("RULE:^CN=(.*)$/$/", "ends with '$'"),
            ("RULE:^CN=(.*)$/$x/", "is an illegal group reference"),
            ("RULE:^CN=.*$/$1/", "no group 1"),
            ("RULE:^CN=(.*)$/${nope}/", "no group with name"),
            ("RULE:^CN=(.*)$/${1x}/", "starts with digit character"),
            // Two out-of-range references: Kafka's escaping leaves the second one unescaped.
            ("RULE:^CN=(.*)$/$5$6/", "no group 6"),
        ] {
            let err = SslPrincipalMapper::parse(&[rule.to_string()]).unwrap_err();
            assert!(err.contains(expect), "{rule}: {err}");
        }
    }

    /// Kafka's SslPrincipalMapperTest.testRulesSplitting, compared through the same toString().
    #[test]
    fn rules_splitting_matches_kafka() {
        let cases = [
            ("[]", ""),
            ("[DEFAULT]", "DEFAULT"),
            ("[RULE:/]", "RULE://"),
            ("[RULE:/.*]", "RULE:/.*/"),
            ("[RULE:/.*/L]", "RULE:/.*/L"),
            ("[RULE:/, DEFAULT]", "RULE://,DEFAULT"),
            ("[RULE:/, DEFAULT]", "  RULE:// ,  DEFAULT  "),
            ("[RULE:   /     , DEFAULT]", "  RULE:   /     / ,  DEFAULT  "),
            ("[RULE:  /     /U, DEFAULT]", "  RULE:  /     /U   ,DEFAULT  "),
            (
                "[RULE:([A-Z]*)/$1/U, RULE:([a-z]+)/$1, DEFAULT]",
                "  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ",
            ),
            ("[]", ",   , , ,      , , ,   "),
            ("[RULE:/, DEFAULT]", ",,RULE://,,,DEFAULT,,"),
            ("[RULE: /   , DEFAULT]", ",  , RULE: /   /    ,,,   DEFAULT, ,   "),
            ("[RULE:   /  /U, DEFAULT]", "     ,  , RULE:   /  /U    ,,  ,DEFAULT, ,"),
            (r"[RULE:\/\\\(\)\n\t/\/\/]", r"RULE:\/\\\(\)\n\t/\/\//"),
            (r"[RULE:\**\/+/*/L, RULE:\/*\**/**]", r"RULE:\**\/+/*/L,RULE:\/*\**/**/"),
            (
                r"[RULE:,RULE:,/,RULE:,\//U, RULE:,/RULE:,, RULE:,RULE:,/L,RULE:,/L, RULE:, DEFAULT, /DEFAULT, DEFAULT]",
                r"RULE:,RULE:,/,RULE:,\//U,RULE:,/RULE:,/,RULE:,RULE:,/L,RULE:,/L,RULE:, DEFAULT, /DEFAULT/,DEFAULT",
            ),
        ];
        for (want, rules) in cases {
            assert_eq!(
                mapper(rules).to_string(),
                format!("SslPrincipalMapper(rules = {want})"),
                "{rules:?}"
            );
        }
    }

    #[test]
    fn list_entries_and_comma_separated_rules_are_equivalent() {
        let list = SslPrincipalMapper::parse(&["RULE:^CN=(.*?),OU=x$/$1/U".into(), "DEFAULT".into()]).unwrap();
        let joined = mapper("RULE:^CN=(.*?),OU=x$/$1/U,DEFAULT");
        assert_eq!(list.to_string(), joined.to_string());
        assert_eq!(list.map("CN=ann,OU=x").unwrap(), "ANN");
        assert_eq!(list.map("CN=ann,OU=y").unwrap(), "CN=ann,OU=y");
    }

    #[test]
    fn kafka_escaping_reproduced_for_out_of_range_references() {
        // One out-of-range reference: escaped in place.
        let chars = kafka_escape_back_references("$1@$4", 3).unwrap();
        assert_eq!(chars.iter().collect::<String>(), "$1@\\$4");
        // Several: Kafka inserts later backslashes at the original offsets.
        let chars = kafka_escape_back_references("$5$6$7", 1).unwrap();
        assert_eq!(chars.iter().collect::<String>(), "\\$\\5\\$6$7");
        // No groups: nothing is escaped; $0-prefixed references are left alone.
        assert_eq!(kafka_escape_back_references("$9", 0).unwrap(), vec!['$', '9']);
        assert_eq!(kafka_escape_back_references("$09", 1).unwrap(), vec!['$', '0', '9']);
        assert!(kafka_escape_back_references("$99999999999", 1).is_err());
    }
}
