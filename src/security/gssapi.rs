//! SASL/GSSAPI (Kerberos V5, RFC 4752) on the broker side, as Kafka's `SaslServerAuthenticator` does it
//! through the JDK's `com.sun.security.sasl.gsskerb.GssKrb5Server`, on MIT krb5 via `libgssapi`.
//!
//! # Start-up
//! [`GssapiAcceptor::new`] points MIT krb5 at the configured files and acquires acceptor credentials
//! for one service principal (`kafka/<advertised host>@REALM`), once. It checks the keytab itself
//! ([`keytab_entries`]) so that a wrong path, a missing principal or a wrong realm produce an error
//! that lists what the keytab does hold.
//!
//! **Process-global settings.** MIT krb5 takes its configuration from the environment: `new` sets
//! `KRB5_KTNAME=FILE:<keytab>` and, when `[kerberos] krb5_conf` is given, `KRB5_CONFIG=<krb5_conf>`
//! for the whole process. Call it during start-up, before other threads use Kerberos or read the
//! environment from C (`setenv` is not thread-safe against a concurrent C `getenv`). The keytab is
//! bound to the credential when it is acquired, so each acceptor keeps the keytab it was created
//! with; krb5.conf is read again on every accept (clock skew, enctypes, replay cache), so the
//! `KRB5_CONFIG` of the last `new` applies to all acceptors.
//!
//! # The exchange (one [`GssapiServer`] per authentication)
//! ```text
//! client                                   kgate
//! AP-REQ (gss_init_sec_context)      ->    gss_accept_sec_context
//!                                    <-    AP-REP                      (client asked for mutual auth)
//! empty token                        ->
//!                                    <-    wrap([0x01, 0, 0, 0], conf=false)   security-layer offer
//! wrap([0x01, x, x, x] + authzid)    ->    unwrap; layer must be 0x01 (none)
//!                                    <-    Complete { reply: empty, user: short name }
//! ```
//! Without mutual authentication the context completes with no output token and the offer is sent
//! in reply to the AP-REQ itself (the JDK's `doHandshake1(EMPTY)`); the token after an AP-REP must be
//! empty ("Handshake expecting no response data from server"). The offer is wrapped exactly once:
//! every wrap consumes a sequence number, and clients that asked for sequence checking (all of
//! them) reject a gap. Kafka's offer carries the JDK's receive-buffer size; kgate offers only "no
//! security layer" and therefore a maximum size of 0 (RFC 4752 §3.3).
//!
//! The identity is the context's source name (the client's Kerberos principal), mapped to the kgate
//! user by the short namer (`sasl.kerberos.principal.to.local.rules`). The authorization id in the
//! client's last token is only logged (librdkafka sends none, kafka-python sends
//! `<service>@<host>`): Kafka's `SaslServerCallbackHandler` authorizes any authzid and sets the
//! authorized id to the authentication id.
//!
//! # Failures
//! * GSS errors (defective token, ticket for another principal, wrong key, expired ticket, clock
//!   skew...) are `SaslException`s in Kafka: SASL_AUTHENTICATION_FAILED with the generic message. The
//!   log reason carries the GSS major and minor status text, never token bytes.
//! * Kerberos errors Kafka treats as retriable (`KerberosError`: 21 client not yet valid, 33 ticket not
//!   yet valid, 34 replay) are rethrown as I/O errors in Kafka: [`FailureKind::NoResponse`].
//! * A principal the short namer rejects: Kafka's principal builder throws after the exchange and the
//!   connection is closed; kgate fails the authentication (generic message) instead.
//!
//! [`FailureKind::NoResponse`]: super::mechanism::FailureKind::NoResponse
//!
//! # For the session
//! `step` reads the keytab and writes the replay cache: run it off the async executor, as PLAIN.
//! The final step's empty reply stands for the JDK's `null`: with SaslAuthenticate (handshake v1+) it
//! is sent as empty AuthBytes; in legacy raw framing (handshake v0 and 0.9 clients) Kafka sends no
//! packet at all for it.
mod keytab;

