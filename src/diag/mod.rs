//! Kerberos diagnostics: `kgate doctor kerberos` ([`doctor`]) walks what a Kafka client does to
//! authenticate with GSSAPI and explains each failure; [`startup_checks`] checks GSSAPI listeners
//! (keytab principals, forward and reverse DNS of the advertised hosts) before kgate serves.
//!
//! Building blocks, usable on their own:
//! - [`krb5_conf`]: krb5.conf in MIT's profile format (realms, `[domain_realm]`, KDCs).
//! - [`jaas`]: a Java client's JAAS configuration (`KafkaClient` / `sasl.jaas.config`).
//! - [`dns`]: forward and reverse lookups with hickory-resolver and the system configuration.
//! - [`apreq`]: the service ticket's principal, enctype and kvno read from a GSSAPI token.
//! - [`kafka_client`]: ApiVersions / SaslHandshake / SaslAuthenticate over TCP.
//! - [`kdc_clock`]: the KDC's clock from a KRB-ERROR, to find clock skew without credentials.
//! - [`gss`]: the initiator side on MIT krb5 (libgssapi).
//! - [`report`]: steps with ok/warn/fail, rendered for people or as JSON.
//!
//! [`listeners`] is `kgate doctor listeners`: every advertised endpoint checked from the client's side.
pub mod apreq;
mod der;
pub mod dns;
pub mod doctor;
pub mod gss;
pub mod jaas;
pub mod kafka_client;
pub mod kdc_clock;
pub mod krb5_conf;
pub mod listeners;
pub mod report;
pub mod startup_checks;

pub use doctor::{diagnose, ClientDnsLookup, DoctorOptions, LoginSource};
pub use report::{Report, Status, Step};
pub use startup_checks::{check_gssapi_listeners, StartupReport};

/// MIT's enctype names (as `klist -e` prints them): the keytab reader's table.
pub fn enctype_name(enctype: i32) -> String {
    match u16::try_from(enctype) {
        Ok(e) => crate::security::gssapi::enctype_name(e),
        Err(_) => format!("enctype {enctype}"),
    }
}
