//! The group-frame listener: an AF_PACKET socket on the parent that copies
//! broadcast and multicast frames (which the XDP program passes to the host)
//! to mvdp's flood path. Frames mvdp itself sends are not seen: AF_XDP TX
//! bypasses packet taps and `PACKET_IGNORE_OUTGOING` covers the rest.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// A received group frame's length.
pub type FrameLen = usize;

/// A packet socket bound to one interface that yields only broadcast and multicast frames.
#[derive(Debug)]
pub struct GroupListener {
    fd: OwnedFd,
}

impl GroupListener {
    /// Opens the listener on `ifindex` (in the caller's netns); `recv` returns at least every `timeout`.
    pub fn open(ifindex: u32, timeout: Duration) -> io::Result<GroupListener> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        setsockopt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one)?;
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        let rcvbuf: libc::c_int = 4 << 20;
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf)?;
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and the length matches it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(GroupListener { fd })
    }

    /// Waits up to the timeout for a frame; returns the length of a broadcast
    /// or multicast frame copied into `buf`, or `None` (timeout, or a frame of
    /// another type, which is ignored).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<FrameLen>> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` and `sll` are valid writable buffers of the given lengths.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(err),
            };
        }
        let n = n as usize;
        let group = matches!(
            sll.sll_pkttype,
            libc::PACKET_BROADCAST | libc::PACKET_MULTICAST
        );
        // MSG_TRUNC reports the real length: a frame longer than `buf` is not forwarded cut short.
        if !group || n > buf.len() {
            return Ok(None);
        }
        Ok(Some(n))
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
