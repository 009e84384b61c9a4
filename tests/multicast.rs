//! Multicast snooping (issue 11): a container that joins a group receives
//! the group's frames from the wire, one that did not join receives none,
//! and after it leaves, none; IGMPv3, IGMPv2, MLDv2 and MLDv1; link-local
//! groups reach everyone; `multicast = "flood"` sends every group frame to
//! every container; and the same joins and sends through the kernel's
//! macvlan land where mvdp lands them.
//!
//! Containers join with a small python3 program (`IP_ADD_MEMBERSHIP`,
//! `IPV6_JOIN_GROUP`) whose socket stays open until the test closes its
//! stdin; its kernel then sends the leave. Deliveries are counted at the
//! frame level with a packet socket on each container's `eth0`: a
//! non-member's IP stack would drop the frame anyway, so only the frame
//! level tells whether mvdp (or macvlan) delivered it.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// How long captures keep listening after the last probe is sent.
const LINGER: Duration = Duration::from_millis(500);
/// How long the group table may take to show a join or a leave.
const TABLE_DEADLINE: Duration = Duration::from_secs(10);

const G1: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const G2: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 4);
/// A group nobody joins.
const G3: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 5);
/// mDNS: link-local, so every container gets it.
const LINK_LOCAL: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const G1_V6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0, 0x1234);
const G2_V6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0, 0x5678);
/// All hosts: link-local, and every interface with IPv4 joined it.
const ALL_HOSTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// All nodes: link-local.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Joins a group and holds it until stdin closes; prints "joined" once in.
const JOINER: &str = r#"
import socket, struct, sys
group, ifname = sys.argv[1], sys.argv[2]
ifindex = socket.if_nametoindex(ifname)
if ':' in group:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack('@I', ifindex)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mreq = struct.pack('4s4si', socket.inet_aton(group), socket.inet_aton('0.0.0.0'), ifindex)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print('joined', flush=True)
sys.stdin.read()
"#;

/// A container's membership of one group, held by a python3 process in its
/// namespace. Leaving closes its stdin (the socket closes, the kernel
/// sends the leave); dropping it kills the process by its PID.
struct Member {
    child: Child,
}

impl Member {
    fn join(c: &Container, group: IpAddr) -> Member {
        let mut child = Command::new("ip")
            .args(["netns", "exec", c.ns.name(), "python3", "-c", JOINER])
            .arg(group.to_string())
            .arg(c.ifname())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        // The join is a setsockopt: done (or failed) at once.
        BufReader::new(stdout).read_line(&mut line).ok();
        assert_eq!(line.trim(), "joined", "{} could not join {group}", c.name);
        Member { child }
    }

