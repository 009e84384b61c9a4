//! IP multicast in a frame: the group a frame is sent to, and the
//! membership messages hosts send (IGMPv1/v2/v3 reports and leaves, MLDv1
//! reports and dones, MLDv2 reports), as a snooping switch reads them.
//!
//! Every read is bounds-checked against the slice: hostile bytes give
//! `None` or end the record iteration early, never a panic. The group is
//! reported as its MAC address (01:00:5e + the low 23 bits of an IPv4
//! group, 33:33 + the low 32 bits of an IPv6 group), which is what a NIC's
//! (and the kernel macvlan's) multicast filter works on: 32 IPv4 groups
//! share each MAC, and so do IPv6 groups that differ only above their low 32 bits.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{FrameHeader, MacAddr};

/// IPv4 and IPv6 ethertypes.
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// IPv4 header: version/IHL byte, protocol, destination; least header length.
const IPV4_VER_IHL: usize = 0;
const IPV4_PROTO: usize = 9;
const IPV4_DST: usize = 16;
const IPV4_MIN_HLEN: usize = 20;
/// IPv4 protocol number of IGMP.
const PROTO_IGMP: u8 = 2;

/// IPv6 header: the destination's offset.
const IPV6_DST: usize = 24;
use super::ipv6::{Upper, NH_HOP_BY_HOP, NH_ICMPV6};

/// IGMP message types (RFC 2236, RFC 3376).
const IGMP_QUERY: u8 = 0x11;
const IGMP_V1_REPORT: u8 = 0x12;
const IGMP_V2_REPORT: u8 = 0x16;
const IGMP_V2_LEAVE: u8 = 0x17;
const IGMP_V3_REPORT: u8 = 0x22;
/// Offset of the group in an IGMPv1/v2 message; of the record count and
/// the first record in an IGMPv3 report.
const IGMP_GROUP: usize = 4;
const IGMP_V3_NRECORDS: usize = 6;
const IGMP_V3_RECORDS: usize = 8;

/// MLD message types (RFC 2710, RFC 3810).
const MLD_QUERY: u8 = 130;
const MLD_V1_REPORT: u8 = 131;
const MLD_V1_DONE: u8 = 132;
const MLD_V2_REPORT: u8 = 143;
/// Offset of the group in an MLDv1 message; of the record count and the
/// first record in an MLDv2 report.
const MLD_GROUP: usize = 8;
const MLD_V2_NRECORDS: usize = 6;
const MLD_V2_RECORDS: usize = 8;

/// A group record's header before its group address: type, aux data length
/// (32-bit words), number of sources.
const RECORD_HEADER: usize = 4;
/// IGMPv3/MLDv2 group record types that, with no sources, mean "no longer
/// listening": MODE_IS_INCLUDE and CHANGE_TO_INCLUDE_MODE.
const RECORD_IS_INCLUDE: u8 = 1;
const RECORD_TO_INCLUDE: u8 = 3;

/// What a group frame is, for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupScope {
    /// Every endpoint gets it: broadcast, non-IP multicast, link-local IP
    /// groups (224.0.0.0/24, ff02::/16 and narrower scopes), and IP
    /// multicast whose header does not say otherwise.
    All,
    /// IP multicast beyond the link: only the group's members get it.
    Group(MacAddr),
}

/// One change a membership message announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The group's MAC address.
    pub group: MacAddr,
    /// Joined (or still joined: a report), or left.
    pub join: bool,
}

/// The MAC an IPv4 group is sent to: 01:00:5e and the group's low 23 bits.
pub fn ipv4_group_mac(group: Ipv4Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
}

/// The MAC an IPv6 group is sent to: 33:33 and the group's low 32 bits.
pub fn ipv6_group_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Whether an IPv4 group is snooped: a multicast address outside the
/// link-local block 224.0.0.0/24, which every host gets (RFC 4541 2.1.2).
fn ipv4_snooped(group: Ipv4Addr) -> bool {
    let o = group.octets();
    group.is_multicast() && !(o[0] == 224 && o[1] == 0 && o[2] == 0)
}

/// Whether an IPv6 group is snooped: a multicast address of a scope wider
/// than link-local (ff02::/16 holds all-nodes, all-routers, solicited-node
/// and mDNS; ff00::/15 never appears on a link; RFC 4541 3).
fn ipv6_snooped(group: Ipv6Addr) -> bool {
    let o = group.octets();
    o[0] == 0xff && (o[1] & 0x0f) > 2
}

