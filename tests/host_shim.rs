//! The host shim: with `host_shim`, the host and its containers talk both
//! ways through mvdp; without it, mvdp behaves as macvlan does (the host
//! cannot reach its own containers through the parent).

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;

const SHIM_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 250);

#[test]
fn without_a_shim_the_host_cannot_reach_its_containers() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let mut d = Daemon::start(&rig, &rig.config_toml("veth", ""));
    d.wait_ready(Duration::from_secs(20));
    // The wire reaches the container, so the endpoint itself works ...
    assert!(ping(&rig.wire, rig.container(1).ip, 2));
    // ... but the host's own traffic leaves on the wire and never comes back.
    assert!(
        !ping(&rig.host, rig.container(1).ip, 2),
        "the host reached a container without a shim"
    );
    assert!(d.stop().success());
}

#[test]
fn with_a_shim_host_and_containers_talk_both_ways() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let toml = rig.config_toml("veth", "").replacen(
        &format!("gateway = \"{WIRE_IP}\""),
        &format!("gateway = \"{WIRE_IP}\"\nhost_shim = \"{SHIM_IP}\""),
        1,
    );
    assert!(toml.contains("host_shim"), "config not patched:\n{toml}");
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    assert!(
        link_exists(&rig.host, "mvshim-lan"),
        "no shim interface in the host namespace"
    );

    for c in &rig.containers {
        assert!(
            ping(&rig.host, c.ip, 2),
            "host -> {} through the shim\n{}",
            c.name,
            d.log()
        );
        assert!(ping(&c.ns, SHIM_IP, 2), "{} -> host shim", c.name);
    }
    let c1 = rig.container(1);
    tcp_transfer(&c1.ns, c1.ip, &rig.host, 4 << 20).expect("TCP host -> c1 server");
    tcp_transfer(&rig.host, SHIM_IP, &c1.ns, 4 << 20).expect("TCP c1 -> host server");
    assert_eq!(
        udp_exchange(&rig.host, SHIM_IP, &c1.ns, 200),
        (200, 200),
        "UDP c1 <-> host"
    );
    // The wire still reaches everyone, and the host's own address still answers.
    assert!(ping(&rig.wire, c1.ip, 2));
    assert!(ping(&rig.wire, HOST_IP, 2));

    assert!(d.stop().success(), "{}", d.log());
    assert!(
        !link_exists(&rig.host, "mvshim-lan"),
        "the shim outlived mvdp"
    );
}
