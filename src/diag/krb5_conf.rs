//! Reading krb5.conf the way MIT krb5 (and, for the parts used here, the JDK) does: the profile format
//! (`[section]`, `tag = value`, `tag = { ... }`, `#`/`;` comments, `include`/`includedir`), which file is
//! used, the default realm, the realm of a host through `[domain_realm]`, a realm's KDCs and the
//! host-name canonicalisation settings.
//!
//! Only reading: nothing here talks to a KDC or to DNS.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the krb5.conf in use came from (the MIT order: the option, `KRB5_CONFIG`, `/etc/krb5.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfSource {
    Option,
    Env,
    Default,
}

impl ConfSource {
    pub fn describe(&self) -> &'static str {
        match self {
            ConfSource::Option => "from --krb5-conf",
            ConfSource::Env => "from KRB5_CONFIG",
            ConfSource::Default => "the default; neither --krb5-conf nor KRB5_CONFIG is set",
        }
    }
}

/// The file to read: `option` > `KRB5_CONFIG` (its first existing entry: MIT accepts a colon-separated
/// list) > `/etc/krb5.conf`.
pub fn locate(option: Option<&Path>) -> (PathBuf, ConfSource) {
    if let Some(path) = option {
        return (path.to_path_buf(), ConfSource::Option);
    }
    if let Some(env) = std::env::var_os("KRB5_CONFIG").filter(|v| !v.is_empty()) {
        let text = env.to_string_lossy().into_owned();
        let first = text
            .split(':')
            .find(|p| !p.is_empty() && Path::new(p).exists())
            .or_else(|| text.split(':').find(|p| !p.is_empty()))
            .unwrap_or("")
            .to_string();
        return (PathBuf::from(first), ConfSource::Env);
    }
    (PathBuf::from("/etc/krb5.conf"), ConfSource::Default)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    Group(Vec<(String, Value)>),
}

/// A parsed krb5.conf (with its included files merged, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Krb5Conf {
    /// Every file read, the main one first.
    pub files: Vec<PathBuf>,
    sections: BTreeMap<String, Vec<(String, Value)>>,
}

/// A `kdc = ` entry of a realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdcAddress {
    /// As written in krb5.conf.
    pub entry: String,
    pub host: String,
    pub port: u16,
    /// `udp/` prefix: MIT then never uses TCP for it.
    pub udp_only: bool,
}

impl Krb5Conf {
    pub fn load(path: &Path) -> Result<Krb5Conf, String> {
        let mut conf = Krb5Conf::default();
        conf.read_file(path, 0)?;
        Ok(conf)
    }

    pub fn parse(text: &str) -> Result<Krb5Conf, String> {
        let mut conf = Krb5Conf::default();
        conf.parse_into(text, Path::new("<text>"), 0)?;
        Ok(conf)
    }

