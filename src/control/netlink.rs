//! Endpoint interfaces (veth, TAP) created, configured and deleted over netlink.
//!
//! Every call here is blocking: it builds a tokio current-thread runtime and an
//! rtnetlink connection (bound to the calling thread's netns) for the duration
//! of the call. Called from inside a tokio runtime, the work moves to a helper
//! thread (which inherits the caller's netns) instead of panicking. Work inside
//! a container's namespace runs on a short-lived thread that entered it
//! ([`in_netns`]); mvdp's own threads never change namespace.
//!
//! `create_endpoint` either returns a fully configured endpoint or deletes
//! everything it created before returning the error: no interface is leaked.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

pub use super::ethtool::set_tx_checksum;
pub use super::netns::in_netns;
use crate::wire::MacAddr;

/// The longest interface name the kernel accepts (`IFNAMSIZ` minus the NUL).
pub const MAX_IFNAME_LEN: usize = libc::IFNAMSIZ - 1;

/// The interface group (`ip link show group 1836475504`) of every endpoint's
/// veth host end: "mvdp" in ASCII. It lets shutdown delete all of them in one
/// request, which the kernel does under one RCU grace period instead of one
/// per link (256 endpoints: 40 ms instead of 4 s).
pub const ENDPOINT_GROUP: u32 = u32::from_be_bytes(*b"mvdp");

/// How the label of mvdp's own namespace reads in error messages.
const OWN_NETNS: &str = "mvdp's netns";

/// Which kind of interface a container endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// A veth pair: the host end stays with mvdp, the peer goes to the container.
    Veth,
    /// A TAP device: mvdp holds its fd, the device lives in the container.
    Tap,
}

/// What to build for one container endpoint.
#[derive(Clone, Debug)]
pub struct EndpointLinkSpec<'a> {
    /// Veth or TAP.
    pub kind: LinkKind,
    /// Host-side name in mvdp's netns: the veth host end, or for TAP the
    /// temporary name the device has before it moves into the container (it
    /// must not exist there either, or the move fails with `EEXIST`).
    pub host_ifname: &'a str,
    /// The container's network namespace, e.g. `/var/run/netns/c1` or
    /// `/proc/PID/ns/net`.
    pub netns_path: &'a Path,
    /// The interface's name inside the container, e.g. `eth0`.
    pub ifname: &'a str,
    /// The container interface's MAC address (unicast, non-zero).
    pub mac: MacAddr,
    /// The container's IPv4 address.
    pub addr: Ipv4Addr,
    /// Prefix length of `addr` (0..=32).
    pub prefix_len: u8,
    /// Default route inside the container, if any; must be reachable through
    /// `addr/prefix_len`.
    pub gateway: Option<Ipv4Addr>,
    /// The container's IPv6 address and prefix length, on a dual-stack
    /// network. Its link-local address the kernel makes itself.
    pub addr6: Option<(Ipv6Addr, u8)>,
    /// IPv6 default route inside the container, if any (via `addr6`'s subnet).
    pub gateway6: Option<Ipv6Addr>,
    /// veth only: RX and TX queue count of both ends (>= 1). Ignored for TAP.
    pub queues: u32,
    /// veth only: keep TX checksum offload (and with it TSO) on the
    /// container end. Only where nothing takes the container's frames raw
    /// (the tc fast path keeps skbs whole); AF_XDP needs finished checksums.
    pub tx_offload: bool,
    /// The container interface's MTU (and the veth host end's).
    pub mtu: u32,
    /// veth only: leave the container end in mvdp's netns under `ifname`,
    /// down, with its MAC and no address, for a runtime (Docker) to move
    /// into the container and configure; `netns_path`, `addr` and
    /// `gateway` are not used.
    pub handoff: bool,
}

/// An endpoint interface that `create_endpoint` built and configured.
#[derive(Debug)]
pub struct EndpointLink {
    /// The host-side name (veth host end; for TAP the pre-move name).
    pub host_ifname: String,
    /// The veth host end's ifindex in mvdp's netns; for TAP the device's
    /// ifindex before it moved into the container (the kernel keeps it across
    /// the move unless that index is taken there).
    pub host_ifindex: u32,
    /// TAP only: the non-blocking device fd. Closing it deletes the device.
    pub tap: Option<OwnedFd>,
    /// Whether the pair was left by an earlier mvdp (killed, or stopped with
    /// `keep_endpoints_on_exit`) and taken over as it was, not re-created.
    pub adopted: bool,
}

