//! Tests against a real MIT KDC started by scripts/kdc.sh in a temporary directory.
//!
//! GSS-API takes its configuration from process-global environment variables (KRB5_CONFIG,
//! KRB5_KTNAME, KRB5_CLIENT_KTNAME, KRB5CCNAME), so all scenarios that use Kerberos run in sequence
//! in one test function, under `KERBEROS_ENV`.
use std::process::Command;
use std::sync::Mutex;

use libgssapi::context::{ClientCtx, CtxFlags};
use libgssapi::oid::GSS_NT_HOSTBASED_SERVICE;

use super::*;
use crate::security::mechanism::FailureKind;

static KERBEROS_ENV: Mutex<()> = Mutex::new(());

const GENERIC: &str =
    "Authentication failed during authentication due to invalid credentials with SASL mechanism GSSAPI";

#[path = "../../../tests/common/kdc.rs"]
mod kdc;
use kdc::Kdc;

fn strip_realm() -> ShortNamer {
    Arc::new(|principal: &str| Ok(principal.split('@').next().unwrap_or(principal).to_string()))
}

fn config(kdc: &Kdc) -> KerberosConfig {
    KerberosConfig {
        keytab: kdc.path("kafka.keytab"),
        service_name: "kafka".into(),
        krb5_conf: Some(kdc.path("krb5.conf")),
        principal_to_local_rules: vec!["DEFAULT".into()],
        skip_startup_checks: false,
    }
}

/// An initiator for the host-based service "kafka@<host>", as librdkafka (Cyrus SASL) and kafka-python
/// create it: mutual authentication and sequence checking.
fn client(host: &str, flags: CtxFlags) -> ClientCtx {
    let target = Name::new(format!("kafka@{host}").as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE)).expect("import name");
    let mechs = OidSet::singleton(GSS_MECH_KRB5).expect("oid set");
    let cred = Cred::acquire(None, None, CredUsage::Initiate, Some(&mechs)).expect("client credentials");
    ClientCtx::new(Some(cred), target, flags, Some(GSS_MECH_KRB5))
}

fn mutual() -> CtxFlags {
    CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_SEQUENCE_FLAG
}

/// What the client saw, and the server's final answer.
struct Exchange {
    offers: Vec<Vec<u8>>,
    tokens_sent: usize,
    result: Result<SaslStep, SaslFailure>,
}

/// Drive the exchange the way librdkafka's Cyrus SASL GSSAPI plugin and kafka-python do: context
/// tokens until the client context is complete (an empty token when it has nothing to send), then
/// unwrap the offer and send wrap([layer, 0, 0, 0] + authzid).
fn exchange(server: &mut dyn SaslServer, client: &mut ClientCtx, layer: u8, authzid: &[u8]) -> Exchange {
    let mut token = client
        .step(None, None)
        .expect("AP-REQ")
        .expect("a first token")
        .to_vec();
    let mut offers = Vec::new();
    let mut tokens_sent = 0;
    loop {
        tokens_sent += 1;
        let challenge = match server.step(&token) {
            Ok(SaslStep::Challenge(challenge)) => challenge,
            result => {
                return Exchange {
                    offers,
                    tokens_sent,
                    result,
                }
            }
        };
        if !client.is_complete() {
            token = client
                .step(Some(&challenge), None)
                .expect("client accepts the AP-REP")
                .map(|t| t.to_vec())
                .unwrap_or_default();
            continue;
        }
        let offer = client.unwrap(&challenge).expect("client unwraps the offer").to_vec();
        offers.push(offer.clone());
        let mut reply = vec![layer];
        reply.extend_from_slice(offer.get(1..4).unwrap_or(&[0, 0, 0]));
        reply.extend_from_slice(authzid);
        token = client.wrap(false, &reply).expect("client wraps its choice").to_vec();
    }
}

fn assert_generic(result: Result<SaslStep, SaslFailure>, reason_contains: &str) -> SaslFailure {
    let failure = result.expect_err("the exchange must fail");
    assert_eq!(failure.kind, FailureKind::Generic, "{failure:?}");
    assert_eq!(failure.client_message, GENERIC);
    assert_eq!(failure.mechanism, "GSSAPI");
    assert!(
        failure.log_reason.contains(reason_contains),
        "log reason {:?} lacks {reason_contains:?}",
        failure.log_reason
    );
    failure
}

