//! 802.1Q networks: a network with `vlan = VID` owns frames tagged VID on the
//! parent; mvdp strips the tag toward its containers and adds it on egress.
//! Nothing crosses between networks.
//!
//! Rig: c1, c2 on the untagged network "lan" (10.77.0.0/24); c3 on "v50",
//! VLAN 50 (10.78.0.0/24). The wire has w0 (untagged, 10.77.0.1) and
//! w0.50 (VLAN 50, 10.78.0.1).

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;

const V50_WIRE: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
const V50_C3: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 13);
/// The wire's VLAN 50 interface (user space: this kernel has no 802.1Q devices).
const VLAN_IF: &str = "w0v50";

fn vlan_rig() -> (Rig, Daemon, VlanIf) {
    let rig = Rig::new(3, 1);
    // The relay reads the wire raw. A NIC finishes checksums and segments
    // before the wire; the veth standing in for one leaves both to its
    // peer's stack (a fast-path container keeps its offloads), so p0 does
    // them in software here, as a NIC would in hardware.
    rig.host.run(&["ethtool", "-K", PARENT_IF, "tx", "off"]);
    let vlan_if = VlanIf::start(&rig.wire, WIRE_IF, 50, VLAN_IF, &format!("{V50_WIRE}/24"));
    let (c1, c2, c3) = (rig.container(1), rig.container(2), rig.container(3));
    let mut toml = rig.base_toml("");
    toml += &rig.endpoint_toml(c1, "veth");
    toml += &rig.endpoint_toml(c2, "veth");
    toml += &format!(
        "\n[[network]]\nname = \"v50\"\nvlan = 50\nsubnet = \"10.78.0.0/24\"\ngateway = \"{V50_WIRE}\"\n\
         \n[[endpoint]]\nname = \"c3\"\nnetwork = \"v50\"\nnetns = \"{}\"\nip = \"{V50_C3}\"\n",
        c3.ns.name()
    );
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    (rig, d, vlan_if)
}

fn has(marker: &str) -> impl Fn(&[u8]) -> bool + '_ {
    move |f: &[u8]| f.windows(marker.len()).any(|w| w == marker.as_bytes())
}

/// The VID of a frame's outer tag, if it has one.
fn outer_vid(f: &[u8]) -> Option<u16> {
    (f.len() >= 16 && f[12..14] == [0x81, 0x00])
        .then(|| u16::from_be_bytes([f[14], f[15]]) & 0x0fff)
}

