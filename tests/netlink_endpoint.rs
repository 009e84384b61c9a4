//! Privileged: endpoint interfaces built by `control::netlink` in throwaway
//! namespaces.
//!
//! Each test makes a "host" namespace standing in for mvdp's own and a
//! "container" namespace, runs `create_endpoint` inside the host one through
//! `in_netns`, and inspects the result with `ip`/`ethtool`. The root namespace
//! is never touched; both namespaces are deleted in `Drop`, even on panic.

mod common;

use std::io::Read;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{link_exists, list_links, require, unique, Needs, Netns};
use mvdp::control::netlink::{
    create_endpoint, delete_link, in_netns, link_index, link_mac, EndpointLink, EndpointLinkSpec,
    LinkKind, NetlinkError,
};
use mvdp::wire::MacAddr;

/// A fresh namespace named `mvtB-<tag>-<unique suffix>`.
fn netns(tag: &str) -> Netns {
    Netns::new(&unique(&format!("mvtB-{tag}-")))
}

fn have_ethtool() -> bool {
    Command::new("ethtool").arg("--version").output().is_ok()
}

fn spec<'a>(
    kind: LinkKind,
    host_ifname: &'a str,
    netns_path: &'a Path,
    mac: MacAddr,
    addr: Ipv4Addr,
    gateway: Option<Ipv4Addr>,
) -> EndpointLinkSpec<'a> {
    EndpointLinkSpec {
        kind,
        host_ifname,
        netns_path,
        ifname: "eth0",
        mac,
        addr,
        prefix_len: 24,
        gateway,
        addr6: None,
        gateway6: None,
        queues: 2,
        tx_offload: false,
        mtu: 1500,
        handoff: false,
    }
}

/// `create_endpoint` run inside `host`, as mvdp would run it in its own netns.
fn create_in(host: &Netns, spec: &EndpointLinkSpec) -> Result<EndpointLink, NetlinkError> {
    in_netns(&host.path(), || create_endpoint(spec)).expect("enter host netns")
}

