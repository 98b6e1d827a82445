//! SCRAM-SHA-256 / SCRAM-SHA-512 server (RFC 5802, RFC 7677) with Kafka's behaviour
//! (`ScramSaslServer.java`, `ScramMessages.java`, `ScramFormatter.java` in apache/kafka).
//!
//! Exchange: client-first → server-first (challenge) → client-final → server-final (`v=`, complete).
//!
//! Matched from Kafka:
//! * Message grammar: Kafka's regexes. client-first `n,[a=<saslname>],[m=<value>,]n=<saslname>,r=<nonce>[,<alpha>=<value>]*`;
//!   only the gs2 flag `n` (no channel binding; `y` and `p=` fail); saslname and values are 7-bit
//!   (non-ASCII user names cannot be used with Kafka's SCRAM either); `=2C`/`=3D` decoded, any other `=`
//!   fails. client-final `c=<b64>,r=<nonce>[,<alpha>=<value>]*,p=<b64>`; base64 with canonical padding,
//!   trailing bits tolerated like Java's decoder.
//! * The credential is looked up on the first message: an unknown user fails there.
//! * Extensions other than `tokenauth` are ignored. `tokenauth=true` (delegation tokens) fails, as Kafka
//!   fails for a token it does not know; kgate has no delegation tokens.
//! * A non-empty authzid must equal the user name (compared with the undecoded authzid, as Kafka does).
//! * Server nonce: 26 characters of [0-9a-z] appended to the client nonce.
//! * The final nonce must end with the combined nonce (Kafka 3.x; old librdkafka prefixes its own
//!   nonce); the proof is checked in constant time.
//! * AuthMessage is rebuilt like Kafka's: `n=<saslname>,r=<nonce>[,ext...]` (no `m=`), the server-first
//!   message, and `c=<base64 of decoded c>,r=<nonce>` (client-final extensions left out).
//! * Errors are never sent as `e=`. Which failures show the client a specific text and which the
//!   generic one follows Kafka's exception types ([`FailureKind`]).
//!
//! Stricter than Kafka (RFC 5802 §5.1): the decoded `c=` must equal the gs2 header of the client-first
//! message (`biws` for `n,,`). Kafka only covers it by the proof. Clients send it correctly.
use std::sync::Arc;

use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::credentials::{CredentialStore, ScramCredential, ScramMechanism};
use super::crypto;
use super::mechanism::{SaslFailure, SaslServer, SaslStep};

/// Kafka's SaslAuthenticationException text for a mismatched authzid (sent verbatim).
const AUTHZID_MISMATCH: &str =
    "Authentication failed: Client requested an authorization id that is different from username";

enum State {
    ClientFirst,
    ClientFinal(Box<Exchange>),
    Complete,
    Failed,
}

/// What the server keeps between the two client messages. Dropped (credential included) when the
/// exchange ends, successfully or not.
struct Exchange {
    username: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    combined_nonce: String,
    credential: ScramCredential,
}

