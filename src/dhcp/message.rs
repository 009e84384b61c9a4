//! DHCP (RFC 2131/2132) messages: a checked decoder and an encoder, plus
//! the Ethernet/IPv4/UDP framing a packet socket sends and receives.
//! Pure: no I/O, no clock.

use std::net::Ipv4Addr;

use crate::wire::MacAddr;

/// UDP port of DHCP servers.
pub const SERVER_PORT: u16 = 67;
/// UDP port of DHCP clients.
pub const CLIENT_PORT: u16 = 68;

// BOOTP header offsets.
const OP: usize = 0;
const HTYPE: usize = 1;
const HLEN: usize = 2;
const XID: usize = 4;
const SECS: usize = 8;
const FLAGS: usize = 10;
const CIADDR: usize = 12;
const YIADDR: usize = 16;
const SIADDR: usize = 20;
const GIADDR: usize = 24;
const CHADDR: usize = 28;
const COOKIE: usize = 236;
const OPTIONS: usize = 240;
/// RFC 2131's magic cookie, in front of the options.
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// BOOTP's minimum message size: shorter ones are padded (some relays drop them).
const MIN_LEN: usize = 300;
/// The broadcast bit of `flags`.
const FLAG_BROADCAST: u16 = 0x8000;

// Option codes.
const OPT_PAD: u8 = 0;
const OPT_SUBNET_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_HOSTNAME: u8 = 12;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE_TIME: u8 = 51;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMS: u8 = 55;
const OPT_MESSAGE: u8 = 56;
const OPT_MAX_SIZE: u8 = 57;
const OPT_T1: u8 = 58;
const OPT_T2: u8 = 59;
const OPT_CLIENT_ID: u8 = 61;
const OPT_END: u8 = 255;

/// BOOTREQUEST / BOOTREPLY.
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;

// Frame offsets: Ethernet, then IPv4 without options, then UDP.
const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;
const IPPROTO_UDP: u8 = 17;

/// The DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Client looks for servers.
    Discover,
    /// Server offers an address.
    Offer,
    /// Client asks for (or renews) an address.
    Request,
    /// Client found the address in use.
    Decline,
    /// Server grants the address.
    Ack,
    /// Server refuses the request.
    Nak,
    /// Client gives the address back.
    Release,
    /// Client asks for parameters only.
    Inform,
}

impl MessageType {
    /// Every type, in code order.
    pub const ALL: [MessageType; 8] = [
        MessageType::Discover,
        MessageType::Offer,
        MessageType::Request,
        MessageType::Decline,
        MessageType::Ack,
        MessageType::Nak,
        MessageType::Release,
        MessageType::Inform,
    ];

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Option<MessageType> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// Lower-case name, for logs and metric labels ("discover", "ack", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Discover => "discover",
            MessageType::Offer => "offer",
            MessageType::Request => "request",
            MessageType::Decline => "decline",
            MessageType::Ack => "ack",
            MessageType::Nak => "nak",
            MessageType::Release => "release",
            MessageType::Inform => "inform",
        }
    }
}

/// One DHCP message: the BOOTP fields mvdp uses and the options it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// True for a server's reply (BOOTREPLY).
    pub reply: bool,
    /// Transaction id, chosen by the client per exchange.
    pub xid: u32,
    /// Seconds since the client began the exchange.
    pub secs: u16,
    /// Asks the server to broadcast its reply.
    pub broadcast: bool,
    /// The client's current address (renewing, rebinding, releasing).
    pub ciaddr: Ipv4Addr,
    /// The address the server gives.
    pub yiaddr: Ipv4Addr,
    /// The next server (BOOTP); kept for round trips.
    pub siaddr: Ipv4Addr,
    /// The relay agent's address.
    pub giaddr: Ipv4Addr,
    /// The client's hardware address.
    pub chaddr: MacAddr,
    /// Option 53.
    pub kind: MessageType,
    /// The other options.
    pub options: Options,
}

