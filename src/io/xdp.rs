//! The XDP program on the parent: load, attach (native, else SKB), maps, counters, detach.
//!
//! The program itself is `bpf/mvdp.c`, compiled by `build.rs` and embedded in
//! the binary. It redirects frames whose destination (MAC, VLAN) is in its
//! `endpoints` map to the AF_XDP socket in `xsks[rx_queue]` and passes
//! everything else to the host stack. See `bpf/README.md`.
//!
//! Attachment uses a BPF link (`BPF_LINK_CREATE`), which the kernel refuses
//! when the interface already has an XDP program of any kind, so mvdp never
//! replaces someone else's program; and a link goes away with its fd, so even
//! a crashed mvdp leaves no program behind.

use std::fmt;
use std::os::fd::{FromRawFd as _, RawFd};

use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray, XskMap};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{Ebpf, EbpfError};

use super::bpf::{self, chain, EpKey};
use crate::wire::MacAddr;

/// The parent NIC's program in `bpf/mvdp.c`: endpoint frames to AF_XDP, the rest to the host.
const PROGRAM_NAME: &str = "mvdp_xdp";
/// The endpoint veth's program in `bpf/mvdp.c`: every frame to AF_XDP.
const PORT_PROGRAM_NAME: &str = "mvdp_port";
/// Map names in `bpf/mvdp.c`.
const MAP_ENDPOINTS: &str = "endpoints";
const MAP_XSKS: &str = "xsks";
const MAP_COUNTERS: &str = "counters";
const MAP_PASSTHRU: &str = "passthru";
const MAP_XSK_LIMIT: &str = "xsk_limit";
/// `MVDP_EP_HAIRPIN_OWNED` in bpf/mvdp.h: or'ed into an endpoint's value in
/// [`XdpProgram::add_endpoint`] when reflected group frames from its MAC are
/// mvdp's (private, passthru and source networks).
pub const EP_HAIRPIN_OWNED: u32 = 0x8000_0000;
/// `MVDP_EP_FAST` in bpf/mvdp.h: or'ed into an endpoint's value when its
/// unicast takes the tc fast path, so the XDP program passes it on.
pub const EP_FAST: u32 = 0x4000_0000;
/// `MVDP_PASSTHRU_ON` in bpf/mvdp.h.
const PASSTHRU_ON: u32 = 0x10000;

/// Highest VID an endpoint may use (4095 is reserved by 802.1Q).
const MAX_VLAN: u16 = 4094;

/// The compiled XDP program, embedded at build time.
fn program_object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mvdp.bpf.o"))
}

/// Mirror of `enum mvdp_xdp_counter` in `bpf/mvdp.h`, in the same order.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
enum Counter {
    Rx = 0,
    Redirect,
    PassHost,
    PassGroup,
    NoSocket,
    Short,
    PassFast,
    TooLong,
}

impl Counter {
    const ALL: [Counter; 8] = [
        Counter::Rx,
        Counter::Redirect,
        Counter::PassHost,
        Counter::PassGroup,
        Counter::NoSocket,
        Counter::Short,
        Counter::PassFast,
        Counter::TooLong,
    ];
}

/// The XDP attach mode asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) mode if the driver takes it, else generic (SKB) mode.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode only: works on any interface, slower.
    Skb,
}

/// The XDP attach mode in effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    /// Native (driver) mode; `ip link` shows `xdp`.
    Native,
    /// Generic (SKB) mode; `ip link` shows `xdpgeneric`.
    Skb,
}

impl AttachedMode {
    fn aya_mode(self) -> XdpMode {
        match self {
            AttachedMode::Native => XdpMode::Driver,
            AttachedMode::Skb => XdpMode::Skb,
        }
    }
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Skb => "skb",
        })
    }
}

