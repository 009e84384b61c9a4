//! The kernel fast path (`bpf/fastpath.c`): load, attach (tcx), maps, counters.
//!
//! One object is loaded per daemon. Its `mvdp_tc_wire` program sits on the
//! parent's tc ingress; its `mvdp_tc_port` program sits on the tc ingress of
//! every fast endpoint's veth host end. Both read the same maps, which only
//! the control thread writes through this type. Programs are attached as tcx
//! links (Linux 6.6+): a link belongs to its fd, so a crashed mvdp leaves no
//! program behind, and other tc programs on the parent keep running (mvdp's
//! go last and pass on what is not theirs).

use std::collections::HashMap as StdHashMap;
use std::fmt;

use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray};
use aya::programs::tc::{SchedClassifierLinkId, TcAttachOptions};
use aya::programs::{LinkOrder, ProgramError, SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfError};

use super::bpf::{self, EpKey};
use crate::config::Mode;
use crate::metrics::{CounterSource, EndpointTotals, Totals};
use crate::switch::{DropReason, EndpointId};
use crate::wire::MacAddr;

/// The program on the parent's ingress.
const WIRE_PROGRAM: &str = "mvdp_tc_wire";
/// The program on each fast endpoint's host end ingress.
const PORT_PROGRAM: &str = "mvdp_tc_port";

/// `MVDP_FP_FAST` in bpf/mvdp.h.
const FLAG_FAST: u8 = 0x01;
/// `MVDP_FP_PUNT_EGRESS` in bpf/mvdp.h.
const FLAG_PUNT_EGRESS: u8 = 0x02;

/// The compiled object, embedded at build time.
fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fastpath.bpf.o"))
}

/// Mirror of `struct mvdp_fp_port` in `bpf/mvdp.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FpPort {
    ifindex: u32,
    id: u16,
    vlan: u16,
    network: u16,
    mode: u8,
    flags: u8,
    mac: [u8; 6],
    max_len: u16,
}

/// Mirror of `struct mvdp_fp_config` in `bpf/mvdp.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct FpConfig {
    parent_ifindex: u32,
    punt_ifindex: u32,
    flags: u32,
    punt_max_len: u32,
}

/// Mirror of `struct mvdp_fp_ep_stats` in `bpf/mvdp.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct FpEpStats {
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
    dropped: u64,
}

const _: () = assert!(std::mem::size_of::<FpPort>() == 20);
const _: () = assert!(std::mem::size_of::<FpConfig>() == 16);

/// `MVDP_FP_CFG_WIRE_GROUPS` in bpf/mvdp.h.
const CFG_WIRE_GROUPS: u32 = 0x01;
const _: () = assert!(std::mem::size_of::<FpEpStats>() == 40);

/// Mirror of `struct mvdp_fp_counters` in `bpf/mvdp.h`: one CPU's counters,
/// indexed by [`Counter`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct FpCounters {
    c: [u64; Counter::ALL.len()],
}

// SAFETY: each type is `repr(C)` with no padding (sizes asserted above) and
// every bit pattern is a valid value, as `Pod` requires.
unsafe impl aya::Pod for FpPort {}
// SAFETY: as above.
unsafe impl aya::Pod for FpConfig {}
// SAFETY: as above.
unsafe impl aya::Pod for FpEpStats {}
// SAFETY: as above (an array of u64).
unsafe impl aya::Pod for FpCounters {}

/// Mirror of `enum mvdp_fp_counter` in `bpf/mvdp.h`, in the same order.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
enum Counter {
    RxWire = 0,
    RxEndpoint,
    Delivered,
    WireTx,
    Punted,
    GroupCopied,
    Passed,
    DropSpoofed,
    DropVlanHop,
    DropPrivate,
    DropNoPort,
    DropTooLong,
}

