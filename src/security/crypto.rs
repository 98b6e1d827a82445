//! SCRAM arithmetic (RFC 5802 §3) and randomness, shared by the SCRAM server, PLAIN verification, the
//! credential store and the admin handlers. Kafka's equivalent is `ScramFormatter.java`.
//!
//! * `Hi(str, salt, i)` is PBKDF2 with HMAC-H and an output of one hash length, so the `pbkdf2` crate
//!   computes it.
//! * Passwords are used as their UTF-8 bytes: no SASLprep, like Kafka (`ScramFormatter.normalize`).
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::credentials::ScramMechanism;

/// Java's `Base64.getDecoder()` accepts non-zero bits in the last symbol; the `base64` crate's
/// standard engine does not. SCRAM messages are decoded with this engine so kgate accepts what Kafka
/// accepts. Padding must be canonical, as Kafka's message regex requires.
pub(crate) const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Strict standard base64 with padding (the users file).
pub(crate) fn b64_decode_strict(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// HMAC accepts keys of any length, so `new_from_slice` cannot fail; this keeps the `expect` in one place.
pub(crate) fn hmac(mechanism: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        ScramMechanism::Sha512 => {
            let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

pub(crate) fn hash(mechanism: ScramMechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
        ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// SaltedPassword := Hi(Normalize(password), salt, i)
pub(crate) fn salted_password(mechanism: ScramMechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; mechanism.digest_len()];
    match mechanism {
        ScramMechanism::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
        ScramMechanism::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out),
    }
    out
}

/// ClientKey := HMAC(SaltedPassword, "Client Key")
pub(crate) fn client_key(mechanism: ScramMechanism, salted_password: &[u8]) -> Vec<u8> {
    hmac(mechanism, salted_password, b"Client Key")
}

/// StoredKey := H(ClientKey)
pub(crate) fn stored_key(mechanism: ScramMechanism, salted_password: &[u8]) -> Vec<u8> {
    hash(mechanism, &client_key(mechanism, salted_password))
}

/// ServerKey := HMAC(SaltedPassword, "Server Key")
pub(crate) fn server_key(mechanism: ScramMechanism, salted_password: &[u8]) -> Vec<u8> {
    hmac(mechanism, salted_password, b"Server Key")
}

/// Bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes(len: usize) -> Result<Vec<u8>, getrandom::Error> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf)?;
    Ok(buf)
}

/// A server nonce: 26 characters of [0-9a-z] (about 134 bits), the same alphabet and size as Kafka's
/// `new BigInteger(130, SecureRandom).toString(36)`. Printable and comma-free as RFC 5802 requires.
pub(crate) fn server_nonce() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    const LEN: usize = 26;
    let mut nonce = String::with_capacity(LEN);
    while nonce.len() < LEN {
        for b in random_bytes(32)? {
            // 252 = 7 * 36: rejecting 252..=255 keeps every symbol equally likely.
            if b < 252 && nonce.len() < LEN {
                nonce.push(ALPHABET[(b % 36) as usize] as char);
            }
        }
    }
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_the_rfc_hi_definition() {
        // Hi written out from RFC 5802 §2.2, compared with the pbkdf2-based implementation.
        for mech in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let (pw, salt, iters) = (b"pencil".as_slice(), b"salt-bytes".as_slice(), 4096u32);
            let mut first_input = salt.to_vec();
            first_input.extend_from_slice(&[0, 0, 0, 1]);
            let mut u = hmac(mech, pw, &first_input);
            let mut result = u.clone();
            for _ in 2..=iters {
                u = hmac(mech, pw, &u);
                result.iter_mut().zip(&u).for_each(|(r, x)| *r ^= x);
            }
            assert_eq!(salted_password(mech, pw, salt, iters), result, "{}", mech.name());
        }
    }

    #[test]
    fn server_nonce_is_printable_base36_and_random() {
        let a = server_nonce().expect("random");
        let b = server_nonce().expect("random");
        assert_eq!(a.len(), 26);
        assert!(a.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn lenient_base64_accepts_java_style_trailing_bits() {
        // "QR==" has non-zero trailing bits: Java decodes it, strict engines refuse it.
        assert!(STANDARD.decode("QR==").is_err());
        assert_eq!(LENIENT_B64.decode("QR==").expect("lenient"), vec![0x41]);
        assert!(LENIENT_B64.decode("QQ").is_err(), "padding stays required");
    }
}