/// Which endpoints a group frame is for, from its destination MAC and IP
/// header: only a snooped IP group's frame, whose destination MAC is the
/// group's own, is kept to the group's members.
pub fn group_scope(frame: &[u8], hdr: &FrameHeader) -> GroupScope {
    let ip = frame.get(hdr.payload_offset..).unwrap_or_default();
    let group = match hdr.ethertype {
        ETHERTYPE_IPV4 => ipv4_dst(ip)
            .filter(|&g| ipv4_snooped(g))
            .map(ipv4_group_mac),
        ETHERTYPE_IPV6 => ipv6_dst(ip)
            .filter(|&g| ipv6_snooped(g))
            .map(ipv6_group_mac),
        _ => None,
    };
    match group {
        Some(mac) if mac == hdr.dst => GroupScope::Group(mac),
        _ => GroupScope::All,
    }
}

fn ipv4_dst(ip: &[u8]) -> Option<Ipv4Addr> {
    let d: [u8; 4] = ip.get(IPV4_DST..IPV4_DST + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(d))
}

fn ipv6_dst(ip: &[u8]) -> Option<Ipv6Addr> {
    let d: [u8; 16] = ip.get(IPV6_DST..IPV6_DST + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(d))
}

/// A membership message in a frame: what a host sends when it joins or
/// leaves, or a router's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A membership query (IGMP or MLD, any version).
    Query,
    /// Reports and leaves: iterate for the changes.
    Changes(Changes<'a>),
}

/// The group changes of one membership message, in order. Groups that are
/// never snooped (link-local) are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changes<'a> {
    kind: Kind<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind<'a> {
    /// One change, already read (IGMPv1/v2, MLDv1).
    One(Option<Membership>),
    /// IGMPv3 or MLDv2 group records still to read.
    Records {
        bytes: &'a [u8],
        left: u16,
        v6: bool,
    },
}

/// Reads a membership message from a frame: IGMP in IPv4, or MLD in ICMPv6
/// after any hop-by-hop, routing and destination options headers. `None`
/// for any other frame, a truncated one, or a fragment.
pub fn membership<'a>(frame: &'a [u8], hdr: &FrameHeader) -> Option<Message<'a>> {
    let ip = frame.get(hdr.payload_offset..)?;
    match hdr.ethertype {
        ETHERTYPE_IPV4 => igmp(ip),
        ETHERTYPE_IPV6 => mld(ip),
        _ => None,
    }
}

fn igmp(ip: &[u8]) -> Option<Message<'_>> {
    let hlen = usize::from(ip.get(IPV4_VER_IHL)? & 0x0f) * 4;
    if hlen < IPV4_MIN_HLEN || *ip.get(IPV4_PROTO)? != PROTO_IGMP {
        return None;
    }
    let msg = ip.get(hlen..)?;
    let kind = match *msg.first()? {
        IGMP_QUERY => return Some(Message::Query),
        IGMP_V1_REPORT | IGMP_V2_REPORT => Kind::One(change(msg.get(IGMP_GROUP..)?, false, true)?),
        IGMP_V2_LEAVE => Kind::One(change(msg.get(IGMP_GROUP..)?, false, false)?),
        IGMP_V3_REPORT => records(msg, IGMP_V3_NRECORDS, IGMP_V3_RECORDS, false)?,
        _ => return None,
    };
    Some(Message::Changes(Changes { kind }))
}

/// The group records of an IGMPv3 or MLDv2 report: their count at
/// `count_at`, the first at `first_at`.
fn records(msg: &[u8], count_at: usize, first_at: usize, v6: bool) -> Option<Kind<'_>> {
    let count = msg.get(count_at..count_at + 2)?;
    Some(Kind::Records {
        left: u16::from_be_bytes([count[0], count[1]]),
        bytes: msg.get(first_at..)?,
        v6,
    })
}

