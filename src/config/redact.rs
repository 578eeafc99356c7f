//! The database URL as logs and errors may show it: the password replaced by `***`, wherever
//! postgres would find it.

use std::time::Duration;

use postgres::config::{
    ChannelBinding, Host, LoadBalanceHosts, SslMode, SslNegotiation, TargetSessionAttrs,
};

/// The database URL with its password, if any, replaced by `***`: parsed as a
/// [`postgres::Config`] and printed back from it, so the password is hidden wherever postgres
/// finds it (in the user info, as `?password=`, quoted in a key=value DSN). A URL stays a URL
/// with the scheme it was given, a key=value DSN stays key=value (keys in a fixed order); what is
/// printed is what postgres reads: a URL's host gets its port (5432 when none was given), and a
/// setting at its default is left out. A DSN postgres cannot parse is never connected with, but
/// the error that says so shows it: it keeps the string form, which has no settings to print.
pub fn redact_url(url: &str) -> String {
    let Ok(config) = url.parse::<postgres::Config>() else {
        return redact_unparsed(url);
    };
    let mut settings = dsn_settings(&config);
    // postgres' own test for the URL form.
    let Some(scheme) = ["postgres://", "postgresql://"]
        .into_iter()
        .find(|scheme| url.starts_with(scheme))
    else {
        return settings
            .iter()
            .map(|(key, value)| format!("{key}={}", quote_dsn_value(value)))
            .collect::<Vec<_>>()
            .join(" ");
    };
    let mut text = scheme.to_string();
    let (user, password) = (config.get_user(), config.get_password());
    if user.is_some() || password.is_some() {
        text.push_str(&percent_encode(user.unwrap_or(""), ""));
        if password.is_some() {
            text.push_str(":***");
        }
        text.push('@');
    }
    // Hosts go in the authority, each with its port, when they line up (as a URL's do); Unix
    // socket directories and unmatched ports go in the query.
    let hosts: Vec<String> = config.get_hosts().iter().map(host_text).collect();
    let ports = config.get_ports();
    let tcp = config.get_hosts().iter().all(|h| matches!(h, Host::Tcp(_)));
    if !hosts.is_empty() && tcp && ports.len() == hosts.len() {
        let authority: Vec<String> = hosts
            .iter()
            .zip(ports)
            .map(|(name, port)| {
                if name.contains(':') {
                    format!("[{}]:{port}", percent_encode(name, ":"))
                } else {
                    format!("{}:{port}", percent_encode(name, ""))
                }
            })
            .collect();
        text.push_str(&authority.join(","));
        settings.retain(|(key, _)| !matches!(*key, "host" | "port"));
    }
    if let Some(dbname) = config.get_dbname() {
        text.push('/');
        text.push_str(&percent_encode(dbname, ""));
    }
    let query: Vec<String> = settings
        .into_iter()
        .filter(|(key, _)| !matches!(*key, "user" | "password" | "dbname"))
        .flat_map(|(key, value)| match key {
            // A URL's `host=` takes one host; the others take a comma-separated list.
            "host" => hosts.iter().map(|host| ("host", host.clone())).collect(),
            _ => vec![(key, value)],
        })
        .map(|(key, value)| format!("{key}={}", percent_encode(&value, ",")))
        .collect();
    if !query.is_empty() {
        text.push('?');
        text.push_str(&query.join("&"));
    }
    text
}

