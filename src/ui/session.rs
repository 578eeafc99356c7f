//! Who may use the dashboard, and which forms came from it.
//!
//! **Sessions.** With `POSTMAND_API_TOKEN` set, the login form takes the token once and sets a
//! cookie `<expiry>.<HMAC-SHA256(token, expiry)>`: nothing is stored on the server, a cookie is
//! good until its expiry (at most [`LIFETIME_SECS`]), and a new token invalidates every cookie
//! made with the old one, so rotating the token logs everyone out. Without a token there is no
//! login and no session.
//!
//! **CSRF.** Every form that changes something carries HMAC-SHA256(process key, session) in a
//! hidden field; the key is 32 random bytes drawn at start, so a page from another site cannot
//! know it, and a token from before a restart (or from another API process) is refused: reload
//! the page. `SameSite=Strict` on the cookie is the second line.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::http::constant_time_eq;

/// The session cookie's name.
pub const COOKIE: &str = "postmand_ui_session";

/// How long a login lasts: a working day and some.
pub const LIFETIME_SECS: i64 = 12 * 3600;

/// What the CSRF token of a request without a session (no token configured) is made from.
const NO_SESSION: &str = "no-session";

/// The dashboard's secrets: the API token (if any) and this process's CSRF key.
pub struct Keys {
    token: Option<String>,
    csrf_key: [u8; 32],
}

impl Keys {
    /// Keys for `token` (`POSTMAND_API_TOKEN`), with a fresh CSRF key from the OS's CSPRNG.
    pub fn new(token: Option<String>) -> Result<Keys, getrandom::Error> {
        let mut csrf_key = [0; 32];
        getrandom::fill(&mut csrf_key)?;
        Ok(Keys { token, csrf_key })
    }

    /// Whether pages need a session (a token is configured).
    pub fn login_required(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `given` is the token, compared in constant time.
    pub fn is_token(&self, given: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|token| constant_time_eq(given.as_bytes(), token.as_bytes()))
    }

    /// A new session cookie's value, good until `now + LIFETIME_SECS` (Unix seconds); `None`
    /// without a token.
    pub fn issue(&self, now: i64) -> Option<String> {
        let token = self.token.as_ref()?;
        let expiry = now.saturating_add(LIFETIME_SECS);
        Some(format!("{expiry}.{}", session_mac(token, expiry)))
    }

    /// Whether `value` is a session cookie this token made that has not expired at `now`.
    pub fn is_session(&self, value: &str, now: i64) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        let Some((expiry, mac)) = value.split_once('.') else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<i64>() else {
            return false;
        };
        expiry > now
            && expiry <= now.saturating_add(LIFETIME_SECS)
            && constant_time_eq(mac.as_bytes(), session_mac(token, expiry).as_bytes())
    }

    /// The CSRF token of the forms shown with `session` (`None`: no token configured).
    pub fn csrf(&self, session: Option<&str>) -> String {
        hex(&hmac_sha256(
            &self.csrf_key,
            session.unwrap_or(NO_SESSION).as_bytes(),
        ))
    }

    /// Whether `given` is the CSRF token of `session`.
    pub fn is_csrf(&self, session: Option<&str>, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.csrf(session).as_bytes())
    }
}

/// The MAC of a session cookie expiring at `expiry`, keyed by the token.
fn session_mac(token: &str, expiry: i64) -> String {
    let message = format!("postmand-ui-session:{expiry}");
    hex(&hmac_sha256(token.as_bytes(), message.as_bytes()))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so this never fails; an empty MAC would only fail every
    // comparison, never pass one.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in a `Cookie` header, if it is there.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn keys(token: Option<&str>) -> Keys {
        Keys::new(token.map(str::to_string)).unwrap()
    }

    #[test]
    fn a_session_is_good_until_it_expires() {
        let keys = keys(Some("s3cret"));
        let session = keys.issue(NOW).unwrap();
        assert!(keys.is_session(&session, NOW));
        assert!(keys.is_session(&session, NOW + LIFETIME_SECS - 1));
        assert!(!keys.is_session(&session, NOW + LIFETIME_SECS));
    }

    #[test]
    fn a_new_token_logs_everyone_out() {
        let session = keys(Some("old token")).issue(NOW).unwrap();
        assert!(!keys(Some("new token")).is_session(&session, NOW));
        assert!(!keys(None).is_session(&session, NOW));
    }

    #[test]
    fn forged_sessions_are_refused() {
        let keys = keys(Some("s3cret"));
        let session = keys.issue(NOW).unwrap();
        let (expiry, mac) = session.split_once('.').unwrap();
        let later = expiry.parse::<i64>().unwrap() + 3600;
        for forged in [
            format!("{later}.{mac}"),
            format!("{expiry}.{}", mac.replace(&mac[..1], "0")),
            format!("{expiry}."),
            expiry.to_string(),
            String::new(),
            format!("x{session}"),
            // Far in the future, however it was made: longer than any login lasts.
            keys.issue(NOW + 10 * LIFETIME_SECS).unwrap(),
        ] {
            assert!(!keys.is_session(&forged, NOW), "{forged}");
        }
    }

    #[test]
    fn csrf_tokens_belong_to_their_session_and_process() {
        let keys = keys(Some("s3cret"));
        let a = keys.issue(NOW).unwrap();
        let b = keys.issue(NOW + 1).unwrap();
        let token = keys.csrf(Some(&a));
        assert!(keys.is_csrf(Some(&a), &token));
        assert!(!keys.is_csrf(Some(&b), &token));
        assert!(!keys.is_csrf(None, &token));
        assert!(!keys.is_csrf(Some(&a), ""));
        let other_process = Keys::new(Some("s3cret".into())).unwrap();
        assert!(!other_process.is_csrf(Some(&a), &token));
    }

    #[test]
    fn the_token_is_checked_whole() {
        let keys = keys(Some("s3cret"));
        assert!(keys.is_token("s3cret"));
        for wrong in ["", "s3cre", "s3cret ", "S3CRET"] {
            assert!(!keys.is_token(wrong), "{wrong:?}");
        }
        assert!(!self::keys(None).is_token(""));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = "a=1; postmand_ui_session_x=2; postmand_ui_session=3.abc";
        assert_eq!(cookie(header, COOKIE), Some("3.abc"));
        assert_eq!(cookie("other=1", COOKIE), None);
    }
}
