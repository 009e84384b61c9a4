//! Privileged tests of mvdp's XDP program: attach modes, counters, pass-through
//! of host traffic, endpoint lookups (with and without 802.1Q tags), refusal to
//! replace an attached program, and detaching by `detach()` and by `Drop`.
//!
//! Each test builds its own pair of network namespaces (`mvtC-<test>-a-<unique>`
//! holds `mva`, where the program is attached; `-b-` holds its veth peer `mvb`),
//! which `common::Netns` deletes on drop, even when the test fails.

mod common;

use std::time::{Duration, Instant};

use common::{require, send_raw, unique, Needs, Netns};
use mvdp::io::xdp::{AttachMode, AttachedMode, XdpCounters, XdpError, XdpPort, XdpProgram};
use mvdp::wire::MacAddr;

const IF_A: &str = "mva";
const IF_B: &str = "mvb";
const MAC_A: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x0a]);
const MAC_B: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x0b]);
/// A unicast MAC nobody owns: frames to it are ours alone.
const MAC_EP: MacAddr = MacAddr([0x02, 0x42, 0x0a, 0x63, 0x00, 0x77]);
const IP_A: &str = "10.99.0.1";
const IP_B: &str = "10.99.0.2";
/// IEEE 802 local experimental ethertype, which no stack answers.
const ETHERTYPE_TEST: u16 = 0x88b5;

/// Two namespaces joined by a veth pair; each deletes itself on drop.
struct Rig {
    /// Holds `mva`, where the programs are attached.
    a: Netns,
    /// Holds `mvb`, `mva`'s peer, where test traffic comes from.
    b: Netns,
}

impl Rig {
    fn new(test: &str) -> Rig {
        // Built as locals first: if a step panics, what exists is dropped.
        let a = Netns::new(&unique(&format!("mvtC-{test}-a-")));
        let b = Netns::new(&unique(&format!("mvtC-{test}-b-")));
        let (mac_a, mac_b) = (MAC_A.to_string(), MAC_B.to_string());
        #[rustfmt::skip]
        a.ip(&[
            "link", "add", IF_A, "address", &mac_a, "type", "veth", "peer",
            "name", IF_B, "address", &mac_b, "netns", b.name(),
        ]);
        for (ns, ifname, addr) in [(&a, IF_A, IP_A), (&b, IF_B, IP_B)] {
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", ifname]);
            ns.ip(&["link", "set", ifname, "up"]);
            ns.ip(&["link", "set", "lo", "up"]);
        }
        Rig { a, b }
    }

    /// `ip -d link show` of the XDP side.
    fn link_a(&self) -> String {
        self.a.ip(&["-d", "link", "show", "dev", IF_A])
    }

    /// Pings A from B; true if an echo was answered (ping's exit status).
    fn ping_a_from_b(&self, count: u32) -> bool {
        let count = count.to_string();
        self.b
            .exec(&["ping", "-q", "-c", &count, "-i", "0.2", "-W", "2", IP_A])
            .status
            .success()
    }

    /// Runs `f` on a thread that has entered namespace A, where `mva` lives.
    fn in_a<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.a.in_ns(f)
    }

    /// Sends raw Ethernet frames out of `mvb` (so they arrive on `mva`).
    fn send_from_b(&self, frames: &[Vec<u8>]) {
        for frame in frames {
            send_raw(&self.b, IF_B, frame);
        }
    }
}

/// An Ethernet frame from B to `dst`, optionally 802.1Q-tagged, padded to 60 bytes.
fn frame(dst: MacAddr, vlan: Option<u16>) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&MAC_B.0);
    if let Some(vid) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ETHERTYPE_TEST.to_be_bytes());
    f.resize(60, 0);
    f
}

/// Either of mvdp's XDP programs, for reading counters.
trait Counted {
    fn read(&self) -> Result<XdpCounters, XdpError>;
}

impl Counted for XdpProgram {
    fn read(&self) -> Result<XdpCounters, XdpError> {
        self.counters()
    }
}

impl Counted for XdpPort {
    fn read(&self) -> Result<XdpCounters, XdpError> {
        self.counters()
    }
}

