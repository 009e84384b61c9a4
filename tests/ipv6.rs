//! IPv6 dual stack: with `subnet6`, containers get their IPv6 address and
//! default route from mvdp, neighbour discovery (and with it duplicate
//! address detection) works through mvdp for veth and TAP endpoints, the host
//! shim carries IPv6 too, and what the containers see is what the kernel's
//! macvlan gives them on the same rig.

mod common;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::*;

/// The rig's IPv6 subnet; the wire host is its gateway, as it is for IPv4.
const SUBNET6: &str = "fd00:77::/64";
const WIRE_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);
/// An address the wire host holds that a container will also be given.
const TAKEN_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x99);
const SHIM_IP: &str = "10.77.0.250";
const SHIM_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0xfa);
const MIB4: usize = 4 << 20;

/// Container `c`'s IPv6 address: the subnet's ::11, ::12, ... like its IPv4 one.
fn ip6_of(c: &Container) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, u16::from(c.ip.octets()[3]))
}

/// Gives the wire host its IPv6 addresses. The rig turns IPv6 off in every
/// namespace, for new interfaces too: the endpoints mvdp makes for a
/// dual-stack network must get it turned on by mvdp.
fn wire_ipv6(rig: &Rig) {
    rig.wire
        .set_sysctl(&format!("net/ipv6/conf/{WIRE_IF}/disable_ipv6"), "0");
    for ip in [WIRE_IP6, TAKEN_IP6] {
        rig.wire
            .ip(&["-6", "addr", "add", &format!("{ip}/64"), "dev", WIRE_IF]);
    }
    wait_dad_done(&rig.wire, WIRE_IF);
}

/// The IPv6 addresses of `ifname` in `ns`: (address, flags such as
/// "tentative" or "dadfailed", scope).
fn addresses6(ns: &Netns, ifname: &str) -> Vec<(String, Vec<String>, String)> {
    let out = ns.ip(&["-j", "-6", "addr", "show", "dev", ifname]);
    let links: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
    let mut found = Vec::new();
    for info in links
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
    {
        let flags = ["tentative", "dadfailed", "optimistic"]
            .into_iter()
            .filter(|f| info[*f].as_bool() == Some(true))
            .map(str::to_string)
            .collect();
        found.push((
            info["local"].as_str().unwrap_or_default().to_string(),
            flags,
            info["scope"].as_str().unwrap_or_default().to_string(),
        ));
    }
    found
}

/// Waits (with a deadline) until no address of `ifname` is still tentative.
fn wait_dad_done(ns: &Netns, ifname: &str) {
    let done = wait_until(Duration::from_secs(15), || {
        let addrs = addresses6(ns, ifname);
        !addrs.is_empty()
            && addrs
                .iter()
                .all(|(_, flags, _)| !flags.iter().any(|f| f == "tentative"))
    });
    assert!(
        done,
        "DAD did not finish on {ifname} in {}: {:?}",
        ns.name(),
        addresses6(ns, ifname)
    );
}

/// Whether `ifname` in `ns` holds `ip` with DAD failed on it.
fn dad_failed(ns: &Netns, ifname: &str, ip: Ipv6Addr) -> bool {
    addresses6(ns, ifname)
        .iter()
        .any(|(a, flags, _)| *a == ip.to_string() && flags.iter().any(|f| f == "dadfailed"))
}

/// The link-local address of `ifname` in `ns`.
fn link_local(ns: &Netns, ifname: &str) -> String {
    addresses6(ns, ifname)
        .into_iter()
        .find(|(_, _, scope)| scope == "link")
        .map(|(a, _, _)| a)
        .unwrap_or_else(|| panic!("no link-local address on {ifname} in {}", ns.name()))
}

/// Two pings from `ns` to a link-local address out of `ifname`.
fn ping_link_local(ns: &Netns, ifname: &str, ip: &str) -> bool {
    let target = format!("{ip}%{ifname}");
    let out = ns.exec(&[
        "ping", "-q", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-w", "4", &target,
    ]);
    out.status.success()
}

