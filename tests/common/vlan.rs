//! A VLAN sub-interface for the wire namespace, in user space: this kernel
//! has neither 802.1Q devices (CONFIG_VLAN_8021Q) nor tc's vlan action. A TAP
//! device carries the VLAN's untagged side; a thread moves frames between it
//! and the trunk, adding the tag on the way out and taking it off on the way
//! in, as `ip link add link w0 name w0.50 type vlan id 50` would.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::netns::Netns;
use super::packet::{bound_packet_socket, SocketOpts};

/// A user-space VLAN sub-interface; dropping it stops the relay (the TAP goes with it).
pub struct VlanIf {
    stop: Arc<AtomicBool>,
    relay: Option<JoinHandle<()>>,
}

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

impl VlanIf {
    /// Creates TAP `name` in `ns` with `addr_cidr` (e.g. "10.78.0.1/24"),
    /// relaying VLAN `vid` of `trunk`.
    pub fn start(ns: &Netns, trunk: &str, vid: u16, name: &str, addr_cidr: &str) -> VlanIf {
        let (tap, sock) = ns.in_ns(|| (open_tap(name), trunk_socket(trunk)));
        ns.ip(&["addr", "add", addr_cidr, "dev", name]);
        ns.ip(&["link", "set", name, "up"]);
        let stop = Arc::new(AtomicBool::new(false));
        let relay = {
            let stop = stop.clone();
            std::thread::spawn(move || relay(tap, sock, vid, &stop))
        };
        VlanIf {
            stop,
            relay: Some(relay),
        }
    }
}

impl Drop for VlanIf {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.relay.take() {
            let _ = r.join();
        }
    }
}

fn relay(tap: OwnedFd, sock: OwnedFd, vid: u16, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::with_capacity(65536);
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [
            libc::pollfd {
                fd: tap.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, 20) } <= 0 {
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            // Untagged side → trunk, with the tag.
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::read(tap.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 14 {
                let f = &buf[..n as usize];
                out.clear();
                out.extend_from_slice(&f[..12]);
                out.extend_from_slice(&[0x81, 0x00]);
                out.extend_from_slice(&vid.to_be_bytes());
                out.extend_from_slice(&f[12..]);
                // SAFETY: `out` is readable for its length; the socket is bound.
                unsafe { libc::send(sock.as_raw_fd(), out.as_ptr().cast(), out.len(), 0) };
            }
        }
        if fds[1].revents & libc::POLLIN != 0 {
            // Trunk → untagged side, for frames of this VLAN only.
            while let Ok(Some(f)) =
                mvdp::io::packet::recv_frame(sock.as_raw_fd(), &mut buf, libc::MSG_DONTWAIT)
            {
                let frame = &buf[f.range];
                if frame.len() >= 18
                    && frame[12..14] == [0x81, 0x00]
                    && u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff == vid
                {
                    out.clear();
                    out.extend_from_slice(&frame[..12]);
                    out.extend_from_slice(&frame[16..]);
                    // SAFETY: `out` is readable for its length.
                    unsafe { libc::write(tap.as_raw_fd(), out.as_ptr().cast(), out.len()) };
                }
            }
        }
    }
}

fn open_tap(name: &str) -> OwnedFd {
    let path = std::ffi::CString::new("/dev/net/tun").unwrap();
    // SAFETY: a valid C string; the result is checked.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    assert!(
        fd >= 0,
        "open /dev/net/tun: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a fresh fd nothing else owns.
    let tap = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI;
    // SAFETY: TUNSETIFF reads the live `ifr`.
    let rc = unsafe { libc::ioctl(tap.as_raw_fd(), TUNSETIFF, &mut ifr) };
    assert_eq!(
        rc,
        0,
        "TUNSETIFF {name}: {}",
        std::io::Error::last_os_error()
    );
    tap
}

fn trunk_socket(trunk: &str) -> OwnedFd {
    bound_packet_socket(
        trunk,
        libc::ETH_P_ALL as u16,
        SocketOpts {
            auxdata: true,
            ignore_outgoing: true,
            rcvbuf: None,
        },
    )
}