/// How often counters are read while waiting for them.
const POLL: Duration = Duration::from_millis(20);
/// How long counters must stand still to count as settled: a frame still on
/// its way through the veth would move them within this.
const QUIET: Duration = Duration::from_millis(100);
/// Longest wait for counters to settle.
const SETTLE_DEADLINE: Duration = Duration::from_secs(10);

/// Counters once they are consistent (`rx` is the sum of the verdicts; stray
/// frames such as ND or ARP may be mid-count at any single read) and have
/// not moved for [`QUIET`].
fn settled(prog: &impl Counted) -> XdpCounters {
    after_frames(prog, &XdpCounters::default(), 0)
}

/// Counters once the program has seen at least `sent` frames more than
/// `before` and they have settled as in [`settled`]; the test's assertions
/// then compare exact numbers. Panics after [`SETTLE_DEADLINE`].
fn after_frames(prog: &impl Counted, before: &XdpCounters, sent: u64) -> XdpCounters {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    // The last consistent reading and when it was first seen.
    let mut seen: Option<(XdpCounters, Instant)> = None;
    loop {
        let c = prog.read().expect("read counters");
        let consistent =
            c.rx == c.redirect + c.pass_host + c.pass_group + c.no_socket + c.short + c.pass_fast;
        if consistent && seen.is_none_or(|(last, _)| last != c) {
            seen = Some((c, Instant::now()));
        }
        if let Some((last, since)) = seen {
            if last.rx >= before.rx + sent && since.elapsed() >= QUIET {
                return last;
            }
        }
        assert!(
            Instant::now() < deadline,
            "XDP counters did not settle with {sent} more frames within {SETTLE_DEADLINE:?}: \
             {before:?} -> {c:?} (last consistent: {seen:?})"
        );
        std::thread::sleep(POLL);
    }
}

fn has_xdp(link: &str) -> bool {
    link.contains("xdp")
}

#[test]
fn auto_attach_counts_verdicts_and_passes_host_traffic() {
    if !require(Needs::Root) {
        return;
    }
    let rig = Rig::new("auto");
    rig.in_a(|| {
        let mut prog = XdpProgram::attach(IF_A, AttachMode::Auto).expect("attach");
        assert_eq!(
            prog.attached_mode(),
            AttachedMode::Native,
            "veth takes native XDP"
        );
        assert_eq!(prog.ifname(), IF_A);
        let link = rig.link_a();
        assert!(
            has_xdp(&link) && !link.contains("xdpgeneric"),
            "no native xdp in:\n{link}"
        );

        // Host traffic passes: ARP and ICMP to mva's own MAC.
        let c0 = settled(&prog);
        assert!(rig.ping_a_from_b(3), "ping through the XDP program failed");
        let c1 = after_frames(&prog, &c0, 3);
        assert!(c1.rx >= c0.rx + 3, "{c0:?} -> {c1:?}");
        assert!(c1.pass_host >= c0.pass_host + 3, "{c0:?} -> {c1:?}");
        assert_eq!(c1.redirect, 0);

        // Broadcast and multicast are passed for the flood path.
        let mcast = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x42]);
        rig.send_from_b(&[
            frame(MacAddr::BROADCAST, None),
            frame(MacAddr::BROADCAST, None),
            frame(mcast, None),
        ]);
        let c2 = after_frames(&prog, &c1, 3);
        assert!(c2.pass_group >= c1.pass_group + 3, "{c1:?} -> {c2:?}");

        // A frame that claims an 802.1Q tag but ends before it is short.
        let mut runt = frame(MAC_A, None);
        runt.truncate(12);
        runt.extend_from_slice(&0x8100u16.to_be_bytes());
        rig.send_from_b(&[runt]);
        let c3 = after_frames(&prog, &c2, 1);
        assert_eq!(c3.short, c2.short + 1, "{c2:?} -> {c3:?}");

        // An endpoint on VLAN 5 without a socket: tagged frames on VLAN 5 hit
        // it (no_socket, passed); other VLANs and untagged frames miss it.
        prog.add_endpoint(MAC_EP, 5, 7).expect("add endpoint");
        rig.send_from_b(&[frame(MAC_EP, Some(5)), frame(MAC_EP, Some(0x2005))]);
        let c4 = after_frames(&prog, &c3, 2);
        assert_eq!(
            c4.no_socket,
            c3.no_socket + 2,
            "PCP bits are not the VID: {c3:?} -> {c4:?}"
        );
        rig.send_from_b(&[frame(MAC_EP, Some(6)), frame(MAC_EP, None)]);
        let c5 = after_frames(&prog, &c4, 2);
        assert_eq!(c5.no_socket, c4.no_socket, "{c4:?} -> {c5:?}");
        assert!(c5.pass_host >= c4.pass_host + 2, "{c4:?} -> {c5:?}");
        prog.remove_endpoint(MAC_EP, 5).expect("remove endpoint");
        let err = prog.remove_endpoint(MAC_EP, 5).expect_err("removing twice");
        assert!(err.to_string().contains(IF_A), "{err}");
        assert!(matches!(
            prog.add_endpoint(MAC_EP, 4095, 1),
            Err(XdpError::InvalidVlan { .. })
        ));

        // The host's own MAC as an endpoint with no socket: still reaches the host.
        prog.add_endpoint(MAC_A, 0, 1).expect("add endpoint");
        assert!(
            rig.ping_a_from_b(3),
            "ping to an endpoint MAC without a socket failed"
        );
        let c6 = after_frames(&prog, &c5, 3);
        assert!(c6.no_socket >= c5.no_socket + 3, "{c5:?} -> {c6:?}");
        assert_eq!(c6.redirect, 0);

        // Clearing a socket that was never set is harmless.
        prog.clear_socket(0).expect("clear socket");
        assert!(prog.clear_socket(64).is_err(), "queue 64 is out of range");

        // Nobody replaces an attached program, in either mode.
        for mode in [AttachMode::Auto, AttachMode::Native, AttachMode::Skb] {
            let err = XdpProgram::attach(IF_A, mode).expect_err("second attach");
            assert!(
                matches!(err, XdpError::AlreadyAttached { .. }),
                "{mode:?}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(IF_A)
                    && msg.contains("already has XDP program")
                    && msg.contains("`mvdp_xdp` (native mode)"),
                "{msg}"
            );
        }

        prog.detach().expect("detach");
        let link = rig.link_a();
        assert!(!has_xdp(&link), "XDP left behind after detach():\n{link}");
        assert!(rig.ping_a_from_b(1), "ping after detach failed");
    });
}

