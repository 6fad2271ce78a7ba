//! The address of the client behind a request, through the proxies the operator trusts.
//!
//! Behind a reverse proxy (the usual place to end TLS), every connection comes from the proxy, so anything
//! counted per client address — the login's failure budget — would count every client together: one client
//! guessing passwords would hold back everybody's logins. With `http.trusted_proxies` set, a request from one
//! of those addresses is attributed to the address its proxies recorded in `X-Forwarded-For`: read from the
//! right (the hop nearest to us), each trusted address is passed over, and the first one that is not trusted is
//! the client. Entries written by the client itself lie to the left of what our proxies appended, so a client
//! cannot choose its own address unless a proxy it reaches is trusted and passes the header on unchanged.
//! Without the setting, the header is ignored and the connection's address is the client.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address or a CIDR range (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`), as `http.trusted_proxies` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct IpRange {
    base: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Whether `ip` is in the range; an IPv4 address written as IPv6 (`::ffff:10.0.0.1`) counts as IPv4.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, ip.to_canonical()) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse =
            || format!("{text:?} is not an IP address or CIDR range (such as \"10.0.0.0/8\" or \"::1\")");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let base = IpAddr::from_str(address).map_err(|_| refuse())?.to_canonical();
        let bits = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(refuse)?,
            None => bits,
        };
        Ok(Self { base, prefix })
    }
}

impl TryFrom<String> for IpRange {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// The client of a request that came over a connection from `peer`; see the [module docs](self).
#[must_use]
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    // Several headers count as one list, in order (RFC 9110, 5.3).
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    for hop in hops.iter().rev() {
        // Something that is not an address (`unknown`, garbage) ends the walk at the last trusted hop: what
        // lies to its left cannot be vouched for.
        let Some(ip) = parse_hop(hop.trim()) else { return client };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = IpAddr::from_str(hop)
        .ok()
        .or_else(|| SocketAddr::from_str(hop).ok().map(|s| s.ip()))
        .or_else(|| IpAddr::from_str(hop.strip_prefix('[')?.strip_suffix(']')?).ok())?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(list: &[&str]) -> Vec<IpRange> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match() {
        let r: IpRange = "10.0.0.0/8".parse().unwrap();
        assert!(r.contains(ip("10.255.1.2")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(r.contains(ip("::ffff:10.1.2.3")), "an IPv4-mapped peer is the IPv4 address");
        let one: IpRange = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: IpRange = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")) && !v6.contains(ip("10.0.0.1")));
        let all: IpRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0/8", "proxy.local", "10.0.0.1/x"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let headers = forwarded(&["198.51.100.7"]);
        assert_eq!(client_address(ip("203.0.113.1"), &headers, &[]), ip("203.0.113.1"));
        // A peer that is not trusted cannot name another client either.
        let trusted = ranges(&["10.0.0.0/8"]);
        assert_eq!(client_address(ip("203.0.113.1"), &headers, &trusted), ip("203.0.113.1"));
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = ranges(&["10.0.0.0/8", "::1"]);
        // The client wrote a fake entry; our proxy appended the real address it saw.
        let headers = forwarded(&["1.2.3.4, 198.51.100.7"]);
        assert_eq!(client_address(ip("10.0.0.5"), &headers, &trusted), ip("198.51.100.7"));
        // Two proxies of ours, the header split over two lines, ports and brackets.
        let headers = forwarded(&["198.51.100.7:5555", "10.0.0.9"]);
        assert_eq!(client_address(ip("::1"), &headers, &trusted), ip("198.51.100.7"));
        let headers = forwarded(&["[2001:db8::7]:443, 10.1.1.1"]);
        assert_eq!(client_address(ip("10.0.0.5"), &headers, &trusted), ip("2001:db8::7"));
        // Only trusted hops: the leftmost of them. Garbage: the last trusted hop before it.
        assert_eq!(client_address(ip("10.0.0.5"), &forwarded(&["10.2.2.2"]), &trusted), ip("10.2.2.2"));
        let headers = forwarded(&["198.51.100.7, unknown, 10.3.3.3"]);
        assert_eq!(client_address(ip("10.0.0.5"), &headers, &trusted), ip("10.3.3.3"));
        // No header: the proxy itself.
        assert_eq!(client_address(ip("10.0.0.5"), &HeaderMap::new(), &trusted), ip("10.0.0.5"));
    }
}
