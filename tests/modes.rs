//! The five macvlan modes, proven against the kernel's macvlan (issue 4),
//! for both tiers: with the kernel fast path on and with every frame
//! through the workers (issue 7).
//!
//! In the spirit of the kernel's
//! `tools/testing/selftests/net/forwarding/local_termination.sh`: for each
//! mode, the same frames ([`probes`]) are sent once through the kernel's
//! macvlan and once through mvdp, each on a fresh rig, and the test compares
//! where every frame arrived and how often. Where mvdp differs on purpose,
//! [`expected_mvdp`] rewrites the kernel's table into mvdp's and says why;
//! everything else must match exactly.
//!
//! The places observed:
//! - `c1`..`c3`: a packet socket on each container's `eth0` (received only);
//! - `wire`: a packet socket on `w0` (received only, not its own sends);
//! - `host`: what the *stack* of `p0` receives ([`StackCapture`]), not every
//!   frame `p0` receives. A plain packet socket on `p0` sees each frame
//!   before macvlan's rx handler takes it, and never one mvdp's XDP program
//!   redirects: that would compare where the two systems look, not where
//!   the frames go.
//!
//! For `vepa` and `private` the wire namespace plays an external switch with
//! hairpin on ([`Reflector`]): frames from a container come back to the
//! parent, as a VEPA-capable switch would send them.
//!
//! The kernel system is what Docker's macvlan driver builds: one macvlan per
//! container on `p0`, with the container's MAC. In passthru mode that MAC
//! becomes `p0`'s too (the kernel does that); the probe "to the host" uses
//! `p0`'s MAC from before.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use common::*;

/// How long captures keep listening after the last frame is sent.
const LINGER: Duration = Duration::from_millis(500);
/// Pause between two sent frames, so a frame's copies are not reordered
/// behind the next one's (they are told apart by marker anyway).
const GAP: Duration = Duration::from_millis(5);
/// A multicast group nobody on the rig joined (mDNS's MAC).
const MCAST_UNJOINED: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
/// 224.0.0.1's group MAC: joined by every interface with an IPv4 address.
const MCAST_ALL_HOSTS: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];
/// A unicast MAC that belongs to nobody.
const UNKNOWN: [u8; 6] = [0x02, 0x99, 0x00, 0x00, 0x00, 0x01];
/// The VLAN no network owns.
const FOREIGN_VID: u16 = 7;
/// EtherType of an 802.1Q tag.
const ETHERTYPE_8021Q: u16 = 0x8100;
/// `place` name of the host's stack (on the parent NIC) in the tables.
const HOST: &str = "host";
/// `place` name of the wire in the tables.
const WIRE: &str = "wire";

/// The macvlan modes, as `ip link ... type macvlan mode` and mvdp's config
/// spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bridge,
    Private,
    Vepa,
    Passthru,
    Source,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Bridge => "bridge",
            Mode::Private => "private",
            Mode::Vepa => "vepa",
            Mode::Passthru => "passthru",
            Mode::Source => "source",
        }
    }

    /// Modes whose endpoint-to-endpoint traffic is only meaningful with an
    /// external hairpin switch.
    fn hairpin(self) -> bool {
        matches!(self, Mode::Vepa | Mode::Private)
    }

    /// How many of the rig's three containers get an interface.
    fn endpoints(self) -> usize {
        if self == Mode::Passthru {
            1
        } else {
            3
        }
    }
}

/// A station or group address of the rig, resolved per rig (the veth MACs
/// are random).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addr {
    /// Container `c<n>` (its `eth0`).
    Container(usize),
    /// The host's parent NIC `p0`, as it was before any macvlan.
    Host,
    /// The wire host's `w0`.
    Wire,
    /// A unicast MAC nobody owns.
    Unknown,
    Broadcast,
    /// A multicast group nobody on the rig joined.
    Multicast,
    /// 224.0.0.1's group, which every interface with IPv4 joins.
    AllHosts,
}

impl Addr {
    fn is_group(self) -> bool {
        matches!(self, Addr::Broadcast | Addr::Multicast | Addr::AllHosts)
    }
}

/// One probe frame: who sends it, with which source MAC, to whom, tagged
/// or not.
#[derive(Debug, Clone)]
struct Probe {
    /// Table key, e.g. `05 wire->bcast`; the number keeps the table in order.
    label: String,
    /// Where it is sent from: the wire, or a container's `eth0`.
    from: Addr,
    /// Its source MAC: `from`'s own, except for spoofed probes.
    src: Addr,
    dst: Addr,
    /// Carries an 802.1Q tag with [`FOREIGN_VID`].
    tagged: bool,
    /// Unique bytes inside the payload that identify this probe's copies.
    marker: Vec<u8>,
}