#[test]
fn types_can_be_shared_between_connections() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<GssapiAcceptor>();
    send::<GssapiServer>();
}

#[test]
fn service_principal_syntax() {
    for ok in ["kafka/localhost", "kafka/broker1.example.com@EXAMPLE.COM"] {
        assert!(check_principal_syntax(ok).is_ok(), "{ok}");
    }
    for bad in [
        "kafka",
        "kafka@EXAMPLE.COM",
        "/host",
        "kafka/",
        "kafka/a/b",
        "kafka/h@",
        "kafka/h@A@B",
        "",
    ] {
        let e = check_principal_syntax(bad).expect_err(bad);
        assert!(e.contains("<service_name>/<host>"), "{e}");
    }
}

#[test]
fn retriable_kerberos_errors_close_without_response() {
    use libgssapi::error::MajorFlags;
    let error = |code: u32| GssError {
        major: MajorFlags::GSS_S_FAILURE,
        minor: KRB5_ERROR_TABLE_BASE + code,
    };
    for code in [21, 33, 34] {
        let failure = gss_failure("gss_accept_sec_context", &error(code));
        assert_eq!(failure.kind, FailureKind::NoResponse, "{code}");
        assert!(
            failure.log_reason.contains(&format!("[Kerberos error {code}]")),
            "{failure:?}"
        );
    }
    for code in [7, 31, 37, 41, 44] {
        assert_eq!(gss_failure("x", &error(code)).kind, FailureKind::Generic, "{code}");
    }
    assert_eq!(kerberos_error_code(12345), None);
}

#[test]
fn keytab_entries_reports_unreadable_files() {
    let e = keytab_entries(Path::new("/nonexistent/kgate.keytab")).expect_err("missing");
    assert!(e.contains("/nonexistent/kgate.keytab cannot be read"), "{e}");
    let dir = tempfile::tempdir().expect("tempdir");
    let not_keytab = dir.path().join("krb5.conf");
    std::fs::write(&not_keytab, "[libdefaults]\n").expect("write");
    let e = keytab_entries(&not_keytab).expect_err("not a keytab");
    assert!(e.contains("is not a usable MIT keytab"), "{e}");
}

/// All scenarios that need the KDC, in sequence (GSS environment variables are process-global).
#[test]
fn gssapi_against_a_real_mit_kdc() {
    let _env = KERBEROS_ENV.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let kdc = Kdc::start(&["localhost", "broker1.example.com"]);
    let ccache = format!("MEMORY:kgate-gssapi-test-{}", std::process::id());
    std::env::set_var(
        "KRB5_CLIENT_KTNAME",
        format!("FILE:{}", kdc.path("client.keytab").display()),
    );
    std::env::set_var("KRB5CCNAME", &ccache);
    // Keep the acceptor's replay cache in the test directory rather than /var/tmp.
    std::env::set_var("KRB5RCACHEDIR", kdc.dir.path());

    keytab_listing(&kdc);
    acceptor_start_up_errors(&kdc);

    let acceptor = Arc::new(GssapiAcceptor::new(&config(&kdc), "kafka/localhost").expect("acceptor"));
    assert_eq!(acceptor.principal(), "kafka/localhost@EXAMPLE.COM");
    let explicit = GssapiAcceptor::new(&config(&kdc), "kafka/localhost@EXAMPLE.COM").expect("acceptor with realm");
    assert_eq!(explicit.principal(), "kafka/localhost@EXAMPLE.COM");
    assert_eq!(
        std::env::var("KRB5_CONFIG").ok(),
        Some(kdc.path("krb5.conf").display().to_string())
    );
    assert_eq!(
        std::env::var("KRB5_KTNAME").ok(),
        Some(format!("FILE:{}", kdc.path("kafka.keytab").display()))
    );

    librdkafka_style(&acceptor);
    kafka_python_style_authzid_is_not_the_identity(&acceptor);
    without_mutual_authentication_the_offer_answers_the_ap_req(&acceptor);
    boxed_server(&acceptor);
    unknown_service_principal_fails_at_the_client();
    ticket_for_another_service_principal(&acceptor);
    garbage_tokens(&acceptor);
    replayed_ap_req_is_retriable(&acceptor);
    short_namer_error_fails_authentication(&acceptor);
    data_after_the_ap_rep(&acceptor);
    unsupported_security_layers(&acceptor);
    no_second_wrap(&acceptor);
}