pub(crate) use keytab::enctype_name;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libgssapi::context::{SecurityContext, ServerCtx};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::error::Error as GssError;
use libgssapi::name::Name;
use libgssapi::oid::{OidSet, GSS_MECH_KRB5, GSS_NT_KRB5_PRINCIPAL};

use super::mechanism::{SaslFailure, SaslServer, SaslStep};
use crate::config::KerberosConfig;

/// Maps a Kerberos principal ("alice@EXAMPLE.COM") to the kgate user name
/// (`sasl.kerberos.principal.to.local.rules`). An error fails the authentication.
pub type ShortNamer = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// RFC 4752 security-layer offer: bit 0x01 "no security layer", maximum message size 0.
const SECURITY_LAYER_OFFER: [u8; 4] = [0x01, 0, 0, 0];
const NO_SECURITY_LAYER: u8 = 0x01;
/// The three RFC 4752 layer bits (none, integrity, confidentiality).
const LAYER_MASK: u8 = 0x07;

/// MIT's com_err base of the krb5 error table (`ERROR_TABLE_BASE_krb5`, -1765328384): the minor status
/// of a Kerberos protocol error is this base plus the RFC 4120 error code.
const KRB5_ERROR_TABLE_BASE: u32 = 0x96C7_3A00;
/// Kafka's retriable `KerberosError`s: CLIENT_NOT_YET_VALID, TICKET_NOT_YET_VALID, REPLAY.
const RETRIABLE_KERBEROS_ERRORS: [u32; 3] = [21, 33, 34];

/// Principals held by a keytab (for start-up checks and doctor): (principal, kvno, enctype names
/// joined with ", "), one tuple per principal and kvno, in file order.
///
/// Reads MIT's keytab file format (version 2) directly, see the `keytab` module; no `klist` process
/// and no krb5 call, so it works before any Kerberos configuration is set.
pub fn keytab_entries(keytab: &Path) -> Result<Vec<(String, u32, String)>, String> {
    keytab::read(keytab)
}

/// Acceptor credentials for one service principal, loaded once at start-up and shared by the
/// connections (`Send + Sync`).
pub struct GssapiAcceptor {
    principal: String,
    cred: Cred,
}

impl fmt::Debug for GssapiAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GssapiAcceptor")
            .field("principal", &self.principal)
            .finish()
    }
}

impl GssapiAcceptor {
    /// `service_principal` like "kafka/broker1.example.com" (realm optional: the default realm of
    /// krb5.conf). Sets `KRB5_KTNAME` (and `KRB5_CONFIG` if configured) for the process, see the
    /// module documentation, and acquires acceptor credentials for that principal from the keytab.
    pub fn new(config: &KerberosConfig, service_principal: &str) -> Result<GssapiAcceptor, String> {
        let keytab = absolute(&config.keytab)?;
        let export_hint = format!(
            "export it with kadmin: ktadd -k {} {service_principal}",
            keytab.display()
        );
        if let Err(e) = std::fs::File::open(&keytab) {
            return Err(format!(
                "Kerberos keytab {} cannot be read ({e}); set [kerberos] keytab to a file readable by kgate that \
                 holds {service_principal} ({export_hint})",
                keytab.display()
            ));
        }
        let krb5_conf = match &config.krb5_conf {
            Some(path) => {
                let path = absolute(path)?;
                if let Err(e) = std::fs::File::open(&path) {
                    return Err(format!(
                        "krb5.conf {} cannot be read ({e}); fix [kerberos] krb5_conf or remove it to use \
                         KRB5_CONFIG / /etc/krb5.conf",
                        path.display()
                    ));
                }
                Some(path)
            }
            None => None,
        };
        check_principal_syntax(service_principal)?;

        // Process-global: see the module documentation.
        std::env::set_var("KRB5_KTNAME", format!("FILE:{}", keytab.display()));
        if let Some(path) = &krb5_conf {
            std::env::set_var("KRB5_CONFIG", path);
        }
        let conf_text = match &krb5_conf {
            Some(path) => path.display().to_string(),
            None => std::env::var("KRB5_CONFIG").unwrap_or_else(|_| "/etc/krb5.conf".into()),
        };

        let name = Name::new(service_principal.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL)).map_err(|e| {
            format!(
                "{service_principal:?} is not a Kerberos principal name: {}",
                gss_text(&e)
            )
        })?;
        let name = name.canonicalize(Some(GSS_MECH_KRB5)).map_err(|e| {
            format!(
                "cannot determine the realm of {service_principal}: {}; give it (\"{service_principal}@REALM\") or set \
                 default_realm in [libdefaults] of {conf_text}",
                gss_text(&e)
            )
        })?;
        let principal = display_name(&name).map_err(|e| format!("cannot display {service_principal}: {e}"))?;