/// The change for the group address `addr` starts with (IPv6: 16 bytes,
/// IPv4: 4); `None` when it is cut short, an inner `None` for a group that
/// is never snooped.
fn change(addr: &[u8], v6: bool, join: bool) -> Option<Option<Membership>> {
    let group = if v6 {
        let g = Ipv6Addr::from(<[u8; 16]>::try_from(addr.get(..16)?).ok()?);
        ipv6_snooped(g).then(|| ipv6_group_mac(g))
    } else {
        let g = Ipv4Addr::from(<[u8; 4]>::try_from(addr.get(..4)?).ok()?);
        ipv4_snooped(g).then(|| ipv4_group_mac(g))
    };
    Some(group.map(|group| Membership { group, join }))
}

fn mld(ip: &[u8]) -> Option<Message<'_>> {
    // A fragmented MLD message is not read (RFC 6980: NDP and MLD are
    // never fragmented); ESP, AH or anything else neither.
    match super::ipv6::upper_layer(ip)? {
        Upper {
            protocol: NH_ICMPV6,
            bytes,
            fragmented: false,
        } => mld_message(bytes),
        _ => None,
    }
}

fn mld_message(msg: &[u8]) -> Option<Message<'_>> {
    let kind = match *msg.first()? {
        MLD_QUERY => return Some(Message::Query),
        MLD_V1_REPORT => Kind::One(change(msg.get(MLD_GROUP..)?, true, true)?),
        MLD_V1_DONE => Kind::One(change(msg.get(MLD_GROUP..)?, true, false)?),
        MLD_V2_REPORT => records(msg, MLD_V2_NRECORDS, MLD_V2_RECORDS, true)?,
        _ => return None,
    };
    Some(Message::Changes(Changes { kind }))
}

impl Iterator for Changes<'_> {
    type Item = Membership;

    fn next(&mut self) -> Option<Membership> {
        loop {
            match &mut self.kind {
                Kind::One(m) => return m.take(),
                Kind::Records { bytes, left, v6 } => {
                    if *left == 0 {
                        return None;
                    }
                    *left -= 1;
                    let (change, rest) = record(bytes, *v6)?;
                    *bytes = rest;
                    if change.is_some() {
                        return change;
                    }
                    // A link-local group: skipped.
                }
            }
        }
    }
}

/// One IGMPv3/MLDv2 group record and what follows it. Per group, not per
/// source: "include no source" (IS_IN or TO_IN with an empty list) is a
/// leave, any other record keeps the group joined. `None` when the record
/// is truncated (the rest of the message is then ignored).
fn record(bytes: &[u8], v6: bool) -> Option<(Option<Membership>, &[u8])> {
    let kind = *bytes.first()?;
    let aux_words = usize::from(*bytes.get(1)?);
    let sources = usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]));
    let addr_len = if v6 { 16 } else { 4 };
    let len = RECORD_HEADER + addr_len * (1 + sources) + aux_words * 4;
    let rest = bytes.get(len..)?;
    let join = !(sources == 0 && (kind == RECORD_IS_INCLUDE || kind == RECORD_TO_INCLUDE));
    Some((change(&bytes[RECORD_HEADER..], v6, join)?, rest))
}

/// The source MAC of the queries mvdp sends its containers (locally
/// administered; nobody answers to it: reports go to groups).
pub const QUERIER_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x6d, 0x76, 0x64]);
/// The link-local source of mvdp's MLD queries (Linux takes MLD queries
/// from link-local sources only).
const QUERIER_V6: [u8; 16] = [
    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0x6d, 0x76, 0x64,
];
/// Max response time of mvdp's queries: 1 s (IGMP in tenths, MLD in ms).
const QUERY_RESPONSE_IGMP: u8 = 10;
const QUERY_RESPONSE_MLD: u16 = 1000;
/// Robustness variable and query interval (s) the queries announce.
const QUERY_QRV: u8 = 2;
const QUERY_QQIC: u8 = 125;

