//! The JAAS login configuration of a Java Kafka client (Flink, Kafka tools, Spark...), as the JDK's
//! `sun.security.provider.ConfigFile` reads it, reduced to what `Krb5LoginModule` needs.
//!
//! Accepted shapes:
//! ```text
//! KafkaClient {                                    // a JAAS file (java.security.auth.login.config)
//!   com.sun.security.auth.module.Krb5LoginModule required
//!   useKeyTab=true storeKey=true keyTab="/etc/kafka/client.keytab"
//!   principal="client@EXAMPLE.COM";
//! };
//! com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true ...;   // sasl.jaas.config value
//! sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required \    // a client.properties
//!     useKeyTab=true ...;
//! ```
//! Comments (`//`, `/* */`) are skipped; values may be quoted (`"..."`, whitespace inside is kept, as
//! Java keeps it) or bare words. Option names are case-sensitive in `Krb5LoginModule`, so `keytab=` is
//! silently ignored by Java: [`Login::warnings`] says so.

/// The section Kafka clients read (`sasl.jaas.config` has no section).
pub const KAFKA_CLIENT_SECTION: &str = "KafkaClient";
pub const KRB5_LOGIN_MODULE: &str = "com.sun.security.auth.module.Krb5LoginModule";

/// Options `Krb5LoginModule` knows (JDK documentation of the class).
const KNOWN_OPTIONS: &[&str] = &[
    "refreshKrb5Config",
    "useTicketCache",
    "ticketCache",
    "renewTGT",
    "doNotPrompt",
    "useKeyTab",
    "keyTab",
    "storeKey",
    "principal",
    "isInitiator",
    "useFirstPass",
    "tryFirstPass",
    "storePass",
    "clearPass",
    "debug",
];

/// One login module line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleEntry {
    pub class: String,
    pub flag: String,
    /// Options in order, values as Java sees them (quotes removed, inner whitespace kept).
    pub options: Vec<(String, String)>,
}

impl ModuleEntry {
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Java's `Boolean.parseBoolean`-style flags: only "true" (any case) is true.
    pub fn flag_option(&self, name: &str) -> bool {
        self.option(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// None for a bare `sasl.jaas.config` value.
    pub name: Option<String>,
    pub modules: Vec<ModuleEntry>,
}

/// Parse the text of a JAAS file, a `sasl.jaas.config` value, or a properties file holding one.
pub fn parse(text: &str) -> Result<Vec<Section>, String> {
    let text = match properties_value(text, "sasl.jaas.config") {
        Some(value) => value,
        None => text.to_string(),
    };
    let tokens = tokenize(&text)?;
    let mut p = Parser { tokens, pos: 0 };
    let mut sections = Vec::new();
    // A bare module line: "<class> <flag> options ;" (no braces anywhere).
    if !p.tokens.contains(&Token::Open) {
        let mut modules = Vec::new();
        while !p.at_end() {
            modules.push(p.module()?);
        }
        if modules.is_empty() {
            return Err("no login module found".into());
        }
        return Ok(vec![Section { name: None, modules }]);
    }
    while !p.at_end() {
        let name = p.word("a section name such as KafkaClient")?;
        p.expect(&Token::Open, "'{' after the section name")?;
        let mut modules = Vec::new();
        while p.peek() != Some(&Token::Close) {
            if p.at_end() {
                return Err(format!("section {name}: missing '}}'"));
            }
            modules.push(p.module()?);
        }
        p.expect(&Token::Close, "'}'")?;
        p.expect(&Token::Semi, &format!("';' after the closing '}}' of section {name}"))?;
        sections.push(Section {
            name: Some(name),
            modules,
        });
    }
    Ok(sections)
}

/// What the Kafka client section asks `Krb5LoginModule` to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub entry: ModuleEntry,
    /// The section name used (None: a bare sasl.jaas.config value).
    pub section: Option<String>,
    pub use_key_tab: bool,
    pub use_ticket_cache: bool,
    /// `keyTab` exactly as Java reads it (may carry stray whitespace).
    pub key_tab: Option<String>,
    pub principal: Option<String>,
    pub ticket_cache: Option<String>,
}

impl Login {
    /// The Kafka client login of parsed sections: the KafkaClient section (or the only section).
    pub fn from_sections(sections: &[Section]) -> Result<Login, String> {
        let section = match sections
            .iter()
            .find(|s| s.name.as_deref().is_none_or(|n| n == KAFKA_CLIENT_SECTION))
        {
            Some(s) => s,
            None => {
                let names: Vec<&str> = sections.iter().filter_map(|s| s.name.as_deref()).collect();
                return Err(format!(
                    "no {KAFKA_CLIENT_SECTION} section (found: {}); Kafka clients read only {KAFKA_CLIENT_SECTION}",
                    names.join(", ")
                ));
            }
        };
        let Some(entry) = section.modules.iter().find(|m| m.class == KRB5_LOGIN_MODULE) else {
            let classes: Vec<&str> = section.modules.iter().map(|m| m.class.as_str()).collect();
            return Err(format!(
                "the {} section has no {KRB5_LOGIN_MODULE} (it has {}); GSSAPI needs Krb5LoginModule",
                section.name.as_deref().unwrap_or("sasl.jaas.config"),
                classes.join(", ")
            ));
        };
        Ok(Login {
            use_key_tab: entry.flag_option("useKeyTab"),
            use_ticket_cache: entry.flag_option("useTicketCache"),
            key_tab: entry.option("keyTab").map(str::to_string),
            principal: entry.option("principal").map(str::to_string),
            ticket_cache: entry.option("ticketCache").map(str::to_string),
            section: section.name.clone(),
            entry: entry.clone(),
        })
    }

