//! `kgate doctor kerberos` against a real MIT KDC (scripts/kdc.sh, in a temporary directory on a free
//! port) and a real kgate GSSAPI listener (`kgate::app::start`, in this process).
//!
//! The doctor sets process-global Kerberos environment variables, and so does the server, so each
//! doctor run is a child process: this test binary again, running only [`doctor_child`] with the
//! arguments in `KGATE_DOCTOR_ARGS` (main.rs, which would give `kgate doctor`, is wired elsewhere).
//! The clock-skew scenario runs that child under libfaketime (`faketime`, Debian package `faketime`).
//! All scenarios share one KDC and one server and run in sequence in one test function; the stale
//! KVNO scenario re-keys the service principal and therefore runs last.
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use clap::Parser;
use kgate::config::{Config, KerberosConfig, ListenerConfig, SecurityProtocol};
use serde_json::Value;

const ARGS_ENV: &str = "KGATE_DOCTOR_ARGS";
const OUT_ENV: &str = "KGATE_DOCTOR_OUT";

#[derive(Parser)]
struct DoctorCli {
    #[command(subcommand)]
    cmd: kgate::cli::doctor::DoctorCommand,
}

/// The child side: runs the doctor with the arguments in KGATE_DOCTOR_ARGS, writes its output to
/// KGATE_DOCTOR_OUT and exits with its exit code. Without those variables it does nothing.
#[test]
fn doctor_child() {
    let Ok(args) = std::env::var(ARGS_ENV) else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).expect("KGATE_DOCTOR_ARGS is a JSON array");
    let out = std::env::var(OUT_ENV).expect("KGATE_DOCTOR_OUT");
    let argv = ["kgate", "kerberos"].iter().map(|s| s.to_string()).chain(args);
    let (code, text) = match DoctorCli::try_parse_from(argv) {
        Ok(cli) => kgate::cli::doctor::execute(cli.cmd),
        Err(e) => (2, e.to_string()),
    };
    std::fs::write(out, text).expect("write doctor output");
    std::process::exit(i32::from(code));
}

#[path = "common/kdc.rs"]
mod kdc;
use kdc::{free_port, Kdc};

impl Kdc {
    fn kadmin(&self, query: &str) {
        let out = Command::new("kadmin.local")
            .args(["-r", "EXAMPLE.COM", "-q", query])
            .env("KRB5_CONFIG", self.path("krb5.conf"))
            .env("KRB5_KDC_PROFILE", self.path("kdc.conf"))
            .env(
                "PATH",
                format!("{}:/usr/sbin:/sbin", std::env::var("PATH").unwrap_or_default()),
            )
            .output()
            .expect("kadmin.local");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !text.to_lowercase().contains("error"),
            "kadmin.local {query}: {text}"
        );
    }

    /// kinit from the client keytab into `ccache`, with extra kinit arguments.
    fn kinit(&self, ccache: &Path, extra: &[&str]) {
        let out = Command::new("kinit")
            .args(extra)
            .arg("-kt")
            .arg(self.path("client.keytab"))
            .arg("client@EXAMPLE.COM")
            .env("KRB5_CONFIG", self.path("krb5.conf"))
            .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
            .output()
            .expect("kinit");
        assert!(out.status.success(), "kinit: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A loopback TCP port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

/// What 127.0.0.1 reverse-resolves to (the first /etc/hosts name), as the doctor sees it.
fn loopback_name() -> String {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    for line in hosts.lines() {
        let mut fields = line.split('#').next().unwrap_or("").split_whitespace();
        if fields.next() == Some("127.0.0.1") {
            if let Some(name) = fields.next() {
                return name.to_ascii_lowercase();
            }
        }
    }
    "localhost".into()
}

struct Run {
    code: i32,
    out: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.out))
    }
}