#[test]
fn vlan_network_talks_tagged_on_the_wire_untagged_in_the_container() {
    if !require_privileges() {
        return;
    }
    let (rig, mut d, _vlan_if) = vlan_rig();
    let c3 = rig.container(3);
    let c3_mac = [0x02, 0x42, 10, 78, 0, 13];

    // On the wire, c3's traffic is tagged 50; in c3 it is untagged.
    let wire_cap = Capture::start(&rig.wire, WIRE_IF);
    let c3_cap = Capture::start(&c3.ns, "eth0");
    assert!(
        ping(&rig.wire, V50_C3, 3),
        "w0.50 -> c3 over VLAN 50\n{}",
        d.log()
    );
    let on_wire = wire_cap.finish(Duration::from_millis(200));
    let from_c3: Vec<_> = on_wire
        .iter()
        .filter(|f| f.len() > 12 && f[6..12] == c3_mac)
        .collect();
    assert!(!from_c3.is_empty(), "no frame from c3 on the wire");
    assert!(
        from_c3.iter().all(|f| outer_vid(f) == Some(50)),
        "c3's frames on the wire are not all tagged 50"
    );
    let in_c3 = c3_cap.finish(Duration::from_millis(100));
    assert!(!in_c3.is_empty());
    assert!(
        in_c3.iter().all(|f| outer_vid(f).is_none()),
        "c3 received a tagged frame"
    );

    // TCP and UDP work over the VLAN both ways.
    tcp_transfer(&c3.ns, V50_C3, &rig.wire, 4 << 20).expect("TCP wire -> c3 over VLAN 50");
    tcp_transfer(&rig.wire, V50_WIRE, &c3.ns, 4 << 20).expect("TCP c3 -> wire over VLAN 50");
    assert_eq!(udp_exchange(&c3.ns, V50_C3, &rig.wire, 200), (200, 200));
    // The untagged network works beside it.
    assert!(ping(&rig.wire, rig.container(1).ip, 2));
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn nothing_crosses_between_networks() {
    if !require_privileges() {
        return;
    }
    let (rig, mut d, _vlan_if) = vlan_rig();
    let (c1, c2, c3) = (rig.container(1), rig.container(2), rig.container(3));
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let c3_mac = [0x02, 0x42, 10, 78, 0, 13];
    let caps = |rig: &Rig| -> Vec<Capture> {
        rig.containers
            .iter()
            .map(|c| Capture::start(&c.ns, "eth0"))
            .collect()
    };
    let tagged = |vid: u16, dst: [u8; 6], marker: &str| {
        let mut payload = vid.to_be_bytes().to_vec();
        payload.extend_from_slice(&ETHERTYPE_TEST.to_be_bytes());
        payload.extend_from_slice(marker.as_bytes());
        eth_frame(dst, wire_mac, 0x8100, &payload)
    };

    // Untagged broadcast: c1 and c2, never c3.
    let m = format!("untagged-bcast-{}", std::process::id());
    let cs = caps(&rig);
    send_raw(
        &rig.wire,
        WIRE_IF,
        &eth_frame(BROADCAST, wire_mac, ETHERTYPE_TEST, m.as_bytes()),
    );
    let got: Vec<usize> = cs
        .into_iter()
        .map(|c| c.finish_matching(Duration::from_millis(400), has(&m)).len())
        .collect();
    assert_eq!(
        got,
        vec![1, 1, 0],
        "untagged broadcast reached (c1, c2, c3)"
    );

    // VLAN 50 broadcast: c3 only, untagged.
    let m = format!("v50-bcast-{}", std::process::id());
    let cs = caps(&rig);
    send_raw(&rig.wire, WIRE_IF, &tagged(50, BROADCAST, &m));
    let got: Vec<Vec<Vec<u8>>> = cs
        .into_iter()
        .map(|c| c.finish_matching(Duration::from_millis(400), has(&m)))
        .collect();
    assert_eq!(
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![0, 0, 1],
        "VLAN 50 broadcast reached"
    );
    assert_eq!(outer_vid(&got[2][0]), None, "the tag was not stripped");

    // Unicast to c3's MAC untagged, or tagged 51: nobody. Tagged 50: c3.
    let m = format!("uni-{}", std::process::id());
    let cs = caps(&rig);
    send_raw(
        &rig.wire,
        WIRE_IF,
        &eth_frame(
            c3_mac,
            wire_mac,
            ETHERTYPE_TEST,
            format!("{m}-untagged").as_bytes(),
        ),
    );
    send_raw(&rig.wire, WIRE_IF, &tagged(51, c3_mac, &format!("{m}-v51")));
    send_raw(
        &rig.wire,
        WIRE_IF,
        &tagged(50, c1.mac(), &format!("{m}-c1-v50")),
    );
    send_raw(&rig.wire, WIRE_IF, &tagged(50, c3_mac, &format!("{m}-v50")));
    let got: Vec<Vec<Vec<u8>>> = cs
        .into_iter()
        .map(|c| c.finish_matching(Duration::from_millis(400), has(&m)))
        .collect();
    assert!(
        got[0].is_empty() && got[1].is_empty(),
        "c1/c2 got VLAN traffic: {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(
        got[2].len(),
        1,
        "c3 got {} frames, expected only the one tagged 50",
        got[2].len()
    );
    assert!(has(&format!("{m}-v50"))(&got[2][0]));

    // Inner tags survive: a double-tagged frame (50 outer, 9 inner) arrives
    // at c3 with only the inner tag.
    let m = format!("qinq-{}", std::process::id());
    let mut inner = 9u16.to_be_bytes().to_vec();
    inner.extend_from_slice(&ETHERTYPE_TEST.to_be_bytes());
    inner.extend_from_slice(m.as_bytes());
    let mut payload = 50u16.to_be_bytes().to_vec();
    payload.extend_from_slice(&0x8100u16.to_be_bytes());
    payload.extend_from_slice(&inner);
    let c3cap = Capture::start(&c3.ns, "eth0");
    send_raw(
        &rig.wire,
        WIRE_IF,
        &eth_frame(c3_mac, wire_mac, 0x8100, &payload),
    );
    let got = c3cap.finish_matching(Duration::from_millis(400), has(&m));
    assert_eq!(got.len(), 1);
    // Exactly the inner tag (VID 9) where the outer one was, then the payload.
    assert_eq!(
        got[0][12..18],
        [0x81, 0x00, 0x00, 0x09, 0x88, 0xb5],
        "frame at c3: {:02x?}",
        &got[0][..24]
    );

    // Egress: a container on the untagged network cannot hop onto VLAN 50.
    let m = format!("hop-{}", std::process::id());
    let wire_cap = Capture::start(&rig.wire, WIRE_IF);
    let mut payload = 50u16.to_be_bytes().to_vec();
    payload.extend_from_slice(&ETHERTYPE_TEST.to_be_bytes());
    payload.extend_from_slice(m.as_bytes());
    send_raw(
        &c1.ns,
        "eth0",
        &eth_frame(wire_mac, c1.mac(), 0x8100, &payload),
    );
    // ... nor can c3 send a tag of its own under VLAN 50 (double tagging),
    // while its network does not allow it.
    let inner_from_c3 = |q: &str| {
        let mut payload = 9u16.to_be_bytes().to_vec();
        payload.extend_from_slice(&ETHERTYPE_TEST.to_be_bytes());
        payload.extend_from_slice(q.as_bytes());
        send_raw(
            &c3.ns,
            "eth0",
            &eth_frame(wire_mac, c3_mac, 0x8100, &payload),
        );
    };
    let q = format!("c3-inner-{}", std::process::id());
    inner_from_c3(&q);
    let seen = wire_cap.finish(Duration::from_millis(400));
    assert!(
        !seen.iter().any(|f| has(&m)(f)),
        "a tagged frame from an untagged network reached the wire"
    );
    assert!(
        !seen.iter().any(|f| has(&q)(f)),
        "a double-tagged frame from a VLAN network reached the wire"
    );
    assert!(
        wait_until(Duration::from_secs(2), || d.drops("vlan_hop") == 2.0),
        "vlan_hop drops: {}",
        d.drops("vlan_hop")
    );

    // With `allow_inner_tags` (a SIGHUP away), c3's inner-tagged frame
    // leaves with the outer tag 50 on top.
    let toml = std::fs::read_to_string(d.config_path())
        .unwrap()
        .replace("vlan = 50\n", "vlan = 50\nallow_inner_tags = true\n");
    std::fs::write(d.config_path(), toml).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(5), || d
            .log()
            .contains("update network v50")),
        "the reload did not update v50\n{}",
        d.log()
    );
    let wire_cap = Capture::start(&rig.wire, WIRE_IF);
    let q = format!("c3-qinq-{}", std::process::id());
    inner_from_c3(&q);
    let seen = wire_cap.finish(Duration::from_millis(400));
    let c3_out: Vec<_> = seen.iter().filter(|f| has(&q)(f)).collect();
    assert_eq!(
        c3_out.len(),
        1,
        "c3's inner-tagged frame did not leave exactly once"
    );
    assert_eq!(
        outer_vid(c3_out[0]),
        Some(50),
        "c3's frame left without VLAN 50 outside"
    );
    assert_eq!(d.drops("vlan_hop"), 2.0);

    let _ = c2;
    assert!(d.stop().success(), "{}", d.log());
}