fn keytab_listing(kdc: &Kdc) {
    let both = "aes256-cts-hmac-sha1-96, aes128-cts-hmac-sha1-96".to_string();
    assert_eq!(
        keytab_entries(&kdc.path("kafka.keytab")).expect("kafka.keytab"),
        vec![
            ("kafka/localhost@EXAMPLE.COM".to_string(), 1, both.clone()),
            ("kafka/broker1.example.com@EXAMPLE.COM".to_string(), 1, both.clone()),
        ]
    );
    assert_eq!(
        keytab_entries(&kdc.path("client.keytab")).expect("client.keytab"),
        vec![("client@EXAMPLE.COM".to_string(), 1, both)]
    );
    // Cross-check with MIT's own reader where klist is installed.
    if let Ok(out) = Command::new("klist")
        .args(["-k", "-e"])
        .arg(kdc.path("kafka.keytab"))
        .output()
    {
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            for (principal, kvno, enctypes) in keytab_entries(&kdc.path("kafka.keytab")).expect("parse") {
                for enctype in enctypes.split(", ") {
                    let line = format!("{kvno} {principal} ({enctype})");
                    assert!(
                        text.lines()
                            .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == line),
                        "klist lacks {line:?}:\n{text}"
                    );
                }
            }
        }
    }
}