/// Why a netlink operation on an endpoint interface failed.
#[derive(thiserror::Error, Debug)]
pub enum NetlinkError {
    /// An interface name the kernel would refuse.
    #[error("interface name {name:?} ({role}) is invalid: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Which name of the spec it is (`host_ifname`, `ifname`).
        role: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A spec value other than a name that cannot be built.
    #[error("endpoint {ifname:?}: {reason}")]
    InvalidSpec {
        /// The endpoint's interface name inside the container.
        ifname: String,
        /// What is wrong.
        reason: String,
    },
    /// The container's network namespace could not be opened or entered.
    #[error("cannot {op} network namespace {}: {source}", path.display())]
    Netns {
        /// What was attempted (open, enter).
        op: &'static str,
        /// The namespace path from the spec.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No rtnetlink socket could be opened.
    #[error("cannot open a netlink socket in {netns}: {source}")]
    Socket {
        /// Which namespace the socket was for.
        netns: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The interface already exists, so creating it would clash.
    #[error("interface {ifname:?} already exists in {netns}")]
    Exists {
        /// The clashing name.
        ifname: String,
        /// Where it exists.
        netns: String,
    },
    /// An interface mvdp just created or moved is not where it should be.
    #[error("interface {ifname:?} not found in {netns} (needed to {op})")]
    NotFound {
        /// What was about to be done.
        op: &'static str,
        /// The missing interface.
        ifname: String,
        /// Where it was looked for.
        netns: String,
    },
    /// A netlink request or ioctl on an interface failed.
    #[error("{op} failed for {ifname:?} in {netns}: {source}")]
    Link {
        /// What was attempted, e.g. "add address 10.0.0.2/24".
        op: String,
        /// The interface.
        ifname: String,
        /// Where (mvdp's netns or the container's namespace path).
        netns: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
}

/// Creates and configures one container endpoint as `spec` says.
///
/// veth: the pair is created in the calling thread's netns (host end
/// `host_ifname`, peer under a temporary name, `queues` RX/TX queues each);
/// TX checksum offload is turned off on the peer; the peer moves into the
/// container namespace where it is renamed to `ifname`, given its MAC and
/// address, set up, and gets the default route; `lo` is set up there too. The
/// host end gets IPv6 disabled (so it stays silent) and is set up.
///
/// TAP: `/dev/net/tun` is opened with `IFF_TAP | IFF_NO_PI` (no vnet header,
/// so frames carry finished checksums), non-blocking and not persistent, as
/// `host_ifname`; the device moves into the container and is configured
/// there like the veth peer. It vanishes when the returned fd is closed.
///
/// On failure everything created so far is deleted before the error returns.
pub fn create_endpoint(spec: &EndpointLinkSpec) -> Result<EndpointLink, NetlinkError> {
    validate(spec)?;
    off_runtime(|| create_endpoint_blocking(spec))
}

fn create_endpoint_blocking(spec: &EndpointLinkSpec) -> Result<EndpointLink, NetlinkError> {
    if spec.handoff {
        return create_veth(spec, None);
    }
    let ns = File::open(spec.netns_path).map_err(|source| NetlinkError::Netns {
        op: "open",
        path: spec.netns_path.to_path_buf(),
        source,
    })?;
    match spec.kind {
        LinkKind::Veth => create_veth(spec, Some(&ns)),
        LinkKind::Tap => create_tap(spec, &ns),
    }
}

/// Creates a veth pair `a` ↔ `b` in the calling thread's netns, with
/// `queues` RX/TX queues on each end, IPv6 off on both (so they stay
/// silent), both up. Returns their ifindexes. A pair left over under these
/// names (by an mvdp that was killed) is deleted first; on failure nothing
/// is left behind.
pub fn create_local_veth(a: &str, b: &str, queues: u32) -> Result<(u32, u32), NetlinkError> {
    for name in [a, b] {
        check_ifname(name, "veth name")?;
    }
    off_runtime(|| {
        let nl = Rtnl::own()?;
        if let Some(index) = nl.index(a)? {
            log::warn!("deleting {a}, left behind by an earlier mvdp");
            nl.delete(index, a)?;
        }
        if let Some(index) = nl.index(b)? {
            nl.delete(index, b)?;
        }
        nl.add_veth(a, b, queues.max(1), None)?;
        let mut guard = DeleteOnDrop {
            nl: &nl,
            ifname: a,
            armed: true,
        };
        let ia = nl.require(a, "set it up")?;
        let ib = nl.require(b, "set it up")?;
        for (index, name) in [(ia, a), (ib, b)] {
            disable_ipv6(name);
            nl.set_up(index, name)?;
        }
        guard.armed = false;
        Ok((ia, ib))
    })
}

/// Deletes `ifname` in the calling thread's netns; a missing link is `Ok`.
///
/// Deleting either end of a veth pair deletes both, wherever the peer lives.
pub fn delete_link(ifname: &str) -> Result<(), NetlinkError> {
    off_runtime(|| {
        let nl = Rtnl::own()?;
        match nl.index(ifname)? {
            Some(index) => nl.delete(index, ifname),
            None => Ok(()),
        }
    })
}

/// The names of the endpoint host ends (links in [`ENDPOINT_GROUP`]) in the
/// calling thread's netns: one request, whatever their number.
pub fn endpoint_links() -> Result<Vec<String>, NetlinkError> {
    off_runtime(|| Rtnl::own()?.group_members(ENDPOINT_GROUP))
}

/// Deletes every endpoint host end in the calling thread's netns that is
/// not in `keep`: what an earlier mvdp left for endpoints no longer wanted.
/// Returns the names deleted.
pub fn delete_stale_endpoint_links(keep: &[String]) -> Result<Vec<String>, NetlinkError> {
    off_runtime(|| {
        let nl = Rtnl::own()?;
        let mut deleted = Vec::new();
        for name in nl.group_members(ENDPOINT_GROUP)? {
            if keep.contains(&name) {
                continue;
            }
            if let Some(index) = nl.index(&name)? {
                nl.delete(index, &name)?;
                deleted.push(name);
            }
        }
        Ok(deleted)
    })
}

/// Deletes the endpoint host ends `ifnames` in the calling thread's netns
/// (missing ones are fine). Returns the names that could not be deleted,
/// each with its error; `Err` only if netlink itself is out of reach.
///
/// When every link in [`ENDPOINT_GROUP`] is one of `ifnames` (the group
/// holds nothing of anyone else's), they go in one request; whatever is left
/// after that is deleted one by one.
pub fn delete_endpoint_links(
    ifnames: &[String],
) -> Result<Vec<(String, NetlinkError)>, NetlinkError> {
    off_runtime(|| {
        let nl = Rtnl::own()?;
        let members = nl.group_members(ENDPOINT_GROUP)?;
        if !members.is_empty() && members.iter().all(|name| ifnames.contains(name)) {
            if let Err(e) = nl.delete_group(ENDPOINT_GROUP) {
                log::warn!("{e}; deleting the endpoint interfaces one by one");
            }
        }
        let mut failed = Vec::new();
        for ifname in ifnames {
            let deleted = match nl.index(ifname) {
                Ok(Some(index)) => nl.delete(index, ifname),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = deleted {
                failed.push((ifname.clone(), e));
            }
        }
        Ok(failed)
    })
}

/// The ifindex of `ifname` in the calling thread's netns, if it exists.
pub fn link_index(ifname: &str) -> Result<Option<u32>, NetlinkError> {
    off_runtime(|| Rtnl::own()?.index(ifname))
}

/// The MAC address of `ifname` in the calling thread's netns, if it exists
/// and has a 6-byte hardware address.
pub fn link_mac(ifname: &str) -> Result<Option<MacAddr>, NetlinkError> {
    let Some(msg) = off_runtime(|| Rtnl::own()?.get(ifname))? else {
        return Ok(None);
    };
    Ok(msg.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr),
        _ => None,
    }))
}

/// Sets the MTU of `ifname` in the calling thread's netns (mvdp-cni's `mtu`).
pub fn set_link_mtu(ifname: &str, mtu: u32) -> Result<(), NetlinkError> {
    off_runtime(|| {
        let nl = Rtnl::own()?;
        let index = nl.require(ifname, "set the MTU")?;
        nl.set_mtu(index, ifname, mtu)
    })
}

/// The MTU of `ifname` in the calling thread's netns, if it exists.
pub fn link_mtu(ifname: &str) -> Result<Option<u32>, NetlinkError> {
    let Some(msg) = off_runtime(|| Rtnl::own()?.get(ifname))? else {
        return Ok(None);
    };
    Ok(mtu_of(&msg))
}

fn mtu_of(msg: &LinkMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// Adds a route to `dest/prefix_len` out of `ifname` (no gateway) in the
/// calling thread's netns. An existing identical route is not an error.
pub fn add_link_route(ifname: &str, dest: IpAddr, prefix_len: u8) -> Result<(), NetlinkError> {
    off_runtime(|| {
        let nl = Rtnl::own()?;
        let index = nl.require(ifname, "add route")?;
        let route = link_route(dest, prefix_len, index);
        match nl.rt.block_on(nl.handle.route().add(route).execute()) {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl.fail(format!("add route {dest}/{prefix_len}"), ifname, e)),
        }
    })
}

/// Deletes the route to `dest/prefix_len` through `ifname` in the calling
/// thread's netns; a route (or interface) already gone is `Ok`.
pub fn del_link_route(ifname: &str, dest: IpAddr, prefix_len: u8) -> Result<(), NetlinkError> {
    off_runtime(|| {
        let nl = Rtnl::own()?;
        let Some(index) = nl.index(ifname)? else {
            return Ok(());
        };
        let route = link_route(dest, prefix_len, index);
        match nl.rt.block_on(nl.handle.route().del(route).execute()) {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(nl.fail(format!("delete route {dest}/{prefix_len}"), ifname, e)),
        }
    })
}

/// A route to `dest/prefix_len` out of link `index`, without a gateway.
fn link_route(
    dest: IpAddr,
    prefix_len: u8,
    index: u32,
) -> rtnetlink::packet_route::route::RouteMessage {
    match dest {
        IpAddr::V4(dest) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dest, prefix_len)
            .output_interface(index)
            .build(),
        IpAddr::V6(dest) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(dest, prefix_len)
            .output_interface(index)
            .build(),
    }
}

