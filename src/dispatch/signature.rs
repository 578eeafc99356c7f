//! The signature headers of an outgoing request. Pure: bytes in, header values out.
//!
//! - `X-Hub-Signature`: lowercase hex HMAC-SHA256(secret, body), the original's header.
//! - `X-Hub-Signature-256`: `sha256=` + the same hex, as GitHub names it.
//! - Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
//!   with the key base64-decoded from a `whsec_` secret, else the secret's bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this never fails; an empty key is valid too.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `X-Hub-Signature` value.
pub fn hub_signature(secret: &str, body: &[u8]) -> String {
    hex(&hmac_sha256(secret.as_bytes(), &[body]))
}

/// The `X-Hub-Signature-256` value.
pub fn hub_signature_256(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hub_signature(secret, body))
}

/// The key of a Standard Webhooks signature: the base64 after `whsec_`, else the secret itself.
/// The API only accepts `whsec_` secrets whose rest decodes, so the fallback is for rows written
/// by the original.
pub fn standard_key(secret: &str) -> Vec<u8> {
    match crate::model::whsec_key(secret) {
        Some(Ok(key)) => key,
        _ => secret.as_bytes().to_vec(),
    }
}

/// The `webhook-signature` value for message `id`, sent at `timestamp` (Unix seconds).
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let mac = hmac_sha256(
        &standard_key(secret),
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_signature_matches_the_originals_vector() {
        assert_eq!(
            hub_signature("my-secret-token", br#"{"success": true}"#),
            "3fc5d4b8ff4efb404be24faf543667d29902d6a1306bd0c1ef2084497300cee9"
        );
        assert_eq!(
            hub_signature_256("my-secret-token", br#"{"success": true}"#),
            "sha256=3fc5d4b8ff4efb404be24faf543667d29902d6a1306bd0c1ef2084497300cee9"
        );
    }

    #[test]
    fn standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification and its reference libraries.
        assert_eq!(
            standard_signature(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn plain_secret_is_used_as_bytes() {
        assert_eq!(standard_key("not-base64!"), b"not-base64!".to_vec());
        assert_eq!(
            standard_key("whsec_bad base64"),
            b"whsec_bad base64".to_vec()
        );
    }
}
