//! The client side of SASL PLAIN and SCRAM-SHA-256/512: how kgate authenticates to an upstream
//! cluster as its own service identity.
//!
//! Follows Kafka's `ScramSaslClient.java` / RFC 5802: client-first `n,,n=<user>,r=<nonce>`, the
//! server's nonce must extend ours, the proof is ClientKey XOR HMAC(StoredKey, AuthMessage), and the
//! server's final signature is checked (constant time) so a server that does not know the password
//! cannot impersonate the cluster. PBKDF2 output is cached per (salt, iterations): every client
//! connection opens its own upstream connection, and the derivation costs milliseconds.
use std::fmt;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

use super::credentials::ScramMechanism;
use super::crypto;

/// Upper bound on the iteration count a server may ask for: a hostile or misconfigured upstream
/// must not make every connection spend seconds of CPU.
const MAX_ITERATIONS: u32 = 1_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl ClientMechanism {
    pub fn from_name(name: &str) -> Option<ClientMechanism> {
        match name {
            "PLAIN" => Some(ClientMechanism::Plain),
            other => ScramMechanism::from_name(other).map(ClientMechanism::Scram),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ClientMechanism::Plain => "PLAIN",
            ClientMechanism::Scram(m) => m.name(),
        }
    }
}

/// (salt, iterations, SaltedPassword) of the last SCRAM exchange.
type SaltedPassword = (Vec<u8>, u32, Vec<u8>);

/// kgate's upstream identity. `Debug` never shows the password.
pub struct SaslClientConfig {
    pub mechanism: ClientMechanism,
    pub username: String,
    password: String,
    salted_cache: Mutex<Option<SaltedPassword>>,
}

impl fmt::Debug for SaslClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslClientConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SaslClientError {
    #[error("the server sent a malformed {0} message")]
    Malformed(&'static str),
    #[error("the server's nonce does not extend ours (possible replay)")]
    NonceMismatch,
    #[error("the server asks for {0} PBKDF2 iterations; refusing more than {MAX_ITERATIONS}")]
    TooManyIterations(u32),
    #[error("the server refused the credentials: {0}")]
    ServerError(String),
    #[error("the server's signature is wrong: it does not know this user's credentials (wrong cluster?)")]
    BadServerSignature,
    #[error("cannot generate a nonce: {0}")]
    Random(String),
    #[error("the exchange is already complete")]
    Complete,
}

impl SaslClientConfig {
    pub fn new(mechanism: ClientMechanism, username: String, password: String) -> SaslClientConfig {
        SaslClientConfig {
            mechanism,
            username,
            password,
            salted_cache: Mutex::new(None),
        }
    }

    /// A fresh exchange and its first message.
    pub fn start(&self) -> Result<(SaslClient<'_>, Vec<u8>), SaslClientError> {
        match self.mechanism {
            ClientMechanism::Plain => {
                // authzid empty: the identity is the username (Kafka's PlainSaslServer accepts both).
                let message = format!("\0{}\0{}", self.username, self.password).into_bytes();
                Ok((
                    SaslClient {
                        config: self,
                        state: State::Done,
                    },
                    message,
                ))
            }
            ClientMechanism::Scram(mechanism) => {
                let nonce = crypto::server_nonce().map_err(|e| SaslClientError::Random(e.to_string()))?;
                self.start_scram_with_nonce(mechanism, nonce)
            }
        }
    }

    fn start_scram_with_nonce(
        &self,
        mechanism: ScramMechanism,
        client_nonce: String,
    ) -> Result<(SaslClient<'_>, Vec<u8>), SaslClientError> {
        let bare = format!("n={},r={client_nonce}", escape_saslname(&self.username));
        let first = format!("n,,{bare}").into_bytes();
        let state = State::ClientFirstSent {
            mechanism,
            client_nonce,
            client_first_bare: bare,
        };
        Ok((SaslClient { config: self, state }, first))
    }

    fn salted_password(&self, mechanism: ScramMechanism, salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut cache = self.salted_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, i, salted)) = cache.as_ref() {
            if s == salt && *i == iterations {
                return salted.clone();
            }
        }
        let salted = crypto::salted_password(mechanism, self.password.as_bytes(), salt, iterations);
        *cache = Some((salt.to_vec(), iterations, salted.clone()));
        salted
    }
}

