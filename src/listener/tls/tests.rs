use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_rustls::{client, server, TlsConnector};

use super::*;

// ---------------------------------------------------------------- certificates (rcgen)

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    pem: String,
}

fn new_ca(cn: &str) -> Ca {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        issuer: Issuer::new(params, key),
        der: cert.der().clone(),
        pem: cert.pem(),
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Leaf {
    fn client_auth(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.der.clone()],
            PrivateKeyDer::Pkcs8(self.key_der.clone().into()),
        )
    }
}

fn sign(ca: &Ca, params: CertificateParams) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

fn server_leaf(ca: &Ca, sans: &[&str]) -> Leaf {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sign(ca, params)
}

/// A client certificate whose subject has these attributes in this (encoding) order.
fn client_leaf(ca: &Ca, subject: &[(DnType, &str)]) -> Leaf {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (ty, value) in subject {
        params.distinguished_name.push(ty.clone(), *value);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    sign(ca, params)
}

fn alice(ca: &Ca) -> Leaf {
    client_leaf(
        ca,
        &[
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "Example Corp"),
            (DnType::OrganizationalUnitName, "Engineering"),
            (DnType::CommonName, "alice"),
        ],
    )
}

// ---------------------------------------------------------------- files and handshakes

struct Files {
    _dir: tempfile::TempDir,
    config: TlsConfig,
}

fn write_files(server: &Leaf, client_ca: Option<&Ca>, client_auth: ClientAuth) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server.key");
    std::fs::write(&cert, &server.cert_pem).unwrap();
    std::fs::write(&key, &server.key_pem).unwrap();
    let client_ca = client_ca.map(|ca| {
        let path = dir.path().join("client-ca.pem");
        std::fs::write(&path, &ca.pem).unwrap();
        path
    });
    Files {
        config: TlsConfig {
            cert,
            key,
            client_ca,
            client_auth,
        },
        _dir: dir,
    }
}

fn client_config(
    trust: &Ca,
    client_cert: Option<&Leaf>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trust.der.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client_cert {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let (chain, key) = leaf.client_auth();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    })
}

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

type Pair = (
    io::Result<server::TlsStream<DuplexStream>>,
    io::Result<client::TlsStream<DuplexStream>>,
);

/// Runs both sides of a handshake over an in-memory pipe.
async fn handshake_as(handle: &TlsAcceptorHandle, client: Arc<ClientConfig>, server_name: &str) -> Pair {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = handle.acceptor();
    let connector = TlsConnector::from(client);
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let both = async { tokio::join!(acceptor.accept(server_io), connector.connect(name, client_io)) };
    tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("handshake timed out")
}

async fn handshake(handle: &TlsAcceptorHandle, client: Arc<ClientConfig>) -> Pair {
    handshake_as(handle, client, "localhost").await
}

/// One request/response round trip over an established connection.
async fn ping(server: &mut server::TlsStream<DuplexStream>, client: &mut client::TlsStream<DuplexStream>) {
    let client_side = async {
        client.write_all(b"ping").await.unwrap();
        client.flush().await.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    };
    let server_side = async {
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        server.flush().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(client_side, server_side)
    })
    .await
    .expect("ping timed out");
}

/// After a handshake the server refused: the client cannot exchange data either.
async fn assert_client_cut_off(client: io::Result<client::TlsStream<DuplexStream>>) {
    let Ok(mut client) = client else { return };
    // TLS 1.3: the client finishes first; the server's rejection arrives as an alert or EOF.
    let _ = client.write_all(b"ping").await;
    let _ = client.flush().await;
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf))
        .await
        .expect("read timed out");
    assert!(matches!(read, Err(_) | Ok(0)), "client still connected: {read:?}");
}

fn server_dn(server: &server::TlsStream<DuplexStream>) -> Option<String> {
    peer_subject_dn(server.get_ref().1)
}

fn served_cert(client: &client::TlsStream<DuplexStream>) -> CertificateDer<'static> {
    client.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

// ---------------------------------------------------------------- handshakes

#[tokio::test]
async fn server_only_tls() {
    let ca = new_ca("kgate test CA");
    let server = server_leaf(&ca, &["localhost", "127.0.0.1"]);
    let files = write_files(&server, None, ClientAuth::None);
    let handle = TlsAcceptorHandle::load(&files.config).unwrap();

    let (s, c) = handshake(&handle, client_config(&ca, None, BOTH)).await;
    let (mut s, mut c) = (s.unwrap(), c.unwrap());
    assert_eq!(served_cert(&c), server.der);
    assert_eq!(server_dn(&s), None);
    ping(&mut s, &mut c).await;

    // With client_auth = none no certificate is requested, so a client that has one does not send it.
    let client = alice(&ca);
    let (s, c) = handshake(&handle, client_config(&ca, Some(&client), BOTH)).await;
    let (mut s, mut c) = (s.unwrap(), c.unwrap());
    assert_eq!(server_dn(&s), None);
    ping(&mut s, &mut c).await;

    // A client that does not trust the CA refuses the server.
    let other = new_ca("other CA");
    let (s, c) = handshake(&handle, client_config(&other, None, BOTH)).await;
    assert!(c.is_err());
    assert!(s.is_err());
}

