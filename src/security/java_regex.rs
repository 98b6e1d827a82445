//! Java's regex replacement semantics (`Matcher.appendReplacement`, `String.replaceAll` and
//! `replaceFirst`) on top of the `regex` crate, shared by Kafka's two principal-mapping rule sets:
//! `ssl.principal.mapping.rules` and `sasl.kerberos.principal.to.local.rules`.
use regex::Regex;

/// A piece of a parsed Java replacement string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Literal(String),
    Group(usize),
}

/// Java's `Matcher.appendReplacement` syntax: `\c` is `c`, `$n` a group (more digits are taken while the
/// number stays a group), `${name}` a named group. Errors where Java throws.
pub(crate) fn parse_replacement(chars: &[char], pattern: &Regex) -> Result<Vec<Piece>, String> {
    let groups = pattern.captures_len().saturating_sub(1);
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let Some(&c) = chars.get(i + 1) else {
                    return Err("it ends with a lone '\\' (character to be escaped is missing)".into());
                };
                literal.push(c);
                i += 2;
            }
            '$' => {
                i += 1;
                let Some(&next) = chars.get(i) else {
                    return Err("it ends with '$' (illegal group reference: group index is missing)".into());
                };
                let group = if next == '{' {
                    i += 1;
                    let start = i;
                    while chars.get(i).is_some_and(char::is_ascii_alphanumeric) {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name.is_empty() {
                        return Err(
                            "'${' is not followed by a group name (named capturing group has 0 length name)".into(),
                        );
                    }
                    if chars.get(i) != Some(&'}') {
                        return Err(format!("'${{{name}' has no closing '}}'"));
                    }
                    i += 1;
                    if name.starts_with(|c: char| c.is_ascii_digit()) {
                        return Err(format!("capturing group name {{{name}}} starts with digit character"));
                    }
                    pattern
                        .capture_names()
                        .position(|n| n == Some(name.as_str()))
                        .ok_or_else(|| format!("no group with name {{{name}}} in the pattern"))?
                } else {
                    let Some(first) = next.to_digit(10) else {
                        return Err(format!("'${next}' is an illegal group reference"));
                    };
                    let mut group = first as usize;
                    i += 1;
                    while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                        let longer = group * 10 + d as usize;
                        if longer > groups {
                            break;
                        }
                        group = longer;
                        i += 1;
                    }
                    if group > groups {
                        return Err(format!("no group {group}: the pattern has {groups} group(s)"));
                    }
                    group
                };
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Group(group));
            }
            c => {
                literal.push(c);
                i += 1;
            }
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// Java's `replaceFirst` (`all == false`) or `replaceAll`: matches are found by successive `find()`
/// calls; after an empty match the search resumes one character later, and an empty match right after a
/// non-empty one counts (the `regex` crate's iterators skip it, hence this loop).
pub(crate) fn replace(pattern: &Regex, text: &str, replacement: &[Piece], all: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while from <= text.len() {
        let Some(caps) = pattern.captures_at(text, from) else {
            break;
        };
        let Some(m) = caps.get(0) else {
            break;
        };
        out.push_str(&text[copied..m.start()]);
        for piece in replacement {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Group(g) => out.push_str(caps.get(*g).map_or("", |g| g.as_str())),
            }
        }
        copied = m.end();
        if !all {
            break;
        }
        from = if m.is_empty() {
            match text[m.end()..].chars().next() {
                Some(c) => m.end() + c.len_utf8(),
                None => break,
            }
        } else {
            m.end()
        };
    }
    out.push_str(&text[copied..]);
    out
}
