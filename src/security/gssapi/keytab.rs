//! Reading the principal list of an MIT keytab file (for start-up checks and `doctor`), without
//! libkrb5 and without running `klist`.
//!
//! The format is MIT's "keytab file format version 2" (krb5 source: `doc/formats/keytab_file_format.rst`;
//! Heimdal writes the same). All integers are big-endian:
//!
//! ```text
//! file    = 0x05 0x02 record*
//! record  = int32 size, then `size` bytes of entry; a negative size is a hole of -size bytes
//!           (a deleted entry); the file may end early or with a zero size
//! entry   = uint16 count, data realm, data component[count], uint32 name_type, uint32 timestamp,
//!           uint8 vno8, uint16 enctype, data key, [uint32 vno]   (vno, if present and non-zero, wins
//!           over vno8, which holds only the low 8 bits)
//! data    = uint16 length, bytes
//! ```
//!
//! Version 1 files (0x05 0x01, native byte order, counts include the realm) date from krb5 1.0 and
//! are refused. Key bytes are skipped and the file buffer is zeroed after parsing (best effort).
use std::path::Path;

/// One (principal, kvno) of a keytab and its enctypes, in file order.
pub(super) type KeytabEntry = (String, u32, String);

/// See [`super::keytab_entries`].
pub(super) fn read(path: &Path) -> Result<Vec<KeytabEntry>, String> {
    let mut data =
        std::fs::read(path).map_err(|e| format!("Kerberos keytab {} cannot be read: {e}", path.display()))?;
    let parsed = parse(&data).map_err(|e| format!("{} is not a usable MIT keytab: {e}", path.display()));
    data.fill(0);
    std::hint::black_box(&data);
    parsed
}

/// Group the raw entries by (principal, kvno), enctype names joined with ", ".
pub(super) fn parse(data: &[u8]) -> Result<Vec<KeytabEntry>, String> {
    let mut input = Reader { data, pos: 0 };
    match input.take(2)? {
        [0x05, 0x02] => {}
        [0x05, 0x01] => return Err("keytab format version 1 (krb5 1.0) is not supported; re-export the keytab".into()),
        other => return Err(format!("bad keytab header {other:02x?}, expected 05 02")),
    }
    let mut out: Vec<KeytabEntry> = Vec::new();
    while input.remaining() >= 4 {
        let size = input.i32()?;
        if size == 0 {
            break;
        }
        let len = size.unsigned_abs() as usize;
        let record = input
            .take(len)
            .map_err(|_| format!("record at offset {} is truncated", input.pos))?;
        if size < 0 {
            continue; // hole left by a deleted entry
        }
        let (principal, kvno, enctype) = parse_entry(record)?;
        let name = enctype_name(enctype);
        match out.iter_mut().find(|(p, v, _)| *p == principal && *v == kvno) {
            Some((_, _, names)) => {
                names.push_str(", ");
                names.push_str(&name);
            }
            None => out.push((principal, kvno, name)),
        }
    }
    Ok(out)
}

fn parse_entry(record: &[u8]) -> Result<(String, u32, u16), String> {
    let mut r = Reader { data: record, pos: 0 };
    let count = r.u16()?;
    let realm = r.data()?;
    let mut principal = String::new();
    for i in 0..count {
        if i > 0 {
            principal.push('/');
        }
        escape_into(&mut principal, r.data()?);
    }
    principal.push('@');
    escape_into(&mut principal, realm);
    let _name_type = r.u32()?;
    let _timestamp = r.u32()?;
    let vno8 = r.u8()?;
    let enctype = r.u16()?;
    let _key = r.data()?;
    let kvno = match r.remaining() >= 4 {
        true => Some(r.u32()?).filter(|v| *v != 0).unwrap_or(u32::from(vno8)),
        false => u32::from(vno8),
    };
    Ok((principal, kvno, enctype))
}

/// As `krb5_unparse_name`: `/`, `@` and `\` inside a component or the realm are backslash-escaped.
fn escape_into(out: &mut String, bytes: &[u8]) {
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '/' | '@' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
}

