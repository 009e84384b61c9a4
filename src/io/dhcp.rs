//! The packet socket a DHCP client speaks through: AF_PACKET on the
//! container's interface, opened inside the container's namespace (a socket
//! keeps the namespace it was made in), so DHCP takes the same data path
//! as the container's own traffic, whichever tier carries it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::packet::{bind, setsockopt, socket};

/// A non-blocking packet socket on one interface that receives only UDP
/// to the DHCP client port (filtered in the kernel) and sends whole frames.
#[derive(Debug)]
pub struct DhcpSocket {
    fd: OwnedFd,
}

impl DhcpSocket {
    /// Opens the socket on `ifname` in the calling thread's namespace.
    pub fn open(ifname: &str) -> io::Result<DhcpSocket> {
        let proto = (libc::ETH_P_IP as u16).to_be();
        let fd = socket(proto)?;
        let filter = client_port_filter();
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
        let name = std::ffi::CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
        // SAFETY: `name` is a NUL-terminated string that lives across the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        bind(&fd, ifindex, proto)?;
        // SAFETY: fcntl on a descriptor we own; the result is checked.
        let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DhcpSocket { fd })
    }

    /// Sends one whole Ethernet frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is a live buffer of the length given.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Takes one waiting frame into `buf` and returns its length; `None`
    /// when nothing waits.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is a live, writable buffer of the length given.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        }
    }

    /// The descriptor, for poll(2).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Classic BPF for `udp dst port 68` on an untagged IPv4 frame, first
/// fragments only (what `tcpdump -dd` gives, less its IPv6 branch).
fn client_port_filter() -> [libc::sock_filter; 11] {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    use libc::{BPF_ABS, BPF_B, BPF_H, BPF_IND, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD};
    use libc::{BPF_LDX, BPF_MSH, BPF_RET};
    [
        op(BPF_LD | BPF_H | BPF_ABS, 0, 0, 12),       // ethertype
        op(BPF_JMP | BPF_JEQ | BPF_K, 0, 8, 0x0800),  // IPv4, else drop
        op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 23),       // IP protocol
        op(BPF_JMP | BPF_JEQ | BPF_K, 0, 6, 17),      // UDP, else drop
        op(BPF_LD | BPF_H | BPF_ABS, 0, 0, 20),       // flags + fragment offset
        op(BPF_JMP | BPF_JSET | BPF_K, 4, 0, 0x1fff), // a later fragment: drop
        op(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 14),      // X = IP header length
        op(BPF_LD | BPF_H | BPF_IND, 0, 0, 16),       // UDP destination port
        op(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 68),      // the client port?
        op(BPF_RET | BPF_K, 0, 0, 0xffff),            // accept
        op(BPF_RET | BPF_K, 0, 0, 0),                 // drop
    ]
}

/// Waits up to `timeout` for any of `fds` to become readable; returns
/// which are (all false on timeout or interruption).
pub fn poll_readable(fds: &[RawFd], timeout: std::time::Duration) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfds` is a live array of `pfds.len()` pollfds.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}