/// Adds `mac` to `ifname`'s unicast address list (`bridge fdb add MAC dev IF
/// self permanent`): a NIC with a unicast filter then accepts frames for it;
/// for one without, the kernel puts the device in promiscuous mode instead.
/// An existing entry is not an error.
pub fn add_unicast_address(ifname: &str, mac: MacAddr) -> Result<(), NetlinkError> {
    off_runtime(|| {
        let nl = Rtnl::own()?;
        let index = nl.require(ifname, "add unicast address")?;
        let req = nl
            .handle
            .neighbours()
            .add_bridge(index, &mac.0)
            .flags(NeighbourFlags::Own);
        match nl.rt.block_on(req.execute()) {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl.fail(format!("add unicast address {mac}"), ifname, e)),
        }
    })
}

/// The unicast addresses in `ifname`'s address list (what `bridge fdb show
/// dev IF self` lists), so mvdp can leave alone entries it did not add.
pub fn unicast_addresses(ifname: &str) -> Result<Vec<MacAddr>, NetlinkError> {
    off_runtime(|| {
        let nl = Rtnl::own()?;
        let index = nl.require(ifname, "list unicast addresses")?;
        let request = nl
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute();
        let messages = nl
            .rt
            .block_on(request.try_collect::<Vec<_>>())
            .map_err(|e| nl.fail("list unicast addresses", ifname, e))?;
        Ok(messages
            .iter()
            .filter(|m| m.header.ifindex == index)
            .flat_map(|m| m.attributes.iter())
            .filter_map(|a| match a {
                NeighbourAttribute::LinkLayerAddress(b) => {
                    <[u8; 6]>::try_from(b.as_slice()).ok().map(MacAddr)
                }
                _ => None,
            })
            .filter(|m| !m.is_multicast())
            .collect())
    })
}

/// Removes `mac` from `ifname`'s unicast address list. A missing entry or
/// interface is not an error.
pub fn del_unicast_address(ifname: &str, mac: MacAddr) -> Result<(), NetlinkError> {
    off_runtime(|| {
        let nl = Rtnl::own()?;
        let Some(index) = nl.index(ifname)? else {
            return Ok(());
        };
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Own;
        // The default fdb handler only knows static entries, and says so with
        // EINVAL unless the request names the state.
        msg.header.state = NeighbourState::Permanent;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        match nl.rt.block_on(nl.handle.neighbours().del(msg).execute()) {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(libc::ENOENT) | Some(libc::ENODEV)) => Ok(()),
            Err(e) => Err(nl.fail(format!("remove unicast address {mac}"), ifname, e)),
        }
    })
}

/// How many holders keep `ifname` promiscuous (IFLA_PROMISCUITY), if it exists.
pub fn promiscuity(ifname: &str) -> Result<Option<u32>, NetlinkError> {
    let Some(msg) = off_runtime(|| Rtnl::own()?.get(ifname))? else {
        return Ok(None);
    };
    Ok(msg.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::Promiscuity(n) => Some(*n),
        _ => None,
    }))
}