#[tokio::test]
async fn mtls_required() {
    let ca = new_ca("kgate test CA");
    let server = server_leaf(&ca, &["localhost"]);
    let files = write_files(&server, Some(&ca), ClientAuth::Required);
    let handle = TlsAcceptorHandle::load(&files.config).unwrap();
    let client = alice(&ca);

    for versions in [TLS12, TLS13] {
        // No client certificate: the server fails the handshake.
        let (s, c) = handshake(&handle, client_config(&ca, None, versions)).await;
        assert!(
            s.is_err(),
            "{versions:?}: handshake without a client certificate succeeded"
        );
        assert_client_cut_off(c).await;

        // A valid one: the DN is Java's RFC 2253 rendering, most specific RDN first.
        let (s, c) = handshake(&handle, client_config(&ca, Some(&client), versions)).await;
        let (mut s, mut c) = (s.unwrap(), c.unwrap());
        assert_eq!(
            server_dn(&s).as_deref(),
            Some("CN=alice,OU=Engineering,O=Example Corp,C=US")
        );
        ping(&mut s, &mut c).await;
    }
}

#[tokio::test]
async fn mtls_requested_accepts_with_and_without_a_certificate() {
    let ca = new_ca("kgate test CA");
    let server = server_leaf(&ca, &["localhost"]);
    let files = write_files(&server, Some(&ca), ClientAuth::Requested);
    let handle = TlsAcceptorHandle::load(&files.config).unwrap();

    let (s, c) = handshake(&handle, client_config(&ca, None, BOTH)).await;
    let (mut s, mut c) = (s.unwrap(), c.unwrap());
    assert_eq!(server_dn(&s), None);
    ping(&mut s, &mut c).await;

    let client = client_leaf(
        &ca,
        &[(DnType::OrganizationName, "A+B"), (DnType::CommonName, "Smith, John")],
    );
    let (s, c) = handshake(&handle, client_config(&ca, Some(&client), BOTH)).await;
    let (mut s, mut c) = (s.unwrap(), c.unwrap());
    assert_eq!(server_dn(&s).as_deref(), Some("CN=Smith\\, John,O=A\\+B"));
    ping(&mut s, &mut c).await;
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_rejected() {
    let ca = new_ca("kgate test CA");
    let other = new_ca("someone else's CA");
    let server = server_leaf(&ca, &["localhost"]);
    let stranger = alice(&other);
    for mode in [ClientAuth::Required, ClientAuth::Requested] {
        let files = write_files(&server, Some(&ca), mode);
        let handle = TlsAcceptorHandle::load(&files.config).unwrap();
        for versions in [TLS12, TLS13] {
            let (s, c) = handshake(&handle, client_config(&ca, Some(&stranger), versions)).await;
            assert!(
                s.is_err(),
                "{mode:?} {versions:?}: untrusted client certificate accepted"
            );
            assert_client_cut_off(c).await;
        }
    }
}

#[tokio::test]
async fn tls12_and_tls13_both_negotiate() {
    let ca = new_ca("kgate test CA");
    let server = server_leaf(&ca, &["localhost"]);
    let files = write_files(&server, Some(&ca), ClientAuth::Required);
    let handle = TlsAcceptorHandle::load(&files.config).unwrap();
    let client = alice(&ca);
    for (versions, want) in [
        (TLS12, ProtocolVersion::TLSv1_2),
        (TLS13, ProtocolVersion::TLSv1_3),
        (BOTH, ProtocolVersion::TLSv1_3),
    ] {
        let (s, c) = handshake(&handle, client_config(&ca, Some(&client), versions)).await;
        let (mut s, mut c) = (s.unwrap(), c.unwrap());
        assert_eq!(s.get_ref().1.protocol_version(), Some(want));
        assert_eq!(c.get_ref().1.protocol_version(), Some(want));
        ping(&mut s, &mut c).await;
    }
}

// ---------------------------------------------------------------- reload

#[tokio::test]
async fn reload_swaps_certificate_for_new_handshakes_only() {
    let ca = new_ca("kgate test CA");
    let old = server_leaf(&ca, &["localhost"]);
    let files = write_files(&old, None, ClientAuth::None);
    let handle = TlsAcceptorHandle::load(&files.config).unwrap();
    assert!(!handle.reload_if_changed().unwrap(), "nothing changed yet");

    let (s, c) = handshake(&handle, client_config(&ca, None, BOTH)).await;
    let (mut old_s, mut old_c) = (s.unwrap(), c.unwrap());
    assert_eq!(served_cert(&old_c), old.der);
    // The old certificate is not valid for the new name.
    let (_, c) = handshake_as(&handle, client_config(&ca, None, BOTH), "kafka.example").await;
    assert!(c.is_err());

    // Renewal: new key, new serial, an extra SAN.
    let new = server_leaf(&ca, &["localhost", "kafka.example"]);
    std::fs::write(&files.config.cert, &new.cert_pem).unwrap();
    std::fs::write(&files.config.key, &new.key_pem).unwrap();
    assert!(handle.reload_if_changed().unwrap());
    assert!(!handle.reload_if_changed().unwrap(), "a second look sees no change");

    let (s, c) = handshake_as(&handle, client_config(&ca, None, BOTH), "kafka.example").await;
    let (mut new_s, mut new_c) = (s.unwrap(), c.unwrap());
    assert_eq!(served_cert(&new_c), new.der);
    ping(&mut new_s, &mut new_c).await;

    // The connection opened before the reload still works.
    ping(&mut old_s, &mut old_c).await;
}

#[tokio::test]
async fn broken_replacement_keeps_the_old_configuration() {
    let ca = new_ca("kgate test CA");
    let old = server_leaf(&ca, &["localhost"]);
    let files = write_files(&old, None, ClientAuth::None);
    let handle = TlsAcceptorHandle::load(&files.config).unwrap();
    let before = handle.server_config();

    // A half-written certificate file.
    std::fs::write(&files.config.cert, &old.cert_pem[..old.cert_pem.len() / 2]).unwrap();
    let err = handle.reload_if_changed().unwrap_err();
    assert!(matches!(err, TlsError::Pem { .. }), "{err}");
    assert!(
        !handle.reload_if_changed().unwrap(),
        "the same broken files are reported once"
    );
    assert!(Arc::ptr_eq(&before, &handle.server_config()));
    let (s, c) = handshake(&handle, client_config(&ca, None, BOTH)).await;
    let (mut s, mut c) = (s.unwrap(), c.unwrap());
    assert_eq!(served_cert(&c), old.der);
    ping(&mut s, &mut c).await;

    // A new certificate whose key has not been written yet.
    let new = server_leaf(&ca, &["localhost"]);
    std::fs::write(&files.config.cert, &new.cert_pem).unwrap();
    let err = handle.reload_if_changed().unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(Arc::ptr_eq(&before, &handle.server_config()));

    // A deleted key file.
    std::fs::remove_file(&files.config.key).unwrap();
    let err = handle.reload_if_changed().unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
    let (_, c) = handshake(&handle, client_config(&ca, None, BOTH)).await;
    assert_eq!(served_cert(&c.unwrap()), old.der);

    // The key arrives: the new pair loads.
    std::fs::write(&files.config.key, &new.key_pem).unwrap();
    assert!(handle.reload_if_changed().unwrap());
    let (_, c) = handshake(&handle, client_config(&ca, None, BOTH)).await;
    assert_eq!(served_cert(&c.unwrap()), new.der);
}

#[tokio::test]
async fn reload_picks_up_a_new_client_ca() {
    let ca = new_ca("first CA");
    let second = new_ca("second CA");
    let server = server_leaf(&ca, &["localhost"]);
    let files = write_files(&server, Some(&ca), ClientAuth::Required);
    let handle = TlsAcceptorHandle::load(&files.config).unwrap();
    let bob = client_leaf(&second, &[(DnType::CommonName, "bob")]);

    let (s, _) = handshake(&handle, client_config(&ca, Some(&bob), BOTH)).await;
    assert!(s.is_err());
    let client_ca = files.config.client_ca.as_ref().unwrap();
    std::fs::write(client_ca, format!("{}{}", ca.pem, second.pem)).unwrap();
    assert!(handle.reload_if_changed().unwrap());
    let (s, _) = handshake(&handle, client_config(&ca, Some(&bob), BOTH)).await;
    assert_eq!(server_dn(&s.unwrap()).as_deref(), Some("CN=bob"));
}

#[tokio::test]
async fn reloader_task_applies_changes() {
    let ca = new_ca("kgate test CA");
    let old = server_leaf(&ca, &["localhost"]);
    let files = write_files(&old, None, ClientAuth::None);
    let handle = TlsAcceptorHandle::load(&files.config).unwrap();
    let task = handle.spawn_reloader(Duration::from_millis(20));
    let before = handle.server_config();

    let new = server_leaf(&ca, &["localhost"]);
    std::fs::write(&files.config.key, &new.key_pem).unwrap();
    std::fs::write(&files.config.cert, &new.cert_pem).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while Arc::ptr_eq(&before, &handle.server_config()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reloader did not pick up the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, c) = handshake(&handle, client_config(&ca, None, BOTH)).await;
    assert_eq!(served_cert(&c.unwrap()), new.der);
    task.abort();
}

// ---------------------------------------------------------------- load errors

/// An Ed448 key (generated with `openssl genpkey -algorithm ED448` for this test): valid PKCS#8,
/// but not a type *ring* can sign with.
const ED448_KEY: &str = "-----BEGIN PRIVATE KEY-----
MEcCAQAwBQYDK2VxBDsEOWGa6a9SbF8pt99nxfHChau1DuI2aubgzRHD6hJOPlx4
Y6JUxUXnNHdsGUMYPxJzsKX+N2tqCHBjuQ==
-----END PRIVATE KEY-----
";

fn load_err(config: &TlsConfig) -> TlsError {
    match TlsAcceptorHandle::load(config) {
        Ok(_) => panic!("{config:?} loaded"),
        Err(e) => e,
    }
}

#[test]
fn load_errors_name_the_file_and_the_fix() {
    let ca = new_ca("kgate test CA");
    let server = server_leaf(&ca, &["localhost"]);
    let other = server_leaf(&ca, &["localhost"]);
    let files = write_files(&server, None, ClientAuth::None);
    let dir = files.config.cert.parent().unwrap().to_path_buf();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let with = |cert: &Path, key: &Path| TlsConfig {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        client_ca: None,
        client_auth: ClientAuth::None,
    };
    let good = &files.config;
    let text = |e: &TlsError| e.to_string();

    // Missing files.
    let missing = dir.join("nope.pem");
    let e = load_err(&with(&missing, &good.key));
    assert!(
        matches!(
            e,
            TlsError::Read {
                what: "certificate",
                ..
            }
        ),
        "{e}"
    );
    assert!(text(&e).contains("nope.pem") && text(&e).contains("cannot read"), "{e}");
    let e = load_err(&with(&good.cert, &missing));
    assert!(matches!(e, TlsError::Read { what: "key", .. }), "{e}");

    // No certificate in the certificate file.
    let empty = write("empty.pem", "hello\n");
    let e = load_err(&with(&empty, &good.key));
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    assert!(
        text(&e).contains("empty.pem") && text(&e).contains("BEGIN CERTIFICATE"),
        "{e}"
    );

    // Cert and key swapped.
    let e = load_err(&with(&good.key, &good.cert));
    assert!(text(&e).contains("swapped"), "{e}");

    // Broken PEM and a PEM block that is not a certificate.
    let truncated = write("truncated.pem", &server.cert_pem[..server.cert_pem.len() - 30]);
    let e = load_err(&with(&truncated, &good.key));
    assert!(matches!(e, TlsError::Pem { .. }), "{e}");
    let junk = write(
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    let e = load_err(&with(&junk, &good.key));
    assert!(matches!(e, TlsError::BadCertificate { index: 1, .. }), "{e}");

    // No key, an encrypted key, an unsupported key type, a key for another certificate.
    let e = load_err(&with(&good.cert, &empty));
    assert!(matches!(e, TlsError::NoPrivateKey { .. }), "{e}");
    assert!(
        text(&e).contains("empty.pem") && text(&e).contains("BEGIN PRIVATE KEY"),
        "{e}"
    );
    let encrypted = write(
        "encrypted.key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\naGVsbG8=\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let e = load_err(&with(&good.cert, &encrypted));
    assert!(text(&e).contains("encrypted"), "{e}");
    let ed448 = write("ed448.key", ED448_KEY);
    let e = load_err(&with(&good.cert, &ed448));
    assert!(matches!(e, TlsError::UnsupportedKey { .. }), "{e}");
    assert!(text(&e).contains("ed448.key") && text(&e).contains("Ed25519"), "{e}");
    let other_key = write("other.key", &other.key_pem);
    let e = load_err(&with(&good.cert, &other_key));
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
    assert!(text(&e).contains("other.key") && text(&e).contains("server.pem"), "{e}");

    // Client certificates without a CA to check them against.
    for (mode, word) in [(ClientAuth::Requested, "requested"), (ClientAuth::Required, "required")] {
        let e = load_err(&TlsConfig {
            client_auth: mode,
            ..good.clone()
        });
        assert!(matches!(e, TlsError::ClientCaMissing { .. }), "{e}");
        assert!(text(&e).contains(word) && text(&e).contains("client_ca"), "{e}");
    }
    let e = load_err(&TlsConfig {
        client_ca: Some(empty.clone()),
        client_auth: ClientAuth::Required,
        ..good.clone()
    });
    assert!(matches!(e, TlsError::NoCertificate { what: "client_ca", .. }), "{e}");
    let e = load_err(&TlsConfig {
        client_ca: Some(missing.clone()),
        client_auth: ClientAuth::Required,
        ..good.clone()
    });
    assert!(matches!(e, TlsError::Read { what: "client_ca", .. }), "{e}");

    // The good files load; with client_auth = none the client_ca file is not even read.
    assert!(TlsAcceptorHandle::load(good).is_ok());
    assert!(TlsAcceptorHandle::load(&TlsConfig {
        client_ca: Some(missing),
        ..good.clone()
    })
    .is_ok());
}

#[test]
fn certificate_file_with_a_chain_loads() {
    // The leaf first, then the CA that issued it.
    let ca = new_ca("kgate test CA");
    let server = server_leaf(&ca, &["localhost"]);
    let files = write_files(&server, None, ClientAuth::None);
    std::fs::write(&files.config.cert, format!("{}{}", server.cert_pem, ca.pem)).unwrap();
    let handle = TlsAcceptorHandle::load(&files.config).unwrap();
    assert!(!handle.reload_if_changed().unwrap());
}

// Keys generated with openssl for these tests only (`openssl genpkey`, then `openssl ec` /
// `openssl rsa -traditional` for the other encodings of the same key): rcgen with *ring* cannot
// write SEC1 or PKCS#1, nor generate RSA keys.
const P256_PKCS8: &str = "-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgb2WqutEsCl3kadqu\n\
UqshOjJaiR4DyBYK9mPAEUUW4NWhRANCAAQBYmmlB6BViXXHJx+zroVYdruh61Qi\n\
Q27A06uZ4eXeQYQZdQ8Y3L5ETYpnXKJkgQ/HtljixksdA0lpT6BQLt2i\n\
-----END PRIVATE KEY-----";
const P256_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----\n\
MHcCAQEEIG9lqrrRLApd5GnarlKrIToyWokeA8gWCvZjwBFFFuDVoAoGCCqGSM49\n\
AwEHoUQDQgAEAWJppQegVYl1xycfs66FWHa7oetUIkNuwNOrmeHl3kGEGXUPGNy+\n\
RE2KZ1yiZIEPx7ZY4sZLHQNJaU+gUC7dog==\n\
-----END EC PRIVATE KEY-----";
const RSA2048_PKCS8: &str = "-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC05ZGMSQwiHxDw\n\
vy2CPg/CrEeevnr2AZkXyCn7sLV2/FF6EkS3cJMppdVU5PxBlwtYk/nxB0M3XjNe\n\
MjZ6DbPVVMQI9JNtGlNwTNIdIUhaZOulkQ40Jc26RF3X7QDcTb2mvUMyVdeEQg7k\n\
ghbRQMjghut0ebBQax5PeyleAcbzyuwvvFQotTtMYyv6xPpQYDJ26gMYrnKBCU70\n\
y0O1VLPzzp+YG3stQdISUNVem1S03wwPAO/libHpW7pGB9yzNZLINTNVrAtcrgh7\n\
/QsZTbQ6kqHN5Yd3O4K8Q4mpSNwokgxlzvxycs0wJiZ0Yp7tNqHIJ8ljzijdeEgL\n\
nqhjoQbpAgMBAAECggEARmIH5lhJk0EZG0KXF1TEVw8m8pnUR8FJappj01zmzfvQ\n\
S7mt6N2xNIQkY9qQV4jITleM6P3VZkaNn/nTflu0e612dLGMZufWTRxmqBTaDOm1\n\
Uf8FUr7es7mD9c5uBkltH+IFsiD6MKhvGPOQoywcvFdiZzgtpKx4553Y842ndhT3\n\
QeEOp0lWzhztX0hamtz2GLusnsTnqWadYMiZ9Ut1fn4Nz/xkwejlrligAOzZE/kP\n\
yOvVgcYjnPbDslUFPCQh31rT4gO4iATeHwHBjiysdcbm+AbasaybfncLiliWNT4W\n\
7/zO9Ml0CNYK5PEmvsAAFFV0oJlTcRWD4EXj+V9a7QKBgQDmpfSVdRuhVBafQq/d\n\
f9w8QKTFo4EP2wY3pmEtIx/idccGKjpIBuszgf/KroU3p/okJxzLCKAedl3hUbBZ\n\
UUimiz2zKZofXTizNf2FXBp/T2v9/eSjx9EMQ+iaU7FRDI2us0pdy3iolCZyXIB+\n\
xhOqm/GeVFFxCIvy0WzdxVubCwKBgQDIx7D9ZT2tiFcJRLMyhyuiOUO7B1lGMXMO\n\
E26RhGhftDAYlyun97U054mhqwIBDTvugIRkVlhUPSATbyjDWnE5ghUdeW3egdvb\n\
LtkYXkXxvS+bmc+6bVoqs1KNQOOWfv6ci2Vv8Sfa6m1wapv2P6Aw96YcOK4fYt0V\n\
SYRszjT+WwKBgQCto15gbgthBucI+rFfNXTdv2TMjW0KPL+PgahCzOCiIjy0/XFm\n\
7B6BZmrlcUFFRyZftTpN965jgITorhDvDOx+xPCsQrOOzSV0dT7o+Q/RrD8Gte89\n\
BZ7xduZT2JHzDFpVnRBtUFMDxpSzH8R0rDX+COx7X8r4J5EEOnmU85ElRQKBgE6y\n\
txUbkclrH3JqkzLC+L9lYr70anGxAEAMLdKr651Xq2J4Hox/828BMllEBk0TOuKJ\n\
TVtm3MhoDSKQ95Fa6fZ4nn4nEoGctOh8vGtoyFGwrfB3oYyZQDZsg3cKcCqVLId/\n\
vArco5qTOMJPh0JGPivzZhC5xsZWogGuB1H+oZbxAoGBAIY/kSYw7/wxAOVBe8gi\n\
IvjetID19Q/jU5FPhMIwIcRnMYNky925P2Nf1qds7sL2nPriD87A9mPsFzaP+YV+\n\
VNlhwfpsqk8nuKYuLs7V01pcQ9LEbrqLpfDr/gjEJ+quCKr5DMwK89HYEuUCOLTb\n\
V7JZpcv6YLmIqsGyjGUmmS36\n\
-----END PRIVATE KEY-----";
const RSA2048_PKCS1: &str = "-----BEGIN RSA PRIVATE KEY-----\n\
MIIEpAIBAAKCAQEAtOWRjEkMIh8Q8L8tgj4PwqxHnr569gGZF8gp+7C1dvxRehJE\n\
t3CTKaXVVOT8QZcLWJP58QdDN14zXjI2eg2z1VTECPSTbRpTcEzSHSFIWmTrpZEO\n\
NCXNukRd1+0A3E29pr1DMlXXhEIO5IIW0UDI4IbrdHmwUGseT3spXgHG88rsL7xU\n\
KLU7TGMr+sT6UGAyduoDGK5ygQlO9MtDtVSz886fmBt7LUHSElDVXptUtN8MDwDv\n\
5Ymx6Vu6RgfcszWSyDUzVawLXK4Ie/0LGU20OpKhzeWHdzuCvEOJqUjcKJIMZc78\n\
cnLNMCYmdGKe7TahyCfJY84o3XhIC56oY6EG6QIDAQABAoIBAEZiB+ZYSZNBGRtC\n\
lxdUxFcPJvKZ1EfBSWqaY9Nc5s370Eu5rejdsTSEJGPakFeIyE5XjOj91WZGjZ/5\n\
035btHutdnSxjGbn1k0cZqgU2gzptVH/BVK+3rO5g/XObgZJbR/iBbIg+jCobxjz\n\
kKMsHLxXYmc4LaSseOed2PONp3YU90HhDqdJVs4c7V9IWprc9hi7rJ7E56lmnWDI\n\
mfVLdX5+Dc/8ZMHo5a5YoADs2RP5D8jr1YHGI5z2w7JVBTwkId9a0+IDuIgE3h8B\n\
wY4srHXG5vgG2rGsm353C4pYljU+Fu/8zvTJdAjWCuTxJr7AABRVdKCZU3EVg+BF\n\
4/lfWu0CgYEA5qX0lXUboVQWn0Kv3X/cPECkxaOBD9sGN6ZhLSMf4nXHBio6SAbr\n\
M4H/yq6FN6f6JCccywigHnZd4VGwWVFIpos9symaH104szX9hVwaf09r/f3ko8fR\n\
DEPomlOxUQyNrrNKXct4qJQmclyAfsYTqpvxnlRRcQiL8tFs3cVbmwsCgYEAyMew\n\
/WU9rYhXCUSzMocrojlDuwdZRjFzDhNukYRoX7QwGJcrp/e1NOeJoasCAQ077oCE\n\
ZFZYVD0gE28ow1pxOYIVHXlt3oHb2y7ZGF5F8b0vm5nPum1aKrNSjUDjln7+nItl\n\
b/En2uptcGqb9j+gMPemHDiuH2LdFUmEbM40/lsCgYEAraNeYG4LYQbnCPqxXzV0\n\
3b9kzI1tCjy/j4GoQszgoiI8tP1xZuwegWZq5XFBRUcmX7U6TfeuY4CE6K4Q7wzs\n\
fsTwrEKzjs0ldHU+6PkP0aw/BrXvPQWe8XbmU9iR8wxaVZ0QbVBTA8aUsx/EdKw1\n\
/gjse1/K+CeRBDp5lPORJUUCgYBOsrcVG5HJax9yapMywvi/ZWK+9GpxsQBADC3S\n\
q+udV6tieB6Mf/NvATJZRAZNEzriiU1bZtzIaA0ikPeRWun2eJ5+JxKBnLTofLxr\n\
aMhRsK3wd6GMmUA2bIN3CnAqlSyHf7wK3KOakzjCT4dCRj4r82YQucbGVqIBrgdR\n\
/qGW8QKBgQCGP5EmMO/8MQDlQXvIIiL43rSA9fUP41ORT4TCMCHEZzGDZMvduT9j\n\
X9anbO7C9pz64g/OwPZj7Bc2j/mFflTZYcH6bKpPJ7imLi7O1dNaXEPSxG66i6Xw\n\
6/4IxCfqrgiq+QzMCvPR2BLlAji021eyWaXL+mC5iKrBsoxlJpkt+g==\n\
-----END RSA PRIVATE KEY-----";

#[tokio::test]
async fn rsa_and_ecdsa_keys_in_every_pem_encoding_load() {
    let ca = new_ca("kgate test CA");
    for (pkcs8, key_file) in [
        (P256_PKCS8, P256_PKCS8),
        (P256_PKCS8, P256_SEC1),
        (RSA2048_PKCS8, RSA2048_PKCS8),
        (RSA2048_PKCS8, RSA2048_PKCS1),
    ] {
        let key = KeyPair::from_pem(pkcs8).unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        let leaf = Leaf {
            cert_pem: cert.pem(),
            key_pem: key_file.to_string(),
            der: cert.der().clone(),
            key_der: Vec::new(),
        };
        let files = write_files(&leaf, None, ClientAuth::None);
        let handle = TlsAcceptorHandle::load(&files.config).unwrap();
        for versions in [TLS12, TLS13] {
            let (s, c) = handshake(&handle, client_config(&ca, None, versions)).await;
            let (mut s, mut c) = (s.unwrap(), c.unwrap());
            assert_eq!(served_cert(&c), leaf.der);
            ping(&mut s, &mut c).await;
        }
    }
}

// ---------------------------------------------------------------- DN formatting

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let mut push = |mut v: u64| {
        let mut groups = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            groups.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        content.extend(groups.iter().rev());
    };
    push(arcs[0] * 40 + arcs[1]);
    for arc in &arcs[2..] {
        push(*arc);
    }
    tlv(0x06, &content)
}

type Ava<'a> = (&'a [u64], u8, &'a [u8]);

/// A Name with these RDNs (each a set of attribute, tag, value), in encoding order.
fn name_der(rdns: &[&[Ava<'_>]]) -> Vec<u8> {
    let mut seq = Vec::new();
    for rdn in rdns {
        let mut set = Vec::new();
        for (attr, tag, value) in rdn.iter() {
            let mut atv = oid(attr);
            atv.extend(tlv(*tag, value));
            set.extend(tlv(0x30, &atv));
        }
        seq.extend(tlv(0x31, &set));
    }
    tlv(0x30, &seq)
}

fn dn(rdns: &[&[Ava<'_>]]) -> String {
    let der = name_der(rdns);
    let (rest, name) = X509Name::from_der(&der).unwrap();
    assert!(rest.is_empty());
    name_rfc2253(&name)
}

const CN: &[u64] = &[2, 5, 4, 3];
const C: &[u64] = &[2, 5, 4, 6];
const L: &[u64] = &[2, 5, 4, 7];
const ST: &[u64] = &[2, 5, 4, 8];
const STREET: &[u64] = &[2, 5, 4, 9];
const O: &[u64] = &[2, 5, 4, 10];
const OU: &[u64] = &[2, 5, 4, 11];
const SERIAL: &[u64] = &[2, 5, 4, 5];
const UID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];
const DC: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 25];
const EMAIL: &[u64] = &[1, 2, 840, 113549, 1, 9, 1];
const UTF8: u8 = 0x0c;
const PRINTABLE: u8 = 0x13;
const T61: u8 = 0x14;
const IA5: u8 = 0x16;
const BMP: u8 = 0x1e;

#[test]
fn dn_like_java_x500principal_get_name() {
    let cases: Vec<(String, &str)> = vec![
        // Most specific RDN first, Java's keywords.
        (
            dn(&[
                &[(C, PRINTABLE, b"US")],
                &[(O, UTF8, b"Example Corp")],
                &[(OU, UTF8, b"Engineering")],
                &[(CN, UTF8, b"alice")],
            ]),
            "CN=alice,OU=Engineering,O=Example Corp,C=US",
        ),
        (
            dn(&[
                &[(ST, PRINTABLE, b"CA")],
                &[(L, PRINTABLE, b"San Francisco")],
                &[(STREET, UTF8, b"1 Main St")],
            ]),
            "STREET=1 Main St,L=San Francisco,ST=CA",
        ),
        // Multi-valued RDN: '+' between its attributes, in encoded order.
        (
            dn(&[
                &[(DC, IA5, b"com")],
                &[(DC, IA5, b"example")],
                &[(CN, UTF8, b"alice"), (UID, UTF8, b"a1")],
            ]),
            "CN=alice+UID=a1,DC=example,DC=com",
        ),
        // Special characters anywhere get a backslash (Java also escapes '=' and '#').
        (
            dn(&[&[(CN, UTF8, b"a,b+c=d<e>f#g;h\"i\\j")]]),
            "CN=a\\,b\\+c\\=d\\<e\\>f\\#g\\;h\\\"i\\\\j",
        ),
        // Leading and trailing spaces are escaped, inner ones are not.
        (dn(&[&[(CN, UTF8, b"  x y ")]]), "CN=\\ \\ x y\\ "),
        (dn(&[&[(O, UTF8, b"#1")]]), "O=\\#1"),
        (dn(&[&[(CN, UTF8, b"a\0b")]]), "CN=a\\00b"),
        // Non-ASCII is kept as is.
        (dn(&[&[(CN, UTF8, "Zoë Ångström".as_bytes())]]), "CN=Zoë Ångström"),
        // Attributes without an RFC 2253 keyword: dotted OID and the hex DER value.
        (
            dn(&[&[(CN, UTF8, b"bob")], &[(EMAIL, IA5, b"bob@example.com")]]),
            "1.2.840.113549.1.9.1=#160f626f62406578616d706c652e636f6d,CN=bob",
        ),
        (dn(&[&[(SERIAL, PRINTABLE, b"42")]]), "2.5.4.5=#13023432"),
        // A keyword whose value is not one of Java's string types: hex too.
        (dn(&[&[(CN, 0x04, &[1, 2])]]), "CN=#04020102"),
        (dn(&[&[(CN, 0x1a, b"x")]]), "CN=#1a0178"),
        // Java decodes every string type's bytes as UTF-8: a BMPString "A" is NUL, 'A'.
        (dn(&[&[(CN, BMP, &[0, b'A'])]]), "CN=\\00A"),
        (dn(&[&[(CN, T61, &[b'Z', b'o', 0xeb])]]), "CN=Zo\u{fffd}"),
        (dn(&[]), ""),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    // Long values: the hex form re-encodes the length in long form.
    assert_eq!(
        dn(&[&[(SERIAL, UTF8, &[b'a'; 200])]]),
        format!("2.5.4.5=#0c81c8{}", "61".repeat(200))
    );
}

#[test]
fn subject_dn_from_a_certificate() {
    let ca = new_ca("kgate test CA");
    let leaf = alice(&ca);
    assert_eq!(
        subject_dn_rfc2253(&leaf.der).unwrap(),
        "CN=alice,OU=Engineering,O=Example Corp,C=US"
    );
    assert_eq!(subject_dn_rfc2253(&ca.der).unwrap(), "CN=kgate test CA");
    assert!(subject_dn_rfc2253(b"not a certificate").is_err());
}

#[test]
fn der_reencoding() {
    assert_eq!(der_reencode(0, false, 0x0c, b"ab"), vec![0x0c, 2, b'a', b'b']);
    assert_eq!(der_reencode(2, true, 3, &[]), vec![0xa3, 0]);
    assert_eq!(der_reencode(0, false, 31, &[]), vec![0x1f, 31, 0]);
    assert_eq!(der_reencode(0, false, 200, &[]), vec![0x1f, 0x81, 0x48, 0]);
    let long = der_reencode(0, false, 4, &[0; 300]);
    assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
}
