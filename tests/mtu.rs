//! Per-network MTU and jumbo frames, end to end: the real `mvdp run` on a
//! rig whose wire and parent carry MTU 9000, for veth and TAP endpoints, on
//! the tier `MVDP_TEST_FAST_PATH` picks (`make test` runs both).
//!
//! What each tier carries on this kernel: the fast path (tc, skbs whole)
//! any MTU up to the parent's; the workers (AF_XDP copy mode) MTU 9216, a
//! frame longer than a UMEM frame as a chain of them (AF_XDP multi-buffer,
//! bound because the parent's MTU calls for it; the kernel refuses UMEM
//! frames larger than a page, see the README).

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;

const MIB: usize = 1 << 20;
/// The wire's and the parent's MTU.
const JUMBO: u32 = 9000;
/// The `[parent]` keys of every daemon here.
const PARENT_KEYS: &str = "frame_size = 4096\numem_frames = 2048";

/// A rig with `containers` containers whose wire and parent carry MTU 9000.
fn jumbo_rig(containers: usize) -> Rig {
    let rig = Rig::with_prefix("mt", containers, 1);
    rig.wire.ip(&["link", "set", WIRE_IF, "mtu", "9000"]);
    rig.host.ip(&["link", "set", PARENT_IF, "mtu", "9000"]);
    rig
}

/// The rig's config with `mtu` on its network and one endpoint of each of
/// `kinds` (c1, c2, ...).
fn config(rig: &Rig, mtu: Option<u32>, kinds: &[&str]) -> String {
    let mut toml = rig.base_toml(PARENT_KEYS);
    // The rig's network is the config's last table so far.
    if let Some(mtu) = mtu {
        toml.push_str(&format!("mtu = {mtu}\n"));
    }
    for (c, kind) in rig.containers.iter().zip(kinds) {
        toml.push_str(&rig.endpoint_toml(c, kind));
    }
    toml
}