/// Puts a leased address on `ifname` inside the namespace at `netns_path`
/// (kept if it is there already), and with `gateway` the default route.
pub fn add_lease_address(
    netns_path: &Path,
    ifname: &str,
    addr: Ipv4Addr,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<(), NetlinkError> {
    in_container(netns_path, ifname, |nl, index| {
        match nl.add_address(index, ifname, IpAddr::V4(addr), prefix_len) {
            Err(NetlinkError::Link { source, .. })
                if source.raw_os_error() == Some(libc::EEXIST) => {}
            other => other?,
        }
        match gateway {
            Some(gateway) => nl.add_default_route(index, ifname, IpAddr::V4(gateway)),
            None => Ok(()),
        }
    })
}

/// The IPv4 addresses on `ifname` inside the namespace at `netns_path`,
/// with their prefix lengths (an adopted endpoint's lease, still there).
pub fn container_ipv4_addresses(
    netns_path: &Path,
    ifname: &str,
) -> Result<Vec<(Ipv4Addr, u8)>, NetlinkError> {
    let label = netns_path.display().to_string();
    in_netns(netns_path, || {
        let nl = Rtnl::new(&label)?;
        let index = nl.require(ifname, "read its addresses")?;
        nl.ipv4_addresses(index, ifname)
    })
    .map_err(|source| NetlinkError::Netns {
        op: "enter",
        path: netns_path.to_path_buf(),
        source,
    })?
}

/// Takes a leased address off `ifname` inside the namespace at
/// `netns_path` (its routes go with it); gone already is fine.
pub fn del_lease_address(
    netns_path: &Path,
    ifname: &str,
    addr: Ipv4Addr,
    prefix_len: u8,
) -> Result<(), NetlinkError> {
    in_container(netns_path, ifname, |nl, index| {
        nl.del_address(index, ifname, IpAddr::V4(addr), prefix_len)
    })
}

/// Runs `f` with a connection inside the namespace at `netns_path` and the
/// index of `ifname` there.
fn in_container(
    netns_path: &Path,
    ifname: &str,
    f: impl FnOnce(&Rtnl, u32) -> Result<(), NetlinkError> + Send,
) -> Result<(), NetlinkError> {
    let label = netns_path.display().to_string();
    in_netns(netns_path, || {
        let nl = Rtnl::new(&label)?;
        let index = nl.require(ifname, "configure its lease")?;
        f(&nl, index)
    })
    .map_err(|source| NetlinkError::Netns {
        op: "enter",
        path: netns_path.to_path_buf(),
        source,
    })?
}

/// Runs `f` here, or on a helper thread if this thread is inside a tokio
/// runtime (where `block_on` would panic). A new thread starts in the netns
/// of the thread that spawned it, so the netns is the caller's either way.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Checks names and values up front, so nothing is created for a bad spec.
fn validate(spec: &EndpointLinkSpec) -> Result<(), NetlinkError> {
    check_ifname(spec.host_ifname, "host_ifname")?;
    check_ifname(spec.ifname, "ifname")?;
    let invalid = |reason: String| NetlinkError::InvalidSpec {
        ifname: spec.ifname.to_string(),
        reason,
    };
    if spec.prefix_len > 32 {
        return Err(invalid(format!(
            "prefix length {} is longer than 32",
            spec.prefix_len
        )));
    }
    if spec.mac.is_multicast() || spec.mac.is_zero() {
        return Err(invalid(format!(
            "MAC {} is not a unicast address",
            spec.mac
        )));
    }
    if spec.kind == LinkKind::Veth && spec.queues == 0 {
        return Err(invalid("a veth needs at least one queue".into()));
    }
    Ok(())
}

/// The kernel's `dev_valid_name`, plus no `%` (a name template for TUNSETIFF).
fn check_ifname(name: &str, role: &'static str) -> Result<(), NetlinkError> {
    let reason = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_IFNAME_LEN {
        Some(format!(
            "it is {} bytes long, the kernel allows at most {MAX_IFNAME_LEN} (IFNAMSIZ)",
            name.len()
        ))
    } else if name == "." || name == ".." {
        Some("it is . or ..".to_string())
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '%' || c == '\0' || c.is_whitespace())
    {
        Some("it contains '/', ':', '%', NUL or whitespace".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetlinkError::InvalidName {
            name: name.to_string(),
            role,
            reason,
        }),
        None => Ok(()),
    }
}

/// A peer name unique within this process and unlikely to clash elsewhere:
/// `mvp<pid>-<n>` in hex, at most 14 bytes.
fn temporary_ifname() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff;
    format!("mvp{:x}-{n:x}", std::process::id() & 0xff_ffff)
}

