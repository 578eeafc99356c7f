//! Where dispatchers may connect, and which certificates they trust (issue 13): the two parts
//! of the ureq `Agent` that `send.rs` builds and that come from configuration.
//!
//! **Trust.** The system's roots, as `rustls-native-certs` finds them (`SSL_CERT_FILE` and
//! `SSL_CERT_DIR` when set, else the distribution's bundle, `/etc/ssl/certs` on Debian), plus
//! the certificates of `POSTMAND_CA_FILE`. A self-hosted endpoint behind a private CA then needs
//! one variable, and a public one works as it would for curl on the same host.
//!
//! **The deny list.** [`DenyingResolver`] resolves a host with ureq's own resolver, then drops
//! every address inside a `POSTMAND_ENDPOINT_DENY` rule; ureq connects only to what is left. The
//! check is on the addresses the socket will connect to, after DNS, so a name that resolves to
//! a metadata address (DNS rebinding: harmless when a webhook is saved, hostile when it is sent)
//! is refused like the literal address. When nothing is left, the attempt fails with
//! [`Denied`] before any connection is made, and is retried like any other failure.
//!
//! Behind a proxy from `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` (which ureq honours), ureq asks
//! this resolver for the proxy's address only: the proxy resolves and connects to endpoints,
//! and filtering them is its job.

use std::net::IpAddr;

use ureq::http::Uri;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::cidr::{self, Cidr};
use crate::config::CaFile;

/// Why an attempt was refused before connecting: every address its host resolved to is in a
/// `POSTMAND_ENDPOINT_DENY` rule. Its `Display` is the cause stored in the attempt's `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The first address refused.
    pub address: IpAddr,
    /// The first rule containing it.
    pub rule: Cidr,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "address {} is denied by POSTMAND_ENDPOINT_DENY rule {}",
            self.address, self.rule
        )
    }
}

impl std::error::Error for Denied {}

impl Denied {
    /// The [`Denied`] inside a ureq error, if that is what it is: the resolver hands it to ureq
    /// as the source of an `io::Error`, the only error ureq lets a resolver carry.
    pub fn from_ureq(e: &ureq::Error) -> Option<&Denied> {
        match e {
            ureq::Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref()),
            _ => None,
        }
    }
}

/// ureq's resolver, with the addresses of the deny list taken out.
#[derive(Debug)]
pub struct DenyingResolver {
    rules: Vec<Cidr>,
    inner: DefaultResolver,
}

impl DenyingResolver {
    /// A resolver refusing the addresses in `rules`; with none, ureq's resolver as it is.
    pub fn new(rules: Vec<Cidr>) -> DenyingResolver {
        DenyingResolver {
            rules,
            inner: DefaultResolver::default(),
        }
    }
}

impl Resolver for DenyingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let resolved = self.inner.resolve(uri, config, timeout)?;
        if self.rules.is_empty() {
            return Ok(resolved);
        }
        let mut allowed = self.empty();
        let mut denied = None;
        for addr in resolved.iter() {
            match cidr::first_match(&self.rules, addr.ip()) {
                None => allowed.push(*addr),
                Some(rule) => {
                    denied.get_or_insert(Denied {
                        address: addr.ip(),
                        rule: *rule,
                    });
                }
            }
        }
        match denied {
            // ureq promises callers at least one address, or an error.
            Some(denied) if allowed.is_empty() => Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                denied,
            ))),
            _ => Ok(allowed),
        }
    }
}

/// The TLS settings of the dispatchers' agent: the system's roots plus `ca_file`'s. Problems
/// with the system's store are logged, never fatal (an http-only deployment needs none); the
/// CA file was checked when the configuration was read.
pub fn tls_config(ca_file: Option<&CaFile>) -> TlsConfig {
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        log::warn!("worker-trust-store-error error={:?}", error.to_string());
    }
    let mut roots: Vec<Certificate<'static>> = system
        .certs
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    let system_roots = roots.len();
    if let Some(ca_file) = ca_file {
        roots.extend(
            ca_file
                .certificates
                .iter()
                .map(|der| Certificate::from_der(der).to_owned()),
        );
    }
    if system_roots == 0 {
        log::warn!(
            "worker-trust-store-empty: no system root certificates found (install \
             ca-certificates, or set SSL_CERT_FILE); https endpoints must chain to \
             POSTMAND_CA_FILE"
        );
    }
    log::info!(
        "worker-trust system_roots={system_roots} ca_file={} ca_certificates={}",
        ca_file.map_or("none".to_string(), |f| format!(
            "{:?}",
            f.path.display().to_string()
        )),
        roots.len() - system_roots
    );
    TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&roots))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::unversioned::transport::time::Duration;

    fn resolve(rules: &str, url: &str) -> Result<Vec<IpAddr>, ureq::Error> {
        let resolver = DenyingResolver::new(cidr::parse_list(rules).unwrap());
        let uri: Uri = url.parse().unwrap();
        let timeout = NextTimeout {
            after: Duration::NotHappening,
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        resolver
            .resolve(&uri, &ureq::config::Config::default(), timeout)
            .map(|addrs| addrs.iter().map(|a| a.ip()).collect())
    }

    fn denied(rules: &str, url: &str) -> String {
        let e = resolve(rules, url).unwrap_err();
        Denied::from_ureq(&e)
            .unwrap_or_else(|| panic!("not a denial: {e}"))
            .to_string()
    }

    #[test]
    fn denied_address_is_refused_naming_the_rule() {
        assert_eq!(
            denied("169.254.0.0/16,fe80::/10", "http://169.254.169.254/latest"),
            "address 169.254.169.254 is denied by POSTMAND_ENDPOINT_DENY rule 169.254.0.0/16"
        );
        assert_eq!(
            denied("169.254.0.0/16,fe80::/10", "http://[fe80::1]:8080/"),
            "address fe80::1 is denied by POSTMAND_ENDPOINT_DENY rule fe80::/10"
        );
        assert_eq!(
            denied("169.254.0.0/16", "https://[::ffff:169.254.169.254]/"),
            "address ::ffff:169.254.169.254 is denied by POSTMAND_ENDPOINT_DENY rule 169.254.0.0/16"
        );
    }

    #[test]
    fn names_are_judged_by_the_addresses_they_resolve_to() {
        // /etc/hosts maps localhost to loopback, whatever the DNS.
        let e = denied("127.0.0.0/8,::1", "http://localhost:1/");
        assert!(e.starts_with("address "), "{e}");
        assert!(
            e.contains("is denied by POSTMAND_ENDPOINT_DENY rule "),
            "{e}"
        );
        // With only IPv6 loopback denied, what is left is IPv4 loopback.
        assert_eq!(
            resolve("::1", "http://localhost:1/").unwrap(),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn addresses_outside_the_rules_pass_untouched() {
        assert_eq!(
            resolve("169.254.0.0/16,fe80::/10", "http://127.0.0.1:9/").unwrap(),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        // An empty list denies nothing, not even the metadata address (resolving is all this
        // does: nothing connects).
        assert_eq!(
            resolve("", "http://169.254.169.254/").unwrap(),
            vec!["169.254.169.254".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn other_ureq_errors_are_not_denials() {
        let e = ureq::Error::Io(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "permission denied",
        ));
        assert_eq!(Denied::from_ureq(&e), None);
        assert_eq!(Denied::from_ureq(&ureq::Error::HostNotFound), None);
    }
}