enum State {
    ClientFirstSent {
        mechanism: ScramMechanism,
        client_nonce: String,
        client_first_bare: String,
    },
    ClientFinalSent {
        expected_server_signature: Vec<u8>,
    },
    Done,
}

/// One exchange in progress.
pub struct SaslClient<'a> {
    config: &'a SaslClientConfig,
    state: State,
}

impl SaslClient<'_> {
    /// True once the exchange needs no further server message.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Consumes a server message; gives the next client message, if the mechanism sends one.
    pub fn step(&mut self, server_message: &[u8]) -> Result<Option<Vec<u8>>, SaslClientError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Done => Err(SaslClientError::Complete),
            State::ClientFirstSent {
                mechanism,
                client_nonce,
                client_first_bare,
            } => {
                let text =
                    std::str::from_utf8(server_message).map_err(|_| SaslClientError::Malformed("server-first"))?;
                if let Some(error) = text.strip_prefix("e=") {
                    return Err(SaslClientError::ServerError(error.to_string()));
                }
                let (nonce, salt, iterations) = parse_server_first(text)?;
                if !nonce.starts_with(&client_nonce) || nonce.len() == client_nonce.len() {
                    return Err(SaslClientError::NonceMismatch);
                }
                if iterations > MAX_ITERATIONS {
                    return Err(SaslClientError::TooManyIterations(iterations));
                }
                let salted = self.config.salted_password(mechanism, &salt, iterations);
                let without_proof = format!("c=biws,r={nonce}");
                let auth_message = format!("{client_first_bare},{text},{without_proof}");
                let client_key = crypto::client_key(mechanism, &salted);
                let stored_key = crypto::hash(mechanism, &client_key);
                let signature = crypto::hmac(mechanism, &stored_key, auth_message.as_bytes());
                let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
                let server_key = crypto::server_key(mechanism, &salted);
                self.state = State::ClientFinalSent {
                    expected_server_signature: crypto::hmac(mechanism, &server_key, auth_message.as_bytes()),
                };
                Ok(Some(
                    format!("{without_proof},p={}", crypto::b64_encode(&proof)).into_bytes(),
                ))
            }
            State::ClientFinalSent {
                expected_server_signature,
            } => {
                let text =
                    std::str::from_utf8(server_message).map_err(|_| SaslClientError::Malformed("server-final"))?;
                if let Some(error) = text.strip_prefix("e=") {
                    return Err(SaslClientError::ServerError(error.to_string()));
                }
                let verifier = text
                    .split(',')
                    .find_map(|part| part.strip_prefix("v="))
                    .and_then(crypto::b64_decode_strict)
                    .ok_or(SaslClientError::Malformed("server-final"))?;
                if verifier.len() != expected_server_signature.len()
                    || !bool::from(verifier.ct_eq(&expected_server_signature))
                {
                    return Err(SaslClientError::BadServerSignature);
                }
                Ok(None)
            }
        }
    }
}