/// The container end as the tests expect it: name, MAC, address, up, route,
/// `lo` up, TX checksum offload off.
fn assert_container_side(c: &Netns, mac: MacAddr, addr: &str, gateway: &str) {
    let link = c.ip(&["-o", "link", "show", "dev", "eth0"]);
    assert!(link.contains(&format!("link/ether {mac}")), "{link}");
    let flags = link
        .split('<')
        .nth(1)
        .and_then(|s| s.split('>').next())
        .unwrap_or("");
    assert!(flags.split(',').any(|f| f == "UP"), "eth0 not up: {link}");
    let lo = c.ip(&["-o", "link", "show", "dev", "lo"]);
    assert!(lo.contains(",UP"), "lo not up: {lo}");
    let addrs = c.ip(&["-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(addrs.contains(&format!("inet {addr}/24")), "{addrs}");
    let route = c.ip(&["-4", "route", "show", "default"]);
    assert!(
        route.contains(&format!("default via {gateway} dev eth0")),
        "{route}"
    );
    // The library's own lookups agree, run from inside the container netns.
    let (index, got_mac, missing) = in_netns(&c.path(), || {
        (
            link_index("eth0").unwrap(),
            link_mac("eth0").unwrap(),
            link_index("mvtB-nope").unwrap(),
        )
    })
    .unwrap();
    assert!(index.is_some());
    assert_eq!(got_mac, Some(mac));
    assert_eq!(missing, None);
}

fn assert_tx_checksum_off(c: &Netns) {
    if !have_ethtool() {
        eprintln!("SKIP (partial): ethtool is not installed; TX checksum offload not checked");
        return;
    }
    let out = c.exec(&["ethtool", "-k", "eth0"]);
    assert!(out.status.success(), "ethtool -k eth0 failed");
    let features = String::from_utf8_lossy(&out.stdout);
    assert!(features.contains("tx-checksumming: off"), "{features}");
}

#[test]
fn veth_endpoint_is_configured_pingable_and_deleted() {
    if !require(Needs::Root) {
        return;
    }
    let host = netns("veth-h");
    let c = netns("veth-c");
    let mac: MacAddr = "02:42:0a:c8:00:02".parse().unwrap();
    let cpath = c.path();
    let s = spec(
        LinkKind::Veth,
        "mvtB-veth0",
        &cpath,
        mac,
        Ipv4Addr::new(10, 200, 0, 2),
        Some(Ipv4Addr::new(10, 200, 0, 1)),
    );
    let ep = create_in(&host, &s).expect("create veth endpoint");
    assert_eq!(ep.host_ifname, "mvtB-veth0");
    assert!(ep.tap.is_none());

    assert_container_side(&c, mac, "10.200.0.2", "10.200.0.1");
    assert_tx_checksum_off(&c);
    let details = c.ip(&["-d", "link", "show", "dev", "eth0"]);
    assert!(details.contains("numtxqueues 2 numrxqueues 2"), "{details}");
    assert!(
        !list_links(&c).iter().any(|l| l.starts_with("mvp")),
        "temp name left: {:?}",
        list_links(&c)
    );

    // Host end: present in the host netns under the right index, up, IPv6 off.
    let hlink = host.ip(&["-o", "link", "show", "dev", "mvtB-veth0"]);
    assert!(
        hlink.starts_with(&format!("{}: ", ep.host_ifindex)),
        "{hlink}"
    );
    assert!(hlink.contains(",UP"), "{hlink}");
    let hdetails = host.ip(&["-d", "link", "show", "dev", "mvtB-veth0"]);
    assert!(
        hdetails.contains("numtxqueues 2 numrxqueues 2"),
        "{hdetails}"
    );
    let v6 = host.exec(&["cat", "/proc/sys/net/ipv6/conf/mvtB-veth0/disable_ipv6"]);
    assert_eq!(
        String::from_utf8_lossy(&v6.stdout).trim(),
        "1",
        "IPv6 still enabled on the host end"
    );

    // The same endpoint again takes the pair over as it is (what a restarted
    // daemon does): same host end, the container's interface untouched.
    let ifindex = || {
        String::from_utf8_lossy(&c.exec(&["cat", "/sys/class/net/eth0/ifindex"]).stdout)
            .into_owned()
    };
    let c_index = ifindex();
    let again = create_in(&host, &s).expect("take the pair over");
    assert!(again.adopted, "{again:?}");
    assert_eq!(again.host_ifindex, ep.host_ifindex);
    assert_eq!(ifindex(), c_index);

    // A host name held by an interface mvdp did not create is refused, and
    // that interface survives.
    host.ip(&[
        "link",
        "add",
        "mvtB-other",
        "type",
        "veth",
        "peer",
        "name",
        "mvtB-otherp",
    ]);
    let mut other = s.clone();
    other.host_ifname = "mvtB-other";
    other.ifname = "eth1";
    let err = create_in(&host, &other).unwrap_err();
    eprintln!("foreign host end: {err}");
    assert!(matches!(err, NetlinkError::Exists { .. }), "{err}");
    assert!(link_exists(&host, "mvtB-other") && !link_exists(&c, "eth1"));
    host.ip(&["link", "del", "mvtB-other"]);
    assert!(link_exists(&host, "mvtB-veth0") && link_exists(&c, "eth0"));

    // Sanity: the pair carries traffic (the host end gets an address only here).
    host.ip(&["addr", "add", "10.200.0.1/24", "dev", "mvtB-veth0"]);
    let out = c.exec(&["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.200.0.1"]);
    assert!(
        out.status.success(),
        "ping through the veth endpoint failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // delete_link removes both ends; deleting again is fine.
    in_netns(&host.path(), || delete_link("mvtB-veth0"))
        .unwrap()
        .expect("delete_link");
    assert!(!link_exists(&host, "mvtB-veth0"));
    assert!(!link_exists(&c, "eth0"));
    in_netns(&host.path(), || delete_link("mvtB-veth0"))
        .unwrap()
        .expect("delete_link of a missing link is Ok");
}

#[test]
fn tap_endpoint_is_configured_and_vanishes_with_its_fd() {
    if !require(Needs::Root) {
        return;
    }
    let host = netns("tap-h");
    let c = netns("tap-c");
    let mac: MacAddr = "02:42:0a:c9:00:02".parse().unwrap();
    let cpath = c.path();
    let s = spec(
        LinkKind::Tap,
        "mvtB-tap0",
        &cpath,
        mac,
        Ipv4Addr::new(10, 201, 0, 2),
        Some(Ipv4Addr::new(10, 201, 0, 1)),
    );
    let ep = create_in(&host, &s).expect("create TAP endpoint");
    let tap = ep.tap.expect("TAP endpoint returns its fd");
    assert_eq!(ep.host_ifname, "mvtB-tap0");
    assert!(ep.host_ifindex > 0);
    assert!(
        !link_exists(&host, "mvtB-tap0"),
        "TAP not moved out of the host netns"
    );

    assert_container_side(&c, mac, "10.201.0.2", "10.201.0.1");

    // SAFETY: fcntl(F_GETFL) on a descriptor `tap` keeps open; no pointers.
    let flags = unsafe { libc::fcntl(tap.as_raw_fd(), libc::F_GETFL) };
    assert!(
        flags >= 0 && flags & libc::O_NONBLOCK != 0,
        "TAP fd is blocking"
    );

    // The fd is the container's interface: a ping to the gateway makes the
    // container ARP for it, and the request comes out of the fd (no PI header).
    let _ = c.exec(&["ping", "-c", "1", "-W", "1", "10.201.0.1"]);
    let mut file = std::fs::File::from(tap);
    let mut frame = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut saw_arp = false;
    while Instant::now() < deadline && !saw_arp {
        match file.read(&mut frame) {
            Ok(n) if n >= 14 => saw_arp = frame[6..12] == mac.0 && frame[12..14] == [0x08, 0x06],
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("read TAP fd: {e}"),
        }
    }
    assert!(saw_arp, "no ARP request from {mac} came out of the TAP fd");

    drop(file);
    let deadline = Instant::now() + Duration::from_secs(3);
    while link_exists(&c, "eth0") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!link_exists(&c, "eth0"), "TAP survived its fd");
}

#[test]
fn missing_netns_errors_with_its_path_and_leaks_nothing() {
    if !require(Needs::Root) {
        return;
    }
    let host = netns("nons-h");
    let missing = PathBuf::from(format!(
        "/var/run/netns/mvtB-{}-does-not-exist",
        std::process::id()
    ));
    for kind in [LinkKind::Veth, LinkKind::Tap] {
        let s = spec(
            kind,
            "mvtB-nons0",
            &missing,
            "02:42:0a:ca:00:02".parse().unwrap(),
            Ipv4Addr::new(10, 202, 0, 2),
            None,
        );
        let err = create_in(&host, &s).unwrap_err();
        eprintln!("{kind:?} with a missing netns: {err}");
        assert!(matches!(err, NetlinkError::Netns { .. }), "{kind:?}: {err}");
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{kind:?}: error does not name the path: {err}"
        );
        assert_eq!(
            list_links(&host),
            ["lo"],
            "{kind:?} left an interface behind"
        );
    }

    // A path that opens but is no namespace: the interface is created, the
    // move fails, and the interface must be gone again.
    let not_a_netns = PathBuf::from("/proc/self/ns/uts");
    for kind in [LinkKind::Veth, LinkKind::Tap] {
        let s = spec(
            kind,
            "mvtB-nons1",
            &not_a_netns,
            "02:42:0a:ca:00:03".parse().unwrap(),
            Ipv4Addr::new(10, 202, 0, 3),
            None,
        );
        let err = create_in(&host, &s).unwrap_err();
        eprintln!("{kind:?} with a non-netns path: {err}");
        assert!(
            err.to_string().contains("/proc/self/ns/uts"),
            "{kind:?}: {err}"
        );
        assert_eq!(
            list_links(&host),
            ["lo"],
            "{kind:?} left an interface behind"
        );
    }
}

#[test]
fn failure_after_the_move_deletes_everything() {
    if !require(Needs::Root) {
        return;
    }
    let host = netns("mid-h");
    let c = netns("mid-c");
    let cpath = c.path();
    for kind in [LinkKind::Veth, LinkKind::Tap] {
        // The gateway lies outside 10.203.0.0/24: adding the default route,
        // the last step inside the container, fails with ENETUNREACH.
        let s = spec(
            kind,
            "mvtB-mid0",
            &cpath,
            "02:42:0a:cb:00:02".parse().unwrap(),
            Ipv4Addr::new(10, 203, 0, 2),
            Some(Ipv4Addr::new(192, 0, 2, 1)),
        );
        let err = create_in(&host, &s).unwrap_err();
        let msg = err.to_string();
        eprintln!("{kind:?} failing midway: {msg}");
        assert!(
            msg.contains("default route via 192.0.2.1"),
            "{kind:?}: {msg}"
        );
        assert!(
            msg.contains(&cpath.display().to_string()),
            "{kind:?}: {msg}"
        );
        // Cleanup is synchronous for veth; a closed TAP goes at once too, but
        // allow the kernel a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        while list_links(&c).len() > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            list_links(&host),
            ["lo"],
            "{kind:?} leaked into the host netns"
        );
        assert_eq!(
            list_links(&c),
            ["lo"],
            "{kind:?} leaked into the container netns"
        );
    }
}