        // Our own keytab check first: its errors can say what the keytab holds instead.
        let listing = keytab_entries(&keytab);
        if let Ok(entries) = &listing {
            if !entries.iter().any(|(p, _, _)| *p == principal) {
                return Err(missing_principal_message(
                    &keytab,
                    &principal,
                    entries,
                    &conf_text,
                    &export_hint,
                ));
            }
        }

        let mechs = OidSet::singleton(GSS_MECH_KRB5).map_err(|e| format!("GSS-API: {}", gss_text(&e)))?;
        let cred = Cred::acquire(Some(&name), None, CredUsage::Accept, Some(&mechs)).map_err(|e| {
            let mut message = format!(
                "cannot acquire Kerberos acceptor credentials for {principal} from keytab {}: {}",
                keytab.display(),
                gss_text(&e)
            );
            if let Err(listing_error) = &listing {
                message.push_str(&format!(" ({listing_error})"));
            }
            message
        })?;
        Ok(GssapiAcceptor { principal, cred })
    }

    /// The service principal with its realm, e.g. "kafka/broker1.example.com@EXAMPLE.COM".
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// A server for one authentication on one connection.
    pub fn server(self: &Arc<Self>, short_namer: ShortNamer) -> Box<dyn SaslServer> {
        Box::new(GssapiServer::new(self.clone(), short_namer))
    }
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("bad path {}: {e}", path.display()))
}

/// "service/host" with an optional "@REALM": what Kafka's `KerberosName` accepts for a broker, which
/// needs the host component (the SaslServer's serverName).
fn check_principal_syntax(principal: &str) -> Result<(), String> {
    let (name, realm) = match principal.split_once('@') {
        Some((name, realm)) => (name, Some(realm)),
        None => (principal, None),
    };
    let valid_name = matches!(name.split_once('/'), Some((service, host))
        if !service.is_empty() && !host.is_empty() && !host.contains('/'));
    let valid_realm = realm.is_none_or(|r| !r.is_empty() && !r.contains('@') && !r.contains('/'));
    if valid_name && valid_realm {
        Ok(())
    } else {
        Err(format!(
            "{principal:?} is not a service principal: expected \"<service_name>/<host>\" or \"<service_name>/<host>@REALM\", \
             e.g. \"kafka/broker1.example.com@EXAMPLE.COM\""
        ))
    }
}

fn missing_principal_message(
    keytab: &Path,
    principal: &str,
    entries: &[(String, u32, String)],
    conf_text: &str,
    export_hint: &str,
) -> String {
    let mut message = format!("Kerberos keytab {} holds no key for {principal}", keytab.display());
    if entries.is_empty() {
        message.push_str("; it is empty");
    } else {
        let listed: Vec<String> = entries
            .iter()
            .map(|(p, kvno, enctypes)| format!("{p} (kvno {kvno}: {enctypes})"))
            .collect();
        message.push_str(&format!("; it holds {}", listed.join(", ")));
    }
    let (name, realm) = principal.rsplit_once('@').unwrap_or((principal, ""));
    let other_realms: Vec<&str> = entries
        .iter()
        .filter_map(|(p, _, _)| {
            p.rsplit_once('@')
                .filter(|(n, r)| *n == name && *r != realm)
                .map(|(_, r)| r)
        })
        .collect();
    if let Some(other) = other_realms.first() {
        message.push_str(&format!(
            ". Wrong realm: the keytab has {name}@{other}; give the realm in the principal or fix default_realm in \
             {conf_text}"
        ));
    } else {
        message.push_str(&format!(
            ". Clients ask for <service_name>/<the host they connect to>@REALM: check [kerberos] service_name and \
             the advertised host, or {export_hint}"
        ));
    }
    message
}