/// The options mvdp reads or writes; others are skipped on decode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// 1: subnet mask.
    pub subnet_mask: Option<Ipv4Addr>,
    /// 3: the first router.
    pub router: Option<Ipv4Addr>,
    /// 6: DNS servers.
    pub dns: Vec<Ipv4Addr>,
    /// 12: host name.
    pub hostname: Option<String>,
    /// 50: requested address.
    pub requested_ip: Option<Ipv4Addr>,
    /// 51: lease time in seconds (0xffffffff: infinite).
    pub lease_secs: Option<u32>,
    /// 54: server identifier.
    pub server_id: Option<Ipv4Addr>,
    /// 55: parameter request list.
    pub params: Vec<u8>,
    /// 56: a server's message (with a NAK, why).
    pub message: Option<String>,
    /// 57: maximum message size the client takes.
    pub max_size: Option<u16>,
    /// 58: renewal time T1 in seconds.
    pub t1_secs: Option<u32>,
    /// 59: rebinding time T2 in seconds.
    pub t2_secs: Option<u32>,
    /// 61: client identifier (type byte, then the id).
    pub client_id: Vec<u8>,
}

/// Why bytes are not a DHCP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the fixed header and cookie.
    #[error("{0} bytes are too short for a DHCP message (at least 240)")]
    Short(usize),
    /// Not Ethernet / 6-byte hardware addresses.
    #[error("hardware type {htype}, length {hlen}: not Ethernet")]
    NotEthernet {
        /// `htype`.
        htype: u8,
        /// `hlen`.
        hlen: u8,
    },
    /// The magic cookie is missing: plain BOOTP.
    #[error("no DHCP magic cookie (plain BOOTP)")]
    NoCookie,
    /// An option runs past the end of the message.
    #[error("option {code} runs past the end of the message")]
    Truncated {
        /// The option's code.
        code: u8,
    },
    /// An option's length does not fit its type.
    #[error("option {code} has length {len}, which does not fit its type")]
    BadLength {
        /// The option's code.
        code: u8,
        /// Its length.
        len: usize,
    },
    /// No message type, or an unknown one.
    #[error("no DHCP message type (option 53), or an unknown one")]
    NoType,
    /// An `op` other than request (1) and reply (2).
    #[error("op {0} is neither BOOTREQUEST nor BOOTREPLY")]
    BadOp(u8),
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

impl Message {
    /// A client's message of `kind` from `chaddr`, every address 0.0.0.0.
    pub fn request(kind: MessageType, xid: u32, chaddr: MacAddr) -> Message {
        Message {
            reply: false,
            xid,
            secs: 0,
            broadcast: false,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            kind,
            options: Options::default(),
        }
    }

