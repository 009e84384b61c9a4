//! The bench's NIC-like generator: frames enter the parent the way a NIC
//! driver hands them to XDP, not as skbs from a socket.
//!
//! `bpf/gen.c` (program `mvdp_gen`) runs under `BPF_PROG_RUN` with
//! `BPF_F_TEST_XDP_LIVE_FRAMES` on the wire end `w0`: the kernel builds each
//! frame from a template in a page-pool page, the program rewrites its
//! destination MAC (round robin over `gen_dsts`) and returns `XDP_TX`, which
//! a live run turns into a redirect out of `w0` (`veth_xdp_xmit`) into the
//! parent's receive ring. The parent needs NAPI for that (GRO on, or an XDP
//! program), or veth refuses the frames.
//!
//! Counting what was offered: `gen_seq` (per CPU) counts every frame the
//! program handled. Of those, veth puts into the parent's ring what fits
//! and counts the rest as `xdp_xmit_errors` (shown in `w0`'s /proc/net/dev
//! TX drops). The parent's NAPI then counts what it takes from the ring in
//! its `xdp_packets`, which veth reports as `w0`'s TX packets: so the
//! offered frames are `w0`'s TX packets, the frames the generator made but
//! the parent's ring refused are `w0`'s TX drops, and the two add up to the
//! `gen_seq` delta ([`NicGen::generated`]).
//!
//! Each `BPF_PROG_RUN` call costs ~30 µs of set-up (a page pool) once the
//! program stays in the XDP dispatcher ([`NicGen::keep_in_dispatcher`]);
//! within a call, frames go out in batches of 64 and the parent's NAPI
//! runs on the same CPU between batches, as a driver's RX poll would.

use std::fmt;
use std::time::{Duration, Instant};

use aya::maps::{Array, MapData, MapError, PerCpuArray};
use aya::programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfError};

use crate::wire::MacAddr;

/// The generator program in `bpf/gen.c`.
const PROGRAM_NAME: &str = "mvdp_gen";
/// Map names in `bpf/gen.c`.
const MAP_DSTS: &str = "gen_dsts";
const MAP_COUNT: &str = "gen_count";
const MAP_SEQ: &str = "gen_seq";
/// `MVDP_GEN_MAX_DSTS` in `bpf/gen.c`.
pub const MAX_DSTS: usize = 4096;
/// The kernel's cap on a live run's batch (`TEST_XDP_MAX_BATCH`).
const MAX_BATCH: u32 = 256;
/// Frames per batch: one NAPI poll's worth, as a NIC driver hands them over.
const BATCH: u32 = 64;
/// Frames per `BPF_PROG_RUN` call at maximum load: a few ms of work, so a
/// run stops close to its deadline.
const MAX_LOAD_REPEAT: u32 = 4096;

/// The compiled generator, embedded at build time.
fn program_object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gen.bpf.o"))
}

/// Mirror of `struct mvdp_gen_mac` in `bpf/gen.c`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct GenMac {
    mac: [u8; 6],
    pad: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<GenMac>() == 8);

// SAFETY: `GenMac` is `repr(C)`, 8 bytes of `u8` with no padding (asserted
// above), and every bit pattern is a valid value, as `Pod` requires.
unsafe impl aya::Pod for GenMac {}

/// Mirror of the kernel's `struct xdp_md` (UAPI `<linux/bpf.h>`), the
/// context a test run takes: where the frame is and which device it arrived on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

impl XdpMd {
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `XdpMd` is `repr(C)` and made of six `u32`s (no padding);
        // the slice covers exactly the struct and lives no longer than `self`.
        unsafe {
            std::slice::from_raw_parts(
                (self as *const XdpMd).cast::<u8>(),
                std::mem::size_of::<XdpMd>(),
            )
        }
    }
}