impl Probe {
    /// Sent by a container under a source MAC that is not its own.
    fn spoofed(&self) -> bool {
        matches!(self.from, Addr::Container(_)) && self.src != self.from
    }
}

/// frame label -> place -> copies that arrived there.
type Table = BTreeMap<String, BTreeMap<String, usize>>;

/// The frames of issue 4, the same for every rig and mode:
/// (sent from, source MAC, destination, tagged).
fn probes() -> Vec<Probe> {
    use Addr::*;
    let plan = [
        (Wire, Wire, Container(1), false),
        (Wire, Wire, Container(2), false),
        (Wire, Wire, Container(3), false),
        (Wire, Wire, Host, false),
        (Wire, Wire, Unknown, false),
        (Wire, Wire, Broadcast, false),
        (Wire, Wire, Multicast, false),
        (Wire, Wire, AllHosts, false),
        (Container(1), Container(1), Container(2), false),
        (Container(1), Container(1), Broadcast, false),
        (Container(1), Container(1), Wire, false),
        (Wire, Wire, Container(1), true),
        (Wire, Wire, Broadcast, true),
        (Container(1), Unknown, Wire, false),
        (Container(1), Unknown, Container(2), false),
    ];
    plan.into_iter()
        .enumerate()
        .map(|(n, (from, src, dst, tagged))| {
            let name = |a: Addr| match a {
                Container(i) => format!("c{i}"),
                Host => HOST.to_string(),
                Wire => WIRE.to_string(),
                Unknown => "unknown".to_string(),
                Broadcast => "bcast".to_string(),
                Multicast => "mcast".to_string(),
                AllHosts => "allhosts".to_string(),
            };
            let sender = if src == from {
                name(from)
            } else {
                format!("{} as {}", name(from), name(src))
            };
            let vlan = if tagged {
                format!(" vlan{FOREIGN_VID}")
            } else {
                String::new()
            };
            Probe {
                label: format!("{n:02} {sender}->{}{vlan}", name(dst)),
                from,
                src,
                dst,
                tagged,
                marker: format!("mvdp-modes-probe-{n:02}").into_bytes(),
            }
        })
        .collect()
}

/// The MACs of one rig.
struct Macs {
    host: [u8; 6],
    wire: [u8; 6],
    containers: Vec<[u8; 6]>,
}

impl Macs {
    /// Read before any macvlan exists (a passthru macvlan rewrites `p0`'s).
    fn of(rig: &Rig) -> Macs {
        Macs {
            host: link_mac(&rig.host, PARENT_IF),
            wire: link_mac(&rig.wire, WIRE_IF),
            containers: rig.containers.iter().map(Container::mac).collect(),
        }
    }

    fn resolve(&self, a: Addr) -> [u8; 6] {
        match a {
            Addr::Container(i) => self.containers[i - 1],
            Addr::Host => self.host,
            Addr::Wire => self.wire,
            Addr::Unknown => UNKNOWN,
            Addr::Broadcast => BROADCAST,
            Addr::Multicast => MCAST_UNJOINED,
            Addr::AllHosts => MCAST_ALL_HOSTS,
        }
    }

    fn frame(&self, p: &Probe) -> Vec<u8> {
        let (dst, src) = (self.resolve(p.dst), self.resolve(p.src));
        if p.tagged {
            let mut inner = FOREIGN_VID.to_be_bytes().to_vec();
            inner.extend_from_slice(&ETHERTYPE_TEST.to_be_bytes());
            inner.extend_from_slice(&p.marker);
            eth_frame(dst, src, ETHERTYPE_8021Q, &inner)
        } else {
            eth_frame(dst, src, ETHERTYPE_TEST, &p.marker)
        }
    }
}

