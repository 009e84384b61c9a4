//! The kernel's macvlan as a reference system, and a hairpin switch on the
//! wire, for tests that compare mvdp with the kernel on the same rig.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::Netns;
use super::packet::{bound_packet_socket, sockaddr_ll, SocketOpts, LARGE_RCVBUF};
use super::rig::{Container, Rig, PARENT_IF, PREFIX_LEN, WIRE_IF};

/// `PACKET_IGNORE_OUTGOING` (`linux/if_packet.h`): the socket does not see
/// frames its interface sends, so a reflector never hears its own echo.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `sll_pkttype` of frames the interface sends (`linux/if_packet.h`).
const PACKET_OUTGOING: u8 = 4;
/// The longest a [`Reflector`] or [`StackCapture`] runs if nobody stops it.
const MAX_LIFETIME: Duration = Duration::from_secs(60);

/// `aa:bb:cc:dd:ee:ff`, as `ip link` and mvdp's config write a MAC.
pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Gives each of `containers` a kernel macvlan on the host's parent NIC in
/// `mode` (`bridge`, `private`, `vepa`, `passthru` or `source`), as Docker's
/// macvlan driver would: created on `p0` in the host namespace, given the
/// container's MAC, moved into the container, renamed `eth0`, addressed and
/// up. In `source` mode each macvlan accepts frames from `allowed_sources`.
///
/// In `passthru` mode the macvlan shares the parent's MAC: setting the
/// container's MAC on it changes `p0`'s too (the kernel does that, not us).
pub fn add_kernel_macvlans(
    rig: &Rig,
    mode: &str,
    containers: &[&Container],
    allowed_sources: &[[u8; 6]],
) {
    assert!(
        mode != "passthru" || containers.len() == 1,
        "a passthru parent takes exactly one macvlan"
    );
    for (i, c) in containers.iter().enumerate() {
        let tmp = format!("mvk{i}");
        #[rustfmt::skip]
        rig.host.ip(&[
            "link", "add", "link", PARENT_IF, "name", &tmp, "type", "macvlan", "mode", mode,
        ]);
        rig.host
            .ip(&["link", "set", "dev", &tmp, "address", &fmt_mac(&c.mac())]);
        for src in allowed_sources {
            #[rustfmt::skip]
            rig.host.ip(&[
                "link", "set", "dev", &tmp, "type", "macvlan", "macaddr", "add", &fmt_mac(src),
            ]);
        }
        rig.host
            .ip(&["link", "set", "dev", &tmp, "netns", c.ns.name()]);
        c.ns.ip(&["link", "set", "dev", &tmp, "name", c.ifname()]);
        c.ns.ip(&[
            "addr",
            "add",
            &format!("{}/{PREFIX_LEN}", c.ip),
            "dev",
            c.ifname(),
        ]);
        c.ns.ip(&["link", "set", "dev", c.ifname(), "up"]);
    }
}

/// An external switch port with hairpin turned on, played by the wire
/// namespace: a thread re-sends out of `w0` every frame `w0` receives whose
/// source MAC is one of `sources` (the containers) and whose destination is
/// not `own` (the wire host's MAC, which the switch delivers and does not
/// return), so frames a container sends come back to the parent as a VEPA
/// switch would return them. Stops on drop, or after a minute at the latest.
pub struct Reflector {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl Reflector {
    /// Opens the socket on `w0` in `wire` (bound before this returns, so
    /// every frame sent afterwards is reflected) and starts reflecting.
    pub fn start(wire: &Netns, own: [u8; 6], sources: Vec<[u8; 6]>) -> Reflector {
        let sock = wire.in_ns(|| bound_socket(WIRE_IF, libc::ETH_P_ALL as u16));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || reflect(&sock, own, &sources, &stop))
        };
        Reflector {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops reflecting; returns how many frames were reflected.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("a reflector is stopped once")
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Captures what the host *stack* of `ifname` receives of one EtherType:
/// an AF_PACKET socket bound to `ethertype` (not `ETH_P_ALL`) is served
/// after the device's rx handler (macvlan's) has had the frame, so it sees
/// only what the handler passed up, unlike a [`super::Capture`], which sees
/// every frame the device receives before macvlan takes it. Frames an XDP
/// program redirects are seen by neither.
pub struct StackCapture {
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<Vec<Vec<u8>>>>,
}

impl StackCapture {
    /// Binds the socket before returning, so every frame sent afterwards is
    /// seen.
    pub fn start(ns: &Netns, ifname: &str, ethertype: u16) -> StackCapture {
        let sock = ns.in_ns(|| bound_socket(ifname, ethertype));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut frames = Vec::new();
                drain(&sock, &stop, |frame, _| {
                    frames.push(frame.to_vec());
                });
                frames
            })
        };
        StackCapture {
            stop,
            reader: Some(reader),
        }
    }

    /// Keeps capturing for `linger`, then returns the frames for which
    /// `filter` holds, in arrival order.
    pub fn finish_matching(
        mut self,
        linger: Duration,
        filter: impl Fn(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
        std::thread::sleep(linger);
        self.stop.store(true, Ordering::Relaxed);
        let mut frames = self
            .reader
            .take()
            .expect("a capture is finished once")
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        frames.retain(|f| filter(f));
        frames
    }
}

impl Drop for StackCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// [`packet::drain`](super::packet::drain) for at most [`MAX_LIFETIME`].
fn drain(sock: &OwnedFd, stop: &AtomicBool, each: impl FnMut(&[u8], u8)) {
    super::packet::drain(sock, stop, Some(Instant::now() + MAX_LIFETIME), each);
}

fn reflect(sock: &OwnedFd, own: [u8; 6], sources: &[[u8; 6]], stop: &AtomicBool) -> usize {
    let mut reflected = 0;
    drain(sock, stop, |frame, pkttype| {
        // PACKET_IGNORE_OUTGOING already hides our own sends; the pkttype
        // check keeps that true should the option be ignored.
        if frame.len() < 14
            || pkttype == PACKET_OUTGOING
            || frame[..6] == own[..]
            || !sources.iter().any(|s| frame[6..12] == s[..])
        {
            return;
        }
        // SAFETY: `frame` is a valid readable buffer of `frame.len()` bytes;
        // the socket is bound to w0, so send(2) goes out there.
        let sent = unsafe { libc::send(sock.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if sent == frame.len() as isize {
            reflected += 1;
        }
    });
    reflected
}

/// An AF_PACKET socket in the calling thread's namespace, bound to `ifname`
/// for `ethertype` (`ETH_P_ALL` for every frame), that ignores its
/// interface's outgoing frames. Its receive buffer is large: a reflector or
/// capture thread held off the CPU must not lose a stream's frames.
fn bound_socket(ifname: &str, ethertype: u16) -> OwnedFd {
    bound_packet_socket(
        ifname,
        ethertype,
        SocketOpts {
            auxdata: false,
            ignore_outgoing: true,
            rcvbuf: Some(LARGE_RCVBUF),
        },
    )
}
