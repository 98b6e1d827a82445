//! SASL/PLAIN (RFC 4616) as Kafka's `PlainSaslServer` does it, with passwords checked against the
//! users file's SCRAM credentials instead of JAAS `user_<name>` entries.
//!
//! * The token is decoded as UTF-8 (invalid bytes become U+FFFD, like Java's `new String`) and cut at
//!   NUL bytes into at most four pieces; exactly three are required:
//!   "Invalid SASL/PLAIN response: expected 3 tokens, got N".
//! * Empty user name or password: "Authentication failed: username not specified" /
//!   "Authentication failed: password not specified".
//! * Wrong user or password: "Authentication failed: Invalid username or password". The password is
//!   checked before the authorization id, as Kafka does.
//! * A non-empty authzid different from the user name: "Authentication failed: Client requested an
//!   authorization id that is different from username".
//!
//! All are `SaslAuthenticationException`s in Kafka, so the client sees these texts verbatim. The reply
//! to a successful token is empty.
use std::sync::Arc;

use super::credentials::CredentialStore;
use super::mechanism::{SaslFailure, SaslServer, SaslStep};

pub struct PlainServer {
    credentials: Arc<CredentialStore>,
    done: bool,
}

impl PlainServer {
    pub const MECHANISM: &'static str = "PLAIN";

    pub fn new(credentials: Arc<CredentialStore>) -> PlainServer {
        PlainServer {
            credentials,
            done: false,
        }
    }

    fn fail(message: &str) -> SaslFailure {
        SaslFailure::specific(Self::MECHANISM, message)
    }
}

/// Kafka's `PlainSaslServer.extractTokens`: split on NUL, at most four pieces.
fn extract_tokens(message: &str) -> Vec<&str> {
    let mut tokens = Vec::with_capacity(4);
    let mut rest = message;
    for _ in 0..4 {
        match rest.find('\0') {
            None => {
                tokens.push(rest);
                break;
            }
            Some(i) => {
                tokens.push(&rest[..i]);
                rest = &rest[i + 1..];
            }
        }
    }
    tokens
}