    /// Options Java silently ignores (wrong case, unknown names) and other oddities.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, value) in &self.entry.options {
            if KNOWN_OPTIONS.contains(&name.as_str()) {
                if value.contains("${") {
                    out.push(format!(
                        "{name}=\"{value}\" contains ${{...}}: Java expands it from system properties"
                    ));
                }
                continue;
            }
            match KNOWN_OPTIONS.iter().find(|k| k.eq_ignore_ascii_case(name)) {
                Some(right) => out.push(format!(
                    "option {name} is ignored by Krb5LoginModule (option names are case-sensitive): write {right}"
                )),
                None => out.push(format!(
                    "option {name} is not a Krb5LoginModule option; Java ignores it"
                )),
            }
        }
        if self.entry.flag != "required" {
            out.push(format!(
                "flag {} instead of required: Kafka still uses the login, but a failure is reported less clearly",
                self.entry.flag
            ));
        }
        out
    }

    /// The module line with `keyTab` trimmed, for the fix of a path with stray whitespace.
    pub fn fixed_line(&self) -> String {
        let mut line = format!("{} {}", self.entry.class, self.entry.flag);
        for (name, value) in &self.entry.options {
            let value = if name == "keyTab" { value.trim() } else { value.as_str() };
            if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
                line.push_str(&format!(" {name}={value}"));
            } else {
                line.push_str(&format!(" {name}=\"{value}\""));
            }
        }
        line.push(';');
        line
    }
}

