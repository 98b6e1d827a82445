//! The KDC's clock, read without credentials: an AS-REQ for a principal that does not exist
//! (`kgate-doctor-clock-check@REALM`) makes the KDC answer with a KRB-ERROR (usually
//! C_PRINCIPAL_UNKNOWN), and every KRB-ERROR carries the KDC's current time (`stime`, RFC 4120
//! §5.9.1). Comparing it with the local clock finds clock skew before any Kerberos exchange fails,
//! and even when MIT krb5 would hide it (with `kdc_timesync` MIT corrects its own requests to the
//! KDC, but brokers and Java clients still see the skewed clock).
//!
//! ```text
//! AS-REQ   ::= [APPLICATION 10] SEQUENCE { [1] pvno 5, [2] msg-type 10, [4] req-body }
//! req-body ::= SEQUENCE { [0] kdc-options, [1] cname, [2] realm, [3] sname krbtgt/REALM, [5] till,
//!                         [7] nonce, [8] etype SEQUENCE OF Int32 }
//! KRB-ERROR ::= [APPLICATION 30] SEQUENCE { ... [4] stime, [5] susec, [6] error-code, ... }
//! ```
//! TCP framing: a 4-byte big-endian length before each message (RFC 4120 §7.2.2).
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::der::{der_integer, integer, tlv, Der};

/// The client name asked for; the KDC's "unknown principal" answer is what we want.
pub const PROBE_PRINCIPAL: &str = "kgate-doctor-clock-check";

/// The KDC's time and the Kerberos error code it answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdcTime {
    pub time: SystemTime,
    pub error_code: i64,
}

/// Ask the KDC at `addr` for its time.
pub async fn kdc_time(addr: SocketAddr, realm: &str, timeout: Duration) -> Result<KdcTime, String> {
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() & 0x7fff_ffff)
        .unwrap_or(1);
    let request = as_req(realm, nonce);
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut framed = (request.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&request);
        stream.write_all(&framed).await.map_err(|e| e.to_string())?;
        let mut len = [0u8; 4];
        stream
            .read_exact(&mut len)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let len = u32::from_be_bytes(len) as usize;
        if len > 65536 {
            return Err(format!("answer of {len} bytes is not a Kerberos message"));
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.map_err(|e| e.to_string())?;
        Ok(body)
    };
    let body = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))??;
    parse_krb_error(&body)
}

fn principal_name(name_type: i64, components: &[&str]) -> Vec<u8> {
    let parts: Vec<u8> = components.iter().flat_map(|c| tlv(0x1b, c.as_bytes())).collect();
    tlv(
        0x30,
        &[tlv(0xa0, &der_integer(name_type)), tlv(0xa1, &tlv(0x30, &parts))].concat(),
    )
}

pub(crate) fn as_req(realm: &str, nonce: u32) -> Vec<u8> {
    let body = tlv(
        0x30,
        &[
            tlv(0xa0, &tlv(0x03, &[0, 0, 0, 0, 0])),
            tlv(0xa1, &principal_name(1, &[PROBE_PRINCIPAL])),
            tlv(0xa2, &tlv(0x1b, realm.as_bytes())),
            tlv(0xa3, &principal_name(2, &["krbtgt", realm])),
            tlv(0xa5, &tlv(0x18, b"20370913024805Z")),
            tlv(0xa7, &der_integer(i64::from(nonce))),
            tlv(0xa8, &tlv(0x30, &[der_integer(18), der_integer(17)].concat())),
        ]
        .concat(),
    );
    tlv(
        0x6a,
        &tlv(
            0x30,
            &[
                tlv(0xa1, &der_integer(5)),
                tlv(0xa2, &der_integer(10)),
                tlv(0xa4, &body),
            ]
            .concat(),
        ),
    )
}

