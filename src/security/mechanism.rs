//! The interface between the SASL state machine (src/session/) and the mechanisms.
//!
//! The session creates one [`SaslServer`] per authentication (and per re-authentication) with
//! [`new_server`] and feeds it each client token. Each call returns the token to send back, or a
//! [`SaslFailure`] that says what to put in SaslAuthenticate's ErrorMessage and what to log.
//!
//! PLAIN checks passwords with PBKDF2 (milliseconds of CPU), so `step` should run off the async
//! executor (e.g. `tokio::task::spawn_blocking`). SCRAM steps are a few HMACs.
use std::fmt;
use std::sync::Arc;

use super::credentials::{CredentialStore, ScramMechanism};
use super::plain::PlainServer;
use super::scram::ScramServer;

pub trait SaslServer: Send {
    /// "PLAIN", "SCRAM-SHA-256", ...
    fn mechanism(&self) -> &'static str;
    /// One client token in, one server token out. After `Complete` (or any failure) the exchange is
    /// over: later calls fail with [`FailureKind::NoResponse`].
    fn step(&mut self, client_token: &[u8]) -> Result<SaslStep, SaslFailure>;
    /// The identity the mechanism proved before it was mapped to a user name (the Kerberos
    /// principal for GSSAPI), for the authentication log. None where it is the user name itself.
    fn authenticated_identity(&self) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this token and wait for the client's next one.
    Challenge(Vec<u8>),
    /// Send `reply` (PLAIN: empty; SCRAM: the server-final message); authenticated as `User:<user>`.
    /// `user` is the authorization id, which for PLAIN and SCRAM is the authenticated user name.
    Complete { reply: Vec<u8>, user: String },
}

/// How Kafka's `SaslServerAuthenticator` reports a failure; see [`SaslFailure::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Kafka threw `SaslAuthenticationException`: ErrorCode 58 and this exact message.
    Specific,
    /// Kafka threw a plain `SaslException`: ErrorCode 58 with the generic text, which hides whether
    /// the user exists. It says "re-authentication" during re-authentication, see
    /// [`SaslFailure::client_message_for`].
    Generic,
    /// Kafka threw something else (`IllegalSaslStateException`, a runtime exception): no
    /// SaslAuthenticate response at all, the connection is closed. `client_message` still holds the
    /// generic text for a session that prefers to answer.
    NoResponse,
}

/// Why an exchange failed. Contains no password, proof, salt, key or raw token.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslFailure {
    /// Exactly what Kafka puts in SaslAuthenticate's ErrorMessage for this failure during a first
    /// authentication.
    pub client_message: String,
    /// For kgate's own log: what went wrong (unknown user, bad proof, nonce mismatch...).
    pub log_reason: String,
    pub kind: FailureKind,
    pub mechanism: &'static str,
}

impl SaslFailure {
    /// Kafka's text for a `SaslException` (SaslServerAuthenticator.handleSaslToken).
    pub fn generic_message(mechanism: &str, reauthenticating: bool) -> String {
        let what = if reauthenticating {
            "re-authentication"
        } else {
            "authentication"
        };
        format!("Authentication failed during {what} due to invalid credentials with SASL mechanism {mechanism}")
    }

    /// A `SaslException`: the client sees the generic text.
    pub(crate) fn generic(mechanism: &'static str, log_reason: impl Into<String>) -> SaslFailure {
        SaslFailure {
            client_message: Self::generic_message(mechanism, false),
            log_reason: log_reason.into(),
            kind: FailureKind::Generic,
            mechanism,
        }
    }

    /// A `SaslAuthenticationException`: the client sees `message`, which is also logged.
    pub(crate) fn specific(mechanism: &'static str, message: impl Into<String>) -> SaslFailure {
        let message = message.into();
        SaslFailure {
            client_message: message.clone(),
            log_reason: message,
            kind: FailureKind::Specific,
            mechanism,
        }
    }

    /// Not a SASL exception in Kafka: the connection is closed without a response.
    pub(crate) fn no_response(mechanism: &'static str, log_reason: impl Into<String>) -> SaslFailure {
        SaslFailure {
            kind: FailureKind::NoResponse,
            ..Self::generic(mechanism, log_reason)
        }
    }

    /// The ErrorMessage to send: `client_message`, except that the generic text says
    /// "re-authentication" while re-authenticating, as Kafka's does.
    pub fn client_message_for(&self, reauthenticating: bool) -> String {
        match self.kind {
            FailureKind::Specific => self.client_message.clone(),
            FailureKind::Generic | FailureKind::NoResponse => Self::generic_message(self.mechanism, reauthenticating),
        }
    }
}

impl fmt::Debug for SaslFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslFailure")
            .field("mechanism", &self.mechanism)
            .field("kind", &self.kind)
            .field("log_reason", &self.log_reason)
            .field("client_message", &self.client_message)
            .finish()
    }
}

impl fmt::Display for SaslFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SASL/{} authentication failed: {}", self.mechanism, self.log_reason)
    }
}

impl std::error::Error for SaslFailure {}

pub const SUPPORTED_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// A server for `mechanism` (exact, case-sensitive name as in SaslHandshake); `None` if kgate does not
/// implement it.
pub fn new_server(mechanism: &str, credentials: Arc<CredentialStore>) -> Option<Box<dyn SaslServer>> {
    if mechanism == PlainServer::MECHANISM {
        return Some(Box::new(PlainServer::new(credentials)));
    }
    let scram = ScramMechanism::from_name(mechanism)?;
    Some(Box::new(ScramServer::new(scram, credentials)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_server_knows_exactly_the_supported_mechanisms() {
        for name in SUPPORTED_MECHANISMS {
            let server = new_server(name, CredentialStore::empty()).expect("supported");
            assert_eq!(server.mechanism(), *name);
        }
        for name in ["plain", "scram-sha-256", "GSSAPI", "OAUTHBEARER", "SCRAM-SHA-1", ""] {
            assert!(new_server(name, CredentialStore::empty()).is_none(), "{name}");
        }
    }

    #[test]
    fn generic_message_matches_kafka_for_both_phases() {
        let f = SaslFailure::generic("SCRAM-SHA-256", "unknown user");
        assert_eq!(
            f.client_message,
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
        );
        assert_eq!(
            f.client_message_for(true),
            "Authentication failed during re-authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
        );
        let s = SaslFailure::specific("PLAIN", "Authentication failed: Invalid username or password");
        assert_eq!(
            s.client_message_for(true),
            "Authentication failed: Invalid username or password"
        );
    }
}