/// A veth pair: its peer moves into `ns` and is configured there, or, with
/// `ns` `None` (a handoff), stays here as `spec.ifname`, down, with the
/// spec's MAC, for the runtime to move and configure. A host end an earlier
/// mvdp left is taken over if it fits; a handed-off one always does (its
/// other end is the runtime's now).
fn create_veth(spec: &EndpointLinkSpec, ns: Option<&File>) -> Result<EndpointLink, NetlinkError> {
    let nl = Rtnl::own()?;
    let host = spec.host_ifname;
    if let Some(existing) = nl.get(host)? {
        // Not one of our host ends: someone else's interface, left alone.
        if !in_group(&existing, ENDPOINT_GROUP) {
            return Err(NetlinkError::Exists {
                ifname: host.to_string(),
                netns: OWN_NETNS.to_string(),
            });
        }
        if ns.is_none() {
            let host_ifindex = existing.header.index;
            nl.set_up(host_ifindex, host)?;
            return Ok(EndpointLink {
                host_ifname: host.to_string(),
                host_ifindex,
                tap: None,
                adopted: true,
            });
        }
        if let Some(link) = adopt_veth(&nl, spec, &existing)? {
            return Ok(link);
        }
        log::info!("{host}: left by an earlier mvdp, but not as now wanted; re-creating it");
        nl.delete(existing.header.index, host)?;
    }
    let peer = match ns {
        Some(_) => temporary_ifname(),
        None if nl.index(spec.ifname)?.is_some() => {
            return Err(NetlinkError::Exists {
                ifname: spec.ifname.to_string(),
                netns: OWN_NETNS.to_string(),
            })
        }
        None => spec.ifname.to_string(),
    };
    nl.add_veth(host, &peer, spec.queues, Some(ENDPOINT_GROUP))?;
    // From here on the pair exists: the guard deletes it (both ends, wherever
    // the peer is by then) unless disarmed at the end.
    let mut guard = DeleteOnDrop {
        nl: &nl,
        ifname: host,
        armed: true,
    };

    let host_ifindex = nl.require(host, "configure the veth host end")?;
    let peer_index = nl.require(&peer, "move the veth peer")?;
    // The MTU survives the move too; the host end carries the same frames.
    nl.set_mtu(host_ifindex, host, spec.mtu)?;
    nl.set_mtu(peer_index, &peer, spec.mtu)?;
    // Features survive the move into another namespace, so this is done here.
    if !spec.tx_offload {
        set_tx_checksum(&peer, false).map_err(|source| NetlinkError::Link {
            op: "turn off TX checksum offload".into(),
            ifname: peer.clone(),
            netns: OWN_NETNS.into(),
            source,
        })?;
    }
    disable_ipv6(host);
    nl.set_up(host_ifindex, host)?;
    match ns {
        Some(ns) => {
            nl.move_to_netns(peer_index, &peer, ns, spec.netns_path)?;
            configure_in_container(spec, &peer)?;
        }
        None => nl.rename_and_set_mac(peer_index, &peer, &peer, spec.mac)?,
    }

    guard.armed = false;
    Ok(EndpointLink {
        host_ifname: host.to_string(),
        host_ifindex,
        tap: None,
        adopted: false,
    })
}

fn in_group(msg: &LinkMessage, group: u32) -> bool {
    msg.attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Group(g) if *g == group))
}

/// Takes over a veth pair an earlier mvdp left (`host` is its host end, in
/// [`ENDPOINT_GROUP`]) if its container end is in the spec's namespace
/// under the spec's name, with the spec's MAC and address: then the
/// container keeps its interface, its neighbours and its sockets' routes
/// across the restart. Brings both ends up, sets the container end's
/// checksum offload and default route as wanted. `None` if it does not fit.
fn adopt_veth(
    nl: &Rtnl,
    spec: &EndpointLinkSpec,
    host: &LinkMessage,
) -> Result<Option<EndpointLink>, NetlinkError> {
    let host_ifindex = host.header.index;
    let label = spec.netns_path.display().to_string();
    let fits = in_netns(spec.netns_path, || -> Result<bool, NetlinkError> {
        let cnl = Rtnl::new(&label)?;
        let Some(peer) = cnl.get(spec.ifname)? else {
            return Ok(false);
        };
        let index = peer.header.index;
        let attr = |f: &dyn Fn(&LinkAttribute) -> bool| peer.attributes.iter().any(f);
        let paired = attr(&|a| matches!(a, LinkAttribute::Link(i) if *i == host_ifindex));
        let mac = attr(&|a| matches!(a, LinkAttribute::Address(m) if m.as_slice() == spec.mac.0));
        let mtu = mtu_of(&peer) == Some(spec.mtu);
        let addressed = spec.addr.is_unspecified()
            || cnl.has_address(index, spec.ifname, IpAddr::V4(spec.addr), spec.prefix_len)?;
        if !(paired && mac && mtu && addressed) {
            return Ok(false);
        }
        // A network that became dual stack since, or an `ip6` that changed:
        // the address is added now, and one an earlier mvdp gave it in the
        // same subnet goes (a SLAAC address, not permanent, stays).
        if let Some((addr6, len)) = spec.addr6 {
            if !cnl.has_address(index, spec.ifname, IpAddr::V6(addr6), len)? {
                turn_ipv6_on(spec.ifname, &label)?;
                for old in cnl.static_ipv6_in(index, spec.ifname, addr6, len)? {
                    log::info!(
                        "{}: {old}/{len} is no longer its address; removed",
                        spec.ifname
                    );
                    cnl.del_address(index, spec.ifname, IpAddr::V6(old), len)?;
                }
                cnl.add_address(index, spec.ifname, IpAddr::V6(addr6), len)?;
            }
        }
        set_tx_checksum(spec.ifname, spec.tx_offload).map_err(|source| NetlinkError::Link {
            op: "set TX checksum offload".into(),
            ifname: spec.ifname.to_string(),
            netns: label.clone(),
            source,
        })?;
        cnl.set_up(index, spec.ifname)?;
        add_default_routes(&cnl, spec, index)?;
        Ok(true)
    })
    .map_err(|source| NetlinkError::Netns {
        op: "enter",
        path: spec.netns_path.to_path_buf(),
        source,
    })??;
    if !fits {
        return Ok(None);
    }
    nl.set_up(host_ifindex, spec.host_ifname)?;
    Ok(Some(EndpointLink {
        host_ifname: spec.host_ifname.to_string(),
        host_ifindex,
        tap: None,
        adopted: true,
    }))
}

fn create_tap(spec: &EndpointLinkSpec, ns: &File) -> Result<EndpointLink, NetlinkError> {
    let nl = Rtnl::own()?;
    let host = spec.host_ifname;
    // IFF_TUN_EXCL makes TUNSETIFF fail rather than attach to an existing
    // persistent TAP of that name; this check gives the clearer message.
    if nl.index(host)?.is_some() {
        return Err(NetlinkError::Exists {
            ifname: host.to_string(),
            netns: OWN_NETNS.to_string(),
        });
    }
    // Dropping `tap` on any error below deletes the device.
    let tap = open_tap(host).map_err(|source| NetlinkError::Link {
        op: "create TAP device".into(),
        ifname: host.to_string(),
        netns: OWN_NETNS.into(),
        source,
    })?;
    let host_ifindex = nl.require(host, "move the TAP device")?;
    nl.set_mtu(host_ifindex, host, spec.mtu)?;
    nl.move_to_netns(host_ifindex, host, ns, spec.netns_path)?;
    configure_in_container(spec, host)?;
    Ok(EndpointLink {
        host_ifname: host.to_string(),
        host_ifindex,
        tap: Some(tap),
        adopted: false,
    })
}