/// The Internet checksum of `bytes`, starting from `sum`.
fn checksum(bytes: &[u8], mut sum: u32) -> u16 {
    for c in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IGMPv3 general query to 224.0.0.1 from 0.0.0.0, as a snooping
/// switch sends one (RFC 4541 2.1.1: a switch may query with a zero
/// source). Every host answers with a report of its groups.
pub fn igmp_general_query() -> Vec<u8> {
    let mut igmp = vec![IGMP_QUERY, QUERY_RESPONSE_IGMP, 0, 0, 0, 0, 0, 0];
    igmp.extend_from_slice(&[QUERY_QRV, QUERY_QQIC, 0, 0]);
    let sum = checksum(&igmp, 0);
    igmp[2..4].copy_from_slice(&sum.to_be_bytes());
    // IPv4 with the router alert option, TTL 1, to 224.0.0.1.
    let total = (24 + igmp.len()) as u16;
    let mut ip = vec![0x46, 0xc0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 1, PROTO_IGMP, 0, 0, 0, 0, 0, 0]);
    ip.extend_from_slice(&[224, 0, 0, 1, 0x94, 4, 0, 0]);
    let sum = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame(
        ipv4_group_mac(Ipv4Addr::new(224, 0, 0, 1)),
        ETHERTYPE_IPV4,
        &ip,
        &igmp,
    )
}

/// An MLDv2 general query to ff02::1 from mvdp's link-local address.
pub fn mld_general_query() -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
    let mut mld = vec![MLD_QUERY, 0, 0, 0];
    mld.extend_from_slice(&QUERY_RESPONSE_MLD.to_be_bytes());
    mld.extend_from_slice(&[0; 2 + 16]);
    mld.extend_from_slice(&[QUERY_QRV, QUERY_QQIC, 0, 0]);
    // The ICMPv6 checksum covers a pseudo-header: addresses, length, next header.
    let mut pseudo = QUERIER_V6.to_vec();
    pseudo.extend_from_slice(&all_nodes);
    pseudo.extend_from_slice(&(mld.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, NH_ICMPV6]);
    pseudo.extend_from_slice(&mld);
    let sum = checksum(&pseudo, 0);
    mld[2..4].copy_from_slice(&sum.to_be_bytes());
    // IPv6, hop limit 1, a hop-by-hop header with the router alert (MLD).
    let payload = (8 + mld.len()) as u16;
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&payload.to_be_bytes());
    ip.extend_from_slice(&[NH_HOP_BY_HOP, 1]);
    ip.extend_from_slice(&QUERIER_V6);
    ip.extend_from_slice(&all_nodes);
    ip.extend_from_slice(&[NH_ICMPV6, 0, 5, 2, 0, 0, 1, 0]);
    frame(ipv6_group_mac(all_nodes.into()), ETHERTYPE_IPV6, &ip, &mld)
}

