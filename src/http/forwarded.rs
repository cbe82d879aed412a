//! Which peers may speak for the client (`trusted-proxies`), sans-I/O: address ranges, and the
//! client address that a chain of `X-Forwarded-For` values names.
//!
//! A peer outside the ranges is the client itself: what it says in `X-Forwarded-*` is only its
//! claim, so the gateway's own values replace it (the claimed `X-Forwarded-For` is kept, with
//! the peer appended after it, so the backend can tell claim from fact). A peer inside the
//! ranges is a proxy in front of the gateway, and its `X-Forwarded-*` values stand.

use std::fmt;
use std::net::IpAddr;

/// An address range, `ADDRESS/BITS` (a bare address is the range of that address alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| {
            format!("'{s}' is not an address range: expected ADDRESS/BITS such as 10.0.0.0/8 or fd00::/8")
        })?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => match b.parse::<u8>() {
                Ok(n) if n <= max && !b.starts_with('+') => n,
                _ => {
                    return Err(format!(
                        "'{s}': the prefix length must be a number from 0 to {max}"
                    ));
                }
            },
        };
        Ok(Cidr {
            net: mask(net, bits),
            bits,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.bits) == self.net
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.bits)
    }
}

/// `ip` with all but its first `bits` bits cleared.
fn mask(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// Whether `ip` is in one of the ranges.
pub fn trusted(ranges: &[Cidr], ip: IpAddr) -> bool {
    ranges.iter().any(|r| r.contains(ip))
}

/// The client a request from `peer` is for: walking `X-Forwarded-For` (all its fields, in order)
/// from the right, past every trusted hop, the first address that is not trusted. When every
/// hop is trusted, the left-most; when an entry is not an address, the hop after it (the last
/// one that can be told). Without trust in `peer` it is `peer` itself.
pub fn client_address<'v>(
    ranges: &[Cidr],
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'v str>,
) -> IpAddr {
    let mut client = peer;
    if !trusted(ranges, peer) {
        return client;
    }
    for value in forwarded_for.rev() {
        for hop in value.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                return client;
            };
            client = ip;
            if !trusted(ranges, ip) {
                return client;
            }
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| Cidr::parse(s).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match() {
        let r = ranges(&["10.0.0.0/8", "192.168.1.7", "fd00::/8", "10.1.2.3/8"]);
        assert_eq!(r[0].to_string(), "10.0.0.0/8");
        assert_eq!(r[1].to_string(), "192.168.1.7/32");
        assert_eq!(r[3], r[0], "host bits are cleared");
        assert!(trusted(&r, ip("10.200.0.1")));
        assert!(trusted(&r, ip("::ffff:10.0.0.1")), "v4-mapped v6 is v4");
        assert!(trusted(&r, ip("fd12::1")));
        assert!(!trusted(&r, ip("192.168.1.8")));
        assert!(!trusted(&r, ip("11.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/x",
            "x",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let r = ranges(&["10.0.0.0/8"]);
        let client = |peer: &str, xff: &[&str]| client_address(&r, ip(peer), xff.iter().copied());
        assert_eq!(client("10.0.0.1", &["203.0.113.9"]), ip("203.0.113.9"));
        assert_eq!(
            client("10.0.0.1", &["1.1.1.1, 203.0.113.9", "10.0.0.2"]),
            ip("203.0.113.9"),
            "a forged left part is not believed"
        );
        assert_eq!(client("10.0.0.1", &["10.0.0.3, 10.0.0.2"]), ip("10.0.0.3"));
        assert_eq!(client("10.0.0.1", &[]), ip("10.0.0.1"));
        assert_eq!(client("10.0.0.1", &["junk, 10.0.0.2"]), ip("10.0.0.2"));
        assert_eq!(
            client("198.51.100.1", &["203.0.113.9"]),
            ip("198.51.100.1"),
            "an untrusted peer is the client"
        );
    }
}