/// Inside the container namespace: rename `current` to `spec.ifname`, set its
/// MAC, add the address, set it and `lo` up, add the default route.
fn configure_in_container(spec: &EndpointLinkSpec, current: &str) -> Result<(), NetlinkError> {
    let label = spec.netns_path.display().to_string();
    let path = spec.netns_path;
    in_netns(path, || {
        let nl = Rtnl::new(&label)?;
        if let Some(lo) = nl.index("lo")? {
            nl.set_up(lo, "lo")?;
        }
        let index = nl.require(current, "configure it")?;
        if current != spec.ifname && nl.index(spec.ifname)?.is_some() {
            return Err(NetlinkError::Exists {
                ifname: spec.ifname.to_string(),
                netns: label.clone(),
            });
        }
        // The device is down after the move, so renaming it is allowed.
        nl.rename_and_set_mac(index, current, spec.ifname, spec.mac)?;
        let ifname = spec.ifname;
        // 0.0.0.0: the address comes later (from a DHCP lease).
        if !spec.addr.is_unspecified() {
            nl.add_address(index, ifname, IpAddr::V4(spec.addr), spec.prefix_len)?;
        }
        if let Some((addr6, len)) = spec.addr6 {
            // A namespace may turn IPv6 off for new interfaces (the
            // `default` sysctl); a dual-stack endpoint needs it on.
            turn_ipv6_on(ifname, &label)?;
            nl.add_address(index, ifname, IpAddr::V6(addr6), len)?;
        }
        nl.set_up(index, ifname)?;
        add_default_routes(&nl, spec, index)
    })
    .map_err(|source| NetlinkError::Netns {
        op: "enter",
        path: path.to_path_buf(),
        source,
    })?
}

/// Adds the spec's default routes (IPv4, and IPv6 on a dual-stack network)
/// through link `index`; one the namespace has already is kept.
fn add_default_routes(nl: &Rtnl, spec: &EndpointLinkSpec, index: u32) -> Result<(), NetlinkError> {
    let gateways = [spec.gateway.map(IpAddr::V4), spec.gateway6.map(IpAddr::V6)];
    for gateway in gateways.into_iter().flatten() {
        nl.add_default_route(index, spec.ifname, gateway)?;
    }
    Ok(())
}

/// Writes 0 to `disable_ipv6` of `ifname` in the calling thread's netns
/// (`/proc/sys/net` follows the calling thread's namespace; `netns` names
/// it in the error).
fn turn_ipv6_on(ifname: &str, netns: &str) -> Result<(), NetlinkError> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    std::fs::write(path, b"0").map_err(|source| NetlinkError::Link {
        op: "turn IPv6 on".into(),
        ifname: ifname.to_string(),
        netns: netns.to_string(),
        source,
    })
}

/// Writes 1 to `disable_ipv6` of `ifname` in the calling thread's netns, so the
/// host end sends no router solicitations or DAD probes. Best effort: a kernel
/// without IPv6 has no such file.
fn disable_ipv6(ifname: &str) {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    match std::fs::write(&path, b"1") {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot disable IPv6 on {ifname} ({path}): {e}"),
    }
}

/// Opens `/dev/net/tun` as a non-persistent, non-blocking TAP named `name`.
fn open_tap(name: &str) -> io::Result<OwnedFd> {
    // SAFETY: the path is a NUL-terminated literal; the return value is checked.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let tun = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ifr = super::ethtool::ifreq_for(name)?;
    ifr.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL) as libc::c_short;
    // SAFETY: `ifr` is a valid `ifreq` that lives across the call; TUNSETIFF
    // reads the name and flags and writes back the name.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tun)
}

/// Deletes `ifname` when dropped while armed: the undo of a half-built endpoint.
struct DeleteOnDrop<'a> {
    nl: &'a Rtnl,
    ifname: &'a str,
    armed: bool,
}

impl Drop for DeleteOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let result = match self.nl.index(self.ifname) {
            Ok(Some(index)) => self.nl.delete(index, self.ifname),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            log::error!(
                "cleanup after a failed endpoint creation: {e}; delete {:?} by hand",
                self.ifname
            );
        }
    }
}

/// An rtnetlink connection bound to the namespace of the thread that opened it,
/// driven by its own current-thread runtime.
struct Rtnl {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
    /// The namespace's label for error messages.
    netns: String,
}

thread_local! {
    /// This thread's connection to its own namespace, kept across calls, with
    /// the inode of the namespace it was opened in.
    static OWN: std::cell::RefCell<Option<(u64, std::rc::Rc<Rtnl>)>> =
        const { std::cell::RefCell::new(None) };
}

impl Rtnl {
    /// The calling thread's long-lived connection to its own namespace,
    /// opened on first use (and again if the thread has moved to another
    /// namespace since): the daemon's control thread makes every request
    /// over one socket and one runtime.
    fn own() -> Result<std::rc::Rc<Rtnl>, NetlinkError> {
        use std::os::unix::fs::MetadataExt;
        let netns = std::fs::metadata("/proc/thread-self/ns/net").map_or(0, |m| m.ino());
        OWN.with(|cell| {
            let mut cell = cell.borrow_mut();
            match &*cell {
                Some((ino, nl)) if *ino == netns => Ok(nl.clone()),
                _ => {
                    let nl = std::rc::Rc::new(Rtnl::new(OWN_NETNS)?);
                    *cell = Some((netns, nl.clone()));
                    Ok(nl)
                }
            }
        })
    }