    fn read_file(&mut self, path: &Path, depth: usize) -> Result<(), String> {
        if depth > 8 {
            return Err(format!("{}: include nesting deeper than 8", path.display()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.files.push(path.to_path_buf());
        self.parse_into(&text, path, depth)
    }

    fn parse_into(&mut self, text: &str, path: &Path, depth: usize) -> Result<(), String> {
        let mut section: Option<String> = None;
        // Open `tag = {` groups: (tag, entries so far).
        let mut stack: Vec<(String, Vec<(String, Value)>)> = Vec::new();
        for (number, raw) in text.lines().enumerate() {
            let at = || format!("{} line {}", path.display(), number + 1);
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if stack.is_empty() {
                if let Some(rest) = line.strip_prefix("includedir") {
                    if rest.starts_with(char::is_whitespace) {
                        self.include_dir(Path::new(rest.trim()), depth)?;
                        continue;
                    }
                }
                if let Some(rest) = line.strip_prefix("include") {
                    if rest.starts_with(char::is_whitespace) {
                        self.read_file(Path::new(rest.trim()), depth + 1)?;
                        continue;
                    }
                }
                if line.starts_with("module") && line[6..].starts_with(char::is_whitespace) {
                    continue;
                }
            }
            if line.starts_with('[') {
                if !stack.is_empty() {
                    return Err(format!("{}: section header inside an unclosed {{", at()));
                }
                let Some(end) = line.find(']') else {
                    return Err(format!("{}: section header without ']'", at()));
                };
                let name = line[1..end].trim().to_string();
                self.sections.entry(name.clone()).or_default();
                section = Some(name);
                continue;
            }
            if line.starts_with('}') {
                let Some((tag, entries)) = stack.pop() else {
                    return Err(format!("{}: '}}' without an open group", at()));
                };
                self.add(&section, &mut stack, tag, Value::Group(entries));
                continue;
            }
            let Some((tag, value)) = line.split_once('=') else {
                return Err(format!("{}: expected `tag = value`, got {line:?}", at()));
            };
            if section.is_none() {
                return Err(format!("{}: relation outside any [section]", at()));
            }
            let tag = tag.trim().to_string();
            let value = value.trim();
            if value == "{" {
                stack.push((tag, Vec::new()));
                continue;
            }
            let value = unquote(value.strip_suffix('*').map(str::trim_end).unwrap_or(value));
            self.add(&section, &mut stack, tag, Value::Text(value));
        }
        if !stack.is_empty() {
            return Err(format!("{}: a `{{` group is not closed", path.display()));
        }
        Ok(())
    }

    fn include_dir(&mut self, dir: &Path, depth: usize) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("includedir {}: {e}", dir.display()))?;
        let mut names: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                // MIT: names of alphanumerics, '-' and '_', or ending in ".conf".
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                name.ends_with(".conf")
                    || (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            })
            .collect();
        names.sort();
        for path in names {
            self.read_file(&path, depth + 1)?;
        }
        Ok(())
    }

    fn add(
        &mut self,
        section: &Option<String>,
        stack: &mut [(String, Vec<(String, Value)>)],
        tag: String,
        value: Value,
    ) {
        match stack.last_mut() {
            Some((_, entries)) => entries.push((tag, value)),
            None => {
                if let Some(section) = section {
                    self.sections.entry(section.clone()).or_default().push((tag, value));
                }
            }
        }
    }

    /// The first value of `[libdefaults] tag` (MIT takes the first).
    pub fn libdefault(&self, tag: &str) -> Option<&str> {
        self.sections.get("libdefaults")?.iter().find_map(|(t, v)| match v {
            Value::Text(s) if t == tag => Some(s.as_str()),
            _ => None,
        })
    }

    /// A boolean libdefault as MIT reads it (`true/yes/on/1`, `false/no/off/0`, case-insensitive).
    pub fn libdefault_bool(&self, tag: &str) -> Option<bool> {
        self.libdefault(tag).and_then(parse_bool)
    }

    pub fn default_realm(&self) -> Option<&str> {
        self.libdefault("default_realm").filter(|r| !r.is_empty())
    }

    /// Seconds of allowed clock skew (`clockskew`, default 300).
    pub fn clockskew(&self) -> u64 {
        self.libdefault("clockskew")
            .and_then(|v| v.trim_end_matches('s').parse().ok())
            .unwrap_or(300)
    }

    fn realm_group(&self, realm: &str) -> Option<&Vec<(String, Value)>> {
        self.sections.get("realms")?.iter().find_map(|(t, v)| match v {
            Value::Group(entries) if t == realm => Some(entries),
            _ => None,
        })
    }

    pub fn has_realm(&self, realm: &str) -> bool {
        self.realm_group(realm).is_some()
    }

    /// The realms with a `[realms]` entry, in file order.
    pub fn realms(&self) -> Vec<&str> {
        self.sections
            .get("realms")
            .into_iter()
            .flatten()
            .filter(|(_, v)| matches!(v, Value::Group(_)))
            .map(|(t, _)| t.as_str())
            .collect()
    }