#[test]
fn skb_mode_is_generic_and_drop_detaches() {
    if !require(Needs::Root) {
        return;
    }
    let rig = Rig::new("skb");
    rig.in_a(|| {
        let prog = XdpProgram::attach(IF_A, AttachMode::Skb).expect("attach");
        assert_eq!(prog.attached_mode(), AttachedMode::Skb);
        let link = rig.link_a();
        assert!(link.contains("xdpgeneric"), "no xdpgeneric in:\n{link}");

        let c0 = settled(&prog);
        assert!(
            rig.ping_a_from_b(2),
            "ping through the generic XDP program failed"
        );
        let c1 = after_frames(&prog, &c0, 2);
        assert!(c1.pass_host >= c0.pass_host + 2, "{c0:?} -> {c1:?}");

        // Native on top of generic is refused too.
        let err = XdpProgram::attach(IF_A, AttachMode::Native).expect_err("native over generic");
        assert!(matches!(err, XdpError::AlreadyAttached { .. }), "{err}");

        drop(prog);
        let link = rig.link_a();
        assert!(!has_xdp(&link), "XDP left behind after drop:\n{link}");
    });
}

#[test]
fn native_drop_detaches_and_frees_the_slot() {
    if !require(Needs::Root) {
        return;
    }
    let rig = Rig::new("drop");
    rig.in_a(|| {
        let prog = XdpProgram::attach(IF_A, AttachMode::Native).expect("attach");
        assert_eq!(prog.attached_mode(), AttachedMode::Native);
        drop(prog);
        let link = rig.link_a();
        assert!(!has_xdp(&link), "XDP left behind after drop:\n{link}");

        // The slot is free again.
        let prog = XdpProgram::attach(IF_A, AttachMode::Auto).expect("re-attach");
        assert_eq!(prog.attached_mode(), AttachedMode::Native);
        prog.detach().expect("detach");
        assert!(!has_xdp(&rig.link_a()));
    });
}

