//! IP networks in CIDR notation: `169.254.0.0/16`, `fe80::/10`, or a bare address meaning that
//! one host (`/32`, `/128`). `config` parses `POSTMAND_ENDPOINT_DENY` into them; `dispatch`
//! matches them against every address a webhook's host resolves to, before connecting. Std only,
//! and nothing here imports from the crate.
//!
//! An IPv4 address and its IPv4-mapped IPv6 form (`::ffff:169.254.169.254`) are one address:
//! a socket connected to the second reaches the first, so each matches the rules written for
//! the other.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One network: an address with its host bits cleared, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The text given (trimmed).
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for ParseError {}

impl Cidr {
    /// Whether `ip` is in this network; an IPv4 address and its IPv4-mapped IPv6 form are
    /// judged alike.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self.network {
            IpAddr::V4(network) => {
                let ip = match ip {
                    IpAddr::V4(ip) => ip,
                    IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                        Some(ip) => ip,
                        None => return false,
                    },
                };
                u32::from(ip) & mask_v4(self.prefix) == u32::from(network)
            }
            IpAddr::V6(network) => {
                let ip = match ip {
                    IpAddr::V6(ip) => ip,
                    IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                };
                u128::from(ip) & mask_v6(self.prefix) == u128::from(network)
            }
        }
    }
}

/// The first rule of `rules` that contains `ip`.
pub fn first_match(rules: &[Cidr], ip: IpAddr) -> Option<&Cidr> {
    rules.iter().find(|rule| rule.contains(ip))
}

/// A comma-separated list of CIDRs; empty (or blank) text is the empty list. Spaces around
/// items are ignored; an empty item between commas is an error (a typo, not a wish).
pub fn parse_list(text: &str) -> Result<Vec<Cidr>, ParseError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(str::parse).collect()
}

const PREFIX_RANGE: &str = "the prefix length must be 0-32 for IPv4, 0-128 for IPv6";

impl FromStr for Cidr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Cidr, ParseError> {
        let text = s.trim();
        let error = |reason| ParseError {
            text: text.to_string(),
            reason,
        };
        if text.is_empty() {
            return Err(error("empty item"));
        }
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| error("not an IPv4 or IPv6 address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would take "+8".
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(error(PREFIX_RANGE)),
            },
            Some(_) => return Err(error(PREFIX_RANGE)),
        };
        // Host bits are cleared, as Go's net.ParseCIDR does: 10.1.2.3/8 is 10.0.0.0/8.
        let network = match address {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix))),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_networks_and_bare_addresses() {
        for (text, shown) in [
            ("169.254.0.0/16", "169.254.0.0/16"),
            (" fe80::/10 ", "fe80::/10"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("127.0.0.1", "127.0.0.1/32"),
            ("::1", "::1/128"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::/0", "::/0"),
            ("2001:db8::1/32", "2001:db8::/32"),
            ("::ffff:169.254.0.0/112", "::ffff:169.254.0.0/112"),
        ] {
            assert_eq!(cidr(text).to_string(), shown, "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_cidr() {
        for (text, reason) in [
            ("", "empty item"),
            ("169.254.0.0/33", PREFIX_RANGE),
            ("fe80::/129", PREFIX_RANGE),
            ("10.0.0.0/999", PREFIX_RANGE),
            ("10.0.0.0/", PREFIX_RANGE),
            ("10.0.0.0/+8", PREFIX_RANGE),
            ("10.0.0.0/8/8", PREFIX_RANGE),
            ("10.0.0.0/1000", PREFIX_RANGE),
            ("10.0.0/8", "not an IPv4 or IPv6 address"),
            ("010.0.0.0/8", "not an IPv4 or IPv6 address"),
            ("localhost", "not an IPv4 or IPv6 address"),
            ("fe80::1%eth0", "not an IPv4 or IPv6 address"),
            ("[::1]", "not an IPv4 or IPv6 address"),
        ] {
            assert_eq!(
                text.parse::<Cidr>(),
                Err(ParseError {
                    text: text.to_string(),
                    reason
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn lists_are_comma_separated_and_may_be_empty() {
        assert_eq!(parse_list(""), Ok(vec![]));
        assert_eq!(parse_list("  "), Ok(vec![]));
        assert_eq!(
            parse_list("169.254.0.0/16, fe80::/10"),
            Ok(vec![cidr("169.254.0.0/16"), cidr("fe80::/10")])
        );
        assert_eq!(
            parse_list("10.0.0.0/8,,::1").unwrap_err().reason,
            "empty item"
        );
        assert_eq!(parse_list("10.0.0.0/8,").unwrap_err().reason, "empty item");
        assert_eq!(parse_list("10.0.0.0/8,x").unwrap_err().text, "x");
    }

    #[test]
    fn matches_addresses_inside_the_prefix_only() {
        let cases = [
            ("169.254.0.0/16", "169.254.169.254", true),
            ("169.254.0.0/16", "169.254.0.0", true),
            ("169.254.0.0/16", "169.254.255.255", true),
            ("169.254.0.0/16", "169.255.0.0", false),
            ("169.254.0.0/16", "169.253.255.255", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("fe80::/10", "fe80::1", true),
            ("fe80::/10", "febf:ffff::1", true),
            ("fe80::/10", "fec0::1", false),
            ("::/0", "2001:db8::1", true),
            ("::1", "::1", true),
            ("::1", "::2", false),
            // An IPv4-mapped IPv6 address is judged by the IPv4 rules...
            ("169.254.0.0/16", "::ffff:169.254.169.254", true),
            ("169.254.0.0/16", "::ffff:10.0.0.1", false),
            // ...but an IPv4-compatible one (deprecated, not routed to IPv4) is not.
            ("169.254.0.0/16", "::169.254.169.254", false),
            // And an IPv6 rule written for mapped addresses matches the plain IPv4 form.
            ("::ffff:169.254.0.0/112", "169.254.1.1", true),
            ("::ffff:169.254.0.0/112", "169.255.1.1", false),
            ("fe80::/10", "169.254.169.254", false),
        ];
        for (rule, address, expected) in cases {
            assert_eq!(
                cidr(rule).contains(ip(address)),
                expected,
                "{rule} {address}"
            );
        }
    }

    #[test]
    fn first_match_names_the_first_rule_that_contains() {
        let rules = parse_list("10.0.0.0/8,10.1.0.0/16,fe80::/10").unwrap();
        assert_eq!(first_match(&rules, ip("10.1.2.3")), Some(&rules[0]));
        assert_eq!(first_match(&rules, ip("fe80::1")), Some(&rules[2]));
        assert_eq!(first_match(&rules, ip("192.0.2.1")), None);
        assert_eq!(first_match(&[], ip("10.1.2.3")), None);
    }
}