    /// The realm's `kdc` entries (`host`, `host:port`, `[v6]:port`, optional `tcp/` / `udp/` prefix).
    pub fn kdcs(&self, realm: &str) -> Vec<KdcAddress> {
        let Some(entries) = self.realm_group(realm) else {
            return Vec::new();
        };
        entries
            .iter()
            .filter(|(t, _)| t == "kdc")
            .filter_map(|(_, v)| match v {
                Value::Text(s) => Some(parse_kdc(s)),
                Value::Group(_) => None,
            })
            .collect()
    }

    /// The `[domain_realm]` entry for `host` as MIT looks it up: the full name, then each parent
    /// domain with and without a leading dot (`a.b.c`, `.b.c`, `b.c`, `.c`, `c`). Returns (the key
    /// that matched, the realm).
    pub fn domain_realm(&self, host: &str) -> Option<(String, String)> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let entries = self.sections.get("domain_realm")?;
        let lookup = |key: &str| {
            entries.iter().find_map(|(t, v)| match v {
                Value::Text(realm) if t.eq_ignore_ascii_case(key) => Some(realm.clone()),
                _ => None,
            })
        };
        let mut candidate: &str = &host;
        loop {
            if let Some(realm) = lookup(candidate) {
                return Some((candidate.to_string(), realm));
            }
            if let Some(rest) = candidate.strip_prefix('.') {
                if rest.is_empty() {
                    return None;
                }
                candidate = rest;
            } else {
                match candidate.find('.') {
                    Some(i) => candidate = &candidate[i..],
                    None => return None,
                }
            }
        }
    }

    /// The realm clients use for a service on `host`: `[domain_realm]`, else the default realm.
    /// (MIT may also ask DNS TXT records when dns_lookup_realm is true, and uses KDC referrals; the JDK
    /// reads the same `[domain_realm]` section.)
    pub fn host_realm(&self, host: &str) -> Option<(String, RealmSource)> {
        if let Some((key, realm)) = self.domain_realm(host) {
            return Some((realm, RealmSource::DomainRealm(key)));
        }
        self.default_realm().map(|r| (r.to_string(), RealmSource::Default))
    }
}

/// Why a host is in its realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealmSource {
    /// `[domain_realm]` entry with this key.
    DomainRealm(String),
    /// No `[domain_realm]` entry: the default realm.
    Default,
}

pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "t" | "y" => Some(true),
        "false" | "no" | "off" | "0" | "nil" | "f" | "n" => Some(false),
        _ => None,
    }
}

fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('b') => out.push('\u{8}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn parse_kdc(entry: &str) -> KdcAddress {
    let mut text = entry.trim();
    let mut udp_only = false;
    if let Some(rest) = text.strip_prefix("tcp/") {
        text = rest;
    } else if let Some(rest) = text.strip_prefix("udp/") {
        text = rest;
        udp_only = true;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, tail)) => (host.to_string(), tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (rest.to_string(), None),
        }
    } else if text.matches(':').count() == 1 {
        let (host, port) = text.split_once(':').unwrap_or((text, ""));
        (host.to_string(), port.parse().ok())
    } else {
        (text.to_string(), None)
    };
    KdcAddress {
        entry: entry.trim().to_string(),
        host,
        port: port.unwrap_or(88),
        udp_only,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
# comment
[libdefaults]
  default_realm = EXAMPLE.COM
  dns_canonicalize_hostname = false
  rdns = no
  clockskew = 120
  ; another comment
[realms]
  EXAMPLE.COM = {
    kdc = 127.0.0.1:18888
    kdc = kdc2.example.com
    kdc = tcp/[::1]:750
    admin_server = kdc.example.com
    auth_to_local = {
      x = y
    }
  }
  OTHER.ORG = {
    kdc = udp/kdc.other.org:88
  }*
[domain_realm]
  .example.com = EXAMPLE.COM
  broker1.partner.example.com = PARTNER.COM
  .other.org = OTHER.ORG
  localhost = "EXAMPLE.COM"
"#;

    #[test]
    fn parses_libdefaults_realms_and_domain_realm() {
        let c = Krb5Conf::parse(CONF).expect("parses");
        assert_eq!(c.default_realm(), Some("EXAMPLE.COM"));
        assert_eq!(c.libdefault_bool("dns_canonicalize_hostname"), Some(false));
        assert_eq!(c.libdefault_bool("rdns"), Some(false));
        assert_eq!(c.libdefault_bool("dns_lookup_kdc"), None);
        assert_eq!(c.clockskew(), 120);
        assert_eq!(c.realms(), vec!["EXAMPLE.COM", "OTHER.ORG"]);
        let kdcs = c.kdcs("EXAMPLE.COM");
        assert_eq!(
            kdcs.iter()
                .map(|k| (k.host.as_str(), k.port, k.udp_only))
                .collect::<Vec<_>>(),
            vec![
                ("127.0.0.1", 18888, false),
                ("kdc2.example.com", 88, false),
                ("::1", 750, false)
            ]
        );
        assert!(c.kdcs("OTHER.ORG")[0].udp_only);
        assert!(c.kdcs("NOPE").is_empty());
        assert_eq!(
            c.domain_realm("broker1.partner.example.com"),
            Some(("broker1.partner.example.com".into(), "PARTNER.COM".into()))
        );
        assert_eq!(
            c.domain_realm("Broker2.Partner.Example.COM."),
            Some((".example.com".into(), "EXAMPLE.COM".into()))
        );
        assert_eq!(
            c.domain_realm("a.b.other.org"),
            Some((".other.org".into(), "OTHER.ORG".into()))
        );
        assert_eq!(
            c.domain_realm("localhost"),
            Some(("localhost".into(), "EXAMPLE.COM".into()))
        );
        assert_eq!(c.domain_realm("example.net"), None);
        assert_eq!(
            c.host_realm("example.net"),
            Some(("EXAMPLE.COM".into(), RealmSource::Default))
        );
    }

    #[test]
    fn reports_syntax_errors_with_line_numbers() {
        let e = Krb5Conf::parse("[libdefaults]\n default_realm EXAMPLE.COM\n").expect_err("no =");
        assert!(e.contains("line 2"), "{e}");
        let e = Krb5Conf::parse("[realms]\n A = {\n kdc = x\n").expect_err("unclosed");
        assert!(e.contains("not closed"), "{e}");
        let e = Krb5Conf::parse("default_realm = X\n").expect_err("no section");
        assert!(e.contains("outside any [section]"), "{e}");
    }

    #[test]
    fn includes_and_locate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = dir.path().join("conf.d");
        std::fs::create_dir(&extra).expect("mkdir");
        std::fs::write(
            extra.join("realms.conf"),
            "[realms]\n EXAMPLE.COM = {\n kdc = k:1\n }\n",
        )
        .expect("write");
        std::fs::write(extra.join("ignored.rpmsave"), "garbage").expect("write");
        let main = dir.path().join("krb5.conf");
        std::fs::write(
            &main,
            format!(
                "includedir {}\n[libdefaults]\n default_realm = EXAMPLE.COM\n",
                extra.display()
            ),
        )
        .expect("write");
        let c = Krb5Conf::load(&main).expect("loads");
        assert_eq!(c.files.len(), 2);
        assert_eq!(c.kdcs("EXAMPLE.COM")[0].port, 1);
        assert_eq!(locate(Some(&main)), (main.clone(), ConfSource::Option));
        assert!(Krb5Conf::load(&dir.path().join("nope"))
            .expect_err("missing")
            .contains("cannot read"));
    }
}