/// An Ethernet frame from [`QUERIER_MAC`]: headers, then the message.
fn frame(dst: MacAddr, ethertype: u16, headers: &[u8], message: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + headers.len() + message.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&QUERIER_MAC.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(headers);
    f.extend_from_slice(message);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mvdps_queries_parse_as_queries_with_valid_checksums() {
        let igmp = igmp_general_query();
        assert_eq!(parse(&igmp), Some(Message::Query));
        assert_eq!(checksum(&igmp[14..38], 0), 0, "IPv4 header checksum");
        assert_eq!(checksum(&igmp[38..], 0), 0, "IGMP checksum");
        let mld = mld_general_query();
        assert_eq!(parse(&mld), Some(Message::Query));
        let icmp = &mld[62..];
        let mut pseudo = mld[22..54].to_vec();
        pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(icmp);
        assert_eq!(checksum(&pseudo, 0), 0, "ICMPv6 checksum");
        assert_eq!(icmp.len(), 28, "an MLDv2 query with no sources");
        // Link-local destinations: every container gets them.
        for q in [&igmp, &mld] {
            let hdr = FrameHeader::parse(q).unwrap();
            assert_eq!(group_scope(q, &hdr), GroupScope::All);
        }
    }

    fn parse(frame: &[u8]) -> Option<Message<'_>> {
        membership(frame, &FrameHeader::parse(frame).unwrap())
    }

    fn changes(frame: &[u8]) -> Vec<(MacAddr, bool)> {
        match parse(frame) {
            Some(Message::Changes(c)) => c.map(|m| (m.group, m.join)).collect(),
            other => panic!("not a report: {other:?}"),
        }
    }

    /// An IGMPv3 report as Linux sends it when a socket joins 239.1.2.3
    /// (TO_EX with no sources): Ethernet, IPv4 with a router alert option,
    /// one group record.
    const IGMPV3_JOIN: [u8; 54] = [
        0x01, 0x00, 0x5e, 0x00, 0x00, 0x16, 0x02, 0x42, 0x0a, 0x00, 0x00, 0x0b, 0x08, 0x00, //
        0x46, 0xc0, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x01, 0x02, 0x00, 0x00, 0x0a, 0x00, 0x00,
        0x0b, 0xe0, 0x00, 0x00, 0x16, 0x94, 0x04, 0x00, 0x00, //
        0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //
        0x04, 0x00, 0x00, 0x00, 0xef, 0x01, 0x02, 0x03,
    ];

    const G239_1_2_3: MacAddr = MacAddr([0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]);

    #[test]
    fn igmpv3_join_and_leave() {
        assert_eq!(changes(&IGMPV3_JOIN), vec![(G239_1_2_3, true)]);
        // TO_IN with no sources: the leave.
        let mut leave = IGMPV3_JOIN;
        leave[46] = RECORD_TO_INCLUDE;
        assert_eq!(changes(&leave), vec![(G239_1_2_3, false)]);
        // IS_IN with no sources (an answer to a query): not a member either.
        leave[46] = RECORD_IS_INCLUDE;
        assert_eq!(changes(&leave), vec![(G239_1_2_3, false)]);
    }

    #[test]
    fn igmpv3_several_records_sources_and_link_local_groups() {
        let mut f = IGMPV3_JOIN[..46].to_vec();
        // Three records. ALLOW with one source and one aux word: joined.
        f[45] = 3;
        f.extend_from_slice(&[
            5, 1, 0, 1, 239, 9, 9, 9, 10, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd,
        ]);
        // A link-local group: skipped.
        f.extend_from_slice(&[4, 0, 0, 0, 224, 0, 0, 251]);
        // IS_IN with a source: still a member (per group, not per source).
        f.extend_from_slice(&[1, 0, 0, 1, 232, 1, 1, 1, 10, 0, 0, 2]);
        assert_eq!(
            changes(&f),
            vec![
                (MacAddr([0x01, 0x00, 0x5e, 0x09, 0x09, 0x09]), true),
                (MacAddr([0x01, 0x00, 0x5e, 0x01, 0x01, 0x01]), true),
            ]
        );
        // A record count larger than what is there: the records present, then the end.
        f[45] = 200;
        assert_eq!(changes(&f).len(), 2);
        // A record cut short: ignored.
        f.truncate(f.len() - 2);
        assert_eq!(changes(&f).len(), 1);
    }

    /// An IGMPv2 report and leave for 239.1.2.3 (no IP options).
    fn igmpv2(kind: u8) -> Vec<u8> {
        let mut f = vec![0x01, 0x00, 0x5e, 0x01, 0x02, 0x03];
        f.extend_from_slice(&[0x02, 0x42, 0x0a, 0x00, 0x00, 0x0b, 0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 1, 2, 0, 0, 10, 0, 0, 11]);
        f.extend_from_slice(&[239, 1, 2, 3]);
        f.extend_from_slice(&[kind, 0, 0, 0, 239, 1, 2, 3]);
        f
    }

    #[test]
    fn igmpv2_report_leave_and_query() {
        assert_eq!(changes(&igmpv2(IGMP_V2_REPORT)), vec![(G239_1_2_3, true)]);
        assert_eq!(changes(&igmpv2(IGMP_V1_REPORT)), vec![(G239_1_2_3, true)]);
        assert_eq!(changes(&igmpv2(IGMP_V2_LEAVE)), vec![(G239_1_2_3, false)]);
        assert_eq!(parse(&igmpv2(IGMP_QUERY)), Some(Message::Query));
        assert_eq!(parse(&igmpv2(0x99)), None);
        // A report for a link-local group changes nothing.
        let mut f = igmpv2(IGMP_V2_REPORT);
        f[38..42].copy_from_slice(&[224, 0, 0, 251]);
        assert!(changes(&f).is_empty());
        // Not IGMP.
        let mut udp = igmpv2(IGMP_V2_REPORT);
        udp[23] = 17;
        assert_eq!(parse(&udp), None);
    }

    /// An MLDv2 report as Linux sends it when a socket joins ff15::1234
    /// (IPv6, hop-by-hop header with router alert, ICMPv6, one record).
    fn mldv2_join() -> Vec<u8> {
        let mut f = vec![
            0x33, 0x33, 0, 0, 0, 0x16, 0x02, 0x42, 0x0a, 0, 0, 0x0b, 0x86, 0xdd,
        ];
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 36, 0, 1]);
        f.extend_from_slice(&[
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x42, 0x0a, 0xff, 0xfe, 0, 0, 0x0b,
        ]);
        f.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16]);
        // Hop-by-hop: next ICMPv6, length 0, router alert (MLD), PadN.
        f.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]);
        f.extend_from_slice(&[143, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[4, 0, 0, 0]);
        f.extend_from_slice(&[0xff, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34]);
        f
    }

    const GFF15_1234: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0x12, 0x34]);

    #[test]
    fn mldv2_join_leave_after_hop_by_hop() {
        assert_eq!(changes(&mldv2_join()), vec![(GFF15_1234, true)]);
        let mut leave = mldv2_join();
        leave[70] = RECORD_TO_INCLUDE;
        assert_eq!(changes(&leave), vec![(GFF15_1234, false)]);
        // Solicited-node (ff02::1:ff00:b): link-local, never snooped.
        let mut sn = mldv2_join();
        sn[74..90].copy_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x0b]);
        assert!(changes(&sn).is_empty());
        // Behind a fragment header: not read.
        let mut frag = mldv2_join();
        frag[54] = 44;
        assert_eq!(parse(&frag), None);
        // A hop-by-hop header claiming more than the frame holds.
        let mut long = mldv2_join();
        long[55] = 200;
        assert_eq!(parse(&long), None);
    }

    #[test]
    fn mldv1_report_done_and_query() {
        let mut f = mldv2_join()[..62].to_vec();
        f.extend_from_slice(&[MLD_V1_REPORT, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&[0xff, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34]);
        assert_eq!(changes(&f), vec![(GFF15_1234, true)]);
        f[62] = MLD_V1_DONE;
        assert_eq!(changes(&f), vec![(GFF15_1234, false)]);
        f[62] = MLD_QUERY;
        assert_eq!(parse(&f), Some(Message::Query));
        // Without the hop-by-hop header, right after the IPv6 header.
        let mut bare = f[..54].to_vec();
        bare[20] = 58;
        bare.extend_from_slice(&f[62..]);
        assert_eq!(parse(&bare), Some(Message::Query));
    }

    #[test]
    fn group_scope_keeps_only_snooped_groups() {
        let scope = |f: &[u8]| group_scope(f, &FrameHeader::parse(f).unwrap());
        // UDP to 239.1.2.3, to its MAC.
        let mut f = igmpv2(0);
        f[23] = 17;
        assert_eq!(scope(&f), GroupScope::Group(G239_1_2_3));
        // To a MAC other than the group's: everyone (never guess).
        f[5] = 4;
        assert_eq!(scope(&f), GroupScope::All);
        // Link-local 224.0.0.251 (mDNS).
        let mut mdns = igmpv2(0);
        mdns[0..6].copy_from_slice(&[0x01, 0, 0x5e, 0, 0, 0xfb]);
        mdns[30..34].copy_from_slice(&[224, 0, 0, 251]);
        assert_eq!(scope(&mdns), GroupScope::All);
        // IPv6 to ff02::16 (link-local) and to ff15::1234.
        let v6 = mldv2_join();
        assert_eq!(scope(&v6), GroupScope::All);
        let mut site = mldv2_join();
        site[0..6].copy_from_slice(&GFF15_1234.0);
        site[38..54].copy_from_slice(&[0xff, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34]);
        assert_eq!(scope(&site), GroupScope::Group(GFF15_1234));
        // Broadcast ARP, and an IPv4 header cut short.
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1]);
        assert_eq!(scope(&arp), GroupScope::All);
        assert_eq!(scope(&f[..20]), GroupScope::All);
    }

    #[test]
    fn every_truncation_is_handled() {
        let mut frames = vec![IGMPV3_JOIN.to_vec(), mldv2_join(), igmpv2(IGMP_V2_LEAVE)];
        frames.push(IGMPV3_JOIN.iter().map(|b| b ^ 0xff).collect());
        for f in &frames {
            for n in ETH_MIN..=f.len() {
                let cut = &f[..n];
                let hdr = FrameHeader::parse(cut).unwrap();
                if let Some(Message::Changes(c)) = membership(cut, &hdr) {
                    c.count();
                }
                group_scope(cut, &hdr);
            }
        }
    }

    const ETH_MIN: usize = crate::wire::ETH_HEADER_LEN;
}
