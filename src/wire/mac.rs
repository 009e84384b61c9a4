//! The 48-bit Ethernet MAC address.

use std::fmt;
use std::str::FromStr;

/// An Ethernet MAC address, stored in wire order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (expected six hex octets like 02:42:c0:a8:01:0a)")]
pub struct MacParseError(pub String);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// True for group addresses (the I/G bit), broadcast included.
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for ff:ff:ff:ff:ff:ff.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// True for 00:00:00:00:00:00, which no endpoint may use.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// Docker's default MAC for an IPv4 address: 02:42 followed by the four octets.
    pub fn docker_default(ip: std::net::Ipv4Addr) -> MacAddr {
        let o = ip.octets();
        MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }

    /// mvdp's default MAC for an endpoint on a DHCP network, where no
    /// address is known up front: `06:` then the low 40 bits of the 64-bit
    /// FNV-1a hash of `name`. Locally administered, unicast, stable across
    /// restarts and versions (the DHCP server keys its leases on it), and
    /// never one of Docker's `02:42:` defaults.
    pub fn from_name(name: &str) -> MacAddr {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let b = h.to_be_bytes();
        MacAddr([0x06, b[3], b[4], b[5], b[6], b[7]])
    }

    /// The address packed into the low 48 bits of a u64, for cheap hashing and keys.
    #[inline]
    pub fn to_u64(&self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let m: MacAddr = "02:42:C0:a8:01:0a".parse().unwrap();
        assert_eq!(m.0, [0x02, 0x42, 0xc0, 0xa8, 0x01, 0x0a]);
        assert_eq!(m.to_string(), "02:42:c0:a8:01:0a");
        assert_eq!("02-42-c0-a8-01-0a".parse::<MacAddr>().unwrap(), m);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "02:42:c0:a8:01",
            "02:42:c0:a8:01:0a:ff",
            "0g:42:c0:a8:01:0a",
            "2:42:c0:a8:01:0a",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn group_bits() {
        assert!(MacAddr::BROADCAST.is_multicast() && MacAddr::BROADCAST.is_broadcast());
        assert!("01:00:5e:00:00:01"
            .parse::<MacAddr>()
            .unwrap()
            .is_multicast());
        assert!(!"02:42:c0:a8:01:0a"
            .parse::<MacAddr>()
            .unwrap()
            .is_multicast());
        assert_eq!(
            MacAddr::docker_default("192.168.1.10".parse().unwrap()).to_string(),
            "02:42:c0:a8:01:0a"
        );
        // Pinned: a DHCP server keys its leases on it, so it must never change.
        assert_eq!(MacAddr::from_name("web").to_string(), "06:19:48:72:1e:f1");
        let m = MacAddr::from_name("db");
        assert!(!m.is_multicast() && m.0[0] & 0x02 != 0 && m != MacAddr::from_name("web"));
    }
}