/// The XDP program's frame counters, summed over CPUs.
///
/// `rx = redirect + pass_host + pass_group + no_socket + short + pass_fast`
/// (up to frames in flight while the counters are read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Every frame the program saw.
    pub rx: u64,
    /// Frames redirected to an AF_XDP socket.
    pub redirect: u64,
    /// Unicast frames for no endpoint, passed to the host stack.
    pub pass_host: u64,
    /// Broadcast and multicast frames, passed to the host stack.
    pub pass_group: u64,
    /// Frames for an endpoint arriving on a queue with no socket, passed to the host.
    pub no_socket: u64,
    /// Runts and frames with a truncated 802.1Q tag, passed to the host.
    pub short: u64,
    /// Unicast for fast-path endpoints, passed on to the tc fast path.
    pub pass_fast: u64,
    /// Frames for a socket longer than a UMEM frame holds, dropped (`too_long`).
    pub too_long: u64,
}

/// Why an XDP operation failed. Every message names the interface and the operation.
#[derive(thiserror::Error, Debug)]
pub enum XdpError {
    /// The interface does not exist in the caller's network namespace.
    #[error("XDP on {ifname}: no such network interface in this network namespace")]
    NoSuchInterface {
        /// The interface asked for.
        ifname: String,
    },
    /// The embedded BPF object could not be parsed or its maps created.
    #[error("XDP on {ifname}: loading the embedded BPF object failed: {}", chain(.error.as_ref()))]
    LoadObject {
        /// The interface the program was meant for.
        ifname: String,
        /// aya's error.
        error: Box<EbpfError>,
    },
    /// The embedded object lacks a program or map mvdp needs (a build problem).
    #[error("XDP on {ifname}: the embedded BPF object has no usable {what} `{name}`: {error}")]
    MissingObject {
        /// The interface the program was meant for.
        ifname: String,
        /// "program" or "map".
        what: &'static str,
        /// The name looked up.
        name: &'static str,
        /// What was wrong with it.
        error: String,
    },
    /// The kernel refused the program (the verifier log is in the message).
    #[error("XDP on {ifname}: loading program `{program}` into the kernel failed: {}", chain(.error.as_ref()))]
    LoadProgram {
        /// The interface the program was meant for.
        ifname: String,
        /// The program's name in `bpf/mvdp.c`.
        program: &'static str,
        /// aya's error, with the verifier log.
        error: Box<ProgramError>,
    },
    /// The interface already has an XDP program; mvdp never replaces one.
    #[error(
        "XDP on {ifname}: attaching in {mode} mode failed: the interface already has {existing}, \
         and mvdp never replaces an XDP program; see `ip link show dev {ifname}`, and if it is \
         stale remove it with `ip link set dev {ifname} xdp off`"
    )]
    AlreadyAttached {
        /// The interface.
        ifname: String,
        /// The mode that was tried.
        mode: AttachedMode,
        /// The program found there, e.g. "XDP program 126 `mvdp_xdp` (native mode)".
        existing: String,
    },
    /// Attaching failed for another reason (e.g. the driver lacks native XDP).
    #[error("XDP on {ifname}: attaching in {mode} mode failed: {}", chain(.error.as_ref()))]
    Attach {
        /// The interface.
        ifname: String,
        /// The mode that was tried.
        mode: AttachedMode,
        /// aya's error.
        error: Box<ProgramError>,
    },
    /// Detaching failed.
    #[error("XDP on {ifname}: detaching failed: {}", chain(.error.as_ref()))]
    Detach {
        /// The interface.
        ifname: String,
        /// aya's error.
        error: Box<ProgramError>,
    },
    /// A VLAN id outside 0..=4094.
    #[error("XDP on {ifname}: {op}: VLAN id {vlan} is out of range (0 = untagged, else 1..=4094)")]
    InvalidVlan {
        /// The interface.
        ifname: String,
        /// The operation, with its arguments.
        op: String,
        /// The VLAN id given.
        vlan: u16,
    },
    /// A map update, delete or lookup failed.
    #[error("XDP on {ifname}: {op} failed: {}", chain(.error.as_ref()))]
    Map {
        /// The interface.
        ifname: String,
        /// The operation, with its arguments (e.g. "set socket for queue 3").
        op: String,
        /// aya's error.
        error: Box<MapError>,
    },
}

