//! Webhook URLs: the one place their text is taken apart. `api` validates a webhook's `url` with
//! [`EndpointUrl::is_valid`]; `dispatch` takes the request target, the `Host` and the error
//! text's URL (credentials removed) from it. Nothing here imports from the crate.
//!
//! The part that decides where a request goes, `scheme://host[:port]`, is judged by
//! [`http::Uri`], the type ureq sends with. The text is split around it by its delimiters (the
//! first `://`, then the first `/`, `?` or `#`, the last `@` before that, and the first `#`)
//! rather than by `http::Uri`, because the rest is not for `http::Uri` to judge:
//! - postmand has always accepted, and stored, URLs whose user info, path or query `http::Uri`
//!   refuses (user info with one of ``"<>\^`{|}``, a bracket, more than eight colons or
//!   non-ASCII; ``<>` `` in the path; `"<>` in the query; more than 65,534 bytes in all). Accepting
//!   exactly what was accepted before means not asking it about those parts. (ureq refuses them
//!   too, so every attempt of such a webhook fails before sending, as it always did.)
//! - the dispatcher shows whatever URL a webhook has, including those the Go original stored
//!   without validation (`ftp://...`, no scheme at all), with its credentials removed and
//!   otherwise byte for byte.

use std::borrow::Cow;
use std::net::Ipv6Addr;

// `::http`, the crate: `crate::http` is the module the two servers share.
use ::http::uri::{Scheme, Uri};

/// A webhook's URL text and where its parts are. Any text can be taken apart; whether postmand
/// accepts it as a webhook's URL is [`EndpointUrl::is_valid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointUrl<'a> {
    text: &'a str,
    /// Length of the scheme, before the first `://`; `None` without one.
    scheme_len: Option<usize>,
    /// Start of the authority: after `scheme://`, or 0 without a scheme.
    authority_start: usize,
    /// Start of `host[:port]`: after the authority's last `@`, or the authority's start.
    host_start: usize,
    /// End of the authority: the first `/`, `?` or `#` after its start, or the text's end.
    authority_end: usize,
    /// Start of the fragment's `#`, or the text's end.
    fragment_start: usize,
}