    /// Leaves the group: the process ends, its kernel sends the leave.
    fn leave(mut self) {
        drop(self.child.stdin.take());
        let left = wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(left, "the joiner did not exit after its stdin closed");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The MAC an IP group is sent to.
fn group_mac(group: IpAddr) -> [u8; 6] {
    match group {
        IpAddr::V4(g) => {
            let o = g.octets();
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
        }
        IpAddr::V6(g) => {
            let o = g.octets();
            [0x33, 0x33, o[12], o[13], o[14], o[15]]
        }
    }
}

/// A UDP datagram to `group` from `src` carrying `marker`, as a full frame.
fn udp_to_group(src: [u8; 6], group: IpAddr, marker: &[u8]) -> Vec<u8> {
    let mut udp = vec![0x13, 0x88, 0x13, 0x88];
    udp.extend_from_slice(&((8 + marker.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(marker);
    let len = udp.len() as u16;
    let (ethertype, mut ip) = match group {
        IpAddr::V4(g) => {
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 1, 17, 0, 0];
            h[2..4].copy_from_slice(&(20 + len).to_be_bytes());
            h.extend_from_slice(&WIRE_IP.octets());
            h.extend_from_slice(&g.octets());
            let sum = checksum(&h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            (0x0800, h)
        }
        IpAddr::V6(g) => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&[17, 1]);
            h.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets());
            h.extend_from_slice(&g.octets());
            (0x86dd, h)
        }
    };
    ip.extend_from_slice(&udp);
    eth_frame(group_mac(group), src, ethertype, &ip)
}

/// An IGMPv2 general query from `src` (max response time 1 s), as a
/// querier on the LAN sends it to 224.0.0.1.
fn igmp_query(src: [u8; 6]) -> Vec<u8> {
    let mut igmp = vec![0x11, 10, 0, 0, 0, 0, 0, 0];
    let sum = checksum(&igmp);
    igmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 1, 2, 0, 0];
    ip.extend_from_slice(&WIRE_IP.octets());
    ip.extend_from_slice(&ALL_HOSTS.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&igmp);
    eth_frame(group_mac(ALL_HOSTS.into()), src, 0x0800, &ip)
}

/// The Internet checksum of `bytes` (an IPv4 header, an IGMP message).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One probe's label → the containers (by name) that received it, and how often.
type Table = BTreeMap<String, BTreeMap<String, usize>>;

/// Sends a UDP frame from the wire to each group (labelled), and records
/// which containers' `eth0` received it.
fn probe(rig: &Rig, groups: &[(&str, IpAddr)]) -> Table {
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let captures: Vec<(String, Capture)> = rig
        .containers
        .iter()
        .map(|c| (c.name.clone(), Capture::start(&c.ns, c.ifname())))
        .collect();
    let markers: Vec<Vec<u8>> = groups
        .iter()
        .map(|(label, _)| format!("<mvdp-mc-probe-{label}>").into_bytes())
        .collect();
    for ((_, group), marker) in groups.iter().zip(&markers) {
        send_raw(&rig.wire, WIRE_IF, &udp_to_group(wire_mac, *group, marker));
    }
    let mut table: Table = groups
        .iter()
        .map(|(label, _)| (label.to_string(), BTreeMap::new()))
        .collect();
    std::thread::sleep(LINGER);
    for (name, capture) in captures {
        for f in capture.finish(Duration::ZERO) {
            for ((label, _), marker) in groups.iter().zip(&markers) {
                if f.windows(marker.len()).any(|w| w == marker.as_slice()) {
                    *table
                        .get_mut(*label)
                        .expect("a row per probe")
                        .entry(name.clone())
                        .or_default() += 1;
                }
            }
        }
    }
    table
}

/// The table `probe` should return: each label received once by `who`.
fn expect(rows: &[(&str, &[&str])]) -> Table {
    rows.iter()
        .map(|(label, who)| {
            (
                label.to_string(),
                who.iter().map(|c| (c.to_string(), 1)).collect(),
            )
        })
        .collect()
}

/// Waits until `mvdp endpoint list` shows each container (by name) with
/// exactly the groups given.
fn wait_groups(rig: &Rig, d: &Daemon, want: &[(&str, &[IpAddr])]) {
    let want: BTreeMap<String, Vec<String>> = want
        .iter()
        .map(|(name, groups)| {
            let mut g: Vec<String> = groups.iter().map(|&g| fmt_mac(&group_mac(g))).collect();
            g.sort();
            (name.to_string(), g)
        })
        .collect();
    let mut last = BTreeMap::new();
    let ok = wait_until(TABLE_DEADLINE, || {
        last = endpoint_list(rig)
            .iter()
            .filter_map(|e| {
                let name = e["name"].as_str()?.to_string();
                let mut groups: Vec<String> = e["groups"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|g| Some(g.as_str()?.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                groups.sort();
                want.contains_key(&name).then_some((name, groups))
            })
            .collect();
        last == want
    });
    assert!(ok, "group table: want {want:?}, have {last:?}\n{}", d.log());
}

/// Starts mvdp on `rig` with c1 and c2 as veth endpoints and c3 as a TAP,
/// the network's `multicast` key set to `multicast` (None: the default).
fn start(rig: &Rig, multicast: Option<&str>) -> Daemon {
    let mut toml = rig.base_toml("");
    if let Some(m) = multicast {
        toml = toml.replacen(
            "mode = \"bridge\"",
            &format!("mode = \"bridge\"\nmulticast = \"{m}\""),
            1,
        );
        assert!(toml.contains("multicast"), "config not patched:\n{toml}");
    }
    for c in &rig.containers {
        let kind = if c.name == "c3" { "tap" } else { "veth" };
        toml.push_str(&rig.endpoint_toml(c, kind));
    }
    start_with(rig, &toml)
}

/// Starts mvdp on `rig` with the config `toml`; ready when every
/// container has its interface.
fn start_with(rig: &Rig, toml: &str) -> Daemon {
    let mut d = Daemon::start(rig, toml);
    d.wait_ready(Duration::from_secs(20));
    for c in &rig.containers {
        assert!(
            wait_until(Duration::from_secs(5), || link_exists(&c.ns, c.ifname())),
            "{} has no {}\n{}",
            c.name,
            c.ifname(),
            d.log()
        );
    }
    d
}

/// A rig of three containers; c2's kernel speaks an older protocol
/// version where `c2_sysctl` says so (IGMPv2, MLDv1).
fn rig(c2_sysctl: Option<&str>) -> Rig {
    let rig = Rig::with_prefix("mc", 3, 1);
    if let Some(key) = c2_sysctl {
        let version = if key.contains("igmp") { "2" } else { "1" };
        rig.container(2).ns.set_sysctl(key, version);
    }
    rig
}

/// c2 speaks IGMPv2: reports to the group itself, leaves to 224.0.0.2.
const IGMPV2: &str = "net/ipv4/conf/all/force_igmp_version";
/// c2 speaks MLDv1.
const MLDV1: &str = "net/ipv6/conf/all/force_mld_version";

fn needs() -> bool {
    require_privileges() && require_command("python3", "python3")
}

/// Turns IPv6 on for a container's eth0 (the rig turns it off everywhere),
/// without duplicate address detection so that MLD reports leave at once.
fn enable_ipv6(c: &Container) {
    c.ns.set_sysctl(&format!("net/ipv6/conf/{}/accept_dad", c.ifname()), "0");
    c.ns.set_sysctl(&format!("net/ipv6/conf/{}/disable_ipv6", c.ifname()), "0");
}

/// Checks the table against `want`, with both printed on failure.
fn assert_table(what: &str, got: &Table, want: &Table, d: &Daemon) {
    assert_eq!(got, want, "{what}: who received which group\n{}", d.log());
}

#[test]
fn mc_igmp_v3_and_v2_members_only_until_they_leave() {
    if !needs() {
        return;
    }
    let rig = rig(Some(IGMPV2));
    let mut d = start(&rig, None);
    let (c1, c2, c3) = (rig.container(1), rig.container(2), rig.container(3));
    let m1 = Member::join(c1, G1.into());
    let m2 = Member::join(c2, G2.into());
    let _m3 = Member::join(c3, G1.into());
    wait_groups(
        &rig,
        &d,
        &[
            ("c1", &[G1.into()]),
            ("c2", &[G2.into()]),
            ("c3", &[G1.into()]),
        ],
    );
    let probes = [
        ("g1", IpAddr::from(G1)),
        ("g2", G2.into()),
        ("g3", G3.into()),
        ("link-local", LINK_LOCAL.into()),
    ];
    assert_table(
        "joined",
        &probe(&rig, &probes),
        &expect(&[
            ("g1", &["c1", "c3"]),
            ("g2", &["c2"]),
            ("g3", &[]),
            ("link-local", &["c1", "c2", "c3"]),
        ]),
        &d,
    );
    // A container's own group frame reaches the other members only.
    let capture: Vec<(&str, Capture)> = [c1, c3]
        .iter()
        .map(|c| (c.name.as_str(), Capture::start(&c.ns, c.ifname())))
        .collect();
    let marker = b"mvdp-mc-from-c2";
    send_raw(
        &c2.ns,
        c2.ifname(),
        &udp_to_group(c2.mac(), G1.into(), marker),
    );
    for (name, cap) in capture {
        let got = cap.finish_matching(LINGER, |f| f.windows(marker.len()).any(|w| w == marker));
        assert_eq!(got.len(), 1, "c2's frame to g1 at {name}");
    }
    // A querier on the wire: the query reaches every container and is
    // noted, and each member answers with a report, which mvdp snoops.
    let joins = |d: &Daemon| d.metric_sum("mvdp_multicast_reports_total", &[("kind", "join")]);
    let before = joins(&d).unwrap_or(0.0);
    send_raw(
        &rig.wire,
        WIRE_IF,
        &igmp_query(link_mac(&rig.wire, WIRE_IF)),
    );
    let answered = wait_until(TABLE_DEADLINE, || {
        d.metric_sum("mvdp_multicast_reports_total", &[("kind", "query")]) >= Some(1.0)
            && joins(&d).unwrap_or(0.0) >= before + 3.0
    });
    assert!(
        answered,
        "no query noted, or not every member answered it: {:?} joins before, {:?} now\n{}",
        before,
        joins(&d),
        d.log()
    );

    m1.leave();
    m2.leave();
    wait_groups(&rig, &d, &[("c1", &[]), ("c2", &[]), ("c3", &[G1.into()])]);
    assert_table(
        "after c1 and c2 left",
        &probe(&rig, &probes),
        &expect(&[
            ("g1", &["c3"]),
            ("g2", &[]),
            ("g3", &[]),
            ("link-local", &["c1", "c2", "c3"]),
        ]),
        &d,
    );
    let samples = settled(&d);
    assert_accounting(&samples);
    assert_eq!(
        value(&samples, "mvdp_multicast_groups", &[("network", NETWORK)]),
        1.0,
        "only g1 is left"
    );
    assert!(
        value(
            &samples,
            "mvdp_multicast_reports_total",
            &[("kind", "leave")]
        ) >= 2.0
    );
    assert!(
        value(
            &samples,
            "mvdp_drops_total",
            &[("reason", "no_group_member")]
        ) >= 3.0,
        "g3 twice and g2 once reached nobody"
    );
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn mc_mld_v2_and_v1_members_only_until_they_leave() {
    if !needs() {
        return;
    }
    let rig = rig(Some(MLDV1));
    let mut d = start(&rig, None);
    let (c1, c2) = (rig.container(1), rig.container(2));
    enable_ipv6(c1);
    enable_ipv6(c2);
    let m1 = Member::join(c1, G1_V6.into());
    let m2 = Member::join(c2, G2_V6.into());
    wait_groups(
        &rig,
        &d,
        &[
            ("c1", &[G1_V6.into()]),
            ("c2", &[G2_V6.into()]),
            ("c3", &[]),
        ],
    );
    let probes = [
        ("g1", IpAddr::from(G1_V6)),
        ("g2", G2_V6.into()),
        ("all-nodes", ALL_NODES.into()),
    ];
    assert_table(
        "joined",
        &probe(&rig, &probes),
        &expect(&[
            ("g1", &["c1"]),
            ("g2", &["c2"]),
            ("all-nodes", &["c1", "c2", "c3"]),
        ]),
        &d,
    );
    m1.leave();
    m2.leave();
    wait_groups(&rig, &d, &[("c1", &[]), ("c2", &[])]);
    assert_table(
        "after they left",
        &probe(&rig, &probes),
        &expect(&[("g1", &[]), ("g2", &[]), ("all-nodes", &["c1", "c2", "c3"])]),
        &d,
    );
    assert_accounting(&settled(&d));
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn mc_flood_mode_sends_every_group_to_every_container_until_it_snoops() {
    if !needs() {
        return;
    }
    let rig = rig(None);
    let mut d = start(&rig, Some("flood"));
    let (c1, c2) = (rig.container(1), rig.container(2));
    enable_ipv6(c2);
    let _m1 = Member::join(c1, G1.into());
    let _m2 = Member::join(c2, G1_V6.into());
    let probes = [("g1", IpAddr::from(G1)), ("g3", G3.into())];
    assert_table(
        "flood",
        &probe(&rig, &probes),
        &expect(&[("g1", &["c1", "c2", "c3"]), ("g3", &["c1", "c2", "c3"])]),
        &d,
    );
    // Nothing is learned on a flood network.
    wait_groups(&rig, &d, &[("c1", &[]), ("c2", &[])]);
    // Switched to snoop (SIGHUP): mvdp queries the containers, which
    // report the groups they joined while nobody listened.
    let snoop = std::fs::read_to_string(d.config_path())
        .expect("read the config")
        .replace("multicast = \"flood\"", "multicast = \"snoop\"");
    std::fs::write(d.config_path(), snoop).expect("write the config");
    d.signal(libc::SIGHUP);
    wait_groups(
        &rig,
        &d,
        &[("c1", &[G1.into()]), ("c2", &[G1_V6.into()]), ("c3", &[])],
    );
    let probes = [
        ("g1", IpAddr::from(G1)),
        ("g1v6", G1_V6.into()),
        ("g3", G3.into()),
    ];
    assert_table(
        "snoop after flood",
        &probe(&rig, &probes),
        &expect(&[("g1", &["c1"]), ("g1v6", &["c2"]), ("g3", &[])]),
        &d,
    );
    assert_accounting(&settled(&d));
    assert!(d.stop().success(), "{}", d.log());
}

/// The joins of the differential test: c1 joins g1 (IGMPv3) and, over
/// IPv6, g1v6 (MLDv2); c2 joins g2 with IGMPv2; c3 joins nothing.
fn differential_joins(rig: &Rig) -> Vec<Member> {
    let (c1, c2) = (rig.container(1), rig.container(2));
    enable_ipv6(c1);
    vec![
        Member::join(c1, G1.into()),
        Member::join(c1, G1_V6.into()),
        Member::join(c2, G2.into()),
    ]
}

/// The differential's probes. Its link-local group is 224.0.0.1, which
/// every container joined: for a link-local group nobody joined (mDNS's
/// 224.0.0.251 in the other tests) mvdp differs on purpose. It sends every
/// link-local group to every container, as a snooping switch must (RFC 4541
/// 2.1.2), where the kernel's macvlan filters by each device's list (the
/// container's stack would drop the frame anyway).
const DIFFERENTIAL_PROBES: [(&str, IpAddr); 5] = [
    ("g1", IpAddr::V4(G1)),
    ("g2", IpAddr::V4(G2)),
    ("g3", IpAddr::V4(G3)),
    ("g1v6", IpAddr::V6(G1_V6)),
    ("all-hosts", IpAddr::V4(ALL_HOSTS)),
];

/// The link-layer groups on a container's `eth0` (`ip maddr`): what the
/// kernel's macvlan filters by.
fn maddrs(c: &Container) -> Vec<[u8; 6]> {
    c.ns.ip(&["maddr", "show", "dev", c.ifname()])
        .lines()
        .filter_map(|l| {
            // "link  01:00:5e:00:00:01 users 2"
            let mac = l.trim().strip_prefix("link")?.split_whitespace().next()?;
            let b: Vec<u8> = mac
                .split(':')
                .filter_map(|x| u8::from_str_radix(x, 16).ok())
                .collect();
            b.try_into().ok()
        })
        .collect()
}

/// One kernel macvlan rig (bridge mode) with the differential's joins.
fn kernel_table() -> Table {
    let rig = rig(Some(IGMPV2));
    let containers: Vec<&Container> = rig.containers.iter().collect();
    add_kernel_macvlans(&rig, "bridge", &containers, &[]);
    let members = differential_joins(&rig);
    let mut table = probe(&rig, &DIFFERENTIAL_PROBES);
    // The kernel's macvlan now and then hands a group frame to a
    // non-member too: its per-device filters are 256-bit hashes of the
    // group MAC (`mc_hash` in drivers/net/macvlan.c). Seen here for
    // 239.1.2.4 (joined by c2 alone) at c1 or c3 in most runs, never for
    // the other groups; why that one, not found out. mvdp's table is exact,
    // so the reference is what the kernel delivered to the devices whose
    // multicast list (`ip maddr`) holds the group.
    for (label, group) in DIFFERENTIAL_PROBES {
        let row = table.get_mut(label).expect("a row per probe");
        row.retain(|name, _| {
            let c = rig
                .containers
                .iter()
                .find(|c| &c.name == name)
                .expect("a rig container");
            let member = maddrs(c).contains(&group_mac(group));
            if !member {
                println!("kernel macvlan: {label} reached {name}, not a member (left out)");
            }
            member
        });
    }
    drop(members);
    table
}

#[test]
fn mc_deliveries_match_the_kernel_macvlan() {
    if !needs() {
        return;
    }
    // The kernel's macvlan filters group frames per device by the
    // device's multicast address list: a non-member does not get them.
    let kernel = kernel_table();
    let rig = rig(Some(IGMPV2));
    let mut d = start(&rig, None);
    let members = differential_joins(&rig);
    wait_groups(
        &rig,
        &d,
        &[
            ("c1", &[G1.into(), G1_V6.into()]),
            ("c2", &[G2.into()]),
            ("c3", &[]),
        ],
    );
    let mvdp = probe(&rig, &DIFFERENTIAL_PROBES);
    drop(members);
    println!("kernel macvlan: {kernel:?}\nmvdp:           {mvdp:?}");
    assert_eq!(
        mvdp, kernel,
        "mvdp's group deliveries differ from the kernel macvlan's"
    );
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn mc_a_restart_keeps_the_members() {
    if !needs() {
        return;
    }
    let rig = rig(None);
    let c1 = rig.container(1);
    // c1's unsolicited reports all leave within milliseconds of its join
    // (default: up to 1 s apart), so that none reaches the next start: what
    // that one learns, it learns from its query.
    c1.ns.set_sysctl(
        "net/ipv4/conf/default/igmpv3_unsolicited_report_interval",
        "10",
    );
    let mut d = start(&rig, None);
    let _m1 = Member::join(c1, G1.into());
    wait_groups(&rig, &d, &[("c1", &[G1.into()])]);
    let toml = std::fs::read_to_string(d.config_path()).expect("read the config");
    // Killed: the endpoints stay, and the next start takes them over with
    // an empty table; it queries their containers, which report again.
    d.signal(libc::SIGKILL);
    assert!(
        d.wait_exit(Duration::from_secs(5)).is_some(),
        "mvdp survived SIGKILL"
    );
    let mut d = start_with(&rig, &toml);
    wait_groups(&rig, &d, &[("c1", &[G1.into()]), ("c2", &[]), ("c3", &[])]);
    assert!(
        wait_until(TABLE_DEADLINE, || d
            .log()
            .contains("network lan: queried its containers")),
        "the new start did not query the containers it took over\n{}",
        d.log()
    );
    assert_table(
        "after a restart",
        &probe(&rig, &[("g1", IpAddr::from(G1))]),
        &expect(&[("g1", &["c1"])]),
        &d,
    );
    assert!(d.stop().success(), "{}", d.log());
}