    fn new(netns: &str) -> Result<Self, NetlinkError> {
        let socket_err = |source| NetlinkError::Socket {
            netns: netns.to_string(),
            source,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(socket_err)?;
        // The socket must be created inside the runtime (tokio registers it).
        let (connection, handle, _) = rt
            .block_on(async { rtnetlink::new_connection() })
            .map_err(socket_err)?;
        rt.spawn(connection);
        Ok(Rtnl {
            rt,
            handle,
            netns: netns.to_string(),
        })
    }

    fn fail(&self, op: impl Into<String>, ifname: &str, e: rtnetlink::Error) -> NetlinkError {
        NetlinkError::Link {
            op: op.into(),
            ifname: ifname.to_string(),
            netns: self.netns.clone(),
            source: to_io(e),
        }
    }

    /// The link called `ifname`, or `None` if there is none.
    fn get(&self, ifname: &str) -> Result<Option<LinkMessage>, NetlinkError> {
        let request = self.handle.link().get().match_name(ifname).execute();
        match self.rt.block_on(async move {
            futures::pin_mut!(request);
            request.try_next().await
        }) {
            Ok(msg) => Ok(msg),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(self.fail("look up", ifname, e)),
        }
    }

    fn index(&self, ifname: &str) -> Result<Option<u32>, NetlinkError> {
        Ok(self.get(ifname)?.map(|msg| msg.header.index))
    }

    /// The index of a link that must exist because mvdp just made or moved it.
    fn require(&self, ifname: &str, op: &'static str) -> Result<u32, NetlinkError> {
        self.index(ifname)?.ok_or_else(|| NetlinkError::NotFound {
            op,
            ifname: ifname.to_string(),
            netns: self.netns.clone(),
        })
    }

    /// A veth pair; `group` is the host end's interface group (the peer's stays 0).
    fn add_veth(
        &self,
        host: &str,
        peer: &str,
        queues: u32,
        group: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let peer_msg = LinkUnspec::new_with_name(peer)
            .append_extra_attribute(LinkAttribute::NumTxQueues(queues))
            .append_extra_attribute(LinkAttribute::NumRxQueues(queues))
            .build();
        let mut builder = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(host)
            .append_extra_attribute(LinkAttribute::NumTxQueues(queues))
            .append_extra_attribute(LinkAttribute::NumRxQueues(queues));
        if let Some(group) = group {
            builder = builder.append_extra_attribute(LinkAttribute::Group(group));
        }
        let msg = builder
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.rt
            .block_on(self.handle.link().add(msg).execute())
            .map_err(|e| {
                self.fail(
                    format!("create veth pair (peer {peer:?}, {queues} queues)"),
                    host,
                    e,
                )
            })
    }

    fn set_mtu(&self, index: u32, ifname: &str, mtu: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.rt
            .block_on(self.handle.link().set(msg).execute())
            .map_err(|e| self.fail(format!("set MTU {mtu}"), ifname, e))
    }

    fn set_up(&self, index: u32, ifname: &str) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.rt
            .block_on(self.handle.link().set(msg).execute())
            .map_err(|e| self.fail("set up", ifname, e))
    }

