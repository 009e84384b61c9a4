//! Raw Ethernet through AF_PACKET: send one frame, capture what arrives.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::Netns;

/// The broadcast MAC.
pub const BROADCAST: [u8; 6] = [0xff; 6];
/// IEEE 802 "local experimental" EtherType: no stack on the rig consumes it.
pub const ETHERTYPE_TEST: u16 = 0x88b5;
/// Shortest Ethernet frame without FCS.
const MIN_FRAME: usize = 60;
/// `sll_pkttype` of frames the interface sends (`linux/if_packet.h`).
const PACKET_OUTGOING: u8 = 4;

/// An Ethernet II frame `dst src ethertype payload`, zero-padded to 60 bytes.
pub fn eth_frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(MIN_FRAME.max(14 + payload.len()));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f.resize(f.len().max(MIN_FRAME), 0);
    f
}

/// Sends `frame` (a full Ethernet frame without FCS) out of `ifname` in `ns`
/// through an AF_PACKET socket. Panics on failure.
pub fn send_raw(ns: &Netns, ifname: &str, frame: &[u8]) {
    assert!(frame.len() >= 14, "an Ethernet frame has at least 14 bytes");
    let (sock, ifindex) = ns.in_ns(|| (packet_socket(), ifindex(ifname)));
    let mut addr = sockaddr_ll(ifindex, 0);
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: `frame` is a valid readable buffer of `frame.len()` bytes and
    // `addr` a fully initialised sockaddr_ll whose size we pass.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert!(
        n == frame.len() as isize,
        "send {} bytes on {ifname} in {}: {}",
        frame.len(),
        ns.name(),
        std::io::Error::last_os_error()
    );
}

/// A running capture on one interface: the AF_PACKET socket is bound before
/// [`Capture::start`] returns, so everything sent afterwards is seen. A
/// background thread drains it until [`Capture::finish`].
/// Dropping it unfinished stops the reader.
pub struct Capture {
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<Vec<Vec<u8>>>>,
}

impl Capture {
    /// Captures frames that `ifname` in `ns` receives (frames it sends are
    /// left out).
    pub fn start(ns: &Netns, ifname: &str) -> Capture {
        Capture::start_opts(ns, ifname, false)
    }

    /// Like [`Capture::start`]; with `outgoing`, frames the interface sends
    /// are captured too.
    pub fn start_opts(ns: &Netns, ifname: &str, outgoing: bool) -> Capture {
        let sock = ns.in_ns(|| {
            bound_packet_socket(
                ifname,
                libc::ETH_P_ALL as u16,
                SocketOpts {
                    auxdata: true,
                    ignore_outgoing: false,
                    rcvbuf: None,
                },
            )
        });
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || read_frames(sock, &stop, outgoing))
        };
        Capture {
            stop,
            reader: Some(reader),
        }
    }

    /// Keeps capturing for `linger` (for frames still in flight), then
    /// returns every captured frame in arrival order.
    pub fn finish(mut self, linger: Duration) -> Vec<Vec<u8>> {
        std::thread::sleep(linger);
        self.stop.store(true, Ordering::Relaxed);
        self.reader
            .take()
            .expect("a capture is finished once")
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// [`Capture::finish`], keeping only frames for which `filter` holds.
    pub fn finish_matching(self, linger: Duration, filter: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
        let mut frames = self.finish(linger);
        frames.retain(|f| filter(f));
        frames
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Captures what `ifname` in `ns` receives for `duration` and returns the
/// frames for which `filter` holds. For passive observation; to capture
/// while sending, use [`Capture`].
pub fn capture(
    ns: &Netns,
    ifname: &str,
    duration: Duration,
    filter: impl Fn(&[u8]) -> bool,
) -> Vec<Vec<u8>> {
    Capture::start(ns, ifname).finish_matching(duration, filter)
}

fn read_frames(sock: OwnedFd, stop: &AtomicBool, outgoing: bool) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    drain(&sock, stop, None, |frame, pkttype| {
        if outgoing || pkttype != PACKET_OUTGOING {
            frames.push(frame.to_vec());
        }
    });
    frames
}

/// Polls `sock` until `stop` (or `deadline`), handing every frame and its
/// `sll_pkttype` to `each`. Tags the kernel took off on receive are put back
/// (on a socket with `PACKET_AUXDATA`), so frames read as on the wire.
pub fn drain(
    sock: &OwnedFd,
    stop: &AtomicBool,
    deadline: Option<std::time::Instant>,
    mut each: impl FnMut(&[u8], u8),
) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| std::time::Instant::now() < d) {
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        if unsafe { libc::poll(&mut pfd, 1, 20) } <= 0 {
            continue;
        }
        // Drain everything queued before polling again.
        while let Ok(Some(f)) =
            mvdp::io::packet::recv_frame(sock.as_raw_fd(), &mut buf, libc::MSG_DONTWAIT)
        {
            each(&buf[f.range], f.pkttype);
        }
    }
}