/// What a container network looks like over IPv6, observed identically on
/// mvdp and on the kernel's macvlan.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// Every container's global address passed DAD (no false conflict).
    dad_clean: bool,
    /// The wire answered each container's ping, and each container the wire's.
    wire_pings: Vec<(bool, bool)>,
    /// c1 and c2 reach each other by global address.
    c1_c2: bool,
    /// c1 reaches c2 by link-local address (NDP on the link itself).
    c1_c2_link_local: bool,
    /// The wire learned c1's MAC for its address (neighbour discovery).
    wire_neighbour_mac: Option<String>,
    /// Each container's IPv6 default route goes via the gateway.
    default_routes: Vec<bool>,
}

fn observe(rig: &Rig, containers: &[&Container]) -> Seen {
    for c in containers {
        wait_dad_done(&c.ns, c.ifname());
    }
    let dad_clean = containers.iter().all(|c| {
        addresses6(&c.ns, c.ifname())
            .iter()
            .all(|(_, f, _)| f.is_empty())
    });
    let wire_pings = containers
        .iter()
        .map(|c| (ping(&rig.wire, ip6_of(c), 3), ping(&c.ns, WIRE_IP6, 3)))
        .collect();
    let (c1, c2) = (containers[0], containers[1]);
    let c1_c2 = ping(&c1.ns, ip6_of(c2), 3) && ping(&c2.ns, ip6_of(c1), 3);
    let c1_c2_link_local = ping_link_local(&c1.ns, c1.ifname(), &link_local(&c2.ns, c2.ifname()));
    let neigh = rig.wire.ip(&[
        "-6",
        "neigh",
        "show",
        &ip6_of(c1).to_string(),
        "dev",
        WIRE_IF,
    ]);
    let wire_neighbour_mac = neigh
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_string);
    let default_routes = containers
        .iter()
        .map(|c| {
            c.ns.ip(&["-6", "route", "show", "default"])
                .contains(&format!("via {WIRE_IP6} dev {}", c.ifname()))
        })
        .collect();
    Seen {
        dad_clean,
        wire_pings,
        c1_c2,
        c1_c2_link_local,
        wire_neighbour_mac,
        default_routes,
    }
}

/// The rig's config made dual stack: `subnet6` and `gateway6` on `lan`
/// (plus `extra_network` keys), then one endpoint per container with its
/// `ip6`; `kinds` gives each endpoint's kind.
fn dual_stack_config(rig: &Rig, extra_network: &str, containers: &[(&Container, &str)]) -> String {
    let mut toml = rig.base_toml("");
    toml.push_str(&format!(
        "subnet6 = \"{SUBNET6}\"\ngateway6 = \"{WIRE_IP6}\"\n{extra_network}\n"
    ));
    for (c, kind) in containers {
        toml.push_str(&rig.endpoint_toml(c, kind));
        toml.push_str(&format!("ip6 = \"{}\"\n", ip6_of(c)));
    }
    toml
}

