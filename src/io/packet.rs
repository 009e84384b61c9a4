//! The group-frame listener: an AF_PACKET socket on the parent that copies
//! broadcast and multicast frames (which the XDP program passes to the host)
//! to mvdp's flood path. Frames mvdp itself sends are not seen: AF_XDP TX
//! bypasses packet taps and `PACKET_IGNORE_OUTGOING` covers the rest.
//!
//! The socket also holds the parent in all-multicast mode for as long as it
//! is open (see `open`).

use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::wire::{ETHERTYPE_VLAN, ETH_HEADER_LEN, VLAN_TAG_LEN};

const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const PACKET_MR_ALLMULTI: libc::c_ushort = 2;
/// The socket option that makes the kernel report offloaded VLAN tags.
pub const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// A packet socket bound to one interface that yields only broadcast and multicast frames.
#[derive(Debug)]
pub struct GroupListener {
    fd: OwnedFd,
}

impl GroupListener {
    /// Opens the listener on `ifindex` (in the caller's netns); `recv` returns at least every `timeout`.
    /// With `promisc`, the socket also holds the parent promiscuous (a
    /// passthru network receives frames for any MAC).
    pub fn open(ifindex: u32, timeout: Duration, promisc: bool) -> io::Result<GroupListener> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let fd = socket(proto)?;
        let one: libc::c_int = 1;
        setsockopt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one)?;
        setsockopt(&fd, libc::SOL_PACKET, PACKET_AUXDATA, &one)?;
        // Containers join multicast groups the NIC's filter knows nothing of
        // (IPv6 neighbour discovery, mDNS, ...): receive all multicast for as
        // long as this socket lives. The kernel counts the membership and
        // drops it when the socket closes, even if mvdp dies.
        let allmulti = PacketMreq {
            mr_ifindex: ifindex as libc::c_int,
            mr_type: PACKET_MR_ALLMULTI,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setsockopt(&fd, libc::SOL_PACKET, PACKET_ADD_MEMBERSHIP, &allmulti)?;
        if promisc {
            let promisc = PacketMreq {
                mr_type: PACKET_MR_PROMISC,
                ..allmulti
            };
            setsockopt(&fd, libc::SOL_PACKET, PACKET_ADD_MEMBERSHIP, &promisc)?;
        }
        // Keep everything but broadcast and multicast in the kernel: on a
        // promiscuous parent the socket would otherwise copy every frame the
        // host stack gets to user space only for `recv` to throw it away.
        let filter = group_only_filter();
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        let rcvbuf: libc::c_int = 4 << 20;
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf)?;
        bind(&fd, ifindex, proto)?;
        Ok(GroupListener { fd })
    }

    /// Takes a frame, waiting up to the timeout for one if `wait`; returns
    /// where in `buf` a broadcast or multicast frame was put, or `None`
    /// (nothing came, or a frame of another type, which is ignored). A VLAN
    /// tag the driver took off (RX VLAN offload) is put back, so the frame
    /// reads as it was on the wire.
    ///
    /// A group frame that cannot be handed out whole comes back as
    /// `Some(Err(fault))`, so that it is counted, never lost unseen.
    pub fn recv(
        &self,
        buf: &mut [u8],
        wait: bool,
    ) -> io::Result<Option<Result<Range<usize>, FrameFault>>> {
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        let is_group = |pkttype| matches!(pkttype, libc::PACKET_BROADCAST | libc::PACKET_MULTICAST);
        Ok(match recv_any(self.fd.as_raw_fd(), buf, flags)? {
            None => None,
            Some(Received::Frame(f)) => is_group(f.pkttype).then_some(Ok(f.range)),
            Some(Received::Fault { pkttype, fault }) => is_group(pkttype).then_some(Err(fault)),
        })
    }
}

/// A frame received from a packet socket.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    /// Where in the buffer the frame is.
    pub range: Range<usize>,
    /// `sll_pkttype`: PACKET_HOST, BROADCAST, MULTICAST, OTHERHOST, OUTGOING.
    pub pkttype: u8,
}

/// Receives one frame from a packet socket that has `PACKET_AUXDATA` on,
/// putting back a VLAN tag the kernel took off (RX VLAN offload, or the
/// untagging every receive does before packet taps run), so the frame reads
/// as it was on the wire. `Ok(None)`: nothing waiting (or interrupted), or a
/// frame too long for `buf` (never handed out cut short).
pub fn recv_frame(
    fd: RawFd,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<Option<ReceivedFrame>> {
    Ok(match recv_any(fd, buf, flags)? {
        Some(Received::Frame(f)) => Some(f),
        _ => None,
    })
}

/// Why a received frame could not be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFault {
    /// Shorter than an Ethernet header.
    Short,
    /// Longer than the buffer (it is never handed out cut short).
    TooLong,
}