#[test]
fn names_too_long_are_refused_before_anything_is_created() {
    // Validation happens before any syscall, so this needs no privileges.
    let path = Path::new("/var/run/netns/unused");
    let mac: MacAddr = "02:42:0a:cc:00:02".parse().unwrap();
    let mut s = spec(
        LinkKind::Veth,
        "mvtB-0123456789a",
        path,
        mac,
        Ipv4Addr::new(10, 204, 0, 2),
        None,
    );
    let err = create_endpoint(&s).unwrap_err();
    assert!(
        matches!(
            err,
            NetlinkError::InvalidName {
                role: "host_ifname",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("mvtB-0123456789a"), "{err}");
    assert!(err.to_string().contains("at most 15"), "{err}");

    s.host_ifname = "mvtB-ok";
    s.ifname = "container-eth-00";
    let err = create_endpoint(&s).unwrap_err();
    assert!(
        matches!(err, NetlinkError::InvalidName { role: "ifname", .. }),
        "{err}"
    );
}

#[test]
fn blocking_calls_work_from_inside_a_tokio_runtime() {
    if !require(Needs::Root) {
        return;
    }
    let host = netns("rt-h");
    let (lo, lo_mac) = in_netns(&host.path(), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { (link_index("lo").unwrap(), link_mac("lo").unwrap()) })
    })
    .unwrap();
    assert_eq!(lo, Some(1), "lo of a fresh netns has ifindex 1");
    assert_eq!(lo_mac, Some(MacAddr([0; 6])));
}
