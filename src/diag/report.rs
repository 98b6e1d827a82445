//! The doctor's report: one [`Step`] per check with a status, a plain-words detail and, for warnings
//! and failures, why it matters and how to fix it. Rendered for people ([`Report::human`]) or as JSON
//! ([`Report::json`]): `{"ok": bool, "steps": [{"name", "status", "detail", "why", "fix"}], "skipped": [...]}`.
use std::fmt::Write as _;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn symbol(self) -> &'static str {
        match self {
            Status::Ok => "✔",
            Status::Warn => "⚠",
            Status::Fail => "✘",
        }
    }
}

/// One check. `why` and `fix` are `None` when there is nothing to explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub why: Option<String>,
    pub fix: Option<String>,
}

impl Step {
    pub fn ok(name: &str, detail: impl Into<String>) -> Step {
        Step {
            name: name.to_string(),
            status: Status::Ok,
            detail: detail.into(),
            why: None,
            fix: None,
        }
    }

    pub fn warn(name: &str, detail: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Step {
        Step::with(name, Status::Warn, detail, why, fix)
    }

    pub fn fail(name: &str, detail: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Step {
        Step::with(name, Status::Fail, detail, why, fix)
    }

    fn with(
        name: &str,
        status: Status,
        detail: impl Into<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Step {
        let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
        Step {
            name: name.to_string(),
            status,
            detail: detail.into(),
            why: non_empty(why.into()),
            fix: non_empty(fix.into()),
        }
    }
}

/// A step that did not run because an earlier one failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    pub steps: Vec<Step>,
    pub skipped: Vec<Skipped>,
}

impl Report {
    pub fn new() -> Report {
        Report {
            ok: true,
            ..Report::default()
        }
    }

    pub fn push(&mut self, step: Step) {
        if step.status == Status::Fail {
            self.ok = false;
        }
        self.steps.push(step);
    }

    pub fn skip(&mut self, names: &[&str], reason: &str) {
        for name in names {
            self.skipped.push(Skipped {
                name: name.to_string(),
                reason: reason.to_string(),
            });
        }
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    pub fn failed(&self, name: &str) -> bool {
        self.step(name).is_some_and(|s| s.status == Status::Fail)
    }

    /// 0 when no step failed (warnings allowed), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.ok {
            0
        } else {
            1
        }
    }

    /// One line per step (`✔ name: detail`, `⚠`, `✘`), then indented `why:` and `fix:` lines.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            let _ = writeln!(out, "{} {}: {}", step.status.symbol(), step.name, step.detail);
            if let Some(why) = &step.why {
                let _ = writeln!(out, "{}", indent("why: ", why));
            }
            if let Some(fix) = &step.fix {
                let _ = writeln!(out, "{}", indent("fix: ", fix));
            }
        }
        if !self.skipped.is_empty() {
            let mut reasons: Vec<&str> = Vec::new();
            for s in &self.skipped {
                if !reasons.contains(&s.reason.as_str()) {
                    reasons.push(&s.reason);
                }
            }
            for reason in reasons {
                let names: Vec<&str> = self
                    .skipped
                    .iter()
                    .filter(|s| s.reason == reason)
                    .map(|s| s.name.as_str())
                    .collect();
                let _ = writeln!(out, "- not run: {} ({reason})", names.join(", "));
            }
        }
        let failed = self.steps.iter().filter(|s| s.status == Status::Fail).count();
        let warned = self.steps.iter().filter(|s| s.status == Status::Warn).count();
        let _ = match (failed, warned) {
            (0, 0) => writeln!(out, "all {} checks passed", self.steps.len()),
            (0, w) => writeln!(out, "all {} checks passed, {w} with warnings", self.steps.len()),
            (f, _) => writeln!(out, "{f} of {} checks failed", self.steps.len()),
        };
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"ok\": false, \"error\": \"{e}\"}}"))
    }
}

/// `    why: first line` with continuation lines aligned under the text.
fn indent(label: &str, text: &str) -> String {
    let pad = " ".repeat(4 + label.len());
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            out.push_str("    ");
            out.push_str(label);
        } else {
            out.push('\n');
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_and_json_rendering() {
        let mut r = Report::new();
        r.push(Step::ok("krb5_conf", "/etc/krb5.conf, default_realm EXAMPLE.COM"));
        assert_eq!(r.exit_code(), 0);
        r.push(Step::warn("spn", "kafka/127.0.0.1@EXAMPLE.COM", "an IP address", ""));
        assert_eq!(r.exit_code(), 0, "warnings do not fail");
        r.push(Step::fail(
            "service_ticket",
            "no kafka/127.0.0.1@EXAMPLE.COM",
            "LOOKING_UP_SERVER",
            "kadmin: addprinc -randkey kafka/127.0.0.1@EXAMPLE.COM\nthen ktadd",
        ));
        r.skip(&["server_keytab", "handshake"], "no service ticket");
        assert_eq!(r.exit_code(), 1);
        assert!(r.failed("service_ticket") && !r.failed("spn"));
        let text = r.human();
        assert_eq!(
            text,
            "✔ krb5_conf: /etc/krb5.conf, default_realm EXAMPLE.COM\n\
             ⚠ spn: kafka/127.0.0.1@EXAMPLE.COM\n    why: an IP address\n\
             ✘ service_ticket: no kafka/127.0.0.1@EXAMPLE.COM\n    why: LOOKING_UP_SERVER\n\
             \x20   fix: kadmin: addprinc -randkey kafka/127.0.0.1@EXAMPLE.COM\n         then ktadd\n\
             - not run: server_keytab, handshake (no service ticket)\n\
             1 of 3 checks failed\n"
        );
        let json: serde_json::Value = serde_json::from_str(&r.json()).expect("json");
        assert_eq!(json["ok"], false);
        assert_eq!(json["steps"][1]["status"], "warn");
        assert_eq!(json["steps"][1]["fix"], serde_json::Value::Null);
        assert_eq!(json["steps"][2]["name"], "service_ticket");
        assert_eq!(json["steps"][2]["why"], "LOOKING_UP_SERVER");
        assert_eq!(json["skipped"][0]["name"], "server_keytab");
    }
}