#[test]
fn dual_stack_veth_and_tap_through_mvdp() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::with_prefix("v6", 4, 1);
    wire_ipv6(&rig);
    let (c1, c2, c3, c4) = (
        rig.container(1),
        rig.container(2),
        rig.container(3),
        rig.container(4),
    );
    let toml = dual_stack_config(
        &rig,
        &format!("host_shim = \"{SHIM_IP}\"\nhost_shim6 = \"{SHIM_IP6}\""),
        &[(c1, "veth"), (c2, "tap"), (c3, "veth")],
    );
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));

    let seen = observe(&rig, &[c1, c2, c3]);
    assert_eq!(
        seen,
        Seen {
            dad_clean: true,
            wire_pings: vec![(true, true); 3],
            c1_c2: true,
            c1_c2_link_local: true,
            wire_neighbour_mac: Some(fmt_mac(&c1.mac())),
            default_routes: vec![true; 3],
        },
        "{}",
        d.log()
    );
    // veth <-> veth as well as veth <-> TAP, both ways.
    assert!(ping(&c1.ns, ip6_of(c3), 3) && ping(&c3.ns, ip6_of(c1), 3));

    // 4 MiB over TCP, checked byte for byte, each side the server in turn:
    // wire <-> a veth and a TAP container, and container <-> container.
    for c in [c1, c2] {
        tcp_transfer(&c.ns, ip6_of(c), &rig.wire, MIB4)
            .unwrap_or_else(|e| panic!("wire -> {}: {e}", c.name));
        tcp_transfer(&rig.wire, WIRE_IP6, &c.ns, MIB4)
            .unwrap_or_else(|e| panic!("{} -> wire: {e}", c.name));
    }
    tcp_transfer(&c2.ns, ip6_of(c2), &c1.ns, MIB4).expect("c1 -> c2 (tap)");
    tcp_transfer(&c1.ns, ip6_of(c1), &c3.ns, MIB4).expect("c3 -> c1");

    // The host shim has its IPv6 address and routes: host <-> container.
    let shim = addresses6(&rig.host, "mvshim-lan");
    assert!(
        shim.iter().any(|(a, _, _)| *a == SHIM_IP6.to_string()),
        "shim addresses: {shim:?}"
    );
    wait_dad_done(&rig.host, "mvshim-lan");
    assert!(ping(&rig.host, ip6_of(c1), 3), "host -> c1 over the shim");
    assert!(ping(&c2.ns, SHIM_IP6, 3), "c2 (tap) -> host shim");
    tcp_transfer(&c1.ns, ip6_of(c1), &rig.host, MIB4).expect("host -> c1 over the shim");

    // A runtime endpoint whose address someone on the LAN holds already:
    // its DAD probe reaches the wire and the answer comes back, so the
    // kernel in the container marks the address failed.
    let (code, out, err) = mvdp_ctl(
        &rig,
        &[
            "endpoint",
            "add",
            "--name",
            "c4",
            "--network",
            NETWORK,
            "--netns",
            c4.ns.name(),
            "--ip",
            &c4.ip.to_string(),
            "--ip6",
            &TAKEN_IP6.to_string(),
        ],
    );
    assert_eq!(code, 0, "endpoint add: {out}{err}");
    assert!(out.contains(&TAKEN_IP6.to_string()), "{out}");
    let listed = endpoint_list(&rig);
    let c4_info = listed
        .iter()
        .find(|e| e["name"] == "c4")
        .expect("c4 listed");
    assert_eq!(c4_info["ip6"], TAKEN_IP6.to_string());
    assert!(
        wait_until(Duration::from_secs(10), || dad_failed(
            &c4.ns, "eth0", TAKEN_IP6
        )),
        "the duplicate was not detected: {:?}",
        addresses6(&c4.ns, "eth0")
    );
    // ... while the others keep their addresses.
    assert!(ping(&rig.wire, ip6_of(c1), 2));

    // Networks added at run time take the IPv6 keys too, validated alike.
    let add = |subnet6: &str| {
        mvdp_ctl(
            &rig,
            &[
                "network",
                "add",
                "--name",
                "v60",
                "--vlan",
                "60",
                "--subnet",
                "10.79.0.0/24",
                "--subnet6",
                subnet6,
            ],
        )
    };
    let (code, out, err) = add("fd00:79::5/64");
    assert_ne!(code, 0, "a subnet6 with host bits was accepted: {out}");
    assert!(
        err.contains("subnet6"),
        "the error does not name subnet6: {err}"
    );
    let (code, out, err) = add("fd00:79::/64");
    assert_eq!(code, 0, "network add: {out}{err}");
    assert!(out.contains("fd00:79::/64 via fd00:79::1"), "{out}");
    let (code, out, err) = mvdp_ctl(&rig, &["network", "del", "v60"]);
    assert_eq!(code, 0, "network del: {out}{err}");

    assert_accounting(&settled(&d));
    assert!(d.stop().success(), "{}", d.log());
    rig.assert_host_clean();
}