pub struct ScramServer {
    mechanism: ScramMechanism,
    credentials: Arc<CredentialStore>,
    state: State,
    fixed_server_nonce: Option<String>,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism, credentials: Arc<CredentialStore>) -> ScramServer {
        ScramServer {
            mechanism,
            credentials,
            state: State::ClientFirst,
            fixed_server_nonce: None,
        }
    }

    /// Tests drive the RFC 7677 example, which needs its server nonce.
    #[cfg(test)]
    fn with_server_nonce(mut self, nonce: &str) -> ScramServer {
        self.fixed_server_nonce = Some(nonce.to_owned());
        self
    }

    fn generic(&self, reason: impl Into<String>) -> SaslFailure {
        SaslFailure::generic(self.mechanism.name(), reason)
    }

    fn client_first(&mut self, token: &[u8]) -> Result<(Exchange, Vec<u8>), SaslFailure> {
        let text = String::from_utf8_lossy(token);
        let first =
            ClientFirst::parse(&text).map_err(|r| self.generic(format!("invalid client-first message: {r}")))?;
        if first.token_auth() {
            return Err(self.generic(format!(
                "delegation token authentication (tokenauth=true) is not supported; token id {:?}",
                first.username
            )));
        }
        // Kafka: SaslException "Authentication failed: Invalid user credentials".
        let credential = self.credentials.scram(&first.username, self.mechanism).ok_or_else(|| {
            self.generic(format!(
                "unknown user {:?} (no {} credential)",
                first.username, self.mechanism
            ))
        })?;
        if !first.authzid.is_empty() && first.authzid != first.username {
            return Err(SaslFailure::specific(self.mechanism.name(), AUTHZID_MISMATCH));
        }
        if credential.iterations < self.mechanism.min_iterations() {
            return Err(self.generic(format!(
                "Iterations {} is less than the minimum {} for {}",
                credential.iterations,
                self.mechanism.min_iterations(),
                self.mechanism
            )));
        }
        let server_nonce = match self.fixed_server_nonce.take() {
            Some(n) => n,
            None => crypto::server_nonce().map_err(|e| self.generic(format!("no random server nonce: {e}")))?,
        };
        let combined_nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={combined_nonce},s={},i={}",
            crypto::b64_encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        let exchange = Exchange {
            gs2_header: first.gs2_header(),
            client_first_bare: first.bare(),
            username: first.username,
            server_first,
            combined_nonce,
            credential,
        };
        Ok((exchange, reply))
    }

    fn client_final(&self, exchange: Exchange, token: &[u8]) -> Result<SaslStep, SaslFailure> {
        let mech = self.mechanism;
        let text = String::from_utf8_lossy(token);
        let last = ClientFinal::parse(&text).map_err(|r| self.generic(format!("invalid client-final message: {r}")))?;
        // Kafka 2.x/3.x check `endsWith(combined nonce)`, and librdkafka before 2.1 (Debian's kcat)
        // sends its own nonce in front of the combined one; equality would lock those clients out.
        // The server's random part must still be there, and the proof covers the nonce as sent.
        if !last.nonce.ends_with(&exchange.combined_nonce) {
            return Err(self.generic("Invalid client nonce in the final client message."));
        }
        if last.channel_binding != exchange.gs2_header.as_bytes() {
            return Err(self.generic(format!(
                "channel binding data does not match the gs2 header {:?} (clients without channel binding send c={})",
                exchange.gs2_header,
                crypto::b64_encode(exchange.gs2_header.as_bytes())
            )));
        }
        let auth_message = format!(
            "{},{},c={},r={}",
            exchange.client_first_bare,
            exchange.server_first,
            crypto::b64_encode(&last.channel_binding),
            last.nonce
        );
        let credential = &exchange.credential;
        let client_signature = crypto::hmac(mech, &credential.stored_key, auth_message.as_bytes());
        if last.proof.len() != client_signature.len() {
            // Kafka's xor throws IllegalArgumentException here: connection closed, no response.
            return Err(SaslFailure::no_response(
                mech.name(),
                format!(
                    "client proof has {} bytes, {mech} needs {}",
                    last.proof.len(),
                    client_signature.len()
                ),
            ));
        }
        let client_key: Vec<u8> = client_signature.iter().zip(&last.proof).map(|(a, b)| a ^ b).collect();
        let computed_stored_key = crypto::hash(mech, &client_key);
        if !bool::from(computed_stored_key.ct_eq(&credential.stored_key)) {
            // Kafka: SaslException "Invalid client credentials".
            return Err(self.generic(format!(
                "Invalid client credentials: wrong password for user {:?}",
                exchange.username
            )));
        }
        let server_signature = crypto::hmac(mech, &credential.server_key, auth_message.as_bytes());
        Ok(SaslStep::Complete {
            reply: format!("v={}", crypto::b64_encode(&server_signature)).into_bytes(),
            user: exchange.username,
        })
    }
}

impl SaslServer for ScramServer {
    fn mechanism(&self) -> &'static str {
        self.mechanism.name()
    }

    fn step(&mut self, client_token: &[u8]) -> Result<SaslStep, SaslFailure> {
        // Any failure leaves the server in Failed, with the credential dropped.
        match std::mem::replace(&mut self.state, State::Failed) {
            State::ClientFirst => {
                let (exchange, reply) = self.client_first(client_token)?;
                self.state = State::ClientFinal(Box::new(exchange));
                Ok(SaslStep::Challenge(reply))
            }
            State::ClientFinal(exchange) => {
                let done = self.client_final(*exchange, client_token)?;
                self.state = State::Complete;
                Ok(done)
            }
            // Kafka: IllegalSaslStateException "Unexpected challenge in Sasl server state ..."
            State::Complete => {
                self.state = State::Complete;
                Err(SaslFailure::no_response(
                    self.mechanism.name(),
                    "token received after the exchange completed",
                ))
            }
            State::Failed => Err(SaslFailure::no_response(
                self.mechanism.name(),
                "token received after the exchange failed",
            )),
        }
    }
}