impl<'a> EndpointUrl<'a> {
    /// Takes `text` apart. Never fails: a part that is not there is empty.
    pub fn new(text: &'a str) -> EndpointUrl<'a> {
        let scheme_len = text.find("://");
        let authority_start = scheme_len.map_or(0, |len| len + 3);
        let rest = &text[authority_start..];
        let authority_end = authority_start + rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let host_start = text[authority_start..authority_end]
            .rfind('@')
            .map_or(authority_start, |at| authority_start + at + 1);
        let fragment_start = authority_start + rest.find('#').unwrap_or(rest.len());
        EndpointUrl {
            text,
            scheme_len,
            authority_start,
            host_start,
            authority_end,
            fragment_start,
        }
    }

    /// Whether postmand accepts this as a webhook's URL: `http://` or `https://` (any case), a
    /// host of ASCII letters, digits, `.`, `-` and `_` not starting with a dot, or a bracketed
    /// IPv6 address, an optional decimal port up to 65535, and no whitespace or control
    /// characters anywhere. User info and a fragment are allowed; the path and query are not
    /// checked further. The original also accepted ftp, ws and scheme-less URLs that could never
    /// be delivered (seed defect 6).
    pub fn is_valid(&self) -> bool {
        if self
            .text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return false;
        }
        let Some(scheme_len) = self.scheme_len else {
            return false;
        };
        let host_port = self.host_port();
        let Ok(origin) = Uri::try_from(format!("{}://{host_port}", &self.text[..scheme_len]))
        else {
            return false;
        };
        let http =
            origin.scheme() == Some(&Scheme::HTTP) || origin.scheme() == Some(&Scheme::HTTPS);
        let Some(host) = origin.host().filter(|_| http) else {
            return false;
        };
        // http::Uri leaves out a port that is not a u16 (`host:`, `host:99999`, `host:port`) and
        // ignores text after an IPv6 literal (`[::1]x`): the text must be exactly host[:port].
        // It also takes a sign (`host:+80`), which postmand never did.
        let port_ok = match origin.port() {
            None => host_port == host,
            Some(port) => {
                host_port == format!("{host}:{}", port.as_str())
                    && port.as_str().bytes().all(|b| b.is_ascii_digit())
            }
        };
        // http::Uri takes anything in brackets, and RFC 3986's other host characters (`!$&'()*+,;=~`).
        let host_ok = match host.strip_prefix('[') {
            Some(literal) => literal
                .strip_suffix(']')
                .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok()),
            None => {
                !host.is_empty()
                    && !host.starts_with('.')
                    && host
                        .chars()
                        // ASCII only: the HTTP client refuses any other host, so every attempt
                        // would fail.
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            }
        };
        port_ok && host_ok
    }

    /// The texts [`EndpointUrl::is_valid`] accepts, as a JSON Schema `pattern` (an ECMA-262
    /// regular expression, for the OpenAPI document): the same scheme, user info, host, port and
    /// rest, and the same characters refused everywhere (Unicode White_Space and controls). An
    /// IPv6 literal is RFC 3986's `IPv6address`, which is what `Ipv6Addr` parses (IPv4 parts
    /// without leading zeros). A test runs both on hand-picked and generated URLs.
    pub fn pattern() -> String {
        // What `char::is_whitespace` or `char::is_control` holds for, as a class body.
        const REFUSED: &str = "\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
        const H16: &str = "[0-9A-Fa-f]{1,4}";
        const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
        let ls32 = format!("(?:{H16}:{H16}|{OCTET}(?:\\.{OCTET}){{3}})");
        let groups = |n: usize| format!("(?:{H16}:){{{n}}}");
        let head = |n: usize| format!("(?:(?:{H16}:){{0,{n}}}{H16})?");
        let ipv6 = [
            format!("{}{ls32}", groups(6)),
            format!("::{}{ls32}", groups(5)),
            format!("{}::{}{ls32}", head(0), groups(4)),
            format!("{}::{}{ls32}", head(1), groups(3)),
            format!("{}::{}{ls32}", head(2), groups(2)),
            format!("{}::{H16}:{ls32}", head(3)),
            format!("{}::{ls32}", head(4)),
            format!("{}::{H16}", head(5)),
            format!("{}::", head(6)),
        ]
        .join("|");
        // 0 to 65535, leading zeros allowed.
        let port = "0*(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)";
        format!(
            "^[Hh][Tt][Tt][Pp][Ss]?://(?:[^/?#{REFUSED}]*@)?\
             (?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\\[(?:{ipv6})\\])(?::{port})?(?:[/?#][^{REFUSED}]*)?$"
        )
    }

    /// Whether the scheme is https, in any case (ureq accepts it so).
    pub fn is_https(&self) -> bool {
        self.scheme_len
            .is_some_and(|len| self.text[..len].eq_ignore_ascii_case("https"))
    }

    /// `host[:port]` as written, without user info: the `Host` header.
    pub fn host_port(&self) -> &'a str {
        &self.text[self.host_start..self.authority_end]
    }

    /// The request target: path (`/` if empty) and query, no fragment.
    pub fn request_target(&self) -> Cow<'a, str> {
        let target = &self.text[self.authority_end..self.fragment_start];
        if target.starts_with('/') {
            Cow::Borrowed(target)
        } else {
            Cow::Owned(format!("/{target}"))
        }
    }

    /// `scheme://host:port`, the port written out (80 or 443 when the URL has none): what a log
    /// line may show of an endpoint. Paths and queries carry secrets too (Slack-style
    /// `/services/T0/B0/SECRET`, `?token=`). Text without `://` gives its host part only.
    pub fn origin(&self) -> String {
        let host_port = self.host_port();
        let has_port = match host_port.rfind(']') {
            Some(bracket) => host_port[bracket..].contains(':'),
            None => host_port.contains(':'),
        };
        let scheme = self.scheme_len.map_or("", |len| &self.text[..len]);
        let port = match (has_port, self.is_https()) {
            (true, _) => "",
            (false, true) => ":443",
            (false, false) => ":80",
        };
        if scheme.is_empty() {
            format!("{host_port}{port}")
        } else {
            format!("{}://{host_port}{port}", scheme.to_ascii_lowercase())
        }
    }

    /// The text without `user:password@`, for error text that is logged and shown: credentials
    /// in a webhook URL are secrets. Text without `://` is returned whole.
    pub fn without_userinfo(&self) -> Cow<'a, str> {
        if self.scheme_len.is_none() || self.host_start == self.authority_start {
            return Cow::Borrowed(self.text);
        }
        Cow::Owned(format!(
            "{}{}",
            &self.text[..self.authority_start],
            &self.text[self.host_start..]
        ))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn origin_is_scheme_host_and_port_only() {
        for (url, origin) in [
            (
                "https://hooks.example/services/T0/B0/SECRET?token=x",
                "https://hooks.example:443",
            ),
            (
                "http://u:pw@127.0.0.1:8080/p?q=1#f",
                "http://127.0.0.1:8080",
            ),
            ("HTTP://host", "http://host:80"),
            ("http://[::1]/x", "http://[::1]:80"),
            ("http://[::1]:9000/x", "http://[::1]:9000"),
        ] {
            assert_eq!(EndpointUrl::new(url).origin(), origin, "{url}");
        }
    }

    use super::*;

    fn valid(url: &str) -> bool {
        EndpointUrl::new(url).is_valid()
    }

    #[test]
    fn parts() {
        let url = EndpointUrl::new("HTTPS://u:p@w@H.example:8443/a/b?c=d#e/f?g");
        assert!(url.is_https());
        assert_eq!(url.host_port(), "H.example:8443");
        assert_eq!(url.request_target(), "/a/b?c=d");
        assert_eq!(
            url.without_userinfo(),
            "HTTPS://H.example:8443/a/b?c=d#e/f?g"
        );
        let url = EndpointUrl::new("http://h#f");
        assert!(!url.is_https());
        assert_eq!(url.host_port(), "h");
        assert_eq!(url.request_target(), "/");
        assert_eq!(url.without_userinfo(), "http://h#f");
        // Whatever the Go original stored is taken apart the same way.
        let url = EndpointUrl::new("u:p@example.com/hook");
        assert_eq!(url.host_port(), "example.com");
        assert_eq!(url.request_target(), "/hook");
        assert_eq!(url.without_userinfo(), "u:p@example.com/hook");
        let url = EndpointUrl::new("ftp://u:p@x.com");
        assert_eq!(url.without_userinfo(), "ftp://x.com");
        assert_eq!(url.request_target(), "/");
        assert_eq!(
            EndpointUrl::new("http://u:p@").without_userinfo(),
            "http://"
        );
    }

    /// User info, paths and queries http::Uri refuses but postmand has always accepted (and
    /// ureq then fails to send): they still are.
    #[test]
    fn accepts_what_it_accepted_where_http_uri_refuses() {
        for url in [
            "http://us\"er:p<w>@h/",
            "http://u^`{|}\\:pw@h/",
            "http://üser:pw@h/",
            "http://u[:pw@h/",
            "http://u]:pw@h/",
            "http://u%[:pw@[::1]/",
            "http://a:b:c:d:e:f:g:h:i:j@h/",
            "http://h/a<b>",
            "http://h/`x`",
            "http://h/?q=\"x\"",
            "http://h/?a<b>",
        ] {
            assert!(Uri::try_from(url).is_err(), "http::Uri now takes {url}");
            assert!(valid(url), "{url}");
        }
        let long_path = format!("http://h/{}", "a".repeat(70_000));
        assert!(Uri::try_from(long_path.as_str()).is_err());
        assert!(valid(&long_path));
        // The one difference: a host longer than http::Uri's limit (65,534 bytes), accepted
        // before, is refused. The API refuses any URL over 2,083 bytes before asking.
        assert!(!valid(&format!("http://{}", "a".repeat(70_000))));
    }

    /// Hosts, ports and fragments http::Uri takes but postmand never accepted: still refused.
    #[test]
    fn refuses_what_it_refused_where_http_uri_accepts() {
        for url in [
            "http://h:/",
            "http://h:99999/",
            "http://h:port/",
            "http://h:+80/",
            "http://h:-1/",
            "http://[::1]x/",
            "http://[::1]:/",
            "http://[zz]/",
            "http://[v1.fe]/",
            "http://[fe80::1%25eth0]/",
            "http://:80/",
            "http://u@:80/",
            "http://.x.com/",
            "http://h!$&'()*+,;=~/",
            "http://h/#a b",
            "http://h/#\u{7f}",
            "ftp://x.com/",
            "HTTPX://x.com/",
        ] {
            assert!(Uri::try_from(url).is_ok(), "http::Uri now refuses {url}");
            assert!(!valid(url), "{url}");
        }
    }

    #[test]
    fn scheme_host_and_port_edges() {
        for good in [
            "hTTpS://h",
            "http://h:0",
            "http://h:080/",
            "http://h:65535/",
            "http://-_.x/",
            "http://@h/",
            "http://u@v@h/",
            "http://[::ffff:1.2.3.4]/",
            "http://[1:2:3:4:5:6:7::]:1/",
            "http://h?x",
            "http://h#x",
        ] {
            assert!(valid(good), "{good}");
        }
        for bad in [
            "http://u@",
            "http://h:65536/",
            "http://h:1:2/",
            "http://[::1]:1:2/",
            "http://[::1]]/",
            "http://[::1/",
            "http://a[::1]/",
            "http://h%41/",
            "http:/x://h",
            "http://h/\u{a0}",
            "http://h/\u{85}",
        ] {
            assert!(!valid(bad), "{bad}");
        }
    }

    /// The OpenAPI document's URL pattern accepts exactly what `is_valid` does, on the URLs of
    /// these tests and on thousands of edits of them (SplitMix64, fixed seed).
    #[test]
    fn pattern_accepts_exactly_the_valid_urls() {
        let pattern = regex::Regex::new(&EndpointUrl::pattern()).expect("pattern compiles");
        let seeds = [
            "http://h",
            "HTTPS://u:p@w@H.example:8443/a/b?c=d#e/f?g",
            "http://h:00080",
            "http://h:65535/x",
            "http://[::1]:80/",
            "http://[::ffff:1.2.3.4]/",
            "http://[1:2:3:4:5:6:7::]",
            "http://[1:2:3:4:5:6:1.2.3.4]",
            "http://[::1:2:3:4:5:6:7]",
            "http://[fe80::1%25eth0]/",
            "http://[::256.1.1.1]",
            "http://[::01.2.3.4]",
            "http://-_.x/",
            "http://.x/",
            "http://üser:pw@h/",
            "http://h/é?q=ü#ß",
            "http://h/\u{a0}",
            "http://h/\u{feff}",
            "http://h/\u{3000}",
            "ftp://x.com",
            "http://h:+80",
            "http://[::1]x/",
            "http://h!/",
            "http://h:65536",
        ];
        let seeds: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
        let urls = crate::api::patterns::mutations(
            &seeds,
            "hH:/[]@?#.-_%01289afAF+!;|~\\ \té\u{a0}\u{85}\u{2028}\u{7f}\u{0}",
            5000,
            3,
        );
        let mut valid_seen = 0;
        for url in &urls {
            let valid = EndpointUrl::new(url).is_valid();
            valid_seen += usize::from(valid);
            assert_eq!(pattern.is_match(url), valid, "{url:?}");
        }
        assert!(
            valid_seen > 300,
            "only {valid_seen} valid URLs among the edits"
        );
    }
}