#[test]
fn ipv6_matches_the_kernel_macvlan() {
    if !require_privileges() {
        return;
    }
    let kernel = {
        let rig = Rig::with_prefix("v6k", 2, 1);
        wire_ipv6(&rig);
        let cs = [rig.container(1), rig.container(2)];
        add_kernel_macvlans(&rig, "bridge", &cs, &[]);
        for c in cs {
            c.ns.set_sysctl(&format!("net/ipv6/conf/{}/disable_ipv6", c.ifname()), "0");
            c.ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{}/64", ip6_of(c)),
                "dev",
                c.ifname(),
            ]);
            c.ns.ip(&[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &WIRE_IP6.to_string(),
                "dev",
                c.ifname(),
            ]);
        }
        observe(&rig, &cs)
    };
    let mvdp = {
        let rig = Rig::with_prefix("v6m", 2, 1);
        wire_ipv6(&rig);
        let cs = [rig.container(1), rig.container(2)];
        let toml = dual_stack_config(&rig, "", &[(cs[0], "veth"), (cs[1], "veth")]);
        let mut d = Daemon::start(&rig, &toml);
        d.wait_ready(Duration::from_secs(20));
        let seen = observe(&rig, &cs);
        assert!(d.stop().success(), "{}", d.log());
        seen
    };
    // MACs are the containers' own on both systems (02:42 + the IPv4 address).
    assert_eq!(
        mvdp, kernel,
        "mvdp (left) and the kernel's macvlan (right) differ"
    );
    assert!(
        kernel.c1_c2 && kernel.dad_clean,
        "the reference itself failed: {kernel:?}"
    );
}

/// A restart that takes an endpoint over with a changed `ip6`: the new
/// address is added and the old one (an earlier mvdp's, in the same
/// subnet) goes, so the container holds exactly one global IPv6 address
/// and the wire reaches it there, not at the old one.
#[test]
fn a_restart_with_a_changed_ip6_leaves_only_the_new_address() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::with_prefix("v6r", 1, 1);
    wire_ipv6(&rig);
    let c1 = rig.container(1);
    let keep =
        |toml: String| toml.replace("[control]\n", "[control]\nkeep_endpoints_on_exit = true\n");
    let toml = keep(dual_stack_config(&rig, "", &[(c1, "veth")]));
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    wait_dad_done(&c1.ns, c1.ifname());
    assert!(ping(&rig.wire, ip6_of(c1), 2), "wire -> c1\n{}", d.log());
    assert!(d.stop().success(), "{}", d.log());

    let new_ip6 = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0x42);
    let index_before = c1.ns.ip(&["-o", "link", "show", "dev", c1.ifname()]);
    let changed = toml.replace(
        &format!("ip6 = \"{}\"", ip6_of(c1)),
        &format!("ip6 = \"{new_ip6}\""),
    );
    assert_ne!(changed, toml);
    let mut d = Daemon::start(&rig, &changed);
    d.wait_ready(Duration::from_secs(20));
    assert!(
        d.log().contains("taken over"),
        "not taken over\n{}",
        d.log()
    );
    assert_eq!(
        c1.ns.ip(&["-o", "link", "show", "dev", c1.ifname()]),
        index_before,
        "the interface was re-created"
    );
    wait_dad_done(&c1.ns, c1.ifname());
    let global: Vec<String> = addresses6(&c1.ns, c1.ifname())
        .into_iter()
        .filter(|(_, _, scope)| scope == "global")
        .map(|(a, _, _)| a)
        .collect();
    assert_eq!(global, [new_ip6.to_string()], "{}", d.log());
    assert!(
        ping(&rig.wire, new_ip6, 2),
        "wire -> c1 at {new_ip6}\n{}",
        d.log()
    );
    assert!(
        !ping(&rig.wire, ip6_of(c1), 1),
        "c1 still answers at its old address"
    );
    assert!(d.stop().success(), "{}", d.log());
}
