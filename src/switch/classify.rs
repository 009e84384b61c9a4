//! Classification: one frame in, one verdict out, with the kernel macvlan's
//! semantics per mode (drivers/net/macvlan.c) and 802.1Q networks.
//!
//! Where mvdp deliberately differs from the kernel it says so here: a
//! container cannot spoof its source MAC, cannot put a tagged frame onto an
//! untagged network (VLAN hopping), a `private` endpoint never receives from
//! a sibling even through a hairpinning switch (the kernel confines only
//! broadcasts), and a `source` endpoint receives frames addressed to it (or
//! to a group) from an allowed source, not every frame from that source.

use super::fdb::{EndpointEntry, EndpointId, Fdb, Mode, NetworkId};
use super::groups::GroupTable;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::mcast::{self, Changes, GroupScope, Message};
use crate::wire::{FrameError, FrameHeader, MacAddr, ETHERTYPE_QINQ};

/// Why a frame was dropped. Every drop is counted under one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than an Ethernet header, or a truncated 802.1Q tag.
    Malformed = 0,
    /// Unicast from the wire to a MAC no endpoint owns, a VLAN no network owns,
    /// or a group frame nobody may receive.
    NoEndpoint,
    /// An endpoint sent a frame whose source MAC is not its own.
    SpoofedSource,
    /// The destination's TX ring (or TAP queue) had no room.
    TxFull,
    /// The broadcast/multicast queue of the network was full.
    FloodQueueFull,
    /// The destination endpoint is being removed or has vanished.
    EndpointGone,
    /// An endpoint of an untagged network sent an 802.1Q-tagged frame.
    VlanHop,
    /// A `private` endpoint's frame came back from the wire toward a sibling.
    PrivateIsolation,
    /// A `source` endpoint was sent a frame from a source not on its list.
    SourceNotAllowed,
    /// A frame of a `bridge` endpoint came back from the wire: its copies went out already.
    Hairpin,
    /// The sending endpoint is over its rate limit.
    RateLimited,
    /// No free UMEM frame to copy the frame into.
    UmemExhausted,
    /// Longer than a frame can hold: larger than a UMEM frame or the packet
    /// buffer, or too long to take its network's 802.1Q tag.
    TooLong,
    /// A verdict the path that got it cannot act on: a bug, counted instead
    /// of acted on.
    Internal,
    /// On a `mac+ip` network: an IPv4 packet or ARP message whose sender
    /// address is not the endpoint's own, or an IPv6 packet or neighbour
    /// advertisement that claims an address not its own (or link-local).
    IpSpoof,
    /// On a snooping network: a group frame for a group no endpoint joined.
    NoGroupMember,
    /// On a snooping network: a membership report or leave from the wire.
    /// Reports go to routers only (RFC 4541 2.1.1): a container hearing
    /// another host's IGMPv2/MLDv1 report would hold its own back.
    MembershipReport,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 17] = [
        DropReason::Malformed,
        DropReason::NoEndpoint,
        DropReason::SpoofedSource,
        DropReason::TxFull,
        DropReason::FloodQueueFull,
        DropReason::EndpointGone,
        DropReason::VlanHop,
        DropReason::PrivateIsolation,
        DropReason::SourceNotAllowed,
        DropReason::Hairpin,
        DropReason::RateLimited,
        DropReason::UmemExhausted,
        DropReason::TooLong,
        DropReason::Internal,
        DropReason::IpSpoof,
        DropReason::NoGroupMember,
        DropReason::MembershipReport,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoEndpoint => "no_endpoint",
            DropReason::SpoofedSource => "spoofed_source",
            DropReason::TxFull => "tx_full",
            DropReason::FloodQueueFull => "flood_queue_full",
            DropReason::EndpointGone => "endpoint_gone",
            DropReason::VlanHop => "vlan_hop",
            DropReason::PrivateIsolation => "private_isolation",
            DropReason::SourceNotAllowed => "source_not_allowed",
            DropReason::Hairpin => "hairpin",
            DropReason::RateLimited => "rate_limited",
            DropReason::UmemExhausted => "umem_exhausted",
            DropReason::TooLong => "too_long",
            DropReason::Internal => "internal",
            DropReason::IpSpoof => "ip_spoof",
            DropReason::NoGroupMember => "no_group_member",
            DropReason::MembershipReport => "membership_report",
        }
    }
}

impl From<FrameError> for DropReason {
    fn from(_: FrameError) -> Self {
        DropReason::Malformed
    }
}

/// Which endpoints of a network get a copy of a group frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodRule {
    /// From outside the network: every endpoint (in a `source` network only
    /// those that allow this source MAC).
    External(MacAddr),
    /// Every endpoint but this one: a `bridge` endpoint's own frame on its way
    /// out, or a `vepa` endpoint's frame hairpinned back by the wire.
    AllBut(EndpointId),
    /// Back to its sender only: a `private`, `passthru` or `source` endpoint's
    /// frame hairpinned by the wire (the kernel's "forward to original port").
    OnlyTo(EndpointId),
}

/// A group frame to copy to some endpoints of one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flood {
    /// The network whose endpoints may get copies.
    pub network: NetworkId,
    /// Which of them do.
    pub rule: FloodRule,
    /// The frame carries the network's 802.1Q tag: copies go out without it.
    pub untag: bool,
    /// The frame itself also leaves through the parent (tagged with the
    /// network's VID, if it has one).
    pub wire: bool,
    /// A snooped group (by its MAC): only the endpoints that joined it get
    /// copies. `None`: every endpoint the rule names.
    pub group: Option<MacAddr>,
}

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver to one endpoint as it is.
    Endpoint(EndpointId),
    /// Deliver to one endpoint without the frame's outer 802.1Q tag.
    EndpointUntag(EndpointId),
    /// Send out of the parent, with an 802.1Q tag of this VID pushed first if `Some`.
    Wire {
        /// VID to tag with.
        tag: Option<u16>,
    },
    /// Copy to the endpoints the flood names.
    Flood(Flood),
    /// Drop and count.
    Drop(DropReason),
}