/// Options of [`bound_packet_socket`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketOpts {
    /// Report tags the kernel took off (`PACKET_AUXDATA`), for [`mvdp::io::packet::recv_frame`].
    pub auxdata: bool,
    /// Do not see what this host sends (`PACKET_IGNORE_OUTGOING`).
    pub ignore_outgoing: bool,
    /// Receive buffer in bytes (`SO_RCVBUFFORCE`, past `rmem_max`; root
    /// only), for a reader that must not lose frames while it is off the
    /// CPU; the system default if `None`.
    pub rcvbuf: Option<libc::c_int>,
}

/// A receive buffer that holds about a second of a few thousand full-size
/// frames: for captures whose every frame counts.
pub const LARGE_RCVBUF: libc::c_int = 8 << 20;

/// An AF_PACKET raw socket bound to `ifname` (in the calling thread's
/// namespace) for `ethertype` frames. Opened with protocol 0 and bound only
/// after its options are set, so it queues nothing from elsewhere.
pub fn bound_packet_socket(ifname: &str, ethertype: u16, opts: SocketOpts) -> OwnedFd {
    const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
    let sock = packet_socket();
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int, what: &str| {
        // SAFETY: `value` is a live c_int whose size is passed.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert!(
            rc == 0,
            "setsockopt({what}): {}",
            std::io::Error::last_os_error()
        );
    };
    if opts.auxdata {
        let auxdata = mvdp::io::packet::PACKET_AUXDATA;
        set(libc::SOL_PACKET, auxdata, 1, "PACKET_AUXDATA");
    }
    if opts.ignore_outgoing {
        set(
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            1,
            "PACKET_IGNORE_OUTGOING",
        );
    }
    if let Some(bytes) = opts.rcvbuf {
        set(
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            bytes,
            "SO_RCVBUFFORCE",
        );
    }
    let addr = sockaddr_ll(ifindex(ifname), ethertype.to_be());
    // SAFETY: `addr` is a fully initialised sockaddr_ll whose size we pass.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert!(
        rc == 0,
        "bind packet socket to {ifname}: {}",
        std::io::Error::last_os_error()
    );
    sock
}

/// An AF_PACKET raw socket in the calling thread's namespace, protocol 0
/// (receives nothing until bound with a protocol).
fn packet_socket() -> OwnedFd {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(
        fd >= 0,
        "socket(AF_PACKET): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is a fresh, valid descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `ifname`'s index in the calling thread's namespace.
fn ifindex(ifname: &str) -> i32 {
    let name = CString::new(ifname).expect("interface name without NUL");
    // SAFETY: `name` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(
        index != 0,
        "no interface {ifname}: {}",
        std::io::Error::last_os_error()
    );
    index as i32
}

/// A `sockaddr_ll` for `ifindex` and a protocol in network byte order.
/// Sends one frame on a bound or unbound packet socket to `addr`; true if
/// the kernel took it.
pub fn send_frame(sock: &OwnedFd, addr: &libc::sockaddr_ll, frame: &[u8]) -> bool {
    // SAFETY: `frame` and `addr` are live for the call; the size is addr's.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    n > 0
}

pub fn sockaddr_ll(ifindex: i32, protocol_be: u16) -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol_be,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    }
}

/// Sends `count` copies of `frame` out of `ifname` in `ns` as fast as one
/// socket goes (bounded in time).
pub fn blast(ns: &Netns, ifname: &str, frame: &[u8], count: usize) -> usize {
    let frame = frame.to_vec();
    let ifname = ifname.to_string();
    ns.in_ns(move || {
        // SAFETY: socket(2) with constant arguments; checked below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: a fresh fd nothing else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: a valid C string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = index as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut sent = 0;
        while sent < count && Instant::now() < deadline {
            if send_frame(&sock, &sll, &frame) {
                sent += 1;
            }
        }
        sent
    })
}

/// Raw frames sent from a thread until stopped: `frames` in turn out of
/// `ifname` in `ns`, at `pps` frames/s or, with `None`, as fast as one
/// socket goes (a flood). Send errors (a full queue) are skipped.
pub struct RawSender {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl RawSender {
    /// Starts sending; the socket is open before this returns.
    pub fn start(ns: &Netns, ifname: &str, frames: Vec<Vec<u8>>, pps: Option<u64>) -> RawSender {
        assert!(!frames.is_empty() && frames.iter().all(|f| f.len() >= 14));
        let (sock, index) = ns.in_ns(|| (packet_socket(), ifindex(ifname)));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut addr = sockaddr_ll(index, 0);
            addr.sll_halen = 6;
            let start = Instant::now();
            let mut sent: u64 = 0;
            let mut next = 0usize;
            while !flag.load(Ordering::Relaxed) {
                let due = match pps {
                    Some(pps) => {
                        (start.elapsed().as_nanos() * u128::from(pps) / 1_000_000_000) as u64
                    }
                    None => sent + 256,
                };
                while sent < due {
                    let frame = &frames[next % frames.len()];
                    next += 1;
                    addr.sll_addr[..6].copy_from_slice(&frame[..6]);
                    let took = send_frame(&sock, &addr, frame);
                    // Paced frames count whether or not the queue took them,
                    // so a refusal does not turn into a burst later.
                    if took || pps.is_some() {
                        sent += 1;
                    }
                    if !took && pps.is_none() {
                        break;
                    }
                }
                if pps.is_some() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            sent
        });
        RawSender {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns how many frames were sent.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("finished once")
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for RawSender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
