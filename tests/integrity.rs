//! Loss, order and integrity, in the manner of the kernel's xskxceiver
//! (`tools/testing/selftests/bpf/xskxceiver.c`): numbered frames with a
//! checksum, sent at a steady rate well below what mvdp can carry, must
//! each arrive exactly once, in order, unchanged, at the receiver they were
//! addressed to and nowhere else (issue 9, item 3).
//!
//! One test per endpoint kind (`veth`, `tap`) and macvlan mode. Each builds
//! one rig and runs the same case twice, with the kernel fast path on and
//! with every frame through the workers, so one run of this file covers both
//! tiers (it is not in the Makefile's `TIER_SUITES`).
//!
//! The streams of a case, all sent at the same time:
//! - the wire to every endpoint (every mode);
//! - every endpoint to the wire (every mode);
//! - endpoint to endpoint, where the mode carries it: `bridge` switches it
//!   locally; `vepa` sends it to the wire, whose switch (a [`Reflector`] with
//!   hairpin on) returns it, so the wire sees it once on its way. `private`
//!   and `source` keep siblings apart, and `passthru` has one endpoint.
//!
//! A frame is `dst src 0x88b5` then [`Header`]: magic, run, stream, sequence
//! number and length, then filler derived from all of those, then an FNV-1a
//! checksum of everything before it (Ethernet header included). Its length
//! varies from 60 to 1514 bytes (46 to 1500 bytes of payload). Receivers are
//! packet sockets bound to 0x88b5 (stray kernel traffic does not matter) on
//! the wire's `w0`, each container's `eth0`, and the host stack of `p0`
//! (which must see none of it); each records what it got in arrival order.
//!
//! Asserted per stream: every sequence number once, in order, intact, at
//! its receiver (and, for `vepa`'s hairpin, once at the wire), and at no
//! other place; no frame of 0x88b5 that is not a known stream's; no packet
//! socket dropped anything (a rig fault, reported apart from mvdp's). Of
//! mvdp: received = delivered + Σ dropped exactly, no drops at all, and
//! exactly the frames sent counted as received and as delivered. Should
//! frames go missing, the failure also says where the kernel lost them
//! before mvdp took them (a sender's `tx_dropped`, the parent's AF_XDP RX
//! ring), which mvdp's own account cannot show.
//!
//! `MVDP_INTEGRITY_FRAMES` (frames per stream, default 500) and
//! `MVDP_INTEGRITY_RATE` (frames/s per stream, default 500) make it a soak
//! or a stress run.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::packet::{bound_packet_socket, sockaddr_ll, SocketOpts, LARGE_RCVBUF};
use common::*;

/// Frames per stream (`MVDP_INTEGRITY_FRAMES` overrides, for a longer soak).
const FRAMES_PER_STREAM: u64 = 500;
/// Frames per second of one stream (`MVDP_INTEGRITY_RATE` overrides). A
/// sender interleaves its streams, so the wire sends 3 × this and the whole
/// rig at most 9 × this (bridge): 4.5 kframes/s, two orders of magnitude
/// below mvdp's zero-loss rate.
const STREAM_RATE: u64 = 500;
/// Shortest and longest Ethernet payload sent.
const MIN_PAYLOAD: usize = 46;
const MAX_PAYLOAD: usize = 1500;
/// Ethernet header length.
const ETH_HLEN: usize = 14;
/// Marks a frame of this test.
const MAGIC: [u8; 4] = *b"mvIT";
/// Longest wait for a path to carry its first probe, and for the streams'
/// last frames.
const PATH_DEADLINE: Duration = Duration::from_secs(10);
/// `PACKET_STATISTICS` (`linux/if_packet.h`).
const PACKET_STATISTICS: libc::c_int = 6;