/// The delivery verdict for endpoint `id`, untagging a tagged frame.
#[inline]
fn deliver(id: EndpointId, tagged: bool) -> Verdict {
    if tagged {
        Verdict::EndpointUntag(id)
    } else {
        Verdict::Endpoint(id)
    }
}

/// Classifies a frame that arrived from the wire (the parent NIC).
#[inline]
pub fn classify_ingress(fdb: &Fdb, frame: &[u8]) -> Verdict {
    let hdr = match FrameHeader::parse(frame) {
        Ok(h) => h,
        Err(e) => return Verdict::Drop(e.into()),
    };
    let tagged = hdr.vlan.is_some();
    if !hdr.dst.is_multicast() {
        // The fast path: one lookup, and for most networks nothing more.
        if let Some((id, mode)) = fdb.lookup_with_mode(hdr.vlan, hdr.dst) {
            return match mode {
                Mode::Bridge | Mode::Vepa | Mode::Passthru => deliver(id, tagged),
                Mode::Private => match fdb.lookup(hdr.vlan, hdr.src) {
                    Some(from) if from != id => Verdict::Drop(DropReason::PrivateIsolation),
                    _ => deliver(id, tagged),
                },
                Mode::Source => match fdb.endpoint(id) {
                    Some(ep) if ep.allowed_sources.contains(&hdr.src) => deliver(id, tagged),
                    _ => Verdict::Drop(DropReason::SourceNotAllowed),
                },
            };
        }
    }
    let Some(net_id) = fdb.network_on(hdr.vlan) else {
        return Verdict::Drop(DropReason::NoEndpoint);
    };
    let net = fdb.network(net_id);
    if net.mode == Mode::Passthru {
        // The one endpoint takes over everything on the network's VLAN.
        return match net.members.first() {
            Some(&id) => deliver(id, tagged),
            None => Verdict::Drop(DropReason::NoEndpoint),
        };
    }
    if !hdr.dst.is_multicast() {
        return Verdict::Drop(DropReason::NoEndpoint);
    }
    let rule = match fdb.lookup(hdr.vlan, hdr.src) {
        None => FloodRule::External(hdr.src),
        Some(from) => match net.mode {
            Mode::Vepa => FloodRule::AllBut(from),
            // Bridge endpoints saw it on the way out.
            Mode::Bridge => return Verdict::Drop(DropReason::Hairpin),
            Mode::Private | Mode::Passthru | Mode::Source => FloodRule::OnlyTo(from),
        },
    };
    let group = if net.snoop {
        if matches!(mcast::membership(frame, &hdr), Some(Message::Changes(_))) {
            return Verdict::Drop(DropReason::MembershipReport);
        }
        snooped_group(frame, &hdr)
    } else {
        None
    };
    Verdict::Flood(Flood {
        network: net_id,
        rule,
        untag: tagged,
        wire: false,
        group,
    })
}

/// The group a frame on a snooping network is kept to, if any.
#[inline]
fn snooped_group(frame: &[u8], hdr: &FrameHeader) -> Option<MacAddr> {
    match mcast::group_scope(frame, hdr) {
        GroupScope::Group(g) => Some(g),
        GroupScope::All => None,
    }
}

/// The group changes in a frame endpoint `from` sent, when its network
/// snoops and the frame is an IGMP or MLD report or leave.
pub fn snoop_egress<'a>(fdb: &Fdb, from: EndpointId, frame: &'a [u8]) -> Option<Changes<'a>> {
    let hdr = FrameHeader::parse(frame).ok()?;
    if !hdr.dst.is_multicast() {
        return None;
    }
    let net = fdb.network(fdb.endpoint(from)?.network);
    if !net.snoop || net.mode == Mode::Passthru {
        return None;
    }
    match mcast::membership(frame, &hdr)? {
        Message::Changes(c) => Some(c),
        Message::Query => None,
    }
}

/// The snooping network a membership query from the wire was seen on.
pub fn snoop_query(fdb: &Fdb, frame: &[u8]) -> Option<NetworkId> {
    let hdr = FrameHeader::parse(frame).ok()?;
    if !hdr.dst.is_multicast() {
        return None;
    }
    let id = fdb.network_on(hdr.vlan)?;
    let is_query = matches!(mcast::membership(frame, &hdr), Some(Message::Query));
    (fdb.network(id).snoop && is_query).then_some(id)
}

/// The endpoint a frame from the wire was addressed to when
/// [`classify_ingress`] dropped it for that endpoint's sake (`private`
/// isolation, a source a `source` endpoint does not allow); `None` for drops
/// no single endpoint owns. A second parse and lookup, on the drop path only.
pub fn ingress_drop_endpoint(fdb: &Fdb, frame: &[u8], reason: DropReason) -> Option<EndpointId> {
    match reason {
        DropReason::PrivateIsolation | DropReason::SourceNotAllowed => {
            let hdr = FrameHeader::parse(frame).ok()?;
            fdb.lookup(hdr.vlan, hdr.dst)
        }
        _ => None,
    }
}

/// IPv4 and ARP ethertypes.
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
/// Offset of the source address in an IPv4 header.
const IPV4_SRC: usize = 12;
/// Offsets in an Ethernet/IPv4 ARP message: hardware type, protocol type,
/// the two address lengths, then the sender's hardware and protocol addresses.
const ARP_HTYPE: usize = 0;
const ARP_PTYPE: usize = 2;
const ARP_HLEN: usize = 4;
const ARP_PLEN: usize = 5;
const ARP_SHA: usize = 8;
const ARP_SPA: usize = 14;
const ARP_LEN: usize = 28;

/// The IPv6 ethertype; the source's offset in an IPv6 header; the ICMPv6
/// type of a neighbour advertisement.
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPV6_SRC: usize = 8;
const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// ICMPv6 types only a router sends: a router advertisement, a redirect.
const ICMPV6_ROUTER_ADVERTISEMENT: u8 = 134;
const ICMPV6_REDIRECT: u8 = 137;
/// The target address of a neighbour advertisement, from the ICMPv6 header.
const NA_TARGET: usize = 8;

