//! The frontier `access_key` query parameter (PROTOCOL.md 1.3).

use md5::{Digest, Md5};

/// The salt the web SDK appends before hashing.
pub const ACCESS_KEY_SALT: &str = "f8a69f1719916z";

/// The TikTok web appKey for the fpid-9 IM socket. Known only because it
/// reproduces the captured access_key (seen in live captures).
pub const TIKTOK_WEB_APP_KEY: &str = "e1bd35ec9db7b8d846de66ed140b1ad9";

/// `lowercase_hex(MD5(fpid ++ app_key ++ device_id ++ salt))`.
pub fn access_key(fpid: u32, app_key: &str, device_id: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(fpid.to_string().as_bytes());
    hasher.update(app_key.as_bytes());
    hasher.update(device_id.as_bytes());
    hasher.update(ACCESS_KEY_SALT.as_bytes());
    hex(&hasher.finalize())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worked_example_from_the_protocol_reproduces() {
        assert_eq!(
            access_key(9, TIKTOK_WEB_APP_KEY, "7669334412366218765"),
            "08ac725d2a9a3fac7cc3a25bb7a44aec"
        );
    }
}