/// MIT's names (`krb5_enctype_to_name`, as `klist -e` prints them).
pub(crate) fn enctype_name(enctype: u16) -> String {
    let name = match enctype {
        1 => "des-cbc-crc",
        2 => "des-cbc-md4",
        3 => "des-cbc-md5",
        16 => "des3-cbc-sha1",
        17 => "aes128-cts-hmac-sha1-96",
        18 => "aes256-cts-hmac-sha1-96",
        19 => "aes128-cts-hmac-sha256-128",
        20 => "aes256-cts-hmac-sha384-192",
        23 => "arcfour-hmac",
        24 => "arcfour-hmac-exp",
        25 => "camellia128-cts-cmac",
        26 => "camellia256-cts-cmac",
        other => return format!("enctype {other}"),
    };
    name.to_string()
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.data.len());
        let Some(end) = end else {
            return Err(format!("truncated entry: {n} bytes wanted at offset {}", self.pos));
        };
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn data(&mut self) -> Result<&'a [u8], String> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&u16::try_from(bytes.len()).expect("short").to_be_bytes());
        out.extend_from_slice(bytes);
    }

    fn entry(components: &[&str], realm: &str, vno8: u8, enctype: u16, vno32: Option<u32>) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&u16::try_from(components.len()).expect("few").to_be_bytes());
        data(&mut e, realm.as_bytes());
        for c in components {
            data(&mut e, c.as_bytes());
        }
        e.extend_from_slice(&1u32.to_be_bytes()); // KRB5_NT_PRINCIPAL
        e.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        e.push(vno8);
        e.extend_from_slice(&enctype.to_be_bytes());
        data(&mut e, &[0xAA; 32]);
        if let Some(v) = vno32 {
            e.extend_from_slice(&v.to_be_bytes());
        }
        let mut rec = i32::try_from(e.len()).expect("small").to_be_bytes().to_vec();
        rec.extend(e);
        rec
    }

    #[test]
    fn groups_enctypes_and_prefers_the_32_bit_kvno() {
        let mut file = vec![0x05, 0x02];
        file.extend(entry(&["kafka", "localhost"], "EXAMPLE.COM", 1, 18, Some(1)));
        file.extend(entry(&["kafka", "localhost"], "EXAMPLE.COM", 1, 17, None));
        // a hole (deleted entry) of 7 bytes
        file.extend_from_slice(&(-7i32).to_be_bytes());
        file.extend_from_slice(&[0; 7]);
        file.extend(entry(&["client"], "EXAMPLE.COM", 4, 18, Some(260)));
        file.extend(entry(&["odd/name"], "EXAMPLE.COM", 2, 99, Some(0)));
        let entries = parse(&file).expect("parses");
        assert_eq!(
            entries,
            vec![
                (
                    "kafka/localhost@EXAMPLE.COM".to_string(),
                    1,
                    "aes256-cts-hmac-sha1-96, aes128-cts-hmac-sha1-96".to_string()
                ),
                (
                    "client@EXAMPLE.COM".to_string(),
                    260,
                    "aes256-cts-hmac-sha1-96".to_string()
                ),
                ("odd\\/name@EXAMPLE.COM".to_string(), 2, "enctype 99".to_string()),
            ]
        );
    }

    #[test]
    fn refuses_bad_headers_and_truncation() {
        assert!(parse(b"").is_err());
        assert!(parse(b"\x05\x01").expect_err("v1").contains("version 1"));
        assert!(parse(b"PK\x03\x04").expect_err("zip").contains("bad keytab header"));
        assert_eq!(parse(b"\x05\x02").expect("empty keytab"), vec![]);
        let mut file = vec![0x05, 0x02];
        file.extend(entry(&["client"], "EXAMPLE.COM", 1, 18, None));
        file.truncate(file.len() - 3);
        assert!(parse(&file).expect_err("truncated").contains("truncated"));
        // a record whose inner lengths overrun its size
        let mut file = vec![0x05, 0x02, 0, 0, 0, 4, 0, 1, 0, 200];
        file.extend_from_slice(&[0; 8]);
        assert!(parse(&file).is_err());
    }
}