/// Every setting of a DSN that is set and not at its default, as key and value (lists joined
/// with commas), the password as `***`; in libpq's order of the common ones.
fn dsn_settings(config: &postgres::Config) -> Vec<(&'static str, String)> {
    let join = |items: Vec<String>| Some(items.join(",")).filter(|list| !list.is_empty());
    let secs = |duration: &Duration| duration.as_secs().to_string();
    // The enums are non-exhaustive: a future value prints as the default does (not at all).
    let ssl_mode = match config.get_ssl_mode() {
        SslMode::Disable => Some("disable"),
        SslMode::Require => Some("require"),
        _ => None,
    };
    let ssl_negotiation = match config.get_ssl_negotiation() {
        SslNegotiation::Direct => Some("direct"),
        _ => None,
    };
    let target_session_attrs = match config.get_target_session_attrs() {
        TargetSessionAttrs::ReadWrite => Some("read-write"),
        TargetSessionAttrs::ReadOnly => Some("read-only"),
        _ => None,
    };
    let channel_binding = match config.get_channel_binding() {
        ChannelBinding::Disable => Some("disable"),
        ChannelBinding::Require => Some("require"),
        _ => None,
    };
    let load_balance_hosts = match config.get_load_balance_hosts() {
        LoadBalanceHosts::Random => Some("random"),
        _ => None,
    };
    let keepalives_idle = config.get_keepalives_idle();
    let settings: [(&'static str, Option<String>); 19] = [
        (
            "host",
            join(config.get_hosts().iter().map(host_text).collect()),
        ),
        (
            "hostaddr",
            join(
                config
                    .get_hostaddrs()
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
            ),
        ),
        (
            "port",
            join(config.get_ports().iter().map(|p| p.to_string()).collect()),
        ),
        ("user", config.get_user().map(str::to_string)),
        ("password", config.get_password().map(|_| "***".to_string())),
        ("dbname", config.get_dbname().map(str::to_string)),
        ("options", config.get_options().map(str::to_string)),
        (
            "application_name",
            config.get_application_name().map(str::to_string),
        ),
        ("sslmode", ssl_mode.map(str::to_string)),
        ("sslnegotiation", ssl_negotiation.map(str::to_string)),
        ("connect_timeout", config.get_connect_timeout().map(secs)),
        ("tcp_user_timeout", config.get_tcp_user_timeout().map(secs)),
        (
            "keepalives",
            (!config.get_keepalives()).then(|| "0".to_string()),
        ),
        (
            "keepalives_idle",
            (keepalives_idle != Duration::from_secs(2 * 60 * 60)).then(|| secs(&keepalives_idle)),
        ),
        (
            "keepalives_interval",
            config.get_keepalives_interval().as_ref().map(secs),
        ),
        (
            "keepalives_retries",
            config.get_keepalives_retries().map(|n| n.to_string()),
        ),
        (
            "target_session_attrs",
            target_session_attrs.map(str::to_string),
        ),
        ("channel_binding", channel_binding.map(str::to_string)),
        ("load_balance_hosts", load_balance_hosts.map(str::to_string)),
    ];
    settings
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
        .collect()
}

/// A host as shown. postgres ends a URL's user info at its first `@`, so a password with an
/// unencoded `@` leaves its tail in the host name: a name is shown from its last `@` on, as the
/// string form showed it.
fn host_text(host: &Host) -> String {
    match host {
        Host::Tcp(name) => name.rsplit('@').next().unwrap_or_default().to_string(),
        Host::Unix(path) => path.display().to_string(),
    }
}

/// A key=value DSN's value: in single quotes, with `\` and `'` escaped, when it is empty or has
/// whitespace, a quote or a backslash.
fn quote_dsn_value(value: &str) -> String {
    if !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return value.to_string();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `text` with every byte but ASCII letters, digits, `-._~` and those in `keep` percent-encoded.
fn percent_encode(text: &str, keep: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.as_bytes().contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}

/// The string form, for a DSN [`postgres::Config`] refuses (see [`redact_url`]). Replaces the
/// password of a URL-style DSN (`scheme://user:password@host`) or the `password=`
/// of a key=value DSN with `***`.
fn redact_unparsed(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if let Some((userinfo, host)) = authority.rsplit_once('@')
            && let Some((user, _password)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}{tail}");
        }
        return url.to_string();
    }
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_key_value_dsn() {
        assert_eq!(
            redact_url("host=db user=u password=p dbname=x"),
            "host=db user=u password=*** dbname=x"
        );
    }

    /// What postgres reads, printed back: the password hidden wherever it is, the rest as
    /// postgres sees it.
    #[test]
    fn redact_prints_back_what_postgres_reads() {
        for (dsn, redacted) in [
            // The string form missed these passwords.
            (
                "postgres://u@db/x?password=s3cret",
                "postgres://u:***@db:5432/x",
            ),
            ("postgres://u:s3/cret@db/x", "postgres://u:***@db:5432/x"),
            (
                "host=db password='s3 cret' user=u",
                "host=db user=u password=***",
            ),
            ("password = s3cret host=db", "host=db password=***"),
            // The default port is shown; settings at their defaults are not.
            ("postgres://u@db/x", "postgres://u@db:5432/x"),
            (
                "postgresql://u:s3cret@db:6543/x?sslmode=prefer&connect_timeout=5",
                "postgresql://u:***@db:6543/x?connect_timeout=5",
            ),
            (
                "postgres://u:s%40cret@[::1]:6543,h2/d%20b?application_name=a%20b",
                "postgres://u:***@[::1]:6543,h2:5432/d%20b?application_name=a%20b",
            ),
            (
                "postgres://u:s3cret@/x?host=/run/postgresql&host=/tmp",
                "postgres://u:***@/x?host=%2Frun%2Fpostgresql&host=%2Ftmp",
            ),
            (
                "user=u dbname=x host=a,b port=1,2 options='-c x=1' password=p",
                "host=a,b port=1,2 user=u password=*** dbname=x options='-c x=1'",
            ),
            ("", ""),
        ] {
            assert_eq!(redact_url(dsn), redacted, "{dsn}");
            assert!(!redacted.contains("cret"), "{redacted}");
            // It parses back to the same settings, with *** as the password.
            let mut expected: postgres::Config = dsn.parse().unwrap();
            if expected.get_password().is_some() {
                expected.password("***");
            }
            let parsed: postgres::Config = redacted.parse().unwrap();
            assert_eq!(format!("{parsed:?}"), format!("{expected:?}"), "{dsn}");
            assert_eq!(parsed.get_password(), expected.get_password(), "{dsn}");
        }
    }

    /// postgres reads the tail of a password with an unencoded `@` as part of the host.
    #[test]
    fn redact_password_with_an_at_sign() {
        assert_eq!(
            redact_url("postgres://u:s3@cret@db/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(
            redact_url("postgres://u:s3@cret@db/x?host=a@b"),
            "postgres://u:***@/x?host=db&host=b&port=5432"
        );
    }

    /// A DSN postgres refuses keeps the string form.
    #[test]
    fn redact_unparsable_dsn() {
        assert_eq!(
            redact_url("postgres://u:s3cret@db:notaport/x"),
            "postgres://u:***@db:notaport/x"
        );
        assert_eq!(
            redact_url("host=db PASSWORD=s3cret"),
            "host=db PASSWORD=***"
        );
        assert_eq!(redact_url("-"), "-");
    }
}