/// mvdp's XDP program, loaded and attached to one interface, with its maps.
///
/// Dropping it detaches the program (errors are logged); [`XdpProgram::detach`]
/// does the same and reports errors.
pub struct XdpProgram {
    ifname: String,
    /// Which program of the object runs here.
    program: &'static str,
    mode: AttachedMode,
    /// `None` once detached.
    link: Option<XdpLinkId>,
    endpoints: HashMap<MapData, EpKey, u32>,
    xsks: XskMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
    passthru: Array<MapData, u32>,
    xsk_limit: Array<MapData, u32>,
    /// Owns the program; dropped (unloaded) after the link is gone.
    bpf: Ebpf,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ifname", &self.ifname)
            .field("program", &self.program)
            .field("mode", &self.mode)
            .field("attached", &self.link.is_some())
            .finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Loads the program and attaches it to `ifname` (resolved in the calling
    /// thread's network namespace).
    ///
    /// `Auto` tries native mode and falls back to SKB mode with a warning,
    /// unless native mode failed because a program is already attached.
    /// Fails with [`XdpError::AlreadyAttached`] if the interface has any XDP program.
    pub fn attach(ifname: &str, mode: AttachMode) -> Result<XdpProgram, XdpError> {
        Self::attach_program(ifname, mode, PROGRAM_NAME)
    }

    fn attach_program(
        ifname: &str,
        mode: AttachMode,
        program_name: &'static str,
    ) -> Result<XdpProgram, XdpError> {
        let name = ifname.to_string();
        if if_index(ifname).is_none() {
            return Err(XdpError::NoSuchInterface { ifname: name });
        }
        raise_memlock_limit();

        let mut bpf = Ebpf::load(program_object()).map_err(|e| XdpError::LoadObject {
            ifname: name.clone(),
            error: Box::new(e),
        })?;
        let endpoints = take_map(&mut bpf, ifname, MAP_ENDPOINTS, HashMap::try_from)?;
        let xsks = take_map(&mut bpf, ifname, MAP_XSKS, XskMap::try_from)?;
        let counters = take_map(&mut bpf, ifname, MAP_COUNTERS, PerCpuArray::try_from)?;
        let passthru = take_map(&mut bpf, ifname, MAP_PASSTHRU, Array::try_from)?;
        let xsk_limit = take_map(&mut bpf, ifname, MAP_XSK_LIMIT, Array::try_from)?;

        let program = xdp_program(&mut bpf, ifname, program_name)?;
        program.load().map_err(|error| XdpError::LoadProgram {
            ifname: name.clone(),
            program: program_name,
            error: Box::new(error),
        })?;

        let (link, mode) = match mode {
            AttachMode::Native => (
                try_attach(program, ifname, AttachedMode::Native)?,
                AttachedMode::Native,
            ),
            AttachMode::Skb => (
                try_attach(program, ifname, AttachedMode::Skb)?,
                AttachedMode::Skb,
            ),
            AttachMode::Auto => match try_attach(program, ifname, AttachedMode::Native) {
                Ok(link) => (link, AttachedMode::Native),
                Err(e @ XdpError::AlreadyAttached { .. }) => return Err(e),
                Err(e) => {
                    log::warn!("{e}; falling back to SKB (generic) mode");
                    (
                        try_attach(program, ifname, AttachedMode::Skb)?,
                        AttachedMode::Skb,
                    )
                }
            },
        };
        log::info!("XDP program {program_name} attached to {ifname} in {mode} mode");

        Ok(XdpProgram {
            ifname: name,
            program: program_name,
            mode,
            link: Some(link),
            endpoints,
            xsks,
            counters,
            passthru,
            xsk_limit,
            bpf,
        })
    }

    /// The mode the program runs in.
    pub fn attached_mode(&self) -> AttachedMode {
        self.mode
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Sends frames for endpoints arriving on RX `queue` to the AF_XDP socket `fd`
    /// (which must be bound to this interface and queue).
    pub fn set_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), XdpError> {
        self.xsks.set(queue, fd, 0).map_err(|error| {
            self.map_error(
                format!("set AF_XDP socket (fd {fd}) for queue {queue}"),
                error,
            )
        })
    }

    /// Removes the AF_XDP socket of RX `queue`; its endpoint frames then go to the host.
    pub fn clear_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        self.xsks.unset(queue).map_err(|error| {
            self.map_error(format!("clear AF_XDP socket for queue {queue}"), error)
        })
    }

