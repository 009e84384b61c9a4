//! Restarts keep containers online (issue 8): after `kill -9` a new mvdp on
//! the same config takes over what the old one left — veth pairs whose
//! container ends are still as wanted, host shims, unicast filter entries —
//! and removes the rest, so every container works again without doing
//! anything itself.

mod common;

use std::time::{Duration, Instant};

use common::*;

const MIB: usize = 1 << 20;
/// The steady stream whose losses measure the outage.
const RATE: u64 = 10_000;
const SHIM_IP: &str = "10.77.0.250";

fn ifindex(ns: &Netns, ifname: &str) -> String {
    ns.run(&["cat", &format!("/sys/class/net/{ifname}/ifindex")])
        .trim()
        .to_string()
}

fn unicast_entries(rig: &Rig) -> String {
    String::from_utf8_lossy(
        &rig.host
            .exec(&["bridge", "fdb", "show", "dev", PARENT_IF])
            .stdout,
    )
    .to_string()
}

#[test]
fn kill_9_then_start_brings_every_container_back() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(3, 1);
    let (c1, c2, c3) = (rig.container(1), rig.container(2), rig.container(3));
    let toml = format!("{}host_shim = \"{SHIM_IP}\"\n", rig.base_toml(""))
        + &rig.endpoint_toml(c1, "veth")
        + &rig.endpoint_toml(c3, "tap");
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    // c2 comes over the control socket: after the shim in id order, before
    // it in the next start's desired state, and still taken over.
    let ip = c2.ip.to_string();
    let (code, _, err) = mvdp_ctl(
        &rig,
        &[
            "endpoint",
            "add",
            "--name",
            "c2",
            "--network",
            NETWORK,
            "--netns",
            c2.ns.name(),
            "--ifname",
            c2.ifname(),
            "--ip",
            &ip,
        ],
    );
    assert_eq!(code, 0, "endpoint add c2: {err}\n{}", d.log());
    for c in [c1, c2, c3] {
        assert!(ping(&rig.wire, c.ip, 2), "wire -> {}\n{}", c.name, d.log());
    }
    let c1_index = ifindex(&c1.ns, c1.ifname());
    let c2_index = ifindex(&c2.ns, c2.ifname());
    let stream = UdpStream::start(&rig.wire, c1, RATE);
    std::thread::sleep(Duration::from_millis(500));

    d.signal(libc::SIGKILL);
    assert!(
        d.wait_exit(Duration::from_secs(5)).is_some(),
        "mvdp survived SIGKILL"
    );
    let killed = Instant::now();
    // The kernel detached the programs with the killed process's link fds:
    // the host has its network while no mvdp runs.
    assert!(
        !xdp_attached(&rig.host, PARENT_IF),
        "XDP left on {PARENT_IF} by the killed mvdp"
    );
    assert_eq!(tcx_programs(&rig.host, PARENT_IF), Vec::<String>::new());

    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    let ready = killed.elapsed();
    assert!(
        wait_until(Duration::from_secs(10), || ping(&rig.wire, c1.ip, 1)),
        "c1 did not come back\n{}",
        d.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let (sent, received, ordered) = stream.finish();
    let lost = sent - received;
    eprintln!(
        "restart outage: {lost} of {sent} datagrams lost at {RATE}/s across kill -9 + start \
         ({:.0} ms of traffic; new daemon ready {:.0} ms after the kill)",
        lost as f64 * 1000.0 / RATE as f64,
        ready.as_secs_f64() * 1000.0
    );
    assert!(ordered, "c1's stream came back out of order");
    assert!(received > 0 && lost < sent, "c1 got nothing ({sent} sent)");

    // Every container works again, without having done anything.
    for c in [c1, c2, c3] {
        assert!(
            ping(&rig.wire, c.ip, 2),
            "wire -> {} after the restart\n{}",
            c.name,
            d.log()
        );
        tcp_transfer(&c.ns, c.ip, &rig.wire, MIB)
            .unwrap_or_else(|e| panic!("TCP wire -> {} after the restart: {e}", c.name));
        let mut links = list_links(&c.ns);
        links.sort();
        assert_eq!(
            links,
            ["eth0", "lo"],
            "{}: interfaces after the restart",
            c.name
        );
    }
    let log = d.log();
    assert_eq!(
        ifindex(&c1.ns, c1.ifname()),
        c1_index,
        "c1's veth was re-created instead of taken over\n{log}"
    );
    assert_eq!(
        ifindex(&c2.ns, c2.ifname()),
        c2_index,
        "c2's veth (added at run time) was re-created instead of taken over\n{log}"
    );
    assert!(log.contains("taken over from an earlier mvdp"), "{log}");
    // The host still reaches the containers through the shim it had.
    assert!(
        ping(&rig.host, c2.ip, 2),
        "host -> c2 through the shim after the restart"
    );
    // Nothing doubled: each endpoint MAC once in the unicast filter.
    let fdb = unicast_entries(&rig);
    for c in [c1, c2, c3] {
        let mac = fmt_mac(&link_mac(&c.ns, c.ifname()));
        assert_eq!(
            fdb.matches(&mac).count(),
            1,
            "{}'s MAC {mac} in {PARENT_IF}'s unicast filter:\n{fdb}",
            c.name
        );
    }
    assert!(d.stop().success(), "{}", d.log());

    // And after a clean stop nothing of either daemon remains.
    rig.assert_host_clean();
    for c in [c1, c2, c3] {
        assert_eq!(list_links(&c.ns), ["lo"], "links left in {}", c.name);
    }
    assert!(!xdp_attached(&rig.host, PARENT_IF));
    assert_eq!(tcx_programs(&rig.host, PARENT_IF), Vec::<String>::new());
    let fdb = unicast_entries(&rig);
    assert!(
        !fdb.contains("02:42:0a:4d"),
        "endpoint MACs left in {PARENT_IF}'s unicast filter:\n{fdb}"
    );
}