    fn move_to_netns(
        &self,
        index: u32,
        ifname: &str,
        ns: &File,
        ns_path: &Path,
    ) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index)
            .setns_by_fd(ns.as_raw_fd())
            .build();
        self.rt
            .block_on(self.handle.link().set(msg).execute())
            .map_err(|e| {
                self.fail(
                    format!("move to network namespace {}", ns_path.display()),
                    ifname,
                    e,
                )
            })
    }

    fn rename_and_set_mac(
        &self,
        index: u32,
        current: &str,
        ifname: &str,
        mac: MacAddr,
    ) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index)
            .name(ifname)
            .address(mac.0.to_vec())
            .build();
        self.rt
            .block_on(self.handle.link().set(msg).execute())
            .map_err(|e| {
                self.fail(
                    format!("rename to {ifname:?} and set MAC {mac}"),
                    current,
                    e,
                )
            })
    }

    fn add_address(
        &self,
        index: u32,
        ifname: &str,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        self.rt
            .block_on(self.handle.address().add(index, addr, prefix_len).execute())
            .map_err(|e| self.fail(format!("add address {addr}/{prefix_len}"), ifname, e))
    }

    fn add_default_route(
        &self,
        index: u32,
        ifname: &str,
        gateway: IpAddr,
    ) -> Result<(), NetlinkError> {
        let route = match gateway {
            IpAddr::V4(gw) => RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build(),
            IpAddr::V6(gw) => RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build(),
        };
        match self.rt.block_on(self.handle.route().add(route).execute()) {
            // The namespace has a default route already: another of its
            // interfaces (a second network, as `docker network connect`
            // makes, or several endpoints sharing a namespace) holds it.
            Err(e) if errno(&e) == Some(libc::EEXIST) => {
                log::info!("{ifname}: the namespace has a default route already; kept");
                Ok(())
            }
            r => r.map_err(|e| self.fail(format!("add default route via {gateway}"), ifname, e)),
        }
    }

    fn del_address(
        &self,
        index: u32,
        ifname: &str,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        for m in self.addresses(index, ifname, addr, prefix_len)? {
            match self.rt.block_on(self.handle.address().del(m).execute()) {
                Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => {}
                r => r.map_err(|e| {
                    self.fail(format!("delete address {addr}/{prefix_len}"), ifname, e)
                })?,
            }
        }
        Ok(())
    }

    /// Whether link `index` holds `addr/prefix_len`.
    fn has_address(
        &self,
        index: u32,
        ifname: &str,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<bool, NetlinkError> {
        Ok(!self.addresses(index, ifname, addr, prefix_len)?.is_empty())
    }

    /// Every IPv4 address on link `index`, with its prefix length.
    fn ipv4_addresses(
        &self,
        index: u32,
        ifname: &str,
    ) -> Result<Vec<(Ipv4Addr, u8)>, NetlinkError> {
        use rtnetlink::packet_route::address::AddressAttribute;
        Ok(self
            .link_addresses(index, ifname)?
            .into_iter()
            .flat_map(|m| {
                let prefix_len = m.header.prefix_len;
                m.attributes.into_iter().filter_map(move |a| match a {
                    AddressAttribute::Address(IpAddr::V4(a)) => Some((a, prefix_len)),
                    _ => None,
                })
            })
            .collect())
    }

    /// The permanent (statically set, not SLAAC) IPv6 addresses on link
    /// `index` in `within/prefix_len`, with that prefix length.
    fn static_ipv6_in(
        &self,
        index: u32,
        ifname: &str,
        within: Ipv6Addr,
        prefix_len: u8,
    ) -> Result<Vec<Ipv6Addr>, NetlinkError> {
        use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags};
        let Some(subnet) = crate::config::Ipv6Net::new(within, prefix_len) else {
            return Ok(Vec::new());
        };
        Ok(self
            .link_addresses(index, ifname)?
            .into_iter()
            .filter(|m| {
                m.header.prefix_len == prefix_len
                    && m.header.flags.contains(AddressHeaderFlags::Permanent)
            })
            .flat_map(|m| m.attributes)
            .filter_map(|a| match a {
                AddressAttribute::Address(IpAddr::V6(a)) => Some(a),
                _ => None,
            })
            .filter(|&a| !a.is_unicast_link_local() && subnet.contains(a))
            .collect())
    }

    /// The entries of `addr/prefix_len` on link `index`.
    fn addresses(
        &self,
        index: u32,
        ifname: &str,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<Vec<rtnetlink::packet_route::address::AddressMessage>, NetlinkError> {
        use rtnetlink::packet_route::address::AddressAttribute;
        Ok(self
            .link_addresses(index, ifname)?
            .into_iter()
            .filter(|m| {
                m.header.prefix_len == prefix_len
                    && m.attributes
                        .iter()
                        .any(|a| matches!(a, AddressAttribute::Address(a) if *a == addr))
            })
            .collect())
    }

    /// Every address entry on link `index`.
    fn link_addresses(
        &self,
        index: u32,
        ifname: &str,
    ) -> Result<Vec<rtnetlink::packet_route::address::AddressMessage>, NetlinkError> {
        let request = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let addrs: Vec<rtnetlink::packet_route::address::AddressMessage> = self
            .rt
            .block_on(request.try_collect())
            .map_err(|e| self.fail("list the addresses of", ifname, e))?;
        // The filter is the kernel's to apply; not every kernel does.
        Ok(addrs
            .into_iter()
            .filter(|m| m.header.index == index)
            .collect())
    }

    /// The names of every link in `group`.
    fn group_members(&self, group: u32) -> Result<Vec<String>, NetlinkError> {
        let request = self.handle.link().get().execute();
        let links: Vec<LinkMessage> = self
            .rt
            .block_on(request.try_collect())
            .map_err(|e| self.fail("list", "every link", e))?;
        Ok(links
            .into_iter()
            .filter(|msg| {
                msg.attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::Group(g) if *g == group))
            })
            .map(|msg| {
                msg.attributes
                    .into_iter()
                    .find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n),
                        _ => None,
                    })
                    .unwrap_or_default()
            })
            .collect())
    }

    /// Deletes every link in `group` in one request (`ip link delete group N`).
    fn delete_group(&self, group: u32) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::Group(group));
        let request = rtnetlink::LinkDelRequest::new_with_message(self.handle.clone(), msg);
        self.rt
            .block_on(request.execute())
            .map_err(|e| self.fail("delete", &format!("interface group {group}"), e))
    }

    fn delete(&self, index: u32, ifname: &str) -> Result<(), NetlinkError> {
        match self.rt.block_on(self.handle.link().del(index).execute()) {
            Ok(()) => Ok(()),
            // Gone in the meantime (e.g. its veth peer was deleted): the goal holds.
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(self.fail("delete", ifname, e)),
        }
    }
}

/// The errno of a netlink NACK.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io().raw_os_error(),
        _ => None,
    }
}

/// The kernel's errno as an `io::Error`; anything else as `ErrorKind::Other`.
fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_the_kernel_does() {
        assert!(check_ifname("eth0", "ifname").is_ok());
        assert!(check_ifname("a23456789012345", "ifname").is_ok());
        let err = check_ifname("a234567890123456", "ifname").unwrap_err();
        assert!(err.to_string().contains("at most 15"), "{err}");
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "tap%d"] {
            assert!(check_ifname(bad, "ifname").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn temporary_names_fit_and_differ() {
        let a = temporary_ifname();
        let b = temporary_ifname();
        assert_ne!(a, b);
        assert!(check_ifname(&a, "peer").is_ok(), "{a}");
    }

    #[test]
    fn spec_values_are_checked() {
        let spec = EndpointLinkSpec {
            kind: LinkKind::Veth,
            host_ifname: "mv-host",
            netns_path: Path::new("/nonexistent"),
            ifname: "eth0",
            mac: MacAddr([0x02, 0x42, 10, 0, 0, 2]),
            addr: Ipv4Addr::new(10, 0, 0, 2),
            prefix_len: 24,
            gateway: None,
            addr6: None,
            gateway6: None,
            queues: 1,
            tx_offload: false,
            mtu: 1500,
            handoff: false,
        };
        assert!(validate(&spec).is_ok());
        assert!(validate(&EndpointLinkSpec {
            prefix_len: 33,
            ..spec.clone()
        })
        .is_err());
        assert!(validate(&EndpointLinkSpec {
            queues: 0,
            ..spec.clone()
        })
        .is_err());
        assert!(validate(&EndpointLinkSpec {
            mac: MacAddr::BROADCAST,
            ..spec.clone()
        })
        .is_err());
        assert!(validate(&EndpointLinkSpec {
            kind: LinkKind::Tap,
            queues: 0,
            ..spec
        })
        .is_ok());
    }
}
