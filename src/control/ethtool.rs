//! The one ethtool knob mvdp needs: TX checksum offload, over the legacy
//! `SIOCETHTOOL` ioctl.
//!
//! veth leaves locally sent TCP/UDP checksums unfinished (`CHECKSUM_PARTIAL`);
//! a frame taken raw through AF_XDP keeps them unfinished and the receiver
//! drops it. Turning TX checksum offload off on the container end makes the
//! container's stack finish every checksum (see DESIGN.md, "Checksums").

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `ETHTOOL_GTXCSUM` from `<linux/ethtool.h>`: read TX checksum offload.
const ETHTOOL_GTXCSUM: u32 = 0x16;
/// `ETHTOOL_STXCSUM` from `<linux/ethtool.h>`: set TX checksum offload.
const ETHTOOL_STXCSUM: u32 = 0x17;

/// `struct ethtool_value` from `<linux/ethtool.h>`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Turns TX checksum offload (`ethtool -K IF tx on|off`) on or off for
/// `ifname` in the calling thread's network namespace, then reads it back.
///
/// Turning it off also drops the features that depend on it (TSO, for one),
/// as `ethtool -K` does. Fails with the kernel's error (`ENODEV` for a missing
/// interface, `EOPNOTSUPP` where the driver cannot change it) or with
/// `ErrorKind::Other` if the device did not take the new setting.
pub fn set_tx_checksum(ifname: &str, on: bool) -> io::Result<()> {
    let sock = control_socket()?;
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: u32::from(on),
    };
    ethtool_ioctl(&sock, ifname, &mut value)?;

    let mut check = EthtoolValue {
        cmd: ETHTOOL_GTXCSUM,
        data: 0,
    };
    ethtool_ioctl(&sock, ifname, &mut check)?;
    if (check.data != 0) != on {
        return Err(io::Error::other(format!(
            "{ifname}: TX checksum offload is still {} after setting it {}",
            if check.data != 0 { "on" } else { "off" },
            if on { "on" } else { "off" },
        )));
    }
    Ok(())
}

/// An `AF_INET` datagram socket: the handle the ioctl goes through. The ioctl
/// acts in the netns the socket was opened in.
fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; the return value is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly opened descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Issues one `SIOCETHTOOL` request on `ifname` with `value` as its payload.
fn ethtool_ioctl(sock: &OwnedFd, ifname: &str, value: &mut EthtoolValue) -> io::Result<()> {
    let mut ifr = ifreq_for(ifname)?;
    ifr.ifr_ifru.ifru_data = (value as *mut EthtoolValue).cast();
    // SAFETY: `ifr` is a valid, NUL-terminated `ifreq` whose data pointer
    // refers to `value`, a live `ethtool_value` the kernel reads and writes
    // only for the duration of the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A zeroed `ifreq` carrying `ifname`, NUL-terminated.
pub(crate) fn ifreq_for(ifname: &str) -> io::Result<libc::ifreq> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ifname:?} is not a valid interface name (1..=15 bytes, no NUL)"),
        ));
    }
    // SAFETY: `ifreq` is plain old data (arrays, integers, a pointer in a
    // union); all-zero is a valid value for every field.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    Ok(ifr)
}