impl Counter {
    const ALL: [Counter; 12] = [
        Counter::RxWire,
        Counter::RxEndpoint,
        Counter::Delivered,
        Counter::WireTx,
        Counter::Punted,
        Counter::GroupCopied,
        Counter::Passed,
        Counter::DropSpoofed,
        Counter::DropVlanHop,
        Counter::DropPrivate,
        Counter::DropNoPort,
        Counter::DropTooLong,
    ];

    /// The workers' drop reason this counter stands for, if it is a drop.
    fn drop_reason(self) -> Option<DropReason> {
        match self {
            Counter::DropSpoofed => Some(DropReason::SpoofedSource),
            Counter::DropVlanHop => Some(DropReason::VlanHop),
            Counter::DropPrivate => Some(DropReason::PrivateIsolation),
            Counter::DropNoPort => Some(DropReason::EndpointGone),
            Counter::DropTooLong => Some(DropReason::TooLong),
            _ => None,
        }
    }
}

/// `enum mvdp_mode` in bpf/mvdp.h.
fn mode_code(mode: Mode) -> u8 {
    match mode {
        Mode::Bridge => 0,
        Mode::Private => 1,
        Mode::Vepa => 2,
        Mode::Passthru => 3,
        Mode::Source => 4,
    }
}

/// What the fast path knows about one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastEndpoint {
    /// The endpoint's id.
    pub id: EndpointId,
    /// The container interface's MAC.
    pub mac: MacAddr,
    /// The network's VID (0: untagged).
    pub vlan: u16,
    /// The network's id.
    pub network: u16,
    /// The network's mode.
    pub mode: Mode,
    /// The ifindex of the veth's host end when the fast path delivers to
    /// it; `None` for endpoints only the workers reach (TAP, host shim).
    pub port: Option<u32>,
    /// Everything it sends goes to the workers (a rate limit applies).
    pub punt_egress: bool,
    /// The longest frame it takes, untagged (its network's MTU + 14; 0: any).
    pub max_len: u16,
}

impl FastEndpoint {
    fn value(&self) -> FpPort {
        let mut flags = 0;
        if self.port.is_some() {
            flags |= FLAG_FAST;
        }
        if self.punt_egress {
            flags |= FLAG_PUNT_EGRESS;
        }
        FpPort {
            ifindex: self.port.unwrap_or(0),
            id: self.id.0,
            vlan: self.vlan,
            network: self.network,
            mode: mode_code(self.mode),
            flags,
            mac: self.mac.0,
            max_len: self.max_len,
        }
    }
}

/// The fast path's own counters, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastPathCounters {
    /// Frames from the wire it decided (delivered or dropped).
    pub rx_wire: u64,
    /// Frames from containers it decided.
    pub rx_endpoint: u64,
    /// Frames it redirected to a container or the parent.
    pub delivered: u64,
    /// Of those, to the parent.
    pub wire_tx: u64,
    /// Frames it handed to the workers (they count them as received).
    pub punted: u64,
    /// Group frames from the wire it copied to the workers (ditto).
    pub group_copied: u64,
    /// Frames from the wire that were not for a fast endpoint, left to the host.
    pub passed: u64,
    /// Drops by reason.
    pub drops: [(DropReason, u64); 5],
}

/// Why a fast-path operation failed. Every message names what was attempted.
#[derive(thiserror::Error, Debug)]
pub enum FastPathError {
    /// The embedded object could not be loaded (maps or BTF).
    #[error("fast path: loading the embedded BPF object failed: {0}")]
    Load(#[source] Box<EbpfError>),
    /// The object lacks a program or map (a build problem).
    #[error("fast path: the embedded BPF object has no usable {what} `{name}`: {error}")]
    Missing {
        /// "program" or "map".
        what: &'static str,
        /// Its name.
        name: &'static str,
        /// What was wrong.
        error: String,
    },
    /// The kernel refused a program (the verifier log is in the message).
    #[error("fast path: loading `{program}` into the kernel failed: {error}")]
    LoadProgram {
        /// Program name.
        program: &'static str,
        /// aya's error.
        #[source]
        error: Box<ProgramError>,
    },
    /// Attaching a program as a tcx link failed (the kernel is older than 6.6,
    /// or the interface is gone).
    #[error("fast path: attaching `{program}` to tc ingress of {ifname} (tcx) failed: {error}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// The interface.
        ifname: String,
        /// aya's error.
        #[source]
        error: Box<ProgramError>,
    },
    /// A map operation failed.
    #[error("fast path: {op} failed: {error}")]
    Map {
        /// The operation, with its arguments.
        op: String,
        /// aya's error.
        #[source]
        error: Box<MapError>,
    },
}