/// An endpoint removed from the config while mvdp was dead: the next start
/// deletes its leftover interface and unicast filter entry.
#[test]
fn leftovers_of_endpoints_no_longer_wanted_are_removed() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let both = rig.config_toml("veth", "");
    let mut d = Daemon::start(&rig, &both);
    d.wait_ready(Duration::from_secs(20));
    let c2_mac = fmt_mac(&link_mac(&c2.ns, c2.ifname()));
    d.signal(libc::SIGKILL);
    assert!(d.wait_exit(Duration::from_secs(5)).is_some());

    let only_c1 = rig.base_toml("") + &rig.endpoint_toml(c1, "veth");
    let mut d = Daemon::start(&rig, &only_c1);
    d.wait_ready(Duration::from_secs(20));
    assert!(ping(&rig.wire, c1.ip, 2), "wire -> c1\n{}", d.log());
    assert_eq!(
        list_links(&c2.ns),
        ["lo"],
        "c2's leftover interface is still there"
    );
    assert!(
        !unicast_entries(&rig).contains(&c2_mac),
        "c2's MAC is still in the unicast filter"
    );
    assert!(d.stop().success(), "{}", d.log());
    let mut left = list_links(&rig.host);
    left.sort();
    assert_eq!(left, ["lo", PARENT_IF]);
}

/// A worker that panics stops mvdp at once (status 70) without a teardown,
/// as a kill would: the kernel detaches the programs, the endpoints stay,
/// and the next start takes them over.
#[test]
fn a_worker_that_panics_stops_mvdp_and_the_next_start_takes_over() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(1, 1);
    let c1 = rig.container(1);
    let toml = rig.config_toml("veth", "");
    let mut d = Daemon::start_with(&rig, &toml, &[("MVDP_TEST_WORKER_PANIC_MS", "3000")]);
    d.wait_ready(Duration::from_secs(20));
    assert_eq!(
        d.metric("mvdp_worker_up{queue=\"0\"}"),
        Some(1.0),
        "{}",
        d.metrics()
    );
    let c1_index = ifindex(&c1.ns, c1.ifname());
    let status = d
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("mvdp did not stop after its worker panicked\n{}", d.log()));
    assert_eq!(status.code(), Some(70), "{}", d.log());
    let log = d.log();
    assert!(log.contains("worker for queue 0 died"), "{log}");
    assert!(log.contains("MVDP_TEST_WORKER_PANIC_MS test hook"), "{log}");
    assert!(!xdp_attached(&rig.host, PARENT_IF), "XDP left attached");
    assert_eq!(tcx_programs(&rig.host, PARENT_IF), Vec::<String>::new());
    assert_eq!(
        ifindex(&c1.ns, c1.ifname()),
        c1_index,
        "c1 lost its interface"
    );

    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    assert!(
        ping(&rig.wire, c1.ip, 2),
        "wire -> c1 after the restart\n{}",
        d.log()
    );
    assert_eq!(
        ifindex(&c1.ns, c1.ifname()),
        c1_index,
        "c1's veth was re-created"
    );
    assert!(d.stop().success(), "{}", d.log());
    assert_eq!(list_links(&c1.ns), ["lo"]);
}

/// `keep_endpoints_on_exit = true`: SIGTERM leaves the interfaces for the
/// next start, which takes them over.
#[test]
fn keep_endpoints_on_exit_leaves_them_for_the_next_start() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(2, 1);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let plain = rig.config_toml("veth", "");
    let keep = plain.replace("[control]\n", "[control]\nkeep_endpoints_on_exit = true\n");
    assert_ne!(
        keep, plain,
        "the rig's config has no [control] table to extend"
    );
    let mut d = Daemon::start(&rig, &keep);
    d.wait_ready(Duration::from_secs(20));
    let indexes: Vec<String> = [c1, c2]
        .iter()
        .map(|c| ifindex(&c.ns, c.ifname()))
        .collect();
    assert!(d.stop().success(), "{}", d.log());
    assert!(d.log().contains("kept for the next start"), "{}", d.log());
    assert!(!xdp_attached(&rig.host, PARENT_IF));
    assert_eq!(tcx_programs(&rig.host, PARENT_IF), Vec::<String>::new());
    for (c, index) in [c1, c2].iter().zip(&indexes) {
        assert_eq!(
            &ifindex(&c.ns, c.ifname()),
            index,
            "{}'s interface went",
            c.name
        );
    }

    let mut d = Daemon::start(&rig, &plain);
    d.wait_ready(Duration::from_secs(20));
    for (c, index) in [c1, c2].iter().zip(&indexes) {
        assert!(ping(&rig.wire, c.ip, 2), "wire -> {}\n{}", c.name, d.log());
        assert_eq!(
            &ifindex(&c.ns, c.ifname()),
            index,
            "{} was re-created",
            c.name
        );
    }
    assert!(d.stop().success(), "{}", d.log());
    let mut left = list_links(&rig.host);
    left.sort();
    assert_eq!(left, ["lo", PARENT_IF]);
}