/// The MTU of `ifname` in `ns`, if it is there.
fn try_mtu_of(ns: &Netns, ifname: &str) -> Option<u32> {
    let out = ns.ip_output(&["-o", "link", "show", "dev", ifname]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    words.find(|w| *w == "mtu")?;
    words.next()?.parse().ok()
}

/// The MTU of `ifname` in `ns`.
fn mtu_of(ns: &Netns, ifname: &str) -> u32 {
    try_mtu_of(ns, ifname).unwrap_or_else(|| panic!("no MTU for {ifname} in {}", ns.name()))
}

/// `ping -M do -s size` from `ns` to `ip`, 3 probes: the don't-fragment bit
/// set, so a path that cannot carry the whole frame fails instead of
/// fragmenting.
fn ping_df(ns: &Netns, ip: Ipv4Addr, size: u32) -> bool {
    let size = size.to_string();
    let ip = ip.to_string();
    let args = [
        "ping", "-q", "-n", "-M", "do", "-s", &size, "-c", "3", "-i", "0.2", "-W", "1", "-w", "4",
        &ip,
    ];
    let out = ns.exec(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    // With -w, ping may send a probe more while replies are slow: what
    // counts is that none was lost.
    if !out.status.success() || !text.contains(" 0% packet loss") {
        eprintln!(
            "ping -M do -s {size} from {} to {ip}:\n{text}{}",
            ns.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        return false;
    }
    true
}

/// The host end of endpoint `name`'s veth in the host namespace (`mv<id>-<name>`).
fn host_end(rig: &Rig, name: &str) -> String {
    list_links(&rig.host)
        .into_iter()
        .find(|l| l.starts_with("mv") && l.ends_with(&format!("-{name}")))
        .unwrap_or_else(|| panic!("no host end for {name}: {:?}", list_links(&rig.host)))
}

/// Pings that fill the MTU with DF set and 4 MiB TCP transfers, wire <->
/// container and container <-> container, for endpoints of `kind` on a
/// network with `mtu = 9000`: through the fast path or the workers'
/// multi-buffer chains (a TAP's always).
fn jumbo_end_to_end(kind: &str) {
    if !require_privileges() {
        return;
    }
    let mtu = JUMBO;
    let rig = jumbo_rig(2);
    let mut d = Daemon::start(&rig, &config(&rig, Some(mtu), &[kind, kind]));
    d.wait_ready(Duration::from_secs(20));
    let (c1, c2) = (rig.container(1), rig.container(2));
    assert!(
        d.log().contains("AF_XDP multi-buffer"),
        "a 9000 parent binds the workers for chains\n{}",
        d.log()
    );

    // The container end gets the network's MTU, and so does a veth's host end.
    for c in [c1, c2] {
        assert_eq!(mtu_of(&c.ns, c.ifname()), mtu, "{} ({kind})", c.name);
        if kind == "veth" {
            assert_eq!(mtu_of(&rig.host, &host_end(&rig, &c.name)), mtu);
        }
    }

    let size = mtu - 28;
    assert!(
        ping_df(&rig.wire, c1.ip, size),
        "wire -> c1 ({kind}), {mtu}-byte DF ping\n{}",
        d.log()
    );
    assert!(ping_df(&c1.ns, WIRE_IP, size), "c1 -> wire ({kind})");
    assert!(ping_df(&c1.ns, c2.ip, size), "c1 -> c2 ({kind})");
    assert!(ping_df(&c2.ns, c1.ip, size), "c2 -> c1 ({kind})");

    // TCP at this MTU, byte-exact, connections opened both ways.
    tcp_transfer(&c1.ns, c1.ip, &rig.wire, 4 * MIB).expect("TCP wire -> c1 server");
    tcp_transfer(&rig.wire, WIRE_IP, &c2.ns, 4 * MIB).expect("TCP c2 -> wire server");
    tcp_transfer(&c2.ns, c2.ip, &c1.ns, 4 * MIB).expect("TCP c1 -> c2 server");

    let samples = settled(&d);
    assert_accounting(&samples);
    assert_eq!(
        value(&samples, "mvdp_drops_total", &[("reason", "too_long")]),
        0.0,
        "nothing above the MTU was sent"
    );
    assert!(d.stop().success(), "mvdp exit\n{}", d.log());
}

#[test]
fn mt_jumbo_frames_end_to_end_veth() {
    jumbo_end_to_end("veth");
}

/// Jumbo group frames, which the workers flood whatever the tier: a
/// 9014-byte broadcast from the wire reaches both containers (a veth and a
/// TAP), and one from a container reaches the other and the wire, whole.
#[test]
fn mt_jumbo_group_frames_reach_every_container() {
    if !require_privileges() {
        return;
    }
    let rig = jumbo_rig(2);
    let mut d = Daemon::start(&rig, &config(&rig, Some(JUMBO), &["veth", "tap"]));
    d.wait_ready(Duration::from_secs(20));
    let (c1, c2) = (rig.container(1), rig.container(2));
    // Small broadcasts pass (ARP works), so the path is there.
    assert!(ping_df(&rig.wire, c1.ip, 1000), "wire -> c1\n{}", d.log());
    assert!(ping_df(&rig.wire, c2.ip, 1000), "wire -> c2\n{}", d.log());
    let big = |src: [u8; 6], mark: u8| {
        let mut f = eth_frame(BROADCAST, src, ETHERTYPE_TEST, &[mark]);
        f.resize(JUMBO as usize + 14, mark);
        f
    };
    let ours = |mark: u8| {
        move |f: &[u8]| f.len() >= 15 && f[12..14] == ETHERTYPE_TEST.to_be_bytes() && f[14] == mark
    };
    let from_wire = big([0x52, 0x54, 0, 0, 0, 0x99], 0xc0);
    let from_c1 = big(c1.mac(), 0xc1);
    let caps: Vec<Capture> = [c1, c2]
        .iter()
        .map(|c| Capture::start(&c.ns, c.ifname()))
        .collect();
    let wire_cap = Capture::start(&rig.wire, WIRE_IF);
    let tx_bytes = |c: &Container| {
        let labels = [("endpoint", c.name.as_str())];
        d.metric_sum("mvdp_endpoint_tx_bytes_total", &labels)
            .unwrap_or(0.0)
    };
    let before = (tx_bytes(c1), tx_bytes(c2));
    send_raw(&rig.wire, WIRE_IF, &from_wire);
    send_raw(&c1.ns, c1.ifname(), &from_c1);
    // c1 gets one jumbo frame, c2 two.
    let jumbo = f64::from(JUMBO + 14);
    assert!(
        wait_until(Duration::from_secs(5), || tx_bytes(c1) >= before.0 + jumbo
            && tx_bytes(c2) >= before.1 + 2.0 * jumbo),
        "tx bytes c1 {} -> {}, c2 {} -> {}\n{}",
        before.0,
        tx_bytes(c1),
        before.1,
        tx_bytes(c2),
        d.log()
    );
    let mut caps = caps.into_iter();
    let (cap1, cap2) = (caps.next().unwrap(), caps.next().unwrap());
    // c1's own frame is not captured (outgoing frames are left out).
    let got1 = cap1.finish_matching(Duration::from_millis(300), ours(0xc0));
    assert!(
        got1 == vec![from_wire.clone()],
        "c1 got {:?} bytes",
        lens(&got1)
    );
    let got2 = cap2.finish_matching(Duration::from_millis(300), |f| {
        ours(0xc0)(f) || ours(0xc1)(f)
    });
    assert!(
        got2.contains(&from_wire) && got2.contains(&from_c1) && got2.len() == 2,
        "c2 got {:?} bytes\n{}",
        lens(&got2),
        d.log()
    );
    let on_wire = wire_cap.finish_matching(Duration::from_millis(300), ours(0xc1));
    assert!(
        on_wire == vec![from_c1],
        "the wire got {:?} bytes",
        lens(&on_wire)
    );
    let samples = settled(&d);
    assert_accounting(&samples);
    assert_eq!(
        value(&samples, "mvdp_drops_total", &[("reason", "too_long")]),
        0.0
    );
    assert!(d.stop().success(), "mvdp exit\n{}", d.log());
}

/// The lengths of `frames`, for messages.
fn lens(frames: &[Vec<u8>]) -> Vec<usize> {
    frames.iter().map(Vec::len).collect()
}

#[test]
fn mt_jumbo_frames_end_to_end_tap() {
    jumbo_end_to_end("tap");
}

/// `network.mtu = 1500` on a 9000 parent: 3800- and 4000-byte frames from
/// the wire to a veth and to a TAP endpoint are not delivered and are
/// counted as `too_long` (a 4096-byte UMEM frame holds 3840: the workers
/// see the first whole and the second as a chain); frames that fit still
/// pass.
#[test]
fn mt_a_frame_above_the_endpoints_mtu_is_too_long() {
    if !require_privileges() {
        return;
    }
    let rig = jumbo_rig(2);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let mut d = Daemon::start(&rig, &config(&rig, Some(1500), &["veth", "tap"]));
    d.wait_ready(Duration::from_secs(20));
    for c in [c1, c2] {
        assert_eq!(mtu_of(&c.ns, c.ifname()), 1500, "{}", c.name);
        // What fits passes: a full 1500-byte ping with DF set.
        assert!(
            ping_df(&rig.wire, c.ip, 1472),
            "wire -> {}\n{}",
            c.name,
            d.log()
        );
    }

    // TCP across the MTU step (the wire's 9000, the containers' 1500): the
    // MSS keeps segments within 1500, so GRO super-frames on the fast path
    // pass its too_long check.
    tcp_transfer(&c1.ns, c1.ip, &rig.wire, 4 * MIB).expect("TCP wire -> c1 server");
    tcp_transfer(&rig.wire, WIRE_IP, &c2.ns, 4 * MIB).expect("TCP c2 -> wire server");
    assert_eq!(
        d.drops("too_long"),
        0.0,
        "TCP within the MSS is never too long"
    );

    let before = d.drops("too_long");
    let captures: Vec<Capture> = [c1, c2]
        .iter()
        .map(|c| Capture::start(&c.ns, c.ifname()))
        .collect();
    for (i, c) in [c1, c2].into_iter().enumerate() {
        send_raw(&rig.wire, WIRE_IF, &test_frame(c, 3800, 0xa0 + i as u8));
        send_raw(&rig.wire, WIRE_IF, &test_frame(c, 4000, 0xa0 + i as u8));
        // One that fits exactly (1500 + 14), as a control.
        send_raw(&rig.wire, WIRE_IF, &test_frame(c, 1514, 0xb0 + i as u8));
    }
    assert!(
        wait_until(Duration::from_secs(5), || d.drops("too_long")
            >= before + 4.0),
        "too_long: {} before, {} now\n{}",
        before,
        d.drops("too_long"),
        d.log()
    );
    for (i, (c, cap)) in [c1, c2].into_iter().zip(captures).enumerate() {
        let got = cap.finish_matching(Duration::from_millis(300), |f| {
            f.len() >= 14 && f[12..14] == ETHERTYPE_TEST.to_be_bytes()
        });
        let lens: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(
            lens,
            [1514],
            "{}: frames that arrived (marks {:#x})",
            c.name,
            0xa0 + i
        );
    }
    let samples = settled(&d);
    assert_accounting(&samples);
    assert_eq!(
        value(&samples, "mvdp_drops_total", &[("reason", "too_long")]),
        before + 4.0
    );
    for c in [c1, c2] {
        let labels = [("endpoint", c.name.as_str()), ("network", NETWORK)];
        assert!(
            value(&samples, "mvdp_endpoint_dropped_frames_total", &labels) >= 1.0,
            "{}: the drop is its own",
            c.name
        );
    }

    // A runtime network asks for no more than the parent carries.
    let (code, _, err) = mvdp_ctl(
        &rig,
        &[
            "network",
            "add",
            "--name",
            "big",
            "--vlan",
            "20",
            "--subnet",
            "10.78.0.0/24",
            "--mtu",
            "9500",
        ],
    );
    assert_ne!(code, 0, "network add with mtu 9500 on a 9000 parent");
    assert!(err.contains("mtu") && err.contains("9500"), "{err}");
    assert!(d.stop().success(), "mvdp exit\n{}", d.log());
}

/// A network's `mtu` changed in the file: SIGHUP re-creates the network's
/// endpoints with the new MTU, and traffic that fits it flows.
#[test]
fn mt_sighup_applies_a_new_mtu() {
    if !require_privileges() {
        return;
    }
    let rig = jumbo_rig(2);
    let (c1, c2) = (rig.container(1), rig.container(2));
    let toml = config(&rig, Some(2000), &["veth", "tap"]);
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    for c in [c1, c2] {
        assert_eq!(mtu_of(&c.ns, c.ifname()), 2000, "{}", c.name);
    }
    std::fs::write(d.config_path(), toml.replace("mtu = 2000", "mtu = 1400")).unwrap();
    d.signal(libc::SIGHUP);
    for c in [c1, c2] {
        assert!(
            wait_until(Duration::from_secs(10), || try_mtu_of(&c.ns, c.ifname())
                == Some(1400)),
            "{} did not get MTU 1400\n{}",
            c.name,
            d.log()
        );
        assert!(
            ping_df(&rig.wire, c.ip, 1400 - 28),
            "wire -> {}\n{}",
            c.name,
            d.log()
        );
    }
    assert!(d.stop().success(), "mvdp exit\n{}", d.log());
}

/// A raw test frame of `len` bytes from the wire host to container `c`'s MAC.
fn test_frame(c: &Container, len: usize, mark: u8) -> Vec<u8> {
    let mut f = eth_frame(
        c.mac(),
        [0x52, 0x54, 0, 0, 0, 0x99],
        ETHERTYPE_TEST,
        &[mark],
    );
    f.resize(len, mark);
    f
}

/// `mvdp check` refuses a bad `mtu` with exit 78 and names the key: out of
/// range, more than `parent.frame_size` carries, above the parent's MTU.
#[test]
fn mt_check_refuses_a_bad_mtu() {
    if !require_privileges() {
        return;
    }
    let rig = Rig::with_prefix("mt", 0, 1);
    let net = |extra: &str, mtu: u32| {
        format!(
            "[parent]\ninterface = \"{PARENT_IF}\"\n{extra}\n[[network]]\nname = \"lan\"\n\
             subnet = \"10.1.0.0/24\"\nmtu = {mtu}\n"
        )
    };
    let tap = "[[endpoint]]\nname = \"t\"\nnetwork = \"lan\"\nkind = \"tap\"\n\
               netns_path = \"/proc/self/ns/net\"\n";
    let cases = [
        (net("", 20), "network[0] (lan).mtu", "68..=65535"),
        // Every frame through the workers, which carry MTU 9216 at most.
        (
            net("[dataplane]\nfast_path = \"off\"", 9500),
            "network[0] (lan).mtu",
            "at most 9216",
        ),
        (net("", 9500) + tap, "endpoint[0] (t).kind", "TAP"),
        // p0 has MTU 1500 in the rig's host namespace.
        (
            net("", 9000),
            "network[0] (lan).mtu",
            "above the MTU of the parent",
        ),
    ];
    for (toml, key, why) in cases {
        let out = check(&rig, &toml);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "exit code ({why}): {err}");
        assert!(err.contains(key), "{key} not named: {err}");
        assert!(err.contains(why), "{why:?} not in {err}");
    }
    // Within the parent's MTU: fine.
    let out = check(&rig, &net("", 1400));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mvdp check` of `toml` in the rig's host namespace (where `p0` is).
fn check(rig: &Rig, toml: &str) -> std::process::Output {
    let cfg = TempConfig::new(toml);
    std::process::Command::new("ip")
        .args(["netns", "exec", rig.host.name(), MVDP, "check", "--config"])
        .arg(cfg.path())
        .output()
        .expect("run mvdp check")
}

/// A frame `len` bytes long as an AF_XDP socket on `mta` (copy mode, 4096-byte
/// UMEM frames, `flags` added to the bind) receives it from `mtb`, its veth
/// peer, both at MTU 9000: the length and options of each descriptor, or
/// nothing within a second (the kernel dropped it).
fn xsk_receive(ns: &Netns, len: usize, flags: xsk_rs::config::BindFlags) -> Vec<(usize, u32)> {
    use std::os::fd::AsRawFd;
    use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, QueueSize, SocketConfig};

    // A pair of its own: a closed socket's queue is released in deferred work.
    ns.ip(&["link", "add", "mta", "type", "veth", "peer", "name", "mtb"]);
    for ifname in ["mta", "mtb"] {
        ns.ip(&["link", "set", ifname, "mtu", "9000", "up"]);
    }

    let got = ns.in_ns(|| {
        let area = mvdp::io::xsk::create_umem(64, 4096, 64).expect("a UMEM of 4096-byte frames");
        let mut port = mvdp::io::xdp::XdpPort::attach("mta", mvdp::io::xdp::AttachMode::Native)
            .expect("mvdp_port (xdp.frags) on a veth whose peer has MTU 9000");
        let config = SocketConfig::builder()
            .rx_queue_size(QueueSize::new(64).unwrap())
            .tx_queue_size(QueueSize::new(64).unwrap())
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_COPY | flags)
            .build();
        let name = std::ffi::CString::new("mta").unwrap();
        // SAFETY: INHIBIT_PROG_LOAD is set; one socket on this UMEM.
        let (_tx, mut rx, rings) =
            unsafe { xsk_rs::Socket::new(config, &area.umem, &Interface::new(name), 0) }
                .expect("bind an AF_XDP socket");
        let (mut fq, _cq) = rings.expect("the UMEM's fill and completion rings");
        port.set_socket(0, rx.fd().as_raw_fd())
            .expect("socket in the XSKMAP");
        // SAFETY: the frames are this UMEM's, owned by no one else.
        assert_eq!(unsafe { fq.produce(&area.frames[..32]) }, 32);
        let mut frame = eth_frame(
            [0x02, 0, 0, 0, 0, 0xa],
            [0x02, 0, 0, 0, 0, 0xb],
            ETHERTYPE_TEST,
            &[1],
        );
        frame.resize(len, 0x5a);
        send_raw(ns, "mtb", &frame);
        let mut descs = area.frames[32..].to_vec();
        let mut got = Vec::new();
        wait_until(Duration::from_secs(1), || {
            // SAFETY: `descs` are descriptors of this UMEM for the ring to fill in.
            let n = unsafe { rx.consume(&mut descs) };
            got.extend(descs[..n].iter().map(|d| (d.lengths().data(), d.options())));
            got.last().is_some_and(|(_, o)| o & 1 == 0)
        });
        drop(port);
        got
    });
    ns.ip(&["link", "del", "mta"]);
    got
}

/// Platform fact (README, "MTU and jumbo frames"): in copy mode on a veth, a
/// 9000-byte frame does not fit a 4096-byte UMEM frame; the kernel drops it
/// unless the socket is bound with `XDP_USE_SG`, which receives it as a chain
/// of descriptors, all but the last marked `XDP_PKT_CONTD`: what the workers
/// bind for when the parent's MTU is more than a UMEM frame holds.
#[test]
fn mt_platform_af_xdp_multi_buffer_on_a_veth() {
    if !require(Needs::RootAndXdp) {
        return;
    }
    let ns = Netns::new(&unique("mt"));
    // No IPv6: its link-up chatter would reach the socket too.
    ns.set_sysctl("net/ipv6/conf/all/disable_ipv6", "1");
    ns.set_sysctl("net/ipv6/conf/default/disable_ipv6", "1");
    use xsk_rs::config::BindFlags;
    let whole = xsk_receive(&ns, 3000, BindFlags::empty());
    assert_eq!(whole, [(3000, 0)], "a frame that fits one UMEM frame");
    let no_sg = xsk_receive(&ns, 9000, BindFlags::empty());
    assert!(
        no_sg.is_empty(),
        "9000 bytes without XDP_USE_SG: dropped, not {no_sg:?}"
    );
    let chain = xsk_receive(&ns, 9000, BindFlags::XDP_USE_SG);
    eprintln!("9000 bytes with XDP_USE_SG: {chain:?}");
    assert!(chain.len() >= 3, "a chain of descriptors: {chain:?}");
    assert_eq!(chain.iter().map(|(l, _)| l).sum::<usize>(), 9000);
    let (last, first) = chain.split_last().unwrap();
    assert!(
        first.iter().all(|(_, o)| o & 1 == 1) && last.1 & 1 == 0,
        "{chain:?}"
    );
}

/// A host shim on a jumbo network: the shim always goes through the
/// workers, which carry its MTU as chains; host <-> container DF pings at
/// the full MTU and TCP work.
#[test]
fn mt_a_host_shim_on_a_jumbo_network_gets_its_mtu() {
    if !require_privileges() {
        return;
    }
    let rig = jumbo_rig(1);
    let c1 = rig.container(1);
    let toml = config(&rig, Some(JUMBO), &["veth"]).replacen(
        &format!("gateway = \"{WIRE_IP}\""),
        &format!("gateway = \"{WIRE_IP}\"\nhost_shim = \"10.77.0.250\""),
        1,
    );
    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    assert_eq!(mtu_of(&rig.host, "mvshim-lan"), JUMBO);
    assert!(
        ping_df(&rig.host, c1.ip, JUMBO - 28),
        "host -> c1, a full shim MTU\n{}",
        d.log()
    );
    tcp_transfer(&c1.ns, c1.ip, &rig.host, 4 << 20).expect("host -> c1 over the shim");
    assert_eq!(d.drops("too_long"), 0.0, "{}", d.log());
    assert!(d.stop().success(), "{}", d.log());
}