/// GSS major and minor status text, one line.
fn gss_text(e: &GssError) -> String {
    let text = e.to_string();
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if e.minor == 0 {
        // No mechanism status: libgssapi still appends the text of minor code 0.
        if let Some(major_only) = text.strip_suffix(" (Unknown error)") {
            text = major_only.to_string();
        }
    }
    if let Some(code) = kerberos_error_code(e.minor) {
        text.push_str(&format!(" [Kerberos error {code}]"));
    }
    text
}

/// The RFC 4120 error code carried by a krb5 minor status, if it is one.
fn kerberos_error_code(minor: u32) -> Option<u32> {
    minor.checked_sub(KRB5_ERROR_TABLE_BASE).filter(|code| *code < 128)
}

fn display_name(name: &Name) -> Result<String, String> {
    let buf = name.display_name().map_err(|e| gss_text(&e))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Feeding client tokens to gss_accept_sec_context.
    Accepting,
    /// The context is established and its last token (AP-REP) was sent; the client answers with an
    /// empty token, then gets the offer.
    Established,
    /// The offer was sent; the client's wrapped choice comes next.
    OfferSent,
    /// Completed or failed.
    Done,
}

/// One SASL/GSSAPI exchange (`SaslServer` for mechanism "GSSAPI"). See the module documentation.
pub struct GssapiServer {
    acceptor: Arc<GssapiAcceptor>,
    short_namer: ShortNamer,
    ctx: ServerCtx,
    state: State,
    principal: Option<String>,
    /// gss_wrap calls made; at most one (the offer).
    wraps: u32,
}

impl fmt::Debug for GssapiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GssapiServer")
            .field("service", &self.acceptor.principal)
            .field("state", &self.state)
            .field("principal", &self.principal)
            .finish()
    }
}

impl GssapiServer {
    pub const MECHANISM: &'static str = "GSSAPI";

    pub fn new(acceptor: Arc<GssapiAcceptor>, short_namer: ShortNamer) -> GssapiServer {
        let ctx = ServerCtx::new(Some(acceptor.cred.clone()));
        GssapiServer {
            acceptor,
            short_namer,
            ctx,
            state: State::Accepting,
            principal: None,
            wraps: 0,
        }
    }

    /// The client's Kerberos principal ("client@EXAMPLE.COM") once the security context is
    /// established (it is the identity only if the exchange then completes).
    pub fn kerberos_principal(&self) -> Option<String> {
        self.principal.clone()
    }

    fn accept(&mut self, token: &[u8]) -> Result<SaslStep, SaslFailure> {
        let output = self
            .ctx
            .step(token, None)
            .map_err(|e| gss_failure("gss_accept_sec_context", &e))?;
        if !self.ctx.is_complete() {
            // Kerberos needs one round trip; other exchanges (e.g. DCE-style) may need more.
            return Ok(SaslStep::Challenge(output.map(|t| t.to_vec()).unwrap_or_default()));
        }
        let source = self
            .ctx
            .source_name()
            .map_err(|e| gss_failure("gss_inquire_context (source name)", &e))?;
        let principal = display_name(&source)
            .map_err(|e| SaslFailure::generic(Self::MECHANISM, format!("cannot display the client principal: {e}")))?;
        tracing::debug!(principal = %principal, service = %self.acceptor.principal, "GSSAPI security context established");
        self.principal = Some(principal);
        match output {
            Some(token) if !token.is_empty() => {
                self.state = State::Established;
                Ok(SaslStep::Challenge(token.to_vec()))
            }
            _ => self.offer(),
        }
    }

