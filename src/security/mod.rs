//! Authentication: certificate principals (ssl.principal.mapping.rules), SASL mechanisms (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), the users file that holds
//! SCRAM credentials, and the Describe/AlterUserScramCredentials admin APIs. Pure library code: no
//! sockets. The SASL framing (SaslHandshake, SaslAuthenticate, delays, re-authentication) lives in
//! `session` and drives a [`SaslServer`] from [`new_server`].
//!
//! Kafka sources the behaviour follows (apache/kafka): `PlainSaslServer.java`, `ScramSaslServer.java`,
//! `ScramMessages.java`, `ScramFormatter.java`, `ScramMechanism.java`, `SaslServerAuthenticator.java`,
//! `ScramControlManager.java`, `ScramImage.java`. Each module lists what it matches and where it differs.
pub mod credentials;
mod crypto;
pub mod gssapi;
mod java_regex;
pub mod kerberos_name;
pub mod mechanism;
pub mod plain;
pub mod sasl_client;
pub mod scram;
pub mod scram_admin;
pub mod ssl_principal;

pub use credentials::{CredentialError, CredentialStore, ScramCredential, ScramMechanism, UserTable};
pub use mechanism::{new_server, FailureKind, SaslFailure, SaslServer, SaslStep, SUPPORTED_MECHANISMS};
pub use scram_admin::{alter_user_scram_credentials, describe_user_scram_credentials};