    /// Redirects frames for `mac` on `vlan` (0 = untagged) to the AF_XDP
    /// sockets from now on; `id` is the endpoint id stored with it.
    pub fn add_endpoint(&mut self, mac: MacAddr, vlan: u16, id: u32) -> Result<(), XdpError> {
        let op = || format!("add endpoint {id} ({mac} vlan {vlan})");
        let key = self.key(mac, vlan, op)?;
        self.endpoints
            .insert(key, id, 0)
            .map_err(|error| self.map_error(op(), error))
    }

    /// Hands every unicast frame of `vlan` (0 = untagged) to the AF_XDP
    /// sockets (a passthru network), or stops doing so (`None`). Group frames
    /// still reach the host; mvdp copies them from its packet socket.
    pub fn set_passthru(&mut self, vlan: Option<u16>) -> Result<(), XdpError> {
        let value = vlan.map_or(0, |v| PASSTHRU_ON | u32::from(v & 0x0fff));
        self.passthru
            .set(0, value, 0)
            .map_err(|error| self.map_error(format!("set passthru {vlan:?}"), error))
    }

    /// Drops (and counts) frames for a socket longer than `len` bytes, the
    /// most a UMEM frame holds, instead of leaving them to the kernel,
    /// which drops them at the socket uncounted by mvdp. 0: no limit.
    pub fn set_xsk_limit(&mut self, len: u32) -> Result<(), XdpError> {
        self.xsk_limit
            .set(0, len, 0)
            .map_err(|error| self.map_error(format!("set the socket limit {len}"), error))
    }

    /// Stops redirecting frames for `mac` on `vlan`; fails if it was not added.
    pub fn remove_endpoint(&mut self, mac: MacAddr, vlan: u16) -> Result<(), XdpError> {
        let op = || format!("remove endpoint {mac} vlan {vlan}");
        let key = self.key(mac, vlan, op)?;
        self.endpoints
            .remove(&key)
            .map_err(|error| self.map_error(op(), error))
    }

    /// Reads the frame counters, summed over CPUs (one map lookup each).
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let mut sums = [0u64; Counter::ALL.len()];
        for (sum, counter) in sums.iter_mut().zip(Counter::ALL) {
            let values = self
                .counters
                .get(&(counter as u32), 0)
                .map_err(|error| self.map_error(format!("read counter {counter:?}"), error))?;
            *sum = values.iter().fold(0u64, |acc, v| acc.wrapping_add(*v));
        }
        let [rx, redirect, pass_host, pass_group, no_socket, short, pass_fast, too_long] = sums;
        Ok(XdpCounters {
            rx,
            redirect,
            pass_host,
            pass_group,
            no_socket,
            short,
            pass_fast,
            too_long,
        })
    }

    /// Detaches the program from the interface and unloads it.
    pub fn detach(mut self) -> Result<(), XdpError> {
        self.detach_link()
    }

    fn detach_link(&mut self) -> Result<(), XdpError> {
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        let ifname = self.ifname.clone();
        let program = xdp_program(&mut self.bpf, &ifname, self.program)?;
        program.detach(link).map_err(|error| XdpError::Detach {
            ifname: ifname.clone(),
            error: Box::new(error),
        })?;
        log::info!("XDP program {} detached from {ifname}", self.program);
        Ok(())
    }

    fn key(&self, mac: MacAddr, vlan: u16, op: impl Fn() -> String) -> Result<EpKey, XdpError> {
        if vlan > MAX_VLAN {
            return Err(XdpError::InvalidVlan {
                ifname: self.ifname.clone(),
                op: op(),
                vlan,
            });
        }
        Ok(EpKey { mac: mac.0, vlan })
    }

    fn map_error(&self, op: String, error: MapError) -> XdpError {
        XdpError::Map {
            ifname: self.ifname.clone(),
            op,
            error: Box::new(error),
        }
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if let Err(e) = self.detach_link() {
            log::error!("{e}");
        }
    }
}

