//! kgate: a Kafka-protocol security gateway with an embedded single-node broker.
//!
//! Module map (data flows top to bottom, see README.md):
//! - [`config`]: the TOML tree, defaults, and `validate()` that reports every problem at once.
//! - [`protocol`]: no I/O. Framing, header decode, the api-version table, response encoding.
//! - [`listener`]: accept loop, connection tracking, graceful shutdown.
//! - [`session`]: one connection's request loop (ApiVersions, ordering, bad input handling).
//! - [`backend`]: the `Backend` trait; `embedded` is the built-in broker core, `upstream` a Kafka cluster.
//! - [`rewrite`]: broker addresses in responses rewritten for the listener a client used.
//! - [`policy`]: pure data, no I/O: Kafka's ACL model and its decisions.
//! - [`security`]: SASL mechanisms (PLAIN, SCRAM, GSSAPI), the users file, principal mapping.
//! - [`diag`]: `kgate doctor kerberos|listeners` and the GSSAPI start-up checks.
//! - [`cli`]: `kgate users`, `kgate certs`, `kgate principal`, `kgate doctor`.
//! - [`app`]: the one place that wires the modules together.
#![forbid(unsafe_code)]

pub mod app;
pub mod backend;
pub mod cli;
pub mod config;
pub mod diag;
pub mod error;
pub mod listener;
pub mod policy;
pub mod protocol;
pub mod rewrite;
pub mod security;
pub mod session;
