//! The initiator side of GSSAPI on MIT krb5 (libgssapi), for the doctor: credentials, a service
//! ticket (the first context token), and a trial acceptance with a broker keytab.
//!
//! MIT formats its most useful error text ("Server kafka/x@R not found in Kerberos database") per
//! thread, right after the failing call: errors are turned into text at once, on the calling thread.
use std::time::Duration;

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext, ServerCtx};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::error::Error;
use libgssapi::name::Name;
use libgssapi::oid::{OidSet, GSS_MECH_KRB5, GSS_NT_KRB5_PRINCIPAL};

/// MIT's com_err base of the krb5 error table: a Kerberos protocol error's minor status is this base
/// plus the RFC 4120 code (the same constant as `security::gssapi`).
const KRB5_ERROR_TABLE_BASE: u32 = 0x96C7_3A00;

/// A GSS failure as text, with the RFC 4120 error code when the minor status carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssFailure {
    pub text: String,
    pub code: Option<u32>,
}

impl std::fmt::Display for GssFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

pub fn failure(e: &Error) -> GssFailure {
    let text = e.to_string();
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // A minor status without text (0, or a code MIT prints as "Success").
    for suffix in [" (Unknown error)", " (Success)"] {
        if let Some(major_only) = text.strip_suffix(suffix) {
            text = major_only.to_string();
        }
    }
    // GSS_S_FAILURE says nothing; the mechanism's (minor) message is the reason.
    if let Some(minor) = text
        .strip_prefix("Unspecified GSS failure. Minor code may provide more information (")
        .and_then(|t| t.strip_suffix(')'))
    {
        text = minor.to_string();
    }
    let code = e.minor.checked_sub(KRB5_ERROR_TABLE_BASE).filter(|c| *c < 128);
    GssFailure { text, code }
}

fn plain(text: impl Into<String>) -> GssFailure {
    GssFailure {
        text: text.into(),
        code: None,
    }
}

fn krb5_mechs() -> Result<OidSet, GssFailure> {
    OidSet::singleton(GSS_MECH_KRB5).map_err(|e| failure(&e))
}

fn principal_name(principal: &str) -> Result<Name, GssFailure> {
    Name::new(principal.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL)).map_err(|e| failure(&e))
}

/// Initiator credentials for `principal` (from `KRB5_CLIENT_KTNAME` or the ticket cache), or for the
/// cache's default principal.
pub fn acquire_initiator(principal: Option<&str>) -> Result<Cred, GssFailure> {
    let name = principal.map(principal_name).transpose()?;
    let mechs = krb5_mechs()?;
    Cred::acquire(name.as_ref(), None, CredUsage::Initiate, Some(&mechs)).map_err(|e| failure(&e))
}

pub fn cred_principal(cred: &Cred) -> Result<String, GssFailure> {
    let name = cred.name().map_err(|e| failure(&e))?;
    let buf = name.display_name().map_err(|e| failure(&e))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

pub fn cred_lifetime(cred: &Cred) -> Result<Duration, GssFailure> {
    cred.lifetime().map_err(|e| failure(&e))
}

/// Flags Kafka clients ask for (the JDK's GssKrb5Client, Cyrus SASL): mutual authentication and
/// sequence checking.
pub fn client_flags() -> CtxFlags {
    CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_SEQUENCE_FLAG
}

/// A context for `spn` ("kafka/host@REALM", used as is: no host-name canonicalisation by MIT) and
/// its first token, the AP-REQ carrying the service ticket. Getting the token makes MIT obtain the
/// TGT (from the client keytab if needed) and the service ticket.
pub fn initiate(cred: &Cred, spn: &str) -> Result<(ClientCtx, Vec<u8>), GssFailure> {
    let target = principal_name(spn)?;
    let mut ctx = ClientCtx::new(Some(cred.clone()), target, client_flags(), Some(GSS_MECH_KRB5));
    let token = ctx.step(None, None).map_err(|e| failure(&e))?;
    match token {
        Some(token) if !token.is_empty() => Ok((ctx, token.to_vec())),
        _ => Err(plain("gss_init_sec_context produced no token")),
    }
}

/// The initiator's principal as the context names it.
pub fn source_principal(ctx: &ClientCtx) -> Option<String> {
    let name = ctx.source_name().ok()?;
    let buf = name.display_name().ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Accept `token` as the broker would, with acceptor credentials for `spn` from `KRB5_KTNAME`.
/// Returns the client principal.
pub fn accept(spn: &str, token: &[u8]) -> Result<String, GssFailure> {
    let name = principal_name(spn)?;
    let mechs = krb5_mechs()?;
    let cred = Cred::acquire(Some(&name), None, CredUsage::Accept, Some(&mechs)).map_err(|e| failure(&e))?;
    let mut ctx = ServerCtx::new(Some(cred));
    ctx.step(token, None).map_err(|e| failure(&e))?;
    if !ctx.is_complete() {
        return Err(plain("the context needs more than one token"));
    }
    let source = ctx.source_name().map_err(|e| failure(&e))?;
    let buf = source.display_name().map_err(|e| failure(&e))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// RFC 4120 error codes and MIT messages the doctor explains.
pub mod codes {
    pub const C_PRINCIPAL_UNKNOWN: u32 = 6;
    pub const S_PRINCIPAL_UNKNOWN: u32 = 7;
    pub const ETYPE_NOSUPP: u32 = 14;
    pub const CLIENT_NOT_YET_VALID: u32 = 21;
    pub const PREAUTH_FAILED: u32 = 24;
    pub const BAD_INTEGRITY: u32 = 31;
    pub const TKT_EXPIRED: u32 = 32;
    pub const TKT_NYV: u32 = 33;
    pub const REPEAT: u32 = 34;
    pub const SKEW: u32 = 37;
    pub const MODIFIED: u32 = 41;
    pub const BADKEYVER: u32 = 44;
    pub const NOKEY: u32 = 45;
}

/// Why answering the acceptor's security-layer offer failed.
#[derive(Debug)]
pub enum LayerError {
    /// The offer does not unwrap with the established context.
    Unwrap(GssFailure),
    /// The offer (4 bytes: layers bitmask, max size) does not include "no security layer" (0x01).
    NoPlainLayer(Vec<u8>),
    Wrap(GssFailure),
}

/// RFC 4752 section 3.1, once the context is established: unwraps the acceptor's offer and answers
/// "no security layer, no authorization id", which is what Kafka clients send.
pub fn answer_security_layer(ctx: &mut ClientCtx, wrapped_offer: &[u8]) -> Result<Vec<u8>, LayerError> {
    let offer = ctx.unwrap(wrapped_offer).map_err(|e| LayerError::Unwrap(failure(&e)))?;
    if offer.len() != 4 || offer[0] & 0x01 == 0 {
        return Err(LayerError::NoPlainLayer(offer.to_vec()));
    }
    ctx.wrap(false, &[0x01, 0, 0, 0])
        .map(|t| t.to_vec())
        .map_err(|e| LayerError::Wrap(failure(&e)))
}