impl SaslServer for PlainServer {
    fn mechanism(&self) -> &'static str {
        Self::MECHANISM
    }

    fn step(&mut self, client_token: &[u8]) -> Result<SaslStep, SaslFailure> {
        if self.done {
            return Err(SaslFailure::no_response(
                Self::MECHANISM,
                "token received after the PLAIN exchange ended",
            ));
        }
        self.done = true;
        let message = String::from_utf8_lossy(client_token);
        let tokens = extract_tokens(&message);
        let [authzid, user, password] = tokens[..] else {
            return Err(Self::fail(&format!(
                "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
                tokens.len()
            )));
        };
        if user.is_empty() {
            return Err(Self::fail("Authentication failed: username not specified"));
        }
        if password.is_empty() {
            return Err(Self::fail("Authentication failed: password not specified"));
        }
        if !self.credentials.verify_password(user, password) {
            let mut failure = Self::fail("Authentication failed: Invalid username or password");
            failure.log_reason = if self.credentials.snapshot().contains_user(user) {
                format!("wrong password for user {user:?}")
            } else {
                format!("unknown user {user:?}")
            };
            return Err(failure);
        }
        if !authzid.is_empty() && authzid != user {
            return Err(Self::fail(
                "Authentication failed: Client requested an authorization id that is different from username",
            ));
        }
        Ok(SaslStep::Complete {
            reply: Vec::new(),
            user: user.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::credentials::ScramMechanism;
    use crate::security::mechanism::FailureKind;

    const PW: &str = "alice-secret";

    fn store() -> (tempfile::TempDir, Arc<CredentialStore>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CredentialStore::open(&dir.path().join("users.toml")).expect("open");
        store
            .upsert_password("alice", ScramMechanism::Sha256, 4096, PW)
            .expect("upsert");
        store
            .upsert_password("bob", ScramMechanism::Sha512, 4096, "bob-secret")
            .expect("upsert");
        (dir, store)
    }

    fn run(store: &Arc<CredentialStore>, token: &[u8]) -> Result<SaslStep, SaslFailure> {
        PlainServer::new(store.clone()).step(token)
    }

    fn message(store: &Arc<CredentialStore>, token: &[u8]) -> String {
        let failure = run(store, token).expect_err("should fail");
        assert_eq!(
            failure.kind,
            FailureKind::Specific,
            "PLAIN failures are SaslAuthenticationExceptions"
        );
        failure.client_message
    }

    #[test]
    fn valid_credentials_with_and_without_authzid() {
        let (_d, store) = store();
        let ok = |user: &str| {
            Ok(SaslStep::Complete {
                reply: Vec::new(),
                user: user.into(),
            })
        };
        assert_eq!(run(&store, b"\0alice\0alice-secret"), ok("alice"));
        assert_eq!(run(&store, b"alice\0alice\0alice-secret"), ok("alice"));
        assert_eq!(run(&store, b"\0bob\0bob-secret"), ok("bob"), "SCRAM-SHA-512 credential");
    }

    #[test]
    fn token_count() {
        let (_d, store) = store();
        let want = |n: usize| format!("Invalid SASL/PLAIN response: expected 3 tokens, got {n}");
        assert_eq!(message(&store, b""), want(1));
        assert_eq!(message(&store, b"alice"), want(1));
        assert_eq!(message(&store, b"alice\0alice-secret"), want(2));
        assert_eq!(message(&store, b"\0alice\0alice-secret\0"), want(4));
        assert_eq!(message(&store, b"\0alice\0alice-secret\0x\0y"), want(4));
    }

    #[test]
    fn empty_user_or_password() {
        let (_d, store) = store();
        assert_eq!(
            message(&store, b"\0\0alice-secret"),
            "Authentication failed: username not specified"
        );
        assert_eq!(
            message(&store, b"\0alice\0"),
            "Authentication failed: password not specified"
        );
        assert_eq!(
            message(&store, b"\0\0"),
            "Authentication failed: username not specified"
        );
    }

    #[test]
    fn wrong_user_or_password_look_the_same_to_the_client() {
        let (_d, store) = store();
        let bad = "Authentication failed: Invalid username or password";
        let wrong_pw = run(&store, b"\0alice\0nope").expect_err("wrong password");
        let unknown = run(&store, b"\0mallory\0alice-secret").expect_err("unknown user");
        assert_eq!(wrong_pw.client_message, bad);
        assert_eq!(unknown.client_message, bad);
        assert!(wrong_pw.log_reason.contains("wrong password") && unknown.log_reason.contains("unknown user"));
        assert_eq!(
            message(&store, b"\0ALICE\0alice-secret"),
            bad,
            "user names are case-sensitive"
        );
        assert_eq!(message(&store, b"\0alice\0alice-secret "), bad);
        // Another user's password.
        assert_eq!(message(&store, b"\0alice\0bob-secret"), bad);
        // Invalid UTF-8 is replaced, not rejected, and simply does not match.
        assert_eq!(message(&store, b"\0alice\0alice-secret\xff"), bad);
    }

    #[test]
    fn authzid_must_match_and_is_checked_after_the_password() {
        let (_d, store) = store();
        assert_eq!(
            message(&store, b"bob\0alice\0alice-secret"),
            "Authentication failed: Client requested an authorization id that is different from username"
        );
        assert_eq!(
            message(&store, b"bob\0alice\0wrong"),
            "Authentication failed: Invalid username or password"
        );
    }

    #[test]
    fn exchange_is_single_use_and_failures_hold_no_password() {
        let (_d, store) = store();
        let mut server = PlainServer::new(store.clone());
        assert!(server.step(b"\0alice\0alice-secret").is_ok());
        let again = server.step(b"\0alice\0alice-secret").expect_err("over");
        assert_eq!(again.kind, FailureKind::NoResponse);
        let failure = run(&store, b"\0alice\0hunter2-wrong").expect_err("fails");
        for shown in [format!("{failure:?}"), failure.to_string()] {
            assert!(!shown.contains("hunter2") && !shown.contains(PW), "{shown}");
        }
    }
}