/// A `passthru` network on a VLAN whose endpoint takes the parent's own MAC,
/// as the kernel's passthru macvlan does: the container talks on VLAN 50
/// under the NIC's MAC (what a switch port that allows one MAC needs),
/// while the host keeps its untagged traffic under the same MAC.
#[test]
fn passthru_endpoint_may_take_the_parents_mac_on_its_vlan() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::with_prefix("vpt", 1, 1);
    let c1 = rig.container(1);
    let _vlan_if = VlanIf::start(&rig.wire, WIRE_IF, 50, VLAN_IF, &format!("{V50_WIRE}/24"));
    let parent_mac = fmt_mac(&link_mac(&rig.host, PARENT_IF));
    let mut toml = rig.base_toml("");
    toml += &format!(
        "\n[[network]]\nname = \"pt50\"\nmode = \"passthru\"\nvlan = 50\nsubnet = \"10.78.0.0/24\"\n\
         gateway = \"{V50_WIRE}\"\n\
         \n[[endpoint]]\nname = \"c1\"\nnetwork = \"pt50\"\nnetns = \"{}\"\nip = \"{V50_C3}\"\nmac = \"{parent_mac}\"\n",
        c1.ns.name()
    );
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    assert_eq!(fmt_mac(&link_mac(&c1.ns, c1.ifname())), parent_mac);
    assert!(
        ping(&rig.wire, V50_C3, 3),
        "wire -> c1 on VLAN 50\n{}",
        d.log()
    );
    assert!(ping(&c1.ns, V50_WIRE, 3), "c1 -> wire on VLAN 50");
    // The host's own untagged traffic, under the same MAC, is still the host's.
    assert!(ping(&rig.wire, HOST_IP, 3), "wire -> host");
    assert!(ping(&rig.host, WIRE_IP, 3), "host -> wire");
    assert!(d.stop().success(), "{}", d.log());
    rig.assert_host_clean();
}

/// On an untagged network the parent's MAC is the host's: an endpoint that
/// asked for it would take the host's traffic, so mvdp refuses it by key.
#[test]
fn the_parents_mac_is_refused_on_an_untagged_network() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::with_prefix("vpu", 1, 1);
    let c1 = rig.container(1);
    let parent_mac = fmt_mac(&link_mac(&rig.host, PARENT_IF));
    let toml = rig
        .base_toml("")
        .replacen("mode = \"bridge\"", "mode = \"passthru\"", 1)
        + &rig.endpoint_toml(c1, "veth")
        + &format!("mac = \"{parent_mac}\"\n");
    let mut d = Daemon::start(&rig, &toml);
    let status = d.wait_exit(Duration::from_secs(20)).expect("mvdp exits");
    assert!(!status.success());
    let log = d.log();
    assert!(
        log.contains("endpoint c1: mac") && log.contains("parent p0's own"),
        "the error does not name the key and the reason:\n{log}"
    );
    rig.assert_host_clean();
}