/// Reads 16 bytes at `at` as an IPv6 address.
fn ipv6_at(bytes: &[u8], at: usize) -> Option<Ipv6Addr> {
    let b: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

/// `anti_spoof = "mac+ip"` for IPv6: the source must be the endpoint's
/// address, a link-local one (every interface has its own; they are not
/// checked) or unspecified (duplicate address detection); a neighbour
/// advertisement may only claim the endpoint's own or a link-local target,
/// the IPv6 twin of an ARP reply.
fn check_sender_ipv6(payload: &[u8], own: Ipv6Addr) -> Result<(), DropReason> {
    let allowed = |ip: Ipv6Addr| ip == own || ip.is_unicast_link_local() || ip.is_unspecified();
    let src = ipv6_at(payload, IPV6_SRC).ok_or(DropReason::Malformed)?;
    if !allowed(src) {
        return Err(DropReason::IpSpoof);
    }
    // Behind any extension headers: an advertisement there counts the same.
    let Some(upper) = crate::wire::ipv6::upper_layer(payload) else {
        // A later fragment (its first was checked) or headers cut short.
        return Ok(());
    };
    if upper.protocol == crate::wire::ipv6::NH_ICMPV6
        && upper.bytes.first() == Some(&ICMPV6_NEIGHBOR_ADVERTISEMENT)
    {
        // RFC 6980: neighbour discovery is never fragmented.
        if upper.fragmented {
            return Err(DropReason::IpSpoof);
        }
        let target = ipv6_at(upper.bytes, NA_TARGET).ok_or(DropReason::Malformed)?;
        if !allowed(target) || target.is_unspecified() {
            return Err(DropReason::IpSpoof);
        }
    }
    Ok(())
}

/// Whether an IPv6 packet is a router's claim: a router advertisement or a
/// redirect (RA guard, RFC 6105, on every container's port: a container
/// that sends one could make itself the LAN's IPv6 router). Behind any
/// extension headers; a later fragment has no ICMPv6 header to judge.
fn claims_router(payload: &[u8]) -> bool {
    crate::wire::ipv6::upper_layer(payload).is_some_and(|upper| {
        upper.protocol == crate::wire::ipv6::NH_ICMPV6
            && matches!(
                upper.bytes.first(),
                Some(&(ICMPV6_ROUTER_ADVERTISEMENT | ICMPV6_REDIRECT))
            )
    })
}

/// `anti_spoof = "mac+ip"`: an IPv4 packet's source, or an ARP message's
/// sender MAC and address, must be the endpoint's own (0.0.0.0 claims
/// nobody's address: DHCP clients, ARP probes); IPv6 as
/// [`check_sender_ipv6`] says, and never a router's advertisement or
/// redirect. Other ethertypes pass.
fn check_sender_ip(frame: &[u8], hdr: &FrameHeader, me: &EndpointEntry) -> Result<(), DropReason> {
    let payload = &frame[hdr.payload_offset.min(frame.len())..];
    if hdr.ethertype == ETHERTYPE_IPV6 && claims_router(payload) {
        return Err(DropReason::IpSpoof);
    }
    let Some(own) = me.ip else {
        return Ok(());
    };
    let claimed = match hdr.ethertype {
        ETHERTYPE_IPV6 => {
            return match me.ip6 {
                Some(own6) => check_sender_ipv6(payload, own6),
                // No IPv6 address of its own (an IPv4-only network, where
                // the LAN's router may still hand out SLAAC addresses).
                None => Ok(()),
            };
        }
        ETHERTYPE_IPV4 => {
            let src = payload
                .get(IPV4_SRC..IPV4_SRC + 4)
                .ok_or(DropReason::Malformed)?;
            Ipv4Addr::new(src[0], src[1], src[2], src[3])
        }
        ETHERTYPE_ARP => {
            let arp = payload.get(..ARP_LEN).ok_or(DropReason::Malformed)?;
            let ethernet_ipv4 = arp[ARP_HTYPE..ARP_HTYPE + 2] == [0, 1]
                && arp[ARP_PTYPE..ARP_PTYPE + 2] == [0x08, 0x00]
                && arp[ARP_HLEN] == 6
                && arp[ARP_PLEN] == 4;
            if !ethernet_ipv4 {
                return Err(DropReason::IpSpoof);
            }
            if arp[ARP_SHA..ARP_SHA + 6] != hdr.src.0 {
                return Err(DropReason::IpSpoof);
            }
            let spa = &arp[ARP_SPA..ARP_SPA + 4];
            Ipv4Addr::new(spa[0], spa[1], spa[2], spa[3])
        }
        _ => return Ok(()),
    };
    if claimed == own || claimed.is_unspecified() {
        Ok(())
    } else {
        Err(DropReason::IpSpoof)
    }
}

/// Classifies a frame that endpoint `from` sent (container egress).
#[inline]
pub fn classify_egress(fdb: &Fdb, from: EndpointId, frame: &[u8]) -> Verdict {
    let hdr = match FrameHeader::parse(frame) {
        Ok(h) => h,
        Err(e) => return Verdict::Drop(e.into()),
    };
    let Some(me) = fdb.endpoint(from) else {
        return Verdict::Drop(DropReason::EndpointGone);
    };
    if hdr.src != me.mac {
        return Verdict::Drop(DropReason::SpoofedSource);
    }
    let net = fdb.network(me.network);
    // A tag of the container's own (802.1Q, or an 802.1ad service tag): on
    // an untagged network it would land on whichever network owns that
    // VLAN; on a VLAN network, under the network's tag, it is double
    // tagging, which a switch that strips the outer tag turns into a hop.
    // Only a VLAN network that allows it carries it (under its own tag).
    let tagged = hdr.vlan.is_some() || hdr.ethertype == ETHERTYPE_QINQ;
    if tagged && (net.vlan.is_none() || !net.allow_inner_tags) {
        return Verdict::Drop(DropReason::VlanHop);
    }
    if net.anti_spoof_ip {
        if let Err(reason) = check_sender_ip(frame, &hdr, me) {
            return Verdict::Drop(reason);
        }
    }
    let to_wire = Verdict::Wire { tag: net.vlan };
    if net.mode != Mode::Bridge {
        // private, vepa, passthru, source: everything goes to the wire.
        return to_wire;
    }
    if hdr.dst.is_multicast() {
        let group = if net.snoop {
            // Reports and leaves go to the routers (the wire) only (RFC 4541 2.1.1).
            if matches!(mcast::membership(frame, &hdr), Some(Message::Changes(_))) {
                return to_wire;
            }
            snooped_group(frame, &hdr)
        } else {
            None
        };
        return Verdict::Flood(Flood {
            network: me.network,
            rule: FloodRule::AllBut(from),
            untag: false,
            wire: true,
            group,
        });
    }
    match fdb.lookup(net.vlan, hdr.dst) {
        Some(to) if to != from && fdb.endpoint(to).is_some_and(|e| e.network == me.network) => {
            Verdict::Endpoint(to)
        }
        _ => to_wire,
    }
}

/// Calls `f` for every endpoint that gets a copy of `flood`: for a
/// snooped group, only those `groups` lists as its members (and the FDB
/// still holds on the network). A frame hairpinned back to its sender
/// (`OnlyTo`) reaches it member or not, as with the kernel's macvlan.
#[inline]
pub fn flood_targets(fdb: &Fdb, groups: &GroupTable, flood: &Flood, mut f: impl FnMut(EndpointId)) {
    let net = fdb.network(flood.network);
    let candidates = match (flood.group, flood.rule) {
        (_, FloodRule::OnlyTo(id)) => return f(id),
        (Some(g), _) => groups.members(flood.network, g),
        (None, _) => &net.members,
    };
    let on_net = |m: EndpointId| {
        flood.group.is_none() || fdb.endpoint(m).is_some_and(|e| e.network == flood.network)
    };
    match flood.rule {
        FloodRule::OnlyTo(_) => {}
        FloodRule::AllBut(except) => candidates
            .iter()
            .filter(|&&m| m != except && on_net(m))
            .for_each(|&m| f(m)),
        FloodRule::External(src) => {
            for &m in candidates.iter().filter(|&&m| on_net(m)) {
                let allowed = net.mode != Mode::Source
                    || fdb
                        .endpoint(m)
                        .is_some_and(|e| e.allowed_sources.contains(&src));
                if allowed {
                    f(m);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::fdb::{EndpointEntry, FdbError, NetworkEntry};
    use crate::wire::ipv6::{
        IPV6_HLEN as IPV6_HEADER_LEN, IPV6_NEXT as IPV6_NEXT_HEADER,
        NH_ICMPV6 as NEXT_HEADER_ICMPV6,
    };

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x02, 0x42, 10, 77, 0, last])
    }

    const WIRE_HOST: MacAddr = MacAddr([0x02, 0x42, 10, 77, 0, 1]);
    const GROUP: MacAddr = MacAddr([0x01, 0x00, 0x5e, 0, 0, 0xfb]);

    fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0u8; 46]);
        f
    }

    fn tagged(dst: MacAddr, src: MacAddr, vid: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&vid.to_be_bytes());
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0u8; 42]);
        f
    }

    /// One network "n" in `mode` (untagged) with endpoints .11 and .12, and a
    /// bridge network "v50" on VLAN 50 with .21 and .22.
    fn fdb(mode: Mode) -> Fdb {
        let nets = vec![
            NetworkEntry::new("n", None, mode),
            NetworkEntry::new("v50", Some(50), Mode::Bridge),
        ];
        let eps = [(11, 0), (12, 0), (21, 1), (22, 1)]
            .iter()
            .map(|&(last, net)| {
                let mut e = EndpointEntry::new(format!("e{last}"), mac(last), NetworkId(net));
                e.allowed_sources = vec![WIRE_HOST];
                Some(e)
            })
            .collect();
        Fdb::new(nets, eps).unwrap()
    }

    /// An ARP reply from `src` with sender MAC `sha` claiming `sender`.
    fn arp_from(src: MacAddr, sha: MacAddr, sender: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
        f.extend_from_slice(&sha.0);
        f.extend_from_slice(&sender);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&[10, 0, 0, 9]);
        f.resize(60, 0);
        f
    }

    /// An IPv4 packet from `src` with source address `sender`.
    fn ipv4_from(src: MacAddr, sender: [u8; 4]) -> Vec<u8> {
        let mut f = frame(WIRE_HOST, src);
        f[14] = 0x45;
        f[14 + IPV4_SRC..14 + IPV4_SRC + 4].copy_from_slice(&sender);
        f
    }

    #[test]
    fn mac_ip_anti_spoofing_checks_ipv4_and_arp_senders() {
        let fdb = fdb_with_ip_check(true);
        let e1 = EndpointId(0);
        let wire = Verdict::Wire { tag: None };
        let bcast = |v: Verdict| matches!(v, Verdict::Flood(_));
        assert_eq!(
            classify_egress(&fdb, e1, &ipv4_from(mac(1), [10, 0, 0, 1])),
            wire
        );
        assert_eq!(
            classify_egress(&fdb, e1, &ipv4_from(mac(1), [10, 0, 0, 2])),
            Verdict::Drop(DropReason::IpSpoof)
        );
        // A DHCP client has no address yet.
        assert_eq!(classify_egress(&fdb, e1, &ipv4_from(mac(1), [0; 4])), wire);
        assert!(bcast(classify_egress(
            &fdb,
            e1,
            &arp_from(mac(1), mac(1), [10, 0, 0, 1])
        )));
        // ARP spoofing: claiming a neighbour's address, or another MAC inside.
        assert_eq!(
            classify_egress(&fdb, e1, &arp_from(mac(1), mac(1), [10, 0, 0, 9])),
            Verdict::Drop(DropReason::IpSpoof)
        );
        assert_eq!(
            classify_egress(&fdb, e1, &arp_from(mac(1), mac(7), [10, 0, 0, 1])),
            Verdict::Drop(DropReason::IpSpoof)
        );
        // An ARP probe (RFC 5227) claims nothing.
        assert!(bcast(classify_egress(
            &fdb,
            e1,
            &arp_from(mac(1), mac(1), [0; 4])
        )));
        // Truncated headers are malformed, not passed unchecked.
        let mut short = ipv4_from(mac(1), [10, 0, 0, 2]);
        short.truncate(14 + 8);
        assert_eq!(
            classify_egress(&fdb, e1, &short),
            Verdict::Drop(DropReason::Malformed)
        );
        // On a "mac" network the same spoofed packet passes (MAC checked only).
        let plain = fdb_with_ip_check(false);
        assert_eq!(
            classify_egress(&plain, e1, &ipv4_from(mac(1), [10, 0, 0, 2])),
            wire
        );
    }

    /// One bridge network checking IPv4/ARP senders (`on`) or not, with e1
    /// at 10.0.0.1 and fd00::1.
    fn fdb_with_ip_check(on: bool) -> Fdb {
        let mut n = NetworkEntry::new("n", None, Mode::Bridge);
        n.anti_spoof_ip = on;
        let mut e = EndpointEntry::new("e1", mac(1), NetworkId(0));
        e.ip = Some(Ipv4Addr::new(10, 0, 0, 1));
        e.ip6 = Some("fd00::1".parse().unwrap());
        Fdb::new(vec![n], vec![Some(e)]).unwrap()
    }

    /// An IPv6 packet from `src` with source `sender`; with `na_target`, an
    /// ICMPv6 neighbour advertisement for that target.
    fn ipv6_from(src: MacAddr, sender: &str, na_target: Option<&str>) -> Vec<u8> {
        let mut f = frame(WIRE_HOST, src);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f.resize(14 + IPV6_HEADER_LEN + 24, 0);
        f[14] = 0x60;
        let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap().octets();
        f[14 + IPV6_SRC..14 + IPV6_SRC + 16].copy_from_slice(&ip(sender));
        if let Some(target) = na_target {
            f[14 + IPV6_NEXT_HEADER] = NEXT_HEADER_ICMPV6;
            let icmp = 14 + IPV6_HEADER_LEN;
            f[icmp] = ICMPV6_NEIGHBOR_ADVERTISEMENT;
            f[icmp + NA_TARGET..icmp + NA_TARGET + 16].copy_from_slice(&ip(target));
        }
        f
    }

    #[test]
    fn mac_ip_anti_spoofing_checks_ipv6_sources_and_advertised_targets() {
        let fdb = fdb_with_ip_check(true);
        let e1 = EndpointId(0);
        let wire = Verdict::Wire { tag: None };
        let spoof = Verdict::Drop(DropReason::IpSpoof);
        let check = |sender, target| classify_egress(&fdb, e1, &ipv6_from(mac(1), sender, target));
        assert_eq!(check("fd00::1", None), wire);
        assert_eq!(check("fe80::42:aff:fe00:1", None), wire);
        // Duplicate address detection sends from the unspecified address.
        assert_eq!(check("::", None), wire);
        assert_eq!(check("fd00::2", None), spoof);
        assert_eq!(check("fd00::1", Some("fd00::1")), wire);
        assert_eq!(check("fe80::1", Some("fe80::1")), wire);
        // Neighbour-advertisement spoofing: claiming a neighbour's address.
        assert_eq!(check("fe80::1", Some("fd00::2")), spoof);
        assert_eq!(check("fd00::1", Some("::")), spoof);
        let mut short = ipv6_from(mac(1), "fd00::1", Some("fd00::1"));
        short.truncate(14 + IPV6_HEADER_LEN + 12);
        assert_eq!(
            classify_egress(&fdb, e1, &short),
            Verdict::Drop(DropReason::Malformed)
        );
        // The same advertisement behind a hop-by-hop header, or fragmented.
        let mut hidden = ipv6_from(mac(1), "fe80::1", Some("fd00::2"));
        let icmp = 14 + IPV6_HEADER_LEN;
        hidden[14 + IPV6_NEXT_HEADER] = 0;
        hidden.splice(icmp..icmp, [NEXT_HEADER_ICMPV6, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(classify_egress(&fdb, e1, &hidden), spoof);
        let mut fragment = ipv6_from(mac(1), "fe80::1", Some("fe80::1"));
        fragment[14 + IPV6_NEXT_HEADER] = 44;
        fragment.splice(icmp..icmp, [NEXT_HEADER_ICMPV6, 0, 0, 1, 0, 0, 0, 9]);
        assert_eq!(classify_egress(&fdb, e1, &fragment), spoof);
        let plain = fdb_with_ip_check(false);
        assert_eq!(
            classify_egress(&plain, e1, &ipv6_from(mac(1), "fd00::2", None)),
            wire
        );
    }

    #[test]
    fn mac_ip_anti_spoofing_stops_router_advertisements_and_redirects() {
        let fdb = fdb_with_ip_check(true);
        let e1 = EndpointId(0);
        let icmp = 14 + IPV6_HEADER_LEN;
        let of_type = |t: u8| {
            let mut f = ipv6_from(mac(1), "fe80::42:aff:fe00:1", Some("fe80::1"));
            f[icmp] = t;
            f
        };
        let spoof = Verdict::Drop(DropReason::IpSpoof);
        assert_eq!(classify_egress(&fdb, e1, &of_type(134)), spoof);
        assert_eq!(classify_egress(&fdb, e1, &of_type(137)), spoof);
        // Behind a hop-by-hop header too.
        let mut hidden = of_type(134);
        hidden[14 + IPV6_NEXT_HEADER] = 0;
        hidden.splice(icmp..icmp, [NEXT_HEADER_ICMPV6, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(classify_egress(&fdb, e1, &hidden), spoof);
        // A router solicitation is a host's, and passes; so does anything
        // on a network that does not check.
        let wire = Verdict::Wire { tag: None };
        assert_eq!(classify_egress(&fdb, e1, &of_type(133)), wire);
        let plain = fdb_with_ip_check(false);
        assert_eq!(classify_egress(&plain, e1, &of_type(134)), wire);
        // With no address of its own yet (a DHCP network before its
        // lease, an IPv4-only network): still no router's claims.
        let mut n = NetworkEntry::new("n", None, Mode::Bridge);
        n.anti_spoof_ip = true;
        let bare = Fdb::new(
            vec![n],
            vec![Some(EndpointEntry::new("e1", mac(1), NetworkId(0)))],
        )
        .unwrap();
        assert_eq!(classify_egress(&bare, e1, &of_type(134)), spoof);
        assert_eq!(classify_egress(&bare, e1, &of_type(133)), wire);
    }

    const E11: EndpointId = EndpointId(0);
    const E12: EndpointId = EndpointId(1);
    const E21: EndpointId = EndpointId(2);
    const E22: EndpointId = EndpointId(3);

    fn targets(fdb: &Fdb, v: Verdict) -> Vec<EndpointId> {
        let Verdict::Flood(f) = v else {
            panic!("not a flood: {v:?}")
        };
        let mut out = Vec::new();
        flood_targets(fdb, &GroupTable::default(), &f, |id| out.push(id));
        out
    }

    #[test]
    fn wire_unicast_goes_to_its_endpoint_only() {
        let fdb = fdb(Mode::Bridge);
        assert_eq!(
            classify_ingress(&fdb, &frame(mac(12), WIRE_HOST)),
            Verdict::Endpoint(E12)
        );
        assert_eq!(
            classify_ingress(&fdb, &frame(mac(99), WIRE_HOST)),
            Verdict::Drop(DropReason::NoEndpoint)
        );
    }

    #[test]
    fn vlans_never_leak() {
        let fdb = fdb(Mode::Bridge);
        // Tagged for its VLAN: delivered without the tag.
        assert_eq!(
            classify_ingress(&fdb, &tagged(mac(21), WIRE_HOST, 50)),
            Verdict::EndpointUntag(E21)
        );
        // Untagged, or tagged for another VLAN: not delivered.
        assert_eq!(
            classify_ingress(&fdb, &frame(mac(21), WIRE_HOST)),
            Verdict::Drop(DropReason::NoEndpoint)
        );
        assert_eq!(
            classify_ingress(&fdb, &tagged(mac(21), WIRE_HOST, 51)),
            Verdict::Drop(DropReason::NoEndpoint)
        );
        assert_eq!(
            classify_ingress(&fdb, &tagged(mac(11), WIRE_HOST, 50)),
            Verdict::Drop(DropReason::NoEndpoint)
        );
        // Broadcast tagged for VLAN 50 reaches that network only, untagged.
        let v = classify_ingress(&fdb, &tagged(MacAddr::BROADCAST, WIRE_HOST, 50));
        assert!(matches!(v, Verdict::Flood(Flood { untag: true, .. })));
        assert_eq!(targets(&fdb, v), vec![E21, E22]);
        let v = classify_ingress(&fdb, &frame(MacAddr::BROADCAST, WIRE_HOST));
        assert_eq!(targets(&fdb, v), vec![E11, E12]);
        assert_eq!(
            classify_ingress(&fdb, &tagged(MacAddr::BROADCAST, WIRE_HOST, 7)),
            Verdict::Drop(DropReason::NoEndpoint)
        );
        // Egress of a VLAN network is tagged; a tagged frame from an untagged network is a hop attempt.
        assert_eq!(
            classify_egress(&fdb, E21, &frame(WIRE_HOST, mac(21))),
            Verdict::Wire { tag: Some(50) }
        );
        assert_eq!(
            classify_egress(&fdb, E21, &frame(mac(22), mac(21))),
            Verdict::Endpoint(E22)
        );
        assert_eq!(
            classify_egress(&fdb, E11, &tagged(WIRE_HOST, mac(11), 50)),
            Verdict::Drop(DropReason::VlanHop)
        );
        // Double tagging on a VLAN network is a hop too, unless the network allows it.
        assert_eq!(
            classify_egress(&fdb, E21, &tagged(WIRE_HOST, mac(21), 9)),
            Verdict::Drop(DropReason::VlanHop)
        );
        let mut qinq = frame(WIRE_HOST, mac(11));
        qinq[12..14].copy_from_slice(&ETHERTYPE_QINQ.to_be_bytes());
        assert_eq!(
            classify_egress(&fdb, E11, &qinq),
            Verdict::Drop(DropReason::VlanHop),
            "an 802.1ad service tag from an untagged network"
        );
    }

    #[test]
    fn runts_are_malformed() {
        let fdb = fdb(Mode::Bridge);
        assert_eq!(
            classify_ingress(&fdb, &[0xff; 13]),
            Verdict::Drop(DropReason::Malformed)
        );
        assert_eq!(
            classify_egress(&fdb, E11, &[0x02; 5]),
            Verdict::Drop(DropReason::Malformed)
        );
    }

    #[test]
    fn egress_spoofed_source_is_dropped_in_every_mode() {
        for mode in [
            Mode::Bridge,
            Mode::Private,
            Mode::Vepa,
            Mode::Passthru,
            Mode::Source,
        ] {
            let fdb = fdb(mode);
            assert_eq!(
                classify_egress(&fdb, E11, &frame(WIRE_HOST, mac(12))),
                Verdict::Drop(DropReason::SpoofedSource),
                "{mode:?}"
            );
        }
    }

    #[test]
    fn bridge_switches_locally_and_floods_its_own() {
        let fdb = fdb(Mode::Bridge);
        assert_eq!(
            classify_egress(&fdb, E11, &frame(mac(12), mac(11))),
            Verdict::Endpoint(E12)
        );
        assert_eq!(
            classify_egress(&fdb, E11, &frame(WIRE_HOST, mac(11))),
            Verdict::Wire { tag: None }
        );
        assert_eq!(
            classify_egress(&fdb, E11, &frame(mac(11), mac(11))),
            Verdict::Wire { tag: None }
        );
        let v = classify_egress(&fdb, E12, &frame(MacAddr::BROADCAST, mac(12)));
        assert!(matches!(v, Verdict::Flood(Flood { wire: true, .. })));
        assert_eq!(targets(&fdb, v), vec![E11]);
        // Its own broadcast hairpinned back by the wire: already delivered.
        assert_eq!(
            classify_ingress(&fdb, &frame(MacAddr::BROADCAST, mac(12))),
            Verdict::Drop(DropReason::Hairpin)
        );
    }

    #[test]
    fn private_and_vepa_send_everything_to_the_wire() {
        for mode in [Mode::Private, Mode::Vepa] {
            let fdb = fdb(mode);
            assert_eq!(
                classify_egress(&fdb, E11, &frame(mac(12), mac(11))),
                Verdict::Wire { tag: None }
            );
            assert_eq!(
                classify_egress(&fdb, E11, &frame(MacAddr::BROADCAST, mac(11))),
                Verdict::Wire { tag: None }
            );
        }
    }

    #[test]
    fn vepa_takes_hairpinned_frames_back() {
        let fdb = fdb(Mode::Vepa);
        assert_eq!(
            classify_ingress(&fdb, &frame(mac(12), mac(11))),
            Verdict::Endpoint(E12)
        );
        let v = classify_ingress(&fdb, &frame(MacAddr::BROADCAST, mac(11)));
        assert_eq!(targets(&fdb, v), vec![E12]);
    }

    #[test]
    fn private_never_reaches_a_sibling() {
        let fdb = fdb(Mode::Private);
        // Hairpinned unicast from a sibling: dropped (stricter than the kernel).
        assert_eq!(
            classify_ingress(&fdb, &frame(mac(12), mac(11))),
            Verdict::Drop(DropReason::PrivateIsolation)
        );
        // Hairpinned broadcast: back to its sender only, as the kernel does.
        let v = classify_ingress(&fdb, &frame(MacAddr::BROADCAST, mac(11)));
        assert_eq!(targets(&fdb, v), vec![E11]);
        // From outside: everyone.
        assert_eq!(
            classify_ingress(&fdb, &frame(mac(12), WIRE_HOST)),
            Verdict::Endpoint(E12)
        );
        let v = classify_ingress(&fdb, &frame(MacAddr::BROADCAST, WIRE_HOST));
        assert_eq!(targets(&fdb, v), vec![E11, E12]);
    }

    /// The drops `classify_ingress` makes for an endpoint's sake name it; the
    /// others name nobody.
    #[test]
    fn ingress_drops_name_the_endpoint_they_protect() {
        let private = fdb(Mode::Private);
        let hairpinned = frame(mac(12), mac(11));
        let Verdict::Drop(r) = classify_ingress(&private, &hairpinned) else {
            panic!("not dropped")
        };
        assert_eq!(ingress_drop_endpoint(&private, &hairpinned, r), Some(E12));
        let source = fdb(Mode::Source);
        let stranger = frame(mac(11), mac(99));
        let Verdict::Drop(r) = classify_ingress(&source, &stranger) else {
            panic!("not dropped")
        };
        assert_eq!(ingress_drop_endpoint(&source, &stranger, r), Some(E11));
        let unknown = frame(mac(99), WIRE_HOST);
        assert_eq!(
            classify_ingress(&private, &unknown),
            Verdict::Drop(DropReason::NoEndpoint)
        );
        assert_eq!(
            ingress_drop_endpoint(&private, &unknown, DropReason::NoEndpoint),
            None
        );
        assert_eq!(
            ingress_drop_endpoint(&private, &[0u8; 6], DropReason::PrivateIsolation),
            None
        );
    }

    #[test]
    fn source_mode_filters_by_source() {
        let fdb = fdb(Mode::Source);
        assert_eq!(
            classify_ingress(&fdb, &frame(mac(12), WIRE_HOST)),
            Verdict::Endpoint(E12)
        );
        assert_eq!(
            classify_ingress(&fdb, &frame(mac(12), mac(99))),
            Verdict::Drop(DropReason::SourceNotAllowed)
        );
        let v = classify_ingress(&fdb, &frame(GROUP, WIRE_HOST));
        assert_eq!(targets(&fdb, v), vec![E11, E12]);
        let v = classify_ingress(&fdb, &frame(GROUP, mac(99)));
        assert_eq!(targets(&fdb, v), Vec::<EndpointId>::new());
    }

    #[test]
    fn passthru_takes_everything_on_its_vlan() {
        let nets = vec![NetworkEntry::new("pt", None, Mode::Passthru)];
        let eps = vec![Some(EndpointEntry::new("only", mac(11), NetworkId(0)))];
        let fdb = Fdb::new(nets, eps).unwrap();
        for dst in [mac(11), mac(99), WIRE_HOST, MacAddr::BROADCAST, GROUP] {
            assert_eq!(
                classify_ingress(&fdb, &frame(dst, mac(50))),
                Verdict::Endpoint(E11),
                "{dst}"
            );
        }
        assert_eq!(
            classify_ingress(&fdb, &tagged(mac(11), mac(50), 5)),
            Verdict::Drop(DropReason::NoEndpoint)
        );
        assert_eq!(
            classify_egress(&fdb, E11, &frame(mac(50), mac(11))),
            Verdict::Wire { tag: None }
        );
    }

    /// An IPv4 frame from `src` to IP group `group` (at its group MAC),
    /// IGMP (`igmp`: the message type) or UDP.
    fn to_group(src: MacAddr, group: [u8; 4], igmp: Option<u8>) -> Vec<u8> {
        let dst = mcast::ipv4_group_mac(group.into());
        let mut f = frame(dst, src);
        f[14] = 0x45;
        f[14 + 9] = if igmp.is_some() { 2 } else { 17 };
        f[14 + 16..14 + 20].copy_from_slice(&group);
        if let Some(kind) = igmp {
            f[34] = kind;
            f[38..42].copy_from_slice(&group);
        }
        f
    }

    /// `fdb(Bridge)` with network "n" snooping.
    fn snooping() -> Fdb {
        let mut nets = fdb(Mode::Bridge).networks().to_vec();
        nets[0].snoop = true;
        Fdb::new(nets, fdb(Mode::Bridge).slots().to_vec()).unwrap()
    }

    /// Membership of e12 in 239.1.2.3 on network "n".
    fn e12_joined(fdb: &Fdb) -> GroupTable {
        let mut m = crate::switch::Memberships::new(None);
        let g = mcast::ipv4_group_mac([239, 1, 2, 3].into());
        m.apply(
            fdb,
            crate::switch::SnoopEvent::Join(E12, g),
            std::time::Instant::now(),
        );
        m.snapshot()
    }

    fn group_targets(fdb: &Fdb, groups: &GroupTable, v: Verdict) -> Vec<EndpointId> {
        let Verdict::Flood(f) = v else {
            panic!("not a flood: {v:?}")
        };
        let mut out = Vec::new();
        flood_targets(fdb, groups, &f, |id| out.push(id));
        out
    }

    #[test]
    fn snooped_groups_reach_members_only() {
        let fdb = snooping();
        let joined = e12_joined(&fdb);
        let none = GroupTable::default();
        // From the wire: the member, or nobody.
        let v = classify_ingress(&fdb, &to_group(WIRE_HOST, [239, 1, 2, 3], None));
        assert_eq!(group_targets(&fdb, &joined, v), vec![E12]);
        assert_eq!(group_targets(&fdb, &none, v), Vec::<EndpointId>::new());
        // Another group that shares nothing with it: nobody.
        let v = classify_ingress(&fdb, &to_group(WIRE_HOST, [239, 1, 2, 4], None));
        assert_eq!(group_targets(&fdb, &joined, v), Vec::<EndpointId>::new());
        // Link-local groups and broadcast: everyone, member or not.
        let v = classify_ingress(&fdb, &to_group(WIRE_HOST, [224, 0, 0, 251], None));
        assert_eq!(group_targets(&fdb, &none, v), vec![E11, E12]);
        let v = classify_ingress(&fdb, &frame(MacAddr::BROADCAST, WIRE_HOST));
        assert_eq!(group_targets(&fdb, &none, v), vec![E11, E12]);
        // A sibling's group frame: to the members but the sender, and the wire.
        let v = classify_egress(&fdb, E11, &to_group(mac(11), [239, 1, 2, 3], None));
        assert!(matches!(v, Verdict::Flood(Flood { wire: true, .. })));
        assert_eq!(group_targets(&fdb, &joined, v), vec![E12]);
        let v = classify_egress(&fdb, E12, &to_group(mac(12), [239, 1, 2, 3], None));
        assert_eq!(group_targets(&fdb, &joined, v), Vec::<EndpointId>::new());
        // A flood network ignores the table.
        let flood = self::fdb(Mode::Bridge);
        let v = classify_ingress(&flood, &to_group(WIRE_HOST, [239, 1, 2, 3], None));
        assert_eq!(group_targets(&flood, &none, v), vec![E11, E12]);
    }

    #[test]
    fn membership_reports_are_snooped_and_go_to_the_wire_only() {
        let fdb = snooping();
        let report = to_group(mac(11), [239, 1, 2, 3], Some(0x16));
        let changes: Vec<_> = snoop_egress(&fdb, E11, &report).unwrap().collect();
        assert_eq!(changes.len(), 1);
        assert!(changes[0].join);
        // Not copied to the siblings (RFC 4541 2.1.1), only to the routers.
        assert_eq!(
            classify_egress(&fdb, E11, &report),
            Verdict::Wire { tag: None }
        );
        // Another host's report from the wire reaches no container.
        let theirs = to_group(WIRE_HOST, [239, 1, 2, 3], Some(0x16));
        assert_eq!(
            classify_ingress(&fdb, &theirs),
            Verdict::Drop(DropReason::MembershipReport)
        );
        // Queries from the wire reach every container and are noted.
        let query = to_group(WIRE_HOST, [224, 0, 0, 1], Some(0x11));
        assert_eq!(snoop_query(&fdb, &query), Some(NetworkId(0)));
        let v = classify_ingress(&fdb, &query);
        assert_eq!(
            group_targets(&fdb, &GroupTable::default(), v),
            vec![E11, E12]
        );
        // Nothing is snooped on a flood network; its reports flood as before.
        let flood = self::fdb(Mode::Bridge);
        assert!(snoop_egress(&flood, E11, &report).is_none());
        assert_eq!(snoop_query(&flood, &query), None);
        assert!(matches!(
            classify_egress(&flood, E11, &report),
            Verdict::Flood(_)
        ));
    }

    #[test]
    fn removed_endpoint_is_gone() {
        let nets = vec![NetworkEntry::new("n", None, Mode::Bridge)];
        let eps = vec![None, Some(EndpointEntry::new("b", mac(12), NetworkId(0)))];
        let fdb = Fdb::new(nets, eps).unwrap();
        assert_eq!(
            classify_egress(&fdb, E11, &frame(WIRE_HOST, mac(11))),
            Verdict::Drop(DropReason::EndpointGone)
        );
    }

    #[test]
    fn duplicate_mac_or_vlan_is_refused() {
        let nets = vec![NetworkEntry::new("n", None, Mode::Bridge)];
        let eps = vec![
            Some(EndpointEntry::new("a", mac(1), NetworkId(0))),
            None,
            Some(EndpointEntry::new("b", mac(1), NetworkId(0))),
        ];
        assert!(matches!(
            Fdb::new(nets, eps),
            Err(FdbError::DuplicateMac { .. })
        ));
        let nets = vec![
            NetworkEntry::new("a", Some(5), Mode::Bridge),
            NetworkEntry::new("b", Some(5), Mode::Bridge),
        ];
        assert!(matches!(
            Fdb::new(nets, vec![]),
            Err(FdbError::SharedVlan { .. })
        ));
    }
}