/// Why the generator failed. Every message says which step.
#[derive(thiserror::Error, Debug)]
pub enum NicGenError {
    /// The embedded BPF object could not be parsed or its maps created.
    #[error("NIC-like generator: loading the embedded BPF object failed: {}", chain(.0.as_ref()))]
    LoadObject(Box<EbpfError>),
    /// The embedded object lacks a program or map (a build problem).
    #[error("NIC-like generator: the embedded BPF object has no usable {what} `{name}`: {error}")]
    MissingObject {
        /// "program" or "map".
        what: &'static str,
        /// The name looked up.
        name: &'static str,
        /// What was wrong with it.
        error: String,
    },
    /// The kernel refused the program.
    #[error("NIC-like generator: loading `{PROGRAM_NAME}` into the kernel failed: {}", chain(.0.as_ref()))]
    LoadProgram(Box<ProgramError>),
    /// Filling or reading a map failed.
    #[error("NIC-like generator: {op} failed: {}", chain(.error.as_ref()))]
    Map {
        /// What was being done.
        op: String,
        /// aya's error.
        error: Box<MapError>,
    },
    /// No destinations, or more than the program's map holds.
    #[error("NIC-like generator: {0} destination MACs given; it takes 1 to {MAX_DSTS}")]
    Destinations(usize),
    /// The template frame is shorter than an Ethernet header or too long.
    #[error("NIC-like generator: a template frame of {0} bytes (it takes 14 to 3000)")]
    Template(usize),
    /// The interface is not in the calling thread's network namespace.
    #[error("NIC-like generator: no interface {0} in this network namespace")]
    NoSuchInterface(String),
    /// `BPF_PROG_RUN` failed (e.g. EOPNOTSUPP when the peer of the veth has no NAPI).
    #[error(
        "NIC-like generator: BPF_PROG_RUN with live frames on {ifname} failed: {} \
         (the kernel needs BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18+, and the veth's peer \
         needs NAPI: GRO on or an XDP program)",
        chain(.error.as_ref())
    )]
    Run {
        /// The interface the frames leave from.
        ifname: String,
        /// aya's error.
        error: Box<ProgramError>,
    },
    /// Attaching the program to its idle keeper interface failed.
    #[error("NIC-like generator: attaching `{PROGRAM_NAME}` to the idle interface {ifname} failed: {}", chain(.error.as_ref()))]
    Keep {
        /// The idle interface.
        ifname: String,
        /// aya's error.
        error: Box<ProgramError>,
    },
    /// The program returned something else than XDP_TX.
    #[error("NIC-like generator: the program returned {0}, not XDP_TX (3)")]
    Verdict(u32),
}

/// Formats an error with its sources, skipping repeats.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// The generator program, loaded, with its destinations filled in.
///
/// Loading is independent of network namespaces; [`NicGen::run_for`] and
/// [`NicGen::run_paced`] must run on a thread inside the namespace of the
/// interface the frames leave from. Dropping it unloads the program (it is
/// never attached to anything).
pub struct NicGen {
    seq: PerCpuArray<MapData, u64>,
    /// Owns the program.
    bpf: Ebpf,
}

impl fmt::Debug for NicGen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NicGen").finish_non_exhaustive()
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy)]
pub struct GenRun {
    /// Wall time.
    pub elapsed: Duration,
    /// Frames the program handled (`gen_seq` delta).
    pub generated: u64,
}

