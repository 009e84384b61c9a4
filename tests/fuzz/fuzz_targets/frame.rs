//! Frame parse + classify, ingress and egress, tagged and untagged, over an
//! FDB with every mode: never a panic, and every verdict one the data plane
//! may act on (checked below). The snooping parser (IGMP/MLD membership
//! messages, the group a frame is kept to) runs on every input too.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mvdp::switch::{
    classify_egress, classify_ingress, flood_targets, snoop_egress, snoop_query, DropReason,
    EndpointEntry, EndpointId, Fdb, GroupTable, Memberships, Mode, NetworkEntry, NetworkId,
    SnoopEvent, Verdict,
};
use mvdp::wire::{FrameHeader, MacAddr, ETHERTYPE_QINQ};

/// The endpoints' MACs: 02:42:0a:00:00:<id>. The seeds use them.
fn mac(id: u8) -> MacAddr {
    MacAddr([0x02, 0x42, 0x0a, 0, 0, id])
}

/// A wire neighbour allowed by the `source` network's endpoint.
const ALLOWED: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

static FDB: LazyLock<Fdb> = LazyLock::new(|| {
    let net = |name: &str, vlan, mode| NetworkEntry::new(name, vlan, mode);
    let mut qinq = net("v70", Some(70), Mode::Vepa);
    qinq.allow_inner_tags = true;
    // The untagged network checks IPv4 and ARP senders too.
    let mut lan = net("lan", None, Mode::Bridge);
    lan.anti_spoof_ip = true;
    lan.snoop = true;
    let mut retired = net("old", Some(90), Mode::Bridge);
    retired.retired = true;
    let networks = vec![
        lan,
        net("v50", Some(50), Mode::Private),
        net("v60", Some(60), Mode::Source),
        qinq,
        net("v80", Some(80), Mode::Passthru),
        retired,
    ];
    let ep = |id: u8, network: u16| {
        let mut e = EndpointEntry::new(format!("e{id}"), mac(id), NetworkId(network));
        e.ip = Some(Ipv4Addr::new(10, 0, 0, id));
        e.ip6 = Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(id)));
        Some(e)
    };
    let mut source = ep(4, 2);
    if let Some(e) = source.as_mut() {
        e.allowed_sources = vec![ALLOWED];
    }
    let endpoints = vec![
        ep(0, 0),
        ep(1, 0),
        ep(2, 1),
        ep(3, 1),
        source,
        ep(5, 3),
        None, // a removed endpoint's id
        ep(7, 4),
    ];
    Fdb::new(networks, endpoints).expect("a valid FDB")
});

/// e1 joined 239.1.2.3 on lan (snooping); e0 did not.
static GROUPS: LazyLock<GroupTable> = LazyLock::new(|| {
    let mut m = Memberships::new(None);
    let group = MacAddr([0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]);
    m.apply(
        &FDB,
        SnoopEvent::Join(EndpointId(1), group),
        std::time::Instant::now(),
    );
    m.snapshot()
});

/// The flood's targets: endpoints of its network, each once.
fn check_targets(fdb: &Fdb, flood: &mvdp::switch::Flood) -> Vec<EndpointId> {
    assert!(
        !fdb.network(flood.network).retired,
        "a flood on a retired network"
    );
    let mut targets = Vec::new();
    flood_targets(fdb, &GROUPS, flood, |id| targets.push(id));
    if let Some(group) = flood.group {
        assert!(
            fdb.network(flood.network).snoop,
            "a group kept to members on a flood network"
        );
        for id in &targets {
            assert!(
                GROUPS.members(flood.network, group).contains(id),
                "a snooped group's frame to a non-member"
            );
        }
    }
    for id in &targets {
        let e = fdb
            .endpoint(*id)
            .expect("a flood target that does not exist");
        assert_eq!(
            e.network, flood.network,
            "a flood target on another network"
        );
    }
    let mut sorted = targets.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), targets.len(), "a flood target twice");
    targets
}