/// The value of `key` in a Java properties text (`key=value` or `key: value`, `\` continuations).
pub fn properties_value(text: &str, key: &str) -> Option<String> {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix(key) else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(rest) = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':')) else {
            continue;
        };
        let mut value = String::new();
        let mut current = rest.trim_start().to_string();
        loop {
            let continued = current.ends_with('\\') && !current.ends_with("\\\\");
            if continued {
                current.pop();
            }
            value.push_str(&current);
            if !continued {
                break;
            }
            match lines.next() {
                Some(next) => current = next.trim_start().to_string(),
                None => break,
            }
        }
        return Some(value);
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Semi,
    Equals,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                if i + 1 >= chars.len() {
                    return Err("unterminated /* comment".into());
                }
                i += 2;
            }
            '{' => {
                out.push(Token::Open);
                i += 1;
            }
            '}' => {
                out.push(Token::Close);
                i += 1;
            }
            ';' => {
                out.push(Token::Semi);
                i += 1;
            }
            '=' => {
                out.push(Token::Equals);
                i += 1;
            }
            '"' | '\'' => {
                let quote = c;
                i += 1;
                let mut value = String::new();
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(format!("unterminated quoted value {quote}{value}"));
                    };
                    i += 1;
                    if c == quote {
                        break;
                    }
                    if c == '\\' {
                        // java.io.StreamTokenizer escapes
                        let Some(&e) = chars.get(i) else {
                            return Err("a quoted value ends with a backslash".into());
                        };
                        i += 1;
                        value.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                    } else {
                        value.push(c);
                    }
                }
                out.push(Token::Quoted(value));
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '{' | '}' | ';' | '=' | '"') {
                    i += 1;
                }
                out.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            Some(other) => Err(format!("expected {what}, found {}", describe(&other))),
            None => Err(format!("expected {what}, found the end of the text")),
        }
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == *token => Ok(()),
            Some(other) => Err(format!("expected {what}, found {}", describe(&other))),
            None => Err(format!("expected {what}, found the end of the text")),
        }
    }

    /// `<class> <flag> (name = value)* ;`
    fn module(&mut self) -> Result<ModuleEntry, String> {
        let class = self.word("a login module class")?;
        let flag = self.word(&format!("a control flag (required, ...) after {class}"))?;
        if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
            return Err(format!(
                "{class}: {flag:?} is not a control flag; expected required, requisite, sufficient or optional"
            ));
        }
        let mut options = Vec::new();
        loop {
            match self.next() {
                Some(Token::Semi) => break,
                Some(Token::Word(name)) => {
                    self.expect(&Token::Equals, &format!("'=' after option {name}"))?;
                    let value = match self.next() {
                        Some(Token::Word(v)) | Some(Token::Quoted(v)) => v,
                        Some(other) => {
                            return Err(format!("option {name}: expected a value, found {}", describe(&other)))
                        }
                        None => return Err(format!("option {name}: missing value")),
                    };
                    options.push((name, value));
                }
                Some(other) => {
                    return Err(format!(
                    "{class}: expected an option or ';', found {} (is a ';' missing at the end of the module line?)",
                    describe(&other)
                ))
                }
                None => return Err(format!("{class}: the module line does not end with ';'")),
            }
        }
        Ok(ModuleEntry { class, flag, options })
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(w) => format!("{w:?}"),
        Token::Quoted(q) => format!("\"{q}\""),
        Token::Open => "'{'".into(),
        Token::Close => "'}'".into(),
        Token::Semi => "';'".into(),
        Token::Equals => "'='".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaas_file_with_several_sections() {
        let text = r#"
// ZooKeeper
Client {
  com.sun.security.auth.module.Krb5LoginModule required
  useKeyTab=true keyTab="/etc/zk.keytab" principal="zk@EXAMPLE.COM";
};
/* the Kafka client */
KafkaClient {
   com.sun.security.auth.module.Krb5LoginModule required
   useKeyTab=true
   storeKey=true
   keyTab=" /etc/kafka.keytab"
   principal="client@EXAMPLE.COM";
};
"#;
        let sections = parse(text).expect("parses");
        assert_eq!(sections.len(), 2);
        let login = Login::from_sections(&sections).expect("login");
        assert_eq!(login.section.as_deref(), Some("KafkaClient"));
        assert!(login.use_key_tab && !login.use_ticket_cache);
        assert_eq!(login.key_tab.as_deref(), Some(" /etc/kafka.keytab"));
        assert_eq!(login.principal.as_deref(), Some("client@EXAMPLE.COM"));
        assert!(login.warnings().is_empty(), "{:?}", login.warnings());
        assert_eq!(
            login.fixed_line(),
            "com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true \
             keyTab=\"/etc/kafka.keytab\" principal=\"client@EXAMPLE.COM\";"
        );
    }

    #[test]
    fn sasl_jaas_config_value_and_properties() {
        let bare = "com.sun.security.auth.module.Krb5LoginModule required useTicketCache=TRUE;";
        let login = Login::from_sections(&parse(bare).expect("bare")).expect("login");
        assert!(login.use_ticket_cache && !login.use_key_tab);
        assert_eq!(login.section, None);

        let props = "bootstrap.servers=b:9092\nsasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required \\\n    useKeyTab=true keytab='/k.keytab' principal=\"c@R\";\nsecurity.protocol=SASL_PLAINTEXT\n";
        let login = Login::from_sections(&parse(props).expect("props")).expect("login");
        assert!(login.use_key_tab);
        assert_eq!(login.key_tab, None, "keytab (lower case) is not keyTab");
        let w = login.warnings();
        assert!(
            w.iter().any(|w| w.contains("case-sensitive") && w.contains("keyTab")),
            "{w:?}"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse("KafkaClient {\n com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true\n};")
            .expect_err("missing ;");
        assert!(e.contains("';'"), "{e}");
        let e = parse("KafkaClient { x.Y required; }").expect_err("missing ; after }");
        assert!(e.contains("after the closing"), "{e}");
        let e = parse("KafkaClient { x.Y mandatory; };").expect_err("bad flag");
        assert!(e.contains("control flag"), "{e}");
        let sections = parse("Client { x.Y required; };").expect("parses");
        let e = Login::from_sections(&sections).expect_err("no KafkaClient");
        assert!(e.contains("no KafkaClient section (found: Client)"), "{e}");
        let sections =
            parse("KafkaClient { org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a\"; };")
                .expect("parses");
        let e = Login::from_sections(&sections).expect_err("not Krb5");
        assert!(e.contains("PlainLoginModule"), "{e}");
    }
}