fn map_error(op: impl Into<String>) -> impl FnOnce(MapError) -> FastPathError {
    let op = op.into();
    move |error| FastPathError::Map {
        op,
        error: Box::new(error),
    }
}

/// The loaded fast path: the wire program attached to the parent, the port
/// program ready to attach to endpoints, and the maps.
///
/// Dropping it detaches every link and unloads the programs.
pub struct FastPath {
    parent: String,
    wire_link: Option<SchedClassifierLinkId>,
    port_links: StdHashMap<u32, SchedClassifierLinkId>,
    macs: HashMap<MapData, EpKey, FpPort>,
    ports: HashMap<MapData, u32, FpPort>,
    ep_stats: PerCpuArray<MapData, FpEpStats>,
    counters: PerCpuArray<MapData, FpCounters>,
    /// Owns the programs.
    bpf: Ebpf,
}

impl fmt::Debug for FastPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastPath")
            .field("parent", &self.parent)
            .field("ports", &self.port_links.len())
            .finish_non_exhaustive()
    }
}

impl FastPath {
    /// Loads both programs, points them at the parent (`parent_ifindex`)
    /// and the punt device (`punt_ifindex`), and attaches the wire program
    /// to the parent's tc ingress. With empty maps it passes every frame on;
    /// with `wire_groups` it also copies the wire's group frames to the
    /// workers through the punt device. Frames longer than `punt_max_len`
    /// (Ethernet header included, tags not) are not handed to the workers:
    /// dropped as `too_long`.
    pub fn attach(
        parent: &str,
        parent_ifindex: u32,
        punt_ifindex: u32,
        wire_groups: bool,
        punt_max_len: u32,
    ) -> Result<FastPath, FastPathError> {
        let mut bpf = Ebpf::load(object()).map_err(|e| FastPathError::Load(Box::new(e)))?;
        let macs = take_map(&mut bpf, "fp_macs", HashMap::try_from)?;
        let ports = take_map(&mut bpf, "fp_ports", HashMap::try_from)?;
        let mut config: Array<MapData, FpConfig> =
            take_map(&mut bpf, "fp_config", Array::try_from)?;
        let ep_stats = take_map(&mut bpf, "fp_ep_stats", PerCpuArray::try_from)?;
        let counters = take_map(&mut bpf, "fp_counters", PerCpuArray::try_from)?;
        config
            .set(
                0,
                FpConfig {
                    parent_ifindex,
                    punt_ifindex,
                    flags: if wire_groups { CFG_WIRE_GROUPS } else { 0 },
                    punt_max_len,
                },
                0,
            )
            .map_err(map_error("set the config"))?;
        for name in [WIRE_PROGRAM, PORT_PROGRAM] {
            program(&mut bpf, name)?
                .load()
                .map_err(|error| FastPathError::LoadProgram {
                    program: name,
                    error: Box::new(error),
                })?;
        }
        let mut fp = FastPath {
            parent: parent.to_string(),
            wire_link: None,
            port_links: StdHashMap::new(),
            macs,
            ports,
            ep_stats,
            counters,
            bpf,
        };
        fp.wire_link = Some(fp.attach_program(WIRE_PROGRAM, parent)?);
        log::info!("fast path: {WIRE_PROGRAM} attached to tc ingress of {parent} (tcx)");
        Ok(fp)
    }

