//! IPv6 extension headers: finding the upper-layer header of a packet
//! behind hop-by-hop, routing, destination-options and fragment headers,
//! bounded, on hostile input.

/// Offset of the next-header field and length of the fixed IPv6 header.
pub const IPV6_NEXT: usize = 6;
/// Length of the fixed IPv6 header.
pub const IPV6_HLEN: usize = 40;
/// IPv6 next-header values: the extension headers walked past, and ICMPv6.
pub const NH_HOP_BY_HOP: u8 = 0;
/// Routing header.
pub const NH_ROUTING: u8 = 43;
/// Fragment header.
pub const NH_FRAGMENT: u8 = 44;
/// Destination options header.
pub const NH_DEST_OPTS: u8 = 60;
/// ICMPv6.
pub const NH_ICMPV6: u8 = 58;
/// Most extension headers walked before giving up on a packet.
const MAX_EXT_HEADERS: usize = 8;
/// Length of a fragment header.
const FRAGMENT_LEN: usize = 8;

/// The upper layer of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upper<'a> {
    /// Its protocol (next-header value), e.g. [`NH_ICMPV6`].
    pub protocol: u8,
    /// Its bytes, from its header on.
    pub bytes: &'a [u8],
    /// It came behind a fragment header (first fragment: its header is here).
    pub fragmented: bool,
}

/// What is behind the extension headers of `ip` (an IPv6 packet from its
/// fixed header on): `None` when a header is cut short, there are more
/// than eight of them, or the packet is a fragment other than the first
/// (whose upper-layer header is elsewhere). ESP, AH and unknown headers
/// end the walk as the upper layer.
pub fn upper_layer(ip: &[u8]) -> Option<Upper<'_>> {
    let mut next = *ip.get(IPV6_NEXT)?;
    let mut at = IPV6_HLEN;
    let mut fragmented = false;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS => {
                // Next header, then the length in 8-octet units past the first 8.
                next = *ip.get(at)?;
                at = at.checked_add((usize::from(*ip.get(at + 1)?) + 1) * 8)?;
            }
            NH_FRAGMENT => {
                let header = ip.get(at..at + FRAGMENT_LEN)?;
                let offset = u16::from_be_bytes([header[2], header[3]]) >> 3;
                if offset != 0 {
                    return None;
                }
                next = header[0];
                at += FRAGMENT_LEN;
                fragmented = true;
            }
            protocol => {
                return Some(Upper {
                    protocol,
                    bytes: ip.get(at..)?,
                    fragmented,
                })
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed header with `next`, then `rest`.
    fn packet(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        p.resize(IPV6_HLEN, 0);
        p.extend_from_slice(rest);
        p
    }

    #[test]
    fn walks_extension_headers_to_the_upper_layer() {
        let plain = packet(NH_ICMPV6, &[136, 0]);
        let u = upper_layer(&plain).unwrap();
        assert_eq!(
            (u.protocol, u.bytes, u.fragmented),
            (NH_ICMPV6, &[136u8, 0][..], false)
        );
        // Hop-by-hop (8 bytes), destination options (16 bytes), then ICMPv6.
        let mut rest = vec![NH_DEST_OPTS, 0, 1, 4, 0, 0, 0, 0];
        rest.extend_from_slice(&[NH_ICMPV6, 1]);
        rest.extend_from_slice(&[0; 14]);
        rest.extend_from_slice(&[136, 0]);
        let chained = packet(NH_HOP_BY_HOP, &rest);
        let u = upper_layer(&chained).unwrap();
        assert_eq!((u.protocol, u.bytes), (NH_ICMPV6, &[136u8, 0][..]));
        // A first fragment shows its upper layer; a later one does not.
        let first = packet(NH_FRAGMENT, &[NH_ICMPV6, 0, 0, 1, 0, 0, 0, 7, 136]);
        let u = upper_layer(&first).unwrap();
        assert!(u.fragmented && u.protocol == NH_ICMPV6 && u.bytes == [136]);
        let later = packet(NH_FRAGMENT, &[NH_ICMPV6, 0, 0, 8, 0, 0, 0, 7]);
        assert_eq!(upper_layer(&later), None);
    }

    #[test]
    fn hostile_packets_give_none_never_panic() {
        assert_eq!(upper_layer(&[0x60; 6]), None);
        // A hop-by-hop header whose length runs past the end.
        assert_eq!(upper_layer(&packet(NH_HOP_BY_HOP, &[NH_ICMPV6, 200])), None);
        // Nine hop-by-hop headers in a row.
        let mut chain = Vec::new();
        for _ in 0..9 {
            chain.extend_from_slice(&[NH_HOP_BY_HOP, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(upper_layer(&packet(NH_HOP_BY_HOP, &chain)), None);
        let full = packet(NH_HOP_BY_HOP, &[NH_ICMPV6, 0, 0, 0, 0, 0, 0, 0, 136]);
        for cut in 0..full.len() {
            let _ = upper_layer(&full[..cut]);
        }
    }
}