/// `[\x01-\x7F]` minus `,` (Kafka's VALUE); the caller has split on commas already.
fn is_value(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x01..=0x7f).contains(&b) && b != b',')
}

/// `[\x21-\x7E]` minus `,` (Kafka's PRINTABLE).
fn is_printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Decodes a saslname: 7-bit, no `,`, `=` only as `=2C` or `=3D` (Kafka's SASLNAME + `ScramFormatter.username`).
fn decode_saslname(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '=' {
            if let Some(r) = rest.strip_prefix("=2C") {
                out.push(',');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("=3D") {
                out.push('=');
                rest = r;
            } else {
                return None;
            }
        } else if ('\u{1}'..='\u{7f}').contains(&c) && c != ',' {
            out.push(c);
            rest = &rest[1..];
        } else {
            return None;
        }
    }
    Some(out)
}

/// Kafka's BASE64 pattern (`(?:X{4})*(?:X{3}=|X{2}==)?`, possibly empty), then Java-lenient decoding.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    let shape_ok = s.len().is_multiple_of(4)
        && pad <= 2
        && (pad == 0 || body.len() % 4 == 4 - pad)
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if !shape_ok {
        return None;
    }
    crypto::LENIENT_B64.decode(s).ok()
}

/// `<alpha>=<value>` extensions (Kafka's EXTENSIONS), in the order sent.
fn parse_extensions<'a>(parts: impl Iterator<Item = &'a str>) -> Result<Vec<(String, String)>, &'static str> {
    parts
        .map(|part| match part.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic()) && is_value(v) => {
                Ok((k.to_owned(), v.to_owned()))
            }
            _ => Err("malformed attribute or extension"),
        })
        .collect()
}

struct ClientFirst {
    /// As sent (not decoded), like Kafka.
    authzid: String,
    saslname: String,
    username: String,
    nonce: String,
    extensions: Vec<(String, String)>,
}

impl ClientFirst {
    fn parse(msg: &str) -> Result<ClientFirst, &'static str> {
        let mut parts = msg.split(',');
        match parts.next() {
            Some("n") => {}
            Some("y") => return Err("gs2 flag 'y': only 'n' (no channel binding) is supported"),
            Some(p) if p.starts_with("p=") => return Err("channel binding 'p=' requested; it is not supported"),
            _ => return Err("does not start with the gs2 flag 'n'"),
        }
        let authzid = match parts.next().ok_or("truncated after the gs2 flag")? {
            "" => String::new(),
            a => match a.strip_prefix("a=") {
                Some(id) if decode_saslname(id).is_some() => id.to_owned(),
                _ => return Err("malformed authzid in the gs2 header"),
            },
        };
        let mut next = parts.next().ok_or("truncated after the gs2 header")?;
        if let Some(reserved) = next.strip_prefix("m=") {
            if !is_value(reserved) {
                return Err("malformed m= attribute");
            }
            next = parts.next().ok_or("truncated after m=")?;
        }
        let saslname = next.strip_prefix("n=").ok_or("expected n=<user>")?;
        let username =
            decode_saslname(saslname).ok_or("invalid user name (7-bit characters, ',' as =2C, '=' as =3D)")?;
        let nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .ok_or("expected r=<nonce> after the user name")?;
        if !is_printable(nonce) {
            return Err("the nonce must be printable ASCII without ','");
        }
        let extensions = parse_extensions(parts)?;
        Ok(ClientFirst {
            authzid,
            saslname: saslname.to_owned(),
            username,
            nonce: nonce.to_owned(),
            extensions,
        })
    }

    /// Kafka: `Boolean.parseBoolean(extensions.get("tokenauth"))`; the last occurrence wins.
    fn token_auth(&self) -> bool {
        self.extensions
            .iter()
            .rev()
            .find(|(k, _)| k == "tokenauth")
            .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"))
    }

    fn gs2_header(&self) -> String {
        if self.authzid.is_empty() {
            "n,,".to_owned()
        } else {
            format!("n,a={},", self.authzid)
        }
    }

    /// client-first-message-bare as Kafka rebuilds it (no `m=`).
    fn bare(&self) -> String {
        let mut bare = format!("n={},r={}", self.saslname, self.nonce);
        for (k, v) in &self.extensions {
            bare.push_str(&format!(",{k}={v}"));
        }
        bare
    }
}