    fn attach_program(
        &mut self,
        name: &'static str,
        ifname: &str,
    ) -> Result<SchedClassifierLinkId, FastPathError> {
        program(&mut self.bpf, name)?
            .attach_with_options(
                ifname,
                TcAttachType::Ingress,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )
            .map_err(|error| FastPathError::Attach {
                program: name,
                ifname: ifname.to_string(),
                error: Box::new(error),
            })
    }

    /// Makes an endpoint known (or updates it): delivery to it if it has a
    /// port, sibling and isolation checks either way.
    pub fn set_endpoint(&mut self, ep: &FastEndpoint) -> Result<(), FastPathError> {
        let key = EpKey {
            mac: ep.mac.0,
            vlan: ep.vlan,
        };
        let value = ep.value();
        if let Some(ifindex) = ep.port {
            self.ports
                .insert(ifindex, value, 0)
                .map_err(map_error(format!(
                    "add port {ifindex} of endpoint {}",
                    ep.id.0
                )))?;
        }
        self.macs.insert(key, value, 0).map_err(map_error(format!(
            "add endpoint {} ({} vlan {})",
            ep.id.0, ep.mac, ep.vlan
        )))
    }

    /// Starts taking the egress of a fast endpoint: attaches the port
    /// program to its veth host end (`ifname`, whose ifindex is `ep.port`).
    /// Call after [`FastPath::set_endpoint`].
    pub fn attach_port(&mut self, ep: &FastEndpoint, ifname: &str) -> Result<(), FastPathError> {
        let Some(ifindex) = ep.port else {
            return Ok(());
        };
        let link = self.attach_program(PORT_PROGRAM, ifname)?;
        self.port_links.insert(ifindex, link);
        Ok(())
    }

    /// Forgets an endpoint: no delivery to it, its port program detached,
    /// its counters zeroed for the next endpoint with its id.
    pub fn remove_endpoint(&mut self, ep: &FastEndpoint) -> Result<(), FastPathError> {
        let key = EpKey {
            mac: ep.mac.0,
            vlan: ep.vlan,
        };
        let mut result = self.macs.remove(&key).map_err(map_error(format!(
            "remove endpoint {} ({})",
            ep.id.0, ep.mac
        )));
        if let Some(ifindex) = ep.port {
            if let Some(link) = self.port_links.remove(&ifindex) {
                if let Err(error) = program(&mut self.bpf, PORT_PROGRAM).and_then(|p| {
                    p.detach(link).map_err(|error| FastPathError::Attach {
                        program: PORT_PROGRAM,
                        ifname: format!("ifindex {ifindex}"),
                        error: Box::new(error),
                    })
                }) {
                    result = result.and(Err(error));
                }
            }
            if let Err(e) = self.ports.remove(&ifindex) {
                result = result.and(Err(map_error(format!("remove port {ifindex}"))(e)));
            }
        }
        self.reset_endpoint(ep.id);
        result
    }

    /// How many endpoints' egress it takes (port programs attached).
    pub fn ports(&self) -> usize {
        self.port_links.len()
    }

    /// Zeroes an endpoint id's counters (on every CPU).
    fn reset_endpoint(&mut self, id: EndpointId) {
        let cpus = aya::util::nr_cpus().unwrap_or(1);
        let zeroes = aya::maps::PerCpuValues::try_from(vec![FpEpStats::default(); cpus]);
        if let Ok(zeroes) = zeroes {
            if let Err(e) = self.ep_stats.set(u32::from(id.0), zeroes, 0) {
                log::warn!("fast path: zeroing the counters of endpoint {}: {e}", id.0);
            }
        }
    }