/// mvdp's XDP program on the host end of an endpoint veth: every frame the
/// container sends goes to the AF_XDP socket of the queue it lands on, and is
/// dropped (counted as `no_socket`) while that queue has none.
///
/// Same attach rules, modes and detach-on-drop as [`XdpProgram`].
#[derive(Debug)]
pub struct XdpPort(XdpProgram);

impl XdpPort {
    /// Loads the port program and attaches it to `ifname` (in the calling
    /// thread's network namespace); `Auto` falls back as [`XdpProgram::attach`] does.
    pub fn attach(ifname: &str, mode: AttachMode) -> Result<XdpPort, XdpError> {
        XdpProgram::attach_program(ifname, mode, PORT_PROGRAM_NAME).map(XdpPort)
    }

    /// The mode the program runs in.
    pub fn attached_mode(&self) -> AttachedMode {
        self.0.attached_mode()
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> &str {
        self.0.ifname()
    }

    /// Sends every frame arriving on RX `queue` to the AF_XDP socket `fd`.
    pub fn set_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), XdpError> {
        self.0.set_socket(queue, fd)
    }

    /// Removes the AF_XDP socket of RX `queue`; its frames are then dropped.
    pub fn clear_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        self.0.clear_socket(queue)
    }

    /// Reads the frame counters (`rx`, `redirect`, `no_socket`; the rest stay 0).
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        self.0.counters()
    }

    /// Detaches the program from the interface and unloads it.
    pub fn detach(self) -> Result<(), XdpError> {
        self.0.detach()
    }
}

/// The interface's index in the calling thread's network namespace.
fn if_index(ifname: &str) -> Option<u32> {
    let c_name = std::ffi::CString::new(ifname).ok()?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; newer ones (memcg
/// accounting) ignore it. Raise it if we may, and carry on if we may not.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `unlimited` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        log::debug!(
            "could not raise RLIMIT_MEMLOCK ({}); fine on kernels >= 5.11",
            std::io::Error::last_os_error()
        );
    }
}

fn xdp_program<'a>(
    bpf: &'a mut Ebpf,
    ifname: &str,
    name: &'static str,
) -> Result<&'a mut Xdp, XdpError> {
    bpf::program(bpf, name).map_err(|error| XdpError::MissingObject {
        ifname: ifname.to_string(),
        what: "program",
        name,
        error,
    })
}

fn take_map<M>(
    bpf: &mut Ebpf,
    ifname: &str,
    name: &'static str,
    convert: impl FnOnce(aya::maps::Map) -> Result<M, MapError>,
) -> Result<M, XdpError> {
    bpf::take_map(bpf, name, convert).map_err(|error| XdpError::MissingObject {
        ifname: ifname.to_string(),
        what: "map",
        name,
        error,
    })
}