struct ClientFinal {
    channel_binding: Vec<u8>,
    nonce: String,
    proof: Vec<u8>,
}

impl ClientFinal {
    fn parse(msg: &str) -> Result<ClientFinal, &'static str> {
        let parts: Vec<&str> = msg.split(',').collect();
        let [first, second, middle @ .., last] = &parts[..] else {
            return Err("truncated: expected c=,r=,p=");
        };
        let channel_binding = first
            .strip_prefix("c=")
            .and_then(decode_base64)
            .ok_or("expected c=<base64> first")?;
        let nonce = second.strip_prefix("r=").ok_or("expected r=<nonce> second")?;
        if !is_printable(nonce) {
            return Err("the nonce must be printable ASCII without ','");
        }
        parse_extensions(middle.iter().copied())?;
        let proof = last
            .strip_prefix("p=")
            .and_then(decode_base64)
            .ok_or("expected p=<base64 proof> last")?;
        Ok(ClientFinal {
            channel_binding,
            nonce: nonce.to_owned(),
            proof,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::mechanism::FailureKind;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256, Sha512};

    // ---- A SCRAM client written from the RFC 5802 formulas, independent of the server's crypto module.

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn unb64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s).expect("base64")
    }

    fn hmac_t(mech: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
        match mech {
            ScramMechanism::Sha256 => {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn h_t(mech: ScramMechanism, data: &[u8]) -> Vec<u8> {
        match mech {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(str, salt, i) from RFC 5802 §2.2.
    fn hi_t(mech: ScramMechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut u = hmac_t(mech, password, &[salt, &[0, 0, 0, 1]].concat());
        let mut out = u.clone();
        for _ in 1..iterations {
            u = hmac_t(mech, password, &u);
            out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
        }
        out
    }

    struct TestClient {
        mech: ScramMechanism,
        password: String,
        bare: String,
        gs2: String,
    }

    impl TestClient {
        fn first(mech: ScramMechanism, saslname: &str, password: &str, nonce: &str) -> (TestClient, Vec<u8>) {
            let bare = format!("n={saslname},r={nonce}");
            let client = TestClient {
                mech,
                password: password.into(),
                bare: bare.clone(),
                gs2: "n,,".into(),
            };
            (client, format!("n,,{bare}").into_bytes())
        }

        /// Returns the client-final message and the expected server signature.
        fn finish(&self, server_first: &[u8]) -> (Vec<u8>, String) {
            let sf = std::str::from_utf8(server_first).expect("utf8");
            let attrs: Vec<(&str, &str)> = sf.split(',').map(|a| a.split_at(2)).collect();
            assert_eq!(
                attrs.iter().map(|a| a.0).collect::<Vec<_>>(),
                ["r=", "s=", "i="],
                "{sf}"
            );
            let (nonce, salt, iters) = (attrs[0].1, unb64(attrs[1].1), attrs[2].1.parse::<u32>().expect("i"));
            let without_proof = format!("c={},r={nonce}", b64(self.gs2.as_bytes()));
            let auth = format!("{},{sf},{without_proof}", self.bare);
            let salted = hi_t(self.mech, self.password.as_bytes(), &salt, iters);
            let client_key = hmac_t(self.mech, &salted, b"Client Key");
            let stored_key = h_t(self.mech, &client_key);
            let signature = hmac_t(self.mech, &stored_key, auth.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
            let server_key = hmac_t(self.mech, &salted, b"Server Key");
            let expected = format!("v={}", b64(&hmac_t(self.mech, &server_key, auth.as_bytes())));
            (format!("{without_proof},p={}", b64(&proof)).into_bytes(), expected)
        }
    }

    // ---- fixtures

    const PW: &str = "pencil";

    fn store_with(users: &[(&str, ScramMechanism, &str)]) -> (tempfile::TempDir, Arc<CredentialStore>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CredentialStore::open(&dir.path().join("users.toml")).expect("open");
        for (user, mech, pw) in users {
            store.upsert_password(user, *mech, 4096, pw).expect("upsert");
        }
        (dir, store)
    }

    fn both() -> (tempfile::TempDir, Arc<CredentialStore>) {
        store_with(&[
            ("user", ScramMechanism::Sha256, PW),
            ("user", ScramMechanism::Sha512, PW),
        ])
    }

    fn challenge(step: Result<SaslStep, SaslFailure>) -> Vec<u8> {
        match step {
            Ok(SaslStep::Challenge(c)) => c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    fn generic_failure(step: Result<SaslStep, SaslFailure>, mech: ScramMechanism) -> SaslFailure {
        let failure = step.expect_err("should fail");
        assert_eq!(failure.kind, FailureKind::Generic, "{failure:?}");
        assert_eq!(failure.client_message, SaslFailure::generic_message(mech.name(), false));
        failure
    }

    // ---- tests

    #[test]
    fn rfc7677_sha256_test_vector() {
        // RFC 7677 §3: user "user", password "pencil".
        let (_d, store) = store_with(&[]);
        let salt = unb64("W22ZaJ0SNY7soEsUEjb6gQ==");
        let cred = ScramCredential::from_password(ScramMechanism::Sha256, PW, salt, 4096);
        store
            .update(|t| t.upsert("user", ScramMechanism::Sha256, cred))
            .expect("store");

        let mut server =
            ScramServer::new(ScramMechanism::Sha256, store).with_server_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        let server_first = challenge(server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
        assert_eq!(
            String::from_utf8_lossy(&server_first),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let done = server
            .step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .expect("RFC proof accepted");
        assert_eq!(
            done,
            SaslStep::Complete {
                reply: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
                user: "user".into()
            }
        );
        // The exchange is over.
        assert_eq!(server.step(b"").expect_err("over").kind, FailureKind::NoResponse);
    }

    #[test]
    fn full_exchange_both_mechanisms_with_the_independent_client() {
        let (_d, store) = both();
        for mech in ScramMechanism::ALL {
            let mut server = ScramServer::new(mech, store.clone());
            assert_eq!(server.mechanism(), mech.name());
            let (client, first) = TestClient::first(mech, "user", PW, "fyko+d2lbbFgONRv9qkxdawL");
            let server_first = challenge(server.step(&first));
            let text = String::from_utf8_lossy(&server_first).into_owned();
            let nonce = text
                .split(',')
                .next()
                .and_then(|r| r.strip_prefix("r="))
                .expect("nonce");
            let server_part = nonce
                .strip_prefix("fyko+d2lbbFgONRv9qkxdawL")
                .expect("starts with the client nonce");
            assert_eq!(server_part.len(), 26, "{text}");
            assert!(text.ends_with(",i=4096"));
            let (last, expected) = client.finish(&server_first);
            match server.step(&last) {
                Ok(SaslStep::Complete { reply, user }) => {
                    assert_eq!(String::from_utf8_lossy(&reply), expected, "server signature ({mech})");
                    assert_eq!(user, "user");
                }
                other => panic!("{mech}: {other:?}"),
            }
        }
    }

    #[test]
    fn sha512_matches_the_rfc_formulas_with_a_fixed_nonce() {
        // Same inputs as RFC 7677's example, SHA-512: everything the server sends is checked against the
        // test's own implementation.
        let (_d, store) = store_with(&[]);
        let salt = unb64("W22ZaJ0SNY7soEsUEjb6gQ==");
        let cred = ScramCredential::from_password(ScramMechanism::Sha512, PW, salt, 4096);
        store
            .update(|t| t.upsert("user", ScramMechanism::Sha512, cred))
            .expect("store");
        let mut server =
            ScramServer::new(ScramMechanism::Sha512, store).with_server_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        let (client, first) = TestClient::first(ScramMechanism::Sha512, "user", PW, "rOprNGfwEbeRWgbNEkqO");
        let server_first = challenge(server.step(&first));
        assert_eq!(
            String::from_utf8_lossy(&server_first),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (last, expected) = client.finish(&server_first);
        let Ok(SaslStep::Complete { reply, .. }) = server.step(&last) else {
            panic!("SHA-512 exchange failed")
        };
        assert_eq!(String::from_utf8_lossy(&reply), expected);
        assert_eq!(unb64(&expected[2..]).len(), 64);
    }

    #[test]
    fn unknown_user_fails_on_the_first_message() {
        let (_d, store) = store_with(&[("user", ScramMechanism::Sha256, PW)]);
        for (mech, user) in [(ScramMechanism::Sha256, "nobody"), (ScramMechanism::Sha512, "user")] {
            let mut server = ScramServer::new(mech, store.clone());
            let f = generic_failure(server.step(format!("n,,n={user},r=abc").as_bytes()), mech);
            assert!(f.log_reason.contains("unknown user"), "{f:?}");
            assert_eq!(
                server.step(b"c=biws,r=abc,p=").expect_err("failed").kind,
                FailureKind::NoResponse
            );
        }
    }

    #[test]
    fn wrong_password_fails_on_the_final_message() {
        let (_d, store) = both();
        for mech in ScramMechanism::ALL {
            let mut server = ScramServer::new(mech, store.clone());
            let (client, first) = TestClient::first(mech, "user", "not-pencil", "nonce123");
            let server_first = challenge(server.step(&first));
            let (last, _) = client.finish(&server_first);
            let f = generic_failure(server.step(&last), mech);
            assert!(f.log_reason.contains("Invalid client credentials"), "{f:?}");
        }
    }

    /// Runs a valid first message and returns the server, the client and the valid final message.
    fn after_first(store: &Arc<CredentialStore>, mech: ScramMechanism) -> (ScramServer, Vec<u8>, String) {
        let mut server = ScramServer::new(mech, store.clone());
        let (client, first) = TestClient::first(mech, "user", PW, "clientnonce");
        let server_first = challenge(server.step(&first));
        let (last, _) = client.finish(&server_first);
        (server, last, String::from_utf8_lossy(&server_first).into_owned())
    }

    #[test]
    fn wrong_nonce_in_the_final_message() {
        let (_d, store) = both();
        let mech = ScramMechanism::Sha256;
        let (mut server, last, _) = after_first(&store, mech);
        let text = String::from_utf8(last).expect("utf8");
        // Only the client's half of the nonce, like a client that forgot the server part.
        let bad = text.replacen(",r=clientnonce", ",r=clientnonce-x", 1);
        let f = generic_failure(server.step(bad.as_bytes()), mech);
        assert_eq!(f.log_reason, "Invalid client nonce in the final client message.");

        let (mut server, _, server_first) = after_first(&store, mech);
        let combined = &server_first[2..server_first.find(',').expect(",")];
        // A nonce that ends with the combined one passes the nonce check as in Kafka (old librdkafka
        // sends one), and then stands or falls by its proof.
        let prefixed = format!("c=biws,r=x{combined},p={}", b64(&[0; 32]));
        let f = generic_failure(server.step(prefixed.as_bytes()), mech);
        assert_ne!(f.log_reason, "Invalid client nonce in the final client message.");
        // The combined nonce with something after it is not accepted.
        let (mut server, _, server_first) = after_first(&store, mech);
        let combined = &server_first[2..server_first.find(',').expect(",")];
        let suffixed = format!("c=biws,r={combined}x,p={}", b64(&[0; 32]));
        let f = generic_failure(server.step(suffixed.as_bytes()), mech);
        assert_eq!(f.log_reason, "Invalid client nonce in the final client message.");
    }

    #[test]
    fn replayed_client_final_on_a_fresh_server_fails() {
        let (_d, store) = both();
        let mech = ScramMechanism::Sha256;
        let (mut server, last, _) = after_first(&store, mech);
        assert!(matches!(server.step(&last), Ok(SaslStep::Complete { .. })));
        // As the first message of a new exchange.
        generic_failure(ScramServer::new(mech, store.clone()).step(&last), mech);
        // As the final message of a new exchange (new server nonce).
        let (mut fresh, _, _) = after_first(&store, mech);
        let f = generic_failure(fresh.step(&last), mech);
        assert!(f.log_reason.contains("nonce"), "{f:?}");
    }

    #[test]
    fn truncated_garbage_and_reordered_first_messages() {
        let (_d, store) = both();
        let mech = ScramMechanism::Sha256;
        let cases: &[&[u8]] = &[
            b"",
            b"n",
            b"n,",
            b"n,,",
            b"n,,n=user",
            b"n,,n=user,",
            b"n,,n=user,r=",
            b"n,,r=abc,n=user",
            b",,n=user,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=user,r=ab c",
            b"n,,n=user,r=abc,",
            b"n,,n=user,r=abc,=x",
            b"n,,n=user,r=abc,1=x",
            b"n,,n=user,r=abc,k=",
            b"n,,n=us=er,r=abc",
            b"n,,n=us=2Der,r=abc",
            b"n,,n=\xc3\xa9l\xc3\xa8ve,r=abc",
            b"n,,n=user\0,r=abc",
            b"n,a=,n=user,r=abc",
            b"n,,m=,n=user,r=abc",
            b"\xff\xfe",
            b"c=biws,r=abc,p=AAAA",
        ];
        for case in cases {
            let f = generic_failure(ScramServer::new(mech, store.clone()).step(case), mech);
            assert!(
                f.log_reason.starts_with("invalid client-first message"),
                "{:?}: {f:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn truncated_garbage_and_reordered_final_messages() {
        let (_d, store) = both();
        let mech = ScramMechanism::Sha256;
        let (_, last, _) = after_first(&store, mech);
        let good = String::from_utf8(last).expect("utf8");
        let (c, rest) = good.split_once(',').expect("c");
        let (r, p) = rest.split_once(',').expect("r");
        let cases = vec![
            String::new(),
            c.to_string(),
            format!("{c},{r}"),
            format!("{c},{r},"),
            format!("{c},{r},p="),
            format!("{r},{c},{p}"),
            format!("{c},{p},{r}"),
            format!("{p},{c},{r}"),
            good[..good.len() - 1].to_string(),
            good.replace("p=", "p=!"),
            format!("{c},{r},{p},x=y"),
            "garbage".to_string(),
        ];
        for case in cases {
            let (mut server, _, _) = after_first(&store, mech);
            let f = server.step(case.as_bytes()).expect_err(&case);
            assert_ne!(f.kind, FailureKind::Specific, "{case}");
        }
        // A valid-looking proof of the wrong length: Kafka closes without a response.
        let (mut server, last, _) = after_first(&store, mech);
        let text = String::from_utf8(last).expect("utf8");
        let short = format!("{},p={}", text.rsplit_once(",p=").expect("p").0, b64(&[1; 16]));
        assert_eq!(
            server.step(short.as_bytes()).expect_err("short").kind,
            FailureKind::NoResponse
        );
    }

    #[test]
    fn channel_binding_must_match_the_gs2_header() {
        let (_d, store) = both();
        let mech = ScramMechanism::Sha256;
        // "eSws" = base64("y,,"), "" = empty, "cCx0bHMtdW5pcXVlLCw=" = "p,tls-unique,,"
        for cb in ["eSws", "", "cCx0bHMtdW5pcXVlLCw="] {
            let mut server = ScramServer::new(mech, store.clone());
            let mut client = TestClient::first(mech, "user", PW, "cbnonce").0;
            let server_first = challenge(server.step(b"n,,n=user,r=cbnonce"));
            client.gs2 = String::from_utf8(unb64(cb)).expect("utf8");
            // The proof is valid for the channel binding sent, so only the binding check can refuse it.
            let (last, _) = client.finish(&server_first);
            let f = generic_failure(server.step(&last), mech);
            assert!(f.log_reason.contains("channel binding"), "{cb}: {f:?}");
        }
        // gs2 flags that ask for channel binding are refused on the first message.
        for first in [&b"y,,n=user,r=abc"[..], b"p=tls-unique,,n=user,r=abc"] {
            generic_failure(ScramServer::new(mech, store.clone()).step(first), mech);
        }
    }

    #[test]
    fn authzid_equal_to_the_user_succeeds_otherwise_a_specific_error() {
        let (_d, store) = both();
        let mech = ScramMechanism::Sha512;
        let mut server = ScramServer::new(mech, store.clone());
        let (mut client, _) = TestClient::first(mech, "user", PW, "az");
        client.gs2 = "n,a=user,".into();
        let server_first = challenge(server.step(b"n,a=user,n=user,r=az"));
        let (last, expected) = client.finish(&server_first);
        let Ok(SaslStep::Complete { reply, user }) = server.step(&last) else {
            panic!("authzid = user")
        };
        assert_eq!(
            (String::from_utf8_lossy(&reply).into_owned(), user.as_str()),
            (expected, "user")
        );

        let f = ScramServer::new(mech, store.clone())
            .step(b"n,a=admin,n=user,r=az")
            .expect_err("mismatch");
        assert_eq!(f.kind, FailureKind::Specific);
        assert_eq!(f.client_message, AUTHZID_MISMATCH);
        // Unknown user is checked first (generic), like Kafka.
        generic_failure(ScramServer::new(mech, store).step(b"n,a=admin,n=nobody,r=az"), mech);
    }

    #[test]
    fn tokenauth_extension_fails_other_extensions_and_m_are_ignored() {
        let (_d, store) = both();
        let mech = ScramMechanism::Sha256;
        for first in [
            "n,,n=user,r=abc,tokenauth=true",
            "n,,n=user,r=abc,tokenauth=TRUE",
            "n,,n=user,r=abc,x=1,tokenauth=true",
        ] {
            let f = generic_failure(ScramServer::new(mech, store.clone()).step(first.as_bytes()), mech);
            assert!(f.log_reason.contains("tokenauth"), "{f:?}");
        }
        // tokenauth=false and unknown extensions: the exchange proceeds, extensions are part of AuthMessage.
        for ext in [",tokenauth=false", ",foo=bar=baz"] {
            let mut server = ScramServer::new(mech, store.clone());
            let (mut client, _) = TestClient::first(mech, "user", PW, "ext");
            client.bare.push_str(ext);
            let server_first = challenge(server.step(format!("n,,{}", client.bare).as_bytes()));
            let (last, expected) = client.finish(&server_first);
            let Ok(SaslStep::Complete { reply, .. }) = server.step(&last) else {
                panic!("{ext}")
            };
            assert_eq!(String::from_utf8_lossy(&reply), expected);
        }
        // m= before the user name is accepted and left out of AuthMessage, as Kafka does.
        let mut server = ScramServer::new(mech, store.clone());
        let (client, _) = TestClient::first(mech, "user", PW, "mm");
        let server_first = challenge(server.step(b"n,,m=whatever,n=user,r=mm"));
        let (last, _) = client.finish(&server_first);
        assert!(matches!(server.step(&last), Ok(SaslStep::Complete { .. })));
    }

    #[test]
    fn escaped_user_names_are_decoded() {
        let (_d, store) = store_with(&[("bob,=x", ScramMechanism::Sha256, PW)]);
        let mech = ScramMechanism::Sha256;
        let mut server = ScramServer::new(mech, store);
        let (client, first) = TestClient::first(mech, "bob=2C=3Dx", PW, "esc");
        let server_first = challenge(server.step(&first));
        let (last, _) = client.finish(&server_first);
        let Ok(SaslStep::Complete { user, .. }) = server.step(&last) else {
            panic!("escaped user")
        };
        assert_eq!(user, "bob,=x");
    }

    #[test]
    fn failures_never_contain_secrets() {
        let (_d, store) = both();
        let mech = ScramMechanism::Sha256;
        let (mut server, last, server_first) = after_first(&store, mech);
        let text = String::from_utf8(last).expect("utf8");
        let proof = text.rsplit_once("p=").expect("p").1.to_owned();
        let bad = text.replace(&proof, &b64(&[9; 32]));
        let f = server.step(bad.as_bytes()).expect_err("bad proof");
        let salt = server_first
            .split(",s=")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .expect("salt")
            .to_owned();
        for shown in [format!("{f:?}"), f.to_string(), f.client_message.clone()] {
            for secret in [PW, proof.as_str(), salt.as_str(), &b64(&[9; 32])] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
    }

    #[test]
    fn base64_shapes_follow_kafkas_pattern() {
        assert_eq!(decode_base64(""), Some(vec![]));
        assert_eq!(decode_base64("biws"), Some(b"n,,".to_vec()));
        assert_eq!(decode_base64("YQ=="), Some(b"a".to_vec()));
        assert_eq!(decode_base64("YWI="), Some(b"ab".to_vec()));
        for bad in ["YQ", "YQ=", "Y===", "====", "bi ws", "biws=", "b-ws", "YQ==YQ=="] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
    }
}
