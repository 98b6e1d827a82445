//! The little DER (ASN.1) the doctor reads and writes: single-byte tags, definite lengths.
pub(crate) struct Der<'a> {
    data: &'a [u8],
    pos: usize,
}

/// Tag-length-value with a definite length.
pub(crate) fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 128 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// A DER INTEGER (minimal two's complement).
pub(crate) fn der_integer(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    tlv(0x02, &bytes[start..])
}

pub(crate) fn string(field: &[u8]) -> Result<String, String> {
    let (tag, value) = Der::new(field).next_tlv()?;
    if tag != 0x1b && tag != 0x0c && tag != 0x16 {
        return Err(format!("expected a string, got tag 0x{tag:02x}"));
    }
    Ok(String::from_utf8_lossy(value).into_owned())
}

/// A DER INTEGER's content as i64 (two's complement, at most 8 bytes).
pub(crate) fn integer(bytes: &[u8]) -> Result<i64, String> {
    if bytes.is_empty() || bytes.len() > 8 {
        return Err(format!("INTEGER of {} bytes", bytes.len()));
    }
    let mut value: i64 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
    for b in bytes {
        value = (value << 8) | i64::from(*b);
    }
    Ok(value)
}

impl<'a> Der<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Der<'a> {
        Der { data, pos: 0 }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.data.get(self.pos).ok_or("truncated DER")?;
        self.pos += 1;
        Ok(b)
    }

    /// One tag-length-value (single-byte tags, definite lengths).
    pub(crate) fn next_tlv(&mut self) -> Result<(u8, &'a [u8]), String> {
        let tag = self.byte()?;
        let first = self.byte()?;
        let len = if first & 0x80 == 0 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(format!("unsupported DER length form 0x{first:02x}"));
            }
            let mut len = 0usize;
            for _ in 0..n {
                len = (len << 8) | usize::from(self.byte()?);
            }
            len
        };
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.data.len())
            .ok_or("truncated DER value")?;
        let value = &self.data[self.pos..end];
        self.pos = end;
        Ok((tag, value))
    }

    pub(crate) fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], String> {
        let (found, value) = self.next_tlv().map_err(|e| format!("{what}: {e}"))?;
        if found != tag {
            return Err(format!("{what}: expected tag 0x{tag:02x}, found 0x{found:02x}"));
        }
        Ok(value)
    }

    /// The next field with `tag`, skipping others (context-tagged SEQUENCE members).
    pub(crate) fn find(&mut self, tag: u8, what: &str) -> Result<&'a [u8], String> {
        while !self.at_end() {
            let (found, value) = self.next_tlv()?;
            if found == tag {
                return Ok(value);
            }
        }
        Err(format!("{what} missing"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_lengths() {
        // kvno 200 is encoded 0x00 0xC8; a one-byte 0xC8 would be negative.
        assert_eq!(integer(&[0x00, 0xc8]), Ok(200));
        assert_eq!(integer(&[0xff]), Ok(-1));
        for v in [0i64, 5, 127, 128, 200, 65535, 0x7fff_ffff, -1, -129] {
            let enc = der_integer(v);
            let value = Der::new(&enc).expect(0x02, "INTEGER").expect("tlv");
            assert_eq!(integer(value), Ok(v), "{v}: {enc:02x?}");
        }
        assert_eq!(der_integer(128), vec![0x02, 0x02, 0x00, 0x80]);
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(Der::new(&long).next_tlv().expect("long form").1.len(), 300);
        assert!(Der::new(&long[..100]).next_tlv().is_err());
    }
}