fn acceptor_start_up_errors(kdc: &Kdc) {
    let missing = KerberosConfig {
        keytab: kdc.path("nope.keytab"),
        ..config(kdc)
    };
    let e = GssapiAcceptor::new(&missing, "kafka/localhost").expect_err("missing keytab");
    assert!(
        e.contains("nope.keytab cannot be read") && e.contains("ktadd -k"),
        "{e}"
    );

    let no_conf = KerberosConfig {
        krb5_conf: Some(kdc.path("nope.conf")),
        ..config(kdc)
    };
    let e = GssapiAcceptor::new(&no_conf, "kafka/localhost").expect_err("missing krb5.conf");
    assert!(e.contains("nope.conf cannot be read"), "{e}");

    let e = GssapiAcceptor::new(&config(kdc), "kafka/otherhost").expect_err("not in keytab");
    assert!(e.contains("holds no key for kafka/otherhost@EXAMPLE.COM"), "{e}");
    assert!(
        e.contains("kafka/localhost@EXAMPLE.COM (kvno 1: aes256-cts-hmac-sha1-96, aes128-cts-hmac-sha1-96)"),
        "{e}"
    );
    assert!(e.contains("kafka/broker1.example.com@EXAMPLE.COM (kvno 1"), "{e}");
    assert!(e.contains("service_name"), "{e}");

    let e = GssapiAcceptor::new(&config(kdc), "kafka/localhost@OTHER.COM").expect_err("wrong realm");
    assert!(
        e.contains("Wrong realm: the keytab has kafka/localhost@EXAMPLE.COM"),
        "{e}"
    );

    let e = GssapiAcceptor::new(&config(kdc), "kafka").expect_err("no host");
    assert!(e.contains("not a service principal"), "{e}");

    // A krb5.conf without default_realm and a principal without realm.
    let realmless = kdc.path("no-default-realm.conf");
    let conf = std::fs::read_to_string(kdc.path("krb5.conf")).expect("krb5.conf");
    let conf: String = conf
        .lines()
        .filter(|l| !l.contains("default_realm"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&realmless, conf).expect("write");
    let no_realm = KerberosConfig {
        krb5_conf: Some(realmless),
        ..config(kdc)
    };
    let e = GssapiAcceptor::new(&no_realm, "kafka/localhost").expect_err("no default realm");
    assert!(
        e.contains("cannot determine the realm of kafka/localhost") && e.contains("default_realm"),
        "{e}"
    );
}

fn librdkafka_style(acceptor: &Arc<GssapiAcceptor>) {
    let mut server = GssapiServer::new(acceptor.clone(), strip_realm());
    let mut client = client("localhost", mutual());
    let done = exchange(&mut server, &mut client, 0x01, b"");
    assert_eq!(
        done.result.expect("authenticated"),
        SaslStep::Complete {
            reply: Vec::new(),
            user: "client".into()
        }
    );
    // AP-REQ, empty token after the AP-REP, wrapped choice.
    assert_eq!(done.tokens_sent, 3);
    assert_eq!(done.offers, vec![SECURITY_LAYER_OFFER.to_vec()]);
    assert_eq!(server.kerberos_principal().as_deref(), Some("client@EXAMPLE.COM"));
    assert_eq!(server.wraps, 1);
    let after = server.step(b"").expect_err("exchange is over");
    assert_eq!(after.kind, FailureKind::NoResponse);
}

fn kafka_python_style_authzid_is_not_the_identity(acceptor: &Arc<GssapiAcceptor>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let namer: ShortNamer = Arc::new(move |principal: &str| {
        record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(principal.to_string());
        Ok(principal.split('@').next().unwrap_or(principal).to_string())
    });
    let mut server = GssapiServer::new(acceptor.clone(), namer);
    let mut client = client("localhost", mutual());
    let done = exchange(&mut server, &mut client, 0x01, b"kafka@localhost");
    match done.result.expect("authenticated") {
        SaslStep::Complete { user, reply } => {
            assert_eq!(user, "client");
            assert!(reply.is_empty());
        }
        other => panic!("not complete: {other:?}"),
    }
    assert_eq!(
        *seen.lock().unwrap_or_else(|p| p.into_inner()),
        vec!["client@EXAMPLE.COM".to_string()]
    );
    assert_eq!(server.kerberos_principal().as_deref(), Some("client@EXAMPLE.COM"));
}

fn without_mutual_authentication_the_offer_answers_the_ap_req(acceptor: &Arc<GssapiAcceptor>) {
    let mut server = GssapiServer::new(acceptor.clone(), strip_realm());
    let mut client = client("localhost", CtxFlags::GSS_C_SEQUENCE_FLAG);
    let done = exchange(&mut server, &mut client, 0x01, b"");
    assert!(matches!(done.result, Ok(SaslStep::Complete { ref user, .. }) if user == "client"));
    assert_eq!(done.tokens_sent, 2, "AP-REQ then the wrapped choice");
    assert_eq!(done.offers.len(), 1);
    assert_eq!(server.wraps, 1);
}

fn boxed_server(acceptor: &Arc<GssapiAcceptor>) {
    let mut server = acceptor.server(strip_realm());
    assert_eq!(server.mechanism(), "GSSAPI");
    let mut client = client("localhost", mutual());
    let done = exchange(server.as_mut(), &mut client, 0x01, b"");
    assert!(matches!(done.result, Ok(SaslStep::Complete { ref user, .. }) if user == "client"));
}

fn unknown_service_principal_fails_at_the_client() {
    let mut client = client("nosuchhost.example.com", mutual());
    let e = client.step(None, None).expect_err("no such service principal");
    // The JDK says "Server not found in Kerberos database (7)"; MIT names the principal.
    assert!(
        e.to_string()
            .contains("Server kafka/nosuchhost.example.com@EXAMPLE.COM not found in Kerberos database"),
        "{e}"
    );
    assert_eq!(kerberos_error_code(e.minor), Some(7), "KDC_ERR_S_PRINCIPAL_UNKNOWN");
}

fn ticket_for_another_service_principal(acceptor: &Arc<GssapiAcceptor>) {
    // kafka/broker1.example.com exists (even in the same keytab), but this acceptor is kafka/localhost.
    let mut server = GssapiServer::new(acceptor.clone(), strip_realm());
    let mut client = client("broker1.example.com", mutual());
    let done = exchange(&mut server, &mut client, 0x01, b"");
    let failure = assert_generic(done.result, "gss_accept_sec_context failed");
    assert!(failure.log_reason.contains("major 0x"), "{failure:?}");
    assert_eq!(server.kerberos_principal(), None);
    assert_eq!(server.wraps, 0);
}

fn garbage_tokens(acceptor: &Arc<GssapiAcceptor>) {
    for garbage in [&b"not a kerberos token"[..], b"", &[0x60, 0x82, 0xff, 0xff, 0x06]] {
        let mut server = GssapiServer::new(acceptor.clone(), strip_realm());
        let failure = assert_generic(server.step(garbage), "gss_accept_sec_context failed");
        assert!(!failure.log_reason.contains("not a kerberos token"), "{failure:?}");
        let again = server.step(garbage).expect_err("over");
        assert_eq!(again.kind, FailureKind::NoResponse);
    }
}

fn replayed_ap_req_is_retriable(acceptor: &Arc<GssapiAcceptor>) {
    let mut client = client("localhost", mutual());
    let ap_req = client.step(None, None).expect("AP-REQ").expect("token").to_vec();
    let mut first = GssapiServer::new(acceptor.clone(), strip_realm());
    assert!(matches!(first.step(&ap_req), Ok(SaslStep::Challenge(_))));
    let mut second = GssapiServer::new(acceptor.clone(), strip_realm());
    let failure = second.step(&ap_req).expect_err("replay");
    assert_eq!(failure.kind, FailureKind::NoResponse, "{failure:?}");
    assert!(failure.log_reason.contains("[Kerberos error 34]"), "{failure:?}");
}

fn short_namer_error_fails_authentication(acceptor: &Arc<GssapiAcceptor>) {
    let namer: ShortNamer = Arc::new(|principal: &str| Err(format!("No rules apply to {principal}")));
    let mut server = GssapiServer::new(acceptor.clone(), namer);
    let mut client = client("localhost", mutual());
    let done = exchange(&mut server, &mut client, 0x01, b"");
    assert_generic(
        done.result,
        "Failed to set name for 'client@EXAMPLE.COM' based on Kerberos authentication rules: No rules apply to client@EXAMPLE.COM",
    );
}

fn data_after_the_ap_rep(acceptor: &Arc<GssapiAcceptor>) {
    let mut server = GssapiServer::new(acceptor.clone(), strip_realm());
    let mut client = client("localhost", mutual());
    let ap_req = client.step(None, None).expect("AP-REQ").expect("token").to_vec();
    let Ok(SaslStep::Challenge(ap_rep)) = server.step(&ap_req) else {
        panic!("AP-REP expected");
    };
    assert!(client.step(Some(&ap_rep), None).expect("client completes").is_none());
    assert_generic(
        server.step(b"unexpected"),
        "Handshake expecting no response data from server",
    );
    assert_eq!(server.wraps, 0);
}

fn unsupported_security_layers(acceptor: &Arc<GssapiAcceptor>) {
    for layer in [0x02, 0x04, 0x03, 0x00] {
        let mut server = GssapiServer::new(acceptor.clone(), strip_realm());
        let mut client = client("localhost", mutual());
        let done = exchange(&mut server, &mut client, layer, b"");
        assert_generic(done.result, &format!("client selected security layer 0x{layer:02x}"));
    }
    // A reply shorter than 4 bytes.
    let mut server = GssapiServer::new(acceptor.clone(), strip_realm());
    let mut client = client("localhost", mutual());
    let mut token = client.step(None, None).expect("AP-REQ").expect("token").to_vec();
    loop {
        let Ok(SaslStep::Challenge(challenge)) = server.step(&token) else {
            panic!("challenge expected");
        };
        if client.is_complete() {
            let _ = client.unwrap(&challenge).expect("offer");
            break;
        }
        token = client
            .step(Some(&challenge), None)
            .expect("step")
            .map(|t| t.to_vec())
            .unwrap_or_default();
    }
    let short = client.wrap(false, &[0x01, 0]).expect("wrap");
    assert_generic(server.step(&short), "security-layer reply is 2 bytes");
}

fn no_second_wrap(acceptor: &Arc<GssapiAcceptor>) {
    // A client that answers the offer with an empty token (or anything unwrappable) gets a failure,
    // never a second offer.
    let mut server = GssapiServer::new(acceptor.clone(), strip_realm());
    let mut client = client("localhost", mutual());
    let ap_req = client.step(None, None).expect("AP-REQ").expect("token").to_vec();
    let Ok(SaslStep::Challenge(ap_rep)) = server.step(&ap_req) else {
        panic!("AP-REP expected");
    };
    assert!(client.step(Some(&ap_rep), None).expect("client completes").is_none());
    let Ok(SaslStep::Challenge(offer)) = server.step(b"") else {
        panic!("offer expected");
    };
    assert_eq!(server.wraps, 1);
    assert_generic(server.step(b""), "gss_unwrap (security-layer reply) failed");
    assert_eq!(server.wraps, 1);
    assert_eq!(server.step(b"").expect_err("over").kind, FailureKind::NoResponse);
    assert_eq!(server.wraps, 1);
    // The one offer is still in sequence for the client.
    assert_eq!(&*client.unwrap(&offer).expect("offer unwraps"), &SECURITY_LAYER_OFFER);
}