/// Sends every probe once and records where its copies arrived: each
/// container's `eth0` (where one exists), the host stack on `p0`, and `w0`
/// (the wire; its own transmissions left out).
fn run_probes(rig: &Rig, mode: Mode, macs: &Macs) -> Table {
    let probes = probes();
    let reflector = mode
        .hairpin()
        .then(|| Reflector::start(&rig.wire, macs.wire, macs.containers.clone()));
    let mut captures: Vec<(String, Capture)> = Vec::new();
    for c in &rig.containers {
        if link_exists(&c.ns, c.ifname()) {
            captures.push((c.name.clone(), Capture::start(&c.ns, c.ifname())));
        }
    }
    captures.push((WIRE.into(), Capture::start_opts(&rig.wire, WIRE_IF, false)));
    // The host's column is what p0's *stack* receives (after macvlan's rx
    // handler, after XDP), not everything p0 receives: see StackCapture.
    // Tagged probes arrive there untagged-with-metadata, under ETHERTYPE_TEST.
    let stack = StackCapture::start(&rig.host, PARENT_IF, ETHERTYPE_TEST);

    for p in &probes {
        let frame = macs.frame(p);
        match p.from {
            Addr::Container(i) => {
                let c = rig.container(i);
                send_raw(&c.ns, c.ifname(), &frame);
            }
            _ => send_raw(&rig.wire, WIRE_IF, &frame),
        }
        std::thread::sleep(GAP);
    }

    let mut table: Table = probes
        .iter()
        .map(|p| (p.label.clone(), BTreeMap::new()))
        .collect();
    let ours = |f: &[u8]| probes.iter().any(|p| contains(f, &p.marker));
    // All captures ran concurrently: one linger covers them all.
    let mut seen = vec![(HOST.to_string(), stack.finish_matching(LINGER, ours))];
    for (place, capture) in captures {
        seen.push((place, capture.finish_matching(Duration::ZERO, ours)));
    }
    for (place, frames) in seen {
        for f in frames {
            let p = probes
                .iter()
                .find(|p| contains(&f, &p.marker))
                .expect("filtered on markers");
            *table
                .get_mut(&p.label)
                .expect("every probe has a row")
                .entry(place.clone())
                .or_default() += 1;
        }
    }
    if let Some(r) = reflector {
        // c1 sends to c2 and to broadcast: a switch that returned neither
        // would make every hairpin row vacuous.
        let reflected = r.stop();
        assert!(
            reflected >= 2,
            "the hairpin switch reflected {reflected} frames"
        );
    }
    table
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The reference: the kernel's macvlan in `mode` on a fresh rig.
fn kernel_table(mode: Mode) -> Table {
    let rig = Rig::new(3, 1);
    let macs = Macs::of(&rig);
    let containers: Vec<&Container> = rig.containers.iter().take(mode.endpoints()).collect();
    let allowed: &[[u8; 6]] = if mode == Mode::Source {
        &[macs.wire]
    } else {
        &[]
    };
    add_kernel_macvlans(&rig, mode.name(), &containers, allowed);
    run_probes(&rig, mode, &macs)
}

/// mvdp's config for `mode` on `rig`: the rig's three endpoints (one for
/// passthru), the network switched to `mode`, and in source mode the wire
/// host as every endpoint's only allowed source; the kernel fast path
/// `fast_path` ("on" or "off").
fn mvdp_config(rig: &Rig, mode: Mode, fast_path: &str) -> String {
    let bridge = "mode = \"bridge\"";
    let mut toml = rig.base_toml(&format!("[dataplane]\nfast_path = \"{fast_path}\""));
    assert!(
        toml.contains(bridge),
        "base config has no mode line:\n{toml}"
    );
    toml = toml.replacen(bridge, &format!("mode = \"{}\"", mode.name()), 1);
    let wire_mac = fmt_mac(&link_mac(&rig.wire, WIRE_IF));
    for c in rig.containers.iter().take(mode.endpoints()) {
        toml.push_str(&rig.endpoint_toml(c, "veth"));
        if mode == Mode::Source {
            let _ = writeln!(toml, "allowed_sources = [\"{wire_mac}\"]");
        }
    }
    toml
}

/// mvdp in `mode` on a fresh rig, with the fast path `fast_path`. The
/// config must also pass `mvdp check`.
fn mvdp_table(mode: Mode, fast_path: &str) -> Table {
    let rig = Rig::new(3, 1);
    let macs = Macs::of(&rig);
    let toml = mvdp_config(&rig, mode, fast_path);

    let config = TempConfig::new(&toml);
    let check = mvdp_command()
        .arg("check")
        .arg("--config")
        .arg(config.path())
        .output()
        .expect("spawn mvdp check");
    assert!(
        check.status.success(),
        "mvdp check rejected the {} config ({}):\n{toml}\n{}",
        mode.name(),
        check.status,
        String::from_utf8_lossy(&check.stderr)
    );

    let mut d = Daemon::start(&rig, &toml);
    d.wait_ready(Duration::from_secs(20));
    for c in rig.containers.iter().take(mode.endpoints()) {
        assert!(
            wait_until(Duration::from_secs(5), || link_exists(&c.ns, c.ifname())),
            "mvdp ready but {} has no {}\n{}",
            c.name,
            c.ifname(),
            d.log()
        );
    }
    let table = run_probes(&rig, mode, &macs);
    let status = d.stop();
    assert!(status.success(), "mvdp stop: {status}\n{}", d.log());
    table
}

/// What mvdp must show, derived from the kernel's table by mvdp's deliberate
/// differences. Each rewrite is a no-op where the kernel already behaves
/// like mvdp.
fn expected_mvdp(mode: Mode, kernel: &Table) -> Table {
    let mut want = kernel.clone();
    let is_container = |place: &str| place != HOST && place != WIRE;
    for p in probes() {
        let row = want.get_mut(&p.label).expect("every probe has a row");
        // 802.1Q: a tagged frame belongs to the network that owns its VLAN,
        // and none owns VLAN 7. The kernel's macvlan never looks at tags and
        // hands a tagged frame to the untagged macvlan its MAC names (taking
        // a unicast one away from the host); mvdp keeps VLANs apart: no
        // container gets it, and as a frame for no endpoint it goes to the
        // host stack (DESIGN.md: such frames never leave the kernel).
        if p.tagged {
            row.retain(|place, _| !is_container(place));
            row.insert(HOST.into(), 1);
            continue;
        }
        // Anti-spoofing, on in every mode: mvdp drops a container's frame
        // whose source MAC is not the container's own. The kernel's macvlan
        // sends whatever the container hands it.
        if p.spoofed() {
            row.clear();
            continue;
        }
        // Multicast to a group nobody joined: the kernel filters group
        // frames per macvlan by the groups its device joined (mc_filter), so
        // none gets it; mvdp has no per-endpoint multicast filter and its
        // flood path copies every group frame to every endpoint that may
        // receive from the wire. A container's stack drops groups it did not
        // join, so only packet sockets in the container tell the difference.
        // (A joined group, 224.0.0.1, reaches every endpoint in both.)
        if p.src == Addr::Wire && p.dst == Addr::Multicast {
            for i in 1..=mode.endpoints() {
                row.insert(format!("c{i}"), 1);
            }
        }
        // private: mvdp never delivers a container's frame to a sibling, not
        // even when the wire's switch hairpins it back. The kernel confines
        // only hairpinned group frames; a hairpinned unicast reaches the
        // sibling. (Both hand a hairpinned group frame back to its sender.)
        if let (Mode::Private, Addr::Container(sender)) = (mode, p.from) {
            let sender = format!("c{sender}");
            row.retain(|place, _| !is_container(place) || *place == sender);
        }
        // source: mvdp delivers to a source-mode endpoint only frames from an
        // allowed source (here: the wire host) that are addressed to it or
        // to a group. The kernel hands every frame from an allowed source to
        // every source-mode macvlan, whatever its destination. And the
        // kernel still passes a frame addressed to a source-mode macvlan up
        // p0's stack (as PACKET_OTHERHOST, which the stack drops); mvdp's
        // XDP program redirects it to the endpoint alone.
        if mode == Mode::Source && p.src == Addr::Wire {
            row.retain(|place, _| !is_container(place));
            if matches!(p.dst, Addr::Container(_)) {
                row.remove(HOST);
            }
            for i in 1..=mode.endpoints() {
                if p.dst == Addr::Container(i) || p.dst.is_group() {
                    row.insert(format!("c{i}"), 1);
                }
            }
        }
    }
    want
}

fn render(table: &Table) -> String {
    let mut s = String::new();
    for (label, places) in table {
        let places: Vec<String> = places
            .iter()
            .map(|(place, n)| {
                if *n == 1 {
                    place.clone()
                } else {
                    format!("{place} x{n}")
                }
            })
            .collect();
        let places = if places.is_empty() {
            "(nowhere)".to_string()
        } else {
            places.join(", ")
        };
        let _ = writeln!(s, "  {label:<22} -> {places}");
    }
    s
}

/// The differential test for one mode: the kernel's table, then mvdp's with
/// the fast path on and with every frame through the workers. Both tiers
/// must land every frame where the other does, and where the kernel does
/// (after mvdp's deliberate differences).
fn differential(mode: Mode) {
    if !require_privileges() {
        return;
    }
    let kernel = kernel_table(mode);
    println!("kernel macvlan, mode {}:\n{}", mode.name(), render(&kernel));
    let want = expected_mvdp(mode, &kernel);

    for fast_path in ["on", "off"] {
        let got = mvdp_table(mode, fast_path);
        println!(
            "mvdp, mode {}, fast path {fast_path}:\n{}",
            mode.name(),
            render(&got)
        );
        if got != want {
            let mut diff = String::new();
            for (label, w) in &want {
                let g = got.get(label);
                if g != Some(w) {
                    let _ = writeln!(diff, "  {label}: want {w:?}, got {g:?}");
                }
            }
            panic!(
                "mode {}, fast path {fast_path}: mvdp's deliveries differ from the \
                 kernel's (after mvdp's deliberate differences)\n\
                 kernel:\n{}\nexpected of mvdp:\n{}\nmvdp:\n{}\ndifferences:\n{diff}",
                mode.name(),
                render(&kernel),
                render(&want),
                render(&got)
            );
        }
    }
}

#[test]
fn modes_bridge() {
    differential(Mode::Bridge);
}

#[test]
fn modes_private() {
    differential(Mode::Private);
}

#[test]
fn modes_vepa() {
    differential(Mode::Vepa);
}

#[test]
fn modes_passthru() {
    differential(Mode::Passthru);
}

#[test]
fn modes_source() {
    differential(Mode::Source);
}