    /// Decodes a DHCP message (the UDP payload), checked once here.
    pub fn decode(b: &[u8]) -> Result<Message, DecodeError> {
        if b.len() < OPTIONS {
            return Err(DecodeError::Short(b.len()));
        }
        let reply = match b[OP] {
            BOOTREQUEST => false,
            BOOTREPLY => true,
            op => return Err(DecodeError::BadOp(op)),
        };
        if b[HTYPE] != 1 || b[HLEN] != 6 {
            return Err(DecodeError::NotEthernet {
                htype: b[HTYPE],
                hlen: b[HLEN],
            });
        }
        if b[COOKIE..OPTIONS] != MAGIC {
            return Err(DecodeError::NoCookie);
        }
        let mut o = Options::default();
        let mut kind = None;
        let mut at = OPTIONS;
        while at < b.len() {
            let code = b[at];
            match code {
                OPT_PAD => {
                    at += 1;
                    continue;
                }
                OPT_END => break,
                _ => {}
            }
            let len = *b.get(at + 1).ok_or(DecodeError::Truncated { code })? as usize;
            let v = b
                .get(at + 2..at + 2 + len)
                .ok_or(DecodeError::Truncated { code })?;
            at += 2 + len;
            let bad = DecodeError::BadLength { code, len };
            let ip = || (len == 4).then(|| ip_at(v, 0)).ok_or(bad.clone());
            let u32v = || {
                (len == 4)
                    .then(|| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
                    .ok_or(bad.clone())
            };
            let text = || String::from_utf8_lossy(v).into_owned();
            match code {
                OPT_SUBNET_MASK => o.subnet_mask = Some(ip()?),
                OPT_ROUTER => {
                    if len < 4 || len % 4 != 0 {
                        return Err(bad);
                    }
                    o.router = Some(ip_at(v, 0));
                }
                OPT_DNS => {
                    if len % 4 != 0 {
                        return Err(bad);
                    }
                    o.dns = v.chunks(4).map(|c| ip_at(c, 0)).collect();
                }
                OPT_HOSTNAME => o.hostname = Some(text()),
                OPT_REQUESTED_IP => o.requested_ip = Some(ip()?),
                OPT_LEASE_TIME => o.lease_secs = Some(u32v()?),
                OPT_MESSAGE_TYPE => {
                    if len != 1 {
                        return Err(bad);
                    }
                    kind = MessageType::from_code(v[0]);
                }
                OPT_SERVER_ID => o.server_id = Some(ip()?),
                OPT_PARAMS => o.params = v.to_vec(),
                OPT_MESSAGE => o.message = Some(text()),
                OPT_MAX_SIZE => {
                    if len != 2 {
                        return Err(bad);
                    }
                    o.max_size = Some(be16(v, 0));
                }
                OPT_T1 => o.t1_secs = Some(u32v()?),
                OPT_T2 => o.t2_secs = Some(u32v()?),
                OPT_CLIENT_ID => o.client_id = v.to_vec(),
                _ => {}
            }
        }
        let mut chaddr = [0u8; 6];
        chaddr.copy_from_slice(&b[CHADDR..CHADDR + 6]);
        Ok(Message {
            reply,
            xid: u32::from_be_bytes([b[XID], b[XID + 1], b[XID + 2], b[XID + 3]]),
            secs: be16(b, SECS),
            broadcast: be16(b, FLAGS) & FLAG_BROADCAST != 0,
            ciaddr: ip_at(b, CIADDR),
            yiaddr: ip_at(b, YIADDR),
            siaddr: ip_at(b, SIADDR),
            giaddr: ip_at(b, GIADDR),
            chaddr: MacAddr(chaddr),
            kind: kind.ok_or(DecodeError::NoType)?,
            options: o,
        })
    }

    /// Encodes the message (the UDP payload), padded to BOOTP's 300 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; OPTIONS];
        b[OP] = if self.reply { BOOTREPLY } else { BOOTREQUEST };
        b[HTYPE] = 1;
        b[HLEN] = 6;
        b[XID..XID + 4].copy_from_slice(&self.xid.to_be_bytes());
        b[SECS..SECS + 2].copy_from_slice(&self.secs.to_be_bytes());
        let flags = if self.broadcast { FLAG_BROADCAST } else { 0 };
        b[FLAGS..FLAGS + 2].copy_from_slice(&flags.to_be_bytes());
        for (at, ip) in [
            (CIADDR, self.ciaddr),
            (YIADDR, self.yiaddr),
            (SIADDR, self.siaddr),
            (GIADDR, self.giaddr),
        ] {
            b[at..at + 4].copy_from_slice(&ip.octets());
        }
        b[CHADDR..CHADDR + 6].copy_from_slice(&self.chaddr.0);
        b[COOKIE..OPTIONS].copy_from_slice(&MAGIC);
        let o = &self.options;
        let mut put = |code: u8, v: &[u8]| {
            // Longer values would need RFC 3396 splitting; mvdp never writes one.
            let len = v.len().min(255);
            b.push(code);
            b.push(len as u8);
            b.extend_from_slice(&v[..len]);
        };
        put(OPT_MESSAGE_TYPE, &[self.kind.code()]);
        if !o.client_id.is_empty() {
            put(OPT_CLIENT_ID, &o.client_id);
        }
        if let Some(ip) = o.requested_ip {
            put(OPT_REQUESTED_IP, &ip.octets());
        }
        if let Some(ip) = o.server_id {
            put(OPT_SERVER_ID, &ip.octets());
        }
        if let Some(n) = o.lease_secs {
            put(OPT_LEASE_TIME, &n.to_be_bytes());
        }
        if let Some(n) = o.t1_secs {
            put(OPT_T1, &n.to_be_bytes());
        }
        if let Some(n) = o.t2_secs {
            put(OPT_T2, &n.to_be_bytes());
        }
        if let Some(ip) = o.subnet_mask {
            put(OPT_SUBNET_MASK, &ip.octets());
        }
        if let Some(ip) = o.router {
            put(OPT_ROUTER, &ip.octets());
        }
        if !o.dns.is_empty() {
            let v: Vec<u8> = o.dns.iter().flat_map(|ip| ip.octets()).collect();
            put(OPT_DNS, &v);
        }
        if let Some(h) = &o.hostname {
            put(OPT_HOSTNAME, text_bytes(h));
        }
        if !o.params.is_empty() {
            put(OPT_PARAMS, &o.params);
        }
        if let Some(m) = &o.message {
            put(OPT_MESSAGE, text_bytes(m));
        }
        if let Some(n) = o.max_size {
            put(OPT_MAX_SIZE, &n.to_be_bytes());
        }
        b.push(OPT_END);
        if b.len() < MIN_LEN {
            b.resize(MIN_LEN, 0);
        }
        b
    }
}