pub(crate) fn parse_krb_error(message: &[u8]) -> Result<KdcTime, String> {
    let mut outer = Der::new(message);
    let (tag, value) = outer.next_tlv()?;
    match tag {
        0x7e => {}
        0x6b => return Err("the KDC answered with a ticket (AS-REP), not an error: no time to compare".into()),
        other => return Err(format!("not a KRB-ERROR (tag 0x{other:02x})")),
    }
    let mut fields = Der::new(Der::new(value).expect(0x30, "KRB-ERROR SEQUENCE")?);
    let mut stime = None;
    let mut susec = 0i64;
    let mut code = None;
    while !fields.at_end() {
        let (tag, value) = fields.next_tlv()?;
        match tag {
            0xa4 => stime = Some(generalized_time(Der::new(value).expect(0x18, "stime")?)?),
            0xa5 => susec = integer(Der::new(value).expect(0x02, "susec")?)?,
            0xa6 => code = Some(integer(Der::new(value).expect(0x02, "error-code")?)?),
            _ => {}
        }
    }
    let stime = stime.ok_or("KRB-ERROR without stime")?;
    let micros = u64::try_from(susec.clamp(0, 999_999)).unwrap_or(0);
    Ok(KdcTime {
        time: stime + Duration::from_micros(micros),
        error_code: code.ok_or("KRB-ERROR without error-code")?,
    })
}

/// "YYYYMMDDHHMMSSZ" (KerberosTime) as a SystemTime.
fn generalized_time(text: &[u8]) -> Result<SystemTime, String> {
    let text = std::str::from_utf8(text).map_err(|_| "KerberosTime is not ASCII")?;
    let bad = || format!("bad KerberosTime {text:?}");
    if text.len() != 15 || !text.ends_with('Z') {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| text[range].parse::<u32>().map_err(|_| bad());
    let month = time::Month::try_from(num(4..6)? as u8).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(num(0..4)? as i32, month, num(6..8)? as u8).map_err(|_| bad())?;
    let clock = time::Time::from_hms(num(8..10)? as u8, num(10..12)? as u8, num(12..14)? as u8).map_err(|_| bad())?;
    let seconds = time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp();
    let seconds = u64::try_from(seconds).map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Local clock minus KDC clock, in seconds (positive: this machine is ahead).
pub fn offset_seconds(kdc: SystemTime, local: SystemTime) -> i64 {
    match local.duration_since(kdc) {
        Ok(ahead) => ahead.as_secs() as i64,
        Err(behind) => -(behind.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_an_as_req_and_reads_a_krb_error() {
        let req = as_req("EXAMPLE.COM", 12345);
        assert_eq!(req[0], 0x6a);
        let text = String::from_utf8_lossy(&req);
        assert!(text.contains(PROBE_PRINCIPAL) && text.contains("krbtgt") && text.contains("EXAMPLE.COM"));

        let error = tlv(
            0x7e,
            &tlv(
                0x30,
                &[
                    tlv(0xa0, &der_integer(5)),
                    tlv(0xa1, &der_integer(30)),
                    tlv(0xa4, &tlv(0x18, b"20261121133000Z")),
                    tlv(0xa5, &der_integer(250_000)),
                    tlv(0xa6, &der_integer(6)),
                    tlv(0xa9, &tlv(0x1b, b"EXAMPLE.COM")),
                ]
                .concat(),
            ),
        );
        let t = parse_krb_error(&error).expect("parses");
        assert_eq!(t.error_code, 6);
        let expected = UNIX_EPOCH + Duration::from_secs(1_795_267_800) + Duration::from_millis(250);
        assert_eq!(t.time, expected);
        assert_eq!(offset_seconds(t.time, expected + Duration::from_secs(3600)), 3600);
        assert_eq!(offset_seconds(t.time, expected - Duration::from_secs(90)), -90);

        assert!(parse_krb_error(&tlv(0x6b, &[])).expect_err("AS-REP").contains("AS-REP"));
        assert!(parse_krb_error(b"\x30\x00").is_err());
        assert!(generalized_time(b"20261321133000Z").is_err());
    }
}
