//! kgate's Kerberos identity towards the upstream brokers (SASL/GSSAPI as a client).
//!
//! Credentials come from `[backend.sasl] keytab` (MIT's client keytab, `KRB5_CLIENT_KTNAME`, with an
//! in-process ticket cache) or, without one, from the ticket cache of the environment (`KRB5CCNAME`).
//! The service principal asked for is `<service_name>/<host of the broker dialled>`, as Kafka's
//! clients do. libgssapi calls block (the first contacts the KDC): callers run them off the runtime.
use std::path::Path;

use libgssapi::context::ClientCtx;

use crate::diag::gss;

pub struct GssapiInitiator {
    principal: String,
    service_name: String,
}

impl std::fmt::Debug for GssapiInitiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GssapiInitiator")
            .field("principal", &self.principal)
            .field("service_name", &self.service_name)
            .finish()
    }
}

impl GssapiInitiator {
    /// Points MIT krb5 at the keytab (process-global, like the acceptor's `KRB5_KTNAME`: call during
    /// start-up) and acquires the credential once, so that a wrong principal or keytab stops start-up.
    pub fn new(
        principal: &str,
        keytab: Option<&Path>,
        service_name: &str,
        krb5_conf: Option<&Path>,
    ) -> Result<GssapiInitiator, String> {
        if let Some(conf) = krb5_conf {
            std::fs::File::open(conf).map_err(|e| format!("krb5.conf {} cannot be read: {e}", conf.display()))?;
            std::env::set_var("KRB5_CONFIG", conf);
        }
        if let Some(keytab) = keytab {
            let keytab = std::path::absolute(keytab).map_err(|e| format!("keytab {}: {e}", keytab.display()))?;
            std::fs::File::open(&keytab).map_err(|e| format!("keytab {} cannot be read: {e}", keytab.display()))?;
            std::env::set_var("KRB5_CLIENT_KTNAME", format!("FILE:{}", keytab.display()));
            // Tickets obtained with the keytab stay in this process, not in the user's cache.
            std::env::set_var("KRB5CCNAME", "MEMORY:kgate-upstream");
        }
        gss::acquire_initiator(Some(principal)).map_err(|e| {
            format!(
                "no Kerberos credentials for {principal}: {e}; give backend.sasl.keytab holding {principal} \
                 (kadmin: ktadd -k FILE {principal}) or kinit before starting kgate"
            )
        })?;
        Ok(GssapiInitiator {
            principal: principal.to_string(),
            service_name: service_name.to_string(),
        })
    }

    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// Blocking: a context for `<service_name>/<host>` and its first token (the AP-REQ).
    pub fn start(&self, host: &str) -> Result<(ClientCtx, Vec<u8>), String> {
        let cred = gss::acquire_initiator(Some(&self.principal)).map_err(|e| e.to_string())?;
        let spn = format!("{}/{host}", self.service_name);
        gss::initiate(&cred, &spn).map_err(|e| format!("cannot get a service ticket for {spn}: {e}"))
    }
}