fn check_ingress(fdb: &Fdb, frame: &[u8]) {
    match classify_ingress(fdb, frame) {
        Verdict::Endpoint(id) | Verdict::EndpointUntag(id) => {
            assert!(fdb.endpoint(id).is_some(), "delivered to a free id");
            FrameHeader::parse(frame).expect("delivered an unparsable frame");
        }
        Verdict::Flood(flood) => {
            check_targets(fdb, &flood);
        }
        Verdict::Wire { .. } => panic!("a frame from the wire sent back to the wire"),
        Verdict::Drop(_) => {}
    }
}

fn check_egress(fdb: &Fdb, from: EndpointId, frame: &[u8]) {
    let verdict = classify_egress(fdb, from, frame);
    let Some(me) = fdb.endpoint(from) else {
        // Unparsable frames are malformed first; any other is the gone sender's.
        assert!(
            matches!(
                verdict,
                Verdict::Drop(DropReason::EndpointGone | DropReason::Malformed)
            ),
            "a frame from a free id: {verdict:?}"
        );
        return;
    };
    let net = fdb.network(me.network);
    let passes = !matches!(verdict, Verdict::Drop(_));
    if passes {
        let hdr = FrameHeader::parse(frame).expect("passed an unparsable frame");
        assert_eq!(hdr.src, me.mac, "passed a spoofed source");
        let own_tag = hdr.vlan.is_some() || hdr.ethertype == ETHERTYPE_QINQ;
        assert!(
            !own_tag || (net.vlan.is_some() && net.allow_inner_tags),
            "passed a VLAN hop"
        );
        if net.anti_spoof_ip && hdr.ethertype == 0x0800 {
            let p = hdr.payload_offset;
            let src = Ipv4Addr::new(frame[p + 12], frame[p + 13], frame[p + 14], frame[p + 15]);
            assert!(
                Some(src) == me.ip || src.is_unspecified(),
                "passed a spoofed IPv4 source {src}"
            );
        }
        if net.anti_spoof_ip && hdr.ethertype == 0x86dd {
            let p = hdr.payload_offset;
            let octets: [u8; 16] = frame[p + 8..p + 24].try_into().expect("16 bytes");
            let src = Ipv6Addr::from(octets);
            assert!(
                Some(src) == me.ip6 || src.is_unicast_link_local() || src.is_unspecified(),
                "passed a spoofed IPv6 source {src}"
            );
            // RA guard: no router advertisement or redirect passes.
            if let Some(upper) = mvdp::wire::ipv6::upper_layer(&frame[p..]) {
                assert!(
                    upper.protocol != mvdp::wire::ipv6::NH_ICMPV6
                        || !matches!(upper.bytes.first(), Some(&(134 | 137))),
                    "passed a container's router advertisement or redirect"
                );
            }
        }
    }
    match verdict {
        Verdict::Wire { tag } => assert_eq!(tag, net.vlan, "sent out under another tag"),
        Verdict::Endpoint(to) | Verdict::EndpointUntag(to) => {
            assert_ne!(to, from, "sent back to its sender");
            let dest = fdb.endpoint(to).expect("delivered to a free id");
            assert_eq!(dest.network, me.network, "crossed networks");
            assert_eq!(
                net.mode,
                Mode::Bridge,
                "switched locally outside bridge mode"
            );
        }
        Verdict::Flood(flood) => {
            assert_eq!(flood.network, me.network, "flooded another network");
            let targets = check_targets(fdb, &flood);
            assert!(!targets.contains(&from), "a flood back to its sender");
        }
        Verdict::Drop(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let fdb = &*FDB;
    check_ingress(fdb, data);
    snoop_query(fdb, data);
    // The first byte picks the sender (a free id and an unknown one included).
    if let Some((&who, frame)) = data.split_first() {
        let from = EndpointId(u16::from(who % 10));
        check_egress(fdb, from, frame);
        if let Some(changes) = snoop_egress(fdb, from, frame) {
            // A record is at least 8 bytes: never more changes than that allows.
            assert!(
                changes.count() <= frame.len() / 8,
                "more group changes than records fit"
            );
        }
    }
});