/// What one receive got.
enum Received {
    Frame(ReceivedFrame),
    Fault { pkttype: u8, fault: FrameFault },
}

/// [`recv_frame`], telling a frame that could not be handed out from nothing.
fn recv_any(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<Option<Received>> {
    if buf.len() <= VLAN_TAG_LEN + ETH_HEADER_LEN {
        return Ok(None);
    }
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf[VLAN_TAG_LEN..].as_mut_ptr().cast(),
        iov_len: buf.len() - VLAN_TAG_LEN,
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `msg` refers to a live buffer of the stated length.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_TRUNC | flags) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(err),
        };
    }
    let n = n as usize;
    let pkttype = sll.sll_pkttype;
    // MSG_TRUNC reports the real length.
    let fault = if n > iov.iov_len {
        Some(FrameFault::TooLong)
    } else if n < ETH_HEADER_LEN {
        Some(FrameFault::Short)
    } else {
        None
    };
    if let Some(fault) = fault {
        return Ok(Some(Received::Fault { pkttype, fault }));
    }
    let Some((tpid, tci)) = offloaded_vlan(&msg) else {
        return Ok(Some(Received::Frame(ReceivedFrame {
            range: VLAN_TAG_LEN..VLAN_TAG_LEN + n,
            pkttype,
        })));
    };
    // Move the MACs forward and write the tag between them and the ethertype.
    buf.copy_within(VLAN_TAG_LEN..VLAN_TAG_LEN + 12, 0);
    buf[12..14].copy_from_slice(&tpid.to_be_bytes());
    buf[14..16].copy_from_slice(&tci.to_be_bytes());
    Ok(Some(Received::Frame(ReceivedFrame {
        range: 0..n + VLAN_TAG_LEN,
        pkttype,
    })))
}

/// The VLAN tag the kernel reports out of band (PACKET_AUXDATA), if any.
fn offloaded_vlan(msg: &libc::msghdr) -> Option<(u16, u16)> {
    const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
    const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay within msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is non-null and points into the control buffer.
        let hdr = unsafe { &*cmsg };
        if hdr.cmsg_level == libc::SOL_PACKET && hdr.cmsg_type == PACKET_AUXDATA {
            // SAFETY: a PACKET_AUXDATA cmsg carries a tpacket_auxdata; read unaligned to be safe.
            let aux: TpacketAuxdata =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            if aux.tp_status & TP_STATUS_VLAN_VALID == 0 {
                return None;
            }
            let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                aux.tp_vlan_tpid
            } else {
                ETHERTYPE_VLAN
            };
            return Some((tpid, aux.tp_vlan_tci));
        }
        // SAFETY: as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    None
}

/// A classic BPF filter accepting only PACKET_BROADCAST and PACKET_MULTICAST frames.
fn group_only_filter() -> [libc::sock_filter; 5] {
    const SKF_AD_OFF: i32 = -0x1000;
    const SKF_AD_PKTTYPE: i32 = 4;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    [
        // A = skb->pkt_type
        stmt(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            (SKF_AD_OFF + SKF_AD_PKTTYPE) as u32,
        ),
        jeq(libc::PACKET_BROADCAST as u32, 1, 0),
        jeq(libc::PACKET_MULTICAST as u32, 0, 1),
        stmt(libc::BPF_RET | libc::BPF_K, u32::MAX),
        stmt(libc::BPF_RET | libc::BPF_K, 0),
    ]
}

/// `struct tpacket_auxdata` from linux/if_packet.h.
#[repr(C)]
#[derive(Clone, Copy)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// `struct packet_mreq` from linux/if_packet.h.
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

/// A raw AF_PACKET socket for `proto` (network byte order; 0: send only).
pub fn socket(proto: u16) -> io::Result<OwnedFd> {
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
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Binds a packet socket to `ifindex` for `proto` (network byte order).
pub fn bind(fd: &OwnedFd, ifindex: u32, proto: u16) -> io::Result<()> {
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
    Ok(())
}

/// setsockopt(2) with a value of any plain type.
pub fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
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