#[test]
fn auto_falls_back_to_skb_without_native_support() {
    if !require(Needs::Root) {
        return;
    }
    let rig = Rig::new("fallback");
    // The macvlan driver has no native XDP (and dummy may not be built here).
    rig.a.ip(&[
        "link", "add", "mvd0", "link", IF_A, "type", "macvlan", "mode", "bridge",
    ]);
    rig.a.ip(&["link", "set", "mvd0", "up"]);
    rig.in_a(|| {
        let err = XdpProgram::attach("mvd0", AttachMode::Native).expect_err("native on macvlan");
        assert!(
            matches!(
                err,
                XdpError::Attach {
                    mode: AttachedMode::Native,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("mvd0"), "{err}");

        let prog = XdpProgram::attach("mvd0", AttachMode::Auto).expect("auto on macvlan");
        assert_eq!(prog.attached_mode(), AttachedMode::Skb);
        prog.detach().expect("detach");
    });
}

#[test]
fn foreign_program_is_never_replaced() {
    if !require(Needs::Root) {
        return;
    }
    let rig = Rig::new("foreign");
    // Someone else's program, attached the legacy way (netlink, no BPF link):
    // the traffic generator's, whose section is plain "xdp".
    let object = concat!(env!("OUT_DIR"), "/gen.bpf.o");
    rig.a.ip(&[
        "link",
        "set",
        "dev",
        IF_A,
        "xdpgeneric",
        "obj",
        object,
        "sec",
        "xdp",
    ]);
    let before = rig.link_a();
    assert!(
        before.contains("xdpgeneric"),
        "foreign program not attached:\n{before}"
    );
    rig.in_a(|| {
        for mode in [AttachMode::Auto, AttachMode::Native, AttachMode::Skb] {
            let err = XdpProgram::attach(IF_A, mode).expect_err("attach over a foreign program");
            let msg = err.to_string();
            assert!(
                matches!(err, XdpError::AlreadyAttached { .. }),
                "{mode:?}: {msg}"
            );
            assert!(msg.contains("(skb mode)") && msg.contains(IF_A), "{msg}");
        }
    });
    assert_eq!(rig.link_a(), before, "the foreign program was touched");
    rig.a.ip(&["link", "set", "dev", IF_A, "xdpgeneric", "off"]);
}

#[test]
fn port_program_takes_every_frame_and_drops_without_socket() {
    if !require(Needs::Root) {
        return;
    }
    let rig = Rig::new("port");
    rig.in_a(|| {
        let port = XdpPort::attach(IF_A, AttachMode::Auto).expect("attach port program");
        assert_eq!(port.attached_mode(), AttachedMode::Native);
        assert_eq!(port.ifname(), IF_A);

        // No socket yet: even broadcasts and the host's own unicast are dropped.
        assert!(
            !rig.ping_a_from_b(1),
            "a container's frames reached the host stack"
        );
        rig.send_from_b(&[frame(MacAddr::BROADCAST, None), frame(MAC_A, None)]);
        // At least one ARP request for A, then the two frames.
        let c = after_frames(&port, &XdpCounters::default(), 3);
        assert!(c.no_socket >= 3, "{c:?}");
        assert_eq!(c.rx, c.no_socket, "{c:?}");

        let err = XdpProgram::attach(IF_A, AttachMode::Auto).expect_err("parent program over port");
        assert!(err.to_string().contains("`mvdp_port`"), "{err}");

        port.detach().expect("detach");
        assert!(!has_xdp(&rig.link_a()));
        // B's neighbour entry for A is stuck INCOMPLETE from above, and ping
        // exits non-zero on the "host unreachable" it reports for it.
        rig.b.ip(&["neigh", "flush", "dev", IF_B]);
        assert!(
            rig.ping_a_from_b(2),
            "ping after detaching the port program failed"
        );
    });
}

#[test]
fn unknown_interface_is_a_clear_error() {
    // Needs no privileges: the name is checked before anything is loaded.
    let err = XdpProgram::attach("mvdp-nope0", AttachMode::Auto).expect_err("attach to nothing");
    assert!(matches!(err, XdpError::NoSuchInterface { .. }), "{err}");
    assert!(err.to_string().contains("mvdp-nope0"), "{err}");
}