    /// Wrap and send the security-layer offer. The state machine reaches this once per exchange.
    fn offer(&mut self) -> Result<SaslStep, SaslFailure> {
        if self.wraps > 0 {
            return Err(SaslFailure::no_response(
                Self::MECHANISM,
                "security-layer offer already sent",
            ));
        }
        self.wraps += 1;
        let wrapped = self
            .ctx
            .wrap(false, &SECURITY_LAYER_OFFER)
            .map_err(|e| gss_failure("gss_wrap (security-layer offer)", &e))?;
        self.state = State::OfferSent;
        Ok(SaslStep::Challenge(wrapped.to_vec()))
    }

    fn finish(&mut self, token: &[u8]) -> Result<SaslStep, SaslFailure> {
        let reply = self
            .ctx
            .unwrap(token)
            .map_err(|e| gss_failure("gss_unwrap (security-layer reply)", &e))?;
        let [layer, _, _, _, authzid @ ..] = &reply[..] else {
            return Err(SaslFailure::generic(
                Self::MECHANISM,
                format!("security-layer reply is {} bytes, expected at least 4", reply.len()),
            ));
        };
        if layer & LAYER_MASK != NO_SECURITY_LAYER {
            return Err(SaslFailure::generic(
                Self::MECHANISM,
                format!("client selected security layer 0x{layer:02x}; only 0x01 (no security layer) is offered"),
            ));
        }
        let Some(principal) = self.principal.clone() else {
            return Err(SaslFailure::no_response(
                Self::MECHANISM,
                "no client principal after the exchange",
            ));
        };
        tracing::debug!(
            principal = %principal,
            authzid = %String::from_utf8_lossy(authzid),
            "GSSAPI authorization id ignored: the Kerberos principal is the identity"
        );
        let user = (self.short_namer)(&principal).map_err(|e| {
            SaslFailure::generic(
                Self::MECHANISM,
                format!("Failed to set name for '{principal}' based on Kerberos authentication rules: {e}"),
            )
        })?;
        Ok(SaslStep::Complete {
            reply: Vec::new(),
            user,
        })
    }
}

/// A GSS error as a SASL failure: generic, or no response for Kafka's retriable Kerberos errors.
fn gss_failure(operation: &str, e: &GssError) -> SaslFailure {
    let reason = format!(
        "{operation} failed: {} (major 0x{:08x}, minor {})",
        gss_text(e),
        e.major.bits(),
        e.minor as i32 // com_err codes are negative in krb5.h
    );
    match kerberos_error_code(e.minor) {
        Some(code) if RETRIABLE_KERBEROS_ERRORS.contains(&code) => SaslFailure::no_response(
            GssapiServer::MECHANISM,
            format!("{reason}; retriable Kerberos error, closing without a response as Kafka does"),
        ),
        _ => SaslFailure::generic(GssapiServer::MECHANISM, reason),
    }
}

impl SaslServer for GssapiServer {
    fn mechanism(&self) -> &'static str {
        Self::MECHANISM
    }

    fn authenticated_identity(&self) -> Option<String> {
        self.kerberos_principal()
    }

    fn step(&mut self, token: &[u8]) -> Result<SaslStep, SaslFailure> {
        let result = match self.state {
            State::Accepting => self.accept(token),
            State::Established if token.is_empty() => self.offer(),
            State::Established => Err(SaslFailure::generic(
                Self::MECHANISM,
                format!(
                    "Handshake expecting no response data from server: {} bytes after the context was established",
                    token.len()
                ),
            )),
            State::OfferSent => self.finish(token),
            State::Done => Err(SaslFailure::no_response(
                Self::MECHANISM,
                "token received after the GSSAPI exchange ended",
            )),
        };
        match &result {
            Ok(SaslStep::Challenge(_)) => {}
            Ok(SaslStep::Complete { .. }) | Err(_) => self.state = State::Done,
        }
        result
    }
}
