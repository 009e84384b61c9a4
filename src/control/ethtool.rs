//! The ethtool knobs mvdp needs, over the `SIOCETHTOOL` ioctl: TX checksum
//! offload, and any feature by its `ethtool -k` name.
//!
//! veth leaves locally sent TCP/UDP checksums unfinished (`CHECKSUM_PARTIAL`);
//! a frame taken raw through AF_XDP keeps them unfinished and the receiver
//! drops it. Turning TX checksum offload off on the container end makes the
//! container's stack finish every checksum (see DESIGN.md, "Checksums").
//! Frames the fast path hands to the workers cross the punt device, which
//! finishes checksums, segments and puts VLAN tags into the frame in
//! software because its offloads are off ([`set_features`]).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `ETHTOOL_GTXCSUM` from `<linux/ethtool.h>`: read TX checksum offload.
const ETHTOOL_GTXCSUM: u32 = 0x16;
/// `ETHTOOL_STXCSUM` from `<linux/ethtool.h>`: set TX checksum offload.
const ETHTOOL_STXCSUM: u32 = 0x17;

/// `ETHTOOL_GSTRINGS`: a string set's names.
const ETHTOOL_GSTRINGS: u32 = 0x1b;
/// `ETHTOOL_GSSET_INFO`: string set sizes.
const ETHTOOL_GSSET_INFO: u32 = 0x37;
/// `ETHTOOL_GFEATURES` / `ETHTOOL_SFEATURES`: the netdev feature bits.
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
/// `ETH_SS_FEATURES`: the string set naming the feature bits.
const ETH_SS_FEATURES: u32 = 4;
/// `ETH_GSTRING_LEN`: bytes per name.
const ETH_GSTRING_LEN: usize = 32;

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

/// Sets netdev features by their `ethtool -k` names (e.g.
/// `("tx-vlan-hw-insert", false)`) on `ifname` in the calling thread's
/// network namespace, then checks that they took effect.
///
/// Fails naming the feature if the device does not know it, cannot change
/// it, or ends up with another value.
pub fn set_features(ifname: &str, wanted: &[(&str, bool)]) -> io::Result<()> {
    let sock = control_socket()?;
    let names = feature_names(&sock, ifname)?;
    let blocks = names.len().div_ceil(32);
    let mut bits = Vec::with_capacity(wanted.len());
    for &(name, on) in wanted {
        let Some(bit) = names.iter().position(|n| n == name) else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{ifname}: no feature named {name:?}"),
            ));
        };
        bits.push((name, bit, on));
    }

    // struct ethtool_sfeatures: cmd, size, then {valid, requested} per block.
    let mut set = vec![0u32; 2 + 2 * blocks];
    set[0] = ETHTOOL_SFEATURES;
    set[1] = blocks as u32;
    for &(_, bit, on) in &bits {
        set[2 + 2 * (bit / 32)] |= 1 << (bit % 32);
        if on {
            set[3 + 2 * (bit / 32)] |= 1 << (bit % 32);
        }
    }
    // The kernel may adjust the request for a dependency; the read-back
    // below decides.
    // SAFETY: `set` is an ethtool_sfeatures of `blocks` blocks.
    unsafe { ethtool_raw(&sock, ifname, set.as_mut_ptr().cast())? };

    // struct ethtool_gfeatures: cmd, size, then {available, requested,
    // active, never_changed} per block.
    let mut get = vec![0u32; 2 + 4 * blocks];
    get[0] = ETHTOOL_GFEATURES;
    get[1] = blocks as u32;
    // SAFETY: `get` is an ethtool_gfeatures of `blocks` blocks.
    unsafe { ethtool_raw(&sock, ifname, get.as_mut_ptr().cast())? };
    for (name, bit, on) in bits {
        let active = get[2 + 4 * (bit / 32) + 2] & (1 << (bit % 32)) != 0;
        if active != on {
            return Err(io::Error::other(format!(
                "{ifname}: feature {name} is still {} after setting it {}",
                if active { "on" } else { "off" },
                if on { "on" } else { "off" },
            )));
        }
    }
    Ok(())
}

/// The names of the device's feature bits, in bit order.
fn feature_names(sock: &OwnedFd, ifname: &str) -> io::Result<Vec<String>> {
    // struct ethtool_sset_info: cmd, reserved, u64 sset_mask, then one u32
    // per set in the mask.
    let mut info = [0u32; 5];
    info[0] = ETHTOOL_GSSET_INFO;
    let mask = 1u64 << ETH_SS_FEATURES;
    info[2] = mask as u32;
    info[3] = (mask >> 32) as u32;
    // SAFETY: `info` is an ethtool_sset_info with room for one set's size.
    unsafe { ethtool_raw(sock, ifname, info.as_mut_ptr().cast())? };
    let count = info[4] as usize;

    // struct ethtool_gstrings: cmd, string_set, len, then len names of 32 bytes.
    let mut buf = vec![0u8; 12 + count * ETH_GSTRING_LEN];
    buf[0..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
    buf[4..8].copy_from_slice(&ETH_SS_FEATURES.to_ne_bytes());
    buf[8..12].copy_from_slice(&(count as u32).to_ne_bytes());
    // SAFETY: `buf` is an ethtool_gstrings with room for `count` names.
    unsafe { ethtool_raw(sock, ifname, buf.as_mut_ptr().cast())? };
    Ok(buf[12..]
        .chunks(ETH_GSTRING_LEN)
        .map(|raw| {
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).into_owned()
        })
        .collect())
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
    // SAFETY: `value` is a live `ethtool_value`, the payload of the legacy
    // get/set commands this is used for.
    unsafe { ethtool_raw(sock, ifname, (value as *mut EthtoolValue).cast()) }
}

/// Issues one `SIOCETHTOOL` request whose payload starts at `data`.
///
/// # Safety
///
/// `data` must point at a live, writable buffer laid out and sized as the
/// command in its first `u32` requires (the kernel reads and writes it).
unsafe fn ethtool_raw(sock: &OwnedFd, ifname: &str, data: *mut libc::c_char) -> io::Result<()> {
    let mut ifr = ifreq_for(ifname)?;
    ifr.ifr_ifru.ifru_data = data;
    // SAFETY: `ifr` is a valid, NUL-terminated `ifreq`; the caller promises
    // that its data pointer refers to a buffer sized for its command.
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