fn try_attach(program: &mut Xdp, ifname: &str, mode: AttachedMode) -> Result<XdpLinkId, XdpError> {
    program.attach(ifname, mode.aya_mode()).map_err(|error| {
        // The kernel says EBUSY when a program or link holds the slot, EEXIST
        // when a program sits in the other mode (native vs generic) or when
        // the legacy netlink path (UPDATE_IF_NOEXIST) finds one.
        match errno(&error) {
            Some(libc::EBUSY | libc::EEXIST) => XdpError::AlreadyAttached {
                ifname: ifname.to_string(),
                mode,
                existing: describe_attached(ifname),
            },
            _ if matches!(error, ProgramError::UnknownInterface { .. }) => {
                XdpError::NoSuchInterface {
                    ifname: ifname.to_string(),
                }
            }
            _ => XdpError::Attach {
                ifname: ifname.to_string(),
                mode,
                error: Box::new(error),
            },
        }
    })
}

/// Names the XDP program attached to `ifname`, for error messages; best effort.
fn describe_attached(ifname: &str) -> String {
    let Some((prog_id, mode)) = if_index(ifname).and_then(attached_program) else {
        return "an XDP program (or an upper device has one)".to_string();
    };
    let name = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|info| info.id() == prog_id)
        .and_then(|info| info.name_as_str().map(str::to_string))
        .unwrap_or_default();
    format!("XDP program {prog_id} `{name}` ({mode} mode)")
}

/// The id and mode of the XDP program attached to interface `ifindex`, asked
/// of rtnetlink (`RTM_GETLINK`, attribute `IFLA_XDP`) in the thread's netns.
fn attached_program(ifindex: u32) -> Option<(u32, &'static str)> {
    // From linux/if_link.h and linux/rtnetlink.h (stable uapi).
    const IFLA_XDP: u16 = 43;
    const IFLA_XDP_ATTACHED: u16 = 2;
    const IFLA_XDP_PROG_ID: u16 = 4;
    const IFLA_XDP_DRV_PROG_ID: u16 = 5;
    const IFLA_XDP_SKB_PROG_ID: u16 = 6;
    const NLA_TYPE_MASK: u16 = 0x3fff;
    const IFINFOMSG_LEN: usize = 16;

    #[repr(C)]
    struct Request {
        header: libc::nlmsghdr,
        // struct ifinfomsg: family, pad, type, index, flags, change.
        family: u8,
        pad: u8,
        kind: u16,
        index: i32,
        flags: u32,
        change: u32,
    }
    let request = Request {
        header: libc::nlmsghdr {
            nlmsg_len: std::mem::size_of::<Request>() as u32,
            nlmsg_type: libc::RTM_GETLINK,
            nlmsg_flags: libc::NLM_F_REQUEST as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        family: libc::AF_UNSPEC as u8,
        pad: 0,
        kind: 0,
        index: i32::try_from(ifindex).ok()?,
        flags: 0,
        change: 0,
    };

    // SAFETY: plain socket(2) call; the fd is owned right below.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: `request` is a live, fully initialised repr(C) value of the length given.
    let sent = unsafe {
        libc::send(
            fd,
            std::ptr::addr_of!(request).cast(),
            std::mem::size_of::<Request>(),
            0,
        )
    };
    if sent < 0 {
        return None;
    }
    let mut buf = vec![0u8; 32 * 1024];
    // SAFETY: `buf` is valid for writes of its whole length.
    let len = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    let reply = buf.get(..usize::try_from(len).ok()?)?;

    if u16_at(reply, 4)? != libc::RTM_NEWLINK {
        return None;
    }
    let msg_len = usize::try_from(u32_at(reply, 0)?).ok()?;
    let header_len = std::mem::size_of::<libc::nlmsghdr>() + IFINFOMSG_LEN;
    let xdp = attrs(reply.get(header_len..msg_len)?)
        .find(|(kind, _)| *kind & NLA_TYPE_MASK == IFLA_XDP)?
        .1;
    let (mut mode, mut prog_id) = ("unknown", None);
    for (kind, payload) in attrs(xdp) {
        match kind & NLA_TYPE_MASK {
            IFLA_XDP_ATTACHED => {
                mode = match payload.first()? {
                    0 => return None,
                    1 => "native",
                    2 => "skb",
                    3 => "offload",
                    _ => "multiple",
                }
            }
            IFLA_XDP_PROG_ID | IFLA_XDP_DRV_PROG_ID | IFLA_XDP_SKB_PROG_ID => {
                prog_id = prog_id.or(u32_at(payload, 0));
            }
            _ => {}
        }
    }
    Some((prog_id?, mode))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Walks netlink attributes as (type, payload) pairs; each is 4-byte aligned.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, 0)?);
        let kind = u16_at(b, 2)?;
        let payload = b.get(4..len)?;
        b = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((kind, payload))
    })
}

