//! Request-signing primitives shared by the channels: HMAC over SHA-256 and SHA-1 (RustCrypto
//! `hmac`, `sha1`, `sha2`), RFC 3986 percent-encoding and nonces. The vendor test vectors in
//! the channel modules (Aliyun's worked example, DingTalk's and Feishu's vectors) pin the
//! combinations down.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// HMAC-SHA256.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA1 (Aliyun RPC signature v1).
pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// RFC 3986 encoding: only `A-Z a-z 0-9 - _ . ~` stay as they are; space is `%20`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A random 128-bit nonce as 32 hex digits.
pub fn nonce() -> String {
    use rand::RngExt;
    let n: u128 = rand::rng().random();
    format!("{n:032x}")
}

pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_and_2202() {
        // RFC 4231 test case 2, RFC 2202 test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        // A key longer than one block is hashed first (RFC 4231 test case 6).
        let key = [0xaau8; 131];
        assert_eq!(
            hex::encode(hmac_sha256(
                &key,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn percent_encoding_is_rfc_3986() {
        assert_eq!(percent_encode("a b*~/+="), "a%20b%2A~%2F%2B%3D");
        assert_eq!(percent_encode("阿"), "%E9%98%BF");
    }
}