    /// The fast path's counters, summed over CPUs.
    pub fn counters(&self) -> Result<FastPathCounters, FastPathError> {
        let per_cpu = self
            .counters
            .get(&0, 0)
            .map_err(map_error("read the counters"))?;
        let mut sums = [0u64; Counter::ALL.len()];
        for cpu in per_cpu.iter() {
            for (sum, v) in sums.iter_mut().zip(cpu.c) {
                *sum = sum.wrapping_add(v);
            }
        }
        let mut drops = [(DropReason::Malformed, 0); 5];
        let mut k = 0;
        for (counter, &n) in Counter::ALL.iter().zip(&sums) {
            if let Some(reason) = counter.drop_reason() {
                drops[k] = (reason, n);
                k += 1;
            }
        }
        Ok(FastPathCounters {
            rx_wire: sums[Counter::RxWire as usize],
            rx_endpoint: sums[Counter::RxEndpoint as usize],
            delivered: sums[Counter::Delivered as usize],
            wire_tx: sums[Counter::WireTx as usize],
            punted: sums[Counter::Punted as usize],
            group_copied: sums[Counter::GroupCopied as usize],
            passed: sums[Counter::Passed as usize],
            drops,
        })
    }

    /// One endpoint's fast-path counters, summed over CPUs.
    pub fn endpoint_counters(&self, id: EndpointId) -> EndpointTotals {
        let Ok(values) = self.ep_stats.get(&u32::from(id.0), 0) else {
            return EndpointTotals::default();
        };
        values
            .iter()
            .fold(EndpointTotals::default(), |a, s| EndpointTotals {
                rx_packets: a.rx_packets.wrapping_add(s.rx_packets),
                rx_bytes: a.rx_bytes.wrapping_add(s.rx_bytes),
                tx_packets: a.tx_packets.wrapping_add(s.tx_packets),
                tx_bytes: a.tx_bytes.wrapping_add(s.tx_bytes),
                dropped: a.dropped.wrapping_add(s.dropped),
            })
    }

    /// Detaches the program from the parent only: from here on the wire's
    /// frames go to the host stack. The endpoint programs stay until the
    /// value is dropped; delete their interfaces first and that is cheap
    /// (the kernel detaches a program from a deleted device itself, where a
    /// detach from a live one waits for an RCU grace period each).
    pub fn detach_wire(&mut self) -> Result<(), FastPathError> {
        let Some(link) = self.wire_link.take() else {
            return Ok(());
        };
        let parent = self.parent.clone();
        program(&mut self.bpf, WIRE_PROGRAM).and_then(|p| {
            p.detach(link).map_err(|error| FastPathError::Attach {
                program: WIRE_PROGRAM,
                ifname: parent,
                error: Box::new(error),
            })
        })?;
        log::info!("fast path: detached from {}", self.parent);
        Ok(())
    }

    fn detach_all(&mut self) -> Result<(), FastPathError> {
        let mut result = self.detach_wire();
        let links: Vec<_> = self.port_links.drain().collect();
        for (ifindex, link) in links {
            let r = program(&mut self.bpf, PORT_PROGRAM).and_then(|p| {
                p.detach(link).map_err(|error| FastPathError::Attach {
                    program: PORT_PROGRAM,
                    ifname: format!("ifindex {ifindex}"),
                    error: Box::new(error),
                })
            });
            result = result.and(r);
        }
        result
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        if let Err(e) = self.detach_all() {
            log::error!("{e}");
        }
    }
}

/// The fast path as the exporter sees it: its counters added to the workers'.
impl CounterSource for std::sync::Mutex<Option<FastPath>> {
    fn totals(&self) -> Totals {
        let mut t = Totals::default();
        let Ok(guard) = self.lock() else { return t };
        let Some(fp) = guard.as_ref() else { return t };
        match fp.counters() {
            Ok(c) => {
                t.received[crate::metrics::Source::Wire as usize] = c.rx_wire;
                t.received[crate::metrics::Source::Endpoint as usize] = c.rx_endpoint;
                t.delivered = c.delivered;
                t.wire_tx_packets = c.wire_tx;
                for (reason, n) in c.drops {
                    t.drops[reason as usize] += n;
                }
            }
            Err(e) => log::warn!("{e}"),
        }
        t
    }

    fn endpoint(&self, id: EndpointId) -> EndpointTotals {
        match self.lock() {
            Ok(guard) => guard
                .as_ref()
                .map_or_else(EndpointTotals::default, |fp| fp.endpoint_counters(id)),
            Err(_) => EndpointTotals::default(),
        }
    }
}