/// A text option's bytes: at most 255, cut at a character boundary so that
/// it decodes to a prefix of `s`.
fn text_bytes(s: &str) -> &[u8] {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s.as_bytes()[..end]
}

/// Where a frame goes at layers 2 and 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressing {
    /// Source MAC (the endpoint's).
    pub src_mac: MacAddr,
    /// Destination MAC: broadcast, or the server's.
    pub dst_mac: MacAddr,
    /// Source IPv4: 0.0.0.0 until the endpoint holds a lease.
    pub src_ip: Ipv4Addr,
    /// Destination IPv4: 255.255.255.255, or the server's.
    pub dst_ip: Ipv4Addr,
}

/// The Internet checksum (RFC 1071) of `parts`, concatenated.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &byte in *part {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A whole Ethernet frame carrying `msg` from the client port to the
/// server port, checksums finished.
pub fn encode_frame(a: &Addressing, msg: &Message) -> Vec<u8> {
    let payload = msg.encode();
    let udp_len = (UDP_LEN + payload.len()) as u16;
    let mut f = Vec::with_capacity(ETH_LEN + IP_LEN + usize::from(udp_len));
    f.extend_from_slice(&a.dst_mac.0);
    f.extend_from_slice(&a.src_mac.0);
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let mut ip = [0u8; IP_LEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(IP_LEN as u16 + udp_len).to_be_bytes());
    ip[8] = 64; // TTL
    ip[9] = IPPROTO_UDP;
    ip[12..16].copy_from_slice(&a.src_ip.octets());
    ip[16..20].copy_from_slice(&a.dst_ip.octets());
    let sum = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut udp = [0u8; UDP_LEN];
    udp[0..2].copy_from_slice(&CLIENT_PORT.to_be_bytes());
    udp[2..4].copy_from_slice(&SERVER_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&a.src_ip.octets());
    pseudo[4..8].copy_from_slice(&a.dst_ip.octets());
    pseudo[9] = IPPROTO_UDP;
    pseudo[10..12].copy_from_slice(&udp_len.to_be_bytes());
    let sum = match checksum(&[&pseudo, &udp, &payload]) {
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&udp);
    f.extend_from_slice(&payload);
    f
}

