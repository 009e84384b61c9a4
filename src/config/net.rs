//! `Ipv4Net` and `Ipv6Net`: small CIDR types (address + prefix length).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 network in CIDR notation, such as `192.168.1.0/24`.
///
/// The address is kept as written; [`Ipv4Net::network`] masks the host bits
/// off, and [`Ipv4Net::is_normalized`] tells whether any were set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix_len: u8,
}

/// Why a string is not an IPv4 CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IPv4 CIDR (expected an address and a prefix length like 192.168.1.0/24)")]
pub struct NetParseError(pub String);

impl Ipv4Net {
    /// A network from an address and a prefix length; `None` if the length exceeds 32.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Net> {
        (prefix_len <= 32).then_some(Ipv4Net { addr, prefix_len })
    }

    /// The address as written (host bits may be set).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0..=32.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            n => u32::MAX << (32 - u32::from(n)),
        }
    }

    /// The netmask, e.g. 255.255.255.0 for a /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    /// The first address of the network (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The last address of the network (host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The same network with the host bits cleared.
    pub fn trunc(&self) -> Ipv4Net {
        Ipv4Net {
            addr: self.network(),
            prefix_len: self.prefix_len,
        }
    }

    /// True when no host bits are set (`192.168.1.0/24`, not `192.168.1.5/24`).
    pub fn is_normalized(&self) -> bool {
        self.addr == self.network()
    }

    /// True when `ip` lies in this network (network and broadcast addresses included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// True when every address of `other` lies in this network.
    pub fn contains_net(&self, other: &Ipv4Net) -> bool {
        other.prefix_len >= self.prefix_len && self.contains(other.network())
    }

    /// How many addresses the network spans, network and broadcast included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix_len))
    }

    /// Every address of the network in ascending order, network and broadcast included.
    pub fn addresses(&self) -> Ipv4Range {
        Ipv4Range {
            next: u64::from(u32::from(self.network())),
            end: u64::from(u32::from(self.broadcast())) + 1,
        }
    }

    /// The addresses a host may use, in ascending order: all but the network and
    /// broadcast addresses (for /31 and /32, every address, as RFC 3021 has it).
    pub fn hosts(&self) -> Ipv4Range {
        let mut all = self.addresses();
        if self.prefix_len <= 30 {
            all.next += 1;
            all.end -= 1;
        }
        all
    }
}

impl FromStr for Ipv4Net {
    type Err = NetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || NetParseError(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let len: u8 = len.parse().map_err(|_| err())?;
        Ipv4Net::new(addr, len).ok_or_else(err)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// An ascending run of IPv4 addresses, from [`Ipv4Net::addresses`] or [`Ipv4Net::hosts`].
#[derive(Debug, Clone)]
pub struct Ipv4Range {
    // u64 so that a range ending at 255.255.255.255 has an end to stop at.
    next: u64,
    end: u64,
}

impl Iterator for Ipv4Range {
    type Item = Ipv4Addr;

    fn next(&mut self) -> Option<Ipv4Addr> {
        if self.next >= self.end {
            return None;
        }
        let ip = Ipv4Addr::from(self.next as u32);
        self.next += 1;
        Some(ip)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.end.saturating_sub(self.next)).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Ipv4Range {}

/// An IPv6 network in CIDR notation, such as `fd00:77::/64`.
///
/// IPv6 has no broadcast address; the subnet-router anycast address (the
/// network address itself, RFC 4291 §2.6.1) is the one a host must not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    prefix_len: u8,
}

/// Why a string is not an IPv6 CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IPv6 CIDR (expected an address and a prefix length like fd00:77::/64)")]
pub struct Net6ParseError(pub String);

impl Ipv6Net {
    /// A network from an address and a prefix length; `None` if the length exceeds 128.
    pub fn new(addr: Ipv6Addr, prefix_len: u8) -> Option<Ipv6Net> {
        (prefix_len <= 128).then_some(Ipv6Net { addr, prefix_len })
    }

    /// The address as written (host bits may be set).
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length, 0..=128.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask(&self) -> u128 {
        match self.prefix_len {
            0 => 0,
            n => u128::MAX << (128 - u32::from(n)),
        }
    }

    /// The first address of the network (host bits cleared): the
    /// subnet-router anycast address.
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & self.mask())
    }

    /// The last address of the network (host bits set).
    pub fn last(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) | !self.mask())
    }

    /// True when no host bits are set.
    pub fn is_normalized(&self) -> bool {
        self.addr == self.network()
    }

    /// True when `ip` lies in this network.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.network())
    }

    /// True when every address of `other` lies in this network.
    pub fn contains_net(&self, other: &Ipv6Net) -> bool {
        other.prefix_len >= self.prefix_len && self.contains(other.network())
    }

    /// Every address of the network in ascending order, the network address
    /// included (lazily: a /64 is never materialised).
    pub fn addresses(&self) -> Ipv6Range {
        let first = u128::from(self.network());
        Ipv6Range {
            next: Some(first),
            last: u128::from(self.last()),
        }
    }
}