fn program<'a>(
    bpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, FastPathError> {
    bpf::program(bpf, name).map_err(|error| FastPathError::Missing {
        what: "program",
        name,
        error,
    })
}

fn take_map<M>(
    bpf: &mut Ebpf,
    name: &'static str,
    convert: impl FnOnce(aya::maps::Map) -> Result<M, MapError>,
) -> Result<M, FastPathError> {
    bpf::take_map(bpf, name, convert).map_err(|error| FastPathError::Missing {
        what: "map",
        name,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust mirrors must list the C names in order.
    #[test]
    fn enums_match_header() {
        let header = include_str!("../../bpf/mvdp.h");
        let counters = bpf::c_enum_names(header, "mvdp_fp_counter");
        assert_eq!(counters.len(), Counter::ALL.len() + 1, "{counters:?}");
        assert_eq!(counters.last().unwrap(), "MVDP_FP_NCOUNTERS");
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        assert_eq!(
            counters[Counter::DropPrivate as usize],
            "MVDP_FP_DROP_PRIVATE"
        );
        assert_eq!(counters[Counter::Punted as usize], "MVDP_FP_PUNTED");
        let modes = bpf::c_enum_names(header, "mvdp_mode");
        for (name, mode) in [
            ("MVDP_MODE_BRIDGE", Mode::Bridge),
            ("MVDP_MODE_PRIVATE", Mode::Private),
            ("MVDP_MODE_VEPA", Mode::Vepa),
            ("MVDP_MODE_PASSTHRU", Mode::Passthru),
            ("MVDP_MODE_SOURCE", Mode::Source),
        ] {
            assert_eq!(modes[usize::from(mode_code(mode))], name);
        }
        assert!(header.contains("#define MVDP_FP_FAST\t\t0x01"));
        assert!(header.contains("#define MVDP_FP_PUNT_EGRESS\t0x02"));
        assert!(header.contains("#define MVDP_FP_CFG_WIRE_GROUPS\t0x01"));
        assert_eq!(
            counters[Counter::GroupCopied as usize],
            "MVDP_FP_GROUP_COPIED"
        );
    }

    /// `FpEpStats` lists the C struct's fields, in order.
    #[test]
    fn ep_stats_layout_matches_header() {
        let header = include_str!("../../bpf/mvdp.h");
        let body = header
            .split("struct mvdp_fp_ep_stats {")
            .nth(1)
            .and_then(|rest| rest.split("};").next())
            .expect("struct mvdp_fp_ep_stats in the header");
        let fields: Vec<&str> = body
            .lines()
            .filter_map(|l| l.trim().strip_prefix("__u64 "))
            .filter_map(|l| l.split(';').next())
            .collect();
        let rust = [
            "rx_packets",
            "rx_bytes",
            "tx_packets",
            "tx_bytes",
            "dropped",
        ];
        assert_eq!(fields, rust);
        assert_eq!(std::mem::size_of::<FpEpStats>(), 8 * fields.len());
    }

    #[test]
    fn port_value_layout() {
        let ep = FastEndpoint {
            id: EndpointId(7),
            mac: MacAddr([2, 0x42, 10, 77, 0, 11]),
            vlan: 50,
            network: 1,
            mode: Mode::Private,
            port: Some(42),
            punt_egress: true,
            max_len: 9014,
        };
        let v = ep.value();
        assert_eq!(
            (v.ifindex, v.id, v.vlan, v.network, v.mode, v.flags, v.max_len),
            (42, 7, 50, 1, 1, FLAG_FAST | FLAG_PUNT_EGRESS, 9014)
        );
        let ep = FastEndpoint {
            port: None,
            punt_egress: false,
            ..ep
        };
        assert_eq!((ep.value().ifindex, ep.value().flags), (0, 0));
    }

    #[test]
    fn embedded_object_is_bpf_elf() {
        let obj = object();
        assert_eq!(&obj[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([obj[18], obj[19]]), 247);
    }
}