/// Where frames are sent from and seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// `w0`, the LAN's other side.
    Wire,
    /// Container `c<n>`'s `eth0`.
    Container(usize),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Wire => write!(f, "wire"),
            Place::Container(i) => write!(f, "c{i}"),
        }
    }
}

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

    /// Endpoints of the rig: a passthru network takes one.
    fn endpoints(self) -> usize {
        if self == Mode::Passthru {
            1
        } else {
            3
        }
    }

    /// Whether a container's frame reaches a sibling, and how.
    fn sibling_path(self) -> Option<SiblingPath> {
        match self {
            Mode::Bridge => Some(SiblingPath::Local),
            Mode::Vepa => Some(SiblingPath::Hairpin),
            Mode::Private | Mode::Passthru | Mode::Source => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SiblingPath {
    /// mvdp switches it (bridge).
    Local,
    /// Out to the wire and back through its hairpinning switch (vepa).
    Hairpin,
}

/// One sequence of numbered frames from one place to one MAC.
#[derive(Debug, Clone)]
struct Stream {
    id: u32,
    from: Place,
    to: Place,
    src: [u8; 6],
    dst: [u8; 6],
    frames: u64,
    /// Where its frames must arrive, each exactly once: `to`, and the wire
    /// for a frame the wire's switch hairpins.
    expected_at: Vec<Place>,
}

/// The fixed fields at the start of a frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    run: u32,
    stream: u32,
    seq: u64,
    /// Payload length (from the magic to the checksum, both included).
    len: u16,
}

/// Offsets in the payload.
const OFF_RUN: usize = 4;
const OFF_STREAM: usize = 8;
const OFF_SEQ: usize = 12;
const OFF_LEN: usize = 20;
const OFF_FILL: usize = 22;
const CHECKSUM_LEN: usize = 4;

/// FNV-1a, 32 bits.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A 64-bit mix (splitmix64's finaliser): sizes and filler from the frame's
/// identity, so a receiver can rebuild the frame it should have got.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Payload length of frame `seq` of `stream`: the extremes first, then
/// spread over the whole range.
fn payload_len(stream: u32, seq: u64) -> usize {
    match seq {
        0 => MIN_PAYLOAD,
        1 => MAX_PAYLOAD,
        _ => {
            let span = (MAX_PAYLOAD - MIN_PAYLOAD + 1) as u64;
            MIN_PAYLOAD + (mix((u64::from(stream) << 40) ^ seq) % span) as usize
        }
    }
}

/// The frame `seq` of stream `s` in run `run`, exactly as sent.
fn build_frame(s: &Stream, run: u32, seq: u64) -> Vec<u8> {
    let len = payload_len(s.id, seq);
    let mut f = Vec::with_capacity(ETH_HLEN + len);
    f.extend_from_slice(&s.dst);
    f.extend_from_slice(&s.src);
    f.extend_from_slice(&ETHERTYPE_TEST.to_be_bytes());
    f.extend_from_slice(&MAGIC);
    f.extend_from_slice(&run.to_be_bytes());
    f.extend_from_slice(&s.id.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&(len as u16).to_be_bytes());
    let fill_len = len - OFF_FILL - CHECKSUM_LEN;
    let mut state = mix((u64::from(run) << 32) ^ u64::from(s.id)) ^ mix(seq);
    while f.len() < ETH_HLEN + OFF_FILL + fill_len {
        state = mix(state);
        let room = ETH_HLEN + OFF_FILL + fill_len - f.len();
        f.extend_from_slice(&state.to_le_bytes()[..room.min(8)]);
    }
    let sum = fnv1a(&f);
    f.extend_from_slice(&sum.to_be_bytes());
    debug_assert_eq!(f.len(), ETH_HLEN + len);
    f
}

/// The header of one of our frames, if `frame` carries the magic and is
/// long enough to hold one.
fn parse_header(frame: &[u8]) -> Option<Header> {
    let p = frame.get(ETH_HLEN..)?;
    if frame[12..14] != ETHERTYPE_TEST.to_be_bytes() || p.get(..4)? != MAGIC {
        return None;
    }
    let be32 = |o: usize| u32::from_be_bytes(p[o..o + 4].try_into().expect("4 bytes"));
    p.get(..OFF_FILL)?;
    Some(Header {
        run: be32(OFF_RUN),
        stream: be32(OFF_STREAM),
        seq: u64::from_be_bytes(p[OFF_SEQ..OFF_SEQ + 8].try_into().expect("8 bytes")),
        len: u16::from_be_bytes([p[OFF_LEN], p[OFF_LEN + 1]]),
    })
}

/// Whether `frame` is intact: its checksum holds, its length is the one it
/// declares, and every byte is the one sent.
fn intact(frame: &[u8], s: &Stream, h: &Header) -> bool {
    if frame.len() != ETH_HLEN + usize::from(h.len) || frame.len() < ETH_HLEN + OFF_FILL + 4 {
        return false;
    }
    let (body, sum) = frame.split_at(frame.len() - CHECKSUM_LEN);
    fnv1a(body).to_be_bytes() == sum && frame == build_frame(s, h.run, h.seq).as_slice()
}

/// What one receiver got, in arrival order.
#[derive(Debug, Default)]
struct Log {
    /// (stream, seq, intact) of each measured frame.
    frames: Vec<(u32, u64, bool)>,
    /// Streams a probe of which arrived here.
    probed: std::collections::HashSet<u32>,
    /// Frames of 0x88b5 that belong to no stream of this run (hex, cut short).
    unattributed: Vec<String>,
}

/// A packet socket on one place, bound to 0x88b5, draining into a [`Log`].
struct Receiver {
    place: Place,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<OwnedFd>>,
}

impl Receiver {
    /// Bound before it returns: everything sent afterwards is seen.
    fn start(place: Place, ns: &Netns, ifname: &str, run: u32, streams: &[Stream]) -> Receiver {
        let sock = ns.in_ns(|| {
            bound_packet_socket(
                ifname,
                ETHERTYPE_TEST,
                SocketOpts {
                    auxdata: false,
                    ignore_outgoing: true,
                    rcvbuf: Some(LARGE_RCVBUF),
                },
            )
        });
        let log = Arc::new(Mutex::new(Log::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            let streams: BTreeMap<u32, Stream> =
                streams.iter().map(|s| (s.id, s.clone())).collect();
            std::thread::spawn(move || {
                receive(&sock, &stop, run, &streams, &log);
                sock
            })
        };
        Receiver {
            place,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.log.lock().expect("log lock").frames.len()
    }

    fn probed(&self, stream: u32) -> bool {
        self.log.lock().expect("log lock").probed.contains(&stream)
    }

    /// Stops after draining what is queued; the log and the socket's drop count.
    fn finish(mut self) -> (Log, u32) {
        self.stop.store(true, Ordering::Relaxed);
        let sock = self
            .thread
            .take()
            .expect("finished once")
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let drops = socket_drops(&sock);
        let log = std::mem::take(&mut *self.log.lock().expect("log lock"));
        (log, drops)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The probe run of a measured run: its frames open the paths and are
/// otherwise ignored.
fn probe_run(run: u32) -> u32 {
    run | 1
}

fn receive(
    sock: &OwnedFd,
    stop: &AtomicBool,
    run: u32,
    streams: &BTreeMap<u32, Stream>,
    log: &Mutex<Log>,
) {
    let mut buf = vec![0u8; 65536];
    let handle = |frame: &[u8]| {
        let n = frame.len();
        let mut log = log.lock().expect("log lock");
        match parse_header(frame) {
            Some(h) if h.run == run && streams.contains_key(&h.stream) => {
                let ok = intact(frame, &streams[&h.stream], &h);
                log.frames.push((h.stream, h.seq, ok));
            }
            Some(h) if h.run == probe_run(run) && streams.contains_key(&h.stream) => {
                log.probed.insert(h.stream);
            }
            _ => {
                let hex: String = frame.iter().take(48).map(|b| format!("{b:02x}")).collect();
                log.unattributed.push(format!("{n} bytes: {hex}"));
            }
        }
    };
    loop {
        // Everything queued before the stop was asked for is taken.
        let stopping = stop.load(Ordering::Relaxed);
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let ready = unsafe { libc::poll(&mut pfd, 1, if stopping { 0 } else { 20 }) };
        if ready > 0 {
            loop {
                // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
                let n = unsafe {
                    libc::recv(
                        sock.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n <= 0 {
                    break;
                }
                handle(&buf[..n as usize]);
            }
        } else if stopping {
            return;
        }
    }
}

/// Frames the socket dropped for want of buffer space (`tp_drops`).
fn socket_drops(sock: &OwnedFd) -> u32 {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` is a live tpacket_stats and `len` its size.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    assert_eq!(
        rc,
        0,
        "PACKET_STATISTICS: {}",
        std::io::Error::last_os_error()
    );
    stats.tp_drops
}

/// `ifname`'s transmit drops in `ns` (`ip -s link`): frames it could not
/// hand to its peer (a veth) or its reader (a TAP's fd).
fn tx_dropped(ns: &Netns, ifname: &str) -> u64 {
    let out = ns.ip(&["-j", "-s", "link", "show", "dev", ifname]);
    let links: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j -s link: {e}\n{out}"));
    links[0]["stats64"]["tx"]["dropped"]
        .as_u64()
        .unwrap_or_else(|| panic!("no tx dropped count for {ifname}: {out}"))
}

/// A packet socket for sending out of `ifname` in `ns`, and its address.
struct Sender {
    sock: OwnedFd,
    addr: libc::sockaddr_ll,
}

impl Sender {
    fn open(ns: &Netns, ifname: &str) -> Sender {
        let (sock, index) = ns.in_ns(|| {
            let sock = bound_packet_socket(ifname, 0, SocketOpts::default());
            let name = std::ffi::CString::new(ifname).expect("no NUL");
            // SAFETY: a valid NUL-terminated string.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            (sock, index)
        });
        assert!(index != 0, "no {ifname} in {}", ns.name());
        let mut addr = sockaddr_ll(index as i32, 0);
        addr.sll_halen = 6;
        Sender { sock, addr }
    }

    /// Sends one frame; a full queue (`ENOBUFS`) is retried for up to a
    /// second, anything else is a rig failure.
    fn send(&mut self, frame: &[u8]) {
        self.addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            // SAFETY: `frame` and `self.addr` are live for the call and their
            // sizes are passed.
            let n = unsafe {
                libc::sendto(
                    self.sock.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&self.addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if n == frame.len() as isize {
                return;
            }
            let err = std::io::Error::last_os_error();
            assert!(
                err.raw_os_error() == Some(libc::ENOBUFS) && Instant::now() < deadline,
                "send {} bytes: {err}",
                frame.len()
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Sends `streams` (all from one place) interleaved, frame `i` of the lot
/// at `start + i / rate`: a steady rate, not bursts.
fn send_streams(mut tx: Sender, streams: Vec<Stream>, run: u32, stream_rate: u64) {
    let total: u64 = streams.iter().map(|s| s.frames).sum();
    let rate = stream_rate * streams.len() as u64;
    let start = Instant::now();
    let mut next = vec![0u64; streams.len()];
    let mut i = 0u64;
    while i < total {
        for (s, seq) in streams.iter().zip(next.iter_mut()) {
            if *seq == s.frames {
                continue;
            }
            let due = start + Duration::from_nanos(1_000_000_000 * i / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            tx.send(&build_frame(s, run, *seq));
            *seq += 1;
            i += 1;
        }
    }
}

/// The streams of a case on `rig` in `mode`, numbered from 1.
fn plan(rig: &Rig, mode: Mode, frames: u64) -> Vec<Stream> {
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let n = mode.endpoints();
    let mut streams = Vec::new();
    let mut add = |from: Place, to: Place, src: [u8; 6], dst: [u8; 6], transit: bool| {
        let mut expected_at = vec![to];
        if transit {
            expected_at.push(Place::Wire);
        }
        streams.push(Stream {
            id: streams.len() as u32 + 1,
            from,
            to,
            src,
            dst,
            frames,
            expected_at,
        });
    };
    for i in 1..=n {
        let c = rig.container(i).mac();
        add(Place::Wire, Place::Container(i), wire_mac, c, false);
        add(Place::Container(i), Place::Wire, c, wire_mac, false);
    }
    if let Some(path) = mode.sibling_path() {
        for i in 1..=n {
            let j = i % n + 1;
            let (a, b) = (rig.container(i).mac(), rig.container(j).mac());
            let transit = path == SiblingPath::Hairpin;
            add(Place::Container(i), Place::Container(j), a, b, transit);
        }
    }
    streams
}

/// mvdp's config: `kind` endpoints, the network in `mode` (in `source` mode
/// the wire host is each endpoint's only allowed source), the given tier.
fn config(rig: &Rig, mode: Mode, kind: &str, fast_path: &str) -> String {
    let bridge = "mode = \"bridge\"";
    let mut toml = rig.base_toml(&format!("[dataplane]\nfast_path = \"{fast_path}\""));
    assert!(toml.contains(bridge), "no mode line in:\n{toml}");
    toml = toml.replacen(bridge, &format!("mode = \"{}\"", mode.name()), 1);
    let wire_mac = fmt_mac(&link_mac(&rig.wire, WIRE_IF));
    for c in &rig.containers {
        toml.push_str(&rig.endpoint_toml(c, kind));
        if mode == Mode::Source {
            let _ = writeln!(toml, "allowed_sources = [\"{wire_mac}\"]");
        }
    }
    toml
}

/// A run id unique to this process and call; even (its probe run is odd).
fn next_run() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (std::process::id() << 12) ^ (n << 1)
}

/// What went wrong with one stream's frames at one place, if anything.
fn check_stream(s: &Stream, place: Place, seqs: &[(u64, bool)]) -> Option<String> {
    let expected = s.expected_at.contains(&place);
    if !expected {
        return (!seqs.is_empty()).then(|| {
            format!(
                "{} of its frames arrived at {place}, which must get none",
                seqs.len()
            )
        });
    }
    let mut problems = Vec::new();
    let mut seen = vec![0u32; s.frames as usize];
    let mut out_of_order = Vec::new();
    let mut corrupt = Vec::new();
    let mut last: Option<u64> = None;
    for &(seq, ok) in seqs {
        match seen.get_mut(seq as usize) {
            Some(n) => *n += 1,
            None => problems.push(format!("sequence number {seq} was never sent")),
        }
        if last.is_some_and(|l| seq <= l) {
            out_of_order.push(format!("{seq} after {}", last.unwrap_or_default()));
        }
        last = Some(seq);
        if !ok {
            corrupt.push(seq);
        }
    }
    let missing: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == 0).collect();
    let dups: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] > 1).collect();
    let first = |v: &[usize]| format!("{:?}", &v[..v.len().min(10)]);
    if !missing.is_empty() {
        problems.push(format!(
            "{} lost (first: {})",
            missing.len(),
            first(&missing)
        ));
    }
    if !dups.is_empty() {
        problems.push(format!(
            "{} duplicated (first: {})",
            dups.len(),
            first(&dups)
        ));
    }
    if !out_of_order.is_empty() {
        problems.push(format!(
            "{} out of order (first: {:?})",
            out_of_order.len(),
            &out_of_order[..out_of_order.len().min(5)]
        ));
    }
    if !corrupt.is_empty() {
        problems.push(format!(
            "{} corrupted (first: {:?})",
            corrupt.len(),
            &corrupt[..corrupt.len().min(10)]
        ));
    }
    (!problems.is_empty()).then(|| format!("at {place}: {}", problems.join("; ")))
}

/// One case: mvdp on `rig` in `mode` with `kind` endpoints and the fast path
/// `fast_path`; every stream checked, then mvdp's counters.
fn run_case(rig: &Rig, mode: Mode, kind: &str, fast_path: &str, frames: u64, rate: u64) {
    let what = format!("{kind} {} fast path {fast_path}", mode.name());
    let mut d = Daemon::start(rig, &config(rig, mode, kind, fast_path));
    d.wait_ready(Duration::from_secs(20));
    for c in &rig.containers {
        assert!(
            wait_until(Duration::from_secs(5), || link_exists(&c.ns, c.ifname())),
            "{what}: mvdp ready but {} has no {}\n{}",
            c.name,
            c.ifname(),
            d.log()
        );
    }
    let run = next_run();
    let streams = plan(rig, mode, frames);
    let wire_mac = link_mac(&rig.wire, WIRE_IF);
    let reflector = (mode.sibling_path() == Some(SiblingPath::Hairpin)).then(|| {
        Reflector::start(
            &rig.wire,
            wire_mac,
            rig.containers.iter().map(Container::mac).collect(),
        )
    });

    let mut receivers = vec![Receiver::start(
        Place::Wire,
        &rig.wire,
        WIRE_IF,
        run,
        &streams,
    )];
    for (i, c) in rig.containers.iter().enumerate() {
        receivers.push(Receiver::start(
            Place::Container(i + 1),
            &c.ns,
            c.ifname(),
            run,
            &streams,
        ));
    }
    let host = StackCapture::start(&rig.host, PARENT_IF, ETHERTYPE_TEST);
    let ns_of = |p: Place| match p {
        Place::Wire => (&rig.wire, WIRE_IF),
        Place::Container(i) => (&rig.container(i).ns, rig.container(i).ifname()),
    };
    let receiver = |p: Place| {
        receivers
            .iter()
            .find(|r| r.place == p)
            .expect("a receiver per place")
    };

    // Open every path first: probes (the probe run, ignored by the checks)
    // until each stream's receiver has seen one. mvdp answering on its
    // metrics port does not promise every path is open yet, so a lost probe
    // is no finding (none was lost in the runs here).
    let mut senders: BTreeMap<Place, Sender> = BTreeMap::new();
    for s in &streams {
        senders.entry(s.from).or_insert_with(|| {
            let (ns, ifname) = ns_of(s.from);
            Sender::open(ns, ifname)
        });
    }
    for s in &streams {
        let probe = build_frame(s, probe_run(run), 0);
        let tx = senders.get_mut(&s.from).expect("a sender per source");
        let opened = wait_until(PATH_DEADLINE, || {
            tx.send(&probe);
            wait_until(Duration::from_millis(100), || receiver(s.to).probed(s.id))
        });
        assert!(
            opened,
            "{what}: stream {} {} -> {} carried no probe in {PATH_DEADLINE:?}\n{}",
            s.id,
            s.from,
            s.to,
            d.log()
        );
    }
    let before = settled(&d);
    let sources: Vec<Place> = senders.keys().copied().collect();
    let senders_dropped = || -> Vec<(Place, u64)> {
        sources
            .iter()
            .map(|&p| {
                let (ns, ifname) = ns_of(p);
                (p, tx_dropped(ns, ifname))
            })
            .collect()
    };
    let tx_dropped_before = senders_dropped();

    // The streams, every source at once.
    let started = Instant::now();
    let threads: Vec<JoinHandle<()>> = senders
        .into_iter()
        .map(|(from, tx)| {
            let mine: Vec<Stream> = streams.iter().filter(|s| s.from == from).cloned().collect();
            std::thread::spawn(move || send_streams(tx, mine, run, rate))
        })
        .collect();
    for t in threads {
        t.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    }
    let sent_in = started.elapsed();
    // Every receiver has what it is owed, or the deadline passed (a loss,
    // reported below); then mvdp's counters stand still.
    let owed = |p: Place| -> usize {
        streams
            .iter()
            .filter(|s| s.expected_at.contains(&p))
            .map(|s| s.frames as usize)
            .sum()
    };
    wait_until(PATH_DEADLINE, || {
        receivers.iter().all(|r| r.count() >= owed(r.place))
    });
    let after = settled(&d);
    let tx_dropped_after = senders_dropped();
    let host_frames = host.finish_matching(Duration::ZERO, |_| true);
    let logs: Vec<(Place, Log, u32)> = receivers
        .into_iter()
        .map(|r| {
            let place = r.place;
            let (log, drops) = r.finish();
            (place, log, drops)
        })
        .collect();
    let reflected = reflector.map(Reflector::stop);

    let mut failures = Vec::new();
    // The hairpin is the rig's: if it returned fewer frames than the
    // siblings sent (probes aside), their loss is not mvdp's.
    let hairpinned: u64 = streams
        .iter()
        .filter(|s| s.from != Place::Wire && s.to != Place::Wire)
        .map(|s| s.frames)
        .sum();
    if reflected.is_some_and(|r| (r as u64) < hairpinned) {
        failures.push(format!(
            "the wire's hairpin switch reflected {reflected:?} frames of {hairpinned} (a rig fault, not mvdp's)"
        ));
    }
    for (place, log, drops) in &logs {
        if *drops > 0 {
            failures.push(format!(
                "the rig's packet socket at {place} dropped {drops} frames (a rig fault, not mvdp's)"
            ));
        }
        if !log.unattributed.is_empty() {
            failures.push(format!(
                "{place} received {} frames of 0x88b5 that belong to no stream (first: {})",
                log.unattributed.len(),
                log.unattributed[0]
            ));
        }
        for s in &streams {
            let seqs: Vec<(u64, bool)> = log
                .frames
                .iter()
                .filter(|f| f.0 == s.id)
                .map(|f| (f.1, f.2))
                .collect();
            if let Some(p) = check_stream(s, *place, &seqs) {
                failures.push(format!("stream {} {} -> {}: {p}", s.id, s.from, s.to));
            }
        }
    }
    if !host_frames.is_empty() {
        failures.push(format!(
            "the host stack of {PARENT_IF} received {} frames of the streams",
            host_frames.len()
        ));
    }

    // mvdp's own account: frame for frame what was sent, nothing dropped.
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let from_wire: u64 = streams
        .iter()
        .filter(|s| {
            s.from == Place::Wire || (s.expected_at.contains(&Place::Wire) && s.to != Place::Wire)
        })
        .map(|s| s.frames)
        .sum();
    let from_endpoints: u64 = streams
        .iter()
        .filter(|s| s.from != Place::Wire)
        .map(|s| s.frames)
        .sum();
    let counts = [
        (
            "mvdp_frames_received_total",
            vec![("source", "wire")],
            from_wire,
        ),
        (
            "mvdp_frames_received_total",
            vec![("source", "endpoint")],
            from_endpoints,
        ),
        ("mvdp_frames_received_total", vec![("source", "group")], 0),
        (
            "mvdp_frames_delivered_total",
            vec![],
            from_wire + from_endpoints,
        ),
    ];
    for (name, labels, want) in &counts {
        let got = delta(name, labels);
        if got != *want as f64 {
            failures.push(format!(
                "mvdp counted {got} {name}{labels:?}, {want} were sent"
            ));
        }
    }
    let dropped: Vec<String> = after
        .iter()
        .filter(|s| {
            (s.name == "mvdp_drops_total" || s.name == "mvdp_flood_copy_drops_total")
                && s.value != 0.0
        })
        .map(|s| format!("{}{:?} = {}", s.name, s.labels, s.value))
        .collect();
    if !dropped.is_empty() {
        failures.push(format!("mvdp dropped frames: {}", dropped.join(", ")));
    }
    // Losses before mvdp took a frame, which its account cannot show: where
    // they happened, should the streams have lost frames.
    for ((place, was), (_, now)) in tx_dropped_before.iter().zip(&tx_dropped_after) {
        if now > was {
            failures.push(format!(
                "{place}'s interface could not hand {} frames on (tx_dropped): lost before mvdp took them",
                now - was
            ));
        }
    }
    let ring_dropped = delta("mvdp_xsk_rx_dropped_total", &[]);
    if ring_dropped > 0.0 {
        failures.push(format!(
            "the parent's AF_XDP socket dropped {ring_dropped} frames (its fill ring was empty {} times): \
             the worker did not keep up",
            delta("mvdp_xsk_fill_ring_empty_total", &[])
        ));
    }
    let received = value(&after, "mvdp_frames_received_total", &[]);
    let delivered = value(&after, "mvdp_frames_delivered_total", &[]);
    let drops = value(&after, "mvdp_drops_total", &[]);
    if received != delivered + drops || received == 0.0 {
        failures.push(format!(
            "conservation: received {received} != delivered {delivered} + dropped {drops}"
        ));
    }

    let total: u64 = streams.iter().map(|s| s.frames).sum();
    println!(
        "{what}: {} streams, {total} frames sent in {sent_in:.2?}; received {received}, delivered {delivered}",
        streams.len()
    );
    assert!(
        failures.is_empty(),
        "{what}: {} problems:\n  {}\nmetrics:\n{}\n{}",
        failures.len(),
        failures.join("\n  "),
        d.metrics(),
        d.log()
    );
    let status = d.stop();
    assert!(status.success(), "{what}: mvdp stop: {status}\n{}", d.log());
    rig.assert_host_clean();
    assert!(
        !xdp_attached(&rig.host, PARENT_IF),
        "{what}: XDP left on {PARENT_IF}"
    );
}

/// A count from the environment variable `var` (at least 2), else `default`.
fn env_count(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|&n| n >= 2)
            .unwrap_or_else(|| panic!("{var}={v:?}: a count of at least 2")),
        Err(_) => default,
    }
}

/// Both tiers on one rig.
fn integrity(kind: &str, mode: Mode) {
    if !require_privileges() {
        return;
    }
    let rig = Rig::new(mode.endpoints(), 1);
    let frames = env_count("MVDP_INTEGRITY_FRAMES", FRAMES_PER_STREAM);
    let rate = env_count("MVDP_INTEGRITY_RATE", STREAM_RATE);
    for fast_path in ["on", "off"] {
        run_case(&rig, mode, kind, fast_path, frames, rate);
    }
}

#[test]
fn frame_codec_round_trip() {
    let s = Stream {
        id: 7,
        from: Place::Wire,
        to: Place::Container(1),
        src: [2, 0, 0, 0, 0, 1],
        dst: [2, 0, 0, 0, 0, 2],
        frames: 10,
        expected_at: vec![Place::Container(1)],
    };
    for seq in 0..200 {
        let f = build_frame(&s, 42, seq);
        assert!((60..=1514).contains(&f.len()), "length {}", f.len());
        let h = parse_header(&f).expect("our frame");
        assert_eq!((h.run, h.stream, h.seq), (42, 7, seq));
        assert!(intact(&f, &s, &h));
        for flip in [ETH_HLEN + OFF_FILL, f.len() - 1, 3] {
            let mut bad = f.clone();
            bad[flip] ^= 0x10;
            let h = parse_header(&bad).expect("header untouched");
            assert!(
                !intact(&bad, &s, &h),
                "a flipped byte at {flip} went unnoticed"
            );
        }
        let mut padded = f.clone();
        padded.push(0);
        assert!(!intact(&padded, &s, &h), "a longer frame went unnoticed");
    }
    assert_eq!(build_frame(&s, 42, 0).len(), ETH_HLEN + MIN_PAYLOAD);
    assert_eq!(build_frame(&s, 42, 1).len(), ETH_HLEN + MAX_PAYLOAD);
    let ordered: Vec<(u64, bool)> = (0..10).map(|q| (q, true)).collect();
    assert_eq!(check_stream(&s, Place::Container(1), &ordered), None);
    let mut swapped = ordered.clone();
    swapped.swap(3, 4);
    assert!(
        check_stream(&s, Place::Container(1), &swapped).is_some_and(|p| p.contains("out of order"))
    );
    assert!(
        check_stream(&s, Place::Container(1), &ordered[1..]).is_some_and(|p| p.contains("1 lost"))
    );
    assert!(check_stream(&s, Place::Wire, &ordered[..1]).is_some());
}

#[test]
fn veth_bridge() {
    integrity("veth", Mode::Bridge);
}

#[test]
fn veth_private() {
    integrity("veth", Mode::Private);
}

#[test]
fn veth_vepa() {
    integrity("veth", Mode::Vepa);
}

#[test]
fn veth_passthru() {
    integrity("veth", Mode::Passthru);
}

#[test]
fn veth_source() {
    integrity("veth", Mode::Source);
}

#[test]
fn tap_bridge() {
    integrity("tap", Mode::Bridge);
}

#[test]
fn tap_private() {
    integrity("tap", Mode::Private);
}

#[test]
fn tap_vepa() {
    integrity("tap", Mode::Vepa);
}

#[test]
fn tap_passthru() {
    integrity("tap", Mode::Passthru);
}

#[test]
fn tap_source() {
    integrity("tap", Mode::Source);
}