/// The DHCP message in an Ethernet frame to the client port, with the
/// frame's source MAC (the server's, or its relay's); `None` for any other
/// frame (not IPv4/UDP to port 68, a fragment, or not DHCP).
pub fn decode_frame(f: &[u8]) -> Option<(MacAddr, Message)> {
    if f.len() < ETH_LEN + IP_LEN + UDP_LEN || be16(f, 12) != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = &f[ETH_LEN..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let fragment = be16(ip, 6) & 0x3fff != 0;
    if ip[0] >> 4 != 4 || ihl < IP_LEN || ip[9] != IPPROTO_UDP || fragment {
        return None;
    }
    let udp = ip.get(ihl..)?;
    if udp.len() < UDP_LEN || be16(udp, 2) != CLIENT_PORT {
        return None;
    }
    let end = usize::from(be16(udp, 4)).clamp(UDP_LEN, udp.len());
    let msg = Message::decode(&udp[UDP_LEN..end]).ok()?;
    let mut src = [0u8; 6];
    src.copy_from_slice(&f[6..12]);
    Some((MacAddr(src), msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DHCPOFFER with the options dnsmasq sends, in its order: xid
    /// 0x3903f326, broadcast, yiaddr 10.77.0.50, server 10.77.0.1, lease
    /// 120 s, T1 10 s, T2 20 s, mask /24, router 10.77.0.1, two pads.
    const OFFER: [u8; 290] = {
        let mut b = [0u8; 290];
        let head: [u8; 12] = [2, 1, 6, 0, 0x39, 0x03, 0xf3, 0x26, 0, 0, 0x80, 0];
        let mut i = 0;
        while i < head.len() {
            b[i] = head[i];
            i += 1;
        }
        // yiaddr, siaddr
        b[16] = 10;
        b[17] = 77;
        b[18] = 0;
        b[19] = 50;
        b[20] = 10;
        b[21] = 77;
        b[22] = 0;
        b[23] = 1;
        // chaddr 06:01:02:03:04:05
        let mac: [u8; 6] = [6, 1, 2, 3, 4, 5];
        i = 0;
        while i < 6 {
            b[28 + i] = mac[i];
            i += 1;
        }
        let opts: [u8; 50] = [
            99, 130, 83, 99, // cookie
            53, 1, 2, // offer
            54, 4, 10, 77, 0, 1, // server id
            51, 4, 0, 0, 0, 120, // lease
            58, 4, 0, 0, 0, 10, // T1
            59, 4, 0, 0, 0, 20, // T2
            1, 4, 255, 255, 255, 0, // mask
            3, 4, 10, 77, 0, 1, // router
            0, 0, // pad
            255, 0, 0, 0, 0,
        ];
        i = 0;
        while i < opts.len() {
            b[236 + i] = opts[i];
            i += 1;
        }
        b
    };

    #[test]
    fn decodes_an_offer_byte_by_byte() {
        let m = Message::decode(&OFFER).unwrap();
        assert!(m.reply);
        assert_eq!(m.kind, MessageType::Offer);
        assert_eq!(m.xid, 0x3903f326);
        assert!(m.broadcast);
        assert_eq!(m.yiaddr, Ipv4Addr::new(10, 77, 0, 50));
        assert_eq!(m.chaddr, MacAddr([6, 1, 2, 3, 4, 5]));
        let o = &m.options;
        assert_eq!(o.server_id, Some(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(o.lease_secs, Some(120));
        assert_eq!((o.t1_secs, o.t2_secs), (Some(10), Some(20)));
        assert_eq!(o.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(o.router, Some(Ipv4Addr::new(10, 77, 0, 1)));
    }

    #[test]
    fn round_trips() {
        let mut m = Message::request(MessageType::Request, 7, MacAddr([6, 0, 0, 0, 0, 1]));
        m.broadcast = true;
        m.ciaddr = Ipv4Addr::new(10, 0, 0, 9);
        m.options = Options {
            client_id: vec![1, 6, 0, 0, 0, 0, 1],
            requested_ip: Some(Ipv4Addr::new(10, 0, 0, 9)),
            server_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
            hostname: Some("web".into()),
            params: vec![1, 3, 6, 51, 58, 59],
            max_size: Some(1500),
            dns: vec![Ipv4Addr::new(9, 9, 9, 9), Ipv4Addr::new(1, 1, 1, 1)],
            ..Options::default()
        };
        let bytes = m.encode();
        assert_eq!(bytes.len(), MIN_LEN);
        assert_eq!(Message::decode(&bytes).unwrap(), m);
        let reencoded = Message::decode(&OFFER).unwrap().encode();
        assert_eq!(Message::decode(&reencoded), Message::decode(&OFFER));
    }

    #[test]
    fn refuses_what_is_not_dhcp() {
        assert_eq!(Message::decode(&OFFER[..239]), Err(DecodeError::Short(239)));
        let mut b = OFFER;
        b[236] = 0;
        assert_eq!(Message::decode(&b), Err(DecodeError::NoCookie));
        let mut b = OFFER;
        b[0] = 3;
        assert_eq!(Message::decode(&b), Err(DecodeError::BadOp(3)));
        let mut b = OFFER;
        b[241] = 9; // option 53 claims 9 bytes
        assert!(Message::decode(&b).is_err());
        let mut b = OFFER;
        b[242] = 99; // unknown message type
        assert_eq!(Message::decode(&b), Err(DecodeError::NoType));
        // An option whose length runs off the end.
        let mut short = OFFER[..249].to_vec();
        short.extend_from_slice(&[3, 8, 10]);
        assert_eq!(
            Message::decode(&short),
            Err(DecodeError::Truncated { code: 3 })
        );
    }

    /// The fuzz target's invariant (tests/fuzz/fuzz_targets/dhcp.rs) over
    /// every prefix and every one-byte change of the offer: no panic, and
    /// what decodes is a fixed point after one round trip.
    #[test]
    fn every_prefix_and_byte_flip_decodes_or_is_refused() {
        let check = |b: &[u8]| {
            if let Ok(m) = Message::decode(b) {
                let once = Message::decode(&m.encode()).expect("re-encoded decodes");
                assert_eq!(Message::decode(&once.encode()).unwrap(), once);
            }
            let _ = decode_frame(b);
        };
        for n in 0..=OFFER.len() {
            check(&OFFER[..n]);
        }
        for i in 0..OFFER.len() {
            for v in [0u8, 1, 0x80, 0xff] {
                let mut b = OFFER;
                b[i] = v;
                check(&b);
            }
        }
        // A host name of 255 bytes of invalid UTF-8 grows when read; it is
        // cut at a character once, then stays.
        let mut long = OFFER[..267].to_vec();
        long.extend_from_slice(&[12, 255]);
        long.extend(std::iter::repeat_n(0xff, 255));
        long.push(255);
        let read = Message::decode(&long).unwrap().options.hostname.unwrap();
        assert_eq!(read.len(), 3 * 255);
        check(&long);
    }

    #[test]
    fn frames_round_trip_with_valid_checksums() {
        let m = Message::decode(&OFFER).unwrap();
        let a = Addressing {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr::BROADCAST,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
        };
        let mut f = encode_frame(&a, &m);
        // A client frame goes to port 67: decode_frame takes only port 68.
        assert_eq!(decode_frame(&f), None);
        f[ETH_LEN + IP_LEN + 2..ETH_LEN + IP_LEN + 4].copy_from_slice(&CLIENT_PORT.to_be_bytes());
        let (src, back) = decode_frame(&f).unwrap();
        assert_eq!((src, back), (a.src_mac, m));
        // The IPv4 header sums to zero with its checksum in place.
        assert_eq!(checksum(&[&f[ETH_LEN..ETH_LEN + IP_LEN]]), 0);
        assert_eq!(decode_frame(&f[..30]), None);
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071's example words sum to 0xddf2; the checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&[&data]), !0xddf2);
    }
}