impl NicGen {
    /// Loads `bpf/gen.c`'s program and sets its destinations, used round robin.
    pub fn load(dsts: &[MacAddr]) -> Result<NicGen, NicGenError> {
        if dsts.is_empty() || dsts.len() > MAX_DSTS {
            return Err(NicGenError::Destinations(dsts.len()));
        }
        let mut bpf =
            Ebpf::load(program_object()).map_err(|e| NicGenError::LoadObject(Box::new(e)))?;
        let mut table: Array<MapData, GenMac> = take_map(&mut bpf, MAP_DSTS, Array::try_from)?;
        let mut count: Array<MapData, u32> = take_map(&mut bpf, MAP_COUNT, Array::try_from)?;
        let seq: PerCpuArray<MapData, u64> = take_map(&mut bpf, MAP_SEQ, PerCpuArray::try_from)?;
        for (i, d) in dsts.iter().enumerate() {
            let v = GenMac {
                mac: d.0,
                pad: [0; 2],
            };
            table
                .set(i as u32, v, 0)
                .map_err(|error| NicGenError::Map {
                    op: format!("setting destination {i} to {d}"),
                    error: Box::new(error),
                })?;
        }
        count
            .set(0, dsts.len() as u32, 0)
            .map_err(|error| NicGenError::Map {
                op: "setting the destination count".into(),
                error: Box::new(error),
            })?;
        let missing = |error: String| NicGenError::MissingObject {
            what: "program",
            name: PROGRAM_NAME,
            error,
        };
        let program: &mut Xdp = bpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| missing("not found".into()))?
            .try_into()
            .map_err(|e: ProgramError| missing(e.to_string()))?;
        program
            .load()
            .map_err(|e| NicGenError::LoadProgram(Box::new(e)))?;
        Ok(NicGen { seq, bpf })
    }

    /// Attaches the program to `ifname` (in the calling thread's network
    /// namespace), an interface that must carry no traffic, only so that it
    /// stays in the kernel's XDP dispatcher.
    ///
    /// `BPF_PROG_RUN` adds an XDP program to the dispatcher before the run
    /// and removes it after, and each change rewrites the dispatcher and
    /// waits for an RCU grace period (`bpf_dispatcher_change_prog` →
    /// `synchronize_rcu`): about 24 ms of waiting per call on this machine,
    /// which caps a generator making one call per millisecond at ~40 calls/s.
    /// A program that is already in the dispatcher (attached somewhere) only
    /// has its reference count changed.
    pub fn keep_in_dispatcher(&mut self, ifname: &str) -> Result<(), NicGenError> {
        let program: &mut Xdp = self
            .bpf
            .program_mut(PROGRAM_NAME)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| NicGenError::MissingObject {
                what: "program",
                name: PROGRAM_NAME,
                error: "not found after loading".into(),
            })?;
        program
            .attach(ifname, XdpMode::Driver)
            .or_else(|_| program.attach(ifname, XdpMode::Skb))
            .map_err(|e| NicGenError::Keep {
                ifname: ifname.to_string(),
                error: Box::new(e),
            })?;
        Ok(())
    }

    /// Frames the program has handled so far, all CPUs together.
    pub fn generated(&self) -> Result<u64, NicGenError> {
        let values = self.seq.get(&0, 0).map_err(|error| NicGenError::Map {
            op: "reading gen_seq".into(),
            error: Box::new(error),
        })?;
        Ok(values.iter().sum())
    }

    /// Sends `template` (its destination rewritten per frame) out of
    /// `ifname` as fast as it goes until `duration` has passed.
    pub fn run_for(
        &self,
        ifname: &str,
        template: &[u8],
        duration: Duration,
    ) -> Result<GenRun, NicGenError> {
        let ifindex = if_index(ifname)?;
        let before = self.generated()?;
        let start = Instant::now();
        while start.elapsed() < duration {
            self.run_once(ifname, ifindex, template, MAX_LOAD_REPEAT)?;
        }
        Ok(GenRun {
            elapsed: start.elapsed(),
            generated: self.generated()? - before,
        })
    }

    /// Sends at `rate` frames/s for `duration`: each 1 ms slot's frames in one
    /// call, sleeping until the next slot (so the thread's CPU time is the
    /// work of sending, not of waiting).
    pub fn run_paced(
        &self,
        ifname: &str,
        template: &[u8],
        rate: f64,
        duration: Duration,
    ) -> Result<GenRun, NicGenError> {
        const SLOT: Duration = Duration::from_millis(1);
        let ifindex = if_index(ifname)?;
        let before = self.generated()?;
        let per_slot = rate * SLOT.as_secs_f64();
        let start = Instant::now();
        let mut slot_end = start;
        let mut owed = 0.0f64;
        while start.elapsed() < duration {
            slot_end += SLOT;
            owed += per_slot;
            let n = owed.floor().min(f64::from(u32::MAX)) as u32;
            if n > 0 {
                self.run_once(ifname, ifindex, template, n)?;
                owed -= f64::from(n);
            }
            match slot_end.checked_duration_since(Instant::now()) {
                Some(left) => std::thread::sleep(left),
                // Behind by more than a few slots: do not catch up in a burst.
                None if Instant::now() - slot_end > SLOT * 4 => slot_end = Instant::now(),
                None => {}
            }
        }
        Ok(GenRun {
            elapsed: start.elapsed(),
            generated: self.generated()? - before,
        })
    }

    /// One `BPF_PROG_RUN` of `repeat` live frames.
    fn run_once(
        &self,
        ifname: &str,
        ifindex: u32,
        template: &[u8],
        repeat: u32,
    ) -> Result<(), NicGenError> {
        if template.len() < 14 || template.len() > 3000 {
            return Err(NicGenError::Template(template.len()));
        }
        let ctx = XdpMd {
            data_end: template.len() as u32,
            ingress_ifindex: ifindex,
            ..XdpMd::default()
        };
        let opts = TestRunOptions {
            data_in: Some(template),
            ctx_in: Some(ctx.as_bytes()),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(repeat.clamp(1, BATCH.min(MAX_BATCH))),
            ..TestRunOptions::new()
        };
        let program: &Xdp = self
            .bpf
            .program(PROGRAM_NAME)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| NicGenError::MissingObject {
                what: "program",
                name: PROGRAM_NAME,
                error: "not found after loading".into(),
            })?;
        let result = program.test_run(opts).map_err(|e| NicGenError::Run {
            ifname: ifname.to_string(),
            error: Box::new(e),
        })?;
        // A live run reports 0; anything else means the program did not run as meant.
        if result.return_value != 0 && result.return_value != 3 {
            return Err(NicGenError::Verdict(result.return_value));
        }
        Ok(())
    }
}

fn take_map<M>(
    bpf: &mut Ebpf,
    name: &'static str,
    convert: impl FnOnce(aya::maps::Map) -> Result<M, MapError>,
) -> Result<M, NicGenError> {
    let missing = |error: String| NicGenError::MissingObject {
        what: "map",
        name,
        error,
    };
    let map = bpf
        .take_map(name)
        .ok_or_else(|| missing("not found".into()))?;
    convert(map).map_err(|e| missing(e.to_string()))
}

/// The interface's index in the calling thread's network namespace.
fn if_index(ifname: &str) -> Result<u32, NicGenError> {
    let missing = || NicGenError::NoSuchInterface(ifname.to_string());
    let c_name = std::ffi::CString::new(ifname).map_err(|_| missing())?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(missing());
    }
    Ok(index)
}