/// Runs the doctor in a child process with `args`, `env`, optionally under faketime.
fn doctor(args: &[String], env: &[(&str, String)], faketime: Option<&str>) -> Run {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = out_dir.path().join("out");
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = match faketime {
        Some(offset) => {
            let mut c = Command::new("faketime");
            c.arg("-f").arg(offset).arg(&exe);
            // Fake only the wall clock: tokio's timers use the monotonic one.
            c.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
            c
        }
        None => Command::new(&exe),
    };
    cmd.args(["doctor_child", "--exact", "--nocapture", "--test-threads=1"]);
    for var in [
        "KRB5_CONFIG",
        "KRB5_KTNAME",
        "KRB5_CLIENT_KTNAME",
        "KRB5CCNAME",
        "KRB5RCACHEDIR",
        "KRB5RCACHETYPE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env(ARGS_ENV, serde_json::to_string(args).expect("json"));
    cmd.env(OUT_ENV, &out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.output().expect("run the doctor child");
    let text = std::fs::read_to_string(&out).unwrap_or_else(|_| {
        panic!(
            "the doctor child wrote nothing: {}\n{}",
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr)
        )
    });
    if std::env::var_os("KGATE_DOCTOR_SHOW").is_some() {
        eprintln!("--- doctor {args:?} -> {:?}\n{text}", status.status.code());
    }
    Run {
        code: status.status.code().unwrap_or(-1),
        out: text,
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn step<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {json:#}"))
}

/// The status of every step, in order.
fn statuses(json: &Value) -> Vec<(String, String)> {
    json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_string(),
                s["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

fn text_of(step: &Value) -> String {
    format!(
        "{}\n{}\n{}",
        step["detail"].as_str().unwrap_or(""),
        step["why"].as_str().unwrap_or(""),
        step["fix"].as_str().unwrap_or("")
    )
}

fn assert_contains(step: &Value, needles: &[&str]) {
    let text = text_of(step);
    for n in needles {
        assert!(text.contains(n), "step {} lacks {n:?}:\n{text}", step["name"]);
    }
}

/// Exit 1, `name` failed, and its text names the cause.
fn assert_fails(run: &Run, name: &str, needles: &[&str]) -> Value {
    assert_eq!(run.code, 1, "exit code 1 expected:\n{}", run.out);
    let json = run.json();
    assert_eq!(json["ok"], false);
    let s = step(&json, name);
    assert_eq!(s["status"], "fail", "{name} should fail:\n{json:#}");
    assert_contains(s, needles);
    json
}

struct Env {
    kdc: Kdc,
    port: u16,
}

impl Env {
    fn base(&self, bootstrap: &str) -> Vec<String> {
        args(&[
            "--bootstrap",
            bootstrap,
            "--krb5-conf",
            &self.kdc.path("krb5.conf").display().to_string(),
            "--json",
            "--timeout",
            "3",
        ])
    }

    fn bootstrap(&self) -> String {
        format!("localhost:{}", self.port)
    }

    fn keytab_login(&self) -> Vec<String> {
        args(&[
            "--keytab",
            &self.kdc.path("client.keytab").display().to_string(),
            "--principal",
            "client@EXAMPLE.COM",
        ])
    }

    fn with(&self, bootstrap: &str, extra: &[String]) -> Vec<String> {
        let mut a = self.base(bootstrap);
        a.extend_from_slice(extra);
        a
    }
}

#[test]
fn doctor_kerberos_scenarios() {
    if std::env::var(ARGS_ENV).is_ok() {
        return; // in a doctor child
    }
    let kdc = Kdc::start(&["localhost", "broker1.example.com"]);
    // The listener's keytab holds only kafka/localhost; other.keytab only kafka/broker1.example.com.
    kdc.kadmin(&format!(
        "ktadd -norandkey -k {} kafka/broker1.example.com@EXAMPLE.COM",
        kdc.path("other.keytab").display()
    ));
    std::fs::copy(kdc.path("kafka.keytab"), kdc.path("server.keytab")).expect("copy");
    kdc.kadmin(&format!(
        "ktremove -k {} kafka/broker1.example.com@EXAMPLE.COM all",
        kdc.path("server.keytab").display()
    ));

    let port = free_port();
    std::env::set_var("KRB5RCACHEDIR", kdc.dir.path());
    let config = Config {
        data_dir: kdc.path("data"),
        listeners: vec![
            ListenerConfig {
                name: "GSS".into(),
                bind: format!("127.0.0.1:{port}"),
                advertised: Some(format!("localhost:{port}")),
                security_protocol: SecurityProtocol::SaslPlaintext,
                sasl_enabled_mechanisms: vec!["GSSAPI".into()],
                tls: None,
                broker_addresses: None,
            },
            ListenerConfig {
                name: "SCRAM".into(),
                bind: "127.0.0.1:0".into(),
                advertised: Some("localhost:1".into()),
                security_protocol: SecurityProtocol::SaslPlaintext,
                sasl_enabled_mechanisms: vec!["SCRAM-SHA-512".into()],
                tls: None,
                broker_addresses: None,
            },
        ],
        kerberos: Some(KerberosConfig {
            keytab: kdc.path("server.keytab"),
            service_name: "kafka".into(),
            krb5_conf: Some(kdc.path("krb5.conf")),
            principal_to_local_rules: vec!["DEFAULT".into()],
            skip_startup_checks: false,
        }),
        security: kgate::config::SecurityConfig {
            users_file: Some(kdc.path("users.toml")),
            failed_authentication_delay_ms: 0,
            ..Default::default()
        },
        ..Config::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let running = runtime.block_on(kgate::app::start(config)).expect("kgate starts");
    let scram_port = running.listeners[1].1.port();
    let env = Env { kdc, port };

    let mut passed = Vec::new();
    all_good(&env);
    passed.push("all good");
    ip_bootstrap_has_no_principal(&env);
    passed.push("IP bootstrap");
    server_keytab_without_the_host(&env);
    passed.push("keytab without the advertised host");
    wrong_service_name(&env);
    passed.push("wrong service name");
    wrong_realm_mapping(&env);
    passed.push("wrong realm mapping");
    jaas_keytab_with_a_leading_space(&env);
    passed.push("JAAS keyTab with a leading space");
    missing_and_expired_tickets(&env);
    passed.push("missing and expired tickets");
    kdc_unreachable(&env);
    passed.push("KDC unreachable");
    clock_skew(&env);
    passed.push("clock skew");
    listener_problems(&env, scram_port);
    passed.push("listener problems");
    stale_kvno(&env);
    passed.push("stale KVNO");
    eprintln!("doctor scenarios passed: {}", passed.join(", "));

    runtime.block_on(running.stop());
}

fn all_good(env: &Env) {
    let mut extra = env.keytab_login();
    extra.extend(args(&[
        "--server-keytab",
        &env.kdc.path("server.keytab").display().to_string(),
    ]));
    let run = doctor(&env.with(&env.bootstrap(), &extra), &[], None);
    assert_eq!(run.code, 0, "{}", run.out);
    let json = run.json();
    assert_eq!(json["ok"], true);
    assert_eq!(
        statuses(&json),
        [
            "krb5_conf",
            "spn",
            "kdc",
            "credentials",
            "service_ticket",
            "server_keytab",
            "handshake"
        ]
        .iter()
        .map(|n| (n.to_string(), "ok".to_string()))
        .collect::<Vec<_>>(),
        "{json:#}"
    );
    for s in json["steps"].as_array().expect("steps") {
        for key in ["name", "status", "detail", "why", "fix"] {
            assert!(s.get(key).is_some(), "{key} missing in {s}");
        }
    }
    assert_contains(step(&json, "spn"), &["kafka/localhost@EXAMPLE.COM"]);
    assert_contains(
        step(&json, "service_ticket"),
        &["kafka/localhost@EXAMPLE.COM", "kvno 1"],
    );
    assert_contains(step(&json, "handshake"), &["authenticated", "client@EXAMPLE.COM"]);

    // The same in text form, for people.
    let mut plain = env.with(&env.bootstrap(), &extra);
    plain.retain(|a| a != "--json");
    let run = doctor(&plain, &[], None);
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(run.out.contains("✔ handshake: authenticated"), "{}", run.out);
    assert!(!run.out.contains('✘'), "{}", run.out);
    eprintln!("--- passing run ---\n{}", run.out);
}

fn ip_bootstrap_has_no_principal(env: &Env) {
    let run = doctor(
        &env.with(&format!("127.0.0.1:{}", env.port), &env.keytab_login()),
        &[],
        None,
    );
    let json = assert_fails(
        &run,
        "service_ticket",
        &[
            "kafka/127.0.0.1@EXAMPLE.COM",
            "LOOKING_UP_SERVER",
            "addprinc -randkey kafka/127.0.0.1@EXAMPLE.COM",
        ],
    );
    let spn = step(&json, "spn");
    assert_eq!(spn["status"], "warn", "{json:#}");
    assert_contains(spn, &["IP address", "kafka/127.0.0.1@EXAMPLE.COM"]);
    let alias = loopback_name();
    if alias == "localhost" {
        // The KDC has kafka/localhost, and 127.0.0.1 reverse-resolves to localhost.
        assert_contains(
            step(&json, "service_ticket"),
            &[
                "The KDC does have kafka/localhost@EXAMPLE.COM",
                "bootstrap.servers=localhost:",
            ],
        );
    }
    let skipped: Vec<&str> = json["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(skipped, vec!["handshake"]);

    // Clients that canonicalise through reverse DNS ask for kafka/<reverse name> and succeed.
    if alias == "localhost" {
        for mode in [
            &["--dns-canonicalize"][..],
            &["--client-dns-lookup", "resolve_canonical_bootstrap_servers_only"][..],
        ] {
            let mut extra = env.keytab_login();
            extra.extend(args(mode));
            let run = doctor(&env.with(&format!("127.0.0.1:{}", env.port), &extra), &[], None);
            assert_eq!(run.code, 0, "{mode:?}: {}", run.out);
            let json = run.json();
            let spn = step(&json, "spn");
            assert_eq!(spn["status"], "warn", "still an IP address: {json:#}");
            assert_contains(
                spn,
                &[
                    "kafka/localhost@EXAMPLE.COM (",
                    "ask the KDC for kafka/127.0.0.1@EXAMPLE.COM",
                ],
            );
            assert_eq!(step(&json, "handshake")["status"], "ok");
        }
    }

    let mut plain = env.with(&format!("127.0.0.1:{}", env.port), &env.keytab_login());
    plain.retain(|a| a != "--json");
    let run = doctor(&plain, &[], None);
    assert_eq!(run.code, 1);
    assert!(
        run.out
            .contains("✘ service_ticket: the KDC has no kafka/127.0.0.1@EXAMPLE.COM"),
        "{}",
        run.out
    );
    eprintln!("--- failing run ---\n{}", run.out);
}

fn server_keytab_without_the_host(env: &Env) {
    let mut extra = env.keytab_login();
    extra.extend(args(&[
        "--server-keytab",
        &env.kdc.path("other.keytab").display().to_string(),
    ]));
    let run = doctor(&env.with(&env.bootstrap(), &extra), &[], None);
    let json = assert_fails(
        &run,
        "server_keytab",
        &[
            "holds no key for kafka/localhost@EXAMPLE.COM",
            "kafka/broker1.example.com@EXAMPLE.COM (kvno 1)",
            "ktadd -norandkey",
            "advertise a host the keytab has a key for: broker1.example.com",
        ],
    );
    // The listener itself (with the right keytab) still authenticates.
    assert_eq!(step(&json, "handshake")["status"], "ok", "{json:#}");
}

fn wrong_service_name(env: &Env) {
    let mut extra = env.keytab_login();
    extra.extend(args(&["--service-name", "kafak"]));
    let run = doctor(&env.with(&env.bootstrap(), &extra), &[], None);
    assert_fails(
        &run,
        "service_ticket",
        &[
            "kafak/localhost@EXAMPLE.COM",
            "sasl.kerberos.service.name",
            "The KDC does have kafka/localhost@EXAMPLE.COM",
        ],
    );
}

fn wrong_realm_mapping(env: &Env) {
    let conf = std::fs::read_to_string(env.kdc.path("krb5.conf")).expect("krb5.conf");
    let bad = conf.replace("localhost = EXAMPLE.COM", "localhost = OTHER.COM");
    assert_ne!(conf, bad);
    let path = env.kdc.path("krb5-wrong-realm.conf");
    std::fs::write(&path, bad).expect("write");
    let mut a = args(&[
        "--bootstrap",
        &env.bootstrap(),
        "--krb5-conf",
        &path.display().to_string(),
        "--json",
    ]);
    a.extend(env.keytab_login());
    let run = doctor(&a, &[], None);
    let json = assert_fails(
        &run,
        "krb5_conf",
        &["[domain_realm]", "OTHER.COM", "localhost = EXAMPLE.COM"],
    );
    assert_fails(
        &run,
        "service_ticket",
        &[
            "no cross-realm principal krbtgt/OTHER.COM@EXAMPLE.COM",
            "[domain_realm]",
            "localhost = EXAMPLE.COM",
        ],
    );
    assert_contains(step(&json, "spn"), &["kafka/localhost@OTHER.COM"]);
}

fn jaas_keytab_with_a_leading_space(env: &Env) {
    let keytab = env.kdc.path("client.keytab").display().to_string();
    let jaas = env.kdc.path("kafka_client_jaas.conf");
    std::fs::write(
        &jaas,
        format!(
            "KafkaClient {{\n  com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true\n  storeKey=true\n  \
             keyTab=\" {keytab}\"\n  principal=\"client@EXAMPLE.COM\";\n}};\n"
        ),
    )
    .expect("write jaas");
    let run = doctor(
        &env.with(&env.bootstrap(), &args(&["--jaas", &jaas.display().to_string()])),
        &[],
        None,
    );
    let json = assert_fails(
        &run,
        "jaas",
        &[
            "leading whitespace",
            &format!("a file literally named \" {keytab}\""),
            &format!("keyTab=\"{keytab}\" principal=\"client@EXAMPLE.COM\";"),
        ],
    );
    // The rest is checked with the trimmed path.
    assert_eq!(step(&json, "handshake")["status"], "ok", "{json:#}");

    // The fixed file passes.
    std::fs::write(
        &jaas,
        format!(
            "KafkaClient {{ com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true keyTab=\"{keytab}\" \
             principal=\"client@EXAMPLE.COM\"; }};"
        ),
    )
    .expect("write jaas");
    let run = doctor(
        &env.with(&env.bootstrap(), &args(&["--jaas", &jaas.display().to_string()])),
        &[],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.out);
    assert_eq!(step(&run.json(), "jaas")["status"], "ok");

    // A keyTab that does not exist, and a keytab login without principal.
    for (options, needles) in [
        (
            "keyTab=\"/nonexistent/client.keytab\" principal=\"client@EXAMPLE.COM\"",
            &[
                "keyTab /nonexistent/client.keytab cannot be read",
                "Unable to obtain password from user",
            ][..],
        ),
        (
            &*format!("keyTab=\"{keytab}\""),
            &["useKeyTab=true but no principal", "Could not login", "add principal="][..],
        ),
    ] {
        std::fs::write(
            &jaas,
            format!(
                "KafkaClient {{ com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true {options}; }};"
            ),
        )
        .expect("write jaas");
        let run = doctor(
            &env.with(&env.bootstrap(), &args(&["--jaas", &jaas.display().to_string()])),
            &[],
            None,
        );
        let json = assert_fails(&run, "jaas", needles);
        assert!(json["skipped"]
            .as_array()
            .expect("skipped")
            .iter()
            .any(|s| s["name"] == "credentials"));
    }
}

fn missing_and_expired_tickets(env: &Env) {
    // No ticket at all: a cache nobody ran kinit for.
    let empty = env.kdc.path("empty.ccache");
    let run = doctor(
        &env.base(&env.bootstrap()),
        &[("KRB5CCNAME", format!("FILE:{}", empty.display()))],
        None,
    );
    assert_fails(&run, "credentials", &["kinit", "No Kerberos credentials available"]);

    // A good cache works.
    let good = env.kdc.path("good.ccache");
    env.kdc.kinit(&good, &[]);
    let run = doctor(
        &env.base(&env.bootstrap()),
        &[("KRB5CCNAME", format!("FILE:{}", good.display()))],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.out);
    assert_contains(
        step(&run.json(), "credentials"),
        &["ticket cache FILE:", "client@EXAMPLE.COM"],
    );

    // An expired one.
    let short = env.kdc.path("short.ccache");
    env.kdc.kinit(&short, &["-l", "2s"]);
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let run = doctor(
        &env.base(&env.bootstrap()),
        &[("KRB5CCNAME", format!("FILE:{}", short.display()))],
        None,
    );
    assert_fails(&run, "credentials", &["has expired", "kinit again", "lifetime"]);
}

fn kdc_unreachable(env: &Env) {
    let conf = std::fs::read_to_string(env.kdc.path("krb5.conf")).expect("krb5.conf");
    let start = conf.find("kdc = 127.0.0.1:").expect("kdc line");
    let end = start + conf[start..].find('\n').expect("eol");
    let dead = format!("{}kdc = 127.0.0.1:{}{}", &conf[..start], closed_port(), &conf[end..]);
    let path = env.kdc.path("krb5-dead-kdc.conf");
    std::fs::write(&path, dead).expect("write");
    let mut a = args(&[
        "--bootstrap",
        &env.bootstrap(),
        "--krb5-conf",
        &path.display().to_string(),
        "--json",
    ]);
    a.extend(env.keytab_login());
    let run = doctor(&a, &[], None);
    let json = assert_fails(
        &run,
        "kdc",
        &[
            "no KDC answers: EXAMPLE.COM: 127.0.0.1:",
            "Connection refused",
            "Cannot contact any KDC",
        ],
    );
    assert!(json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .all(|s| s["name"] != "credentials"));
    assert!(json["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .any(|s| s["name"] == "handshake"));
}

fn clock_skew(env: &Env) {
    assert!(
        Command::new("faketime")
            .arg("-f")
            .arg("+0")
            .arg("true")
            .status()
            .is_ok_and(|s| s.success()),
        "faketime is needed for the clock-skew scenario (Debian: apt-get install faketime)"
    );
    // A ticket obtained with the right time, then used by a client whose clock is an hour ahead.
    let cache = env.kdc.path("skew.ccache");
    env.kdc.kinit(&cache, &[]);
    let run = doctor(
        &env.base(&env.bootstrap()),
        &[("KRB5CCNAME", format!("FILE:{}", cache.display()))],
        Some("+1h"),
    );
    assert_fails(
        &run,
        "credentials",
        &[
            "clock skew: this machine's clock",
            "s ahead of the KDC's",
            "NTP",
            "300 s",
            "5 minutes",
        ],
    );
    // With a keytab MIT krb5 quietly corrects its own requests to the KDC (kdc_timesync); the
    // doctor still reports the skew, which Java clients and brokers would hit.
    let run = doctor(&env.with(&env.bootstrap(), &env.keytab_login()), &[], Some("-10m"));
    let json = assert_fails(
        &run,
        "credentials",
        &["s behind the KDC's", "Clock skew too great (37)"],
    );
    assert_contains(step(&json, "kdc"), &["s behind the KDC's"]);
}

fn listener_problems(env: &Env, scram_port: u16) {
    // GSSAPI not enabled on the listener.
    let run = doctor(
        &env.with(&format!("localhost:{scram_port}"), &env.keytab_login()),
        &[],
        None,
    );
    assert_fails(
        &run,
        "handshake",
        &["UNSUPPORTED_SASL_MECHANISM", "SCRAM-SHA-512", "sasl_enabled_mechanisms"],
    );
    // Nothing listens.
    let run = doctor(
        &env.with(&format!("localhost:{}", closed_port()), &env.keytab_login()),
        &[],
        None,
    );
    assert_fails(&run, "handshake", &["cannot connect to localhost:"]);
}

fn stale_kvno(env: &Env) {
    // The server keytab was exported at kvno 1; re-keying the principal makes the KDC issue kvno 2.
    env.kdc.kadmin("cpw -randkey kafka/localhost@EXAMPLE.COM");
    let mut extra = env.keytab_login();
    extra.extend(args(&[
        "--server-keytab",
        &env.kdc.path("server.keytab").display().to_string(),
    ]));
    let run = doctor(&env.with(&env.bootstrap(), &extra), &[], None);
    let json = assert_fails(
        &run,
        "server_keytab",
        &[
            "the broker's keytab is older than the KDC's key: re-export it",
            "ticket kvno 2",
            "kvno 1",
            "ktadd -norandkey",
        ],
    );
    // The listener refuses the ticket too, with Kafka's generic message.
    let handshake = step(&json, "handshake");
    assert_eq!(handshake["status"], "fail", "{json:#}");
    assert_contains(
        handshake,
        &[
            "SASL_AUTHENTICATION_FAILED",
            "The server_keytab step above found a likely cause",
        ],
    );
}
