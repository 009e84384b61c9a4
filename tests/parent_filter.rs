//! The parent accepts the endpoints' MACs through its unicast filter where the
//! driver has one, and promiscuous mode only where it must; mvdp undoes both.

mod common;

use std::time::Duration;

use common::*;

fn promiscuity(ns: &Netns, ifname: &str) -> u32 {
    let out = ns.ip(&["-d", "link", "show", ifname]);
    out.split_whitespace()
        .skip_while(|w| *w != "promiscuity")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no promiscuity in: {out}"))
}

fn fdb_self(ns: &Netns, ifname: &str) -> String {
    String::from_utf8_lossy(&ns.exec(&["bridge", "fdb", "show", "dev", ifname]).stdout).to_string()
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// veth has no unicast filter: the kernel falls back to promiscuous mode, and
/// mvdp says so; after shutdown the parent is as it was.
#[test]
fn veth_parent_falls_back_to_promiscuous_and_is_restored() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    assert_eq!(promiscuity(&rig.host, PARENT_IF), 0);
    // c2's MAC is already in p0's list, put there by someone else: mvdp uses
    // it and leaves it there.
    let c2_mac = mac_str(rig.container(2).mac());
    rig.host.run(&[
        "bridge",
        "fdb",
        "add",
        &c2_mac,
        "dev",
        PARENT_IF,
        "self",
        "permanent",
    ]);
    let mut d = Daemon::start(&rig, &rig.config_toml("veth", ""));
    d.wait_ready(Duration::from_secs(20));
    let fdb = fdb_self(&rig.host, PARENT_IF);
    for c in &rig.containers {
        assert!(
            fdb.contains(&mac_str(c.mac())),
            "{} not in p0's address list:\n{fdb}",
            c.name
        );
    }
    assert!(
        promiscuity(&rig.host, PARENT_IF) >= 1,
        "veth should have been made promiscuous"
    );
    assert_eq!(
        d.metric("mvdp_parent_mac_filter{mode=\"promiscuous\"}"),
        Some(1.0)
    );
    assert_eq!(
        d.metric("mvdp_parent_mac_filter{mode=\"unicast_filter\"}"),
        Some(0.0)
    );
    assert!(d.stop().success(), "{}", d.log());
    let fdb = fdb_self(&rig.host, PARENT_IF);
    assert!(
        !fdb.contains(&mac_str(rig.container(1).mac())),
        "c1 left in p0's address list:\n{fdb}"
    );
    assert!(
        fdb.contains(&c2_mac),
        "mvdp removed an address it did not add:\n{fdb}"
    );
    // Once that entry goes too, p0 is exactly as it was.
    rig.host.run(&[
        "bridge",
        "fdb",
        "del",
        &c2_mac,
        "dev",
        PARENT_IF,
        "self",
        "permanent",
    ]);
    assert_eq!(promiscuity(&rig.host, PARENT_IF), 0, "p0 left promiscuous");
}

/// A device with a unicast filter (a passthru macvlan has one) takes the address without
/// going promiscuous: the mechanism mvdp relies on for real NICs.
#[test]
fn unicast_filter_device_takes_addresses_without_promiscuity() {
    if !require_privileges() {
        return;
    }
    let ns = Netns::new(&unique("mvpf"));
    ns.ip(&[
        "link", "add", "base", "type", "veth", "peer", "name", "base1",
    ]);
    ns.ip(&[
        "link", "add", "link", "base", "name", "uf0", "type", "macvlan", "mode", "passthru",
    ]);
    ns.ip(&["link", "set", "base", "up"]);
    ns.ip(&["link", "set", "uf0", "up"]);
    let before = promiscuity(&ns, "uf0");
    let mac = mvdp::wire::MacAddr([0x02, 0x42, 10, 77, 9, 9]);
    ns.in_ns(|| mvdp::control::netlink::add_unicast_address("uf0", mac))
        .expect("add");
    assert!(
        fdb_self(&ns, "uf0").contains("02:42:0a:4d:09:09"),
        "{}",
        fdb_self(&ns, "uf0")
    );
    assert_eq!(
        promiscuity(&ns, "uf0"),
        before,
        "a filtering device went promiscuous"
    );
    ns.in_ns(|| mvdp::control::netlink::del_unicast_address("uf0", mac))
        .expect("del");
    assert!(!fdb_self(&ns, "uf0").contains("02:42:0a:4d:09:09"));
    // Removing twice is fine (teardown after a vanished entry).
    ns.in_ns(|| mvdp::control::netlink::del_unicast_address("uf0", mac))
        .expect("del again");
}