impl FromStr for Ipv6Net {
    type Err = Net6ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || Net6ParseError(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| err())?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let len: u8 = len.parse().map_err(|_| err())?;
        Ipv6Net::new(addr, len).ok_or_else(err)
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// An ascending run of IPv6 addresses, from [`Ipv6Net::addresses`].
#[derive(Debug, Clone)]
pub struct Ipv6Range {
    // `None` once past `last` (which may be ffff:…:ffff, so no end+1 exists).
    next: Option<u128>,
    last: u128,
}

impl Iterator for Ipv6Range {
    type Item = Ipv6Addr;

    fn next(&mut self) -> Option<Ipv6Addr> {
        let n = self.next?;
        self.next = (n < self.last).then(|| n + 1);
        Some(Ipv6Addr::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let n: Ipv4Net = "192.168.1.0/24".parse().unwrap();
        assert_eq!(n.addr(), ip("192.168.1.0"));
        assert_eq!(n.prefix_len(), 24);
        assert_eq!(n.to_string(), "192.168.1.0/24");
        assert_eq!(n.netmask(), ip("255.255.255.0"));
        assert_eq!(n.network(), ip("192.168.1.0"));
        assert_eq!(n.broadcast(), ip("192.168.1.255"));
        assert_eq!(n.size(), 256);
        assert!(n.is_normalized());
        let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all.size(), 1 << 32);
        assert_eq!(all.broadcast(), ip("255.255.255.255"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "192.168.1.0",
            "192.168.1.0/",
            "192.168.1.0/33",
            "192.168.1/24",
            "192.168.1.0/+4",
            "192.168.1.0/024",
            "192.168.1.0/24/1",
            "x/24",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn host_bits_and_containment() {
        let n: Ipv4Net = "192.168.1.77/24".parse().unwrap();
        assert!(!n.is_normalized());
        assert_eq!(n.trunc().to_string(), "192.168.1.0/24");
        assert!(n.contains(ip("192.168.1.0")) && n.contains(ip("192.168.1.255")));
        assert!(!n.contains(ip("192.168.2.1")));
        let half: Ipv4Net = "192.168.1.128/25".parse().unwrap();
        assert!(n.contains_net(&half) && !half.contains_net(&n));
        assert!(!n.contains_net(&"192.168.0.0/23".parse().unwrap()));
    }

    #[test]
    fn iterates_hosts() {
        let n: Ipv4Net = "10.0.0.0/30".parse().unwrap();
        let hosts: Vec<_> = n.hosts().collect();
        assert_eq!(hosts, vec![ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(n.addresses().len(), 4);
        let p2p: Ipv4Net = "10.0.0.0/31".parse().unwrap();
        assert_eq!(p2p.hosts().count(), 2);
        let top: Ipv4Net = "255.255.255.255/32".parse().unwrap();
        assert_eq!(top.hosts().collect::<Vec<_>>(), vec![ip("255.255.255.255")]);
    }

    #[test]
    fn ipv6_parses_contains_and_iterates() {
        let n: Ipv6Net = "fd00:77::/64".parse().unwrap();
        assert_eq!(n.to_string(), "fd00:77::/64");
        assert!(n.is_normalized());
        assert!(n.contains("fd00:77::ffff:1".parse().unwrap()));
        assert!(!n.contains("fd00:78::1".parse().unwrap()));
        let half: Ipv6Net = "fd00:77::8000:0:0:0/65".parse().unwrap();
        assert!(n.contains_net(&half) && !half.contains_net(&n));
        let first: Vec<Ipv6Addr> = n.addresses().take(2).collect();
        assert_eq!(
            first,
            [
                "fd00:77::".parse::<Ipv6Addr>().unwrap(),
                "fd00:77::1".parse().unwrap()
            ]
        );
        let top: Ipv6Net = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"
            .parse()
            .unwrap();
        assert_eq!(top.addresses().count(), 2);
        let odd: Ipv6Net = "fd00:77::5/64".parse().unwrap();
        assert!(!odd.is_normalized());
        for bad in [
            "",
            "fd00::",
            "fd00::/129",
            "fd00::/+4",
            "10.0.0.0/8",
            "fd00::/0064",
        ] {
            assert!(bad.parse::<Ipv6Net>().is_err(), "{bad:?} parsed");
        }
    }
}