fn errno(error: &ProgramError) -> Option<i32> {
    match error {
        ProgramError::SyscallError(e) => e.io_error.raw_os_error(),
        ProgramError::XdpError(aya::programs::xdp::XdpError::NetlinkError(e)) => e.raw_os_error(),
        _ => None,
    }
}

/// The parent's XDP program as the exporter sees it: the frames it dropped
/// itself (`too_long`), received from the wire and dropped, beside the
/// workers' counts. Every other frame it hands on is counted where it lands.
impl crate::metrics::CounterSource for std::sync::Mutex<Option<XdpProgram>> {
    fn totals(&self) -> crate::metrics::Totals {
        let mut t = crate::metrics::Totals::default();
        let Ok(guard) = self.lock() else { return t };
        if let Some(c) = guard.as_ref().and_then(|p| p.counters().ok()) {
            t.received[crate::metrics::Source::Wire as usize] = c.too_long;
            t.drops[crate::switch::DropReason::TooLong as usize] = c.too_long;
        }
        t
    }

    fn endpoint(&self, _id: crate::switch::EndpointId) -> crate::metrics::EndpointTotals {
        crate::metrics::EndpointTotals::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust mirror of `enum mvdp_xdp_counter` must list the C names in order.
    #[test]
    fn counter_enum_matches_header() {
        let header = include_str!("../../bpf/mvdp.h");
        let names = bpf::c_enum_names(header, "mvdp_xdp_counter");
        let expected = [
            "MVDP_XDP_RX",
            "MVDP_XDP_REDIRECT",
            "MVDP_XDP_PASS_HOST",
            "MVDP_XDP_PASS_GROUP",
            "MVDP_XDP_NO_SOCKET",
            "MVDP_XDP_SHORT",
            "MVDP_XDP_PASS_FAST",
            "MVDP_XDP_TOO_LONG",
            "MVDP_XDP_NCOUNTERS",
        ];
        assert_eq!(names, expected);
        for (i, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(*counter as usize, i);
        }
        assert_eq!(Counter::ALL.len(), expected.len() - 1);
    }

    #[test]
    fn netlink_attrs_walk_aligned_and_stop_at_truncation() {
        let attr = |kind: u16, payload: &[u8]| {
            let len = 4 + payload.len() as u16;
            let mut a = [len.to_ne_bytes(), kind.to_ne_bytes()].concat();
            a.extend_from_slice(payload);
            a.resize(a.len().next_multiple_of(4), 0);
            a
        };
        let mut bytes = [attr(2, &[1]), attr(4, &126u32.to_ne_bytes())].concat();
        bytes.extend_from_slice(&64u16.to_ne_bytes()); // a header cut short
        let got: Vec<_> = attrs(&bytes).collect();
        assert_eq!(got, [(2, &[1u8][..]), (4, &126u32.to_ne_bytes()[..])]);
    }

    #[test]
    fn embedded_object_is_bpf_elf() {
        let obj = program_object();
        assert_eq!(&obj[..4], b"\x7fELF");
        // e_machine EM_BPF = 247, little-endian at offset 18.
        assert_eq!(u16::from_le_bytes([obj[18], obj[19]]), 247);
    }
}