/// RFC 5802 saslname: `=` and `,` are escaped.
fn escape_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// `r=<nonce>,s=<salt>,i=<iterations>[,extensions]`
fn parse_server_first(text: &str) -> Result<(String, Vec<u8>, u32), SaslClientError> {
    let bad = SaslClientError::Malformed("server-first");
    let mut parts = text.split(',');
    let nonce = parts.next().and_then(|p| p.strip_prefix("r=")).ok_or(bad.clone())?;
    let salt = parts
        .next()
        .and_then(|p| p.strip_prefix("s="))
        .and_then(crypto::b64_decode_strict)
        .ok_or(bad.clone())?;
    let iterations = parts
        .next()
        .and_then(|p| p.strip_prefix("i="))
        .and_then(|i| i.parse::<u32>().ok())
        .filter(|i| *i > 0)
        .ok_or(bad.clone())?;
    if nonce.is_empty() || nonce.contains(|c: char| !c.is_ascii_graphic()) {
        return Err(bad);
    }
    Ok((nonce.to_string(), salt, iterations))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::credentials::ScramCredential;
    use crate::security::mechanism::{SaslServer, SaslStep};
    use crate::security::scram::ScramServer;

    /// RFC 7677 section 3: the SCRAM-SHA-256 example exchange, byte for byte.
    #[test]
    fn rfc7677_example_exchange() {
        let config = SaslClientConfig::new(
            ClientMechanism::Scram(ScramMechanism::Sha256),
            "user".into(),
            "pencil".into(),
        );
        let (mut client, first) = config
            .start_scram_with_nonce(ScramMechanism::Sha256, "rOprNGfwEbeRWgbNEkqO".into())
            .unwrap();
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let final_message = client.step(server_first).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(final_message).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            client.step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap(),
            None
        );
    }

    #[test]
    fn a_forged_server_signature_is_refused() {
        let config = SaslClientConfig::new(
            ClientMechanism::Scram(ScramMechanism::Sha256),
            "user".into(),
            "pencil".into(),
        );
        let (mut client, _) = config
            .start_scram_with_nonce(ScramMechanism::Sha256, "rOprNGfwEbeRWgbNEkqO".into())
            .unwrap();
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        client.step(server_first).unwrap();
        assert_eq!(
            client.step(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(SaslClientError::BadServerSignature)
        );
    }

    #[test]
    fn server_nonce_must_extend_the_client_nonce_and_iterations_are_bounded() {
        let config = SaslClientConfig::new(ClientMechanism::Scram(ScramMechanism::Sha512), "u".into(), "p".into());
        let (mut client, _) = config
            .start_scram_with_nonce(ScramMechanism::Sha512, "abc".into())
            .unwrap();
        assert_eq!(
            client.step(b"r=xyzdef,s=AAAA,i=4096"),
            Err(SaslClientError::NonceMismatch)
        );
        let (mut client, _) = config
            .start_scram_with_nonce(ScramMechanism::Sha512, "abc".into())
            .unwrap();
        assert_eq!(
            client.step(b"r=abcdef,s=AAAA,i=99999999"),
            Err(SaslClientError::TooManyIterations(99999999))
        );
        let (mut client, _) = config
            .start_scram_with_nonce(ScramMechanism::Sha512, "abc".into())
            .unwrap();
        assert_eq!(
            client.step(b"e=invalid-proof"),
            Err(SaslClientError::ServerError("invalid-proof".into()))
        );
        let (mut client, _) = config
            .start_scram_with_nonce(ScramMechanism::Sha512, "abc".into())
            .unwrap();
        assert_eq!(client.step(b"garbage"), Err(SaslClientError::Malformed("server-first")));
    }

    #[test]
    fn plain_message_and_escaped_scram_names() {
        let config = SaslClientConfig::new(ClientMechanism::Plain, "kgate".into(), "s3cret".into());
        let (client, first) = config.start().unwrap();
        assert_eq!(first, b"\0kgate\0s3cret");
        assert!(client.is_complete());
        let config = SaslClientConfig::new(
            ClientMechanism::Scram(ScramMechanism::Sha256),
            "a=b,c".into(),
            "p".into(),
        );
        let (_, first) = config.start().unwrap();
        assert!(String::from_utf8(first).unwrap().starts_with("n,,n=a=3Db=2Cc,r="));
        let config = SaslClientConfig::new(ClientMechanism::Plain, "kgate".into(), "s3cret".into());
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    /// Client against kgate's own SCRAM server, for both hashes (the server side is tested
    /// against librdkafka and kafka-python in the peer tests).
    #[test]
    fn client_and_server_agree() {
        for mechanism in ScramMechanism::ALL {
            let credential = ScramCredential::from_password(mechanism, "pw", b"salty-salt".to_vec(), 4096);
            let dir = tempfile::tempdir().unwrap();
            let store = crate::security::CredentialStore::open(&dir.path().join("users.toml")).unwrap();
            store
                .update(|table| table.upsert("svc", mechanism, credential))
                .unwrap();
            let mut server = ScramServer::new(mechanism, store);
            let config = SaslClientConfig::new(ClientMechanism::Scram(mechanism), "svc".into(), "pw".into());
            let (mut client, first) = config.start().unwrap();
            let SaslStep::Challenge(challenge) = server.step(&first).unwrap() else {
                panic!("SCRAM answers client-first with a challenge")
            };
            let last = client.step(&challenge).unwrap().unwrap();
            let SaslStep::Complete { reply, user } = server.step(&last).unwrap() else {
                panic!("SCRAM completes after client-final")
            };
            assert_eq!(client.step(&reply).unwrap(), None);
            assert_eq!(user, "svc");
        }
    }
}
