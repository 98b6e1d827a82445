//! What a client's first GSSAPI token says about its service ticket, read from the DER of the
//! Kerberos AP-REQ inside it: the service principal, and the enctype and key version (kvno) of the
//! key the KDC encrypted the ticket with. Those two are sent in the clear (RFC 4120 §5.3
//! `EncryptedData`), so the doctor can compare them with the broker's keytab without decrypting
//! anything and without MIT's `kvno` tool.
//!
//! ```text
//! InitialContextToken ::= [APPLICATION 0] { OID 1.2.840.113554.1.2.2, TOK_ID 01 00, AP-REQ }  (RFC 1964 §1.1)
//! AP-REQ   ::= [APPLICATION 14] SEQUENCE { [0] pvno, [1] msg-type, [2] ap-options, [3] Ticket, [4] authenticator }
//! Ticket   ::= [APPLICATION 1] SEQUENCE { [0] tkt-vno, [1] realm, [2] sname, [3] enc-part EncryptedData }
//! PrincipalName ::= SEQUENCE { [0] name-type, [1] SEQUENCE OF KerberosString }
//! EncryptedData ::= SEQUENCE { [0] etype Int32, [1] kvno UInt32 OPTIONAL, [2] cipher OCTET STRING }
//! ```

use super::der::{integer, string, Der};

/// The ticket's service principal, enctype and kvno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketInfo {
    /// "kafka/localhost@EXAMPLE.COM"
    pub service: String,
    pub enctype: i32,
    /// Absent in the ticket means 0 in practice (MIT always sends it).
    pub kvno: Option<u32>,
}

/// The Kerberos V5 mechanism OID, DER-encoded with its tag.
const KRB5_OID: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
const TOK_ID_AP_REQ: &[u8] = &[0x01, 0x00];

pub fn parse_initial_token(token: &[u8]) -> Result<TicketInfo, String> {
    let mut outer = Der::new(token);
    let body = outer.expect(0x60, "GSS InitialContextToken")?;
    let rest = body
        .strip_prefix(KRB5_OID)
        .ok_or("the token is not for the Kerberos V5 mechanism")?;
    let ap_req = rest
        .strip_prefix(TOK_ID_AP_REQ)
        .ok_or("the token is not an AP-REQ (TOK_ID 01 00)")?;
    parse_ap_req(ap_req)
}

fn parse_ap_req(ap_req: &[u8]) -> Result<TicketInfo, String> {
    let seq = Der::new(ap_req).expect(0x6e, "AP-REQ")?;
    let mut fields = Der::new(Der::new(seq).expect(0x30, "AP-REQ SEQUENCE")?);
    let ticket_field = fields.find(0xa3, "AP-REQ ticket [3]")?;
    let ticket = Der::new(ticket_field).expect(0x61, "Ticket")?;
    let mut t = Der::new(Der::new(ticket).expect(0x30, "Ticket SEQUENCE")?);
    let realm = string(t.find(0xa1, "Ticket realm [1]")?)?;
    let sname = t.find(0xa2, "Ticket sname [2]")?;
    let enc_part = t.find(0xa3, "Ticket enc-part [3]")?;

    let mut name_fields = Der::new(Der::new(sname).expect(0x30, "PrincipalName")?);
    let mut components = Der::new(Der::new(name_fields.find(0xa1, "name-string [1]")?).expect(0x30, "name-string")?);
    let mut parts = Vec::new();
    while !components.at_end() {
        let (tag, value) = components.next_tlv()?;
        if tag != 0x1b && tag != 0x0c && tag != 0x16 {
            return Err(format!("name component with tag 0x{tag:02x}"));
        }
        parts.push(String::from_utf8_lossy(value).into_owned());
    }

    let mut enc = Der::new(Der::new(enc_part).expect(0x30, "EncryptedData")?);
    let mut enctype = None;
    let mut kvno = None;
    while !enc.at_end() {
        let (tag, value) = enc.next_tlv()?;
        match tag {
            0xa0 => enctype = Some(integer(Der::new(value).expect(0x02, "etype INTEGER")?)?),
            0xa1 => kvno = Some(integer(Der::new(value).expect(0x02, "kvno INTEGER")?)? as u32),
            _ => {}
        }
    }
    Ok(TicketInfo {
        service: format!("{}@{realm}", parts.join("/")),
        enctype: enctype.ok_or("EncryptedData without etype")? as i32,
        kvno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::der::tlv;

    fn token(kvno: Option<u8>) -> Vec<u8> {
        let sname = tlv(
            0x30,
            &[
                tlv(0xa0, &tlv(0x02, &[2])),
                tlv(
                    0xa1,
                    &tlv(0x30, &[tlv(0x1b, b"kafka"), tlv(0x1b, b"localhost")].concat()),
                ),
            ]
            .concat(),
        );
        let mut enc = tlv(0xa0, &tlv(0x02, &[18]));
        if let Some(k) = kvno {
            enc.extend(tlv(0xa1, &tlv(0x02, &[k])));
        }
        enc.extend(tlv(0xa2, &tlv(0x04, &[0xAB; 200])));
        let ticket = tlv(
            0x61,
            &tlv(
                0x30,
                &[
                    tlv(0xa0, &tlv(0x02, &[5])),
                    tlv(0xa1, &tlv(0x1b, b"EXAMPLE.COM")),
                    tlv(0xa2, &sname),
                    tlv(0xa3, &tlv(0x30, &enc)),
                ]
                .concat(),
            ),
        );
        let ap_req = tlv(
            0x6e,
            &tlv(
                0x30,
                &[
                    tlv(0xa0, &tlv(0x02, &[5])),
                    tlv(0xa1, &tlv(0x02, &[14])),
                    tlv(0xa2, &tlv(0x03, &[0, 0x20, 0, 0, 0])),
                    tlv(0xa3, &ticket),
                    tlv(0xa4, &tlv(0x30, &[0xCD; 10])),
                ]
                .concat(),
            ),
        );
        tlv(0x60, &[KRB5_OID, TOK_ID_AP_REQ, &ap_req].concat())
    }

    #[test]
    fn reads_service_enctype_and_kvno() {
        assert_eq!(
            parse_initial_token(&token(Some(3))).expect("parses"),
            TicketInfo {
                service: "kafka/localhost@EXAMPLE.COM".into(),
                enctype: 18,
                kvno: Some(3)
            }
        );
        assert_eq!(parse_initial_token(&token(None)).expect("parses").kvno, None);
    }

    #[test]
    fn rejects_other_tokens() {
        assert!(parse_initial_token(b"").is_err());
        assert!(parse_initial_token(&[0x60, 0x03, 0x06, 0x01, 0x00]).is_err());
        let mut t = token(Some(1));
        t.truncate(t.len() - 20);
        assert!(parse_initial_token(&t).is_err());
    }
}
